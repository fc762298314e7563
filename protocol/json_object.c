/*
 * json_object.c: objects. Members keep insertion order in an array; a
 * hash index over it makes lookups O(1) once an object is larger than a
 * handful of members, and removal leaves a tombstone that a later
 * compaction sweeps up, so neither costs O(size) per call. A state
 * document with 50,000 resources goes through tens of thousands of such
 * lookups and removals on one object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

/* Objects with more live members than this get a hash index. */
#define INDEX_MIN_MEMBERS 8
/* Compaction runs when tombstones outnumber both this and live members. */
#define COMPACT_MIN_TOMBSTONES 16

_Noreturn static void misuse(const char *fn, const tether_json *v) {
  fprintf(stderr, "tether: %s called on %s, not an object\n", fn,
          v ? tether_json_kind_name((tether_json_kind)v->kind) : "NULL");
  abort();
}

uint32_t tt_json_hash(const char *key, size_t len) {
  /* A multiply-xorshift hash over 8-byte words: keys are short and
   * numerous (resource names), so speed matters more than strength. */
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xC2B2AE3D27D4EB4Full);
  const char *end = key + len;
  while (end - key >= 8) {
    uint64_t w;
    memcpy(&w, key, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    key += 8;
  }
  /* The last bytes in whole loads that may overlap bytes already hashed
   * (the length is in h): a byte at a time, stored and loaded again as
   * a word, costs a stall on every key. */
  size_t rest = (size_t)(end - key);
  if (rest) {
    uint64_t w;
    if (len >= 8) {
      memcpy(&w, end - 8, 8);
    } else if (rest >= 4) {
      uint32_t lo, hi;
      memcpy(&lo, key, 4);
      memcpy(&hi, end - 4, 4);
      w = lo | (uint64_t)hi << 32;
    } else {
      w = (uint64_t)(unsigned char)key[0] |
          (uint64_t)(unsigned char)key[rest / 2] << 8 |
          (uint64_t)(unsigned char)key[rest - 1] << 16;
    }
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
  }
  h ^= h >> 29;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

/* ---- The hash index ---- */

static void index_put(tt_json_object *o, size_t i) {
  size_t mask = o->nslots - 1;
  uint32_t hash = o->members[i].hash;
  size_t p = hash & mask;
  while (o->slots[p].member != 0 && o->slots[p].member != TT_SLOT_DELETED)
    p = (p + 1) & mask;
  if (o->slots[p].member == TT_SLOT_DELETED)
    o->deleted_slots--;
  o->slots[p] = (tt_slot){(uint32_t)(i + 1), hash};
}

static void index_drop(tt_json_object *o, size_t i) {
  size_t mask = o->nslots - 1;
  size_t p = o->members[i].hash & mask;
  while (o->slots[p].member != i + 1)
    p = (p + 1) & mask;
  o->slots[p].member = TT_SLOT_DELETED;
  o->deleted_slots++;
}

/* Rebuilds the index for the live members, sized for `room` more. Member
 * hashes are computed when the index is first built: small objects never
 * need them. */
static void index_rebuild(tt_json_object *o, size_t room) {
  if (!o->nslots)
    for (size_t i = 0; i < o->used; i++)
      if (o->members[i].value)
        o->members[i].hash = tt_json_hash(tt_member_key(o, &o->members[i]),
                                          o->members[i].key_len);
  size_t want = (o->live + room) * 2;
  size_t n = 16;
  while (n < want)
    n *= 2;
  if (n != o->nslots) {
    free(o->slots);
    o->slots = tt_malloc(n * sizeof *o->slots);
    o->nslots = n;
  }
  memset(o->slots, 0, n * sizeof *o->slots);
  o->deleted_slots = 0;
  for (size_t i = 0; i < o->used; i++)
    if (o->members[i].value)
      index_put(o, i);
}

/* Makes room in the index for one more entry (or creates the index when
 * the object has just outgrown linear search). */
static void index_reserve(tt_json_object *o) {
  if (o->nslots) {
    if ((o->live + o->deleted_slots + 1) * 4 > o->nslots * 3)
      index_rebuild(o, 1);
  } else if (o->live + 1 > INDEX_MIN_MEMBERS) {
    index_rebuild(o, 1);
  }
}

/* ---- Members ---- */

long tt_json_object_find(const tt_json_object *o, const char *key,
                         size_t len) {
  return tt_json_object_find_hashed(o, key, len,
                                    o->nslots ? tt_json_hash(key, len) : 0);
}

long tt_json_object_find_hashed(const tt_json_object *o, const char *key,
                                size_t len, uint32_t hash) {
  if (o->nslots) {
    size_t mask = o->nslots - 1;
    for (size_t p = hash & mask;; p = (p + 1) & mask) {
      uint32_t s = o->slots[p].member;
      if (s == 0)
        return -1;
      if (s == TT_SLOT_DELETED || o->slots[p].hash != hash)
        continue;
      const tt_member *m = &o->members[s - 1];
      if (m->key_len == len &&
          memcmp(o->keys + m->key_off, key, len) == 0)
        return (long)(s - 1);
    }
  }
  for (size_t i = 0; i < o->used; i++) {
    const tt_member *m = &o->members[i];
    if (m->value && m->key_len == len &&
        memcmp(o->keys + m->key_off, key, len) == 0)
      return (long)i;
  }
  return -1;
}

/* Moves members and keys that live in a block (json_internal.h) into
 * allocations of their own, which can grow. */
static void unblock(tt_json_object *o) {
  if (!o->block)
    return;
  tt_member *members = tt_malloc((o->cap ? o->cap : 1) * sizeof *members);
  memcpy(members, o->members, o->used * sizeof *members);
  char *keys = tt_malloc(o->keys_cap ? o->keys_cap : 1);
  memcpy(keys, o->keys, o->keys_len);
  o->members = members;
  o->keys = keys;
  tt_json_block_release(o->block);
  o->block = NULL;
}

void tt_json_object_reserve(tt_json_object *o, size_t n, size_t key_bytes) {
  unblock(o);
  if (o->used + n > o->cap) {
    o->cap = o->used + n;
    o->members = tt_realloc(o->members, o->cap * sizeof *o->members);
  }
  if (o->keys_len + key_bytes > o->keys_cap) {
    o->keys_cap = o->keys_len + key_bytes;
    o->keys = tt_realloc(o->keys, o->keys_cap);
  }
}

void tt_json_object_append(tt_json_object *o, const char *key, size_t len,
                           tether_json *value) {
  if (len > UINT32_MAX - 1 || o->keys_len > UINT32_MAX - 1 - len ||
      o->used >= UINT32_MAX - 1)
    tt_oom(); /* beyond what the 32-bit offsets address */
  if (o->used == o->cap || o->keys_len + len + 1 > o->keys_cap)
    unblock(o);
  if (o->used == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 4;
    o->members = tt_realloc(o->members, o->cap * sizeof *o->members);
  }
  if (o->keys_len + len + 1 > o->keys_cap) {
    size_t cap = o->keys_cap ? o->keys_cap * 2 : 64;
    while (cap < o->keys_len + len + 1)
      cap *= 2;
    o->keys = tt_realloc(o->keys, cap);
    o->keys_cap = cap;
  }
  tt_member *m = &o->members[o->used];
  m->key_off = (uint32_t)o->keys_len;
  m->key_len = (uint32_t)len;
  m->hash = 0;
  m->value = value;
  if (len)
    memcpy(o->keys + o->keys_len, key, len);
  o->keys[o->keys_len + len] = '\0';
  o->keys_len += len + 1;
  index_reserve(o);
  o->used++;
  o->live++;
  if (o->nslots) {
    m = &o->members[o->used - 1];
    m->hash = tt_json_hash(key, len);
    index_put(o, o->used - 1);
  }
}

void tt_json_object_maybe_compact(tt_json_object *o) {
  /* Trailing tombstones cost nothing to drop. */
  while (o->used && !o->members[o->used - 1].value) {
    o->used--;
    o->keys_len = o->members[o->used].key_off;
  }
  size_t tombstones = o->used - o->live;
  if (o->live == 0) {
    o->used = 0;
    o->keys_len = 0;
    if (o->nslots)
      index_rebuild(o, 0);
    return;
  }
  if (tombstones < COMPACT_MIN_TOMBSTONES || tombstones <= o->live)
    return;
  size_t w = 0, koff = 0;
  for (size_t r = 0; r < o->used; r++) {
    tt_member m = o->members[r];
    if (!m.value)
      continue;
    memmove(o->keys + koff, o->keys + m.key_off, m.key_len + 1);
    m.key_off = (uint32_t)koff;
    koff += m.key_len + 1;
    o->members[w++] = m;
  }
  o->used = w;
  o->keys_len = koff;
  if (o->nslots)
    index_rebuild(o, 0);
}

tether_json *tt_json_object_take(tt_json_object *o, size_t i, bool compact) {
  tt_member *m = &o->members[i];
  tether_json *v = m->value;
  if (o->nslots)
    index_drop(o, i);
  m->value = NULL;
  o->live--;
  if (compact)
    tt_json_object_maybe_compact(o);
  return v;
}

void tt_json_object_restore(tt_json_object *o, size_t i, tether_json *value) {
  index_reserve(o);
  o->members[i].value = value;
  o->live++;
  if (o->nslots)
    index_put(o, i);
}

tether_json *tt_json_object_pop(tt_json_object *o) {
  size_t i = o->used - 1;
  tether_json *v = o->members[i].value;
  if (o->nslots)
    index_drop(o, i);
  o->keys_len = o->members[i].key_off;
  o->used--;
  o->live--;
  return v;
}

/* ---- The public interface ---- */

size_t tether_json_object_size(const tether_json *obj) {
  if (!tether_json_is_object(obj))
    return 0;
  return tt_obj(obj)->live;
}

tether_json *tether_json_object_getn(const tether_json *obj, const char *key,
                                     size_t keylen) {
  if (!tether_json_is_object(obj))
    return NULL;
  const tt_json_object *o = tt_obj(obj);
  long i = tt_json_object_find(o, key, keylen);
  return i < 0 ? NULL : o->members[i].value;
}

tether_json *tether_json_object_get(const tether_json *obj, const char *key) {
  return tether_json_object_getn(obj, key, strlen(key));
}

tether_json *tether_json_object_setn(tether_json *obj, const char *key,
                                     size_t keylen, tether_json *v) {
  if (!tether_json_is_object(obj))
    misuse("tether_json_object_set", obj);
  if (!v)
    v = tether_json_null();
  v = tt_json_adopt(v);
  tt_json_object *o = (tt_json_object *)tt_json_unshare(obj);
  long i = tt_json_object_find(o, key, keylen);
  if (i >= 0) {
    tether_json *old = o->members[i].value;
    o->members[i].value = v;
    tether_json_unref(old);
  } else {
    tt_json_object_append(o, key, keylen, v);
  }
  return &o->head;
}

tether_json *tether_json_object_set(tether_json *obj, const char *key,
                                    tether_json *v) {
  return tether_json_object_setn(obj, key, strlen(key), v);
}

tether_json *tether_json_object_removen(tether_json *obj, const char *key,
                                        size_t keylen) {
  if (!tether_json_is_object(obj))
    misuse("tether_json_object_remove", obj);
  if (tt_json_object_find(tt_obj(obj), key, keylen) < 0)
    return obj; /* nothing to remove: no need to copy a shared object */
  tt_json_object *o = (tt_json_object *)tt_json_unshare(obj);
  long i = tt_json_object_find(o, key, keylen);
  tether_json_unref(tt_json_object_take(o, (size_t)i, true));
  return &o->head;
}

tether_json *tether_json_object_remove(tether_json *obj, const char *key) {
  return tether_json_object_removen(obj, key, strlen(key));
}

bool tether_json_object_next(const tether_json *obj, size_t *iter,
                             const char **key, size_t *keylen,
                             tether_json **value) {
  if (!tether_json_is_object(obj))
    return false;
  const tt_json_object *o = tt_obj(obj);
  size_t i = *iter;
  while (i < o->used && !o->members[i].value)
    i++;
  if (i >= o->used) {
    *iter = i;
    return false;
  }
  const tt_member *m = &o->members[i];
  if (key)
    *key = o->keys + m->key_off;
  if (keylen)
    *keylen = m->key_len;
  if (value)
    *value = m->value;
  *iter = i + 1;
  return true;
}

