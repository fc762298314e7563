/*
 * test_provider.c: the provider library as a host sees it. Each test forks
 * a child that runs tether_provider_main over pipes with a provider
 * defined below, then talks to it as tether would: sends bytes, reads
 * answers, and checks what arrives, in both framings. Every wait is
 * bounded: reads poll with a deadline, and an alarm ends a stuck test (and
 * a stuck child).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "framing.h"
#include "tether/provider.h"

/* Generous: the tests also run under valgrind. */
#define WAIT_MS 20000

/* ==== The provider under test (runs in the child) ==== */

/* Helper threads the handlers started; the child waits for them before it
 * exits so that nothing is cut off half-way. */
static atomic_int helpers_running;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static const char *input_string(tether_request *req, const char *key) {
  return tether_json_string_value(
      tether_json_object_get(tether_request_inputs(req), key));
}

static int64_t input_int(tether_request *req, const char *key, int64_t dflt) {
  int64_t v;
  return tether_json_get_int(
             tether_json_object_get(tether_request_inputs(req), key), &v)
             ? v
             : dflt;
}

static tether_json *greeting_outputs(tether_request *req) {
  tether_json *out = tether_json_object();
  bool excited = tether_json_bool_value(
      tether_json_object_get(tether_request_inputs(req), "excited"));
  out = tether_json_object_set(out, "greeting",
                               tether_json_stringf("hello, %s%s",
                                                   input_string(req, "name"),
                                                   excited ? "!" : ""));
  out = tether_json_object_set(out, "type",
                               tether_json_string(tether_request_type(req)));
  out = tether_json_object_set(out, "data",
                               tether_json_string(tether_request_data(req)));
  return out;
}

static tether_done *greeting_create(tether_request *req) {
  return tether_reply_outputs(req, greeting_outputs(req));
}

static tether_done *greeting_update(tether_request *req) {
  tether_json *out = greeting_outputs(req);
  /* What the resource had before, so a test can see the library passed
   * the existing resource through. */
  const tether_json *old =
      tether_json_object_get(tether_request_outputs(req), "greeting");
  out = tether_json_object_set(out, "previous",
                               old ? tether_json_ref(old) : tether_json_null());
  return tether_reply_outputs(req, out);
}

static tether_done *greeting_delete(tether_request *req) {
  return tether_reply_ok(req, tether_json_object());
}

static tether_done *greeting_read(tether_request *req) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "exists", tether_json_bool(true));
  r = tether_json_object_set(r, "outputProperties",
                             tether_json_ref(tether_request_outputs(req)));
  r = tether_json_object_set(r, "id",
                             tether_json_string(tether_request_id(req)));
  return tether_reply_ok(req, r);
}

static const tether_input greeting_inputs[] = {
    {"name", TETHER_JSON_STRING, true, false},
    {"excited", TETHER_JSON_BOOL, false, false},
    {"extra", TETHER_JSON_NULL, false, true},
    {"a/b", TETHER_JSON_NUMBER, false, false},
    {NULL, TETHER_JSON_NULL, false, false}};

static tether_done *echo_create(tether_request *req) {
  tether_json *out = tether_json_ref(tether_request_inputs(req));
  out = tether_json_object_set(
      out, "stateful", tether_json_bool(tether_request_is_stateful(req)));
  return tether_reply_outputs(req, out);
}

static tether_done *store_state_read(tether_request *req) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "state", tether_json_object());
  r = tether_json_object_set(r, "index", tether_json_int(0));
  return tether_reply_ok(req, r);
}

static tether_done *store_state_event(tether_request *req) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "index", tether_json_int(1));
  return tether_reply_ok(req, r);
}

/* Waits until the request is cancelled (or 5 s pass), then answers as a
 * careful handler would. Runs on a worker thread. */
static tether_done *slow_create(tether_request *req) {
  for (int i = 0; i < 5000 && !tether_request_cancelled(req); i++)
    sleep_ms(1);
  if (tether_request_cancelled(req))
    return tether_reply_outputs(req, tether_json_string("late"));
  return tether_reply_outputs(req, tether_json_object());
}

/* Handlers that prove they run at the same time: each waits until
 * `together` of them are inside. */
static atomic_int inside;

static tether_done *parallel_create(tether_request *req) {
  int want = (int)input_int(req, "together", 2);
  long wait_ms = (long)input_int(req, "wait_ms", 5000);
  atomic_fetch_add(&inside, 1);
  bool met = false;
  for (long i = 0; i < wait_ms && !met; i++) {
    met = atomic_load(&inside) >= want;
    if (!met)
      sleep_ms(1);
  }
  tether_json *out = tether_json_object();
  out = tether_json_object_set(out, "met", tether_json_bool(met));
  return tether_reply_outputs(req, out);
}

/* Pending requests, answered by a helper thread. */
static void *resolver(void *arg) {
  tether_request *req = arg;
  long delay = (long)input_int(req, "delay_ms", 0);
  bool until_cancelled = input_int(req, "until_cancelled", 0) != 0;
  if (until_cancelled) {
    for (int i = 0; i < 5000 && !tether_request_cancelled(req); i++)
      sleep_ms(1);
  } else {
    sleep_ms(delay);
  }
  if (input_int(req, "fail", 0)) {
    tether_json *data = tether_json_object();
    data = tether_json_object_set(data, "why", tether_json_string("asked"));
    tether_reject(req, TETHER_ERR_FAILED, data, "failed after %ld ms", delay);
  } else {
    tether_json *r = tether_json_object();
    tether_json *out = tether_json_object();
    out = tether_json_object_set(out, "n",
                                 tether_json_int(input_int(req, "n", 0)));
    r = tether_json_object_set(r, "outputProperties", out);
    tether_resolve(req, r);
  }
  atomic_fetch_sub(&helpers_running, 1);
  return NULL;
}

static tether_done *pending_create(tether_request *req) {
  /* The thread the work is handed to may finish before the handler
   * returns; answering first, on this thread, is that race decided. */
  if (input_int(req, "resolve_first", 0)) {
    tether_json *r = tether_json_object();
    r = tether_json_object_set(r, "outputProperties", tether_json_object());
    tether_resolve(req, r);
    return tether_reply_pending(req);
  }
  pthread_t t;
  atomic_fetch_add(&helpers_running, 1);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, resolver, req) != 0)
    abort();
  pthread_attr_destroy(&attr);
  return tether_reply_pending(req);
}

static tether_done *twice_create(tether_request *req) {
  tether_done *d = tether_reply_ok(req, tether_json_object());
  (void)d;
  return tether_reply_ok(req, tether_json_object());
}

static tether_done *forgetful_create(tether_request *req) { return NULL; }

static tether_done *printer_create(tether_request *req) {
  printf("stray printf output\n");
  fflush(stdout);
  static const char raw[] = "stray write to fd 1\n";
  ssize_t n = write(1, raw, sizeof raw - 1);
  (void)n;
  return tether_reply_outputs(req, tether_json_object());
}

static tether_done *logger_create(tether_request *req) {
  tether_log(TETHER_LOG_WARN, "careful with %s", input_string(req, "name"));
  tether_progress(req, 0.5, "half way");
  tether_progress(req, -1, "no idea how far");
  tether_progress(req, 7, "clamped");
  return tether_reply_outputs(req, tether_json_object());
}

/* Reads from fd 0, as a child process a handler starts would. */
static tether_done *stdin_reader_create(tether_request *req) {
  char buf[256];
  ssize_t n = read(0, buf, sizeof buf);
  tether_json *out = tether_json_object();
  out = tether_json_object_set(out, "read", tether_json_int(n));
  return tether_reply_outputs(req, out);
}

static const tether_input checked_inputs[] = {
    {"port", TETHER_JSON_NUMBER, true, false},
    {NULL, TETHER_JSON_NULL, false, false}};

/* Checks its inputs by hand, the way a handler with conditional rules
 * would. */
static tether_done *checked_create(tether_request *req) {
  tether_done *bad = tether_check_inputs(req, tether_request_inputs(req),
                                         "/inputProperties", checked_inputs);
  if (bad)
    return bad;
  return tether_reply_outputs(req, tether_json_object());
}

static const tether_resource_type test_types[] = {
    {.name = "greeting",
     .description = "Greets someone",
     .inputs = greeting_inputs,
     .op_create = greeting_create,
     .op_update = greeting_update,
     .op_delete = greeting_delete,
     .op_read = greeting_read},
    {.name = "memo",
     .description = "Needs state",
     .require_state = true,
     .op_create = echo_create},
    {.name = "store",
     .description = "A state store",
     .state_provider = true,
     .op_create = echo_create,
     .op_state_read = store_state_read,
     .op_state_event = store_state_event},
    {.name = "noops"},
    {.name = "slow", .op_create = slow_create},
    {.name = "parallel", .op_create = parallel_create},
    {.name = "pending", .op_create = pending_create},
    {.name = "twice", .op_create = twice_create},
    {.name = "forgetful", .op_create = forgetful_create},
    {.name = "printer", .op_create = printer_create},
    {.name = "logger", .op_create = logger_create},
    {.name = "checked", .op_create = checked_create},
    {.name = "stdin_reader", .op_create = stdin_reader_create},
    {.name = NULL}};

static const tether_provider_info plain_info = {
    .name = "testprov",
    .version = "9.8.7",
    .types = test_types,
    .data = "the data",
};

static const tether_provider_info threaded_info = {
    .name = "testprov",
    .version = "9.8.7",
    .concurrency = 8,
    .threads = 4,
    .types = test_types,
    .data = "the data",
};

static const tether_provider_info small_info = {
    .name = "testprov",
    .version = "9.8.7",
    .types = test_types,
    .max_message_size = 1024,
};

static const tether_resource_type duplicate_types[] = {
    {.name = "a", .op_create = echo_create},
    {.name = "a", .op_create = echo_create},
    {.name = NULL}};

static const tether_provider_info duplicate_info = {
    .name = "dup", .version = "1", .types = duplicate_types};

/* ==== The host side (runs in the test) ==== */

typedef struct prov {
  pid_t pid;
  int to;   /* the child's stdin */
  int from; /* the child's stdout */
  int err;  /* the child's stderr */
  tt_framing framing;
  tt_frame_reader reader;
  tether_buf stderr_text;
  bool from_eof;
} prov;

static void child_run(const tether_provider_info *info, int argc, char **argv) {
  alarm(60);
  /* Some tests end the child with abort(): no core files for those. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  int status = tether_provider_main(info, argc, argv);
  for (int i = 0; i < 5000 && atomic_load(&helpers_running) > 0; i++)
    sleep_ms(1);
  /* exit(), not _exit(): the leak checkers report at exit. */
  exit(status);
}

static void start_args(prov *p, const tether_provider_info *info,
                       tt_framing framing, int argc, char **argv) {
  alarm(120);
  memset(p, 0, sizeof *p);
  int in[2], out[2], err[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  assert_int_equal(pipe(err), 0);
  /* Whatever stdio holds must not be written twice, least of all into
   * the child's protocol channel. */
  fflush(stdout);
  fflush(stderr);
  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (int i = 0; i < 2; i++) {
      close(in[i]);
      close(out[i]);
      close(err[i]);
    }
    child_run(info, argc, argv);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  p->to = in[1];
  p->from = out[0];
  p->err = err[0];
  fcntl(p->from, F_SETFL, O_NONBLOCK);
  fcntl(p->err, F_SETFL, O_NONBLOCK);
  p->framing = framing;
  tt_frame_reader_init(&p->reader, TT_FRAMING_DETECT, 0);
  tether_buf_init(&p->stderr_text);
}

static void start(prov *p, const tether_provider_info *info,
                  tt_framing framing) {
  static char *argv[] = {"testprov", NULL};
  start_args(p, info, framing, 1, argv);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drain_stderr(prov *p) {
  char buf[4096];
  ssize_t n;
  while ((n = read(p->err, buf, sizeof buf)) > 0)
    tether_buf_append(&p->stderr_text, buf, (size_t)n);
}

/* Reads what the child wrote until a message is complete, EOF, or
 * timeout_ms pass. Returns the message (NULL for EOF or timeout). */
static tether_json *try_recv(prov *p, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    const char *msg;
    size_t len;
    tt_frame_status st = tt_frame_reader_next(&p->reader, &msg, &len);
    if (st == TT_FRAME_MESSAGE) {
      tether_json_error jerr;
      tether_json *v = tether_json_parse(msg, len, &jerr);
      if (!v)
        fail_msg("the provider wrote something that is not JSON (%s): "
                 "%.*s",
                 jerr.message, (int)(len > 200 ? 200 : len), msg);
      return v;
    }
    if (st != TT_FRAME_NEED_MORE)
      fail_msg("the provider broke the framing: %s", p->reader.error);
    if (p->from_eof)
      return NULL;
    long long left = deadline - now_ms();
    if (left <= 0)
      return NULL;
    struct pollfd fds[2] = {{.fd = p->from, .events = POLLIN},
                            {.fd = p->err, .events = POLLIN}};
    poll(fds, 2, (int)left);
    drain_stderr(p);
    char buf[65536];
    ssize_t n = read(p->from, buf, sizeof buf);
    if (n > 0)
      tt_frame_reader_feed(&p->reader, buf, (size_t)n);
    else if (n == 0)
      p->from_eof = true;
  }
}

static tether_json *recv_msg(prov *p) {
  tether_json *v = try_recv(p, WAIT_MS);
  if (!v) {
    drain_stderr(p);
    fail_msg("no message from the provider (%s); its stderr: %s",
             p->from_eof ? "stdout closed" : "timed out",
             p->stderr_text.data ? p->stderr_text.data : "");
  }
  return v;
}

static void send_raw(prov *p, const char *bytes, size_t len) {
  while (len > 0) {
    ssize_t n = write(p->to, bytes, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail_msg("writing to the provider: %s", strerror(errno));
    bytes += n;
    len -= (size_t)n;
  }
}

static void send_text(prov *p, const char *json) {
  tether_buf out;
  tether_buf_init(&out);
  tt_frame_write(p->framing, &out, json, strlen(json));
  send_raw(p, out.data, out.len);
  tether_buf_free(&out);
}

static void sendf(prov *p, const char *fmt, ...) TETHER_PRINTF(2, 3);
static void sendf(prov *p, const char *fmt, ...) {
  char text[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  send_text(p, text);
}

/* Waits for the child to end; its exit status, or 128 + the signal. */
static int wait_exit(prov *p) {
  long long deadline = now_ms() + WAIT_MS;
  for (;;) {
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      drain_stderr(p);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (now_ms() > deadline) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &status, 0);
      p->pid = 0;
      fail_msg("the provider did not end");
    }
    drain_stderr(p);
    sleep_ms(5);
  }
}

static void finish(prov *p) {
  if (p->to >= 0)
    close(p->to);
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
  }
  close(p->from);
  close(p->err);
  tt_frame_reader_free(&p->reader);
  tether_buf_free(&p->stderr_text);
}

static void close_stdin(prov *p) {
  close(p->to);
  p->to = -1;
}

/* Reads to the end of the child's stdout: there must be nothing more. */
static void expect_no_more(prov *p) {
  tether_json *v = try_recv(p, WAIT_MS);
  if (v) {
    char *text = tether_json_dumps(v, NULL);
    fail_msg("unexpected message: %s", text);
  }
  assert_true(p->from_eof);
}

/* Nothing arrives for ms milliseconds. */
static void expect_silence(prov *p, int ms) {
  tether_json *v = try_recv(p, ms);
  if (v) {
    char *text = tether_json_dumps(v, NULL);
    fail_msg("unexpected message: %s", text);
  }
}

static const tether_json *at(const tether_json *v, const char *pointer) {
  return tether_json_pointer_get(v, pointer, NULL);
}

static void expect_json(const tether_json *v, const char *pointer,
                        const char *want) {
  const tether_json *got = at(v, pointer);
  tether_json *w = tether_json_parse(want, strlen(want), NULL);
  assert_non_null(w);
  if (!got || !tether_json_equal(got, w)) {
    char *all = tether_json_dumps(v, NULL);
    fail_msg("at %s: want %s in %s", pointer, want, all);
  }
  tether_json_unref(w);
}

/* The next message must be the answer to id with a result; returns it. */
static tether_json *expect_result(prov *p, const char *id) {
  tether_json *v = recv_msg(p);
  expect_json(v, "/jsonrpc", "\"2.0\"");
  expect_json(v, "/id", id);
  if (!at(v, "/result")) {
    char *all = tether_json_dumps(v, NULL);
    fail_msg("want a result for id %s, got %s", id, all);
  }
  assert_null(at(v, "/error"));
  return v;
}

/* The next message must be an error answer to id with code. */
static tether_json *expect_error(prov *p, const char *id, int code) {
  tether_json *v = recv_msg(p);
  expect_json(v, "/jsonrpc", "\"2.0\"");
  expect_json(v, "/id", id);
  char want[16];
  snprintf(want, sizeof want, "%d", code);
  expect_json(v, "/error/code", want);
  assert_true(tether_json_is_string(at(v, "/error/message")));
  assert_null(at(v, "/result"));
  return v;
}

static void expect_error_path(prov *p, const char *id, const char *path) {
  tether_json *v = expect_error(p, id, TETHER_ERR_INVALID_PARAMS);
  char want[256];
  snprintf(want, sizeof want, "\"%s\"", path);
  expect_json(v, "/error/data/path", want);
  tether_json_unref(v);
}

static void initialize(prov *p) {
  send_text(p, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
               "\"params\":{\"protocolVersion\":1,\"host\":{\"name\":"
               "\"tether\",\"version\":\"0.1.0\"}}}");
  tether_json_unref(expect_result(p, "0"));
}

/* shutdown, exit, and the status that follows. */
static int stop(prov *p) {
  send_text(p, "{\"jsonrpc\":\"2.0\",\"id\":\"bye\",\"method\":"
               "\"shutdown\"}");
  tether_json *v = expect_result(p, "\"bye\"");
  expect_json(v, "/result", "null");
  tether_json_unref(v);
  send_text(p, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  expect_no_more(p);
  return wait_exit(p);
}

static bool stderr_says(prov *p, const char *what) {
  drain_stderr(p);
  return p->stderr_text.data && strstr(p->stderr_text.data, what);
}

#define GREETING_CREATE(id, inputs)                                            \
  "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"method\":\"create\",\"params\":"       \
  "{\"type\":\"greeting\",\"inputProperties\":" inputs                         \
  ",\"isStateful\":false}}"

/* ==== Lifecycle ==== */

static void initialize_describes_provider(void **state) {
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    prov p;
    start(&p, &plain_info, (tt_framing)f);
    send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                  "\"params\":{\"protocolVersion\":1}}");
    tether_json *v = expect_result(&p, "1");
    /* The answer comes in the framing the host used. */
    assert_int_equal(p.reader.framing, f);
    expect_json(v, "/result/protocolVersion", "1");
    expect_json(v, "/result/provider",
                "{\"name\":\"testprov\",\"version\":\"9.8.7\"}");
    expect_json(v, "/result/concurrency", "1");
    expect_json(v, "/result/resourceTypes/greeting",
                "{\"description\":\"Greets someone\",\"requireState\":false,"
                "\"stateProvider\":false,\"operations\":[\"create\","
                "\"update\",\"delete\",\"read\"]}");
    expect_json(v, "/result/resourceTypes/memo/requireState", "true");
    expect_json(v, "/result/resourceTypes/memo/operations", "[\"create\"]");
    expect_json(v, "/result/resourceTypes/store",
                "{\"description\":\"A state store\",\"requireState\":false,"
                "\"stateProvider\":true,\"operations\":[\"create\","
                "\"state_read\",\"state_event\"]}");
    expect_json(v, "/result/resourceTypes/noops",
                "{\"description\":\"\",\"requireState\":false,"
                "\"stateProvider\":false,\"operations\":[]}");
    assert_int_equal(tether_json_object_size(at(v, "/result/resourceTypes")),
                     13);
    tether_json_unref(v);
    assert_int_equal(stop(&p), 0);
    finish(&p);
  }
}

static void initialize_announces_concurrency(void **state) {
  prov p;
  start(&p, &threaded_info, TT_FRAMING_NDJSON);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                "\"params\":{\"protocolVersion\":1}}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result/concurrency", "8");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void initialize_wrong_version(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                "\"params\":{\"protocolVersion\":2}}");
  tether_json *v = expect_error(&p, "1", TETHER_ERR_INVALID_PARAMS);
  expect_json(v, "/error/data/supported", "[1]");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\","
                "\"params\":{\"protocolVersion\":\"1\"}}");
  v = expect_error(&p, "2", TETHER_ERR_INVALID_PARAMS);
  expect_json(v, "/error/data/supported", "[1]");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\","
                "\"params\":{}}");
  v = expect_error(&p, "3", TETHER_ERR_INVALID_PARAMS);
  expect_json(v, "/error/data/path", "\"/protocolVersion\"");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\"}");
  tether_json_unref(expect_error(&p, "4", TETHER_ERR_INVALID_PARAMS));
  /* A refused initialize leaves the provider waiting for a good one. */
  send_text(&p, GREETING_CREATE("5", "{\"name\":\"x\"}"));
  tether_json_unref(expect_error(&p, "5", TETHER_ERR_NOT_INITIALIZED));
  initialize(&p);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void requests_before_initialize(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  send_text(&p, GREETING_CREATE("1", "{\"name\":\"x\"}"));
  tether_json_unref(expect_error(&p, "1", TETHER_ERR_NOT_INITIALIZED));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"shutdown\"}");
  tether_json_unref(expect_error(&p, "2", TETHER_ERR_NOT_INITIALIZED));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"bogus\"}");
  tether_json_unref(expect_error(&p, "3", TETHER_ERR_NOT_INITIALIZED));
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\","
                "\"params\":{\"protocolVersion\":1}}");
  tether_json_unref(expect_error(&p, "4", TETHER_ERR_INVALID_REQUEST));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void after_shutdown_requests_refused(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_CONTENT_LENGTH);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"shutdown\"}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result", "null");
  tether_json_unref(v);
  send_text(&p, GREETING_CREATE("2", "{\"name\":\"x\"}"));
  tether_json_unref(expect_error(&p, "2", TETHER_ERR_INVALID_REQUEST));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"shutdown\"}");
  tether_json_unref(expect_error(&p, "3", TETHER_ERR_INVALID_REQUEST));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 0);
  finish(&p);
}

static void exit_without_shutdown(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 1);
  finish(&p);
}

static void eof_answers_what_came_then_ends(void **state) {
  /* A host (or a shell pipeline) that sends everything and closes stdin
   * still gets every answer. */
  for (int with_shutdown = 0; with_shutdown < 2; with_shutdown++) {
    prov p;
    start(&p, &threaded_info, TT_FRAMING_NDJSON);
    sendf(&p,
          "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
          "\"params\":{\"protocolVersion\":1}}\n"
          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\",\"params\":"
          "{\"type\":\"pending\",\"inputProperties\":{\"delay_ms\":200,"
          "\"n\":5},\"isStateful\":false}}\n%s",
          with_shutdown ? "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                          "\"shutdown\"}"
                        : "{\"jsonrpc\":\"2.0\",\"method\":\"nothing\"}");
    close_stdin(&p);
    tether_json_unref(expect_result(&p, "0"));
    tether_json *v = expect_result(&p, "1");
    expect_json(v, "/result/outputProperties/n", "5");
    tether_json_unref(v);
    if (with_shutdown) {
      v = expect_result(&p, "2");
      expect_json(v, "/result", "null");
      tether_json_unref(v);
    }
    expect_no_more(&p);
    assert_int_equal(wait_exit(&p), 0);
    finish(&p);
  }
}

static void eof_inside_a_message(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_raw(&p, "{\"jsonrpc\":\"2.0\",\"id\":1", 20);
  close_stdin(&p);
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 1);
  assert_true(stderr_says(&p, "stdin ended inside a message"));
  finish(&p);
}

static void shutdown_waits_for_earlier_answers(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"pending\",\"inputProperties\":"
                "{\"delay_ms\":300,\"n\":1},\"isStateful\":false}}");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"shutdown\"}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result/outputProperties/n", "1");
  tether_json_unref(v);
  v = expect_result(&p, "2");
  expect_json(v, "/result", "null");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 0);
  finish(&p);
}

static void messages_split_across_reads(void **state) {
  /* However the pipe cuts the bytes, the messages come out whole. */
  prov p;
  start(&p, &plain_info, TT_FRAMING_CONTENT_LENGTH);
  tether_buf all;
  tether_buf_init(&all);
  static const char *const msgs[] = {
      "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
      "\"params\":{\"protocolVersion\":1}}",
      GREETING_CREATE("1", "{\"name\":\"split\"}")};
  for (int i = 0; i < 2; i++)
    tt_frame_write(TT_FRAMING_CONTENT_LENGTH, &all, msgs[i], strlen(msgs[i]));
  size_t cuts[] = {3, 17, 40, all.len};
  size_t off = 0;
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    send_raw(&p, all.data + off, cuts[i] - off);
    off = cuts[i];
    sleep_ms(20);
  }
  tether_buf_free(&all);
  tether_json_unref(expect_result(&p, "0"));
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result/outputProperties/greeting", "\"hello, split\"");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

/* ==== Malformed input ==== */

static void parse_errors(void **state) {
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    prov p;
    start(&p, &plain_info, (tt_framing)f);
    initialize(&p);
    static const char *const bad[] = {
        "{\"jsonrpc\":", "[1,]", "{'a':1}", "01", "hello", "\"\xff\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      send_text(&p, bad[i]);
      tether_json *v = expect_error(&p, "null", TETHER_ERR_PARSE);
      tether_json_unref(v);
    }
    /* The provider carries on after each. */
    send_text(&p, GREETING_CREATE("1", "{\"name\":\"x\"}"));
    tether_json_unref(expect_result(&p, "1"));
    assert_int_equal(stop(&p), 0);
    finish(&p);
  }
}

static void bad_content_length_header_is_fatal(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_CONTENT_LENGTH);
  initialize(&p);
  static const char bad[] = "Content-Length: x\r\n\r\n{}";
  send_raw(&p, bad, sizeof bad - 1);
  tether_json *v = expect_error(&p, "null", TETHER_ERR_PARSE);
  tether_json_unref(v);
  /* The error went out in content-length framing. */
  assert_int_equal(p.reader.framing, TT_FRAMING_CONTENT_LENGTH);
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 1);
  assert_true(stderr_says(&p, "Content-Length"));
  finish(&p);
}

static void invalid_requests(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"id\":5,\"method\":\"create\"}");
  tether_json_unref(expect_error(&p, "5", TETHER_ERR_INVALID_REQUEST));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"x\"}");
  tether_json_unref(expect_error(&p, "null", TETHER_ERR_INVALID_REQUEST));
  /* Malformed without an id is still answered, with id null. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":1,\"params\":\"bar\"}");
  tether_json_unref(expect_error(&p, "null", TETHER_ERR_INVALID_REQUEST));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"create\","
                "\"params\":7}");
  tether_json_unref(expect_error(&p, "\"s\"", TETHER_ERR_INVALID_REQUEST));
  send_text(&p, "42");
  tether_json_unref(expect_error(&p, "null", TETHER_ERR_INVALID_REQUEST));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void notifications_are_never_answered(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  /* Even before initialize, and even for a method that does not exist. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"bogus\"}");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"create\",\"params\":"
                "{\"type\":\"greeting\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"create\",\"params\":"
                "{\"type\":\"nope\"}}");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\","
                "\"params\":{\"id\":12345}}");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\"}");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":[1]}");
  /* Responses from the host are not answered either. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}");
  send_text(&p, GREETING_CREATE("1", "{\"name\":\"x\"}"));
  tether_json_unref(expect_result(&p, "1"));
  assert_int_equal(stop(&p), 0);
  assert_true(stderr_says(&p, "bogus"));
  finish(&p);
}

static void unknown_method(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"destroy\","
                "\"params\":{}}");
  tether_json_unref(expect_error(&p, "1", TETHER_ERR_METHOD_NOT_FOUND));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"exit\"}");
  tether_json_unref(expect_error(&p, "2", TETHER_ERR_METHOD_NOT_FOUND));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void oversized_messages(void **state) {
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    prov p;
    start(&p, &small_info, (tt_framing)f);
    initialize(&p);
    char big[2048];
    snprintf(big, sizeof big,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
             "\"params\":{\"type\":\"greeting\",\"inputProperties\":"
             "{\"name\":\"%01500d\"},\"isStateful\":false}}",
             0);
    send_text(&p, big);
    tether_json *v = expect_error(&p, "null", TETHER_ERR_INVALID_REQUEST);
    const char *msg = tether_json_string_value(at(v, "/error/message"));
    if (!strstr(msg, "1024"))
      fail_msg("the message does not name the limit: %s", msg);
    tether_json_unref(v);
    expect_no_more(&p);
    assert_int_equal(wait_exit(&p), 1);
    finish(&p);
  }
}

/* ==== Operations ==== */

static void greeting_operations(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, GREETING_CREATE("1", "{\"name\":\"web\",\"excited\":true,"
                                     "\"extra\":{\"any\":[1]}}"));
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result",
              "{\"outputProperties\":{\"greeting\":\"hello, web!\","
              "\"type\":\"greeting\",\"data\":\"the data\"}}");
  tether_json_unref(v);

  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"update\","
                "\"params\":{\"resource\":{\"type\":\"greeting\","
                "\"inputProperties\":{\"name\":\"web\"},\"outputProperties\":"
                "{\"greeting\":\"hello, web\"}},\"inputProperties\":"
                "{\"name\":\"db\",\"extra\":7}}}");
  v = expect_result(&p, "2");
  expect_json(v, "/result/outputProperties/greeting", "\"hello, db\"");
  expect_json(v, "/result/outputProperties/previous", "\"hello, web\"");
  tether_json_unref(v);

  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":\"r\",\"method\":\"read\","
                "\"params\":{\"resource\":{\"type\":\"greeting\","
                "\"inputProperties\":{\"name\":\"web\"}}}}");
  v = expect_result(&p, "\"r\"");
  /* Absent outputProperties reach the handler as an empty object. */
  expect_json(v, "/result",
              "{\"exists\":true,\"outputProperties\":{},\"id\":\"\\\"r\\\"\"}");
  tether_json_unref(v);

  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"delete\","
                "\"params\":{\"resource\":{\"type\":\"greeting\","
                "\"inputProperties\":{\"name\":\"web\"},\"outputProperties\":"
                "{}}}}");
  v = expect_result(&p, "4");
  expect_json(v, "/result", "{}");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void state_operations(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_CONTENT_LENGTH);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"state_read\","
                "\"params\":{\"resource\":{\"type\":\"store\","
                "\"inputProperties\":{}}}}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result", "{\"state\":{},\"index\":0}");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"state_event\","
                "\"params\":{\"resource\":{\"type\":\"store\","
                "\"inputProperties\":{}},\"event\":\"create\","
                "\"hostVersion\":\"0.1.0\",\"expectIndex\":0,\"patch\":"
                "[{\"op\":\"add\",\"path\":\"/resources/a\",\"value\":{}}]}}");
  v = expect_result(&p, "2");
  expect_json(v, "/result/index", "1");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void unknown_type_and_unsupported_operation(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"nope\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  tether_json *v = expect_error(&p, "1", TETHER_ERR_UNKNOWN_TYPE);
  expect_json(v, "/error/data/type", "\"nope\"");
  expect_json(v, "/error/data/known",
              "[\"greeting\",\"memo\",\"store\",\"noops\",\"slow\","
              "\"parallel\",\"pending\",\"twice\",\"forgetful\","
              "\"printer\",\"logger\",\"checked\",\"stdin_reader\"]");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"read\","
                "\"params\":{\"resource\":{\"type\":\"nope\","
                "\"inputProperties\":{}}}}");
  tether_json_unref(expect_error(&p, "2", TETHER_ERR_UNKNOWN_TYPE));
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"create\","
                "\"params\":{\"type\":\"noops\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  v = expect_error(&p, "3", TETHER_ERR_UNSUPPORTED);
  expect_json(v, "/error/data/operation", "\"create\"");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"state_read\","
                "\"params\":{\"resource\":{\"type\":\"greeting\","
                "\"inputProperties\":{}}}}");
  tether_json_unref(expect_error(&p, "4", TETHER_ERR_UNSUPPORTED));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void require_state(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"memo\",\"inputProperties\":{\"v\":1},"
                "\"isStateful\":false}}");
  tether_json *v = expect_error(&p, "1", TETHER_ERR_REQUIRES_STATE);
  expect_json(v, "/error/data/type", "\"memo\"");
  tether_json_unref(v);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"create\","
                "\"params\":{\"type\":\"memo\",\"inputProperties\":{\"v\":1},"
                "\"isStateful\":true}}");
  v = expect_result(&p, "2");
  expect_json(v, "/result/outputProperties", "{\"v\":1,\"stateful\":true}");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void params_are_checked(void **state) {
  static const struct {
    const char *method, *params, *path;
  } cases[] = {
      {"create", "[]", ""},
      {"create", "{\"inputProperties\":{},\"isStateful\":false}", "/type"},
      {"create", "{\"type\":1,\"inputProperties\":{},\"isStateful\":false}",
       "/type"},
      {"create", "{\"type\":\"greeting\",\"isStateful\":false}",
       "/inputProperties"},
      {"create",
       "{\"type\":\"greeting\",\"inputProperties\":[],\"isStateful\":false}",
       "/inputProperties"},
      {"create", "{\"type\":\"greeting\",\"inputProperties\":{}}",
       "/isStateful"},
      {"create",
       "{\"type\":\"greeting\",\"inputProperties\":{},\"isStateful\":0}",
       "/isStateful"},
      {"update", "{\"inputProperties\":{}}", "/resource"},
      {"update",
       "{\"resource\":{\"inputProperties\":{}},\"inputProperties\":{}}",
       "/resource/type"},
      {"update",
       "{\"resource\":{\"type\":\"greeting\",\"inputProperties\":\"x\"},"
       "\"inputProperties\":{}}",
       "/resource/inputProperties"},
      {"update",
       "{\"resource\":{\"type\":\"greeting\",\"inputProperties\":{},"
       "\"outputProperties\":[]},\"inputProperties\":{}}",
       "/resource/outputProperties"},
      {"update",
       "{\"resource\":{\"type\":\"greeting\",\"inputProperties\":{}}}",
       "/inputProperties"},
      {"delete", "{}", "/resource"},
      {"read", "{\"resource\":7}", "/resource"},
      {"state_read", "{\"resource\":{\"type\":\"store\"}}",
       "/resource/inputProperties"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"hostVersion\":\"1\",\"patch\":[]}",
       "/event"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"event\":\"e\",\"patch\":[]}",
       "/hostVersion"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"event\":\"e\",\"hostVersion\":\"1\",\"patch\":{}}",
       "/patch"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"event\":\"e\",\"hostVersion\":\"1\",\"patch\":[{\"op\":\"add\","
       "\"path\":\"/a\",\"value\":1},{\"op\":\"frobnicate\",\"path\":\"\"}]}",
       "/patch/1"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"event\":\"e\",\"hostVersion\":\"1\",\"patch\":[],"
       "\"expectIndex\":-1}",
       "/expectIndex"},
      {"state_event",
       "{\"resource\":{\"type\":\"store\",\"inputProperties\":{}},"
       "\"event\":\"e\",\"hostVersion\":\"1\",\"patch\":[],"
       "\"expectIndex\":\"3\"}",
       "/expectIndex"},
  };
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sendf(&p,
          "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"%s\","
          "\"params\":%s}",
          i + 1, cases[i].method, cases[i].params);
    char id[16];
    snprintf(id, sizeof id, "%zu", i + 1);
    expect_error_path(&p, id, cases[i].path);
  }
  /* A patch that is not well formed names the operation. */
  sendf(&p, "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"state_event\","
            "\"params\":{\"resource\":{\"type\":\"store\",\"inputProperties\""
            ":{}},\"event\":\"e\",\"hostVersion\":\"1\",\"patch\":[{\"op\":"
            "\"remove\"}]}}");
  tether_json *v = expect_error(&p, "99", TETHER_ERR_INVALID_PARAMS);
  expect_json(v, "/error/data/op", "0");
  tether_json_unref(v);
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void declared_inputs_are_checked(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, GREETING_CREATE("1", "{\"name\":\"x\",\"bogus\":1}"));
  expect_error_path(&p, "1", "/inputProperties/bogus");
  send_text(&p, GREETING_CREATE("2", "{\"excited\":true}"));
  expect_error_path(&p, "2", "/inputProperties/name");
  send_text(&p, GREETING_CREATE("3", "{\"name\":5}"));
  tether_json *v = recv_msg(&p);
  expect_json(v, "/error/data/path", "\"/inputProperties/name\"");
  const char *msg = tether_json_string_value(at(v, "/error/message"));
  if (!strstr(msg, "must be a string, not a number"))
    fail_msg("unhelpful message: %s", msg);
  tether_json_unref(v);
  /* Names are escaped in the pointer. */
  send_text(&p, GREETING_CREATE("4", "{\"name\":\"x\",\"a/b\":\"s\"}"));
  expect_error_path(&p, "4", "/inputProperties/a~1b");
  send_text(&p, GREETING_CREATE("5", "{\"name\":\"x\",\"a/b\":1}"));
  tether_json_unref(expect_result(&p, "5"));
  /* update checks the new inputs, not the old ones. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"update\","
                "\"params\":{\"resource\":{\"type\":\"greeting\","
                "\"inputProperties\":{\"old\":1}},\"inputProperties\":"
                "{\"name\":null}}}");
  expect_error_path(&p, "6", "/inputProperties/name");
  /* A handler can run the same check by hand. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"create\","
                "\"params\":{\"type\":\"checked\",\"inputProperties\":"
                "{\"port\":\"80\"},\"isStateful\":false}}");
  expect_error_path(&p, "7", "/inputProperties/port");
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"create\","
                "\"params\":{\"type\":\"checked\",\"inputProperties\":"
                "{\"port\":80},\"isStateful\":false}}");
  tether_json_unref(expect_result(&p, "8"));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

/* ==== Batches ==== */

/* The answer in a batch answer with the given id. */
static const tether_json *batch_answer(const tether_json *arr, const char *id) {
  tether_json *want = tether_json_parse(id, strlen(id), NULL);
  const tether_json *found = NULL;
  for (size_t i = 0; i < tether_json_array_size(arr); i++) {
    const tether_json *a = tether_json_array_get(arr, i);
    if (tether_json_equal(tether_json_object_get(a, "id"), want))
      found = a;
  }
  tether_json_unref(want);
  if (!found) {
    char *all = tether_json_dumps(arr, NULL);
    fail_msg("no answer with id %s in %s", id, all);
  }
  return found;
}

static void batches(void **state) {
  for (int f = TT_FRAMING_NDJSON; f <= TT_FRAMING_CONTENT_LENGTH; f++) {
    prov p;
    start(&p, &threaded_info, (tt_framing)f);
    send_text(&p,
              "[{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
              "\"params\":{\"protocolVersion\":1}},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"bogus\"},"
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\",\"params\":"
              "{\"type\":\"pending\",\"inputProperties\":{\"delay_ms\":100,"
              "\"n\":1},\"isStateful\":false}},"
              "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"create\",\"params\":"
              "{\"type\":\"greeting\",\"inputProperties\":{\"name\":\"b\"},"
              "\"isStateful\":false}},"
              "1,"
              "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"}]");
    tether_json *v = recv_msg(&p);
    assert_true(tether_json_is_array(v));
    /* One answer per request and per invalid member; none for the
     * notification. */
    assert_int_equal(tether_json_array_size(v), 5);
    expect_json(batch_answer(v, "0"), "/result/protocolVersion", "1");
    expect_json(batch_answer(v, "1"), "/result/outputProperties/n", "1");
    expect_json(batch_answer(v, "2"), "/result/outputProperties/greeting",
                "\"hello, b\"");
    expect_json(batch_answer(v, "null"), "/error/code", "-32600");
    expect_json(batch_answer(v, "3"), "/error/code", "-32601");
    tether_json_unref(v);

    /* Nothing at all for a batch of notifications. */
    send_text(&p, "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"b\"}]");
    /* An empty batch gets one error, not an array. */
    send_text(&p, "[]");
    v = expect_error(&p, "null", TETHER_ERR_INVALID_REQUEST);
    tether_json_unref(v);
    send_text(&p, "[1,2]");
    v = recv_msg(&p);
    assert_true(tether_json_is_array(v));
    assert_int_equal(tether_json_array_size(v), 2);
    expect_json(v, "/0/error/code", "-32600");
    expect_json(v, "/1/id", "null");
    tether_json_unref(v);
    send_text(&p, "[{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"shutdown\"}]");
    v = recv_msg(&p);
    expect_json(v, "", "[{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":null}]");
    tether_json_unref(v);
    send_text(&p, "[{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}]");
    expect_no_more(&p);
    assert_int_equal(wait_exit(&p), 0);
    finish(&p);
  }
}

/* ==== Threads, pending answers, cancellation ==== */

static void handlers_run_in_parallel_on_workers(void **state) {
  prov p;
  start(&p, &threaded_info, TT_FRAMING_NDJSON);
  initialize(&p);
  for (int i = 1; i <= 3; i++)
    sendf(&p,
          "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"create\","
          "\"params\":{\"type\":\"parallel\",\"inputProperties\":"
          "{\"together\":3},\"isStateful\":false}}",
          i);
  for (int i = 1; i <= 3; i++) {
    tether_json *v = recv_msg(&p);
    expect_json(v, "/result/outputProperties/met", "true");
    tether_json_unref(v);
  }
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void without_threads_handlers_run_in_order(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  /* Alone on the main thread, a handler waiting for company never gets
   * any: the requests run one after the other. */
  sendf(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
            "\"params\":{\"type\":\"parallel\",\"inputProperties\":"
            "{\"together\":2,\"wait_ms\":300},\"isStateful\":false}}\n"
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"create\","
            "\"params\":{\"type\":\"greeting\",\"inputProperties\":"
            "{\"name\":\"x\"},\"isStateful\":false}}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result/outputProperties/met", "false");
  tether_json_unref(v);
  tether_json_unref(expect_result(&p, "2"));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void pending_answers_from_other_threads(void **state) {
  const tether_provider_info *infos[] = {&plain_info, &threaded_info};
  for (int i = 0; i < 2; i++) {
    prov p;
    start(&p, infos[i], TT_FRAMING_CONTENT_LENGTH);
    initialize(&p);
    /* The slower one first: answers come as they are ready. */
    send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                  "\"params\":{\"type\":\"pending\",\"inputProperties\":"
                  "{\"delay_ms\":400,\"n\":1},\"isStateful\":false}}");
    send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"create\","
                  "\"params\":{\"type\":\"pending\",\"inputProperties\":"
                  "{\"delay_ms\":10,\"n\":2,\"fail\":1},\"isStateful\":"
                  "false}}");
    tether_json *v = expect_error(&p, "2", TETHER_ERR_FAILED);
    expect_json(v, "/error/message", "\"failed after 10 ms\"");
    expect_json(v, "/error/data", "{\"why\":\"asked\"}");
    tether_json_unref(v);
    v = expect_result(&p, "1");
    expect_json(v, "/result/outputProperties/n", "1");
    tether_json_unref(v);
    assert_int_equal(stop(&p), 0);
    finish(&p);
  }
}

static void resolved_before_reply_pending(void **state) {
  prov p;
  start(&p, &threaded_info, TT_FRAMING_NDJSON);
  initialize(&p);
  for (int i = 1; i <= 3; i++)
    sendf(&p,
          "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"create\","
          "\"params\":{\"type\":\"pending\",\"inputProperties\":"
          "{\"resolve_first\":1},\"isStateful\":false}}",
          i);
  for (int i = 1; i <= 3; i++)
    tether_json_unref(recv_msg(&p));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void cancel_pending_request(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"create\","
                "\"params\":{\"type\":\"pending\",\"inputProperties\":"
                "{\"until_cancelled\":1,\"n\":7},\"isStateful\":false}}");
  expect_silence(&p, 100);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\","
                "\"params\":{\"id\":7}}");
  tether_json *v = expect_error(&p, "7", TETHER_ERR_CANCELLED);
  tether_json_unref(v);
  /* The helper thread's late answer is dropped: the next message is the
   * answer to the next request. */
  send_text(&p, GREETING_CREATE("8", "{\"name\":\"x\"}"));
  tether_json_unref(expect_result(&p, "8"));
  /* Cancelling what is answered already does nothing. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\","
                "\"params\":{\"id\":8}}");
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void cancel_running_handler(void **state) {
  prov p;
  start(&p, &threaded_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"create\","
                "\"params\":{\"type\":\"slow\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  expect_silence(&p, 100);
  long long t0 = now_ms();
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\","
                "\"params\":{\"id\":\"s\"}}");
  tether_json_unref(expect_error(&p, "\"s\"", TETHER_ERR_CANCELLED));
  /* Well before the handler would have given up on its own. */
  assert_true(now_ms() - t0 < 4000);
  send_text(&p, GREETING_CREATE("2", "{\"name\":\"x\"}"));
  tether_json_unref(expect_result(&p, "2"));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void exit_cancels_running_work(void **state) {
  prov p;
  start(&p, &threaded_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"slow\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  expect_silence(&p, 100);
  long long t0 = now_ms();
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}");
  /* Nothing more is written after exit, not even the handler's answer. */
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 1);
  assert_true(now_ms() - t0 < 4000);
  finish(&p);
}

/* ==== Talking while working ==== */

static void log_and_progress(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"create\","
                "\"params\":{\"type\":\"logger\",\"inputProperties\":"
                "{\"name\":\"disk\"},\"isStateful\":false}}");
  tether_json *v = recv_msg(&p);
  expect_json(v, "",
              "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":"
              "{\"level\":\"warn\",\"message\":\"careful with disk\"}}");
  tether_json_unref(v);
  v = recv_msg(&p);
  expect_json(v, "",
              "{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":"
              "{\"id\":5,\"message\":\"half way\",\"fraction\":0.5}}");
  tether_json_unref(v);
  v = recv_msg(&p);
  expect_json(v, "/params", "{\"id\":5,\"message\":\"no idea how far\"}");
  tether_json_unref(v);
  v = recv_msg(&p);
  expect_json(v, "/params/fraction", "1");
  tether_json_unref(v);
  tether_json_unref(expect_result(&p, "5"));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

static void stray_output_goes_to_stderr(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"printer\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  /* recv_msg fails on anything that is not a message. */
  tether_json_unref(expect_result(&p, "1"));
  assert_int_equal(stop(&p), 0);
  assert_true(stderr_says(&p, "stray printf output"));
  assert_true(stderr_says(&p, "stray write to fd 1"));
  finish(&p);
}

static void stdin_is_not_the_protocol(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  /* The next request is already in the pipe when the handler reads fd 0:
   * it must not get it. */
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"stdin_reader\",\"inputProperties\":"
                "{},\"isStateful\":false}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"create\","
                "\"params\":{\"type\":\"greeting\",\"inputProperties\":"
                "{\"name\":\"x\"},\"isStateful\":false}}");
  tether_json *v = expect_result(&p, "1");
  expect_json(v, "/result/outputProperties/read", "0");
  tether_json_unref(v);
  tether_json_unref(expect_result(&p, "2"));
  assert_int_equal(stop(&p), 0);
  finish(&p);
}

/* ==== Misuse and the process ==== */

static void handler_answering_twice_aborts(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"twice\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  tether_json_unref(expect_result(&p, "1"));
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 128 + SIGABRT);
  if (!stderr_says(&p, "create handler of type \"twice\" answered twice"))
    fail_msg("stderr: %s", p.stderr_text.data);
  finish(&p);
}

static void handler_without_answer_aborts(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  send_text(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"create\","
                "\"params\":{\"type\":\"forgetful\",\"inputProperties\":{},"
                "\"isStateful\":false}}");
  expect_no_more(&p);
  assert_int_equal(wait_exit(&p), 128 + SIGABRT);
  if (!stderr_says(&p, "create handler of type \"forgetful\" returned "
                       "without answering"))
    fail_msg("stderr: %s", p.stderr_text.data);
  finish(&p);
}

static void host_gone_ends_quietly(void **state) {
  prov p;
  start(&p, &plain_info, TT_FRAMING_NDJSON);
  initialize(&p);
  /* The host stops reading; the next answer cannot be written. */
  close(p.from);
  p.from = open("/dev/null", O_RDONLY);
  send_text(&p, GREETING_CREATE("1", "{\"name\":\"x\"}"));
  /* Ends on its own, not killed by SIGPIPE. */
  assert_int_equal(wait_exit(&p), 1);
  finish(&p);
}

static void terminal_gets_a_hint(void **state) {
  int master, slave;
  assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
  int err[2];
  assert_int_equal(pipe(err), 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(slave, 0);
    dup2(err[1], 2);
    close(master);
    close(slave);
    close(err[0]);
    close(err[1]);
    static char *argv[] = {"testprov", NULL};
    child_run(&plain_info, 1, argv);
  }
  close(slave);
  close(err[1]);
  prov p = {.pid = pid, .err = err[0], .from = master, .to = -1};
  tether_buf_init(&p.stderr_text);
  tt_frame_reader_init(&p.reader, TT_FRAMING_DETECT, 0);
  fcntl(p.err, F_SETFL, O_NONBLOCK);
  assert_int_equal(wait_exit(&p), 1);
  drain_stderr(&p);
  const char *text = p.stderr_text.data ? p.stderr_text.data : "";
  if (!strstr(text, "tether resource provider"))
    fail_msg("stderr: %s", text);
  /* One line. */
  assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text));
  finish(&p);
}

static void version_flag(void **state) {
  prov p;
  static char *argv[] = {"testprov", "--version", NULL};
  start_args(&p, &plain_info, TT_FRAMING_NDJSON, 2, argv);
  assert_int_equal(wait_exit(&p), 0);
  char buf[128] = {0};
  ssize_t n = read(p.from, buf, sizeof buf - 1);
  assert_true(n > 0);
  assert_string_equal(buf, "testprov 9.8.7\n");
  finish(&p);
}

static void contradictory_type_table_is_refused(void **state) {
  prov p;
  start(&p, &duplicate_info, TT_FRAMING_NDJSON);
  assert_int_equal(wait_exit(&p), 1);
  if (!stderr_says(&p, "\"a\" is listed twice"))
    fail_msg("stderr: %s", p.stderr_text.data ? p.stderr_text.data : "");
  finish(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(initialize_describes_provider),
      cmocka_unit_test(initialize_announces_concurrency),
      cmocka_unit_test(initialize_wrong_version),
      cmocka_unit_test(requests_before_initialize),
      cmocka_unit_test(after_shutdown_requests_refused),
      cmocka_unit_test(exit_without_shutdown),
      cmocka_unit_test(eof_answers_what_came_then_ends),
      cmocka_unit_test(eof_inside_a_message),
      cmocka_unit_test(shutdown_waits_for_earlier_answers),
      cmocka_unit_test(messages_split_across_reads),
      cmocka_unit_test(parse_errors),
      cmocka_unit_test(bad_content_length_header_is_fatal),
      cmocka_unit_test(invalid_requests),
      cmocka_unit_test(notifications_are_never_answered),
      cmocka_unit_test(unknown_method),
      cmocka_unit_test(oversized_messages),
      cmocka_unit_test(greeting_operations),
      cmocka_unit_test(state_operations),
      cmocka_unit_test(unknown_type_and_unsupported_operation),
      cmocka_unit_test(require_state),
      cmocka_unit_test(params_are_checked),
      cmocka_unit_test(declared_inputs_are_checked),
      cmocka_unit_test(batches),
      cmocka_unit_test(handlers_run_in_parallel_on_workers),
      cmocka_unit_test(without_threads_handlers_run_in_order),
      cmocka_unit_test(pending_answers_from_other_threads),
      cmocka_unit_test(resolved_before_reply_pending),
      cmocka_unit_test(cancel_pending_request),
      cmocka_unit_test(cancel_running_handler),
      cmocka_unit_test(exit_cancels_running_work),
      cmocka_unit_test(log_and_progress),
      cmocka_unit_test(stray_output_goes_to_stderr),
      cmocka_unit_test(stdin_is_not_the_protocol),
      cmocka_unit_test(handler_answering_twice_aborts),
      cmocka_unit_test(handler_without_answer_aborts),
      cmocka_unit_test(host_gone_ends_quietly),
      cmocka_unit_test(terminal_gets_a_hint),
      cmocka_unit_test(version_flag),
      cmocka_unit_test(contradictory_type_table_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
