/*
 * test_json_patch.c: JSON Patch (RFC 6902): the examples of its Appendix
 * A, every operation's edge cases, all-or-nothing application, error
 * messages, and a randomized check that a failed patch leaves the
 * document exactly as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_internal.h"
#include "tether/json.h"

static tether_json *parse(const char *s) {
  tether_json_error err;
  tether_json *v = tether_json_parse(s, strlen(s), &err);
  if (!v)
    fail_msg("parse of '%s' failed: %s", s, err.message);
  return v;
}

static char *dump(const tether_json *v) { return tether_json_dumps(v, NULL); }

/* Applies patch to doc; expect is the result, or NULL when the patch must
 * fail (then the message must contain says and name op as the failing
 * operation, and the document must be unchanged). */
static void check_patch(const char *doc, const char *patch, const char *expect,
                        long op, const char *says) {
  tether_json *d = parse(doc);
  tether_json *p = parse(patch);
  tether_json *before = d;
  char *before_text = dump(d);
  tether_json_error err;
  bool ok = tether_json_patch(&d, p, &err);
  if (expect) {
    if (!ok)
      fail_msg("patch %s on %s failed: %s", patch, doc, err.message);
    tether_json *want = parse(expect);
    if (!tether_json_equal(d, want)) {
      char *got = dump(d);
      fail_msg("patch %s on %s gave %s, expected %s", patch, doc, got,
               expect);
    }
    tether_json_unref(want);
  } else {
    if (ok) {
      char *got = dump(d);
      fail_msg("patch %s on %s succeeded with %s", patch, doc, got);
    }
    assert_ptr_equal(d, before);
    char *after_text = dump(d);
    assert_string_equal(before_text, after_text);
    free(after_text);
    assert_int_equal(err.op, op);
    if (!strstr(err.message, says))
      fail_msg("message lacks '%s': %s", says, err.message);
  }
  free(before_text);
  tether_json_unref(d);
  tether_json_unref(p);
}

/* ---- RFC 6902 Appendix A ---- */

static void test_a1_add_object_member(void **state) {
  (void)state;
  check_patch("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
              "{\"baz\":\"qux\",\"foo\":\"bar\"}", 0, NULL);
}

static void test_a2_add_array_element(void **state) {
  (void)state;
  check_patch("{\"foo\":[\"bar\",\"baz\"]}",
              "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
              "{\"foo\":[\"bar\",\"qux\",\"baz\"]}", 0, NULL);
}

static void test_a3_remove_object_member(void **state) {
  (void)state;
  check_patch("{\"baz\":\"qux\",\"foo\":\"bar\"}",
              "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}",
              0, NULL);
}

static void test_a4_remove_array_element(void **state) {
  (void)state;
  check_patch("{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
              "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
              "{\"foo\":[\"bar\",\"baz\"]}", 0, NULL);
}

static void test_a5_replace_value(void **state) {
  (void)state;
  check_patch("{\"baz\":\"qux\",\"foo\":\"bar\"}",
              "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
              "{\"baz\":\"boo\",\"foo\":\"bar\"}", 0, NULL);
}

static void test_a6_move_value(void **state) {
  (void)state;
  check_patch("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":"
              "\"grault\"}}",
              "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/"
              "thud\"}]",
              "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\","
              "\"thud\":\"fred\"}}",
              0, NULL);
}

static void test_a7_move_array_element(void **state) {
  (void)state;
  check_patch("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
              "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
              "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}", 0, NULL);
}

static void test_a8_test_success(void **state) {
  (void)state;
  check_patch("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
              "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
              "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}", 0, NULL);
}

static void test_a9_test_error(void **state) {
  (void)state;
  check_patch("{\"baz\":\"qux\"}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", NULL,
              0,
              "patch operation 0 (test /baz): test failed: the value is "
              "\"qux\", not \"bar\"");
}

static void test_a10_add_nested_member_object(void **state) {
  (void)state;
  check_patch("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":"
              "{}}}]",
              "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}", 0, NULL);
}

static void test_a11_ignore_unrecognized_elements(void **state) {
  (void)state;
  check_patch("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":"
              "123}]",
              "{\"foo\":\"bar\",\"baz\":\"qux\"}", 0, NULL);
}

static void test_a12_add_to_nonexistent_target(void **state) {
  (void)state;
  check_patch("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]",
              NULL, 0,
              "patch operation 0 (add /baz/bat): no such member 'baz'");
}

static void test_a13_invalid_patch_document(void **state) {
  (void)state;
  /* "op" appears twice; the parser keeps the last, so this is a remove of
   * a member that does not exist, and fails. */
  check_patch("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":"
              "\"remove\"}]",
              NULL, 0, "no such member 'baz'");
}

static void test_a14_escape_ordering(void **state) {
  (void)state;
  check_patch("{\"/\":9,\"~1\":10}",
              "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
              "{\"/\":9,\"~1\":10}", 0, NULL);
}

/* Keys written with escapes in a raw object's text, which a patch edits
 * as text: a key matches what its escapes spell, never its bytes. */
static void test_escaped_keys_in_text(void **state) {
  (void)state;
  check_patch("{\"r\":{\"a\\\\b\":1,\"q\":0}}",
              "[{\"op\":\"replace\",\"path\":\"/r/a\\\\b\",\"value\":7}]",
              "{\"r\":{\"a\\\\b\":7,\"q\":0}}", 0, NULL);
  check_patch("{\"r\":{\"a\\\\b\":1,\"q\":0}}",
              "[{\"op\":\"replace\",\"path\":\"/r/a\\\\\\\\b\",\"value\":7}]",
              NULL, 0, "no such member");
  check_patch("{\"r\":{\"a\\u0062\":1,\"q\":0}}",
              "[{\"op\":\"replace\",\"path\":\"/r/ab\",\"value\":5},"
              "{\"op\":\"remove\",\"path\":\"/r/q\"}]",
              "{\"r\":{\"ab\":5}}", 0, NULL);
}

static void test_a15_compare_strings_and_numbers(void **state) {
  (void)state;
  check_patch("{\"/\":9,\"~1\":10}",
              "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL,
              0, "test failed: the value is 10, not \"10\"");
}

static void test_a16_add_array_value(void **state) {
  (void)state;
  check_patch("{\"foo\":[\"bar\"]}",
              "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\","
              "\"def\"]}]",
              "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}", 0, NULL);
}

/* ---- Operations in detail ---- */

static void test_add(void **state) {
  (void)state;
  /* Add replaces an existing member, keeping its place. */
  check_patch("{\"a\":1,\"b\":2}",
              "[{\"op\":\"add\",\"path\":\"/a\",\"value\":3}]",
              "{\"a\":3,\"b\":2}", 0, NULL);
  tether_json *d = parse("{\"a\":1,\"b\":2}");
  tether_json *p = parse("[{\"op\":\"add\",\"path\":\"/a\",\"value\":3}]");
  assert_true(tether_json_patch(&d, p, NULL));
  char *s = dump(d);
  assert_string_equal(s, "{\"a\":3,\"b\":2}");
  free(s);
  tether_json_unref(d);
  tether_json_unref(p);
  /* The whole document. */
  check_patch("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":[1]}]",
              "[1]", 0, NULL);
  /* Array ends and bounds. */
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/2\",\"value\":3}]",
              "[1,2,3]", 0, NULL);
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":0}]",
              "[0,1,2]", 0, NULL);
  check_patch("[]", "[{\"op\":\"add\",\"path\":\"/-\",\"value\":0}]", "[0]",
              0, NULL);
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":3}]", NULL,
              0, "index 3 out of range (the array has 2 elements)");
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/01\",\"value\":3}]", NULL,
              0, "'01' is not an array index");
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/-1\",\"value\":3}]", NULL,
              0, "'-1' is not an array index");
  check_patch("[1,2]", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":3}]", NULL,
              0, "'a' is not an array index");
  /* Into a scalar. */
  check_patch("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":3}]",
              NULL, 0, "cannot look up 'b' in number");
  /* Escapes and odd keys. */
  check_patch("{}",
              "[{\"op\":\"add\",\"path\":\"/a~1b~0c\",\"value\":1},"
              "{\"op\":\"add\",\"path\":\"/\",\"value\":2}]",
              "{\"a/b~c\":1,\"\":2}", 0, NULL);
  /* Nested creation in one patch. */
  check_patch("{}",
              "[{\"op\":\"add\",\"path\":\"/r\",\"value\":{}},"
              "{\"op\":\"add\",\"path\":\"/r/x\",\"value\":[]},"
              "{\"op\":\"add\",\"path\":\"/r/x/-\",\"value\":1},"
              "{\"op\":\"add\",\"path\":\"/r/x/0\",\"value\":0}]",
              "{\"r\":{\"x\":[0,1]}}", 0, NULL);
}

static void test_remove_and_replace(void **state) {
  (void)state;
  check_patch("{\"a\":{\"b\":[1,2,3]}}",
              "[{\"op\":\"remove\",\"path\":\"/a/b/2\"},"
              "{\"op\":\"remove\",\"path\":\"/a/b/0\"}]",
              "{\"a\":{\"b\":[2]}}", 0, NULL);
  check_patch("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]", NULL, 0,
              "patch operation 0 (remove /b): no such member 'b'");
  check_patch("[1]", "[{\"op\":\"remove\",\"path\":\"/1\"}]", NULL, 0,
              "index 1 out of range (the array has 1 elements)");
  check_patch("[1]", "[{\"op\":\"remove\",\"path\":\"/-\"}]", NULL, 0,
              "index '-'");
  check_patch("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]", NULL, 0,
              "the whole document cannot be removed");
  check_patch("{\"a\":1}",
              "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"x\":null}}]",
              "{\"a\":{\"x\":null}}", 0, NULL);
  check_patch("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":7}]",
              "7", 0, NULL);
  check_patch("[1,2]", "[{\"op\":\"replace\",\"path\":\"/1\",\"value\":9}]",
              "[1,9]", 0, NULL);
  check_patch("{\"a\":1}",
              "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":2}]", NULL, 0,
              "patch operation 0 (replace /b): no such member 'b'");
  check_patch("[1,2]", "[{\"op\":\"replace\",\"path\":\"/2\",\"value\":9}]",
              NULL, 0, "index 2 out of range");
  check_patch("[1,2]", "[{\"op\":\"replace\",\"path\":\"/-\",\"value\":9}]",
              NULL, 0, "index '-'");
}

static void test_move_and_copy(void **state) {
  (void)state;
  check_patch("{\"a\":{\"b\":1}}",
              "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b\"}]", NULL, 0,
              "patch operation 0 (move /a to /a/b): a value cannot be moved "
              "into one of its own children");
  check_patch("{\"a\":{\"b\":1}}",
              "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/x\"}]", NULL, 0,
              "cannot be moved into one of its own children");
  /* "/a" is not a prefix of "/ab" in the pointer sense. */
  check_patch("{\"a\":1,\"ab\":{}}",
              "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/ab/c\"}]",
              "{\"ab\":{\"c\":1}}", 0, NULL);
  /* Moving to itself is allowed and changes nothing, but the source must
   * exist. */
  check_patch("{\"a\":1,\"b\":2}",
              "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
              "{\"a\":1,\"b\":2}", 0, NULL);
  check_patch("{\"a\":1}",
              "[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/y\"}]", NULL, 0,
              "patch operation 0 (move /x to /y): no such member 'x'");
  /* Moving a whole subtree out, then in again. */
  check_patch("{\"a\":{\"b\":{\"c\":[1]}},\"d\":{}}",
              "[{\"op\":\"move\",\"from\":\"/a/b\",\"path\":\"/d/b\"},"
              "{\"op\":\"add\",\"path\":\"/d/b/c/-\",\"value\":2}]",
              "{\"a\":{},\"d\":{\"b\":{\"c\":[1,2]}}}", 0, NULL);
  /* Copy, then modify the copy: the original is untouched. */
  check_patch("{\"a\":{\"x\":[1]}}",
              "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},"
              "{\"op\":\"add\",\"path\":\"/b/x/-\",\"value\":2},"
              "{\"op\":\"replace\",\"path\":\"/a/x/0\",\"value\":0}]",
              "{\"a\":{\"x\":[0]},\"b\":{\"x\":[1,2]}}", 0, NULL);
  /* Copy of the whole document into itself. */
  check_patch("{\"a\":1}",
              "[{\"op\":\"copy\",\"from\":\"\",\"path\":\"/self\"}]",
              "{\"a\":1,\"self\":{\"a\":1}}", 0, NULL);
  check_patch("{\"a\":1}",
              "[{\"op\":\"copy\",\"from\":\"/nope\",\"path\":\"/b\"}]", NULL,
              0, "patch operation 0 (copy /nope to /b): no such member");
  /* Array moves. */
  check_patch("[0,1,2,3]",
              "[{\"op\":\"move\",\"from\":\"/0\",\"path\":\"/-\"}]",
              "[1,2,3,0]", 0, NULL);
  check_patch("[0,1,2,3]",
              "[{\"op\":\"move\",\"from\":\"/3\",\"path\":\"/0\"}]",
              "[3,0,1,2]", 0, NULL);
}

static void test_test_op(void **state) {
  (void)state;
  /* Numbers compare by value, objects ignore member order. */
  check_patch("{\"n\":1.0,\"o\":{\"a\":1,\"b\":[true,null]}}",
              "[{\"op\":\"test\",\"path\":\"/n\",\"value\":1},"
              "{\"op\":\"test\",\"path\":\"/o\",\"value\":{\"b\":[true,null],"
              "\"a\":10e-1}},"
              "{\"op\":\"test\",\"path\":\"\",\"value\":{\"o\":{\"b\":[true,"
              "null],\"a\":1},\"n\":1}}]",
              "{\"n\":1,\"o\":{\"a\":1,\"b\":[true,null]}}", 0, NULL);
  check_patch("{\"a\":[1,2]}",
              "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[2,1]}]", NULL, 0,
              "test failed");
  check_patch("{\"a\":null}",
              "[{\"op\":\"test\",\"path\":\"/a\",\"value\":null},"
              "{\"op\":\"test\",\"path\":\"/b\",\"value\":null}]",
              NULL, 1, "patch operation 1 (test /b): no such member 'b'");
  /* A long value is cut short in the message. */
  check_patch("{\"a\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxx\"}",
              "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]", NULL, 0,
              "...");
}

/* ---- Shape ---- */

static void test_patch_check(void **state) {
  (void)state;
  struct {
    const char *patch;
    long op;
    const char *says;
  } bad[] = {
      {"{}", -1, "must be an array of operations, not object"},
      {"[1]", 0, "patch operation 0 is number, not an object"},
      {"[{\"path\":\"/a\"}]", 0, "missing member \"op\""},
      {"[{\"op\":3,\"path\":\"/a\"}]", 0, "member \"op\" is number"},
      {"[{\"op\":\"frob\",\"path\":\"/a\"}]", 0, "unknown op 'frob'"},
      {"[{\"op\":\"ADD\",\"path\":\"/a\",\"value\":1}]", 0, "unknown op"},
      {"[{\"op\":\"remove\"}]", 0, "missing member \"path\""},
      {"[{\"op\":\"remove\",\"path\":5}]", 0, "\"path\" is number"},
      {"[{\"op\":\"remove\",\"path\":\"a\"}]", 0, "not a JSON pointer"},
      {"[{\"op\":\"remove\",\"path\":\"/a~2\"}]", 0, "'~' must be followed"},
      {"[{\"op\":\"add\",\"path\":\"/a\"}]", 0, "missing member \"value\""},
      {"[{\"op\":\"replace\",\"path\":\"/a\"}]", 0, "missing member \"value\""},
      {"[{\"op\":\"test\",\"path\":\"/a\"}]", 0, "missing member \"value\""},
      {"[{\"op\":\"move\",\"path\":\"/a\"}]", 0, "missing member \"from\""},
      {"[{\"op\":\"copy\",\"path\":\"/a\",\"from\":[]}]", 0,
       "\"from\" is array"},
      {"[{\"op\":\"remove\",\"path\":\"/a\"},{\"op\":\"nope\",\"path\":\"\"}]",
       1, "patch operation 1: unknown op"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    tether_json *p = parse(bad[i].patch);
    tether_json_error err;
    if (tether_json_patch_check(p, &err))
      fail_msg("%s passed the check", bad[i].patch);
    assert_int_equal(err.op, bad[i].op);
    if (!strstr(err.message, bad[i].says))
      fail_msg("%s: message lacks '%s': %s", bad[i].patch, bad[i].says,
               err.message);
    /* Applying it fails the same way and changes nothing. */
    tether_json *d = parse("{\"a\":1}");
    tether_json *before = d;
    tether_json_error err2;
    assert_false(tether_json_patch(&d, p, &err2));
    assert_ptr_equal(d, before);
    assert_int_equal(err2.op, bad[i].op);
    assert_string_equal(err.message, err2.message);
    tether_json_unref(d);
    tether_json_unref(p);
  }
  tether_json *good =
      parse("[{\"op\":\"add\",\"path\":\"\",\"value\":null},"
            "{\"op\":\"remove\",\"path\":\"/a~0~1\"},"
            "{\"op\":\"replace\",\"path\":\"/x\",\"value\":{}},"
            "{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\"},"
            "{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"},"
            "{\"op\":\"test\",\"path\":\"/a\",\"value\":false}]");
  assert_true(tether_json_patch_check(good, NULL));
  tether_json_unref(good);
  tether_json *empty = parse("[]");
  assert_true(tether_json_patch_check(empty, NULL));
  tether_json_error err;
  assert_false(tether_json_patch_check(NULL, &err));
  assert_int_equal(err.op, -1);
  tether_json *d = parse("{\"a\":1}");
  assert_true(tether_json_patch(&d, empty, NULL));
  tether_json_unref(d);
  tether_json_unref(empty);
}

/* ---- All or nothing ---- */

static void test_error_names_the_operation(void **state) {
  (void)state;
  tether_json *d = parse("{\"resources\":{\"db\":{\"type\":\"sqlite\"}}}");
  tether_json *p = parse(
      "[{\"op\":\"add\",\"path\":\"/resources/web\",\"value\":{}},"
      "{\"op\":\"remove\",\"path\":\"/resources/db\"},"
      "{\"op\":\"remove\",\"path\":\"/resources/web\"},"
      "{\"op\":\"remove\",\"path\":\"/resources/web\"}]");
  tether_json_error err;
  assert_false(tether_json_patch(&d, p, &err));
  assert_int_equal(err.op, 3);
  assert_string_equal(err.message, "patch operation 3 (remove /resources/web): "
                                   "no such member 'web'");
  char *s = dump(d);
  assert_string_equal(s, "{\"resources\":{\"db\":{\"type\":\"sqlite\"}}}");
  free(s);
  tether_json_unref(d);
  tether_json_unref(p);
}

static void test_all_or_nothing(void **state) {
  (void)state;
  const char *doc = "{\"a\":{\"b\":[1,2,3],\"c\":{\"d\":\"e\"}},\"f\":[{\"g\":"
                    "1}],\"h\":null}";
  /* Every kind of mutation, then a failure. */
  check_patch(doc,
              "[{\"op\":\"add\",\"path\":\"/a/b/1\",\"value\":9},"
              "{\"op\":\"remove\",\"path\":\"/a/c/d\"},"
              "{\"op\":\"add\",\"path\":\"/a/c/new\",\"value\":[1]},"
              "{\"op\":\"replace\",\"path\":\"/f/0/g\",\"value\":2},"
              "{\"op\":\"move\",\"from\":\"/a/b\",\"path\":\"/moved\"},"
              "{\"op\":\"copy\",\"from\":\"/f\",\"path\":\"/a/f\"},"
              "{\"op\":\"add\",\"path\":\"/a/f/0/z\",\"value\":true},"
              "{\"op\":\"remove\",\"path\":\"/h\"},"
              "{\"op\":\"replace\",\"path\":\"\",\"value\":{\"new\":1}},"
              "{\"op\":\"add\",\"path\":\"/new2\",\"value\":2},"
              "{\"op\":\"test\",\"path\":\"/new\",\"value\":2}]",
              NULL, 10, "patch operation 10 (test /new): test failed");
  /* Another holder of the document never sees a change, on success or
   * failure. */
  tether_json *d = parse(doc);
  tether_json *other = tether_json_ref(d);
  tether_json *ok = parse("[{\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":4},"
                          "{\"op\":\"remove\",\"path\":\"/f/0/g\"}]");
  assert_true(tether_json_patch(&d, ok, NULL));
  assert_ptr_not_equal(d, other);
  char *s = dump(other);
  assert_string_equal(s, doc);
  free(s);
  s = dump(d);
  assert_string_equal(s, "{\"a\":{\"b\":[1,2,3,4],\"c\":{\"d\":\"e\"}},\"f\":"
                         "[{}],\"h\":null}");
  free(s);
  /* The untouched subtree is shared, not copied. */
  assert_ptr_equal(tether_json_pointer_get(d, "/a/c", NULL),
                   tether_json_pointer_get(other, "/a/c", NULL));
  tether_json_unref(d);
  tether_json_unref(ok);

  d = tether_json_ref(other);
  tether_json *bad = parse("[{\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":4},"
                           "{\"op\":\"remove\",\"path\":\"/nope\"}]");
  assert_false(tether_json_patch(&d, bad, NULL));
  assert_ptr_equal(d, other);
  s = dump(other);
  assert_string_equal(s, doc);
  free(s);
  tether_json_unref(d);
  tether_json_unref(other);
  tether_json_unref(bad);
}

static void test_patch_value_stays_independent(void **state) {
  (void)state;
  /* The patch's values are borrowed: modifying the document afterwards
   * must not change the patch. */
  tether_json *d = parse("{}");
  tether_json *p = parse("[{\"op\":\"add\",\"path\":\"/r\",\"value\":{\"x\":"
                         "[1]}},{\"op\":\"add\",\"path\":\"/r/x/-\",\"value\":"
                         "2}]");
  assert_true(tether_json_patch(&d, p, NULL));
  char *s = dump(p);
  assert_string_equal(s, "[{\"op\":\"add\",\"path\":\"/r\",\"value\":{\"x\":"
                         "[1]}},{\"op\":\"add\",\"path\":\"/r/x/-\",\"value\":"
                         "2}]");
  free(s);
  s = dump(d);
  assert_string_equal(s, "{\"r\":{\"x\":[1,2]}}");
  free(s);
  tether_json_unref(p);
  /* The document outlives the patch. */
  s = dump(d);
  assert_string_equal(s, "{\"r\":{\"x\":[1,2]}}");
  free(s);
  tether_json_unref(d);
}

static void test_null_document(void **state) {
  (void)state;
  tether_json *d = NULL;
  tether_json *p = parse("[{\"op\":\"add\",\"path\":\"\",\"value\":{}}]");
  assert_true(tether_json_patch(&d, p, NULL));
  assert_true(tether_json_is_object(d));
  tether_json_unref(d);
  tether_json_unref(p);
}

/* Random documents and random patches, many of which fail part way: a
 * failed patch leaves the document byte for byte as it was, and a
 * successful one equals applying its operations one by one. */
static uint64_t rng = 88172645463325252ull;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 20);
}

static void random_pointer(const tether_json *doc, tether_buf *out,
                           bool for_add) {
  out->len = 0;
  tether_buf_append(out, "", 0);
  const tether_json *cur = doc;
  for (;;) {
    uint32_t r = next_rand() % 8;
    if (r == 0 || !(tether_json_is_object(cur) || tether_json_is_array(cur)))
      return;
    if (tether_json_is_array(cur)) {
      size_t n = tether_json_array_size(cur);
      size_t i = next_rand() % (n + 2);
      if (for_add && i == n + 1) {
        tether_buf_append_str(out, "/-");
        return;
      }
      tether_buf_printf(out, "/%zu", i);
      cur = tether_json_array_get(cur, i);
    } else {
      size_t n = tether_json_object_size(cur), want = next_rand() % (n + 1);
      size_t it = 0, k = 0, klen;
      const char *key = "zz";
      klen = 2;
      tether_json *m = NULL;
      const char *kk;
      size_t kl;
      tether_json *mv;
      while (tether_json_object_next(cur, &it, &kk, &kl, &mv)) {
        if (k++ == want) {
          key = kk;
          klen = kl;
          m = mv;
        }
      }
      tether_json_pointer_append(out, key, klen);
      cur = m;
    }
    if (!cur)
      return;
  }
}

static tether_json *random_value(int depth) {
  switch (next_rand() % (depth > 2 ? 3 : 5)) {
  case 0:
    return tether_json_int(next_rand() % 100);
  case 1:
    return tether_json_stringf("s%u", next_rand() % 10);
  case 2:
    return tether_json_null();
  case 3: {
    tether_json *a = tether_json_array();
    for (uint32_t i = next_rand() % 4; i; i--)
      a = tether_json_array_append(a, random_value(depth + 1));
    return a;
  }
  default: {
    tether_json *o = tether_json_object();
    for (uint32_t i = next_rand() % 5; i; i--) {
      char k[8];
      snprintf(k, sizeof k, "%c", 'a' + (int)(next_rand() % 6));
      o = tether_json_object_set(o, k, random_value(depth + 1));
    }
    return o;
  }
  }
}

static void test_random_patches(void **state) {
  (void)state;
  static const char *const ops[] = {"add",  "remove", "replace",
                                    "move", "copy",   "test"};
  tether_buf path, from;
  tether_buf_init(&path);
  tether_buf_init(&from);
  int failures = 0, successes = 0;
  for (int round = 0; round < 3000; round++) {
    tether_json *doc = random_value(0);
    if (next_rand() % 2) {
      /* Sometimes a parsed (lazy) document. */
      char *s = dump(doc);
      tether_json_unref(doc);
      doc = parse(s);
      free(s);
    }
    tether_json *patch = tether_json_array();
    for (uint32_t n = 1 + next_rand() % 6; n; n--) {
      const char *op = ops[next_rand() % 6];
      tether_json *o = tether_json_object();
      o = tether_json_object_set(o, "op", tether_json_string(op));
      random_pointer(doc, &path, strcmp(op, "add") == 0);
      o = tether_json_object_set(o, "path",
                                 tether_json_string_n(path.data, path.len));
      if (!strcmp(op, "move") || !strcmp(op, "copy")) {
        random_pointer(doc, &from, false);
        o = tether_json_object_set(o, "from",
                                   tether_json_string_n(from.data, from.len));
      } else if (strcmp(op, "remove") != 0) {
        o = tether_json_object_set(o, "value", random_value(1));
      }
      patch = tether_json_array_append(patch, o);
    }
    /* Someone else holds the document half of the time. */
    tether_json *holder = next_rand() % 2 ? tether_json_ref(doc) : NULL;
    char *before = dump(doc);
    tether_json *before_ptr = doc;

    /* The reference result: operations one at a time on a copy. */
    char *copy_text = dump(doc);
    tether_json *stepwise = parse(copy_text);
    free(copy_text);
    bool step_ok = true;
    for (size_t i = 0; i < tether_json_array_size(patch) && step_ok; i++) {
      tether_json *single = tether_json_array();
      single = tether_json_array_append(
          single, tether_json_ref(tether_json_array_get(patch, i)));
      step_ok = tether_json_patch(&stepwise, single, NULL);
      tether_json_unref(single);
    }

    tether_json_error err;
    bool ok = tether_json_patch(&doc, patch, &err);
    assert_int_equal(ok, step_ok);
    if (ok) {
      successes++;
      assert_true(tether_json_equal(doc, stepwise));
    } else {
      failures++;
      assert_ptr_equal(doc, before_ptr);
      char *after = dump(doc);
      assert_string_equal(before, after);
      free(after);
      assert_true(err.op >= 0);
    }
    if (holder) {
      char *h = dump(holder);
      assert_string_equal(before, h);
      free(h);
      tether_json_unref(holder);
    }
    free(before);
    tether_json_unref(stepwise);
    tether_json_unref(doc);
    tether_json_unref(patch);
  }
  /* Both outcomes must have been exercised. */
  assert_true(failures > 300);
  assert_true(successes > 300);
  tether_buf_free(&path);
  tether_buf_free(&from);
}

/* The shape of a state file replay: many patches on one large object,
 * including removals that leave tombstones behind. */
static void test_large_state_replay(void **state) {
  (void)state;
  tether_json *doc = parse("{\"_type\":\"nixopsState\",\"resources\":{},"
                           "\"deployments\":{}}");
  char buf[256];
  enum { N = 20000 };
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf,
             "[{\"op\":\"add\",\"path\":\"/resources/r%d\",\"value\":{"
             "\"type\":\"file\",\"inputProperties\":{\"n\":%d}}}]",
             i, i);
    tether_json *p = parse(buf);
    assert_true(tether_json_patch(&doc, p, NULL));
    tether_json_unref(p);
    if (i % 3 == 2) {
      snprintf(buf, sizeof buf,
               "[{\"op\":\"replace\",\"path\":\"/resources/r%d/"
               "inputProperties\",\"value\":{\"n\":-%d}}]",
               i - 1, i - 1);
      p = parse(buf);
      assert_true(tether_json_patch(&doc, p, NULL));
      tether_json_unref(p);
    }
    if (i % 10 == 9) {
      snprintf(buf, sizeof buf,
               "[{\"op\":\"remove\",\"path\":\"/resources/r%d\"}]", i - 5);
      p = parse(buf);
      assert_true(tether_json_patch(&doc, p, NULL));
      tether_json_unref(p);
    }
  }
  tether_json *res = tether_json_object_get(doc, "resources");
  assert_int_equal(tether_json_object_size(res), N - N / 10);
  assert_null(tether_json_object_get(res, "r4"));
  tether_json *r1 = tether_json_pointer_get(doc, "/resources/r1/inputProperties/n",
                                            NULL);
  assert_string_equal(tether_json_number_str(r1), "-1");
  tether_json *r3 = tether_json_pointer_get(doc, "/resources/r3/inputProperties/n",
                                            NULL);
  assert_string_equal(tether_json_number_str(r3), "3");
  /* The stored values do not keep the patch texts alive: each has a text
   * of its own, no longer than itself. */
  tether_json *r6 = tether_json_object_get(res, "r6");
  assert_int_equal(tt_json_raw_text_size(r6),
                   strlen("{\"type\":\"file\",\"inputProperties\":"
                          "{\"n\":6}}"));
  char *s = dump(doc);
  tether_json *back = parse(s);
  assert_true(tether_json_equal(doc, back));
  free(s);
  tether_json_unref(back);
  tether_json_unref(doc);
}

/* Fetching ahead (tt_patch_ahead_begin and _step, which a state replay
 * runs a few patches ahead of the one it applies) finds the member a
 * patch will change, follows the document as the patches in between
 * change it (members removed, the object replaced, the root replaced: it
 * never reads what they freed, which AddressSanitizer would report), and
 * changes nothing: the result is the one without it. */
static void test_fetch_ahead(void **state) {
  (void)state;
  tether_json *doc = parse("{\"_type\":\"nixopsState\",\"resources\":{},"
                           "\"deployments\":{}}");
  char buf[256];
  /* Enough resources that the object is materialized and indexed, where
   * a small one is edited as text. */
  for (int i = 0; i < 1000; i++) {
    snprintf(buf, sizeof buf,
             "[{\"op\":\"add\",\"path\":\"/resources/r%d\",\"value\":"
             "{\"n\":%d}}]",
             i, i);
    tether_json *p = parse(buf);
    assert_true(tether_json_patch(&doc, p, NULL));
    tether_json_unref(p);
  }
  /* A patch as a replay has it, raw from its text: each step finds the
   * next link, and the value is the member's. */
  tether_json *ev =
      parse("{\"patch\":[{\"op\":\"replace\",\"path\":\"/resources/r7/n\","
            "\"value\":1}]}");
  const tether_json *p7 = tether_json_object_get(ev, "patch");
  tt_patch_ahead h;
  tt_patch_ahead_begin(&h, doc, p7, NULL);
  assert_int_equal(h.step, 1);
  tt_patch_ahead_step(&h, doc, NULL);
  assert_int_equal(h.step, 2);
  tt_patch_ahead_step(&h, doc, NULL);
  assert_int_equal(h.step, 3);
  assert_ptr_equal(h.value, tether_json_pointer_get(doc, "/resources/r7", NULL));
  tt_patch_ahead_step(&h, doc, NULL);
  assert_int_equal(h.step, 0);
  /* What the parsing thread digests of it: the path's segments, where
   * they end and their hashes; a path with escapes is not digested. */
  uint32_t root = 0;
  tt_json_text *t = tt_json_raw_text(p7, &root);
  assert_non_null(t);
  tt_patch_digest d;
  tt_patch_digest_text(&d, t, root);
  assert_non_null(d.path);
  assert_int_equal(d.len, 15);
  assert_int_equal(d.nseg, 3);
  assert_int_equal(d.end[0], 10);
  assert_int_equal(d.end[1], 13);
  assert_int_equal(d.end[2], 15);
  assert_int_equal(d.hash[1], tt_json_hash("r7", 2));
  tt_patch_ahead_begin_digest(&h, doc, &d, NULL);
  assert_int_equal(h.step, 1);
  assert_int_equal(h.hash, tt_json_hash("r7", 2));
  tether_json_unref(ev);
  ev = parse("{\"patch\":[{\"op\":\"remove\",\"path\":\"/resources/a~1b\"}]}");
  t = tt_json_raw_text(tether_json_object_get(ev, "patch"), &root);
  assert_non_null(t);
  tt_patch_digest_text(&d, t, root);
  assert_null(d.path);
  tether_json_unref(ev);

  /* A run of patches, applied with fetching four ahead and without. */
  static const char *const patches[] = {
      "[{\"op\":\"replace\",\"path\":\"/resources/r1/n\",\"value\":-1}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r2\"}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r3\"}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r2\",\"value\":{}}]",
      "[{\"op\":\"add\",\"path\":\"/resources/r3\",\"value\":{\"n\":3}}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r4/n\",\"value\":-4}]",
      "[{\"op\":\"replace\",\"path\":\"/resources\",\"value\":{}}]",
      "[{\"op\":\"add\",\"path\":\"/resources/r5\",\"value\":{\"n\":5}}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r5\"}]",
      "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"resources\":{}}}]",
      "[{\"op\":\"add\",\"path\":\"/resources/r6\",\"value\":{\"n\":6}}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r6/n\",\"value\":-6}]",
      "[{\"op\":\"add\",\"path\":\"/resources/a~1b\",\"value\":1}]",
      "[{\"op\":\"test\",\"path\":\"/resources/r6/n\",\"value\":-6}]",
  };
  enum { N = sizeof patches / sizeof *patches, AHEAD = 4 };
  char *start = dump(doc);
  tether_json *plain = parse(start);
  free(start);
  tether_json *ps[N];
  for (size_t i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "{\"patch\":%s}", patches[i]);
    ps[i] = parse(buf);
  }
  tt_patch_ahead ring[AHEAD];
  for (size_t k = 0; k < AHEAD; k++)
    ring[k].step = 0;
  for (size_t i = 0; i < AHEAD && i < N; i++)
    tt_patch_ahead_begin(&ring[i], doc, tether_json_object_get(ps[i], "patch"),
                         NULL);
  for (size_t i = 0; i < N; i++) {
    /* As a replay does it: the steps between two patches share what
     * they look up (the memo), and start without it after each patch. */
    tt_patch_ahead_memo memo = {NULL, NULL, 0, NULL};
    for (size_t k = 1; k < AHEAD; k++)
      tt_patch_ahead_step(&ring[(i + k) % AHEAD], doc, i % 2 ? &memo : NULL);
    if (i + AHEAD < N)
      tt_patch_ahead_begin(&ring[i % AHEAD], doc,
                           tether_json_object_get(ps[i + AHEAD], "patch"),
                           i % 2 ? &memo : NULL);
    tether_json_error err;
    bool ok = tether_json_patch(&doc, tether_json_object_get(ps[i], "patch"),
                                &err);
    tether_json *again = parse(patches[i]);
    assert_int_equal(tether_json_patch(&plain, again, NULL), ok);
    tether_json_unref(again);
    char *a = dump(doc), *b = dump(plain);
    assert_string_equal(a, b);
    free(a);
    free(b);
  }
  assert_ptr_not_equal(tether_json_pointer_get(doc, "/resources/a~1b", NULL),
                       NULL);
  for (size_t i = 0; i < N; i++)
    tether_json_unref(ps[i]);
  tether_json_unref(plain);
  tether_json_unref(doc);
}

/* A patch applied with its digest (tt_json_patch_text_digested, as a
 * replay applies it) does what it does without: the first operation's
 * path is walked from the digest when the digest covers all of it, and
 * never for a move's "from" or a path longer than the digest. Failures
 * say the same. */
static void test_patch_digested(void **state) {
  (void)state;
  static const char *const patches[] = {
      "[{\"op\":\"add\",\"path\":\"/resources/r1\",\"value\":{\"n\":1}}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r1/n\",\"value\":2},"
      "{\"op\":\"add\",\"path\":\"/resources/r1/m\",\"value\":3}]",
      "[{\"op\":\"add\",\"path\":\"/resources/r2\",\"value\":{\"a\":{}}}]",
      "[{\"op\":\"add\",\"path\":\"/resources/r2/a/b\",\"value\":4}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r2/a/b\",\"value\":5}]",
      "[{\"op\":\"move\",\"from\":\"/resources/r1\",\"path\":\"/resources/r9\"}]",
      "[{\"op\":\"copy\",\"from\":\"/resources/r9/n\",\"path\":\"/resources/r2/c\"}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r1\"}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r9/zz\"}]",
      "[{\"op\":\"replace\",\"path\":\"/resources/r2/a/b/c\",\"value\":6}]",
      "[{\"op\":\"test\",\"path\":\"/resources/r9/n\",\"value\":2}]",
      "[{\"op\":\"remove\",\"path\":\"/resources/r9\"},"
      "{\"op\":\"add\",\"path\":\"/resources/r9\",\"value\":0}]",
      "[{\"op\":\"add\",\"path\":\"/x\",\"value\":[]}]",
      "[{\"op\":\"add\",\"path\":\"/x/0\",\"value\":7}]",
  };
  /* Many resources, so that the object has an index and hashes count. */
  tether_json *doc = parse("{\"resources\":{}}");
  char key[32];
  for (int i = 100; i < 200; i++) {
    snprintf(key, sizeof key, "q%d", i);
    tether_json *r = tether_json_object_get(doc, "resources");
    tether_json *res = tether_json_object_set(tether_json_ref(r), key,
                                              tether_json_int(i));
    doc = tether_json_object_set(doc, "resources", res);
  }
  char *start = dump(doc);
  tether_json *plain = parse(start);
  free(start);
  for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
    tether_json *pa = parse(patches[i]), *pb = parse(patches[i]);
    uint32_t root = 0;
    tt_json_text *t = tt_json_raw_text(pa, &root);
    assert_non_null(t);
    tt_patch_digest d;
    tt_patch_digest_text(&d, t, root);
    assert_non_null(d.path);
    tether_json_error ea, eb;
    bool a = tt_json_patch_text_digested(&doc, t, root, &d, &ea);
    bool b = tether_json_patch(&plain, pb, &eb);
    assert_int_equal(a, b);
    if (!a)
      assert_string_equal(ea.message, eb.message);
    char *x = dump(doc), *y = dump(plain);
    assert_string_equal(x, y);
    free(x);
    free(y);
    tether_json_unref(pa);
    tether_json_unref(pb);
  }
  assert_ptr_not_equal(tether_json_pointer_get(doc, "/resources/r2/c", NULL),
                       NULL);
  tether_json_unref(doc);
  tether_json_unref(plain);
}

/* A raw object that one patch edits twice, as a state replay updates a
 * resource's inputs and then its status: the second edit may be made in
 * the text the first one made. The results, a rollback, and values that
 * others hold all stay as if each edit had made a new text. */
static tether_json *state_doc(void) {
  tether_json *d = parse("{\"resources\":{\"r1\":{\"a\":\"xxxx\",\"b\":{\"c\":1},"
                         "\"status\":\"created\"}}}");
  /* The document and its resources are looked into; r1 stays raw. */
  assert_non_null(tether_json_pointer_get(d, "/resources", NULL));
  tether_json_object_size(tether_json_object_get(d, "resources"));
  return d;
}

static void expect_twice(const char *patch, const char *want) {
  tether_json *d = state_doc();
  tether_json *p = parse(patch);
  tether_json_error err;
  if (!tether_json_patch(&d, p, &err))
    fail_msg("%s: %s", patch, err.message);
  char *got = dump(d);
  assert_string_equal(got, want);
  /* r1 is still raw, and its text is exactly its serialization. */
  tether_json *r1 = tether_json_pointer_get(d, "/resources/r1", NULL);
  char *r1s = dump(r1);
  assert_int_equal(tt_json_raw_text_size(r1), strlen(r1s));
  tether_json *back = parse(got);
  assert_true(tether_json_equal(d, back));
  tether_json_unref(back);
  free(r1s);
  free(got);
  tether_json_unref(p);
  tether_json_unref(d);
}

static void test_raw_object_edited_twice(void **state) {
  (void)state;
  /* The second value as long as the first, shorter, longer. */
  expect_twice("[{\"op\":\"replace\",\"path\":\"/resources/r1/b\",\"value\":{\"c\":2}},"
               "{\"op\":\"replace\",\"path\":\"/resources/r1/status\","
               "\"value\":\"updated\"}]",
               "{\"resources\":{\"r1\":{\"a\":\"xxxx\",\"b\":{\"c\":2},"
               "\"status\":\"updated\"}}}");
  expect_twice("[{\"op\":\"replace\",\"path\":\"/resources/r1/status\",\"value\":1},"
               "{\"op\":\"replace\",\"path\":\"/resources/r1/a\",\"value\":\"y\"},"
               "{\"op\":\"add\",\"path\":\"/resources/r1/b\",\"value\":[]}]",
               "{\"resources\":{\"r1\":{\"a\":\"y\",\"b\":[],\"status\":1}}}");
  expect_twice("[{\"op\":\"replace\",\"path\":\"/resources/r1/a\",\"value\":\"\"},"
               "{\"op\":\"replace\",\"path\":\"/resources/r1/b\","
               "\"value\":{\"c\":{\"d\":[1,2,3]}}},"
               "{\"op\":\"remove\",\"path\":\"/resources/r1/status\"},"
               "{\"op\":\"add\",\"path\":\"/resources/r1/z\",\"value\":true}]",
               "{\"resources\":{\"r1\":{\"a\":\"\",\"b\":{\"c\":{\"d\":[1,2,3]}},"
               "\"z\":true}}}");

  /* A later operation fails: everything is undone, r1's text included. */
  tether_json *d = state_doc();
  char *before = dump(d);
  tether_json *held = tether_json_ref(
      tether_json_pointer_get(d, "/resources/r1", NULL));
  tether_json *p = parse(
      "[{\"op\":\"replace\",\"path\":\"/resources/r1/b\",\"value\":0},"
      "{\"op\":\"replace\",\"path\":\"/resources/r1/status\",\"value\":\"x\"},"
      "{\"op\":\"remove\",\"path\":\"/resources/r9\"}]");
  assert_false(tether_json_patch(&d, p, NULL));
  char *after = dump(d);
  assert_string_equal(after, before);
  assert_ptr_equal(tether_json_pointer_get(d, "/resources/r1", NULL), held);
  tether_json_unref(p);
  free(after);

  /* A copy of the object the first edit made shares it: the second edit
   * leaves the copy as it was. Someone holding the old r1 sees no
   * change either. */
  p = parse("[{\"op\":\"replace\",\"path\":\"/resources/r1/b\",\"value\":0},"
            "{\"op\":\"copy\",\"from\":\"/resources/r1\",\"path\":\"/resources/r2\"},"
            "{\"op\":\"replace\",\"path\":\"/resources/r1/status\",\"value\":\"x\"}]");
  assert_true(tether_json_patch(&d, p, NULL));
  after = dump(d);
  assert_string_equal(after,
                      "{\"resources\":{\"r1\":{\"a\":\"xxxx\",\"b\":0,"
                      "\"status\":\"x\"},\"r2\":{\"a\":\"xxxx\",\"b\":0,"
                      "\"status\":\"created\"}}}");
  char *h = dump(held);
  assert_string_equal(h, "{\"a\":\"xxxx\",\"b\":{\"c\":1},\"status\":\"created\"}");
  free(h);
  free(after);
  free(before);
  tether_json_unref(held);
  tether_json_unref(p);
  tether_json_unref(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a1_add_object_member),
      cmocka_unit_test(test_raw_object_edited_twice),
      cmocka_unit_test(test_a2_add_array_element),
      cmocka_unit_test(test_a3_remove_object_member),
      cmocka_unit_test(test_a4_remove_array_element),
      cmocka_unit_test(test_a5_replace_value),
      cmocka_unit_test(test_a6_move_value),
      cmocka_unit_test(test_a7_move_array_element),
      cmocka_unit_test(test_a8_test_success),
      cmocka_unit_test(test_a9_test_error),
      cmocka_unit_test(test_a10_add_nested_member_object),
      cmocka_unit_test(test_a11_ignore_unrecognized_elements),
      cmocka_unit_test(test_a12_add_to_nonexistent_target),
      cmocka_unit_test(test_a13_invalid_patch_document),
      cmocka_unit_test(test_a14_escape_ordering),
      cmocka_unit_test(test_escaped_keys_in_text),
      cmocka_unit_test(test_a15_compare_strings_and_numbers),
      cmocka_unit_test(test_a16_add_array_value),
      cmocka_unit_test(test_add),
      cmocka_unit_test(test_remove_and_replace),
      cmocka_unit_test(test_move_and_copy),
      cmocka_unit_test(test_test_op),
      cmocka_unit_test(test_patch_check),
      cmocka_unit_test(test_error_names_the_operation),
      cmocka_unit_test(test_all_or_nothing),
      cmocka_unit_test(test_patch_value_stays_independent),
      cmocka_unit_test(test_null_document),
      cmocka_unit_test(test_random_patches),
      cmocka_unit_test(test_large_state_replay),
      cmocka_unit_test(test_fetch_ahead),
      cmocka_unit_test(test_patch_digested),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
