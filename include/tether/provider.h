/*
 * tether/provider.h: write a tether resource provider in C.
 *
 * A provider is a table of resource types with one handler per operation.
 * The library does the rest: the JSON-RPC 2.0 conversation on stdin and
 * stdout in either framing, `initialize` and its version check, requests
 * before it (-32002), `shutdown` and `exit`, EOF, batches, unknown methods
 * and types, input validation, `$/cancelRequest`, and keeping stray prints
 * off the protocol channel (fd 1 is pointed at stderr; the protocol uses a
 * private copy of it).
 *
 *     static tether_done *hello_create(tether_request *req) {
 *       const tether_json *in = tether_request_inputs(req);
 *       tether_json *out = tether_json_object();
 *       out = tether_json_object_set(out, "greeting", tether_json_stringf(
 *           "hello, %s", tether_json_string_value(
 *               tether_json_object_get(in, "name"))));
 *       return tether_reply_outputs(req, out);
 *     }
 *     static const tether_input hello_inputs[] = {
 *       {.name = "name", .kind = TETHER_JSON_STRING, .required = true},
 *       {.name = NULL}};
 *     static const tether_resource_type types[] = {
 *       {.name = "hello", .description = "Greets someone",
 *        .inputs = hello_inputs, .op_create = hello_create, ...},
 *       {NULL}};
 *     int main(int argc, char **argv) {
 *       tether_provider_info info = {.name = "hello", .version = "1.0",
 *                                    .types = types};
 *       return tether_provider_main(&info, argc, argv);
 *     }
 *
 * Every handler returns a `tether_done *`, which only the reply functions
 * below produce: a handler that forgets to answer does not compile (with
 * -Werror), and one that answers twice, or returns without answering (say,
 * `return NULL;`), aborts with a message naming the method.
 *
 * Before a handler runs, the library has checked the params of its
 * operation (SPEC section 5): the members each operation needs are there
 * with the right JSON kinds (-32602 with data.path otherwise), the type is
 * known (-32001) and has the operation (-32011), a create with isStateful
 * false on a require_state type was refused (-32010), and, when the type
 * has an `inputs` table, create's and update's inputProperties match it.
 * For state_event the patch is a well-formed RFC 6902 document (-32602
 * with data {"path": "/patch/I", "op": I}) and expectIndex, when present,
 * an integer >= 0.
 *
 * Ownership of JSON values follows tether/json.h: `tether_json *`
 * arguments are consumed, `const tether_json *` results are borrowed from
 * the request and live until it is answered.
 */
#ifndef TETHER_PROVIDER_H
#define TETHER_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/json.h"
#include "tether/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tether_request tether_request;
/* Proof that a request was answered (or will be, for pending ones). Never
 * defined: only the reply functions make one. */
typedef struct tether_done tether_done;

typedef tether_done *tether_handler(tether_request *req);

/* One input property a resource type accepts. */
typedef struct tether_input {
  const char *name;      /* NULL ends a list */
  tether_json_kind kind; /* the JSON kind it must have */
  bool required;
  bool any_kind; /* accept any JSON kind; `kind` is ignored */
} tether_input;

typedef struct tether_resource_type {
  const char *name; /* NULL ends the table */
  const char *description;
  bool require_state; /* refuse create with isStateful false (-32010) */
  /* Implements state_read and state_event: set exactly when both
   * op_state_read and op_state_event are (tether_provider_main refuses a
   * table where they disagree). */
  bool state_provider;
  /* When set, the library checks inputProperties of create and update
   * against it before calling the handler: unknown members, missing
   * required ones and wrong kinds get -32602 with data.path. */
  const tether_input *inputs;
  /* NULL for an operation the type does not support (-32011). */
  tether_handler *op_create;
  tether_handler *op_update;
  tether_handler *op_delete;
  tether_handler *op_read;
  tether_handler *op_state_read;
  tether_handler *op_state_event;
} tether_resource_type;

typedef struct tether_provider_info {
  const char *name;
  const char *version;
  /* Requests the host may send at once (default 1). With threads == 0 the
   * handlers run one at a time on the library's thread and a concurrency
   * above 1 only lets the host pipeline; with threads > 0 they run on that
   * many worker threads. */
  int concurrency;
  int threads;
  const tether_resource_type *types;
  void *data; /* handed to handlers through tether_request_data() */
  /* Largest message accepted from the host, in bytes; 0 means 64 MiB. A
   * larger one is answered with -32600 and ends the provider. */
  size_t max_message_size;
} tether_provider_info;

/* Runs the provider until the host says exit or closes stdin. Returns the
 * process exit status: 0 after `shutdown` then `exit`, or at EOF once
 * everything received is answered; 1 for `exit` without `shutdown`, a
 * fatal protocol error (an oversized message, a broken content-length
 * header, a host that stopped reading), the one-line hint printed when
 * stdin is a terminal, and a type table that contradicts itself (reported
 * on stderr). Call it from main() and return what it returns.
 *
 * On `exit`, requests still running are marked cancelled and nothing more
 * is written; the function returns once the worker threads have finished
 * the handlers they were running. On EOF, requests already received are
 * still answered: it returns once all of them are. A pending request that
 * another thread resolves after the return is dropped quietly.
 *
 * stdin and stdout are the protocol channel: the library keeps private
 * copies of both, then points fd 0 at /dev/null (a child process a handler
 * starts cannot eat the host's messages) and fd 1 at stderr (a stray
 * printf cannot corrupt them). SIGPIPE is ignored; when the host stops
 * reading, the provider ends quietly. The only argument looked at is a
 * lone `--version`, which prints "NAME VERSION" and returns 0; the rest
 * are the provider's own. */
int tether_provider_main(const tether_provider_info *info, int argc,
                         char **argv);

/* ---- The request being handled ---- */

const char *tether_request_method(const tether_request *req);
/* The request's id as JSON text (7 or "abc"), for log lines. */
const char *tether_request_id(const tether_request *req);
/* The resource type: params.type for create, params.resource.type else. */
const char *tether_request_type(const tether_request *req);
const tether_json *tether_request_params(const tether_request *req);
/* The inputProperties that matter: create's and update's new ones, and the
 * existing resource's for delete, read, state_read and state_event. */
const tether_json *tether_request_inputs(const tether_request *req);
/* The existing resource {type, inputProperties, outputProperties}; NULL
 * for create. */
const tether_json *tether_request_resource(const tether_request *req);
/* The existing resource's outputProperties (an empty object when absent);
 * NULL for create. */
const tether_json *tether_request_outputs(const tether_request *req);
/* create's isStateful. */
bool tether_request_is_stateful(const tether_request *req);
void *tether_request_data(const tether_request *req);
/* True once the host sent $/cancelRequest for this request (or `exit`
 * came). The library has then already answered -32800 for it and will drop
 * whatever the handler answers: a handler that notices stops its work and
 * answers, with tether_reply_cancelled() or anything else. Any thread. */
bool tether_request_cancelled(const tether_request *req);

/* ---- Answers ---- */

/* result is consumed. */
tether_done *tether_reply_ok(tether_request *req,
                             tether_json *result) TETHER_MUST_USE;
/* {"outputProperties": outputs}; outputs is consumed. */
tether_done *tether_reply_outputs(tether_request *req,
                                  tether_json *outputs) TETHER_MUST_USE;
/* An error with a code from tether/protocol.h; data (consumed) may be
 * NULL. */
tether_done *tether_reply_error(tether_request *req, int code,
                                tether_json *data, const char *fmt,
                                ...) TETHER_MUST_USE TETHER_PRINTF(4, 5);
/* -32602 with data {"path": path}, e.g. "/inputProperties/mode". */
tether_done *tether_reply_invalid(tether_request *req, const char *path,
                                  const char *fmt, ...) TETHER_MUST_USE
    TETHER_PRINTF(3, 4);
/* -32800. */
tether_done *tether_reply_cancelled(tether_request *req) TETHER_MUST_USE;
/* The answer will come later, from any thread, through tether_resolve or
 * tether_reject (exactly one of them, exactly once); until then the
 * request and what its accessors return stay valid. A handler may hand
 * the request to another thread first and return this last: when that
 * thread resolves it before the handler gets here, all is well. */
tether_done *tether_reply_pending(tether_request *req) TETHER_MUST_USE;
void tether_resolve(tether_request *req, tether_json *result);
void tether_reject(tether_request *req, int code, tether_json *data,
                   const char *fmt, ...) TETHER_PRINTF(4, 5);

/* ---- Talking to the host while working (any thread) ---- */

typedef enum tether_log_level {
  TETHER_LOG_ERROR,
  TETHER_LOG_WARN,
  TETHER_LOG_INFO,
  TETHER_LOG_DEBUG
} tether_log_level;

/* A `log` notification. Before the first message from the host has told
 * the library which framing to use, and after the end, the line goes to
 * stderr instead. */
void tether_log(tether_log_level level, const char *fmt, ...)
    TETHER_PRINTF(2, 3);
/* A `progress` notification for req; fraction in [0, 1] (clamped), or
 * negative for none. Dropped once req has been answered. */
void tether_progress(tether_request *req, double fraction, const char *fmt, ...)
    TETHER_PRINTF(3, 4);

/* ---- Checking inputs by hand ---- */

/* Checks obj against inputs as the library does for create and update;
 * NULL when fine, else a reply already made for req: return it.
 * `where` is the JSON Pointer of obj in the params, for data.path. */
tether_done *tether_check_inputs(tether_request *req, const tether_json *obj,
                                 const char *where,
                                 const tether_input *inputs) TETHER_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TETHER_PROVIDER_H */
