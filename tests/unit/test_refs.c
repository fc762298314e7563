/*
 * test_refs.c: reference syntax, escapes, interpolation and resolution of
 * input properties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deployment.h"
#include "refs.h"

static char *dq(const char *s) {
  char *t = strdup(s);
  for (char *p = t; *p; p++)
    if (*p == '\'')
      *p = '"';
  return t;
}

static tether_json *js(const char *text) {
  char *t = dq(text);
  tether_json_error e;
  tether_json *v = tether_json_parse(t, strlen(t), &e);
  free(t);
  if (!v)
    fail_msg("bad test JSON: %s", e.message);
  return v;
}

static void assert_json(const tether_json *v, const char *expected) {
  char *want = dq(expected);
  char *have = tether_json_dumps(v, NULL);
  assert_string_equal(have, want);
  free(have);
  free(want);
}

/* Renders a string's tokens as "T(text)" and "R(target|key)". */
static char *tokens(const char *s) {
  static char out[512];
  out[0] = '\0';
  tt_ref_scanner sc;
  tt_ref_scan_init(&sc, s, strlen(s));
  for (tt_ref_token t; (t = tt_ref_scan_next(&sc)) != TT_REF_END;) {
    size_t n = strlen(out);
    if (t == TT_REF_TEXT)
      snprintf(out + n, sizeof out - n, "T(%.*s)", (int)sc.text_len, sc.text);
    else if (t == TT_REF_REFERENCE)
      snprintf(out + n, sizeof out - n, "R(%.*s|%.*s)", (int)sc.ref.target_len,
               sc.ref.target, (int)sc.ref.key_len, sc.ref.key);
    else {
      snprintf(out + n, sizeof out - n, "E(%s)", sc.error);
      break;
    }
  }
  return out;
}

static void scanning(void **state) {
  assert_string_equal(tokens("plain"), "T(plain)");
  assert_string_equal(tokens(""), "");
  assert_string_equal(tokens("id=${id.outputs.value}!"),
                      "T(id=)R(id|value)T(!)");
  assert_string_equal(tokens("${a.outputs.x}${b.outputs.y}"), "R(a|x)R(b|y)");
  assert_string_equal(tokens("${sub.inner.db.outputs.url}"),
                      "R(sub.inner.db|url)");
  /* A resource or deployment may be called "outputs": position decides. */
  assert_string_equal(tokens("${outputs.outputs.outputs}"),
                      "R(outputs|outputs)");
  assert_string_equal(tokens("${my-db_2.outputs.conn-str_1}"),
                      "R(my-db_2|conn-str_1)");
}

static void escapes_and_dollars(void **state) {
  assert_string_equal(tokens("$${HOME}"), "T(${)T(HOME})");
  assert_string_equal(tokens("echo $${x.outputs.y} $5 $"),
                      "T(echo )T(${)T(x.outputs.y} $5 $)");
  /* "$$${" is a dollar followed by the escape. */
  assert_string_equal(tokens("$$${a}"), "T($)T(${)T(a})");
  assert_string_equal(tokens("$$ and $}"), "T($$ and $})");
}

static void malformed(void **state) {
  const char *hint = ": expected ${RESOURCE.outputs.KEY} (write $${ for a "
                     "literal ${))";
  const char *bad[] = {"${HOME}",           "${db.url}",
                       "${db.outputs.}",    "${.outputs.x}",
                       "${db.outputs.a.b}", "${db.output.x}",
                       "${db .outputs.x}",  "${}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[256];
    snprintf(want, sizeof want, "E(malformed reference '%s'%s", bad[i], hint);
    assert_string_equal(tokens(bad[i]), want);
  }
  assert_string_equal(tokens("ok ${db.outputs.x"),
                      "T(ok )E(unterminated reference '${db.outputs.x': no "
                      "closing '}' (write $${ for a literal ${))");
  /* An error stays an error. */
  tt_ref_scanner sc;
  tt_ref_scan_init(&sc, "${x}", 4);
  assert_int_equal(tt_ref_scan_next(&sc), TT_REF_ERROR);
  assert_int_equal(tt_ref_scan_next(&sc), TT_REF_ERROR);
}

static void whole_string(void **state) {
  tt_ref ref;
  assert_true(tt_ref_whole("${db.outputs.port}", 18, &ref));
  assert_int_equal(ref.target_len, 2);
  assert_memory_equal(ref.target, "db", 2);
  assert_int_equal(ref.key_len, 4);
  assert_false(tt_ref_whole(" ${db.outputs.port}", 19, &ref));
  assert_false(tt_ref_whole("${db.outputs.port}x", 19, &ref));
  assert_false(tt_ref_whole("$${db.outputs.port}", 19, &ref));
  assert_false(tt_ref_whole("${a.outputs.x}${b.outputs.y}", 28, &ref));
}

static void interpolation(void **state) {
  const char *cases[][2] = {
      {"'text'", "text"},  {"8080", "8080"},
      {"1.50", "1.50"},    {"true", "true"},
      {"null", "null"},    {"{'a': [1, 'x']}", "{\"a\":[1,\"x\"]}"},
      {"'a\\nb'", "a\nb"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tether_json *v = js(cases[i][0]);
    tether_buf b;
    tether_buf_init(&b);
    tt_ref_interpolate(v, &b);
    assert_string_equal(b.data, cases[i][1]);
    tether_buf_free(&b);
    tether_json_unref(v);
  }
}

/* ---- Resolution against a model ---- */

static const char *model_text =
    "{'state': 's',"
    " 'providers': {'local': {'executable': 'tether-local'}},"
    " 'resources': {"
    "  's': {'provider': 'local', 'type': 'state_file'},"
    "  'db': {'provider': 'local', 'type': 'pg'},"
    "  'web': {'provider': 'local', 'type': 'file', 'inputs': {"
    "     'port': '${db.outputs.port}',"
    "     'conf': '${db.outputs.conf}',"
    "     'url': 'http://${db.outputs.host}:${db.outputs.port}/',"
    "     'flag': 'tls=${db.outputs.tls} opts=${db.outputs.conf}',"
    "     'literal': 'cost $$${db.outputs.port} $5',"
    "     'list': ['x', '${sub.cache.outputs.addr}', {'a/b': "
    "'${sub.cache.outputs.addr}'}],"
    "     'plain': {'n': 1, 'deep': ['no refs']}}}},"
    " 'deployments': {'sub': {'resources': {"
    "  'cache': {'provider': 'local', 'type': 'memo'}}}}}";

typedef struct outputs_ctx {
  const tt_model *m;
  tether_json *db;    /* NULL: known after apply */
  tether_json *cache; /* NULL: known after apply */
  int calls;
} outputs_ctx;

static const tether_json *lookup(void *ctx, const tt_resource *target) {
  outputs_ctx *c = ctx;
  c->calls++;
  if (strcmp(target->path, "db") == 0)
    return c->db;
  if (strcmp(target->path, "sub/cache") == 0)
    return c->cache;
  fail_msg("lookup of unexpected resource %s", target->path);
  return NULL;
}

static tt_model *load_model(void) {
  char *t = dq(model_text);
  tt_diag d;
  tt_model *m = tt_model_parse("tether.json", t, strlen(t), &d);
  free(t);
  if (!m)
    fail_msg("%s", d.message);
  return m;
}

static void resolve_known(void **state) {
  tt_model *m = load_model();
  const tt_resource *web = tt_model_find_resource(m, "web", 3);
  outputs_ctx c = {m,
                   js("{'port': 5432, 'host': 'db.local', 'tls': false, "
                      "'conf': {'pool': 4}}"),
                   js("{'addr': '10.0.0.7'}"), 0};
  tt_resolved r;
  tt_diag d;
  assert_null(tt_resolve_inputs(web, lookup, &c, &r, &d));
  assert_int_equal(r.nunknown, 0);
  /* Whole-string references keep their JSON type; inside longer strings
   * values are interpolated, structured ones as compact JSON. */
  assert_json(r.inputs, "{'port':5432,'conf':{'pool':4},"
                        "'url':'http://db.local:5432/',"
                        "'flag':'tls=false opts={\\'pool\\':4}',"
                        "'literal':'cost $${db.outputs.port} $5',"
                        "'list':['x','10.0.0.7',{'a/b':'10.0.0.7'}],"
                        "'plain':{'n':1,'deep':['no refs']}}");
  tt_resolved_free(&r);
  tether_json_unref(c.db);
  tether_json_unref(c.cache);
  tt_model_free(m);
}

static void resolve_unknown(void **state) {
  tt_model *m = load_model();
  const tt_resource *web = tt_model_find_resource(m, "web", 3);
  outputs_ctx c = {m, js("{'port': 1, 'host': 'h', 'tls': true, 'conf': 0}"),
                   NULL, 0};
  tt_resolved r;
  tt_diag d;
  assert_null(tt_resolve_inputs(web, lookup, &c, &r, &d));
  /* Values depending on outputs not known yet are null placeholders,
   * listed by pointer (with RFC 6901 escaping) in document order. */
  assert_int_equal(r.nunknown, 2);
  assert_string_equal(r.unknown[0], "/list/1");
  assert_string_equal(r.unknown[1], "/list/2/a~1b");
  assert_json(tether_json_object_get(r.inputs, "list"),
              "['x',null,{'a/b':null}]");
  assert_json(tether_json_object_get(r.inputs, "url"), "'http://h:1/'");
  tt_resolved_free(&r);

  /* With nothing known, every referencing value is unknown. */
  tether_json_unref(c.db);
  c.db = NULL;
  assert_null(tt_resolve_inputs(web, lookup, &c, &r, &d));
  assert_int_equal(r.nunknown, 6);
  assert_string_equal(r.unknown[0], "/port");
  assert_string_equal(r.unknown[3], "/flag");
  assert_json(tether_json_object_get(r.inputs, "literal"),
              "'cost $${db.outputs.port} $5'");
  tt_resolved_free(&r);
  tt_model_free(m);
}

static void resolve_missing_output(void **state) {
  tt_model *m = load_model();
  const tt_resource *web = tt_model_find_resource(m, "web", 3);
  outputs_ctx c = {m, js("{'host': 'h', 'user': 'u'}"), js("{}"), 0};
  tt_resolved r;
  tt_diag d;
  assert_non_null(tt_resolve_inputs(web, lookup, &c, &r, &d));
  assert_string_equal(d.message,
                      "tether.json: resources.web.inputs.port: resource 'db' "
                      "has no output 'port' (its outputs: host, user)");
  assert_null(r.inputs);
  assert_int_equal(r.nunknown, 0);
  tether_json_unref(c.db);
  c.db = js("{'port': 1, 'host': 'h', 'tls': true, 'conf': 0}");
  assert_non_null(tt_resolve_inputs(web, lookup, &c, &r, &d));
  assert_string_equal(d.message,
                      "tether.json: resources.web.inputs.list[1]: resource "
                      "'sub.cache' has no output 'addr' (it has no outputs)");
  tether_json_unref(c.db);
  tether_json_unref(c.cache);
  tt_model_free(m);
}

static void inputs_without_references(void **state) {
  tt_model *m = load_model();
  const tt_resource *db = tt_model_find_resource(m, "db", 2);
  outputs_ctx c = {m, NULL, NULL, 0};
  tt_resolved r;
  tt_diag d;
  assert_null(tt_resolve_inputs(db, lookup, &c, &r, &d));
  assert_json(r.inputs, "{}");
  assert_int_equal(c.calls, 0);
  tt_resolved_free(&r);
  tt_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scanning),
      cmocka_unit_test(escapes_and_dollars),
      cmocka_unit_test(malformed),
      cmocka_unit_test(whole_string),
      cmocka_unit_test(interpolation),
      cmocka_unit_test(resolve_known),
      cmocka_unit_test(resolve_unknown),
      cmocka_unit_test(resolve_missing_output),
      cmocka_unit_test(inputs_without_references),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
