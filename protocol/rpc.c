/*
 * rpc.c: classifying JSON-RPC 2.0 messages and building the ones we send.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "rpc.h"
#include "util.h"

bool tt_rpc_id_valid(const tether_json *id) {
  return id && (tether_json_is_string(id) || tether_json_is_number(id) ||
                tether_json_is_null(id));
}

void tt_rpc_id_describe(const tether_json *id, char *out, size_t outlen) {
  if (!id) {
    snprintf(out, outlen, "none");
  } else if (tether_json_is_number(id)) {
    snprintf(out, outlen, "%s", tether_json_number_str(id));
  } else if (tether_json_is_string(id)) {
    const char *s = tether_json_string_value(id);
    size_t len = tether_json_string_length(id);
    int shown = len > 40 ? 40 : (int)len;
    snprintf(out, outlen, "\"%.*s%s\"", shown, s, len > 40 ? "..." : "");
  } else if (tether_json_is_null(id)) {
    snprintf(out, outlen, "null");
  } else {
    snprintf(out, outlen, "(%s)",
             tether_json_kind_name(tether_json_kind_of(id)));
  }
}

/* The members the specification names, found in one pass over the
 * message: looking each one up by name would search the object again
 * for every name, and this runs for every message either side reads. */
typedef struct named_members {
  const tether_json *jsonrpc, *id, *method, *params, *result, *error;
} named_members;

static void find_members(const tether_json *v, named_members *n) {
  *n = (named_members){0};
  size_t it = 0, len;
  const char *key;
  tether_json *value;
  while (tether_json_object_next(v, &it, &key, &len, &value)) {
    switch (len) {
    case 2:
      if (memcmp(key, "id", 2) == 0)
        n->id = value;
      break;
    case 5:
      if (memcmp(key, "error", 5) == 0)
        n->error = value;
      break;
    case 6:
      if (memcmp(key, "method", 6) == 0)
        n->method = value;
      else if (memcmp(key, "params", 6) == 0)
        n->params = value;
      else if (memcmp(key, "result", 6) == 0)
        n->result = value;
      break;
    case 7:
      if (memcmp(key, "jsonrpc", 7) == 0)
        n->jsonrpc = value;
      break;
    default:
      break;
    }
  }
}

static const char *check_version(const named_members *n) {
  const tether_json *version = n->jsonrpc;
  if (!version)
    return "missing \"jsonrpc\": \"2.0\"";
  if (!tether_json_is_string(version) ||
      tether_json_string_length(version) != 3 ||
      memcmp(tether_json_string_value(version), "2.0", 3) != 0)
    return "\"jsonrpc\" must be \"2.0\"";
  return NULL;
}

static const char *check_id(const named_members *n, tt_msg *m) {
  if (!n->id)
    return NULL;
  if (!tt_rpc_id_valid(n->id))
    return "\"id\" must be a string, a number or null";
  m->id = n->id;
  return NULL;
}

static const char *classify_call(const named_members *n, tt_msg *m) {
  const tether_json *method = n->method;
  if (!tether_json_is_string(method))
    return "\"method\" must be a string";
  if (strlen(tether_json_string_value(method)) !=
      tether_json_string_length(method))
    return "\"method\" must not contain a NUL character";
  if (n->result || n->error)
    return "a request must not carry \"result\" or \"error\"";
  const tether_json *params = n->params;
  if (params && !tether_json_is_object(params) && !tether_json_is_array(params))
    return "\"params\" must be an object or an array";
  m->method = tether_json_string_value(method);
  m->params = params;
  m->kind = n->id ? TT_MSG_REQUEST : TT_MSG_NOTIFICATION;
  return NULL;
}

static const char *classify_error(const tether_json *error, tt_msg *m) {
  if (!tether_json_is_object(error))
    return "\"error\" must be an object";
  const tether_json *code = tether_json_object_get(error, "code");
  int64_t c;
  if (!code || !tether_json_get_int(code, &c) || c < INT_MIN || c > INT_MAX)
    return "\"error.code\" must be an integer";
  const tether_json *message = tether_json_object_get(error, "message");
  if (!tether_json_is_string(message))
    return "\"error.message\" must be a string";
  m->error_code = (int)c;
  m->error_message = tether_json_string_value(message);
  m->error_data = tether_json_object_get(error, "data");
  m->kind = TT_MSG_ERROR;
  return NULL;
}

static const char *classify_response(const named_members *n, tt_msg *m) {
  if (!n->id)
    return "a response must have an \"id\"";
  if (n->result && n->error)
    return "a response must not have both \"result\" and \"error\"";
  if (n->error)
    return classify_error(n->error, m);
  m->result = n->result;
  m->kind = TT_MSG_RESPONSE;
  return NULL;
}

static const char *classify(const tether_json *v, tt_msg *m) {
  if (tether_json_is_array(v))
    return "a batch is not a single message";
  if (!tether_json_is_object(v))
    return "a message must be an object";
  named_members n;
  find_members(v, &n);
  const char *err = check_id(&n, m);
  if (!err)
    err = check_version(&n);
  if (err)
    return err;
  if (n.method)
    return classify_call(&n, m);
  if (n.result || n.error)
    return classify_response(&n, m);
  return "neither a request (no \"method\") nor a response (no \"result\" "
         "or \"error\")";
}

/* Clears what classification fills in, except the kind, the root and the
 * id: a message found invalid carries none of it. */
static void clear_fields(tt_msg *m) {
  m->method = NULL;
  m->params = NULL;
  m->result = NULL;
  m->error_code = 0;
  m->error_message = NULL;
  m->error_data = NULL;
  m->invalid_code = 0;
  m->invalid_reason[0] = '\0';
}

void tt_msg_classify(tether_json *v, tt_msg *m) {
  /* Field by field: clearing the whole struct would also clear the
   * reason's buffer, which only an invalid message fills. */
  m->kind = TT_MSG_INVALID;
  m->root = v;
  m->id = NULL;
  clear_fields(m);
  const char *err = classify(v, m);
  if (!err)
    return;
  clear_fields(m);
  m->kind = TT_MSG_INVALID;
  m->invalid_code = TETHER_ERR_INVALID_REQUEST;
  if (!tether_json_is_object(v))
    snprintf(m->invalid_reason, sizeof m->invalid_reason, "%s, not %s", err,
             tt_json_kind_phrase(tether_json_kind_of(v)));
  else
    snprintf(m->invalid_reason, sizeof m->invalid_reason, "%s", err);
}

void tt_msg_free(tt_msg *m) {
  tether_json_unref(m->root);
  memset(m, 0, sizeof *m);
}

static tether_json *envelope(void) {
  tether_json *m = tether_json_object();
  return tether_json_object_set(m, "jsonrpc", tether_json_string("2.0"));
}

tether_json *tt_rpc_request(int64_t id, const char *method,
                            tether_json *params) {
  tether_json *m = envelope();
  m = tether_json_object_set(m, "id", tether_json_int(id));
  m = tether_json_object_set(m, "method", tether_json_string(method));
  if (params)
    m = tether_json_object_set(m, "params", params);
  return m;
}

tether_json *tt_rpc_notification(const char *method, tether_json *params) {
  tether_json *m = envelope();
  m = tether_json_object_set(m, "method", tether_json_string(method));
  if (params)
    m = tether_json_object_set(m, "params", params);
  return m;
}

tether_json *tt_rpc_result(tether_json *id, tether_json *result) {
  tether_json *m = envelope();
  m = tether_json_object_set(m, "id", id ? id : tether_json_null());
  return tether_json_object_set(m, "result",
                                result ? result : tether_json_null());
}

tether_json *tt_rpc_error(tether_json *id, int code, const char *message,
                          tether_json *data) {
  tether_json *e = tether_json_object();
  e = tether_json_object_set(e, "code", tether_json_int(code));
  e = tether_json_object_set(e, "message", tether_json_string(message));
  if (data)
    e = tether_json_object_set(e, "data", data);
  tether_json *m = envelope();
  m = tether_json_object_set(m, "id", id ? id : tether_json_null());
  return tether_json_object_set(m, "error", e);
}
