/*
 * state_file.c: the state_file type, a NixOps4-format state file as a
 * resource (create, update, read, delete) and as a state store
 * (state_read, state_event) on top of state_store.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "local.h"

const tether_input tt_state_file_inputs[] = {
    {.name = "name", .kind = TETHER_JSON_STRING, .required = true},
    {.name = NULL}};

/* The file name from the inputs that matter for req (checked against the
 * input table where the library does not already do it). NULL with
 * *done set when they are invalid. */
static const char *state_file_name(tether_request *req, tether_done **done) {
  if ((*done = tt_check_resource_inputs(req, tt_state_file_inputs)))
    return NULL;
  const tether_json *name =
      tether_json_object_get(tether_request_inputs(req), "name");
  const char *bad = tt_check_c_string(name, true);
  if (bad) {
    *done = tt_reply_bad_input(req, "name", bad);
    return NULL;
  }
  *done = NULL;
  return tether_json_string_value(name);
}

/* Validates the first event of an existing state file. */
static bool validate_existing(int fd, const char *name, tt_fail *fail) {
  tt_log_replay rep;
  bool ok = tt_log_replay_fd(fd, name, 1, &rep, fail);
  if (ok)
    tether_json_unref(rep.state);
  return ok;
}

/* Makes sure name is a valid state file, creating it (with event 0, mode
 * 0600, durably) when there is none. An existing file is only read. */
static bool ensure_state_file(const char *name, tt_fail *fail) {
  if (tt_store_find(name))
    return true; /* held here, so replayed and valid */
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      bool ok = validate_existing(fd, name, fail);
      close(fd);
      return ok;
    }
    if (errno != ENOENT) {
      tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "opening state file %s: %s",
                  name, tt_strerror(errno));
      return false;
    }
    tether_buf initial;
    tether_buf_init(&initial);
    tt_log_format_initial(&initial);
    bool existed = false;
    char err[600];
    bool ok = tt_create_file_exclusive(name, initial.data, initial.len, 0600,
                                       &existed, err, sizeof err);
    tether_buf_free(&initial);
    if (!ok) {
      tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "creating state file %s: %s",
                  name, err);
      return false;
    }
    if (!existed)
      return true;
    /* Someone created it between our open and our create: validate
     * theirs. */
  }
  tt_fail_set(fail, TETHER_ERR_FAILED, NULL,
              "state file %s keeps appearing and disappearing", name);
  return false;
}

tether_done *tt_state_file_create(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  tt_fail fail = {0};
  if (!ensure_state_file(name, &fail))
    return tt_fail_reply(req, &fail);
  return tether_reply_outputs(req, tether_json_object());
}

tether_done *tt_state_file_update(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  const char *before = tether_json_string_value(tether_json_object_get(
      tether_json_object_get(tether_request_resource(req), "inputProperties"),
      "name"));
  if (before && strcmp(before, name) != 0)
    return tether_reply_invalid(
        req, "/inputProperties/name",
        "a state file cannot be renamed by an update (from %s to %s): move "
        "the file by hand, or replace the resource",
        before, name);
  tt_fail fail = {0};
  if (!ensure_state_file(name, &fail))
    return tt_fail_reply(req, &fail);
  return tether_reply_outputs(req, tether_json_object());
}

tether_done *tt_state_file_read(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  tt_fail fail = {0};
  bool exists = true;
  if (!tt_store_find(name)) {
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
      tt_fail_set(&fail, TETHER_ERR_FAILED, NULL, "opening state file %s: %s",
                  name, tt_strerror(errno));
      return tt_fail_reply(req, &fail);
    }
    exists = fd >= 0;
    bool ok = !exists || validate_existing(fd, name, &fail);
    if (fd >= 0)
      close(fd);
    if (!ok)
      return tt_fail_reply(req, &fail);
  }
  tether_json *result = tether_json_object();
  result = tether_json_object_set(result, "exists", tether_json_bool(exists));
  if (exists)
    result = tether_json_object_set(result, "outputProperties",
                                    tether_json_object());
  return tether_reply_ok(req, result);
}

tether_done *tt_state_file_delete(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  if (access(name, F_OK) != 0 && errno == ENOENT)
    return tether_reply_ok(req, tether_json_object()); /* already gone */
  tt_fail fail = {0};
  tt_store *s = tt_store_hold(name, &fail);
  if (!s || !tt_store_sync(s, &fail))
    return tt_fail_reply(req, &fail);
  /* Deleting the file forgets everything it records: only an empty store
   * goes, so a destroy that stopped halfway cannot lose track of what
   * still exists. */
  const tether_json *state = tt_store_state(s);
  size_t resources =
      tether_json_object_size(tether_json_object_get(state, "resources"));
  size_t deployments =
      tether_json_object_size(tether_json_object_get(state, "deployments"));
  if (resources || deployments)
    return tether_reply_error(
        req, TETHER_ERR_FAILED, NULL,
        "state file %s still records %zu resource(s) and %zu "
        "deployment(s): destroy those first (or remove the file by hand)",
        name, resources, deployments);
  if (!tt_store_remove(s, &fail))
    return tt_fail_reply(req, &fail);
  return tether_reply_ok(req, tether_json_object());
}

tether_done *tt_state_file_state_read(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  tt_fail fail = {0};
  tt_store *s = tt_store_hold(name, &fail);
  if (!s || !tt_store_sync(s, &fail))
    return tt_fail_reply(req, &fail);
  tether_json *result = tether_json_object();
  result = tether_json_object_set(result, "state",
                                  tether_json_ref(tt_store_state(s)));
  result = tether_json_object_set(result, "index",
                                  tether_json_uint(tt_store_index(s)));
  return tether_reply_ok(req, result);
}

tether_done *tt_state_file_state_event(tether_request *req) {
  tether_done *done;
  const char *name = state_file_name(req, &done);
  if (!name)
    return done;
  /* The library has checked the kinds of event, hostVersion, patch and
   * expectIndex. NixOps4 calls hostVersion nixopsVersion. */
  const tether_json *params = tether_request_params(req);
  const tether_json *version = tether_json_object_get(params, "hostVersion");
  if (!version)
    version = tether_json_object_get(params, "nixopsVersion");
  if (version && !tether_json_is_string(version))
    return tether_reply_invalid(req, "/nixopsVersion",
                                "nixopsVersion must be a string");
  uint64_t expect = 0;
  bool expecting = tether_json_get_uint(
      tether_json_object_get(params, "expectIndex"), &expect);
  tt_fail fail = {0};
  tt_store *s = tt_store_hold(name, &fail);
  if (!s)
    return tt_fail_reply(req, &fail);
  return tt_store_append(s, req, tether_json_object_get(params, "event"),
                         version, tether_json_object_get(params, "patch"),
                         expecting ? (int64_t)expect : -1);
}
