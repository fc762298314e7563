/*
 * test_json.c: parsing (RFC 8259), values, serialization and JSON Pointer
 * (RFC 6901). The accept and reject tables follow JSONTestSuite's y_ and
 * n_ cases; a fuzz loop checks the parser against an independent
 * reference validator written in this file, and parsing in place against
 * parsing a copy.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
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

/* ---- Helpers ---- */

static tether_json *parse_n(const char *s, size_t len) {
  tether_json_error err;
  tether_json *v = tether_json_parse(s, len, &err);
  if (!v)
    fail_msg("parse of '%.*s' failed: %s", (int)len, s, err.message);
  return v;
}

static tether_json *parse(const char *s) { return parse_n(s, strlen(s)); }

static char *dump(const tether_json *v) { return tether_json_dumps(v, NULL); }

static void assert_dump(const tether_json *v, const char *expect) {
  char *d = dump(v);
  assert_string_equal(d, expect);
  free(d);
}

/* Materializes every container in v, as any amount of looking would. */
static void force_all(const tether_json *v) {
  if (tether_json_is_array(v)) {
    for (size_t i = 0; i < tether_json_array_size(v); i++)
      force_all(tether_json_array_get(v, i));
  } else if (tether_json_is_object(v)) {
    size_t it = 0;
    tether_json *m;
    while (tether_json_object_next(v, &it, NULL, NULL, &m))
      force_all(m);
  }
}

/* ---- Accepted texts ---- */

typedef struct accept_case {
  const char *name;
  const char *in;
  const char *out; /* compact serialization */
} accept_case;

static const accept_case accepts[] = {
    {"y_array_arraysWithSpaces", "[[]   ]", "[[]]"},
    {"y_array_empty", "[]", "[]"},
    {"y_array_empty-string", "[\"\"]", "[\"\"]"},
    {"y_array_false", "[false]", "[false]"},
    {"y_array_heterogeneous", "[null, 1, \"1\", {}]", "[null,1,\"1\",{}]"},
    {"y_array_null", "[null]", "[null]"},
    {"y_array_with_1_and_newline", "[1\n]", "[1]"},
    {"y_array_with_leading_space", " [1]", "[1]"},
    {"y_array_with_several_null", "[1,null,null,null,2]",
     "[1,null,null,null,2]"},
    {"y_array_with_trailing_space", "[2] ", "[2]"},
    {"y_number", "[123e65]", "[123e65]"},
    {"y_number_0e+1", "[0e+1]", "[0e+1]"},
    {"y_number_0e1", "[0e1]", "[0e1]"},
    {"y_number_after_space", "[ 4]", "[4]"},
    {"y_number_double_close_to_zero",
     "[-0.000000000000000000000000000000000000000000000000000000000000000000"
     "0000000001]\n",
     "[-0.0000000000000000000000000000000000000000000000000000000000000000000"
     "000000001]"},
    {"y_number_int_with_exp", "[20e1]", "[20e1]"},
    {"y_number_minus_zero", "[-0]", "[-0]"},
    {"y_number_negative_int", "[-123]", "[-123]"},
    {"y_number_negative_one", "[-1]", "[-1]"},
    {"y_number_real_capital_e", "[1E22]", "[1E22]"},
    {"y_number_real_capital_e_neg_exp", "[1E-2]", "[1E-2]"},
    {"y_number_real_capital_e_pos_exp", "[1E+2]", "[1E+2]"},
    {"y_number_real_exponent", "[123e45]", "[123e45]"},
    {"y_number_real_fraction_exponent", "[123.456e78]", "[123.456e78]"},
    {"y_number_real_neg_exp", "[1e-2]", "[1e-2]"},
    {"y_number_real_pos_exponent", "[1e+2]", "[1e+2]"},
    {"y_number_simple_int", "[123]", "[123]"},
    {"y_number_simple_real", "[123.456789]", "[123.456789]"},
    {"y_number_huge_exp", "[0.4e00669999999999999999999999999999999999999999"
                          "999999999999999999999999999999999999999999999999"
                          "96]",
     "[0.4e00669999999999999999999999999999999999999999999999999999999999999"
     "99999999999999999999999999996]"},
    {"y_object", "{\"asd\":\"sdf\", \"dfg\":\"fgh\"}",
     "{\"asd\":\"sdf\",\"dfg\":\"fgh\"}"},
    {"y_object_basic", "{\"asd\":\"sdf\"}", "{\"asd\":\"sdf\"}"},
    {"y_object_duplicated_key", "{\"a\":\"b\",\"a\":\"c\"}", "{\"a\":\"c\"}"},
    {"y_object_duplicated_key_and_value", "{\"a\":\"b\",\"a\":\"b\"}",
     "{\"a\":\"b\"}"},
    {"y_object_empty", "{}", "{}"},
    {"y_object_empty_key", "{\"\":0}", "{\"\":0}"},
    {"y_object_escaped_null_in_key", "{\"foo\\u0000bar\": 42}",
     "{\"foo\\u0000bar\":42}"},
    {"y_object_extreme_numbers", "{ \"min\": -1.0e+28, \"max\": 1.0e+28 }",
     "{\"min\":-1.0e+28,\"max\":1.0e+28}"},
    {"y_object_long_strings",
     "{\"x\":[{\"id\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}], "
     "\"id\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
     "{\"x\":[{\"id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}],\"id\":"
     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"},
    {"y_object_simple", "{\"a\":[]}", "{\"a\":[]}"},
    {"y_object_string_unicode",
     "{\"title\":\"\\u041f\\u043e\\u043b\\u0442\\u043e\\u0440\\u0430 "
     "\\u0417\\u0435\\u043c\\u043b\\u0435\\u043a\\u043e\\u043f\\u0430\" }",
     "{\"title\":\"Полтора Землекопа\"}"},
    {"y_object_with_newlines", "{\n\"a\": \"b\"\n}", "{\"a\":\"b\"}"},
    {"y_string_1_2_3_bytes_UTF-8_sequences", "[\"\\u0060\\u012a\\u12AB\"]",
     "[\"`Īካ\"]"},
    {"y_string_accepted_surrogate_pair", "[\"\\uD801\\udc37\"]",
     "[\"\xF0\x90\x90\xB7\"]"},
    {"y_string_accepted_surrogate_pairs", "[\"\\ud83d\\ude39\\ud83d\\udc8d\"]",
     "[\"\xF0\x9F\x98\xB9\xF0\x9F\x92\x8D\"]"},
    {"y_string_allowed_escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
     "[\"\\\"\\\\/\\b\\f\\n\\r\\t\"]"},
    {"y_string_backslash_and_u_escaped_zero", "[\"\\\\u0000\"]",
     "[\"\\\\u0000\"]"},
    {"y_string_backslash_doublequotes", "[\"\\\"\"]", "[\"\\\"\"]"},
    {"y_string_comments", "[\"a/*b*/c/*d//e\"]", "[\"a/*b*/c/*d//e\"]"},
    {"y_string_double_escape_a", "[\"\\\\a\"]", "[\"\\\\a\"]"},
    {"y_string_double_escape_n", "[\"\\\\n\"]", "[\"\\\\n\"]"},
    {"y_string_escaped_control_character", "[\"\\u0012\"]",
     "[\"\\u0012\"]"},
    {"y_string_escaped_noncharacter", "[\"\\uFFFF\"]", "[\"\xEF\xBF\xBF\"]"},
    {"y_string_in_array", "[\"asd\"]", "[\"asd\"]"},
    {"y_string_in_array_with_leading_space", "[ \"asd\"]", "[\"asd\"]"},
    {"y_string_last_surrogates_1_and_2", "[\"\\uDBFF\\uDFFF\"]",
     "[\"\xF4\x8F\xBF\xBF\"]"},
    {"y_string_nbsp_uescaped", "[\"new\\u00A0line\"]",
     "[\"new\xC2\xA0line\"]"},
    {"y_string_nonCharacterInUTF-8_U+10FFFF", "[\"\xF4\x8F\xBF\xBF\"]",
     "[\"\xF4\x8F\xBF\xBF\"]"},
    {"y_string_nonCharacterInUTF-8_U+FFFF", "[\"\xEF\xBF\xBF\"]",
     "[\"\xEF\xBF\xBF\"]"},
    {"y_string_null_escape", "[\"\\u0000\"]", "[\"\\u0000\"]"},
    {"y_string_one-byte-utf-8", "[\"\\u002c\"]", "[\",\"]"},
    {"y_string_pi", "[\"\xCF\x80\"]", "[\"\xCF\x80\"]"},
    {"y_string_reservedCharacterInUTF-8_U+1BFFF", "[\"\xF0\x9B\xBF\xBF\"]",
     "[\"\xF0\x9B\xBF\xBF\"]"},
    {"y_string_simple_ascii", "[\"asd \"]", "[\"asd \"]"},
    {"y_string_space", "\" \"", "\" \""},
    {"y_string_surrogates_U+1D11E_MUSICAL_SYMBOL_G_CLEF",
     "[\"\\uD834\\uDd1e\"]", "[\"\xF0\x9D\x84\x9E\"]"},
    {"y_string_three-byte-utf-8", "[\"\\u0821\"]", "[\"\xE0\xA0\xA1\"]"},
    {"y_string_two-byte-utf-8", "[\"\\u0123\"]", "[\"\xC4\xA3\"]"},
    {"y_string_u+2028_line_sep", "[\"\xE2\x80\xA8\"]", "[\"\xE2\x80\xA8\"]"},
    {"y_string_uEscape", "[\"\\u0061\\u30af\\u30EA\\u30b9\"]",
     "[\"a\xE3\x82\xAF\xE3\x83\xAA\xE3\x82\xB9\"]"},
    {"y_string_uescaped_newline", "[\"new\\u000Aline\"]",
     "[\"new\\nline\"]"},
    {"y_string_unescaped_char_delete", "[\"\x7F\"]", "[\"\x7F\"]"},
    {"y_string_unicode_escaped_backslash", "[\"\\u005C\"]", "[\"\\\\\"]"},
    {"y_string_unicode_escaped_double_quote", "[\"\\u0022\"]",
     "[\"\\\"\"]"},
    {"y_string_utf8", "[\"\xE2\x82\xAC\xF0\x9D\x84\x9E\"]",
     "[\"\xE2\x82\xAC\xF0\x9D\x84\x9E\"]"},
    {"y_string_with_del_character", "[\"a\x7F" "a\"]", "[\"a\x7F" "a\"]"},
    {"y_structure_lonely_false", "false", "false"},
    {"y_structure_lonely_int", "42", "42"},
    {"y_structure_lonely_negative_real", "-0.1", "-0.1"},
    {"y_structure_lonely_null", "null", "null"},
    {"y_structure_lonely_string", "\"asd\"", "\"asd\""},
    {"y_structure_lonely_true", "true", "true"},
    {"y_structure_string_empty", "\"\"", "\"\""},
    {"y_structure_trailing_newline", "[\"a\"]\n", "[\"a\"]"},
    {"y_structure_true_in_array", "[true]", "[true]"},
    {"y_structure_whitespace_array", " [] ", "[]"},
    {"whitespace_all_four", " \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n} \t\r\n",
     "{\"a\":1}"},
    {"nested_mixed", "[{\"a\":[{\"b\":{}}],\"c\":[[],[null]]}]",
     "[{\"a\":[{\"b\":{}}],\"c\":[[],[null]]}]"},
    {"escaped_key", "{\"\\u0041\\n\":{\"\\\"\":1}}", "{\"A\\n\":{\"\\\"\":1}}"},
};

static void test_accept_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof accepts / sizeof *accepts; i++) {
    const accept_case *c = &accepts[i];
    tether_json_error err;
    tether_json *v = tether_json_parse(c->in, strlen(c->in), &err);
    if (!v)
      fail_msg("%s: rejected: %s", c->name, err.message);
    char *d = dump(v);
    if (strcmp(d, c->out) != 0)
      fail_msg("%s: dumped as %s, expected %s", c->name, d, c->out);

    /* The same text once every container has been materialized: the raw
     * text of a container is exactly its serialization. */
    force_all(v);
    char *d2 = dump(v);
    if (strcmp(d2, c->out) != 0)
      fail_msg("%s: materialized, dumped as %s, expected %s", c->name, d2,
               c->out);

    /* Round trip. */
    tether_json *w = parse(d);
    assert_true(tether_json_equal(v, w));
    assert_true(tether_json_equal(w, v));
    free(d);
    free(d2);
    tether_json_unref(v);
    tether_json_unref(w);
  }
}

/* ---- Rejected texts ---- */

typedef struct reject_case {
  const char *name;
  const char *in;
  size_t len;    /* 0: strlen(in) */
  size_t offset; /* where the error is reported */
  const char *says;
} reject_case;

#define R(name, in, off, says) {name, in, 0, off, says}
#define RN(name, in, off, says) {name, in, sizeof(in) - 1, off, says}

static const reject_case rejects[] = {
    R("n_array_1_true_without_comma", "[1 true]", 3, "expected ','"),
    R("n_array_a_invalid_utf8", "[a\xE5]", 1, "expected a value"),
    R("n_array_colon_instead_of_comma", "[\"\": 1]", 3, "expected ','"),
    R("n_array_comma_after_close", "[\"\"],", 4, "after the JSON value"),
    R("n_array_comma_and_number", "[,1]", 1, "expected a value"),
    R("n_array_double_comma", "[1,,2]", 3, "expected a value"),
    R("n_array_double_extra_comma", "[\"x\",,]", 5, "expected a value"),
    R("n_array_extra_close", "[\"x\"]]", 5, "after the JSON value"),
    R("n_array_extra_comma", "[\"\",]", 4, "trailing comma"),
    R("n_array_incomplete", "[\"x\"", 4, "end of input"),
    R("n_array_incomplete_invalid_value", "[x", 1, "expected a value"),
    R("n_array_inner_array_no_comma", "[3[4]]", 2, "after number"),
    R("n_array_items_separated_by_semicolon", "[1:2]", 2, "after number"),
    R("n_array_just_comma", "[,]", 1, "expected a value"),
    R("n_array_just_minus", "[-]", 2, "digit after '-'"),
    R("n_array_missing_value", "[   , \"\"]", 4, "expected a value"),
    R("n_array_newlines_unclosed", "[\"a\",\n4\n,1,", 11, "end of input"),
    R("n_array_number_and_comma", "[1,]", 3, "trailing comma"),
    R("n_array_number_and_several_commas", "[1,,]", 3, "expected a value"),
    R("n_array_spaces_vertical_tab_formfeed", "[\"\va\"\\f]", 2,
      "control character"),
    R("n_array_star_inside", "[*]", 1, "expected a value"),
    R("n_array_unclosed", "[\"\"", 3, "end of input"),
    R("n_array_unclosed_trailing_comma", "[1,", 3, "end of input"),
    R("n_array_unclosed_with_new_lines", "[1,\n1\n,1", 8, "end of input"),
    R("n_array_unclosed_with_object_inside", "[{}", 3, "end of input"),
    R("n_incomplete_false", "[fals]", 1, "invalid literal"),
    R("n_incomplete_null", "[nul]", 1, "invalid literal"),
    R("n_incomplete_true", "[tru]", 1, "invalid literal"),
    R("n_number_++", "[++1234]", 1, "expected a value"),
    R("n_number_+1", "[+1]", 1, "expected a value"),
    R("n_number_+Inf", "[+Inf]", 1, "expected a value"),
    R("n_number_-01", "[-01]", 1, "leading zero"),
    R("n_number_-1.0.", "[-1.0.]", 5, "after number"),
    R("n_number_-2.", "[-2.]", 4, "after the decimal point"),
    R("n_number_-NaN", "[-NaN]", 2, "digit after '-'"),
    R("n_number_.-1", "[.-1]", 1, "expected a value"),
    R("n_number_.2e-3", "[.2e-3]", 1, "expected a value"),
    R("n_number_0.1.2", "[0.1.2]", 4, "after number"),
    R("n_number_0.3e+", "[0.3e+]", 6, "exponent"),
    R("n_number_0.3e", "[0.3e]", 5, "exponent"),
    R("n_number_0.e1", "[0.e1]", 3, "after the decimal point"),
    R("n_number_0_capital_E+", "[0E+]", 4, "exponent"),
    R("n_number_0_capital_E", "[0E]", 3, "exponent"),
    R("n_number_0e+", "[0e+]", 4, "exponent"),
    R("n_number_0e", "[0e]", 3, "exponent"),
    R("n_number_1.0e+", "[1.0e+]", 6, "exponent"),
    R("n_number_1.0e-", "[1.0e-]", 6, "exponent"),
    R("n_number_1.0e", "[1.0e]", 5, "exponent"),
    R("n_number_1_000", "[1 000.0]", 3, "expected ','"),
    R("n_number_1eE2", "[1eE2]", 3, "exponent"),
    R("n_number_2.e+3", "[2.e+3]", 3, "after the decimal point"),
    R("n_number_9.e+", "[9.e+]", 3, "after the decimal point"),
    R("n_number_Inf", "[Inf]", 1, "expected a value"),
    R("n_number_NaN", "[NaN]", 1, "expected a value"),
    R("n_number_expression", "[1+2]", 2, "after number"),
    R("n_number_hex_1_digit", "[0x1]", 2, "after number"),
    R("n_number_hex_2_digits", "[0x42]", 2, "after number"),
    R("n_number_infinity", "[Infinity]", 1, "expected a value"),
    R("n_number_invalid+-", "[0e+-1]", 4, "exponent"),
    R("n_number_minus_infinity", "[-Infinity]", 2, "digit after '-'"),
    R("n_number_minus_sign_with_trailing_garbage", "[-foo]", 2,
      "digit after '-'"),
    R("n_number_minus_space_1", "[- 1]", 2, "digit after '-'"),
    R("n_number_neg_int_starting_with_zero", "[-012]", 1, "leading zero"),
    R("n_number_neg_real_without_int_part", "[-.123]", 2, "digit after '-'"),
    R("n_number_real_garbage_after_e", "[1ea]", 3, "exponent"),
    R("n_number_real_without_fractional_part", "[1.]", 3,
      "after the decimal point"),
    R("n_number_starting_with_dot", "[.123]", 1, "expected a value"),
    R("n_number_with_alpha", "[1.2a-3]", 4, "after number"),
    R("n_number_with_leading_zero", "[012]", 1, "leading zero"),
    R("n_number_leading_zero_root", "00", 0, "leading zero"),
    R("n_object_bad_value", "[\"x\", truth]", 6, "invalid literal"),
    R("n_object_bracket_key", "{[: \"x\"}", 1, "expected a string"),
    R("n_object_comma_instead_of_colon", "{\"x\", null}", 4, "expected ':'"),
    R("n_object_double_colon", "{\"x\"::\"b\"}", 5, "expected a value"),
    R("n_object_garbage_at_end", "{\"a\":\"a\" 123}", 9, "expected ','"),
    R("n_object_key_with_single_quotes", "{key: 'value'}", 1,
      "expected a string"),
    R("n_object_missing_colon", "{\"a\" b}", 5, "expected ':'"),
    R("n_object_missing_key", "{:\"b\"}", 1, "expected a string"),
    R("n_object_missing_semicolon", "{\"a\" \"b\"}", 5, "expected ':'"),
    R("n_object_missing_value", "{\"a\":", 5, "end of input"),
    R("n_object_no-colon", "{\"a\"", 4, "expected ':'"),
    R("n_object_non_string_key", "{1:1}", 1, "expected a string"),
    R("n_object_repeated_null_null", "{null:null,null:null}", 1,
      "expected a string"),
    R("n_object_several_trailing_commas", "{\"id\":0,,,,,}", 8,
      "expected a string"),
    R("n_object_single_quote", "{'a':0}", 1, "expected a string"),
    R("n_object_trailing_comma", "{\"id\":0,}", 8, "trailing comma"),
    R("n_object_trailing_comment", "{\"a\":\"b\"}/**/", 9,
      "after the JSON value"),
    R("n_object_trailing_comment_slash_open", "{\"a\":\"b\"}//", 9,
      "after the JSON value"),
    R("n_object_two_commas_in_a_row", "{\"a\":\"b\",,\"c\":\"d\"}", 9,
      "expected a string"),
    R("n_object_unquoted_key", "{a: \"b\"}", 1, "expected a string"),
    R("n_object_unterminated-value", "{\"a\":\"a", 7,
      "unterminated string (opened at byte 5)"),
    R("n_object_with_single_string", "{ \"foo\" : \"bar\", \"a\" }", 21,
      "expected ':'"),
    R("n_object_with_trailing_garbage", "{\"a\":\"b\"}#", 9,
      "after the JSON value"),
    R("n_single_space", " ", 1, "no JSON value"),
    R("n_empty", "", 0, "no JSON value"),
    R("n_string_1_surrogate_then_escape", "[\"\\uD800\\\"]", 2,
      "lone high surrogate"),
    R("n_string_1_surrogate_then_escape_u", "[\"\\uD800\\u\"]", 2,
      "lone high surrogate"),
    R("n_string_1_surrogate_then_escape_u1", "[\"\\uD800\\u1\"]", 2,
      "lone high surrogate"),
    R("n_string_1_surrogate_then_escape_u1x", "[\"\\uD800\\u1x\"]", 2,
      "lone high surrogate"),
    R("n_string_lone_low_surrogate", "[\"\\uDC00\"]", 2,
      "lone low surrogate"),
    R("n_string_high_then_high", "[\"\\uD800\\uD800\"]", 2,
      "lone high surrogate"),
    R("n_string_accentuated_char_no_quotes", "[\xC3\xA9]", 1,
      "expected a value"),
    RN("n_string_backslash_00", "[\"\\\x00\"]", 2, "invalid escape"),
    R("n_string_escape_x", "[\"\\x00\"]", 2, "invalid escape"),
    R("n_string_escaped_backslash_bad", "[\"\\\\\\\"]", 7, "unterminated"),
    R("n_string_escaped_ctrl_char_tab", "[\"\\\t\"]", 2, "invalid escape"),
    R("n_string_escaped_emoji", "[\"\\\xF0\x9F\x8C\x80\"]", 2,
      "invalid escape"),
    R("n_string_incomplete_escape", "[\"\\\"]", 5, "unterminated"),
    R("n_string_incomplete_escaped_character", "[\"\\u00A\"]", 2,
      "4 hex digits"),
    R("n_string_incomplete_surrogate", "[\"\\uD834\\uDd\"]", 2,
      "lone high surrogate"),
    R("n_string_invalid_backslash_esc", "[\"\\a\"]", 2, "invalid escape"),
    R("n_string_invalid_unicode_escape", "[\"\\uqqqq\"]", 2, "4 hex digits"),
    R("n_string_invalid_utf8_after_escape", "[\"\\\xE5\"]", 2,
      "invalid escape"),
    R("n_string_leading_uescaped_thinspace", "[\\u0020\"asd\"]", 1,
      "expected a value"),
    R("n_string_no_quotes_with_bad_escape", "[\\n]", 1, "expected a value"),
    R("n_string_single_doublequote", "\"", 1, "unterminated"),
    R("n_string_single_quote", "['single quote']", 1, "expected a value"),
    R("n_string_single_string_no_double_quotes", "abc", 0,
      "expected a value, found 'a'"),
    R("n_string_start_escape_unclosed", "[\"\\", 3, "unterminated"),
    R("n_string_unescaped_ctrl_char", "[\"a\x01" "a\"]", 3,
      "control character"),
    R("n_string_unescaped_newline", "[\"new\nline\"]", 5,
      "control character"),
    R("n_string_unescaped_tab", "[\"\t\"]", 2, "control character"),
    R("n_string_unicode_CapitalU", "\"\\UA66D\"", 1, "invalid escape"),
    R("n_string_with_trailing_garbage", "\"\"x", 2, "after the JSON value"),
    R("n_structure_angle_bracket_.", "<.>", 0, "expected a value"),
    R("n_structure_angle_bracket_null", "[<null>]", 1, "expected a value"),
    R("n_structure_array_trailing_garbage", "[1]x", 3,
      "after the JSON value"),
    R("n_structure_array_with_extra_array_close", "[1]]", 3,
      "after the JSON value"),
    R("n_structure_array_with_unclosed_string", "[\"asd]", 6,
      "unterminated string (opened at byte 1)"),
    R("n_structure_capitalized_True", "[True]", 1, "expected a value"),
    R("n_structure_close_unopened_array", "1]", 1, "after the JSON value"),
    R("n_structure_comma_instead_of_closing_brace", "{\"x\": true,", 11,
      "end of input"),
    R("n_structure_double_array", "[][]", 2, "after the JSON value"),
    R("n_structure_end_array", "]", 0, "expected a value"),
    R("n_structure_lone-open-bracket", "[", 1, "end of input"),
    R("n_structure_number_with_trailing_garbage", "2@", 1, "after number"),
    R("n_structure_object_followed_by_closing_object", "{}}", 2,
      "after the JSON value"),
    R("n_structure_object_unclosed_no_value", "{\"\":", 4, "end of input"),
    R("n_structure_object_with_comment", "{\"a\":/*comment*/\"b\"}", 5,
      "expected a value"),
    R("n_structure_open_array_apostrophe", "['", 1, "expected a value"),
    R("n_structure_open_array_comma", "[,", 1, "expected a value"),
    R("n_structure_open_array_open_object", "[{", 2, "end of input"),
    R("n_structure_open_array_open_string", "[\"a", 3, "unterminated"),
    R("n_structure_open_object", "{", 1, "expected a string"),
    R("n_structure_open_object_close_array", "{]", 1, "expected a string"),
    R("n_structure_open_object_open_array", "{[", 1, "expected a string"),
    R("n_structure_single_star", "*", 0, "expected a value"),
    R("n_structure_trailing_#", "{\"a\":\"b\"}#{}", 9,
      "after the JSON value"),
    R("n_structure_uescaped_LF_before_string", "[\\u000A\"\"]", 1,
      "expected a value"),
    R("n_structure_unclosed_array_partial_null", "[ false, nul", 9,
      "invalid literal"),
    R("n_structure_unclosed_object", "{\"asd\":\"asd\"", 12, "end of input"),
    R("n_structure_whitespace_formfeed", "[\f]", 1, "expected a value"),
    R("n_structure_whitespace_U+2060_word_joiner", "[\xE2\x81\xA0]", 1,
      "expected a value"),
    R("n_structure_no_data", "", 0, "no JSON value"),
    R("n_structure_unicode-identifier", "\xC3\xA5", 0, "expected a value"),
    R("n_structure_UTF8_BOM_no_data", "\xEF\xBB\xBF", 0, "expected a value"),
    R("n_structure_BOM_before_value", "\xEF\xBB\xBF{}", 0,
      "expected a value"),
    R("n_structure_ascii-unicode-identifier", "a\xC3\xA5", 0,
      "expected a value"),
    R("n_structure_mixed_close", "[}", 1, "expected a value"),
    R("n_structure_close_mismatch", "[1}", 2, "expected ','"),
    R("n_structure_object_close_mismatch", "{\"a\":1]", 6, "expected ','"),
    R("n_structure_two_values", "1 2", 2, "after the JSON value"),
    R("n_structure_literal_suffix", "[truex]", 1, "invalid literal"),
    R("n_structure_literal_prefix_root", "nulll", 0, "invalid literal"),
    R("n_structure_dangling_key_escape", "{\"\\", 3, "unterminated"),
    /* UTF-8 inside strings. */
    R("n_utf8_overlong_2", "[\"\xC0\xAF\"]", 2, "overlong"),
    R("n_utf8_overlong_2b", "[\"\xC1\xBF\"]", 2, "overlong"),
    R("n_utf8_overlong_3", "[\"\xE0\x80\xAF\"]", 2, "overlong"),
    R("n_utf8_overlong_3_max", "[\"\xE0\x9F\xBF\"]", 2, "overlong"),
    R("n_utf8_overlong_4", "[\"\xF0\x80\x80\xAF\"]", 2, "overlong"),
    R("n_utf8_overlong_4_max", "[\"\xF0\x8F\xBF\xBF\"]", 2, "overlong"),
    R("n_utf8_surrogate_high", "[\"\xED\xA0\x80\"]", 2, "surrogate"),
    R("n_utf8_surrogate_low", "[\"\xED\xBF\xBF\"]", 2, "surrogate"),
    R("n_utf8_above_10FFFF", "[\"\xF4\x90\x80\x80\"]", 2, "above U+10FFFF"),
    R("n_utf8_F5", "[\"\xF5\x80\x80\x80\"]", 2, "invalid UTF-8"),
    R("n_utf8_FF", "[\"\xFF\"]", 2, "invalid UTF-8"),
    R("n_utf8_lone_continuation", "[\"\x80\"]", 2, "continuation"),
    R("n_utf8_truncated_2", "[\"\xC3\"]", 2, "truncated"),
    R("n_utf8_truncated_3", "[\"\xE2\x82\"]", 2, "truncated"),
    R("n_utf8_truncated_4", "[\"\xF0\x9F\x98\"]", 2, "truncated"),
    R("n_utf8_truncated_at_end", "\"\xF0\x9F\x98", 1, "truncated"),
    R("n_utf8_in_key", "{\"\xC0\x80\":1}", 2, "overlong"),
    R("n_utf8_after_valid", "[\"abc\xC3\xA9\xE9x\"]", 7, "truncated"),
    /* NUL bytes, which end jsmn's view of the text. */
    RN("n_nul_after_value", "[1]\0", 3, "after the JSON value"),
    RN("n_nul_in_string", "[\"a\0b\"]", 3, "control character 0x00"),
    RN("n_nul_in_array", "[\0]", 1, "expected a value"),
    RN("n_nul_after_element", "[1\0]", 2, "after number"),
    RN("n_nul_root", "\0", 0, "expected a value"),
    RN("n_nul_after_key", "{\"a\"\0:1}", 4, "expected ':'"),
};

static void test_reject_table(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof rejects / sizeof *rejects; i++) {
    const reject_case *c = &rejects[i];
    size_t len = c->len ? c->len : strlen(c->in);
    tether_json_error err;
    memset(&err, 0x5A, sizeof err);
    tether_json *v = tether_json_parse(c->in, len, &err);
    if (v) {
      char *d = dump(v);
      print_error("%s: accepted as %s\n", c->name, d);
      free(d);
      tether_json_unref(v);
      bad++;
      continue;
    }
    /* Every message names the offset, which err->offset repeats. */
    char at[48];
    snprintf(at, sizeof at, "invalid JSON at byte %zu: ", err.offset);
    if (strncmp(err.message, at, strlen(at)) != 0 ||
        err.offset != c->offset || !strstr(err.message, c->says)) {
      print_error("%s: expected byte %zu and '%s', got: %s\n", c->name,
                  c->offset, c->says, err.message);
      bad++;
    }
    assert_int_equal(err.op, -1);
    assert_true(err.offset <= len);
    assert_non_null(memchr(err.message, '\0', sizeof err.message));
    assert_null(strchr(err.message, '\n'));
  }
  assert_int_equal(bad, 0);
}

static void test_parse_without_error_struct(void **state) {
  (void)state;
  assert_null(tether_json_parse("[1,", 3, NULL));
  assert_null(tether_json_parse("x", 1, NULL));
  assert_null(tether_json_parse(NULL, 5, NULL));
  tether_json_error err;
  assert_null(tether_json_parse(NULL, 0, &err));
  assert_non_null(strstr(err.message, "no JSON value"));
  /* Only len bytes are read: a value followed by bytes past len. */
  tether_json *v = parse_n("[1]garbage", 3);
  assert_dump(v, "[1]");
  tether_json_unref(v);
}

static void test_input_too_large(void **state) {
  (void)state;
  /* The length is refused before a byte is read. */
  static const char tiny[] = "[]";
  tether_json_error err;
  assert_null(tether_json_parse(tiny, (size_t)INT_MAX, &err));
  assert_int_equal(err.offset, 0);
  assert_non_null(strstr(err.message, "too large"));
  assert_null(tether_json_parse(tiny, SIZE_MAX, &err));
  assert_non_null(strstr(err.message, "too large"));
}

/* ---- Nesting ---- */

static char *nested(size_t depth, char open, char close) {
  char *s = malloc(depth * 2 + 1);
  memset(s, open, depth);
  memset(s + depth, close, depth);
  s[depth * 2] = '\0';
  return s;
}

static void test_nesting_limit(void **state) {
  (void)state;
  char *ok = nested(TETHER_JSON_MAX_DEPTH, '[', ']');
  tether_json *v = parse(ok);
  force_all(v);
  char *d = dump(v);
  assert_string_equal(d, ok);
  free(d);
  tether_json_unref(v);
  free(ok);

  tether_json_error err;
  char *deep = nested(TETHER_JSON_MAX_DEPTH + 1, '[', ']');
  assert_null(tether_json_parse(deep, strlen(deep), &err));
  assert_int_equal(err.offset, TETHER_JSON_MAX_DEPTH);
  assert_non_null(strstr(err.message, "nesting deeper than 1024"));
  free(deep);

  /* Objects count the same. */
  size_t n = TETHER_JSON_MAX_DEPTH + 1;
  char *objs = malloc(n * 6 + 2);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(objs + o, "{\"a\":", 5);
    o += 5;
  }
  objs[o++] = '1';
  memset(objs + o, '}', n);
  objs[o + n] = '\0';
  assert_null(tether_json_parse(objs, strlen(objs), &err));
  assert_int_equal(err.offset, (n - 1) * 5);
  /* One level less is fine. */
  tether_json *w = parse_n(objs + 5, strlen(objs + 5) - 1);
  tether_json_unref(w);
  free(objs);

  /* An earlier error wins over the depth. */
  char *early = nested(TETHER_JSON_MAX_DEPTH + 10, '[', ']');
  early[3] = 'x';
  assert_null(tether_json_parse(early, strlen(early), &err));
  assert_int_equal(err.offset, 3);
  free(early);
}

static void test_nesting_huge(void **state) {
  (void)state;
  /* A million opening brackets, then the same closed: rejected promptly,
   * without recursion or a quadratic walk. */
  size_t n = 1000000;
  char *s = nested(n, '[', ']');
  tether_json_error err;
  assert_null(tether_json_parse(s, n, &err));
  assert_int_equal(err.offset, TETHER_JSON_MAX_DEPTH);
  assert_null(tether_json_parse(s, 2 * n, &err));
  assert_int_equal(err.offset, TETHER_JSON_MAX_DEPTH);
  memset(s, '{', n);
  assert_null(tether_json_parse(s, n, &err));
  assert_int_equal(err.offset, 1);
  /* Brackets inside a string do not nest. */
  s[0] = '"';
  memset(s + 1, '[', n - 2);
  s[n - 1] = '"';
  tether_json *v = parse_n(s, n);
  assert_int_equal(tether_json_string_length(v), n - 2);
  tether_json_unref(v);
  free(s);
}

static void test_many_tokens_and_deep_chains(void **state) {
  (void)state;
  /* jsmn fills a window of tokens that the walk drains; what jsmn still
   * needs moves to its front, and a deep chain needs the large window.
   * Every combination must read like a single pass: same values, same
   * errors at the same offsets. */
  tether_buf b;
  tether_buf_init(&b);
  for (size_t depth = 1; depth <= TETHER_JSON_MAX_DEPTH; depth += 340) {
    for (int ws = 0; ws < 2; ws++) {
      b.len = 0;
      for (size_t i = 0; i < depth; i++)
        tether_buf_append_str(&b, i % 2 ? "{\"k\":" : "[");
      for (int i = 0; i < 700; i++)
        tether_buf_printf(&b, "%s%s{\"a\":[%d,\"s\\n\",true]}", i ? "," : "",
                          ws ? " \n" : "", i);
      /* The depth is odd: the innermost container is an array. */
      tether_buf_append_str(&b, "]");
      for (size_t i = depth - 1; i-- > 0;)
        tether_buf_append_str(&b, i % 2 ? "}" : "]");
      tether_json *v = parse_n(b.data, b.len);
      force_all(v);
      char *d = dump(v);
      tether_json *w = parse(d);
      assert_true(tether_json_equal(v, w));
      free(d);
      tether_json_unref(v);
      tether_json_unref(w);
      /* A missing comma after many tokens: found where it is. */
      char *bad = strdup(b.data);
      char *at = strstr(bad, "{\"a\":[650,");
      assert_non_null(at);
      at[ws ? -3 : -1] = ' ';
      tether_json_error err;
      assert_null(tether_json_parse(bad, b.len, &err));
      assert_int_equal(err.offset, (size_t)(at - bad));
      assert_non_null(strstr(err.message, "expected ','"));
      free(bad);
    }
  }
  /* A large text (indexed when first looked into) nested to the limit,
   * with whitespace and escapes. */
  b.len = 0;
  for (size_t i = 0; i < TETHER_JSON_MAX_DEPTH - 2; i++)
    tether_buf_append_str(&b, "[ ");
  for (int i = 0; i < 20000; i++)
    tether_buf_printf(&b, "%s{\"k\\u0041\": [%d, \"x\"]}", i ? ", " : "", i);
  for (size_t i = 0; i < TETHER_JSON_MAX_DEPTH - 2; i++)
    tether_buf_append_str(&b, " ]");
  assert_true(b.len >= 64 * 1024);
  tether_json *v = parse_n(b.data, b.len);
  force_all(v);
  const tether_json *in = v;
  for (size_t i = 0; i < TETHER_JSON_MAX_DEPTH - 3; i++)
    in = tether_json_array_get(in, 0);
  assert_int_equal(tether_json_array_size(in), 20000);
  int64_t last = 0;
  assert_true(tether_json_get_int(
      tether_json_array_get(
          tether_json_object_get(tether_json_array_get(in, 19999), "kA"), 0),
      &last));
  assert_int_equal(last, 19999);
  tether_json_unref(v);
  /* The same one level deeper: rejected at the bracket. */
  tether_json_error err;
  b.len = 0;
  for (size_t i = 0; i < TETHER_JSON_MAX_DEPTH + 1; i++)
    tether_buf_append_str(&b, "[ ");
  for (int i = 0; i < 20000; i++)
    tether_buf_printf(&b, "%s[%d]", i ? ", " : "", i);
  for (size_t i = 0; i < TETHER_JSON_MAX_DEPTH + 1; i++)
    tether_buf_append_str(&b, " ]");
  assert_null(tether_json_parse(b.data, b.len, &err));
  assert_int_equal(err.offset, 2 * TETHER_JSON_MAX_DEPTH);
  assert_non_null(strstr(err.message, "nesting deeper than 1024"));
  tether_buf_free(&b);
}

/* ---- Strings ---- */

static void test_strings(void **state) {
  (void)state;
  tether_json *v = parse("\"a\\u0000b\\n\"");
  assert_int_equal(tether_json_string_length(v), 4);
  assert_memory_equal(tether_json_string_value(v), "a\0b\n", 5);
  assert_dump(v, "\"a\\u0000b\\n\"");
  tether_json_unref(v);

  /* Constructed strings: control characters are escaped on output, short
   * forms where JSON has them. */
  v = tether_json_string_n("\"\\\b\f\n\r\t\x01\x1f\x7f/", 11);
  assert_dump(v, "\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/\"");
  tether_json_unref(v);

  /* Invalid UTF-8 becomes U+FFFD, one per bad byte. */
  v = tether_json_string("a\xC0\xAF" "b\xED\xA0\x80" "c\xF0\x9F");
  assert_string_equal(tether_json_string_value(v),
                      "a\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD"
                      "\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD");
  tether_json_unref(v);
  v = tether_json_string("ok \xC3\xA9 \xF0\x9F\x98\x80");
  assert_string_equal(tether_json_string_value(v),
                      "ok \xC3\xA9 \xF0\x9F\x98\x80");
  assert_dump(v, "\"ok \xC3\xA9 \xF0\x9F\x98\x80\"");
  tether_json_unref(v);

  v = tether_json_stringf("%s-%d", "web", 3);
  assert_string_equal(tether_json_string_value(v), "web-3");
  tether_json_unref(v);
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  v = tether_json_stringf("<%s>", big);
  assert_int_equal(tether_json_string_length(v), sizeof big + 1);
  tether_json_unref(v);

  /* dump_string takes any bytes and always writes valid JSON. */
  tether_buf b;
  tether_buf_init(&b);
  tether_json_dump_string("k\xFF\x00", 3, &b);
  assert_string_equal(b.data, "\"k\xEF\xBF\xBD\\u0000\"");
  tether_json *back = parse_n(b.data, b.len);
  tether_json_unref(back);
  tether_buf_free(&b);

  /* Non-strings. */
  assert_null(tether_json_string_value(tether_json_null()));
  assert_int_equal(tether_json_string_length(tether_json_bool(true)), 0);
}

static void test_long_strings_and_escapes(void **state) {
  (void)state;
  /* Long runs exercise the eight-bytes-at-a-time scanning, with every
   * special byte at every alignment. */
  const char specials[] = {'"', '\\', '\n', '\x01', '\x7f'};
  for (size_t k = 0; k < sizeof specials; k++) {
    for (size_t at = 0; at < 20; at++) {
      char raw[32];
      memset(raw, 'a', sizeof raw);
      raw[at] = specials[k];
      tether_json *s = tether_json_string_n(raw, sizeof raw);
      char *d = dump(s);
      tether_json *back = parse(d);
      assert_true(tether_json_equal(s, back));
      assert_int_equal(tether_json_string_length(back), sizeof raw);
      assert_memory_equal(tether_json_string_value(back), raw, sizeof raw);
      free(d);
      tether_json_unref(s);
      tether_json_unref(back);
    }
  }
  /* A raw control byte at every alignment is caught. */
  for (size_t at = 1; at < 24; at++) {
    char text[40];
    memset(text, 'b', sizeof text);
    text[0] = '"';
    text[at] = '\x1f';
    text[30] = '"';
    tether_json_error err;
    assert_null(tether_json_parse(text, 31, &err));
    assert_int_equal(err.offset, at);
  }
}

/* ---- Numbers ---- */

static void test_number_equality(void **state) {
  (void)state;
  static const char *const same[][2] = {
      {"1", "1.0"},
      {"1", "1e0"},
      {"1", "10e-1"},
      {"1", "0.1e1"},
      {"100", "1e2"},
      {"100", "1E+2"},
      {"0", "-0"},
      {"0", "0.000e5"},
      {"-0.0", "0e-7"},
      {"12.5", "125e-1"},
      {"-3", "-3.00"},
      {"1e400", "10e399"},
      {"123456789012345678901234567890", "1.2345678901234567890123456789e29"},
      {"0.001", "1e-3"},
  };
  static const char *const differ[][2] = {
      {"1", "2"},
      {"1", "-1"},
      {"12345678901234567890", "12345678901234567891"},
      {"9007199254740993", "9007199254740992"},
      {"0.1", "0.10000000000000001"},
      {"1e400", "1e401"},
      {"10", "1"},
      {"1.5", "15"},
  };
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    tether_json *a = tether_json_number_text(same[i][0], strlen(same[i][0]));
    tether_json *b = tether_json_number_text(same[i][1], strlen(same[i][1]));
    if (!tether_json_equal(a, b))
      fail_msg("%s should equal %s", same[i][0], same[i][1]);
    /* The text is kept exactly. */
    assert_string_equal(tether_json_number_str(b), same[i][1]);
    tether_json_unref(a);
    tether_json_unref(b);
  }
  for (size_t i = 0; i < sizeof differ / sizeof *differ; i++) {
    tether_json *a =
        tether_json_number_text(differ[i][0], strlen(differ[i][0]));
    tether_json *b =
        tether_json_number_text(differ[i][1], strlen(differ[i][1]));
    if (tether_json_equal(a, b))
      fail_msg("%s should differ from %s", differ[i][0], differ[i][1]);
    tether_json_unref(a);
    tether_json_unref(b);
  }
  /* Inside containers too. */
  tether_json *x = parse("{\"a\":[1.0,2e0],\"b\":-0}");
  tether_json *y = parse("{\"b\":0,\"a\":[1,20e-1]}");
  assert_true(tether_json_equal(x, y));
  tether_json_unref(x);
  tether_json_unref(y);
}

static void test_number_text(void **state) {
  (void)state;
  static const char *const valid[] = {"0", "-0", "1", "-1.5", "1e5", "1E+5",
                                      "1.0e-5", "123456789012345678901234"};
  static const char *const invalid[] = {"",   "-",  "01", "+1",  "1.",
                                        ".1", "1e", "0x1", "1 ", " 1",
                                        "NaN", "--1", "1e+", "1.e5"};
  for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
    tether_json *n = tether_json_number_text(valid[i], strlen(valid[i]));
    assert_non_null(n);
    assert_true(tether_json_is_number(n));
    assert_string_equal(tether_json_number_str(n), valid[i]);
    tether_json_unref(n);
  }
  for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
    if (tether_json_number_text(invalid[i], strlen(invalid[i])))
      fail_msg("'%s' accepted as a number", invalid[i]);
  assert_null(tether_json_number_text(NULL, 0));
  assert_null(tether_json_number_str(tether_json_null()));
}

static void test_integers(void **state) {
  (void)state;
  /* A 20-digit id survives byte for byte. */
  const char *id = "{\"id\":18446744073709551615,\"big\":123456789012345678901}";
  tether_json *v = parse(id);
  tether_json *u = tether_json_object_get(v, "id");
  assert_string_equal(tether_json_number_str(u), "18446744073709551615");
  uint64_t uv;
  int64_t iv;
  assert_true(tether_json_get_uint(u, &uv));
  assert_true(uv == UINT64_MAX);
  assert_false(tether_json_get_int(u, &iv));
  assert_false(
      tether_json_get_uint(tether_json_object_get(v, "big"), &uv));
  assert_dump(v, id);
  tether_json_unref(v);

  struct {
    const char *text;
    bool is_int;
    int64_t value;
  } cases[] = {
      {"0", true, 0},
      {"-0", true, 0},
      {"42", true, 42},
      {"-42", true, -42},
      {"1.0", true, 1},
      {"1e2", true, 100},
      {"1.5e1", true, 15},
      {"100e-2", true, 1},
      {"1.5", false, 0},
      {"15e-1", false, 0},
      {"9223372036854775807", true, INT64_MAX},
      {"-9223372036854775808", true, INT64_MIN},
      {"9223372036854775808", false, 0},
      {"-9223372036854775809", false, 0},
      {"1e19", false, 0},
      {"1e400", false, 0},
      {"0.0000001e7", true, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tether_json *n =
        tether_json_number_text(cases[i].text, strlen(cases[i].text));
    int64_t got = 77;
    bool is = tether_json_get_int(n, &got);
    if (is != cases[i].is_int || (is && got != cases[i].value))
      fail_msg("%s: get_int gave %d/%lld", cases[i].text, is,
               (long long)got);
    tether_json_unref(n);
  }
  tether_json *neg = tether_json_int(-5);
  assert_false(tether_json_get_uint(neg, &uv));
  tether_json_unref(neg);
  assert_false(tether_json_get_int(tether_json_null(), &iv));

  tether_json *a = tether_json_int(INT64_MIN);
  assert_string_equal(tether_json_number_str(a), "-9223372036854775808");
  tether_json *b = tether_json_uint(UINT64_MAX);
  assert_string_equal(tether_json_number_str(b), "18446744073709551615");
  tether_json *c = tether_json_int(0);
  assert_string_equal(tether_json_number_str(c), "0");
  tether_json_unref(a);
  tether_json_unref(b);
  tether_json_unref(c);
}

static void test_doubles(void **state) {
  (void)state;
  struct {
    double d;
    const char *text;
  } cases[] = {{0.1, "0.1"},   {1.0, "1"},       {-2.5, "-2.5"},
               {1e21, "1e+21"}, {1.5e-7, "1.5e-07"}, {0.0, "0"},
               {1.0 / 3.0, "0.3333333333333333"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tether_json *n = tether_json_double(cases[i].d);
    assert_string_equal(tether_json_number_str(n), cases[i].text);
    double back;
    assert_true(tether_json_get_double(n, &back));
    assert_true(back == cases[i].d);
    tether_json_unref(n);
  }
  tether_json *nan = tether_json_double(0.0 / 0.0);
  assert_true(tether_json_is_null(nan));
  tether_json *inf = tether_json_double(1.0 / 0.0);
  assert_true(tether_json_is_null(inf));
  double d = 0;
  assert_false(tether_json_get_double(tether_json_null(), &d));
  tether_json *n = parse("1e-2");
  assert_true(tether_json_get_double(n, &d));
  assert_true(d == 0.01);
  tether_json_unref(n);
}

/* ---- Values ---- */

static void test_kinds(void **state) {
  (void)state;
  tether_json *v = parse("[null,true,false,1,\"s\",[],{}]");
  static const tether_json_kind kinds[] = {
      TETHER_JSON_NULL,   TETHER_JSON_BOOL,  TETHER_JSON_BOOL,
      TETHER_JSON_NUMBER, TETHER_JSON_STRING, TETHER_JSON_ARRAY,
      TETHER_JSON_OBJECT};
  static const char *const names[] = {"null",   "boolean", "boolean", "number",
                                      "string", "array",   "object"};
  assert_int_equal(tether_json_array_size(v), 7);
  for (size_t i = 0; i < 7; i++) {
    tether_json *e = tether_json_array_get(v, i);
    assert_int_equal(tether_json_kind_of(e), kinds[i]);
    assert_string_equal(tether_json_kind_name(tether_json_kind_of(e)),
                        names[i]);
  }
  assert_true(tether_json_is_null(tether_json_array_get(v, 0)));
  assert_true(tether_json_bool_value(tether_json_array_get(v, 1)));
  assert_false(tether_json_bool_value(tether_json_array_get(v, 2)));
  assert_false(tether_json_bool_value(tether_json_array_get(v, 3)));
  assert_true(tether_json_is_number(tether_json_array_get(v, 3)));
  assert_true(tether_json_is_string(tether_json_array_get(v, 4)));
  assert_true(tether_json_is_array(tether_json_array_get(v, 5)));
  assert_true(tether_json_is_object(tether_json_array_get(v, 6)));
  assert_null(tether_json_array_get(v, 7));
  assert_false(tether_json_is_object(NULL));
  assert_null(tether_json_object_get(v, "x"));
  assert_int_equal(tether_json_object_size(v), 0);
  assert_int_equal(tether_json_array_size(tether_json_array_get(v, 6)), 0);
  tether_json_unref(v);
  /* Singletons survive any number of unrefs. */
  tether_json *t = tether_json_bool(true);
  tether_json_unref(t);
  tether_json_unref(t);
  assert_true(tether_json_bool_value(tether_json_bool(true)));
  tether_json_unref(NULL);
}

static void test_arrays(void **state) {
  (void)state;
  tether_json *a = tether_json_array();
  for (int i = 0; i < 100; i++)
    a = tether_json_array_append(a, tether_json_int(i));
  assert_int_equal(tether_json_array_size(a), 100);
  a = tether_json_array_insert(a, 0, tether_json_string("first"));
  a = tether_json_array_insert(a, 101, tether_json_string("last"));
  a = tether_json_array_insert(a, 50, tether_json_null());
  assert_int_equal(tether_json_array_size(a), 103);
  assert_string_equal(tether_json_string_value(tether_json_array_get(a, 0)),
                      "first");
  assert_true(tether_json_is_null(tether_json_array_get(a, 50)));
  assert_string_equal(
      tether_json_string_value(tether_json_array_get(a, 102)), "last");
  a = tether_json_array_remove(a, 50);
  a = tether_json_array_remove(a, 0);
  a = tether_json_array_set(a, 0, tether_json_bool(true));
  int64_t iv;
  assert_true(tether_json_get_int(tether_json_array_get(a, 99), &iv));
  assert_int_equal(iv, 99);
  assert_true(tether_json_bool_value(tether_json_array_get(a, 0)));
  /* A NULL value is stored as null. */
  a = tether_json_array_append(a, NULL);
  assert_true(tether_json_is_null(tether_json_array_get(a, 101)));
  tether_json_unref(a);
}

static void test_objects_order_and_equality(void **state) {
  (void)state;
  tether_json *o = tether_json_object();
  o = tether_json_object_set(o, "zeta", tether_json_int(1));
  o = tether_json_object_set(o, "alpha", tether_json_int(2));
  o = tether_json_object_set(o, "mid", tether_json_int(3));
  assert_dump(o, "{\"zeta\":1,\"alpha\":2,\"mid\":3}");
  /* Setting an existing key keeps its place. */
  o = tether_json_object_set(o, "zeta", tether_json_string("z"));
  assert_dump(o, "{\"zeta\":\"z\",\"alpha\":2,\"mid\":3}");
  o = tether_json_object_remove(o, "alpha");
  o = tether_json_object_remove(o, "absent");
  assert_dump(o, "{\"zeta\":\"z\",\"mid\":3}");
  o = tether_json_object_set(o, "alpha", tether_json_int(2));
  assert_dump(o, "{\"zeta\":\"z\",\"mid\":3,\"alpha\":2}");
  assert_int_equal(tether_json_object_size(o), 3);

  /* Iteration follows the same order. */
  const char *order[] = {"zeta", "mid", "alpha"};
  size_t it = 0, n = 0, klen;
  const char *k;
  tether_json *m;
  while (tether_json_object_next(o, &it, &k, &klen, &m)) {
    assert_string_equal(k, order[n]);
    assert_int_equal(klen, strlen(order[n]));
    n++;
  }
  assert_int_equal(n, 3);
  assert_false(tether_json_object_next(o, &it, &k, &klen, &m));

  /* Equality ignores order, not content. */
  tether_json *p = parse("{\"alpha\":2.0,\"zeta\":\"z\",\"mid\":3}");
  assert_true(tether_json_equal(o, p));
  tether_json *q = parse("{\"alpha\":2,\"zeta\":\"z\"}");
  assert_false(tether_json_equal(o, q));
  tether_json *r = parse("{\"alpha\":2,\"zeta\":\"z\",\"mud\":3}");
  assert_false(tether_json_equal(o, r));
  assert_false(tether_json_equal(o, tether_json_null()));
  assert_true(tether_json_equal(NULL, NULL));
  assert_false(tether_json_equal(o, NULL));

  /* Keys with NUL bytes and getn. */
  o = tether_json_object_setn(o, "a\0b", 3, tether_json_int(9));
  assert_non_null(tether_json_object_getn(o, "a\0b", 3));
  assert_null(tether_json_object_get(o, "a"));
  o = tether_json_object_removen(o, "a\0b", 3);
  assert_null(tether_json_object_getn(o, "a\0b", 3));
  tether_json_unref(o);
  tether_json_unref(p);
  tether_json_unref(q);
  tether_json_unref(r);
}

/* A large object against a simple model: random sets, removals and
 * lookups, through the hash index, tombstones and compaction. */
static void test_objects_large_model(void **state) {
  (void)state;
  enum { KEYS = 3000, STEPS = 60000 };
  int model[KEYS]; /* -1: absent */
  for (int i = 0; i < KEYS; i++)
    model[i] = -1;
  tether_json *o = tether_json_object();
  unsigned seed = 12345;
  char key[16];
  for (int step = 0; step < STEPS; step++) {
    seed = seed * 1103515245u + 12345u;
    int k = (int)((seed >> 8) % KEYS);
    int action = (int)((seed >> 20) % 10);
    snprintf(key, sizeof key, "r%d", k);
    if (action < 5) {
      o = tether_json_object_set(o, key, tether_json_int(step));
      model[k] = step;
    } else if (action < 9) {
      o = tether_json_object_remove(o, key);
      model[k] = -1;
    } else {
      tether_json *v = tether_json_object_get(o, key);
      int64_t iv;
      if (model[k] < 0) {
        assert_null(v);
      } else {
        assert_true(tether_json_get_int(v, &iv));
        assert_int_equal(iv, model[k]);
      }
    }
  }
  size_t live = 0;
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "r%d", i);
    tether_json *v = tether_json_object_get(o, key);
    if (model[i] < 0) {
      assert_null(v);
    } else {
      live++;
      int64_t iv;
      assert_true(tether_json_get_int(v, &iv));
      assert_int_equal(iv, model[i]);
    }
  }
  assert_int_equal(tether_json_object_size(o), live);
  /* The serialization has each live key once and parses back equal. */
  char *d = dump(o);
  tether_json *back = parse(d);
  assert_int_equal(tether_json_object_size(back), live);
  assert_true(tether_json_equal(o, back));
  free(d);
  tether_json_unref(back);
  /* Remove everything, then reuse. */
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "r%d", i);
    o = tether_json_object_remove(o, key);
  }
  assert_int_equal(tether_json_object_size(o), 0);
  assert_dump(o, "{}");
  o = tether_json_object_set(o, "again", tether_json_int(1));
  assert_dump(o, "{\"again\":1}");
  tether_json_unref(o);
}

static void test_copy_on_write(void **state) {
  (void)state;
  tether_json *a = parse("{\"list\":[1,2],\"name\":\"web\"}");
  tether_json *b = tether_json_ref(a);
  b = tether_json_object_set(b, "name", tether_json_string("db"));
  assert_ptr_not_equal(a, b);
  assert_dump(a, "{\"list\":[1,2],\"name\":\"web\"}");
  assert_dump(b, "{\"list\":[1,2],\"name\":\"db\"}");

  /* Nested: b shares a's list; modifying b's list copies it. */
  tether_json *list = tether_json_ref(tether_json_object_get(b, "list"));
  list = tether_json_array_append(list, tether_json_int(3));
  b = tether_json_object_set(b, "list", list);
  assert_dump(a, "{\"list\":[1,2],\"name\":\"web\"}");
  assert_dump(b, "{\"list\":[1,2,3],\"name\":\"db\"}");

  /* An unshared value is modified in place. */
  tether_json *before = b;
  b = tether_json_object_remove(b, "name");
  assert_ptr_equal(before, b);

  /* Removing a missing key from a shared object does not copy. */
  tether_json *c = tether_json_ref(a);
  c = tether_json_object_remove(c, "nothing");
  assert_ptr_equal(c, a);
  tether_json_unref(c);

  /* Arrays too. */
  tether_json *x = parse("[1,[2]]");
  tether_json *y = tether_json_ref(x);
  y = tether_json_array_remove(y, 0);
  y = tether_json_array_set(y, 0, tether_json_string("s"));
  y = tether_json_array_insert(y, 0, tether_json_null());
  assert_dump(x, "[1,[2]]");
  assert_dump(y, "[null,\"s\"]");

  /* A value put inside itself becomes a copy, not a cycle. */
  tether_json *self = parse("{\"a\":1}");
  self = tether_json_object_set(self, "me", tether_json_ref(self));
  assert_dump(self, "{\"a\":1,\"me\":{\"a\":1}}");

  tether_json_unref(a);
  tether_json_unref(b);
  tether_json_unref(x);
  tether_json_unref(y);
  tether_json_unref(self);
}

/* ---- Lazy containers ---- */

static void test_lazy_kinds_without_forcing(void **state) {
  (void)state;
  tether_json *v = parse("{\"a\":[1,{\"b\":2}],\"c\":{}}");
  assert_true(tt_json_is_raw(v));
  assert_int_equal(tether_json_kind_of(v), TETHER_JSON_OBJECT);
  assert_true(tether_json_is_object(v));
  assert_false(tether_json_is_array(v));
  char *d = dump(v);
  assert_string_equal(d, "{\"a\":[1,{\"b\":2}],\"c\":{}}");
  free(d);
  /* Neither asking the kind nor serializing looked inside. */
  assert_true(tt_json_is_raw(v));

  /* Looking inside materializes one level only. */
  tether_json *a = tether_json_object_get(v, "a");
  assert_false(tt_json_is_raw(v));
  assert_true(tt_json_is_raw(a));
  assert_int_equal(tether_json_kind_of(a), TETHER_JSON_ARRAY);
  assert_int_equal(tether_json_array_size(a), 2);
  assert_false(tt_json_is_raw(a));
  assert_true(tt_json_is_raw(tether_json_array_get(a, 1)));
  tether_json_unref(v);
}

static void test_lazy_equality_and_mixed_trees(void **state) {
  (void)state;
  const char *text = "{\"r\":{\"type\":\"file\",\"in\":{\"name\":\"x\",\"n\":[1,"
                     "2,{\"deep\":true}]}},\"s\":[{\"a\":1},{\"b\":2}]}";
  tether_json *raw = parse(text);
  tether_json *full = parse(text);
  force_all(full);
  /* Raw against materialized, both ways, and raw against raw. */
  assert_true(tether_json_equal(raw, full));
  assert_true(tether_json_equal(full, raw));
  tether_json *raw2 = parse(text);
  tether_json *raw3 = parse(text);
  /* Two raw texts compare without materializing. */
  assert_true(tether_json_equal(raw2, raw3));
  assert_true(tt_json_is_raw(raw2));
  assert_true(tt_json_is_raw(raw3));
  assert_true(tether_json_equal(raw, raw2));
  tether_json_unref(raw3);
  tether_json_unref(raw2);
  raw2 = parse(text);
  tether_json *other = parse("{\"s\":[{\"a\":1},{\"b\":2}],\"r\":{\"in\":{\"n\":"
                             "[1,2,{\"deep\":true}],\"name\":\"x\"},\"type\":"
                             "\"file\"}}");
  assert_true(tether_json_equal(raw, other));
  tether_json *diff = parse("{\"s\":[{\"a\":1},{\"b\":2}],\"r\":{\"in\":{\"n\":"
                            "[1,2,{\"deep\":false}],\"name\":\"x\"},\"type\":"
                            "\"file\"}}");
  assert_false(tether_json_equal(raw, diff));

  /* Modify deep inside: the untouched siblings stay raw and serialize as
   * they came. */
  tether_json *r = tether_json_ref(tether_json_object_get(raw2, "r"));
  tether_json *in = tether_json_ref(tether_json_object_get(r, "in"));
  in = tether_json_object_set(in, "name", tether_json_string("y"));
  r = tether_json_object_set(r, "in", in);
  raw2 = tether_json_object_set(raw2, "r", r);
  assert_true(tt_json_is_raw(tether_json_object_get(raw2, "s")));
  assert_dump(raw2, "{\"r\":{\"type\":\"file\",\"in\":{\"name\":\"y\",\"n\":"
                    "[1,2,{\"deep\":true}]}},\"s\":[{\"a\":1},{\"b\":2}]}");
  assert_false(tether_json_equal(raw, raw2));
  assert_dump(raw, text);

  tether_json_unref(raw);
  tether_json_unref(full);
  tether_json_unref(raw2);
  tether_json_unref(other);
  tether_json_unref(diff);
}

static void test_lazy_detach(void **state) {
  (void)state;
  /* A small value taken out of a big document and stored elsewhere gets
   * a text of its own, so the document can go. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, "{\"keep\":{\"x\":[1,2,{\"y\":\"z\"}]},\"bulk\":[");
  for (int i = 0; i < 5000; i++)
    tether_buf_printf(&b, "%s{\"i\":%d}", i ? "," : "", i);
  tether_buf_append_str(&b, "]}");
  tether_json *doc = parse_n(b.data, b.len);
  tether_json *holder = tether_json_object();
  holder = tether_json_object_set(
      holder, "k", tether_json_ref(tether_json_object_get(doc, "keep")));
  tether_json_unref(doc);
  tether_json *k = tether_json_object_get(holder, "k");
  assert_true(tt_json_is_raw(k));
  assert_int_equal(tt_json_raw_text_size(k),
                   strlen("{\"x\":[1,2,{\"y\":\"z\"}]}"));
  /* And it still works in full. */
  tether_json *y = tether_json_pointer_get(holder, "/k/x/2/y", NULL);
  assert_string_equal(tether_json_string_value(y), "z");
  assert_dump(holder, "{\"k\":{\"x\":[1,2,{\"y\":\"z\"}]}}");
  tether_json_unref(holder);
  tether_buf_free(&b);
}

static void test_lazy_detached_scan(void **state) {
  (void)state;
  /* Values stored out of a larger document get a text of their own and,
   * when looked into, are read by scanning that text: every kind of
   * member must come out as parsing would have made it. */
  static const char *const values[] = {
      "{\"a\\\"b\":{\"x\":[1,-2.5e3,true,false,null,\"s\\n\"]},\"\":{},"
      "\"e\":[],\"n\":0,\"u\":\"\xC3\xA9\\u0000\"}",
      "[[],{},[[1]],{\"k\":{\"k\":{}}},\"]\",\"}\\\"\",12345678901234567890]",
      "{\"dup\":1,\"x\":[2],\"dup\":{\"z\":3}}",
      "{\"long\":\"0123456789abcdef0123456789abcdef\\\\\\\"\",\"k\":1}",
  };
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    char text[512];
    snprintf(text, sizeof text, "{\"pad\":[1,2,3],\"v\":%s}", values[i]);
    tether_json *doc = parse(text);
    tether_json *holder = tether_json_array();
    holder = tether_json_array_append(
        holder, tether_json_ref(tether_json_object_get(doc, "v")));
    tether_json *v = tether_json_array_get(holder, 0);
    assert_true(tt_json_is_raw(v));
    tether_json *expect = parse(values[i]);
    force_all(expect);
    /* Compare member by member, which materializes v by scanning. */
    force_all(v);
    assert_true(tether_json_equal(v, expect));
    char *d1 = dump(v), *d2 = dump(expect);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    tether_json_unref(expect);
    tether_json_unref(holder);
    tether_json_unref(doc);
  }
}

typedef struct reader_arg {
  const tether_json *doc;
  const tether_json *twin; /* an equal document, parsed separately */
  int order;               /* which end each thread starts from */
  long sum;
  bool equal;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = p;
  size_t n = tether_json_array_size(a->doc);
  /* Serialize and compare elements while other threads look inside the
   * same ones: the raw text must not go away under a reader. */
  for (size_t k = 0; k < n; k++) {
    size_t i = a->order ? n - 1 - k : k;
    const tether_json *e = tether_json_array_get(a->doc, i);
    char *d = tether_json_dumps(e, NULL);
    free(d);
    if (!tether_json_equal(e, tether_json_array_get(a->twin, i)))
      a->equal = false;
  }
  for (size_t i = 0; i < n; i++) {
    const tether_json *e = tether_json_array_get(a->doc, i);
    int64_t v;
    if (tether_json_get_int(tether_json_object_get(e, "v"), &v))
      a->sum += (long)v;
    char *d = tether_json_dumps(tether_json_object_get(e, "w"), NULL);
    a->sum += (long)strlen(d);
    free(d);
  }
  return NULL;
}

static void test_lazy_shared_between_threads(void **state) {
  (void)state;
  /* Values may be read from several threads at once: materializing on
   * first look must be safe. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_char(&b, '[');
  long expect = 0;
  for (int i = 0; i < 2000; i++) {
    tether_buf_printf(&b, "%s{\"v\":%d,\"w\":[%d]}", i ? "," : "", i, i);
    expect += i + 3 + (i >= 10) + (i >= 100) + (i >= 1000);
  }
  tether_buf_append_char(&b, ']');
  for (int round = 0; round < 5; round++) {
    tether_json *doc = parse_n(b.data, b.len);
    tether_json *twin = parse_n(b.data, b.len);
    pthread_t th[4];
    reader_arg args[4];
    for (int t = 0; t < 4; t++) {
      args[t] = (reader_arg){doc, twin, t % 2, 0, true};
      pthread_create(&th[t], NULL, reader, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
      pthread_join(th[t], NULL);
      assert_int_equal(args[t].sum, expect);
      assert_true(args[t].equal);
    }
    tether_json_unref(doc);
    tether_json_unref(twin);
  }
  tether_buf_free(&b);
}

static void test_duplicate_keys(void **state) {
  (void)state;
  /* The last value wins, at the first one's place; the serialization
   * agrees with what lookups see, whether or not anyone looked. */
  tether_json *v = parse("{\"a\":1,\"b\":2,\"a\":3}");
  assert_dump(v, "{\"a\":3,\"b\":2}");
  assert_int_equal(tether_json_object_size(v), 2);
  tether_json_unref(v);
  v = parse("[{\"k\":[1],\"\\u006b\":[2]},{\"x\":{\"y\":1}}]");
  assert_dump(v, "[{\"k\":[2]},{\"x\":{\"y\":1}}]");
  tether_json_unref(v);
  /* Many keys: the exact check behind the quick filter. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_char(&b, '{');
  for (int i = 0; i < 500; i++)
    tether_buf_printf(&b, "\"k%d\":%d,", i, i);
  tether_buf_append_str(&b, "\"k7\":\"last\"}");
  v = parse_n(b.data, b.len);
  char *d = dump(v);
  tether_json *w = parse(d);
  assert_int_equal(tether_json_object_size(w), 500);
  assert_string_equal(tether_json_string_value(tether_json_object_get(w, "k7")),
                      "last");
  free(d);
  tether_json_unref(v);
  tether_json_unref(w);
  /* Many keys and no duplicate: the text is copied as is. */
  b.len = 0;
  tether_buf_append_char(&b, '{');
  for (int i = 0; i < 500; i++)
    tether_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
  tether_buf_append_char(&b, '}');
  v = parse_n(b.data, b.len);
  assert_int_equal(tt_json_raw_text_size(v), b.len);
  char *same = dump(v);
  assert_string_equal(same, b.data);
  free(same);
  tether_json_unref(v);
  tether_buf_free(&b);
}

/* ---- Parsing without jsmn ---- */

/* The text of a raw container just parsed; NULL for a scalar. */
static const tt_json_text *raw_text_of(const tether_json *v) {
  if (v->kind == TETHER_JSON_ARRAY)
    return atomic_load(&((const tt_json_array *)v)->raw);
  if (v->kind == TETHER_JSON_OBJECT)
    return atomic_load(&((const tt_json_object *)v)->raw);
  return NULL;
}

/* Whether tt_json_parse_walked (the walk alone, as a state file replay
 * parses) does with s what tether_json_parse does: the same error at the
 * same byte, or an equal value with the same compacted text, token index
 * and serialization. */
static void expect_walked_agrees(const char *s, size_t len) {
  tether_json_error want, got;
  memset(&got, 0x5A, sizeof got);
  tether_json *a = tether_json_parse(s, len, &want);
  tether_json *b = tt_json_parse_walked(s, len, &got);
  if (!a) {
    if (b)
      fail_msg("accepted by the walk alone, rejected with jsmn: %.*s",
               (int)len, s);
    assert_int_equal(got.offset, want.offset);
    assert_string_equal(got.message, want.message);
    assert_int_equal(got.op, -1);
    return;
  }
  if (!b)
    fail_msg("rejected by the walk alone (%s): %.*s", got.message, (int)len,
             s);
  assert_int_equal(tether_json_kind_of(b), tether_json_kind_of(a));
  const tt_json_text *ta = raw_text_of(a), *tb = raw_text_of(b);
  assert_true((ta == NULL) == (tb == NULL));
  if (ta) {
    assert_int_equal(tb->len, ta->len);
    assert_memory_equal(tb->text, ta->text, ta->len);
    assert_int_equal(tb->ntok, ta->ntok);
    assert_true((tb->toks == NULL) == (ta->toks == NULL));
    if (ta->toks)
      assert_memory_equal(tb->toks, ta->toks, ta->ntok * sizeof *ta->toks);
    assert_int_equal(tb->dups, ta->dups);
  }
  char *da = dump(a), *db = dump(b);
  assert_string_equal(db, da);
  assert_true(tether_json_equal(a, b));
  force_all(b);
  char *forced = dump(b);
  assert_string_equal(forced, da);
  free(da);
  free(db);
  free(forced);
  tether_json_unref(a);
  tether_json_unref(b);
}

static void test_walked_tables(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof accepts / sizeof *accepts; i++)
    expect_walked_agrees(accepts[i].in, strlen(accepts[i].in));
  for (size_t i = 0; i < sizeof rejects / sizeof *rejects; i++)
    expect_walked_agrees(
        rejects[i].in, rejects[i].len ? rejects[i].len : strlen(rejects[i].in));
}

/* ---- Parsing in place ---- */

/* A malloc'd block holding pad bytes of junk, then s[0..len), then one
 * byte more, the way the frame reader hands a message over. */
static char *block_of(const char *s, size_t len, size_t pad) {
  char *b = malloc(pad + len + 1);
  memset(b, '#', pad);
  memcpy(b + pad, s, len);
  b[pad + len] = '@';
  return b;
}

/* Cut points for streamed parses: their own sequence, so that the fuzz
 * loops draw the same inputs with or without them. */
static uint64_t cut_rng = 0xD1B54A32D192ED03ull;
static uint32_t cut_next(void) {
  cut_rng ^= cut_rng << 13;
  cut_rng ^= cut_rng >> 7;
  cut_rng ^= cut_rng << 17;
  return (uint32_t)(cut_rng >> 16);
}

/* Parses in (len bytes) as a stream (tt_json_stream): fed a few growing
 * prefixes, each from a new copy that is freed after (the text moves, as
 * a frame reader's buffer does), then finished in a block with pad bytes
 * before the text, as tt_json_parse_member_in_place would be called. A
 * checkpoint at every value or at the default distance, in turn. */
static tether_json *stream_in_place(const char *in, size_t len, size_t pad,
                                    size_t member_at, bool *member,
                                    tether_json_error *err) {
  tt_json_stream_set_stride(cut_next() % 2);
  tt_json_stream *st = tt_json_stream_new();
  size_t upto = 0, parts = cut_next() % 5;
  for (size_t k = 0; k < parts && len > 0; k++) {
    upto += 1 + cut_next() % len;
    if (upto > len)
      upto = len;
    char *copy = malloc(upto + 1);
    memcpy(copy, in, upto);
    copy[upto] = '\0';
    tt_json_stream_feed(st, copy, upto);
    free(copy);
  }
  tether_json *v = tt_json_stream_finish(st, block_of(in, len, pad), pad, len,
                                         member_at, member, err);
  tt_json_stream_set_stride(0);
  return v;
}

/* Whether parsing s in place, at the front of its block and further in,
 * gives what parsing it from a copy gives: an equal value with the same
 * compacted text and serialization, or the same error at the same byte. */
static void expect_in_place_agrees(const char *s, size_t len) {
  for (size_t k = 0; k < 4; k++) {
    /* In place, and as a stream, each at the front and further in. */
    size_t pad = k % 2 ? 5 : 0;
    tether_json_error want, got;
    memset(&got, 0x5A, sizeof got);
    tether_json *a = tether_json_parse(s, len, &want);
    tether_json *b =
        k < 2 ? tt_json_parse_in_place(block_of(s, len, pad), pad, len, &got)
              : stream_in_place(s, len, pad, 0, NULL, &got);
    if (!a) {
      if (b)
        fail_msg("accepted in place, rejected from a copy: %.*s", (int)len, s);
      assert_int_equal(got.offset, want.offset);
      assert_string_equal(got.message, want.message);
      assert_int_equal(got.op, -1);
      continue;
    }
    if (!b)
      fail_msg("rejected in place (%s): %.*s", got.message, (int)len, s);
    assert_int_equal(tt_json_raw_text_size(b), tt_json_raw_text_size(a));
    char *da = dump(a), *db = dump(b);
    assert_string_equal(db, da);
    assert_true(tether_json_equal(a, b));
    force_all(b);
    char *forced = dump(b);
    assert_string_equal(forced, da);
    free(da);
    free(db);
    free(forced);
    tether_json_unref(a);
    tether_json_unref(b);
  }
}

static void test_in_place_tables(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof accepts / sizeof *accepts; i++)
    expect_in_place_agrees(accepts[i].in, strlen(accepts[i].in));
  for (size_t i = 0; i < sizeof rejects / sizeof *rejects; i++)
    expect_in_place_agrees(
        rejects[i].in, rejects[i].len ? rejects[i].len : strlen(rejects[i].in));
}

/* An object of n keys "k0".."k<n-1>", written with whitespace around
 * every token and escapes in every string, then the members in extra. */
static void spaced_object(tether_buf *b, int n, const char *extra) {
  tether_buf_init(b);
  tether_buf_append_str(b, "{\n");
  for (int i = 0; i < n; i++)
    tether_buf_printf(b, "%s  \"k%d\" :\t\"v\\u00e9\\/%d\\n\"", i ? " ,\n" : "",
                      i, i);
  tether_buf_append_str(b, extra);
  tether_buf_append_str(b, "\r\n}\n");
}

static void test_in_place_compacts(void **state) {
  (void)state;
  static const char doc[] =
      "{ \"a\" : [ 1 , \"x\\u0041\\n\\/\\ud83d\\ude00\" ] ,\n\t"
      "\"k\\u00e9y\" : { \"b\" : true } , \"q\": \"\\\"\\\\\\u001f\\b\" } ";
  static const char compact[] =
      "{\"a\":[1,\"xA\\n/\xF0\x9F\x98\x80\"],\"k\xC3\xA9y\":{\"b\":true},"
      "\"q\":\"\\\"\\\\\\u001f\\b\"}";
  tether_json *v = tt_json_parse_in_place(block_of(doc, sizeof doc - 1, 3), 3,
                                          sizeof doc - 1, NULL);
  assert_non_null(v);
  assert_int_equal(tt_json_raw_text_size(v), sizeof compact - 1);
  assert_dump(v, compact);
  tether_json_unref(v);
  expect_in_place_agrees(doc, sizeof doc - 1);
  /* Large texts, which wait for their index: keys are checked for
   * repeats where the compacted text has them, after everything before
   * them has moved; the last spelling of a repeated key wins. */
  tether_buf b;
  spaced_object(&b, 3000, " ,\n \"k7\" : \"last\" , \"k\\u0038\" : 8");
  assert_true(b.len > 64 * 1024);
  expect_in_place_agrees(b.data, b.len);
  v = tt_json_parse_in_place(block_of(b.data, b.len, 0), 0, b.len, NULL);
  assert_non_null(v);
  assert_int_equal(tether_json_object_size(v), 3000);
  assert_string_equal(tether_json_string_value(tether_json_object_get(v, "k7")),
                      "last");
  assert_string_equal(tether_json_number_str(tether_json_object_get(v, "k8")),
                      "8");
  assert_string_equal(tether_json_string_value(tether_json_object_get(v, "k9")),
                      "v\xC3\xA9/9\n");
  tether_json_unref(v);
  tether_buf_free(&b);
  spaced_object(&b, 3000, "");
  expect_in_place_agrees(b.data, b.len);
  tether_buf_free(&b);
}

/* Every way in place fails gives the block back to the allocator (the
 * leak checks of the sanitizer and valgrind runs see to that). */
static void test_in_place_ownership(void **state) {
  (void)state;
  tether_json_error err;
  assert_null(tt_json_parse_in_place(block_of("[1,", 3, 2), 2, 3, &err));
  assert_int_equal(err.offset, 3);
  assert_null(tt_json_parse_in_place(block_of("{\"a\" 1}", 7, 0), 0, 7, NULL));
  /* The length is refused before a byte is read. */
  assert_null(tt_json_parse_in_place(block_of("[]", 2, 0), 0, INT_MAX, &err));
  assert_non_null(strstr(err.message, "too large"));
  assert_null(tt_json_parse_in_place(NULL, 0, 5, &err));
  assert_non_null(strstr(err.message, "no input"));
  assert_null(tt_json_parse_in_place(NULL, 0, 0, &err));
  assert_non_null(strstr(err.message, "no JSON value"));
  /* A scalar is built on its own; the block is not kept. */
  tether_json *v = tt_json_parse_in_place(block_of(" 42 ", 4, 1), 1, 4, NULL);
  assert_string_equal(tether_json_number_str(v), "42");
  tether_json_unref(v);
  v = tt_json_parse_in_place(block_of("\"\\u0041\"", 8, 0), 0, 8, NULL);
  assert_string_equal(tether_json_string_value(v), "A");
  tether_json_unref(v);
}

/* Parses s in place asking for the member whose value starts right after
 * the first occurrence of mark; returns the value and whether it came
 * alone. */
static tether_json *member_in_place(const char *s, const char *mark,
                                    bool *member, tether_json_error *err) {
  size_t len = strlen(s);
  const char *m = strstr(s, mark);
  assert_non_null(m);
  size_t at = (size_t)(m - s) + strlen(mark);
  return tt_json_parse_member_in_place(block_of(s, len, 4), 4, len, at, member,
                                       err);
}

static void test_in_place_member(void **state) {
  (void)state;
  const char *mark = "\"result\":";
  bool member;
  tether_json *v = member_in_place("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{ "
                                   "\"a\" : [1, \"\\u0062\"] }  }",
                                   mark, &member, NULL);
  assert_true(member);
  assert_dump(v, "{\"a\":[1,\"b\"]}");
  assert_int_equal(tt_json_raw_text_size(v), 13);
  tether_json_unref(v);
  v = member_in_place("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"x\\u0041\"}",
                      mark, &member, NULL);
  assert_true(member);
  assert_string_equal(tether_json_string_value(v), "xA");
  tether_json_unref(v);
  v = member_in_place("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[]}", mark,
                      &member, NULL);
  assert_true(member);
  assert_dump(v, "[]");
  tether_json_unref(v);
  /* Not the last member, or not a member of the root, or after bytes
   * that compaction moves: the whole text, as a plain parse gives it. */
  static const char *const whole[] = {
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[1],\"note\":2}",
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[1], \"result\":[2]}",
      "{\"jsonrpc\": \"2.0\",\"id\":7,\"result\":[1]}",
      "{\"j\\u0073onrpc\":\"2.0\",\"result\":[1]}",
      "{\"a\":{\"result\":[1]}}",
      "{\"a\":[1,2],\"b\":\"\\\"result\\\":\",\"result\":3}",
      "{\"result\": [1]}",
  };
  for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
    tether_json *want = parse(whole[i]);
    v = member_in_place(whole[i], mark, &member, NULL);
    assert_non_null(v);
    assert_false(member);
    assert_true(tether_json_equal(v, want));
    char *dv = dump(v), *dw = dump(want);
    assert_string_equal(dv, dw);
    free(dv);
    free(dw);
    tether_json_unref(v);
    tether_json_unref(want);
  }
  /* An invalid text fails as a plain parse does, member or not. */
  static const char bad[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[1,]}";
  tether_json_error want, got;
  assert_null(tether_json_parse(bad, sizeof bad - 1, &want));
  assert_null(member_in_place(bad, mark, &member, &got));
  assert_false(member);
  assert_int_equal(got.offset, want.offset);
  assert_string_equal(got.message, want.message);
  /* At the end of the text there is no member to take. */
  size_t len = strlen(whole[0]);
  v = tt_json_parse_member_in_place(block_of(whole[0], len, 0), 0, len, len,
                                    &member, NULL);
  assert_false(member);
  tether_json_unref(v);
  /* A large answer. */
  tether_buf b, msg;
  spaced_object(&b, 3000, "");
  tether_buf_init(&msg);
  tether_buf_append_str(&msg, "{\"jsonrpc\":\"2.0\",\"id\":12,\"result\":");
  tether_buf_append(&msg, b.data, b.len);
  tether_buf_append_str(&msg, "}");
  tether_json *expect = parse_n(b.data, b.len);
  v = member_in_place(msg.data, mark, &member, NULL);
  assert_true(member);
  assert_int_equal(tt_json_raw_text_size(v), tt_json_raw_text_size(expect));
  char *dv = dump(v), *de = dump(expect);
  assert_string_equal(dv, de);
  free(dv);
  free(de);
  tether_json_unref(v);
  tether_json_unref(expect);
  tether_buf_free(&b);
  tether_buf_free(&msg);
}

/* A state_read answer as tether-local writes it: compact, with the
 * escapes tether_json_dump writes, UTF-8 as is; its last resource
 * repeats the key of resource dup, when dup is not -1. */
static void answer_text(tether_buf *b, int n, int dup) {
  tether_buf_init(b);
  tether_buf_append_str(b, "{\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{"
                           "\"state\":{\"_type\":\"nixopsState\","
                           "\"resources\":{");
  for (int i = 0; i < n; i++)
    tether_buf_printf(b,
                      "%s\"r%06d\":{\"type\":\"file\",\"inputProperties\":"
                      "{\"name\":\"/srv/\\\"q\\\"\\n%d\",\"mode\":\"0644\","
                      "\"n\":%d.5e-3,\"ok\":true,\"u\":\"\xC3\xA9\\u0001\"},"
                      "\"dependsOn\":[],\"status\":null}",
                      i ? "," : "", dup >= 0 && i == n - 1 ? dup : i, i,
                      -i);
  tether_buf_append_str(b, "},\"deployments\":{}},\"index\":99}}");
}

/* Streams text in parts of up to max_part bytes, each from a new copy;
 * returns the stream with all but the last `keep` bytes fed. */
static tt_json_stream *stream_parts(const char *text, size_t len,
                                    size_t max_part, size_t keep) {
  tt_json_stream *st = tt_json_stream_new();
  for (size_t upto = 0; upto < len - keep;) {
    upto += 1 + cut_next() % max_part;
    if (upto > len - keep)
      upto = len - keep;
    char *copy = malloc(upto + 1);
    memcpy(copy, text, upto);
    copy[upto] = '\0';
    tt_json_stream_feed(st, copy, upto);
    free(copy);
  }
  return st;
}

/* A large answer validated while it arrives: almost all of it is walked
 * before the last part is in, and the finish gives the result member
 * parsing the whole gives. A text that is not compact, or is damaged,
 * stops the stream where that shows, and the finish parses it whole:
 * the same value, or the same error at the same byte. */
static void test_stream(void **state) {
  (void)state;
  const char *mark = "\"result\":";
  /* No key repeated, or one of the first keys of the large object (whose
   * hash the duplicate check computes) or a later one (hashed as the
   * stream logs it). */
  static const int dups[] = {-1, 7, 100};
  for (size_t d = 0; d < sizeof dups / sizeof *dups; d++) {
    tether_buf b;
    answer_text(&b, 3000, dups[d]);
    size_t at = (size_t)(strstr(b.data, mark) - b.data) + strlen(mark);
    tether_json *whole = parse_n(b.data, b.len);
    tether_json *want = tether_json_ref(tether_json_object_get(whole, "result"));
    tt_json_stream *st = stream_parts(b.data, b.len, 64 * 1024, 10);
    /* The last checkpoint lies less than its distance, plus a value,
     * before the end of what has come. */
    assert_true(tt_json_stream_done(st) + 20 * 1024 > b.len);
    bool member;
    tether_json_error err;
    tether_json *v = tt_json_stream_finish(st, block_of(b.data, b.len, 3), 3,
                                           b.len, at, &member, &err);
    assert_non_null(v);
    assert_true(member);
    char *dv = dump(v), *dw = dump(want);
    assert_string_equal(dv, dw);
    assert_true(tether_json_equal(v, want));
    free(dv);
    free(dw);
    tether_json_unref(v);
    tether_json_unref(want);
    tether_json_unref(whole);
    tether_buf_free(&b);
  }

  /* Whitespace, a string the compacted text writes otherwise, damage:
   * each stops the stream once the part with it is in. */
  static const char *const spoil[] = {" ", "\"\\u0041\":1,", "\"\\/\":1,",
                                      "\"x\":01,", "\"\x01\":1,"};
  for (size_t k = 0; k < sizeof spoil / sizeof *spoil; k++) {
    tether_buf b, m;
    answer_text(&b, 2000, -1);
    size_t cut = b.len / 3;
    while (b.data[cut] != '{' || b.data[cut - 1] != ':')
      cut++;
    tether_buf_init(&m);
    tether_buf_append(&m, b.data, cut + 1);
    tether_buf_append_str(&m, spoil[k]);
    tether_buf_append(&m, b.data + cut + 1, b.len - cut - 1);
    size_t at = (size_t)(strstr(m.data, mark) - m.data) + strlen(mark);
    tt_json_stream *st = stream_parts(m.data, m.len, 16 * 1024, 0);
    assert_int_equal(tt_json_stream_done(st), 0);
    tether_json_error want, got;
    tether_json *whole = tether_json_parse(m.data, m.len, &want);
    bool member;
    tether_json *v = tt_json_stream_finish(st, block_of(m.data, m.len, 0), 0,
                                           m.len, at, &member, &got);
    if (!whole) {
      assert_null(v);
      assert_int_equal(got.offset, want.offset);
      assert_string_equal(got.message, want.message);
    } else {
      assert_true(member);
      assert_true(
          tether_json_equal(v, tether_json_object_get(whole, "result")));
      tether_json_unref(v);
      tether_json_unref(whole);
    }
    tether_buf_free(&b);
    tether_buf_free(&m);
  }

  /* A large compact message whose result is not its last member: the
   * stream validates it all the same, and the finish gives the whole
   * message, as parsing it in place does. */
  {
    tether_buf a, m;
    answer_text(&a, 2000, -1);
    size_t at = (size_t)(strstr(a.data, mark) - a.data) + strlen(mark);
    tether_buf_init(&m);
    tether_buf_append(&m, a.data, a.len - 1);
    tether_buf_append_str(&m, ",\"note\":1}");
    tt_json_stream *st = stream_parts(m.data, m.len, 64 * 1024, 10);
    assert_true(tt_json_stream_done(st) + 20 * 1024 > m.len);
    bool member;
    tether_json *v = tt_json_stream_finish(st, block_of(m.data, m.len, 2), 2,
                                           m.len, at, &member, NULL);
    tether_json *want = parse_n(m.data, m.len);
    assert_non_null(v);
    assert_false(member);
    char *dv = dump(v), *dw = dump(want);
    assert_string_equal(dv, dw);
    free(dv);
    free(dw);
    tether_json_unref(v);
    tether_json_unref(want);
    tether_buf_free(&a);
    tether_buf_free(&m);
  }

  /* A stream that is never fed, or finished without one. */
  tether_buf b;
  answer_text(&b, 10, -1);
  bool member;
  tether_json *v = tt_json_stream_finish(tt_json_stream_new(),
                                         block_of(b.data, b.len, 0), 0, b.len,
                                         0, NULL, NULL);
  assert_non_null(v);
  tether_json_unref(v);
  v = tt_json_stream_finish(NULL, block_of(b.data, b.len, 0), 0, b.len, 0,
                            &member, NULL);
  assert_non_null(v);
  assert_false(member);
  tether_json_unref(v);
  tether_buf_free(&b);
}

/* What tt_json_write writes to a temporary file. */
static char *written(const tether_json *v, size_t *len) {
  FILE *f = tmpfile();
  assert_non_null(f);
  assert_true(tt_json_write(v, f));
  assert_int_equal(fflush(f), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *s = malloc((size_t)n + 1);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return s;
}

static void expect_written_as_dumped(const tether_json *v) {
  size_t dlen, wlen;
  char *d = tether_json_dumps(v, &dlen);
  char *w = written(v, &wlen);
  assert_int_equal(wlen, dlen);
  assert_memory_equal(w, d, dlen);
  free(d);
  free(w);
}

/* Texts parsed into an arena (a replay's events): they read as any
 * other; the arena is used again once all of them are let go of, and
 * lives on, with them, while one is still held, even after its owner has
 * given it up (AddressSanitizer and valgrind would see a text read after
 * its memory went). A text too large for the room left is allocated on
 * its own. */
static void test_arena(void **state) {
  (void)state;
  tt_json_arena *a = tt_json_arena_new(4096);
  const char *line = "{\"index\":1,\"patch\":[{\"op\":\"add\",\"path\":\"/a\","
                     "\"value\":{\"b\":[1,2,\"three\"]}}]}";
  tether_json *v[8];
  for (int i = 0; i < 8; i++) {
    v[i] = tt_json_parse_walked_in(a, line, strlen(line), NULL);
    assert_non_null(v[i]);
  }
  /* The first ones went into the arena, the rest did not fit. */
  uint32_t root = 0;
  assert_true(tt_json_raw_text(v[0], &root)->arena);
  assert_false(tt_json_raw_text(v[7], &root)->arena);
  char *d = tether_json_dumps(v[3], NULL);
  assert_string_equal(d, line);
  free(d);
  /* A member taken out keeps its text, and the arena, alive. */
  tether_json *patch = tether_json_ref(tether_json_object_get(v[0], "patch"));
  for (int i = 0; i < 8; i++)
    tether_json_unref(v[i]);
  size_t used = a->used;
  assert_true(used > 0);
  assert_null(tt_json_arena_reset(a)); /* held: given up, not emptied */
  d = tether_json_dumps(patch, NULL);
  assert_string_equal(d, "[{\"op\":\"add\",\"path\":\"/a\",\"value\":{\"b\":"
                         "[1,2,\"three\"]}}]");
  free(d);
  tether_json_unref(patch); /* the last part: the arena goes */

  /* Let go of entirely: emptied and used again, from the start. */
  a = tt_json_arena_new(4096);
  tether_json *x = tt_json_parse_walked_in(a, line, strlen(line), NULL);
  char *first = (char *)x;
  tether_json_unref(x);
  assert_ptr_equal(tt_json_arena_reset(a), a);
  assert_int_equal(a->used, 0);
  x = tt_json_parse_walked_in(a, line, strlen(line), NULL);
  assert_ptr_equal((char *)x, first);
  tether_json_unref(x);
  tt_json_arena_free(a);
  tt_json_arena_free(NULL);
  assert_null(tt_json_arena_reset(NULL));
}

static void test_write_to_file(void **state) {
  (void)state;
  tether_buf b;
  spaced_object(&b, 4000, "");
  tether_json *big = parse_n(b.data, b.len);
  tether_buf_free(&b);
  /* Large raw texts written from where they lie, between values that go
   * through the buffer, in order. */
  tether_json *o = tether_json_object();
  o = tether_json_object_set(o, "first", tether_json_string("a\tb"));
  o = tether_json_object_set(o, "big", tether_json_ref(big));
  tether_json *arr = tether_json_array();
  arr = tether_json_array_append(arr, tether_json_ref(big));
  arr = tether_json_array_append(arr, tether_json_int(-3));
  arr = tether_json_array_append(arr, parse("{\"small\":[true,null]}"));
  o = tether_json_object_set(o, "list", arr);
  expect_written_as_dumped(o);
  expect_written_as_dumped(big);
  /* A text repeating a key is written materialized, as it is dumped. */
  tether_json *dups = parse("{\"a\":1,\"b\":[2],\"a\":3}");
  expect_written_as_dumped(dups);
  expect_written_as_dumped(tether_json_bool(true));
  size_t len;
  char *s = written(NULL, &len);
  assert_string_equal(s, "null");
  free(s);
  /* A failed write is reported, with its cause. */
  FILE *full = fopen("/dev/full", "w");
  if (full) {
    setvbuf(full, NULL, _IONBF, 0);
    errno = 0;
    assert_false(tt_json_write(o, full));
    assert_int_equal(errno, ENOSPC);
    fclose(full);
  }
  tether_json_unref(dups);
  tether_json_unref(o);
  tether_json_unref(big);
}

/* ---- Round trips ---- */

static void test_round_trip(void **state) {
  (void)state;
  const char *docs[] = {
      "{\"index\":12345678901234567890,\"meta\":{\"time\":\"2024-01-01T00:00:"
      "00Z\",\"event\":\"create\"},\"patch\":[{\"op\":\"add\",\"path\":\"/"
      "resources/web\",\"value\":{\"type\":\"file\",\"inputProperties\":{"
      "\"name\":\"hello.txt\",\"contents\":\"id=\\u0001\\n\\\"q\\\"\"}}}]}",
      "[1.5e300,-0.0,0,1E-7,3.14159265358979323846264338327950288]",
      "\"\xF0\x9F\x98\x80\xE2\x82\xAC\"",
      "[[],{},[[]],[{}],{\"\":{\"\":[]}}]",
  };
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    tether_json *a = parse(docs[i]);
    char *d1 = dump(a);
    assert_string_equal(d1, docs[i]);
    tether_json *b = parse(d1);
    force_all(b);
    char *d2 = dump(b);
    assert_string_equal(d1, d2);
    assert_true(tether_json_equal(a, b));
    free(d1);
    free(d2);
    tether_json_unref(a);
    tether_json_unref(b);
  }
  /* Built through the API. */
  tether_json *o = tether_json_object();
  o = tether_json_object_set(o, "n", tether_json_uint(12345678901234567890u));
  o = tether_json_object_set(o, "d", tether_json_double(0.1));
  o = tether_json_object_set(o, "s", tether_json_string("tab\there"));
  o = tether_json_object_set(o, "k\"ey", tether_json_array());
  assert_dump(o, "{\"n\":12345678901234567890,\"d\":0.1,\"s\":\"tab\\there\","
                 "\"k\\\"ey\":[]}");
  size_t len;
  char *s = tether_json_dumps(o, &len);
  assert_int_equal(len, strlen(s));
  tether_json *back = parse(s);
  assert_true(tether_json_equal(o, back));
  free(s);
  tether_json_unref(o);
  tether_json_unref(back);
  /* dump appends. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, "x=");
  tether_json_dump(tether_json_bool(false), &b);
  tether_json_dump(NULL, &b);
  assert_string_equal(b.data, "x=falsenull");
  tether_buf_free(&b);
}

static void test_deep_values_built_through_the_api(void **state) {
  (void)state;
  /* Deeper than the parser allows: dump, equal and free must not recurse
   * on the C stack. */
  enum { DEPTH = 200000 };
  tether_json *v = tether_json_int(1);
  for (int i = 0; i < DEPTH; i++)
    v = tether_json_array_append(tether_json_array(), v);
  tether_json *w = tether_json_int(1);
  for (int i = 0; i < DEPTH; i++)
    w = tether_json_array_append(tether_json_array(), w);
  size_t len;
  char *d = tether_json_dumps(v, &len);
  assert_int_equal(len, 2 * DEPTH + 1);
  free(d);
  assert_true(tether_json_equal(v, w));
  tether_json_unref(v);
  tether_json_unref(w);
}

/* ---- JSON Pointer ---- */

static const char rfc6901_doc[] =
    "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3,"
    " \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8}";

static void test_pointer_rfc6901(void **state) {
  (void)state;
  tether_json *doc = parse(rfc6901_doc);
  struct {
    const char *ptr;
    const char *expect;
  } cases[] = {{"", NULL},         {"/foo", "[\"bar\",\"baz\"]"},
               {"/foo/0", "\"bar\""}, {"/", "0"},
               {"/a~1b", "1"},       {"/c%d", "2"},
               {"/e^f", "3"},        {"/g|h", "4"},
               {"/i\\j", "5"},       {"/k\"l", "6"},
               {"/ ", "7"},          {"/m~0n", "8"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tether_json_error err;
    tether_json *v = tether_json_pointer_get(doc, cases[i].ptr, &err);
    if (!v)
      fail_msg("%s: %s", cases[i].ptr, err.message);
    if (!cases[i].expect)
      assert_ptr_equal(v, doc);
    else
      assert_dump(v, cases[i].expect);
  }
  tether_json_unref(doc);
}

static void test_pointer_errors(void **state) {
  (void)state;
  tether_json *doc = parse("{\"a\":{\"b\":[10,20,30]},\"s\":\"str\"}");
  struct {
    const char *ptr;
    const char *says;
  } cases[] = {
      {"a", "must be empty or start with '/'"},
      {"/x", "no such member 'x'"},
      {"/a/c", "no such member 'c'"},
      {"/a/b/3", "index 3 out of range (the array has 3 elements)"},
      {"/a/b/-", "past the last element"},
      {"/a/b/01", "'01' is not an array index"},
      {"/a/b/1x", "'1x' is not an array index"},
      {"/a/b/", "'' is not an array index"},
      {"/a/b/-1", "'-1' is not an array index"},
      {"/a/b/99999999999999999999999", "is not an array index"},
      {"/s/x", "cannot look up 'x' in string"},
      {"/a/b/0/x", "cannot look up 'x' in number"},
      {"/a~2", "'~' must be followed by '0' or '1'"},
      {"/a~", "'~' must be followed by '0' or '1'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    tether_json_error err;
    tether_json *v = tether_json_pointer_get(doc, cases[i].ptr, &err);
    if (v)
      fail_msg("%s resolved", cases[i].ptr);
    if (!strstr(err.message, cases[i].says))
      fail_msg("%s: message lacks '%s': %s", cases[i].ptr, cases[i].says,
               err.message);
    assert_int_equal(err.op, -1);
  }
  assert_non_null(tether_json_pointer_get(doc, "/a/b/0", NULL));
  assert_null(tether_json_pointer_get(doc, "/zz", NULL));
  tether_json_unref(doc);
}

static void test_pointer_append(void **state) {
  (void)state;
  tether_buf b;
  tether_buf_init(&b);
  tether_json_pointer_append(&b, "resources", 9);
  tether_json_pointer_append(&b, "a/b~c", 5);
  tether_json_pointer_append(&b, "", 0);
  tether_json_pointer_append(&b, "~~//", 4);
  assert_string_equal(b.data, "/resources/a~1b~0c//~0~0~1~1");
  /* And back. */
  tether_json *doc = parse("{\"resources\":{\"a/b~c\":{\"\":{\"~~//\":42}}}}");
  tether_json *v = tether_json_pointer_get(doc, b.data, NULL);
  assert_non_null(v);
  assert_string_equal(tether_json_number_str(v), "42");
  tether_json_unref(doc);
  tether_buf_free(&b);
}

/* ---- Fuzzing against a reference validator ---- */

/* A deliberately plain, independent RFC 8259 validator: recursive
 * descent, byte by byte. */
typedef struct ref {
  const unsigned char *s;
  size_t len, pos;
  int depth;
} ref;

static void ref_ws(ref *r) {
  while (r->pos < r->len && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
                             r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
    r->pos++;
}

static int ref_peek(ref *r) { return r->pos < r->len ? r->s[r->pos] : -1; }

static bool ref_value(ref *r);

static bool ref_hex4(ref *r, unsigned *out) {
  if (r->len - r->pos < 4)
    return false;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int c = r->s[r->pos++];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return false;
  }
  *out = v;
  return true;
}

static bool ref_string(ref *r) {
  r->pos++;
  for (;;) {
    int c = ref_peek(r);
    if (c < 0 || c < 0x20)
      return false;
    r->pos++;
    if (c == '"')
      return true;
    if (c == '\\') {
      int e = ref_peek(r);
      r->pos++;
      if (e == 'u') {
        unsigned u;
        if (!ref_hex4(r, &u))
          return false;
        if (u >= 0xDC00 && u <= 0xDFFF)
          return false;
        if (u >= 0xD800 && u <= 0xDBFF) {
          unsigned lo;
          if (ref_peek(r) != '\\')
            return false;
          r->pos++;
          if (ref_peek(r) != 'u')
            return false;
          r->pos++;
          if (!ref_hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return false;
        }
      } else if (!e || !strchr("\"\\/bfnrt", e)) {
        return false;
      }
      continue;
    }
    if (c < 0x80)
      continue;
    unsigned cp;
    int n;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = (unsigned)c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = (unsigned)c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = (unsigned)c & 0x07;
    } else {
      return false;
    }
    for (int i = 0; i < n; i++) {
      int d = ref_peek(r);
      if (d < 0 || (d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | ((unsigned)d & 0x3F);
      r->pos++;
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
  }
}

static bool ref_digits(ref *r) {
  size_t start = r->pos;
  while (ref_peek(r) >= '0' && ref_peek(r) <= '9')
    r->pos++;
  return r->pos > start;
}

static bool ref_number(ref *r) {
  if (ref_peek(r) == '-')
    r->pos++;
  if (ref_peek(r) == '0')
    r->pos++;
  else if (!ref_digits(r))
    return false;
  if (ref_peek(r) == '.') {
    r->pos++;
    if (!ref_digits(r))
      return false;
  }
  if (ref_peek(r) == 'e' || ref_peek(r) == 'E') {
    r->pos++;
    if (ref_peek(r) == '+' || ref_peek(r) == '-')
      r->pos++;
    if (!ref_digits(r))
      return false;
  }
  return true;
}

static bool ref_word(ref *r, const char *w) {
  size_t n = strlen(w);
  if (r->len - r->pos < n || memcmp(r->s + r->pos, w, n) != 0)
    return false;
  r->pos += n;
  return true;
}

static bool ref_value(ref *r) {
  ref_ws(r);
  int c = ref_peek(r);
  bool ok;
  if (c == '{' || c == '[') {
    if (++r->depth > TETHER_JSON_MAX_DEPTH)
      return false;
    int close = c == '{' ? '}' : ']';
    r->pos++;
    ref_ws(r);
    if (ref_peek(r) == close) {
      r->pos++;
    } else {
      for (;;) {
        if (c == '{') {
          ref_ws(r);
          if (ref_peek(r) != '"' || !ref_string(r))
            return false;
          ref_ws(r);
          if (ref_peek(r) != ':')
            return false;
          r->pos++;
        }
        if (!ref_value(r))
          return false;
        ref_ws(r);
        if (ref_peek(r) == ',') {
          r->pos++;
          continue;
        }
        if (ref_peek(r) != close)
          return false;
        r->pos++;
        break;
      }
    }
    r->depth--;
    ok = true;
  } else if (c == '"') {
    ok = ref_string(r);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    ok = ref_number(r);
  } else {
    ok = ref_word(r, "true") || ref_word(r, "false") || ref_word(r, "null");
  }
  return ok;
}

static bool ref_valid(const char *s, size_t len) {
  ref r = {(const unsigned char *)s, len, 0, 0};
  if (!ref_value(&r))
    return false;
  ref_ws(&r);
  return r.pos == len;
}

static const char *const fuzz_seeds[] = {
    "{\"index\":7,\"meta\":{\"time\":\"2024-05-01T10:00:00Z\",\"event\":"
    "\"create\"},\"patch\":[{\"op\":\"add\",\"path\":\"/resources/r7\","
    "\"value\":{\"type\":\"file\",\"inputProperties\":{\"name\":\"a.txt\","
    "\"mode\":420,\"tags\":[\"x\",\"y\"],\"ok\":true,\"no\":null}}}]}",
    "[1,-2.5e+10,0.0,\"\\u00e9\\ud83d\\ude00\\n\",\"\xC3\xA9\xE2\x82\xAC"
    "\xF0\x9F\x98\x80\",[[[]]],{\"\":{}},false]",
    " { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { \"c\" : \"d\\\"\\\\\" } } ",
    "{\"k\":1,\"k\":2,\"\\u006b\":3}",
    "\"just a string with \\t escapes\"",
};

/* Small edits that tend to hit interesting places. */
static const char *const fuzz_inserts[] = {
    "\"", "\\", "\\u", "\\uD800", "\\uDC00", "[", "]", "{", "}", ",", ":",
    " ", "\n", "\x01", "\x7f", "\xC3", "\xA9", "\xED\xA0\x80", "\xF4\x90",
    "0", "-", ".", "e", "+", "01", "true", "nul", "\0", "\xFF", "\\\"",
};

static uint64_t fuzz_rng = 0x9E3779B97F4A7C15ull;
static uint32_t fuzz_next(void) {
  fuzz_rng ^= fuzz_rng << 13;
  fuzz_rng ^= fuzz_rng >> 7;
  fuzz_rng ^= fuzz_rng << 17;
  return (uint32_t)(fuzz_rng >> 16);
}

/* Parsing in place says what parsing a copy said (v, err) of in. */
static void fuzz_in_place(const char *in, size_t len, const tether_json *v,
                          const tether_json_error *err) {
  /* Before the comparisons below look into v. */
  size_t size = v ? tt_json_raw_text_size(v) : 0;
  for (int streamed = 0; streamed < 2; streamed++) {
    tether_json_error got;
    tether_json *w =
        streamed ? stream_in_place(in, len, 1, 0, NULL, &got)
                 : tt_json_parse_in_place(block_of(in, len, 1), 1, len, &got);
    const char *how = streamed ? "as a stream" : "in place";
    if (!v) {
      if (w)
        fail_msg("accepted %s, rejected from a copy: %.*s", how, (int)len, in);
      assert_int_equal(got.offset, err->offset);
      assert_string_equal(got.message, err->message);
      continue;
    }
    if (!w)
      fail_msg("rejected %s (%s): %.*s", how, got.message, (int)len, in);
    assert_int_equal(tt_json_raw_text_size(w), size);
    assert_true(tether_json_equal(v, w));
    tether_json_unref(w);
  }
}

static void fuzz_one(const char *in, size_t len, size_t *accepted) {
  tether_json_error err;
  tether_json *v = tether_json_parse(in, len, &err);
  bool expect = ref_valid(in, len);
  if ((v != NULL) != expect)
    fail_msg("parser says %s, reference says %s, for %zu bytes: %.*s",
             v ? "valid" : err.message, expect ? "valid" : "invalid", len,
             (int)len, in);
  fuzz_in_place(in, len, v, &err);
  expect_walked_agrees(in, len);
  if (!v) {
    assert_true(err.offset <= len);
    char at[48];
    snprintf(at, sizeof at, "invalid JSON at byte %zu: ", err.offset);
    assert_true(strncmp(err.message, at, strlen(at)) == 0);
    return;
  }
  (*accepted)++;
  /* Accepted: the serialization parses back equal and is stable, and
   * materializing does not change it. */
  size_t dlen;
  char *d = tether_json_dumps(v, &dlen);
  assert_true(ref_valid(d, dlen));
  tether_json *w = tether_json_parse(d, dlen, &err);
  assert_non_null(w);
  assert_true(tether_json_equal(v, w));
  force_all(w);
  char *d2 = tether_json_dumps(w, NULL);
  assert_string_equal(d, d2);
  free(d);
  free(d2);
  tether_json_unref(v);
  tether_json_unref(w);
}

static void test_fuzz_mutations(void **state) {
  (void)state;
  const char *env = getenv("TETHER_FUZZ_ITERATIONS");
  long iterations = env ? atol(env) : 200000;
  size_t accepted = 0;
  char buf[1024];
  for (long it = 0; it < iterations; it++) {
    const char *seed =
        fuzz_seeds[fuzz_next() % (sizeof fuzz_seeds / sizeof *fuzz_seeds)];
    size_t len = strlen(seed);
    memcpy(buf, seed, len);
    int edits = 1 + (int)(fuzz_next() % 3);
    for (int e = 0; e < edits; e++) {
      size_t at = len ? fuzz_next() % (len + 1) : 0;
      switch (fuzz_next() % 5) {
      case 0: /* flip a byte */
        if (at < len)
          buf[at] = (char)fuzz_next();
        break;
      case 1: /* delete a run */
        if (at < len) {
          size_t n = 1 + fuzz_next() % 4;
          if (n > len - at)
            n = len - at;
          memmove(buf + at, buf + at + n, len - at - n);
          len -= n;
        }
        break;
      case 2: /* truncate */
        len = at;
        break;
      default: { /* insert something */
        const char *ins = fuzz_inserts[fuzz_next() % (sizeof fuzz_inserts /
                                                      sizeof *fuzz_inserts)];
        size_t n = strlen(ins);
        if (ins[0] == '\0')
          n = 1;
        if (len + n < sizeof buf) {
          memmove(buf + at + n, buf + at, len - at);
          memcpy(buf + at, ins, n);
          len += n;
        }
        break;
      }
      }
    }
    fuzz_one(buf, len, &accepted);
  }
  /* The mutations must leave some inputs valid, or the loop tests only
   * rejection. */
  if (iterations >= 1000)
    assert_true(accepted > (size_t)iterations / 50);
}

static void test_fuzz_random_bytes(void **state) {
  (void)state;
  /* Short random texts over a JSON-ish alphabet. */
  static const char alphabet[] = "[]{},:\"\\ 0123-.eE+tfnrulasu\x01\x80\xC3";
  char buf[64];
  size_t accepted = 0;
  for (int it = 0; it < 100000; it++) {
    size_t len = fuzz_next() % sizeof buf;
    for (size_t i = 0; i < len; i++)
      buf[i] = alphabet[fuzz_next() % (sizeof alphabet - 1)];
    fuzz_one(buf, len, &accepted);
  }
}

/* A large text is validated by the walk alone when parsed (jsmn reads it
 * when its index is built): what jsmn would let through is still refused
 * there, at its offset, and what is valid is tokenized on first look. */
static void test_large_texts_walked_alone(void **state) {
  (void)state;
  static const char *const bad[] = {"01", "1 2", "\"a\tb\"", "[1,]", "tru"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    tether_buf b;
    tether_buf_init(&b);
    tether_buf_append_char(&b, '[');
    for (int i = 0; i < 20000; i++)
      tether_buf_printf(&b, "%d,", i);
    size_t at = b.len;
    tether_buf_printf(&b, "%s]", bad[k]);
    assert_true(b.len > 64 * 1024);
    tether_json_error err;
    assert_null(tether_json_parse(b.data, b.len, &err));
    if (err.offset < at || err.offset > at + strlen(bad[k]))
      fail_msg("%s: error at %zu, not at %zu: %s", bad[k], err.offset, at,
               err.message);
    tether_buf_free(&b);
  }
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_char(&b, '[');
  for (int i = 0; i < 20000; i++)
    tether_buf_printf(&b, "%s{\"n\":%d}", i ? "," : "", i);
  tether_buf_append_char(&b, ']');
  tether_json *v = tether_json_parse(b.data, b.len, NULL);
  assert_non_null(v);
  int64_t n = 0;
  assert_true(tether_json_get_int(
      tether_json_object_get(tether_json_array_get(v, 12345), "n"), &n));
  assert_int_equal(n, 12345);
  tether_json_unref(v);
  tether_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_table),
      cmocka_unit_test(test_walked_tables),
      cmocka_unit_test(test_reject_table),
      cmocka_unit_test(test_parse_without_error_struct),
      cmocka_unit_test(test_input_too_large),
      cmocka_unit_test(test_large_texts_walked_alone),
      cmocka_unit_test(test_nesting_limit),
      cmocka_unit_test(test_nesting_huge),
      cmocka_unit_test(test_many_tokens_and_deep_chains),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_long_strings_and_escapes),
      cmocka_unit_test(test_number_equality),
      cmocka_unit_test(test_number_text),
      cmocka_unit_test(test_integers),
      cmocka_unit_test(test_doubles),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_arrays),
      cmocka_unit_test(test_objects_order_and_equality),
      cmocka_unit_test(test_objects_large_model),
      cmocka_unit_test(test_copy_on_write),
      cmocka_unit_test(test_lazy_kinds_without_forcing),
      cmocka_unit_test(test_lazy_equality_and_mixed_trees),
      cmocka_unit_test(test_lazy_detach),
      cmocka_unit_test(test_lazy_detached_scan),
      cmocka_unit_test(test_lazy_shared_between_threads),
      cmocka_unit_test(test_duplicate_keys),
      cmocka_unit_test(test_in_place_tables),
      cmocka_unit_test(test_in_place_compacts),
      cmocka_unit_test(test_in_place_ownership),
      cmocka_unit_test(test_in_place_member),
      cmocka_unit_test(test_stream),
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_write_to_file),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_deep_values_built_through_the_api),
      cmocka_unit_test(test_pointer_rfc6901),
      cmocka_unit_test(test_pointer_errors),
      cmocka_unit_test(test_pointer_append),
      cmocka_unit_test(test_fuzz_mutations),
      cmocka_unit_test(test_fuzz_random_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
