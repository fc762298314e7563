/*
 * test_plan.c: plan decisions for every lifecycle case, the state patches,
 * the plan as a person and a program read it, and linearity.
 *
 * A miniature executor (apply_plan) runs plans the way `tether apply`
 * will: it settles each step, sends intent and result patches to an
 * in-memory copy of each store's state, and calls a fake provider whose
 * outputs are predictable. Planning again after an apply must find nothing
 * to do: that is what a user notices first.
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
#include "plan.h"

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
    fail_msg("bad test JSON: %s at %zu", e.message, e.offset);
  return v;
}

static char *dump(const tether_json *v) { return tether_json_dumps(v, NULL); }

static void assert_json(const tether_json *v, const char *expected) {
  tether_json *want = js(expected);
  if (!tether_json_equal(v, want)) {
    char *have = dump(v), *w = dump(want);
    print_error("have %s\nwant %s\n", have, w);
    free(have);
    free(w);
    fail();
  }
  tether_json_unref(want);
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

/* ---- A miniature executor ---- */

#define MAX_STORES 4

typedef struct world {
  tt_model *m;
  tether_json *states[MAX_STORES]; /* by store_index; NULL: no store yet */
  tether_json *boot[MAX_STORES];   /* bootstrap outputs */
  tether_json *types[4];           /* provider resourceTypes, by index */
  bool destroy;
  tether_json **outputs; /* by resource index, while applying */
  char log[4096];        /* "create id; update web; ..." */
  size_t calls[3];       /* provider calls by tt_op */
} world;

static void world_init(world *w, const char *model) {
  memset(w, 0, sizeof *w);
  w->m = load(model);
  for (size_t i = 0; i < w->m->nstores; i++)
    if (!w->m->stores[i]->store)
      w->boot[i] = js("{'path': 'state.json'}");
}

static void world_free(world *w) {
  for (size_t i = 0; i < MAX_STORES; i++) {
    tether_json_unref(w->states[i]);
    tether_json_unref(w->boot[i]);
  }
  for (size_t i = 0; i < 4; i++)
    tether_json_unref(w->types[i]);
  tt_model_free(w->m);
}

static void set_state(world *w, size_t store, const char *text) {
  tether_json_unref(w->states[store]);
  w->states[store] = text ? js(text) : NULL;
}

static tt_plan *try_plan(world *w, tt_diag *d) {
  tt_plan_input in = {.model = w->m,
                      .states = (const tether_json *const *)w->states,
                      .bootstrap_outputs = (const tether_json *const *)w->boot,
                      .provider_types = (const tether_json *const *)w->types,
                      .destroy = w->destroy};
  return tt_plan_build(&in, d);
}

static tt_plan *plan(world *w) {
  tt_diag d;
  tt_plan *p = try_plan(w, &d);
  if (!p)
    fail_msg("plan failed: %s", d.message);
  return p;
}

static void expect_plan_error(world *w, const char *message) {
  tt_diag d;
  tt_plan *p = try_plan(w, &d);
  if (p) {
    tt_plan_free(p);
    fail_msg("planned, expected: %s", message);
  }
  assert_string_equal(d.message, message);
}

static const tt_step *step(const tt_plan *p, const char *path) {
  const tt_step *found = NULL;
  for (size_t i = 0; i < p->nsteps; i++)
    if (strcmp(p->steps[i].path, path) == 0 && !p->steps[i].old_instance) {
      if (found)
        fail_msg("two steps for %s", path);
      found = &p->steps[i];
    }
  if (!found)
    fail_msg("no step for %s", path);
  return found;
}

static size_t index_of(const tt_plan *p, const tt_step *s) {
  return (size_t)(s - p->steps);
}

static bool waits_for(const tt_plan *p, const tt_step *s, const tt_step *t) {
  for (size_t i = 0; i < s->ndeps; i++)
    if (s->deps[i] == index_of(p, t))
      return true;
  return false;
}

static char *text_of(const tt_plan *p) {
  static char out[4096];
  tether_buf b;
  tether_buf_init(&b);
  tt_plan_render_text(p, &b);
  snprintf(out, sizeof out, "%s", b.data);
  tether_buf_free(&b);
  return out;
}

static char *json_of(const tt_plan *p) {
  static char out[8192];
  tether_buf b;
  tether_buf_init(&b);
  tt_plan_render_json(p, &b);
  snprintf(out, sizeof out, "%s", b.data);
  tether_buf_free(&b);
  return out;
}

static const tether_json *exec_lookup(void *ctx, const tt_resource *target) {
  world *w = ctx;
  return w->outputs[target->index];
}

/* The fake provider: outputs {"value": inputs.out} when inputs say, else
 * {"value": "v-PATH"}, so tests control whether outputs change. */
static tether_json *fake_outputs(const tt_step *s) {
  const tether_json *out = tether_json_object_get(s->inputs.inputs, "out");
  tether_json *o = tether_json_object();
  if (out)
    return tether_json_object_set(o, "value", tether_json_ref(out));
  return tether_json_object_set(o, "value",
                                tether_json_stringf("v-%s", s->path));
}

static void send(world *w, const tt_step *s, tether_json *patch) {
  size_t si = s->store->store_index;
  if (!w->states[si])
    w->states[si] =
        js("{'_type': 'nixopsState', 'resources': {}, 'deployments': {}}");
  tether_json_error e;
  if (!tether_json_patch(&w->states[si], patch, &e)) {
    char *text = dump(patch);
    fail_msg("patch %s failed: %s", text, e.message);
  }
  tether_json_unref(patch);
}

static void logf_(world *w, const char *fmt, ...) {
  size_t n = strlen(w->log);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->log + n, sizeof w->log - n, fmt, ap);
  va_end(ap);
}

/* Runs every step in order. Steps are stored in an order that respects
 * their dependencies, which the loop checks as it goes. */
static void apply_plan(world *w, tt_plan *p) {
  w->log[0] = '\0';
  memset(w->calls, 0, sizeof w->calls);
  w->outputs = calloc(w->m->nresources + 1, sizeof *w->outputs);
  bool *done = calloc(p->nsteps + 1, sizeof *done);
  for (size_t i = 0; i < p->nsteps; i++) {
    tt_step *s = &p->steps[i];
    for (size_t k = 0; k < s->ndeps; k++)
      assert_true(done[s->deps[k]]);
    tt_diag d;
    if (tt_step_settle(s, exec_lookup, w, &d))
      fail_msg("settle %s: %s", s->path, d.message);
    tether_json *out = NULL;
    tt_op ops[2];
    size_t n = tt_step_ops(s, ops);
    for (size_t k = 0; k < n; k++) {
      send(w, s, tt_patch_intent(s, ops[k], w->states[s->store->store_index]));
      logf_(w, "%s%s %s", w->log[0] ? "; " : "", tt_op_name(ops[k]), s->path);
      w->calls[ops[k]]++;
      tether_json *result = NULL;
      if (ops[k] != TT_OP_DELETE) {
        tether_json_unref(out);
        out = fake_outputs(s);
        result = out;
      }
      send(w, s, tt_patch_result(s, ops[k], result));
    }
    if (s->action == TT_ACTION_SKIP && s->refresh_depends_on) {
      send(w, s, tt_patch_depends_on(s));
      logf_(w, "%srefresh %s", w->log[0] ? "; " : "", s->path);
    }
    if (s->resource) {
      const tether_json *o =
          s->action == TT_ACTION_BOOTSTRAP ? w->boot[s->resource->store_index]
          : s->action == TT_ACTION_SKIP    ? tt_step_recorded_outputs(s)
                                           : out;
      w->outputs[s->resource->index] = o ? tether_json_ref(o) : NULL;
    }
    tether_json_unref(out);
    done[i] = true;
  }
  for (size_t i = 0; i < w->m->nresources; i++)
    tether_json_unref(w->outputs[i]);
  free(w->outputs);
  w->outputs = NULL;
  free(done);
}

static void assert_nothing_to_do(world *w) {
  tt_plan *p = plan(w);
  if (p->ncreate + p->nupdate + p->nreplace + p->ndelete)
    fail_msg("still to do after apply:\n%s", text_of(p));
  tt_plan_free(p);
}

#define LOCAL "'providers': {'local': {'executable': 'tether-local'}}"

/* The deployment of SPEC section 7. */
static const char *spec_example =
    "{'state': 'state', " LOCAL ","
    " 'resources': {"
    "  'state': {'provider': 'local', 'type': 'state_file',"
    "            'inputs': {'name': 'tether-state.json'}},"
    "  'id': {'provider': 'local', 'type': 'memo',"
    "         'inputs': {'initialize_with': 'abc123'}},"
    "  'hello': {'provider': 'local', 'type': 'file',"
    "            'inputs': {'name': 'hello.txt',"
    "                       'contents': 'id=${id.outputs.value}'}}}}";

/* ---- First run, skip, and the round trip ---- */

static void first_run_creates_then_nothing_changes(void **state) {
  world w;
  world_init(&w, spec_example);
  tt_plan *p = plan(&w);
  assert_int_equal(p->ncreate, 2);
  assert_int_equal(p->nbootstrap, 1);
  assert_string_equal(text_of(p), "  + id (memo)\n"
                                  "  + hello (file)\n"
                                  "Plan: 2 to create, 0 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  assert_string_equal(
      json_of(p),
      "{\"changes\":["
      "{\"path\":\"state\",\"action\":\"skip\",\"type\":\"state_file\","
      "\"provider\":\"local\",\"bootstrap\":true},"
      "{\"path\":\"id\",\"action\":\"create\",\"type\":\"memo\","
      "\"provider\":\"local\"},"
      "{\"path\":\"hello\",\"action\":\"create\",\"type\":\"file\","
      "\"provider\":\"local\",\"knownAfterApply\":[\"/contents\"]}]}\n");
  /* hello waits for id (its reference) and for the store. */
  const tt_step *hello = step(p, "hello");
  assert_true(waits_for(p, hello, step(p, "id")));
  assert_true(waits_for(p, hello, step(p, "state")));
  assert_int_equal(step(p, "id")->ndependents, 1);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "create id; create hello");
  /* The records as SPEC section 6 lays them out. */
  assert_json(w.states[0],
              "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
              " 'id': {'type': 'memo', 'provider': 'local',"
              "   'inputProperties': {'initialize_with': 'abc123'},"
              "   'outputProperties': {'value': 'v-id'},"
              "   'dependsOn': [], 'status': 'created'},"
              " 'hello': {'type': 'file', 'provider': 'local',"
              "   'inputProperties': {'name': 'hello.txt',"
              "                       'contents': 'id=v-id'},"
              "   'outputProperties': {'value': 'v-hello'},"
              "   'dependsOn': ['id'], 'status': 'created'}}}");
  p = plan(&w);
  assert_int_equal(p->nskip, 2);
  assert_string_equal(text_of(p), "No changes. 2 resources unchanged.\n");
  /* A skip calls no provider. */
  tt_op ops[2];
  assert_int_equal(tt_step_ops(step(p, "hello"), ops), 0);
  assert_false(step(p, "hello")->refresh_depends_on);
  tt_plan_free(p);
  world_free(&w);
}

static void nested_deployments_round_trip(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "   'top': {'provider': 'local', 'type': 'file',"
                 "           'inputs': {'x': '${web.app.outputs.value}'}}},"
                 " 'deployments': {'web': {"
                 "   'resources': {'app': {'provider': 'local', 'type': 'f'}},"
                 "   'deployments': {'in': {'resources': {"
                 "     'leaf': {'provider': 'local', 'type': 'f'}}}}}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'resources': {},"
            " 'deployments': {}}");
  tt_plan *p = plan(&w);
  assert_string_equal(text_of(p), "  + web/app (f)\n"
                                  "  + top (file)\n"
                                  "  + web/in/leaf (f)\n"
                                  "Plan: 3 to create, 0 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  /* The first record of a nested deployment brings its container. */
  tether_json *patch =
      tt_patch_intent(step(p, "web/in/leaf"), TT_OP_CREATE, w.states[0]);
  assert_json(patch, "[{'op': 'add', 'path': '/deployments/web',"
                     "  'value': {'resources': {}, 'deployments': {}}},"
                     " {'op': 'add', 'path': '/deployments/web/deployments/in',"
                     "  'value': {'resources': {}, 'deployments': {}}},"
                     " {'op': 'add', 'path': '/deployments/web/deployments/in/"
                     "resources/leaf',"
                     "  'value': {'type': 'f', 'provider': 'local',"
                     "   'inputProperties': {}, 'outputProperties': {},"
                     "   'dependsOn': [], 'status': 'creating'}}]");
  tether_json_unref(patch);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_json(tether_json_pointer_get(
                  w.states[0], "/deployments/web/resources/app/status", NULL),
              "'created'");
  assert_json(tether_json_pointer_get(w.states[0],
                                      "/resources/top/inputProperties", NULL),
              "{'x': 'v-web/app'}");
  assert_json(
      tether_json_pointer_get(w.states[0], "/resources/top/dependsOn", NULL),
      "['web.app']");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void chained_stores_round_trip(void **state) {
  world w;
  world_init(&w, "{'state': 'pg', " LOCAL ","
                 " 'resources': {"
                 "  'file': {'provider': 'local', 'type': 'state_file'},"
                 "  'pg': {'provider': 'local', 'type': 'pg_state',"
                 "         'state': 'file'},"
                 "  'app': {'provider': 'local', 'type': 'f'}}}");
  tt_plan *p = plan(&w);
  assert_string_equal(text_of(p), "  + pg (pg_state)\n"
                                  "  + app (f)\n"
                                  "Plan: 2 to create, 0 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  assert_true(waits_for(p, step(p, "app"), step(p, "pg")));
  apply_plan(&w, p);
  tt_plan_free(p);
  /* pg is recorded in file, app in pg. */
  assert_non_null(tether_json_pointer_get(w.states[0], "/resources/pg", NULL));
  assert_null(tether_json_pointer_get(w.states[0], "/resources/app", NULL));
  assert_non_null(tether_json_pointer_get(w.states[1], "/resources/app", NULL));
  assert_nothing_to_do(&w);

  /* tether destroy: everything recorded goes, the chained store after
   * the records it holds; the bootstrap store stays. */
  w.destroy = true;
  p = plan(&w);
  assert_int_equal(p->ndelete, 2);
  assert_int_equal(p->nbootstrap, 1);
  assert_true(waits_for(p, step(p, "pg"), step(p, "app")));
  assert_string_equal(text_of(p), "  - app (f)\n"
                                  "  - pg (pg_state)\n"
                                  "Plan: 0 to create, 0 to update, 0 to "
                                  "replace, 2 to delete, 0 unchanged.\n");
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "delete app; delete pg");
  assert_json(w.states[0], "{'_type': 'nixopsState', 'resources': {},"
                           " 'deployments': {}}");
  world_free(&w);
}

/* A resource whose record moves to another store is deleted from the old
 * one and created in the new one, in its replaceOrder: never both at once,
 * since both halves may name the same thing (a file). */
static const tt_step *step_with(const tt_plan *p, const char *path,
                                tt_action a) {
  for (size_t i = 0; i < p->nsteps; i++)
    if (strcmp(p->steps[i].path, path) == 0 && p->steps[i].action == a)
      return &p->steps[i];
  fail_msg("no %s step for %s", tt_action_name(a), path);
  return NULL;
}

static void moved_record_follows_replace_order(void **state) {
  static const char *const orders[] = {"create-first", "delete-first"};
  for (size_t k = 0; k < 2; k++) {
    char model[600];
    snprintf(model, sizeof model,
             "{'state': 'file', " LOCAL ","
             " 'resources': {"
             "  'file': {'provider': 'local', 'type': 'state_file'},"
             "  'pg': {'provider': 'local', 'type': 'pg_state',"
             "         'state': 'file'},"
             "  'app': {'provider': 'local', 'type': 'f', 'state': 'pg',"
             "          'replaceOrder': '%s'}}}",
             orders[k]);
    world w;
    world_init(&w, model);
    set_state(&w, 0,
              "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
              " 'pg': {'type': 'pg_state', 'provider': 'local',"
              "        'inputProperties': {}, 'outputProperties': {},"
              "        'dependsOn': [], 'status': 'created'},"
              " 'app': {'type': 'f', 'provider': 'local',"
              "         'inputProperties': {}, 'outputProperties': {},"
              "         'dependsOn': [], 'status': 'created'}}}");
    set_state(&w, 1, "{'_type': 'nixopsState', 'deployments': {},"
                     " 'resources': {}}");
    tt_plan *p = plan(&w);
    const tt_step *del = step_with(p, "app", TT_ACTION_DELETE);
    const tt_step *create = step_with(p, "app", TT_ACTION_CREATE);
    if (k == 0)
      assert_true(waits_for(p, del, create));
    else
      assert_true(waits_for(p, create, del));
    apply_plan(&w, p);
    tt_plan_free(p);
    assert_string_equal(w.log, k == 0 ? "create app; delete app"
                                      : "delete app; create app");
    assert_null(tether_json_pointer_get(w.states[0], "/resources/app", NULL));
    assert_non_null(
        tether_json_pointer_get(w.states[1], "/resources/app", NULL));
    assert_nothing_to_do(&w);
    world_free(&w);
  }
}

/* ---- Updates and replaces ---- */

static const char *two_files =
    "{'state': 's', " LOCAL ","
    " 'resources': {'s': {'provider': 'local', 'type': 'state_file'},"
    "  'web': {'provider': 'local', 'type': 'file', 'inputs': {"
    "     'contents': 'new', 'opts': {'mode': 'rw', 'uid': 1},"
    "     'list': [1, 2, 3], 'same': [1, {'a': 1}]}}}}";

static void update_lists_changed_paths(void **state) {
  world w;
  world_init(&w, two_files);
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'web': {'type': 'file',"
            "  'provider': 'local', 'status': 'updated',"
            "  'inputProperties': {'contents': 'old',"
            "    'opts': {'mode': 'ro', 'uid': 1}, 'list': [1, 2],"
            "    'same': [1, {'a': 1.0}], 'gone': true},"
            "  'outputProperties': {'value': 'x'}}}}");
  tt_plan *p = plan(&w);
  const tt_step *web = step(p, "web");
  assert_int_equal(web->action, TT_ACTION_UPDATE);
  assert_false(web->conditional);
  assert_string_equal(text_of(p), "  ~ web: /contents, /opts/mode, /list, "
                                  "/gone\n"
                                  "Plan: 0 to create, 1 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  /* The update request describes the resource as recorded. */
  tether_json *old = tt_step_old_resource(web);
  assert_json(old, "{'type': 'file', 'inputProperties': {'contents': 'old',"
                   " 'opts': {'mode': 'ro', 'uid': 1}, 'list': [1, 2],"
                   " 'same': [1, {'a': 1.0}], 'gone': true},"
                   " 'outputProperties': {'value': 'x'}}");
  tether_json_unref(old);
  tether_json *patch = tt_patch_intent(web, TT_OP_UPDATE, w.states[0]);
  assert_json(patch, "[{'op': 'add', 'path': '/resources/web/status',"
                     "  'value': 'updating'}]");
  tether_json_unref(patch);
  patch = tt_patch_revert(web, TT_OP_UPDATE);
  assert_json(patch, "[{'op': 'add', 'path': '/resources/web/status',"
                     "  'value': 'updated'}]");
  tether_json_unref(patch);
  apply_plan(&w, p);
  /* Patching the state left the plan's view of the record alone. */
  assert_json(tether_json_object_get(web->record, "inputProperties"),
              "{'contents': 'old', 'opts': {'mode': 'ro', 'uid': 1},"
              " 'list': [1, 2], 'same': [1, {'a': 1.0}], 'gone': true}");
  assert_json(tether_json_object_get(web->record, "status"), "'updated'");
  tt_plan_free(p);
  assert_string_equal(w.log, "update web");
  assert_json(tether_json_pointer_get(w.states[0], "/resources/web", NULL),
              "{'type': 'file', 'provider': 'local', 'status': 'updated',"
              " 'inputProperties': {'contents': 'new',"
              "   'opts': {'mode': 'rw', 'uid': 1}, 'list': [1, 2, 3],"
              "   'same': [1, {'a': 1}]},"
              " 'outputProperties': {'value': 'v-web'}, 'dependsOn': []}");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void replace_when_type_or_provider_changes(void **state) {
  world w;
  world_init(&w, "{'state': 's', 'providers': {"
                 "   'local': {'executable': 'tether-local'},"
                 "   'other': {'executable': 'tether-other'}},"
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'a': {'provider': 'local', 'type': 'dir'},"
                 "  'b': {'provider': 'local', 'type': 'file'},"
                 "  'c': {'provider': 'local', 'type': 'file',"
                 "        'replaceOrder': 'delete-first'}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {"
            "  'a': {'type': 'file', 'provider': 'local',"
            "        'inputProperties': {}, 'outputProperties': {}},"
            "  'b': {'type': 'file', 'provider': 'other',"
            "        'inputProperties': {}, 'outputProperties': {}},"
            "  'c': {'type': 'dir', 'provider': 'local',"
            "        'inputProperties': {}, 'outputProperties': {}}}}");
  tt_plan *p = plan(&w);
  assert_string_equal(text_of(p),
                      "-/+ a: type file -> dir\n"
                      "-/+ b: provider other -> local\n"
                      "-/+ c: type dir -> file [delete first]\n"
                      "Plan: 0 to create, 0 to update, 3 to replace, 0 to "
                      "delete, 0 unchanged.\n");
  const tt_step *b = step(p, "b");
  /* The old instance is deleted by the provider that made it. */
  assert_string_equal(b->old_provider->name, "other");
  assert_string_equal(b->provider->name, "local");
  tt_op ops[2];
  assert_int_equal(tt_step_ops(b, ops), 2);
  assert_int_equal(ops[0], TT_OP_CREATE);
  assert_int_equal(ops[1], TT_OP_DELETE);
  assert_int_equal(tt_step_ops(step(p, "c"), ops), 2);
  assert_int_equal(ops[0], TT_OP_DELETE);
  assert_int_equal(ops[1], TT_OP_CREATE);
  const char *json = json_of(p);
  assert_non_null(strstr(json, "{\"path\":\"a\",\"action\":\"replace\","
                               "\"type\":\"dir\",\"provider\":\"local\","
                               "\"reason\":\"type changed\","
                               "\"replaceOrder\":\"create-first\"}"));
  assert_non_null(strstr(json, "\"reason\":\"provider changed\""));
  assert_non_null(strstr(json, "\"replaceOrder\":\"delete-first\""));

  /* Create-first keeps the old instance on record, inside the new one,
   * until it is deleted. */
  tether_json *patch = tt_patch_intent(b, TT_OP_CREATE, w.states[0]);
  assert_json(patch,
              "[{'op': 'add', 'path': '/resources/b', 'value': {"
              "  'type': 'file', 'provider': 'local', 'inputProperties': {},"
              "  'outputProperties': {}, 'dependsOn': [], 'status': "
              "'creating',"
              "  'replaces': {'type': 'file', 'provider': 'other',"
              "    'inputProperties': {}, 'outputProperties': {}}}}]");
  tether_json_unref(patch);
  patch = tt_patch_revert(b, TT_OP_CREATE);
  assert_json(patch, "[{'op': 'add', 'path': '/resources/b', 'value': {"
                     "  'type': 'file', 'provider': 'other',"
                     "  'inputProperties': {}, 'outputProperties': {}}}]");
  tether_json_unref(patch);
  patch = tt_patch_intent(b, TT_OP_DELETE, NULL);
  assert_json(patch, "[{'op': 'add', 'path': '/resources/b/replaces/status',"
                     "  'value': 'deleting'}]");
  tether_json_unref(patch);
  patch = tt_patch_result(b, TT_OP_DELETE, NULL);
  assert_json(patch, "[{'op': 'remove', 'path': '/resources/b/replaces'}]");
  tether_json_unref(patch);
  /* Delete-first removes the record, then creates afresh. */
  const tt_step *c = step(p, "c");
  patch = tt_patch_intent(c, TT_OP_DELETE, NULL);
  assert_json(patch, "[{'op': 'add', 'path': '/resources/c/status',"
                     "  'value': 'deleting'}]");
  tether_json_unref(patch);
  patch = tt_patch_result(c, TT_OP_DELETE, NULL);
  assert_json(patch, "[{'op': 'remove', 'path': '/resources/c'}]");
  tether_json_unref(patch);

  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "create a; delete a; create b; delete b; "
                             "delete c; create c");
  assert_null(
      tether_json_pointer_get(w.states[0], "/resources/b/replaces", NULL));
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void replace_when_type_cannot_update(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', "
                 "'type': 'state_file'},"
                 "  'img': {'provider': 'local', 'type': 'image',"
                 "          'inputs': {'size': 2}}}}");
  w.types[0] = js("{'state_file': {'stateProvider': true,"
                  "   'operations': ['create', 'state_read', 'state_event']},"
                  " 'image': {'operations': ['create', 'delete']}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'img': {'type': 'image',"
            "  'provider': 'local', 'inputProperties': {'size': 1},"
            "  'outputProperties': {}}}}");
  tt_plan *p = plan(&w);
  const tt_step *img = step(p, "img");
  assert_int_equal(img->action, TT_ACTION_REPLACE);
  assert_true(img->update_unsupported);
  assert_string_equal(text_of(p), "-/+ img: /size; image cannot be updated\n"
                                  "Plan: 0 to create, 0 to update, 1 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  assert_non_null(strstr(json_of(p), "\"changed\":[\"/size\"],"
                                     "\"reason\":\"update not supported\""));
  tt_plan_free(p);
  world_free(&w);
}

/* ---- Deletes ---- */

static void deletes_in_reverse_dependency_order(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'app': {'provider': 'local', 'type': 'f'}}}");
  /* db and net are gone from the file; web depends on db, db on net;
   * app used to depend on db and is updated to stop doing so. */
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
            " 'net': {'type': 'n', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'dependsOn': [], 'status': 'created'},"
            " 'db': {'type': 'd', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'dependsOn': ['net'], 'status': 'created'},"
            " 'web': {'type': 'w', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'dependsOn': ['db', 'net'], 'status': 'created'},"
            " 'app': {'type': 'f', 'provider': 'local',"
            "   'inputProperties': {'db': 'x'}, 'outputProperties': {},"
            "   'dependsOn': ['db'], 'status': 'created'}}}");
  tt_plan *p = plan(&w);
  const tt_step *net = step(p, "net"), *db = step(p, "db"),
                *web = step(p, "web"), *app = step(p, "app");
  assert_true(waits_for(p, db, web));
  assert_true(waits_for(p, net, db));
  assert_true(waits_for(p, net, web));
  assert_true(waits_for(p, db, app));
  assert_int_equal(app->action, TT_ACTION_UPDATE);
  assert_string_equal(text_of(p), "  ~ app: /db\n"
                                  "  - web (w)\n"
                                  "  - db (d)\n"
                                  "  - net (n)\n"
                                  "Plan: 0 to create, 1 to update, 0 to "
                                  "replace, 3 to delete, 0 unchanged.\n");
  assert_null(net->resource);
  assert_string_equal(net->old_provider->name, "local");
  tether_json *old = tt_step_old_resource(net);
  assert_json(old, "{'type': 'n', 'inputProperties': {},"
                   " 'outputProperties': {}}");
  tether_json_unref(old);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "update app; delete web; delete db; delete net");
  assert_json(tether_json_pointer_get(w.states[0], "/resources", NULL),
              "{'app': {'type': 'f', 'provider': 'local',"
              " 'inputProperties': {}, 'outputProperties': {'value': "
              "'v-app'},"
              " 'dependsOn': [], 'status': 'updated'}}");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void removed_dependent_goes_before_replace(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'y': {'provider': 'local', 'type': 'new'}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
            " 'y': {'type': 'old', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {}},"
            " 'x': {'type': 'f', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'dependsOn': ['y']}}}");
  /* The replace deletes y's old instance, which x still uses. */
  tt_plan *p = plan(&w);
  assert_true(waits_for(p, step(p, "y"), step(p, "x")));
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "delete x; create y; delete y");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void deletes_of_removed_nested_deployment(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'resources': {}, 'deployments': {"
            " 'web': {'resources': {"
            "   'app': {'type': 'f', 'provider': 'local',"
            "     'inputProperties': {}, 'outputProperties': {},"
            "     'dependsOn': ['in.leaf']}},"
            "  'deployments': {'in': {'resources': {"
            "   'leaf': {'type': 'f', 'provider': 'local',"
            "     'inputProperties': {}, 'outputProperties': {}}},"
            "   'deployments': {}}}}}}");
  tt_plan *p = plan(&w);
  /* The provider is found in the enclosing deployment still in the file;
   * the dependency, written relative to web, orders the deletes. */
  const tt_step *leaf = step(p, "web/in/leaf");
  assert_true(waits_for(p, leaf, step(p, "web/app")));
  assert_string_equal(leaf->record_pointer,
                      "/deployments/web/deployments/in/resources/leaf");
  assert_string_equal(json_of(p),
                      "{\"changes\":["
                      "{\"path\":\"s\",\"action\":\"skip\",\"type\":\"sf\","
                      "\"provider\":\"local\",\"bootstrap\":true},"
                      "{\"path\":\"web/app\",\"action\":\"delete\","
                      "\"type\":\"f\",\"provider\":\"local\"},"
                      "{\"path\":\"web/in/leaf\",\"action\":\"delete\","
                      "\"type\":\"f\",\"provider\":\"local\"}]}\n");
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_nothing_to_do(&w);
  world_free(&w);
}

/* ---- Known after apply ---- */

static const char *chain =
    "{'state': 's', " LOCAL ","
    " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
    "  'a': {'provider': 'local', 'type': 'memo',"
    "        'inputs': {'out': 'same', 'n': 2}},"
    "  'b': {'provider': 'local', 'type': 'file',"
    "        'inputs': {'v': '${a.outputs.value}', 'k': 1}}}}";

static void set_chain_state(world *w, const char *a_out) {
  char text[1024];
  snprintf(text, sizeof text,
           "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
           " 'a': {'type': 'memo', 'provider': 'local',"
           "   'inputProperties': {'out': 'same', 'n': 1},"
           "   'outputProperties': {'value': '%s'}},"
           " 'b': {'type': 'file', 'provider': 'local',"
           "   'inputProperties': {'v': 'same', 'k': 1},"
           "   'outputProperties': {}, 'dependsOn': ['a']}}}",
           a_out);
  set_state(w, 0, text);
}

static void known_after_apply_settles_to_skip(void **state) {
  world w;
  world_init(&w, chain);
  set_chain_state(&w, "same");
  tt_plan *p = plan(&w);
  tt_step *b = &p->steps[index_of(p, step(p, "b"))];
  assert_int_equal(b->action, TT_ACTION_UPDATE);
  assert_true(b->conditional);
  assert_int_equal(b->nchanged, 0);
  assert_string_equal(text_of(p), "  ~ a: /n\n"
                                  "  ~ b: known after apply: /v\n"
                                  "Plan: 0 to create, 2 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  assert_non_null(strstr(json_of(p), "{\"path\":\"b\",\"action\":\"update\","
                                     "\"type\":\"file\",\"provider\":"
                                     "\"local\",\"knownAfterApply\":"
                                     "[\"/v\"]}"));
  /* a's update leaves its output as it was, so b has nothing to do. */
  apply_plan(&w, p);
  assert_int_equal(b->action, TT_ACTION_SKIP);
  tt_plan_free(p);
  assert_string_equal(w.log, "update a");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void known_after_apply_settles_to_update(void **state) {
  /* a is unchanged but its recorded output differs from what b recorded:
   * b's change is known at plan time. */
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'a': {'provider': 'local', 'type': 'memo',"
                 "        'inputs': {'out': 'same', 'n': 1}},"
                 "  'b': {'provider': 'local', 'type': 'file',"
                 "        'inputs': {'v': '${a.outputs.value}', 'k': 1}}}}");
  set_chain_state(&w, "other");
  tt_plan *p = plan(&w);
  tt_step *b = &p->steps[index_of(p, step(p, "b"))];
  assert_int_equal(b->action, TT_ACTION_UPDATE);
  assert_false(b->conditional);
  assert_string_equal(text_of(p), "  ~ b: /v\n"
                                  "Plan: 0 to create, 1 to update, 0 to "
                                  "replace, 0 to delete, 1 unchanged.\n");
  tt_plan_free(p);
  world_free(&w);

  /* a's output really changes when a is updated. */
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'a': {'provider': 'local', 'type': 'memo',"
                 "        'inputs': {'out': 'new', 'n': 1}},"
                 "  'b': {'provider': 'local', 'type': 'file',"
                 "        'inputs': {'v': '${a.outputs.value}', 'k': 1}}}}");
  set_chain_state(&w, "same");
  p = plan(&w);
  b = &p->steps[index_of(p, step(p, "b"))];
  assert_true(b->conditional);
  apply_plan(&w, p);
  assert_int_equal(b->action, TT_ACTION_UPDATE);
  assert_int_equal(b->nchanged, 1);
  assert_string_equal(b->changed[0], "/v");
  tt_plan_free(p);
  assert_string_equal(w.log, "update a; update b");
  assert_json(tether_json_pointer_get(w.states[0],
                                      "/resources/b/inputProperties", NULL),
              "{'v': 'new', 'k': 1}");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void references_resolve_from_records_and_bootstrap(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'id': {'provider': 'local', 'type': 'memo'},"
                 "  'f': {'provider': 'local', 'type': 'file', 'inputs': {"
                 "    'c': '${id.outputs.value} in ${s.outputs.path}'}}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {"
            "  'id': {'type': 'memo', 'provider': 'local',"
            "    'inputProperties': {}, 'outputProperties': "
            "{'value': 'abc'}},"
            "  'f': {'type': 'file', 'provider': 'local',"
            "    'inputProperties': {'c': 'abc in old.json'},"
            "    'outputProperties': {}, 'dependsOn': ['id', 's']}}}");
  tt_plan *p = plan(&w);
  const tt_step *f = step(p, "f");
  assert_int_equal(f->action, TT_ACTION_UPDATE);
  assert_json(f->inputs.inputs, "{'c': 'abc in state.json'}");
  tt_plan_free(p);

  /* Without the bootstrap store's outputs, its values wait for apply. */
  tether_json_unref(w.boot[0]);
  w.boot[0] = NULL;
  p = plan(&w);
  assert_true(step(p, "f")->conditional);
  tt_plan_free(p);

  /* A recorded output that is missing is an error, not a guess. */
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'id': {'type': 'memo', 'provider': "
            "'local', 'inputProperties': {}, 'outputProperties': "
            "{'other': 1}}}}");
  expect_plan_error(&w, "tether.json: resources.f.inputs.c: resource 'id' "
                        "has no output 'value' (its outputs: other)");
  world_free(&w);
}

/* ---- Interrupted runs ---- */

static void interrupted_statuses_resume(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'c': {'provider': 'local', 'type': 'f'},"
                 "  'u': {'provider': 'local', 'type': 'f'},"
                 "  'd': {'provider': 'local', 'type': 'f'}}}");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
            " 'c': {'type': 'f', 'provider': 'local', 'inputProperties': {},"
            "   'outputProperties': {}, 'status': 'creating'},"
            " 'u': {'type': 'f', 'provider': 'local', 'inputProperties': {},"
            "   'outputProperties': {'value': 'v-u'}, 'status': 'updating'},"
            " 'd': {'type': 'f', 'provider': 'local', 'inputProperties': {},"
            "   'outputProperties': {}, 'status': 'deleting'},"
            " 'gone': {'type': 'f', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'status': 'deleting'},"
            " 'half': {'type': 'f', 'provider': 'local',"
            "   'inputProperties': {}, 'outputProperties': {},"
            "   'status': 'creating'}}}");
  tt_plan *p = plan(&w);
  assert_string_equal(text_of(p),
                      "  + c (f): resuming an interrupted create\n"
                      "  ~ u: resuming an interrupted update\n"
                      "-/+ d: resuming an interrupted delete\n"
                      "  - gone (f): resuming an interrupted delete\n"
                      "  - half (f)\n"
                      "Plan: 1 to create, 1 to update, 1 to replace, 2 to "
                      "delete, 0 unchanged.\n");
  assert_int_equal(step(p, "d")->order, TT_REPLACE_DELETE_FIRST);
  assert_non_null(strstr(json_of(p), "{\"path\":\"d\",\"action\":\"replace\","
                                     "\"type\":\"f\",\"provider\":\"local\","
                                     "\"reason\":\"interrupted\","
                                     "\"replaceOrder\":\"delete-first\","
                                     "\"resumed\":true}"));
  /* What an interrupted attempt may have left behind stays on record even
   * if the provider refuses the retry. */
  tether_json *patch = tt_patch_revert(step(p, "c"), TT_OP_CREATE);
  assert_int_equal(tether_json_array_size(patch), 0);
  tether_json_unref(patch);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "create c; update u; delete d; create d; "
                             "delete gone; delete half");
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void interruption_between_intent_and_result(void **state) {
  world w;
  world_init(&w, spec_example);
  tt_plan *p = plan(&w);
  /* The run dies after recording the intent to create id. */
  const tt_step *id = step(p, "id");
  send(&w, id, tt_patch_intent(id, TT_OP_CREATE, w.states[0]));
  tt_plan_free(p);
  p = plan(&w);
  assert_string_equal(text_of(p), "  + id (memo): resuming an interrupted "
                                  "create\n"
                                  "  + hello (file)\n"
                                  "Plan: 2 to create, 0 to update, 0 to "
                                  "replace, 0 to delete, 0 unchanged.\n");
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_nothing_to_do(&w);
  world_free(&w);
}

static void interrupted_create_first_replace(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'x': {'provider': 'local', 'type': 'new'},"
                 "  'y': {'provider': 'local', 'type': 'f'}}}");
  /* x died while creating its new instance; y's new instance exists and
   * only the old one is left to delete. */
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {}, 'resources': {"
            " 'x': {'type': 'new', 'provider': 'local', 'inputProperties': {},"
            "   'outputProperties': {}, 'status': 'creating',"
            "   'replaces': {'type': 'old', 'provider': 'local',"
            "     'inputProperties': {'a': 1}, 'outputProperties': {},"
            "     'status': 'created'}},"
            " 'y': {'type': 'f', 'provider': 'local', 'inputProperties': {},"
            "   'outputProperties': {'value': 'v-y'}, 'dependsOn': [],"
            "   'status': 'created',"
            "   'replaces': {'type': 'f', 'provider': 'local',"
            "     'inputProperties': {'b': 2}, 'outputProperties': {},"
            "     'status': 'deleting'}}}}");
  tt_plan *p = plan(&w);
  const tt_step *x = step(p, "x");
  assert_int_equal(x->action, TT_ACTION_REPLACE);
  assert_int_equal(x->order, TT_REPLACE_CREATE_FIRST);
  assert_string_equal(x->old_type, "old");
  assert_string_equal(text_of(p),
                      "-/+ x: resuming an interrupted replace; type old -> "
                      "new; /a\n"
                      "  - y (f): previous instance left by an interrupted "
                      "replace\n"
                      "Plan: 0 to create, 0 to update, 1 to replace, 1 to "
                      "delete, 1 unchanged.\n");
  assert_non_null(strstr(json_of(p), "{\"path\":\"y\",\"action\":\"delete\","
                                     "\"type\":\"f\",\"provider\":\"local\","
                                     "\"resumed\":true,"
                                     "\"previousInstance\":true}"));
  /* The resumed create keeps the old instance under "replaces". */
  tether_json *patch = tt_patch_intent(x, TT_OP_CREATE, w.states[0]);
  assert_json(tether_json_pointer_get(patch, "/0/value/replaces", NULL),
              "{'type': 'old', 'provider': 'local', 'inputProperties': "
              "{'a': 1}, 'outputProperties': {}, 'status': 'created'}");
  tether_json_unref(patch);
  /* y itself is unchanged and waits for its old instance to go. */
  const tt_step *y = step(p, "y");
  assert_int_equal(y->action, TT_ACTION_SKIP);
  bool found = false;
  for (size_t i = 0; i < p->nsteps; i++)
    if (p->steps[i].old_instance) {
      found = true;
      assert_true(waits_for(p, y, &p->steps[i]));
      patch = tt_patch_result(&p->steps[i], TT_OP_DELETE, NULL);
      assert_json(patch, "[{'op': 'remove', 'path': "
                         "'/resources/y/replaces'}]");
      tether_json_unref(patch);
    }
  assert_true(found);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "create x; delete x; delete y");
  assert_null(
      tether_json_pointer_get(w.states[0], "/resources/x/replaces", NULL));
  assert_null(
      tether_json_pointer_get(w.states[0], "/resources/y/replaces", NULL));
  assert_nothing_to_do(&w);
  world_free(&w);
}

/* ---- Records written by others, refresh, failures ---- */

static void nixops4_records_and_refresh(void **state) {
  world w;
  world_init(&w, "{'state': 's', " LOCAL ","
                 " 'resources': {'s': {'provider': 'local', 'type': 'sf'},"
                 "  'myfile': {'provider': 'local', 'type': 'file',"
                 "    'inputs': {'name': 'test.txt', 'contents': 'hello'},"
                 "    'dependsOn': ['s']}}}");
  /* NixOps4's resolved state (reference/nixops4/resolved-state.json):
   * no status, no provider, no dependsOn. */
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'resources': {"
            " 'myfile': {'type': 'file', 'inputProperties': "
            "{'name': 'test.txt', 'contents': 'hello'},"
            " 'outputProperties': {}}}, 'deployments': {}}");
  tt_plan *p = plan(&w);
  const tt_step *f = step(p, "myfile");
  assert_int_equal(f->action, TT_ACTION_SKIP);
  assert_true(f->refresh_depends_on);
  apply_plan(&w, p);
  tt_plan_free(p);
  assert_string_equal(w.log, "refresh myfile");
  assert_json(
      tether_json_pointer_get(w.states[0], "/resources/myfile/dependsOn", NULL),
      "['s']");
  p = plan(&w);
  assert_false(step(p, "myfile")->refresh_depends_on);
  tt_plan_free(p);
  world_free(&w);
}

static void failed_create_reverts(void **state) {
  world w;
  world_init(&w, spec_example);
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'resources': {},"
            " 'deployments': {}}");
  tether_json *before = tether_json_ref(w.states[0]);
  tt_plan *p = plan(&w);
  const tt_step *id = step(p, "id");
  send(&w, id, tt_patch_intent(id, TT_OP_CREATE, w.states[0]));
  /* The provider refused: nothing was created, so nothing stays. */
  send(&w, id, tt_patch_revert(id, TT_OP_CREATE));
  assert_true(tether_json_equal(w.states[0], before));
  tether_json_unref(before);
  tt_plan_free(p);
  world_free(&w);
}

/* ---- Errors ---- */

static void plan_errors(void **state) {
  world w;
  world_init(&w, spec_example);
  w.types[0] = js("{'state_file': {'stateProvider': true},"
                  " 'file': {}, 'mem': {}}");
  expect_plan_error(&w, "tether.json: resources.id.type: provider 'local' "
                        "has no resource type 'memo' (its types: "
                        "state_file, file, mem)");
  tether_json_unref(w.types[0]);
  w.types[0] = js("{'state_file': {}, 'file': {}, 'memo': {}}");
  expect_plan_error(&w, "tether.json: resources.state: cannot store state: "
                        "type 'state_file' of provider 'local' is not a "
                        "state provider");
  tether_json_unref(w.types[0]);
  w.types[0] = js("{'state_file': {'stateProvider': true, "
                  "'requireState': true}, 'file': {}, 'memo': {}}");
  expect_plan_error(&w, "tether.json: resources.state: type 'state_file' "
                        "requires state, so this store cannot bootstrap "
                        "itself; give it a \"state\" to be recorded in");
  tether_json_unref(w.types[0]);
  w.types[0] = NULL;

  set_state(&w, 0, "{'_type': 'somethingElse', 'resources': {}}");
  expect_plan_error(&w, "tether.json: store 'state': /: not a state of type "
                        "\"nixopsState\"");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'id': {'type': 'memo', 'status': 'gone'}}}");
  expect_plan_error(&w, "tether.json: store 'state': /resources/id: record "
                        "has an unknown status 'gone'");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'id': 7}}");
  expect_plan_error(&w, "tether.json: store 'state': /resources/id: record "
                        "is not an object");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'old': {'type': 'x', 'provider': 'aws',"
            "  'inputProperties': {}, 'outputProperties': {}}}}");
  expect_plan_error(&w, "tether.json: cannot delete 'old': it was created by "
                        "provider 'aws', which the file no longer declares "
                        "(declare it again so the old resource can be "
                        "deleted)");
  set_state(&w, 0,
            "{'_type': 'nixopsState', 'deployments': {},"
            " 'resources': {'old': {'type': 'x',"
            "  'inputProperties': {}, 'outputProperties': {}}}}");
  expect_plan_error(&w, "tether.json: cannot delete 'old': its record names "
                        "no provider");
  world_free(&w);
}

/* ---- Linearity ---- */

static void ten_thousand_resources(void **state) {
  size_t n = 10000;
  tether_buf file, st;
  tether_buf_init(&file);
  tether_buf_init(&st);
  tether_buf_append_str(&file, "{\"state\": \"s\", \"providers\": {\"p\": "
                               "{\"executable\": \"x\"}}, \"resources\": {"
                               "\"s\": {\"provider\": \"p\", \"type\": "
                               "\"sf\"}");
  tether_buf_append_str(&st, "{\"_type\": \"nixopsState\", \"deployments\": "
                             "{}, \"resources\": {");
  for (size_t i = 0; i < n; i++) {
    /* Each resource references the one before; every tenth has changed
     * inputs, and one at the end of the file is gone. */
    tether_buf_printf(&file,
                      ",\"r%zu\": {\"provider\": \"p\", \"type\": "
                      "\"t\", \"inputs\": {\"k\": %zu",
                      i, i);
    if (i)
      tether_buf_printf(&file, ", \"prev\": \"${r%zu.outputs.value}\"", i - 1);
    tether_buf_append_str(&file, "}}");
    tether_buf_printf(&st,
                      "%s\"r%zu\": {\"type\": \"t\", \"provider\": "
                      "\"p\", \"inputProperties\": {\"k\": %zu",
                      i ? "," : "", i, i % 10 == 5 ? i + 1 : i);
    if (i)
      tether_buf_printf(&st, ", \"prev\": \"v-r%zu\"", i - 1);
    tether_buf_printf(&st,
                      "}, \"outputProperties\": {\"value\": "
                      "\"v-r%zu\"}, \"status\": \"created\", "
                      "\"dependsOn\": [",
                      i);
    if (i)
      tether_buf_printf(&st, "\"r%zu\"", i - 1);
    tether_buf_append_str(&st, "]}");
  }
  tether_buf_append_str(&st, ",\"gone\": {\"type\": \"t\", \"provider\": "
                             "\"p\", \"inputProperties\": {}, "
                             "\"outputProperties\": {}, \"dependsOn\": "
                             "[\"r9\"]}");
  tether_buf_append_str(&file, "}}");
  tether_buf_append_str(&st, "}}");

  clock_t start = clock();
  world w;
  memset(&w, 0, sizeof w);
  tt_diag d;
  w.m = tt_model_parse("big.json", file.data, file.len, &d);
  if (!w.m)
    fail_msg("%s", d.message);
  tether_json_error e;
  w.states[0] = tether_json_parse(st.data, st.len, &e);
  assert_non_null(w.states[0]);
  w.boot[0] = js("{}");
  tt_plan *p = plan(&w);
  assert_int_equal(p->nsteps, n + 2);
  assert_int_equal(p->ndelete, 1);
  /* r5 changed; everything after it references an output that is known
   * only once the update before it has run, so plan can only say "maybe". */
  assert_int_equal(p->nskip, 5);
  assert_int_equal(p->nupdate, n - 5);
  assert_int_equal(step(p, "r5")->action, TT_ACTION_UPDATE);
  assert_false(step(p, "r5")->conditional);
  assert_true(step(p, "r6")->conditional);
  assert_true(step(p, "r9999")->conditional);
  tether_buf out;
  tether_buf_init(&out);
  tt_plan_render_text(p, &out);
  tt_plan_render_json(p, &out);
  tether_buf_free(&out);
  apply_plan(&w, p);
  tt_plan_free(p);
  /* Applying settles the maybes: only the resources that changed are
   * updated. */
  assert_int_equal(w.calls[TT_OP_UPDATE], n / 10);
  assert_int_equal(w.calls[TT_OP_DELETE], 1);
  assert_int_equal(w.calls[TT_OP_CREATE], 0);
  assert_nothing_to_do(&w);
  double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
  /* Quadratic work over 10,000 resources would take minutes. */
  if (seconds > 20.0)
    fail_msg("planning 10,000 resources took %.1f s", seconds);
  tether_buf_free(&file);
  tether_buf_free(&st);
  world_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(first_run_creates_then_nothing_changes),
      cmocka_unit_test(nested_deployments_round_trip),
      cmocka_unit_test(chained_stores_round_trip),
      cmocka_unit_test(moved_record_follows_replace_order),
      cmocka_unit_test(update_lists_changed_paths),
      cmocka_unit_test(replace_when_type_or_provider_changes),
      cmocka_unit_test(replace_when_type_cannot_update),
      cmocka_unit_test(deletes_in_reverse_dependency_order),
      cmocka_unit_test(removed_dependent_goes_before_replace),
      cmocka_unit_test(deletes_of_removed_nested_deployment),
      cmocka_unit_test(known_after_apply_settles_to_skip),
      cmocka_unit_test(known_after_apply_settles_to_update),
      cmocka_unit_test(references_resolve_from_records_and_bootstrap),
      cmocka_unit_test(interrupted_statuses_resume),
      cmocka_unit_test(interruption_between_intent_and_result),
      cmocka_unit_test(interrupted_create_first_replace),
      cmocka_unit_test(nixops4_records_and_refresh),
      cmocka_unit_test(failed_create_reverts),
      cmocka_unit_test(plan_errors),
      cmocka_unit_test(ten_thousand_resources),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
