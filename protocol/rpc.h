/*
 * rpc.h: JSON-RPC 2.0 messages (SPEC section 3), as values. Classifies a
 * parsed message exactly as the specification says and builds the ones we
 * send. Knows nothing of pipes, framing or resources.
 */
#ifndef TETHER_PROTOCOL_RPC_H
#define TETHER_PROTOCOL_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "tether/json.h"
#include "tether/protocol.h"

typedef enum tt_msg_kind {
  TT_MSG_REQUEST,      /* method + id */
  TT_MSG_NOTIFICATION, /* method, no id */
  TT_MSG_RESPONSE,     /* id + result */
  TT_MSG_ERROR,        /* id (maybe null) + error */
  TT_MSG_INVALID       /* not a valid JSON-RPC 2.0 message; see err */
} tt_msg_kind;

/* One message. All pointers are borrowed from `root`, which the message
 * owns; tt_msg_free drops it. */
typedef struct tt_msg {
  tt_msg_kind kind;
  tether_json *root;
  const tether_json *id;     /* string, number or null; NULL when absent */
  const char *method;        /* requests and notifications */
  const tether_json *params; /* object or array; NULL when absent */
  const tether_json *result; /* TT_MSG_RESPONSE */
  int error_code;            /* TT_MSG_ERROR */
  const char *error_message; /* TT_MSG_ERROR */
  const tether_json *error_data; /* TT_MSG_ERROR; NULL when absent */
  /* TT_MSG_INVALID: what is wrong, and the code to answer it with
   * (-32600; an id when one could be read, else null). */
  int invalid_code;
  char invalid_reason[160];
} tt_msg;

/* Classifies v (consumed) into *m. Never fails: a value that is not a
 * valid message gives TT_MSG_INVALID with the reason. Batches (arrays) are
 * not messages: callers split them with tether_json_array_get first. */
void tt_msg_classify(tether_json *v, tt_msg *m);
void tt_msg_free(tt_msg *m);

/* True when id is a valid JSON-RPC id (string, number or null). */
bool tt_rpc_id_valid(const tether_json *id);
/* Short text for an id, for messages: 7, "abc" (quoted), null. */
void tt_rpc_id_describe(const tether_json *id, char *out, size_t outlen);

/* Builders. Each returns a new message value; params/result/data/id are
 * consumed (NULL params or data are omitted). */
tether_json *tt_rpc_request(int64_t id, const char *method,
                            tether_json *params);
tether_json *tt_rpc_notification(const char *method, tether_json *params);
tether_json *tt_rpc_result(tether_json *id, tether_json *result);
tether_json *tt_rpc_error(tether_json *id, int code, const char *message,
                          tether_json *data);

#endif /* TETHER_PROTOCOL_RPC_H */
