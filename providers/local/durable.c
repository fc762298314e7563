/*
 * durable.c: writing files so that a crash at any moment leaves either the
 * old file or the complete new one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

/* The directory part of path ("." for a bare name), malloc'd. */
static char *parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return tt_strdup(".");
  if (slash == path)
    return tt_strdup("/");
  return tt_strndup(path, (size_t)(slash - path));
}

bool tt_fsync_parent_dir(const char *path, char *err, size_t errlen) {
  char *dir = parent_dir(path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool ok = fd >= 0 && fsync(fd) == 0;
  if (!ok)
    snprintf(err, errlen, "syncing directory %s: %s", dir, tt_strerror(errno));
  if (fd >= 0)
    close(fd);
  free(dir);
  return ok;
}

static bool write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* Writes data to fd, sets mode and (when durable) fsyncs: the body of
 * every temporary file here. */
static bool fill_temp(int fd, const void *data, size_t len, mode_t mode,
                      bool durable) {
  return write_all(fd, data, len) && fchmod(fd, mode) == 0 &&
         (!durable || fsync(fd) == 0);
}

/* A temporary file next to path, named after it so that a leftover from
 * a crash says where it came from. Returns its fd and *temp, its name
 * (malloc'd), or -1 with err filled. */
static int open_temp(const char *path, char **temp, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append(&b, path, dirlen);
  tether_buf_printf(&b, ".%s.tether-XXXXXX", base);
  int fd = mkostemp(b.data, O_CLOEXEC);
  *temp = tether_buf_steal(&b, NULL);
  if (fd < 0) {
    snprintf(err, errlen, "creating a temporary file for %s: %s", path,
             tt_strerror(errno));
    free(*temp);
    *temp = NULL;
  }
  return fd;
}

bool tt_write_file_atomic(const char *path, const void *data, size_t len,
                          mode_t mode, bool durable, char *err, size_t errlen) {
  char *temp;
  int fd = open_temp(path, &temp, err, errlen);
  if (fd < 0)
    return false;
  if (!fill_temp(fd, data, len, mode, durable)) {
    snprintf(err, errlen, "writing %s: %s", temp, tt_strerror(errno));
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    snprintf(err, errlen, "writing %s: %s", temp, tt_strerror(errno));
    goto fail;
  }
  fd = -1;
  if (rename(temp, path) != 0) {
    snprintf(err, errlen, "renaming %s to %s: %s", temp, path,
             tt_strerror(errno));
    goto fail;
  }
  free(temp);
  return !durable || tt_fsync_parent_dir(path, err, errlen);
fail:
  if (fd >= 0)
    close(fd);
  unlink(temp);
  free(temp);
  return false;
}

/* The O_TMPFILE way: an unnamed file that only appears once complete, and
 * leaves nothing behind when we crash before. Returns 1 when done, 0 when
 * the file system cannot do it (fall back), -1 on failure. */
static int create_unnamed(const char *path, const void *data, size_t len,
                          mode_t mode, bool *existed, char *err,
                          size_t errlen) {
  char *dir = parent_dir(path);
  int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
  free(dir);
  if (fd < 0)
    return 0;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int result = -1;
  if (!fill_temp(fd, data, len, mode, true)) {
    snprintf(err, errlen, "writing a new %s: %s", path, tt_strerror(errno));
  } else if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
    result = tt_fsync_parent_dir(path, err, errlen) ? 1 : -1;
  } else if (errno == EEXIST) {
    *existed = true;
    result = 1;
  } else if (errno == ENOENT && access(proc, F_OK) != 0) {
    result = 0; /* no /proc: fall back */
  } else {
    snprintf(err, errlen, "creating %s: %s", path, tt_strerror(errno));
  }
  close(fd);
  return result;
}

bool tt_create_file_exclusive(const char *path, const void *data, size_t len,
                              mode_t mode, bool *existed, char *err,
                              size_t errlen) {
  *existed = false;
  int r = create_unnamed(path, data, len, mode, existed, err, errlen);
  if (r != 0)
    return r > 0;
  /* A named temporary file, linked to path only when complete; link(),
   * unlike rename(), refuses to replace a file that appeared meanwhile. */
  char *temp;
  int fd = open_temp(path, &temp, err, errlen);
  if (fd < 0)
    return false;
  bool ok = fill_temp(fd, data, len, mode, true);
  if (!ok)
    snprintf(err, errlen, "writing %s: %s", temp, tt_strerror(errno));
  close(fd);
  if (ok && link(temp, path) != 0) {
    if (errno == EEXIST) {
      *existed = true;
    } else {
      snprintf(err, errlen, "creating %s: %s", path, tt_strerror(errno));
      ok = false;
    }
  }
  unlink(temp);
  free(temp);
  if (ok && !*existed)
    ok = tt_fsync_parent_dir(path, err, errlen);
  return ok;
}

void tt_utc_now(char *out, size_t outlen) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[24];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, outlen, "%s.%03ldZ", base, ts.tv_nsec / 1000000L);
}
