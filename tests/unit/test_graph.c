/*
 * test_graph.c: dependency order, cycle reports (plain and through state
 * stores) and the DOT output of `tether graph`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "deployment.h"
#include "graph.h"

static char *dq(const char *s) {
  char *t = strdup(s);
  for (char *p = t; *p; p++)
    if (*p == '\'')
      *p = '"';
  return t;
}

static tt_model *load(const char *text) {
  char *t = dq(text);
  tt_diag d;
  tt_model *m = tt_model_parse("tether.json", t, strlen(t), &d);
  free(t);
  if (!m)
    fail_msg("unexpected error: %s", d.message);
  return m;
}

static void expect_error(const char *text, const char *message) {
  char *t = dq(text);
  tt_diag d;
  tt_model *m = tt_model_parse("tether.json", t, strlen(t), &d);
  free(t);
  if (m) {
    tt_model_free(m);
    fail_msg("loaded, expected: %s", message);
  }
  assert_string_equal(d.message, message);
}

/* The order as "a b c". */
static char *order_of(const tt_model *m) {
  static char out[1024];
  out[0] = '\0';
  for (size_t i = 0; i < m->nresources; i++) {
    size_t n = strlen(out);
    snprintf(out + n, sizeof out - n, "%s%s", i ? " " : "",
             m->resources[m->order[i]]->path);
  }
  return out;
}

/* A deployment with a store s and the given resources, each of provider
 * p and type t, written as "NAME: {extra members}" pairs. */
static char *with_resources(const char *const *rs) {
  static char out[2048];
  snprintf(out, sizeof out,
           "{'state': 's', 'providers': {'p': {'executable': 'x'}},"
           " 'resources': {'s': {'provider': 'p', 'type': 'state_file'}");
  for (size_t i = 0; rs[i]; i += 2) {
    size_t n = strlen(out);
    snprintf(out + n, sizeof out - n,
             ", '%s': {'provider': 'p', 'type': 't'%s%s}", rs[i],
             rs[i + 1][0] ? ", " : "", rs[i + 1]);
  }
  strncat(out, "}}", sizeof out - strlen(out) - 1);
  return out;
}

static void dependencies_first_file_order_otherwise(void **state) {
  const char *rs[] = {"web",   "'inputs': {'u': '${db.outputs.url}'}",
                      "db",    "'dependsOn': ['net']",
                      "net",   "",
                      "cache", "",
                      NULL};
  tt_model *m = load(with_resources(rs));
  assert_string_equal(order_of(m), "s net db web cache");
  tt_model_free(m);
}

static void cycle_named_in_order(void **state) {
  const char *three[] = {
      "a", "'inputs': {'x': '${b.outputs.v}'}",    "b", "'dependsOn': ['c']",
      "c", "'inputs': {'y': 'at ${a.outputs.v}'}", NULL};
  expect_error(with_resources(three),
               "tether.json: dependency cycle: a -> b -> c -> a");
  /* Found from elsewhere, still reported from the first member written. */
  const char *entered[] = {"z", "'dependsOn': ['c']", "a", "'dependsOn': ['b']",
                           "b", "'dependsOn': ['c']", "c", "'dependsOn': ['a']",
                           NULL};
  expect_error(with_resources(entered),
               "tether.json: dependency cycle: a -> b -> c -> a");
  const char *two[] = {"a", "'dependsOn': ['b']", "b", "'dependsOn': ['a']",
                       NULL};
  expect_error(with_resources(two),
               "tether.json: dependency cycle: a -> b -> a");
}

static void store_cycles(void **state) {
  /* Two stores recorded in each other. */
  expect_error("{'state': 'one', 'providers': {'p': {'executable': 'x'}},"
               " 'resources': {"
               "  'one': {'provider': 'p', 'type': 'st', 'state': 'two'},"
               "  'two': {'provider': 'p', 'type': 'st', 'state': 'one'}}}",
               "tether.json: state store cycle: one -> two -> one (one is "
               "recorded in two, two is recorded in one)");
}

static void bootstrap_store_depending_on_its_records(void **state) {
  expect_error("{'state': 's', 'providers': {'p': {'executable': 'x'}},"
               " 'resources': {"
               "  's': {'provider': 'p', 'type': 'state_file',"
               "        'inputs': {'name': '${id.outputs.value}.json'}},"
               "  'id': {'provider': 'p', 'type': 'memo'}}}",
               "tether.json: state store cycle: s -> id -> s (id is recorded "
               "in s)");
  /* Through a nested deployment, which inherits the store. */
  expect_error("{'state': 's', 'providers': {'p': {'executable': 'x'}},"
               " 'resources': {"
               "  's': {'provider': 'p', 'type': 'state_file',"
               "        'inputs': {'name': '${sub.id.outputs.value}'}}},"
               " 'deployments': {'sub': {'resources': {"
               "  'id': {'provider': 'p', 'type': 'memo'}}}}}",
               "tether.json: state store cycle: s -> sub/id -> s (sub/id is "
               "recorded in s)");
}

static void chained_store_order(void **state) {
  tt_model *m =
      load("{'state': 'pg', 'providers': {'p': {'executable': 'x'}},"
           " 'resources': {"
           "  'app': {'provider': 'p', 'type': 'file'},"
           "  'pg': {'provider': 'p', 'type': 'pg_state', 'state': 'file',"
           "         'inputs': {'url': '${db.outputs.url}'}},"
           "  'db': {'provider': 'p', 'type': 'database', 'state': 'file'},"
           "  'file': {'provider': 'p', 'type': 'state_file'}}}");
  assert_string_equal(order_of(m), "file db pg app");
  assert_int_equal(m->nstores, 2);
  assert_string_equal(m->stores[0]->path, "file");
  assert_string_equal(m->stores[1]->path, "pg");
  tt_model_free(m);
}

static void dot_output(void **state) {
  tt_model *m =
      load("{'state': 'state', 'providers': {'local': {'executable': 'x'}},"
           " 'resources': {"
           "  'state': {'provider': 'local', 'type': 'state_file'},"
           "  'id': {'provider': 'local', 'type': 'memo'},"
           "  'hello': {'provider': 'local', 'type': 'file',"
           "            'inputs': {'c': 'id=${id.outputs.value}'},"
           "            'dependsOn': ['web.app']}},"
           " 'deployments': {'web': {'resources': {"
           "  'app': {'provider': 'local', 'type': 'say \\'hi\\''}}}}}");
  tether_buf b;
  tether_buf_init(&b);
  tt_graph_dot(m, &b);
  assert_string_equal(
      b.data, "digraph tether {\n"
              "  node [shape=box];\n"
              "  \"state\" [label=\"state\\nlocal state_file\", "
              "peripheries=2];\n"
              "  \"id\" [label=\"id\\nlocal memo\"];\n"
              "  \"hello\" [label=\"hello\\nlocal file\"];\n"
              "  subgraph \"cluster_web\" {\n"
              "    label=\"web\";\n"
              "    \"web/app\" [label=\"app\\nlocal say \\\"hi\\\"\"];\n"
              "  }\n"
              "  \"id\" -> \"state\" [style=dashed];\n"
              "  \"hello\" -> \"id\";\n"
              "  \"hello\" -> \"web/app\";\n"
              "  \"hello\" -> \"state\" [style=dashed];\n"
              "  \"web/app\" -> \"state\" [style=dashed];\n"
              "}\n");
  tether_buf_free(&b);
  tt_model_free(m);
}

/* A chain of n resources, each referencing the one before. */
static char *chain_text(size_t n, bool closed) {
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, "{\"state\": \"s\", \"providers\": {\"p\": "
                            "{\"executable\": \"x\"}}, \"resources\": {"
                            "\"s\": {\"provider\": \"p\", \"type\": \"st\"}");
  for (size_t i = 0; i < n; i++) {
    tether_buf_printf(&b, ",\"r%zu\": {\"provider\": \"p\", \"type\": \"t\"",
                      i);
    if (i > 0 || closed)
      tether_buf_printf(&b, ", \"inputs\": {\"v\": \"${r%zu.outputs.v}\"}",
                        i > 0 ? i - 1 : n - 1);
    tether_buf_append_str(&b, "}");
  }
  tether_buf_append_str(&b, "}}");
  return tether_buf_steal(&b, NULL);
}

static void large_graphs(void **state) {
  size_t n = 10000;
  char *text = chain_text(n, false);
  clock_t start = clock();
  tt_diag d;
  tt_model *m = tt_model_parse("tether.json", text, strlen(text), &d);
  assert_non_null(m);
  assert_int_equal(m->nresources, n + 1);
  assert_string_equal(m->resources[m->order[n]]->path, "r9999");
  tether_buf b;
  tether_buf_init(&b);
  tt_graph_dot(m, &b);
  assert_true(b.len > n * 20);
  tether_buf_free(&b);
  tt_model_free(m);
  free(text);

  /* A cycle through all of them is reported without deep recursion. */
  text = chain_text(n, true);
  assert_null(tt_model_parse("tether.json", text, strlen(text), &d));
  const char *head = "tether.json: dependency cycle: r0 -> r9999 -> r9998 -> ";
  assert_true(strncmp(d.message, head, strlen(head)) == 0);
  free(text);
  double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
  assert_true(seconds < 10.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dependencies_first_file_order_otherwise),
      cmocka_unit_test(cycle_named_in_order),
      cmocka_unit_test(store_cycles),
      cmocka_unit_test(bootstrap_store_depending_on_its_records),
      cmocka_unit_test(chained_store_order),
      cmocka_unit_test(dot_output),
      cmocka_unit_test(large_graphs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
