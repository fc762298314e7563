/*
 * sync_floor.c: the disk's own rate of durable appends, the floor under
 * tether-local's state_event: N lines of SIZE bytes appended to a new
 * file in DIR, each followed by fdatasync(), as tether-local does for one
 * event at a time.
 *
 *   sync_floor DIR [N [SIZE]]
 *
 * Prints "syncs=N seconds=S per_s=R us_each=U".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sync_floor DIR [N [SIZE]]\n");
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 2000;
  size_t size = argc > 3 ? (size_t)atoi(argv[3]) : 400;
  if (n <= 0 || size == 0 || size > 1 << 20) {
    fprintf(stderr, "sync_floor: N and SIZE must be positive\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/sync_floor.%d", argv[1], (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  char *line = malloc(size);
  memset(line, 'x', size - 1);
  line[size - 1] = '\n';
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; i++) {
    if (write(fd, line, size) != (ssize_t)size || fdatasync(fd) != 0) {
      perror(path);
      unlink(path);
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  close(fd);
  unlink(path);
  free(line);
  double s =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("syncs=%d seconds=%.3f per_s=%.0f us_each=%.1f\n", n, s, n / s,
         s / n * 1e6);
  return 0;
}
