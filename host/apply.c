/*
 * apply.c: the executor (see apply.h). Everything runs on one libuv loop
 * as a chain of callbacks: providers start, stores open one after the
 * other, the plan is made, and steps run as their dependencies finish.
 * Each phase ends by starting the next from the callback that completes
 * it; every phase checks first whether the run is already stopping.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "apply.h"
#include "plan.h"
#include "provider.h"
#include "refs.h"
#include "tether/protocol.h"
#include "util.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

/* How often a long operation says it is still running. */
#define STILL_RUNNING_EVERY_NS (10ull * 1000000000ull)

typedef struct engine engine;
typedef struct slot slot;
typedef struct proc proc;
typedef struct req req;
typedef struct store_rt store_rt;
typedef struct step_rt step_rt;

/* ---- Requests by method, for statistics ---- */

typedef enum method_id {
  M_INITIALIZE,
  M_CREATE,
  M_UPDATE,
  M_DELETE,
  M_READ,
  M_STATE_READ,
  M_STATE_EVENT,
  M_COUNT
} method_id;

static const char *method_name(method_id m) {
  switch (m) {
  case M_INITIALIZE:
    return "initialize";
  case M_CREATE:
    return "create";
  case M_UPDATE:
    return "update";
  case M_DELETE:
    return "delete";
  case M_READ:
    return "read";
  case M_STATE_READ:
    return "state_read";
  case M_STATE_EVENT:
    return "state_event";
  case M_COUNT:
    break;
  }
  return "?";
}

static method_id op_method(tt_op op) {
  switch (op) {
  case TT_OP_CREATE:
    return M_CREATE;
  case TT_OP_UPDATE:
    return M_UPDATE;
  case TT_OP_DELETE:
    return M_DELETE;
  }
  return M_CREATE;
}

/* Time during which at least one request of a kind is in flight: with
 * requests overlapping, the sum of latencies says little about where the
 * wall time went, the union of their intervals does. */
typedef struct busy {
  size_t inflight;
  unsigned long long since;
  unsigned long long total_ns;
} busy;

static void busy_begin(busy *b) {
  if (b->inflight++ == 0)
    b->since = tt_now_ns();
}

static void busy_end(busy *b) {
  if (b->inflight && --b->inflight == 0)
    b->total_ns += tt_now_ns() - b->since;
}

typedef struct stats {
  unsigned long long count[M_COUNT];
  unsigned long long latency_ns[M_COUNT];
  busy ops;    /* resource operations (create, update, delete, read) */
  busy events; /* state writes */
  busy any;    /* any request of ours */
} stats;

/* ---- The run's pieces ---- */

/* One provider declaration and its processes. */
struct slot {
  const tt_provider_decl *decl;
  char *exe;          /* the executable, resolved */
  const char **argv;  /* its arguments, NULL-terminated */
  bool hosts_store;   /* some store's type is served by it */
  bool needed;        /* some resource of the file uses it */
  proc *state;        /* the single process serving its stores */
  proc **work;        /* processes for resource operations */
  size_t nwork;
  tether_json *types; /* resourceTypes from the first initialize */
  uint64_t concurrency;
};

struct proc {
  engine *e;
  slot *sl;
  tt_provider *p;
  bool is_state;
  bool ready;
  bool dead;
  size_t pending; /* our requests not yet answered */
  req *ops;       /* resource operations in flight, for log lines */
  size_t nops;
  proc *next;
};

typedef void req_done(engine *e, req *q, const tt_reply *r);

struct req {
  engine *e;
  proc *pr;
  method_id method;
  req_done *done;
  void *ctx;
  int64_t id;
  unsigned long long sent_ns;
  unsigned long long next_report_ns; /* when to say it is still running */
  bool is_op;                        /* a resource operation of a step */
  req *prev, *next;                  /* in pr->ops */
};

struct store_rt {
  const tt_resource *r;
  slot *sl;
  /* The state as this run has made it: what state_read returned with every
   * patch sent since applied. NULL while the store does not exist. */
  tether_json *state;
  uint64_t index;
  tether_json *resource;     /* {type, inputProperties, outputProperties} */
  tether_json *boot_outputs; /* a bootstrap store's create or read answer */
  char *broken;              /* why nothing more can be recorded here */
};

typedef enum step_status {
  ST_WAITING,
  ST_RUNNING,
  ST_DONE,
  ST_FAILED
} step_status;

struct step_rt {
  size_t index;
  step_status status;
  size_t waiting; /* dependencies not done yet */
  tt_op ops[2];
  size_t nops, k; /* the ops and the one under way */
  tether_json *out; /* outputs of the last create or update */
  req *call;        /* the provider request in flight */
  unsigned long long started_ns;
  char *error;
  store_rt *own_store; /* when the step works on a store resource */
  tt_action planned;   /* the action before tt_step_settle */
};

typedef enum phase {
  PH_STARTING,
  PH_OPENING,
  PH_REFRESHING,
  PH_RUNNING,
  PH_STOPPING
} phase;

struct engine {
  const tt_engine_opts *o;
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t ticker;
  phase phase;
  tt_model *m;
  char *base_dir;
  FILE *hout; /* what a person reads: stdout, or stderr under --json */
  size_t parallelism;
  unsigned long long t0;

  slot *slots; /* by provider index */
  proc *procs;
  size_t alive;    /* processes not yet reaped */
  size_t starting; /* processes of the first phase not yet ready */

  store_rt *stores; /* by store_index */
  size_t opening;   /* the store being opened */

  size_t refreshing; /* reads in flight */

  tt_plan *plan;
  step_rt *steps;
  tether_json **outputs; /* by resource index, as steps finish */
  size_t *queue;         /* steps whose dependencies are done */
  size_t qhead, qlen;
  size_t running;
  bool pumping;
  bool steps_finished;
  size_t created, updated, replaced, deleted, unchanged, failed;

  bool stop_new;    /* no new step starts */
  int interrupted;  /* the first signal, or 0 */
  char *fatal;      /* what ended the run before its steps, or NULL */
  int status;
  stats st;
};

/* ---- Output ---- */

#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_CYAN "\033[36m"

static const char *col(const engine *e, const char *code) {
  return e->o->color ? code : "";
}

static void say(engine *e, const char *fmt, ...) TETHER_PRINTF(2, 3);
static void say(engine *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(e->hout, fmt, ap);
  va_end(ap);
  fflush(e->hout);
}

static char *vformat(const char *fmt, va_list ap) {
  tether_buf b;
  tether_buf_init(&b);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  tether_buf_reserve(&b, (size_t)(n > 0 ? n : 0) + 1);
  vsnprintf(b.data, (size_t)n + 1, fmt, ap);
  b.len = (size_t)n;
  return tether_buf_steal(&b, NULL);
}

static char *format(const char *fmt, ...) TETHER_PRINTF(1, 2);
static char *format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* Ends the run before (or instead of) its steps: the first reason is the
 * one reported, since later ones usually follow from it. */
static void set_fatal(engine *e, const char *fmt, ...) TETHER_PRINTF(2, 3);
static void set_fatal(engine *e, const char *fmt, ...) {
  if (e->fatal)
    return;
  va_list ap;
  va_start(ap, fmt);
  e->fatal = vformat(fmt, ap);
  va_end(ap);
}

static double seconds_since(unsigned long long t) {
  return (double)(tt_now_ns() - t) / 1e9;
}

/* "12ms" under a second, "3.4s" above: fast steps are the common case and
 * "0.0s" says nothing. */
typedef struct duration {
  char text[32];
} duration;

static duration took(unsigned long long since) {
  duration d;
  double s = seconds_since(since);
  if (s < 1)
    snprintf(d.text, sizeof d.text, "%.0fms", s * 1000);
  else
    snprintf(d.text, sizeof d.text, "%.1fs", s);
  return d;
}

/* One line describing a reply that is not a result: the provider's message
 * with its code, or the failure the host made up. */
static char *reply_line(const tt_reply *r) {
  if (r->kind == TT_REPLY_ERROR)
    return format("provider '%s': %s failed: %s (code %d)", r->provider,
                  r->what ? r->what : r->method, r->message, r->code);
  return format("%s", r->message ? r->message : "failed");
}

/* The full report of a failed reply (message, data, recent stderr), for
 * stderr as it happens. */
static void report_reply(const char *who, const tt_reply *r) {
  tether_buf b;
  tether_buf_init(&b);
  tt_reply_describe(r, &b);
  fprintf(stderr, "tether: %s: %s", who, b.data ? b.data : "failed\n");
  tether_buf_free(&b);
}

/* ---- JSON helpers ---- */

static tether_json *object_or_empty(const tether_json *v) {
  return v && tether_json_is_object(v) ? tether_json_ref(v)
                                       : tether_json_object();
}

static tether_json *resource_value(const char *type, const tether_json *inputs,
                                   const tether_json *outputs) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "type", tether_json_string(type));
  r = tether_json_object_set(r, "inputProperties", object_or_empty(inputs));
  r = tether_json_object_set(r, "outputProperties", object_or_empty(outputs));
  return r;
}

static bool type_has_operation(const slot *sl, const char *type,
                               const char *op) {
  const tether_json *t = tt_json_member(sl->types, type);
  return t && tt_type_has_operation(t, op);
}

/* ---- Processes ---- */

static void on_proc_ready(tt_provider *p, const tt_reply *failure, void *user);
static void on_proc_dead(tt_provider *p, void *user);
static void on_proc_log(tt_provider *p, const char *level, const char *line,
                        size_t len, void *user);
static void on_proc_progress(tt_provider *p, int64_t id, void *req_user,
                             const char *message, double fraction,
                             void *user);

static proc *proc_start(engine *e, slot *sl, bool is_state) {
  proc *pr = tt_calloc(1, sizeof *pr);
  pr->e = e;
  pr->sl = sl;
  pr->is_state = is_state;
  pr->next = e->procs;
  e->procs = pr;
  e->alive++;
  e->st.count[M_INITIALIZE]++;
  tt_provider_config cfg = {
      .name = sl->decl->name,
      .executable = sl->exe,
      .args = sl->argv,
      .cwd = e->base_dir,
      .framing = sl->decl->framing,
      .start_timeout_ms = e->o->start_timeout_ms,
      .on_ready = on_proc_ready,
      .on_dead = on_proc_dead,
      .on_progress = on_proc_progress,
      .on_log = on_proc_log,
      .user = pr,
  };
  pr->p = tt_provider_start(&e->loop, &cfg);
  if (is_state)
    sl->state = pr;
  else {
    sl->work = tt_realloc(sl->work, (sl->nwork + 1) * sizeof *sl->work);
    sl->work[sl->nwork++] = pr;
  }
  return pr;
}

static void after_start(engine *e);

static void on_proc_ready(tt_provider *p, const tt_reply *failure, void *user) {
  proc *pr = user;
  engine *e = pr->e;
  if (failure) {
    char *line = reply_line(failure);
    if (e->phase == PH_STARTING) {
      report_reply("starting providers", failure);
      set_fatal(e, "%s", line);
    }
    free(line);
  } else {
    pr->ready = true;
    if (!pr->sl->types) {
      pr->sl->types = tether_json_ref(tt_provider_resource_types(p));
      pr->sl->concurrency = tt_provider_concurrency(p);
    }
  }
  if (e->phase == PH_STARTING && --e->starting == 0)
    after_start(e);
}

static void on_proc_dead(tt_provider *p, void *user) {
  proc *pr = user;
  engine *e = pr->e;
  pr->dead = true;
  pr->p = NULL;
  e->alive--;
  tt_provider_free(p);
}

/* A provider's log line, prefixed with the resource it concerns when the
 * process is working on exactly one; otherwise with the provider. */
static void on_proc_log(tt_provider *p, const char *level, const char *line,
                        size_t len, void *user) {
  proc *pr = user;
  engine *e = pr->e;
  const char *who = pr->sl->decl->name;
  if (pr->nops == 1 && pr->ops) {
    step_rt *s = pr->ops->ctx;
    who = e->plan->steps[s->index].path;
  }
  if (level)
    fprintf(stderr, "[%s] %s: %.*s\n", who, level, (int)len, line);
  else
    fprintf(stderr, "[%s] %.*s\n", who, (int)len, line);
}

static void on_proc_progress(tt_provider *p, int64_t id, void *req_user,
                             const char *message, double fraction,
                             void *user) {
  proc *pr = user;
  engine *e = pr->e;
  req *q = req_user;
  if (!q || !q->is_op)
    return;
  step_rt *s = q->ctx;
  const char *path = e->plan->steps[s->index].path;
  if (fraction >= 0)
    say(e, "%s: %s (%.0f%%, %.0fs elapsed)\n", path, message, fraction * 100,
        seconds_since(q->sent_ns));
  else
    say(e, "%s: %s (%.0fs elapsed)\n", path, message,
        seconds_since(q->sent_ns));
}

/* The process for a request: the state process for a store's own
 * operations, else the least busy work process, starting one when there
 * is none, or another when the provider takes one request at a time and
 * all of its processes are busy. */
static proc *pick_proc(engine *e, slot *sl, bool for_store) {
  if (for_store)
    return sl->state && !sl->state->dead ? sl->state : NULL;
  proc *best = NULL;
  size_t alive = 0;
  for (size_t i = 0; i < sl->nwork; i++) {
    proc *pr = sl->work[i];
    if (pr->dead)
      continue;
    alive++;
    if (!best || pr->pending < best->pending)
      best = pr;
  }
  if (!best)
    return proc_start(e, sl, false);
  if (best->pending > 0 && sl->concurrency == 1 && alive < e->parallelism)
    return proc_start(e, sl, false);
  return best;
}

/* ---- Requests ---- */

static void on_reply(tt_provider *p, const tt_reply *rep, void *user) {
  req *q = user;
  engine *e = q->e;
  proc *pr = q->pr;
  pr->pending--;
  e->st.count[q->method]++;
  e->st.latency_ns[q->method] += rep->latency_ns;
  if (q->method == M_STATE_EVENT)
    busy_end(&e->st.events);
  else if (q->method != M_STATE_READ)
    busy_end(&e->st.ops);
  busy_end(&e->st.any);
  if (q->is_op) {
    if (q->prev)
      q->prev->next = q->next;
    else
      pr->ops = q->next;
    if (q->next)
      q->next->prev = q->prev;
    pr->nops--;
  }
  q->done(e, q, rep);
  free(q);
}

/* Sends a request; done runs with the answer (never before this
 * returns, except when the process is already gone). */
static req *send_request(engine *e, proc *pr, method_id m, tether_json *params,
                         req_done *done, void *ctx, bool is_op) {
  req *q = tt_calloc(1, sizeof *q);
  q->e = e;
  q->pr = pr;
  q->method = m;
  q->done = done;
  q->ctx = ctx;
  q->is_op = is_op;
  q->sent_ns = tt_now_ns();
  q->next_report_ns = q->sent_ns + STILL_RUNNING_EVERY_NS;
  if (is_op) {
    q->next = pr->ops;
    if (pr->ops)
      pr->ops->prev = q;
    pr->ops = q;
    pr->nops++;
  }
  pr->pending++;
  if (m == M_STATE_EVENT)
    busy_begin(&e->st.events);
  else if (m != M_STATE_READ)
    busy_begin(&e->st.ops);
  busy_begin(&e->st.any);
  q->id = tt_provider_request(pr->p, method_name(m), params,
                              e->o->timeout_ms, on_reply, q);
  return q;
}

/* ---- Stopping ---- */

static void begin_stop(engine *e) {
  if (e->phase == PH_STOPPING)
    return;
  e->phase = PH_STOPPING;
  for (proc *pr = e->procs; pr; pr = pr->next)
    if (!pr->dead)
      tt_provider_stop(pr->p);
  /* Nothing else keeps the loop going once the providers are gone. */
  uv_timer_stop(&e->ticker);
}

/* ---- Recording state events ---- */

typedef void event_done(engine *e, void *ctx, const char *err);

typedef struct event_req {
  store_rt *st;
  event_done *done;
  void *ctx;
} event_req;

static void on_event_reply(engine *e, req *q, const tt_reply *r) {
  event_req *ev = q->ctx;
  store_rt *st = ev->st;
  const char *err = NULL;
  if (r->kind != TT_REPLY_RESULT) {
    if (!st->broken) {
      char *line = reply_line(r);
      st->broken = format("recording in state store '%s' failed: %s",
                          st->r->path, line);
      free(line);
      report_reply("state store", r);
    }
    err = st->broken;
    /* What is on record no longer matches what this run believes:
     * nothing more may start. */
    e->stop_new = true;
  }
  ev->done(e, ev->ctx, err);
  free(ev);
}

/* Records patch as the next event of store st, applying it to the run's
 * copy of the state first; done runs once the store has acknowledged it
 * (at once for an empty patch, which is not sent). */
static void record(engine *e, store_rt *st, const char *event,
                   tether_json *patch, event_done *done, void *ctx) {
  if (tether_json_array_size(patch) == 0) {
    tether_json_unref(patch);
    done(e, ctx, NULL);
    return;
  }
  if (!st->broken && !st->state)
    st->broken = format("state store '%s' does not exist", st->r->path);
  proc *pr = st->broken ? NULL : pick_proc(e, st->sl, true);
  if (!st->broken && !pr)
    st->broken = format("the process of state store '%s' has ended",
                        st->r->path);
  if (!st->broken) {
    tether_json_error err;
    if (!tether_json_patch(&st->state, patch, &err)) {
      char *text = tether_json_dumps(patch, NULL);
      st->broken = format("internal error: patch %s does not apply to the "
                          "state of store '%s': %s",
                          text, st->r->path, err.message);
      free(text);
    }
  }
  if (st->broken) {
    tether_json_unref(patch);
    e->stop_new = true;
    done(e, ctx, st->broken);
    return;
  }
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "resource",
                                  tether_json_ref(st->resource));
  params = tether_json_object_set(params, "event", tether_json_string(event));
  params = tether_json_object_set(params, "hostVersion",
                                  tether_json_string(TETHER_VERSION));
  params = tether_json_object_set(params, "patch", patch);
  params =
      tether_json_object_set(params, "expectIndex", tether_json_uint(st->index));
  st->index++;
  event_req *ev = tt_calloc(1, sizeof *ev);
  ev->st = st;
  ev->done = done;
  ev->ctx = ctx;
  send_request(e, pr, M_STATE_EVENT, params, on_event_reply, ev, false);
}

/* ---- Opening the stores ---- */

static void open_next_store(engine *e);
static void after_open(engine *e);

static void store_opened(engine *e) {
  e->opening++;
  open_next_store(e);
}

/* The holder named in a -32020 error is the provider process; the tether
 * that started it is what a person recognises, found from its parent. */
static void describe_holder(const tether_json *data, tether_buf *out) {
  const char *holder = tether_json_string_value(tt_json_member(data, "holder"));
  long pid;
  if (!holder || sscanf(holder, "pid %ld", &pid) != 1 || pid <= 0)
    return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  char line[512];
  long ppid = 0;
  if (fgets(line, sizeof line, f)) {
    char *close = strrchr(line, ')');
    if (close)
      sscanf(close + 1, " %*c %ld", &ppid);
  }
  fclose(f);
  if (ppid <= 1)
    return;
  snprintf(path, sizeof path, "/proc/%ld/comm", ppid);
  f = fopen(path, "r");
  char comm[64] = "";
  if (f) {
    if (fgets(comm, sizeof comm, f))
      comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
  }
  tether_buf_printf(out, " (pid %ld was started by %s pid %ld)", pid,
                    comm[0] ? comm : "process", ppid);
}

static void on_state_read(engine *e, req *q, const tt_reply *r) {
  store_rt *st = q->ctx;
  if (e->phase != PH_OPENING && e->phase != PH_RUNNING)
    return;
  if (r->kind == TT_REPLY_RESULT) {
    const tether_json *state = tt_json_member(r->result, "state");
    uint64_t index = 0;
    if (!state || !tether_json_is_object(state) ||
        !tether_json_get_uint(tt_json_member(r->result, "index"), &index)) {
      set_fatal(e, "state store '%s': state_read answered without a state "
                   "object and an index",
                st->r->path);
    } else {
      tether_json_unref(st->state);
      st->state = tether_json_ref(state);
      st->index = index;
    }
  } else if (r->kind == TT_REPLY_ERROR && r->code == TETHER_ERR_NOT_FOUND &&
             st->r->store) {
    /* Recorded but gone: planned as a store that holds nothing yet. */
  } else if (r->kind == TT_REPLY_ERROR && r->code == TETHER_ERR_STATE_LOCKED) {
    tether_buf why;
    tether_buf_init(&why);
    describe_holder(r->data, &why);
    set_fatal(e, "state store '%s' is in use by another run: %s%s",
              st->r->path, r->message, why.data ? why.data : "");
    tether_buf_free(&why);
  } else {
    report_reply("opening state store", r);
    char *line = reply_line(r);
    set_fatal(e, "cannot read state store '%s': %s", st->r->path, line);
    free(line);
  }
  if (e->phase == PH_OPENING) {
    if (e->fatal || e->interrupted)
      begin_stop(e);
    else
      store_opened(e);
  }
}

static void read_store(engine *e, store_rt *st, req_done *done) {
  proc *pr = pick_proc(e, st->sl, true);
  if (!pr) {
    set_fatal(e, "the process of state store '%s' has ended", st->r->path);
    begin_stop(e);
    return;
  }
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "resource",
                                  tether_json_ref(st->resource));
  send_request(e, pr, M_STATE_READ, params, done, st, false);
}

/* The bootstrap store's create (apply) or read (the rest) answered. */
static void on_bootstrap_answer(engine *e, req *q, const tt_reply *r) {
  store_rt *st = q->ctx;
  if (e->phase != PH_OPENING)
    return;
  if (r->kind != TT_REPLY_RESULT) {
    report_reply("opening state store", r);
    char *line = reply_line(r);
    set_fatal(e, "state store '%s' could not be %s: %s", st->r->path,
              q->method == M_CREATE ? "created" : "read", line);
    free(line);
    begin_stop(e);
    return;
  }
  if (q->method == M_READ) {
    const tether_json *exists = tt_json_member(r->result, "exists");
    if (!exists || !tether_json_bool_value(exists)) {
      /* Nothing there yet: an apply will create it. */
      store_opened(e);
      return;
    }
  }
  const tether_json *out = tt_json_member(r->result, "outputProperties");
  st->boot_outputs = object_or_empty(out);
  tether_json *res = st->resource;
  st->resource = tether_json_object_set(res, "outputProperties",
                                        tether_json_ref(st->boot_outputs));
  read_store(e, st, on_state_read);
}

/* References in a bootstrap store's inputs can only name other bootstrap
 * stores opened before it: nothing else exists before the stores. */
static const tether_json *bootstrap_lookup(void *ctx,
                                           const tt_resource *target) {
  engine *e = ctx;
  if (target->is_store && !target->store)
    return e->stores[target->store_index].boot_outputs;
  return NULL;
}

static void open_bootstrap(engine *e, store_rt *st) {
  const tt_resource *r = st->r;
  tt_resolved in;
  tt_diag diag;
  if (tt_resolve_inputs(r, bootstrap_lookup, e, &in, &diag)) {
    set_fatal(e, "%s", diag.message);
    begin_stop(e);
    return;
  }
  if (in.nunknown) {
    set_fatal(e,
              "%s: %s.inputs: a bootstrap store's inputs can only reference "
              "bootstrap stores opened before it, and '%s' cannot be known "
              "yet",
              e->m->file, r->json_path, in.unknown[0]);
    tt_resolved_free(&in);
    begin_stop(e);
    return;
  }
  st->resource = resource_value(r->type, in.inputs, NULL);
  proc *pr = pick_proc(e, st->sl, true);
  bool read = e->o->mode != TT_ENGINE_APPLY &&
              type_has_operation(st->sl, r->type, "read");
  tether_json *params = tether_json_object();
  if (read) {
    params = tether_json_object_set(params, "resource",
                                    tether_json_ref(st->resource));
  } else {
    params = tether_json_object_set(params, "type", tether_json_string(r->type));
    params = tether_json_object_set(params, "inputProperties",
                                    tether_json_ref(in.inputs));
    params = tether_json_object_set(params, "isStateful", tether_json_bool(false));
  }
  tt_resolved_free(&in);
  send_request(e, pr, read ? M_READ : M_CREATE, params, on_bootstrap_answer, st,
               false);
}

/* A chained store is read when the store it is recorded in has a record
 * of it, described by that record. */
static void open_chained(engine *e, store_rt *st) {
  const tt_resource *r = st->r;
  store_rt *parent = &e->stores[r->store->store_index];
  const tether_json *rec =
      parent->state ? tether_json_pointer_get(parent->state, r->record_pointer,
                                              NULL)
                    : NULL;
  const char *type = tether_json_string_value(tt_json_member(rec, "type"));
  if (!rec || !type || strcmp(type, r->type) != 0) {
    store_opened(e);
    return;
  }
  st->resource = resource_value(type, tt_json_member(rec, "inputProperties"),
                                tt_json_member(rec, "outputProperties"));
  read_store(e, st, on_state_read);
}

static void open_next_store(engine *e) {
  if (e->phase != PH_OPENING)
    return;
  if (e->opening == e->m->nstores) {
    after_open(e);
    return;
  }
  store_rt *st = &e->stores[e->opening];
  if (!st->r->store)
    open_bootstrap(e, st);
  else
    open_chained(e, st);
}

/* ---- Starting ---- */

static const tether_json *const *types_by_provider(engine *e,
                                                   const tether_json **buf) {
  for (size_t i = 0; i < e->m->nproviders; i++)
    buf[i] = e->slots[i].types;
  return buf;
}

/* Checks every resource's type against what its provider declared, before
 * anything changes: a plan of the file alone runs the planner's checks. */
static const char *check_types(engine *e, tt_diag *diag) {
  const tether_json **types =
      tt_calloc(e->m->nproviders + 1, sizeof *types);
  tt_plan_input in = {.model = e->m,
                      .provider_types = types_by_provider(e, types),
                      .destroy = e->o->mode == TT_ENGINE_DESTROY};
  tt_plan *p = tt_plan_build(&in, diag);
  free(types);
  if (!p)
    return diag->message;
  tt_plan_free(p);
  return NULL;
}

static void after_start(engine *e) {
  if (e->fatal || e->interrupted) {
    begin_stop(e);
    return;
  }
  tt_diag diag;
  if (e->o->mode != TT_ENGINE_STATE && check_types(e, &diag)) {
    set_fatal(e, "%s", diag.message);
    begin_stop(e);
    return;
  }
  e->phase = PH_OPENING;
  open_next_store(e);
}

/* ---- Refresh ---- */

static void make_plan(engine *e);

typedef struct refresh_req {
  store_rt *st;
  char *pointer;
  char *path;
} refresh_req;

static void refresh_done(engine *e) {
  if (e->refreshing || e->phase != PH_REFRESHING)
    return;
  if (e->fatal || e->interrupted) {
    begin_stop(e);
    return;
  }
  make_plan(e);
}

static void on_refresh_recorded(engine *e, void *ctx, const char *err) {
  if (err)
    set_fatal(e, "%s", err);
  e->refreshing--;
  refresh_done(e);
}

static void on_refresh_read(engine *e, req *q, const tt_reply *r) {
  refresh_req *rr = q->ctx;
  store_rt *st = rr->st;
  if (e->phase == PH_REFRESHING && r->kind != TT_REPLY_RESULT) {
    report_reply(rr->path, r);
    char *line = reply_line(r);
    set_fatal(e, "refreshing '%s': %s", rr->path, line);
    free(line);
  } else if (e->phase == PH_REFRESHING) {
    const tether_json *rec = tether_json_pointer_get(st->state, rr->pointer, NULL);
    bool exists = tether_json_bool_value(tt_json_member(r->result, "exists"));
    const tether_json *out = tt_json_member(r->result, "outputProperties");
    tether_json *patch = NULL;
    if (!exists) {
      say(e, "%s! %s: no longer exists; it will be created again%s\n",
          col(e, C_YELLOW), rr->path, col(e, C_RESET));
      patch = tether_json_array();
      tether_json *op = tether_json_object();
      op = tether_json_object_set(op, "op", tether_json_string("remove"));
      op = tether_json_object_set(op, "path", tether_json_string(rr->pointer));
      patch = tether_json_array_append(patch, op);
    } else if (out && tether_json_is_object(out) &&
               !tether_json_equal(out,
                                  tt_json_member(rec, "outputProperties"))) {
      say(e, "%s! %s: its outputs changed outside tether%s\n",
          col(e, C_YELLOW), rr->path, col(e, C_RESET));
      char *ptr = format("%s/outputProperties", rr->pointer);
      patch = tether_json_array();
      tether_json *op = tether_json_object();
      op = tether_json_object_set(op, "op", tether_json_string("add"));
      op = tether_json_object_set(op, "path", tether_json_string(ptr));
      op = tether_json_object_set(op, "value", tether_json_ref(out));
      patch = tether_json_array_append(patch, op);
      free(ptr);
    }
    if (patch && e->o->mode == TT_ENGINE_APPLY) {
      /* Stays counted until the store has it. */
      e->refreshing++;
      record(e, st, "refresh", patch, on_refresh_recorded, NULL);
    } else if (patch) {
      /* Plan only looks: the run's copy changes, the store does not. */
      tether_json_error err;
      if (!tether_json_patch(&st->state, patch, &err))
        set_fatal(e, "refreshing '%s': %s", rr->path, err.message);
      tether_json_unref(patch);
    }
  }
  free(rr->pointer);
  free(rr->path);
  free(rr);
  e->refreshing--;
  refresh_done(e);
}

static void refresh_container(engine *e, store_rt *st,
                              const tether_json *container, tether_buf *ptr,
                              tether_buf *dpath) {
  const tether_json *res = tt_json_member(container, "resources");
  size_t it = 0;
  const char *key;
  size_t klen;
  tether_json *rec;
  while (res && tether_json_is_object(res) &&
         tether_json_object_next(res, &it, &key, &klen, &rec)) {
    const char *status =
        tether_json_string_value(tt_json_member(rec, "status"));
    const char *type = tether_json_string_value(tt_json_member(rec, "type"));
    const char *pname =
        tether_json_string_value(tt_json_member(rec, "provider"));
    if (!type || !pname || tt_json_member(rec, "replaces") ||
        (status && strcmp(status, "created") != 0 &&
         strcmp(status, "updated") != 0))
      continue;
    const tt_provider_decl *d = tt_deployment_find_provider(
        tt_record_scope(e->m, dpath->data ? dpath->data : ""), pname,
        strlen(pname));
    if (!d)
      continue;
    slot *sl = &e->slots[d->index];
    if (!sl->types || !type_has_operation(sl, type, "read"))
      continue;
    proc *pr = pick_proc(e, sl, false);
    refresh_req *rr = tt_calloc(1, sizeof *rr);
    rr->st = st;
    size_t mark = ptr->len;
    tether_buf_append_str(ptr, "/resources");
    tether_json_pointer_append(ptr, key, klen);
    rr->pointer = tt_strdup(ptr->data);
    ptr->len = mark;
    ptr->data[mark] = '\0';
    rr->path = dpath->len ? format("%s/%.*s", dpath->data, (int)klen, key)
                          : tt_strndup(key, klen);
    tether_json *params = tether_json_object();
    params = tether_json_object_set(
        params, "resource",
        resource_value(type, tt_json_member(rec, "inputProperties"),
                       tt_json_member(rec, "outputProperties")));
    e->refreshing++;
    send_request(e, pr, M_READ, params, on_refresh_read, rr, false);
  }
  const tether_json *deps = tt_json_member(container, "deployments");
  it = 0;
  tether_json *sub;
  while (deps && tether_json_is_object(deps) &&
         tether_json_object_next(deps, &it, &key, &klen, &sub)) {
    size_t mark = ptr->len, dmark = dpath->len;
    tether_buf_append_str(ptr, "/deployments");
    tether_json_pointer_append(ptr, key, klen);
    if (dpath->len)
      tether_buf_append_char(dpath, '/');
    tether_buf_append(dpath, key, klen);
    refresh_container(e, st, sub, ptr, dpath);
    ptr->len = mark;
    ptr->data[mark] = '\0';
    dpath->len = dmark;
    if (dpath->data)
      dpath->data[dmark] = '\0';
  }
}

static void start_refresh(engine *e) {
  e->phase = PH_REFRESHING;
  /* Held while the reads are sent, so an answer cannot end the phase
   * before the last one is out. */
  e->refreshing = 1;
  for (size_t i = 0; i < e->m->nstores; i++) {
    store_rt *st = &e->stores[i];
    if (!st->state)
      continue;
    tether_buf ptr, dpath;
    tether_buf_init(&ptr);
    tether_buf_init(&dpath);
    tether_buf_append_str(&ptr, "");
    tether_buf_append_str(&dpath, st->r->deployment->path);
    /* The walk reads a snapshot: records change only once all reads are
     * answered and the walk is over. */
    tether_json *snapshot = tether_json_ref(st->state);
    refresh_container(e, st, snapshot, &ptr, &dpath);
    tether_json_unref(snapshot);
    tether_buf_free(&ptr);
    tether_buf_free(&dpath);
  }
  e->refreshing--;
  refresh_done(e);
}

/* ---- Running the steps ---- */

static void start_step(engine *e, size_t i);
static void run_op(engine *e, step_rt *s);

static void finish_steps(engine *e) {
  if (e->steps_finished)
    return;
  e->steps_finished = true;
  begin_stop(e);
}

static void pump(engine *e) {
  if (e->pumping || e->phase != PH_RUNNING)
    return;
  e->pumping = true;
  while (!e->stop_new && e->qhead < e->qlen && e->running < e->parallelism)
    start_step(e, e->queue[e->qhead++]);
  e->pumping = false;
  if (e->running == 0 && (e->stop_new || e->qhead == e->qlen))
    finish_steps(e);
}

static void release_dependents(engine *e, step_rt *s) {
  const tt_step *t = &e->plan->steps[s->index];
  for (size_t j = 0; j < t->ndependents; j++) {
    step_rt *d = &e->steps[t->dependents[j]];
    if (d->waiting && --d->waiting == 0)
      e->queue[e->qlen++] = d->index;
  }
}

static const char *done_word(tt_action a) {
  switch (a) {
  case TT_ACTION_CREATE:
    return "created";
  case TT_ACTION_UPDATE:
    return "updated";
  case TT_ACTION_REPLACE:
    return "replaced";
  case TT_ACTION_DELETE:
    return "deleted";
  case TT_ACTION_SKIP:
  case TT_ACTION_BOOTSTRAP:
    break;
  }
  return "unchanged";
}

static void complete_step(engine *e, step_rt *s) {
  tt_step *t = &e->plan->steps[s->index];
  s->status = ST_DONE;
  if (t->resource) {
    const tether_json *out = NULL;
    switch (t->action) {
    case TT_ACTION_SKIP:
      out = tt_step_recorded_outputs(t);
      break;
    case TT_ACTION_BOOTSTRAP:
      out = e->stores[t->resource->store_index].boot_outputs;
      break;
    case TT_ACTION_CREATE:
    case TT_ACTION_UPDATE:
    case TT_ACTION_REPLACE:
      out = s->out;
      break;
    case TT_ACTION_DELETE:
      break;
    }
    if (t->action != TT_ACTION_DELETE) {
      tether_json_unref(e->outputs[t->resource->index]);
      e->outputs[t->resource->index] = object_or_empty(out);
    }
  }
  switch (t->action) {
  case TT_ACTION_SKIP:
    e->unchanged++;
    break;
  case TT_ACTION_CREATE:
    e->created++;
    break;
  case TT_ACTION_UPDATE:
    e->updated++;
    break;
  case TT_ACTION_REPLACE:
    e->replaced++;
    break;
  case TT_ACTION_DELETE:
    e->deleted++;
    break;
  case TT_ACTION_BOOTSTRAP:
    break;
  }
  if (s->nops) {
    const char *mark = t->action == TT_ACTION_DELETE ? C_RED : C_GREEN;
    say(e, "%s%s%s: %s%s after %s\n", col(e, mark), t->path,
        col(e, C_RESET), done_word(t->action),
        t->old_instance ? " (previous instance)" : "",
        took(s->started_ns).text);
  } else if (s->planned != t->action) {
    /* The plan said "known after apply" and showed a change; say why
     * nothing happened. */
    say(e, "%s: unchanged: its inputs turned out the same\n", t->path);
  }
  release_dependents(e, s);
  e->running--;
  pump(e);
}

static void fail_step(engine *e, step_rt *s, const char *fmt, ...)
    TETHER_PRINTF(3, 4);
static void fail_step(engine *e, step_rt *s, const char *fmt, ...) {
  tt_step *t = &e->plan->steps[s->index];
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    free(s->error);
    s->error = msg;
  }
  s->status = ST_FAILED;
  e->failed++;
  e->stop_new = true;
  say(e, "%s%s: failed: %s%s\n", col(e, C_RED), t->path,
      s->error ? s->error : "?", col(e, C_RESET));
  e->running--;
  pump(e);
}

static const tether_json *apply_lookup(void *ctx, const tt_resource *target) {
  engine *e = ctx;
  return e->outputs[target->index];
}

static void on_refresh_depends_recorded(engine *e, void *ctx,
                                        const char *err) {
  step_rt *s = ctx;
  if (err)
    fail_step(e, s, "%s", err);
  else
    complete_step(e, s);
}

/* The store resource a step works on, when its record is one of the
 * stores this run has open: its operations go to the process holding it. */
static store_rt *own_store_of(engine *e, const tt_step *t) {
  const tt_resource *r =
      t->resource ? t->resource
                  : tt_model_find_resource(e->m, t->path, strlen(t->path));
  if (!r || !r->is_store || !t->store || r->store != t->store ||
      !t->record_pointer || strcmp(r->record_pointer, t->record_pointer) != 0)
    return NULL;
  return &e->stores[r->store_index];
}

static void start_step(engine *e, size_t i) {
  step_rt *s = &e->steps[i];
  tt_step *t = &e->plan->steps[i];
  s->status = ST_RUNNING;
  s->started_ns = tt_now_ns();
  s->planned = t->action;
  e->running++;
  if (t->resource && t->action != TT_ACTION_SKIP &&
      t->action != TT_ACTION_BOOTSTRAP) {
    tt_diag diag;
    if (tt_step_settle(t, apply_lookup, e, &diag)) {
      fail_step(e, s, "%s", diag.message);
      return;
    }
  }
  switch (t->action) {
  case TT_ACTION_BOOTSTRAP:
    complete_step(e, s);
    return;
  case TT_ACTION_SKIP:
    if (t->refresh_depends_on)
      record(e, &e->stores[t->store->store_index], "refresh",
             tt_patch_depends_on(t), on_refresh_depends_recorded, s);
    else
      complete_step(e, s);
    return;
  case TT_ACTION_CREATE:
  case TT_ACTION_UPDATE:
  case TT_ACTION_REPLACE:
  case TT_ACTION_DELETE:
    break;
  }
  s->own_store = own_store_of(e, t);
  s->nops = tt_step_ops(t, s->ops);
  s->k = 0;
  const char *what = t->old_instance ? "deleting its previous instance"
                     : t->action == TT_ACTION_REPLACE
                         ? (t->order == TT_REPLACE_DELETE_FIRST
                                ? "replacing (delete first)"
                                : "replacing")
                         : tt_op_progress(s->ops[0]);
  say(e, "%s: %s...\n", t->path, what);
  run_op(e, s);
}

static void after_store_reread(engine *e, req *q, const tt_reply *r) {
  step_rt *s = q->ctx;
  store_rt *st = s->own_store;
  if (r->kind == TT_REPLY_RESULT) {
    const tether_json *state = tt_json_member(r->result, "state");
    uint64_t index = 0;
    if (state && tether_json_is_object(state) &&
        tether_json_get_uint(tt_json_member(r->result, "index"), &index)) {
      size_t held =
          tether_json_object_size(tt_json_member(state, "resources")) +
          tether_json_object_size(tt_json_member(state, "deployments"));
      st->state = tether_json_ref(state);
      st->index = index;
      if (held) {
        fail_step(e, s,
                  "state store '%s' already holds records that were not "
                  "known when this run planned; run apply again",
                  st->r->path);
        return;
      }
      complete_step(e, s);
      return;
    }
  }
  char *line = r->kind == TT_REPLY_RESULT
                   ? format("state_read answered without a state and index")
                   : reply_line(r);
  fail_step(e, s, "opening the new state store: %s", line);
  free(line);
}

static void finish_ops(engine *e, step_rt *s) {
  tt_step *t = &e->plan->steps[s->index];
  store_rt *st = s->own_store;
  if (st && t->action != TT_ACTION_DELETE) {
    /* The store exists now as created or updated: state operations
     * describe it so, and a new one is opened before anything is recorded
     * in it. */
    tether_json_unref(st->resource);
    st->resource = resource_value(t->type, t->inputs.inputs, s->out);
    if (!st->state) {
      proc *pr = pick_proc(e, st->sl, true);
      if (!pr) {
        fail_step(e, s, "the process of state store '%s' has ended",
                  st->r->path);
        return;
      }
      tether_json *params = tether_json_object();
      params = tether_json_object_set(params, "resource",
                                      tether_json_ref(st->resource));
      send_request(e, pr, M_STATE_READ, params, after_store_reread, s, false);
      return;
    }
  }
  complete_step(e, s);
}

static void on_result_recorded(engine *e, void *ctx, const char *err) {
  step_rt *s = ctx;
  if (err) {
    fail_step(e, s, "the provider succeeded, but %s", err);
    return;
  }
  s->k++;
  run_op(e, s);
}

static void on_failure_recorded(engine *e, void *ctx, const char *err) {
  step_rt *s = ctx;
  if (err) {
    char *both = format("%s; and %s", s->error, err);
    free(s->error);
    s->error = both;
  }
  fail_step(e, s, NULL);
}

static tether_json *status_patch(const tt_step *t, const char *status) {
  tether_json *op = tether_json_object();
  op = tether_json_object_set(op, "op", tether_json_string("add"));
  op = tether_json_object_set(
      op, "path", tether_json_stringf("%s/status", t->record_pointer));
  op = tether_json_object_set(op, "value", tether_json_string(status));
  return op;
}

static void on_op_reply(engine *e, req *q, const tt_reply *r) {
  step_rt *s = q->ctx;
  tt_step *t = &e->plan->steps[s->index];
  store_rt *st = &e->stores[t->store->store_index];
  tt_op op = s->ops[s->k];
  s->call = NULL;
  if (r->kind == TT_REPLY_RESULT) {
    if (op != TT_OP_DELETE) {
      tether_json_unref(s->out);
      s->out = object_or_empty(tt_json_member(r->result, "outputProperties"));
    }
    static const char *const result_event[] = {"created", "updated",
                                               "deleted"};
    record(e, st, result_event[op], tt_patch_result(t, op, s->out),
           on_result_recorded, s);
    return;
  }
  bool cancelled = r->kind == TT_REPLY_ERROR && r->code == TETHER_ERR_CANCELLED;
  if (!cancelled)
    report_reply(t->path, r);
  free(s->error);
  s->error = cancelled ? format("%s was cancelled", tt_op_name(op))
                       : reply_line(r);
  const tether_json *partial =
      r->kind == TT_REPLY_ERROR
          ? tt_json_member(tt_json_member(r->data, "partial"),
                           "outputProperties")
          : NULL;
  if (partial && tether_json_is_object(partial) && op != TT_OP_DELETE) {
    /* The resource exists in the state the provider reports, which is not
     * what was asked: record it so, marked for another update. */
    tether_json *patch = tt_patch_result(t, op, partial);
    patch = tether_json_array_append(patch, status_patch(t, "updating"));
    record(e, st, "partial", patch, on_failure_recorded, s);
    return;
  }
  if (r->kind == TT_REPLY_ERROR || r->latency_ns == 0) {
    /* The provider said no, or never got the request: nothing changed. */
    record(e, st, "revert", tt_patch_revert(t, op), on_failure_recorded, s);
    return;
  }
  /* No answer: the provider may have done part of it. The intent stays on
   * record and the next apply resumes the operation. */
  on_failure_recorded(e, s, NULL);
}

static void call_provider(engine *e, step_rt *s) {
  tt_step *t = &e->plan->steps[s->index];
  tt_op op = s->ops[s->k];
  const tt_provider_decl *decl =
      op == TT_OP_DELETE ? t->old_provider : t->provider;
  slot *sl = &e->slots[decl->index];
  bool for_store = s->own_store && s->own_store->sl == sl;
  proc *pr = pick_proc(e, sl, for_store);
  if (!pr) {
    free(s->error);
    s->error = format("the process of provider '%s' that holds state store "
                      "'%s' has ended",
                      decl->name, s->own_store->r->path);
    record(e, &e->stores[t->store->store_index], "revert",
           tt_patch_revert(t, op), on_failure_recorded, s);
    return;
  }
  tether_json *params = tether_json_object();
  switch (op) {
  case TT_OP_CREATE:
    params = tether_json_object_set(params, "type", tether_json_string(t->type));
    params = tether_json_object_set(params, "inputProperties",
                                    object_or_empty(t->inputs.inputs));
    params = tether_json_object_set(params, "isStateful", tether_json_bool(true));
    break;
  case TT_OP_UPDATE:
    params = tether_json_object_set(params, "resource", tt_step_old_resource(t));
    params = tether_json_object_set(params, "inputProperties",
                                    object_or_empty(t->inputs.inputs));
    break;
  case TT_OP_DELETE:
    params = tether_json_object_set(params, "resource", tt_step_old_resource(t));
    break;
  }
  s->call = send_request(e, pr, op_method(op), params, on_op_reply, s, true);
}

static void on_intent_recorded(engine *e, void *ctx, const char *err) {
  step_rt *s = ctx;
  tt_step *t = &e->plan->steps[s->index];
  if (err) {
    fail_step(e, s, "%s", err);
    return;
  }
  if (e->interrupted) {
    /* Interrupted between recording the intent and calling the provider:
     * the call is not made, and the intent is taken back. */
    free(s->error);
    s->error = format("%s was not started: tether was interrupted",
                      tt_op_name(s->ops[s->k]));
    record(e, &e->stores[t->store->store_index], "revert",
           tt_patch_revert(t, s->ops[s->k]), on_failure_recorded, s);
    return;
  }
  call_provider(e, s);
}

static void run_op(engine *e, step_rt *s) {
  tt_step *t = &e->plan->steps[s->index];
  if (s->k == s->nops) {
    finish_ops(e, s);
    return;
  }
  if (e->interrupted) {
    fail_step(e, s, "interrupted after %s; the next apply finishes it",
              tt_op_name(s->ops[s->k - 1]));
    return;
  }
  store_rt *st = &e->stores[t->store->store_index];
  tt_op op = s->ops[s->k];
  record(e, st, tt_op_name(op), tt_patch_intent(t, op, st->state),
         on_intent_recorded, s);
}

/* ---- Planning ---- */

static void print_plan_text(engine *e) {
  tether_buf b;
  tether_buf_init(&b);
  tt_plan_render_text(e->plan, &b);
  if (!e->o->color) {
    fputs(b.data, e->hout);
  } else {
    for (char *line = b.data; line && *line;) {
      char *nl = strchr(line, '\n');
      size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
      const char *c = strncmp(line, "  +", 3) == 0   ? C_GREEN
                      : strncmp(line, "  ~", 3) == 0 ? C_YELLOW
                      : strncmp(line, "-/+", 3) == 0 ? C_CYAN
                      : strncmp(line, "  -", 3) == 0 ? C_RED
                                                      : C_BOLD;
      fprintf(e->hout, "%s%.*s%s\n", c, (int)(nl ? len - 1 : len), line,
              C_RESET);
      line += len;
    }
  }
  fflush(e->hout);
  tether_buf_free(&b);
}

static void make_plan(engine *e) {
  const tt_model *m = e->m;
  const tether_json **states = tt_calloc(m->nstores + 1, sizeof *states);
  const tether_json **boot = tt_calloc(m->nstores + 1, sizeof *boot);
  const tether_json **types = tt_calloc(m->nproviders + 1, sizeof *types);
  for (size_t i = 0; i < m->nstores; i++) {
    states[i] = e->stores[i].state;
    boot[i] = e->stores[i].boot_outputs;
  }
  if (e->o->mode == TT_ENGINE_STATE) {
    e->status = e->o->on_states(m, states, e->o->ctx);
    free(states);
    free(boot);
    free(types);
    begin_stop(e);
    return;
  }
  tt_plan_input in = {.model = m,
                      .states = states,
                      .bootstrap_outputs = boot,
                      .provider_types = types_by_provider(e, types),
                      .destroy = e->o->mode == TT_ENGINE_DESTROY};
  tt_diag diag;
  e->plan = tt_plan_build(&in, &diag);
  free(states);
  free(boot);
  free(types);
  if (!e->plan) {
    set_fatal(e, "%s", diag.message);
    begin_stop(e);
    return;
  }
  if (e->o->mode == TT_ENGINE_PLAN) {
    if (e->o->json) {
      tether_buf b;
      tether_buf_init(&b);
      tt_plan_render_json(e->plan, &b);
      fputs(b.data, stdout);
      tether_buf_free(&b);
    } else {
      print_plan_text(e);
    }
    fflush(stdout);
    begin_stop(e);
    return;
  }
  print_plan_text(e);
  size_t n = e->plan->nsteps;
  e->steps = tt_calloc(n + 1, sizeof *e->steps);
  e->queue = tt_calloc(n + 1, sizeof *e->queue);
  e->outputs = tt_calloc(m->nresources + 1, sizeof *e->outputs);
  for (size_t i = 0; i < n; i++) {
    e->steps[i].index = i;
    e->steps[i].waiting = e->plan->steps[i].ndeps;
    if (!e->steps[i].waiting)
      e->queue[e->qlen++] = i;
  }
  e->phase = PH_RUNNING;
  pump(e);
}

static void after_open(engine *e) {
  if (e->fatal || e->interrupted) {
    begin_stop(e);
    return;
  }
  if (e->o->refresh && e->o->mode != TT_ENGINE_STATE)
    start_refresh(e);
  else
    make_plan(e);
}

/* ---- Signals and the ticker ---- */

static void cancel_in_flight(engine *e) {
  size_t n = 0;
  for (proc *pr = e->procs; pr; pr = pr->next)
    n += pr->nops;
  if (!n)
    return;
  /* Cancelling a request not yet sent runs its callback at once, which
   * changes the lists: collect first, then cancel. */
  struct target {
    tt_provider *p;
    int64_t id;
  } *targets = tt_calloc(n, sizeof *targets);
  size_t k = 0;
  for (proc *pr = e->procs; pr; pr = pr->next)
    for (req *q = pr->ops; q && k < n; q = q->next) {
      targets[k].p = pr->p;
      targets[k].id = q->id;
      k++;
    }
  for (size_t i = 0; i < k; i++)
    tt_provider_cancel(targets[i].p, targets[i].id);
  free(targets);
}

static void on_signal(uv_signal_t *h, int signum) {
  engine *e = h->data;
  const char *name = tt_signal_name(signum);
  if (e->interrupted) {
    fprintf(stderr,
            "tether: %s again: stopping every provider now; what was "
            "recorded stays, and the next apply resumes the rest\n",
            name ? name : "signal");
    tt_provider_kill_all_now();
    fflush(stdout);
    _exit(1);
  }
  e->interrupted = signum;
  e->stop_new = true;
  size_t n = 0;
  for (proc *pr = e->procs; pr; pr = pr->next)
    n += pr->nops;
  fprintf(stderr,
          "tether: interrupted by %s: cancelling %zu operation%s in flight "
          "and recording the outcome (again to stop at once)\n",
          name ? name : "signal", n, n == 1 ? "" : "s");
  switch (e->phase) {
  case PH_STARTING:
  case PH_OPENING:
  case PH_REFRESHING:
    /* Nothing has changed yet; the phase ends when its answer arrives. */
    break;
  case PH_RUNNING:
    cancel_in_flight(e);
    pump(e);
    break;
  case PH_STOPPING:
    break;
  }
}

static void on_tick(uv_timer_t *h) {
  engine *e = h->data;
  if (e->phase != PH_RUNNING)
    return;
  unsigned long long now = tt_now_ns();
  for (proc *pr = e->procs; pr; pr = pr->next)
    for (req *q = pr->ops; q; q = q->next) {
      if (now < q->next_report_ns)
        continue;
      q->next_report_ns += STILL_RUNNING_EVERY_NS;
      step_rt *s = q->ctx;
      say(e, "%s: still %s... (%llus elapsed)\n", e->plan->steps[s->index].path,
          tt_op_progress(s->ops[s->k]), (now - q->sent_ns) / 1000000000ull);
    }
}

/* ---- Setting up ---- */

size_t tt_engine_default_parallelism(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return (size_t)(n > 0 ? n : 1) * 2;
}

char *tt_engine_base_dir(const char *file) {
  char *abs = realpath(file, NULL);
  if (!abs) {
    char cwd[PATH_MAX];
    return tt_strdup(getcwd(cwd, sizeof cwd) ? cwd : ".");
  }
  char *slash = strrchr(abs, '/');
  if (slash == abs)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  return abs;
}

/* Finds every declared provider's executable before any starts: a
 * misspelt one fails the run with nothing changed. */
static const char *resolve_executables(engine *e, tt_diag *diag) {
  for (size_t i = 0; i < e->m->nproviders; i++) {
    slot *sl = &e->slots[i];
    const tt_provider_decl *d = sl->decl;
    const char *where = d->deployment->json_path;
    char *exe = NULL;
    if (strchr(d->executable, '/')) {
      const char *rel = d->executable;
      while (strncmp(rel, "./", 2) == 0)
        rel += 2;
      exe = rel[0] == '/' ? tt_strdup(rel) : format("%s/%s", e->base_dir, rel);
      struct stat stt;
      const char *why = NULL;
      if (stat(exe, &stt) != 0)
        why = strerror(errno);
      else if (!S_ISREG(stt.st_mode))
        why = "not a regular file";
      else if (access(exe, X_OK) != 0)
        why = "not executable";
      if (why) {
        tt_diag_set(diag, "%s: %s%sproviders.%s.executable: %s: %s",
                    e->m->file, where, where[0] ? "." : "", d->name, exe, why);
        free(exe);
        return diag->message;
      }
    } else {
      tether_buf err;
      tether_buf_init(&err);
      exe = tt_provider_find_executable(d->executable, &err);
      if (!exe) {
        tt_diag_set(diag, "%s: %s%sproviders.%s.executable: %s", e->m->file,
                    where, where[0] ? "." : "", d->name, err.data);
        tether_buf_free(&err);
        return diag->message;
      }
      tether_buf_free(&err);
    }
    sl->exe = exe;
    sl->argv = tt_calloc(d->nargs + 1, sizeof *sl->argv);
    for (size_t k = 0; k < d->nargs; k++)
      sl->argv[k] = d->args[k];
  }
  return NULL;
}

/* Starts the processes the first phase needs: each store provider's state
 * process, and a work process for every other provider the file uses
 * (its initialize names its types). */
static void start_providers(engine *e) {
  const tt_model *m = e->m;
  for (size_t i = 0; i < m->nstores; i++) {
    slot *sl = &e->slots[m->stores[i]->provider->index];
    sl->hosts_store = true;
    e->stores[i].sl = sl;
  }
  for (size_t i = 0; i < m->nresources; i++)
    e->slots[m->resources[i]->provider->index].needed = true;
  e->phase = PH_STARTING;
  e->starting = 1;
  for (size_t i = 0; i < m->nproviders; i++) {
    slot *sl = &e->slots[i];
    if (sl->hosts_store) {
      e->starting++;
      proc_start(e, sl, true);
    } else if (sl->needed && e->o->mode != TT_ENGINE_STATE) {
      e->starting++;
      proc_start(e, sl, false);
    }
  }
  if (--e->starting == 0)
    after_start(e);
}

static void print_stats(engine *e) {
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double host_cpu = (double)self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6 +
                    (double)self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6;
  double prov_cpu = (double)children.ru_utime.tv_sec +
                    children.ru_utime.tv_usec / 1e6 +
                    (double)children.ru_stime.tv_sec +
                    children.ru_stime.tv_usec / 1e6;
  double wall_ms = seconds_since(e->t0) * 1000;
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_printf(&b,
                    "tether-stats: {\"wall_ms\":%.1f,\"host_cpu_ms\":%.1f,"
                    "\"provider_cpu_ms\":%.1f,\"operations_busy_ms\":%.1f,"
                    "\"state_writes_busy_ms\":%.1f,\"no_request_ms\":%.1f,"
                    "\"processes\":%llu,\"requests\":{",
                    wall_ms, host_cpu * 1000, prov_cpu * 1000,
                    (double)e->st.ops.total_ns / 1e6,
                    (double)e->st.events.total_ns / 1e6,
                    wall_ms - (double)e->st.any.total_ns / 1e6,
                    e->st.count[M_INITIALIZE]);
  bool first = true;
  for (int m = 0; m < M_COUNT; m++) {
    if (!e->st.count[m])
      continue;
    tether_buf_printf(&b, "%s\"%s\":%llu", first ? "" : ",",
                      method_name((method_id)m), e->st.count[m]);
    first = false;
  }
  tether_buf_append_str(&b, "},\"latency_ms\":{");
  first = true;
  for (int m = 0; m < M_COUNT; m++) {
    if (!e->st.count[m] || m == M_INITIALIZE)
      continue;
    tether_buf_printf(&b, "%s\"%s\":%.1f", first ? "" : ",",
                      method_name((method_id)m),
                      (double)e->st.latency_ns[m] / 1e6);
    first = false;
  }
  tether_buf_append_str(&b, "}}\n");
  fputs(b.data, stderr);
  tether_buf_free(&b);
}

/* The closing summary, naming every failed resource, and the exit
 * status. */
static int summarize(engine *e) {
  const char *verb = e->o->mode == TT_ENGINE_DESTROY ? "Destroy" : "Apply";
  size_t not_run = 0;
  for (size_t i = 0; e->plan && e->steps && i < e->plan->nsteps; i++)
    if (e->steps[i].status == ST_WAITING &&
        e->plan->steps[i].action != TT_ACTION_BOOTSTRAP)
      not_run++;
  bool ok = !e->failed && !not_run && !e->interrupted;
  say(e, "%s%s %s after %s: %zu created, %zu updated, %zu replaced, %zu "
         "deleted, %zu unchanged",
      col(e, ok ? C_BOLD C_GREEN : C_BOLD C_RED), verb,
      ok ? "complete" : e->interrupted ? "interrupted" : "failed",
      took(e->t0).text, e->created, e->updated, e->replaced, e->deleted,
      e->unchanged);
  if (e->failed)
    say(e, ", %zu failed", e->failed);
  if (not_run)
    say(e, ", %zu not run", not_run);
  say(e, ".%s\n", col(e, C_RESET));
  for (size_t i = 0; e->steps && i < e->plan->nsteps; i++)
    if (e->steps[i].status == ST_FAILED)
      say(e, "  %s: %s\n", e->plan->steps[i].path,
          e->steps[i].error ? e->steps[i].error : "failed");
  if (e->o->json) {
    printf("{\"created\":%zu,\"updated\":%zu,\"replaced\":%zu,"
           "\"deleted\":%zu,\"unchanged\":%zu,\"failed\":%zu}\n",
           e->created, e->updated, e->replaced, e->deleted, e->unchanged,
           e->failed);
    fflush(stdout);
  }
  return ok ? 0 : 1;
}

static void engine_free(engine *e) {
  for (proc *pr = e->procs; pr;) {
    proc *next = pr->next;
    free(pr);
    pr = next;
  }
  for (size_t i = 0; e->m && i < e->m->nproviders; i++) {
    free(e->slots[i].exe);
    free(e->slots[i].argv);
    free(e->slots[i].work);
    tether_json_unref(e->slots[i].types);
  }
  free(e->slots);
  for (size_t i = 0; e->m && i < e->m->nstores; i++) {
    tether_json_unref(e->stores[i].state);
    tether_json_unref(e->stores[i].resource);
    tether_json_unref(e->stores[i].boot_outputs);
    free(e->stores[i].broken);
  }
  free(e->stores);
  if (e->steps)
    for (size_t i = 0; i < e->plan->nsteps; i++) {
      tether_json_unref(e->steps[i].out);
      free(e->steps[i].error);
    }
  free(e->steps);
  free(e->queue);
  for (size_t i = 0; e->outputs && i < e->m->nresources; i++)
    tether_json_unref(e->outputs[i]);
  free(e->outputs);
  tt_plan_free(e->plan);
  tt_model_free(e->m);
  free(e->base_dir);
  free(e->fatal);
}

int tt_engine_run(const tt_engine_opts *o) {
  engine E = {0};
  engine *e = &E;
  e->o = o;
  e->t0 = tt_now_ns();
  e->hout = o->json && o->mode != TT_ENGINE_PLAN ? stderr : stdout;
  e->parallelism = o->parallelism ? o->parallelism
                                  : tt_engine_default_parallelism();
  tt_diag diag;
  e->m = tt_model_load(o->file, &diag);
  if (!e->m) {
    fprintf(stderr, "tether: %s\n", diag.message);
    return 1;
  }
  e->base_dir = tt_engine_base_dir(o->file);
  e->slots = tt_calloc(e->m->nproviders + 1, sizeof *e->slots);
  for (size_t i = 0; i < e->m->nproviders; i++)
    e->slots[i].decl = e->m->providers[i];
  e->stores = tt_calloc(e->m->nstores + 1, sizeof *e->stores);
  for (size_t i = 0; i < e->m->nstores; i++)
    e->stores[i].r = e->m->stores[i];
  if (resolve_executables(e, &diag)) {
    fprintf(stderr, "tether: %s\n", diag.message);
    engine_free(e);
    return 1;
  }

  uv_loop_init(&e->loop);
  uv_signal_init(&e->loop, &e->sigint);
  uv_signal_init(&e->loop, &e->sigterm);
  e->sigint.data = e->sigterm.data = e;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&e->sigint);
  uv_unref((uv_handle_t *)&e->sigterm);
  uv_timer_init(&e->loop, &e->ticker);
  e->ticker.data = e;
  /* A quarter second, so "10s elapsed" comes out at 10 s, not 11. */
  uv_timer_start(&e->ticker, on_tick, 250, 250);
  uv_unref((uv_handle_t *)&e->ticker);

  start_providers(e);
  uv_run(&e->loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&e->sigint, NULL);
  uv_close((uv_handle_t *)&e->sigterm, NULL);
  uv_close((uv_handle_t *)&e->ticker, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);

  int status;
  if (e->fatal) {
    fprintf(stderr, "tether: %s\n", e->fatal);
    status = 1;
  } else if (e->interrupted && !e->steps) {
    fprintf(stderr, "tether: interrupted by %s before any resource changed\n",
            tt_signal_name(e->interrupted));
    status = 1;
  } else if (o->mode == TT_ENGINE_APPLY || o->mode == TT_ENGINE_DESTROY) {
    status = e->steps ? summarize(e) : 1;
  } else if (e->interrupted) {
    fprintf(stderr, "tether: interrupted\n");
    status = 1;
  } else {
    status = e->status;
  }
  if (getenv("TETHER_STATS") && strcmp(getenv("TETHER_STATS"), "1") == 0)
    print_stats(e);
  engine_free(e);
  return status;
}
