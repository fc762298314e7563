/*
 * lock.c: one process at a time holds a state file (SPEC section 5).
 *
 * The lock itself is flock() on the state file: the kernel releases it
 * when the holding process ends, whether it exits or is killed, and
 * NixOps4's own writer takes the same kind of lock around its appends, so
 * it waits for us instead of interleaving. A flock() cannot say who holds
 * it, so the holder also writes "NAME.lock" with its pid and the time it
 * took the lock; a process that finds the store locked reads it to name
 * the holder. The record is only information: the lock is the flock().
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

/* How long to keep trying when the lock is taken but nobody says who:
 * either a holder between taking the lock and writing its record, or
 * NixOps4 in the middle of an append, which is short. */
#define ANONYMOUS_HOLDER_WAIT_MS 2000
#define RETRY_MS 20

static char *record_path(const char *path) {
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_printf(&b, "%s.lock", path);
  return tether_buf_steal(&b, NULL);
}

static void write_record(const char *path) {
  char since[32];
  tt_utc_now(since, sizeof since);
  /* Seconds are enough to say since when, and read better. */
  memcpy(since + 19, "Z", 2);
  tether_json *rec = tether_json_object();
  rec = tether_json_object_set(rec, "pid", tether_json_int(getpid()));
  rec = tether_json_object_set(rec, "program",
                               tether_json_string("tether-local"));
  rec = tether_json_object_set(rec, "since", tether_json_string(since));
  tether_buf text;
  tether_buf_init(&text);
  tether_json_dump(rec, &text);
  tether_buf_append_char(&text, '\n');
  tether_json_unref(rec);
  char *file = record_path(path);
  char err[512];
  if (!tt_write_file_atomic(file, text.data, text.len, 0644, false, err,
                            sizeof err))
    fprintf(stderr, "warning: could not record the holder of %s: %s\n", path,
            err);
  free(file);
  tether_buf_free(&text);
}

static bool pid_alive(int64_t pid) {
  return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Reads the holder record; true with *holder ("pid 1234 (tether-local)")
 * and *since filled when it names a live process. */
static bool read_record(const char *path, char **holder, char **since) {
  char *file = record_path(path);
  FILE *f = fopen(file, "re");
  free(file);
  if (!f)
    return false;
  char text[1024];
  size_t n = fread(text, 1, sizeof text, f);
  fclose(f);
  tether_json *rec = tether_json_parse(text, n, NULL);
  if (!rec)
    return false;
  int64_t pid = 0;
  const char *program =
      tether_json_string_value(tether_json_object_get(rec, "program"));
  const char *when =
      tether_json_string_value(tether_json_object_get(rec, "since"));
  bool ok = tether_json_get_int(tether_json_object_get(rec, "pid"), &pid) &&
            program && when && pid_alive(pid);
  if (ok) {
    tether_buf b;
    tether_buf_init(&b);
    tether_buf_printf(&b, "pid %lld (%s)", (long long)pid, program);
    *holder = tether_buf_steal(&b, NULL);
    *since = tt_strdup(when);
  }
  tether_json_unref(rec);
  return ok;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool tt_lock_take(int fd, const char *path, tt_fail *fail) {
  for (long waited = 0;; waited += RETRY_MS) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      write_record(path);
      return true;
    }
    if (errno == EINTR)
      continue;
    if (errno != EWOULDBLOCK) {
      tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "locking state file %s: %s",
                  path, tt_strerror(errno));
      return false;
    }
    char *holder = NULL, *since = NULL;
    bool named = read_record(path, &holder, &since);
    if (named || waited >= ANONYMOUS_HOLDER_WAIT_MS) {
      if (!named) {
        holder = tt_strdup("a process that left no holder record");
        since = tt_strdup("unknown");
      }
      tether_json *data = tether_json_object();
      data = tether_json_object_set(data, "holder", tether_json_string(holder));
      data = tether_json_object_set(data, "since", tether_json_string(since));
      data = tether_json_object_set(data, "file", tether_json_string(path));
      tt_fail_set(fail, TETHER_ERR_STATE_LOCKED, data,
                  "state file %s is held by %s since %s; it is released "
                  "when that process ends",
                  path, holder, since);
      free(holder);
      free(since);
      return false;
    }
    sleep_ms(RETRY_MS);
  }
}

void tt_lock_forget(const char *path) {
  char *file = record_path(path);
  unlink(file);
  free(file);
}
