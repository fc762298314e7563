/*
 * util.c: allocation that never returns NULL, and a monotonic clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

void tt_oom(void) {
  static const char msg[] = "tether: out of memory\n";
  fwrite(msg, 1, sizeof msg - 1, stderr);
  abort();
}

void *tt_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p)
    tt_oom();
  return p;
}

void *tt_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    tt_oom();
  return p;
}

void *tt_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q)
    tt_oom();
  return q;
}

char *tt_strndup(const char *s, size_t n) {
  char *d = tt_malloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *tt_strdup(const char *s) { return tt_strndup(s, strlen(s)); }

unsigned long long tt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull +
         (unsigned long long)ts.tv_nsec;
}

const char *tt_json_kind_phrase(tether_json_kind k) {
  switch (k) {
  case TETHER_JSON_NULL:
    return "null";
  case TETHER_JSON_BOOL:
    return "a boolean";
  case TETHER_JSON_NUMBER:
    return "a number";
  case TETHER_JSON_STRING:
    return "a string";
  case TETHER_JSON_ARRAY:
    return "an array";
  case TETHER_JSON_OBJECT:
    return "an object";
  }
  return "a value";
}
