/*
 * rpc.h: JSON-RPC 2.0 messages (SPEC section 3), as values. Classifies a
 * parsed message exactly as the specification says and builds the ones we
 * send. Knows nothing of pipes, framing or resources.
 *
 * Classification follows the JSON-RPC 2.0 specification and nothing more:
 * "jsonrpc" must be the string "2.0"; an id, when present, is a string, a
 * number or null; a message with "method" is a request when it has an "id"
 * member (even "id": null) and a notification when it has none; params,
 * when present, is an object or an array (the provider layer insists on an
 * object); a response has an id and exactly one of result and error; an
 * error is {code: integer, message: string, data?: any}. Members the
 * specification does not name are ignored.
 */
#ifndef TETHER_PROTOCOL_RPC_H
#define TETHER_PROTOCOL_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/json.h"
#include "tether/protocol.h"

typedef enum tt_msg_kind {
  TT_MSG_REQUEST,      /* method + id */
  TT_MSG_NOTIFICATION, /* method, no id */
  TT_MSG_RESPONSE,     /* id + result */
  TT_MSG_ERROR,        /* id (maybe null) + error */
  TT_MSG_INVALID       /* not a valid JSON-RPC 2.0 message; see below */
} tt_msg_kind;

/* One message. All pointers are borrowed from `root`, which the message
 * owns; tt_msg_free drops it. */
typedef struct tt_msg {
  tt_msg_kind kind;
  tether_json *root;
  /* String, number or null; NULL when the message has no "id" member or,
   * for TT_MSG_INVALID, when its id is not a valid one: an answer then
   * carries "id": null. */
  const tether_json *id;
  const char *method;            /* requests and notifications */
  const tether_json *params;     /* object or array; NULL when absent */
  const tether_json *result;     /* TT_MSG_RESPONSE */
  int error_code;                /* TT_MSG_ERROR */
  const char *error_message;     /* TT_MSG_ERROR */
  const tether_json *error_data; /* TT_MSG_ERROR; NULL when absent */
  /* TT_MSG_INVALID: what is wrong, and the code to answer it with
   * (TETHER_ERR_INVALID_REQUEST, with `id` or null). A malformed message
   * is answered even when it has no id: only a valid notification goes
   * unanswered. */
  int invalid_code;
  char invalid_reason[160];
} tt_msg;

/* Classifies v (consumed) into *m. Never fails: a value that is not a
 * valid message gives TT_MSG_INVALID with the reason. Batches (arrays) are
 * not messages: callers split them first (classifying an array says so).
 * Classify a batch element with tether_json_ref(element). */
void tt_msg_classify(tether_json *v, tt_msg *m);
void tt_msg_free(tt_msg *m);

/* True when id is a valid JSON-RPC id (string, number or null). */
bool tt_rpc_id_valid(const tether_json *id);
/* Short text for an id, for messages: 7, "abc" (quoted, cut short), null;
 * "none" for NULL. Always NUL-terminates out (outlen > 0). */
void tt_rpc_id_describe(const tether_json *id, char *out, size_t outlen);

/* Builders. Each returns a new message value; params/result/data/id are
 * consumed (NULL params or data are omitted; a NULL id becomes null). */
tether_json *tt_rpc_request(int64_t id, const char *method,
                            tether_json *params);
tether_json *tt_rpc_notification(const char *method, tether_json *params);
tether_json *tt_rpc_result(tether_json *id, tether_json *result);
tether_json *tt_rpc_error(tether_json *id, int code, const char *message,
                          tether_json *data);

#endif /* TETHER_PROTOCOL_RPC_H */
