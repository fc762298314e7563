/*
 * provider.h: the host's side of one provider process, on a libuv loop.
 *
 * A tt_provider spawns one provider executable (argv, never a shell), in
 * its own process group, and talks JSON-RPC 2.0 with it over its stdin and
 * stdout (SPEC sections 1 to 4). Many providers can share one loop; each is
 * independent of the others.
 *
 * LIFECYCLE. tt_provider_start never fails: it returns a provider that is
 * either on its way (state SPAWNED, then INITIALIZING) or, when the
 * executable cannot be found or started, doomed; either way the outcome
 * arrives through callbacks from the loop, never from inside the call:
 *
 *   on_ready   exactly once: with failure == NULL when `initialize` was
 *              answered well (state READY), else with the reason (the
 *              provider's own error, or one made up by the host: spawn
 *              failure, start timeout, death, protocol violation).
 *   on_dead    exactly once, when the process has been reaped and its
 *              pipes are drained (state DEAD), after every pending request
 *              has been answered or failed.
 *
 * After on_dead (or at any time before, see tt_provider_free) the owner
 * calls tt_provider_free. Memory is released in the last close callback of
 * the provider's handles, so freeing from inside one of its own callbacks
 * is safe.
 *
 * REQUESTS. tt_provider_request queues a request at any time and returns
 * its id (increasing integers, starting at 1; `initialize` and `shutdown`
 * use ids too). Requests are sent once the provider is READY, never more
 * in flight than the concurrency it declared; the rest wait in order. Every
 * accepted request gets exactly one reply callback: the provider's answer,
 * or a failure made up by the host when the provider dies, hangs, breaks
 * the protocol, is stopped or is freed. Callers have one path, not two.
 * Reply callbacks run on the loop, never inside tt_provider_request.
 *
 * DEATH. Stdout EOF and process exit may come in either order; the host
 * reads whatever is left on stdout before it fails anything, waits for the
 * process to be reaped, and then fails every pending request with a message
 * such as "provider 'local' exited with status 3 while handling create of
 * type file". When the leader exits, the rest of its process group is
 * killed, so no child of a provider outlives it.
 *
 * STOPPING. tt_provider_stop is the polite sequence of SPEC section 1:
 * `shutdown`, the `exit` notification, stdin closed, a grace period,
 * SIGTERM to the process group, a second grace period, SIGKILL to the
 * group. tt_provider_terminate skips the conversation (for a provider that
 * is hung or broken): stdin closed, SIGTERM, then SIGKILL. tt_provider_kill_now
 * and tt_provider_kill_all_now send SIGKILL synchronously, for emergency
 * exits.
 *
 * JSON ownership follows tether/json.h: tether_json * arguments are
 * consumed; what a callback receives is borrowed for the duration of the
 * call (take a reference with tether_json_ref to keep it).
 *
 * The module ignores SIGPIPE process-wide on first use: a provider that
 * closes its stdin must show up as an error on a write, not kill the host.
 * Children start with default signal dispositions (libuv resets them).
 */
#ifndef TETHER_HOST_PROVIDER_H
#define TETHER_HOST_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "framing.h"
#include "tether/json.h"

/* Defaults; a zero in tt_provider_config selects them. */
#define TT_PROVIDER_START_TIMEOUT_MS 30000u /* spawn to `initialize` answered */
#define TT_PROVIDER_STOP_GRACE_MS 5000u     /* stop to SIGTERM */
#define TT_PROVIDER_KILL_GRACE_MS 2000u     /* SIGTERM to SIGKILL */
#define TT_PROVIDER_DRAIN_MS 1000u /* exit to giving up on open pipes */
#define TT_PROVIDER_STDERR_TAIL 20 /* stderr lines kept for reports */

typedef struct tt_provider tt_provider;

typedef enum tt_provider_state {
  TT_PROVIDER_SPAWNED,      /* process started, `initialize` not yet sent */
  TT_PROVIDER_INITIALIZING, /* `initialize` sent, not yet answered */
  TT_PROVIDER_READY,        /* taking requests */
  TT_PROVIDER_STOPPING,     /* being stopped, or dying: no new requests sent */
  TT_PROVIDER_DEAD          /* reaped; every request has had its reply */
} tt_provider_state;

/* "spawned", "initializing", "ready", "stopping", "dead". */
const char *tt_provider_state_desc(tt_provider_state s);

typedef enum tt_reply_kind {
  TT_REPLY_RESULT, /* the provider answered with a result */
  TT_REPLY_ERROR,  /* the provider answered with an error */
  TT_REPLY_FAILED  /* no answer: the host made this error up (the provider
                      died, hung, broke the protocol, was stopped or freed) */
} tt_reply_kind;

/* What a reply callback receives. Everything is borrowed for the duration
 * of the callback. */
typedef struct tt_reply {
  tt_reply_kind kind;
  int64_t id;
  const char *provider;       /* the provider's name, for messages */
  const char *method;         /* "create" */
  const char *what;           /* "create of type file" */
  const tether_json *result;  /* RESULT */
  int code;                   /* ERROR: the provider's; FAILED: -32000 */
  const char *message;        /* ERROR, FAILED; one line */
  /* ERROR: the provider's error data, or NULL. FAILED: an object
   * {"provider": name, "stderr": [recent lines], "exitStatus"?: n,
   * "signal"?: "SIGKILL"}. */
  const tether_json *data;
  /* Whether the request reached the provider. A FAILED reply with sent
   * false was never seen by it (safe to retry elsewhere); with sent true
   * the provider may have done part or all of the work. */
  bool sent;
  unsigned long long latency_ns; /* request sent to answer; 0 if never sent */
} tt_reply;

typedef void tt_reply_cb(tt_provider *p, const tt_reply *reply, void *user);
/* failure is NULL on success. */
typedef void tt_ready_cb(tt_provider *p, const tt_reply *failure, void *user);
typedef void tt_dead_cb(tt_provider *p, void *user);
/* A `progress` notification for request `id`; req_user is that request's
 * user pointer (NULL when the id is not pending). fraction is negative when
 * the provider sent none. */
typedef void tt_progress_cb(tt_provider *p, int64_t id, void *req_user,
                            const char *message, double fraction,
                            void *user);
/* A line of the provider's stderr (level NULL) or a `log` notification
 * (level "error", "warn", "info", "debug" or whatever the provider sent).
 * Without this callback, both are written to our stderr as
 * "[name] line" and "[name] level: message". */
typedef void tt_log_cb(tt_provider *p, const char *level, const char *line,
                       size_t len, void *user);

typedef struct tt_provider_config {
  /* For messages ("provider 'local' ..."); defaults to the executable's
   * base name. */
  const char *name;
  /* A path when it holds a '/'; otherwise looked up next to the tether
   * binary, then on PATH (tt_provider_find_executable). */
  const char *executable;
  const char *const *args;  /* argv after argv[0], NULL-terminated; or NULL */
  const char *const *env;   /* extra "K=V" entries, NULL-terminated; or NULL */
  const char *cwd;          /* NULL: ours */
  tt_framing framing;       /* TT_FRAMING_DETECT (0) means ndjson */
  uint64_t start_timeout_ms; /* 0: TT_PROVIDER_START_TIMEOUT_MS */
  uint64_t stop_grace_ms;    /* 0: TT_PROVIDER_STOP_GRACE_MS */
  uint64_t kill_grace_ms;    /* 0: TT_PROVIDER_KILL_GRACE_MS */
  size_t max_message;        /* 0: TT_FRAME_DEFAULT_MAX (64 MiB) */
  tt_ready_cb *on_ready;
  tt_dead_cb *on_dead;
  tt_progress_cb *on_progress; /* may be NULL */
  tt_log_cb *on_log;           /* may be NULL */
  void *user;
} tt_provider_config;

/* Spawns the provider and sends `initialize`. The config is copied. Never
 * returns NULL. */
tt_provider *tt_provider_start(uv_loop_t *loop, const tt_provider_config *cfg);

/* Queues a request. params (an object, or NULL for {}) is consumed and
 * serialized at once. timeout_ms 0 means none; otherwise, when the answer
 * has not come within timeout_ms of sending, the host sends
 * $/cancelRequest, fails the request, and terminates the provider as hung
 * (every other pending request then fails too). Returns the request id. */
int64_t tt_provider_request(tt_provider *p, const char *method,
                            tether_json *params, uint64_t timeout_ms,
                            tt_reply_cb *cb, void *user);
/* The same with params already serialized (a JSON object's text, copied
 * before returning): for sending one request many times without
 * serializing it each time. type names the resource type for messages
 * ("create of type file"), or NULL. */
int64_t tt_provider_request_text(tt_provider *p, const char *method,
                                 const char *params_json, size_t len,
                                 const char *type, uint64_t timeout_ms,
                                 tt_reply_cb *cb, void *user);
/* Cancels request id. Not yet sent: it fails at once (its callback runs
 * before this returns) with "cancelled before it was sent". In flight:
 * $/cancelRequest goes to the provider, whose answer (-32800, or a result
 * when it was too late) arrives through the callback as usual. Returns
 * false when id is not pending. */
bool tt_provider_cancel(tt_provider *p, int64_t id);

/* The polite stop sequence (see above). Requests not yet sent fail with
 * "provider 'x' was stopped before ... was sent"; those in flight get
 * whatever the provider answers before it goes. Idempotent. */
void tt_provider_stop(tt_provider *p);
/* For a provider that is hung or misbehaving: close stdin, SIGTERM to its
 * process group, SIGKILL after the kill grace. why (may be NULL) becomes
 * the reason pending requests fail with, e.g. "tether was interrupted". */
void tt_provider_terminate(tt_provider *p, const char *why);
/* SIGKILL to the provider's process group, synchronously; the loop then
 * reaps it as usual. Safe at any time on the loop's thread. */
void tt_provider_kill_now(tt_provider *p);
/* tt_provider_kill_now for every provider of this process that has not
 * been reaped: for emergency exits (a second Ctrl-C, a fatal error). */
void tt_provider_kill_all_now(void);

/* Lets go of p. When it is not DEAD yet, its process group is killed at
 * once and every pending request fails before this returns ("provider 'x'
 * was closed while handling ..."); no other callback of p runs after this.
 * The memory goes in the last close callback. */
void tt_provider_free(tt_provider *p);

tt_provider_state tt_provider_state_of(const tt_provider *p);
const char *tt_provider_name(const tt_provider *p);
/* The process id, or 0 when it did not start. */
int tt_provider_pid(const tt_provider *p);
/* From the `initialize` answer (READY and later): concurrency (1 when the
 * provider declared none), resourceTypes (borrowed, an object) and the
 * whole result (borrowed). NULL before. */
uint64_t tt_provider_concurrency(const tt_provider *p);
const tether_json *tt_provider_resource_types(const tt_provider *p);
const tether_json *tt_provider_info(const tt_provider *p);
/* Requests queued or in flight. */
size_t tt_provider_pending(const tt_provider *p);
/* How the process ended, once DEAD: "exited with status 0", "was killed by
 * signal 9 (SIGKILL)", "did not start". */
const char *tt_provider_exit_desc(const tt_provider *p);
/* Appends the last TT_PROVIDER_STDERR_TAIL lines of stderr (and `log`
 * notifications), one per line, each ending in '\n'. */
void tt_provider_stderr_tail(const tt_provider *p, tether_buf *out);

/* Starts path with args (NULL-terminated, without argv[0]) the way every
 * provider is started (SPEC section 1): never through a shell, in its own
 * session and process group, with our environment plus env_extra plus
 * TETHER_PROVIDER=1 and TETHER_PROTOCOL=1, and stdio_fds as its stdin,
 * stdout and stderr (the caller closes its copies). Returns uv_spawn's
 * result; the process handle must be closed either way. */
int tt_provider_spawn_process(uv_loop_t *loop, uv_process_t *process,
                              const char *path, char *const *args,
                              char *const *env_extra, const char *cwd,
                              const int stdio_fds[3], uv_exit_cb exit_cb);

/* Resolves a provider executable per SPEC: name itself when it contains a
 * '/', else the file of that name next to the running tether binary, else
 * the first executable match on PATH. Returns a malloc'd path, or NULL with
 * a one-line reason in *err. */
char *tt_provider_find_executable(const char *name, tether_buf *err);

/* Appends a human-readable report of a reply that is not a result: the
 * message, the provider's error code and data, and for failures the
 * provider's recent stderr. Ends with '\n'. */
void tt_reply_describe(const tt_reply *r, tether_buf *out);

/* "SIGKILL" for 9, or NULL for a signal without a name here. */
const char *tt_signal_name(int sig);

#endif /* TETHER_HOST_PROVIDER_H */
