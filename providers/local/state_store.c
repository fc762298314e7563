/*
 * state_store.c: state files this process holds. The first state_read or
 * state_event on a file opens it, takes its lock (lock.c) and replays it
 * (state_log.c); from then on the resolved state lives in memory and
 * every event is applied to it and appended to the file, until the
 * process ends.
 *
 * Durability with group commit. An event is answered only once it is on
 * stable storage. The handler (on the provider's one worker thread)
 * applies the patch in memory, writes the line and hands the request to
 * the store's flusher thread, which runs fdatasync() and then answers every
 * request whose line the sync covered. With one request at a time that is one
 * sync per event; when the host pipelines events (concurrency above 1), the
 * events that arrive during one sync share the next, so the rate is bounded by
 * the disk's sync latency times the batch, not by the latency alone.
 * Events are written in order and a sync covers all earlier writes, so an
 * acknowledged index implies every index before it is durable too.
 *
 * The in-memory state runs ahead of the disk by the events not yet
 * synced; that is what the next event's expectIndex is checked against,
 * since the host sends events in order. state_read waits for the syncs,
 * so it never shows an event that is not durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

typedef struct pending {
  tether_request *req;
  uint64_t index;
} pending;

struct tt_store {
  char *name;
  dev_t dev;
  ino_t ino;
  int fd;
  tether_json *state;
  uint64_t index;
  off_t append_at;   /* where the next event is written */
  off_t file_size;   /* beyond append_at while a torn tail remains */
  bool need_newline; /* the byte before append_at is not '\n' */
  tt_store *next;

  /* Shared with the flusher thread, under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t flusher;
  bool flusher_running;
  bool stopping;
  uint64_t written; /* events written */
  uint64_t synced;  /* events on stable storage */
  pending *queue;   /* written, waiting for a sync */
  size_t queue_len;
  size_t queue_cap;
  char broken[512]; /* why the store is unusable; empty while it is fine */
};

static tt_store *held;

tt_store *tt_store_find(const char *name) {
  struct stat st;
  if (stat(name, &st) != 0)
    return NULL;
  for (tt_store *s = held; s; s = s->next)
    if (s->dev == st.st_dev && s->ino == st.st_ino)
      return s;
  return NULL;
}

const tether_json *tt_store_state(const tt_store *s) { return s->state; }
uint64_t tt_store_index(const tt_store *s) { return s->index; }

static void fail_missing(tt_fail *fail, const char *name) {
  tether_json *data = tether_json_object();
  data = tether_json_object_set(data, "file", tether_json_string(name));
  tt_fail_set(fail, TETHER_ERR_NOT_FOUND, data,
              "state file %s does not exist: create the state_file "
              "resource first",
              name);
}

tt_store *tt_store_hold(const char *name, tt_fail *fail) {
  tt_store *s = tt_store_find(name);
  if (s)
    return s;
  int fd = open(name, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      fail_missing(fail, name);
    else
      tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "opening state file %s: %s",
                  name, strerror(errno));
    return NULL;
  }
  struct stat st, now;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    tt_fail_set(fail, TETHER_ERR_FAILED, NULL,
                "state file %s is not a regular file", name);
    close(fd);
    return NULL;
  }
  if (!tt_lock_take(fd, name, fail)) {
    close(fd);
    return NULL;
  }
  /* The file may have been deleted or replaced between our open and our
   * lock, by the holder we waited for: then we hold a lock on nothing. */
  bool gone = stat(name, &now) != 0;
  if (gone || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
    tt_lock_forget(name);
    close(fd);
    if (gone)
      fail_missing(fail, name);
    else
      tt_fail_set(fail, TETHER_ERR_FAILED, NULL,
                  "state file %s was replaced while we opened it; try again",
                  name);
    return NULL;
  }
  tt_log_replay rep;
  if (!tt_log_replay_fd(fd, name, 0, &rep, fail)) {
    tt_lock_forget(name);
    close(fd);
    return NULL;
  }
  s = tt_calloc(1, sizeof *s);
  s->name = tt_strdup(name);
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->fd = fd;
  s->state = rep.state;
  s->index = rep.index;
  s->append_at = rep.append_at;
  s->file_size = rep.file_size;
  s->need_newline = rep.need_newline;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->next = held;
  held = s;
  return s;
}

/* Answers a batch of events after their sync: rc is fdatasync's. */
static void answer_batch(tt_store *s, pending *batch, size_t n, int rc,
                         int err) {
  for (size_t i = 0; i < n; i++) {
    if (rc == 0) {
      tether_json *result = tether_json_object();
      result = tether_json_object_set(result, "index",
                                      tether_json_uint(batch[i].index));
      tether_resolve(batch[i].req, result);
    } else {
      tether_reject(batch[i].req, TETHER_ERR_FAILED, NULL,
                    "state file %s: syncing event %" PRIu64
                    " to disk failed: %s; it may be lost",
                    s->name, batch[i].index, strerror(err));
    }
  }
}

/* After a failed sync the kernel may have dropped the pages: what the file
 * holds is unknown, so the store refuses everything from now on rather
 * than build on it. Called with mu held. */
static void mark_sync_failed(tt_store *s, int err) {
  if (!s->broken[0])
    snprintf(s->broken, sizeof s->broken,
             "state file %s: an earlier sync to disk failed (%s); this "
             "process no longer trusts its copy: restart the provider",
             s->name, strerror(err));
}

static void *flusher_main(void *arg) {
  tt_store *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->synced == s->written && !s->stopping)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->synced == s->written)
      break; /* stopping, and nothing left to sync */
    uint64_t target = s->written;
    pending *batch = s->queue;
    size_t n = s->queue_len;
    s->queue = NULL;
    s->queue_len = s->queue_cap = 0;
    pthread_mutex_unlock(&s->mu);

    int rc = fdatasync(s->fd);
    int err = errno;
    answer_batch(s, batch, n, rc, err);
    free(batch);

    pthread_mutex_lock(&s->mu);
    if (rc != 0)
      mark_sync_failed(s, err);
    s->synced = target;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

bool tt_store_sync(tt_store *s, tt_fail *fail) {
  pthread_mutex_lock(&s->mu);
  while (s->synced < s->written)
    pthread_cond_wait(&s->cv, &s->mu);
  bool ok = !s->broken[0];
  if (!ok)
    tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "%s", s->broken);
  pthread_mutex_unlock(&s->mu);
  return ok;
}

static bool store_broken(tt_store *s, tt_fail *fail) {
  pthread_mutex_lock(&s->mu);
  bool broken = s->broken[0] != '\0';
  if (broken)
    tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "%s", s->broken);
  pthread_mutex_unlock(&s->mu);
  return broken;
}

/* True when op (of a well-formed patch) may change what makes the state a
 * nixopsState: the root, "_type", "resources" or
 * "deployments" themselves (a move takes its "from" away too). */
static bool op_touches_shape(const tether_json *op) {
  static const char *const shape[] = {"", "/_type", "/resources",
                                      "/deployments", NULL};
  const char *kind = tether_json_string_value(tether_json_object_get(op, "op"));
  const char *paths[2] = {
      tether_json_string_value(tether_json_object_get(op, "path")),
      kind && strcmp(kind, "move") == 0
          ? tether_json_string_value(tether_json_object_get(op, "from"))
          : NULL};
  for (int i = 0; i < 2; i++) {
    if (!paths[i])
      continue;
    /* Paths below these are inside resources or deployments, or cannot
     * exist ("_type" is a string), so only the exact paths matter. */
    for (const char *const *p = shape; *p; p++)
      if (strcmp(paths[i], *p) == 0)
        return true;
  }
  return false;
}

/* Applies patch to the state in memory, all or nothing. A patch that
 * would leave something other than a nixopsState is refused like one
 * that does not apply. */
static bool apply_patch(tt_store *s, const tether_json *patch, tt_fail *fail) {
  /* The library has checked that the patch is well-formed. Most events change
   * resources below /resources and cannot break the state's shape; they are
   * applied in place. The others keep the old state, so a bad result can be
   * undone. */
  bool guard = false;
  for (size_t i = 0, n = tether_json_array_size(patch); i < n && !guard; i++)
    guard = op_touches_shape(tether_json_array_get(patch, i));
  tether_json *before = guard ? tether_json_ref(s->state) : NULL;
  tether_json_error err;
  if (!tether_json_patch(&s->state, patch, &err)) {
    tether_json_unref(before);
    tether_json *data = tether_json_object();
    data = tether_json_object_set(data, "op", tether_json_int(err.op));
    tt_fail_set(fail, TETHER_ERR_INVALID_PARAMS, data,
                "%s; nothing was written to state file %s", err.message,
                s->name);
    return false;
  }
  const char *bad = guard ? tt_log_check_state(s->state) : NULL;
  if (bad) {
    tether_json_unref(s->state);
    s->state = before;
    tether_json *data = tether_json_object();
    data = tether_json_object_set(
        data, "op",
        tether_json_int((int64_t)tether_json_array_size(patch) - 1));
    tt_fail_set(fail, TETHER_ERR_INVALID_PARAMS, data,
                "the patch would leave the state in %s broken: %s; nothing "
                "was written",
                s->name, bad);
    return false;
  }
  tether_json_unref(before);
  return true;
}

static bool write_all_at(int fd, const char *data, size_t len, off_t at) {
  while (len > 0) {
    ssize_t n = pwrite(fd, data, len, at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    data += n;
    len -= (size_t)n;
    at += n;
  }
  return true;
}

/* After a failed write the file is cut back to the events before it, and
 * the state in memory, which already has the event applied, is read back
 * from the file. */
static void undo_event(tt_store *s) {
  tt_fail fail = {0};
  tt_log_replay rep;
  if (ftruncate(s->fd, s->append_at) == 0 &&
      tt_log_replay_fd(s->fd, s->name, 0, &rep, &fail)) {
    tether_json_unref(s->state);
    s->state = rep.state;
    s->index = rep.index;
    s->file_size = s->append_at = rep.append_at;
    s->need_newline = rep.need_newline;
    return;
  }
  pthread_mutex_lock(&s->mu);
  snprintf(s->broken, sizeof s->broken,
           "state file %s: undoing a failed write failed (%.300s); this "
           "process "
           "no longer trusts its copy: restart the provider",
           s->name, fail.message[0] ? fail.message : strerror(errno));
  pthread_mutex_unlock(&s->mu);
  tether_json_unref(fail.data);
}

tether_done *tt_store_append(tt_store *s, tether_request *req,
                             const tether_json *event,
                             const tether_json *host_version,
                             const tether_json *patch, int64_t expect_index) {
  tt_fail fail = {0};
  if (store_broken(s, &fail))
    return tt_fail_reply(req, &fail);
  if (expect_index >= 0 && (uint64_t)expect_index != s->index) {
    tether_json *data = tether_json_object();
    data =
        tether_json_object_set(data, "expected", tether_json_int(expect_index));
    data = tether_json_object_set(data, "actual", tether_json_uint(s->index));
    return tether_reply_error(
        req, TETHER_ERR_STATE_CONFLICT, data,
        "state file %s is at index %" PRIu64 ", not the expected %lld: "
        "another writer got there first; nothing was written",
        s->name, s->index, (long long)expect_index);
  }
  if (!apply_patch(s, patch, &fail))
    return tt_fail_reply(req, &fail);

  char time[32];
  tt_utc_now(time, sizeof time);
  tether_buf line;
  tether_buf_init(&line);
  tt_log_format_event(&line, s->need_newline, s->index + 1, time, event,
                      host_version, patch);
  if (s->file_size > s->append_at) {
    fprintf(stderr,
            "state file %s: cutting off the incomplete last "
            "event (%lld bytes at offset %lld) before appending\n",
            s->name, (long long)(s->file_size - s->append_at),
            (long long)s->append_at);
    if (ftruncate(s->fd, s->append_at) != 0) {
      int err = errno;
      undo_event(s);
      tether_buf_free(&line);
      return tether_reply_error(req, TETHER_ERR_FAILED, NULL,
                                "state file %s: cutting off its incomplete "
                                "last event failed: %s; nothing was written",
                                s->name, strerror(err));
    }
    s->file_size = s->append_at;
  }
  if (!write_all_at(s->fd, line.data, line.len, s->append_at)) {
    int err = errno;
    undo_event(s);
    tether_buf_free(&line);
    return tether_reply_error(req, TETHER_ERR_FAILED, NULL,
                              "writing to state file %s failed: %s; nothing "
                              "was recorded",
                              s->name, strerror(err));
  }
  s->append_at += (off_t)line.len;
  s->file_size = s->append_at;
  s->need_newline = false;
  s->index++;
  tether_buf_free(&line);

  pthread_mutex_lock(&s->mu);
  if (s->queue_len == s->queue_cap) {
    s->queue_cap = s->queue_cap ? s->queue_cap * 2 : 16;
    s->queue = tt_realloc(s->queue, s->queue_cap * sizeof *s->queue);
  }
  s->queue[s->queue_len++] = (pending){req, s->index};
  s->written++;
  bool start = !s->flusher_running;
  s->flusher_running = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (start && pthread_create(&s->flusher, NULL, flusher_main, s) != 0) {
    /* No thread to sync for us: this first event is synced here, and the
     * next one tries to start the thread again. */
    pthread_mutex_lock(&s->mu);
    s->flusher_running = false;
    s->queue_len = 0;
    s->synced = s->written;
    pthread_mutex_unlock(&s->mu);
    if (fdatasync(s->fd) != 0) {
      int err = errno;
      pthread_mutex_lock(&s->mu);
      mark_sync_failed(s, err);
      pthread_mutex_unlock(&s->mu);
      return tether_reply_error(req, TETHER_ERR_FAILED, NULL,
                                "state file %s: syncing event %" PRIu64
                                " to disk failed: %s; it may be lost",
                                s->name, s->index, strerror(err));
    }
    tether_json *result = tether_json_object();
    result =
        tether_json_object_set(result, "index", tether_json_uint(s->index));
    return tether_reply_ok(req, result);
  }
  return tether_reply_pending(req);
}

/* Makes every event written durable and ends the flusher thread. */
static void stop_flusher(tt_store *s) {
  pthread_mutex_lock(&s->mu);
  bool running = s->flusher_running;
  s->stopping = true;
  s->flusher_running = false;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (running)
    pthread_join(s->flusher, NULL);
}

/* Stops holding s: its pending events are made durable, its holder record
 * goes, and closing the file releases the lock. */
static void release(tt_store *s) {
  stop_flusher(s);
  tt_lock_forget(s->name);
  close(s->fd);
  s->fd = -1;
}

static void unlist(tt_store *s) {
  for (tt_store **p = &held; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
}

static void free_store(tt_store *s) {
  tether_json_unref(s->state);
  free(s->queue);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->name);
  free(s);
}

bool tt_store_remove(tt_store *s, tt_fail *fail) {
  stop_flusher(s);
  char err[512] = "";
  if (unlink(s->name) != 0 && errno != ENOENT)
    snprintf(err, sizeof err, "%s", strerror(errno));
  else
    tt_fsync_parent_dir(s->name, err, sizeof err);
  if (err[0])
    tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "deleting state file %s: %s",
                s->name, err);
  release(s);
  unlist(s);
  free_store(s);
  return !err[0];
}

void tt_store_drop_all(void) {
  /* The process is ending: the states are not freed, which for a large
   * store would be tens of milliseconds spent on memory the exit returns
   * anyway. They stay on the list, reachable, so a leak checker does not
   * take them for leaks. */
  for (tt_store *s = held; s; s = s->next)
    if (s->fd >= 0)
      release(s);
}
