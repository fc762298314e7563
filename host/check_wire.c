/*
 * check_wire.c: one provider process driven byte by byte (see
 * check_wire.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "check_wire.h"
#include "provider.h"
#include "util.h"

/* Stderr lines kept for reports, and how much of each. */
#define TAIL_LINES 6
#define TAIL_LINE_MAX 300
/* After stdout ends, how long the process gets to exit before the event
 * says it closed stdout without exiting. */
#define DRAIN_MS 2000u
/* After SIGKILL, how long to wait for the process to be reaped. */
#define REAP_MS 5000u

struct tt_wire {
  uv_loop_t *loop;
  uv_process_t process;
  uv_pipe_t in, out, err;
  uv_timer_t timer;
  int open_handles;
  bool process_inited, in_open, stdin_closed, write_failed;
  bool spawned, exited, out_eof, err_eof, timed_out, broken;
  int pid;
  int pty_master; /* -1 unless stdin is a pseudo-terminal */
  int64_t exit_status;
  int term_signal;
  tt_framing send_framing;
  tt_frame_reader reader;
  char broken_why[300];
  char rbuf[65536];
  char ebuf[16384];
  tether_buf errline;
  char *tail[TAIL_LINES];
  size_t tail_next;
  size_t stderr_bytes;
  tt_wire_trace_cb *trace;
  void *trace_user;
  const volatile bool *abort;
  tt_wire *live_prev, *live_next; /* the wires not yet reaped */
};

/* The wires whose process may still run, for tt_wire_kill_all. */
static tt_wire *live_wires;

static void live_remove(tt_wire *w) {
  if (w->live_prev)
    w->live_prev->live_next = w->live_next;
  else if (live_wires == w)
    live_wires = w->live_next;
  if (w->live_next)
    w->live_next->live_prev = w->live_prev;
  w->live_prev = w->live_next = NULL;
}

void tt_wire_kill_all(void) {
  for (tt_wire *w = live_wires; w; w = w->live_next)
    if (w->spawned && !w->exited)
      kill(-w->pid, SIGKILL);
}

void tt_wire_event_clear(tt_wire_event *ev) {
  tether_json_unref(ev->json);
  free(ev->text);
  memset(ev, 0, sizeof *ev);
}

static void trace(tt_wire *w, char direction, const char *data, size_t len) {
  if (w->trace)
    w->trace(w->trace_user, w->pid, direction, data, len);
}

/* ---- Waiting ---- */

static void on_timer(uv_timer_t *t) {
  tt_wire *w = t->data;
  w->timed_out = true;
}

static bool aborted(const tt_wire *w) { return w->abort && *w->abort; }

static bool has_exited(const tt_wire *w) { return w->exited || !w->spawned; }

/* Runs the loop until the process has exited or timeout_ms have passed;
 * honor_abort false is for the waits that must finish even when the suite
 * was interrupted (reaping a killed process). */
static bool wait_exit(tt_wire *w, uint64_t timeout_ms, bool honor_abort) {
  w->timed_out = false;
  uv_timer_start(&w->timer, on_timer, timeout_ms, 0);
  while (!has_exited(w) && !w->timed_out && !(honor_abort && aborted(w)))
    uv_run(w->loop, UV_RUN_ONCE);
  uv_timer_stop(&w->timer);
  return has_exited(w);
}

bool tt_wire_wait_exit(tt_wire *w, uint64_t timeout_ms) {
  return wait_exit(w, timeout_ms, true);
}

/* ---- Writing ---- */

struct write_req {
  uv_write_t req;
  tt_wire *w;
  size_t len;
  char data[];
};

static void on_written(uv_write_t *req, int status) {
  struct write_req *wr = (struct write_req *)req;
  /* A provider that closed its stdin (or exited) makes writes fail; the
   * checks see it as a provider that did not answer, and say so. */
  if (status < 0 && status != UV_ECANCELED)
    wr->w->write_failed = true;
  free(wr);
}

void tt_wire_send_raw(tt_wire *w, const char *data, size_t len) {
  if (!w->in_open || w->stdin_closed || len == 0)
    return;
  struct write_req *wr = tt_malloc(sizeof *wr + len);
  wr->w = w;
  wr->len = len;
  memcpy(wr->data, data, len);
  uv_buf_t buf = uv_buf_init(wr->data, (unsigned)len);
  if (uv_write(&wr->req, (uv_stream_t *)&w->in, &buf, 1, on_written) != 0) {
    w->write_failed = true;
    free(wr);
  }
}

void tt_wire_send_text(tt_wire *w, const char *text, size_t len) {
  trace(w, '>', text, len);
  tether_buf out;
  tether_buf_init(&out);
  tt_frame_write(w->send_framing, &out, text, len);
  tt_wire_send_raw(w, out.data, out.len);
  tether_buf_free(&out);
}

void tt_wire_send(tt_wire *w, const tether_json *msg) {
  size_t len;
  char *text = tether_json_dumps(msg, &len);
  tt_wire_send_text(w, text, len);
  free(text);
}

static void on_handle_closed(uv_handle_t *h) {
  tt_wire *w = h->data;
  w->open_handles--;
}

void tt_wire_close_stdin(tt_wire *w) {
  if (w->stdin_closed)
    return;
  w->stdin_closed = true;
  if (w->in_open) {
    /* Closing the handle closes the pipe's write end: the provider reads
     * EOF once it has read what was written before. */
    uv_close((uv_handle_t *)&w->in, on_handle_closed);
    w->in_open = false;
  }
}

bool tt_wire_write_failed(const tt_wire *w) { return w->write_failed; }

/* ---- Reading ---- */

static void on_stdout_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tt_wire *w = h->data;
  *buf = uv_buf_init(w->rbuf, sizeof w->rbuf);
}

static void on_stdout_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tt_wire *w = s->data;
  if (nread > 0) {
    /* Once the stream cannot be framed any more, what follows is read
     * only so the provider never blocks on a full pipe. */
    if (!w->broken)
      tt_frame_reader_feed(&w->reader, buf->base, (size_t)nread);
    return;
  }
  if (nread < 0) {
    w->out_eof = true;
    uv_read_stop(s);
  }
}

static void stderr_line(tt_wire *w) {
  trace(w, '!', w->errline.data ? w->errline.data : "", w->errline.len);
  free(w->tail[w->tail_next]);
  w->tail[w->tail_next] =
      tt_strndup(w->errline.data ? w->errline.data : "", w->errline.len);
  w->tail_next = (w->tail_next + 1) % TAIL_LINES;
  w->errline.len = 0;
}

static void on_stderr_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  tt_wire *w = h->data;
  *buf = uv_buf_init(w->ebuf, sizeof w->ebuf);
}

static void on_stderr_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tt_wire *w = s->data;
  if (nread < 0) {
    if (w->errline.len)
      stderr_line(w);
    w->err_eof = true;
    uv_read_stop(s);
    return;
  }
  w->stderr_bytes += (size_t)nread;
  for (ssize_t i = 0; i < nread; i++) {
    char c = buf->base[i];
    if (c == '\n') {
      stderr_line(w);
    } else if (w->errline.len < TAIL_LINE_MAX) {
      /* A line longer than this is kept by its start: enough to know it. */
      tether_buf_append_char(&w->errline, c);
    }
  }
}

void tt_wire_stderr_tail(const tt_wire *w, tether_buf *out, size_t max) {
  tether_buf joined;
  tether_buf_init(&joined);
  for (size_t k = 0; k < TAIL_LINES; k++) {
    const char *line = w->tail[(w->tail_next + k) % TAIL_LINES];
    if (!line || !*line)
      continue;
    if (joined.len)
      tether_buf_append_str(&joined, " | ");
    tether_buf_append_str(&joined, line);
  }
  if (w->errline.len) {
    if (joined.len)
      tether_buf_append_str(&joined, " | ");
    tether_buf_append(&joined, w->errline.data, w->errline.len);
  }
  /* Most recent last, and the end is where the reason usually is: cut
   * from the front. */
  if (joined.len > max) {
    tether_buf_append_str(out, "...");
    tether_buf_append(out, joined.data + joined.len - max, max);
  } else if (joined.len) {
    tether_buf_append(out, joined.data, joined.len);
  }
  tether_buf_free(&joined);
}

size_t tt_wire_stderr_bytes(const tt_wire *w) { return w->stderr_bytes; }

/* Takes the next complete frame out of the reader into ev. */
static bool take_frame(tt_wire *w, tt_wire_event *ev) {
  if (w->broken) {
    ev->kind = TT_WIRE_BROKEN;
    snprintf(ev->why, sizeof ev->why, "%s", w->broken_why);
    return true;
  }
  const char *msg;
  size_t len;
  tt_frame_status st = tt_frame_reader_next(&w->reader, &msg, &len);
  switch (st) {
  case TT_FRAME_MESSAGE: {
    trace(w, '<', msg, len);
    ev->text = tt_strndup(msg, len);
    ev->len = len;
    tether_json_error jerr;
    ev->json = tether_json_parse(msg, len, &jerr);
    if (ev->json) {
      ev->kind = TT_WIRE_MESSAGE;
    } else {
      ev->kind = TT_WIRE_GARBAGE;
      snprintf(ev->why, sizeof ev->why, "%s", jerr.message);
    }
    return true;
  }
  case TT_FRAME_NEED_MORE:
    return false;
  case TT_FRAME_TOO_LARGE:
  case TT_FRAME_BAD_HEADER:
    w->broken = true;
    snprintf(w->broken_why, sizeof w->broken_why, "%s", w->reader.error);
    ev->kind = TT_WIRE_BROKEN;
    snprintf(ev->why, sizeof ev->why, "%s", w->broken_why);
    return true;
  }
  return false;
}

void tt_wire_exit_desc(const tt_wire *w, char *out, size_t outlen) {
  if (!w->spawned) {
    snprintf(out, outlen, "did not start");
  } else if (!w->exited) {
    snprintf(out, outlen, "is still running");
  } else if (w->term_signal) {
    const char *name = tt_signal_name(w->term_signal);
    snprintf(out, outlen, "was killed by signal %d%s%s%s", w->term_signal,
             name ? " (" : "", name ? name : "", name ? ")" : "");
  } else {
    snprintf(out, outlen, "exited with status %lld", (long long)w->exit_status);
  }
}

/* Stdout has ended: says how, after giving the process a moment to exit so
 * that its exit status can be part of the story. */
static void closed_event(tt_wire *w, tt_wire_event *ev) {
  wait_exit(w, DRAIN_MS, true);
  ev->kind = TT_WIRE_CLOSED;
  char desc[96];
  tt_wire_exit_desc(w, desc, sizeof desc);
  tether_buf why;
  tether_buf_init(&why);
  if (w->exited)
    tether_buf_append_str(&why, desc);
  else
    tether_buf_append_str(&why, "closed its stdout but is still running");
  const char *rest;
  size_t nrest = tt_frame_reader_pending(&w->reader, &rest);
  if (nrest) {
    tether_buf_append_str(&why, ", leaving an unfinished message on stdout: ");
    tt_frame_quote(&why, rest, nrest, 80);
  }
  snprintf(ev->why, sizeof ev->why, "%s", why.data);
  tether_buf_free(&why);
}

void tt_wire_next(tt_wire *w, uint64_t timeout_ms, tt_wire_event *ev) {
  memset(ev, 0, sizeof *ev);
  w->timed_out = false;
  uv_timer_start(&w->timer, on_timer, timeout_ms, 0);
  for (;;) {
    if (take_frame(w, ev))
      break;
    if (w->out_eof || !w->spawned) {
      uv_timer_stop(&w->timer);
      closed_event(w, ev);
      break;
    }
    if (w->timed_out || aborted(w)) {
      ev->kind = TT_WIRE_TIMEOUT;
      snprintf(ev->why, sizeof ev->why, "%s",
               aborted(w) ? "interrupted" : "timed out");
      break;
    }
    uv_run(w->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&w->timer);
}

/* ---- Process ---- */

static void on_exit_cb(uv_process_t *proc, int64_t status, int sig) {
  tt_wire *w = proc->data;
  w->exited = true;
  w->exit_status = status;
  w->term_signal = sig;
  /* Whatever the provider started in its process group goes with it, so a
   * child holding the pipes cannot keep stdout open. The leader is not
   * reaped until this callback returns, so the group id is still ours. */
  kill(-w->pid, SIGKILL);
  live_remove(w);
}

bool tt_wire_exited(const tt_wire *w, int64_t *status, int *sig) {
  if (status)
    *status = w->exit_status;
  if (sig)
    *sig = w->term_signal;
  return w->exited;
}

tt_framing tt_wire_peer_framing(const tt_wire *w) { return w->reader.framing; }

static void ignore_sigpipe(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

/* Opens a pseudo-terminal: the master for us, the slave for the child's
 * stdin. */
static int open_pty(int *master, int *slave, tether_buf *err) {
  *master = *slave = -1;
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) {
    tether_buf_printf(err, "cannot open a pseudo-terminal: %s",
                      strerror(errno));
    return -1;
  }
  char name[128];
  if (grantpt(m) != 0 || unlockpt(m) != 0 ||
      ptsname_r(m, name, sizeof name) != 0) {
    tether_buf_printf(err, "cannot set up a pseudo-terminal: %s",
                      strerror(errno));
    close(m);
    return -1;
  }
  int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    tether_buf_printf(err, "cannot open %s: %s", name, strerror(errno));
    close(m);
    return -1;
  }
  fcntl(m, F_SETFD, FD_CLOEXEC);
  *master = m;
  *slave = s;
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static bool spawn(tt_wire *w, const tt_wire_config *cfg, tether_buf *err) {
  uv_file in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1}, err_fds[2] = {-1, -1};
  int slave = -1;
  int rc = 0;
  if (cfg->stdin_tty) {
    if (open_pty(&w->pty_master, &slave, err) != 0)
      return false;
  } else {
    rc = uv_pipe(in_fds, 0, UV_NONBLOCK_PIPE);
  }
  if (!rc)
    rc = uv_pipe(out_fds, UV_NONBLOCK_PIPE, 0);
  if (!rc)
    rc = uv_pipe(err_fds, UV_NONBLOCK_PIPE, 0);
  if (rc) {
    tether_buf_printf(err, "cannot create pipes: %s", uv_strerror(rc));
    for (int i = 0; i < 2; i++) {
      close_fd(&in_fds[i]);
      close_fd(&out_fds[i]);
      close_fd(&err_fds[i]);
    }
    close_fd(&slave);
    return false;
  }

  w->process.data = w;
  w->process_inited = true;
  w->open_handles++;
  const int stdio_fds[3] = {cfg->stdin_tty ? slave : in_fds[0], out_fds[1],
                            err_fds[1]};
  rc = tt_provider_spawn_process(w->loop, &w->process, cfg->path,
                                 (char *const *)cfg->args, NULL, cfg->cwd,
                                 stdio_fds, on_exit_cb);
  close_fd(&in_fds[0]);
  close_fd(&out_fds[1]);
  close_fd(&err_fds[1]);
  close_fd(&slave);
  if (rc) {
    tether_buf_printf(err, "cannot start %s: %s", cfg->path, uv_strerror(rc));
    close_fd(&in_fds[1]);
    close_fd(&out_fds[0]);
    close_fd(&err_fds[0]);
    return false;
  }
  w->spawned = true;
  w->pid = w->process.pid;
  w->live_next = live_wires;
  if (live_wires)
    live_wires->live_prev = w;
  live_wires = w;

  if (!cfg->stdin_tty) {
    uv_pipe_open(&w->in, in_fds[1]);
    w->in_open = true;
  } else {
    /* Nothing can be written to a provider that reads a terminal. */
    uv_close((uv_handle_t *)&w->in, on_handle_closed);
    w->stdin_closed = true;
  }
  uv_pipe_open(&w->out, out_fds[0]);
  uv_pipe_open(&w->err, err_fds[0]);
  uv_read_start((uv_stream_t *)&w->out, on_stdout_alloc, on_stdout_read);
  uv_read_start((uv_stream_t *)&w->err, on_stderr_alloc, on_stderr_read);
  return true;
}

static void close_handle(tt_wire *w, uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, on_handle_closed);
}

/* Closes every handle and runs the loop until the last close callback. */
static void release(tt_wire *w) {
  if (w->in_open) {
    close_handle(w, (uv_handle_t *)&w->in);
    w->in_open = false;
  } else if (!w->stdin_closed) {
    close_handle(w, (uv_handle_t *)&w->in);
  }
  close_handle(w, (uv_handle_t *)&w->out);
  close_handle(w, (uv_handle_t *)&w->err);
  close_handle(w, (uv_handle_t *)&w->timer);
  if (w->process_inited)
    close_handle(w, (uv_handle_t *)&w->process);
  while (w->open_handles > 0)
    uv_run(w->loop, UV_RUN_ONCE);
  live_remove(w);
  close_fd(&w->pty_master);
  tt_frame_reader_free(&w->reader);
  tether_buf_free(&w->errline);
  for (size_t i = 0; i < TAIL_LINES; i++)
    free(w->tail[i]);
  free(w);
}

tt_wire *tt_wire_start(uv_loop_t *loop, const tt_wire_config *cfg,
                       tether_buf *err) {
  /* A provider that closes its stdin must show up as a failed write, not
   * kill the suite. */
  ignore_sigpipe();
  tt_wire *w = tt_calloc(1, sizeof *w);
  w->loop = loop;
  w->pty_master = -1;
  w->send_framing = cfg->framing == TT_FRAMING_CONTENT_LENGTH
                        ? TT_FRAMING_CONTENT_LENGTH
                        : TT_FRAMING_NDJSON;
  w->trace = cfg->trace;
  w->trace_user = cfg->trace_user;
  w->abort = cfg->abort;
  tt_frame_reader_init(&w->reader, TT_FRAMING_DETECT, cfg->max_message);
  tether_buf_init(&w->errline);
  uv_pipe_init(loop, &w->in, 0);
  uv_pipe_init(loop, &w->out, 0);
  uv_pipe_init(loop, &w->err, 0);
  uv_timer_init(loop, &w->timer);
  w->in.data = w->out.data = w->err.data = w->timer.data = w;
  /* The pipes and the timer; the process handle counts once spawned. */
  w->open_handles = 4;
  if (!spawn(w, cfg, err)) {
    /* libuv wants the process handle closed even after a failed spawn. */
    release(w);
    return NULL;
  }
  return w;
}

bool tt_wire_free(tt_wire *w, uint64_t grace_ms) {
  bool on_its_own = true;
  if (w->spawned && !w->exited) {
    tt_wire_close_stdin(w);
    if (!(grace_ms > 0 && wait_exit(w, grace_ms, true))) {
      on_its_own = false;
      kill(-w->pid, SIGKILL);
      wait_exit(w, REAP_MS, false);
    }
  }
  release(w);
  return on_its_own;
}
