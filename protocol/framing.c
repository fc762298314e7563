/*
 * framing.c: cutting messages out of a byte stream (ndjson and the LSP
 * content-length framing) and framing outgoing ones.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "framing.h"
#include "util.h"

const char *tt_framing_name(tt_framing f) {
  switch (f) {
  case TT_FRAMING_DETECT:
    return "detect";
  case TT_FRAMING_NDJSON:
    return "ndjson";
  case TT_FRAMING_CONTENT_LENGTH:
    return "content-length";
  }
  return "?";
}

int tt_framing_parse(const char *name, tt_framing *out) {
  if (strcmp(name, "ndjson") == 0) {
    *out = TT_FRAMING_NDJSON;
    return 0;
  }
  if (strcmp(name, "content-length") == 0) {
    *out = TT_FRAMING_CONTENT_LENGTH;
    return 0;
  }
  return -1;
}

void tt_frame_reader_init(tt_frame_reader *r, tt_framing framing,
                          size_t max_size) {
  memset(r, 0, sizeof *r);
  r->framing = framing;
  r->max_size = max_size ? max_size : TT_FRAME_DEFAULT_MAX;
  tether_buf_init(&r->buf);
}

void tt_frame_reader_free(tt_frame_reader *r) { tether_buf_free(&r->buf); }

/* Buffers from this size on ask for huge pages (see grow). */
#define HUGE_PAGES_MIN (4u << 20)
/* A buffer that outgrows LARGE_FROM holds a large message: it moves, once,
 * to LARGE_ROOM bytes (or more) that start on a huge page boundary. */
#define LARGE_FROM (1u << 20)
#define LARGE_ROOM ((size_t)32 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

/* Makes room for len more bytes. A large message fills its buffer front
 * to back once, and in 4 KiB pages that costs a page fault per page, as
 * much as the copying itself; where the system offers huge pages to those
 * who ask, a large buffer asks. All of it, whole pages: advice on part
 * of a mapping would split it, and growing it could then no longer just
 * extend it.
 *
 * Growing by doubling leaves the first megabytes in small pages (they
 * were touched before the buffer was large enough to ask) and the rest
 * at addresses that realloc chose, rarely aligned to huge pages: a
 * 15 MB message still took some 1,800 faults. So once a message is large
 * the buffer is reserved aligned, with room to spare, which is only
 * address space until written, and asks before anything is written. */
static void grow(tt_frame_reader *r, size_t len) {
  size_t cap = r->buf.cap;
#if defined(MADV_HUGEPAGE)
  size_t need = r->buf.len + len + 1;
  if (need > cap && cap < LARGE_ROOM && need > LARGE_FROM) {
    size_t room = LARGE_ROOM;
    while (room < need)
      room *= 2;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, room) == 0) {
      (void)madvise(p, room, MADV_HUGEPAGE);
      if (r->buf.data)
        memcpy(p, r->buf.data, r->buf.len + 1);
      else
        ((char *)p)[0] = '\0';
      free(r->buf.data);
      r->buf.data = p;
      r->buf.cap = room;
      return;
    }
  }
#endif
  tether_buf_reserve(&r->buf, len);
#if defined(MADV_HUGEPAGE)
  if (r->buf.cap != cap && r->buf.cap >= HUGE_PAGES_MIN) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t at = (uintptr_t)r->buf.data, from = at & ~(page - 1);
    (void)madvise((void *)from, at + r->buf.cap - from, MADV_HUGEPAGE);
  }
#endif
}

/* Drops what was consumed before more bytes come, which keeps the buffer
 * as small as the message in progress; the message pointer handed out
 * last time is documented to die here. */
static void drop_consumed(tt_frame_reader *r) {
  r->returned = false;
  if (r->start > 0) {
    tether_buf_consume(&r->buf, r->start);
    r->start = 0;
  }
}

void tt_frame_reader_feed(tt_frame_reader *r, const char *data, size_t len) {
  drop_consumed(r);
  grow(r, len);
  tether_buf_append(&r->buf, data, len);
}

void tt_frame_reader_space(tt_frame_reader *r, size_t min, char **space,
                           size_t *avail) {
  drop_consumed(r);
  grow(r, min);
  *space = r->buf.data + r->buf.len;
  /* The last byte stays free for the NUL that commit writes. */
  *avail = r->buf.cap - r->buf.len - 1;
}

void tt_frame_reader_commit(tt_frame_reader *r, size_t n) {
  if (n == 0)
    return;
  /* More than space offered would have been written past the buffer. */
  assert(r->buf.data && n < r->buf.cap - r->buf.len);
  r->buf.len += n;
  r->buf.data[r->buf.len] = '\0';
}

char *tt_frame_reader_take(tt_frame_reader *r, size_t *at) {
  if (!r->returned)
    return NULL;
  r->returned = false;
  /* The message ends at or before start, and the buffer keeps a byte
   * after its len: there is a byte after the message's last. */
  char *block = r->buf.data;
  *at = r->returned_at;
  tether_buf rest;
  tether_buf_init(&rest);
  if (r->buf.len > r->start)
    tether_buf_append(&rest, r->buf.data + r->start, r->buf.len - r->start);
  r->buf = rest;
  r->start = 0;
  return block;
}

size_t tt_frame_reader_pending(const tt_frame_reader *r, const char **data) {
  *data = r->buf.data ? r->buf.data + r->start : "";
  return r->buf.len - r->start;
}

size_t tt_frame_reader_partial(const tt_frame_reader *r, const char **data) {
  *data = "";
  if (r->failed || !r->buf.data ||
      (r->framing == TT_FRAMING_CONTENT_LENGTH && !r->in_body) ||
      (r->framing != TT_FRAMING_CONTENT_LENGTH &&
       r->framing != TT_FRAMING_NDJSON))
    return 0;
  *data = r->buf.data + r->start;
  size_t n = r->buf.len - r->start;
  if (r->framing == TT_FRAMING_CONTENT_LENGTH && n > r->body_len)
    n = r->body_len;
  return n;
}

void tt_frame_quote(tether_buf *out, const char *data, size_t len, size_t max) {
  tether_buf_append_char(out, '"');
  size_t n = len < max ? len : max;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)data[i];
    switch (c) {
    case '"':
      tether_buf_append_str(out, "\\\"");
      break;
    case '\\':
      tether_buf_append_str(out, "\\\\");
      break;
    case '\n':
      tether_buf_append_str(out, "\\n");
      break;
    case '\r':
      tether_buf_append_str(out, "\\r");
      break;
    case '\t':
      tether_buf_append_str(out, "\\t");
      break;
    default:
      if (c < 0x20 || c >= 0x7f)
        tether_buf_printf(out, "\\x%02x", c);
      else
        tether_buf_append_char(out, (char)c);
    }
  }
  tether_buf_append_char(out, '"');
  if (n < len)
    tether_buf_append_str(out, "...");
}

static tt_frame_status fail(tt_frame_reader *r, tt_frame_status status,
                            const char *what, const char *bytes, size_t len) {
  tether_buf msg;
  tether_buf_init(&msg);
  tether_buf_append_str(&msg, what);
  if (bytes) {
    tether_buf_append_str(&msg, ": ");
    tt_frame_quote(&msg, bytes, len, 60);
  }
  snprintf(r->error, sizeof r->error, "%s", msg.data);
  tether_buf_free(&msg);
  r->failed = true;
  r->failure = status;
  return status;
}

static bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skips line ends before the first message or a header block: empty lines
 * carry nothing in either framing. */
static void skip_empty_lines(tt_frame_reader *r) {
  while (r->start < r->buf.len &&
         (r->buf.data[r->start] == '\n' || r->buf.data[r->start] == '\r'))
    r->start++;
}

/* Decides the framing from the first bytes; false while they do not tell
 * yet. */
static bool detect(tt_frame_reader *r) {
  skip_empty_lines(r);
  const char *p = r->buf.data + r->start;
  size_t n = r->buf.len - r->start;
  size_t i = 0;
  while (i < n && is_token_char(p[i]))
    i++;
  if (i == n) {
    /* A header name never gets this long; whatever this is, it is not
     * content-length, and ndjson will refuse it with a parse error. */
    if (n > 256) {
      r->framing = TT_FRAMING_NDJSON;
      return true;
    }
    return false;
  }
  r->framing =
      (i > 0 && p[i] == ':') ? TT_FRAMING_CONTENT_LENGTH : TT_FRAMING_NDJSON;
  return true;
}

static bool is_blank(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
      return false;
  return true;
}

static tt_frame_status next_ndjson(tt_frame_reader *r, const char **msg,
                                   size_t *len) {
  for (;;) {
    const char *base = r->buf.data + r->start;
    size_t avail = r->buf.len - r->start;
    const char *nl = avail > r->scanned
                         ? memchr(base + r->scanned, '\n', avail - r->scanned)
                         : NULL;
    if (!nl) {
      r->scanned = avail;
      /* One byte of slack for the '\r' a line may end with. */
      if (avail > r->max_size + 1) {
        char what[120];
        snprintf(what, sizeof what,
                 "message over the size limit of %zu bytes (no newline in "
                 "the first %zu)",
                 r->max_size, avail);
        return fail(r, TT_FRAME_TOO_LARGE, what, base, avail);
      }
      return TT_FRAME_NEED_MORE;
    }
    size_t n = (size_t)(nl - base);
    r->start += n + 1;
    r->scanned = 0;
    if (n > 0 && base[n - 1] == '\r')
      n--;
    if (n > r->max_size) {
      char what[120];
      snprintf(what, sizeof what,
               "message of %zu bytes is over the size limit of %zu bytes", n,
               r->max_size);
      return fail(r, TT_FRAME_TOO_LARGE, what, base, n);
    }
    if (is_blank(base, n))
      continue;
    *msg = base;
    *len = n;
    r->returned = true;
    r->returned_at = (size_t)(base - r->buf.data);
    return TT_FRAME_MESSAGE;
  }
}

static bool name_is(const char *p, size_t n, const char *name) {
  if (strlen(name) != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    char a = p[i], b = name[i];
    if (a >= 'A' && a <= 'Z')
      a = (char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z')
      b = (char)(b - 'A' + 'a');
    if (a != b)
      return false;
  }
  return true;
}

/* Parses the value of a Content-Length header: decimal digits with
 * optional blanks around them. */
static tt_frame_status parse_length(tt_frame_reader *r, const char *v, size_t n,
                                    size_t *out) {
  size_t i = 0, value = 0;
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  size_t digits = 0;
  bool over = false;
  while (i < n && v[i] >= '0' && v[i] <= '9') {
    size_t d = (size_t)(v[i] - '0');
    if (value > (SIZE_MAX - d) / 10)
      over = true;
    else
      value = value * 10 + d;
    i++;
    digits++;
  }
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  if (digits == 0 || i != n)
    return fail(r, TT_FRAME_BAD_HEADER, "Content-Length is not a number", v, n);
  if (over || value > r->max_size) {
    char what[120];
    snprintf(what, sizeof what,
             "message over the size limit of %zu bytes (Content-Length)",
             r->max_size);
    return fail(r, TT_FRAME_TOO_LARGE, what, v, n);
  }
  *out = value;
  return TT_FRAME_MESSAGE;
}

/* Reads a whole header block when it is there; the block is small, so it
 * is parsed again from its start each time more bytes arrive. */
static tt_frame_status read_header(tt_frame_reader *r) {
  skip_empty_lines(r);
  const char *base = r->buf.data + r->start;
  size_t avail = r->buf.len - r->start;
  size_t pos = 0, length = 0;
  bool have_length = false;
  for (;;) {
    const char *nl = memchr(base + pos, '\n', avail - pos);
    if (!nl) {
      if (avail > TT_FRAME_HEADER_MAX)
        return fail(r, TT_FRAME_BAD_HEADER,
                    "content-length header block has no end", base, avail);
      return TT_FRAME_NEED_MORE;
    }
    const char *line = base + pos;
    size_t n = (size_t)(nl - line);
    if (n > 0 && line[n - 1] == '\r')
      n--;
    pos = (size_t)(nl - base) + 1;
    if (pos > TT_FRAME_HEADER_MAX)
      return fail(r, TT_FRAME_BAD_HEADER,
                  "content-length header block too long", base, avail);
    if (n == 0) {
      if (!have_length)
        return fail(r, TT_FRAME_BAD_HEADER,
                    "content-length header block without Content-Length", base,
                    pos);
      r->start += pos;
      r->body_len = length;
      r->in_body = true;
      return TT_FRAME_MESSAGE;
    }
    size_t colon = 0;
    while (colon < n && is_token_char(line[colon]))
      colon++;
    if (colon == 0 || colon == n || line[colon] != ':')
      return fail(r, TT_FRAME_BAD_HEADER, "malformed header line", line, n);
    if (name_is(line, colon, "content-length")) {
      size_t value = 0;
      tt_frame_status st =
          parse_length(r, line + colon + 1, n - colon - 1, &value);
      if (st != TT_FRAME_MESSAGE)
        return st;
      if (have_length && value != length)
        return fail(r, TT_FRAME_BAD_HEADER,
                    "two different Content-Length headers", base, pos);
      length = value;
      have_length = true;
    }
  }
}

static tt_frame_status next_content_length(tt_frame_reader *r, const char **msg,
                                           size_t *len) {
  if (!r->in_body) {
    tt_frame_status st = read_header(r);
    if (st != TT_FRAME_MESSAGE)
      return st;
    /* The body's size is known: room for all of it now, instead of the
     * buffer doubling (and moving) its way up to a large message. What
     * was consumed goes first, so the room is not spent on it. */
    size_t have = r->buf.len - r->start;
    if (have < r->body_len) {
      if (r->start > 0) {
        tether_buf_consume(&r->buf, r->start);
        r->start = 0;
      }
      grow(r, r->body_len - have);
    }
  }
  if (r->buf.len - r->start < r->body_len)
    return TT_FRAME_NEED_MORE;
  *msg = r->buf.data + r->start;
  *len = r->body_len;
  r->returned = true;
  r->returned_at = r->start;
  r->start += r->body_len;
  r->in_body = false;
  r->body_len = 0;
  return TT_FRAME_MESSAGE;
}

/* After a large message has been handed out (its pointer dies here), the
 * buffer it needed goes: what follows it is moved to a small one. */
static void shed(tt_frame_reader *r) {
  size_t rest = r->buf.len - r->start;
  /* A body whose room was just made (next_content_length) stays. */
  if (r->start == 0 || r->in_body || r->buf.cap < HUGE_PAGES_MIN ||
      rest > r->buf.cap / 8)
    return;
  tether_buf small;
  tether_buf_init(&small);
  tether_buf_append(&small, r->buf.data + r->start, rest);
  tether_buf_free(&r->buf);
  r->buf = small;
  r->start = 0;
}

tt_frame_status tt_frame_reader_next(tt_frame_reader *r, const char **msg,
                                     size_t *len) {
  r->returned = false;
  if (r->failed)
    return r->failure;
  shed(r);
  if (r->buf.len == r->start)
    return TT_FRAME_NEED_MORE;
  if (r->framing == TT_FRAMING_DETECT && !detect(r))
    return TT_FRAME_NEED_MORE;
  switch (r->framing) {
  case TT_FRAMING_DETECT:
    break;
  case TT_FRAMING_NDJSON:
    return next_ndjson(r, msg, len);
  case TT_FRAMING_CONTENT_LENGTH:
    return next_content_length(r, msg, len);
  }
  return TT_FRAME_NEED_MORE;
}

void tt_frame_write(tt_framing f, tether_buf *out, const char *msg,
                    size_t len) {
  switch (f) {
  case TT_FRAMING_DETECT:
  case TT_FRAMING_NDJSON:
    /* A writer that never decided falls back to the default framing. */
    tether_buf_reserve(out, len + 1);
    tether_buf_append(out, msg, len);
    tether_buf_append_char(out, '\n');
    return;
  case TT_FRAMING_CONTENT_LENGTH:
    tether_buf_printf(out, "Content-Length: %zu\r\n\r\n", len);
    tether_buf_append(out, msg, len);
    return;
  }
}
