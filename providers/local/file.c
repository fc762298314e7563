/*
 * file.c: the file type, a file on the local file system with the given
 * contents (and optionally mode). Writes are atomic (durable.c): a reader
 * or a crash sees the old file or the new one, never a mix. Relative names
 * are relative to the provider's working directory.
 *
 * The handlers check the inputs on the library's thread and leave the
 * writing, with its fsyncs, to a pool thread (pool.c), so that the files
 * of a deployment are written side by side. Two requests for the same
 * name at once each write a temporary file of their own (mkostemp) and
 * rename it over the name: the last rename wins, and a reader sees one
 * whole file or the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

const tether_input tt_file_inputs[] = {
    {.name = "name", .kind = TETHER_JSON_STRING, .required = true},
    {.name = "contents", .kind = TETHER_JSON_STRING, .required = true},
    {.name = "mode", .kind = TETHER_JSON_STRING},
    {.name = NULL}};

typedef struct file_inputs {
  const char *name;
  const char *contents;
  size_t contents_len;
  bool has_mode;
  mode_t mode;
} file_inputs;

/* Parses a mode written in octal, as chmod takes it: "644", "0600". */
static const char *parse_mode(const char *s, mode_t *out) {
  size_t n = strlen(s);
  if (n < 3 || n > 4)
    return "must be 3 or 4 octal digits, such as \"0644\"";
  mode_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '7')
      return "must be 3 or 4 octal digits, such as \"0644\"";
    m = (mode_t)(m * 8 + (mode_t)(s[i] - '0'));
  }
  *out = m;
  return NULL;
}

/* Reads the inputs that matter for req; NULL when fine, else the reply. */
static tether_done *read_inputs(tether_request *req, file_inputs *in) {
  tether_done *done = tt_check_resource_inputs(req, tt_file_inputs);
  if (done)
    return done;
  const tether_json *inputs = tether_request_inputs(req);
  const tether_json *name = tether_json_object_get(inputs, "name");
  const tether_json *contents = tether_json_object_get(inputs, "contents");
  const tether_json *mode = tether_json_object_get(inputs, "mode");
  const char *bad = tt_check_c_string(name, true);
  if (bad)
    return tt_reply_bad_input(req, "name", bad);
  in->name = tether_json_string_value(name);
  in->contents = tether_json_string_value(contents);
  in->contents_len = tether_json_string_length(contents);
  in->has_mode = mode != NULL;
  if (mode && (bad = parse_mode(tether_json_string_value(mode), &in->mode)))
    return tt_reply_bad_input(req, "mode", bad);
  return NULL;
}

/* Files are created as open(2) would create them, unless mode says
 * otherwise. Set once by tt_file_init, before any thread starts, and only
 * read afterwards. */
static mode_t default_mode = 0644;

void tt_file_init(void) {
  mode_t mask = umask(0);
  umask(mask);
  default_mode = 0666 & ~mask;
}

/* What a pool thread needs: the inputs (borrowed from the request, valid
 * until it is answered) and, for an update, the name before it. */
typedef struct file_job {
  file_inputs in;
  const char *old_name;
} file_job;

static tether_done *submit(tether_request *req, tt_work_fn *fn,
                           const file_inputs *in, const char *old_name) {
  file_job *job = tt_malloc(sizeof *job);
  *job = (file_job){.in = *in, .old_name = old_name};
  return tt_pool_submit(req, fn, job);
}

/* Writes the file; false with req rejected when it could not. */
static bool write_file(tether_request *req, const file_inputs *in) {
  char err[600];
  if (tt_write_file_atomic(in->name, in->contents, in->contents_len,
                           in->has_mode ? in->mode : default_mode, true, err,
                           sizeof err))
    return true;
  tether_reject(req, TETHER_ERR_FAILED, NULL, "file %s: %s", in->name, err);
  return false;
}

/* Removes name durably; a file already gone is not an error. */
static bool remove_file(const char *name, char *err, size_t errlen) {
  if (unlink(name) != 0) {
    if (errno == ENOENT)
      return true;
    snprintf(err, errlen, "deleting %s: %s", name, tt_strerror(errno));
    return false;
  }
  return tt_fsync_parent_dir(name, err, errlen);
}

static void create_work(tether_request *req, void *arg) {
  const file_job *job = arg;
  if (write_file(req, &job->in))
    tt_resolve_outputs(req, tether_json_object());
}

tether_done *tt_file_create(tether_request *req) {
  file_inputs in;
  tether_done *done = read_inputs(req, &in);
  return done ? done : submit(req, create_work, &in, NULL);
}

static void update_work(tether_request *req, void *arg) {
  const file_job *job = arg;
  if (!write_file(req, &job->in))
    return;
  /* A new name moves the file: the old one goes once the new one is
   * there. */
  const char *old = job->old_name;
  char err[600];
  if (old && strcmp(old, job->in.name) != 0 &&
      !remove_file(old, err, sizeof err)) {
    /* The new file is there: the host records the update as done. */
    tether_json *partial = tether_json_object();
    partial = tether_json_object_set(partial, "outputProperties",
                                     tether_json_object());
    tether_json *data = tether_json_object();
    data = tether_json_object_set(data, "partial", partial);
    tether_reject(
        req, TETHER_ERR_FAILED, data,
        "file %s was written, but the old file could not be removed: %s",
        job->in.name, err);
    return;
  }
  tt_resolve_outputs(req, tether_json_object());
}

tether_done *tt_file_update(tether_request *req) {
  file_inputs in;
  tether_done *done = read_inputs(req, &in);
  if (done)
    return done;
  const char *old = tether_json_string_value(tether_json_object_get(
      tether_json_object_get(tether_request_resource(req), "inputProperties"),
      "name"));
  return submit(req, update_work, &in, old);
}

static void delete_work(tether_request *req, void *arg) {
  const file_job *job = arg;
  char err[600];
  if (!remove_file(job->in.name, err, sizeof err))
    tether_reject(req, TETHER_ERR_FAILED, NULL, "file %s: %s", job->in.name,
                  err);
  else
    tether_resolve(req, tether_json_object());
}

tether_done *tt_file_delete(tether_request *req) {
  file_inputs in;
  tether_done *done = read_inputs(req, &in);
  return done ? done : submit(req, delete_work, &in, NULL);
}

/* True when fd holds exactly want[0..len). */
static bool same_contents(int fd, const char *want, size_t len) {
  char block[65536];
  size_t at = 0;
  for (;;) {
    ssize_t n = read(fd, block, sizeof block);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      return at == len;
    if ((size_t)n > len - at || memcmp(block, want + at, (size_t)n) != 0)
      return false;
    at += (size_t)n;
  }
}

static void read_work(tether_request *req, void *arg) {
  const file_inputs *in = &((const file_job *)arg)->in;
  /* It exists as the resource says only with those contents (and mode):
   * anything else is drift, for the host to repair. */
  bool exists = false;
  int fd = open(in->name, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) {
    tether_reject(req, TETHER_ERR_FAILED, NULL, "file %s: opening it: %s",
                  in->name, tt_strerror(errno));
    return;
  }
  if (fd >= 0) {
    struct stat st;
    exists = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
             (size_t)st.st_size == in->contents_len &&
             (!in->has_mode || (st.st_mode & 07777) == in->mode) &&
             same_contents(fd, in->contents, in->contents_len);
    close(fd);
  }
  tether_json *result = tether_json_object();
  result = tether_json_object_set(result, "exists", tether_json_bool(exists));
  if (exists)
    result = tether_json_object_set(result, "outputProperties",
                                    tether_json_object());
  tether_resolve(req, result);
}

tether_done *tt_file_read(tether_request *req) {
  file_inputs in;
  tether_done *done = read_inputs(req, &in);
  return done ? done : submit(req, read_work, &in, NULL);
}
