/*
 * framing.h: how JSON-RPC messages are cut out of a byte stream and put
 * back into one. Two framings (SPEC section 2):
 *
 *   ndjson          one JSON text per line, '\n'-terminated; a trailing '\r'
 *                   is tolerated and empty (or all-blank) lines are skipped.
 *   content-length  the LSP base protocol: "Content-Length: N\r\n", other
 *                   headers allowed, "\r\n", then N bytes of JSON. Header
 *                   names are case-insensitive; bare '\n' line ends are
 *                   tolerated; empty lines before a header block are
 *                   skipped.
 *
 * The reader is incremental: feed it whatever read() returned (partial
 * messages, many messages at once) and take complete messages out. It
 * knows bytes, not JSON: what a message contains is the caller's affair.
 *
 * Detection (TT_FRAMING_DETECT) looks at the first non-empty line: when it
 * starts with a header name followed by ':' ("Content-Length:") the stream
 * is content-length, otherwise ndjson. A JSON text can never start that way
 * (its bare words true/false/null are never followed by ':'), so the
 * decision is made on the first bytes and never revised.
 */
#ifndef TETHER_PROTOCOL_FRAMING_H
#define TETHER_PROTOCOL_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "tether/json.h"

#define TT_FRAME_DEFAULT_MAX (64u * 1024u * 1024u)
/* A content-length header block longer than this is malformed. */
#define TT_FRAME_HEADER_MAX 8192u

typedef enum tt_framing {
  TT_FRAMING_DETECT, /* reader only: decide from the first message */
  TT_FRAMING_NDJSON,
  TT_FRAMING_CONTENT_LENGTH
} tt_framing;

/* "detect", "ndjson", "content-length". */
const char *tt_framing_name(tt_framing f);
/* Parses "ndjson" / "content-length"; returns -1 for anything else. */
int tt_framing_parse(const char *name, tt_framing *out);

typedef enum tt_frame_status {
  TT_FRAME_MESSAGE = 1, /* *msg, *len hold one message */
  TT_FRAME_NEED_MORE = 0,
  TT_FRAME_TOO_LARGE = -1, /* a message over the size limit: fatal */
  TT_FRAME_BAD_HEADER = -2 /* content-length header block malformed: fatal */
} tt_frame_status;

/* The members are the reader's own; use the functions below. */
typedef struct tt_frame_reader {
  tt_framing framing; /* TT_FRAMING_DETECT until the first message decides */
  size_t max_size;
  tether_buf buf;  /* bytes fed; buf.data[start..len) are unconsumed */
  size_t start;    /* offset of the first unconsumed byte in buf */
  size_t scanned;  /* ndjson: bytes after start already searched */
  size_t body_len; /* content-length: length of the pending body */
  bool in_body;    /* content-length: header parsed, waiting for body */
  bool failed;     /* a fatal error was reported; next repeats it */
  bool returned;   /* next returned the message at returned_at, and it is
                      still in buf (for take) */
  size_t returned_at;
  tt_frame_status failure;
  char error[200]; /* what went wrong, for TOO_LARGE and BAD_HEADER */
} tt_frame_reader;

/* max_size 0 means TT_FRAME_DEFAULT_MAX. */
void tt_frame_reader_init(tt_frame_reader *r, tt_framing framing,
                          size_t max_size);
void tt_frame_reader_free(tt_frame_reader *r);
/* Appends bytes read from the peer. */
void tt_frame_reader_feed(tt_frame_reader *r, const char *data, size_t len);
/* Room for reading straight into the reader, instead of reading into a
 * buffer of one's own and feeding that: *space receives where, *avail how
 * many bytes (at least min). The bytes written there count once
 * tt_frame_reader_commit says how many there are; until then the reader
 * must not be used otherwise. */
void tt_frame_reader_space(tt_frame_reader *r, size_t min, char **space,
                           size_t *avail);
/* Adds the n bytes (at most the *avail of the last space) written at the
 * last space. */
void tt_frame_reader_commit(tt_frame_reader *r, size_t n);
/* Takes the next complete message out. On TT_FRAME_MESSAGE, *msg points
 * into the reader's buffer and stays valid until the next call to feed,
 * space, next or take; it is not NUL-terminated. On an error the reader
 * is unusable (every later call returns the same error) and r->error says
 * why, quoting the offending bytes. */
tt_frame_status tt_frame_reader_next(tt_frame_reader *r, const char **msg,
                                     size_t *len);
/* Hands over the buffer holding the message the last call to next
 * returned, so that a large message can be used where it lies instead of
 * being copied: returns the malloc'd block (the caller frees it) and
 * stores in *at where the message starts in it. The message's bytes are
 * followed by at least one more byte of the block, which the caller may
 * overwrite (with a NUL). The reader goes on with a new buffer that holds
 * only the bytes after the message. Returns NULL when next did not just
 * return a message. */
char *tt_frame_reader_take(tt_frame_reader *r, size_t *at);
/* Bytes buffered but not yet returned as a message (for error reports: the
 * start of what a peer sent that never became a message). */
size_t tt_frame_reader_pending(const tt_frame_reader *r, const char **data);
/* The message still arriving, as far as it has come, from its first byte:
 * for a reader that starts on a large message before the rest is in
 * (tt_json_stream). 0 when next has not found where the next message
 * starts (its Content-Length header is still incomplete, or the framing
 * is not known yet). Valid until the reader is next called. */
size_t tt_frame_reader_partial(const tt_frame_reader *r, const char **data);

/* Appends msg framed as f to out (DETECT, a writer that never learned the
 * peer's framing, writes the default, ndjson). msg must not contain a
 * newline for ndjson; compact JSON never does. */
void tt_frame_write(tt_framing f, tether_buf *out, const char *msg, size_t len);

/* Appends a printable rendering of at most max bytes of data to out, in
 * double quotes, with C-style escapes for anything unprintable and "..."
 * when cut short: how error messages quote what a peer sent. */
void tt_frame_quote(tether_buf *out, const char *data, size_t len, size_t max);

#endif /* TETHER_PROTOCOL_FRAMING_H */
