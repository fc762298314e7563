/*
 * util.h: allocation that never returns NULL, and small helpers shared by
 * the protocol layer, the provider library and the host.
 */
#ifndef TETHER_PROTOCOL_UTIL_H
#define TETHER_PROTOCOL_UTIL_H

#include <stddef.h>

#include "tether/json.h"

/* Running out of memory is not an error tether recovers from: these print
 * a message and abort instead of returning NULL. */
_Noreturn void tt_oom(void);
void *tt_malloc(size_t n);
void *tt_calloc(size_t n, size_t size);
void *tt_realloc(void *p, size_t n);
char *tt_strdup(const char *s);
char *tt_strndup(const char *s, size_t n);

/* "an object", "a string": a JSON kind as a phrase for error messages. */
const char *tt_json_kind_phrase(tether_json_kind k);

/* Monotonic clock in nanoseconds. */
unsigned long long tt_now_ns(void);

#endif /* TETHER_PROTOCOL_UTIL_H */
