/*
 * check_wire.h: one provider process driven byte by byte, for the
 * conformance suite (check.c).
 *
 * The host's provider client (provider.h) keeps a provider on the
 * protocol: it frames every message itself, numbers every request and
 * stops talking to a provider at its first mistake. A conformance suite
 * needs the opposite: it sends text no host would send (a cut-off JSON
 * text, a request without "jsonrpc", an id of twenty digits, a request
 * before `initialize`) and looks at every byte that comes back, mistakes
 * included, one at a time. A tt_wire is that: a spawned provider, its
 * stdin, and what it writes, as a sequence of events.
 *
 * The calls are synchronous. Each one runs the libuv loop it was given
 * until what it waits for has happened or its time is up, so a check reads
 * as a straight line: send, wait for the next message, compare. Every wait
 * is bounded by a timeout in the call.
 *
 * The provider runs in its own process group (libuv's DETACHED: setsid),
 * with TETHER_PROVIDER=1 and TETHER_PROTOCOL=1 in its environment, as the
 * host starts it (SPEC section 1). When it exits, the rest of its group is
 * killed, so a child holding its pipes cannot keep a check waiting;
 * tt_wire_free kills whatever is left. Nothing outlives the wire.
 *
 * What the provider writes on stdout is cut into frames by a reader that
 * detects the framing from the first bytes (framing.h), so a provider that
 * answers in the wrong framing is seen doing so rather than misread.
 */
#ifndef TETHER_HOST_CHECK_WIRE_H
#define TETHER_HOST_CHECK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "framing.h"
#include "tether/json.h"

typedef struct tt_wire tt_wire;

/* Called for every frame sent ('>'), every frame received ('<') and every
 * line of stderr ('!'): the transcript `tether check --verbose` prints. */
typedef void tt_wire_trace_cb(void *user, int pid, char direction,
                              const char *data, size_t len);

typedef struct tt_wire_config {
  const char *path;        /* the executable; used as given */
  const char *const *args; /* argv after argv[0], NULL-terminated; or NULL */
  const char *cwd;         /* NULL: ours */
  /* How tt_wire_send frames messages: TT_FRAMING_NDJSON or
   * TT_FRAMING_CONTENT_LENGTH. */
  tt_framing framing;
  /* Stdin is a pseudo-terminal instead of a pipe, as when a provider is
   * started by hand; tt_wire_send is then a no-op. */
  bool stdin_tty;
  size_t max_message;      /* 0: TT_FRAME_DEFAULT_MAX */
  tt_wire_trace_cb *trace; /* may be NULL */
  void *trace_user;
  /* When *abort becomes true (a signal handler on the loop sets it), every
   * wait returns at once, as if its time were up. May be NULL. */
  const volatile bool *abort;
} tt_wire_config;

typedef enum tt_wire_event_kind {
  TT_WIRE_MESSAGE, /* a frame that parses as JSON: json and text */
  TT_WIRE_GARBAGE, /* a frame that is not JSON: text, and why */
  TT_WIRE_TIMEOUT, /* nothing before the timeout (or the wait was aborted) */
  TT_WIRE_CLOSED,  /* stdout ended: why says how ("exited with status 3",
                      with what was left unfinished on stdout) */
  TT_WIRE_BROKEN   /* stdout cannot be cut into frames (a message over the
                      size limit, a malformed content-length header): why */
} tt_wire_event_kind;

/* One event. json and text are owned by the event: tt_wire_event_clear. */
typedef struct tt_wire_event {
  tt_wire_event_kind kind;
  tether_json *json;
  char *text; /* the frame's bytes, NUL-terminated */
  size_t len;
  char why[400];
} tt_wire_event;

void tt_wire_event_clear(tt_wire_event *ev);

/* Spawns the provider. Returns NULL with a one-line reason in *err when it
 * cannot be started (the pseudo-terminal included). */
tt_wire *tt_wire_start(uv_loop_t *loop, const tt_wire_config *cfg,
                       tether_buf *err);

/* Frames msg (borrowed) in the configured framing and writes it. */
void tt_wire_send(tt_wire *w, const tether_json *msg);
/* Frames the text of one message as it is (it need not be JSON). */
void tt_wire_send_text(tt_wire *w, const char *text, size_t len);
/* Writes bytes exactly as given, framing and all. */
void tt_wire_send_raw(tt_wire *w, const char *data, size_t len);
/* Closes the provider's stdin: EOF, as a host ends a conversation. */
void tt_wire_close_stdin(tt_wire *w);
/* True once a write failed because the provider closed its stdin. */
bool tt_wire_write_failed(const tt_wire *w);

/* Waits up to timeout_ms for the next event. After CLOSED or BROKEN, every
 * later call returns the same. */
void tt_wire_next(tt_wire *w, uint64_t timeout_ms, tt_wire_event *ev);

/* Waits up to timeout_ms for the process to exit; true when it has. */
bool tt_wire_wait_exit(tt_wire *w, uint64_t timeout_ms);
/* True when the process has exited; *status and *signal (0 when none) say
 * how. */
bool tt_wire_exited(const tt_wire *w, int64_t *status, int *signal);
/* "exited with status 0", "was killed by signal 9 (SIGKILL)", "is still
 * running". */
void tt_wire_exit_desc(const tt_wire *w, char *out, size_t outlen);

/* The framing the provider's first output was in, or TT_FRAMING_DETECT
 * when it has written nothing yet. */
tt_framing tt_wire_peer_framing(const tt_wire *w);
/* Appends the last lines of the provider's stderr, joined by " | ", cut to
 * max bytes; nothing when it wrote none. */
void tt_wire_stderr_tail(const tt_wire *w, tether_buf *out, size_t max);
/* Bytes the provider wrote on stderr so far. */
size_t tt_wire_stderr_bytes(const tt_wire *w);

/* Ends the conversation: stdin closed, up to grace_ms for the process to
 * exit on its own, then SIGKILL to its process group. Returns true when it
 * exited on its own. Frees w; the loop is left with nothing of it. */
bool tt_wire_free(tt_wire *w, uint64_t grace_ms);

/* SIGKILL to the process group of every wire not yet reaped: for a signal
 * that interrupts the suite. */
void tt_wire_kill_all(void);

#endif /* TETHER_HOST_CHECK_WIRE_H */
