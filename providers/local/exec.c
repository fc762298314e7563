/*
 * exec.c: the exec type. Runs a program with an argv array (never through
 * a shell), feeds it stdin when given, and records what it printed on
 * stdout. With once: true the program runs only when the resource is
 * created; updates return the recorded output, which needs state.
 *
 * Programs run on pool threads (pool.c), several at once, so everything
 * here is per run: each child gets pipes made close-on-exec (another
 * thread's child must not keep them open), is waited for by its own pid,
 * and passes its stderr on in whole lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

/* More than this on stdout is refused: the output goes into the state and
 * through the protocol. */
#define MAX_STDOUT (16u << 20)
/* How much of the end of stderr an error message quotes. */
#define STDERR_TAIL 2000

const tether_input tt_exec_inputs[] = {
    {.name = "executable", .kind = TETHER_JSON_STRING, .required = true},
    {.name = "args", .kind = TETHER_JSON_ARRAY, .required = true},
    {.name = "stdin", .kind = TETHER_JSON_STRING},
    {.name = "once", .kind = TETHER_JSON_BOOL},
    {.name = NULL}};

/* Checks the inputs the table cannot: a usable executable and arguments
 * that are strings without NUL bytes. */
static tether_done *check_inputs(tether_request *req) {
  tether_done *done = tt_check_resource_inputs(req, tt_exec_inputs);
  if (done)
    return done;
  const tether_json *in = tether_request_inputs(req);
  const char *bad =
      tt_check_c_string(tether_json_object_get(in, "executable"), true);
  if (bad)
    return tt_reply_bad_input(req, "executable", bad);
  const tether_json *args = tether_json_object_get(in, "args");
  for (size_t i = 0, n = tether_json_array_size(args); i < n; i++) {
    if ((bad = tt_check_c_string(tether_json_array_get(args, i), false))) {
      char key[40];
      snprintf(key, sizeof key, "args/%zu", i);
      return tt_reply_bad_input(req, key, bad);
    }
  }
  return NULL;
}

static bool once_set(const tether_json *inputs) {
  return tether_json_bool_value(tether_json_object_get(inputs, "once"));
}

typedef struct run {
  const char *executable;
  pid_t pid;
  tether_buf out;
  char tail[STDERR_TAIL]; /* the end of stderr, as a ring */
  size_t tail_len;        /* bytes of stderr seen in all */
  tether_buf line;        /* stderr not passed on yet: a partial line */
} run;

/* Programs running at once write their stderr through ours; whole lines
 * under one lock keep one program's line from being cut in two by
 * another's. */
static pthread_mutex_t stderr_mu = PTHREAD_MUTEX_INITIALIZER;

/* Longest partial line held back; a longer one goes out in pieces. */
#define STDERR_LINE_MAX 4096

static void write_stderr(const char *p, size_t n) {
  pthread_mutex_lock(&stderr_mu);
  while (n > 0) {
    ssize_t w = write(2, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break; /* a lost log line is no reason to fail the program */
    p += w;
    n -= (size_t)w;
  }
  pthread_mutex_unlock(&stderr_mu);
}

/* Passes the program's stderr on to ours (the host's log), complete lines
 * only; at_end flushes a last line without its newline. */
static void pass_stderr(run *r, const char *p, size_t n, bool at_end) {
  if (n > 0)
    tether_buf_append(&r->line, p, n);
  const char *start = r->line.data;
  const char *nl = start ? memrchr(start, '\n', r->line.len) : NULL;
  size_t whole = nl ? (size_t)(nl - start) + 1 : 0;
  if (at_end || r->line.len - whole > STDERR_LINE_MAX) {
    if (r->line.len > 0 && r->line.data[r->line.len - 1] != '\n')
      tether_buf_append_char(&r->line, '\n');
    whole = r->line.len;
  }
  if (whole == 0)
    return;
  write_stderr(r->line.data, whole);
  memmove(r->line.data, r->line.data + whole, r->line.len - whole);
  r->line.len -= whole;
}

static void keep_tail(run *r, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    r->tail[(r->tail_len + i) % STDERR_TAIL] = p[i];
  r->tail_len += n;
}

/* The end of stderr, without trailing whitespace, malloc'd. */
static char *stderr_tail(const run *r) {
  size_t n = r->tail_len < STDERR_TAIL ? r->tail_len : STDERR_TAIL;
  char *s = tt_malloc(n + 1);
  for (size_t i = 0; i < n; i++)
    s[i] = r->tail[(r->tail_len - n + i) % STDERR_TAIL];
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
    n--;
  s[n] = '\0';
  return s;
}

/* The child's side of the fork: only async-signal-safe calls until exec. */
static _Noreturn void child_exec(char **argv, int in_fd, int out_fd, int err_fd,
                                 int report_fd) {
  /* The program stays in the provider's process group, which the host
   * stops as a whole when it has to: nothing outlives a killed provider.
   * The library ignores SIGPIPE and may block signals; a program starts
   * with the defaults. */
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
    int e = errno;
    (void)!write(report_fd, &e, sizeof e);
    _exit(127);
  }
  /* No descriptor of ours (the protocol channel, a locked state file)
   * may outlive us in the program. report_fd is close-on-exec already. */
  close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
  execvp(argv[0], argv);
  int e = errno;
  (void)!write(report_fd, &e, sizeof e);
  _exit(127);
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* Starts the program; false with err filled when it could not run. */
static bool start(run *r, const tether_json *inputs, bool with_stdin, int *in_w,
                  int *out_r, int *err_r, char *err, size_t errlen) {
  const tether_json *args = tether_json_object_get(inputs, "args");
  size_t argc = tether_json_array_size(args);
  char **argv = tt_calloc(argc + 2, sizeof *argv);
  argv[0] = (char *)r->executable;
  for (size_t i = 0; i < argc; i++)
    argv[i + 1] =
        (char *)tether_json_string_value(tether_json_array_get(args, i));
  int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1},
      report[2] = {-1, -1};
  bool ok = false;
  /* Without stdin input the program reads an empty file, as NixOps4's
   * does. */
  if (with_stdin)
    ok = pipe2(in, O_CLOEXEC) == 0;
  else
    ok = (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
  ok = ok && pipe2(out, O_CLOEXEC) == 0 && pipe2(er, O_CLOEXEC) == 0 &&
       pipe2(report, O_CLOEXEC) == 0;
  if (!ok) {
    snprintf(err, errlen, "making pipes for %s: %s", r->executable,
             tt_strerror(errno));
    goto out;
  }
  ok = false;
  r->pid = fork();
  if (r->pid < 0) {
    snprintf(err, errlen, "starting %s: %s", r->executable, tt_strerror(errno));
    goto out;
  }
  if (r->pid == 0)
    child_exec(argv, in[0], out[1], er[1], report[1]);
  close_fd(&report[1]);
  int child_errno = 0;
  ssize_t n;
  do
    n = read(report[0], &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  if (n == (ssize_t)sizeof child_errno) {
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
    snprintf(err, errlen, "could not run %s: %s", r->executable,
             tt_strerror(child_errno));
    goto out;
  }
  *in_w = in[1];
  *out_r = out[0];
  *err_r = er[0];
  in[1] = out[0] = er[0] = -1;
  ok = true;
out:
  close_fd(&in[0]);
  close_fd(&in[1]);
  close_fd(&out[0]);
  close_fd(&out[1]);
  close_fd(&er[0]);
  close_fd(&er[1]);
  close_fd(&report[0]);
  close_fd(&report[1]);
  free(argv);
  return ok;
}

/* Stops the program: politely, then after two seconds not. */
static void stop_program(pid_t pid, int *status) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 200; i++) {
    if (waitpid(pid, status, WNOHANG) == pid)
      return;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, status, 0);
}

typedef enum run_end { RUN_EXITED, RUN_CANCELLED, RUN_TOO_MUCH } run_end;

/* Feeds stdin, collects stdout and the end of stderr (also passed on to
 * our stderr, the host's log) until the program closes both, then reaps
 * it. */
static run_end communicate(tether_request *req, run *r, const char *stdin_data,
                           size_t stdin_len, int in_w, int out_r, int err_r,
                           int *status) {
  size_t written = 0;
  if (in_w >= 0)
    fcntl(in_w, F_SETFL, fcntl(in_w, F_GETFL) | O_NONBLOCK);
  if (in_w >= 0 && stdin_len == 0)
    close_fd(&in_w);
  run_end end = RUN_EXITED;
  char block[65536];
  while (out_r >= 0 || err_r >= 0) {
    struct pollfd p[3] = {
        {out_r, POLLIN, 0}, {err_r, POLLIN, 0}, {in_w, POLLOUT, 0}};
    int rc = poll(p, 3, 200);
    if (rc < 0 && errno != EINTR)
      break;
    if (tether_request_cancelled(req)) {
      end = RUN_CANCELLED;
      break;
    }
    if (rc <= 0)
      continue;
    if (p[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t n = write(in_w, stdin_data + written, stdin_len - written);
      if (n > 0)
        written += (size_t)n;
      /* A program that stops reading early is its own business. */
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_len)
        close_fd(&in_w);
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(out_r, block, sizeof block);
      if (n > 0)
        tether_buf_append(&r->out, block, (size_t)n);
      else if (n == 0 || errno != EINTR)
        close_fd(&out_r);
      if (r->out.len > MAX_STDOUT) {
        end = RUN_TOO_MUCH;
        break;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(err_r, block, sizeof block);
      if (n > 0) {
        keep_tail(r, block, (size_t)n);
        pass_stderr(r, block, (size_t)n, false);
      } else if (n == 0 || errno != EINTR) {
        close_fd(&err_r);
      }
    }
  }
  close_fd(&in_w);
  close_fd(&out_r);
  close_fd(&err_r);
  pass_stderr(r, NULL, 0, true);
  if (end != RUN_EXITED) {
    stop_program(r->pid, status);
    return end;
  }
  while (waitpid(r->pid, status, 0) < 0 && errno == EINTR) {
  }
  return end;
}

/* What a signal is, as strsignal says it, but from a constant table:
 * strsignal may write into one buffer for every thread. */
static const char *signal_name(int sig) {
  const char *d = sigdescr_np(sig);
  return d ? d : "unknown signal";
}

/* Runs the program of req's inputs (on a pool thread) and answers req
 * with {stdout} or why not. */
static void run_program(tether_request *req, void *unused) {
  (void)unused;
  const tether_json *inputs = tether_request_inputs(req);
  run r = {.executable = tether_json_string_value(
               tether_json_object_get(inputs, "executable")),
           .pid = -1};
  tether_buf_init(&r.out);
  tether_buf_init(&r.line);
  const tether_json *stdin_v = tether_json_object_get(inputs, "stdin");
  int in_w = -1, out_r = -1, err_r = -1, status = 0;
  char err[600];
  if (!start(&r, inputs, stdin_v != NULL, &in_w, &out_r, &err_r, err,
             sizeof err)) {
    tether_buf_free(&r.out);
    tether_buf_free(&r.line);
    tether_reject(req, TETHER_ERR_FAILED, NULL, "exec: %s", err);
    return;
  }
  run_end end = communicate(req, &r, tether_json_string_value(stdin_v),
                            tether_json_string_length(stdin_v), in_w, out_r,
                            err_r, &status);
  char *tail = stderr_tail(&r);
  if (end == RUN_CANCELLED) {
    tether_reject(req, TETHER_ERR_CANCELLED, NULL, "request cancelled");
  } else if (end == RUN_TOO_MUCH) {
    tether_reject(req, TETHER_ERR_FAILED, NULL,
                  "exec: %s printed more than %u MiB on stdout; it was "
                  "stopped",
                  r.executable, MAX_STDOUT >> 20);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    tether_json *out = tether_json_object();
    out = tether_json_object_set(
        out, "stdout",
        tether_json_string_n(r.out.data ? r.out.data : "", r.out.len));
    tt_resolve_outputs(req, out);
  } else {
    tether_json *data = tether_json_object();
    char how[64];
    if (WIFEXITED(status)) {
      snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
      data = tether_json_object_set(data, "exitStatus",
                                    tether_json_int(WEXITSTATUS(status)));
    } else {
      snprintf(how, sizeof how, "was killed by signal %d (%s)",
               WTERMSIG(status), signal_name(WTERMSIG(status)));
      data = tether_json_object_set(data, "signal",
                                    tether_json_int(WTERMSIG(status)));
    }
    data = tether_json_object_set(data, "stderr", tether_json_string(tail));
    tether_reject(req, TETHER_ERR_FAILED, data, "exec: %s %s%s%s", r.executable,
                  how, tail[0] ? ": " : "", tail);
  }
  free(tail);
  tether_buf_free(&r.out);
  tether_buf_free(&r.line);
}

tether_done *tt_exec_create(tether_request *req) {
  tether_done *done = check_inputs(req);
  if (done)
    return done;
  const tether_json *inputs = tether_request_inputs(req);
  if (once_set(inputs) && !tether_request_is_stateful(req))
    return tether_reply_error(
        req, TETHER_ERR_REQUIRES_STATE, NULL,
        "exec resource with once=true requires state (use isStateful): its "
        "output must be remembered to be returned by later updates");
  return tt_pool_submit(req, run_program, NULL);
}

tether_done *tt_exec_update(tether_request *req) {
  tether_done *done = check_inputs(req);
  if (done)
    return done;
  const tether_json *inputs = tether_request_inputs(req);
  if (!once_set(inputs))
    return tt_pool_submit(req, run_program, NULL);
  const tether_json *previous =
      tether_json_object_get(tether_request_outputs(req), "stdout");
  if (!tether_json_is_string(previous))
    return tether_reply_invalid(
        req, "/resource/outputProperties/stdout",
        "an exec with once=true returns its recorded output on update, but "
        "/resource/outputProperties/stdout is %s",
        previous ? "not a string" : "missing");
  tether_json *out = tether_json_object();
  out = tether_json_object_set(out, "stdout", tether_json_ref(previous));
  return tether_reply_outputs(req, out);
}

tether_done *tt_exec_delete(tether_request *req) {
  tether_done *done = check_inputs(req);
  if (done)
    return done;
  /* What the program did is not undone: exec records an output only. */
  return tether_reply_ok(req, tether_json_object());
}
