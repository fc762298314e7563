/*
 * json_parse.c: JSON text to values. jsmn tokenizes, compiled once here in
 * strict mode with parent links; a validation pass of our own then walks
 * the text and jsmn's tokens together and enforces RFC 8259, which jsmn
 * alone does not (it accepts "[1 2]", "[01]", bare control characters and
 * more). The walk checks every byte itself: the gaps between tokens
 * (whitespace, and exactly the ',' and ':' the grammar wants there), the
 * strings (escapes, UTF-8, control characters), numbers, literals and
 * nesting, and each token jsmn produced must start, end and be of the kind
 * the walk finds there. The same pass drops insignificant whitespace and
 * turns jsmn's tokens into the compact index that lazy materialization
 * uses (json_internal.h). Building values from the result is
 * json_build.c's part.
 *
 * jsmn works in a small window of tokens that the walk drains: when the
 * window is full, jsmn stops (JSMN_ERROR_NOMEM), the walk takes what it
 * holds, and the window is compacted down to the tokens jsmn still looks
 * at (the chain of parents of its last token), after which jsmn resumes
 * where it stopped. jsmn's own tokens (20 bytes each) therefore never take
 * more than the window, whatever the size of the text, and jsmn never runs
 * more than one window ahead of the walk, so the walk's nesting limit
 * bounds how long jsmn spends following parent links when it closes
 * brackets.
 *
 * When jsmn gives up early (it stops at the first error, or at a NUL
 * byte), the walk keeps validating without tokens, so the error reported
 * is always the first one in the text, with its offset. A text the walk
 * accepts but jsmn does not, or tokenizes differently, is rejected.
 *
 * A document that is a single scalar has no structure to tokenize, and
 * jsmn in strict mode cannot tokenize a number or literal that ends the
 * input: the walk validates it alone and it is built directly.
 *
 * A large text gets no token index when parsed: most large texts are
 * passed on or printed whole (a state_read answer), and an index costs
 * more memory than the text itself. Its index is built by the same
 * tokenizer and walk over its compact text when something first looks
 * inside (tt_json_text_index); what the index would have shown at once,
 * an object repeating a key, is found from a log of the keys instead.
 * Its parse is the walk alone, which checks every byte by itself: jsmn
 * reads such a text when its index is built, once, rather than also here
 * only to agree with the walk (half of the parse of a state_read answer).
 *
 * The walk builds the token index by itself, so a reader that parses
 * many small texts where the parse is the cost can skip jsmn's agreeing
 * pass altogether: tt_json_parse_walked, which tether-local's state file
 * replay uses. Apart from jsmn's agreement, it accepts, refuses and
 * reports exactly what tether_json_parse does (a unit test compares the
 * two on the tables and the fuzzers' inputs).
 */
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#define JSMN_STATIC
#include <jsmn.h>

#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json_internal.h"
#include "util.h"

/* Tokens and compacted text of inputs up to these sizes are built in
 * buffers on the stack and then copied into one allocation: most
 * protocol messages and state file events are small. */
#define STACK_TOKENS 256
#define STACK_TEXT 1024

/* What is parsed shares allocations while they stay below this size:
 * malloc serves smaller ones from per-thread caches, larger ones by a
 * slower path that also consolidates its free lists (from 1 KiB on). A
 * state file replay parses a hundred thousand small texts, and that path
 * would be a good part of its time. */
#define SMALL_ALLOC 1000

/* A text parsed by the walk alone (tt_json_parse_walked: a state file
 * event, about a kilobyte with its tokens) is one allocation with its
 * root up to this size, where SMALL_ALLOC would make it three: its
 * reader frees each text soon after parsing it, and one larger
 * allocation costs less than three (2% of a replay's instructions). */
#define WALKED_HOME_MAX 4096

/* Texts from this size on wait for their token index (see above). */
#define LAZY_INDEX_MIN (64u * 1024u)

/* ---- The validation pass ---- */

/* The literal of an object's key, without its quotes, as the compacted
 * text has it: two keys are the same exactly when their literals are,
 * since the compacted text writes every string one way. */
typedef struct key_span {
  const char *p;
  uint32_t len;
  uint32_t hash; /* tt_json_hash of the key, where keys_repeat says */
} key_span;

typedef struct walker {
  const char *s;
  size_t len;
  size_t pos;
  /* jsmn's tokens: the window jt[0..jp.toknext) of jcap tokens, of which
   * the walk has taken those before ti. jrc is what jsmn_parse last
   * returned: JSMN_ERROR_NOMEM while it has more to give. follow is
   * cleared when the tokens run out or stop agreeing with the text, and
   * disagree_at then records where, unless jsmn had reported an error
   * (which the walk finds for itself). */
  jsmn_parser jp;
  jsmntok_t *jt;
  unsigned jcap;
  unsigned ti;
  int jrc;
  bool follow;
  bool jt_heap; /* jt is the large window, a heap allocation */
  size_t disagree_at;
  /* Output: the token index (NULL when none is built: a document that is
   * a single scalar, or a large text) and the compacted text (NULL for a
   * single scalar). out starts in the caller's buffer of cap tokens. */
  tt_tok *out;
  uint32_t ntok, cap;
  bool out_heap; /* out has been moved to the heap */
  char *dst;
  size_t dlen;
  size_t flush; /* first input byte not yet copied to dst */
  size_t shift; /* whitespace bytes dropped so far */
  size_t value_end; /* where the top-level value ends */
  /* dst is the input's own buffer, at or before s (see Parsing in place
   * below): the compacted text overwrites input the walk has read. */
  bool in_place;
  /* Elements or members of the container closed last: after the walk,
   * the root's. */
  uint32_t root_count;
  /* Objects that may repeat a key (see frame.keys_seen), by token. */
  uint32_t *suspects;
  size_t nsuspects, suspects_cap;
  /* Without a token index: the keys of the objects being walked, each
   * object's after its parent's, and whether some object repeated one. */
  key_span *keys;
  size_t nkeys, keys_cap;
  bool dups;
  /* Streaming (see Validating while a text arrives): the frames, kept
   * between calls, where the walk resumes, and whether the text is its
   * own compacted text so far (no whitespace dropped, no string to
   * rewrite: useless is set when it is not). final when the whole text
   * is there. */
  struct frame *frames;
  struct checkpoint *ck;
  bool final;
  bool useless;
  tether_json_error *err;
} walker;

static void set_error(walker *w, size_t offset, const char *fmt,
                      va_list ap) {
  if (!w->err)
    return;
  char what[200];
  vsnprintf(what, sizeof what, fmt, ap);
  tt_json_set_error(w->err, offset, -1, "invalid JSON at byte %zu: %s",
                    offset, what);
}

TETHER_PRINTF(3, 4)
static bool fail(walker *w, size_t offset, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(w, offset, fmt, ap);
  va_end(ap);
  return false;
}

/* The same for the scanners, which return the offset where they stop:
 * 0, where no scan ever stops, means they failed. */
TETHER_PRINTF(3, 4)
static size_t fail_at(walker *w, size_t offset, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(w, offset, fmt, ap);
  va_end(ap);
  return 0;
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

/* Copies the input from w->flush up to pos, which needs no rewriting, to
 * the end of the compacted text. In place the two may overlap, and when
 * nothing has been dropped yet they are the same bytes: nothing moves. */
static inline void flush_to(walker *w, size_t pos) {
  char *to = w->dst + w->dlen;
  const char *from = w->s + w->flush;
  size_t n = pos - w->flush;
  if (to != from)
    memmove(to, from, n);
  w->dlen += n;
  w->flush = pos;
}

/* A stream meets whitespace: it validates compact texts only, so it
 * stops here, at once, rather than walk on to no avail (see
 * checkpoint). A call of its own: inlined, it costs the other walks a
 * few percent more instructions (the compiler then lays them out
 * otherwise). */
__attribute__((noinline)) static size_t stream_stops(walker *w, size_t pos) {
  w->useless = true;
  return pos;
}

/* Skips the whitespace at pos of s (w's input, of len bytes: the walk
 * passes them from its registers), dropping it from the compacted text;
 * returns where it ends. Inlined into every walk, by force: the compiler
 * would otherwise make it a call once the walks are four. */
__attribute__((always_inline)) static inline size_t
skip_ws_in(walker *w, const char *s, size_t len, size_t pos) {
  /* Every byte that may follow is above ' ', whitespace is not: most
   * calls, on compact input all, end at this one test. */
  if (pos >= len || (unsigned char)s[pos] > ' ')
    return pos;
  size_t start = pos;
  while (pos < len && is_ws(s[pos]))
    pos++;
  if (pos == start)
    return pos;
  if (w->ck)
    return stream_stops(w, start);
  if (w->dst)
    flush_to(w, start);
  w->flush = pos;
  w->shift += pos - start;
  return pos;
}

/* ---- Tokens ---- */

#define NO_TOKEN UINT32_MAX

static void grow_tokens(walker *w) {
  if (w->cap > UINT32_MAX / 2)
    tt_oom();
  uint32_t cap = w->cap * 2;
  if (w->out_heap) {
    w->out = tt_realloc(w->out, (size_t)cap * sizeof *w->out);
  } else {
    tt_tok *h = tt_malloc((size_t)cap * sizeof *h);
    memcpy(h, w->out, (size_t)w->ntok * sizeof *h);
    w->out = h;
    w->out_heap = true;
  }
  w->cap = cap;
}

/* A new token for the value starting at input offset pos; its end,
 * count and next are filled in once known. Only for a walk that builds
 * the index (w->out is set): the walk asks only then. */
static inline uint32_t new_token(walker *w, size_t pos) {
  if (w->ntok == w->cap)
    grow_tokens(w);
  uint32_t i = w->ntok++;
  w->out[i] = (tt_tok){(uint32_t)(pos - w->shift), 0, 0, i + 1};
  return i;
}

/* Records the end of a scalar token: input offset pos. */
static inline void finish_token(walker *w, uint32_t idx, size_t pos) {
  w->out[idx].end = (uint32_t)(pos - w->shift);
}

static void push_suspect(walker *w, uint32_t v) {
  if (w->nsuspects == w->suspects_cap) {
    w->suspects_cap = w->suspects_cap ? w->suspects_cap * 2 : 16;
    w->suspects =
        tt_realloc(w->suspects, w->suspects_cap * sizeof *w->suspects);
  }
  w->suspects[w->nsuspects++] = v;
}

/* ---- jsmn's tokens ---- */

/* Tokens in the window jsmn fills, on the stack: enough for most protocol
 * messages and state file events in one call of jsmn_parse. */
#define JSMN_WINDOW 256
/* The window once what jsmn still needs, a chain of parents with at most
 * two tokens per level of nesting (an object and the key whose value is
 * open), would take more than half of the small one: room for the deepest
 * chain the walk lets through and as many new tokens. */
#define JSMN_BIG_WINDOW (2 * (2 * TETHER_JSON_MAX_DEPTH + 8))

/* Notes that jsmn's tokens stopped agreeing with the text at offset pos:
 * the walk goes on without them, and rejects the text should it find
 * nothing wrong itself. */
static void disagree(walker *w, size_t pos) {
  w->follow = false;
  if (w->disagree_at == SIZE_MAX)
    w->disagree_at = pos;
}

/* Lets jsmn go on once the walk has taken every token of a full window.
 * Only the tokens jsmn reads again stay: the last one and its chain of
 * parents (closing a bracket follows the parent links up from the last
 * token; toksuper, the open container or key that takes the next value,
 * is on that chain). They move to the front of the window in their order,
 * their parent links are renumbered, and jsmn resumes where it stopped.
 * Returns whether new tokens came. */
__attribute__((noinline)) static bool refill(walker *w) {
  if (w->jrc != JSMN_ERROR_NOMEM || w->jp.toknext == 0)
    return false;
  jsmntok_t *jt = w->jt;
  /* Up the chain, turning the parent links into child links: the chain
   * is then walked down from its top, in the order the tokens had. */
  int cur = (int)w->jp.toknext - 1, prev = -1, super_up = -1;
  unsigned k = 0;
  while (cur != -1) {
    if (cur == w->jp.toksuper)
      super_up = (int)k;
    int up = jt[cur].parent;
    jt[cur].parent = prev;
    prev = cur;
    cur = up;
    k++;
  }
  if (w->jp.toksuper != -1 && super_up < 0)
    return false;
  jsmntok_t *to = jt;
  if (k > w->jcap / 2) {
    if (w->jt_heap)
      return false; /* deeper than the walk allows: it stops before */
    to = tt_malloc(JSMN_BIG_WINDOW * sizeof *to);
  }
  /* Token i of the chain lies at or after index i and before the tokens
   * after it in the chain, so copying front to back overwrites none of
   * those still to be copied. */
  for (unsigned i = 0; i < k; i++) {
    int down = jt[prev].parent;
    to[i] = jt[prev];
    to[i].parent = (int)i - 1;
    prev = down;
  }
  if (to != jt) {
    w->jt = to;
    w->jcap = JSMN_BIG_WINDOW;
    w->jt_heap = true;
  }
  w->jp.toknext = k;
  w->jp.toksuper = w->jp.toksuper == -1 ? -1 : (int)(k - 1) - super_up;
  w->ti = k;
  w->jrc = jsmn_parse(&w->jp, w->s, w->len, w->jt, w->jcap);
  return w->ti < w->jp.toknext;
}

/* Takes jsmn's next token for the value the walk finds at input offset
 * pos: it must be of the given type and start there (past the quote for
 * a string). Returns where jsmn says it ends, or SIZE_MAX when the walk
 * is not following jsmn (any more). It runs once per token, so it is
 * inlined into the walk, which then keeps its state in registers across
 * it; refilling the window, once per window, stays a call of its own so
 * that the inlined part is a few instructions. */
__attribute__((always_inline)) static inline size_t
claim(walker *w, const bool follow, jsmntype_t type, size_t pos) {
  if (!follow || !w->follow)
    return SIZE_MAX;
  if (w->ti == w->jp.toknext && !refill(w)) {
    disagree(w, pos);
    return SIZE_MAX;
  }
  const jsmntok_t *t = &w->jt[w->ti];
  if (t->type != type ||
      t->start != (int)(type == JSMN_STRING ? pos + 1 : pos)) {
    disagree(w, pos);
    return SIZE_MAX;
  }
  w->ti++;
  return (size_t)(unsigned)t->end;
}

/* Checks that jsmn ends a token where the walk does (input offset end). */
static inline void claim_end(walker *w, size_t jend, size_t end) {
  if (jend != end && jend != SIZE_MAX)
    disagree(w, end);
}

/* Starts jsmn on the walk's text, in the window on the caller's stack. */
static void start_jsmn(walker *w, jsmntok_t *window) {
  jsmn_init(&w->jp);
  w->jt = window;
  w->jcap = JSMN_WINDOW;
  w->jt_heap = false;
  w->ti = 0;
  w->follow = true;
  w->disagree_at = SIZE_MAX;
  w->jrc = jsmn_parse(&w->jp, w->s, w->len, w->jt, w->jcap);
}

/* After a walk that found the text valid: whether jsmn read it the same
 * way, every token taken and nothing left over, to its last byte. */
static bool jsmn_agrees(const walker *w) {
  return w->follow && w->jrc >= 0 && w->ti == w->jp.toknext &&
         w->jp.pos == w->len;
}

static void stop_jsmn(walker *w) {
  if (w->jt_heap)
    free(w->jt);
  w->jt = NULL;
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

/* Validates the string whose opening quote is at q; returns the offset
 * past its closing quote (0 on failure, with the error set), and sets
 * *escaped when it has a backslash; s and len are w's input, which the
 * walk passes from its registers. Runs of plain ASCII, most of any
 * document, are skipped sixteen or eight bytes at a time. Inlined at both
 * of its calls, so that the walk keeps its state in registers. */
__attribute__((always_inline)) static inline size_t
scan_string(walker *w, const char *s, size_t len, size_t q, bool *escaped) {
  size_t i = q + 1;
  for (;;) {
#if defined(__SSE2__)
    while (i + 16 <= len) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
      /* Bytes from 0x80 up compare below 0x20 as signed: non-ASCII is
       * flagged with the control characters. */
      __m128i m = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                       _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
          _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
      unsigned bits = (unsigned)_mm_movemask_epi8(m);
      if (bits) {
        i += (size_t)__builtin_ctz(bits);
        goto special;
      }
      i += 16;
    }
#endif
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
#if defined(__SSE2__)
  special:
#endif
    if (i >= len)
      return fail_at(w, len, "unterminated string (opened at byte %zu)", q);
    unsigned char c = (unsigned char)s[i];
    if (c == '"')
      return i + 1;
    if (c == '\\') {
      *escaped = true;
      if (i + 1 >= len)
        return fail_at(w, len, "unterminated string (opened at byte %zu)", q);
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
        return fail_at(w, i, "invalid escape: backslash followed by %s",
                       describe(w, i + 1, buf, sizeof buf));
      }
      }
      long cp = hex4(s + i + 2, len - i - 2);
      if (cp < 0)
        return fail_at(w, i, "invalid \\u escape: expected 4 hex digits");
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_at(w, i, "lone low surrogate \\u%04lX in string", cp);
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = -1;
        if (i + 7 < len && s[i + 6] == '\\' && s[i + 7] == 'u')
          lo = hex4(s + i + 8, len - i - 8);
        if (lo < 0xDC00 || lo > 0xDFFF)
          return fail_at(w, i,
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
      return fail_at(w, i,
                     "control character 0x%02X in string must be escaped", c);
    if (c >= 0x80) {
      uint32_t cp;
      const char *why = "invalid UTF-8";
      size_t n = tt_utf8_decode((const unsigned char *)s + i, len - i, &cp,
                                &why);
      if (!n)
        return fail_at(w, i, "%s (byte 0x%02X) in string", why, c);
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

/* Validates the number at start; returns the offset past it (0 on
 * failure). */
static size_t scan_number(walker *w, size_t start) {
  const char *s = w->s;
  size_t len = w->len, i = start;
  if (s[i] == '-')
    i++;
  if (i >= len || !is_digit(s[i]))
    return fail_at(w, i, "expected a digit after '-'");
  if (s[i] == '0') {
    i++;
    if (i < len && is_digit(s[i]))
      return fail_at(w, start, "leading zero in number");
  } else {
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (i < len && s[i] == '.') {
    i++;
    if (i >= len || !is_digit(s[i]))
      return fail_at(w, i, "expected a digit after the decimal point");
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      i++;
    if (i >= len || !is_digit(s[i]))
      return fail_at(w, i, "expected a digit in the exponent");
    while (i < len && is_digit(s[i]))
      i++;
  }
  if (!ends_scalar(w, i)) {
    char buf[16];
    return fail_at(w, i, "unexpected %s after number",
                   describe(w, i, buf, sizeof buf));
  }
  return i;
}

/* Validates the literal at pos; returns the offset past it (0 on
 * failure). */
static size_t scan_literal(walker *w, size_t pos) {
  static const char *const words[] = {"true", "false", "null"};
  const char *s = w->s + pos;
  size_t avail = w->len - pos;
  for (size_t k = 0; k < 3; k++) {
    size_t n = strlen(words[k]);
    if (avail >= n && memcmp(s, words[k], n) == 0 && ends_scalar(w, pos + n))
      return pos + n;
  }
  return fail_at(w, pos, "invalid literal (expected true, false or null)");
}

/* ---- Canonical strings ---- */

/* Rewrites the string literal s[q..end), which has escapes, into the
 * compacted text the way tether_json_dump would write its value: escapes
 * only for '"', '\\' and control characters, every other character as
 * UTF-8. The raw text of a container is then exactly its serialization,
 * whether or not anyone has looked inside it.
 *
 * The result is never longer than the literal, which parsing in place
 * relies on: the compacted text is never longer than the input before it
 * (dlen <= q), so in place the rewritten string ends at or before end and
 * never overwrites input the walk has yet to read. Each character the
 * result escapes (a quote, a backslash, a control character) cannot
 * appear bare in a valid literal, so the literal escapes it too: with the
 * same two-byte form where JSON has one (for the quote, the backslash, b,
 * f, n, r and t), which the result also writes, or with a six-byte \u00XX,
 * where the result writes two or, for a control character without a short
 * form, the same six. Every other character the result writes as UTF-8:
 * as the literal had it, or shorter than its escape (the escaped solidus
 * is two bytes for one, \uXXXX six for at most three, a surrogate pair
 * twelve for four). */
static void canonicalize_string(walker *w, size_t q, size_t end) {
  if (!w->dst)
    return;
  flush_to(w, q);
  assert(w->dlen <= q);
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
  assert(o <= end - q);
  if (raw != small)
    free(raw);
  w->dlen += o;
  w->shift += (end - q) - o;
  w->flush = end;
}

/* ---- Duplicate keys ---- */

/* Whether any two of keys[0..n), which have equal hashes in entries
 * (hash << 32 | index, sorted or grouped by hash) from i on, are the
 * same key. */
static bool same_hash_run_repeats(const key_span *keys, const uint64_t *e,
                                  size_t n, size_t i, size_t *run_end) {
  size_t j = i + 1;
  while (j < n && e[j] >> 32 == e[i] >> 32)
    j++;
  *run_end = j;
  for (size_t a = i; a < j; a++)
    for (size_t b = a + 1; b < j; b++) {
      const key_span *x = &keys[(uint32_t)e[a]], *y = &keys[(uint32_t)e[b]];
      if (x->len == y->len && memcmp(x->p, y->p, x->len) == 0)
        return true;
    }
  return false;
}

/* Whether two of the n keys are the same. Their hashes are sorted and
 * equal neighbours compared: for the tens of thousands of keys of a
 * state's resources, radix passes over a compact array beat probing a
 * hash table of that size at random. */
/* Keys of one object from this one on have their hash in the log when a
 * stream walked them (see keys_repeat). */
#define KEYS_DIRECT 32

/* Whether two of the n keys are the same. From KEYS_DIRECT on, keys
 * numbered hashed or more have their hash already: a stream computes
 * those of a large object as it logs them, while the key is in the
 * cache, instead of reading tens of thousands of keys spread over
 * megabytes again here, where the parse is waited for. */
static bool keys_repeat(const key_span *keys, size_t n, size_t hashed) {
  if (n <= KEYS_DIRECT) {
    /* A few keys are compared with each other directly. */
    for (size_t a = 0; a < n; a++)
      for (size_t b = a + 1; b < n; b++)
        if (keys[a].len == keys[b].len &&
            memcmp(keys[a].p, keys[b].p, keys[a].len) == 0)
          return true;
    return false;
  }
  uint64_t *e = tt_malloc(n * sizeof *e);
  uint64_t *tmp = tt_malloc(n * sizeof *tmp);
  for (size_t k = 0; k < n; k++)
    e[k] = (uint64_t)(k >= hashed ? keys[k].hash
                                  : tt_json_hash(keys[k].p, keys[k].len))
               << 32 |
           k;
  /* Least significant digit first, three digits of 11 bits: the 32
   * bits of the hash. */
  for (unsigned shift = 32; shift < 64; shift += 11) {
    size_t count[2048] = {0};
    for (size_t k = 0; k < n; k++)
      count[(e[k] >> shift) & 2047]++;
    size_t sum = 0;
    for (size_t d = 0; d < 2048; d++) {
      size_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (size_t k = 0; k < n; k++)
      tmp[count[(e[k] >> shift) & 2047]++] = e[k];
    uint64_t *swap = e;
    e = tmp;
    tmp = swap;
  }
  bool found = false;
  for (size_t i = 0, next; i < n && !found; i = next)
    found = same_hash_run_repeats(keys, e, n, i, &next);
  free(e);
  free(tmp);
  return found;
}

/* Whether the object at token tok of t really repeats a key. */
static bool repeats_key(const tt_json_text *t, uint32_t tok) {
  const tt_tok *toks = t->toks;
  uint32_t n = toks[tok].count;
  key_span *keys = tt_malloc((n ? n : 1) * sizeof *keys);
  for (uint32_t k = 0, j = tok + 1; k < n; k++) {
    keys[k] = (key_span){t->text + toks[j].start + 1,
                         toks[j].end - toks[j].start - 2, 0};
    j = toks[j + 1].next;
  }
  bool found = keys_repeat(keys, n, n);
  free(keys);
  return found;
}

/* ---- The walk ---- */

typedef struct frame {
  uint32_t tok;
  uint32_t count;
  uint32_t first_key; /* without a token index: its first key in keys[] */
  bool object;
  /* A 64-bit Bloom filter of the keys so far: a key whose bit is already
   * set makes the object a suspect of repeating a key, checked exactly
   * after the walk. Duplicates are rare, so the exact check rarely runs
   * and never on most objects. */
  bool suspect;
  uint64_t keys_seen;
} frame;

static inline uint64_t key_bit(const char *k, size_t len) {
  /* Length and three bytes tell the keys of one object apart well
   * enough, with one multiplication: this runs for every key. */
  uint32_t h = (uint32_t)len;
  if (len)
    h = h << 24 ^ (uint32_t)(uint8_t)k[0] << 16 ^
        (uint32_t)(uint8_t)k[len / 2] << 8 ^ (uint8_t)k[len - 1];
  return 1ull << ((h * 0x9E3779B1u) >> 26);
}

/* ---- Validating while a text arrives ---- */

/*
 * A large message (a state_read answer of tens of megabytes) takes as
 * long to arrive as to parse, and parsing it only once it is all there
 * puts the two one after the other. The walk can instead take the text
 * as far as it has come and go on from there when more arrives: it
 * stops where the text ends, and resumes from a checkpoint, the walk's
 * whole state at the end of a value (after_value): its frames, its
 * position and its key log. Each checkpoint is taken some bytes after
 * the last (CK_STRIDE), so what is walked twice is little.
 *
 * Where the text ends, the walk fails, just as it does on a text cut
 * short: within CUT_MAX bytes of the end (a cut inside a token, such as
 * a \u escape or a UTF-8 sequence, is reported at the token's start).
 * A failure before that is a real one: the stream stops there, and the
 * final parse of the whole text reports it. A number or a literal that
 * reaches the end may be cut short without failing, so no checkpoint is
 * taken right after one.
 *
 * The text is not compacted while it arrives: it is validated where it
 * lies, and it must be compact already (no whitespace between tokens,
 * every string as tether_json_dump writes it: what tether's providers
 * send). Then the walk over the rest of the text, once all of it is
 * there, is all the parse has left to do. Otherwise (useless) the
 * stream stops, and the whole text is parsed in place as before.
 */
typedef struct checkpoint {
  bool valid;
  size_t pos, depth, nkeys;
  uint32_t root_count;
  bool dups;
  frame frames[TETHER_JSON_MAX_DEPTH];
} checkpoint;

#define CK_STRIDE (16u << 10)
#define CUT_MAX 16
/* The tests take a checkpoint at every value. */
static size_t ck_stride = CK_STRIDE;

void tt_json_stream_set_stride(size_t bytes) {
  ck_stride = bytes ? bytes : CK_STRIDE;
}

/* At the end of a value at pos (after_value), with depth frames open:
 * takes a checkpoint when it is time, and always when the key log has
 * lost keys the last one counts on (an object open then has closed). */
static void checkpoint_at(walker *w, const frame *st, size_t depth,
                          size_t pos) {
  checkpoint *c = w->ck;
  /* A value that reaches the end of what has come may not be whole,
   * unless it ends with its own closing quote or bracket. */
  char last = pos > 0 ? w->s[pos - 1] : 0;
  bool whole = pos < w->len || last == '"' || last == '}' || last == ']';
  bool lost = c->valid && w->nkeys < c->nkeys;
  if (!whole) {
    if (lost)
      c->valid = false;
    return;
  }
  if (c->valid && !lost && pos < c->pos + ck_stride)
    return;
  c->valid = true;
  c->pos = pos;
  c->depth = depth;
  memcpy(c->frames, st, depth * sizeof *st);
  c->nkeys = w->nkeys;
  c->root_count = w->root_count;
  c->dups = w->dups;
}

/* Whether the string literal s[q..end) with escapes is written as
 * tether_json_dump writes its value (canonicalize_string): escapes only
 * for '"', '\\' and control characters, each in its one form. */
static bool canonical_literal(const char *s, size_t q, size_t end) {
  for (size_t i = q + 1; i + 1 < end; i++) {
    if (s[i] != '\\')
      continue;
    long c;
    size_t n = 2;
    switch (s[i + 1]) {
    case 'b':
      c = '\b';
      break;
    case 'f':
      c = '\f';
      break;
    case 'n':
      c = '\n';
      break;
    case 'r':
      c = '\r';
      break;
    case 't':
      c = '\t';
      break;
    case 'u':
      c = hex4(s + i + 2, 4);
      n = 6;
      break;
    default:
      c = (unsigned char)s[i + 1];
      break;
    }
    if (c < 0 || (c >= 0x20 && c != '"' && c != '\\'))
      return false;
    char want[6];
    if (tt_json_escape_char((unsigned char)c, want) != n ||
        memcmp(want, s + i, n) != 0)
      return false;
    i += n - 1;
  }
  return true;
}

/* Validates one JSON text (with surrounding whitespace) at w->s. A state
 * machine with an explicit stack, not recursion: nesting is bounded by
 * TETHER_JSON_MAX_DEPTH but the C stack of the calling thread may be
 * small. */
__attribute__((always_inline)) static inline bool
walk_as(walker *w, const bool follow, const bool tokens, const bool partial) {
  frame small[64];
  /* Streaming keeps its frames between calls (see checkpoint). */
  frame *st = partial ? w->frames : small;
  size_t depth = 0;
  const char *s = w->s;
  const size_t len = w->len;
  /* The position lives here, not in w, so that it stays in a register;
   * the helpers take it and return the next one. */
  size_t pos;
  bool ok = false;
  bool escaped;
  char buf[16];
  uint32_t t;
  size_t next, jend;
  if (partial) {
    const checkpoint *c = w->ck;
    w->useless = false;
    w->shift = 0;
    if (c->valid) {
      depth = c->depth;
      memcpy(st, c->frames, depth * sizeof *st);
      w->nkeys = c->nkeys;
      w->root_count = c->root_count;
      w->dups = c->dups;
      pos = c->pos;
      goto after_value;
    }
    w->nkeys = 0;
    w->root_count = 0;
    w->dups = false;
    w->pos = 0;
  }
  pos = skip_ws_in(w, s, len, w->pos);

value:
  if (pos >= len) {
    fail(w, pos,
         depth ? "unexpected end of input, expected a value"
               : "no JSON value in the input");
    goto out;
  }
  switch (s[pos]) {
  case '{':
  case '[': {
    bool object = s[pos] == '{';
    if (depth == TETHER_JSON_MAX_DEPTH) {
      fail(w, pos, "nesting deeper than %d levels", TETHER_JSON_MAX_DEPTH);
      goto out;
    }
    if (!partial && depth == sizeof small / sizeof *small) {
      st = tt_malloc(TETHER_JSON_MAX_DEPTH * sizeof *st);
      memcpy(st, small, sizeof small);
    }
    claim(w, follow, object ? JSMN_OBJECT : JSMN_ARRAY, pos);
    t = tokens ? new_token(w, pos) : NO_TOKEN;
    st[depth++] = (frame){t, 0, (uint32_t)w->nkeys, object, false, 0};
    pos = skip_ws_in(w, s, len, pos + 1);
    if (pos < len && s[pos] == (object ? '}' : ']'))
      goto close;
    if (object)
      goto key;
    goto value;
  }
  case '"':
    escaped = false;
    jend = claim(w, follow, JSMN_STRING, pos);
    t = tokens ? new_token(w, pos) : NO_TOKEN;
    if (!(next = scan_string(w, s, len, pos, &escaped)))
      goto out;
    claim_end(w, jend, next - 1);
    if (partial && escaped && !canonical_literal(s, pos, next)) {
      w->useless = true;
      goto out;
    }
    if (escaped)
      canonicalize_string(w, pos, next);
    pos = next;
    if (tokens)
      finish_token(w, t, pos);
    goto after_value;
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
    jend = claim(w, follow, JSMN_PRIMITIVE, pos);
    t = tokens ? new_token(w, pos) : NO_TOKEN;
    if (!(pos = scan_number(w, pos)))
      goto out;
    claim_end(w, jend, pos);
    if (tokens)
      finish_token(w, t, pos);
    goto after_value;
  case 't':
  case 'f':
  case 'n':
    jend = claim(w, follow, JSMN_PRIMITIVE, pos);
    t = tokens ? new_token(w, pos) : NO_TOKEN;
    if (!(pos = scan_literal(w, pos)))
      goto out;
    claim_end(w, jend, pos);
    if (tokens)
      finish_token(w, t, pos);
    goto after_value;
  default:
    fail(w, pos, "expected a value, found %s", describe(w, pos, buf, sizeof buf));
    goto out;
  }

key:
  if (pos >= len || s[pos] != '"') {
    fail(w, pos, "expected a string as object key, found %s",
         describe(w, pos, buf, sizeof buf));
    goto out;
  }
  {
    size_t kstart = pos + 1, shift = w->shift;
    escaped = false;
    jend = claim(w, follow, JSMN_STRING, pos);
    t = tokens ? new_token(w, pos) : NO_TOKEN;
    if (!(next = scan_string(w, s, len, pos, &escaped)))
      goto out;
    size_t in_end = next - 1;
    claim_end(w, jend, in_end);
    if (partial && escaped && !canonical_literal(s, pos, next)) {
      w->useless = true;
      goto out;
    }
    /* Read before a rewrite, which in place overwrites the input. */
    uint64_t bit = key_bit(s + kstart, in_end - kstart);
    if (escaped)
      canonicalize_string(w, pos, next);
    pos = next;
    if (tokens)
      finish_token(w, t, pos);
    if (!tokens && (w->dst || partial) && !w->dups) {
      /* The literal as the compacted text has it: a rewritten one is
       * there already, any other is the input's, which in place is
       * overwritten when something before it was dropped: there the key
       * is found where the compacted text will have it (see close). */
      if (w->nkeys == w->keys_cap) {
        w->keys_cap = w->keys_cap ? w->keys_cap * 2 : 64;
        w->keys = tt_realloc(w->keys, w->keys_cap * sizeof *w->keys);
      }
      size_t klen = pos - w->shift - 1 - (kstart - shift);
      key_span *k = &w->keys[w->nkeys++];
      k->p = !partial && (escaped || w->in_place) ? w->dst + (kstart - shift)
                                                  : s + kstart;
      k->len = (uint32_t)klen;
      if (partial && st[depth - 1].count >= KEYS_DIRECT)
        k->hash = tt_json_hash(k->p, klen);
    }
    frame *f = &st[depth - 1];
    /* Two spellings of one key ("a" and "\u0061") hash apart. */
    if ((f->keys_seen & bit) || escaped)
      f->suspect = true;
    f->keys_seen |= bit;
  }
  pos = skip_ws_in(w, s, len, pos);
  if (pos >= len || s[pos] != ':') {
    fail(w, pos, "expected ':' after object key, found %s",
         describe(w, pos, buf, sizeof buf));
    goto out;
  }
  pos = skip_ws_in(w, s, len, pos + 1);
  goto value;

after_value:
  if (depth == 0)
    goto done;
  if (partial) {
    if (w->shift) {
      w->useless = true;
      goto out;
    }
    if (!w->final)
      checkpoint_at(w, st, depth, pos);
  }
  pos = skip_ws_in(w, s, len, pos);
  {
    frame *f = &st[depth - 1];
    char closer = f->object ? '}' : ']';
    f->count++;
    if (pos < len && s[pos] == ',') {
      pos = skip_ws_in(w, s, len, pos + 1);
      if (pos < len && s[pos] == closer) {
        fail(w, pos, "trailing comma before '%c'", closer);
        goto out;
      }
      if (f->object)
        goto key;
      goto value;
    }
    if (pos < len && s[pos] == closer)
      goto close;
    if (pos >= len)
      fail(w, pos, "unexpected end of input, expected ',' or '%c'", closer);
    else
      fail(w, pos, "expected ',' or '%c' after %s, found %s", closer,
           f->object ? "object member" : "array element",
           describe(w, pos, buf, sizeof buf));
    goto out;
  }

close: {
  /* pos is at the closing bracket of st[depth - 1]. */
  frame *f = &st[--depth];
  pos++;
  w->root_count = f->count;
  if (tokens && f->tok != NO_TOKEN) {
    tt_tok *o = &w->out[f->tok];
    o->end = (uint32_t)(pos - w->shift);
    o->count = f->count;
    o->next = w->ntok;
    if (f->suspect)
      push_suspect(w, f->tok);
  } else if ((w->dst || partial) && !w->dups) {
    /* Its keys are the last ones logged: checked now and let go. In
     * place they are read from the compacted text, complete up to here
     * once what is pending is flushed. */
    if (f->suspect) {
      if (w->in_place)
        flush_to(w, pos);
      w->dups = keys_repeat(w->keys + f->first_key, w->nkeys - f->first_key,
                            partial ? KEYS_DIRECT : SIZE_MAX);
    }
    w->nkeys = f->first_key;
  }
  goto after_value;
}

done: {
  size_t end = pos;
  w->value_end = end;
  while (pos < len && is_ws(s[pos]))
    pos++;
  if (pos < len) {
    fail(w, pos, "unexpected %s after the JSON value",
         describe(w, pos, buf, sizeof buf));
    goto out;
  }
  if (w->dst) {
    flush_to(w, end);
    w->dst[w->dlen] = '\0';
  }
  ok = true;
}

out:
  w->pos = pos;
  if (!partial && st != small)
    free(st);
  return ok;
}

/* The walk, in the three forms it takes: following jsmn's tokens and
 * building the index, building the index alone, and neither (a single
 * scalar, a large text, an index built later). Each is compiled on its
 * own, without the tests for what it does not do: the walk runs them for
 * every token. */
static bool walk_following(walker *w) {
  assert(w->out);
  return walk_as(w, true, true, false);
}
static bool walk_indexing(walker *w) {
  assert(w->out);
  return walk_as(w, false, true, false);
}
static bool walk_validating(walker *w) {
  return walk_as(w, false, false, false);
}
static bool walk_streaming(walker *w) {
  return walk_as(w, false, false, true);
}

static bool walk(walker *w) {
  if (w->follow)
    return walk_following(w);
  return w->out ? walk_indexing(w) : walk_validating(w);
}

/* Walks w's text following jsmn's tokens (start_jsmn has run), and lets
 * go of jsmn's window. */
static bool walk_tokens(walker *w) {
  bool ok = walk(w);
  if (ok && !jsmn_agrees(w))
    ok = fail(w, w->disagree_at != SIZE_MAX ? w->disagree_at : w->pos,
              "tokenizer disagrees with the validator");
  stop_jsmn(w);
  return ok;
}

/* ---- Parsing ---- */

/* Validates w's text: following jsmn's tokens when tokenize is set
 * (start_jsmn, walk_tokens), else by the walk alone, which checks every
 * byte by itself. A large text is tokenized once, when its index is built
 * (tt_json_text_index), not also here: most large texts are passed on or
 * printed whole, and jsmn's pass would be half of their parse for
 * nothing. */
static bool validate(walker *w, jsmntok_t *window, bool tokenize) {
  if (tokenize) {
    start_jsmn(w, window);
    return walk_tokens(w);
  }
  w->follow = false;
  w->disagree_at = SIZE_MAX;
  return walk(w);
}

/* A buffer for the compacted copy of a large input. Written once, front
 * to back, it costs a page fault every 4 KiB, as much as the copying
 * itself; in huge pages, where the system offers them to those who ask,
 * it costs a few. */
static char *large_buffer(size_t n) {
  char *p = tt_malloc(n);
#if defined(MADV_HUGEPAGE)
  if (n >= (4u << 20)) {
    /* All of it, whole pages: advice on part of a mapping splits it. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t at = (uintptr_t)p, from = at & ~(page - 1);
    (void)madvise((void *)from, at + n - from, MADV_HUGEPAGE);
  }
#endif
  return p;
}

/* A document that is a single scalar has no structure to tokenize: it is
 * validated and built directly. */
static tether_json *parse_scalar(const char *text, size_t len,
                                 tether_json_error *err) {
  walker w = {.s = text, .len = len, .err = err};
  if (!walk(&w))
    return NULL;
  size_t start = 0;
  while (is_ws(text[start]))
    start++;
  return tt_json_build_scalar(text + start, w.value_end - start);
}

/* The text of a validated walk, in as few allocations as its size
 * allows: header, tokens and text share one while that stays below
 * SMALL_ALLOC. */
static tt_json_text *finish_text(walker *w, bool dst_on_stack) {
  size_t toks_bytes = (size_t)w->ntok * sizeof(tt_tok);
  if (!w->out_heap && !dst_on_stack) {
    /* A large text, without tokens or with few. */
    tt_json_text *t = tt_malloc(sizeof *t + toks_bytes);
    t->toks = w->ntok ? (tt_tok *)(void *)(t + 1) : NULL;
    if (w->ntok)
      memcpy(t->toks, w->out, toks_bytes);
    t->own_toks = false;
    t->text = w->dst;
    if (w->dlen < w->len / 2)
      t->text = tt_realloc(t->text, w->dlen + 1);
    t->own_text = true;
    t->len = w->dlen;
    t->ntok = w->ntok;
    atomic_init(&t->refs, 1);
    t->dups = false;
    t->unindexed = !w->out;
    t->home = false;
    t->inside = false;
    t->arena = false;
    return t;
  }
  bool toks_inline =
      !w->out_heap && sizeof(tt_json_text) + toks_bytes <= SMALL_ALLOC;
  bool text_inline = toks_inline && dst_on_stack &&
                     sizeof(tt_json_text) + toks_bytes + w->dlen < SMALL_ALLOC;
  tt_json_text *t = tt_malloc(sizeof *t + (toks_inline ? toks_bytes : 0) +
                              (text_inline ? w->dlen + 1 : 0));
  if (toks_inline) {
    t->toks = (tt_tok *)(void *)(t + 1);
    memcpy(t->toks, w->out, toks_bytes);
  } else if (w->out_heap) {
    t->toks = tt_realloc(w->out, toks_bytes);
  } else {
    t->toks = tt_malloc(toks_bytes);
    memcpy(t->toks, w->out, toks_bytes);
  }
  if (text_inline) {
    t->text = (char *)(t->toks + w->ntok);
    memcpy(t->text, w->dst, w->dlen + 1);
  } else if (dst_on_stack) {
    t->text = tt_malloc(w->dlen + 1);
    memcpy(t->text, w->dst, w->dlen + 1);
  } else {
    t->text = w->dst;
    if (w->dlen < w->len / 2)
      t->text = tt_realloc(t->text, w->dlen + 1);
  }
  t->own_toks = !toks_inline;
  t->own_text = !text_inline;
  t->len = w->dlen;
  t->ntok = w->ntok;
  atomic_init(&t->refs, 1);
  t->dups = false;
  t->unindexed = false;
  t->home = false;
  t->inside = false;
  t->arena = false;
  return t;
}

/* Clears *err and refuses what no walk takes: bytes that are not there,
 * or more than jsmn's int offsets reach. */
static bool input_fits(const char *text, size_t len, tether_json_error *err) {
  err->offset = 0;
  err->op = -1;
  err->message[0] = '\0';
  if (!text && len) {
    tt_json_set_error(err, 0, -1, "invalid JSON at byte 0: no input");
    return false;
  }
  if (len >= INT_MAX) {
    tt_json_set_error(err, 0, -1,
                      "invalid JSON at byte 0: input of %zu bytes is too "
                      "large (the limit is %d bytes)",
                      len, INT_MAX - 1);
    return false;
  }
  return true;
}

/* Whether the value in text[0..len) is an object or an array, which the
 * walk tokenizes, rather than a single scalar. */
static bool is_container(const char *text, size_t len) {
  size_t first = 0;
  while (first < len && is_ws(text[first]))
    first++;
  return first < len && (text[first] == '{' || text[first] == '[');
}

/* tether_json_parse, and tt_json_parse_walked when tokenize is false. */
static tether_json *parse(const char *text, size_t len, bool tokenize,
                          tt_json_arena *arena, tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  if (!input_fits(text, len, err))
    return NULL;
  if (!text)
    text = "";
  if (!is_container(text, len))
    return parse_scalar(text, len, err);

  tt_tok stack_toks[STACK_TOKENS];
  char stack_text[STACK_TEXT];
  bool lazy = len >= LAZY_INDEX_MIN;
  bool dst_on_stack = len < sizeof stack_text;
  jsmntok_t window[JSMN_WINDOW];
  walker w = {.s = text,
              .len = len,
              .out = lazy ? NULL : stack_toks,
              .cap = lazy ? 0 : STACK_TOKENS,
              .dst = dst_on_stack ? stack_text : large_buffer(len + 1),
              .err = err};
  bool ok = validate(&w, window, tokenize && !lazy);
  free(w.keys);
  if (!ok) {
    if (w.out_heap)
      free(w.out);
    if (!dst_on_stack)
      free(w.dst);
    free(w.suspects);
    return NULL;
  }
  tether_json_kind kind =
      w.dst[0] == '{' ? TETHER_JSON_OBJECT : TETHER_JSON_ARRAY;
  tether_json *root;
  tt_json_text *t;
  size_t toks_bytes = (size_t)w.ntok * sizeof(tt_tok);
  if (dst_on_stack && !w.out_heap &&
      TT_HOME_OFFSET + sizeof *t + toks_bytes + w.dlen <
          (tokenize ? SMALL_ALLOC : WALKED_HOME_MAX)) {
    /* The usual small message: root, text and tokens in one. */
    root = tt_json_new_home_in(arena, kind, w.dlen, w.ntok, false);
    t = tt_home_text(root);
    memcpy(t->toks, w.out, toks_bytes);
    memcpy(t->text, w.dst, w.dlen);
  } else {
    /* The root takes over the reference the text was created with. */
    t = finish_text(&w, dst_on_stack);
    root = tt_json_new_raw(kind, t, 0);
  }
  t->dups = w.dups;
  for (size_t i = 0; i < w.nsuspects && !t->dups; i++)
    t->dups = repeats_key(t, w.suspects[i]);
  free(w.suspects);
  return root;
}

tether_json *tether_json_parse(const char *text, size_t len,
                               tether_json_error *err) {
  return parse(text, len, true, NULL, err);
}

tether_json *tt_json_parse_walked(const char *text, size_t len,
                                  tether_json_error *err) {
  return parse(text, len, false, NULL, err);
}

tether_json *tt_json_parse_walked_in(tt_json_arena *arena, const char *text,
                                     size_t len, tether_json_error *err) {
  return parse(text, len, false, arena, err);
}

/* ---- Parsing in place ---- */

/*
 * A large message arrives in a buffer of its own (the frame reader's, see
 * tt_frame_reader_take), and copying its text into new memory costs as
 * much again in page faults as in copying: parsed where it lies, it
 * keeps that buffer as its text. The walk compacts towards the front of
 * the buffer as it goes, and the compacted text never overtakes the
 * input it comes from (whitespace is dropped, a rewritten string is
 * never longer than its literal: canonicalize_string), so it only ever
 * overwrites input the walk has read; nothing else reads the input (a
 * large text is parsed by the walk alone, see the top of this file). A
 * compact text without escapes does not move at all, or once, at the
 * end, when it does not start at the front of the buffer. Such a text gets its token index later, like any large
 * one (LAZY_INDEX_MIN), and its keys are logged where the compacted text
 * has them (walk, at key).
 */

/* Which member of the root object the value at offset `at` of text
 * belongs to (counted from 0), when all before it is compact and plain,
 * without whitespace between tokens and without backslashes, so that its
 * bytes stay where they are in the compacted text; -1 otherwise. The
 * walk validates these bytes: this only counts the members of a text that
 * turns out valid. */
static long member_index(const char *text, size_t len, size_t at) {
  if (at < 2 || at >= len || text[0] != '{' || text[at - 1] != ':' ||
      is_ws(text[at]))
    return -1;
  size_t depth = 0;
  long colons = 0;
  bool in_string = false;
  for (size_t i = 0; i < at; i++) {
    char c = text[i];
    if (c == '\\')
      return -1;
    if (c == '"')
      in_string = !in_string;
    else if (in_string)
      continue;
    else if (is_ws(c))
      return -1;
    else if (c == '{' || c == '[')
      depth++;
    else if (c == '}' || c == ']')
      depth--;
    else if (c == ':' && depth == 1)
      colons++;
  }
  return in_string || depth != 1 ? -1 : colons - 1;
}

static tether_json *in_place_result(char *block, size_t at, size_t dlen,
                                    long index, uint32_t root_count,
                                    size_t member_at, bool *member,
                                    bool dups);

/* Parses text block + at in place (see above). With member set and the
 * text an object whose last member's value starts at member_at, returns
 * that value alone. */
static tether_json *parse_in_place(char *block, size_t at, size_t len,
                                   size_t member_at, bool *member,
                                   tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  if (member)
    *member = false;
  const char *text = block ? block + at : NULL;
  if (!input_fits(text, len, err)) {
    free(block);
    return NULL;
  }
  if (!text || !is_container(text, len)) {
    /* Nothing to keep: a scalar is built on its own. */
    tether_json *v = parse_scalar(text ? text : "", len, err);
    free(block);
    return v;
  }
  long index = member ? member_index(text, len, member_at) : -1;
  jsmntok_t window[JSMN_WINDOW];
  walker w = {
      .s = text, .len = len, .dst = block, .in_place = true, .err = err};
  bool ok = validate(&w, window, false);
  free(w.keys);
  free(w.suspects);
  if (!ok) {
    free(block);
    return NULL;
  }
  return in_place_result(block, 0, w.dlen, index, w.root_count, member_at,
                         member, w.dups);
}

/* The value of a text validated in place, compacted at block + at for
 * dlen bytes; the rest as parse_in_place. */
static tether_json *in_place_result(char *block, size_t at, size_t dlen,
                                    long index, uint32_t root_count,
                                    size_t member_at, bool *member,
                                    bool dups) {
  size_t from = at, tlen = dlen;
  if (index >= 0 && root_count == (uint64_t)index + 1) {
    /* The last member: its value runs up to the root's closing brace,
     * the last byte of the compacted text, and starts where it did in
     * the input, since nothing before it was dropped or rewritten. It
     * stays there: moving tens of megabytes to the front of the block
     * would cost more than the parse. */
    *member = true;
    from = at + member_at;
    tlen = dlen - 1 - member_at;
    if (!is_container(block + from, tlen)) {
      tether_json *v = tt_json_build_scalar(block + from, tlen);
      free(block);
      return v;
    }
  }
  /* The text keeps only the part of the block it needs; an allocation
   * shrinks where it is. Some object in the text repeating a key was
   * found from the key log (at the close of each object). */
  tt_json_text *t = tt_malloc(sizeof *t + sizeof block);
  block = tt_realloc(block, from + tlen + 1);
  block[from + tlen] = '\0';
  t->text = block + from;
  t->inside = from > 0;
  t->arena = false;
  memcpy(t + 1, &block, sizeof block);
  t->len = tlen;
  t->toks = NULL;
  t->ntok = 0;
  t->own_toks = false;
  t->own_text = true;
  atomic_init(&t->refs, 1);
  t->dups = dups;
  t->unindexed = true;
  t->home = false;
  return tt_json_new_raw(
      t->text[0] == '{' ? TETHER_JSON_OBJECT : TETHER_JSON_ARRAY, t, 0);
}

tether_json *tt_json_parse_in_place(char *block, size_t at, size_t len,
                                    tether_json_error *err) {
  return parse_in_place(block, at, len, 0, NULL, err);
}

tether_json *tt_json_parse_member_in_place(char *block, size_t at, size_t len,
                                           size_t member_at, bool *member,
                                           tether_json_error *err) {
  return parse_in_place(block, at, len, member_at, member, err);
}

/* ---- Streams (see Validating while a text arrives) ---- */

struct tt_json_stream {
  walker w;
  checkpoint ck;
  frame frames[TETHER_JSON_MAX_DEPTH];
  tether_json_error err;
  const char *base; /* where the text was last time: the keys point there */
  size_t fed;       /* bytes walked over last time */
  bool dead;        /* nothing more is walked: the final parse does it all */
};

tt_json_stream *tt_json_stream_new(void) {
  tt_json_stream *st = tt_malloc(sizeof *st);
  st->w = (walker){.frames = st->frames, .ck = &st->ck, .err = &st->err};
  st->ck.valid = false;
  st->ck.nkeys = 0;
  st->base = NULL;
  st->fed = 0;
  st->dead = false;
  return st;
}

void tt_json_stream_free(tt_json_stream *st) {
  if (!st)
    return;
  free(st->w.keys);
  free(st);
}

/* Points the stream's walker at text, where the text now lies: the keys
 * logged point into it. */
static void stream_at(tt_json_stream *st, const char *text, size_t len) {
  walker *w = &st->w;
  if (st->base && text != st->base) {
    uintptr_t from = (uintptr_t)st->base, to = (uintptr_t)text;
    size_t n = w->nkeys;
    if (st->ck.valid && st->ck.nkeys > n)
      n = st->ck.nkeys;
    for (size_t k = 0; k < n; k++)
      w->keys[k].p = (const char *)((uintptr_t)w->keys[k].p - from + to);
  }
  st->base = text;
  w->s = text;
  w->len = len;
}

void tt_json_stream_feed(tt_json_stream *st, const char *text, size_t avail) {
  if (st->dead || avail <= st->fed || avail >= INT_MAX)
    return;
  /* The walk goes back to the last checkpoint, which a long value (a
   * string of megabytes) keeps far behind: it waits until as much again
   * has arrived, so that all the walks together read the text at most
   * about twice, however it arrives. */
  size_t from = st->ck.valid ? st->ck.pos : 0;
  if (avail - st->fed < st->fed - from)
    return;
  stream_at(st, text, avail);
  st->w.final = false;
  bool ok = walk_streaming(&st->w);
  st->fed = avail;
  /* Stopped short of what has come: not by its end, or not compact. */
  if (!ok && (st->w.useless || st->err.offset + CUT_MAX < avail))
    st->dead = true;
}

size_t tt_json_stream_done(const tt_json_stream *st) {
  return st->dead || !st->ck.valid ? 0 : st->ck.pos;
}

tether_json *tt_json_stream_finish(tt_json_stream *st, char *block, size_t at,
                                   size_t len, size_t member_at, bool *member,
                                   tether_json_error *err) {
  const char *text = block ? block + at : NULL;
  bool done = st && !st->dead && st->fed > 0 && text && len < INT_MAX &&
              is_container(text, len);
  if (done) {
    stream_at(st, text, len);
    st->w.final = true;
    done = walk_streaming(&st->w) && !st->w.shift;
  }
  if (!done) {
    /* Parsed whole, as if nothing had been walked: the same value, or
     * the same error. */
    tt_json_stream_free(st);
    return parse_in_place(block, at, len, member_at, member, err);
  }
  if (err) {
    err->offset = 0;
    err->op = -1;
    err->message[0] = '\0';
  }
  if (member)
    *member = false;
  long index = member ? member_index(text, len, member_at) : -1;
  size_t dlen = st->w.value_end;
  uint32_t root_count = st->w.root_count;
  bool dups = st->w.dups;
  tt_json_stream_free(st);
  return in_place_result(block, at, dlen, index, root_count, member_at, member,
                         dups);
}

/* ---- Indexing a large text ---- */

void tt_json_text_index(tt_json_text *t) {
  /* About one token per eight bytes is typical; the array grows. The
   * text came from a parse, so it is shorter than INT_MAX. */
  uint32_t cap = (uint32_t)(t->len / 8 + 16);
  jsmntok_t window[JSMN_WINDOW];
  walker w = {.s = t->text,
              .len = t->len,
              .out = tt_malloc((size_t)cap * sizeof(tt_tok)),
              .cap = cap,
              .out_heap = true};
  /* The same tokenizer and walk as parsing, over the compact text: the
   * walk writes nothing (dst is NULL) and only records the tokens. */
  start_jsmn(&w, window);
  bool ok = walk_tokens(&w);
  free(w.keys);
  free(w.suspects);
  t->unindexed = false;
  if (!ok || !w.ntok) {
    /* Cannot happen for a text this file wrote; without tokens, the root
     * is materialized by scanning the compact text (json_build.c). */
    free(w.out);
    return;
  }
  t->toks = tt_realloc(w.out, (size_t)w.ntok * sizeof *t->toks);
  t->ntok = w.ntok;
  t->own_toks = true;
}
