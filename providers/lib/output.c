/*
 * output.c: everything the provider writes to the host. Each message is
 * written whole under tt_prov.mu, its text and its framing in one writev;
 * a large ndjson answer goes out in pieces while it is serialized, still
 * under the mutex, so that the host reads the first part while the rest
 * is being written. Batch answers wait in their slots until the batch is
 * complete.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "json_internal.h"
#include "provider_lib.h"
#include "util.h"

tt_prov_state tt_prov = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .out_fd = -1,
    .wake_rd = -1,
    .wake_wr = -1,
};

const char *tt_prov_name(void) {
  return tt_prov.info && tt_prov.info->name ? tt_prov.info->name
                                            : "tether provider";
}

/* A private copy of an id, made from its text on the calling thread. */
static tether_json *id_value(const char *id_text) {
  if (!id_text)
    return tether_json_null();
  tether_json *id = tether_json_parse(id_text, strlen(id_text), NULL);
  return id ? id : tether_json_null();
}

static char *dump_and_drop(tether_json *msg, size_t *len) {
  char *text = tether_json_dumps(msg, len);
  tether_json_unref(msg);
  return text;
}

void tt_prov_answer_drop(tt_prov_answer *a) {
  tether_json_unref(a->result);
  tether_json_unref(a->data);
  a->result = NULL;
  a->data = NULL;
}

/* A large answer goes out while it is being serialized, in pieces of
 * about this size: the host reads the first pieces while the provider
 * writes the next, and the buffer stays small (see recycle). */
#define ANSWER_PIECE (128u * 1024u)

static void write_piece(tether_buf *out, void *ctx);

/* Appends v's serialization to out; with stream, hands full pieces to
 * the host on the way (the caller holds tt_prov.mu). */
static void append_value(tether_buf *out, const tether_json *v, bool stream) {
  if (stream)
    tt_json_dump_pieces(v, out, ANSWER_PIECE, write_piece, NULL);
  else
    tether_json_dump(v, out);
}

/* Appends the answer's message to out, byte for byte what serializing
 * tt_rpc_result or tt_rpc_error would give, without building that tree
 * first: an answer is the one message every request costs. id_text NULL
 * means "id": null. With stream, a result goes out in pieces on the way
 * (append_value). Consumes a's values. */
static void append_answer(tether_buf *out, const char *id_text,
                          tt_prov_answer *a, bool stream) {
  static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
  tether_buf_append(out, head, sizeof head - 1);
  tether_buf_append_str(out, id_text ? id_text : "null");
  if (!a->is_error && a->outputs_only) {
    tether_buf_append_str(out, ",\"result\":{\"outputProperties\":");
    if (a->result)
      append_value(out, a->result, stream);
    else
      tether_buf_append(out, "{}", 2);
    tether_buf_append_char(out, '}');
  } else if (!a->is_error) {
    tether_buf_append_str(out, ",\"result\":");
    append_value(out, a->result, stream);
  } else {
    const char *message = a->message;
    if (!message || !*message)
      message =
          tether_error_name(a->code) ? tether_error_name(a->code) : "error";
    tether_buf_printf(out, ",\"error\":{\"code\":%d,\"message\":", a->code);
    tether_json_dump_string(message, strlen(message), out);
    if (a->data) {
      tether_buf_append_str(out, ",\"data\":");
      tether_json_dump(a->data, out);
    }
    tether_buf_append_char(out, '}');
  }
  tether_buf_append_char(out, '}');
  tt_prov_answer_drop(a);
}

void tt_prov_wake_locked(void) {
  if (!tt_prov.running || tt_prov.wake_wr < 0)
    return;
  /* The pipe is non-blocking: when it is full the loop is awake anyway. */
  ssize_t n;
  do
    n = write(tt_prov.wake_wr, "", 1);
  while (n < 0 && errno == EINTR);
}

/* Writes the n pieces in iov (which it changes) whole. */
static bool writev_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    for (size_t left = (size_t)w; left > 0;) {
      if (left < iov->iov_len) {
        iov->iov_base = (char *)iov->iov_base + left;
        iov->iov_len -= left;
        break;
      }
      left -= iov->iov_len;
      iov++;
      n--;
    }
    while (n > 0 && iov->iov_len == 0) {
      iov++;
      n--;
    }
  }
  return true;
}

/* A kept buffer that one large message made large is given back, so that
 * a single big answer does not hold its memory for the rest of the run. */
#define KEEP_BUFFER_MAX (256u * 1024u)

static void recycle(tether_buf *b) {
  if (b->cap > KEEP_BUFFER_MAX)
    tether_buf_free(b);
  b->len = 0;
}

/* Writes the frame whose pieces are iov; caller holds tt_prov.mu. */
static void write_frame_locked(struct iovec *iov, int n) {
  if (writev_all(tt_prov.out_fd, iov, n))
    return;
  /* The host stopped reading (EPIPE with SIGPIPE ignored, or worse):
   * nobody is left to talk to, so the provider ends without a fuss. */
  tt_prov.out_closed = true;
  tt_prov.out_broken = true;
  tt_prov_wake_locked();
}

static bool out_open_locked(void) {
  return !tt_prov.out_closed && tt_prov.out_fd >= 0;
}

/* Writes a full piece of an answer (tt_json_dump_pieces); the rest and
 * the frame's end follow with tt_prov_write_locked. */
static void write_piece(tether_buf *out, void *ctx) {
  if (out_open_locked()) {
    struct iovec iov = {out->data, out->len};
    write_frame_locked(&iov, 1);
  }
  out->len = 0;
}

void tt_prov_write_locked(const char *text, size_t len) {
  if (!out_open_locked())
    return;
  /* The frame goes out in pieces, header or newline around the text, so
   * the text (a large answer: megabytes) is never copied to frame it. A
   * writer that never learned the peer's framing writes the default,
   * ndjson. */
  char header[64];
  struct iovec iov[2];
  if (tt_prov.framing == TT_FRAMING_CONTENT_LENGTH) {
    int n = snprintf(header, sizeof header, "Content-Length: %zu\r\n\r\n",
                     len);
    iov[0] = (struct iovec){header, (size_t)n};
    iov[1] = (struct iovec){(char *)(uintptr_t)text, len};
  } else {
    iov[0] = (struct iovec){(char *)(uintptr_t)text, len};
    iov[1] = (struct iovec){"\n", 1};
  }
  write_frame_locked(iov, 2);
}

/* Writes a's message for a request with id id_text; caller holds
 * tt_prov.mu. */
static void send_answer_locked(const char *id_text, tt_prov_answer *a) {
  if (!out_open_locked()) {
    tt_prov_answer_drop(a);
    return;
  }
  /* An ndjson frame needs no length up front: the answer is written in
   * pieces as it is serialized, and its last piece with the newline. */
  bool stream = tt_prov.framing != TT_FRAMING_CONTENT_LENGTH;
  tether_buf *text = &tt_prov.text_buf;
  text->len = 0;
  append_answer(text, id_text, a, stream);
  tt_prov_write_locked(text->data, text->len);
  recycle(text);
}

void tt_prov_output_free_locked(void) {
  tether_buf_free(&tt_prov.text_buf);
}

/* ---- Batches ---- */

tt_prov_batch *tt_prov_batch_new(tether_json *root) {
  tt_prov_batch *b = tt_calloc(1, sizeof *b);
  size_t n = tether_json_array_size(root);
  b->root = root;
  b->answers = tt_calloc(n, sizeof *b->answers);
  b->lengths = tt_calloc(n, sizeof *b->lengths);
  b->outstanding = 1;
  b->refs = 1;
  return b;
}

size_t tt_prov_batch_slot_locked(tt_prov_batch *b) {
  b->outstanding++;
  return b->nslots++;
}

static void batch_flush_locked(tt_prov_batch *b) {
  /* A batch of nothing but notifications is not answered at all. */
  if (b->nslots == 0)
    return;
  tether_buf all;
  tether_buf_init(&all);
  tether_buf_append_char(&all, '[');
  for (size_t i = 0; i < b->nslots; i++) {
    if (i)
      tether_buf_append_char(&all, ',');
    tether_buf_append(&all, b->answers[i], b->lengths[i]);
    free(b->answers[i]);
    b->answers[i] = NULL;
  }
  tether_buf_append_char(&all, ']');
  tt_prov_write_locked(all.data, all.len);
  tether_buf_free(&all);
}

static void batch_put_locked(tt_prov_batch *b, size_t slot, char *text,
                             size_t len) {
  b->answers[slot] = text;
  b->lengths[slot] = len;
  if (--b->outstanding == 0)
    batch_flush_locked(b);
}

/* Puts a's text into the batch's slot; caller holds tt_prov.mu. */
static void batch_answer_locked(tt_prov_batch *b, size_t slot,
                                const char *id_text, tt_prov_answer *a) {
  char *text = NULL;
  size_t len = 0;
  if (out_open_locked()) {
    tether_buf t;
    tether_buf_init(&t);
    append_answer(&t, id_text, a, false);
    text = tether_buf_steal(&t, &len);
  } else {
    /* Nothing more is written: the batch's answer never goes out. */
    tt_prov_answer_drop(a);
  }
  batch_put_locked(b, slot, text, len);
}

static void batch_free(tt_prov_batch *b) {
  for (size_t i = 0; i < b->nslots; i++)
    free(b->answers[i]);
  free(b->answers);
  free(b->lengths);
  tether_json_unref(b->root);
  free(b);
}

void tt_prov_batch_done(tt_prov_batch *b) {
  pthread_mutex_lock(&tt_prov.mu);
  if (--b->outstanding == 0)
    batch_flush_locked(b);
  bool last = --b->refs == 0;
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    batch_free(b);
}

void tt_prov_batch_release(tt_prov_batch *b) {
  pthread_mutex_lock(&tt_prov.mu);
  bool last = --b->refs == 0;
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    batch_free(b);
}

/* ---- Answers ---- */

bool tt_prov_deliver_locked(tether_request *req, tt_prov_answer a) {
  if (req->answered) {
    tt_prov_answer_drop(&a);
    return false;
  }
  req->answered = true;
  if (req->prev)
    req->prev->next = req->next;
  else
    tt_prov.unanswered = req->next;
  if (req->next)
    req->next->prev = req->prev;
  req->prev = req->next = NULL;
  tt_prov.nunanswered--;
  if (req->batch)
    batch_answer_locked(req->batch, req->slot, req->id_text, &a);
  else
    send_answer_locked(req->id_text, &a);
  if (tt_prov.draining || tt_prov.shutdown)
    tt_prov_wake_locked();
  return tt_prov_request_unref_locked(req);
}

void tt_prov_deliver(tether_request *req, tt_prov_answer a) {
  pthread_mutex_lock(&tt_prov.mu);
  bool last = tt_prov_deliver_locked(req, a);
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

void tt_prov_answer_other(tt_prov_batch *batch, const char *id_text,
                          tt_prov_answer a) {
  pthread_mutex_lock(&tt_prov.mu);
  if (batch)
    batch_answer_locked(batch, tt_prov_batch_slot_locked(batch), id_text, &a);
  else
    send_answer_locked(id_text, &a);
  pthread_mutex_unlock(&tt_prov.mu);
}

/* ---- Notifications ---- */

static const char *level_name(tether_log_level level) {
  switch (level) {
  case TETHER_LOG_ERROR:
    return "error";
  case TETHER_LOG_WARN:
    return "warn";
  case TETHER_LOG_INFO:
    return "info";
  case TETHER_LOG_DEBUG:
    return "debug";
  }
  return "info";
}

/* True when a notification can go to the host now: the framing is known
 * and the channel is open. Caller holds tt_prov.mu. */
static bool can_notify_locked(void) {
  return tt_prov.running && !tt_prov.out_closed &&
         tt_prov.framing != TT_FRAMING_DETECT;
}

void tether_log(tether_log_level level, const char *fmt, ...) {
  tether_buf message;
  tether_buf_init(&message);
  va_list ap;
  va_start(ap, fmt);
  char small[512];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof small) {
    tether_buf_append(&message, small, (size_t)n);
  } else if (n >= 0) {
    tether_buf_reserve(&message, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(message.data, (size_t)n + 1, fmt, ap);
    va_end(ap);
    message.len = (size_t)n;
  }
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "level",
                                  tether_json_string(level_name(level)));
  params = tether_json_object_set(
      params, "message",
      tether_json_string_n(message.data ? message.data : "", message.len));
  size_t len;
  char *text = dump_and_drop(tt_rpc_notification("log", params), &len);
  pthread_mutex_lock(&tt_prov.mu);
  if (can_notify_locked())
    tt_prov_write_locked(text, len);
  else
    fprintf(stderr, "%s: %s: %s\n", tt_prov_name(), level_name(level),
            message.data ? message.data : "");
  pthread_mutex_unlock(&tt_prov.mu);
  free(text);
  tether_buf_free(&message);
}

void tether_progress(tether_request *req, double fraction, const char *fmt,
                     ...) {
  va_list ap;
  va_start(ap, fmt);
  char message[1024];
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "id", id_value(req->id_text));
  params =
      tether_json_object_set(params, "message", tether_json_string(message));
  if (fraction >= 0)
    params = tether_json_object_set(
        params, "fraction", tether_json_double(fraction > 1 ? 1 : fraction));
  size_t len;
  char *text = dump_and_drop(tt_rpc_notification("progress", params), &len);
  pthread_mutex_lock(&tt_prov.mu);
  /* Progress after the answer would name a request the host has
   * forgotten. */
  if (!req->answered && can_notify_locked())
    tt_prov_write_locked(text, len);
  pthread_mutex_unlock(&tt_prov.mu);
  free(text);
}
