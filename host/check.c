/*
 * check.c: `tether check`, the provider conformance suite (see check.h).
 *
 * Its reader is someone writing a provider, in any language, whose
 * provider does not work with tether yet. So every case starts a fresh
 * process (one case's breakage never shows up as another's), says in its
 * FAIL line what the SPEC wanted and quotes what came back, and is bounded
 * by a timeout. The byte-level conversation goes through check_wire.h,
 * which sends text no host would; one case runs the provider under the
 * host's own client (provider.h), to show that `tether apply` can start
 * and stop it.
 *
 * What a provider writes besides its answers is judged as it goes by:
 * anything on stdout that is not a JSON-RPC message, answers in the wrong
 * framing, `log` and `progress` notifications with the wrong shape. The
 * two cases that report those come last, since every other case feeds
 * them.
 */
#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "check.h"
#include "check_wire.h"
#include "framing.h"
#include "provider.h"
#include "rpc.h"
#include "tether/json.h"
#include "tether/protocol.h"
#include "util.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_GRACE_MS 5000u
/* How long a process gets to exit on EOF at the end of a case before it is
 * killed. */
#define TEARDOWN_MS 2000u
/* After something unexpected on stdout, how much longer the answer that
 * was being waited for gets: a provider that wrote garbage rarely answers
 * afterwards, and the case should not wait out the whole timeout. */
#define STRAY_WAIT_MS 1000u
/* The most requests the concurrency case sends at once. */
#define MAX_CONCURRENT_PROBES 64
/* How much of a value or of stray bytes a message quotes. */
#define QUOTE_MAX 160
#define DEEP_NESTING 100000
#define MAX_SECONDS 1e6

/* Names no provider has: probes for its handling of the unknown. */
#define NO_SUCH_TYPE "__tether_check_no_such_type__"
#define NO_SUCH_METHOD "tether_check/no_such_method"
#define UNKNOWN_INPUT "__tether_check_unknown__"
#define CHECK_RESOURCE "tether-check"

static const char usage_text[] =
    "usage: tether check --provider-exe EXE [options]\n"
    "\n"
    "Runs the provider conformance suite: starts the provider many times\n"
    "and checks it against the protocol (SPEC sections 1 to 5). Each case\n"
    "prints PASS NAME, FAIL NAME: what was expected, what came back, or\n"
    "SKIP NAME: why; the last line counts them.\n"
    "\n"
    "  --provider-exe EXE          the provider (a path, or a name found next\n"
    "                              to tether or on PATH)\n"
    "  --provider-arg ARG          an argument for it (repeatable)\n"
    "  --type TYPE --inputs-json OBJ [--update-inputs-json OBJ]\n"
    "                              valid inputs for TYPE (repeatable): runs\n"
    "                              its create/read/update/delete life cycle\n"
    "                              and, for a state provider, its state store\n"
    "  --cases FILE                the same as a JSON file: [{\"type\": T,\n"
    "                              \"inputs\": {..}, \"updateInputs\": {..}}]\n"
    "  --framing ndjson|content-length\n"
    "                              the framing of most cases (default ndjson;\n"
    "                              one case always checks the other)\n"
    "  --timeout S                 per request (default 10)\n"
    "  --start-timeout S           spawn to initialize answered (default 30)\n"
    "  --grace S                   for the process to exit after exit or EOF\n"
    "                              (default 5, the host's grace period)\n"
    "  --only PATTERN              run only the cases whose name matches the\n"
    "                              shell pattern (repeatable)\n"
    "  -v, --verbose               print every message sent and received, and\n"
    "                              the provider's stderr, on stderr\n"
    "\n"
    "The cases run in fresh temporary directories, which are removed at the\n"
    "end. Protocol cases: initialize, initialize-result, resource-types,\n"
    "before-initialize, protocol-version, tty, unknown-method, parse-error,\n"
    "strict-json, deep-nesting, invalid-request, notification,\n"
    "cancel-unknown-id, ids, ndjson-tolerance, content-length, concurrency,\n"
    "unknown-type, shutdown, after-shutdown, exit, eof, host-session. Per\n"
    "type: TYPE/unsupported-operations, TYPE/requires-state,\n"
    "TYPE/invalid-params, TYPE/unknown-input; with inputs: TYPE/create,\n"
    "TYPE/read, TYPE/update, TYPE/delete, TYPE/read-after-delete, and for a\n"
    "state provider TYPE/state-read-fresh, TYPE/state-event,\n"
    "TYPE/state-read-after-event, TYPE/state-expect-index,\n"
    "TYPE/state-bad-patch, TYPE/state-lock, TYPE/state-persists. Last:\n"
    "stdout-protocol-only, notifications.\n"
    "\n"
    "Exit status: 0 no case failed, 1 a case failed (or interrupted),\n"
    "2 usage error.\n";

/* ---- Options ---- */

/* Valid inputs for one resource type, from --type/--inputs-json or
 * --cases. */
struct check_case {
  const char *type;
  tether_json *inputs;
  tether_json *update_inputs; /* NULL: update with the same inputs */
  bool from_file;             /* from --cases, not from --type */
};

struct opts {
  const char *exe;
  const char **args; /* NULL-terminated */
  size_t nargs;
  tt_framing framing;
  uint64_t timeout_ms, start_timeout_ms, grace_ms;
  bool verbose, help;
  const char **only;
  size_t nonly;
  struct check_case *cases;
  size_t ncases;
  tether_json *cases_doc; /* --cases FILE: the strings of its cases */
  char err[400];
};

static const char *usage_error(struct opts *o, const char *fmt, ...)
    TETHER_PRINTF(2, 3);
static const char *usage_error(struct opts *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->err, sizeof o->err, fmt, ap);
  va_end(ap);
  return o->err;
}

static const char *parse_seconds(struct opts *o, const char *flag,
                                 const char *v, uint64_t *ms) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(d) || d <= 0 || d > MAX_SECONDS)
    return usage_error(o, "%s needs a number of seconds above 0, got '%s'",
                       flag, v);
  uint64_t n = (uint64_t)ceil(d * 1000.0);
  *ms = n ? n : 1;
  return NULL;
}

static const char *parse_object(struct opts *o, const char *flag,
                                const char *text, tether_json **out) {
  tether_json_error e;
  tether_json *v = tether_json_parse(text, strlen(text), &e);
  if (!v)
    return usage_error(o, "%s: %s", flag, e.message);
  if (!tether_json_is_object(v)) {
    tether_json_unref(v);
    return usage_error(o, "%s needs a JSON object", flag);
  }
  tether_json_unref(*out);
  *out = v;
  return NULL;
}

static struct check_case *find_case(struct opts *o, const char *type) {
  for (size_t i = 0; i < o->ncases; i++)
    if (strcmp(o->cases[i].type, type) == 0)
      return &o->cases[i];
  return NULL;
}

static const char *add_case(struct opts *o, const char *type) {
  if (!*type)
    return usage_error(o, "--type needs a non-empty name");
  if (find_case(o, type))
    return usage_error(o, "inputs for type '%s' are given twice", type);
  o->cases = tt_realloc(o->cases, (o->ncases + 1) * sizeof *o->cases);
  o->cases[o->ncases++] = (struct check_case){.type = type};
  return NULL;
}

static char *read_file(const char *path, size_t *len, tether_buf *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    tether_buf_printf(err, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  tether_buf b;
  tether_buf_init(&b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    tether_buf_append(&b, chunk, n);
  bool failed = ferror(f);
  fclose(f);
  if (failed) {
    tether_buf_printf(err, "cannot read %s", path);
    tether_buf_free(&b);
    return NULL;
  }
  if (!b.data)
    tether_buf_append_str(&b, "");
  return tether_buf_steal(&b, len);
}

/* --cases FILE: [{"type": T, "inputs": {..}, "updateInputs": {..}?}]. */
static const char *load_cases(struct opts *o, const char *path) {
  tether_buf err;
  tether_buf_init(&err);
  size_t len;
  char *text = read_file(path, &len, &err);
  if (!text) {
    usage_error(o, "--cases: %s", err.data);
    tether_buf_free(&err);
    return o->err;
  }
  tether_buf_free(&err);
  tether_json_error e;
  tether_json *doc = tether_json_parse(text, len, &e);
  free(text);
  if (!doc)
    return usage_error(o, "--cases %s: %s", path, e.message);
  if (o->cases_doc) {
    tether_json_unref(doc);
    return usage_error(o, "--cases is given twice");
  }
  o->cases_doc = doc;
  if (!tether_json_is_array(doc))
    return usage_error(o,
                       "--cases %s: want an array of {\"type\", "
                       "\"inputs\", \"updateInputs\"?}",
                       path);
  for (size_t i = 0; i < tether_json_array_size(doc); i++) {
    const tether_json *c = tether_json_array_get(doc, i);
    const tether_json *type = tether_json_object_get(c, "type");
    const tether_json *inputs = tether_json_object_get(c, "inputs");
    const tether_json *upd = tether_json_object_get(c, "updateInputs");
    if (!tether_json_is_string(type) || !tether_json_is_object(inputs) ||
        (upd && !tether_json_is_object(upd)))
      return usage_error(o,
                         "--cases %s: entry %zu needs \"type\" (a string), "
                         "\"inputs\" (an object) and optionally "
                         "\"updateInputs\" (an object)",
                         path, i);
    if (add_case(o, tether_json_string_value(type)))
      return o->err;
    struct check_case *cc = &o->cases[o->ncases - 1];
    cc->from_file = true;
    cc->inputs = tether_json_ref(inputs);
    cc->update_inputs = upd ? tether_json_ref(upd) : NULL;
  }
  return NULL;
}

static const char *const value_flags[] = {
    "--provider-exe",       "--provider-arg", "--framing", "--timeout",
    "--start-timeout",      "--grace",        "--type",    "--inputs-json",
    "--update-inputs-json", "--cases",        "--only"};

static bool takes_value(const char *flag, size_t len) {
  for (size_t i = 0; i < sizeof value_flags / sizeof value_flags[0]; i++)
    if (strlen(value_flags[i]) == len &&
        strncmp(value_flags[i], flag, len) == 0)
      return true;
  return false;
}

static const char *apply_flag(struct opts *o, const char *flag, const char *v) {
  struct check_case *last = o->ncases ? &o->cases[o->ncases - 1] : NULL;
  if (strcmp(flag, "--provider-exe") == 0) {
    o->exe = v;
  } else if (strcmp(flag, "--provider-arg") == 0) {
    o->args = tt_realloc(o->args, (o->nargs + 2) * sizeof *o->args);
    o->args[o->nargs++] = v;
    o->args[o->nargs] = NULL;
  } else if (strcmp(flag, "--framing") == 0) {
    if (tt_framing_parse(v, &o->framing) != 0 ||
        o->framing == TT_FRAMING_DETECT)
      return usage_error(o,
                         "--framing needs ndjson or content-length, got "
                         "'%s'",
                         v);
  } else if (strcmp(flag, "--timeout") == 0) {
    return parse_seconds(o, flag, v, &o->timeout_ms);
  } else if (strcmp(flag, "--start-timeout") == 0) {
    return parse_seconds(o, flag, v, &o->start_timeout_ms);
  } else if (strcmp(flag, "--grace") == 0) {
    return parse_seconds(o, flag, v, &o->grace_ms);
  } else if (strcmp(flag, "--type") == 0) {
    if (last && !last->inputs)
      return usage_error(o,
                         "--type %s needs --inputs-json before the next "
                         "--type",
                         last->type);
    return add_case(o, v);
  } else if (strcmp(flag, "--inputs-json") == 0 ||
             strcmp(flag, "--update-inputs-json") == 0) {
    bool update = strcmp(flag, "--update-inputs-json") == 0;
    if (!last || last->from_file)
      return usage_error(o, "%s needs a --type before it", flag);
    if (update ? last->update_inputs != NULL : last->inputs != NULL)
      return usage_error(o, "--type %s has %s twice", last->type, flag);
    return parse_object(o, flag, v,
                        update ? &last->update_inputs : &last->inputs);
  } else if (strcmp(flag, "--cases") == 0) {
    if (last && !last->inputs)
      return usage_error(o, "--type %s needs --inputs-json", last->type);
    return load_cases(o, v);
  } else if (strcmp(flag, "--only") == 0) {
    o->only = tt_realloc(o->only, (o->nonly + 1) * sizeof *o->only);
    o->only[o->nonly++] = v;
  } else {
    return usage_error(o, "unknown flag '%s'", flag);
  }
  return NULL;
}

static void opts_free(struct opts *o) {
  for (size_t i = 0; i < o->ncases; i++) {
    tether_json_unref(o->cases[i].inputs);
    tether_json_unref(o->cases[i].update_inputs);
  }
  free(o->cases);
  free(o->args);
  free(o->only);
  tether_json_unref(o->cases_doc);
}

/* Parses argv[1..argc) (argv[0] is "check"). NULL when fine, else a
 * one-line message in o->err. */
static const char *parse_opts(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->framing = TT_FRAMING_NDJSON;
  o->timeout_ms = DEFAULT_TIMEOUT_MS;
  o->start_timeout_ms = TT_PROVIDER_START_TIMEOUT_MS;
  o->grace_ms = DEFAULT_GRACE_MS;
  const char *err = NULL;
  for (int i = 1; i < argc && !err; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      o->help = true;
      continue;
    }
    if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
      o->verbose = true;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0)
      return usage_error(o, "%s '%s'",
                         arg[0] == '-' ? "unknown flag" : "unexpected argument",
                         arg);
    const char *eq = strchr(arg, '=');
    size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (!takes_value(arg, flen))
      return usage_error(o, "unknown flag '%.*s'", (int)flen, arg);
    char flag[32];
    snprintf(flag, sizeof flag, "%.*s", (int)flen, arg);
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
      if (i + 1 >= argc)
        return usage_error(o, "%s needs a value", flag);
      v = argv[++i];
    }
    err = apply_flag(o, flag, v);
  }
  if (err || o->help)
    return err;
  if (!o->exe)
    return usage_error(o, "--provider-exe is required");
  if (o->ncases && !o->cases[o->ncases - 1].inputs)
    return usage_error(o, "--type %s needs --inputs-json",
                       o->cases[o->ncases - 1].type);
  return NULL;
}

/* ---- The suite ---- */

enum op {
  OP_CREATE,
  OP_UPDATE,
  OP_DELETE,
  OP_READ,
  OP_STATE_READ,
  OP_STATE_EVENT,
  OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "create", "update", "delete", "read", "state_read", "state_event"};

/* A resource type as the provider declared it. */
struct type_info {
  const char *name; /* borrowed from the initialize answer */
  bool require_state, state_provider;
  bool ops[OP_COUNT];
  const struct check_case *c; /* the user's inputs for it, or NULL */
};

typedef enum verdict { V_PASS, V_FAIL, V_SKIP } verdict;

struct suite {
  struct opts *o;
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_timer_t timer;
  bool timer_fired;
  volatile bool interrupted;
  char *exe; /* resolved, absolute */
  char *tmp; /* the suite's temporary directory */
  unsigned ndirs;
  unsigned passed, failed, skipped;
  /* The case running, for findings. A copy: per-type case names are
   * built in arrays that end with their case. */
  char current[160];
  uint64_t teardown_ms;
  /* What initialize answered (owned), or NULL when it failed. */
  tether_json *init;
  struct type_info *types;
  size_t ntypes;
  uint64_t concurrency;
  char init_failure[200];
  /* Findings collected while the other cases run. */
  tether_buf stdout_finding;
  unsigned stdout_count;
  tether_buf notif_finding;
  unsigned notif_count;
};

static uint64_t now_ms(void) { return tt_now_ns() / 1000000u; }

static char *strf(const char *fmt, ...) TETHER_PRINTF(1, 2);
static char *strf(const char *fmt, ...) {
  tether_buf b;
  tether_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  char small[512];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof small) {
    tether_buf_append_str(&b, small);
  } else {
    char *big = tt_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tether_buf_append_str(&b, big);
    free(big);
  }
  return tether_buf_steal(&b, NULL);
}

/* Appends "; " between problems, so one line can hold several. */
static void problem(tether_buf *b, const char *fmt, ...) TETHER_PRINTF(2, 3);
static void problem(tether_buf *b, const char *fmt, ...) {
  if (b->len)
    tether_buf_append_str(b, "; ");
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  tether_buf_append_str(b, line);
}

/* Compact JSON, cut short: how values are quoted in messages. */
static void json_cut(tether_buf *b, const tether_json *v, size_t max) {
  if (!v) {
    tether_buf_append_str(b, "(nothing)");
    return;
  }
  size_t len;
  char *text = tether_json_dumps(v, &len);
  if (len > max) {
    tether_buf_append(b, text, max);
    tether_buf_append_str(b, "...");
  } else {
    tether_buf_append(b, text, len);
  }
  free(text);
}

static bool wanted(const struct suite *s, const char *name) {
  if (s->o->nonly == 0)
    return true;
  for (size_t i = 0; i < s->o->nonly; i++)
    if (fnmatch(s->o->only[i], name, 0) == 0)
      return true;
  return false;
}

static void begin(struct suite *s, const char *name) {
  snprintf(s->current, sizeof s->current, "%s", name);
  if (s->o->verbose && wanted(s, name))
    fprintf(stderr, "-- %s\n", name);
}

static void report(struct suite *s, const char *name, verdict v,
                   const char *detail) {
  if (!wanted(s, name))
    return;
  /* A case cut short by a signal says nothing about the provider. */
  if (s->interrupted && v != V_PASS) {
    v = V_SKIP;
    detail = "interrupted before it finished";
  }
  switch (v) {
  case V_PASS:
    s->passed++;
    printf("PASS %s\n", name);
    break;
  case V_FAIL:
    s->failed++;
    printf("FAIL %s: %s\n", name, detail && *detail ? detail : "failed");
    break;
  case V_SKIP:
    s->skipped++;
    printf("SKIP %s: %s\n", name, detail && *detail ? detail : "skipped");
    break;
  }
  fflush(stdout);
}

static void reportf(struct suite *s, const char *name, verdict v,
                    const char *fmt, ...) TETHER_PRINTF(4, 5);
static void reportf(struct suite *s, const char *name, verdict v,
                    const char *fmt, ...) {
  char detail[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  report(s, name, v, detail);
}

/* PASS when no problem was found, else FAIL naming them. Frees b. */
static void verdict_of(struct suite *s, const char *name, tether_buf *b) {
  report(s, name, b->len ? V_FAIL : V_PASS, b->data);
  tether_buf_free(b);
}

/* A case's name for a resource type: "file/create". */
static const char *type_case(char *buf, size_t len, const char *type,
                             const char *what) {
  snprintf(buf, len, "%s/%s", type, what);
  return buf;
}

static char *fresh_dir(struct suite *s) {
  char *d = strf("%s/%u", s->tmp, ++s->ndirs);
  if (mkdir(d, 0700) != 0 && errno != EEXIST)
    fprintf(stderr, "tether check: cannot create %s: %s\n", d, strerror(errno));
  return d;
}

/* ---- Findings ---- */

static void record_stdout(struct suite *s, const char *fmt, ...)
    TETHER_PRINTF(2, 3);
static void record_stdout(struct suite *s, const char *fmt, ...) {
  if (s->stdout_count++ > 0)
    return;
  char line[800];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  tether_buf_printf(&s->stdout_finding, "in case %s: %s", s->current, line);
}

static void record_notification(struct suite *s, const char *what,
                                const char *text, size_t len) {
  if (s->notif_count++ > 0)
    return;
  tether_buf_printf(&s->notif_finding, "in case %s: %s: ", s->current, what);
  tt_frame_quote(&s->notif_finding, text, len, QUOTE_MAX);
}

/* Provider-to-host notifications are `log` and `progress` (SPEC section
 * 4); anything else, or either with the wrong shape, is noted. */
static void check_notification_shape(struct suite *s, const tt_msg *m,
                                     const char *text, size_t len) {
  const tether_json *p = m->params;
  if (strcmp(m->method, "log") == 0) {
    const char *level =
        tether_json_string_value(tether_json_object_get(p, "level"));
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    bool ok = false;
    for (size_t i = 0; level && i < 4; i++)
      ok = ok || strcmp(level, levels[i]) == 0;
    if (!ok)
      record_notification(s,
                          "a log notification whose level is not "
                          "error, warn, info or debug",
                          text, len);
    else if (!tether_json_is_string(tether_json_object_get(p, "message")))
      record_notification(s, "a log notification without a string message",
                          text, len);
    return;
  }
  if (strcmp(m->method, "progress") == 0) {
    const tether_json *id = tether_json_object_get(p, "id");
    const tether_json *fr = tether_json_object_get(p, "fraction");
    double f = 0;
    if (!id || !tt_rpc_id_valid(id) || tether_json_is_null(id))
      record_notification(s,
                          "a progress notification without the id of "
                          "its request",
                          text, len);
    else if (!tether_json_is_string(tether_json_object_get(p, "message")))
      record_notification(s,
                          "a progress notification without a string "
                          "message",
                          text, len);
    else if (fr && (!tether_json_get_double(fr, &f) || f < 0 || f > 1))
      record_notification(s,
                          "a progress notification whose fraction is "
                          "not a number from 0 to 1",
                          text, len);
    return;
  }
  char what[200];
  snprintf(what, sizeof what,
           "a notification \"%.60s\", which tether does not know (providers "
           "send log and progress)",
           m->method);
  record_notification(s, what, text, len);
}

/* ---- Sessions: one provider process each ---- */

struct session {
  struct suite *s;
  tt_wire *w;
  tt_framing framing;
  int64_t next_id;
};

static void trace_cb(void *user, int pid, char direction, const char *data,
                     size_t len) {
  size_t n = len > 2000 ? 2000 : len;
  fprintf(stderr, "  [%d] %c %.*s%s\n", pid, direction, (int)n, data,
          n < len ? "..." : "");
}

static bool session_start(struct suite *s, struct session *ss, const char *cwd,
                          tt_framing framing, bool tty, tether_buf *why) {
  memset(ss, 0, sizeof *ss);
  ss->s = s;
  ss->framing = framing;
  ss->next_id = 1;
  tt_wire_config cfg = {.path = s->exe,
                        .args = s->o->args,
                        .cwd = cwd,
                        .framing = framing,
                        .stdin_tty = tty,
                        .trace = s->o->verbose ? trace_cb : NULL,
                        .trace_user = s,
                        .abort = &s->interrupted};
  ss->w = tt_wire_start(&s->loop, &cfg, why);
  return ss->w != NULL;
}

static void session_end(struct session *ss) {
  if (!ss->w)
    return;
  struct suite *s = ss->s;
  tt_framing peer = tt_wire_peer_framing(ss->w);
  if (peer != TT_FRAMING_DETECT && peer != ss->framing)
    record_stdout(s,
                  "it answered in %s framing to messages sent in %s "
                  "(a provider answers in the framing of the first "
                  "message it receives)",
                  tt_framing_name(peer), tt_framing_name(ss->framing));
  /* A provider that did not exit on EOF once is killed at once from then
   * on: the eof case reports it, and waiting again would only be slow. */
  if (!tt_wire_free(ss->w, s->teardown_ms) && !s->interrupted)
    s->teardown_ms = 0;
  ss->w = NULL;
}

typedef enum answer_kind {
  ANSWER_RESULT,
  ANSWER_ERROR,
  ANSWER_NONE
} answer_kind;

/* What came back for a request. */
typedef struct answer {
  answer_kind kind;
  tt_msg m; /* RESULT, ERROR: the response */
  bool has_msg;
  size_t which;     /* the index of the id it answered, of those awaited */
  unsigned foreign; /* answers seen meanwhile with ids not awaited */
  tether_buf why;   /* NONE: what happened instead */
  tether_buf stray; /* what else came while waiting */
} answer;

static void answer_init(answer *a) {
  memset(a, 0, sizeof *a);
  a->kind = ANSWER_NONE;
  tether_buf_init(&a->why);
  tether_buf_init(&a->stray);
}

static void answer_free(answer *a) {
  if (a->has_msg)
    tt_msg_free(&a->m);
  tether_buf_free(&a->why);
  tether_buf_free(&a->stray);
  answer_init(a);
}

static void describe(const answer *a, tether_buf *b) {
  switch (a->kind) {
  case ANSWER_RESULT:
    tether_buf_append_str(b, "result ");
    json_cut(b, a->m.result, QUOTE_MAX);
    return;
  case ANSWER_ERROR: {
    const char *name = tether_error_name(a->m.error_code);
    tether_buf_printf(b, "error %d", a->m.error_code);
    if (name)
      tether_buf_printf(b, " (%s)", name);
    tether_buf_append_char(b, ' ');
    const char *msg = a->m.error_message ? a->m.error_message : "";
    tt_frame_quote(b, msg, strlen(msg), 120);
    if (a->m.error_data) {
      tether_buf_append_str(b, " with data ");
      json_cut(b, a->m.error_data, 120);
    }
    return;
  }
  case ANSWER_NONE:
    tether_buf_append_str(b, a->why.data ? a->why.data : "no answer");
    return;
  }
}

static void stray(answer *a, const char *what, const char *text, size_t len) {
  if (a->stray.len)
    tether_buf_append_str(&a->stray, "; ");
  tether_buf_append_str(&a->stray, what);
  if (text) {
    tether_buf_append_str(&a->stray, ": ");
    tt_frame_quote(&a->stray, text, len, QUOTE_MAX);
  }
}

static bool id_matches(const tether_json *got, const tether_json *const *want,
                       size_t nwant, size_t *which) {
  for (size_t i = 0; got && i < nwant; i++) {
    if (want[i] && tether_json_equal(got, want[i])) {
      *which = i;
      return true;
    }
  }
  return false;
}

/* After something unexpected, the awaited answer gets STRAY_WAIT_MS more
 * at most. */
static void hurry(uint64_t *deadline, uint64_t now) {
  if (*deadline > now + STRAY_WAIT_MS)
    *deadline = now + STRAY_WAIT_MS;
}

/* Reads what the provider writes until the answer to one of the awaited
 * ids (a JSON null awaits an answer with "id": null) comes, or time is up.
 * Notifications are judged and passed over; anything else is noted in
 * a->stray, and from then on the answer gets only STRAY_WAIT_MS more. */
static void await_answer(struct session *ss, const tether_json *const *want,
                         size_t nwant, uint64_t timeout_ms, answer *a) {
  struct suite *s = ss->s;
  uint64_t start = now_ms(), deadline = start + timeout_ms;
  answer_init(a);
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) {
      tether_buf_printf(&a->why, "no answer within %.1f s",
                        (double)(now - start) / 1000.0);
      break;
    }
    tt_wire_event ev;
    tt_wire_next(ss->w, deadline - now, &ev);
    bool done = false;
    switch (ev.kind) {
    case TT_WIRE_MESSAGE: {
      if (!tether_json_is_object(ev.json)) {
        record_stdout(s, "it wrote a JSON %s where a message object belongs",
                      tether_json_kind_name(tether_json_kind_of(ev.json)));
        stray(a, "a JSON value that is not a message object", ev.text, ev.len);
        hurry(&deadline, now);
        break;
      }
      tt_msg m;
      tt_msg_classify(tether_json_ref(ev.json), &m);
      switch (m.kind) {
      case TT_MSG_NOTIFICATION:
        check_notification_shape(s, &m, ev.text, ev.len);
        tt_msg_free(&m);
        break;
      case TT_MSG_REQUEST: {
        /* A request carrying the id just sent is most likely that very
         * request, come back: stdin echoed to stdout. */
        size_t which;
        bool echo = id_matches(m.id, want, nwant, &which);
        char what[200];
        snprintf(what, sizeof what,
                 echo ? "our own request \"%.60s\" sent back (is stdin "
                        "echoed to stdout?)"
                      : "a request \"%.60s\" sent to tether, which takes "
                        "none",
                 m.method);
        record_notification(s, what, ev.text, ev.len);
        stray(a, what, ev.text, ev.len);
        hurry(&deadline, now);
        tt_msg_free(&m);
        break;
      }
      case TT_MSG_RESPONSE:
      case TT_MSG_ERROR:
        if (id_matches(m.id, want, nwant, &a->which)) {
          a->kind = m.kind == TT_MSG_RESPONSE ? ANSWER_RESULT : ANSWER_ERROR;
          a->m = m;
          a->has_msg = true;
          done = true;
        } else {
          char idtext[80], what[160];
          tt_rpc_id_describe(m.id, idtext, sizeof idtext);
          snprintf(what, sizeof what,
                   "an answer with id %s, which no pending request has",
                   idtext);
          stray(a, what, ev.text, ev.len);
          a->foreign++;
          tt_msg_free(&m);
          hurry(&deadline, now);
        }
        break;
      case TT_MSG_INVALID: {
        size_t which;
        char what[300];
        snprintf(what, sizeof what, "not valid JSON-RPC 2.0 (%s)",
                 m.invalid_reason);
        if (id_matches(m.id, want, nwant, &which)) {
          tether_buf_printf(&a->why, "an answer that is %s: ", what);
          tt_frame_quote(&a->why, ev.text, ev.len, QUOTE_MAX);
          done = true;
        } else {
          char line[320];
          snprintf(line, sizeof line, "a message that is %s", what);
          stray(a, line, ev.text, ev.len);
          hurry(&deadline, now);
        }
        tt_msg_free(&m);
        break;
      }
      }
      break;
    }
    case TT_WIRE_GARBAGE: {
      tether_buf q;
      tether_buf_init(&q);
      tt_frame_quote(&q, ev.text, ev.len, QUOTE_MAX);
      record_stdout(s,
                    "stdout held %s, which is not JSON (%s); logs belong "
                    "on stderr or in log notifications",
                    q.data, ev.why);
      tether_buf_free(&q);
      char what[500];
      snprintf(what, sizeof what, "stdout held text that is not JSON (%.400s)",
               ev.why);
      stray(a, what, ev.text, ev.len);
      hurry(&deadline, now);
      break;
    }
    case TT_WIRE_TIMEOUT:
      if (s->interrupted)
        tether_buf_append_str(&a->why, "no answer: interrupted");
      else
        tether_buf_printf(&a->why, "no answer within %.1f s",
                          (double)(now_ms() - start) / 1000.0);
      done = true;
      break;
    case TT_WIRE_CLOSED: {
      tether_buf_printf(&a->why, "no answer: the provider %s", ev.why);
      tether_buf tail;
      tether_buf_init(&tail);
      tt_wire_stderr_tail(ss->w, &tail, 300);
      if (tail.len)
        tether_buf_printf(&a->why, "; its stderr ends: %s", tail.data);
      tether_buf_free(&tail);
      done = true;
      break;
    }
    case TT_WIRE_BROKEN:
      record_stdout(s, "its stdout could not be cut into messages: %s", ev.why);
      tether_buf_printf(&a->why,
                        "no answer: its stdout could not be cut "
                        "into messages: %s",
                        ev.why);
      done = true;
      break;
    }
    tt_wire_event_clear(&ev);
    if (done)
      break;
  }
  if (a->kind == ANSWER_NONE && tt_wire_write_failed(ss->w))
    tether_buf_append_str(&a->why, " (it had closed its stdin: writing to "
                                   "it failed)");
  if (a->kind == ANSWER_NONE && a->stray.len)
    tether_buf_printf(&a->why, "; it wrote instead: %s", a->stray.data);
}

/* Sends a request with the next integer id and waits for its answer.
 * params is consumed. */
static void call(struct session *ss, const char *method, tether_json *params,
                 uint64_t timeout_ms, answer *a) {
  int64_t id = ss->next_id++;
  tether_json *msg = tt_rpc_request(id, method, params);
  tt_wire_send(ss->w, msg);
  tether_json_unref(msg);
  tether_json *want = tether_json_int(id);
  const tether_json *wants[] = {want};
  await_answer(ss, wants, 1, timeout_ms ? timeout_ms : ss->s->o->timeout_ms, a);
  tether_json_unref(want);
}

/* Sends text as one framed message (it need not be JSON) and waits for
 * the answer with id want, or with either id of want and null when
 * or_null is set; want NULL awaits "id": null alone. */
static void probe(struct session *ss, const char *text, const char *want,
                  bool or_null, answer *a) {
  tt_wire_send_text(ss->w, text, strlen(text));
  tether_json *w = want ? tether_json_parse(want, strlen(want), NULL) : NULL;
  tether_json *null = tether_json_null();
  const tether_json *wants[2] = {w ? w : null, w && or_null ? null : NULL};
  await_answer(ss, wants, wants[1] ? 2 : 1, ss->s->o->timeout_ms, a);
  tether_json_unref(w);
  tether_json_unref(null);
}

static void send_notification(struct session *ss, const char *method,
                              tether_json *params) {
  tether_json *msg = tt_rpc_notification(method, params);
  tt_wire_send(ss->w, msg);
  tether_json_unref(msg);
}

static tether_json *initialize_params(int64_t version) {
  tether_json *host = tether_json_object();
  host = tether_json_object_set(host, "name", tether_json_string("tether"));
  host = tether_json_object_set(host, "version",
                                tether_json_string(TETHER_VERSION));
  tether_json *p = tether_json_object();
  p = tether_json_object_set(p, "protocolVersion", tether_json_int(version));
  return tether_json_object_set(p, "host", host);
}

static void session_initialize(struct session *ss, answer *a) {
  call(ss, "initialize", initialize_params(TETHER_PROTOCOL_VERSION),
       ss->s->o->start_timeout_ms, a);
}

/* Starts a fresh provider in cwd and takes it through initialize. On
 * failure, reports case `name` as failed and returns false. */
static bool open_session(struct suite *s, struct session *ss, const char *cwd,
                         tt_framing framing, const char *name) {
  tether_buf why;
  tether_buf_init(&why);
  if (!session_start(s, ss, cwd, framing, false, &why)) {
    reportf(s, name, V_FAIL, "cannot start the provider: %s", why.data);
    tether_buf_free(&why);
    return false;
  }
  tether_buf_free(&why);
  answer a;
  session_initialize(ss, &a);
  if (a.kind == ANSWER_RESULT) {
    answer_free(&a);
    return true;
  }
  tether_buf f;
  tether_buf_init(&f);
  tether_buf_append_str(&f, "a fresh provider process did not get through "
                            "initialize: ");
  describe(&a, &f);
  report(s, name, V_FAIL, f.data);
  tether_buf_free(&f);
  answer_free(&a);
  session_end(ss);
  return false;
}

/* ---- Cases ---- */

/* Whether the run wants case `name`; announces it when it does. */
static bool case_begin(struct suite *s, const char *name) {
  if (!wanted(s, name))
    return false;
  begin(s, name);
  return true;
}

/* Starts the provider for case `name` in cwd and takes it through
 * initialize, with f made ready for the case's problems. When that fails,
 * the case is reported as failed and the answer is false. */
static bool case_session(struct suite *s, const char *name, struct session *ss,
                         const char *cwd, tt_framing framing, tether_buf *f) {
  if (!open_session(s, ss, cwd, framing, name))
    return false;
  tether_buf_init(f);
  return true;
}

/* case_begin, then case_session in the suite's directory: false when the
 * case is not wanted or has been reported as failed. */
static bool case_open(struct suite *s, const char *name, struct session *ss,
                      tt_framing framing, tether_buf *f) {
  return case_begin(s, name) && case_session(s, name, ss, s->tmp, framing, f);
}

/* case_session in a directory of its own, for a case that creates
 * resources. Returns the directory, which the caller frees, or NULL when
 * the case has been reported as failed. */
static char *case_session_in_fresh_dir(struct suite *s, const char *name,
                                       struct session *ss, tether_buf *f) {
  char *dir = fresh_dir(s);
  if (!case_session(s, name, ss, dir, s->o->framing, f)) {
    free(dir);
    return NULL;
  }
  return dir;
}

/* case_begin, then a provider started but not initialized, for the cases
 * about what comes before initialize or instead of it; f is made ready for
 * the case's problems. When the provider cannot be started, the case is
 * reported as failed and the answer is false. */
static bool case_open_uninitialized(struct suite *s, const char *name,
                                    struct session *ss, tt_framing framing,
                                    tether_buf *f) {
  if (!case_begin(s, name))
    return false;
  tether_buf_init(f);
  if (!session_start(s, ss, s->tmp, framing, false, f)) {
    report(s, name, V_FAIL, f->data);
    tether_buf_free(f);
    return false;
  }
  return true;
}

/* Ends a case: the session first, so that what it finds at the end is
 * recorded, then the verdict from the problems in f, which it frees. */
static void case_close(struct suite *s, const char *name, struct session *ss,
                       tether_buf *f) {
  session_end(ss);
  verdict_of(s, name, f);
}

/* ---- Expectations ---- */

/* Each expectation appends "CTX: expected X, got Y" to f when it fails;
 * ctx names what was sent ("a read sent before initialize"), or is NULL. */
static void expected(tether_buf *f, const char *ctx) {
  problem(f, "%s%sexpected ", ctx ? ctx : "", ctx ? ": " : "");
}

static bool expect_error(const answer *a, int code, const char *ctx,
                         tether_buf *f) {
  if (a->kind == ANSWER_ERROR && a->m.error_code == code)
    return true;
  const char *name = tether_error_name(code);
  expected(f, ctx);
  tether_buf_printf(f, "error %d%s%s%s, got ", code, name ? " (" : "",
                    name ? name : "", name ? ")" : "");
  describe(a, f);
  return false;
}

static bool expect_result(const answer *a, const char *ctx, tether_buf *f) {
  if (a->kind == ANSWER_RESULT)
    return true;
  expected(f, ctx);
  tether_buf_append_str(f, "a result, got ");
  describe(a, f);
  return false;
}

static bool answered(const answer *a) { return a->kind != ANSWER_NONE; }

/* The answer's error data member `key` is a string equal to want. */
static bool expect_data_string(const answer *a, const char *key,
                               const char *want, tether_buf *f) {
  const tether_json *v = tether_json_object_get(a->m.error_data, key);
  const char *got = tether_json_string_value(v);
  if (got && strcmp(got, want) == 0)
    return true;
  problem(f, "expected data.%s \"%s\", got ", key, want);
  json_cut(f, v, 80);
  if (!a->m.error_data)
    tether_buf_append_str(f, " (the error has no data)");
  return false;
}

/* ---- Parameters ---- */

static tether_json *or_empty(const tether_json *v) {
  return v ? tether_json_ref(v) : tether_json_object();
}

static tether_json *resource_json(const char *type, const tether_json *inputs,
                                  const tether_json *outputs) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "type", tether_json_string(type));
  r = tether_json_object_set(r, "inputProperties", or_empty(inputs));
  return tether_json_object_set(r, "outputProperties", or_empty(outputs));
}

static tether_json *create_params(const char *type, const tether_json *inputs,
                                  bool stateful) {
  tether_json *p = tether_json_object();
  p = tether_json_object_set(p, "type", tether_json_string(type));
  p = tether_json_object_set(p, "inputProperties", or_empty(inputs));
  return tether_json_object_set(p, "isStateful", tether_json_bool(stateful));
}

static tether_json *state_event_params(tether_json *resource,
                                       tether_json *patch, bool expect,
                                       uint64_t expect_index) {
  tether_json *p = tether_json_object();
  p = tether_json_object_set(p, "resource", resource);
  p = tether_json_object_set(p, "event", tether_json_string("tether-check"));
  p = tether_json_object_set(p, "hostVersion",
                             tether_json_string(TETHER_VERSION));
  p = tether_json_object_set(p, "patch", patch);
  if (expect)
    p = tether_json_object_set(p, "expectIndex",
                               tether_json_uint(expect_index));
  return p;
}

/* The params of op for a resource of type with these inputs and outputs. */
static tether_json *op_params(enum op op, const char *type,
                              const tether_json *inputs,
                              const tether_json *outputs) {
  switch (op) {
  case OP_CREATE:
    return create_params(type, inputs, false);
  case OP_UPDATE: {
    tether_json *p = tether_json_object();
    p = tether_json_object_set(p, "resource",
                               resource_json(type, inputs, outputs));
    return tether_json_object_set(p, "inputProperties", or_empty(inputs));
  }
  case OP_DELETE:
  case OP_READ:
  case OP_STATE_READ:
    return tether_json_object_set(tether_json_object(), "resource",
                                  resource_json(type, inputs, outputs));
  case OP_STATE_EVENT:
    return state_event_params(resource_json(type, inputs, outputs),
                              tether_json_array(), false, 0);
  case OP_COUNT:
    break;
  }
  return tether_json_object();
}

/* A read of a type that does not exist: a request every initialized
 * provider refuses without side effects. */
static tether_json *harmless_params(void) {
  return op_params(OP_READ, NO_SUCH_TYPE, NULL, NULL);
}

/* ---- initialize ---- */

static void validate_init(const tether_json *r, tether_buf *p) {
  if (!tether_json_is_object(r)) {
    problem(p, "the result is a JSON %s, not an object",
            tether_json_kind_name(tether_json_kind_of(r)));
    return;
  }
  const tether_json *v = tether_json_object_get(r, "protocolVersion");
  int64_t n;
  if (!v) {
    problem(p, "protocolVersion is missing (want 1)");
  } else if (!tether_json_get_int(v, &n) || n != TETHER_PROTOCOL_VERSION) {
    problem(p, "protocolVersion is ");
    json_cut(p, v, 40);
    tether_buf_append_str(p, ", want 1");
  }
  const tether_json *prov = tether_json_object_get(r, "provider");
  if (!tether_json_is_object(prov)) {
    problem(p, "provider is missing or not an object {\"name\", \"version\"}");
  } else {
    const tether_json *name = tether_json_object_get(prov, "name");
    if (!tether_json_is_string(name) || tether_json_string_length(name) == 0)
      problem(p, "provider.name is missing or not a non-empty string");
    if (!tether_json_is_string(tether_json_object_get(prov, "version")))
      problem(p, "provider.version is missing or not a string");
  }
  const tether_json *c = tether_json_object_get(r, "concurrency");
  uint64_t cn;
  if (c && (!tether_json_get_uint(c, &cn) || cn == 0)) {
    problem(p, "concurrency is ");
    json_cut(p, c, 40);
    tether_buf_append_str(p, ", want an integer >= 1 (or none for 1)");
  }
  const tether_json *t = tether_json_object_get(r, "resourceTypes");
  if (!t)
    problem(p, "resourceTypes is missing (want an object {TYPE: {...}})");
  else if (!tether_json_is_object(t))
    problem(p, "resourceTypes is a JSON %s, not an object",
            tether_json_kind_name(tether_json_kind_of(t)));
}

static int op_index(const char *name) {
  for (int i = 0; i < OP_COUNT; i++)
    if (strcmp(op_names[i], name) == 0)
      return i;
  return -1;
}

static void validate_types(const tether_json *types, tether_buf *p) {
  size_t it = 0;
  const char *name;
  size_t nlen;
  tether_json *d;
  while (tether_json_object_next(types, &it, &name, &nlen, &d)) {
    if (nlen == 0)
      problem(p, "a type has an empty name");
    if (!tether_json_is_object(d)) {
      problem(p, "type %s is a JSON %s, not an object", name,
              tether_json_kind_name(tether_json_kind_of(d)));
      continue;
    }
    if (!tether_json_is_string(tether_json_object_get(d, "description")))
      problem(p, "type %s: description is missing or not a string", name);
    const tether_json *rs = tether_json_object_get(d, "requireState");
    const tether_json *sp = tether_json_object_get(d, "stateProvider");
    if (!tether_json_is_bool(rs))
      problem(p, "type %s: requireState is missing or not a boolean", name);
    if (!tether_json_is_bool(sp))
      problem(p, "type %s: stateProvider is missing or not a boolean", name);
    const tether_json *ops = tether_json_object_get(d, "operations");
    if (!tether_json_is_array(ops)) {
      problem(p, "type %s: operations is missing or not an array", name);
      continue;
    }
    bool seen[OP_COUNT] = {false};
    for (size_t i = 0; i < tether_json_array_size(ops); i++) {
      const tether_json *o = tether_json_array_get(ops, i);
      const char *s = tether_json_string_value(o);
      int k = s ? op_index(s) : -1;
      if (k < 0) {
        problem(p, "type %s: operations holds ", name);
        json_cut(p, o, 40);
        tether_buf_append_str(p, ", which is not one of create, update, "
                                 "delete, read, state_read, state_event");
      } else if (seen[k]) {
        problem(p, "type %s: operations lists %s twice", name, s);
      } else {
        seen[k] = true;
      }
    }
    bool state_ops = seen[OP_STATE_READ] && seen[OP_STATE_EVENT];
    if (tether_json_bool_value(sp) && !state_ops)
      problem(p,
              "type %s: stateProvider is true but operations lack "
              "state_read or state_event",
              name);
    if (!tether_json_bool_value(sp) &&
        (seen[OP_STATE_READ] || seen[OP_STATE_EVENT]))
      problem(p,
              "type %s: operations has state_read or state_event but "
              "stateProvider is not true",
              name);
  }
}

/* Reads the declared types, as far as they make sense, for the per-type
 * cases. */
static void collect_types(struct suite *s) {
  const tether_json *types = tether_json_object_get(s->init, "resourceTypes");
  size_t it = 0;
  const char *name;
  size_t nlen;
  tether_json *d;
  while (tether_json_object_next(types, &it, &name, &nlen, &d)) {
    if (!tether_json_is_object(d) || nlen == 0)
      continue;
    s->types = tt_realloc(s->types, (s->ntypes + 1) * sizeof *s->types);
    struct type_info *t = &s->types[s->ntypes++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->require_state =
        tether_json_bool_value(tether_json_object_get(d, "requireState"));
    t->state_provider =
        tether_json_bool_value(tether_json_object_get(d, "stateProvider"));
    const tether_json *ops = tether_json_object_get(d, "operations");
    for (size_t i = 0; i < tether_json_array_size(ops); i++) {
      const char *op = tether_json_string_value(tether_json_array_get(ops, i));
      int k = op ? op_index(op) : -1;
      if (k >= 0)
        t->ops[k] = true;
    }
    t->c = find_case(s->o, name);
  }
  uint64_t c = 1;
  const tether_json *cv = tether_json_object_get(s->init, "concurrency");
  if (cv && (!tether_json_get_uint(cv, &c) || c == 0))
    c = 1;
  s->concurrency = c;
}

static void check_initialize(struct suite *s) {
  begin(s, "initialize");
  struct session ss;
  tether_buf why;
  tether_buf_init(&why);
  if (!session_start(s, &ss, s->tmp, s->o->framing, false, &why)) {
    snprintf(s->init_failure, sizeof s->init_failure,
             "the provider cannot be started");
    reportf(s, "initialize", V_FAIL, "cannot start the provider: %s", why.data);
    tether_buf_free(&why);
    return;
  }
  tether_buf_free(&why);
  answer a;
  session_initialize(&ss, &a);
  if (a.kind != ANSWER_RESULT) {
    snprintf(s->init_failure, sizeof s->init_failure,
             "initialize failed (see the initialize case)");
    tether_buf f;
    tether_buf_init(&f);
    tether_buf_printf(&f,
                      "expected a result to initialize {\"protocolVersion"
                      "\": 1} within %.1f s (--start-timeout), got ",
                      (double)s->o->start_timeout_ms / 1000.0);
    describe(&a, &f);
    report(s, "initialize", V_FAIL, f.data);
    tether_buf_free(&f);
  } else {
    report(s, "initialize", V_PASS, NULL);
    s->init = tether_json_ref(a.m.result);
    tether_buf p;
    begin(s, "initialize-result");
    tether_buf_init(&p);
    validate_init(s->init, &p);
    verdict_of(s, "initialize-result", &p);
    begin(s, "resource-types");
    tether_buf_init(&p);
    const tether_json *types = tether_json_object_get(s->init, "resourceTypes");
    if (tether_json_is_object(types))
      validate_types(types, &p);
    else
      problem(&p, "resourceTypes is missing or not an object");
    verdict_of(s, "resource-types", &p);
    collect_types(s);
  }
  answer_free(&a);
  session_end(&ss);
}

/* Requests before initialize get -32002 (SPEC section 4), and initialize
 * still works afterwards. */
static void check_before_initialize(struct suite *s) {
  const char *name = "before-initialize";
  struct session ss;
  tether_buf f;
  if (!case_open_uninitialized(s, name, &ss, s->o->framing, &f))
    return;
  /* The first answer of a process that has just started: it gets the
   * start timeout, as initialize would. */
  answer a;
  call(&ss, "read", harmless_params(), s->o->start_timeout_ms, &a);
  expect_error(&a, TETHER_ERR_NOT_INITIALIZED, "a read sent before initialize",
               &f);
  answer_free(&a);
  if (!f.len) {
    session_initialize(&ss, &a);
    if (a.kind != ANSWER_RESULT) {
      problem(&f, "after refusing a request with -32002, initialize failed: ");
      describe(&a, &f);
    }
    answer_free(&a);
  }
  case_close(s, name, &ss, &f);
}

/* A version the provider cannot speak gets -32602 with data.supported. */
static void check_protocol_version(struct suite *s) {
  const char *name = "protocol-version";
  struct session ss;
  tether_buf f;
  if (!case_open_uninitialized(s, name, &ss, s->o->framing, &f))
    return;
  answer a;
  call(&ss, "initialize", initialize_params(999), s->o->start_timeout_ms, &a);
  if (expect_error(&a, TETHER_ERR_INVALID_PARAMS,
                   "initialize with protocolVersion 999", &f)) {
    const tether_json *sup =
        tether_json_object_get(a.m.error_data, "supported");
    bool ok = tether_json_is_array(sup) && tether_json_array_size(sup) > 0;
    int64_t n;
    for (size_t i = 0; ok && i < tether_json_array_size(sup); i++)
      ok = tether_json_get_int(tether_json_array_get(sup, i), &n);
    if (!ok) {
      problem(&f, "expected data.supported, a list of the versions it "
                  "speaks such as [1], got ");
      json_cut(&f, sup, 80);
    }
  }
  answer_free(&a);
  case_close(s, name, &ss, &f);
}

/* Started from a terminal without a host, a provider prints a one-line
 * hint on stderr and exits 1 (SPEC section 1). */
static void check_tty(struct suite *s) {
  const char *name = "tty";
  if (!case_begin(s, name))
    return;
  struct session ss;
  tether_buf f;
  tether_buf_init(&f);
  if (!session_start(s, &ss, s->tmp, s->o->framing, true, &f)) {
    /* Only a missing pseudo-terminal makes the start fail here; a provider
     * that cannot be started at all fails the initialize case. */
    reportf(s, name, V_SKIP, "%s", f.data);
    tether_buf_free(&f);
    return;
  }
  /* A process that has just started gets the start timeout to notice the
   * terminal, as it would to answer initialize. */
  int64_t status;
  int sig;
  if (!tt_wire_wait_exit(ss.w, s->o->start_timeout_ms)) {
    problem(&f,
            "with a terminal on stdin it was still running after %.1f s "
            "(--start-timeout); it should print a one-line hint on stderr "
            "and exit 1",
            (double)s->o->start_timeout_ms / 1000.0);
  } else {
    tt_wire_exited(ss.w, &status, &sig);
    char desc[96];
    tt_wire_exit_desc(ss.w, desc, sizeof desc);
    if (sig || status != 1)
      problem(&f,
              "with a terminal on stdin it %s; want exit status 1 after "
              "a one-line hint on stderr",
              desc);
    /* Stderr may still be in the pipe: give it a moment. */
    tt_wire_event ev;
    tt_wire_next(ss.w, 500, &ev);
    if (ev.kind == TT_WIRE_MESSAGE || ev.kind == TT_WIRE_GARBAGE) {
      problem(&f, "it wrote on stdout: ");
      tt_frame_quote(&f, ev.text, ev.len, 80);
    }
    tt_wire_event_clear(&ev);
    if (tt_wire_stderr_bytes(ss.w) == 0)
      problem(&f, "it wrote nothing on stderr; want a one-line hint such as "
                  "\"NAME is a tether provider; run it through tether\"");
  }
  /* Killed outright when it did not exit: how it ends on EOF is the eof
   * case's business, and a terminal gives it no EOF to see. */
  tt_wire_free(ss.w, 0);
  verdict_of(s, name, &f);
}

/* ---- JSON-RPC ---- */

static void check_unknown_method(struct suite *s) {
  const char *name = "unknown-method";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  answer a;
  call(&ss, NO_SUCH_METHOD, tether_json_object(), 0, &a);
  expect_error(&a, TETHER_ERR_METHOD_NOT_FOUND,
               "a request for method \"" NO_SUCH_METHOD "\"", &f);
  answer_free(&a);
  case_close(s, name, &ss, &f);
}

/* A follow-up request proves the provider survived what came before. */
static void expect_alive(struct session *ss, const char *after, tether_buf *f) {
  answer a;
  call(ss, NO_SUCH_METHOD, tether_json_object(), 0, &a);
  if (!answered(&a)) {
    problem(f, "after %s it did not answer the next request: ", after);
    describe(&a, f);
  }
  answer_free(&a);
}

static void check_parse_error(struct suite *s) {
  const char *name = "parse-error";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  answer a;
  probe(&ss, "{\"jsonrpc\":\"2.0\",\"id\":", NULL, false, &a);
  expect_error(&a, TETHER_ERR_PARSE,
               "the cut-off text {\"jsonrpc\":\"2.0\",\"id\": (to be "
               "answered with \"id\": null)",
               &f);
  answer_free(&a);
  expect_alive(&ss, "a parse error", &f);
  case_close(s, name, &ss, &f);
}

/* Text that is not RFC 8259 JSON is refused with -32700, however close
 * to JSON it looks (SPEC section 3). */
static void check_strict_json(struct suite *s) {
  static const struct {
    const char *what, *text, *id;
  } probes[] = {
      {"a trailing comma",
       "{\"jsonrpc\":\"2.0\",\"id\":101,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{},}",
       "101"},
      {"NaN",
       "{\"jsonrpc\":\"2.0\",\"id\":102,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{\"x\":NaN}}",
       "102"},
      {"a number with a leading zero",
       "{\"jsonrpc\":\"2.0\",\"id\":103,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{\"x\":012}}",
       "103"},
      {"invalid UTF-8 in a string",
       "{\"jsonrpc\":\"2.0\",\"id\":104,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{\"x\":\"\xff\xfe\"}}",
       "104"},
      {"a comment",
       "{\"jsonrpc\":\"2.0\",\"id\":105,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{} /* hi */}",
       "105"},
  };
  const char *name = "strict-json";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    answer a;
    probe(&ss, probes[i].text, probes[i].id, true, &a);
    if (!answered(&a)) {
      problem(&f, "for a message with %s: ", probes[i].what);
      describe(&a, &f);
      answer_free(&a);
      break;
    }
    if (!(a.kind == ANSWER_ERROR && a.m.error_code == TETHER_ERR_PARSE)) {
      problem(&f,
              "accepted a message with %s as JSON: expected error -32700 "
              "(parse error), got ",
              probes[i].what);
      describe(&a, &f);
    }
    answer_free(&a);
  }
  case_close(s, name, &ss, &f);
}

/* Nesting deeper than the parser's limit is an error, never a crash. */
static void check_deep_nesting(struct suite *s) {
  const char *name = "deep-nesting";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  tether_buf text;
  tether_buf_init(&text);
  tether_buf_append_str(
      &text, "{\"jsonrpc\":\"2.0\",\"id\":301,\"method\":\"" NO_SUCH_METHOD
             "\",\"params\":{\"deep\":");
  tether_buf_reserve(&text, 2 * DEEP_NESTING + 8);
  memset(text.data + text.len, '[', DEEP_NESTING);
  text.len += DEEP_NESTING;
  memset(text.data + text.len, ']', DEEP_NESTING);
  text.len += DEEP_NESTING;
  tether_buf_append_str(&text, "}}");
  answer a;
  probe(&ss, text.data, "301", true, &a);
  if (a.kind != ANSWER_ERROR) {
    problem(&f,
            "expected an error (such as -32700) for a message nested %d "
            "deep, got ",
            DEEP_NESTING);
    describe(&a, &f);
  }
  answer_free(&a);
  tether_buf_free(&text);
  expect_alive(&ss, "the deeply nested message", &f);
  case_close(s, name, &ss, &f);
}

static void check_invalid_request(struct suite *s) {
  static const struct {
    const char *what, *text, *id;
    int alt_code; /* also accepted, or 0 */
  } probes[] = {
      {"no \"jsonrpc\" member",
       "{\"id\":201,\"method\":\"" NO_SUCH_METHOD "\",\"params\":{}}", "201",
       0},
      {"\"jsonrpc\": \"1.0\"",
       "{\"jsonrpc\":\"1.0\",\"id\":202,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":{}}",
       "202", 0},
      {"a method that is not a string",
       "{\"jsonrpc\":\"2.0\",\"id\":203,\"method\":42,\"params\":{}}", "203",
       0},
      {"params that are neither an object nor an array",
       "{\"jsonrpc\":\"2.0\",\"id\":204,\"method\":\"" NO_SUCH_METHOD
       "\",\"params\":\"x\"}",
       "204", TETHER_ERR_INVALID_PARAMS},
  };
  const char *name = "invalid-request";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    answer a;
    probe(&ss, probes[i].text, probes[i].id, true, &a);
    bool ok = a.kind == ANSWER_ERROR &&
              (a.m.error_code == TETHER_ERR_INVALID_REQUEST ||
               (probes[i].alt_code && a.m.error_code == probes[i].alt_code));
    if (!ok) {
      problem(&f,
              "for a request with %s: expected error -32600 (invalid "
              "request), got ",
              probes[i].what);
      describe(&a, &f);
    }
    bool dead = !answered(&a);
    answer_free(&a);
    if (dead)
      break;
  }
  case_close(s, name, &ss, &f);
}

/* Sends something that must not be answered, then a request: the only
 * answer must be the request's. */
static void check_silence(struct suite *s, const char *name, const char *method,
                          tether_json *params, const char *what) {
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f)) {
    tether_json_unref(params);
    return;
  }
  send_notification(&ss, method, params);
  answer a;
  call(&ss, NO_SUCH_METHOD, tether_json_object(), 0, &a);
  if (!answered(&a)) {
    problem(&f, "after %s, it did not answer the next request: ", what);
    describe(&a, &f);
  } else if (a.stray.len) {
    problem(&f, "answered %s, which must go unanswered: %s", what,
            a.stray.data);
  }
  answer_free(&a);
  case_close(s, name, &ss, &f);
}

static void check_notification(struct suite *s) {
  check_silence(s, "notification", "tether_check/notice", tether_json_object(),
                "a notification (a message without an id)");
}

static void check_cancel_unknown(struct suite *s) {
  check_silence(s, "cancel-unknown-id", "$/cancelRequest",
                tether_json_object_set(tether_json_object(), "id",
                                       tether_json_int(987654321)),
                "$/cancelRequest for an id it never saw");
}

/* Ids come back exactly as sent: a string stays a string, and a 20-digit
 * number keeps every digit. */
static void check_ids(struct suite *s) {
  static const char *const ids[] = {"\"tether-check \\\"7\\\" \\u00e9\"",
                                    "12345678901234567890", "\"42\"", "-7"};
  const char *name = "ids";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char *text =
        strf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"" NO_SUCH_METHOD
             "\",\"params\":{}}",
             ids[i]);
    answer a;
    probe(&ss, text, ids[i], false, &a);
    free(text);
    if (!answered(&a)) {
      problem(&f, "for a request with id %s: ", ids[i]);
      describe(&a, &f);
      answer_free(&a);
      /* A wrong id is worth reporting for every probe; a dead provider
       * only once. */
      if (tt_wire_exited(ss.w, NULL, NULL))
        break;
      continue;
    }
    /* The match above compares values; the id must also keep its exact
     * text (a number parsed as a double loses digits). */
    tether_json *want = tether_json_parse(ids[i], strlen(ids[i]), NULL);
    char *sent = tether_json_dumps(want, NULL);
    char *got = tether_json_dumps(a.m.id, NULL);
    if (strcmp(sent, got) != 0)
      problem(&f, "sent id %s, the answer carried id %s", sent, got);
    free(sent);
    free(got);
    tether_json_unref(want);
    answer_free(&a);
  }
  case_close(s, name, &ss, &f);
}

/* Empty lines are skipped and a trailing \r is tolerated (SPEC section
 * 2). */
static void check_ndjson_tolerance(struct suite *s) {
  const char *name = "ndjson-tolerance";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, TT_FRAMING_NDJSON, &f))
    return;
  static const char text[] = "\n\n{\"jsonrpc\":\"2.0\",\"id\":401,\"method\":"
                             "\"" NO_SUCH_METHOD "\",\"params\":{}}\r\n";
  tt_wire_send_raw(ss.w, text, sizeof text - 1);
  tether_json *want = tether_json_int(401);
  const tether_json *wants[] = {want};
  answer a;
  await_answer(&ss, wants, 1, s->o->timeout_ms, &a);
  tether_json_unref(want);
  if (!answered(&a)) {
    problem(&f, "a request after two empty lines and ending in \\r\\n got no "
                "answer: ");
    describe(&a, &f);
  }
  answer_free(&a);
  case_close(s, name, &ss, &f);
}

/* The whole conversation in content-length framing: the provider detects
 * it from the first message and answers in it (SPEC section 2). */
static void check_content_length(struct suite *s) {
  const char *name = "content-length";
  struct session ss;
  tether_buf f;
  if (!case_open_uninitialized(s, name, &ss, TT_FRAMING_CONTENT_LENGTH, &f))
    return;
  answer a;
  session_initialize(&ss, &a);
  if (a.kind != ANSWER_RESULT) {
    problem(&f, "initialize sent in content-length framing: expected a "
                "result, got ");
    describe(&a, &f);
  }
  answer_free(&a);
  if (!f.len) {
    call(&ss, NO_SUCH_METHOD, tether_json_object(), 0, &a);
    if (!answered(&a)) {
      problem(&f, "a request after initialize got no answer: ");
      describe(&a, &f);
    }
    answer_free(&a);
  }
  if (!f.len) {
    call(&ss, "shutdown", tether_json_object(), 0, &a);
    if (!answered(&a)) {
      problem(&f, "shutdown got no answer: ");
      describe(&a, &f);
    }
    answer_free(&a);
  }
  tt_framing peer = tt_wire_peer_framing(ss.w);
  if (peer != TT_FRAMING_DETECT && peer != TT_FRAMING_CONTENT_LENGTH)
    problem(&f, "it answered content-length messages in %s framing",
            tt_framing_name(peer));
  /* This session's framing was the point of the case: reported here, not
   * again as a stray finding. */
  ss.framing = peer == TT_FRAMING_DETECT ? TT_FRAMING_CONTENT_LENGTH : peer;
  case_close(s, name, &ss, &f);
}

/* ---- Requests at once ---- */

static const struct type_info *type_with_case(const struct suite *s,
                                              enum op op) {
  for (size_t i = 0; i < s->ntypes; i++)
    if (s->types[i].c && s->types[i].ops[op])
      return &s->types[i];
  return NULL;
}

/* `concurrency` requests sent at once all get their answer, each once. */
static void check_concurrency(struct suite *s) {
  const char *name = "concurrency";
  if (!case_begin(s, name))
    return;
  struct session ss;
  tether_buf f;
  char *dir = case_session_in_fresh_dir(s, name, &ss, &f);
  if (!dir)
    return;
  size_t n = s->concurrency < MAX_CONCURRENT_PROBES ? (size_t)s->concurrency
                                                    : MAX_CONCURRENT_PROBES;
  /* A read of a resource that was never created: real work for the
   * provider, and no side effects. */
  const struct type_info *t = type_with_case(s, OP_READ);
  tether_json **ids = tt_calloc(n, sizeof *ids);
  const tether_json **pending = tt_calloc(n, sizeof *pending);
  for (size_t i = 0; i < n; i++) {
    int64_t id = ss.next_id++;
    ids[i] = tether_json_int(id);
    pending[i] = ids[i];
    tether_json *params =
        t ? op_params(OP_READ, t->name, t->c->inputs, NULL) : harmless_params();
    tether_json *msg = tt_rpc_request(id, "read", params);
    tt_wire_send(ss.w, msg);
    tether_json_unref(msg);
  }
  size_t got = 0;
  uint64_t deadline = now_ms() + s->o->timeout_ms;
  while (got < n) {
    uint64_t now = now_ms();
    answer a;
    await_answer(&ss, pending, n, deadline > now ? deadline - now : 1, &a);
    if (!answered(&a)) {
      problem(&f,
              "sent %zu request%s at once (its concurrency is %" PRIu64
              "): %zu answered, then ",
              n, n == 1 ? "" : "s", s->concurrency, got);
      describe(&a, &f);
      answer_free(&a);
      break;
    }
    /* An id answered twice, or one never sent, shows up here; what is not
     * a message at all is for stdout-protocol-only to report. */
    if (a.foreign)
      problem(&f, "while answering %zu requests at once it also wrote: %s", n,
              a.stray.data);
    pending[a.which] = NULL;
    got++;
    answer_free(&a);
  }
  for (size_t i = 0; i < n; i++)
    tether_json_unref(ids[i]);
  free(ids);
  free(pending);
  case_close(s, name, &ss, &f);
  free(dir);
}

/* ---- Types ---- */

static void check_unknown_type(struct suite *s) {
  const char *name = "unknown-type";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  answer a;
  call(&ss, "create", create_params(NO_SUCH_TYPE, NULL, false), 0, &a);
  if (expect_error(&a, TETHER_ERR_UNKNOWN_TYPE,
                   "a create of type " NO_SUCH_TYPE, &f)) {
    expect_data_string(&a, "type", NO_SUCH_TYPE, &f);
    const tether_json *known = tether_json_object_get(a.m.error_data, "known");
    if (!tether_json_is_array(known)) {
      problem(&f, "expected data.known, the list of its types, got ");
      json_cut(&f, known, 80);
    } else {
      size_t nk = tether_json_array_size(known);
      for (size_t i = 0; i < s->ntypes; i++) {
        bool found = false;
        for (size_t k = 0; k < nk && !found; k++) {
          const char *kn =
              tether_json_string_value(tether_json_array_get(known, k));
          found = kn && strcmp(kn, s->types[i].name) == 0;
        }
        if (!found)
          problem(&f, "data.known lacks %s, which initialize declared",
                  s->types[i].name);
      }
      if (nk != s->ntypes && !f.len)
        problem(&f,
                "data.known has %zu entries, initialize declared %zu "
                "types",
                nk, s->ntypes);
    }
  }
  answer_free(&a);
  case_close(s, name, &ss, &f);
}

/* ---- The end of a conversation ---- */

static void check_shutdown(struct suite *s) {
  if (!wanted(s, "shutdown") && !wanted(s, "after-shutdown") &&
      !wanted(s, "exit"))
    return;
  begin(s, "shutdown");
  struct session ss;
  if (!open_session(s, &ss, s->tmp, s->o->framing, "shutdown")) {
    report(s, "after-shutdown", V_SKIP, "no session (see shutdown)");
    report(s, "exit", V_SKIP, "no session (see shutdown)");
    return;
  }
  tether_buf f;
  tether_buf_init(&f);
  answer a;
  call(&ss, "shutdown", tether_json_object(), 0, &a);
  if (expect_result(&a, "shutdown", &f) && !tether_json_is_null(a.m.result)) {
    problem(&f, "expected the result null, got ");
    json_cut(&f, a.m.result, 80);
  }
  bool alive = answered(&a);
  answer_free(&a);
  verdict_of(s, "shutdown", &f);

  begin(s, "after-shutdown");
  tether_buf_init(&f);
  if (!alive) {
    report(s, "after-shutdown", V_SKIP, "shutdown was not answered");
  } else {
    call(&ss, "read", harmless_params(), 0, &a);
    expect_error(&a, TETHER_ERR_INVALID_REQUEST, "a read sent after shutdown",
                 &f);
    answer_free(&a);
    verdict_of(s, "after-shutdown", &f);
  }

  begin(s, "exit");
  tether_buf_init(&f);
  send_notification(&ss, "exit", NULL);
  uint64_t t0 = now_ms();
  if (!tt_wire_wait_exit(ss.w, s->o->grace_ms)) {
    problem(&f,
            "still running %.1f s after shutdown and the exit "
            "notification (stdin left open); it should exit with "
            "status 0",
            (double)(now_ms() - t0) / 1000.0);
  } else {
    int64_t status;
    int sig;
    tt_wire_exited(ss.w, &status, &sig);
    if (sig || status != 0) {
      char desc[96];
      tt_wire_exit_desc(ss.w, desc, sizeof desc);
      problem(&f, "after shutdown and exit it %s; want status 0", desc);
    }
  }
  session_end(&ss);
  verdict_of(s, "exit", &f);
}

static void check_eof(struct suite *s) {
  const char *name = "eof";
  struct session ss;
  tether_buf f;
  if (!case_open(s, name, &ss, s->o->framing, &f))
    return;
  tt_wire_close_stdin(ss.w);
  uint64_t t0 = now_ms();
  if (!tt_wire_wait_exit(ss.w, s->o->grace_ms))
    problem(&f,
            "still running %.1f s after its stdin was closed; EOF on "
            "stdin ends a provider",
            (double)(now_ms() - t0) / 1000.0);
  case_close(s, name, &ss, &f);
}

/* ---- Under the host's own client ---- */

struct host_run {
  bool ready_called, dead;
  tether_buf failure;
};

static void host_on_ready(tt_provider *p, const tt_reply *failure, void *user) {
  struct host_run *h = user;
  h->ready_called = true;
  if (failure) {
    tt_reply_describe(failure, &h->failure);
    for (size_t i = 0; i < h->failure.len; i++)
      if (h->failure.data[i] == '\n')
        h->failure.data[i] = ' ';
  }
}

static void host_on_dead(tt_provider *p, void *user) {
  struct host_run *h = user;
  h->dead = true;
  h->ready_called = true;
}

/* The provider's stderr is not the suite's output: without --verbose it
 * is dropped here, as the other cases drop it (their FAIL lines quote its
 * end when it matters). */
static void quiet_log(tt_provider *p, const char *level, const char *line,
                      size_t len, void *user) {}

static void verbose_log(tt_provider *p, const char *level, const char *line,
                        size_t len, void *user) {
  fprintf(stderr, "  [%d] %s %.*s\n", tt_provider_pid(p), level ? level : "!",
          (int)len, line);
}

static void on_suite_timer(uv_timer_t *t) {
  struct suite *s = t->data;
  s->timer_fired = true;
}

static bool suite_wait(struct suite *s, const bool *flag, uint64_t ms) {
  s->timer_fired = false;
  uv_timer_start(&s->timer, on_suite_timer, ms, 0);
  while (!*flag && !s->timer_fired && !s->interrupted)
    uv_run(&s->loop, UV_RUN_ONCE);
  uv_timer_stop(&s->timer);
  return *flag;
}

/* What `tether apply` does with the provider: start it, take it through
 * initialize, and stop it with the stop sequence of SPEC section 1. */
static void check_host_session(struct suite *s) {
  const char *name = "host-session";
  if (!case_begin(s, name))
    return;
  char *dir = fresh_dir(s);
  struct host_run h = {0};
  tether_buf_init(&h.failure);
  tt_provider_config cfg = {
      .executable = s->exe,
      .args = s->o->args,
      .cwd = dir,
      .framing = s->o->framing,
      .start_timeout_ms = s->o->start_timeout_ms,
      .stop_grace_ms = s->o->grace_ms,
      .on_ready = host_on_ready,
      .on_dead = host_on_dead,
      .on_log = s->o->verbose ? verbose_log : quiet_log,
      .user = &h,
  };
  tt_provider *p = tt_provider_start(&s->loop, &cfg);
  tether_buf f;
  tether_buf_init(&f);
  /* The client enforces the start timeout itself; the margin only guards
   * against a callback that never comes. */
  suite_wait(s, &h.ready_called, s->o->start_timeout_ms + 10000);
  if (!h.ready_called) {
    problem(&f, "tether's provider client neither started it nor gave up");
  } else if (h.failure.len) {
    problem(&f, "tether's provider client refused it: %s", h.failure.data);
  } else if (h.dead) {
    problem(&f, "it died right after initialize: %s", tt_provider_exit_desc(p));
  } else {
    uint64_t t0 = now_ms();
    tt_provider_stop(p);
    suite_wait(s, &h.dead,
               s->o->grace_ms + TT_PROVIDER_KILL_GRACE_MS +
                   TT_PROVIDER_DRAIN_MS + 10000);
    const char *desc = h.dead ? tt_provider_exit_desc(p) : "is still running";
    if (!h.dead || strcmp(desc, "exited with status 0") != 0)
      problem(&f,
              "under tether's stop sequence (shutdown, exit, stdin "
              "closed, %.1f s grace, SIGTERM, SIGKILL) it %s after "
              "%.1f s; want status 0 within the grace period",
              (double)s->o->grace_ms / 1000.0, desc,
              (double)(now_ms() - t0) / 1000.0);
  }
  tt_provider_free(p);
  tether_buf_free(&h.failure);
  free(dir);
  verdict_of(s, name, &f);
}

/* ---- Per type: the protocol around operations ---- */

static bool type_has_op(const struct type_info *t, enum op op) {
  return t->ops[op];
}

/* Whether case `name`, which starts with a create, can run on type t;
 * when it cannot, the case is skipped. */
static bool case_can_create(struct suite *s, const struct type_info *t,
                            const char *name) {
  if (type_has_op(t, OP_CREATE))
    return true;
  report(s, name, V_SKIP, "the type declares no create");
  return false;
}

/* Deletes what a probe created by mistake, so the temporary directory is
 * all that is left of it; the outcome is not a case of its own. */
static void delete_quietly(struct session *ss, const struct type_info *t,
                           const tether_json *inputs,
                           const tether_json *result) {
  if (!type_has_op(t, OP_DELETE))
    return;
  answer a;
  call(ss, "delete",
       op_params(OP_DELETE, t->name, inputs,
                 tether_json_object_get(result, "outputProperties")),
       0, &a);
  answer_free(&a);
}

static void check_unsupported_ops(struct suite *s, const struct type_info *t) {
  char name[200];
  type_case(name, sizeof name, t->name, "unsupported-operations");
  if (!wanted(s, name))
    return;
  begin(s, name);
  size_t missing = 0;
  for (int op = 0; op < OP_COUNT; op++)
    missing += !t->ops[op];
  if (missing == 0) {
    report(s, name, V_SKIP, "the type declares every operation");
    return;
  }
  struct session ss;
  tether_buf f;
  if (!case_session(s, name, &ss, s->tmp, s->o->framing, &f))
    return;
  for (int op = 0; op < OP_COUNT; op++) {
    if (t->ops[op])
      continue;
    answer a;
    call(&ss, op_names[op],
         op_params((enum op)op, t->name, t->c ? t->c->inputs : NULL, NULL), 0,
         &a);
    if (!(a.kind == ANSWER_ERROR && a.m.error_code == TETHER_ERR_UNSUPPORTED)) {
      problem(&f,
              "%s, which the type does not declare: expected error "
              "-32011 (operation not supported), got ",
              op_names[op]);
      describe(&a, &f);
    }
    bool dead = !answered(&a);
    answer_free(&a);
    if (dead)
      break;
  }
  case_close(s, name, &ss, &f);
}

static void check_requires_state(struct suite *s, const struct type_info *t) {
  char name[200];
  type_case(name, sizeof name, t->name, "requires-state");
  if (!t->require_state || !wanted(s, name))
    return;
  begin(s, name);
  if (!case_can_create(s, t, name))
    return;
  struct session ss;
  tether_buf f;
  char *dir = case_session_in_fresh_dir(s, name, &ss, &f);
  if (!dir)
    return;
  const tether_json *inputs = t->c ? t->c->inputs : NULL;
  answer a;
  call(&ss, "create", create_params(t->name, inputs, false), 0, &a);
  if (!t->c && a.kind == ANSWER_ERROR &&
      a.m.error_code == TETHER_ERR_INVALID_PARAMS) {
    reportf(s, name, V_SKIP,
            "it checked the (empty) inputs before "
            "isStateful; pass --type %s --inputs-json to "
            "check this",
            t->name);
  } else {
    expect_error(&a, TETHER_ERR_REQUIRES_STATE,
                 "a create with isStateful false of a type with "
                 "requireState true",
                 &f);
    if (a.kind == ANSWER_RESULT)
      delete_quietly(&ss, t, inputs, a.m.result);
    verdict_of(s, name, &f);
  }
  tether_buf_free(&f);
  answer_free(&a);
  session_end(&ss);
  free(dir);
}

/* A create whose params lack inputProperties is refused with -32602. */
static void check_invalid_params(struct suite *s, const struct type_info *t) {
  char name[200];
  type_case(name, sizeof name, t->name, "invalid-params");
  if (!wanted(s, name))
    return;
  begin(s, name);
  if (!case_can_create(s, t, name))
    return;
  struct session ss;
  tether_buf f;
  char *dir = case_session_in_fresh_dir(s, name, &ss, &f);
  if (!dir)
    return;
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "type", tether_json_string(t->name));
  params = tether_json_object_set(params, "isStateful",
                                  tether_json_bool(t->require_state));
  answer a;
  call(&ss, "create", params, 0, &a);
  expect_error(&a, TETHER_ERR_INVALID_PARAMS,
               "a create without inputProperties", &f);
  if (a.kind == ANSWER_RESULT)
    delete_quietly(&ss, t, NULL, a.m.result);
  answer_free(&a);
  case_close(s, name, &ss, &f);
  free(dir);
}

/* An input property the type does not know is refused with -32602 and
 * data.path naming it (SPEC section 5), so a typo in a deployment shows. */
static void check_unknown_input(struct suite *s, const struct type_info *t) {
  char name[200];
  type_case(name, sizeof name, t->name, "unknown-input");
  if (!wanted(s, name))
    return;
  begin(s, name);
  if (!case_can_create(s, t, name))
    return;
  struct session ss;
  tether_buf f;
  char *dir = case_session_in_fresh_dir(s, name, &ss, &f);
  if (!dir)
    return;
  tether_json *inputs = or_empty(t->c ? t->c->inputs : NULL);
  inputs =
      tether_json_object_set(inputs, UNKNOWN_INPUT, tether_json_bool(true));
  answer a;
  call(&ss, "create", create_params(t->name, inputs, t->require_state), 0, &a);
  static const char want_path[] = "/inputProperties/" UNKNOWN_INPUT;
  if (expect_error(&a, TETHER_ERR_INVALID_PARAMS,
                   "a create with the input property " UNKNOWN_INPUT
                   ", which no type has",
                   &f)) {
    const char *path = tether_json_string_value(
        tether_json_object_get(a.m.error_data, "path"));
    /* Without valid inputs to start from, a provider may well name a
     * missing required input first; that is a fine answer too. */
    bool ok = path && (t->c ? strcmp(path, want_path) == 0
                            : strncmp(path, "/inputProperties/", 17) == 0);
    if (!ok) {
      problem(&f, "expected data.path \"%s\", got ", want_path);
      json_cut(&f, tether_json_object_get(a.m.error_data, "path"), 80);
    }
  } else {
    if (a.kind == ANSWER_RESULT) {
      tether_buf_append_str(&f, " (a typo in a deployment would go "
                                "unnoticed)");
      delete_quietly(&ss, t, inputs, a.m.result);
    }
  }
  answer_free(&a);
  tether_json_unref(inputs);
  case_close(s, name, &ss, &f);
  free(dir);
}

/* ---- Per type: the life cycle ---- */

static bool expect_outputs(const answer *a, const char *ctx, tether_buf *f) {
  if (!expect_result(a, ctx, f))
    return false;
  const tether_json *out =
      tether_json_object_get(a->m.result, "outputProperties");
  if (!tether_json_is_object(out)) {
    expected(f, ctx);
    tether_buf_append_str(f, "a result {\"outputProperties\": {...}}, got ");
    json_cut(f, a->m.result, QUOTE_MAX);
    return false;
  }
  return true;
}

static bool expect_exists(const answer *a, bool want, const char *ctx,
                          tether_buf *f) {
  if (!expect_result(a, ctx, f))
    return false;
  const tether_json *e = tether_json_object_get(a->m.result, "exists");
  if (!tether_json_is_bool(e) || tether_json_bool_value(e) != want) {
    expected(f, ctx);
    tether_buf_printf(f, "a result with \"exists\": %s, got ",
                      want ? "true" : "false");
    json_cut(f, a->m.result, QUOTE_MAX);
    return false;
  }
  const tether_json *out =
      tether_json_object_get(a->m.result, "outputProperties");
  if (want && out && !tether_json_is_object(out)) {
    problem(f, "outputProperties is not an object: ");
    json_cut(f, out, QUOTE_MAX);
    return false;
  }
  return true;
}

static void check_lifecycle(struct suite *s, const struct type_info *t) {
  static const char *const steps[] = {"create", "read", "update", "delete",
                                      "read-after-delete"};
  char names[5][200];
  bool any = false;
  for (size_t i = 0; i < 5; i++) {
    type_case(names[i], sizeof names[i], t->name, steps[i]);
    any = any || wanted(s, names[i]);
  }
  char group[200];
  type_case(group, sizeof group, t->name, "lifecycle");
  if (!t->c) {
    if (any || wanted(s, group))
      reportf(s, wanted(s, group) ? group : names[0], V_SKIP,
              "no inputs for type %s: pass --type %s --inputs-json '{...}' "
              "to run create, read, update and delete",
              t->name, t->name);
    return;
  }
  if (!any)
    return;
  begin(s, names[0]);
  if (!case_can_create(s, t, names[0]))
    return;
  struct session ss;
  tether_buf f;
  char *dir = case_session_in_fresh_dir(s, names[0], &ss, &f);
  if (!dir)
    return;
  tether_json *inputs = tether_json_ref(t->c->inputs);
  tether_json *outputs = NULL;
  answer a;
  call(&ss, "create", create_params(t->name, inputs, t->require_state), 0, &a);
  bool created = expect_outputs(&a, "create with the given inputs", &f);
  if (created)
    outputs =
        tether_json_ref(tether_json_object_get(a.m.result, "outputProperties"));
  else if (a.kind == ANSWER_RESULT)
    /* A result of the wrong shape still means something was made. */
    outputs = tether_json_object();
  answer_free(&a);
  verdict_of(s, names[0], &f);
  if (!outputs) {
    for (size_t i = 1; i < 5; i++)
      report(s, names[i], V_SKIP, "create failed");
    goto done;
  }

  begin(s, names[1]);
  tether_buf_init(&f);
  if (!type_has_op(t, OP_READ)) {
    report(s, names[1], V_SKIP, "the type declares no read");
  } else {
    call(&ss, "read", op_params(OP_READ, t->name, inputs, outputs), 0, &a);
    expect_exists(&a, true, "a read right after create", &f);
    answer_free(&a);
    verdict_of(s, names[1], &f);
  }

  begin(s, names[2]);
  tether_buf_init(&f);
  if (!type_has_op(t, OP_UPDATE)) {
    report(s, names[2], V_SKIP, "the type declares no update");
  } else {
    const tether_json *next =
        t->c->update_inputs ? t->c->update_inputs : inputs;
    tether_json *p = tether_json_object();
    p = tether_json_object_set(p, "resource",
                               resource_json(t->name, inputs, outputs));
    p = tether_json_object_set(p, "inputProperties", tether_json_ref(next));
    call(&ss, "update", p, 0, &a);
    if (expect_outputs(&a, "update", &f)) {
      tether_json_unref(inputs);
      inputs = tether_json_ref(next);
      tether_json_unref(outputs);
      outputs = tether_json_ref(
          tether_json_object_get(a.m.result, "outputProperties"));
    }
    answer_free(&a);
    verdict_of(s, names[2], &f);
  }

  begin(s, names[3]);
  tether_buf_init(&f);
  bool deleted = false;
  if (!type_has_op(t, OP_DELETE)) {
    report(s, names[3], V_SKIP, "the type declares no delete");
  } else {
    call(&ss, "delete", op_params(OP_DELETE, t->name, inputs, outputs), 0, &a);
    if (expect_result(&a, "delete", &f) && !tether_json_is_object(a.m.result)) {
      problem(&f, "delete: expected the result {}, got ");
      json_cut(&f, a.m.result, 80);
    }
    deleted = a.kind == ANSWER_RESULT;
    answer_free(&a);
    verdict_of(s, names[3], &f);
  }

  begin(s, names[4]);
  tether_buf_init(&f);
  if (!type_has_op(t, OP_READ) || !type_has_op(t, OP_DELETE)) {
    report(s, names[4], V_SKIP, "the type declares no read or no delete");
  } else if (!deleted) {
    report(s, names[4], V_SKIP, "delete failed");
  } else {
    call(&ss, "read", op_params(OP_READ, t->name, inputs, outputs), 0, &a);
    if (!expect_exists(&a, false, "a read after delete", &f))
      tether_buf_append_str(&f, " (the host would think the resource is "
                                "still there)");
    answer_free(&a);
    verdict_of(s, names[4], &f);
  }
done:
  tether_json_unref(inputs);
  tether_json_unref(outputs);
  session_end(&ss);
  free(dir);
}

/* ---- Per type: the state store ---- */

enum state_step {
  ST_FRESH,
  ST_EVENT,
  ST_AFTER_EVENT,
  ST_EXPECT_INDEX,
  ST_BAD_PATCH,
  ST_LOCK,
  ST_PERSISTS,
  ST_COUNT
};

static const char *const state_steps[ST_COUNT] = {
    "state-read-fresh",   "state-event",     "state-read-after-event",
    "state-expect-index", "state-bad-patch", "state-lock",
    "state-persists"};

/* A state_read answer holds a NixOps4 state {_type, resources,
 * deployments} and an integer index; fills *state and *index. */
static bool expect_state(const answer *a, tether_json **state, uint64_t *index,
                         const char *ctx, tether_buf *f) {
  if (!expect_result(a, ctx, f))
    return false;
  const tether_json *st = tether_json_object_get(a->m.result, "state");
  const tether_json *ix = tether_json_object_get(a->m.result, "index");
  const char *type =
      tether_json_string_value(tether_json_object_get(st, "_type"));
  if (!tether_json_is_object(st) || !type || strcmp(type, "nixopsState") ||
      !tether_json_is_object(tether_json_object_get(st, "resources")) ||
      !tether_json_is_object(tether_json_object_get(st, "deployments")) ||
      !ix || !tether_json_get_uint(ix, index)) {
    expected(f, ctx);
    tether_buf_append_str(f, "{\"state\": {\"_type\": \"nixopsState\", "
                             "\"resources\": {..}, \"deployments\": {..}}, "
                             "\"index\": N}, got ");
    json_cut(f, a->m.result, QUOTE_MAX);
    return false;
  }
  *state = tether_json_ref(st);
  return true;
}

/* What the store last said it holds: each state case judges its own step
 * against this, so one missing feature fails one case, not every case
 * after it. */
struct store_view {
  tether_json *state; /* owned; NULL before the first good state_read */
  uint64_t index;
};

/* state_read answers exactly want_state at want_index (NULL: whatever the
 * view last held); the view takes what it answered. */
static void expect_state_is(struct session *ss, tether_json *resource,
                            const tether_json *want_state, uint64_t want_index,
                            struct store_view *view, const char *when,
                            tether_buf *f) {
  answer a;
  call(ss, "state_read",
       tether_json_object_set(tether_json_object(), "resource", resource), 0,
       &a);
  if (!want_state) {
    want_state = view->state;
    want_index = view->index;
  }
  tether_json *state = NULL;
  uint64_t index = 0;
  char ctx[200];
  snprintf(ctx, sizeof ctx, "state_read %s", when);
  if (expect_state(&a, &state, &index, ctx, f)) {
    if (index != want_index) {
      problem(f, "state_read %s answered index %" PRIu64 ", want %" PRIu64,
              when, index, want_index);
    } else if (want_state && !tether_json_equal(state, want_state)) {
      problem(f, "state_read %s answered the state ", when);
      json_cut(f, state, QUOTE_MAX);
      tether_buf_append_str(f, ", want ");
      json_cut(f, want_state, QUOTE_MAX);
    }
  }
  if (state) {
    tether_json_unref(view->state);
    view->state = state;
    view->index = index;
  }
  answer_free(&a);
}

static tether_json *check_record(const char *name) {
  tether_json *v = tether_json_object();
  v = tether_json_object_set(v, "type", tether_json_string(name));
  v = tether_json_object_set(v, "inputProperties", tether_json_object());
  return tether_json_object_set(v, "outputProperties", tether_json_object());
}

static tether_json *add_op(const char *path, tether_json *value) {
  tether_json *op = tether_json_object();
  op = tether_json_object_set(op, "op", tether_json_string("add"));
  op = tether_json_object_set(op, "path", tether_json_string(path));
  return tether_json_object_set(op, "value", value);
}

static void check_state(struct suite *s, const struct type_info *t) {
  if (!t->state_provider)
    return;
  char names[ST_COUNT][200];
  bool any = false;
  for (int i = 0; i < ST_COUNT; i++) {
    type_case(names[i], sizeof names[i], t->name, state_steps[i]);
    any = any || wanted(s, names[i]);
  }
  char group[200];
  type_case(group, sizeof group, t->name, "state");
  if (!t->c) {
    if (any || wanted(s, group))
      reportf(s, wanted(s, group) ? group : names[0], V_SKIP,
              "no inputs for state provider type %s: pass --type %s "
              "--inputs-json '{...}' to check its state store",
              t->name, t->name);
    return;
  }
  if (!any)
    return;
  begin(s, names[ST_FRESH]);
  char *dir = fresh_dir(s);
  struct session ss;
  if (!open_session(s, &ss, dir, s->o->framing, names[ST_FRESH])) {
    for (int i = 1; i < ST_COUNT; i++)
      report(s, names[i], V_SKIP, "no session");
    free(dir);
    return;
  }
  const tether_json *inputs = t->c->inputs;
  tether_json *outputs = NULL;
  tether_json *state0 = NULL, *expected = NULL;
  uint64_t index0 = 0;
  struct store_view view = {NULL, 0};
  tether_buf f;
  tether_buf_init(&f);
  answer a;
  /* The store is a resource: the host creates it before it reads it. */
  if (type_has_op(t, OP_CREATE)) {
    call(&ss, "create", create_params(t->name, inputs, t->require_state), 0,
         &a);
    if (expect_outputs(&a, "the create of the store", &f))
      outputs = tether_json_ref(
          tether_json_object_get(a.m.result, "outputProperties"));
    answer_free(&a);
  }
  if (!f.len) {
    call(&ss, "state_read", op_params(OP_STATE_READ, t->name, inputs, outputs),
         0, &a);
    if (expect_state(&a, &state0, &index0, "state_read of a new store", &f) &&
        index0 != 0)
      problem(&f, "a new store answered index %" PRIu64 ", want 0", index0);
    answer_free(&a);
  }
  bool fresh_ok = state0 != NULL;
  if (fresh_ok) {
    view.state = tether_json_ref(state0);
    view.index = index0;
  }
  verdict_of(s, names[ST_FRESH], &f);
  if (!fresh_ok) {
    for (int i = 1; i < ST_COUNT; i++)
      report(s, names[i], V_SKIP, "the fresh store could not be read");
    goto cleanup;
  }

  /* One event that adds a record, expecting the fresh index. */
  begin(s, names[ST_EVENT]);
  tether_buf_init(&f);
  tether_json *patch = tether_json_array_append(
      tether_json_array(),
      add_op("/resources/" CHECK_RESOURCE, check_record(CHECK_RESOURCE)));
  expected = tether_json_ref(state0);
  tether_json_error jerr;
  if (!tether_json_patch(&expected, patch, &jerr)) {
    /* The fresh state lacked /resources: already reported as wrong. */
    tether_json_unref(expected);
    expected = tether_json_ref(state0);
  }
  call(&ss, "state_event",
       state_event_params(resource_json(t->name, inputs, outputs), patch, true,
                          index0),
       0, &a);
  uint64_t index1 = index0 + 1, got_index;
  if (expect_result(&a, "state_event adding one resource", &f) &&
      !(tether_json_get_uint(tether_json_object_get(a.m.result, "index"),
                             &got_index) &&
        got_index == index1)) {
    problem(&f,
            "expected {\"index\": %" PRIu64 "} (the last index plus "
            "one), got ",
            index1);
    json_cut(&f, a.m.result, 80);
  }
  answer_free(&a);
  verdict_of(s, names[ST_EVENT], &f);

  begin(s, names[ST_AFTER_EVENT]);
  tether_buf_init(&f);
  expect_state_is(&ss, resource_json(t->name, inputs, outputs), expected,
                  index1, &view, "after the event", &f);
  verdict_of(s, names[ST_AFTER_EVENT], &f);

  /* expectIndex that is not the last index: -32021, nothing written. */
  begin(s, names[ST_EXPECT_INDEX]);
  tether_buf_init(&f);
  patch = tether_json_array_append(
      tether_json_array(), add_op("/resources/" CHECK_RESOURCE "-conflict",
                                  check_record(CHECK_RESOURCE)));
  uint64_t wrong = view.index + 5;
  call(&ss, "state_event",
       state_event_params(resource_json(t->name, inputs, outputs), patch, true,
                          wrong),
       0, &a);
  char ctx[160];
  snprintf(ctx, sizeof ctx,
           "a state_event with expectIndex %" PRIu64 " when the last index "
           "is %" PRIu64,
           wrong, view.index);
  expect_error(&a, TETHER_ERR_STATE_CONFLICT, ctx, &f);
  bool alive = answered(&a);
  answer_free(&a);
  if (alive)
    expect_state_is(&ss, resource_json(t->name, inputs, outputs), NULL, 0,
                    &view, "after the refused event (nothing may be written)",
                    &f);
  verdict_of(s, names[ST_EXPECT_INDEX], &f);

  /* A patch whose second operation does not apply: -32602 with data.op 1,
   * and the first operation not applied either. */
  begin(s, names[ST_BAD_PATCH]);
  tether_buf_init(&f);
  tether_json *bad = tether_json_object();
  bad = tether_json_object_set(bad, "op", tether_json_string("remove"));
  bad = tether_json_object_set(
      bad, "path", tether_json_string("/resources/__tether_check_missing__"));
  patch = tether_json_array_append(
      tether_json_array_append(tether_json_array(),
                               add_op("/resources/" CHECK_RESOURCE "-half",
                                      check_record(CHECK_RESOURCE))),
      bad);
  call(&ss, "state_event",
       state_event_params(resource_json(t->name, inputs, outputs), patch, false,
                          0),
       0, &a);
  if (expect_error(&a, TETHER_ERR_INVALID_PARAMS,
                   "a state_event whose patch removes a path that does not "
                   "exist (operation 1)",
                   &f)) {
    int64_t op;
    const tether_json *opv = tether_json_object_get(a.m.error_data, "op");
    if (!opv || !tether_json_get_int(opv, &op) || op != 1) {
      problem(&f, "expected data.op 1 (the operation that does not apply), "
                  "got ");
      json_cut(&f, opv, 40);
    }
  }
  alive = answered(&a);
  answer_free(&a);
  if (alive)
    expect_state_is(&ss, resource_json(t->name, inputs, outputs), NULL, 0,
                    &view,
                    "after the patch that does not apply (nothing may "
                    "be written)",
                    &f);
  verdict_of(s, names[ST_BAD_PATCH], &f);

  /* While this process holds the store, another gets -32020. */
  begin(s, names[ST_LOCK]);
  tether_buf_init(&f);
  struct session other;
  if (open_session(s, &other, dir, s->o->framing, names[ST_LOCK])) {
    call(&other, "state_read",
         op_params(OP_STATE_READ, t->name, inputs, outputs), 0, &a);
    if (expect_error(&a, TETHER_ERR_STATE_LOCKED,
                     "a state_read from a second process while the first "
                     "holds the store",
                     &f) &&
        (!tether_json_is_string(
             tether_json_object_get(a.m.error_data, "holder")) ||
         !tether_json_object_get(a.m.error_data, "since"))) {
      problem(&f, "expected data {\"holder\": \"...\", \"since\": \"...\"} "
                  "naming who holds it, got ");
      json_cut(&f, a.m.error_data, 120);
    }
    answer_free(&a);
    session_end(&other);
    verdict_of(s, names[ST_LOCK], &f);
  } else {
    tether_buf_free(&f);
  }

  /* What was acknowledged survives the process. */
  session_end(&ss);
  begin(s, names[ST_PERSISTS]);
  tether_buf_init(&f);
  if (open_session(s, &ss, dir, s->o->framing, names[ST_PERSISTS])) {
    expect_state_is(&ss, resource_json(t->name, inputs, outputs), NULL, 0,
                    &view, "from a new process, after the first one ended", &f);
    verdict_of(s, names[ST_PERSISTS], &f);
  } else {
    tether_buf_free(&f);
  }

cleanup:
  if (ss.w && outputs) {
    tether_json *created = tether_json_object_set(
        tether_json_object(), "outputProperties", tether_json_ref(outputs));
    delete_quietly(&ss, t, inputs, created);
    tether_json_unref(created);
  }
  session_end(&ss);
  tether_json_unref(outputs);
  tether_json_unref(state0);
  tether_json_unref(expected);
  tether_json_unref(view.state);
  free(dir);
}

/* ---- What every case fed ---- */

static void check_findings(struct suite *s) {
  begin(s, "stdout-protocol-only");
  if (s->stdout_count)
    reportf(s, "stdout-protocol-only", V_FAIL, "%s%s", s->stdout_finding.data,
            s->stdout_count > 1 ? " (and more like it)" : "");
  else
    report(s, "stdout-protocol-only", V_PASS, NULL);
  begin(s, "notifications");
  if (s->notif_count)
    reportf(s, "notifications", V_FAIL, "%s%s", s->notif_finding.data,
            s->notif_count > 1 ? " (and more like it)" : "");
  else
    report(s, "notifications", V_PASS, NULL);
}

/* ---- Running ---- */

static const char *const needs_initialize[] = {"unknown-method",
                                               "parse-error",
                                               "strict-json",
                                               "deep-nesting",
                                               "invalid-request",
                                               "notification",
                                               "cancel-unknown-id",
                                               "ids",
                                               "ndjson-tolerance",
                                               "content-length",
                                               "concurrency",
                                               "unknown-type",
                                               "shutdown",
                                               "after-shutdown",
                                               "exit",
                                               "eof",
                                               "host-session"};

static void run_suite(struct suite *s) {
  check_initialize(s);
  if (!s->init) {
    report(s, "initialize-result", V_SKIP, s->init_failure);
    report(s, "resource-types", V_SKIP, s->init_failure);
  }
  void (*const early[])(struct suite *) = {check_before_initialize,
                                           check_protocol_version, check_tty};
  for (size_t i = 0; i < sizeof early / sizeof early[0] && !s->interrupted; i++)
    early[i](s);
  if (!s->init) {
    for (size_t i = 0; i < sizeof needs_initialize / sizeof needs_initialize[0];
         i++)
      report(s, needs_initialize[i], V_SKIP, s->init_failure);
    for (size_t i = 0; i < s->o->ncases; i++) {
      char name[200];
      reportf(s, type_case(name, sizeof name, s->o->cases[i].type, "lifecycle"),
              V_SKIP, "%s", s->init_failure);
    }
  } else {
    void (*const protocol[])(struct suite *) = {
        check_unknown_method,   check_parse_error,
        check_strict_json,      check_deep_nesting,
        check_invalid_request,  check_notification,
        check_cancel_unknown,   check_ids,
        check_ndjson_tolerance, check_content_length,
        check_concurrency,      check_unknown_type,
        check_shutdown,         check_eof,
        check_host_session};
    for (size_t i = 0;
         i < sizeof protocol / sizeof protocol[0] && !s->interrupted; i++)
      protocol[i](s);
    void (*const per_type[])(struct suite *, const struct type_info *) = {
        check_unsupported_ops, check_requires_state, check_invalid_params,
        check_unknown_input,   check_lifecycle,      check_state};
    for (size_t i = 0; i < s->ntypes && !s->interrupted; i++)
      for (size_t k = 0;
           k < sizeof per_type / sizeof per_type[0] && !s->interrupted; k++)
        per_type[k](s, &s->types[i]);
    for (size_t i = 0; i < s->o->ncases; i++) {
      const char *type = s->o->cases[i].type;
      bool declared = false;
      for (size_t k = 0; k < s->ntypes; k++)
        declared = declared || strcmp(s->types[k].name, type) == 0;
      if (!declared) {
        char name[200];
        reportf(s, type_case(name, sizeof name, type, "lifecycle"), V_SKIP,
                "--type %s: the provider declares no such type", type);
      }
    }
  }
  if (!s->interrupted)
    check_findings(s);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct suite *s = h->data;
  if (!s->interrupted)
    fprintf(stderr,
            "tether check: interrupted by %s; stopping the "
            "provider\n",
            tt_signal_name(signum));
  s->interrupted = true;
  tt_wire_kill_all();
  tt_provider_kill_all_now();
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

/* The executable as an absolute path: the cases run in other
 * directories. */
static char *resolve_exe(const char *name, tether_buf *err) {
  char *path = tt_provider_find_executable(name, err);
  if (!path)
    return NULL;
  char *abs = realpath(path, NULL);
  if (!abs) {
    tether_buf_printf(err, "%s: %s", path, strerror(errno));
    free(path);
    return NULL;
  }
  free(path);
  if (access(abs, X_OK) != 0) {
    tether_buf_printf(err, "%s is not executable", abs);
    free(abs);
    return NULL;
  }
  return abs;
}

static int run_check(struct opts *o) {
  struct suite s;
  memset(&s, 0, sizeof s);
  s.o = o;
  s.teardown_ms = TEARDOWN_MS;
  tether_buf_init(&s.stdout_finding);
  tether_buf_init(&s.notif_finding);
  tether_buf err;
  tether_buf_init(&err);
  s.exe = resolve_exe(o->exe, &err);
  if (!s.exe) {
    fprintf(stderr, "tether check: cannot use --provider-exe %s: %s\n", o->exe,
            err.data);
    tether_buf_free(&err);
    return 1;
  }
  tether_buf_free(&err);
  const char *tmpdir = getenv("TMPDIR");
  s.tmp = strf("%s/tether-check.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(s.tmp)) {
    fprintf(stderr, "tether check: cannot create a directory %s: %s\n", s.tmp,
            strerror(errno));
    free(s.tmp);
    free(s.exe);
    return 1;
  }
  uv_loop_init(&s.loop);
  uv_timer_init(&s.loop, &s.timer);
  s.timer.data = &s;
  uv_signal_init(&s.loop, &s.sigint);
  uv_signal_init(&s.loop, &s.sigterm);
  s.sigint.data = s.sigterm.data = &s;
  uv_signal_start(&s.sigint, on_signal, SIGINT);
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);

  run_suite(&s);

  uv_close((uv_handle_t *)&s.sigint, NULL);
  uv_close((uv_handle_t *)&s.sigterm, NULL);
  uv_close((uv_handle_t *)&s.timer, NULL);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  uv_loop_close(&s.loop);
  nftw(s.tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

  printf("%u passed, %u failed, %u skipped\n", s.passed, s.failed, s.skipped);
  fflush(stdout);
  bool none = o->nonly && s.passed + s.failed + s.skipped == 0;
  if (none)
    fprintf(stderr, "tether check: no case matches --only; the names are "
                    "in 'tether check --help'\n");
  if (s.interrupted)
    fprintf(stderr, "tether check: interrupted; the counts above are of the "
                    "cases that ran\n");
  int status = none ? 2 : s.failed || s.interrupted ? 1 : 0;
  tether_json_unref(s.init);
  free(s.types);
  tether_buf_free(&s.stdout_finding);
  tether_buf_free(&s.notif_finding);
  free(s.tmp);
  free(s.exe);
  return status;
}

int tt_cmd_check(int argc, char **argv) {
  struct opts o;
  const char *err = parse_opts(argc, argv, &o);
  int status;
  if (err) {
    fprintf(stderr,
            "tether check: %s\nRun 'tether check --help' for "
            "usage.\n",
            err);
    status = 2;
  } else if (o.help) {
    fputs(usage_text, stdout);
    status = 0;
  } else {
    status = run_check(&o);
  }
  opts_free(&o);
  return status;
}
