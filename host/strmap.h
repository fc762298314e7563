/*
 * strmap.h: a hash table from byte strings to pointers.
 *
 * The engine looks names up constantly (resources by name, records by
 * pointer, providers by name). With ten thousand resources a linear search
 * per lookup would make planning quadratic, so every such lookup goes
 * through this table. Keys are copied in; values are borrowed and never
 * freed by the table.
 */
#ifndef TETHER_HOST_STRMAP_H
#define TETHER_HOST_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tt_strmap_entry {
  char *key; /* NULL for an empty slot */
  size_t keylen;
  size_t hash;
  void *value;
} tt_strmap_entry;

typedef struct tt_strmap {
  tt_strmap_entry *slots;
  size_t cap; /* a power of two, or 0 before the first insertion */
  size_t len;
} tt_strmap;

void tt_strmap_init(tt_strmap *m);
void tt_strmap_free(tt_strmap *m);
/* Stores value under key. Returns false, changing nothing, when the key is
 * already present: callers use that to detect duplicates. */
bool tt_strmap_put(tt_strmap *m, const char *key, size_t keylen, void *value);
/* The value stored under key, or NULL. */
void *tt_strmap_get(const tt_strmap *m, const char *key, size_t keylen);

#endif /* TETHER_HOST_STRMAP_H */
