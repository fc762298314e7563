/*
 * output.c: everything the provider writes to the host. Each message is
 * framed into one buffer and written whole under tt_prov.mu; batch answers
 * wait in their slots until the batch is complete.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

char *tt_prov_result_text(const char *id_text, tether_json *result,
                          size_t *len) {
  return dump_and_drop(tt_rpc_result(id_value(id_text), result), len);
}

char *tt_prov_error_text(const char *id_text, int code, const char *message,
                         tether_json *data, size_t *len) {
  if (!message || !*message)
    message = tether_error_name(code) ? tether_error_name(code) : "error";
  return dump_and_drop(tt_rpc_error(id_value(id_text), code, message, data),
                       len);
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

static bool write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

void tt_prov_write_locked(const char *text, size_t len) {
  if (tt_prov.out_closed || tt_prov.out_fd < 0)
    return;
  tether_buf framed;
  tether_buf_init(&framed);
  tt_frame_write(tt_prov.framing, &framed, text, len);
  bool ok = write_all(tt_prov.out_fd, framed.data, framed.len);
  tether_buf_free(&framed);
  if (!ok) {
    /* The host stopped reading (EPIPE with SIGPIPE ignored, or worse):
     * nobody is left to talk to, so the provider ends without a fuss. */
    tt_prov.out_closed = true;
    tt_prov.out_broken = true;
    tt_prov_wake_locked();
  }
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

bool tt_prov_deliver_locked(tether_request *req, char *text, size_t len) {
  if (req->answered) {
    free(text);
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
  if (req->batch) {
    batch_put_locked(req->batch, req->slot, text, len);
  } else {
    tt_prov_write_locked(text, len);
    free(text);
  }
  if (tt_prov.draining || tt_prov.shutdown)
    tt_prov_wake_locked();
  return tt_prov_request_unref_locked(req);
}

void tt_prov_deliver(tether_request *req, char *text, size_t len) {
  pthread_mutex_lock(&tt_prov.mu);
  bool last = tt_prov_deliver_locked(req, text, len);
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

void tt_prov_answer_other(tt_prov_batch *batch, char *text, size_t len) {
  pthread_mutex_lock(&tt_prov.mu);
  if (batch) {
    size_t slot = tt_prov_batch_slot_locked(batch);
    batch_put_locked(batch, slot, text, len);
  } else {
    tt_prov_write_locked(text, len);
    free(text);
  }
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
