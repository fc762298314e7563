/*
 * pingpong.c: the floor for a request/response over a pipe. A parent and a
 * forked child exchange newline-terminated messages of given sizes, one at
 * a time, as tether and a provider do with ndjson, but with no JSON, no
 * event loop and no protocol: what is left is the cost of the pipes, the
 * context switches and the reads and writes themselves.
 *
 *   pingpong N REQUEST_BYTES RESPONSE_BYTES
 *
 * Prints "roundtrips=N seconds=S per_rt_us=U per_s=R".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      perror("pingpong: write");
      exit(1);
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Reads until a newline arrives; the peer never sends more than one
 * message ahead, so the newline ends the buffer. */
static int read_line(int fd, char *buf, size_t cap) {
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, buf + have, cap - have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    have += (size_t)r;
    if (buf[have - 1] == '\n')
      return 0;
    if (have == cap)
      return -1;
  }
}

static char *message(size_t n, char fill) {
  char *m = malloc(n);
  if (!m || n < 2) {
    fprintf(stderr, "pingpong: bad size\n");
    exit(2);
  }
  memset(m, fill, n - 1);
  m[n - 1] = '\n';
  return m;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: pingpong N REQUEST_BYTES RESPONSE_BYTES\n");
    return 2;
  }
  long n = atol(argv[1]);
  size_t req_n = (size_t)atol(argv[2]), resp_n = (size_t)atol(argv[3]);
  char *req = message(req_n, 'q'), *resp = message(resp_n, 'r');
  size_t cap = (req_n > resp_n ? req_n : resp_n) + 1;
  char *buf = malloc(cap);
  int to_child[2], to_parent[2];
  if (!buf || pipe(to_child) || pipe(to_parent)) {
    perror("pingpong");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("pingpong: fork");
    return 1;
  }
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    while (read_line(to_child[0], buf, cap) == 0)
      write_all(to_parent[1], resp, resp_n);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    write_all(to_child[1], req, req_n);
    if (read_line(to_parent[0], buf, cap) != 0) {
      fprintf(stderr, "pingpong: child went away\n");
      return 1;
    }
  }
  double secs = now_s() - t0;
  close(to_child[1]);
  waitpid(pid, NULL, 0);
  printf("roundtrips=%ld seconds=%.4f per_rt_us=%.2f per_s=%.0f\n", n, secs,
         secs * 1e6 / (double)n, (double)n / secs);
  free(req);
  free(resp);
  free(buf);
  return 0;
}
