/*
 * strmap.c: open addressing with linear probing, kept at most half full so
 * probe sequences stay short.
 */
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "util.h"

static size_t hash_bytes(const char *s, size_t len) {
  /* FNV-1a: short names hash well with it and it needs no tables. */
  size_t h = (size_t)1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= (size_t)1099511628211ull;
  }
  return h;
}

void tt_strmap_init(tt_strmap *m) {
  m->slots = NULL;
  m->cap = 0;
  m->len = 0;
}

void tt_strmap_free(tt_strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->slots[i].key);
  free(m->slots);
  tt_strmap_init(m);
}

static tt_strmap_entry *find_slot(tt_strmap_entry *slots, size_t cap,
                                  const char *key, size_t keylen, size_t hash) {
  size_t i = hash & (cap - 1);
  for (;;) {
    tt_strmap_entry *e = &slots[i];
    if (!e->key)
      return e;
    if (e->hash == hash && e->keylen == keylen &&
        memcmp(e->key, key, keylen) == 0)
      return e;
    i = (i + 1) & (cap - 1);
  }
}

static void grow(tt_strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  tt_strmap_entry *slots = tt_calloc(cap, sizeof *slots);
  for (size_t i = 0; i < m->cap; i++) {
    tt_strmap_entry *old = &m->slots[i];
    if (!old->key)
      continue;
    *find_slot(slots, cap, old->key, old->keylen, old->hash) = *old;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
}

bool tt_strmap_put(tt_strmap *m, const char *key, size_t keylen, void *value) {
  if ((m->len + 1) * 2 > m->cap)
    grow(m);
  size_t hash = hash_bytes(key, keylen);
  tt_strmap_entry *e = find_slot(m->slots, m->cap, key, keylen, hash);
  if (e->key)
    return false;
  e->key = tt_strndup(key, keylen);
  e->keylen = keylen;
  e->hash = hash;
  e->value = value;
  m->len++;
  return true;
}

void *tt_strmap_get(const tt_strmap *m, const char *key, size_t keylen) {
  if (!m->cap)
    return NULL;
  tt_strmap_entry *e =
      find_slot(m->slots, m->cap, key, keylen, hash_bytes(key, keylen));
  return e->key ? e->value : NULL;
}
