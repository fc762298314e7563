/*
 * test_deployment.c: loading tether.json, and every kind of invalid file
 * with the exact message a user sees.
 *
 * Deployments are written with single quotes, turned into double quotes
 * before parsing, so the JSON stays readable inside C strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "deployment.h"

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

#define PROVIDERS "'providers': {'local': {'executable': 'tether-local'}}"

/* The deployment of SPEC section 7. */
static const char *spec_example =
    "{'state': 'state',"
    " 'providers': {'local': {'executable': 'tether-local', 'args': [],"
    "                         'framing': 'ndjson'}},"
    " 'resources': {"
    "  'state': {'provider': 'local', 'type': 'state_file',"
    "            'inputs': {'name': 'tether-state.json'}},"
    "  'id': {'provider': 'local', 'type': 'memo',"
    "         'inputs': {'initialize_with': 'abc123'}},"
    "  'hello': {'provider': 'local', 'type': 'file',"
    "            'inputs': {'name': 'hello.txt',"
    "                       'contents': 'id=${id.outputs.value}'},"
    "            'dependsOn': []}},"
    " 'deployments': {}}";

static void spec_example_loads(void **state) {
  tt_model *m = load(spec_example);
  assert_int_equal(m->nresources, 3);
  assert_int_equal(m->nproviders, 1);
  const tt_provider_decl *p = m->providers[0];
  assert_string_equal(p->name, "local");
  assert_string_equal(p->executable, "tether-local");
  assert_int_equal(p->nargs, 0);
  assert_int_equal(p->framing, TT_FRAMING_NDJSON);

  tt_resource *st = tt_model_find_resource(m, "state", 5);
  tt_resource *id = tt_model_find_resource(m, "id", 2);
  tt_resource *hello = tt_model_find_resource(m, "hello", 5);
  assert_non_null(st);
  assert_non_null(hello);
  assert_true(st->is_store);
  assert_null(st->store); /* a bootstrap store: recorded nowhere */
  assert_null(st->record_pointer);
  assert_ptr_equal(m->root->store, st);
  assert_ptr_equal(hello->store, st);
  assert_string_equal(hello->record_pointer, "/resources/hello");
  assert_string_equal(hello->type, "file");
  assert_ptr_equal(hello->provider, p);
  assert_int_equal(hello->replace_order, TT_REPLACE_CREATE_FIRST);
  /* hello references id and is recorded in state. */
  assert_int_equal(hello->ndeps, 2);
  assert_ptr_equal(hello->deps[0].target, id);
  assert_int_equal(hello->deps[0].kind, TT_DEP_REFERENCE);
  assert_ptr_equal(hello->deps[1].target, st);
  assert_int_equal(hello->deps[1].kind, TT_DEP_STATE);
  assert_int_equal(hello->ndepends_on, 1);
  assert_string_equal(hello->depends_on[0], "id");
  assert_int_equal(m->nstores, 1);
  assert_ptr_equal(m->stores[0], st);
  tt_model_free(m);
}

static void options_and_framing(void **state) {
  tt_model *m =
      load("{'state': 's',"
           " 'providers': {'pg': {'executable': '/opt/tether-pg',"
           "                      'args': ['--verbose', '-x'],"
           "                      'framing': 'content-length'}},"
           " 'resources': {"
           "  's': {'provider': 'pg', 'type': 'state'},"
           "  'db': {'provider': 'pg', 'type': 'database',"
           "         'replaceOrder': 'delete-first', 'dependsOn': ['s']}}}");
  const tt_provider_decl *p = m->providers[0];
  assert_int_equal(p->framing, TT_FRAMING_CONTENT_LENGTH);
  assert_int_equal(p->nargs, 2);
  assert_string_equal(p->args[1], "-x");
  tt_resource *db = tt_model_find_resource(m, "db", 2);
  assert_int_equal(db->replace_order, TT_REPLACE_DELETE_FIRST);
  assert_string_equal(tt_replace_order_name(db->replace_order), "delete-first");
  /* A missing "inputs" is an empty object. */
  assert_int_equal(tether_json_object_size(db->inputs), 0);
  /* dependsOn on the store and the store edge are two different facts. */
  assert_int_equal(db->ndeps, 2);
  assert_int_equal(db->deps[0].kind, TT_DEP_EXPLICIT);
  assert_int_equal(db->deps[1].kind, TT_DEP_STATE);
  tt_model_free(m);
}

static void nested_deployments(void **state) {
  tt_model *m =
      load("{'state': 'st', " PROVIDERS ","
           " 'resources': {'st': {'provider': 'local', 'type': 'state_file'},"
           "   'top': {'provider': 'local', 'type': 'file',"
           "           'inputs': {'u': '${web.app.outputs.url}'},"
           "           'dependsOn': ['web.db']}},"
           " 'deployments': {"
           "  'web': {'resources': {"
           "     'app': {'provider': 'local', 'type': 'file'},"
           "     'db': {'provider': 'inner', 'type': 'memo'}},"
           "   'providers': {'inner': {'executable': 'x'}},"
           "   'deployments': {'deep': {'resources': {"
           "      'leaf': {'provider': 'local', 'type': 'memo'}}}}},"
           "  'own': {'state': 'mine', 'resources': {"
           "     'mine': {'provider': 'local', 'type': 'state_file'},"
           "     'thing': {'provider': 'local', 'type': 'memo'}}}}}");
  tt_resource *app = tt_model_find_resource(m, "web/app", 7);
  tt_resource *leaf = tt_model_find_resource(m, "web/deep/leaf", 13);
  tt_resource *thing = tt_model_find_resource(m, "own/thing", 9);
  tt_resource *top = tt_model_find_resource(m, "top", 3);
  assert_non_null(app);
  assert_non_null(leaf);
  assert_string_equal(app->path, "web/app");
  assert_string_equal(leaf->json_path,
                      "deployments.web.deployments.deep.resources.leaf");
  /* Nested deployments inherit the parent's store and are recorded under
   * /deployments in it; one with a store of its own is recorded at the top
   * of that store. */
  assert_string_equal(app->record_pointer, "/deployments/web/resources/app");
  assert_string_equal(leaf->record_pointer,
                      "/deployments/web/deployments/deep/resources/leaf");
  assert_string_equal(thing->record_pointer, "/resources/thing");
  assert_string_equal(thing->store->path, "own/mine");
  /* Providers are inherited by name. */
  assert_string_equal(leaf->provider->name, "local");
  assert_ptr_equal(leaf->provider->deployment, m->root);
  /* A parent references and depends on its children's resources. */
  assert_int_equal(top->ndepends_on, 2);
  assert_string_equal(top->depends_on[0], "web.app");
  assert_string_equal(top->depends_on[1], "web.db");
  assert_ptr_equal(top->deps[0].target, app);
  assert_ptr_equal(tt_model_find_deployment(m, "web/deep", 8),
                   leaf->deployment);
  assert_string_equal(leaf->deployment->path, "web/deep");
  assert_null(tt_model_find_resource(m, "web/nope", 8));
  assert_null(tt_model_find_resource(m, "nope/app", 8));
  tt_model_free(m);
}

static void chained_stores(void **state) {
  tt_model *m =
      load("{'state': 'db_state', " PROVIDERS ","
           " 'resources': {"
           "  'app': {'provider': 'local', 'type': 'file'},"
           "  'db_state': {'provider': 'local', 'type': 'pg_state',"
           "               'state': 'file_state'},"
           "  'file_state': {'provider': 'local', 'type': 'state_file'}}}");
  tt_resource *db = tt_model_find_resource(m, "db_state", 8);
  tt_resource *file = tt_model_find_resource(m, "file_state", 10);
  tt_resource *app = tt_model_find_resource(m, "app", 3);
  assert_ptr_equal(db->state, file);
  assert_ptr_equal(db->store, file);
  assert_string_equal(db->record_pointer, "/resources/db_state");
  assert_null(file->store);
  assert_ptr_equal(app->store, db);
  /* Stores open in chain order: the bootstrap one first. */
  assert_int_equal(m->nstores, 2);
  assert_ptr_equal(m->stores[0], file);
  assert_ptr_equal(m->stores[1], db);
  assert_int_equal(file->store_index, 0);
  assert_int_equal(db->store_index, 1);
  tt_model_free(m);
}

static void empty_deployment_needs_no_state(void **state) {
  tt_model *m = load("{}");
  assert_int_equal(m->nresources, 0);
  tt_model_free(m);
  m = load("{'$schema': 'https://example.org/tether.json', " PROVIDERS "}");
  tt_model_free(m);
}

/* ---- Invalid files ---- */

static void invalid_json(void **state) {
  tt_diag d;
  const char *text = "{\n  \"state\": \"s\",\n  \"resources\": {,}\n}";
  assert_null(tt_model_parse("tether.json", text, strlen(text), &d));
  /* Where, in terms an editor shows, then the parser's own words. */
  const char *where = "tether.json: line 3, column 17: ";
  assert_true(strncmp(d.message, where, strlen(where)) == 0);
  assert_non_null(strstr(d.message, "object key"));
}

static void top_level_shape(void **state) {
  expect_error("[]", "tether.json: a deployment must be a JSON object, "
                     "found an array");
  expect_error("{'resourcs': {}}",
               "tether.json: resourcs: unknown member (expected state, "
               "providers, resources, deployments)");
  expect_error("{'state': 3}",
               "tether.json: state: expected a string, found a number");
  expect_error("{'resources': []}",
               "tether.json: resources: expected an object, found an array");
  expect_error("{'providers': {'local': 'tether-local'}}",
               "tether.json: providers.local: expected an object, found a "
               "string");
}

static void provider_errors(void **state) {
  expect_error("{'providers': {'local': {}}}",
               "tether.json: providers.local: missing member \"executable\"");
  expect_error("{'providers': {'local': {'executable': ''}}}",
               "tether.json: providers.local.executable: must not be empty");
  expect_error("{'providers': {'local': {'executable': 'x', 'args': 'a'}}}",
               "tether.json: providers.local.args: expected an array, found "
               "a string");
  expect_error("{'providers': {'local': {'executable': 'x', "
               "'args': ['a', 2]}}}",
               "tether.json: providers.local.args[1]: expected a string, "
               "found a number");
  expect_error("{'providers': {'local': {'executable': 'x', "
               "'framing': 'json'}}}",
               "tether.json: providers.local.framing: unknown framing 'json' "
               "(expected ndjson or content-length)");
  expect_error("{'providers': {'local': {'executable': 'x', 'env': {}}}}",
               "tether.json: providers.local.env: unknown member (expected "
               "executable, args, framing)");
  expect_error("{'providers': {'my local': {'executable': 'x'}}}",
               "tether.json: providers[\"my local\"]: invalid provider name: "
               "use ASCII letters, digits, '_' and '-'");
}

static void resource_errors(void **state) {
  expect_error("{'state': 's', " PROVIDERS ", 'resources': {"
               "'s': {'provider': 'local', 'type': 'state_file'},"
               "'my web': {'provider': 'local', 'type': 'file'}}}",
               "tether.json: resources[\"my web\"]: invalid resource name: "
               "use ASCII letters, digits, '_' and '-'");
  expect_error("{" PROVIDERS ", 'resources': {'web': {'type': 'file'}}}",
               "tether.json: resources.web: missing member \"provider\"");
  expect_error("{" PROVIDERS ", 'resources': {'web': "
               "{'provider': 'lcoal', 'type': 'file'}}}",
               "tether.json: resources.web.provider: unknown provider 'lcoal' "
               "(declared: local)");
  expect_error("{'resources': {'web': {'provider': 'local', 'type': 'f'}}}",
               "tether.json: resources.web.provider: unknown provider 'local' "
               "(no providers are declared)");
  expect_error("{" PROVIDERS ", 'resources': {'web': {'provider': 'local'}}}",
               "tether.json: resources.web: missing member \"type\"");
  expect_error("{" PROVIDERS ", 'resources': {'web': "
               "{'provider': 'local', 'type': 'file', 'inputs': []}}}",
               "tether.json: resources.web.inputs: expected an object, found "
               "an array");
  expect_error("{" PROVIDERS ", 'resources': {'web': "
               "{'provider': 'local', 'type': 'file', 'input': {}}}}",
               "tether.json: resources.web.input: unknown member (expected "
               "provider, type, inputs, dependsOn, state, replaceOrder)");
  expect_error("{" PROVIDERS ", 'resources': {'web': "
               "{'provider': 'local', 'type': 'file', 'dependsOn': 'db'}}}",
               "tether.json: resources.web.dependsOn: expected an array, "
               "found a string");
  expect_error("{" PROVIDERS ", 'resources': {'web': "
               "{'provider': 'local', 'type': 'file', "
               "'replaceOrder': 'later'}}}",
               "tether.json: resources.web.replaceOrder: expected "
               "\"create-first\" or \"delete-first\", found \"later\"");
}

static void depends_on_errors(void **state) {
  const char *head = "{'state': 's', " PROVIDERS ", 'resources': {"
                     "'s': {'provider': 'local', 'type': 'state_file'},"
                     "'web': {'provider': 'local', 'type': 'file', "
                     "'dependsOn': ";
  char text[512];
  snprintf(text, sizeof text, "%s['s', 'db']}}}", head);
  expect_error(text, "tether.json: resources.web.dependsOn[1]: depends on "
                     "unknown resource 'db'");
  snprintf(text, sizeof text, "%s['sub.db']}}}", head);
  expect_error(text, "tether.json: resources.web.dependsOn[0]: depends on "
                     "unknown resource 'sub.db': there is no deployment "
                     "'sub'");
  snprintf(text, sizeof text, "%s['web']}}}", head);
  expect_error(text, "tether.json: resources.web.dependsOn[0]: a resource "
                     "cannot depend on itself");
  snprintf(text, sizeof text, "%s['${s.outputs.x}']}}}", head);
  expect_error(text, "tether.json: resources.web.dependsOn[0]: "
                     "'${s.outputs.x}' is not a resource path (expected a "
                     "name like \"db\", or \"sub.db\" for a nested "
                     "deployment's)");
}

static void reference_errors(void **state) {
  const char *head = "{'state': 's', " PROVIDERS ", 'resources': {"
                     "'s': {'provider': 'local', 'type': 'state_file'},"
                     "'web': {'provider': 'local', 'type': 'file', "
                     "'inputs': ";
  char text[512];
  snprintf(text, sizeof text, "%s{'url': '${db.outputs.url}'}}}}", head);
  expect_error(text, "tether.json: resources.web.inputs.url: reference to "
                     "unknown resource 'db'");
  snprintf(text, sizeof text,
           "%s{'list': [1, {'x': 'at ${sub.db.outputs.url}'}]}}}}", head);
  expect_error(text, "tether.json: resources.web.inputs.list[1].x: reference "
                     "to unknown resource 'sub.db': there is no deployment "
                     "'sub'");
  snprintf(text, sizeof text, "%s{'a b': '${HOME}'}}}}", head);
  expect_error(text, "tether.json: resources.web.inputs[\"a b\"]: malformed "
                     "reference '${HOME}': expected ${RESOURCE.outputs.KEY} "
                     "(write $${ for a literal ${)");
  snprintf(text, sizeof text, "%s{'x': 'open ${s.outputs.x'}}}}", head);
  expect_error(text, "tether.json: resources.web.inputs.x: unterminated "
                     "reference '${s.outputs.x': no closing '}' (write $${ "
                     "for a literal ${)");
  snprintf(text, sizeof text, "%s{'x': '${web.outputs.x}'}}}}", head);
  expect_error(text, "tether.json: resources.web.inputs.x: a resource cannot "
                     "reference its own outputs");
  /* Escaped, it is only text. */
  snprintf(text, sizeof text, "%s{'x': '$${web.outputs.x} $${HOME}'}}}}", head);
  tt_model_free(load(text));
}

static void state_errors(void **state) {
  expect_error("{" PROVIDERS ", 'resources': {"
               "'web': {'provider': 'local', 'type': 'file'}}}",
               "tether.json: state: missing; name the resource that stores "
               "this deployment's records");
  expect_error("{'state': 'nope', " PROVIDERS ", 'resources': {"
               "'web': {'provider': 'local', 'type': 'file'}}}",
               "tether.json: state: unknown resource 'nope'");
  expect_error("{'state': 'sub.s', " PROVIDERS ", 'resources': {}}",
               "tether.json: state: unknown resource 'sub.s' (a store must "
               "be a resource of the same deployment)");
  expect_error("{'state': 's', " PROVIDERS ", 'resources': {"
               "'s': {'provider': 'local', 'type': 'state_file', "
               "'state': 's'}}}",
               "tether.json: resources.s.state: a resource cannot be "
               "recorded in itself");
  expect_error("{'state': 's', " PROVIDERS ", 'resources': {"
               "'s': {'provider': 'local', 'type': 'pg', 'state': 'f'}}}",
               "tether.json: resources.s.state: unknown resource 'f'");
  /* A nested deployment whose parent has no store has nowhere to go. */
  expect_error("{" PROVIDERS ", 'deployments': {'sub': {'resources': {"
               "'x': {'provider': 'local', 'type': 'memo'}}}}}",
               "tether.json: deployments.sub.state: missing; name the "
               "resource that stores this deployment's records");
}

static void nested_errors(void **state) {
  expect_error("{'deployments': {'sub': 'x'}}",
               "tether.json: deployments.sub: expected an object, found a "
               "string");
  expect_error("{'deployments': {'a.b': {}}}",
               "tether.json: deployments[\"a.b\"]: invalid deployment name: "
               "use ASCII letters, digits, '_' and '-'");
  expect_error("{'state': 's', " PROVIDERS ", 'resources': {"
               "'s': {'provider': 'local', 'type': 'state_file'}},"
               "'deployments': {'sub': {'resources': {"
               "'x': {'provider': 'nope', 'type': 'memo'}}}}}",
               "tether.json: deployments.sub.resources.x.provider: unknown "
               "provider 'nope' (declared: local)");
  /* References look down the tree, never up. */
  expect_error("{'state': 's', " PROVIDERS ", 'resources': {"
               "'s': {'provider': 'local', 'type': 'state_file'}},"
               "'deployments': {'sub': {'resources': {"
               "'x': {'provider': 'local', 'type': 'memo', "
               "'inputs': {'v': '${s.outputs.path}'}}}}}}",
               "tether.json: deployments.sub.resources.x.inputs.v: reference "
               "to unknown resource 's'");
  expect_error("{'deployments': {'sub': {'deployments': {'in': {"
               "'bogus': 1}}}}}",
               "tether.json: deployments.sub.deployments.in.bogus: unknown "
               "member (expected state, providers, resources, deployments)");
}

static void unreadable_file(void **state) {
  tt_diag d;
  assert_null(tt_model_load("/nonexistent/tether.json", &d));
  assert_string_equal(d.message, "/nonexistent/tether.json: cannot read: No "
                                 "such file or directory");
}

static void load_from_file(void **state) {
  char path[] = "/tmp/tether-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  char *t = dq(spec_example);
  assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
  close(fd);
  free(t);
  tt_diag d;
  tt_model *m = tt_model_load(path, &d);
  unlink(path);
  assert_non_null(m);
  assert_string_equal(m->file, path);
  assert_int_equal(m->nresources, 3);
  tt_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spec_example_loads),
      cmocka_unit_test(options_and_framing),
      cmocka_unit_test(nested_deployments),
      cmocka_unit_test(chained_stores),
      cmocka_unit_test(empty_deployment_needs_no_state),
      cmocka_unit_test(invalid_json),
      cmocka_unit_test(top_level_shape),
      cmocka_unit_test(provider_errors),
      cmocka_unit_test(resource_errors),
      cmocka_unit_test(depends_on_errors),
      cmocka_unit_test(reference_errors),
      cmocka_unit_test(state_errors),
      cmocka_unit_test(nested_errors),
      cmocka_unit_test(unreadable_file),
      cmocka_unit_test(load_from_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
