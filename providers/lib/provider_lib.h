/*
 * provider_lib.h: the inside of the provider library (tether/provider.h).
 *
 *   provider.c  tether_provider_main: the protocol channel, the main loop,
 *               the lifecycle (initialize, shutdown, exit, EOF)
 *   request.c   requests: their life, accessors, the handler's answers,
 *               cancellation
 *   params.c    what the library checks before a handler runs
 *   output.c    everything written to the host: answers, batches, log and
 *               progress notifications
 *   workers.c   the worker threads that run handlers when info.threads > 0
 *
 * Threads. The main thread reads, classifies and dispatches; handlers run
 * on it (threads == 0) or on workers; tether_resolve, tether_log and
 * friends may come from any thread. Everything shared lives in `tt_prov`
 * and is guarded by tt_prov.mu, which is never held while a handler runs.
 * Messages are written whole under the same mutex, so they never
 * interleave; an answer is also serialized under it, by the thread that
 * answers, into a buffer kept from one answer to the next.
 *
 * JSON values are not thread-safe (tether/json.h), so no value is shared
 * between threads that could touch it at once: a request's message tree
 * is touched only by the thread handling the request, answers carry the
 * id's text (made when the request arrives), and what crosses threads is
 * text.
 *
 * A request is reference counted under tt_prov.mu. References: the main
 * thread's while it dispatches (moved to the worker queue with threads >
 * 0), the wire's until an answer is on its way (or dropped at exit), and
 * the handler's from the moment it runs until its last act: its answer,
 * or for a pending request tether_resolve or tether_reject, or
 * tether_reply_pending when another thread resolved the request before
 * the handler returned it.
 */
#ifndef TETHER_PROVIDER_LIB_H
#define TETHER_PROVIDER_LIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "framing.h"
#include "rpc.h"
#include "tether/provider.h"

/* The operations of SPEC section 5, in the order initialize lists them. */
typedef enum tt_prov_op {
  TT_PROV_OP_CREATE,
  TT_PROV_OP_UPDATE,
  TT_PROV_OP_DELETE,
  TT_PROV_OP_READ,
  TT_PROV_OP_STATE_READ,
  TT_PROV_OP_STATE_EVENT
} tt_prov_op;
#define TT_PROV_OP_COUNT 6

/* The method name of op ("state_read"). */
const char *tt_prov_op_name(tt_prov_op op);
/* The op a method names; false for anything else. */
bool tt_prov_op_from_method(const char *method, tt_prov_op *op);
/* The type's handler for op, or NULL when it has none. */
tether_handler *tt_prov_op_handler(const tether_resource_type *t,
                                   tt_prov_op op);

/* Where the conversation is (SPEC section 4). */
typedef enum tt_prov_phase {
  TT_PROV_WAITING, /* before initialize: requests get -32002 */
  TT_PROV_READY,   /* initialized: operations run */
  TT_PROV_SHUTDOWN /* shutdown received: requests get -32600 */
} tt_prov_phase;

/* Where a request's handler is. */
typedef enum tt_prov_handler_state {
  TT_PROV_HANDLER_NONE,    /* not run (yet, or ever: answered by the
                              library) */
  TT_PROV_HANDLER_RUNNING, /* running and has not answered */
  TT_PROV_HANDLER_PENDING, /* answered tether_reply_pending */
  /* Resolved (by the thread the work was handed to) before the handler
   * got to return tether_reply_pending: a race that is no misuse. */
  TT_PROV_HANDLER_RESOLVED_EARLY,
  TT_PROV_HANDLER_DONE /* answered */
} tt_prov_handler_state;

/* A batch (SPEC section 3: a JSON array of messages), answered by one
 * array once every member that needs an answer has one. */
typedef struct tt_prov_batch {
  tether_json *root; /* the array; requests borrow their elements */
  char **answers;    /* answer texts, in slot order */
  size_t *lengths;
  size_t nslots;      /* slots handed out */
  size_t outstanding; /* slots without an answer, plus the reader's hold */
  int refs;           /* the reader's plus one per request */
} tt_prov_batch;

struct tether_request {
  tt_msg msg;    /* owns the message (or a reference to the element) */
  char *id_text; /* the id as JSON text: id_small or malloc'd */
  char id_small[24];
  tt_prov_batch *batch;
  size_t slot;
  tt_prov_op op; /* for the operations of SPEC section 5 */
  const tether_resource_type *type;
  const char *type_name;
  const tether_json *params;   /* the params object, or NULL */
  const tether_json *resource; /* params.resource, or NULL */
  const tether_json *inputs;
  const tether_json *outputs;
  tether_json *empty_object; /* what outputs points at when absent */
  bool is_stateful;
  atomic_bool cancelled;
  /* Guarded by tt_prov.mu. */
  int refs;
  bool answered; /* an answer is on its way (or was dropped at the end) */
  tt_prov_handler_state handler;
  struct tether_request *prev, *next; /* the unanswered list */
  struct tether_request *queue_next;  /* the worker queue */
};

typedef struct tt_prov_state {
  const tether_provider_info *info;
  pthread_mutex_t mu;
  pthread_cond_t work; /* workers wait on it for the queue */

  /* Output. */
  int out_fd;
  tt_framing framing; /* DETECT until the first message arrives */
  bool out_closed;    /* nothing more is written: exit came, or a write
                         failed */
  bool out_broken;    /* a write failed: the host is gone */
  /* An answer's text, kept from one answer to the next so that answering
   * allocates nothing; frames go out as pieces around it. */
  tether_buf text_buf;

  /* Lifecycle; the phase is changed by the main thread only. */
  tt_prov_phase phase;
  bool shutdown_received;
  tether_request *shutdown; /* a shutdown waiting for earlier answers */
  tether_request *unanswered;
  size_t nunanswered;

  /* The main loop's wake-up pipe, valid while running. An answer writes
   * to it only when the loop waits for answers (stdin ended, or a
   * shutdown waits for earlier requests): a syscall per answer would cost
   * more than everything else on the path. */
  bool running;
  bool draining; /* stdin ended: the loop ends when all are answered */
  int wake_rd, wake_wr;

  /* Worker threads (info.threads > 0). */
  pthread_t *threads;
  int nthreads;
  tether_request *queue_head, *queue_tail;
  bool stopping;
} tt_prov_state;

extern tt_prov_state tt_prov;

/* A reason to refuse a request before its handler runs. */
typedef struct tt_prov_problem {
  int code;
  tether_json *data; /* owned; NULL when none */
  char message[512];
} tt_prov_problem;

/* The provider's name for stderr lines ("tether provider" before main). */
const char *tt_prov_name(void);

/* ---- The main loop (provider.c) ---- */

/* Runs the protocol on in_fd/out_fd until exit, EOF or a fatal error and
 * returns the exit status. tether_provider_main calls it after setting up
 * the process; it leaves the fds open. */
int tt_prov_run(const tether_provider_info *info, int in_fd, int out_fd);

/* ---- Requests (request.c) ---- */

/* Makes a request of m (moved into it; *m is emptied), registered as
 * unanswered, with two references: the caller's and the wire's. */
tether_request *tt_prov_request_new(tt_msg *m, tt_prov_batch *batch);
void tt_prov_request_release(tether_request *req);
/* Takes another reference; caller holds tt_prov.mu. */
void tt_prov_request_ref_locked(tether_request *req);
/* Drops a reference; caller holds tt_prov.mu. True when it was the last:
 * the caller then frees the request with tt_prov_request_free after
 * unlocking. */
bool tt_prov_request_unref_locked(tether_request *req);
void tt_prov_request_free(tether_request *req);
/* Frees the request kept for reuse; at the end of a run. */
void tt_prov_request_cache_free(void);
/* Runs the request's handler on this thread, checks that it answered and
 * drops the caller's reference. */
void tt_prov_run_handler(tether_request *req);
/* $/cancelRequest: marks the request with this id cancelled and answers
 * it with -32800 when it has no answer yet. */
void tt_prov_cancel(const char *id_text);
/* At the end: marks every unanswered request cancelled and drops it from
 * the wire, so late answers go nowhere. */
void tt_prov_abandon_all(void);

/* ---- Checks before a handler runs (params.c) ---- */

/* Checks req's params for its op and fills in its type, resource, inputs
 * and outputs. NULL when the handler may run, else the reason in *p. */
const char *tt_prov_check_request(tether_request *req, tt_prov_problem *p);
/* Checks obj (at JSON Pointer `where`) against a declared input list. */
const char *tt_prov_check_inputs(const tether_json *obj, const char *where,
                                 const tether_input *inputs,
                                 tt_prov_problem *p);
/* Checks that a type table makes sense; NULL when it does. */
const char *tt_prov_check_info(const tether_provider_info *info, char *buf,
                               size_t buflen);

/* ---- Output (output.c) ---- */

/* An answer to a request: a result, or an error with its code, message and
 * data. Whoever is handed one consumes its values (result, data), also
 * when the answer goes nowhere. */
typedef struct tt_prov_answer {
  bool is_error;
  tether_json *result; /* NULL means null */
  /* The result is {"outputProperties": result} (NULL meaning {}), written
   * around it instead of built. */
  bool outputs_only;
  int code;
  const char *message; /* borrowed; NULL or "" gives the code's name */
  tether_json *data;   /* NULL when none */
} tt_prov_answer;

static inline tt_prov_answer tt_prov_result(tether_json *result) {
  return (tt_prov_answer){.result = result};
}
static inline tt_prov_answer tt_prov_error(int code, const char *message,
                                           tether_json *data) {
  return (tt_prov_answer){
      .is_error = true, .code = code, .message = message, .data = data};
}
/* Drops the values of an answer that is not sent. */
void tt_prov_answer_drop(tt_prov_answer *a);

/* Sends a for req (consuming its values) unless req has an answer
 * already, then drops the wire's reference. */
void tt_prov_deliver(tether_request *req, tt_prov_answer a);
/* The same with tt_prov.mu held; true when the wire's reference was the
 * last (the caller frees req after unlocking). */
bool tt_prov_deliver_locked(tether_request *req, tt_prov_answer a);
/* Answers something that is not a request (an unparseable or malformed
 * message; id_text NULL for "id": null): directly, or into batch when it
 * is part of one. */
void tt_prov_answer_other(tt_prov_batch *batch, const char *id_text,
                          tt_prov_answer a);
/* Writes one framed message; caller holds tt_prov.mu. */
void tt_prov_write_locked(const char *text, size_t len);
/* Wakes the main loop; caller holds tt_prov.mu. */
void tt_prov_wake_locked(void);
/* Frees the buffers output keeps between messages; at the end of a run. */
void tt_prov_output_free_locked(void);

tt_prov_batch *tt_prov_batch_new(tether_json *root);
/* Hands out the next answer slot; caller holds tt_prov.mu. */
size_t tt_prov_batch_slot_locked(tt_prov_batch *b);
/* The reader is done with the batch: it may now be answered and freed. */
void tt_prov_batch_done(tt_prov_batch *b);
/* Drops a request's reference to its batch. */
void tt_prov_batch_release(tt_prov_batch *b);

/* ---- Worker threads (workers.c) ---- */

void tt_prov_workers_start(int n);
/* Queues req for a worker, taking over the caller's reference. */
void tt_prov_enqueue(tether_request *req);
/* Stops the workers once they have finished what they run; with
 * drop_queue, requests not started yet are not started at all. */
void tt_prov_workers_stop(bool drop_queue);

#endif /* TETHER_PROVIDER_LIB_H */
