/*
 * json_build.c: values out of a validated text. Scalars are built from
 * their literals; a raw container is materialized one level at a time,
 * from the token index json_parse.c made or, for a value detached into a
 * text of its own, by scanning that text (json_internal.h explains both).
 */
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "json_internal.h"
#include "util.h"

/* ---- Strings ---- */

static long hex4(const char *s) {
  long v = 0;
  for (int k = 0; k < 4; k++) {
    char c = s[k];
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

size_t tt_json_unescape(const char *s, size_t len, char *out) {
  size_t i = 0, o = 0;
  while (i < len) {
    const char *b = memchr(s + i, '\\', len - i);
    size_t run = b ? (size_t)(b - (s + i)) : len - i;
    memcpy(out + o, s + i, run);
    o += run;
    i += run;
    if (!b)
      break;
    char e = s[i + 1];
    i += 2;
    switch (e) {
    case 'b':
      out[o++] = '\b';
      break;
    case 'f':
      out[o++] = '\f';
      break;
    case 'n':
      out[o++] = '\n';
      break;
    case 'r':
      out[o++] = '\r';
      break;
    case 't':
      out[o++] = '\t';
      break;
    case 'u': {
      uint32_t cp = (uint32_t)hex4(s + i);
      i += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo = (uint32_t)hex4(s + i + 2);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      }
      o += tt_utf8_encode(cp, out + o);
      break;
    }
    default: /* '"', '\\' and '/' stand for themselves */
      out[o++] = e;
      break;
    }
  }
  return o;
}

/* A string value from the contents of a validated string literal. */
static tether_json *build_string(const char *s, size_t len) {
  if (!memchr(s, '\\', len))
    return tt_json_new_string_raw(s, len);
  /* Unescaping only ever shortens. */
  tt_json_string *n = tt_json_alloc_string(len);
  n->len = tt_json_unescape(s, len, n->bytes);
  n->bytes[n->len] = '\0';
  return &n->head;
}

/* ---- Values ---- */

tether_json *tt_json_build_scalar(const char *p, size_t len) {
  switch (*p) {
  case '"':
    return build_string(p + 1, len - 2);
  case 't':
    return tether_json_bool(true);
  case 'f':
    return tether_json_bool(false);
  case 'n':
    return tether_json_null();
  default: {
    tt_json_number *n = tt_json_alloc_number(len);
    memcpy(n->text, p, len);
    return &n->head;
  }
  }
}

/* The value at token j of t. A container becomes a raw node on t that
 * takes over a reference the caller accounts for; *raw counts them. */
static tether_json *build_value(tt_json_text *t, uint32_t j, size_t *raw) {
  const tt_tok *k = &t->toks[j];
  const char *p = t->text + k->start;
  if (*p == '{' || *p == '[') {
    (*raw)++;
    return tt_json_new_raw(*p == '{' ? TETHER_JSON_OBJECT : TETHER_JSON_ARRAY,
                           t, j);
  }
  return tt_json_build_scalar(p, k->end - k->start);
}

/* A raw container on a home text holding a copy of s[0..len). */
static tether_json *raw_copy(tether_json_kind kind, const char *s, size_t len,
                             bool dups) {
  tether_json *v = tt_json_new_home(kind, len, 0, dups);
  memcpy(tt_home_text(v)->text, s, len);
  return v;
}

tether_json *tt_json_build_detached(tt_json_text *t, uint32_t j) {
  const tt_tok *k = &t->toks[j];
  const char *p = t->text + k->start;
  if (*p != '{' && *p != '[')
    return tt_json_build_scalar(p, k->end - k->start);
  tether_json_kind kind =
      *p == '{' ? TETHER_JSON_OBJECT : TETHER_JSON_ARRAY;
  if (j == 0 || k->next - j > 64) {
    /* The whole text, or a large value: tt_json_adopt keeps the text or
     * decides whether the copy keeps its tokens. */
    tt_json_text_ref(t);
    return tt_json_adopt(tt_json_new_raw(kind, t, j));
  }
  return raw_copy(kind, p, k->end - k->start, t->dups);
}

/* ---- Materializing a text without tokens ---- */

/* A detached value's text has no token index (json_internal.h): it is
 * known to be valid and compact, so finding where its members start and
 * end is a plain scan, cheaper than tokenizing it again. */

const char *tt_json_skip_string(const char *s, const char *end) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  s++;
  for (;;) {
#if defined(__SSE2__)
    while (end - s >= 16) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
      unsigned bits = (unsigned)_mm_movemask_epi8(
          _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                       _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
      if (bits) {
        s += __builtin_ctz(bits);
        goto found;
      }
      s += 16;
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - s >= 8) {
      uint64_t x;
      memcpy(&x, s, 8);
      uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
      uint64_t m = (((q - ones) & ~q) | ((b - ones) & ~b)) & high;
      if (m) {
        s += __builtin_ctzll(m) / 8;
        break;
      }
      s += 8;
    }
#endif
#if defined(__SSE2__)
  found:
#endif
    if (*s == '"')
      return s + 1;
    if (*s == '\\')
      s += 2;
    else
      s++;
  }
}

const char *tt_json_skip_value(const char *s, const char *end) {
  switch (*s) {
  case '"':
    return tt_json_skip_string(s, end);
  case '{':
  case '[': {
    size_t depth = 0;
    for (;;) {
      char c = *s;
      if (c == '"') {
        s = tt_json_skip_string(s, end);
        continue;
      }
      s++;
      if (c == '{' || c == '[')
        depth++;
      else if ((c == '}' || c == ']') && --depth == 0)
        return s;
    }
  }
  case 't':
  case 'n':
    return s + 4;
  case 'f':
    return s + 5;
  default:
    while ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.' ||
           *s == 'e' || *s == 'E')
      s++;
    return s;
  }
}

/* A member of the container being scanned: where its key (objects only)
 * and its value are. */
typedef struct scanned_member {
  const char *key;
  size_t key_len;
  const char *value, *value_end;
} scanned_member;

static void materialize_scanned(tether_json *v, tt_json_text *t) {
  bool object = v->kind == TETHER_JSON_OBJECT;
  const char *s = t->text + 1, *end = t->text + t->len;
  if (*s == (object ? '}' : ']'))
    return;
  /* First find the members, so the container is allocated once. */
  scanned_member small[16];
  scanned_member *m = small;
  size_t n = 0, cap = sizeof small / sizeof *small, key_bytes = 0;
  for (;;) {
    if (n == cap) {
      cap *= 2;
      if (m == small) {
        m = tt_malloc(cap * sizeof *m);
        memcpy(m, small, sizeof small);
      } else {
        m = tt_realloc(m, cap * sizeof *m);
      }
    }
    scanned_member *sm = &m[n++];
    sm->key = NULL;
    sm->key_len = 0;
    if (object) {
      const char *kend = tt_json_skip_string(s, end);
      sm->key = s + 1;
      sm->key_len = (size_t)(kend - s) - 2;
      key_bytes += sm->key_len + 1;
      s = kend + 1; /* past the ':' */
    }
    sm->value = s;
    sm->value_end = s = tt_json_skip_value(s, end);
    if (*s != ',')
      break;
    s++;
  }

  if (object)
    tt_json_object_reserve((tt_json_object *)v, n, key_bytes);
  else
    ((tt_json_array *)v)->items = tt_malloc(n * sizeof(tether_json *));
  char kbuf[128];
  for (size_t i = 0; i < n; i++) {
    const char *vs = m[i].value;
    size_t vlen = (size_t)(m[i].value_end - vs);
    tether_json *value;
    if (vlen == 2 && (*vs == '{' || *vs == '[')) {
      /* Empty: a plain node costs less than a raw one with a text. */
      value = *vs == '{' ? tether_json_object() : tether_json_array();
    } else if (*vs == '{' || *vs == '[') {
      value = raw_copy(*vs == '{' ? TETHER_JSON_OBJECT : TETHER_JSON_ARRAY, vs,
                       vlen, t->dups);
    } else {
      value = tt_json_build_scalar(vs, vlen);
    }
    if (!object) {
      ((tt_json_array *)v)->items[i] = value;
      continue;
    }
    tt_json_object *o = (tt_json_object *)v;
    const char *kp = m[i].key;
    size_t klen = m[i].key_len;
    char *heap = NULL;
    if (memchr(kp, '\\', klen)) {
      char *buf = klen <= sizeof kbuf ? kbuf : (heap = tt_malloc(klen));
      klen = tt_json_unescape(kp, klen, buf);
      kp = buf;
    }
    long dup = t->dups ? tt_json_object_find(o, kp, klen) : -1;
    if (dup >= 0) {
      tether_json_unref(o->members[dup].value);
      o->members[dup].value = value;
    } else {
      tt_json_object_append(o, kp, klen, value);
    }
    free(heap);
  }
  if (!object) {
    ((tt_json_array *)v)->count = n;
    ((tt_json_array *)v)->cap = n;
  }
  if (m != small)
    free(m);
}

/* ---- Materializing into a block ---- */

/* Containers with up to this many members are materialized into a block
 * (json_internal.h), as long as it stays within TT_BLOCK_MAX. An object
 * this small has no hash index either (json_object.c). */
#define BLOCK_MEMBERS 8

static size_t round_up(size_t n) {
  return (n + TT_BLOCK_ALIGN - 1) & ~(size_t)(TT_BLOCK_ALIGN - 1);
}

/* The room the node for token j takes in a block (0 for the literals,
 * which are static). */
static size_t node_size(const tt_json_text *t, uint32_t j) {
  const tt_tok *k = &t->toks[j];
  switch (t->text[k->start]) {
  case '{':
    return round_up(sizeof(tt_json_object));
  case '[':
    return round_up(sizeof(tt_json_array));
  case '"':
    /* Unescaping only shortens: the literal's length is enough. */
    return round_up(sizeof(tt_json_string) + (k->end - k->start - 2) + 1);
  case 't':
  case 'f':
  case 'n':
    return 0;
  default:
    return round_up(sizeof(tt_json_number) + (k->end - k->start) + 1);
  }
}

/* Builds the node for token j at mem, in block b; raw containers on t are
 * counted in *raw as build_value does. */
static tether_json *build_in_block(tt_json_text *t, uint32_t j, char *mem,
                                   tt_block *b, size_t *raw) {
  const tt_tok *k = &t->toks[j];
  const char *p = t->text + k->start;
  size_t len = k->end - k->start;
  tether_json *v = (tether_json *)(void *)mem;
  switch (*p) {
  case 't':
    return tether_json_bool(true);
  case 'f':
    return tether_json_bool(false);
  case 'n':
    return tether_json_null();
  case '{':
  case '[':
    if (*p == '{') {
      tt_json_object *o = (tt_json_object *)v;
      memset(o, 0, sizeof *o);
      o->tok = j;
      atomic_init(&o->raw, t);
      v->kind = TETHER_JSON_OBJECT;
    } else {
      tt_json_array *a = (tt_json_array *)v;
      memset(a, 0, sizeof *a);
      a->tok = j;
      atomic_init(&a->raw, t);
      v->kind = TETHER_JSON_ARRAY;
    }
    (*raw)++;
    break;
  case '"': {
    tt_json_string *str = (tt_json_string *)v;
    v->kind = TETHER_JSON_STRING;
    if (memchr(p + 1, '\\', len - 2)) {
      str->len = tt_json_unescape(p + 1, len - 2, str->bytes);
    } else {
      str->len = len - 2;
      memcpy(str->bytes, p + 1, len - 2);
    }
    str->bytes[str->len] = '\0';
    break;
  }
  default: {
    tt_json_number *n = (tt_json_number *)v;
    v->kind = TETHER_JSON_NUMBER;
    n->len = len;
    memcpy(n->text, p, len);
    n->text[len] = '\0';
    break;
  }
  }
  v->refs = 1;
  v->home = false;
  v->block_at = (uint16_t)((size_t)(mem - (char *)b) / TT_BLOCK_ALIGN);
  return v;
}

/* Materializes v (count members at token tok of t, which repeats no key)
 * into one block; false, with nothing done, when it would not fit. */
static bool materialize_block(tether_json *v, tt_json_text *t, uint32_t tok,
                              uint32_t count, size_t *raw) {
  const tt_tok *toks = t->toks;
  bool object = v->kind == TETHER_JSON_OBJECT;
  if (count > BLOCK_MEMBERS)
    return false;
  size_t body = object ? round_up(count * sizeof(tt_member)) : 0;
  size_t items = object ? 0 : round_up(count * sizeof(tether_json *));
  /* The parts: the container's members and every node but the static
   * literals. */
  size_t key_bytes = 0, nodes = 0;
  unsigned parts = 1;
  for (uint32_t k = 0, j = tok + 1; k < count; k++) {
    uint32_t value = object ? j + 1 : j;
    if (object)
      key_bytes += toks[j].end - toks[j].start - 1;
    size_t size = node_size(t, value);
    nodes += size;
    parts += size != 0;
    j = toks[value].next;
  }
  size_t head = round_up(sizeof(tt_block));
  size_t total = head + body + round_up(key_bytes) + items + nodes;
  if (total > TT_BLOCK_MAX)
    return false;
  tt_block *b = tt_malloc(total);
  /* Set at once: nobody else sees the block yet. */
  atomic_init(&b->parts, parts);
  char *at = (char *)b + head;
  char *node_mem = at + body + round_up(key_bytes) + items;
  if (!object) {
    tt_json_array *a = (tt_json_array *)v;
    a->items = (tether_json **)(void *)at;
    for (uint32_t k = 0, j = tok + 1; k < count; k++) {
      a->items[k] = build_in_block(t, j, node_mem, b, raw);
      node_mem += node_size(t, j);
      j = toks[j].next;
    }
    a->count = a->cap = count;
    a->block = b;
    return true;
  }
  tt_json_object *o = (tt_json_object *)v;
  o->members = (tt_member *)(void *)at;
  o->keys = at + body;
  o->cap = count;
  o->keys_cap = key_bytes;
  size_t koff = 0;
  for (uint32_t k = 0, j = tok + 1; k < count; k++) {
    const char *kp = t->text + toks[j].start + 1;
    size_t klen = toks[j].end - toks[j].start - 2;
    if (memchr(kp, '\\', klen)) {
      klen = tt_json_unescape(kp, klen, o->keys + koff);
    } else {
      memcpy(o->keys + koff, kp, klen);
    }
    o->keys[koff + klen] = '\0';
    o->members[k] = (tt_member){(uint32_t)koff, (uint32_t)klen, 0,
                                build_in_block(t, j + 1, node_mem, b, raw)};
    node_mem += node_size(t, j + 1);
    koff += klen + 1;
    j = toks[j + 1].next;
  }
  o->used = o->live = count;
  o->keys_len = koff;
  o->block = b;
  return true;
}

size_t tt_json_materialize(tether_json *v, tt_json_text *t, uint32_t tok) {
  if (t->unindexed)
    tt_json_text_index(t);
  if (!t->toks) {
    materialize_scanned(v, t);
    return 0;
  }
  const tt_tok *toks = t->toks;
  uint32_t count = toks[tok].count;
  uint32_t j = tok + 1;
  size_t raw = 0;
  if (count && !t->dups && materialize_block(v, t, tok, count, &raw))
    return raw;
  if (v->kind == TETHER_JSON_ARRAY) {
    tt_json_array *a = (tt_json_array *)v;
    a->items = count ? tt_malloc(count * sizeof *a->items) : NULL;
    a->cap = count;
    for (uint32_t k = 0; k < count; k++) {
      a->items[k] = build_value(t, j, &raw);
      j = toks[j].next;
    }
    a->count = count;
    return raw;
  }

  tt_json_object *o = (tt_json_object *)v;
  if (!count)
    return 0;
  /* Size the key arena from the literal lengths, an upper bound. */
  size_t key_bytes = 0;
  for (uint32_t k = 0, jj = j; k < count; k++) {
    key_bytes += toks[jj].end - toks[jj].start - 1;
    jj = toks[jj + 1].next;
  }
  tt_json_object_reserve(o, count, key_bytes);
  char small[128];
  for (uint32_t k = 0; k < count; k++) {
    const char *kp = t->text + toks[j].start + 1;
    size_t klen = toks[j].end - toks[j].start - 2;
    char *heap = NULL;
    if (memchr(kp, '\\', klen)) {
      char *buf = klen <= sizeof small ? small : (heap = tt_malloc(klen));
      klen = tt_json_unescape(kp, klen, buf);
      kp = buf;
    }
    size_t raw_before = raw;
    tether_json *value = build_value(t, j + 1, &raw);
    if (t->dups && raw != raw_before) {
      /* The value may be dropped for a later duplicate right here, so its
       * reference to t must be real at once. */
      tt_json_text_ref(t);
      raw--;
    }
    /* A duplicate key: the last value wins, at the first one's place. */
    long dup = t->dups ? tt_json_object_find(o, kp, klen) : -1;
    if (dup >= 0) {
      tether_json_unref(o->members[dup].value);
      o->members[dup].value = value;
    } else {
      tt_json_object_append(o, kp, klen, value);
    }
    free(heap);
    j = toks[j + 1].next;
  }
  return raw;
}
