/*
 * json_build.c: values out of a validated text. Scalars are built from
 * their literals; a raw container is materialized one level at a time,
 * from the token index json_parse.c made or, for a value detached into a
 * text of its own, by scanning that text (json_internal.h explains both).
 */
#include <stdlib.h>
#include <string.h>

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
  return tt_json_new_raw(
      kind, tt_json_text_new(p, k->end - k->start, 0, t->dups), 0);
}

/* ---- Materializing a text without tokens ---- */

/* A detached value's text has no token index (json_internal.h): it is
 * known to be valid and compact, so finding where its members start and
 * end is a plain scan, cheaper than tokenizing it again. */

/* The end of the string literal at s; end bounds the text. */
static const char *skip_string(const char *s, const char *end) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  s++;
  for (;;) {
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
    if (*s == '"')
      return s + 1;
    if (*s == '\\')
      s += 2;
    else
      s++;
  }
}

/* The end of the value at s; end bounds the text. */
static const char *skip_value(const char *s, const char *end) {
  switch (*s) {
  case '"':
    return skip_string(s, end);
  case '{':
  case '[': {
    size_t depth = 0;
    for (;;) {
      char c = *s;
      if (c == '"') {
        s = skip_string(s, end);
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
      const char *kend = skip_string(s, end);
      sm->key = s + 1;
      sm->key_len = (size_t)(kend - s) - 2;
      key_bytes += sm->key_len + 1;
      s = kend + 1; /* past the ':' */
    }
    sm->value = s;
    sm->value_end = s = skip_value(s, end);
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
      value = tt_json_new_raw(*vs == '{' ? TETHER_JSON_OBJECT
                                          : TETHER_JSON_ARRAY,
                              tt_json_text_new(vs, vlen, 0, t->dups), 0);
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

size_t tt_json_materialize(tether_json *v, tt_json_text *t, uint32_t tok) {
  if (!t->toks) {
    materialize_scanned(v, t);
    return 0;
  }
  const tt_tok *toks = t->toks;
  uint32_t count = toks[tok].count;
  uint32_t j = tok + 1;
  size_t raw = 0;
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
