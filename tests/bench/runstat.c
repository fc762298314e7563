/*
 * runstat.c: runs a command once and reports its wall time and the peak
 * resident memory of the largest process in its tree (the command and
 * every descendant it waited for, such as the provider tether spawns).
 *
 *   runstat [-o FILE] CMD [ARG]...
 *
 * stdout of the command goes to FILE (default /dev/null). Prints
 * "wall_ms=W cpu_ms=C maxrss_kb=K status=S" on stderr (C: user and system
 * time of the whole tree); exits with the command's status.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *out = "/dev/null";
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "-o") == 0) {
    out = argv[2];
    first = 3;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: runstat [-o FILE] CMD [ARG]...\n");
    return 2;
  }
  /* The file is emptied before the clock starts: letting go of the last
   * run's output (megabytes the system may still be writing back) is not
   * the command's work. */
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(out);
    return 1;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    if (dup2(fd, 1) < 0) {
      perror(out);
      _exit(127);
    }
    close(fd);
    execvp(argv[first], argv + first);
    perror(argv[first]);
    _exit(127);
  }
  close(fd);
  int status = 0;
  waitpid(pid, &status, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
              (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  fprintf(stderr, "wall_ms=%.1f cpu_ms=%.1f maxrss_kb=%ld status=%d\n", ms, cpu,
          ru.ru_maxrss, code);
  return code;
}
