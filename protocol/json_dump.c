/*
 * json_dump.c: values to compact JSON text. Strings escape '"', '\\' and
 * control characters (with the short forms \b \f \n \r \t where JSON has
 * them) and pass other UTF-8 through; a raw container is copied as the
 * compact text it already is (or, by tt_json_write, written from where
 * it lies).
 */
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

static const char hex_digits[] = "0123456789abcdef";

/* Eight bytes at a time: nonzero when any of them needs attention (a
 * quote, a backslash, a control character or non-ASCII). */
static inline uint64_t special_bytes(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t q = x ^ (ones * '"');
  uint64_t b = x ^ (ones * '\\');
  return (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) |
          x) &
         high;
}

size_t tt_json_escape_char(unsigned char c, char out[6]) {
  out[0] = '\\';
  switch (c) {
  case '"':
    out[1] = '"';
    return 2;
  case '\\':
    out[1] = '\\';
    return 2;
  case '\b':
    out[1] = 'b';
    return 2;
  case '\f':
    out[1] = 'f';
    return 2;
  case '\n':
    out[1] = 'n';
    return 2;
  case '\r':
    out[1] = 'r';
    return 2;
  case '\t':
    out[1] = 't';
    return 2;
  default:
    out[1] = 'u';
    out[2] = '0';
    out[3] = '0';
    out[4] = hex_digits[c >> 4];
    out[5] = hex_digits[c & 15];
    return 6;
  }
}

void tether_json_dump_string(const char *s, size_t len, tether_buf *out) {
  const unsigned char *u = (const unsigned char *)s;
  tether_buf_reserve(out, len + 2);
  out->data[out->len++] = '"';
  size_t i = 0;
  while (i < len) {
    size_t run = i;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (run + 8 <= len) {
      uint64_t x;
      memcpy(&x, s + run, 8);
      uint64_t m = special_bytes(x);
      if (m) {
        run += (size_t)__builtin_ctzll(m) / 8;
        break;
      }
      run += 8;
    }
#endif
    while (run < len && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' &&
           u[run] != '\\')
      run++;
    if (run > i)
      tether_buf_append(out, s + i, run - i);
    i = run;
    if (i >= len)
      break;
    unsigned char c = u[i];
    if (c >= 0x80) {
      uint32_t cp;
      const char *why;
      size_t n = tt_utf8_decode(u + i, len - i, &cp, &why);
      if (n) {
        tether_buf_append(out, s + i, n);
        i += n;
      } else {
        /* Invalid UTF-8 (possible only in keys and in bytes given to
         * this function directly) becomes U+FFFD, so the output is
         * always valid JSON. */
        tether_buf_append(out, "\xEF\xBF\xBD", 3);
        i++;
      }
      continue;
    }
    char esc[6];
    size_t n = tt_json_escape_char(c, esc);
    tether_buf_append(out, esc, n);
    i++;
  }
  tether_buf_append_char(out, '"');
}

/* How far ahead the members of an object are fetched: their nodes, the
 * headers and first bytes of raw ones' texts (found through nodes fetched
 * earlier), and the rest of those texts (found through headers fetched
 * earlier). */
#define PREFETCH_NODES 8
#define PREFETCH_TEXTS 4
#define PREFETCH_REST 2
/* A raw text is fetched whole up to this size; longer ones are copied
 * sequentially, which the hardware fetches ahead by itself. */
#define PREFETCH_REST_MAX 1024

/* Starts fetching the text of v when v is a raw container. Only a hint:
 * the raw field is read without claiming v, which is safe for an atomic
 * field, and whatever it holds then is only prefetched. */
static inline void prefetch_text(const tether_json *v) {
  if (!v || (v->kind != TETHER_JSON_OBJECT && v->kind != TETHER_JSON_ARRAY))
    return;
  const tt_json_text *t = atomic_load_explicit(
      v->kind == TETHER_JSON_OBJECT ? &((const tt_json_object *)v)->raw
                                    : &((const tt_json_array *)v)->raw,
      memory_order_relaxed);
  if (!t || t == TT_RAW_BUSY)
    return;
  /* The header, and the start of the text right after it when the text
   * shares its allocation (a home text, json_internal.h). */
  __builtin_prefetch(t);
  __builtin_prefetch((const char *)t + 64);
  __builtin_prefetch((const char *)t + 128);
}

/* The rest of the text of v, whose header prefetch_text fetched earlier:
 * a raw member's text is copied whole, and the lines past the first few
 * would each stop the copy. */
static inline void prefetch_rest(const tether_json *v) {
  if (!v || (v->kind != TETHER_JSON_OBJECT && v->kind != TETHER_JSON_ARRAY))
    return;
  const tt_json_text *t = atomic_load_explicit(
      v->kind == TETHER_JSON_OBJECT ? &((const tt_json_object *)v)->raw
                                    : &((const tt_json_array *)v)->raw,
      memory_order_relaxed);
  if (!t || t == TT_RAW_BUSY)
    return;
  const char *from = t->text, *to = t->text + t->len;
  if (to - from > PREFETCH_REST_MAX)
    to = from + PREFETCH_REST_MAX;
  /* From the first line prefetch_text did not fetch. */
  const char *line = (const char *)t + 192;
  if (line < from || line > to)
    line = from;
  for (; line < to; line += 64)
    __builtin_prefetch(line);
}

/* Appends sep, the key as a string literal, and ':'. Most keys are short
 * and plain: they are copied in one go, checked on the way. */
static void append_key(tether_buf *out, const char *sep, const char *key,
                       size_t len) {
  size_t seplen = *sep != '\0';
  tether_buf_reserve(out, seplen + len + 3);
  char *d = out->data + out->len;
  if (seplen)
    *d++ = *sep;
  *d++ = '"';
  size_t i = 0;
  for (; i < len; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
      break;
    d[i] = (char)c;
  }
  if (i < len) {
    /* Something to escape, or UTF-8 to check: the careful way. */
    out->len += seplen;
    tether_json_dump_string(key, len, out);
    tether_buf_append_char(out, ':');
    return;
  }
  d[len] = '"';
  d[len + 1] = ':';
  out->len += seplen + len + 3;
  out->data[out->len] = '\0';
}

/* Where a dump in pieces goes (tt_json_dump_pieces, tt_json_write). */
typedef struct dump_sink {
  size_t piece;
  void (*flush)(tether_buf *out, void *ctx);
  /* When set, takes a raw text of piece bytes or more from where it lies,
   * after flush has taken out what came before it, instead of the text
   * being copied into out. */
  void (*write)(const char *s, size_t len, void *ctx);
  void *ctx;
} dump_sink;

typedef struct dump_frame {
  const tether_json *v;
  size_t i;       /* next element or member slot */
  size_t written; /* members written so far */
} dump_frame;

/* Writes a scalar or a raw container completely; for a materialized
 * container writes the opening bracket and returns true: its members
 * follow. */
static bool dump_open(const tether_json *v, tether_buf *out,
                      const dump_sink *sink) {
  switch ((tether_json_kind)v->kind) {
  case TETHER_JSON_NULL:
    tether_buf_append(out, "null", 4);
    return false;
  case TETHER_JSON_BOOL:
    if (tether_json_bool_value(v))
      tether_buf_append(out, "true", 4);
    else
      tether_buf_append(out, "false", 5);
    return false;
  case TETHER_JSON_NUMBER: {
    const tt_json_number *n = (const tt_json_number *)v;
    tether_buf_append(out, n->text, n->len);
    return false;
  }
  case TETHER_JSON_STRING: {
    const tt_json_string *s = (const tt_json_string *)v;
    tether_json_dump_string(s->bytes, s->len, out);
    return false;
  }
  case TETHER_JSON_ARRAY:
  case TETHER_JSON_OBJECT: {
    uint32_t tok;
    tt_json_text *t = tt_json_raw_claim(v, &tok, true);
    if (t) {
      /* A raw text is the serialization, unless it repeats keys. */
      bool copied = !t->dups;
      if (copied) {
        const char *text;
        size_t len;
        tt_json_text_slice(t, tok, &text, &len);
        if (sink && sink->write && len >= sink->piece) {
          if (out->len)
            sink->flush(out, sink->ctx);
          sink->write(text, len, sink->ctx);
        } else {
          tether_buf_append(out, text, len);
        }
      }
      tt_json_raw_release(v, t);
      if (copied)
        return false;
    }
    tt_json_force(v);
    tether_buf_append_char(out, v->kind == TETHER_JSON_ARRAY ? '[' : '{');
    return true;
  }
  }
  return false;
}

/* Dumps v into out, or with a sink in pieces. */
static void dump(const tether_json *v, tether_buf *out, const dump_sink *sink) {
  if (!v)
    v = tether_json_null();
  if (!dump_open(v, out, sink))
    return;
  /* An explicit stack: values built through the API may nest deeper
   * than the C stack would allow recursion to. It starts on the C stack,
   * as most values are shallow: a protocol answer is dumped per request. */
  dump_frame small[32];
  size_t cap = sizeof small / sizeof *small, depth = 0;
  dump_frame *st = small;
  st[depth++] = (dump_frame){v, 0, 0};
  while (depth) {
    if (sink && out->len >= sink->piece)
      sink->flush(out, sink->ctx);
    dump_frame *f = &st[depth - 1];
    const tether_json *child;
    if (f->v->kind == TETHER_JSON_ARRAY) {
      const tt_json_array *a = (const tt_json_array *)f->v;
      if (f->i == a->count) {
        tether_buf_append_char(out, ']');
        depth--;
        continue;
      }
      if (f->i)
        tether_buf_append_char(out, ',');
      child = a->items[f->i++];
      if (f->i < a->count)
        __builtin_prefetch(a->items[f->i]);
    } else {
      const tt_json_object *o = (const tt_json_object *)f->v;
      while (f->i < o->used && !o->members[f->i].value)
        f->i++;
      if (f->i == o->used) {
        tether_buf_append_char(out, '}');
        depth--;
        continue;
      }
      const tt_member *m = &o->members[f->i++];
      /* The members of a large object live all over the heap, and a raw
       * one's text somewhere else again: fetch nodes a few members ahead
       * and the texts of the nodes fetched before, so that both arrive
       * while the members in between are written. */
      if (f->i + PREFETCH_NODES < o->used) {
        const tether_json *ahead = o->members[f->i + PREFETCH_NODES].value;
        if (ahead)
          __builtin_prefetch(ahead);
      }
      if (f->i + PREFETCH_TEXTS < o->used)
        prefetch_text(o->members[f->i + PREFETCH_TEXTS].value);
      if (f->i + PREFETCH_REST < o->used)
        prefetch_rest(o->members[f->i + PREFETCH_REST].value);
      append_key(out, f->written++ ? "," : "", tt_member_key(o, m),
                 m->key_len);
      child = m->value;
    }
    if (dump_open(child, out, sink)) {
      if (depth == cap) {
        cap *= 2;
        if (st == small) {
          st = tt_malloc(cap * sizeof *st);
          memcpy(st, small, sizeof small);
        } else {
          st = tt_realloc(st, cap * sizeof *st);
        }
      }
      st[depth++] = (dump_frame){child, 0, 0};
    }
  }
  if (st != small)
    free(st);
}

void tether_json_dump(const tether_json *v, tether_buf *out) {
  dump(v, out, NULL);
}

void tt_json_dump_pieces(const tether_json *v, tether_buf *out, size_t piece,
                         void (*flush)(tether_buf *out, void *ctx),
                         void *ctx) {
  dump_sink sink = {piece, flush, NULL, ctx};
  dump(v, out, flush ? &sink : NULL);
}

/* The buffer tt_json_write fills between writes, and the size from which
 * a raw text is written from where it lies instead. */
#define WRITE_PIECE (64u * 1024u)

typedef struct file_sink {
  FILE *f;
  bool ok; /* no write has failed */
} file_sink;

static void file_write(const char *s, size_t len, void *ctx) {
  file_sink *fs = ctx;
  /* Once a write has failed, the rest of the text is not tried. */
  if (fs->ok && fwrite(s, 1, len, fs->f) != len)
    fs->ok = false;
}

static void file_flush(tether_buf *out, void *ctx) {
  file_write(out->data, out->len, ctx);
  out->len = 0;
  out->data[0] = '\0';
}

bool tt_json_write(const tether_json *v, FILE *f) {
  tether_buf out;
  tether_buf_init(&out);
  tether_buf_reserve(&out, WRITE_PIECE);
  file_sink fs = {f, true};
  dump_sink sink = {WRITE_PIECE, file_flush, file_write, &fs};
  dump(v, &out, &sink);
  if (out.len)
    file_flush(&out, &fs);
  tether_buf_free(&out);
  return fs.ok;
}

char *tether_json_dumps(const tether_json *v, size_t *len) {
  tether_buf b;
  tether_buf_init(&b);
  tether_json_dump(v, &b);
  return tether_buf_steal(&b, len);
}
