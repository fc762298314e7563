/*
 * json_parse.c: JSON text to values. jsmn tokenizes; a validation pass then
 * walks the text and the tokens together and enforces RFC 8259, which jsmn
 * alone does not (it accepts "[1 2]", bare control characters, "01" and
 * more); the same pass drops insignificant whitespace and turns jsmn's
 * tokens into the index that lazy materialization uses (json_internal.h).
 *
 * The validation pass is authoritative: it checks every byte itself and
 * uses the tokens only to record structure. Building values from the
 * result is json_build.c's part. When jsmn gives up early (it
 * stops at the first error, or at a NUL byte), the pass keeps validating
 * without tokens, so the error reported is always the first one in the
 * text, with its offset.
 */
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#define JSMN_STATIC
#include <jsmn.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

/* Inputs up to this many tokens are tokenized into a buffer on the
 * stack: most protocol messages are small. */
#define STACK_TOKENS 256

/* ---- The validation pass ---- */

typedef struct walker {
  const char *s;
  size_t len;
  size_t pos;
  /* jsmn's tokens, followed while they agree with the text. */
  const jsmntok_t *jt;
  unsigned njt;
  unsigned ti; /* next token */
  bool jsmn_ok;
  bool follow;
  /* Output: the token index (may overlay jt, see claim_token) and the
   * compacted text; both NULL for a document that is a single scalar. */
  tt_tok *out;
  char *dst;
  size_t dlen;
  size_t flush; /* first input byte not yet copied to dst */
  size_t shift; /* whitespace bytes dropped so far */
  size_t value_end; /* where the top-level value ends */
  bool saw_escape;  /* the last string scanned had a backslash */
  /* Objects that may repeat a key (see frame.keys_seen). */
  uint32_t *suspects;
  size_t nsuspects, suspects_cap;
  tether_json_error *err;
} walker;

TETHER_PRINTF(3, 4)
static bool fail(walker *w, size_t offset, const char *fmt, ...) {
  if (!w->err)
    return false;
  char what[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  tt_json_set_error(w->err, offset, -1, "invalid JSON at byte %zu: %s",
                    offset, what);
  return false;
}

/* How a byte is named in a message. */
static const char *describe(const walker *w, size_t i, char *buf,
                            size_t size) {
  if (i >= w->len)
    return "end of input";
  unsigned char c = (unsigned char)w->s[i];
  if (c > 0x20 && c < 0x7F)
    snprintf(buf, size, "'%c'", c);
  else
    snprintf(buf, size, "byte 0x%02X", c);
  return buf;
}

/* ---- Whitespace and compaction ---- */

static inline bool is_ws(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline void skip_ws(walker *w) {
  size_t start = w->pos;
  while (w->pos < w->len && is_ws(w->s[w->pos]))
    w->pos++;
  if (w->pos == start)
    return;
  if (w->dst) {
    memcpy(w->dst + w->dlen, w->s + w->flush, start - w->flush);
    w->dlen += start - w->flush;
  }
  w->flush = w->pos;
  w->shift += w->pos - start;
}

/* ---- Tokens ---- */

#define NO_TOKEN UINT32_MAX

/* Claims jsmn's next token for a value of the given type starting at the
 * current position: *idx receives its index and *jend where jsmn thinks it
 * ends, or *idx is NO_TOKEN once the tokens have stopped agreeing with the
 * text. That can only happen when jsmn failed, and then the text is
 * invalid and the walk goes on without tokens to find out where. Returns
 * false only when jsmn accepted a text the validator reads differently. */
static bool claim_token(walker *w, jsmntype_t type, uint32_t *idx,
                        size_t *jend) {
  *idx = NO_TOKEN;
  if (!w->follow)
    return true;
  jsmntok_t t;
  bool agree = w->ti < w->njt;
  if (agree) {
    /* Copied out first: w->out is written over the same array, each
     * entry no further than the jsmn token it replaces (16 bytes versus
     * 20), so w->out[i] may overlap jt[i] but never jt[i + 1]. */
    memcpy(&t, &w->jt[w->ti], sizeof t);
    size_t start = type == JSMN_STRING ? w->pos + 1 : w->pos;
    agree = t.type == type && t.start >= 0 && (size_t)t.start == start;
  }
  if (!agree) {
    if (w->jsmn_ok)
      return fail(w, w->pos, "tokenizer disagrees with the validator");
    w->follow = false;
    return true;
  }
  *idx = w->ti++;
  *jend = t.end < 0 ? SIZE_MAX : (size_t)t.end;
  w->out[*idx] = (tt_tok){(uint32_t)(w->pos - w->shift), 0, 0, *idx + 1};
  return true;
}

/* Records the end of a scalar token, checking that jsmn saw the same. */
static bool finish_token(walker *w, uint32_t idx, size_t jend, size_t end) {
  if (idx == NO_TOKEN)
    return true;
  if (jend != end) {
    if (w->jsmn_ok)
      return fail(w, end, "tokenizer disagrees with the validator");
    w->follow = false;
    return true;
  }
  w->out[idx].end = (uint32_t)(w->pos - w->shift);
  return true;
}

/* ---- Scalars ---- */

static inline int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static long hex4(const char *s, size_t avail) {
  if (avail < 4)
    return -1;
  long v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hex_value(s[k]);
    if (h < 0)
      return -1;
    v = v * 16 + h;
  }
  return v;
}

/* Eight bytes at a time: nonzero when any of them is a quote, a backslash,
 * a control character or non-ASCII, and the lowest flag then marks the
 * first such byte (borrows only ever spill into higher bytes). */
static inline uint64_t special_bytes(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t q = x ^ (ones * '"');
  uint64_t b = x ^ (ones * '\\');
  return (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) |
          x) &
         high;
}

/* Validates the string whose opening quote is at w->pos and moves past its
 * closing quote. */
static bool scan_string(walker *w) {
  const char *s = w->s;
  size_t len = w->len, q = w->pos, i = q + 1;
  for (;;) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (i + 8 <= len) {
      uint64_t x;
      memcpy(&x, s + i, 8);
      uint64_t m = special_bytes(x);
      if (m) {
        i += (size_t)__builtin_ctzll(m) / 8;
        break;
      }
      i += 8;
    }
#endif
    if (i >= len)
      return fail(w, len, "unterminated string (opened at byte %zu)", q);
    unsigned char c = (unsigned char)s[i];
    if (c == '"') {
      w->pos = i + 1;
      return true;
    }
    if (c == '\\') {
      w->saw_escape = true;
      if (i + 1 >= len)
        return fail(w, len, "unterminated string (opened at byte %zu)", q);
      switch (s[i + 1]) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        i += 2;
        continue;
      case 'u':
        break;
      default: {
        char buf[16];
        return fail(w, i, "invalid escape: backslash followed by %s",
                    describe(w, i + 1, buf, sizeof buf));
      }
      }
      long cp = hex4(s + i + 2, len - i - 2);
      if (cp < 0)
        return fail(w, i, "invalid \\u escape: expected 4 hex digits");
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(w, i, "lone low surrogate \\u%04lX in string", cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = -1;
        if (i + 7 < len && s[i + 6] == '\\' && s[i + 7] == 'u')
          lo = hex4(s + i + 8, len - i - 8);
        if (lo < 0xDC00 || lo > 0xDFFF)
          return fail(w, i,
                      "lone high surrogate \\u%04lX in string (no low "
                      "surrogate escape follows)",
                      cp);
        i += 12;
      } else {
        i += 6;
      }
      continue;
    }
    if (c < 0x20)
      return fail(w, i,
                  "control character 0x%02X in string must be escaped", c);
    if (c >= 0x80) {
      uint32_t cp;
      const char *why = "invalid UTF-8";
      size_t n = tt_utf8_decode((const unsigned char *)s + i, len - i, &cp,
                                &why);
      if (!n)
        return fail(w, i, "%s (byte 0x%02X) in string", why, c);
      i += n;
      continue;
    }
    i++;
  }
}

static inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Whether byte i may follow a number or a literal. */
static inline bool ends_scalar(const walker *w, size_t i) {
  if (i >= w->len)
    return true;
  char c = w->s[i];
  return is_ws(c) || c == ',' || c == ']' || c == '}';
}

static bool scan_number(walker *w) {
  const char *s = w->s;
  size_t len = w->len, start = w->pos, i = start;
  if (s[i] == '-')
    i++;
  if (i >= len || !is_digit(s[i]))
    return fail(w, i, "expected a digit after '-'");
  if (s[i] == '0') {
    i++;
    if (i < len && is_digit(s[i]))
      return fail(w, start, "leading zero in number");
  } else {
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (i < len && s[i] == '.') {
    i++;
    if (i >= len || !is_digit(s[i]))
      return fail(w, i, "expected a digit after the decimal point");
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      i++;
    if (i >= len || !is_digit(s[i]))
      return fail(w, i, "expected a digit in the exponent");
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (!ends_scalar(w, i)) {
    char buf[16];
    return fail(w, i, "unexpected %s after number",
                describe(w, i, buf, sizeof buf));
  }
  w->pos = i;
  return true;
}

static bool scan_literal(walker *w) {
  static const char *const words[] = {"true", "false", "null"};
  const char *s = w->s + w->pos;
  size_t avail = w->len - w->pos;
  for (size_t k = 0; k < 3; k++) {
    size_t n = strlen(words[k]);
    if (avail >= n && memcmp(s, words[k], n) == 0 &&
        ends_scalar(w, w->pos + n)) {
      w->pos += n;
      return true;
    }
  }
  return fail(w, w->pos, "invalid literal (expected true, false or null)");
}

/* ---- Canonical strings ---- */

/* Rewrites the string literal s[q..w->pos), which has escapes, into the
 * compacted text the way tether_json_dump would write its value: escapes
 * only for '"', '\\' and control characters, every other character as
 * UTF-8. The raw text of a container is then exactly its serialization,
 * whether or not anyone has looked inside it. The result is never longer
 * than the literal: each escape it writes replaces one at least as long. */
static void canonicalize_string(walker *w, size_t q) {
  if (!w->dst)
    return;
  size_t end = w->pos;
  memcpy(w->dst + w->dlen, w->s + w->flush, q - w->flush);
  w->dlen += q - w->flush;
  size_t len = end - q - 2;
  char small[256];
  char *raw = len <= sizeof small ? small : tt_malloc(len);
  size_t ulen = tt_json_unescape(w->s + q + 1, len, raw);
  char *d = w->dst + w->dlen;
  size_t o = 0;
  d[o++] = '"';
  for (size_t i = 0; i < ulen; i++) {
    unsigned char c = (unsigned char)raw[i];
    if (c < 0x20 || c == '"' || c == '\\')
      o += tt_json_escape_char(c, d + o);
    else
      d[o++] = (char)c;
  }
  d[o++] = '"';
  if (raw != small)
    free(raw);
  w->dlen += o;
  w->shift += (end - q) - o;
  w->flush = end;
}

/* ---- The walk ---- */

typedef struct frame {
  uint32_t tok;
  uint32_t count;
  bool object;
  /* A 64-bit Bloom filter of the keys so far: a key whose bit is already
   * set makes the object a suspect of repeating a key, checked exactly
   * after the walk. Duplicates are rare, so the exact check rarely runs
   * and never on most objects. */
  bool suspect;
  uint64_t keys_seen;
} frame;

static uint64_t key_bit(const char *k, size_t len) {
  uint32_t h = (uint32_t)len * 0x9E3779B1u;
  if (len) {
    h ^= (uint8_t)k[0] * 0x85EBCA77u;
    h ^= (uint8_t)k[len - 1] * 0xC2B2AE3Du;
    h ^= (uint8_t)k[len / 2] * 0x27D4EB2Fu;
  }
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  return 1ull << (h >> 26);
}

/* Validates one JSON text (with surrounding whitespace) at w->s. A state
 * machine with an explicit stack, not recursion: nesting is bounded by
 * TETHER_JSON_MAX_DEPTH but the C stack of the calling thread may be
 * small. */
static bool walk(walker *w) {
  frame small[64];
  frame *st = small;
  size_t depth = 0;
  const char *s = w->s;
  bool ok = false;
  char buf[16];
  uint32_t t;
  size_t jend = 0;

  skip_ws(w);
value:
  if (w->pos >= w->len) {
    fail(w, w->pos,
         depth ? "unexpected end of input, expected a value"
               : "no JSON value in the input");
    goto out;
  }
  switch (s[w->pos]) {
  case '{':
  case '[': {
    bool object = s[w->pos] == '{';
    if (depth == TETHER_JSON_MAX_DEPTH) {
      fail(w, w->pos, "nesting deeper than %d levels",
           TETHER_JSON_MAX_DEPTH);
      goto out;
    }
    if (depth == sizeof small / sizeof *small) {
      st = tt_malloc(TETHER_JSON_MAX_DEPTH * sizeof *st);
      memcpy(st, small, sizeof small);
    }
    if (!claim_token(w, object ? JSMN_OBJECT : JSMN_ARRAY, &t, &jend))
      goto out;
    st[depth++] = (frame){t, 0, object, false, 0};
    w->pos++;
    skip_ws(w);
    if (w->pos < w->len && s[w->pos] == (object ? '}' : ']'))
      goto close;
    if (object)
      goto key;
    goto value;
  }
  case '"': {
    size_t q = w->pos;
    w->saw_escape = false;
    if (!claim_token(w, JSMN_STRING, &t, &jend) || !scan_string(w))
      goto out;
    /* jsmn's end is checked against the input, before the rewrite. */
    size_t in_end = w->pos - 1;
    if (w->saw_escape)
      canonicalize_string(w, q);
    if (!finish_token(w, t, jend, in_end))
      goto out;
    goto after_value;
  }
  case '-':
  case '0':
  case '1':
  case '2':
  case '3':
  case '4':
  case '5':
  case '6':
  case '7':
  case '8':
  case '9':
    if (!claim_token(w, JSMN_PRIMITIVE, &t, &jend) || !scan_number(w) ||
        !finish_token(w, t, jend, w->pos))
      goto out;
    goto after_value;
  case 't':
  case 'f':
  case 'n':
    if (!claim_token(w, JSMN_PRIMITIVE, &t, &jend) || !scan_literal(w) ||
        !finish_token(w, t, jend, w->pos))
      goto out;
    goto after_value;
  default:
    fail(w, w->pos, "expected a value, found %s",
         describe(w, w->pos, buf, sizeof buf));
    goto out;
  }

key:
  if (w->pos >= w->len || s[w->pos] != '"') {
    fail(w, w->pos, "expected a string as object key, found %s",
         describe(w, w->pos, buf, sizeof buf));
    goto out;
  }
  {
    size_t kstart = w->pos + 1;
    w->saw_escape = false;
    if (!claim_token(w, JSMN_STRING, &t, &jend) || !scan_string(w))
      goto out;
    size_t in_end = w->pos - 1;
    if (w->saw_escape)
      canonicalize_string(w, kstart - 1);
    if (!finish_token(w, t, jend, in_end))
      goto out;
    frame *f = &st[depth - 1];
    uint64_t bit = key_bit(s + kstart, in_end - kstart);
    /* Two spellings of one key ("a" and "\u0061") hash apart. */
    if ((f->keys_seen & bit) || w->saw_escape)
      f->suspect = true;
    f->keys_seen |= bit;
  }
  skip_ws(w);
  if (w->pos >= w->len || s[w->pos] != ':') {
    fail(w, w->pos, "expected ':' after object key, found %s",
         describe(w, w->pos, buf, sizeof buf));
    goto out;
  }
  w->pos++;
  skip_ws(w);
  goto value;

after_value:
  if (depth == 0)
    goto done;
  skip_ws(w);
  {
    frame *f = &st[depth - 1];
    char closer = f->object ? '}' : ']';
    f->count++;
    if (w->pos < w->len && s[w->pos] == ',') {
      w->pos++;
      skip_ws(w);
      if (w->pos < w->len && s[w->pos] == closer) {
        fail(w, w->pos, "trailing comma before '%c'", closer);
        goto out;
      }
      if (f->object)
        goto key;
      goto value;
    }
    if (w->pos < w->len && s[w->pos] == closer)
      goto close;
    if (w->pos >= w->len)
      fail(w, w->pos, "unexpected end of input, expected ',' or '%c'",
           closer);
    else
      fail(w, w->pos, "expected ',' or '%c' after %s, found %s", closer,
           f->object ? "object member" : "array element",
           describe(w, w->pos, buf, sizeof buf));
    goto out;
  }

close: {
  /* w->pos is at the closing bracket of st[depth - 1]. */
  frame *f = &st[--depth];
  w->pos++;
  if (f->tok != NO_TOKEN) {
    tt_tok *o = &w->out[f->tok];
    o->end = (uint32_t)(w->pos - w->shift);
    o->count = f->count;
    o->next = w->ti;
    if (f->suspect) {
      if (w->nsuspects == w->suspects_cap) {
        w->suspects_cap = w->suspects_cap ? w->suspects_cap * 2 : 16;
        w->suspects = tt_realloc(w->suspects,
                                 w->suspects_cap * sizeof *w->suspects);
      }
      w->suspects[w->nsuspects++] = f->tok;
    }
  }
  goto after_value;
}

done: {
  size_t end = w->pos;
  w->value_end = end;
  while (w->pos < w->len && is_ws(s[w->pos]))
    w->pos++;
  if (w->pos < w->len) {
    fail(w, w->pos, "unexpected %s after the JSON value",
         describe(w, w->pos, buf, sizeof buf));
    goto out;
  }
  if (w->dst) {
    memcpy(w->dst + w->dlen, s + w->flush, end - w->flush);
    w->dlen += end - w->flush;
    w->dst[w->dlen] = '\0';
  }
  ok = true;
}

out:
  if (st != small)
    free(st);
  return ok;
}

/* ---- Nesting ---- */

/* jsmn closes a container by following parent links up from the last
 * token, O(depth) per bracket, so a few megabytes of nested brackets
 * would keep it busy for hours. The depth is therefore checked before
 * jsmn runs. Returns the offset of the first bracket beyond
 * TETHER_JSON_MAX_DEPTH, or SIZE_MAX. Strings are skipped the way jsmn
 * skips them; whether the text is valid is not this function's concern. */
static size_t too_deep_at(const char *s, size_t len) {
  if (len <= TETHER_JSON_MAX_DEPTH)
    return SIZE_MAX;
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  size_t depth = 0, i = 0;
  while (i < len) {
    char c = s[i++];
    if (c == '[' || c == '{') {
      if (++depth > TETHER_JSON_MAX_DEPTH)
        return i - 1;
    } else if (c == ']' || c == '}') {
      if (depth)
        depth--;
    } else if (c == '"') {
      /* Most of a document is string contents: skip them eight bytes at
       * a time, stopping at a quote or a backslash. */
      for (;;) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (i + 8 <= len) {
          uint64_t x;
          memcpy(&x, s + i, 8);
          uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
          uint64_t m = (((q - ones) & ~q) | ((b - ones) & ~b)) & high;
          if (m) {
            i += (size_t)__builtin_ctzll(m) / 8;
            break;
          }
          i += 8;
        }
#endif
        if (i >= len)
          return SIZE_MAX;
        c = s[i++];
        if (c == '"')
          break;
        if (c == '\\')
          i++;
      }
    }
  }
  return SIZE_MAX;
}

/* ---- Tokenizing ---- */

typedef struct jsmn_run {
  jsmntok_t *toks;
  unsigned cap;
  bool heap;
  int rc;
  unsigned ntok;
} jsmn_run;

static void run_jsmn(const char *s, size_t len, jsmntok_t *stack_toks,
                     jsmn_run *r) {
  jsmn_parser p;
  jsmn_init(&p);
  r->toks = stack_toks;
  r->cap = STACK_TOKENS;
  r->heap = false;
  if (len / 4 > STACK_TOKENS) {
    /* Typical JSON has a token every 6 to 12 bytes; pages of the guess
     * that are never written are never touched either. */
    r->cap = (unsigned)(len / 6 + 16);
    r->toks = tt_malloc((size_t)r->cap * sizeof *r->toks);
    r->heap = true;
  }
  for (;;) {
    int rc = jsmn_parse(&p, s, len, r->toks, r->cap);
    if (rc != JSMN_ERROR_NOMEM) {
      r->rc = rc;
      break;
    }
    /* jsmn left its state at the token it could not store and resumes
     * from there. */
    unsigned cap = r->cap * 2;
    if (r->heap) {
      r->toks = tt_realloc(r->toks, (size_t)cap * sizeof *r->toks);
    } else {
      jsmntok_t *h = tt_malloc((size_t)cap * sizeof *h);
      memcpy(h, r->toks, (size_t)r->cap * sizeof *h);
      r->toks = h;
      r->heap = true;
    }
    r->cap = cap;
  }
  r->ntok = p.toknext;
}


/* ---- Duplicate keys ---- */

/* Whether the object at token tok really repeats a key. */
static bool repeats_key(const tt_json_text *t, uint32_t tok) {
  const tt_tok *toks = t->toks;
  uint32_t n = toks[tok].count;
  size_t nslots = 16;
  while (nslots < (size_t)n * 2)
    nslots *= 2;
  uint32_t *slots = tt_calloc(nslots, sizeof *slots);
  /* Keys with escapes are compared unescaped, in this arena. */
  tether_buf arena;
  tether_buf_init(&arena);
  typedef struct key {
    size_t off;
    size_t len;
    bool in_arena;
  } key;
  key *keys = tt_malloc(n * sizeof *keys);
  bool found = false;
  uint32_t j = tok + 1;
  for (uint32_t k = 0; k < n && !found; k++) {
    const char *p = t->text + toks[j].start + 1;
    size_t len = toks[j].end - toks[j].start - 2;
    keys[k] = (key){(size_t)(p - t->text), len, false};
    if (memchr(p, '\\', len)) {
      tether_buf_reserve(&arena, len);
      size_t ulen = tt_json_unescape(p, len, arena.data + arena.len);
      keys[k] = (key){arena.len, ulen, true};
      arena.len += ulen;
    }
    j = toks[j + 1].next;
  }
  for (uint32_t k = 0; k < n && !found; k++) {
    const char *p = (keys[k].in_arena ? arena.data : t->text) + keys[k].off;
    size_t mask = nslots - 1;
    for (size_t slot = tt_json_hash(p, keys[k].len) & mask;;
         slot = (slot + 1) & mask) {
      if (!slots[slot]) {
        slots[slot] = k + 1;
        break;
      }
      const key *o = &keys[slots[slot] - 1];
      const char *q = (o->in_arena ? arena.data : t->text) + o->off;
      if (o->len == keys[k].len && memcmp(p, q, o->len) == 0) {
        found = true;
        break;
      }
    }
  }
  free(keys);
  free(slots);
  tether_buf_free(&arena);
  return found;
}

/* ---- Parsing ---- */

/* A document that is a single scalar has no structure to tokenize: it is
 * validated and built directly. */
static tether_json *parse_scalar(const char *text, size_t len,
                                 tether_json_error *err) {
  walker w = {.s = text, .len = len, .follow = false, .err = err};
  if (!walk(&w))
    return NULL;
  size_t start = 0;
  while (is_ws(text[start]))
    start++;
  return tt_json_build_scalar(text + start, w.value_end - start);
}

tether_json *tether_json_parse(const char *text, size_t len,
                               tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  err->offset = 0;
  err->op = -1;
  err->message[0] = '\0';
  if (!text && len) {
    tt_json_set_error(err, 0, -1, "invalid JSON at byte 0: no input");
    return NULL;
  }
  if (len >= INT_MAX) {
    tt_json_set_error(err, 0, -1,
                      "invalid JSON at byte 0: input of %zu bytes is too "
                      "large (the limit is %d bytes)",
                      len, INT_MAX - 1);
    return NULL;
  }
  if (!text)
    text = "";
  size_t first = 0;
  while (first < len && is_ws(text[first]))
    first++;
  if (first == len || (text[first] != '{' && text[first] != '['))
    return parse_scalar(text, len, err);

  /* Too deep: validate only up to the offending bracket, so that an
   * earlier error is still reported first. */
  size_t deep = too_deep_at(text, len);
  size_t scan_len = deep == SIZE_MAX ? len : deep + 1;

  jsmntok_t stack_toks[STACK_TOKENS];
  jsmn_run r;
  run_jsmn(text, scan_len, stack_toks, &r);

  /* The text, its tokens and their header share one allocation while
   * that stays below the size from which malloc starts consolidating its
   * free lists (1 KiB): a state file replay parses a hundred thousand
   * small texts, and that consolidation would be a good part of its
   * time. */
  size_t ntok = r.ntok ? r.ntok : 1;
  size_t toks_bytes = ntok * sizeof(tt_tok);
  bool toks_inline = !r.heap && sizeof(tt_json_text) + toks_bytes <= 1000;
  bool text_inline =
      toks_inline && sizeof(tt_json_text) + toks_bytes + scan_len < 1000;
  tt_json_text *t = tt_malloc(sizeof *t + (toks_inline ? toks_bytes : 0) +
                              (text_inline ? scan_len + 1 : 0));
  if (toks_inline)
    t->toks = (tt_tok *)(void *)(t + 1);
  else if (r.heap)
    t->toks = (tt_tok *)(void *)r.toks;
  else
    t->toks = tt_malloc(toks_bytes);
  t->text = text_inline ? (char *)(t->toks + ntok) : tt_malloc(scan_len + 1);
  t->own_toks = !toks_inline;
  t->own_text = !text_inline;
  atomic_init(&t->refs, 1);
  t->dups = false;

  walker w = {.s = text,
              .len = scan_len,
              .jt = r.toks,
              .njt = r.ntok,
              .jsmn_ok = r.rc >= 0,
              .follow = true,
              .out = t->toks,
              .dst = t->text,
              .err = err};
  bool ok = walk(&w);
  if (ok && deep != SIZE_MAX)
    ok = fail(&w, deep, "nesting deeper than %d levels",
              TETHER_JSON_MAX_DEPTH);
  if (ok && (!w.jsmn_ok || w.ti != r.ntok))
    ok = fail(&w, w.pos, "tokenizer disagrees with the validator");
  if (!ok) {
    free(w.suspects);
    tt_json_text_unref(t);
    return NULL;
  }
  t->ntok = r.ntok;
  t->len = w.dlen;
  if (r.heap)
    t->toks = tt_realloc(t->toks, ntok * sizeof *t->toks);
  if (t->own_text && t->len < scan_len / 2)
    t->text = tt_realloc(t->text, t->len + 1);
  for (size_t i = 0; i < w.nsuspects && !t->dups; i++)
    t->dups = repeats_key(t, w.suspects[i]);
  free(w.suspects);

  /* The root takes over the reference the text was created with. */
  return tt_json_new_raw(t->text[0] == '{' ? TETHER_JSON_OBJECT
                                           : TETHER_JSON_ARRAY,
                         t, 0);
}
