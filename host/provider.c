/*
 * provider.c: the host's side of one provider process (see provider.h).
 *
 * One struct per process holds everything: the libuv handles (freed only
 * in their last close callback), the frame reader for stdout, the stderr
 * line splitter and its tail, and the requests. A request lives on exactly
 * one list at a time: the queue (not yet sent), in flight (sent, also in
 * the id hash), or the pool of spare structs, which keeps the steady state
 * of a busy provider free of allocations on our side.
 *
 * Every way a provider can end funnels into finalize(): it runs once the
 * process is reaped and both output pipes are drained (or given up on
 * after a bounded wait), and fails whatever is still pending through the
 * same reply callbacks that carry answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "framing.h"
#include "json_internal.h"
#include "provider.h"
#include "rpc.h"
#include "tether/protocol.h"
#include "util.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

#define ID_BUCKETS 256      /* hash of in-flight ids; chains stay short */
#define STDERR_LINE_MAX 4096 /* longer stderr lines are split */
#define TAIL_LINE_MAX 500   /* bytes of a line kept for reports */
#define QUOTE_MAX 200       /* bytes of offending output quoted */
#define MAX_CONCURRENCY (1u << 20)
#define REQUEST_BUF_KEEP (64u * 1024u) /* bytes a pooled request keeps */
#define PROVIDER_PIPE_SIZE (1 << 20)   /* asked for the provider's stdout */

extern char **environ;

enum request_state {
  REQ_IDLE,     /* in the pool, or being answered */
  REQ_QUEUED,   /* waiting to be sent */
  REQ_INFLIGHT, /* sent, waiting for the answer */
  REQ_ABANDONED /* timed out and failed; a late answer is swallowed */
};

struct request {
  struct request *next, *prev; /* queue, in-flight list or pool */
  struct request *hnext;       /* id hash chain while sent */
  tt_provider *p;
  int64_t id;
  enum request_state state;
  bool internal; /* initialize and shutdown: outside the concurrency limit */
  bool writing;  /* a uv_write of `out` has not called back yet */
  bool finished; /* answered while writing: back to the pool on write cb */
  char method[32];
  char what[128];
  tt_reply_cb *cb;
  void *user;
  uint64_t timeout_ms;
  uint64_t deadline; /* loop time; 0 when none */
  unsigned long long sent_ns;
  tether_buf out; /* the framed message; its capacity is reused */
  uv_write_t wreq;
};

struct request_list {
  struct request *head, *tail;
  size_t n;
};

/* A message without an owning request (notifications, answers to the
 * provider) that could not be written at once: it owns a copy of its bytes
 * until the write callback. */
struct write_copy {
  uv_write_t wreq;
  tt_provider *p;
  char data[];
};

enum stop_stage {
  STAGE_NONE,
  STAGE_GRACE, /* waiting for a voluntary exit; SIGTERM next */
  STAGE_TERM,  /* SIGTERM sent; SIGKILL next */
  STAGE_KILL,  /* SIGKILL sent; giving up on the exit next */
  STAGE_DRAIN  /* exited; giving up on pipes a stray child holds open next */
};

struct tt_provider {
  uv_loop_t *loop;
  char *name;
  char *executable;
  char *path;
  char **args;
  char **env_extra;
  char *cwd;
  tt_framing framing;
  uint64_t start_timeout_ms, stop_grace_ms, kill_grace_ms;
  tt_ready_cb *on_ready;
  tt_dead_cb *on_dead;
  tt_progress_cb *on_progress;
  tt_log_cb *on_log;
  void *user;

  tt_provider_state state;
  uv_process_t process;
  uv_pipe_t in, out, err;
  uv_timer_t request_timer, stop_timer, defer_timer;
  int open_handles;
  bool process_inited;
  bool spawned, exited, exit_known;
  bool stdout_done, stderr_done;
  bool stdin_closed, stdin_handle_closed, out_closed, err_closed;
  bool handles_closing;
  bool stop_requested, signalled, ready_reported;
  bool finalized, freed;
  int pending_writes;
  int pid;
  int64_t exit_status;
  int term_signal;
  enum stop_stage stage;
  char *fatal;        /* the first fatal error; pending requests quote it */
  char *cut_short;    /* stdout bytes at EOF that never became a message */
  char *death_reason; /* set by finalize, for requests submitted after */
  bool death_paren;
  char exit_desc[80];

  tt_frame_reader reader;
  /* The large message arriving on stdout, validated as it comes (see
   * drain_messages), or NULL. */
  tt_json_stream *stream;
  tether_buf errline; /* a stderr line still waiting for its '\n' */
  tether_buf errout;  /* prefixed lines for our stderr, one write per read */
  char *tail[TT_PROVIDER_STDERR_TAIL];
  unsigned tail_next, tail_count;

  int64_t next_id;
  uint64_t concurrency;
  size_t inflight_user;
  tether_json *info;
  tether_json *types;
  struct request_list queue, inflight, pool;
  struct request *buckets[ID_BUCKETS];
  uint64_t timer_due; /* when request_timer fires; 0 when idle */
  size_t deadlines;   /* requests in flight with a deadline */
  tether_buf scratch;

  tt_provider *all_next, *all_prev;
  char ebuf[8192];
};

/* Every provider of this process that has not been destroyed, for
 * tt_provider_kill_all_now. */
static tt_provider *all_providers;

static void finalize(tt_provider *p);
static void maybe_finalize(tt_provider *p);
static void fatal_stop(tt_provider *p, char *msg);
static void send_request(tt_provider *p, struct request *r);
static void pump(tt_provider *p);
static void close_stdin(tt_provider *p);
static void stop_reading(tt_provider *p);

/* ---- Small helpers ---- */

const char *tt_provider_state_desc(tt_provider_state s) {
  switch (s) {
  case TT_PROVIDER_SPAWNED:
    return "spawned";
  case TT_PROVIDER_INITIALIZING:
    return "initializing";
  case TT_PROVIDER_READY:
    return "ready";
  case TT_PROVIDER_STOPPING:
    return "stopping";
  case TT_PROVIDER_DEAD:
    return "dead";
  }
  return "unknown";
}

const char *tt_signal_name(int sig) {
  static const struct {
    int sig;
    const char *name;
  } names[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
               {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
               {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
               {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
               {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
               {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].sig == sig)
      return names[i].name;
  return NULL;
}

static char *vformat(const char *fmt, va_list ap) TETHER_PRINTF(1, 0);
static char *vformat(const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0)
    return tt_strdup(fmt);
  char *s = tt_malloc((size_t)n + 1);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

static char *format(const char *fmt, ...) TETHER_PRINTF(1, 2);
static char *format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* Appends bytes a peer sent, quoted for a one-line message: control
 * characters escaped, cut short after QUOTE_MAX bytes (never inside a UTF-8
 * sequence) with the full length noted. */
static void quote_bytes(tether_buf *out, const char *s, size_t len) {
  size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
  if (n < len)
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
      n--;
  tether_buf_append_char(out, '\'');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      tether_buf_append_str(out, "\\n");
    else if (c == '\r')
      tether_buf_append_str(out, "\\r");
    else if (c == '\t')
      tether_buf_append_str(out, "\\t");
    else if (c < 0x20 || c == 0x7f)
      tether_buf_printf(out, "\\x%02x", c);
    else
      tether_buf_append_char(out, (char)c);
  }
  tether_buf_append_char(out, '\'');
  if (n < len)
    tether_buf_printf(out, " (first %zu of %zu bytes)", n, len);
}

/* Builds "provider 'NAME' <what>: '<quoted bytes>'". */
static char *quoted_message(tt_provider *p, const char *what, const char *s,
                            size_t len) {
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_printf(&b, "provider '%s' %s: ", p->name, what);
  quote_bytes(&b, s, len);
  return tether_buf_steal(&b, NULL);
}

static void format_duration(char *out, size_t outlen, uint64_t ms) {
  if (ms % 1000 == 0)
    snprintf(out, outlen, "%" PRIu64 " s", ms / 1000);
  else
    snprintf(out, outlen, "%.3g s", (double)ms / 1000.0);
}

static void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; /* Our own stderr is gone; nothing better to do. */
    }
    data += n;
    len -= (size_t)n;
  }
}

static void host_notice(tt_provider *p, const char *fmt, ...) TETHER_PRINTF(2, 3);
static void host_notice(tt_provider *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = vformat(fmt, ap);
  va_end(ap);
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_printf(&b, "tether: provider '%s' %s\n", p->name, msg);
  write_all(2, b.data, b.len);
  tether_buf_free(&b);
  free(msg);
}

/* A member of obj, or NULL when obj is NULL, not an object or lacks it. */
static const tether_json *member(const tether_json *obj, const char *key) {
  return obj && tether_json_is_object(obj) ? tether_json_object_get(obj, key)
                                           : NULL;
}

static bool is_string(const tether_json *v) {
  return v && tether_json_is_string(v);
}

/* ---- Request lists and the id hash ---- */

static void list_push(struct request_list *l, struct request *r) {
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
  l->n++;
}

static void list_remove(struct request_list *l, struct request *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->next = r->prev = NULL;
  l->n--;
}

static struct request *list_pop(struct request_list *l) {
  struct request *r = l->head;
  if (r)
    list_remove(l, r);
  return r;
}

static struct request **bucket_of(tt_provider *p, int64_t id) {
  return &p->buckets[(uint64_t)id % ID_BUCKETS];
}

static void hash_insert(tt_provider *p, struct request *r) {
  struct request **b = bucket_of(p, r->id);
  r->hnext = *b;
  *b = r;
}

static struct request *hash_find(tt_provider *p, int64_t id) {
  for (struct request *r = *bucket_of(p, id); r; r = r->hnext)
    if (r->id == id)
      return r;
  return NULL;
}

static void hash_remove(tt_provider *p, struct request *r) {
  for (struct request **link = bucket_of(p, r->id); *link;
       link = &(*link)->hnext) {
    if (*link == r) {
      *link = r->hnext;
      r->hnext = NULL;
      return;
    }
  }
}

static struct request *request_new(tt_provider *p) {
  struct request *r = list_pop(&p->pool);
  if (!r) {
    r = tt_calloc(1, sizeof *r);
    tether_buf_init(&r->out);
    r->p = p;
  }
  r->state = REQ_IDLE;
  r->internal = r->writing = r->finished = false;
  r->deadline = 0;
  r->sent_ns = 0;
  r->out.len = 0;
  return r;
}

static void request_recycle(tt_provider *p, struct request *r) {
  /* A spare struct keeps its buffer for the next request, but not one a
   * huge request left behind. */
  if (r->out.cap > REQUEST_BUF_KEEP)
    tether_buf_free(&r->out);
  r->state = REQ_IDLE;
  r->cb = NULL;
  r->user = NULL;
  r->finished = false;
  list_push(&p->pool, r);
}

/* A request with a deadline is no longer in flight. When none is left,
 * the timer stops: an idle armed timer would make every wait for the
 * provider's answer a timed one, which costs the kernel a high-resolution
 * timer per round trip. */
static void deadline_gone(tt_provider *p) {
  if (--p->deadlines == 0 && p->timer_due) {
    uv_timer_stop(&p->request_timer);
    p->timer_due = 0;
  }
}

/* Takes r off whatever list it is on, ready to be answered. */
static void request_unlink(tt_provider *p, struct request *r) {
  switch (r->state) {
  case REQ_QUEUED:
    list_remove(&p->queue, r);
    break;
  case REQ_INFLIGHT:
    if (!r->internal)
      p->inflight_user--;
    if (r->deadline)
      deadline_gone(p);
    list_remove(&p->inflight, r);
    hash_remove(p, r);
    break;
  case REQ_ABANDONED:
    list_remove(&p->inflight, r);
    hash_remove(p, r);
    break;
  case REQ_IDLE:
    break;
  }
  r->state = REQ_IDLE;
}

/* Hands a reply to r's callback and returns r to the pool (or marks it to
 * go there once its write has called back: the buffer must outlive the
 * write). r must already be unlinked. */
static void deliver(tt_provider *p, struct request *r, tt_reply *rep) {
  rep->id = r->id;
  rep->provider = p->name;
  rep->method = r->method;
  rep->what = r->what;
  rep->sent = r->sent_ns != 0;
  rep->latency_ns = r->sent_ns ? tt_now_ns() - r->sent_ns : 0;
  tt_reply_cb *cb = r->cb;
  void *user = r->user;
  r->cb = NULL;
  if (cb)
    cb(p, rep, user);
  if (r->writing)
    r->finished = true;
  else
    request_recycle(p, r);
}

/* ---- Stderr, logs and the tail ---- */

static void tail_push(tt_provider *p, const char *prefix, const char *line,
                      size_t len) {
  if (len > TAIL_LINE_MAX)
    len = TAIL_LINE_MAX;
  size_t plen = prefix ? strlen(prefix) : 0;
  char *copy = tt_malloc(plen + len + 1);
  if (plen)
    memcpy(copy, prefix, plen);
  memcpy(copy + plen, line, len);
  copy[plen + len] = '\0';
  free(p->tail[p->tail_next]);
  p->tail[p->tail_next] = copy;
  p->tail_next = (p->tail_next + 1) % TT_PROVIDER_STDERR_TAIL;
  if (p->tail_count < TT_PROVIDER_STDERR_TAIL)
    p->tail_count++;
}

void tt_provider_stderr_tail(const tt_provider *p, tether_buf *out) {
  unsigned start = (p->tail_next + TT_PROVIDER_STDERR_TAIL - p->tail_count) %
                   TT_PROVIDER_STDERR_TAIL;
  for (unsigned i = 0; i < p->tail_count; i++) {
    tether_buf_append_str(out, p->tail[(start + i) % TT_PROVIDER_STDERR_TAIL]);
    tether_buf_append_char(out, '\n');
  }
}

static void flush_errout(tt_provider *p) {
  if (p->errout.len) {
    write_all(2, p->errout.data, p->errout.len);
    p->errout.len = 0;
  }
}

/* Appends "[name] " + text to errout, one prefix per line of text. */
static void prefix_lines(tt_provider *p, const char *level, const char *s,
                         size_t len) {
  do {
    const char *nl = memchr(s, '\n', len);
    size_t n = nl ? (size_t)(nl - s) : len;
    tether_buf_printf(&p->errout, "[%s] ", p->name);
    if (level)
      tether_buf_printf(&p->errout, "%s: ", level);
    tether_buf_append(&p->errout, s, n);
    tether_buf_append_char(&p->errout, '\n');
    if (!nl)
      break;
    s = nl + 1;
    len -= n + 1;
  } while (len > 0);
}

static void stderr_line(tt_provider *p, const char *line, size_t len) {
  if (len > 0 && line[len - 1] == '\r')
    len--;
  tail_push(p, NULL, line, len);
  if (p->on_log)
    p->on_log(p, NULL, line, len, p->user);
  else
    prefix_lines(p, NULL, line, len);
}

static void stderr_consume(tt_provider *p, const char *s, size_t n) {
  while (n > 0) {
    const char *nl = memchr(s, '\n', n);
    size_t take = nl ? (size_t)(nl - s) : n;
    size_t room = STDERR_LINE_MAX - p->errline.len;
    if (take > room) {
      /* A line this long is cut into pieces rather than held without
       * bound. */
      tether_buf_append(&p->errline, s, room);
      stderr_line(p, p->errline.data, p->errline.len);
      p->errline.len = 0;
      s += room;
      n -= room;
      continue;
    }
    if (!nl) {
      tether_buf_append(&p->errline, s, take);
      return;
    }
    if (p->errline.len) {
      tether_buf_append(&p->errline, s, take);
      stderr_line(p, p->errline.data, p->errline.len);
      p->errline.len = 0;
    } else {
      stderr_line(p, s, take);
    }
    s += take + 1;
    n -= take + 1;
  }
}

static void stderr_finish(tt_provider *p) {
  if (p->stderr_done)
    return;
  p->stderr_done = true;
  uv_read_stop((uv_stream_t *)&p->err);
  if (p->errline.len) {
    stderr_line(p, p->errline.data, p->errline.len);
    p->errline.len = 0;
  }
  flush_errout(p);
}

static void on_stderr_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tt_provider *p = h->data;
  buf->base = p->ebuf;
  buf->len = sizeof p->ebuf;
}

static void on_stderr_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tt_provider *p = s->data;
  if (nread > 0) {
    stderr_consume(p, buf->base, (size_t)nread);
    flush_errout(p);
    return;
  }
  if (nread == 0)
    return;
  stderr_finish(p);
  maybe_finalize(p);
}

static void emit_log(tt_provider *p, const char *level, const char *msg,
                     size_t len) {
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%.30s: ", level);
  tail_push(p, prefix, msg, len);
  if (p->on_log) {
    p->on_log(p, level, msg, len, p->user);
    return;
  }
  prefix_lines(p, level, msg, len);
  flush_errout(p);
}

/* ---- Writing ---- */

static void on_stdin_closed(uv_handle_t *h);

static void close_stdin_handle(tt_provider *p) {
  if (p->stdin_handle_closed)
    return;
  p->stdin_handle_closed = true;
  uv_close((uv_handle_t *)&p->in, on_stdin_closed);
}

/* No more writes: the provider sees EOF once what is queued has gone. */
static void close_stdin(tt_provider *p) {
  if (p->stdin_closed)
    return;
  p->stdin_closed = true;
  if (p->pending_writes == 0)
    close_stdin_handle(p);
}

/* The provider no longer reads its stdin. It is most likely exiting;
 * give it the grace period to do so with its own status. */
static void expect_exit(tt_provider *p);

static void write_failed(tt_provider *p) {
  close_stdin(p);
  expect_exit(p);
}

static void after_write(tt_provider *p, int status) {
  p->pending_writes--;
  if (status < 0 && status != UV_ECANCELED)
    write_failed(p);
  if (p->stdin_closed && p->pending_writes == 0)
    close_stdin_handle(p);
}

static void on_request_written(uv_write_t *w, int status) {
  struct request *r = w->data;
  tt_provider *p = r->p;
  r->writing = false;
  if (r->finished)
    request_recycle(p, r);
  after_write(p, status);
}

static void on_copy_written(uv_write_t *w, int status) {
  struct write_copy *c = w->data;
  tt_provider *p = c->p;
  free(c);
  after_write(p, status);
}

/* Writes bytes to the provider's stdin: at once when the pipe takes them
 * (one write(2), no callback), else through uv_write with the bytes kept
 * alive until its callback: in owner->out when there is an owner, else in
 * a copy. */
static void write_bytes(tt_provider *p, char *data, size_t len,
                        struct request *owner) {
  if (p->stdin_closed || !p->spawned)
    return;
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&p->in, &b, 1);
  if (n >= 0 && (size_t)n == len)
    return;
  if (n < 0 && n != UV_EAGAIN) {
    write_failed(p);
    return;
  }
  size_t off = n > 0 ? (size_t)n : 0;
  uv_write_t *w;
  if (owner) {
    b = uv_buf_init(data + off, (unsigned)(len - off));
    w = &owner->wreq;
    w->data = owner;
  } else {
    struct write_copy *c = tt_malloc(sizeof *c + (len - off));
    memcpy(c->data, data + off, len - off);
    c->p = p;
    b = uv_buf_init(c->data, (unsigned)(len - off));
    w = &c->wreq;
    w->data = c;
  }
  int rc = uv_write(w, (uv_stream_t *)&p->in, &b, 1,
                    owner ? on_request_written : on_copy_written);
  if (rc < 0) {
    if (!owner)
      free(w->data);
    write_failed(p);
    return;
  }
  if (owner)
    owner->writing = true;
  p->pending_writes++;
}

/* Turns the JSON text in msg into the framed bytes, in place. */
static void frame_in_place(tt_provider *p, tether_buf *msg) {
  if (p->framing != TT_FRAMING_CONTENT_LENGTH) {
    tether_buf_append_char(msg, '\n');
    return;
  }
  p->scratch.len = 0;
  tt_frame_write(TT_FRAMING_CONTENT_LENGTH, &p->scratch, msg->data, msg->len);
  tether_buf tmp = *msg;
  *msg = p->scratch;
  p->scratch = tmp;
}

static void send_value(tt_provider *p, tether_json *msg) {
  if (p->stdin_closed || !p->spawned) {
    tether_json_unref(msg);
    return;
  }
  tether_buf b;
  tether_buf_init(&b);
  tether_json_dump(msg, &b);
  tether_json_unref(msg);
  frame_in_place(p, &b);
  write_bytes(p, b.data, b.len, NULL);
  tether_buf_free(&b);
}

static void send_notification(tt_provider *p, const char *method,
                              tether_json *params) {
  send_value(p, tt_rpc_notification(method, params));
}

static void send_cancel(tt_provider *p, int64_t id) {
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "id", tether_json_int(id));
  send_notification(p, "$/cancelRequest", params);
}

/* ---- Timeouts ---- */

static void on_request_timer(uv_timer_t *t);
static tether_json *failure_data(tt_provider *p);

static void arm_request_timer(tt_provider *p, uint64_t deadline) {
  if (p->timer_due && p->timer_due <= deadline)
    return;
  uint64_t now = uv_now(p->loop);
  p->timer_due = deadline;
  uv_timer_start(&p->request_timer, on_request_timer,
                 deadline > now ? deadline - now : 0, 0);
}

static void time_out(tt_provider *p, struct request *r) {
  char dur[32];
  format_duration(dur, sizeof dur, r->timeout_ms);
  r->deadline = 0;
  p->deadlines--;
  send_cancel(p, r->id);
  char *msg = r->internal
                  ? format("provider '%s' timed out starting: %s got no answer "
                           "within %s; stopping it as hung",
                           p->name, r->what, dur)
                  : format("provider '%s' timed out: %s got no answer within "
                           "%s; stopping it as hung",
                           p->name, r->what, dur);
  /* The late answer, if any, is swallowed: the request stays known. */
  if (!r->internal)
    p->inflight_user--;
  r->state = REQ_ABANDONED;
  fatal_stop(p, format("provider '%s' was stopped as hung: %s timed out "
                       "after %s",
                       p->name, r->what, dur));
  tether_json *data = failure_data(p);
  tt_reply rep = {.kind = TT_REPLY_FAILED, .code = TETHER_ERR_FAILED,
                  .message = msg, .data = data, .id = r->id,
                  .provider = p->name, .method = r->method, .what = r->what,
                  .sent = true, .latency_ns = tt_now_ns() - r->sent_ns};
  tt_reply_cb *cb = r->cb;
  void *user = r->user;
  r->cb = NULL;
  if (cb)
    cb(p, &rep, user);
  tether_json_unref(data);
  free(msg);
}

static void on_request_timer(uv_timer_t *t) {
  tt_provider *p = t->data;
  p->timer_due = 0;
  for (;;) {
    uint64_t now = uv_now(p->loop);
    struct request *expired = NULL;
    uint64_t next = 0;
    for (struct request *r = p->inflight.head; r; r = r->next) {
      if (r->state != REQ_INFLIGHT || !r->deadline)
        continue;
      if (r->deadline <= now) {
        expired = r;
        break;
      }
      if (!next || r->deadline < next)
        next = r->deadline;
    }
    if (!expired) {
      if (next)
        arm_request_timer(p, next);
      return;
    }
    time_out(p, expired);
    if (p->freed || p->finalized)
      return;
  }
}

/* ---- Stopping ---- */

static void signal_group(tt_provider *p, int sig) {
  if (!p->spawned || p->exited)
    return;
  /* The provider leads its own process group (setsid at spawn): signal
   * all of it, so children it started go too. */
  if (kill(-p->pid, sig) != 0 && errno == ESRCH)
    kill(p->pid, sig);
  p->signalled = true;
}

static void on_stop_timer(uv_timer_t *t);

static void start_stage(tt_provider *p, enum stop_stage stage, uint64_t ms) {
  p->stage = stage;
  uv_timer_start(&p->stop_timer, on_stop_timer, ms, 0);
}

static void on_stop_timer(uv_timer_t *t) {
  tt_provider *p = t->data;
  char dur[32];
  switch (p->stage) {
  case STAGE_NONE:
    return;
  case STAGE_GRACE:
    format_duration(dur, sizeof dur, p->stop_grace_ms);
    host_notice(p, "did not exit within %s; sending SIGTERM to its process "
                   "group", dur);
    signal_group(p, SIGTERM);
    start_stage(p, STAGE_TERM, p->kill_grace_ms);
    return;
  case STAGE_TERM:
    format_duration(dur, sizeof dur, p->kill_grace_ms);
    host_notice(p, "did not exit within %s of SIGTERM; sending SIGKILL to "
                   "its process group", dur);
    signal_group(p, SIGKILL);
    start_stage(p, STAGE_KILL, p->kill_grace_ms);
    return;
  case STAGE_KILL:
    /* SIGKILL cannot be caught; a process that survives it is stuck in
     * the kernel. Stop waiting rather than hang. */
    host_notice(p, "(pid %d) survived SIGKILL; giving up on it", p->pid);
    p->stage = STAGE_NONE;
    p->exited = true;
    stop_reading(p);
    maybe_finalize(p);
    return;
  case STAGE_DRAIN:
    /* The process is gone but something it started outside its process
     * group still holds the pipes open. */
    p->stage = STAGE_NONE;
    stop_reading(p);
    maybe_finalize(p);
    return;
  }
}

static void expect_exit(tt_provider *p) {
  close_stdin(p);
  if (p->exited || p->finalized)
    return;
  if (p->state != TT_PROVIDER_DEAD)
    p->state = TT_PROVIDER_STOPPING;
  if (p->stage == STAGE_NONE)
    start_stage(p, STAGE_GRACE, p->stop_grace_ms);
}

static void terminate(tt_provider *p) {
  if (p->finalized)
    return;
  p->state = TT_PROVIDER_STOPPING;
  close_stdin(p);
  if (p->spawned && !p->exited &&
      (p->stage == STAGE_NONE || p->stage == STAGE_GRACE)) {
    signal_group(p, SIGTERM);
    start_stage(p, STAGE_TERM, p->kill_grace_ms);
  }
}

/* A protocol violation or a hang: the channel cannot be trusted any more.
 * msg (taken) becomes the reason every pending request fails with. */
static void fatal_stop(tt_provider *p, char *msg) {
  if (p->fatal)
    free(msg);
  else
    p->fatal = msg;
  terminate(p);
}

static void on_shutdown_reply(tt_provider *p, const tt_reply *rep, void *u) {
  if (rep->kind == TT_REPLY_FAILED)
    return;
  send_notification(p, "exit", NULL);
  close_stdin(p);
}

void tt_provider_stop(tt_provider *p) {
  if (p->freed || p->finalized || p->stop_requested)
    return;
  p->stop_requested = true;
  p->state = TT_PROVIDER_STOPPING;
  if (!p->spawned || p->exited)
    return;
  if (p->info && !p->stdin_closed) {
    struct request *r = request_new(p);
    r->id = p->next_id++;
    r->internal = true;
    r->cb = on_shutdown_reply;
    snprintf(r->method, sizeof r->method, "shutdown");
    snprintf(r->what, sizeof r->what, "shutdown");
    tether_buf_printf(&r->out,
                      "{\"jsonrpc\":\"2.0\",\"id\":%" PRId64
                      ",\"method\":\"shutdown\"}",
                      r->id);
    frame_in_place(p, &r->out);
    send_request(p, r);
  } else {
    close_stdin(p);
  }
  if (p->stage == STAGE_NONE)
    start_stage(p, STAGE_GRACE, p->stop_grace_ms);
}

void tt_provider_terminate(tt_provider *p, const char *why) {
  if (p->freed || p->finalized)
    return;
  if (why && !p->fatal)
    p->fatal = format("provider '%s' was terminated: %s", p->name, why);
  else
    p->stop_requested = true;
  terminate(p);
}

void tt_provider_kill_now(tt_provider *p) {
  if (p->finalized || !p->spawned || p->exited)
    return;
  p->stop_requested = true;
  p->state = TT_PROVIDER_STOPPING;
  signal_group(p, SIGKILL);
  close_stdin(p);
  if (p->stage != STAGE_KILL && p->stage != STAGE_DRAIN)
    start_stage(p, STAGE_KILL, p->kill_grace_ms);
}

void tt_provider_kill_all_now(void) {
  for (tt_provider *p = all_providers; p; p = p->all_next)
    tt_provider_kill_now(p);
}

/* ---- Reading stdout ---- */

static void handle_message(tt_provider *p, const char *text, size_t len);

static void on_initialize_reply(tt_provider *p, const tt_reply *rep, void *u);

static void handle_response(tt_provider *p, tt_msg *m, const char *text,
                            size_t len) {
  int64_t id;
  if (m->kind == TT_MSG_ERROR && (!m->id || tether_json_is_null(m->id))) {
    char what[120];
    snprintf(what, sizeof what,
             "could not read what tether sent and answered error %d",
             m->error_code);
    fatal_stop(p, quoted_message(p, what, text, len));
    return;
  }
  struct request *r = NULL;
  if (m->id && tether_json_get_int(m->id, &id))
    r = hash_find(p, id);
  if (!r) {
    char idtext[64], what[120];
    tt_rpc_id_describe(m->id, idtext, sizeof idtext);
    snprintf(what, sizeof what, "sent a response with unknown id %s", idtext);
    fatal_stop(p, quoted_message(p, what, text, len));
    return;
  }
  if (r->state == REQ_ABANDONED) {
    request_unlink(p, r);
    if (r->writing)
      r->finished = true;
    else
      request_recycle(p, r);
    return;
  }
  request_unlink(p, r);
  tt_reply rep = {0};
  if (m->kind == TT_MSG_RESPONSE) {
    rep.kind = TT_REPLY_RESULT;
    rep.result = m->result;
  } else {
    rep.kind = TT_REPLY_ERROR;
    rep.code = m->error_code;
    rep.message = m->error_message ? m->error_message : "";
    rep.data = m->error_data;
  }
  deliver(p, r, &rep);
  /* A slot under the concurrency limit just opened. */
  if (!p->freed)
    pump(p);
}

static void handle_notification(tt_provider *p, tt_msg *m) {
  const tether_json *params = m->params;
  if (strcmp(m->method, "log") == 0) {
    const tether_json *lv = member(params, "level");
    const tether_json *msg = member(params, "message");
    const char *level = is_string(lv) ? tether_json_string_value(lv) : "info";
    if (is_string(msg)) {
      emit_log(p, level, tether_json_string_value(msg),
               tether_json_string_length(msg));
    } else {
      char *s = params ? tether_json_dumps(params, NULL) : tt_strdup("");
      emit_log(p, level, s, strlen(s));
      free(s);
    }
    return;
  }
  if (strcmp(m->method, "progress") == 0) {
    const tether_json *idv = member(params, "id");
    const tether_json *msg = member(params, "message");
    const tether_json *fr = member(params, "fraction");
    int64_t id = 0;
    double fraction = -1;
    void *req_user = NULL;
    if (idv && tether_json_get_int(idv, &id)) {
      struct request *r = hash_find(p, id);
      if (r && r->state == REQ_INFLIGHT)
        req_user = r->user;
    }
    if (fr && !tether_json_get_double(fr, &fraction))
      fraction = -1;
    if (p->on_progress)
      p->on_progress(p, id, req_user,
                     is_string(msg) ? tether_json_string_value(msg) : "",
                     fraction, p->user);
    return;
  }
  /* Other notifications are not for us; JSON-RPC says never to answer
   * one, so they are dropped. */
}

/* Nearly every message a provider sends is an answer of one shape, byte
 * for byte: {"jsonrpc":"2.0","id":N,"result":VALUE}. Such a message is a
 * valid response by construction (exactly those three members, each of
 * the right kind) once VALUE parses as one JSON text, so the general
 * classification, the dearest step of the hot path, can be skipped. Any
 * other spelling, an id that is not pending, or a VALUE that does not
 * parse goes the general way, which reports it.
 *
 * Returns the request such a message answers, with *at the offset of
 * VALUE, or NULL when the message is not of that shape or answers no
 * request in flight. */
static inline struct request *
plain_result_request(tt_provider *p, const char *text, size_t len, size_t *at) {
  static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
  static const char mid[] = ",\"result\":";
  const size_t hlen = sizeof head - 1, mlen = sizeof mid - 1;
  if (len < hlen + 1 + mlen + 2 || text[len - 1] != '}' ||
      memcmp(text, head, hlen) != 0)
    return NULL;
  size_t i = hlen;
  int64_t id = 0;
  while (i < len && i - hlen < 18 && text[i] >= '0' && text[i] <= '9')
    id = id * 10 + (text[i++] - '0');
  /* VALUE needs at least one byte between mid and the closing brace. */
  if (i == hlen || (text[hlen] == '0' && i - hlen > 1) ||
      i + mlen + 1 >= len || memcmp(text + i, mid, mlen) != 0)
    return NULL;
  struct request *r = hash_find(p, id);
  if (!r || r->state != REQ_INFLIGHT)
    return NULL;
  *at = i + mlen;
  return r;
}

/* Answers request r with result, which the call consumes. */
static void deliver_result(tt_provider *p, struct request *r,
                           tether_json *result) {
  request_unlink(p, r);
  tt_reply rep = {.kind = TT_REPLY_RESULT, .result = result};
  deliver(p, r, &rep);
  tether_json_unref(result);
  if (!p->freed)
    pump(p);
}

static bool handle_plain_result(tt_provider *p, const char *text, size_t len) {
  size_t i;
  struct request *r = plain_result_request(p, text, len, &i);
  if (!r)
    return false;
  tether_json *result = tether_json_parse(text + i, len - 1 - i, NULL);
  if (!result)
    return false;
  deliver_result(p, r, result);
  return true;
}

static void handle_value(tt_provider *p, tether_json *v, const char *text,
                         size_t len);

static void handle_message(tt_provider *p, const char *text, size_t len) {
  if (handle_plain_result(p, text, len))
    return;
  tether_json_error jerr;
  tether_json *v = tether_json_parse(text, len, &jerr);
  if (!v) {
    fatal_stop(p, quoted_message(p, "wrote non-protocol output on stdout",
                                 text, len));
    return;
  }
  handle_value(p, v, text, len);
}

/* Messages from this size on are parsed where the frame reader read them
 * (tt_frame_reader_take, tt_json_parse_member_in_place) instead of being
 * copied into new memory, which for a state of tens of megabytes costs
 * page faults on top of the copying. Smaller ones keep the path tuned for
 * the round trip of every request (a small answer shares one allocation
 * with its value, json_internal.h): for them a copy is cheap, and taking
 * the reader's buffer would only have it allocate another. */
#define IN_PLACE_MIN (1u << 20)

/* handle_message for a large message, which is parsed in the reader's
 * buffer and dies there: what the error reports quote of it is kept
 * before. The outcome is the same: a plain answer is delivered as soon as
 * the whole message is found valid, anything else goes the general way
 * from its parsed value. */
static void handle_large_message(tt_provider *p, const char *text, size_t len,
                                 tt_json_stream *stream) {
  /* quote_bytes reads one byte past what it quotes of a longer text. */
  char quote[QUOTE_MAX + 1];
  size_t qlen = len < sizeof quote ? len : sizeof quote;
  memcpy(quote, text, qlen);
  size_t value_at = 0;
  struct request *r = plain_result_request(p, text, len, &value_at);
  size_t at;
  char *block = tt_frame_reader_take(&p->reader, &at);
  if (!block) {
    /* Only a message next has just returned can be taken. */
    tt_json_stream_free(stream);
    handle_message(p, text, len);
    return;
  }
  /* What the stream validated while the message arrived is not walked
   * again: the same value, or the same error, as parsing it whole. */
  bool member = false;
  tether_json *v = tt_json_stream_finish(stream, block, at, len, value_at,
                                         r ? &member : NULL, NULL);
  if (!v) {
    fatal_stop(p, quoted_message(p, "wrote non-protocol output on stdout",
                                 quote, len));
    return;
  }
  if (member)
    deliver_result(p, r, v);
  else
    handle_value(p, v, quote, len);
}

/* The part of handle_message after parsing: v (consumed) is the message,
 * of which text, len is what error reports quote. */
static void handle_value(tt_provider *p, tether_json *v, const char *text,
                         size_t len) {
  if (tether_json_is_array(v)) {
    tether_json_unref(v);
    fatal_stop(p, quoted_message(p, "sent a batch, which tether never asks for",
                                 text, len));
    return;
  }
  tt_msg m;
  tt_msg_classify(v, &m);
  switch (m.kind) {
  case TT_MSG_RESPONSE:
  case TT_MSG_ERROR:
    handle_response(p, &m, text, len);
    break;
  case TT_MSG_NOTIFICATION:
    handle_notification(p, &m);
    break;
  case TT_MSG_REQUEST: {
    char *msg = format("tether offers no method '%s' to providers", m.method);
    send_value(p, tt_rpc_error(tether_json_ref(m.id),
                               TETHER_ERR_METHOD_NOT_FOUND, msg, NULL));
    free(msg);
    break;
  }
  case TT_MSG_INVALID: {
    char what[220];
    snprintf(what, sizeof what, "sent an invalid JSON-RPC message (%s)",
             m.invalid_reason);
    fatal_stop(p, quoted_message(p, what, text, len));
    break;
  }
  }
  tt_msg_free(&m);
}

static bool all_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return false;
  return true;
}

/* A message from this size on is validated while the rest of it is still
 * arriving (tt_json_stream): for a state of tens of megabytes the parse
 * then ends soon after its last byte instead of starting there. */
#define STREAM_MIN IN_PLACE_MIN

static void drain_messages(tt_provider *p) {
  for (;;) {
    /* After a fatal error nothing more the provider says is believed; the
     * pipe is still read so the provider never blocks on it. */
    if (p->fatal || p->freed) {
      tt_frame_reader_free(&p->reader);
      tt_frame_reader_init(&p->reader, p->framing, SIZE_MAX);
      tt_json_stream_free(p->stream);
      p->stream = NULL;
      return;
    }
    const char *msg;
    size_t len;
    tt_frame_status st = tt_frame_reader_next(&p->reader, &msg, &len);
    tt_json_stream *stream = p->stream;
    switch (st) {
    case TT_FRAME_MESSAGE:
      /* The stream, if any, was fed this message: the one in progress. */
      p->stream = NULL;
      if (len >= IN_PLACE_MIN) {
        handle_large_message(p, msg, len, stream);
      } else {
        tt_json_stream_free(stream);
        handle_message(p, msg, len);
      }
      continue;
    case TT_FRAME_NEED_MORE: {
      const char *part;
      size_t have = tt_frame_reader_partial(&p->reader, &part);
      if (have >= STREAM_MIN) {
        if (!p->stream)
          p->stream = tt_json_stream_new();
        tt_json_stream_feed(p->stream, part, have);
      }
      return;
    }
    case TT_FRAME_TOO_LARGE:
    case TT_FRAME_BAD_HEADER:
      /* The reader's error quotes the offending bytes itself. */
      fatal_stop(p, format(st == TT_FRAME_TOO_LARGE
                               ? "provider '%s' wrote too much on stdout: %s"
                               : "provider '%s' wrote non-protocol output on "
                                 "stdout: %s",
                           p->name, p->reader.error));
      continue;
    }
  }
}

static void stdout_finish(tt_provider *p) {
  if (p->stdout_done)
    return;
  p->stdout_done = true;
  uv_read_stop((uv_stream_t *)&p->out);
  if (p->fatal || p->freed)
    return;
  /* Bytes after the last complete message: a final line without its
   * newline is still a message; anything else was cut short when the
   * provider died, and the death is the better explanation. */
  const char *data;
  size_t n = tt_frame_reader_pending(&p->reader, &data);
  if (n == 0 || all_blank(data, n))
    return;
  tether_json *v = NULL;
  if (p->framing != TT_FRAMING_CONTENT_LENGTH)
    v = tether_json_parse(data, n, NULL);
  if (v) {
    tether_json_unref(v);
    char *copy = tt_strndup(data, n);
    handle_message(p, copy, n);
    free(copy);
  } else {
    tether_buf b;
    tether_buf_init(&b);
    quote_bytes(&b, data, n);
    p->cut_short = tether_buf_steal(&b, NULL);
  }
}

/* stdout is read straight into the frame reader's buffer, with room for
 * at least READ_ROOM bytes per read, and for BIG_READ_ROOM while a large
 * message (a state of tens of megabytes) is coming: a few reads then
 * take what the provider wrote meanwhile, instead of one read and one
 * wakeup per 64 KiB. */
#define READ_ROOM (64u * 1024u)
#define BIG_READ_ROOM (1u << 20)

static void on_stdout_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tt_provider *p = h->data;
  const char *pending;
  size_t min = tt_frame_reader_pending(&p->reader, &pending) >= READ_ROOM
                   ? BIG_READ_ROOM
                   : READ_ROOM;
  char *space;
  size_t avail;
  tt_frame_reader_space(&p->reader, min, &space, &avail);
  buf->base = space;
  buf->len = avail;
}

static void on_stdout_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tt_provider *p = s->data;
  if (nread > 0) {
    /* After a fatal error what was read is left uncommitted: dropped. */
    if (p->fatal || p->freed)
      return;
    tt_frame_reader_commit(&p->reader, (size_t)nread);
    drain_messages(p);
    return;
  }
  if (nread == 0)
    return;
  stdout_finish(p);
  expect_exit(p);
  maybe_finalize(p);
}

/* Pipes that will not reach EOF by themselves (a give-up path): stop
 * waiting for them. */
static void stop_reading(tt_provider *p) {
  stdout_finish(p);
  stderr_finish(p);
}

/* ---- Sending requests ---- */

static void send_request(tt_provider *p, struct request *r) {
  r->state = REQ_INFLIGHT;
  list_push(&p->inflight, r);
  hash_insert(p, r);
  if (!r->internal)
    p->inflight_user++;
  r->sent_ns = tt_now_ns();
  if (r->timeout_ms) {
    r->deadline = uv_now(p->loop) + r->timeout_ms;
    p->deadlines++;
    arm_request_timer(p, r->deadline);
  }
  write_bytes(p, r->out.data, r->out.len, r);
}

static void pump(tt_provider *p) {
  while (p->state == TT_PROVIDER_READY && p->queue.head &&
         p->inflight_user < p->concurrency) {
    struct request *r = list_pop(&p->queue);
    send_request(p, r);
  }
}

static void on_defer_timer(uv_timer_t *t);

static int64_t submit(tt_provider *p, struct request *r) {
  r->state = REQ_QUEUED;
  list_push(&p->queue, r);
  if (p->finalized)
    uv_timer_start(&p->defer_timer, on_defer_timer, 0, 0);
  else
    pump(p);
  return r->id;
}

/* Copies s to dst at offset at, cut to fit cap with the NUL; returns the
 * new length. */
static size_t copy_cut(char *dst, size_t cap, size_t at, const char *s) {
  size_t n = strlen(s);
  if (n > cap - 1 - at)
    n = cap - 1 - at;
  memcpy(dst + at, s, n);
  dst[at + n] = '\0';
  return at + n;
}

/* Appends a non-negative id in decimal: the hot path's only number, done
 * without printf's machinery. */
static void append_id(tether_buf *b, int64_t id) {
  char digits[24];
  size_t n = 0;
  uint64_t v = (uint64_t)id;
  do {
    digits[sizeof digits - ++n] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  tether_buf_append(b, digits + sizeof digits - n, n);
}

/* Fills the request's id, names and message text (unframed JSON). */
static struct request *prepare(tt_provider *p, const char *method,
                               const char *type, uint64_t timeout_ms,
                               tt_reply_cb *cb, void *user) {
  struct request *r = request_new(p);
  r->id = p->next_id++;
  r->cb = cb;
  r->user = user;
  r->timeout_ms = timeout_ms;
  size_t n = copy_cut(r->method, sizeof r->method, 0, method);
  n = copy_cut(r->what, sizeof r->what, 0, method);
  if (type) {
    n = copy_cut(r->what, sizeof r->what, n, " of type ");
    copy_cut(r->what, sizeof r->what, n, type);
  }
  static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
  tether_buf_append(&r->out, head, sizeof head - 1);
  append_id(&r->out, r->id);
  tether_buf_append_str(&r->out, ",\"method\":");
  tether_json_dump_string(method, strlen(method), &r->out);
  tether_buf_append_str(&r->out, ",\"params\":");
  return r;
}

static const char *type_of_params(const tether_json *params) {
  const tether_json *t = member(params, "type");
  if (!t)
    t = member(member(params, "resource"), "type");
  return is_string(t) ? tether_json_string_value(t) : NULL;
}

int64_t tt_provider_request(tt_provider *p, const char *method,
                            tether_json *params, uint64_t timeout_ms,
                            tt_reply_cb *cb, void *user) {
  if (!params)
    params = tether_json_object();
  if (p->freed) {
    tether_json_unref(params);
    return 0;
  }
  struct request *r =
      prepare(p, method, type_of_params(params), timeout_ms, cb, user);
  tether_json_dump(params, &r->out);
  tether_json_unref(params);
  tether_buf_append_char(&r->out, '}');
  frame_in_place(p, &r->out);
  return submit(p, r);
}

int64_t tt_provider_request_text(tt_provider *p, const char *method,
                                 const char *params_json, size_t len,
                                 const char *type, uint64_t timeout_ms,
                                 tt_reply_cb *cb, void *user) {
  if (p->freed)
    return 0;
  struct request *r = prepare(p, method, type, timeout_ms, cb, user);
  if (len)
    tether_buf_append(&r->out, params_json, len);
  else
    tether_buf_append_str(&r->out, "{}");
  tether_buf_append_char(&r->out, '}');
  frame_in_place(p, &r->out);
  return submit(p, r);
}

bool tt_provider_cancel(tt_provider *p, int64_t id) {
  for (struct request *r = p->queue.head; r; r = r->next) {
    if (r->id != id)
      continue;
    request_unlink(p, r);
    char *msg = format("provider '%s': %s was cancelled before it was sent",
                       p->name, r->what);
    tt_reply rep = {.kind = TT_REPLY_FAILED, .code = TETHER_ERR_CANCELLED,
                    .message = msg};
    deliver(p, r, &rep);
    free(msg);
    return true;
  }
  struct request *r = hash_find(p, id);
  if (!r || r->state != REQ_INFLIGHT)
    return false;
  send_cancel(p, id);
  return true;
}

/* ---- initialize ---- */

static void report_ready(tt_provider *p, const tt_reply *failure) {
  if (p->ready_reported)
    return;
  p->ready_reported = true;
  if (!p->freed && p->on_ready)
    p->on_ready(p, failure, p->user);
}

static const char *check_initialize_result(const tether_json *res,
                                           uint64_t *concurrency) {
  int64_t version;
  if (!tether_json_is_object(res))
    return "the result is not an object";
  const tether_json *v = member(res, "protocolVersion");
  if (!v || !tether_json_get_int(v, &version))
    return "protocolVersion is missing or not an integer";
  if (version != TETHER_PROTOCOL_VERSION)
    return "protocolVersion is not 1, the version tether asked for";
  const tether_json *c = member(res, "concurrency");
  *concurrency = 1;
  if (c && (!tether_json_get_uint(c, concurrency) || *concurrency == 0))
    return "concurrency is not a positive integer";
  const tether_json *t = member(res, "resourceTypes");
  if (t && !tether_json_is_object(t))
    return "resourceTypes is not an object";
  return NULL;
}

static void on_initialize_reply(tt_provider *p, const tt_reply *rep, void *u) {
  switch (rep->kind) {
  case TT_REPLY_RESULT: {
    uint64_t concurrency = 1;
    const char *err = check_initialize_result(rep->result, &concurrency);
    char *msg = NULL;
    if (err) {
      char *quoted = tether_json_dumps(rep->result, NULL);
      tether_buf b;
      tether_buf_init(&b);
      tether_buf_printf(&b, "provider '%s' answered initialize unusably (%s): ",
                        p->name, err);
      quote_bytes(&b, quoted, strlen(quoted));
      free(quoted);
      msg = tether_buf_steal(&b, NULL);
    } else if (p->stop_requested || p->fatal) {
      msg = format("provider '%s' was stopped before it was ready", p->name);
    }
    if (msg) {
      tt_reply failure = *rep;
      failure.kind = TT_REPLY_FAILED;
      failure.result = NULL;
      failure.code = TETHER_ERR_FAILED;
      failure.message = msg;
      if (err && !p->fatal)
        p->fatal = tt_strdup(msg);
      report_ready(p, &failure);
      free(msg);
      expect_exit(p);
      return;
    }
    p->info = tether_json_ref(rep->result);
    const tether_json *types = member(rep->result, "resourceTypes");
    p->types = types ? tether_json_ref(types) : tether_json_object();
    p->concurrency = concurrency > MAX_CONCURRENCY ? MAX_CONCURRENCY : concurrency;
    p->state = TT_PROVIDER_READY;
    report_ready(p, NULL);
    pump(p);
    return;
  }
  case TT_REPLY_ERROR:
    if (!p->fatal)
      p->fatal = format("provider '%s' refused initialize with error %d: %s",
                        p->name, rep->code, rep->message);
    report_ready(p, rep);
    /* A provider that was never initialized ends on EOF (SPEC section 4). */
    expect_exit(p);
    return;
  case TT_REPLY_FAILED:
    report_ready(p, rep);
    return;
  }
}

/* ---- Death ---- */

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig) {
  tt_provider *p = proc->data;
  p->exited = true;
  p->exit_known = true;
  p->exit_status = status;
  p->term_signal = sig;
  /* Whatever the provider started in its process group goes with it. */
  kill(-p->pid, SIGKILL);
  uv_timer_stop(&p->stop_timer);
  p->stage = STAGE_NONE;
  if (p->state != TT_PROVIDER_DEAD)
    p->state = TT_PROVIDER_STOPPING;
  close_stdin(p);
  if (!p->stdout_done || !p->stderr_done)
    start_stage(p, STAGE_DRAIN, TT_PROVIDER_DRAIN_MS);
  maybe_finalize(p);
}

static void describe_exit(tt_provider *p) {
  if (!p->spawned) {
    snprintf(p->exit_desc, sizeof p->exit_desc, "did not start");
  } else if (!p->exit_known) {
    snprintf(p->exit_desc, sizeof p->exit_desc, "did not exit after SIGKILL");
  } else if (p->term_signal) {
    const char *name = tt_signal_name(p->term_signal);
    if (name)
      snprintf(p->exit_desc, sizeof p->exit_desc,
               "was killed by signal %d (%s)", p->term_signal, name);
    else
      snprintf(p->exit_desc, sizeof p->exit_desc, "was killed by signal %d",
               p->term_signal);
  } else {
    snprintf(p->exit_desc, sizeof p->exit_desc, "exited with status %" PRId64,
             p->exit_status);
  }
}

static tether_json *failure_data(tt_provider *p) {
  tether_json *data = tether_json_object();
  data = tether_json_object_set(data, "provider", tether_json_string(p->name));
  tether_json *lines = tether_json_array();
  unsigned start = (p->tail_next + TT_PROVIDER_STDERR_TAIL - p->tail_count) %
                   TT_PROVIDER_STDERR_TAIL;
  for (unsigned i = 0; i < p->tail_count; i++)
    lines = tether_json_array_append(
        lines, tether_json_string(p->tail[(start + i) % TT_PROVIDER_STDERR_TAIL]));
  data = tether_json_object_set(data, "stderr", lines);
  if (p->exit_known) {
    if (p->term_signal) {
      const char *name = tt_signal_name(p->term_signal);
      data = tether_json_object_set(
          data, "signal",
          name ? tether_json_string(name) : tether_json_int(p->term_signal));
    } else {
      data = tether_json_object_set(data, "exitStatus",
                                    tether_json_int(p->exit_status));
    }
  }
  return data;
}

/* Fails every request on list l, each with "<reason> while handling X"
 * (or "before X was sent" for ones never sent). paren puts the request in
 * parentheses, for reasons that are sentences of their own. Requests
 * submitted by the callbacks meanwhile are left for the next round. */
static void fail_list(tt_provider *p, struct request_list *l,
                      const char *reason, bool paren, const tether_json *data) {
  struct request_list doomed = *l;
  l->head = l->tail = NULL;
  l->n = 0;
  tether_buf msg;
  tether_buf_init(&msg);
  struct request *r;
  while ((r = list_pop(&doomed))) {
    bool sent = r->state != REQ_QUEUED;
    if (r->state == REQ_INFLIGHT && !r->internal)
      p->inflight_user--;
    if (r->state == REQ_INFLIGHT && r->deadline)
      deadline_gone(p);
    if (sent)
      hash_remove(p, r);
    if (r->state == REQ_ABANDONED) {
      r->state = REQ_IDLE;
      if (r->writing)
        r->finished = true;
      else
        request_recycle(p, r);
      continue;
    }
    r->state = REQ_IDLE;
    msg.len = 0;
    if (!p->spawned)
      /* Nothing was ever running: the reason says it all. */
      tether_buf_append_str(&msg, reason);
    else if (sent)
      tether_buf_printf(&msg, paren ? "%s (while handling %s)"
                                    : "%s while handling %s",
                        reason, r->what);
    else
      tether_buf_printf(&msg, paren ? "%s (before %s was sent)"
                                    : "%s before %s was sent",
                        reason, r->what);
    if (sent && p->cut_short)
      tether_buf_printf(&msg, "; its last output was cut short: %s",
                        p->cut_short);
    tt_reply rep = {.kind = TT_REPLY_FAILED, .code = TETHER_ERR_FAILED,
                    .message = msg.data, .data = data};
    deliver(p, r, &rep);
  }
  tether_buf_free(&msg);
}

static void fail_all(tt_provider *p, const char *reason, bool paren) {
  tether_json *data = failure_data(p);
  fail_list(p, &p->inflight, reason, paren, data);
  fail_list(p, &p->queue, reason, paren, data);
  tether_json_unref(data);
}

static char *death_reason(tt_provider *p, bool *paren) {
  *paren = true;
  if (p->fatal)
    return tt_strdup(p->fatal);
  *paren = false;
  bool clean = !p->exit_known || (p->term_signal == 0 && p->exit_status == 0) ||
               (p->signalled &&
                (p->term_signal == SIGTERM || p->term_signal == SIGKILL));
  if (p->stop_requested && clean)
    return format("provider '%s' was stopped", p->name);
  return format("provider '%s' %s", p->name, p->exit_desc);
}

static void on_handle_closed(uv_handle_t *h);

static void close_handle(tt_provider *p, uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, on_handle_closed);
}

static void close_all_handles(tt_provider *p) {
  if (p->handles_closing)
    return;
  p->handles_closing = true;
  close_stdin_handle(p);
  if (!p->out_closed) {
    p->out_closed = true;
    close_handle(p, (uv_handle_t *)&p->out);
  }
  if (!p->err_closed) {
    p->err_closed = true;
    close_handle(p, (uv_handle_t *)&p->err);
  }
  close_handle(p, (uv_handle_t *)&p->request_timer);
  close_handle(p, (uv_handle_t *)&p->stop_timer);
  close_handle(p, (uv_handle_t *)&p->defer_timer);
  if (p->process_inited)
    close_handle(p, (uv_handle_t *)&p->process);
}

static void finalize(tt_provider *p) {
  p->finalized = true;
  p->state = TT_PROVIDER_DEAD;
  uv_timer_stop(&p->request_timer);
  uv_timer_stop(&p->stop_timer);
  p->timer_due = 0;
  p->stage = STAGE_NONE;
  /* The pipes are of no further use: let their descriptors go now rather
   * than when the owner frees the provider. */
  p->stdin_closed = true;
  close_stdin_handle(p);
  if (!p->out_closed) {
    p->out_closed = true;
    uv_close((uv_handle_t *)&p->out, on_handle_closed);
  }
  if (!p->err_closed) {
    p->err_closed = true;
    uv_close((uv_handle_t *)&p->err, on_handle_closed);
  }
  describe_exit(p);
  p->death_reason = death_reason(p, &p->death_paren);
  fail_all(p, p->death_reason, p->death_paren);
  if (!p->freed && p->on_dead)
    p->on_dead(p, p->user);
  if (p->freed)
    close_all_handles(p);
}

static void maybe_finalize(tt_provider *p) {
  if (p->finalized || !p->exited || !p->stdout_done || !p->stderr_done)
    return;
  finalize(p);
}

static void on_defer_timer(uv_timer_t *t) {
  tt_provider *p = t->data;
  if (!p->finalized) {
    maybe_finalize(p);
    return;
  }
  /* Requests submitted after the provider died. */
  tether_json *data = failure_data(p);
  fail_list(p, &p->queue, p->death_reason, p->death_paren, data);
  tether_json_unref(data);
}

/* ---- Handles and memory ---- */

static void destroy(tt_provider *p) {
  if (p->all_prev)
    p->all_prev->all_next = p->all_next;
  else
    all_providers = p->all_next;
  if (p->all_next)
    p->all_next->all_prev = p->all_prev;
  struct request_list *lists[] = {&p->queue, &p->inflight, &p->pool};
  for (size_t i = 0; i < 3; i++) {
    struct request *r;
    while ((r = list_pop(lists[i]))) {
      tether_buf_free(&r->out);
      free(r);
    }
  }
  for (unsigned i = 0; i < TT_PROVIDER_STDERR_TAIL; i++)
    free(p->tail[i]);
  for (char **a = p->args; a && *a; a++)
    free(*a);
  for (char **e = p->env_extra; e && *e; e++)
    free(*e);
  free(p->args);
  free(p->env_extra);
  free(p->name);
  free(p->executable);
  free(p->path);
  free(p->cwd);
  free(p->fatal);
  free(p->cut_short);
  free(p->death_reason);
  tether_json_unref(p->info);
  tether_json_unref(p->types);
  tt_frame_reader_free(&p->reader);
  tt_json_stream_free(p->stream);
  tether_buf_free(&p->errline);
  tether_buf_free(&p->errout);
  tether_buf_free(&p->scratch);
  free(p);
}

static void on_handle_closed(uv_handle_t *h) {
  tt_provider *p = h->data;
  if (--p->open_handles == 0 && p->handles_closing)
    destroy(p);
}

static void on_stdin_closed(uv_handle_t *h) { on_handle_closed(h); }

void tt_provider_free(tt_provider *p) {
  if (!p || p->freed)
    return;
  p->freed = true;
  p->on_ready = NULL;
  p->on_dead = NULL;
  p->on_progress = NULL;
  p->on_log = NULL;
  if (p->finalized) {
    close_all_handles(p);
    return;
  }
  char *reason = format("provider '%s' was closed", p->name);
  fail_all(p, reason, false);
  free(reason);
  if (p->spawned && !p->exited) {
    tt_provider_kill_now(p);
    return;
  }
  maybe_finalize(p);
}

/* ---- Finding and spawning ---- */

static bool is_executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
         access(path, X_OK) == 0;
}

char *tt_provider_find_executable(const char *name, tether_buf *err) {
  if (!name || !*name) {
    tether_buf_append_str(err, "no provider executable given");
    return NULL;
  }
  if (strchr(name, '/'))
    return tt_strdup(name);
  char self[4096];
  size_t size = sizeof self;
  if (uv_exepath(self, &size) == 0) {
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      char *candidate = format("%s/%s", self, name);
      if (is_executable_file(candidate))
        return candidate;
      free(candidate);
    }
  }
  const char *path = getenv("PATH");
  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *dir = path;;) {
    const char *colon = strchr(dir, ':');
    size_t dlen = colon ? (size_t)(colon - dir) : strlen(dir);
    char *candidate = dlen ? format("%.*s/%s", (int)dlen, dir, name)
                           : format("./%s", name);
    if (is_executable_file(candidate))
      return candidate;
    free(candidate);
    if (!colon)
      break;
    dir = colon + 1;
  }
  tether_buf_printf(err,
                    "executable '%s' not found next to tether (%s) or on PATH",
                    name, size < sizeof self ? self : "?");
  return NULL;
}

static char **copy_strv(const char *const *v) {
  size_t n = 0;
  while (v && v[n])
    n++;
  char **out = tt_calloc(n + 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = tt_strdup(v[i]);
  return out;
}

static bool env_key_in(const char *entry, char *const *list) {
  const char *eq = strchr(entry, '=');
  size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
  for (; list && *list; list++)
    if (strncmp(*list, entry, klen) == 0 && (*list)[klen] == '=')
      return true;
  return false;
}

/* Our environment, plus the extras, plus the two variables that tell a
 * provider it runs under a host (SPEC section 1). Entries point into
 * environ and extras; only the array is allocated. */
static char **build_env(char *const *extras) {
  static char provider_var[] = "TETHER_PROVIDER=1";
  static char protocol_var[] = "TETHER_PROTOCOL=1";
  char *ours[] = {provider_var, protocol_var, NULL};
  size_t n = 0, extra = 0;
  while (environ && environ[n])
    n++;
  while (extras && extras[extra])
    extra++;
  char **env = tt_calloc(n + extra + 3, sizeof *env);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!env_key_in(environ[i], ours) && !env_key_in(environ[i], extras))
      env[k++] = environ[i];
  for (size_t i = 0; i < extra; i++)
    if (!env_key_in(extras[i], ours))
      env[k++] = extras[i];
  env[k++] = provider_var;
  env[k++] = protocol_var;
  env[k] = NULL;
  return env;
}

int tt_provider_spawn_process(uv_loop_t *loop, uv_process_t *process,
                              const char *path, char *const *args,
                              char *const *env_extra, const char *cwd,
                              const int stdio_fds[3], uv_exit_cb exit_cb) {
  size_t nargs = 0;
  while (args && args[nargs])
    nargs++;
  char **argv = tt_calloc(nargs + 2, sizeof *argv);
  argv[0] = (char *)path;
  for (size_t i = 0; i < nargs; i++)
    argv[i + 1] = args[i];
  char **env = build_env(env_extra);

  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; i++) {
    stdio[i].flags = UV_INHERIT_FD;
    stdio[i].data.fd = stdio_fds[i];
  }
  uv_process_options_t opts = {0};
  opts.exit_cb = exit_cb;
  opts.file = path;
  opts.args = argv;
  opts.env = env;
  opts.cwd = cwd;
  /* DETACHED makes the child call setsid(): its own session and process
   * group, so a terminal's Ctrl-C reaches only us, and signals we send to
   * the group reach everything the provider started. */
  opts.flags = UV_PROCESS_DETACHED;
  opts.stdio_count = 3;
  opts.stdio = stdio;
  int rc = uv_spawn(loop, process, &opts);
  free(argv);
  free(env);
  return rc;
}

static void close_fd_pair(uv_file fds[2]) {
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

static void spawn_failed(tt_provider *p, char *msg) {
  p->fatal = msg;
  p->exited = p->stdout_done = p->stderr_done = true;
  p->stdin_closed = true;
  p->state = TT_PROVIDER_STOPPING;
  uv_timer_start(&p->defer_timer, on_defer_timer, 0, 0);
}

static void spawn_provider(tt_provider *p) {
  tether_buf err;
  tether_buf_init(&err);
  p->path = tt_provider_find_executable(p->executable, &err);
  if (!p->path) {
    spawn_failed(p, format("cannot start provider '%s': %s", p->name, err.data));
    tether_buf_free(&err);
    return;
  }
  tether_buf_free(&err);

  /* Our own pipes rather than libuv's socketpairs: real pipes are what a
   * provider expects on stdio, and they are the faster channel. Both ends
   * are close-on-exec, so a provider spawned meanwhile inherits none. */
  uv_file in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1}, err_fds[2] = {-1, -1};
  int rc = uv_pipe(in_fds, 0, UV_NONBLOCK_PIPE);
  if (!rc)
    rc = uv_pipe(out_fds, UV_NONBLOCK_PIPE, 0);
  if (!rc)
    rc = uv_pipe(err_fds, UV_NONBLOCK_PIPE, 0);
  if (rc) {
    close_fd_pair(in_fds);
    close_fd_pair(out_fds);
    close_fd_pair(err_fds);
    spawn_failed(p, format("cannot start provider '%s': cannot create pipes: %s",
                           p->name, uv_strerror(rc)));
    return;
  }
#ifdef F_SETPIPE_SZ
  /* A large answer (a state of tens of megabytes) crosses a default
   * 64 KiB pipe in hundreds of turns, each a wakeup of both processes
   * and a fight over the pipe's lock. A larger pipe takes it in a few.
   * The kernel caps the size for unprivileged processes; whatever it
   * grants is fine, and its pages are only used while data waits. */
  (void)fcntl(out_fds[0], F_SETPIPE_SZ, PROVIDER_PIPE_SIZE);
#endif

  p->process.data = p;
  p->process_inited = true;
  p->open_handles++;
  const int stdio_fds[3] = {in_fds[0], out_fds[1], err_fds[1]};
  rc = tt_provider_spawn_process(p->loop, &p->process, p->path, p->args,
                                 p->env_extra, p->cwd, stdio_fds,
                                 on_exit_cb);
  close(in_fds[0]);
  close(out_fds[1]);
  close(err_fds[1]);
  if (rc) {
    close(in_fds[1]);
    close(out_fds[0]);
    close(err_fds[0]);
    spawn_failed(p, format("cannot start provider '%s' (%s): %s", p->name,
                           p->path, uv_strerror(rc)));
    return;
  }
  p->spawned = true;
  p->pid = p->process.pid;

  int r1 = uv_pipe_open(&p->in, in_fds[1]);
  int r2 = uv_pipe_open(&p->out, out_fds[0]);
  int r3 = uv_pipe_open(&p->err, err_fds[0]);
  if (!r2)
    r2 = uv_read_start((uv_stream_t *)&p->out, on_stdout_alloc, on_stdout_read);
  if (!r3)
    r3 = uv_read_start((uv_stream_t *)&p->err, on_stderr_alloc, on_stderr_read);
  if (r1 || r2 || r3) {
    if (r1)
      close(in_fds[1]);
    if (r2)
      p->stdout_done = true;
    if (r3)
      p->stderr_done = true;
    fatal_stop(p, format("provider '%s': cannot set up its pipes: %s", p->name,
                         uv_strerror(r1 ? r1 : r2 ? r2 : r3)));
  }
}

static void ignore_sigpipe(void) {
  static bool done;
  if (done)
    return;
  done = true;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

tt_provider *tt_provider_start(uv_loop_t *loop, const tt_provider_config *cfg) {
  ignore_sigpipe();
  tt_provider *p = tt_calloc(1, sizeof *p);
  p->loop = loop;
  const char *exe = cfg->executable ? cfg->executable : "";
  p->executable = tt_strdup(exe);
  p->name = tt_strdup(cfg->name && *cfg->name ? cfg->name : base_name(exe));
  p->args = copy_strv(cfg->args);
  p->env_extra = copy_strv(cfg->env);
  p->cwd = cfg->cwd ? tt_strdup(cfg->cwd) : NULL;
  p->framing = cfg->framing == TT_FRAMING_CONTENT_LENGTH
                   ? TT_FRAMING_CONTENT_LENGTH
                   : TT_FRAMING_NDJSON;
  p->start_timeout_ms =
      cfg->start_timeout_ms ? cfg->start_timeout_ms : TT_PROVIDER_START_TIMEOUT_MS;
  p->stop_grace_ms = cfg->stop_grace_ms ? cfg->stop_grace_ms : TT_PROVIDER_STOP_GRACE_MS;
  p->kill_grace_ms = cfg->kill_grace_ms ? cfg->kill_grace_ms : TT_PROVIDER_KILL_GRACE_MS;
  p->on_ready = cfg->on_ready;
  p->on_dead = cfg->on_dead;
  p->on_progress = cfg->on_progress;
  p->on_log = cfg->on_log;
  p->user = cfg->user;
  p->state = TT_PROVIDER_SPAWNED;
  p->next_id = 1;
  p->concurrency = 1;
  tt_frame_reader_init(&p->reader, p->framing,
                       cfg->max_message ? cfg->max_message : TT_FRAME_DEFAULT_MAX);
  tether_buf_init(&p->errline);
  tether_buf_init(&p->errout);
  tether_buf_init(&p->scratch);

  uv_pipe_init(loop, &p->in, 0);
  uv_pipe_init(loop, &p->out, 0);
  uv_pipe_init(loop, &p->err, 0);
  uv_timer_init(loop, &p->request_timer);
  uv_timer_init(loop, &p->stop_timer);
  uv_timer_init(loop, &p->defer_timer);
  p->open_handles = 6;
  p->in.data = p->out.data = p->err.data = p;
  p->request_timer.data = p->stop_timer.data = p->defer_timer.data = p;

  p->all_next = all_providers;
  if (all_providers)
    all_providers->all_prev = p;
  all_providers = p;

  spawn_provider(p);

  /* The start timeout is initialize's own request timeout: initialize
   * goes out the moment the process exists. */
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "protocolVersion",
                                  tether_json_int(TETHER_PROTOCOL_VERSION));
  tether_json *host = tether_json_object();
  host = tether_json_object_set(host, "name", tether_json_string("tether"));
  host = tether_json_object_set(host, "version", tether_json_string(TETHER_VERSION));
  params = tether_json_object_set(params, "host", host);
  struct request *r = prepare(p, "initialize", NULL, p->start_timeout_ms,
                              on_initialize_reply, NULL);
  r->internal = true;
  tether_json_dump(params, &r->out);
  tether_json_unref(params);
  tether_buf_append_char(&r->out, '}');
  frame_in_place(p, &r->out);
  if (p->spawned && !p->fatal) {
    send_request(p, r);
    if (p->state == TT_PROVIDER_SPAWNED)
      p->state = TT_PROVIDER_INITIALIZING;
  } else {
    r->state = REQ_QUEUED;
    list_push(&p->queue, r);
  }
  return p;
}

/* ---- Accessors ---- */

tt_provider_state tt_provider_state_of(const tt_provider *p) { return p->state; }
const char *tt_provider_name(const tt_provider *p) { return p->name; }
int tt_provider_pid(const tt_provider *p) { return p->spawned ? p->pid : 0; }
uint64_t tt_provider_concurrency(const tt_provider *p) { return p->concurrency; }
const tether_json *tt_provider_resource_types(const tt_provider *p) {
  return p->types;
}
const tether_json *tt_provider_info(const tt_provider *p) { return p->info; }
size_t tt_provider_pending(const tt_provider *p) {
  size_t n = p->queue.n;
  for (struct request *r = p->inflight.head; r; r = r->next)
    if (r->state == REQ_INFLIGHT)
      n++;
  return n;
}
const char *tt_provider_exit_desc(const tt_provider *p) { return p->exit_desc; }

/* ---- Reports ---- */

void tt_reply_describe(const tt_reply *r, tether_buf *out) {
  switch (r->kind) {
  case TT_REPLY_RESULT:
    return;
  case TT_REPLY_ERROR: {
    const char *name = tether_error_name(r->code);
    tether_buf_printf(out, "provider '%s' answered %s with error %d", r->provider,
                      r->what ? r->what : "a request", r->code);
    if (name)
      tether_buf_printf(out, " (%s)", name);
    tether_buf_printf(out, ": %s\n", r->message ? r->message : "");
    if (r->data) {
      tether_buf_append_str(out, "  data: ");
      tether_json_dump(r->data, out);
      tether_buf_append_char(out, '\n');
    }
    return;
  }
  case TT_REPLY_FAILED: {
    tether_buf_printf(out, "%s\n", r->message ? r->message : "request failed");
    const tether_json *lines = member(r->data, "stderr");
    size_t n = lines && tether_json_is_array(lines) ? tether_json_array_size(lines)
                                                    : 0;
    if (n > 0) {
      tether_buf_printf(out, "recent stderr of provider '%s':\n", r->provider);
      for (size_t i = 0; i < n; i++) {
        const tether_json *l = tether_json_array_get(lines, i);
        tether_buf_append_str(out, "  ");
        if (is_string(l))
          tether_buf_append(out, tether_json_string_value(l),
                            tether_json_string_length(l));
        tether_buf_append_char(out, '\n');
      }
    }
    return;
  }
  }
}
