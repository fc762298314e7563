/*
 * test_rpc.c: JSON-RPC 2.0 classification (what is a request, a
 * notification, a response, and what is invalid and why), the message
 * builders and the error code names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rpc.h"

static void classify_text(const char *text, tt_msg *m) {
  tether_json_error err;
  tether_json *v = tether_json_parse(text, strlen(text), &err);
  if (!v)
    fail_msg("test input does not parse: %s: %s", text, err.message);
  tt_msg_classify(v, m);
}

/* The id as JSON text, or "absent". */
static char *id_text(const tt_msg *m) {
  return m->id ? tether_json_dumps(m->id, NULL) : strdup("absent");
}

static void expect_kind(const char *text, tt_msg_kind kind,
                        const char *want_id) {
  tt_msg m;
  classify_text(text, &m);
  if (m.kind != kind)
    fail_msg("%s: kind %d, want %d (%s)", text, m.kind, kind, m.invalid_reason);
  char *id = id_text(&m);
  if (strcmp(id, want_id) != 0)
    fail_msg("%s: id %s, want %s", text, id, want_id);
  free(id);
  tt_msg_free(&m);
}

static void expect_invalid(const char *text, const char *want_id,
                           const char *reason) {
  tt_msg m;
  classify_text(text, &m);
  if (m.kind != TT_MSG_INVALID)
    fail_msg("%s: classified as %d, want invalid", text, m.kind);
  assert_int_equal(m.invalid_code, TETHER_ERR_INVALID_REQUEST);
  char *id = id_text(&m);
  if (strcmp(id, want_id) != 0)
    fail_msg("%s: id %s, want %s", text, id, want_id);
  free(id);
  if (!strstr(m.invalid_reason, reason))
    fail_msg("%s: reason \"%s\" does not say \"%s\"", text, m.invalid_reason,
             reason);
  tt_msg_free(&m);
}

static void requests(void **state) {
  tt_msg m;
  classify_text("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"create\","
                "\"params\":{\"type\":\"file\"}}",
                &m);
  assert_int_equal(m.kind, TT_MSG_REQUEST);
  assert_string_equal(m.method, "create");
  assert_true(tether_json_is_object(m.params));
  int64_t id;
  assert_true(tether_json_get_int(m.id, &id));
  assert_int_equal(id, 7);
  tt_msg_free(&m);

  expect_kind("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\"}",
              TT_MSG_REQUEST, "\"a\"");
  expect_kind("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}",
              TT_MSG_REQUEST, "null");
  expect_kind("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}",
              TT_MSG_REQUEST, "1.5");
  expect_kind("{\"method\":\"x\",\"params\":[1,2],\"id\":-3,"
              "\"jsonrpc\":\"2.0\"}",
              TT_MSG_REQUEST, "-3");
  /* A 20-digit id survives as it was written. */
  expect_kind("{\"jsonrpc\":\"2.0\",\"id\":12345678901234567890123,"
              "\"method\":\"x\"}",
              TT_MSG_REQUEST, "12345678901234567890123");
  /* Members the specification does not name are ignored. */
  expect_kind("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"extra\":1}",
              TT_MSG_REQUEST, "1");
}

static void notifications(void **state) {
  tt_msg m;
  classify_text("{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\","
                "\"params\":{\"id\":3}}",
                &m);
  assert_int_equal(m.kind, TT_MSG_NOTIFICATION);
  assert_null(m.id);
  assert_string_equal(m.method, "$/cancelRequest");
  tt_msg_free(&m);
  expect_kind("{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}", TT_MSG_NOTIFICATION,
              "absent");
}

static void responses(void **state) {
  tt_msg m;
  classify_text("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"a\":1}}", &m);
  assert_int_equal(m.kind, TT_MSG_RESPONSE);
  assert_true(tether_json_is_object(m.result));
  tt_msg_free(&m);

  classify_text("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":null}", &m);
  assert_int_equal(m.kind, TT_MSG_RESPONSE);
  assert_true(tether_json_is_null(m.result));
  tt_msg_free(&m);

  classify_text("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
                "-32700,\"message\":\"parse error\",\"data\":[1]}}",
                &m);
  assert_int_equal(m.kind, TT_MSG_ERROR);
  assert_true(tether_json_is_null(m.id));
  assert_int_equal(m.error_code, -32700);
  assert_string_equal(m.error_message, "parse error");
  assert_true(tether_json_is_array(m.error_data));
  tt_msg_free(&m);

  classify_text("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":1,"
                "\"message\":\"\"}}",
                &m);
  assert_int_equal(m.kind, TT_MSG_ERROR);
  assert_null(m.error_data);
  tt_msg_free(&m);
}

static void invalid_messages(void **state) {
  expect_invalid("[1]", "absent", "batch");
  expect_invalid("\"hello\"", "absent", "not a string");
  expect_invalid("42", "absent", "must be an object");
  expect_invalid("{\"id\":1,\"method\":\"x\"}", "1", "missing \"jsonrpc\"");
  expect_invalid("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}", "1",
                 "must be \"2.0\"");
  expect_invalid("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"x\"}", "1",
                 "must be \"2.0\"");
  expect_invalid("{\"jsonrpc\":\"2.0\\u0000\",\"id\":1,\"method\":\"x\"}", "1",
                 "must be \"2.0\"");
  /* An id of the wrong kind cannot be echoed: the answer gets null. */
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}", "absent",
                 "\"id\" must be");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"x\"}", "absent",
                 "\"id\" must be");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"x\"}", "absent",
                 "\"id\" must be");
  /* The specification's own example: answered, although it has no id. */
  expect_invalid("{\"jsonrpc\":\"2.0\",\"method\":1,\"params\":\"bar\"}",
                 "absent", "\"method\" must be a string");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"x\","
                 "\"params\":\"bar\"}",
                 "4", "\"params\" must be an object or an array");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"x\","
                 "\"params\":null}",
                 "4", "\"params\"");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"x\","
                 "\"result\":1}",
                 "4", "must not carry");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"a\\u0000b\"}", "4",
                 "NUL");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":4}", "4", "neither");
  expect_invalid("{\"foo\":\"boo\"}", "absent", "jsonrpc");
}

static void invalid_responses(void **state) {
  expect_invalid("{\"jsonrpc\":\"2.0\",\"result\":1}", "absent",
                 "must have an \"id\"");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":"
                 "{\"code\":1,\"message\":\"m\"}}",
                 "1", "both");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"bad\"}", "1",
                 "\"error\" must be an object");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,"
                 "\"message\":\"m\"}}",
                 "1", "error.code");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":"
                 "\"1\",\"message\":\"m\"}}",
                 "1", "error.code");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":"
                 "99999999999,\"message\":\"m\"}}",
                 "1", "error.code");
  expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}", "1",
                 "error.message");
}

static void ids(void **state) {
  tether_json *v = tether_json_int(12);
  char out[64];
  tt_rpc_id_describe(v, out, sizeof out);
  assert_string_equal(out, "12");
  assert_true(tt_rpc_id_valid(v));
  tether_json_unref(v);
  v = tether_json_string("abc");
  tt_rpc_id_describe(v, out, sizeof out);
  assert_string_equal(out, "\"abc\"");
  tether_json_unref(v);
  v = tether_json_string("0123456789012345678901234567890123456789xyz");
  tt_rpc_id_describe(v, out, sizeof out);
  assert_string_equal(out, "\"0123456789012345678901234567890123456789...\"");
  tether_json_unref(v);
  v = tether_json_null();
  tt_rpc_id_describe(v, out, sizeof out);
  assert_string_equal(out, "null");
  assert_true(tt_rpc_id_valid(v));
  tether_json_unref(v);
  tt_rpc_id_describe(NULL, out, sizeof out);
  assert_string_equal(out, "none");
  assert_false(tt_rpc_id_valid(NULL));
  v = tether_json_bool(true);
  assert_false(tt_rpc_id_valid(v));
  tether_json_unref(v);
  /* A small buffer is cut, not overrun. */
  v = tether_json_string("abcdef");
  char tiny[4];
  tt_rpc_id_describe(v, tiny, sizeof tiny);
  assert_string_equal(tiny, "\"ab");
  tether_json_unref(v);
}

static void expect_dump(tether_json *v, const char *want) {
  char *text = tether_json_dumps(v, NULL);
  assert_string_equal(text, want);
  free(text);
  tether_json_unref(v);
}

static void builders(void **state) {
  expect_dump(tt_rpc_request(3, "create", tether_json_object()),
              "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"create\","
              "\"params\":{}}");
  expect_dump(tt_rpc_request(4, "shutdown", NULL),
              "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"shutdown\"}");
  expect_dump(tt_rpc_notification("exit", NULL),
              "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  expect_dump(tt_rpc_result(tether_json_string("a"), tether_json_int(1)),
              "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":1}");
  expect_dump(tt_rpc_result(tether_json_int(1), NULL),
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}");
  expect_dump(tt_rpc_error(NULL, -32700, "parse error", NULL),
              "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
              "\"message\":\"parse error\"}}");
  expect_dump(
      tt_rpc_error(tether_json_int(9), -32001, "unknown", tether_json_array()),
      "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32001,"
      "\"message\":\"unknown\",\"data\":[]}}");
}

static void built_messages_classify_back(void **state) {
  /* What we build, the other side classifies as what we meant. */
  tt_msg m;
  tt_msg_classify(tt_rpc_request(5, "read", tether_json_object()), &m);
  assert_int_equal(m.kind, TT_MSG_REQUEST);
  tt_msg_free(&m);
  tt_msg_classify(tt_rpc_notification("log", tether_json_object()), &m);
  assert_int_equal(m.kind, TT_MSG_NOTIFICATION);
  tt_msg_free(&m);
  tt_msg_classify(tt_rpc_result(tether_json_int(5), tether_json_null()), &m);
  assert_int_equal(m.kind, TT_MSG_RESPONSE);
  tt_msg_free(&m);
  tt_msg_classify(tt_rpc_error(NULL, -32600, "bad", NULL), &m);
  assert_int_equal(m.kind, TT_MSG_ERROR);
  assert_int_equal(m.error_code, -32600);
  tt_msg_free(&m);
}

static void error_names(void **state) {
  assert_string_equal(tether_error_name(TETHER_ERR_PARSE), "parse error");
  assert_string_equal(tether_error_name(TETHER_ERR_INVALID_PARAMS),
                      "invalid params");
  assert_string_equal(tether_error_name(TETHER_ERR_STATE_LOCKED),
                      "state store locked");
  assert_string_equal(tether_error_name(TETHER_ERR_CANCELLED),
                      "request cancelled");
  static const int all[] = {TETHER_ERR_PARSE,
                            TETHER_ERR_INVALID_REQUEST,
                            TETHER_ERR_METHOD_NOT_FOUND,
                            TETHER_ERR_INVALID_PARAMS,
                            TETHER_ERR_INTERNAL,
                            TETHER_ERR_FAILED,
                            TETHER_ERR_UNKNOWN_TYPE,
                            TETHER_ERR_NOT_INITIALIZED,
                            TETHER_ERR_REQUIRES_STATE,
                            TETHER_ERR_UNSUPPORTED,
                            TETHER_ERR_STATE_LOCKED,
                            TETHER_ERR_STATE_CONFLICT,
                            TETHER_ERR_STATE_CORRUPT,
                            TETHER_ERR_NOT_FOUND,
                            TETHER_ERR_CANCELLED};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    assert_non_null(tether_error_name(all[i]));
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(tether_error_name(all[i]),
                              tether_error_name(all[j]));
  }
  assert_null(tether_error_name(0));
  assert_null(tether_error_name(-32099));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(requests),
      cmocka_unit_test(notifications),
      cmocka_unit_test(responses),
      cmocka_unit_test(invalid_messages),
      cmocka_unit_test(invalid_responses),
      cmocka_unit_test(ids),
      cmocka_unit_test(builders),
      cmocka_unit_test(built_messages_classify_back),
      cmocka_unit_test(error_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
