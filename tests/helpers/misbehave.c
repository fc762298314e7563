/*
 * misbehave.c: a resource provider that breaks the protocol on purpose, so
 * the end-to-end tests can check what the host does about it.
 *
 *     misbehave MODE [KEY=VALUE]...
 *
 * One binary, one mode per way of failing (see `modes` below), and a
 * correct baseline, "good". It speaks the protocol by hand rather than
 * through the provider library, because most modes have to break it at the
 * byte level: a library that keeps a provider correct would get in the way.
 * Its framing is its own too, not protocol/framing.c: a misreading of the
 * SPEC shared by both ends of the pipe would pass unnoticed.
 *
 * Every mode is the good provider with one thing changed: it answers
 * `initialize` per SPEC section 4 with one type, "thing", that supports all
 * six operations, echoes inputs as outputs, and answers in whichever
 * framing the first message it receives used.
 *
 * Options (KEY=VALUE words after the mode):
 *   concurrency=N  declared in the initialize answer (default 1); a request
 *                  beyond it is answered with an error naming the count
 *   delay=MS       answer each operation MS milliseconds after it arrived,
 *                  so several can be in flight (default 0; slow: 3000)
 *   size=BYTES     size of the oversized answer (default 65 MiB)
 *   bytes=BYTES    how much stderr the flood writes (default 50 MB)
 *   byte_us=US     pause between bytes in bytewise mode (default 1000)
 *   stats=PATH     on a clean end (exit notification or EOF), write what
 *                  the host did to PATH, one line of
 *                  KEY=VALUE words:
 *                    max_inflight  the most operations in flight at once
 *                    requests      how many operations arrived
 *                    framing       ndjson, content-length or none
 *                    stop          how it ended: "exit" (shutdown, then
 *                                  exit), "exit-without-shutdown", "eof",
 *                                  "eof-after-shutdown" or "other"
 *                    host          the host's name from initialize
 *                    env           1 when TETHER_PROVIDER=1 and
 *                                  TETHER_PROTOCOL=1 were set
 *                    own_group     1 when it leads its own process group
 *   touch=PATH     create PATH when the first operation arrives, so a test
 *                  knows the provider is in the middle of a request
 *   child=1        leave a child process behind (as leave-child does)
 *   ignore_term=1  ignore SIGTERM and every way of being asked to stop
 *   mark=WORD      ignored: lets a test find every process it started
 *   note=TEXT      ignored: lets a test pass shell syntax, to see that the
 *                  host does not run providers through a shell
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tether/json.h"
#include "rpc.h"
#include "tether/protocol.h"
#include "util.h"

#define WRONG_ID 424242
#define STRAY_TEXT "hello world\n"

/* The methods of SPEC section 5; "thing" supports them all. */
static const char *const operation_names[] = {
    "create", "update", "delete", "read", "state_read", "state_event"};
#define N_OPERATIONS (sizeof operation_names / sizeof operation_names[0])

/* ---- Options and modes ---- */

enum {
  MODE_BYTEWISE = 1 << 0,    /* every byte of stdout written on its own */
  MODE_IGNORE_TERM = 1 << 1, /* SIGTERM, shutdown, exit and EOF ignored */
  MODE_LEAVE_CHILD = 1 << 2  /* a child that outlives us, holding our pipes */
};

typedef struct options {
  int concurrency;
  long delay_ms;
  size_t big_size;
  size_t flood_bytes;
  long byte_us;
  const char *stats_path;
  const char *touch_path;
  unsigned flags;
} options;

typedef struct request {
  tether_json *id; /* borrowed from the message */
  const char *method;
  const tether_json *params; /* an object, maybe empty */
} request;

typedef struct mode {
  const char *name;
  const char *help;
  /* What happens on `initialize`; NULL answers it correctly. */
  void (*on_initialize)(const request *r);
  /* What happens on create, update, delete, read, state_read and
   * state_event once the request is known to be well formed. */
  void (*on_operation)(const request *r);
  unsigned flags;
} mode;

/* ---- The provider's state ---- */

typedef enum framing { FRAMING_UNKNOWN, FRAMING_NDJSON, FRAMING_CL } framing;

/* An answer waiting for its delay to pass. */
typedef struct pending {
  tether_json *id;
  tether_json *result;
  unsigned long long due_ns;
  bool cancellable;
} pending;

static struct {
  options opt;
  const mode *mode;
  framing framing;
  tether_buf in;
  bool initialized;
  bool shut_down;
  bool touched;
  pending *pending;
  size_t npending, cappending;
  int max_inflight;
  long requests;
  const char *stop; /* how the provider ended; set, it ends serve() */
  int status;       /* the exit status it ends with */
  char host[64];    /* initialize's host.name */
} P;

/* ---- Small helpers ---- */

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      /* The host closed our stdout (it gave up on us): nothing to say it
       * to, so say it on stderr and go. */
      fprintf(stderr, "misbehave: write to fd %d: %s\n", fd, strerror(errno));
      _exit(1);
    }
    data += n;
    len -= (size_t)n;
  }
}

/* A provider that is stuck for good: it neither reads nor answers. */
static _Noreturn void hang_forever(void) {
  for (;;)
    pause();
}

/* ---- Writing messages ---- */

/* Frames one JSON text in the framing the host used and appends it. */
static void frame(tether_buf *out, const char *json, size_t len) {
  if (P.framing == FRAMING_CL)
    tether_buf_printf(out, "Content-Length: %zu\r\n\r\n", len);
  tether_buf_append(out, json, len);
  if (P.framing != FRAMING_CL)
    tether_buf_append_char(out, '\n');
}

static void frame_json(tether_buf *out, tether_json *msg) {
  size_t len;
  char *text = tether_json_dumps(msg, &len);
  frame(out, text, len);
  free(text);
  tether_json_unref(msg);
}

/* Puts bytes on stdout in one write, or a byte at a time in bytewise mode
 * so the host sees every message split at every possible place. */
static void emit(const tether_buf *out) {
  if (!(P.opt.flags & MODE_BYTEWISE)) {
    write_all(1, out->data, out->len);
    return;
  }
  for (size_t i = 0; i < out->len; i++) {
    write_all(1, out->data + i, 1);
    sleep_us(P.opt.byte_us);
  }
}

static void send_json(tether_json *msg) {
  tether_buf out;
  tether_buf_init(&out);
  frame_json(&out, msg);
  emit(&out);
  tether_buf_free(&out);
}

/* The messages themselves come from protocol/rpc.c: what misbehave breaks
 * is how they reach the host, not what a well-formed one looks like. */

/* A new reference to an id, for the builders, which consume it (NULL
 * becomes null). */
static tether_json *id_ref(const tether_json *id) {
  return id ? tether_json_ref(id) : NULL;
}

static tether_json *response(const tether_json *id, tether_json *result) {
  return tt_rpc_result(id_ref(id), result);
}

static tether_json *error_response(const tether_json *id, int code,
                                   tether_json *data, const char *fmt, ...)
    TETHER_PRINTF(4, 5);
static tether_json *error_response(const tether_json *id, int code,
                                   tether_json *data, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  return tt_rpc_error(id_ref(id), code, message, data);
}

/* ---- Answers that are delayed ---- */

static void schedule(const request *r, tether_json *result, long delay_ms,
                     bool cancellable) {
  if (delay_ms <= 0) {
    send_json(response(r->id, result));
    return;
  }
  if (P.npending == P.cappending) {
    P.cappending = P.cappending ? 2 * P.cappending : 16;
    P.pending = tt_realloc(P.pending, P.cappending * sizeof *P.pending);
  }
  P.pending[P.npending++] = (pending){
      .id = tether_json_ref(r->id),
      .result = result,
      .due_ns = tt_now_ns() + (unsigned long long)delay_ms * 1000000ull,
      .cancellable = cancellable};
}

static void drop_pending(size_t i) {
  tether_json_unref(P.pending[i].id);
  P.pending[i] = P.pending[--P.npending];
}

static void send_due_answers(void) {
  unsigned long long now = tt_now_ns();
  for (size_t i = 0; i < P.npending;) {
    if (P.pending[i].due_ns > now) {
      i++;
      continue;
    }
    send_json(response(P.pending[i].id, P.pending[i].result));
    drop_pending(i);
  }
}

/* Milliseconds until the next answer is due, or -1 when none waits. */
static int next_due_ms(void) {
  if (P.npending == 0)
    return -1;
  unsigned long long now = tt_now_ns(), first = P.pending[0].due_ns;
  for (size_t i = 1; i < P.npending; i++)
    if (P.pending[i].due_ns < first)
      first = P.pending[i].due_ns;
  if (first <= now)
    return 0;
  return (int)((first - now + 999999) / 1000000);
}

static void cancel(const tether_json *id) {
  for (size_t i = 0; i < P.npending; i++) {
    if (!P.pending[i].cancellable || !tether_json_equal(P.pending[i].id, id))
      continue;
    tether_json_unref(P.pending[i].result);
    send_json(error_response(id, TETHER_ERR_CANCELLED, NULL,
                             "request cancelled"));
    drop_pending(i);
    return;
  }
}

/* ---- The correct answers ---- */

static tether_json *object_or_empty(const tether_json *v) {
  return v && tether_json_is_object(v) ? tether_json_ref(v)
                                       : tether_json_object();
}

static tether_json *outputs_result(tether_json *outputs) {
  return tether_json_object_set(tether_json_object(), "outputProperties",
                                outputs);
}

/* What the good provider answers: inputs come back as outputs. */
static tether_json *echo_result(const request *r) {
  const tether_json *p = r->params;
  const tether_json *res = tether_json_object_get(p, "resource");
  const char *m = r->method;
  if (!strcmp(m, "create") || !strcmp(m, "update"))
    return outputs_result(
        object_or_empty(tether_json_object_get(p, "inputProperties")));
  if (!strcmp(m, "delete"))
    return tether_json_object();
  if (!strcmp(m, "read")) {
    const tether_json *out = tether_json_object_get(res, "outputProperties");
    if (!out)
      out = tether_json_object_get(res, "inputProperties");
    tether_json *result = tether_json_object();
    result = tether_json_object_set(result, "exists", tether_json_bool(true));
    return tether_json_object_set(result, "outputProperties",
                                  object_or_empty(out));
  }
  if (!strcmp(m, "state_read")) {
    tether_json *state = tether_json_object();
    state = tether_json_object_set(state, "_type",
                                   tether_json_string("nixopsState"));
    state = tether_json_object_set(state, "resources", tether_json_object());
    state = tether_json_object_set(state, "deployments",
                                   tether_json_object());
    tether_json *result = tether_json_object();
    result = tether_json_object_set(result, "state", state);
    return tether_json_object_set(result, "index", tether_json_int(0));
  }
  /* state_event: the next index after the one the host expects. */
  int64_t expect = 0;
  tether_json_get_int(tether_json_object_get(p, "expectIndex"), &expect);
  return tether_json_object_set(tether_json_object(), "index",
                                tether_json_int(expect + 1));
}

static tether_json *initialize_result(void) {
  tether_json *operations = tether_json_array();
  for (size_t i = 0; i < N_OPERATIONS; i++)
    operations = tether_json_array_append(
        operations, tether_json_string(operation_names[i]));
  tether_json *thing = tether_json_object();
  thing = tether_json_object_set(
      thing, "description",
      tether_json_string("A thing whose outputs are its inputs"));
  thing = tether_json_object_set(thing, "requireState",
                                 tether_json_bool(false));
  thing = tether_json_object_set(thing, "stateProvider",
                                 tether_json_bool(true));
  thing = tether_json_object_set(thing, "operations", operations);
  tether_json *provider = tether_json_object();
  provider = tether_json_object_set(provider, "name",
                                    tether_json_string("misbehave"));
  provider = tether_json_object_set(provider, "version",
                                    tether_json_string("1.0.0"));
  tether_json *result = tether_json_object();
  result = tether_json_object_set(result, "protocolVersion",
                                  tether_json_int(TETHER_PROTOCOL_VERSION));
  result = tether_json_object_set(result, "provider", provider);
  result = tether_json_object_set(result, "concurrency",
                                  tether_json_int(P.opt.concurrency));
  return tether_json_object_set(
      result, "resourceTypes",
      tether_json_object_set(tether_json_object(), "thing", thing));
}

static void answer_initialize(const request *r) {
  int64_t version = 0;
  if (!tether_json_get_int(tether_json_object_get(r->params,
                                                  "protocolVersion"),
                           &version) ||
      version != TETHER_PROTOCOL_VERSION) {
    tether_json *supported = tether_json_array_append(
        tether_json_array(), tether_json_int(TETHER_PROTOCOL_VERSION));
    send_json(error_response(
        r->id, TETHER_ERR_INVALID_PARAMS,
        tether_json_object_set(tether_json_object(), "supported", supported),
        "unsupported protocol version"));
    return;
  }
  P.initialized = true;
  const char *host = tether_json_string_value(tether_json_object_get(
      tether_json_object_get(r->params, "host"), "name"));
  snprintf(P.host, sizeof P.host, "%s", host ? host : "");
  send_json(response(r->id, initialize_result()));
}

/* ---- What each mode does on initialize ---- */

static void init_hang(const request *r) {
  (void)r;
  hang_forever();
}

static void init_exit(const request *r) {
  (void)r;
  /* Some noise first, so a test can tell that the host reports the end of
   * stderr, where the reason is, and not only its start. */
  for (int i = 1; i <= 40; i++)
    fprintf(stderr, "misbehave: loading plugin %d of 40\n", i);
  fprintf(stderr, "misbehave: cannot read /nonexistent/misbehave.conf: "
                  "No such file or directory\n");
  _exit(4);
}

static void init_wrong_version(const request *r) {
  tether_json *supported =
      tether_json_array_append(tether_json_array(), tether_json_int(7));
  send_json(error_response(
      r->id, TETHER_ERR_INVALID_PARAMS,
      tether_json_object_set(tether_json_object(), "supported", supported),
      "misbehave speaks protocol version 7 only"));
}

/* The modes that put something other than a message on stdout say so on
 * stderr first: the host's report has to show both. */
static void init_stray(const request *r) {
  fprintf(stderr, "misbehave: printing by mistake\n");
  write_all(1, STRAY_TEXT, strlen(STRAY_TEXT));
  answer_initialize(r);
}

/* ---- What each mode does on an operation ---- */

static void op_good(const request *r) {
  schedule(r, echo_result(r), P.opt.delay_ms, true);
}

static void op_slow(const request *r) {
  /* Slow, not cooperative: a cancel does not speed it up. */
  schedule(r, echo_result(r), P.opt.delay_ms > 0 ? P.opt.delay_ms : 3000,
           false);
}

static void op_fail(const request *r) {
  tether_json *data = tether_json_object_set(tether_json_object(), "quota",
                                             tether_json_int(3));
  send_json(error_response(r->id, TETHER_ERR_FAILED, data,
                           "quota of things exceeded (3 of 3 in use)"));
}

static void op_crash(const request *r) {
  (void)r;
  /* The operation's name stays out of this line: the host has to say it. */
  fprintf(stderr, "misbehave: crashing on purpose\n");
  _exit(3);
}

static void op_sigkill(const request *r) {
  (void)r;
  raise(SIGKILL);
}

static void op_sigsegv(const request *r) {
  (void)r;
  /* No core file: the test is about the host's report, not the dump. */
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
}

static void op_hang(const request *r) {
  (void)r;
  hang_forever();
}

static void op_stray(const request *r) {
  fprintf(stderr, "misbehave: printing by mistake\n");
  write_all(1, STRAY_TEXT, strlen(STRAY_TEXT));
  op_good(r);
}

static void op_bad_json(const request *r) {
  (void)r;
  /* A message cut short: it parses as nothing. */
  static const char cut[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"out";
  fprintf(stderr, "misbehave: answering in haste\n");
  tether_buf out;
  tether_buf_init(&out);
  frame(&out, cut, strlen(cut));
  emit(&out);
  tether_buf_free(&out);
}

static void op_wrong_id(const request *r) {
  send_json(tt_rpc_result(tether_json_int(WRONG_ID), echo_result(r)));
}

static void op_both(const request *r) {
  tether_json *m = error_response(r->id, TETHER_ERR_FAILED, NULL,
                                  "an error that also has a result");
  send_json(tether_json_object_set(m, "result", echo_result(r)));
}

static void op_big(const request *r) {
  /* Built as text: a value of this size would only double the memory. */
  fprintf(stderr, "misbehave: answering at length\n");
  tether_buf json;
  tether_buf_init(&json);
  size_t id_len;
  char *id = tether_json_dumps(r->id, &id_len);
  tether_buf_printf(&json,
                    "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":"
                    "{\"outputProperties\":{\"blob\":\"",
                    id);
  free(id);
  tether_buf_reserve(&json, P.opt.big_size + 8);
  memset(json.data + json.len, 'x', P.opt.big_size);
  json.len += P.opt.big_size;
  tether_buf_append_str(&json, "\"}}}");
  tether_buf out;
  tether_buf_init(&out);
  frame(&out, json.data, json.len);
  tether_buf_free(&json);
  emit(&out);
  tether_buf_free(&out);
}

static void op_stderr_flood(const request *r) {
  /* Lines of 100 bytes, written a block at a time: the host must keep
   * reading stderr or this blocks once the pipe is full. */
  enum { LINE = 100, LINES_PER_BLOCK = 640 };
  static char block[LINE * LINES_PER_BLOCK];
  size_t written = 0, line = 0;
  while (written < P.opt.flood_bytes) {
    for (size_t i = 0; i < LINES_PER_BLOCK; i++) {
      char *l = block + i * LINE;
      int n = snprintf(l, LINE, "misbehave: flood line %08zu ", ++line);
      memset(l + n, '.', LINE - 1 - (size_t)n);
      l[LINE - 1] = '\n';
    }
    write_all(2, block, sizeof block);
    written += sizeof block;
  }
  fprintf(stderr, "misbehave: flood over after %zu bytes\n", written);
  op_good(r);
}

static void op_notify_and_response(const request *r) {
  tether_json *log = tether_json_object();
  log = tether_json_object_set(log, "level", tether_json_string("info"));
  log = tether_json_object_set(
      log, "message", tether_json_string("misbehave: working on it"));
  tether_json *progress = tether_json_object();
  progress = tether_json_object_set(progress, "id", tether_json_ref(r->id));
  progress = tether_json_object_set(progress, "message",
                                    tether_json_string("halfway"));
  progress = tether_json_object_set(progress, "fraction",
                                    tether_json_double(0.5));
  tether_buf out;
  tether_buf_init(&out);
  frame_json(&out, tt_rpc_notification("log", log));
  frame_json(&out, tt_rpc_notification("progress", progress));
  frame_json(&out, response(r->id, echo_result(r)));
  /* One write(2) for all three, so they arrive in one read on the host. */
  write_all(1, out.data, out.len);
  tether_buf_free(&out);
}

static void op_partial(const request *r) {
  tether_buf out;
  tether_buf_init(&out);
  frame_json(&out, response(r->id, echo_result(r)));
  write_all(1, out.data, out.len / 2);
  _exit(0);
}

static const mode modes[] = {
    {"good", "a correct provider", NULL, op_good, 0},
    {"fail", "answers every operation with a -32000 error", NULL, op_fail,
     0},
    {"slow", "answers after delay=MS (default 3000), ignoring cancels", NULL,
     op_slow, 0},
    {"crash", "exits with status 3 on an operation, saying why on stderr",
     NULL, op_crash, 0},
    {"sigkill", "kills itself with SIGKILL on an operation", NULL,
     op_sigkill, 0},
    {"sigsegv", "dies of SIGSEGV on an operation", NULL, op_sigsegv, 0},
    {"hang", "never answers an operation", NULL, op_hang, 0},
    {"hang-init", "never answers initialize", init_hang, op_good, 0},
    {"exit-init", "exits with status 4 on initialize, saying why on stderr",
     init_exit, op_good, 0},
    {"wrong-version", "refuses the protocol version in initialize",
     init_wrong_version, op_good, 0},
    {"stray", "prints \"hello world\" on stdout while handling an operation",
     NULL, op_stray, 0},
    {"stray-init", "prints \"hello world\" on stdout before initialize",
     init_stray, op_good, 0},
    {"bad-json", "answers an operation with a cut-off JSON text", NULL,
     op_bad_json, 0},
    {"wrong-id", "answers an operation with id 424242", NULL, op_wrong_id,
     0},
    {"both", "answers an operation with both result and error", NULL,
     op_both, 0},
    {"big", "answers an operation with a message of size=BYTES", NULL,
     op_big, 0},
    {"stderr-flood", "writes bytes=BYTES of stderr, then answers", NULL,
     op_stderr_flood, 0},
    {"bytewise", "writes stdout one byte at a time", NULL, op_good,
     MODE_BYTEWISE},
    {"notify-and-response",
     "a log, a progress and the answer in one write", NULL,
     op_notify_and_response, 0},
    {"partial", "writes half an answer and exits with status 0", NULL,
     op_partial, 0},
    {"ignore-term",
     "ignores SIGTERM, shutdown, exit and EOF once it has answered", NULL,
     op_good, MODE_IGNORE_TERM},
    {"leave-child", "leaves a child process holding its pipes", NULL,
     op_good, MODE_LEAVE_CHILD},
};

/* ---- Reading messages ---- */

static bool is_operation(const char *method) {
  for (size_t i = 0; i < N_OPERATIONS; i++)
    if (!strcmp(method, operation_names[i]))
      return true;
  return false;
}

static void write_stats(void) {
  if (!P.opt.stats_path)
    return;
  FILE *f = fopen(P.opt.stats_path, "w");
  if (!f)
    return;
  const char *provider = getenv("TETHER_PROVIDER");
  const char *protocol = getenv("TETHER_PROTOCOL");
  bool env = provider && !strcmp(provider, "1") && protocol &&
             !strcmp(protocol, "1");
  fprintf(f,
          "max_inflight=%d requests=%ld framing=%s stop=%s host=%s env=%d "
          "own_group=%d\n",
          P.max_inflight, P.requests,
          P.framing == FRAMING_CL       ? "content-length"
          : P.framing == FRAMING_NDJSON ? "ndjson"
                                        : "none",
          P.stop ? P.stop : "other", P.host[0] ? P.host : "none", env,
          getpgrp() == getpid());
  fclose(f);
}

static void handle_operation(const request *r) {
  P.requests++;
  if (P.opt.touch_path && !P.touched) {
    P.touched = true;
    int fd = open(P.opt.touch_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
      close(fd);
  }
  int inflight = (int)P.npending + 1;
  if (inflight > P.max_inflight)
    P.max_inflight = inflight;
  if (inflight > P.opt.concurrency) {
    send_json(error_response(r->id, TETHER_ERR_FAILED, NULL,
                             "misbehave: %d requests in flight, more than "
                             "the declared concurrency %d",
                             inflight, P.opt.concurrency));
    return;
  }
  const tether_json *holder = !strcmp(r->method, "create")
                                  ? r->params
                                  : tether_json_object_get(r->params,
                                                           "resource");
  const char *type =
      tether_json_string_value(tether_json_object_get(holder, "type"));
  if (!type || strcmp(type, "thing")) {
    tether_json *known = tether_json_array_append(tether_json_array(),
                                                  tether_json_string("thing"));
    tether_json *data = tether_json_object();
    data = tether_json_object_set(data, "type",
                                  tether_json_string(type ? type : ""));
    data = tether_json_object_set(data, "known", known);
    send_json(error_response(r->id, TETHER_ERR_UNKNOWN_TYPE, data,
                             "unknown resource type \"%s\"",
                             type ? type : ""));
    return;
  }
  P.mode->on_operation(r);
}

static void handle_request(const request *r) {
  if (!strcmp(r->method, "initialize")) {
    if (P.mode->on_initialize)
      P.mode->on_initialize(r);
    else
      answer_initialize(r);
    return;
  }
  if (!strcmp(r->method, "shutdown")) {
    if (P.opt.flags & MODE_IGNORE_TERM)
      hang_forever();
    P.shut_down = true;
    send_json(response(r->id, tether_json_null()));
    return;
  }
  if (P.shut_down) {
    send_json(error_response(r->id, TETHER_ERR_INVALID_REQUEST, NULL,
                             "%s after shutdown", r->method));
    return;
  }
  if (!P.initialized) {
    send_json(error_response(r->id, TETHER_ERR_NOT_INITIALIZED, NULL,
                             "%s before initialize", r->method));
    return;
  }
  if (is_operation(r->method)) {
    handle_operation(r);
    return;
  }
  send_json(error_response(r->id, TETHER_ERR_METHOD_NOT_FOUND, NULL,
                           "no method %s", r->method));
}

static void handle_notification(const char *method,
                                const tether_json *params) {
  if (!strcmp(method, "exit")) {
    if (P.opt.flags & MODE_IGNORE_TERM)
      hang_forever();
    P.stop = P.shut_down ? "exit" : "exit-without-shutdown";
    P.status = P.shut_down ? 0 : 1;
  }
  if (!strcmp(method, "$/cancelRequest"))
    cancel(tether_json_object_get(params, "id"));
}

static void handle_message(const char *text, size_t len) {
  tether_json_error err;
  tether_json *msg = tether_json_parse(text, len, &err);
  if (!msg) {
    send_json(error_response(NULL, TETHER_ERR_PARSE, NULL,
                             "parse error at byte %zu: %s", err.offset,
                             err.message));
    return;
  }
  const char *method =
      tether_json_string_value(tether_json_object_get(msg, "method"));
  tether_json *id = tether_json_object_get(msg, "id");
  const tether_json *params = tether_json_object_get(msg, "params");
  tether_json *empty = tether_json_object();
  if (!params || !tether_json_is_object(params))
    params = empty;
  if (!tether_json_is_object(msg) || !method) {
    /* The host does not send responses or batches; tell it so. */
    send_json(error_response(id, TETHER_ERR_INVALID_REQUEST, NULL,
                             "not a request"));
  } else if (!id) {
    handle_notification(method, params);
  } else {
    request r = {.id = id, .method = method, .params = params};
    handle_request(&r);
  }
  tether_json_unref(empty);
  tether_json_unref(msg);
}

/* Takes the next message out of P.in. Returns false when it holds none
 * complete yet. */
static bool next_message(tether_buf *msg) {
  char *data = P.in.data;
  size_t len = P.in.len, skip = 0;
  while (skip < len && strchr(" \t\r\n", data[skip]))
    skip++;
  if (skip == len) {
    tether_buf_consume(&P.in, skip);
    return false;
  }
  if (P.framing == FRAMING_UNKNOWN)
    P.framing = (data[skip] == '{' || data[skip] == '[') ? FRAMING_NDJSON
                                                         : FRAMING_CL;
  if (P.framing == FRAMING_NDJSON) {
    char *nl = memchr(data + skip, '\n', len - skip);
    if (!nl)
      return false;
    size_t end = (size_t)(nl - data);
    tether_buf_append(msg, data + skip, end - skip);
    tether_buf_consume(&P.in, end + 1);
    return true;
  }
  char *headers_end = memmem(data, len, "\r\n\r\n", 4);
  if (!headers_end)
    return false;
  size_t body = (size_t)(headers_end - data) + 4, body_len = 0;
  bool found = false;
  for (char *line = data; line < headers_end;) {
    char *eol = memmem(line, (size_t)(headers_end + 2 - line), "\r\n", 2);
    if (!strncasecmp(line, "Content-Length:", 15)) {
      body_len = strtoul(line + 15, NULL, 10);
      found = true;
    }
    line = eol + 2;
  }
  if (!found) {
    fprintf(stderr, "misbehave: a header block without Content-Length\n");
    exit(1);
  }
  if (len - body < body_len)
    return false;
  tether_buf_append(msg, data + body, body_len);
  tether_buf_consume(&P.in, body + body_len);
  return true;
}

/* Reads and answers until the host says exit or closes stdin. */
static void serve(void) {
  char chunk[65536];
  while (!P.stop) {
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    int n = poll(&pfd, 1, next_due_ms());
    if (n < 0 && errno != EINTR) {
      perror("misbehave: poll");
      exit(1);
    }
    send_due_answers();
    if (n <= 0)
      continue;
    ssize_t got = read(0, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      if (P.opt.flags & MODE_IGNORE_TERM)
        hang_forever();
      P.stop = P.shut_down ? "eof-after-shutdown" : "eof";
      break;
    }
    tether_buf_append(&P.in, chunk, (size_t)got);
    tether_buf msg;
    tether_buf_init(&msg);
    while (!P.stop && next_message(&msg)) {
      if (msg.len > 0)
        handle_message(msg.data, msg.len);
      msg.len = 0;
    }
    tether_buf_free(&msg);
  }
}

/* ---- Start ---- */

static void usage(FILE *to) {
  fprintf(to, "usage: misbehave MODE [KEY=VALUE]...\n"
              "A test provider for tether that fails on purpose. Modes:\n");
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    fprintf(to, "  %-20s %s\n", modes[i].name, modes[i].help);
  fprintf(to, "Options: concurrency=N delay=MS size=BYTES bytes=BYTES "
              "byte_us=US stats=PATH touch=PATH child=1 ignore_term=1 "
              "mark=WORD note=TEXT\n");
}

static long number_option(const char *key, const char *value) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || end == value || *end || v < 0) {
    fprintf(stderr, "misbehave: %s=%s: not a number\n", key, value);
    exit(2);
  }
  return v;
}

static void parse_options(int argc, char **argv) {
  P.opt = (options){.concurrency = 1,
                    .big_size = 65u * 1024u * 1024u,
                    .flood_bytes = 50u * 1000u * 1000u,
                    .byte_us = 1000,
                    .flags = P.mode->flags};
  for (int i = 2; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "misbehave: %s: options are KEY=VALUE\n", argv[i]);
      exit(2);
    }
    /* argv stays as it is: it is what /proc/PID/cmdline shows, where the
     * tests look for the mark. */
    char k[32];
    snprintf(k, sizeof k, "%.*s", (int)(eq - argv[i]), argv[i]);
    const char *v = eq + 1;
    if (!strcmp(k, "concurrency"))
      P.opt.concurrency = (int)number_option(k, v);
    else if (!strcmp(k, "delay"))
      P.opt.delay_ms = number_option(k, v);
    else if (!strcmp(k, "size"))
      P.opt.big_size = (size_t)number_option(k, v);
    else if (!strcmp(k, "bytes"))
      P.opt.flood_bytes = (size_t)number_option(k, v);
    else if (!strcmp(k, "byte_us"))
      P.opt.byte_us = number_option(k, v);
    else if (!strcmp(k, "stats"))
      P.opt.stats_path = v;
    else if (!strcmp(k, "touch"))
      P.opt.touch_path = v;
    else if (!strcmp(k, "child") && number_option(k, v))
      P.opt.flags |= MODE_LEAVE_CHILD;
    else if (!strcmp(k, "ignore_term") && number_option(k, v))
      P.opt.flags |= MODE_IGNORE_TERM;
    else if (strcmp(k, "mark") && strcmp(k, "note") && strcmp(k, "child") &&
             strcmp(k, "ignore_term")) {
      fprintf(stderr, "misbehave: unknown option %s\n", k);
      exit(2);
    }
  }
  if (P.opt.concurrency < 1)
    P.opt.concurrency = 1;
}

static void leave_child(void) {
  pid_t pid = fork();
  if (pid < 0) {
    perror("misbehave: fork");
    exit(1);
  }
  if (pid > 0)
    return;
  /* The child keeps stdin and stdout, as a shell script's `sleep 1000 &`
   * would: the host sees no EOF on our stdout until it is gone, and it
   * stays in our process group, where the host has to find it. */
  sleep(1000);
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (!strcmp(argv[1], modes[i].name))
      P.mode = &modes[i];
  if (!P.mode) {
    fprintf(stderr, "misbehave: unknown mode %s\n", argv[1]);
    usage(stderr);
    return 2;
  }
  parse_options(argc, argv);
  if (isatty(0)) {
    fprintf(stderr, "misbehave: a provider for tether; run it through "
                    "`tether run --provider-exe misbehave`\n");
    return 1;
  }
  /* A host that closes our stdout makes write() fail with EPIPE, which
   * write_all reports, instead of killing us silently. */
  signal(SIGPIPE, SIG_IGN);
  if (P.opt.flags & MODE_IGNORE_TERM)
    signal(SIGTERM, SIG_IGN);
  if (P.opt.flags & MODE_LEAVE_CHILD)
    leave_child();
  tether_buf_init(&P.in);
  serve();
  write_stats();
  while (P.npending > 0) {
    tether_json_unref(P.pending[0].result);
    drop_pending(0);
  }
  free(P.pending);
  tether_buf_free(&P.in);
  return P.status;
}
