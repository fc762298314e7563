/*
 * test_framing.c: cutting messages out of byte streams in both framings,
 * detection, size limits, malformed headers and framing on the way out;
 * reading straight into the reader (space, commit) and taking a message's
 * buffer over (take).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "framing.h"

/* Collects the messages a reader yields as NUL-terminated copies. */
typedef struct collected {
  char *msgs[16];
  size_t count;
  tt_frame_status last;
} collected;

static void drain(tt_frame_reader *r, collected *c) {
  const char *msg;
  size_t len;
  for (;;) {
    tt_frame_status st = tt_frame_reader_next(r, &msg, &len);
    c->last = st;
    if (st != TT_FRAME_MESSAGE)
      return;
    assert_true(c->count < 16);
    char *copy = malloc(len + 1);
    memcpy(copy, msg, len);
    copy[len] = '\0';
    c->msgs[c->count++] = copy;
  }
}

/* drain, taking each message's buffer over as a large message is taken:
 * the message is where next said, the byte after it is the taker's, and
 * a buffer is taken once. */
static void drain_taking(tt_frame_reader *r, collected *c) {
  const char *msg;
  size_t len;
  for (;;) {
    tt_frame_status st = tt_frame_reader_next(r, &msg, &len);
    c->last = st;
    size_t at;
    if (st != TT_FRAME_MESSAGE) {
      assert_null(tt_frame_reader_take(r, &at));
      return;
    }
    char *block = tt_frame_reader_take(r, &at);
    assert_non_null(block);
    assert_ptr_equal(block + at, msg);
    assert_null(tt_frame_reader_take(r, &at));
    block[at + len] = '\0';
    assert_true(c->count < 16);
    char *copy = malloc(len + 1);
    memcpy(copy, block + at, len + 1);
    c->msgs[c->count++] = copy;
    free(block);
  }
}

/* Reads stream into r the way the host reads a pipe: straight into the
 * reader's space, at most chunk bytes per read, draining after each. */
static void read_in_chunks(tt_frame_reader *r, const char *stream,
                           size_t stream_len, size_t chunk, bool take,
                           collected *c) {
  for (size_t off = 0; off < stream_len;) {
    char *space;
    size_t avail;
    tt_frame_reader_space(r, 1, &space, &avail);
    assert_true(avail >= 1);
    size_t n = stream_len - off;
    if (n > chunk)
      n = chunk;
    if (n > avail)
      n = avail;
    memcpy(space, stream + off, n);
    tt_frame_reader_commit(r, n);
    off += n;
    if (take)
      drain_taking(r, c);
    else
      drain(r, c);
    assert_int_equal(c->last, TT_FRAME_NEED_MORE);
  }
}

static void collected_free(collected *c) {
  for (size_t i = 0; i < c->count; i++)
    free(c->msgs[i]);
  c->count = 0;
}

/* Feeds the whole stream at once, then one byte at a time, then reads it
 * into the reader's space in reads of 3 bytes, and of 5 bytes taking each
 * message's buffer over, and checks that each way gives the expected
 * messages: how bytes arrive and how messages leave must not matter. */
static void expect_messages(tt_framing framing, const char *stream,
                            size_t stream_len, const char *const *want,
                            size_t nwant) {
  for (int way = 0; way < 4; way++) {
    tt_frame_reader r;
    tt_frame_reader_init(&r, framing, 0);
    collected c = {0};
    if (way == 1) {
      for (size_t i = 0; i < stream_len; i++) {
        tt_frame_reader_feed(&r, stream + i, 1);
        drain(&r, &c);
        assert_int_equal(c.last, TT_FRAME_NEED_MORE);
      }
    } else if (way == 2) {
      read_in_chunks(&r, stream, stream_len, 3, false, &c);
    } else if (way == 3) {
      read_in_chunks(&r, stream, stream_len, 5, true, &c);
    } else {
      tt_frame_reader_feed(&r, stream, stream_len);
      drain(&r, &c);
      assert_int_equal(c.last, TT_FRAME_NEED_MORE);
    }
    assert_int_equal(c.count, nwant);
    for (size_t i = 0; i < nwant; i++)
      assert_string_equal(c.msgs[i], want[i]);
    collected_free(&c);
    tt_frame_reader_free(&r);
  }
}

static void ndjson_messages(void **state) {
  static const char stream[] = "{\"a\":1}\n[2,3]\r\n\n  \t\n\r\n\"x y\"\n";
  static const char *const want[] = {"{\"a\":1}", "[2,3]", "\"x y\""};
  expect_messages(TT_FRAMING_NDJSON, stream, sizeof stream - 1, want, 3);
}

static void ndjson_incomplete_line_waits(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 0);
  collected c = {0};
  tt_frame_reader_feed(&r, "{\"a\":1}\n{\"b\"", 12);
  drain(&r, &c);
  assert_int_equal(c.count, 1);
  const char *rest;
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 4);
  assert_memory_equal(rest, "{\"b\"", 4);
  tt_frame_reader_feed(&r, ":2}\n", 4);
  drain(&r, &c);
  assert_int_equal(c.count, 2);
  assert_string_equal(c.msgs[1], "{\"b\":2}");
  collected_free(&c);
  tt_frame_reader_free(&r);
}

static void content_length_messages(void **state) {
  static const char stream[] =
      "Content-Length: 7\r\n\r\n{\"a\":1}"
      "content-length:5\r\nContent-Type: application/json\r\n\r\n[2,3]"
      "\r\n"
      "Content-Length: 8\n\n[\"a\n\",1]"
      "CONTENT-LENGTH:  2 \r\n\r\n{}";
  static const char *const want[] = {"{\"a\":1}", "[2,3]", "[\"a\n\",1]", "{}"};
  expect_messages(TT_FRAMING_CONTENT_LENGTH, stream, sizeof stream - 1, want,
                  4);
}

static void content_length_empty_body(void **state) {
  static const char stream[] = "Content-Length: 0\r\n\r\nContent-Length: 1\r\n"
                               "\r\n1";
  static const char *const want[] = {"", "1"};
  expect_messages(TT_FRAMING_CONTENT_LENGTH, stream, sizeof stream - 1, want,
                  2);
}

static void detect_ndjson(void **state) {
  static const char stream[] = "\n{\"jsonrpc\":\"2.0\"}\ntrue\n";
  static const char *const want[] = {"{\"jsonrpc\":\"2.0\"}", "true"};
  expect_messages(TT_FRAMING_DETECT, stream, sizeof stream - 1, want, 2);
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_DETECT, 0);
  tt_frame_reader_feed(&r, stream, sizeof stream - 1);
  collected c = {0};
  drain(&r, &c);
  assert_int_equal(r.framing, TT_FRAMING_NDJSON);
  collected_free(&c);
  tt_frame_reader_free(&r);
}

static void detect_content_length(void **state) {
  static const char stream[] =
      "\r\nContent-Length: 2\r\n\r\n{}Content-Length: 4\r\n\r\nnull";
  static const char *const want[] = {"{}", "null"};
  expect_messages(TT_FRAMING_DETECT, stream, sizeof stream - 1, want, 2);
}

static void detect_waits_for_deciding_bytes(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_DETECT, 0);
  collected c = {0};
  tt_frame_reader_feed(&r, "Content-Len", 11);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_NEED_MORE);
  assert_int_equal(r.framing, TT_FRAMING_DETECT);
  tt_frame_reader_feed(&r, "gth: 4\r\n\r\nnull", 15);
  drain(&r, &c);
  assert_int_equal(r.framing, TT_FRAMING_CONTENT_LENGTH);
  assert_int_equal(c.count, 1);
  assert_string_equal(c.msgs[0], "null");
  collected_free(&c);
  tt_frame_reader_free(&r);
}

static void detect_garbage_is_ndjson(void **state) {
  /* Not JSON and not a header: ndjson, so the caller can answer -32700
   * and carry on. */
  static const char stream[] = "hello world\n{}\n";
  static const char *const want[] = {"hello world", "{}"};
  expect_messages(TT_FRAMING_DETECT, stream, sizeof stream - 1, want, 2);
}

static void ndjson_too_large(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 8);
  collected c = {0};
  /* Exactly at the limit passes, with or without a '\r'. */
  tt_frame_reader_feed(&r, "12345678\n12345678\r\n", 19);
  drain(&r, &c);
  assert_int_equal(c.count, 2);
  assert_int_equal(c.last, TT_FRAME_NEED_MORE);
  tt_frame_reader_feed(&r, "123456789\n", 10);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_TOO_LARGE);
  assert_non_null(strstr(r.error, "size limit of 8 bytes"));
  /* The error sticks: the stream cannot be resynchronized. */
  tt_frame_reader_feed(&r, "{}\n", 3);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_TOO_LARGE);
  assert_int_equal(c.count, 2);
  collected_free(&c);
  tt_frame_reader_free(&r);
}

static void ndjson_too_large_without_newline(void **state) {
  /* A peer that never sends a newline is cut off once the limit is
   * passed, not buffered forever. */
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 8);
  collected c = {0};
  tt_frame_reader_feed(&r, "123456789", 9);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_NEED_MORE);
  tt_frame_reader_feed(&r, "0", 1);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_TOO_LARGE);
  assert_non_null(strstr(r.error, "\"1234567890\""));
  tt_frame_reader_free(&r);
}

static void content_length_too_large(void **state) {
  /* Refused on the header alone: the body is never waited for. */
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 100);
  collected c = {0};
  tt_frame_reader_feed(&r, "Content-Length: 100\r\n\r\n", 23);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_NEED_MORE);
  tt_frame_reader_free(&r);

  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 100);
  tt_frame_reader_feed(&r, "Content-Length: 101\r\n\r\n", 23);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_TOO_LARGE);
  assert_non_null(strstr(r.error, "100 bytes"));
  tt_frame_reader_free(&r);

  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 100);
  tt_frame_reader_feed(&r, "Content-Length: 99999999999999999999999\r\n", 41);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_TOO_LARGE);
  tt_frame_reader_free(&r);
}

static void expect_bad_header(const char *stream, const char *reason) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 0);
  collected c = {0};
  tt_frame_reader_feed(&r, stream, strlen(stream));
  drain(&r, &c);
  assert_int_equal(c.count, 0);
  assert_int_equal(c.last, TT_FRAME_BAD_HEADER);
  if (!strstr(r.error, reason))
    fail_msg("error \"%s\" does not say \"%s\"", r.error, reason);
  drain(&r, &c);
  assert_int_equal(c.last, TT_FRAME_BAD_HEADER);
  tt_frame_reader_free(&r);
}

static void content_length_bad_headers(void **state) {
  expect_bad_header("{\"jsonrpc\":\"2.0\"}\r\n\r\n", "malformed header line");
  expect_bad_header("Content-Type: json\r\n\r\n{}", "without Content-Length");
  expect_bad_header("Content-Length: two\r\n\r\n{}", "not a number");
  expect_bad_header("Content-Length: 2x\r\n\r\n{}", "not a number");
  expect_bad_header("Content-Length:\r\n\r\n{}", "not a number");
  expect_bad_header("Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                    "two different");
  expect_bad_header(": 2\r\n\r\n", "malformed header line");
  /* The offending bytes are quoted, escaped, in the message. */
  expect_bad_header("Content-Length: 2\r\nbad\x01line\r\n\r\n{}",
                    "\"bad\\x01line\"");
}

static void content_length_header_without_end(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 0);
  collected c = {0};
  tt_frame_reader_feed(&r, "X-Pad: ", 7);
  char pad[1024];
  memset(pad, 'a', sizeof pad);
  tt_frame_status last = TT_FRAME_NEED_MORE;
  for (int i = 0; i < 16 && last == TT_FRAME_NEED_MORE; i++) {
    tt_frame_reader_feed(&r, pad, sizeof pad);
    drain(&r, &c);
    last = c.last;
  }
  assert_int_equal(last, TT_FRAME_BAD_HEADER);
  assert_non_null(strstr(r.error, "no end"));
  tt_frame_reader_free(&r);
}

static void write_and_read_back(void **state) {
  static const char *const msgs[] = {"{\"id\":1}", "[]", "\"\\n\""};
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    tether_buf out;
    tether_buf_init(&out);
    for (size_t i = 0; i < 3; i++)
      tt_frame_write((tt_framing)f, &out, msgs[i], strlen(msgs[i]));
    /* The receiving side detects what the writer used. */
    expect_messages(TT_FRAMING_DETECT, out.data, out.len, msgs, 3);
    tether_buf_free(&out);
  }
  tether_buf out;
  tether_buf_init(&out);
  tt_frame_write(TT_FRAMING_CONTENT_LENGTH, &out, "{}", 2);
  assert_string_equal(out.data, "Content-Length: 2\r\n\r\n{}");
  tether_buf_free(&out);
  tt_frame_write(TT_FRAMING_NDJSON, &out, "{}", 2);
  assert_string_equal(out.data, "{}\n");
  tether_buf_free(&out);
}

static void large_message_in_pieces(void **state) {
  /* A message much larger than any single read arrives whole. */
  size_t n = 3u * 1024u * 1024u;
  char *body = malloc(n + 1);
  body[0] = '"';
  memset(body + 1, 'x', n - 2);
  body[n - 1] = '"';
  body[n] = '\0';
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    tether_buf out;
    tether_buf_init(&out);
    tt_frame_write((tt_framing)f, &out, body, n);
    tt_frame_write((tt_framing)f, &out, "1", 1);
    tt_frame_reader r;
    tt_frame_reader_init(&r, TT_FRAMING_DETECT, 0);
    size_t got = 0, off = 0;
    while (off < out.len) {
      size_t chunk = out.len - off < 65536 ? out.len - off : 65536;
      tt_frame_reader_feed(&r, out.data + off, chunk);
      off += chunk;
      const char *msg;
      size_t len;
      while (tt_frame_reader_next(&r, &msg, &len) == TT_FRAME_MESSAGE) {
        if (got == 0) {
          assert_int_equal(len, n);
          assert_memory_equal(msg, body, n);
        } else {
          assert_int_equal(len, 1);
        }
        got++;
      }
    }
    assert_int_equal(got, 2);
    tt_frame_reader_free(&r);
    tether_buf_free(&out);
  }
  free(body);
}

static void space_and_commit(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 0);
  char *space;
  size_t avail;
  tt_frame_reader_space(&r, 100, &space, &avail);
  assert_true(avail >= 100);
  /* Nothing counts before it is committed, and committing nothing is
   * nothing. */
  memcpy(space, "{\"a\":1}\n", 8);
  const char *msg, *rest;
  size_t len;
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  tt_frame_reader_commit(&r, 0);
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 0);
  memcpy(space + 8, "{\"b\"", 4);
  tt_frame_reader_commit(&r, 12);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_int_equal(len, 7);
  assert_memory_equal(msg, "{\"a\":1}", 7);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  /* More room comes right after what is pending, which the message
   * before no longer keeps from the front. */
  tt_frame_reader_space(&r, 4096, &space, &avail);
  assert_true(avail >= 4096);
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 4);
  assert_ptr_equal(space, rest + 4);
  memcpy(space, ":2}\n", 4);
  tt_frame_reader_commit(&r, 4);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_int_equal(len, 7);
  assert_memory_equal(msg, "{\"b\":2}", 7);
  tt_frame_reader_free(&r);
}

/* Reads a whole stream into the reader's space at once. */
static void put(tt_frame_reader *r, const char *s, size_t n) {
  char *space;
  size_t avail;
  tt_frame_reader_space(r, n, &space, &avail);
  assert_true(avail >= n);
  memcpy(space, s, n);
  tt_frame_reader_commit(r, n);
}

static void take_leaves_what_follows(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 0);
  size_t at;
  /* Nothing to take before a message, nor after NEED_MORE. */
  assert_null(tt_frame_reader_take(&r, &at));
  static const char stream[] = "\n{\"big\":1}\r\n{\"next\"";
  put(&r, stream, sizeof stream - 1);
  const char *msg, *rest;
  size_t len;
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  char *block = tt_frame_reader_take(&r, &at);
  assert_non_null(block);
  assert_int_equal(at, 1);
  assert_int_equal(len, 9);
  assert_memory_equal(block + at, "{\"big\":1}", 9);
  /* The byte after the message is the taker's to write. */
  block[at + len] = '\0';
  assert_string_equal(block + at, "{\"big\":1}");
  free(block);
  /* The reader keeps only the start of the next message, in a buffer of
   * its own (the sanitizers see any read of the freed one). */
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 7);
  assert_memory_equal(rest, "{\"next\"", 7);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  assert_null(tt_frame_reader_take(&r, &at));
  put(&r, ":2}\n", 4);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_memory_equal(msg, "{\"next\":2}", 10);
  /* Taking a message that used all the reader had leaves it empty. */
  block = tt_frame_reader_take(&r, &at);
  assert_non_null(block);
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 0);
  free(block);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  put(&r, "[3]\n", 4);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_memory_equal(msg, "[3]", 3);
  tt_frame_reader_free(&r);
}

static void take_content_length(void **state) {
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_DETECT, 0);
  static const char first[] = "Content-Length: 7\r\n\r\n{\"a\":1}Content-Len";
  put(&r, first, sizeof first - 1);
  const char *msg, *rest;
  size_t len, at;
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  char *block = tt_frame_reader_take(&r, &at);
  assert_non_null(block);
  assert_int_equal(at, 21);
  assert_int_equal(len, 7);
  assert_memory_equal(block + at, "{\"a\":1}", 7);
  free(block);
  assert_int_equal(tt_frame_reader_pending(&r, &rest), 11);
  assert_memory_equal(rest, "Content-Len", 11);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  /* The framing decided stays decided, and a body can run to the last
   * byte read: the taker still has a byte after it. */
  put(&r, "gth: 2\r\n\r\n[]", 13);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_int_equal(r.framing, TT_FRAMING_CONTENT_LENGTH);
  block = tt_frame_reader_take(&r, &at);
  assert_non_null(block);
  assert_memory_equal(block + at, "[]", 2);
  block[at + len] = '\0';
  free(block);
  tt_frame_reader_free(&r);
}

static void space_size_limit(void **state) {
  char x[40];
  memset(x, 'x', sizeof x);
  /* ndjson: a line may run one byte over (its '\r'), not two. */
  tt_frame_reader r;
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 16);
  const char *msg;
  size_t len;
  put(&r, x, 17);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_NEED_MORE);
  put(&r, x, 1);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_TOO_LARGE);
  assert_non_null(strstr(r.error, "size limit of 16 bytes"));
  size_t at;
  assert_null(tt_frame_reader_take(&r, &at));
  tt_frame_reader_free(&r);
  /* A line at the limit is a message, and can be taken. */
  tt_frame_reader_init(&r, TT_FRAMING_NDJSON, 16);
  put(&r, x, 16);
  put(&r, "\n", 1);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_MESSAGE);
  assert_int_equal(len, 16);
  free(tt_frame_reader_take(&r, &at));
  tt_frame_reader_free(&r);
  /* content-length: the header alone says too much. */
  tt_frame_reader_init(&r, TT_FRAMING_CONTENT_LENGTH, 16);
  put(&r, "Content-Length: 17\r\n\r\n", 23);
  assert_int_equal(tt_frame_reader_next(&r, &msg, &len), TT_FRAME_TOO_LARGE);
  assert_non_null(strstr(r.error, "Content-Length"));
  tt_frame_reader_free(&r);
}

/* A large message read through the reader's space: its buffer goes once
 * it is through, whether the reader lets it go or a taker takes it. */
static void large_message_through_space(void **state) {
  size_t n = 5u * 1024u * 1024u;
  char *body = malloc(n);
  body[0] = '"';
  memset(body + 1, 'x', n - 2);
  body[n - 1] = '"';
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    tether_buf out;
    tether_buf_init(&out);
    tt_frame_write((tt_framing)f, &out, body, n);
    tt_frame_write((tt_framing)f, &out, "1", 1);
    for (int take = 0; take < 2; take++) {
      tt_frame_reader r;
      tt_frame_reader_init(&r, TT_FRAMING_DETECT, 0);
      size_t got = 0;
      for (size_t off = 0; off < out.len;) {
        char *space;
        size_t avail;
        tt_frame_reader_space(&r, 65536, &space, &avail);
        size_t chunk = out.len - off < avail ? out.len - off : avail;
        memcpy(space, out.data + off, chunk);
        tt_frame_reader_commit(&r, chunk);
        off += chunk;
        const char *msg;
        size_t len, at;
        while (tt_frame_reader_next(&r, &msg, &len) == TT_FRAME_MESSAGE) {
          assert_int_equal(len, got == 0 ? n : 1);
          assert_memory_equal(msg, got == 0 ? body : "1", len);
          if (take && got == 0) {
            char *block = tt_frame_reader_take(&r, &at);
            assert_ptr_equal(block + at, msg);
#if defined(MADV_HUGEPAGE)
            /* A large message's buffer starts on a huge page. */
            assert_int_equal((uintptr_t)block % (2u << 20), 0);
#endif
            free(block);
          }
          got++;
        }
      }
      assert_int_equal(got, 2);
      assert_true(r.buf.cap < 1024u * 1024u);
      tt_frame_reader_free(&r);
    }
    tether_buf_free(&out);
  }
  free(body);
}

static void framing_names(void **state) {
  tt_framing f;
  assert_int_equal(tt_framing_parse("ndjson", &f), 0);
  assert_int_equal(f, TT_FRAMING_NDJSON);
  assert_int_equal(tt_framing_parse("content-length", &f), 0);
  assert_int_equal(f, TT_FRAMING_CONTENT_LENGTH);
  assert_int_equal(tt_framing_parse("Content-Length", &f), -1);
  assert_int_equal(tt_framing_parse("", &f), -1);
  assert_string_equal(tt_framing_name(TT_FRAMING_NDJSON), "ndjson");
  assert_string_equal(tt_framing_name(TT_FRAMING_CONTENT_LENGTH),
                      "content-length");
}

static void quoting(void **state) {
  tether_buf out;
  tether_buf_init(&out);
  tt_frame_quote(&out, "a\"b\\\n\x7f", 6, 100);
  assert_string_equal(out.data, "\"a\\\"b\\\\\\n\\x7f\"");
  tether_buf_free(&out);
  tt_frame_quote(&out, "abcdef", 6, 3);
  assert_string_equal(out.data, "\"abc\"...");
  tether_buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ndjson_messages),
      cmocka_unit_test(ndjson_incomplete_line_waits),
      cmocka_unit_test(content_length_messages),
      cmocka_unit_test(content_length_empty_body),
      cmocka_unit_test(detect_ndjson),
      cmocka_unit_test(detect_content_length),
      cmocka_unit_test(detect_waits_for_deciding_bytes),
      cmocka_unit_test(detect_garbage_is_ndjson),
      cmocka_unit_test(ndjson_too_large),
      cmocka_unit_test(ndjson_too_large_without_newline),
      cmocka_unit_test(content_length_too_large),
      cmocka_unit_test(content_length_bad_headers),
      cmocka_unit_test(content_length_header_without_end),
      cmocka_unit_test(write_and_read_back),
      cmocka_unit_test(large_message_in_pieces),
      cmocka_unit_test(space_and_commit),
      cmocka_unit_test(take_leaves_what_follows),
      cmocka_unit_test(take_content_length),
      cmocka_unit_test(space_size_limit),
      cmocka_unit_test(large_message_through_space),
      cmocka_unit_test(framing_names),
      cmocka_unit_test(quoting),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
