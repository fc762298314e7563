/*
 * request.c: a request's life (creation, references, cancellation), what
 * a handler can ask about it, and the handler's answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_lib.h"
#include "util.h"

static const char *const op_names[TT_PROV_OP_COUNT] = {
    "create", "update", "delete", "read", "state_read", "state_event"};

const char *tt_prov_op_name(tt_prov_op op) { return op_names[op]; }

bool tt_prov_op_from_method(const char *method, tt_prov_op *op) {
  for (int i = 0; i < TT_PROV_OP_COUNT; i++) {
    if (strcmp(method, op_names[i]) == 0) {
      *op = (tt_prov_op)i;
      return true;
    }
  }
  return false;
}

tether_handler *tt_prov_op_handler(const tether_resource_type *t,
                                   tt_prov_op op) {
  switch (op) {
  case TT_PROV_OP_CREATE:
    return t->op_create;
  case TT_PROV_OP_UPDATE:
    return t->op_update;
  case TT_PROV_OP_DELETE:
    return t->op_delete;
  case TT_PROV_OP_READ:
    return t->op_read;
  case TT_PROV_OP_STATE_READ:
    return t->op_state_read;
  case TT_PROV_OP_STATE_EVENT:
    return t->op_state_event;
  }
  return NULL;
}

/* ---- Life ---- */

/* The id as JSON text. A number is its own text, which for the ids hosts
 * send fits the request's small array and costs no allocation. */
static void set_id_text(tether_request *req) {
  const char *number = tether_json_number_str(req->msg.id);
  size_t len = number ? strlen(number) : 0;
  if (number && len < sizeof req->id_small) {
    memcpy(req->id_small, number, len + 1);
    req->id_text = req->id_small;
  } else {
    req->id_text = tether_json_dumps(req->msg.id, NULL);
  }
}

/* The last request freed, kept for the next one, so that a host sending
 * one request at a time costs no allocation for them. Any thread may free
 * a request, hence the atomic exchanges. */
static _Atomic(tether_request *) spare_request;

static tether_request *request_alloc(void) {
  tether_request *req = atomic_exchange(&spare_request, NULL);
  if (!req)
    return tt_calloc(1, sizeof *req);
  memset(req, 0, sizeof *req);
  return req;
}

void tt_prov_request_cache_free(void) {
  free(atomic_exchange(&spare_request, NULL));
}

tether_request *tt_prov_request_new(tt_msg *m, tt_prov_batch *batch) {
  tether_request *req = request_alloc();
  req->msg = *m;
  memset(m, 0, sizeof *m);
  set_id_text(req);
  atomic_init(&req->cancelled, false);
  req->refs = 2;
  pthread_mutex_lock(&tt_prov.mu);
  req->next = tt_prov.unanswered;
  if (req->next)
    req->next->prev = req;
  tt_prov.unanswered = req;
  tt_prov.nunanswered++;
  if (batch) {
    req->batch = batch;
    req->slot = tt_prov_batch_slot_locked(batch);
    batch->refs++;
  }
  pthread_mutex_unlock(&tt_prov.mu);
  return req;
}

void tt_prov_request_ref_locked(tether_request *req) { req->refs++; }

bool tt_prov_request_unref_locked(tether_request *req) {
  return --req->refs == 0;
}

void tt_prov_request_free(tether_request *req) {
  /* The element of a batch is released before the batch, which may free
   * the array holding it. */
  tt_msg_free(&req->msg);
  tether_json_unref(req->empty_object);
  if (req->id_text != req->id_small)
    free(req->id_text);
  if (req->batch)
    tt_prov_batch_release(req->batch);
  free(atomic_exchange(&spare_request, req));
}

void tt_prov_request_release(tether_request *req) {
  pthread_mutex_lock(&tt_prov.mu);
  bool last = tt_prov_request_unref_locked(req);
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

static _Noreturn void misuse(const tether_request *req, const char *what) {
  fprintf(stderr, "%s: the %s handler%s%s%s %s\n", tt_prov_name(),
          req->msg.method ? req->msg.method : "?",
          req->type_name ? " of type \"" : "",
          req->type_name ? req->type_name : "", req->type_name ? "\"" : "",
          what);
  abort();
}

void tt_prov_run_handler(tether_request *req) {
  tether_handler *handler = tt_prov_op_handler(req->type, req->op);
  pthread_mutex_lock(&tt_prov.mu);
  req->handler = TT_PROV_HANDLER_RUNNING;
  tt_prov_request_ref_locked(req);
  pthread_mutex_unlock(&tt_prov.mu);
  tether_done *done = handler(req);
  (void)done;
  /* The caller's reference keeps req alive here even when the handler's
   * answer dropped the handler's; it is dropped in the same turn of the
   * lock that reads the handler's state. */
  pthread_mutex_lock(&tt_prov.mu);
  tt_prov_handler_state state = req->handler;
  bool misused = state == TT_PROV_HANDLER_RUNNING ||
                 state == TT_PROV_HANDLER_RESOLVED_EARLY;
  bool last = !misused && tt_prov_request_unref_locked(req);
  pthread_mutex_unlock(&tt_prov.mu);
  if (state == TT_PROV_HANDLER_RUNNING)
    misuse(req, "returned without answering");
  if (state == TT_PROV_HANDLER_RESOLVED_EARLY)
    misuse(req, "resolved its request but returned without "
                "tether_reply_pending");
  if (last)
    tt_prov_request_free(req);
}

void tt_prov_cancel(const char *id_text) {
  pthread_mutex_lock(&tt_prov.mu);
  tether_request *req = tt_prov.unanswered;
  while (req && strcmp(req->id_text, id_text) != 0)
    req = req->next;
  bool last = false;
  if (req) {
    atomic_store(&req->cancelled, true);
    last = tt_prov_deliver_locked(
        req, tt_prov_error(TETHER_ERR_CANCELLED, "request cancelled", NULL));
  }
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

void tt_prov_abandon_all(void) {
  tether_request *to_free = NULL;
  pthread_mutex_lock(&tt_prov.mu);
  tt_prov.out_closed = true;
  while (tt_prov.unanswered) {
    tether_request *req = tt_prov.unanswered;
    atomic_store(&req->cancelled, true);
    /* With the channel closed this only unlinks the request. */
    if (tt_prov_deliver_locked(req, tt_prov_result(NULL))) {
      req->next = to_free;
      to_free = req;
    }
  }
  pthread_mutex_unlock(&tt_prov.mu);
  while (to_free) {
    tether_request *next = to_free->next;
    tt_prov_request_free(to_free);
    to_free = next;
  }
}

/* ---- Accessors ---- */

const char *tether_request_method(const tether_request *req) {
  return req->msg.method;
}

const char *tether_request_id(const tether_request *req) {
  return req->id_text;
}

const char *tether_request_type(const tether_request *req) {
  return req->type_name;
}

const tether_json *tether_request_params(const tether_request *req) {
  return req->params;
}

const tether_json *tether_request_inputs(const tether_request *req) {
  return req->inputs;
}

const tether_json *tether_request_resource(const tether_request *req) {
  return req->resource;
}

const tether_json *tether_request_outputs(const tether_request *req) {
  return req->outputs;
}

bool tether_request_is_stateful(const tether_request *req) {
  return req->is_stateful;
}

void *tether_request_data(const tether_request *req) {
  return tt_prov.info ? tt_prov.info->data : NULL;
}

bool tether_request_cancelled(const tether_request *req) {
  return atomic_load(&req->cancelled);
}

/* ---- Answers ---- */

/* What every reply function returns: proof of an answer, never looked
 * into. */
static max_align_t done_token;

static tether_done *done(void) { return (tether_done *)&done_token; }

/* The handler's answer: checks that it is the first, then sends it. */
static void handler_answer(tether_request *req, bool resolving,
                           tt_prov_answer a) {
  pthread_mutex_lock(&tt_prov.mu);
  const char *wrong = NULL;
  /* The handler's reference goes with its last act: the answer, or for a
   * request resolved early, the tether_reply_pending still to come. */
  bool handler_done = true;
  switch (req->handler) {
  case TT_PROV_HANDLER_NONE:
    wrong = "answered a request it was not given";
    break;
  case TT_PROV_HANDLER_RUNNING:
    if (resolving) {
      req->handler = TT_PROV_HANDLER_RESOLVED_EARLY;
      handler_done = false;
    } else {
      req->handler = TT_PROV_HANDLER_DONE;
    }
    break;
  case TT_PROV_HANDLER_PENDING:
    if (resolving)
      req->handler = TT_PROV_HANDLER_DONE;
    else
      wrong = "answered twice (a reply after tether_reply_pending; use "
              "tether_resolve or tether_reject)";
    break;
  case TT_PROV_HANDLER_RESOLVED_EARLY:
  case TT_PROV_HANDLER_DONE:
    wrong = "answered twice";
    break;
  }
  if (wrong) {
    pthread_mutex_unlock(&tt_prov.mu);
    tt_prov_answer_drop(&a);
    misuse(req, wrong);
  }
  bool last = tt_prov_deliver_locked(req, a);
  if (handler_done)
    last = tt_prov_request_unref_locked(req) || last;
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

static void answer_result(tether_request *req, bool resolving,
                          tether_json *result) {
  handler_answer(req, resolving, tt_prov_result(result));
}

static void answer_error(tether_request *req, bool resolving, int code,
                         tether_json *data, const char *fmt, va_list ap) {
  char message[1024];
  vsnprintf(message, sizeof message, fmt, ap);
  handler_answer(req, resolving, tt_prov_error(code, message, data));
}

tether_done *tether_reply_ok(tether_request *req, tether_json *result) {
  answer_result(req, false, result);
  return done();
}

tether_done *tether_reply_outputs(tether_request *req, tether_json *outputs) {
  /* The answer is written around the outputs: a one-member object built
   * only to be serialized would cost allocations and a copy of the
   * outputs' text. */
  tt_prov_answer a = tt_prov_result(outputs);
  a.outputs_only = true;
  handler_answer(req, false, a);
  return done();
}

tether_done *tether_reply_error(tether_request *req, int code,
                                tether_json *data, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  answer_error(req, false, code, data, fmt, ap);
  va_end(ap);
  return done();
}

tether_done *tether_reply_invalid(tether_request *req, const char *path,
                                  const char *fmt, ...) {
  tether_json *data = tether_json_object();
  data = tether_json_object_set(data, "path", tether_json_string(path));
  va_list ap;
  va_start(ap, fmt);
  answer_error(req, false, TETHER_ERR_INVALID_PARAMS, data, fmt, ap);
  va_end(ap);
  return done();
}

tether_done *tether_reply_cancelled(tether_request *req) {
  handler_answer(req, false,
                 tt_prov_error(TETHER_ERR_CANCELLED, "request cancelled",
                               NULL));
  return done();
}

tether_done *tether_reply_pending(tether_request *req) {
  pthread_mutex_lock(&tt_prov.mu);
  tt_prov_handler_state state = req->handler;
  const char *wrong = NULL;
  switch (state) {
  case TT_PROV_HANDLER_RUNNING:
    req->handler = TT_PROV_HANDLER_PENDING;
    break;
  case TT_PROV_HANDLER_RESOLVED_EARLY:
    /* The answer went out already; this was the handler's last act. The
     * caller (the dispatcher) still holds a reference, so this one is
     * never the last. */
    req->handler = TT_PROV_HANDLER_DONE;
    tt_prov_request_unref_locked(req);
    break;
  case TT_PROV_HANDLER_PENDING:
    wrong = "called tether_reply_pending twice";
    break;
  case TT_PROV_HANDLER_NONE:
  case TT_PROV_HANDLER_DONE:
    wrong = "called tether_reply_pending after answering";
    break;
  }
  pthread_mutex_unlock(&tt_prov.mu);
  if (wrong)
    misuse(req, wrong);
  return done();
}

void tether_resolve(tether_request *req, tether_json *result) {
  answer_result(req, true, result);
}

void tether_reject(tether_request *req, int code, tether_json *data,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  answer_error(req, true, code, data, fmt, ap);
  va_end(ap);
}

tether_done *tether_check_inputs(tether_request *req, const tether_json *obj,
                                 const char *where,
                                 const tether_input *inputs) {
  tt_prov_problem p = {0};
  const char *err = tt_prov_check_inputs(obj, where, inputs, &p);
  if (!err)
    return NULL;
  handler_answer(req, false, tt_prov_error(p.code, p.message, p.data));
  return done();
}
