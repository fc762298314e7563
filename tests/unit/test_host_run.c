/*
 * test_host_run.c: `tether run`'s command line and the requests it builds
 * (host/run.c), without a provider process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "run.h"
#include "tether/json.h"

#define ARGV(...) ((char *[]){"run", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"run", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) tt_run_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o))

static void assert_json(const tether_json *v, const char *expected) {
  char *text = tether_json_dumps(v, NULL);
  tether_json *want = tether_json_parse(expected, strlen(expected), NULL);
  assert_non_null(want);
  if (!tether_json_equal(v, want))
    fail_msg("got %s\nwant %s", text, expected);
  tether_json_unref(want);
  free(text);
}

static void assert_params(tt_run_opts *o, const char *expected) {
  tether_json *p = tt_run_params(o);
  assert_json(p, expected);
  tether_json_unref(p);
}

static void assert_usage_error(const char *err, const char *needle) {
  assert_non_null(err);
  if (!strstr(err, needle))
    fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_create(void **state) {
  tt_run_opts o;
  const char *err = PARSE(&o, "create", "--provider-exe", "tether-local",
                          "--type", "file", "--input-str", "name", "a.txt",
                          "--input-json", "mode", "420", "--stateful");
  assert_null(err);
  assert_int_equal(o.op, TT_RUN_CREATE);
  assert_string_equal(o.provider_exe, "tether-local");
  assert_string_equal(tt_run_method(o.op), "create");
  assert_params(&o, "{\"type\":\"file\",\"inputProperties\":{\"name\":\"a.txt\","
                    "\"mode\":420},\"isStateful\":true}");
  assert_int_equal(o.repeat, 0);
  assert_int_equal(o.pipeline, 1);
  assert_int_equal(o.framing, TT_FRAMING_NDJSON);
  tt_run_opts_free(&o);
}

static void test_inputs_merge(void **state) {
  /* --input-* land on top of --inputs-json whatever the order. */
  tt_run_opts o;
  const char *err =
      PARSE(&o, "create", "--input-str", "b", "two", "--provider-exe", "x",
            "--inputs-json", "{\"a\":1,\"b\":\"one\"}", "--type", "t");
  assert_null(err);
  assert_params(&o, "{\"type\":\"t\",\"inputProperties\":{\"a\":1,\"b\":\"two\"},"
                    "\"isStateful\":false}");
  tt_run_opts_free(&o);
}

static void test_update(void **state) {
  tt_run_opts o;
  const char *err = PARSE(&o, "update", "--provider-exe", "p", "--type", "file",
                          "--inputs-json", "{\"contents\":\"new\"}",
                          "--previous-inputs-json", "{\"contents\":\"old\"}",
                          "--previous-outputs-json", "{\"path\":\"/x\"}");
  assert_null(err);
  assert_params(&o, "{\"resource\":{\"type\":\"file\",\"inputProperties\":"
                    "{\"contents\":\"old\"},\"outputProperties\":{\"path\":\"/x\"}},"
                    "\"inputProperties\":{\"contents\":\"new\"}}");
  tt_run_opts_free(&o);
}

static void test_existing_resource_ops(void **state) {
  static const struct {
    char *op;
    const char *method;
  } ops[] = {{"delete", "delete"}, {"read", "read"}, {"state-read", "state_read"}};
  for (size_t i = 0; i < 3; i++) {
    tt_run_opts o;
    const char *err = PARSE(&o, ops[i].op, "--provider-exe", "p", "--type", "t",
                            "--inputs-json", "{\"a\":1}", "--outputs-json",
                            "{\"b\":2}");
    assert_null(err);
    assert_string_equal(tt_run_method(o.op), ops[i].method);
    assert_params(&o, "{\"resource\":{\"type\":\"t\",\"inputProperties\":{\"a\":1},"
                      "\"outputProperties\":{\"b\":2}}}");
    tt_run_opts_free(&o);
  }
}

static void test_outputs_default_empty(void **state) {
  tt_run_opts o;
  assert_null(PARSE(&o, "read", "--provider-exe", "p", "--type", "t"));
  assert_params(&o, "{\"resource\":{\"type\":\"t\",\"inputProperties\":{},"
                    "\"outputProperties\":{}}}");
  tt_run_opts_free(&o);
}

static void test_state_event(void **state) {
  tt_run_opts o;
  const char *err = PARSE(&o, "state-event", "--provider-exe", "p", "--type",
                          "state_file", "--input-str", "name", "s.json",
                          "--event", "create", "--nixops-version", "9.9",
                          "--patch-json",
                          "[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]",
                          "--expect-index", "3");
  assert_null(err);
  assert_string_equal(tt_run_method(o.op), "state_event");
  assert_params(&o, "{\"resource\":{\"type\":\"state_file\",\"inputProperties\":"
                    "{\"name\":\"s.json\"},\"outputProperties\":{}},\"event\":"
                    "\"create\",\"hostVersion\":\"9.9\",\"patch\":[{\"op\":\"add\","
                    "\"path\":\"/x\",\"value\":1}],\"expectIndex\":3}");
  tt_run_opts_free(&o);

  err = PARSE(&o, "state-event", "--provider-exe", "p", "--type", "s", "--event",
              "e", "--patch-json", "[]");
  assert_null(err);
  assert_params(&o, "{\"resource\":{\"type\":\"s\",\"inputProperties\":{},"
                    "\"outputProperties\":{}},\"event\":\"e\",\"hostVersion\":"
                    "\"" TETHER_VERSION "\",\"patch\":[]}");
  tt_run_opts_free(&o);
}

static void test_load_and_timing_flags(void **state) {
  tt_run_opts o;
  const char *err = PARSE(&o, "read", "--provider-exe", "p", "--provider-arg",
                          "-v", "--provider-arg", "--db=x", "--type", "t",
                          "--repeat", "20000", "--pipeline", "8", "--timeout",
                          "1.5", "--start-timeout=2", "--framing",
                          "content-length");
  assert_null(err);
  assert_int_equal(o.repeat, 20000);
  assert_int_equal(o.pipeline, 8);
  assert_int_equal(o.timeout_ms, 1500);
  assert_int_equal(o.start_timeout_ms, 2000);
  assert_int_equal(o.framing, TT_FRAMING_CONTENT_LENGTH);
  assert_string_equal(o.provider_args[0], "-v");
  assert_string_equal(o.provider_args[1], "--db=x");
  assert_null(o.provider_args[2]);
  tt_run_opts_free(&o);
}

static void test_usage_errors(void **state) {
  tt_run_opts o;
  assert_usage_error(PARSE(&o, "create", "--provider-exe", "p", "--type", "t",
                           "--bogus"),
                     "unknown flag '--bogus'");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "--provider-exe", "p", "--type", "t"),
                     "missing the operation");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "frobnicate"), "unknown operation 'frobnicate'");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--type", "t"), "--provider-exe is required");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p"), "--type is required");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type"),
                     "--type needs a value");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--input-str", "k"),
                     "--input-str needs two values");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--inputs-json", "{\"a\":}"),
                     "--inputs-json: invalid JSON at byte 5");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--inputs-json", "[1]"),
                     "--inputs-json needs a JSON object, got an array");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--input-json", "k", "nope"),
                     "--input-json k: invalid JSON");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "state-event", "--provider-exe", "p", "--type",
                           "t", "--event", "x"),
                     "state-event needs --patch-json");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "state-event", "--provider-exe", "p", "--type",
                           "t", "--event", "x", "--patch-json", "{}"),
                     "--patch-json needs a JSON array, got an object");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--repeat", "0"),
                     "--repeat needs a positive integer");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--repeat", "-3"),
                     "--repeat needs a positive integer");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--pipeline", "4"),
                     "--pipeline needs --repeat");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--timeout", "soon"),
                     "--timeout needs a number of seconds");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--start-timeout", "0"),
                     "--start-timeout needs a number of seconds above 0");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                           "--framing", "xml"),
                     "--framing needs ndjson or content-length, got 'xml'");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "read", "read", "--provider-exe", "p"),
                     "unexpected argument 'read'");
  tt_run_opts_free(&o);
  assert_usage_error(PARSE(&o, "state-event", "--provider-exe", "p", "--type",
                           "t", "--event", "x", "--patch-json", "[]",
                           "--expect-index", "-1"),
                     "--expect-index needs an integer >= 0");
  tt_run_opts_free(&o);
}

static void test_flags_of_other_operations(void **state) {
  /* Ignored with a warning: scripts pass resource flags to every
   * operation. They never reach the request. */
  tt_run_opts o;
  assert_null(PARSE(&o, "create", "--provider-exe", "p", "--type", "t",
                    "--outputs-json", "{\"x\":1}", "--event", "e"));
  assert_string_equal(o.warnings, "--outputs-json does not apply to create; "
                                  "ignored\n--event does not apply to create; "
                                  "ignored\n");
  assert_params(&o, "{\"type\":\"t\",\"inputProperties\":{},"
                    "\"isStateful\":false}");
  tt_run_opts_free(&o);
  assert_null(PARSE(&o, "read", "--provider-exe", "p", "--type", "t",
                    "--stateful"));
  assert_string_equal(o.warnings, "--stateful does not apply to read; ignored\n");
  tt_run_opts_free(&o);
  assert_null(PARSE(&o, "read", "--provider-exe", "p", "--type", "t"));
  assert_string_equal(o.warnings, "");
  tt_run_opts_free(&o);
}

static void test_help(void **state) {
  tt_run_opts o;
  assert_null(PARSE(&o, "--help"));
  assert_true(o.help);
  tt_run_opts_free(&o);
}

static void test_main_usage_exit_status(void **state) {
  /* A usage error never starts a provider and exits 2. */
  assert_int_equal(tt_run_main(ARGC("read", "--nope"), ARGV("read", "--nope")), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create),
      cmocka_unit_test(test_inputs_merge),
      cmocka_unit_test(test_update),
      cmocka_unit_test(test_existing_resource_ops),
      cmocka_unit_test(test_outputs_default_empty),
      cmocka_unit_test(test_state_event),
      cmocka_unit_test(test_load_and_timing_flags),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_flags_of_other_operations),
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_main_usage_exit_status),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
