/*
 * run.c: `tether run`, one provider driven in isolation (see run.h).
 *
 * The load test (--repeat N --pipeline K) is the hot path the benchmark
 * measures: the params are serialized once, each answer's callback sends
 * the next request straight away, and latencies go into one growing array.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "json_internal.h"
#include "provider.h"
#include "run.h"
#include "util.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

#define MAX_REPEAT 1000000000ull
#define MAX_SECONDS 1e7

static const char usage_text[] =
    "usage: tether run OPERATION --provider-exe EXE --type TYPE [options]\n"
    "\n"
    "Drives one provider in isolation and prints the result as JSON.\n"
    "\n"
    "operations: create, update, delete, read, state-read, state-event\n"
    "\n"
    "  --provider-exe EXE            the provider (a path, or a name found next\n"
    "                                to tether or on PATH)\n"
    "  --provider-arg ARG            an argument for it (repeatable)\n"
    "  --type TYPE                   the resource type\n"
    "  --input-str K V               input K is the string V (repeatable)\n"
    "  --input-json K JSON           input K is the JSON value (repeatable)\n"
    "  --inputs-json OBJ             all inputs at once; --input-* add to it\n"
    "  --stateful                    create: isStateful true\n"
    "  --previous-inputs-json OBJ    update: the resource's current inputs\n"
    "  --previous-outputs-json OBJ   update: the resource's current outputs\n"
    "  --outputs-json OBJ            delete, read, state-*: its outputs\n"
    "  --event E                     state-event: the event's name\n"
    "  --host-version V              state-event: hostVersion (alias\n"
    "                                --nixops-version; default " TETHER_VERSION ")\n"
    "  --patch-json PATCH            state-event: the RFC 6902 patch\n"
    "  --expect-index N              state-event: expectIndex\n"
    "  --framing ndjson|content-length\n"
    "  --repeat N [--pipeline K]     send the request N times, K in flight,\n"
    "                                and print statistics on stderr\n"
    "  --timeout S                   per request (default none)\n"
    "  --start-timeout S             spawn to initialize answered (default 30)\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed or tether was\n"
    "interrupted, 2 usage error.\n";

/* ---- Parsing ---- */

#define OP_BIT(op) (1u << (op))
#define ALL_OPS 0x3fu
#define EXISTING_OPS                                                           \
  (OP_BIT(TT_RUN_DELETE) | OP_BIT(TT_RUN_READ) | OP_BIT(TT_RUN_STATE_READ) |   \
   OP_BIT(TT_RUN_STATE_EVENT))

enum flag_id {
  F_PROVIDER_EXE,
  F_PROVIDER_ARG,
  F_TYPE,
  F_INPUT_STR,
  F_INPUT_JSON,
  F_INPUTS_JSON,
  F_STATEFUL,
  F_PREV_INPUTS,
  F_PREV_OUTPUTS,
  F_OUTPUTS,
  F_EVENT,
  F_HOST_VERSION,
  F_PATCH,
  F_EXPECT_INDEX,
  F_FRAMING,
  F_REPEAT,
  F_PIPELINE,
  F_TIMEOUT,
  F_START_TIMEOUT,
  F_HELP,
  F_COUNT
};

static const struct flag {
  const char *name;
  enum flag_id id;
  int nvalues;
  unsigned ops; /* the operations it applies to */
} flags[] = {
    {"--provider-exe", F_PROVIDER_EXE, 1, ALL_OPS},
    {"--provider-arg", F_PROVIDER_ARG, 1, ALL_OPS},
    {"--type", F_TYPE, 1, ALL_OPS},
    {"--input-str", F_INPUT_STR, 2, ALL_OPS},
    {"--input-json", F_INPUT_JSON, 2, ALL_OPS},
    {"--inputs-json", F_INPUTS_JSON, 1, ALL_OPS},
    {"--stateful", F_STATEFUL, 0, OP_BIT(TT_RUN_CREATE)},
    {"--previous-inputs-json", F_PREV_INPUTS, 1, OP_BIT(TT_RUN_UPDATE)},
    {"--previous-outputs-json", F_PREV_OUTPUTS, 1, OP_BIT(TT_RUN_UPDATE)},
    {"--outputs-json", F_OUTPUTS, 1, EXISTING_OPS},
    {"--event", F_EVENT, 1, OP_BIT(TT_RUN_STATE_EVENT)},
    {"--host-version", F_HOST_VERSION, 1, OP_BIT(TT_RUN_STATE_EVENT)},
    {"--nixops-version", F_HOST_VERSION, 1, OP_BIT(TT_RUN_STATE_EVENT)},
    {"--patch-json", F_PATCH, 1, OP_BIT(TT_RUN_STATE_EVENT)},
    {"--expect-index", F_EXPECT_INDEX, 1, OP_BIT(TT_RUN_STATE_EVENT)},
    {"--framing", F_FRAMING, 1, ALL_OPS},
    {"--repeat", F_REPEAT, 1, ALL_OPS},
    {"--pipeline", F_PIPELINE, 1, ALL_OPS},
    {"--timeout", F_TIMEOUT, 1, ALL_OPS},
    {"--start-timeout", F_START_TIMEOUT, 1, ALL_OPS},
    {"--help", F_HELP, 0, ALL_OPS},
    {"-h", F_HELP, 0, ALL_OPS},
};

static const struct op_name {
  const char *name;
  tt_run_op op;
} op_names[] = {
    {"create", TT_RUN_CREATE},         {"update", TT_RUN_UPDATE},
    {"delete", TT_RUN_DELETE},         {"read", TT_RUN_READ},
    {"state-read", TT_RUN_STATE_READ}, {"state-event", TT_RUN_STATE_EVENT},
    {"state_read", TT_RUN_STATE_READ}, {"state_event", TT_RUN_STATE_EVENT},
};

const char *tt_run_method(tt_run_op op) {
  switch (op) {
  case TT_RUN_CREATE:
    return "create";
  case TT_RUN_UPDATE:
    return "update";
  case TT_RUN_DELETE:
    return "delete";
  case TT_RUN_READ:
    return "read";
  case TT_RUN_STATE_READ:
    return "state_read";
  case TT_RUN_STATE_EVENT:
    return "state_event";
  }
  return "?";
}

/* The operation as the user types it ("state-read"). */
static const char *op_display(tt_run_op op) {
  for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (op_names[i].op == op)
      return op_names[i].name;
  return "?";
}

static const char *usage_error(tt_run_opts *o, const char *fmt, ...)
    TETHER_PRINTF(2, 3);
static const char *usage_error(tt_run_opts *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->err, sizeof o->err, fmt, ap);
  va_end(ap);
  return o->err;
}

static const char *parse_count(tt_run_opts *o, const char *flag,
                               const char *s, uint64_t max, uint64_t *out) {
  char *end;
  if (*s < '0' || *s > '9')
    return usage_error(o, "%s needs a positive integer, got '%s'", flag, s);
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || errno || v == 0 || v > max)
    return usage_error(o, "%s needs a positive integer up to %" PRIu64
                          ", got '%s'", flag, max, s);
  *out = v;
  return NULL;
}

static const char *parse_seconds(tt_run_opts *o, const char *flag,
                                 const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > MAX_SECONDS)
    return usage_error(o, "%s needs a number of seconds above 0, got '%s'",
                       flag, s);
  uint64_t n = (uint64_t)ceil(v * 1000.0);
  *ms = n ? n : 1;
  return NULL;
}

/* Parses text as JSON for flag; want_kind < 0 accepts any kind. */
static const char *parse_json(tt_run_opts *o, const char *flag,
                              const char *key, const char *text, int want_kind,
                              tether_json **out) {
  tether_json_error e;
  tether_json *v = tether_json_parse(text, strlen(text), &e);
  /* The parser's message names the byte offset itself. */
  if (!v)
    return usage_error(o, "%s%s%s: %s", flag, key ? " " : "", key ? key : "",
                       e.message);
  if (want_kind >= 0 && tether_json_kind_of(v) != (tether_json_kind)want_kind) {
    const char *got = tether_json_kind_name(tether_json_kind_of(v));
    tether_json_unref(v);
    return usage_error(o, "%s needs a JSON %s, got %s %s", flag,
                       tether_json_kind_name((tether_json_kind)want_kind),
                       strcmp(got, "array") == 0 || strcmp(got, "object") == 0
                           ? "an"
                           : "a",
                       got);
  }
  tether_json_unref(*out);
  *out = v;
  return NULL;
}

static const struct flag *find_flag(const char *arg, size_t len) {
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (strlen(flags[i].name) == len && strncmp(flags[i].name, arg, len) == 0)
      return &flags[i];
  return NULL;
}

static const char *apply_flag(tt_run_opts *o, const struct flag *f,
                              const char *v1, const char *v2,
                              tether_json **base_inputs,
                              tether_json **members, size_t *nargs) {
  tether_json *value = NULL;
  const char *err = NULL;
  switch (f->id) {
  case F_PROVIDER_EXE:
    o->provider_exe = v1;
    return NULL;
  case F_PROVIDER_ARG:
    o->provider_args = tt_realloc(o->provider_args,
                                  (*nargs + 2) * sizeof *o->provider_args);
    o->provider_args[(*nargs)++] = v1;
    o->provider_args[*nargs] = NULL;
    return NULL;
  case F_TYPE:
    o->type = v1;
    return NULL;
  case F_INPUT_STR:
    *members = tether_json_object_set(*members, v1, tether_json_string(v2));
    return NULL;
  case F_INPUT_JSON:
    err = parse_json(o, f->name, v1, v2, -1, &value);
    if (!err)
      *members = tether_json_object_set(*members, v1, value);
    return err;
  case F_INPUTS_JSON:
    return parse_json(o, f->name, NULL, v1, TETHER_JSON_OBJECT, base_inputs);
  case F_STATEFUL:
    o->stateful = true;
    return NULL;
  case F_PREV_INPUTS:
    return parse_json(o, f->name, NULL, v1, TETHER_JSON_OBJECT, &o->prev_inputs);
  case F_PREV_OUTPUTS:
    return parse_json(o, f->name, NULL, v1, TETHER_JSON_OBJECT,
                      &o->prev_outputs);
  case F_OUTPUTS:
    return parse_json(o, f->name, NULL, v1, TETHER_JSON_OBJECT, &o->outputs);
  case F_EVENT:
    o->event = v1;
    return NULL;
  case F_HOST_VERSION:
    o->host_version = v1;
    return NULL;
  case F_PATCH:
    return parse_json(o, f->name, NULL, v1, TETHER_JSON_ARRAY, &o->patch);
  case F_EXPECT_INDEX: {
    char *end;
    errno = 0;
    if (*v1 < '0' || *v1 > '9')
      return usage_error(o, "%s needs an integer >= 0, got '%s'", f->name, v1);
    unsigned long long n = strtoull(v1, &end, 10);
    if (*end || errno || n > (unsigned long long)INT64_MAX)
      return usage_error(o, "%s needs an integer >= 0, got '%s'", f->name, v1);
    o->expect_index = n;
    o->has_expect_index = true;
    return NULL;
  }
  case F_FRAMING: {
    tt_framing fr;
    if (tt_framing_parse(v1, &fr) != 0 || fr == TT_FRAMING_DETECT)
      return usage_error(o, "%s needs ndjson or content-length, got '%s'",
                         f->name, v1);
    o->framing = fr;
    return NULL;
  }
  case F_REPEAT:
    return parse_count(o, f->name, v1, MAX_REPEAT, &o->repeat);
  case F_PIPELINE:
    return parse_count(o, f->name, v1, 1u << 20, &o->pipeline);
  case F_TIMEOUT:
    return parse_seconds(o, f->name, v1, &o->timeout_ms);
  case F_START_TIMEOUT:
    return parse_seconds(o, f->name, v1, &o->start_timeout_ms);
  case F_HELP:
    o->help = true;
    return NULL;
  case F_COUNT:
    break;
  }
  return usage_error(o, "internal error: unhandled flag %s", f->name);
}

const char *tt_run_parse(int argc, char **argv, tt_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->framing = TT_FRAMING_NDJSON;
  o->pipeline = 1;
  o->host_version = TETHER_VERSION;
  bool has_op = false;
  const struct flag *seen[F_COUNT] = {0};
  tether_json *base_inputs = NULL;
  tether_json *members = tether_json_object();
  size_t nargs = 0;
  const char *err = NULL;

  for (int i = 1; i < argc && !err; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-' || arg[1] == '\0') {
      if (has_op) {
        err = usage_error(o, "unexpected argument '%s'", arg);
        break;
      }
      size_t k;
      for (k = 0; k < sizeof op_names / sizeof op_names[0]; k++)
        if (strcmp(op_names[k].name, arg) == 0)
          break;
      if (k == sizeof op_names / sizeof op_names[0]) {
        err = usage_error(o, "unknown operation '%s' (expected create, "
                             "update, delete, read, state-read or "
                             "state-event)", arg);
        break;
      }
      o->op = op_names[k].op;
      has_op = true;
      continue;
    }
    /* --flag=value is accepted for flags that take one value. */
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    const struct flag *f = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg));
    if (!f) {
      err = usage_error(o, "unknown flag '%s'", arg);
      break;
    }
    const char *v1 = NULL, *v2 = NULL;
    if (eq) {
      if (f->nvalues != 1) {
        err = usage_error(o, "%s does not take '=VALUE'", f->name);
        break;
      }
      v1 = eq + 1;
    } else if (f->nvalues >= 1) {
      if (i + f->nvalues >= argc) {
        err = f->nvalues == 2
                  ? usage_error(o, "%s needs two values: KEY VALUE", f->name)
                  : usage_error(o, "%s needs a value", f->name);
        break;
      }
      v1 = argv[++i];
      if (f->nvalues == 2)
        v2 = argv[++i];
    }
    seen[f->id] = f;
    err = apply_flag(o, f, v1, v2, &base_inputs, &members, &nargs);
  }

  if (!err && !o->help) {
    if (!has_op)
      err = usage_error(o, "missing the operation: create, update, delete, "
                           "read, state-read or state-event");
    /* A flag another operation uses is ignored with a warning rather than
     * refused: scripts pass the same resource flags to every operation. */
    for (int id = 0; !err && id < F_COUNT; id++) {
      if (!seen[id] || (seen[id]->ops & OP_BIT(o->op)))
        continue;
      size_t used = strlen(o->warnings);
      snprintf(o->warnings + used, sizeof o->warnings - used,
               "%s does not apply to %s; ignored\n", seen[id]->name,
               op_display(o->op));
    }
    if (!err && !o->provider_exe)
      err = usage_error(o, "--provider-exe is required");
    if (!err && !o->type)
      err = usage_error(o, "--type is required");
    if (!err && o->op == TT_RUN_STATE_EVENT && !o->event)
      err = usage_error(o, "state-event needs --event");
    if (!err && o->op == TT_RUN_STATE_EVENT && !o->patch)
      err = usage_error(o, "state-event needs --patch-json");
    if (!err && seen[F_PIPELINE] && !o->repeat)
      err = usage_error(o, "--pipeline needs --repeat");
  }

  /* The inputs: --inputs-json, then each --input-* on top, in order. */
  o->inputs = base_inputs ? base_inputs : tether_json_object();
  size_t it = 0;
  const char *key;
  size_t klen;
  tether_json *v;
  while (tether_json_object_next(members, &it, &key, &klen, &v))
    o->inputs = tether_json_object_setn(o->inputs, key, klen, tether_json_ref(v));
  tether_json_unref(members);
  return err;
}

void tt_run_opts_free(tt_run_opts *o) {
  tether_json_unref(o->inputs);
  tether_json_unref(o->outputs);
  tether_json_unref(o->prev_inputs);
  tether_json_unref(o->prev_outputs);
  tether_json_unref(o->patch);
  free(o->provider_args);
  o->inputs = o->outputs = o->prev_inputs = o->prev_outputs = o->patch = NULL;
  o->provider_args = NULL;
}

/* ---- The request ---- */

static tether_json *or_empty(const tether_json *v) {
  return v ? tether_json_ref(v) : tether_json_object();
}

static tether_json *resource(const char *type, const tether_json *inputs,
                             const tether_json *outputs) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "type", tether_json_string(type));
  r = tether_json_object_set(r, "inputProperties", or_empty(inputs));
  r = tether_json_object_set(r, "outputProperties", or_empty(outputs));
  return r;
}

tether_json *tt_run_params(const tt_run_opts *o) {
  tether_json *p = tether_json_object();
  switch (o->op) {
  case TT_RUN_CREATE:
    p = tether_json_object_set(p, "type", tether_json_string(o->type));
    p = tether_json_object_set(p, "inputProperties", or_empty(o->inputs));
    p = tether_json_object_set(p, "isStateful", tether_json_bool(o->stateful));
    return p;
  case TT_RUN_UPDATE:
    p = tether_json_object_set(
        p, "resource", resource(o->type, o->prev_inputs, o->prev_outputs));
    p = tether_json_object_set(p, "inputProperties", or_empty(o->inputs));
    return p;
  case TT_RUN_DELETE:
  case TT_RUN_READ:
  case TT_RUN_STATE_READ:
    return tether_json_object_set(p, "resource",
                                  resource(o->type, o->inputs, o->outputs));
  case TT_RUN_STATE_EVENT:
    p = tether_json_object_set(p, "resource",
                               resource(o->type, o->inputs, o->outputs));
    p = tether_json_object_set(p, "event", tether_json_string(o->event ? o->event : ""));
    p = tether_json_object_set(p, "hostVersion",
                               tether_json_string(o->host_version));
    p = tether_json_object_set(p, "patch", o->patch ? tether_json_ref(o->patch)
                                                    : tether_json_array());
    if (o->has_expect_index)
      p = tether_json_object_set(p, "expectIndex",
                                 tether_json_uint(o->expect_index));
    return p;
  }
  return p;
}

/* ---- Running ---- */

struct run {
  const tt_run_opts *o;
  uv_loop_t *loop;
  tt_provider *p;
  uv_signal_t sigint, sigterm;
  const char *method;
  char *params;
  size_t params_len;
  uint64_t total; /* requests to send */
  uint64_t sent, answered;
  unsigned long long t_first, t_last;
  unsigned long long *latency; /* ns, one per answered request */
  size_t nlatency, latency_cap;
  tether_json *result; /* the last answer's result */
  tether_buf failure;  /* the first failure, ready to print */
  bool ready, failed;
  int interrupted; /* the first signal, or 0 */
  /* Prints the result once the provider has been told to exit (see
   * on_print_check). */
  uv_check_t print_check;
  bool printed;
  int write_error; /* errno of a failed write of the result, or 0 */
};

static void on_reply(tt_provider *p, const tt_reply *rep, void *user);
static void on_print_check(uv_check_t *h);

static void send_one(struct run *run) {
  run->sent++;
  tt_provider_request_text(run->p, run->method, run->params, run->params_len,
                           run->o->type, run->o->timeout_ms, on_reply, run);
}

static void record_failure(struct run *run, const tt_reply *rep) {
  if (run->failed)
    return;
  run->failed = true;
  tether_buf_append_str(&run->failure, "tether: ");
  tt_reply_describe(rep, &run->failure);
}

static void on_reply(tt_provider *p, const tt_reply *rep, void *user) {
  struct run *run = user;
  run->answered++;
  if (rep->kind == TT_REPLY_RESULT) {
    if (run->nlatency == run->latency_cap) {
      run->latency_cap = run->latency_cap ? run->latency_cap * 2 : 1024;
      run->latency = tt_realloc(run->latency,
                                run->latency_cap * sizeof *run->latency);
    }
    run->latency[run->nlatency++] = rep->latency_ns;
    if (run->answered == run->total) {
      tether_json_unref(run->result);
      run->result = tether_json_ref(rep->result);
    }
  } else {
    record_failure(run, rep);
  }
  if (!run->failed && !run->interrupted && run->sent < run->total) {
    send_one(run);
    return;
  }
  if (run->answered == run->sent) {
    run->t_last = tt_now_ns();
    tt_provider_stop(p);
    uv_check_start(&run->print_check, on_print_check);
  }
}

static void on_ready(tt_provider *p, const tt_reply *failure, void *user) {
  struct run *run = user;
  if (failure) {
    record_failure(run, failure);
    return;
  }
  run->ready = true;
  run->t_first = tt_now_ns();
  uint64_t k = run->o->pipeline < run->total ? run->o->pipeline : run->total;
  for (uint64_t i = 0; i < k; i++)
    send_one(run);
}

static void on_dead(tt_provider *p, void *user) {
  struct run *run = user;
  uv_close((uv_handle_t *)&run->sigint, NULL);
  uv_close((uv_handle_t *)&run->sigterm, NULL);
  uv_close((uv_handle_t *)&run->print_check, NULL);
  tt_provider_free(p);
  run->p = NULL;
}

static void on_progress(tt_provider *p, int64_t id, void *req_user,
                        const char *message, double fraction, void *user) {
  if (fraction >= 0)
    fprintf(stderr, "[%s] progress: %s (%.0f%%)\n", tt_provider_name(p),
            message, fraction * 100.0);
  else
    fprintf(stderr, "[%s] progress: %s\n", tt_provider_name(p), message);
}

/* The first SIGINT or SIGTERM stops the provider (SIGTERM to its process
 * group, SIGKILL after the kill grace); a second one kills it outright.
 * Either way tether waits for it to be reaped and exits 1. */
static void on_signal(uv_signal_t *h, int signum) {
  struct run *run = h->data;
  const char *name = tt_signal_name(signum);
  if (!run->p)
    return;
  if (run->interrupted) {
    fprintf(stderr, "tether: %s again; killing provider '%s'\n", name,
            tt_provider_name(run->p));
    tt_provider_kill_all_now();
    return;
  }
  run->interrupted = signum;
  fprintf(stderr, "tether: interrupted by %s; stopping provider '%s'\n", name,
          tt_provider_name(run->p));
  char why[64];
  snprintf(why, sizeof why, "tether was interrupted by %s", name);
  tt_provider_terminate(run->p, why);
}

/* Moves the k-th smallest of v[0..n) to v[k], smaller ones before it and
 * larger ones after (Hoare's selection): a percentile in linear time,
 * where sorting a million latencies would take longer than the run. */
static unsigned long long select_kth(unsigned long long *v, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  while (lo < hi) {
    unsigned long long pivot = v[lo + (hi - lo) / 2];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot)
        i++;
      while (v[j] > pivot)
        j--;
      if (i <= j) {
        unsigned long long t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        if (j == 0)
          break;
        j--;
      }
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      break;
  }
  return v[k];
}

/* Nearest-rank percentile, in whole microseconds. */
static unsigned long long percentile_us(unsigned long long *v, size_t n,
                                        double pct) {
  if (n == 0)
    return 0;
  size_t rank = (size_t)ceil(pct / 100.0 * (double)n);
  if (rank < 1)
    rank = 1;
  return (select_kth(v, n, rank - 1) + 500) / 1000;
}

static void print_statistics(struct run *run) {
  double seconds = (double)(run->t_last - run->t_first) / 1e9;
  double per_s = seconds > 0 ? (double)run->nlatency / seconds : 0;
  fprintf(stderr, "requests=%zu seconds=%.3f p50_us=%llu p99_us=%llu per_s=%.0f\n",
          run->nlatency, seconds, percentile_us(run->latency, run->nlatency, 50),
          percentile_us(run->latency, run->nlatency, 99), per_s);
}

/* Prints the result (a successful run's), once. A result can be tens of
 * megabytes (a state_read), most of it one raw text: it is written from
 * where it lies (tt_json_write), not serialized into a buffer of that
 * size first, which would cost a page fault per page on top of the
 * copying. */
static void print_result(struct run *run) {
  if (run->printed)
    return;
  run->printed = true;
  bool ok = true;
  if (run->result)
    ok = tt_json_write(run->result, stdout) && putchar('\n') != EOF;
  if (fflush(stdout) != 0)
    ok = false;
  if (!ok)
    run->write_error = errno ? errno : EIO;
}

/* Runs after every turn of the loop once the last answer is in. When the
 * provider has answered shutdown and been told to exit, it spends a few
 * milliseconds ending (a process letting go of tens of megabytes) and we
 * as many printing a large result: side by side, not one after the
 * other. The exit status is decided as before, when the provider is
 * gone. */
static void on_print_check(uv_check_t *h) {
  struct run *run = h->data;
  if (run->p && tt_provider_state_of(run->p) == TT_PROVIDER_STOPPING &&
      tt_provider_pending(run->p) > 0)
    return;
  uv_check_stop(h);
  if (run->ready && !run->failed && !run->interrupted &&
      run->answered == run->total)
    print_result(run);
}

static int run_operation(const tt_run_opts *o) {
  struct run run = {0};
  run.o = o;
  run.method = tt_run_method(o->op);
  run.total = o->repeat ? o->repeat : 1;
  tether_buf_init(&run.failure);
  tether_json *params = tt_run_params(o);
  run.params = tether_json_dumps(params, &run.params_len);
  tether_json_unref(params);

  run.loop = uv_default_loop();
  uv_signal_init(run.loop, &run.sigint);
  uv_signal_init(run.loop, &run.sigterm);
  run.sigint.data = run.sigterm.data = &run;
  uv_signal_start(&run.sigint, on_signal, SIGINT);
  uv_signal_start(&run.sigterm, on_signal, SIGTERM);
  /* The signal watchers must not keep the loop alive on their own. */
  uv_unref((uv_handle_t *)&run.sigint);
  uv_unref((uv_handle_t *)&run.sigterm);
  uv_check_init(run.loop, &run.print_check);
  run.print_check.data = &run;
  uv_unref((uv_handle_t *)&run.print_check);

  tt_provider_config cfg = {
      .executable = o->provider_exe,
      .args = o->provider_args,
      .framing = o->framing,
      .start_timeout_ms = o->start_timeout_ms,
      .on_ready = on_ready,
      .on_dead = on_dead,
      .on_progress = on_progress,
      .user = &run,
  };
  run.p = tt_provider_start(run.loop, &cfg);
  uv_run(run.loop, UV_RUN_DEFAULT);
  /* on_dead closed everything; this runs the last close callbacks. */
  uv_run(run.loop, UV_RUN_DEFAULT);
  uv_loop_close(run.loop);

  int status = 0;
  if (run.failed || run.interrupted) {
    if (run.failure.len)
      fputs(run.failure.data, stderr);
    if (run.interrupted && !run.failed)
      fprintf(stderr, "tether: interrupted by %s\n",
              tt_signal_name(run.interrupted));
    status = 1;
  } else if (!run.ready || run.answered < run.total) {
    fputs("tether: the provider ended before answering\n", stderr);
    status = 1;
  } else {
    print_result(&run);
    if (run.write_error) {
      fprintf(stderr, "tether: could not write the result: %s\n",
              strerror(run.write_error));
      status = 1;
    }
    if (o->repeat)
      print_statistics(&run);
  }
  fflush(stdout);
  tether_json_unref(run.result);
  tether_buf_free(&run.failure);
  free(run.latency);
  free(run.params);
  return status;
}

int tt_run_main(int argc, char **argv) {
  tt_run_opts o;
  const char *err = tt_run_parse(argc, argv, &o);
  int status;
  for (const char *w = o.warnings; !err && *w;) {
    const char *nl = strchr(w, '\n');
    fprintf(stderr, "tether run: warning: %.*s\n", (int)(nl - w), w);
    w = nl + 1;
  }
  if (err) {
    fprintf(stderr, "tether run: %s\nRun 'tether run --help' for usage.\n", err);
    status = 2;
  } else if (o.help) {
    fputs(usage_text, stdout);
    status = 0;
  } else {
    status = run_operation(&o);
  }
  tt_run_opts_free(&o);
  return status;
}
