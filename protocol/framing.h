/*
 * framing.h: how JSON-RPC messages are cut out of a byte stream and put
 * back into one. Two framings (SPEC section 2):
 *
 *   ndjson          one JSON text per line, '\n'-terminated; a trailing '\r'
 *                   is tolerated and empty lines are skipped.
 *   content-length  the LSP base protocol: "Content-Length: N\r\n", other
 *                   headers allowed, "\r\n", then N bytes of JSON.
 *
 * The reader is incremental: feed it whatever read() returned (partial
 * messages, many messages at once) and take complete messages out. It
 * knows bytes, not JSON: what a message contains is the caller's affair.
 */
#ifndef TETHER_PROTOCOL_FRAMING_H
#define TETHER_PROTOCOL_FRAMING_H

#include <stddef.h>

#include "tether/json.h"

#define TT_FRAME_DEFAULT_MAX (64u * 1024u * 1024u)

typedef enum tt_framing {
  TT_FRAMING_DETECT, /* reader only: decide from the first message */
  TT_FRAMING_NDJSON,
  TT_FRAMING_CONTENT_LENGTH
} tt_framing;

const char *tt_framing_name(tt_framing f); /* "ndjson", "content-length" */
/* Parses "ndjson" / "content-length"; returns -1 for anything else. */
int tt_framing_parse(const char *name, tt_framing *out);

typedef enum tt_frame_status {
  TT_FRAME_MESSAGE = 1, /* *msg, *len hold one message */
  TT_FRAME_NEED_MORE = 0,
  TT_FRAME_TOO_LARGE = -1, /* a message over the size limit: fatal */
  TT_FRAME_BAD_HEADER = -2 /* content-length header block malformed: fatal */
} tt_frame_status;

typedef struct tt_frame_reader {
  tt_framing framing; /* TT_FRAMING_DETECT until the first message decides */
  size_t max_size;
  tether_buf buf;     /* unconsumed bytes */
  size_t start;       /* offset of the first unconsumed byte in buf */
  size_t scanned;     /* bytes after start already searched for '\n' */
  size_t body_len;    /* content-length: length of the pending body */
  int in_body;        /* content-length: header parsed, waiting for body */
  char error[200];    /* what went wrong, for TOO_LARGE and BAD_HEADER */
} tt_frame_reader;

void tt_frame_reader_init(tt_frame_reader *r, tt_framing framing,
                          size_t max_size);
void tt_frame_reader_free(tt_frame_reader *r);
/* Appends bytes read from the peer. */
void tt_frame_reader_feed(tt_frame_reader *r, const char *data, size_t len);
/* Takes the next complete message out. On TT_FRAME_MESSAGE, *msg points
 * into the reader's buffer and stays valid until the next call to feed or
 * next. On an error the reader is unusable and r->error says why. */
tt_frame_status tt_frame_reader_next(tt_frame_reader *r, const char **msg,
                                     size_t *len);
/* Bytes buffered but not yet returned as a message (for error reports: the
 * start of what a peer sent that never became a message). */
size_t tt_frame_reader_pending(const tt_frame_reader *r, const char **data);

/* Appends msg framed as f (which must not be DETECT) to out. msg must not
 * contain a newline for ndjson; compact JSON never does. */
void tt_frame_write(tt_framing f, tether_buf *out, const char *msg,
                    size_t len);

#endif /* TETHER_PROTOCOL_FRAMING_H */
