/*
 * test_apply.c: the executor run in-process against the real tether-local
 * (found in the bin/ directory next to this test's tests/ directory), so
 * the sanitizer build of the unit tests covers apply.c too. Each test
 * works in a fresh temporary directory and checks what a user would:
 * files on disk, records in the state, exit statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "apply.h"
#include "deployment.h"

static char local_exe[4200];
static char dir[256];

static void find_local(void) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  assert_true(n > 0);
  self[n] = '\0';
  /* BUILD/tests/test_apply -> BUILD/bin/tether-local */
  char *slash = strrchr(self, '/');
  *slash = '\0';
  slash = strrchr(self, '/');
  *slash = '\0';
  snprintf(local_exe, sizeof local_exe, "%s/bin/tether-local", self);
  if (access(local_exe, X_OK) != 0)
    fail_msg("%s is missing: build the binaries first", local_exe);
}

static int setup(void **state) {
  find_local();
  snprintf(dir, sizeof dir, "%s/tether-test-apply.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **state) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static char *path_in(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

/* Writes the deployment, with ' for " and LOCAL for tether-local's path. */
static void deploy(const char *text) {
  FILE *f = fopen(path_in("tether.json"), "w");
  assert_non_null(f);
  for (const char *c = text; *c; c++) {
    if (strncmp(c, "LOCAL", 5) == 0) {
      fputs(local_exe, f);
      c += 4;
    } else {
      fputc(*c == '\'' ? '"' : *c, f);
    }
  }
  fclose(f);
}

static char *slurp(const char *name) {
  static char buf[4096];
  FILE *f = fopen(path_in(name), "r");
  if (!f)
    return NULL;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Runs the engine with its output out of the test's way. */
static int run(tt_engine_mode mode, tt_engine_states_cb *cb, void *ctx) {
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  FILE *null = fopen("/dev/null", "w");
  dup2(fileno(null), 1);
  dup2(fileno(null), 2);
  tt_engine_opts o = {.mode = mode,
                      .file = path_in("tether.json"),
                      .parallelism = 4,
                      .json = true,
                      .on_states = cb,
                      .ctx = ctx};
  int status = tt_engine_run(&o);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  fclose(null);
  return status;
}

/* The state callback: keeps the first store's state. */
static int keep_state(const tt_model *m, const tether_json *const *states,
                      void *ctx) {
  tether_json **out = ctx;
  *out = m->nstores && states[0] ? tether_json_ref(states[0]) : NULL;
  return 0;
}

static tether_json *recorded(void) {
  tether_json *st = NULL;
  assert_int_equal(run(TT_ENGINE_STATE, keep_state, &st), 0);
  return st;
}

static const char *status_of(const tether_json *state, const char *name) {
  const tether_json *rec = tether_json_object_get(
      tether_json_object_get(state, "resources"), name);
  return rec ? tether_json_string_value(tether_json_object_get(rec, "status"))
             : NULL;
}

#define HEAD                                                                   \
  "{'state': 'state', 'providers': {'local': {'executable': 'LOCAL'}},"       \
  " 'resources': {'state': {'provider': 'local', 'type': 'state_file',"       \
  "                         'inputs': {'name': 'state.json'}}"

static void apply_creates_records_and_converges(void **unused) {
  deploy(HEAD ", 'id': {'provider': 'local', 'type': 'memo',"
              "         'inputs': {'initialize_with': 'v1'}},"
              "  'f': {'provider': 'local', 'type': 'file',"
              "        'inputs': {'name': 'f.txt',"
              "                   'contents': 'id=${id.outputs.value}'}}}}");
  assert_int_equal(run(TT_ENGINE_PLAN, NULL, NULL), 0);
  assert_null(slurp("state.json"));
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  assert_string_equal(slurp("f.txt"), "id=v1");
  tether_json *st = recorded();
  assert_string_equal(status_of(st, "f"), "created");
  assert_string_equal(status_of(st, "id"), "created");
  tether_json_unref(st);
  /* A second apply is a no-op, and so is everything after it. */
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  st = recorded();
  assert_string_equal(status_of(st, "f"), "created");
  tether_json_unref(st);
}

static void update_and_delete_follow_the_file(void **unused) {
  deploy(HEAD ", 'a': {'provider': 'local', 'type': 'file',"
              "        'inputs': {'name': 'a.txt', 'contents': 'one'}},"
              "  'b': {'provider': 'local', 'type': 'file',"
              "        'inputs': {'name': 'b.txt', 'contents': 'b'}}}}");
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  deploy(HEAD ", 'a': {'provider': 'local', 'type': 'file',"
              "        'inputs': {'name': 'a.txt', 'contents': 'two'}}}}");
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  assert_string_equal(slurp("a.txt"), "two");
  assert_null(slurp("b.txt"));
  tether_json *st = recorded();
  assert_string_equal(status_of(st, "a"), "updated");
  assert_null(status_of(st, "b"));
  tether_json_unref(st);
  assert_int_equal(run(TT_ENGINE_DESTROY, NULL, NULL), 0);
  assert_null(slurp("a.txt"));
  st = recorded();
  assert_int_equal(
      tether_json_object_size(tether_json_object_get(st, "resources")), 0);
  tether_json_unref(st);
}

static void a_failed_create_is_reverted(void **unused) {
  /* The directory does not exist, so the file cannot be written. */
  deploy(HEAD ", 'bad': {'provider': 'local', 'type': 'file',"
              "          'inputs': {'name': 'nodir/x.txt', 'contents': 'x'}},"
              "  'after': {'provider': 'local', 'type': 'file',"
              "            'dependsOn': ['bad'],"
              "            'inputs': {'name': 'after.txt', 'contents': 'y'}}}}");
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 1);
  assert_null(slurp("after.txt"));
  tether_json *st = recorded();
  assert_null(status_of(st, "bad"));
  assert_null(status_of(st, "after"));
  tether_json_unref(st);
  mkdir(path_in("nodir"), 0755);
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  assert_string_equal(slurp("after.txt"), "y");
}

static void an_unknown_type_changes_nothing(void **unused) {
  deploy(HEAD ", 'x': {'provider': 'local', 'type': 'nosuch',"
              "        'inputs': {}}}}");
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 1);
  assert_null(slurp("state.json"));
}

static void an_empty_deployment_is_a_no_op(void **unused) {
  deploy("{}");
  assert_int_equal(run(TT_ENGINE_APPLY, NULL, NULL), 0);
  assert_int_equal(run(TT_ENGINE_PLAN, NULL, NULL), 0);
  assert_int_equal(run(TT_ENGINE_DESTROY, NULL, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(apply_creates_records_and_converges,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(update_and_delete_follow_the_file, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(a_failed_create_is_reverted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(an_unknown_type_changes_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(an_empty_deployment_is_a_no_op, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
