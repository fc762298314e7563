/*
 * provider.c: tether_provider_main. Sets the process up (the protocol
 * channel on private fds, stray output to stderr), then runs the main
 * loop: read, cut into messages, classify, and answer or dispatch, until
 * `exit`, EOF or a fatal protocol error (SPEC sections 1 to 4).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider_lib.h"
#include "util.h"

#define READ_CHUNK 65536

typedef struct loop {
  tt_frame_reader reader;
  bool eof;   /* stdin ended: answer what came, then end */
  bool stop;  /* exit, or a fatal protocol error: end now */
  bool fatal; /* the protocol broke: exit status 1 whatever came before */
} loop;

static void handle_value(loop *L, tether_json *v, tt_prov_batch *batch);

/* ---- Answers the library makes itself ---- */

static void library_error(tether_request *req, int code, tether_json *data,
                          const char *fmt, ...) TETHER_PRINTF(4, 5);

static void library_error(tether_request *req, int code, tether_json *data,
                          const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  tt_prov_deliver(req, tt_prov_error(code, message, data));
}

static void other_error(tt_prov_batch *batch, const tether_json *id, int code,
                        const char *message) {
  char *id_text = id ? tether_json_dumps(id, NULL) : NULL;
  tt_prov_answer_other(batch, id_text, tt_prov_error(code, message, NULL));
  free(id_text);
}

/* ---- Lifecycle ---- */

static tether_json *operations_of(const tether_resource_type *t) {
  tether_json *ops = tether_json_array();
  for (int i = 0; i < TT_PROV_OP_COUNT; i++)
    if (tt_prov_op_handler(t, (tt_prov_op)i))
      ops = tether_json_array_append(
          ops, tether_json_string(tt_prov_op_name((tt_prov_op)i)));
  return ops;
}

static tether_json *initialize_result(void) {
  const tether_provider_info *info = tt_prov.info;
  tether_json *types = tether_json_object();
  for (const tether_resource_type *t = info->types; t->name; t++) {
    tether_json *d = tether_json_object();
    d = tether_json_object_set(
        d, "description",
        tether_json_string(t->description ? t->description : ""));
    d = tether_json_object_set(d, "requireState",
                               tether_json_bool(t->require_state));
    d = tether_json_object_set(d, "stateProvider",
                               tether_json_bool(t->state_provider));
    d = tether_json_object_set(d, "operations", operations_of(t));
    types = tether_json_object_set(types, t->name, d);
  }
  tether_json *provider = tether_json_object();
  provider =
      tether_json_object_set(provider, "name", tether_json_string(info->name));
  provider = tether_json_object_set(provider, "version",
                                    tether_json_string(info->version));
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "protocolVersion",
                             tether_json_int(TETHER_PROTOCOL_VERSION));
  r = tether_json_object_set(r, "provider", provider);
  r = tether_json_object_set(
      r, "concurrency",
      tether_json_int(info->concurrency > 0 ? info->concurrency : 1));
  return tether_json_object_set(r, "resourceTypes", types);
}

static tether_json *supported_data(const char *path) {
  tether_json *supported = tether_json_array();
  supported = tether_json_array_append(
      supported, tether_json_int(TETHER_PROTOCOL_VERSION));
  tether_json *data = tether_json_object();
  if (path)
    data = tether_json_object_set(data, "path", tether_json_string(path));
  return tether_json_object_set(data, "supported", supported);
}

static void do_initialize(tether_request *req) {
  const tether_json *params = req->msg.params;
  const tether_json *version =
      tether_json_object_get(params, "protocolVersion");
  int64_t v;
  if (tt_prov.phase == TT_PROV_READY) {
    library_error(req, TETHER_ERR_INVALID_REQUEST, NULL,
                  "initialize was already received");
  } else if (!tether_json_is_object(params)) {
    library_error(req, TETHER_ERR_INVALID_PARAMS, supported_data(""),
                  "invalid params: initialize needs params as an object "
                  "with protocolVersion");
  } else if (!version) {
    library_error(req, TETHER_ERR_INVALID_PARAMS,
                  supported_data("/protocolVersion"),
                  "invalid params: missing /protocolVersion (this provider "
                  "speaks protocol version %d)",
                  TETHER_PROTOCOL_VERSION);
  } else if (!tether_json_get_int(version, &v) ||
             v != TETHER_PROTOCOL_VERSION) {
    char *shown = tether_json_dumps(version, NULL);
    library_error(req, TETHER_ERR_INVALID_PARAMS, supported_data(NULL),
                  "unsupported protocol version %.40s (this provider speaks "
                  "version %d)",
                  shown, TETHER_PROTOCOL_VERSION);
    free(shown);
  } else {
    tt_prov_deliver(req, tt_prov_result(initialize_result()));
    tt_prov.phase = TT_PROV_READY;
  }
}

/* Answers a shutdown that waited for the requests before it. */
static void maybe_answer_shutdown(void) {
  /* Only the main thread, which runs this, sets and clears
   * tt_prov.shutdown, so it can look without the lock; it runs after
   * every message and nearly always finds nothing to do. */
  if (!tt_prov.shutdown)
    return;
  tether_request *req = NULL;
  bool last = false;
  pthread_mutex_lock(&tt_prov.mu);
  if (tt_prov.shutdown && tt_prov.nunanswered == 1) {
    req = tt_prov.shutdown;
    tt_prov.shutdown = NULL;
    last = tt_prov_deliver_locked(req, tt_prov_result(tether_json_null()));
    /* The main thread's reference, kept while the shutdown waited. */
    last = tt_prov_request_unref_locked(req) || last;
  }
  pthread_mutex_unlock(&tt_prov.mu);
  if (last)
    tt_prov_request_free(req);
}

static void dispatch(tether_request *req) {
  tt_prov_problem p = {0};
  if (tt_prov_check_request(req, &p)) {
    tt_prov_deliver(req, tt_prov_error(p.code, p.message, p.data));
    tt_prov_request_release(req);
    return;
  }
  if (tt_prov.nthreads > 0) {
    tt_prov_enqueue(req);
    return;
  }
  tt_prov_run_handler(req);
}

/* Takes over the main thread's reference to req. */
static void handle_request(tether_request *req) {
  const char *method = req->msg.method;
  if (tt_prov.phase == TT_PROV_SHUTDOWN) {
    library_error(req, TETHER_ERR_INVALID_REQUEST, NULL,
                  "shutdown was received: no more requests");
  } else if (strcmp(method, "initialize") == 0) {
    do_initialize(req);
  } else if (tt_prov.phase == TT_PROV_WAITING) {
    library_error(req, TETHER_ERR_NOT_INITIALIZED, NULL,
                  "not initialized: the first request must be initialize");
  } else if (strcmp(method, "shutdown") == 0) {
    tt_prov.phase = TT_PROV_SHUTDOWN;
    pthread_mutex_lock(&tt_prov.mu);
    tt_prov.shutdown_received = true;
    tt_prov.shutdown = req;
    pthread_mutex_unlock(&tt_prov.mu);
    /* The answer waits until every request before it has one, so that a
     * host which sends exit on seeing it loses nothing. */
    maybe_answer_shutdown();
    return;
  } else if (tt_prov_op_from_method(method, &req->op)) {
    dispatch(req);
    return;
  } else if (strcmp(method, "exit") == 0 ||
             strcmp(method, "$/cancelRequest") == 0) {
    library_error(req, TETHER_ERR_METHOD_NOT_FOUND, NULL,
                  "%s is a notification: send it without an id", method);
  } else {
    library_error(req, TETHER_ERR_METHOD_NOT_FOUND, NULL,
                  "unknown method \"%.100s\"", method);
  }
  tt_prov_request_release(req);
}

static void handle_notification(loop *L, const tt_msg *m) {
  if (strcmp(m->method, "exit") == 0) {
    /* Nothing is written after exit, not even the rest of a batch. */
    pthread_mutex_lock(&tt_prov.mu);
    tt_prov.out_closed = true;
    pthread_mutex_unlock(&tt_prov.mu);
    L->stop = true;
    return;
  }
  if (strcmp(m->method, "$/cancelRequest") == 0) {
    const tether_json *id = tether_json_object_get(m->params, "id");
    if (!tt_rpc_id_valid(id) || tether_json_is_null(id)) {
      fprintf(stderr, "%s: ignoring $/cancelRequest without a valid id\n",
              tt_prov_name());
      return;
    }
    char *id_text = tether_json_dumps(id, NULL);
    tt_prov_cancel(id_text);
    free(id_text);
    return;
  }
  fprintf(stderr, "%s: ignoring notification \"%.100s\"\n", tt_prov_name(),
          m->method);
}

static void handle_batch(loop *L, tether_json *array) {
  size_t n = tether_json_array_size(array);
  if (n == 0) {
    tether_json_unref(array);
    other_error(NULL, NULL, TETHER_ERR_INVALID_REQUEST,
                "invalid request: an empty batch");
    return;
  }
  tt_prov_batch *b = tt_prov_batch_new(array);
  for (size_t i = 0; i < n && !L->stop; i++)
    handle_value(L, tether_json_ref(tether_json_array_get(array, i)), b);
  tt_prov_batch_done(b);
}

static void handle_value(loop *L, tether_json *v, tt_prov_batch *batch) {
  tt_msg m;
  tt_msg_classify(v, &m);
  switch (m.kind) {
  case TT_MSG_INVALID: {
    char message[200];
    snprintf(message, sizeof message, "invalid request: %s", m.invalid_reason);
    other_error(batch, m.id, m.invalid_code, message);
    break;
  }
  case TT_MSG_RESPONSE:
  case TT_MSG_ERROR: {
    char id[64];
    tt_rpc_id_describe(m.id, id, sizeof id);
    fprintf(stderr,
            "%s: ignoring a response (id %s): this provider sends no "
            "requests\n",
            tt_prov_name(), id);
    break;
  }
  case TT_MSG_NOTIFICATION:
    handle_notification(L, &m);
    break;
  case TT_MSG_REQUEST:
    handle_request(tt_prov_request_new(&m, batch));
    return;
  }
  tt_msg_free(&m);
}

static void handle_message(loop *L, const char *text, size_t len) {
  tether_json_error err;
  tether_json *v = tether_json_parse(text, len, &err);
  if (!v) {
    char message[300];
    snprintf(message, sizeof message, "parse error at byte %zu: %s", err.offset,
             err.message);
    other_error(NULL, NULL, TETHER_ERR_PARSE, message);
    return;
  }
  if (tether_json_is_array(v))
    handle_batch(L, v);
  else
    handle_value(L, v, NULL);
}

/* ---- The loop ---- */

static void framing_error(loop *L, tt_frame_status st) {
  pthread_mutex_lock(&tt_prov.mu);
  if (tt_prov.framing == TT_FRAMING_DETECT)
    tt_prov.framing = L->reader.framing == TT_FRAMING_DETECT
                          ? TT_FRAMING_NDJSON
                          : L->reader.framing;
  pthread_mutex_unlock(&tt_prov.mu);
  fprintf(stderr, "%s: %s\n", tt_prov_name(), L->reader.error);
  /* Past a broken header nothing can be found again, and past an oversized
   * message the host is not speaking the protocol: either way the
   * conversation is over once the host has been told. */
  other_error(NULL, NULL,
              st == TT_FRAME_TOO_LARGE ? TETHER_ERR_INVALID_REQUEST
                                       : TETHER_ERR_PARSE,
              L->reader.error);
  L->stop = true;
  L->fatal = true;
}

static void process_input(loop *L) {
  while (!L->stop) {
    const char *msg;
    size_t len;
    tt_frame_status st = tt_frame_reader_next(&L->reader, &msg, &len);
    switch (st) {
    case TT_FRAME_NEED_MORE:
      return;
    case TT_FRAME_TOO_LARGE:
    case TT_FRAME_BAD_HEADER:
      framing_error(L, st);
      return;
    case TT_FRAME_MESSAGE:
      if (tt_prov.framing == TT_FRAMING_DETECT) {
        pthread_mutex_lock(&tt_prov.mu);
        tt_prov.framing = L->reader.framing;
        pthread_mutex_unlock(&tt_prov.mu);
      }
      handle_message(L, msg, len);
      maybe_answer_shutdown();
      break;
    }
  }
}

static void read_input(loop *L, int in_fd, char *chunk) {
  ssize_t n = read(in_fd, chunk, READ_CHUNK);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    L->eof = true;
    pthread_mutex_lock(&tt_prov.mu);
    tt_prov.draining = true;
    pthread_mutex_unlock(&tt_prov.mu);
    const char *rest;
    size_t left = tt_frame_reader_pending(&L->reader, &rest);
    if (left > 0 && !L->reader.failed) {
      tether_buf q;
      tether_buf_init(&q);
      tt_frame_quote(&q, rest, left, 60);
      fprintf(stderr, "%s: stdin ended inside a message (%zu bytes: %s)\n",
              tt_prov_name(), left, q.data);
      tether_buf_free(&q);
      /* What came before is still answered, but the end was not clean. */
      L->fatal = true;
    }
    return;
  }
  tt_frame_reader_feed(&L->reader, chunk, (size_t)n);
  process_input(L);
}

static void drain_wake_pipe(void) {
  char sink[256];
  while (read(tt_prov.wake_rd, sink, sizeof sink) > 0)
    ;
}

static void run_loop(loop *L, int in_fd) {
  char *chunk = tt_malloc(READ_CHUNK);
  while (!L->stop) {
    maybe_answer_shutdown();
    pthread_mutex_lock(&tt_prov.mu);
    bool broken = tt_prov.out_broken;
    bool idle = tt_prov.nunanswered == 0;
    pthread_mutex_unlock(&tt_prov.mu);
    if (broken) {
      L->stop = true;
      L->fatal = true;
      break;
    }
    if (L->eof && idle)
      break;
    if (!L->eof && idle && tt_prov.nthreads == 0) {
      /* Without workers and with every request answered, no other
       * thread has an answer to send, so nothing but input can need the
       * loop: wait in read() itself and save a poll() per message. A
       * write failure on some other thread's notification is seen on the
       * next turn; the host that stopped reading ends stdin too. */
      read_input(L, in_fd, chunk);
      continue;
    }
    struct pollfd fds[2] = {{.fd = tt_prov.wake_rd, .events = POLLIN},
                            {.fd = in_fd, .events = POLLIN}};
    int rc = poll(fds, L->eof ? 1 : 2, -1);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0) {
      fprintf(stderr, "%s: poll: %s\n", tt_prov_name(), strerror(errno));
      L->stop = true;
      L->fatal = true;
      break;
    }
    if (fds[0].revents)
      drain_wake_pipe();
    if (!L->eof && fds[1].revents)
      read_input(L, in_fd, chunk);
  }
  free(chunk);
}

static void reset_state(const tether_provider_info *info, int out_fd,
                        int wake[2]) {
  pthread_mutex_lock(&tt_prov.mu);
  tt_prov.info = info;
  tt_prov.out_fd = out_fd;
  tt_prov.framing = TT_FRAMING_DETECT;
  tt_prov.out_closed = false;
  tt_prov.out_broken = false;
  tt_prov.phase = TT_PROV_WAITING;
  tt_prov.shutdown_received = false;
  tt_prov.shutdown = NULL;
  tt_prov.unanswered = NULL;
  tt_prov.nunanswered = 0;
  tt_prov.queue_head = tt_prov.queue_tail = NULL;
  tt_prov.wake_rd = wake[0];
  tt_prov.wake_wr = wake[1];
  tt_prov.draining = false;
  tt_prov.running = true;
  pthread_mutex_unlock(&tt_prov.mu);
}

int tt_prov_run(const tether_provider_info *info, int in_fd, int out_fd) {
  tt_prov.info = info;
  char why[300];
  if (tt_prov_check_info(info, why, sizeof why)) {
    fprintf(stderr, "%s: invalid provider definition: %s\n", tt_prov_name(),
            why);
    return 1;
  }
  int wake[2];
  if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    fprintf(stderr, "%s: pipe: %s\n", tt_prov_name(), strerror(errno));
    return 1;
  }
  reset_state(info, out_fd, wake);
  if (info->threads > 0)
    tt_prov_workers_start(info->threads);

  loop L = {0};
  tt_frame_reader_init(&L.reader, TT_FRAMING_DETECT, info->max_message_size);
  run_loop(&L, in_fd);

  if (L.stop) {
    /* exit means now: what is still running is cancelled and its answers
     * go nowhere; handlers already running are waited for, queued ones
     * never start. */
    tt_prov_abandon_all();
    pthread_mutex_lock(&tt_prov.mu);
    tether_request *parked = tt_prov.shutdown;
    tt_prov.shutdown = NULL;
    pthread_mutex_unlock(&tt_prov.mu);
    if (parked)
      tt_prov_request_release(parked);
  }
  tt_prov_workers_stop(L.stop);
  tt_frame_reader_free(&L.reader);
  tt_prov_request_cache_free();

  pthread_mutex_lock(&tt_prov.mu);
  /* As in LSP, exit without shutdown is an unclean end; EOF is how a
   * pipeline of requests ends, and everything in it was answered. */
  bool clean = !L.fatal && (!L.stop || tt_prov.shutdown_received);
  tt_prov.running = false;
  tt_prov.out_closed = true;
  tt_prov.out_fd = -1;
  tt_prov_output_free_locked();
  close(tt_prov.wake_rd);
  close(tt_prov.wake_wr);
  tt_prov.wake_rd = tt_prov.wake_wr = -1;
  pthread_mutex_unlock(&tt_prov.mu);
  return clean ? 0 : 1;
}

/* ---- The process ---- */

/* Moves the protocol channel to private descriptors: stdin becomes
 * /dev/null so that a child a handler starts cannot read the host's
 * messages, and stdout becomes stderr so that a stray printf lands in the
 * log instead of corrupting the protocol. */
static bool take_channel(int *in_fd, int *out_fd) {
  fflush(stdout);
  *in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
  *out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (*in_fd < 0 || *out_fd < 0) {
    fprintf(stderr, "%s: cannot take over stdin and stdout: %s\n",
            tt_prov_name(), strerror(errno));
    return false;
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    if (null_fd != STDIN_FILENO)
      close(null_fd);
  }
  if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    /* Without a stderr, stray output is better lost than on the wire. */
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (sink >= 0) {
      dup2(sink, STDOUT_FILENO);
      if (sink != STDOUT_FILENO)
        close(sink);
    }
  }
  return true;
}

int tether_provider_main(const tether_provider_info *info, int argc,
                         char **argv) {
  tt_prov.info = info;
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    printf("%s %s\n", tt_prov_name(), info->version ? info->version : "");
    return 0;
  }
  if (isatty(STDIN_FILENO)) {
    fprintf(stderr,
            "%s: this is a tether resource provider; it speaks JSON-RPC on "
            "stdin and stdout and is started by tether (try `tether run "
            "read --provider-exe %s --type TYPE`), not from a terminal\n",
            tt_prov_name(), argc > 0 && argv[0] ? argv[0] : "PROVIDER");
    return 1;
  }
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, NULL);
  int in_fd, out_fd;
  if (!take_channel(&in_fd, &out_fd))
    return 1;
  int status = tt_prov_run(info, in_fd, out_fd);
  close(in_fd);
  close(out_fd);
  return status;
}
