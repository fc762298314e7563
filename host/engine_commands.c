/*
 * engine_commands.c: the commands of SPEC section 8 that work on a whole
 * deployment: apply, plan, destroy, state and graph. Each parses its
 * flags and hands the work to the executor (apply.h), except `state
 * history` and `graph`, which need no provider.
 *
 * `tether state history` reads the event log itself. The protocol's
 * state_read returns only the resolved state, so the events are read from
 * the state file directly when the store is a tether-local state_file
 * (the file is only read, never locked, so history works while an apply
 * runs). Any other store type has no way to show its events, and says so.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "commands.h"
#include "deployment.h"
#include "graph.h"
#include "refs.h"
#include "util.h"

#define DEFAULT_FILE "tether.json"

/* ---- Flags ---- */

enum {
  F_FILE = 1 << 0,
  F_PARALLELISM = 1 << 1,
  F_JSON = 1 << 2,
  F_REFRESH = 1 << 3,
  F_TIMEOUT = 1 << 4,
  F_START_TIMEOUT = 1 << 5
};

typedef struct cmd_opts {
  const char *file;
  size_t parallelism;
  uint64_t timeout_ms;
  uint64_t start_timeout_ms;
  bool json;
  bool refresh;
  bool help;
  const char *words[3]; /* positional arguments */
  size_t nwords;
  char err[300];
} cmd_opts;

static bool parse_seconds(const char *s, uint64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v <= 0 || v > 1e7)
    return false;
  uint64_t n = (uint64_t)ceil(v * 1000.0);
  *ms = n ? n : 1;
  return true;
}

/* Parses argv[1..argc) with the flags allowed; NULL when fine, else the
 * message (in o->err). */
static const char *parse_flags(int argc, char **argv, unsigned allowed,
                               size_t max_words, cmd_opts *o) {
  memset(o, 0, sizeof *o);
  o->file = DEFAULT_FILE;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value = NULL;
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
#define IS(name) (strlen(name) == nlen && strncmp(a, name, nlen) == 0)
#define VALUE()                                                                \
  do {                                                                         \
    if (eq)                                                                    \
      value = eq + 1;                                                          \
    else if (i + 1 < argc)                                                     \
      value = argv[++i];                                                       \
    else {                                                                     \
      snprintf(o->err, sizeof o->err, "%.*s needs a value", (int)nlen, a);     \
      return o->err;                                                           \
    }                                                                          \
  } while (0)
    if (IS("--help") || IS("-h")) {
      o->help = true;
    } else if ((allowed & F_FILE) && (IS("-f") || IS("--file"))) {
      VALUE();
      o->file = value;
    } else if ((allowed & F_PARALLELISM) && IS("--parallelism")) {
      VALUE();
      char *end;
      errno = 0;
      unsigned long long n = strtoull(value, &end, 10);
      if (value[0] < '0' || value[0] > '9' || *end || errno || n == 0 ||
          n > 100000) {
        snprintf(o->err, sizeof o->err,
                 "--parallelism needs a positive integer up to 100000, got "
                 "'%s'",
                 value);
        return o->err;
      }
      o->parallelism = (size_t)n;
    } else if ((allowed & F_JSON) && IS("--json")) {
      o->json = true;
    } else if ((allowed & F_REFRESH) && IS("--refresh")) {
      o->refresh = true;
    } else if ((allowed & F_TIMEOUT) && IS("--timeout")) {
      VALUE();
      if (!parse_seconds(value, &o->timeout_ms)) {
        snprintf(o->err, sizeof o->err,
                 "--timeout needs a number of seconds above 0, got '%s'",
                 value);
        return o->err;
      }
    } else if ((allowed & F_START_TIMEOUT) && IS("--start-timeout")) {
      VALUE();
      if (!parse_seconds(value, &o->start_timeout_ms)) {
        snprintf(o->err, sizeof o->err,
                 "--start-timeout needs a number of seconds above 0, got "
                 "'%s'",
                 value);
        return o->err;
      }
    } else if (a[0] == '-' && a[1] != '\0') {
      snprintf(o->err, sizeof o->err, "unknown flag '%s'", a);
      return o->err;
    } else if (o->nwords < max_words) {
      o->words[o->nwords++] = a;
    } else {
      snprintf(o->err, sizeof o->err, "unexpected argument '%s'", a);
      return o->err;
    }
#undef IS
#undef VALUE
  }
  return NULL;
}

static int usage(const char *cmd, const char *err, const char *text) {
  fprintf(stderr, "tether %s: %s\n%s", cmd, err, text);
  return 2;
}

/* Colour for what a person reads on stream fd: only on a terminal, and
 * never when NO_COLOR is set (https://no-color.org). */
static bool want_color(int fd) {
  const char *term = getenv("TERM");
  const char *no = getenv("NO_COLOR");
  return isatty(fd) && !(no && *no) && !(term && strcmp(term, "dumb") == 0);
}

static void engine_opts_from(const cmd_opts *c, tt_engine_mode mode,
                             tt_engine_opts *e) {
  memset(e, 0, sizeof *e);
  e->mode = mode;
  e->file = c->file;
  e->parallelism = c->parallelism;
  e->timeout_ms = c->timeout_ms;
  e->start_timeout_ms = c->start_timeout_ms;
  e->json = c->json;
  e->refresh = c->refresh;
  bool human_on_stderr = c->json && mode != TT_ENGINE_PLAN;
  e->color = want_color(human_on_stderr ? 2 : 1);
}

/* Progress lines must reach a pipe as they happen, not when tether ends. */
static void line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* ---- apply, plan, destroy ---- */

#define PROVIDER_FLAGS_HELP                                                    \
  "  -f, --file FILE       the deployment (default tether.json)\n"             \
  "  --timeout S           per provider request (default none)\n"              \
  "  --start-timeout S     spawn to initialize answered (default 30)\n"

static const char apply_help[] =
    "usage: tether apply [-f FILE] [--parallelism N] [--json] [--refresh]\n"
    "\n"
    "Creates, updates, replaces and deletes resources so that they match the\n"
    "deployment, recording every change in its state stores.\n"
    "\n" PROVIDER_FLAGS_HELP
    "  --parallelism N       steps at once (default: CPUs times two)\n"
    "  --json                counts as the last line of stdout:\n"
    "                        {\"created\",\"updated\",\"replaced\",\"deleted\",\n"
    "                        \"unchanged\",\"failed\"}; the rest on stderr\n"
    "  --refresh             read every resource first and record drift\n"
    "\n"
    "Exit status: 0 success, 1 failed or interrupted, 2 usage error.\n"
    "TETHER_STATS=1 prints timing and request counts on stderr.\n";

static const char plan_help[] =
    "usage: tether plan [-f FILE] [--json] [--refresh]\n"
    "\n"
    "Shows what apply would do: + create, ~ update, -/+ replace, - delete,\n"
    "with the input paths that changed. Changes nothing.\n"
    "\n" PROVIDER_FLAGS_HELP
    "  --json                {\"changes\": [{\"path\", \"action\", ...}]}\n"
    "  --refresh             read every resource first and plan from what\n"
    "                        exists\n";

static const char destroy_help[] =
    "usage: tether destroy [-f FILE] [--parallelism N] [--json]\n"
    "\n"
    "Deletes every resource the state records, dependents first, and the\n"
    "chained state stores after what they hold. Bootstrap stores stay, with\n"
    "their history.\n"
    "\n" PROVIDER_FLAGS_HELP
    "  --parallelism N       steps at once (default: CPUs times two)\n"
    "  --json                counts as the last line of stdout\n";

static int run_engine_command(int argc, char **argv, tt_engine_mode mode,
                              unsigned allowed, const char *help) {
  cmd_opts c;
  const char *err = parse_flags(argc, argv, allowed, 0, &c);
  if (err)
    return usage(argv[0], err, help);
  if (c.help) {
    fputs(help, stdout);
    return 0;
  }
  line_buffered();
  tt_engine_opts e;
  engine_opts_from(&c, mode, &e);
  return tt_engine_run(&e);
}

int tt_cmd_apply(int argc, char **argv) {
  return run_engine_command(argc, argv, TT_ENGINE_APPLY,
                            F_FILE | F_PARALLELISM | F_JSON | F_REFRESH |
                                F_TIMEOUT | F_START_TIMEOUT,
                            apply_help);
}

int tt_cmd_plan(int argc, char **argv) {
  return run_engine_command(argc, argv, TT_ENGINE_PLAN,
                            F_FILE | F_JSON | F_REFRESH | F_TIMEOUT |
                                F_START_TIMEOUT,
                            plan_help);
}

int tt_cmd_destroy(int argc, char **argv) {
  return run_engine_command(argc, argv, TT_ENGINE_DESTROY,
                            F_FILE | F_PARALLELISM | F_JSON | F_TIMEOUT |
                                F_START_TIMEOUT,
                            destroy_help);
}

/* ---- graph ---- */

static const char graph_help[] =
    "usage: tether graph [-f FILE]\n"
    "\n"
    "Prints the dependency graph in Graphviz DOT: references and dependsOn\n"
    "solid, state store edges dashed. Starts no provider.\n"
    "  dot -Tsvg <(tether graph) > graph.svg\n";

int tt_cmd_graph(int argc, char **argv) {
  cmd_opts c;
  const char *err = parse_flags(argc, argv, F_FILE, 0, &c);
  if (err)
    return usage("graph", err, graph_help);
  if (c.help) {
    fputs(graph_help, stdout);
    return 0;
  }
  tt_diag diag;
  tt_model *m = tt_model_load(c.file, &diag);
  if (!m) {
    fprintf(stderr, "tether: %s\n", diag.message);
    return 1;
  }
  tether_buf b;
  tether_buf_init(&b);
  tt_graph_dot(m, &b);
  fwrite(b.data, 1, b.len, stdout);
  tether_buf_free(&b);
  tt_model_free(m);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- state: walking records ---- */

/* One record found in a store's resolved state. */
typedef struct found {
  char *path;  /* "web", "sub/web" */
  const tether_json *rec;
  const tt_resource *store;
} found;

typedef struct found_list {
  found *items;
  size_t len, cap;
} found_list;

static void collect(const tether_json *container, const tt_resource *store,
                    tether_buf *dpath, found_list *out) {
  const tether_json *res = tether_json_object_get(container, "resources");
  size_t it = 0;
  const char *key;
  size_t klen;
  tether_json *v;
  while (res && tether_json_is_object(res) &&
         tether_json_object_next(res, &it, &key, &klen, &v)) {
    if (out->len == out->cap) {
      out->cap = out->cap ? out->cap * 2 : 16;
      out->items = tt_realloc(out->items, out->cap * sizeof *out->items);
    }
    found *f = &out->items[out->len++];
    tether_buf p;
    tether_buf_init(&p);
    if (dpath->len) {
      tether_buf_append(&p, dpath->data, dpath->len);
      tether_buf_append_char(&p, '/');
    }
    tether_buf_append(&p, key, klen);
    f->path = tether_buf_steal(&p, NULL);
    f->rec = v;
    f->store = store;
  }
  const tether_json *deps = tether_json_object_get(container, "deployments");
  it = 0;
  while (deps && tether_json_is_object(deps) &&
         tether_json_object_next(deps, &it, &key, &klen, &v)) {
    size_t mark = dpath->len;
    if (dpath->len)
      tether_buf_append_char(dpath, '/');
    tether_buf_append(dpath, key, klen);
    if (tether_json_is_object(v))
      collect(v, store, dpath, out);
    dpath->len = mark;
    if (dpath->data)
      dpath->data[mark] = '\0';
  }
}

static void collect_all(const tt_model *m, const tether_json *const *states,
                        found_list *out) {
  for (size_t i = 0; i < m->nstores; i++) {
    if (!states[i])
      continue;
    tether_buf dpath;
    tether_buf_init(&dpath);
    tether_buf_append_str(&dpath, m->stores[i]->deployment->path);
    collect(states[i], m->stores[i], &dpath, out);
    tether_buf_free(&dpath);
  }
}

static void found_free(found_list *l) {
  for (size_t i = 0; i < l->len; i++)
    free(l->items[i].path);
  free(l->items);
}

static const char *rec_string(const tether_json *rec, const char *key) {
  const tether_json *v = tether_json_object_get(rec, key);
  return v && tether_json_is_string(v) ? tether_json_string_value(v) : NULL;
}

static int list_states(const tt_model *m, const tether_json *const *states,
                       void *ctx) {
  found_list l = {0};
  collect_all(m, states, &l);
  if (!l.len) {
    printf("No resources on record.\n");
    found_free(&l);
    return 0;
  }
  size_t wpath = 4, wtype = 4, wprov = 8;
  for (size_t i = 0; i < l.len; i++) {
    const char *t = rec_string(l.items[i].rec, "type");
    const char *p = rec_string(l.items[i].rec, "provider");
    size_t n = strlen(l.items[i].path);
    wpath = n > wpath ? n : wpath;
    n = t ? strlen(t) : 1;
    wtype = n > wtype ? n : wtype;
    n = p ? strlen(p) : 1;
    wprov = n > wprov ? n : wprov;
  }
  bool stores = m->nstores > 1;
  if (stores)
    printf("%-*s  %-*s  %-*s  %-8s  STORE\n", (int)wpath, "PATH", (int)wtype,
           "TYPE", (int)wprov, "PROVIDER", "STATUS");
  else
    printf("%-*s  %-*s  %-*s  STATUS\n", (int)wpath, "PATH", (int)wtype,
           "TYPE", (int)wprov, "PROVIDER");
  for (size_t i = 0; i < l.len; i++) {
    const found *f = &l.items[i];
    const char *t = rec_string(f->rec, "type");
    const char *p = rec_string(f->rec, "provider");
    const char *st = rec_string(f->rec, "status");
    printf("%-*s  %-*s  %-*s  ", (int)wpath, f->path, (int)wtype, t ? t : "?",
           (int)wprov, p ? p : "-");
    if (stores)
      printf("%-8s  %s", st ? st : "created", f->store->path);
    else
      printf("%s", st ? st : "created");
    if (tether_json_object_get(f->rec, "replaces"))
      printf("  (a previous instance is still on record)");
    putchar('\n');
  }
  found_free(&l);
  return 0;
}

/* Pretty JSON, two spaces per level, for a person reading one record. */
static void dump_pretty(const tether_json *v, int depth, tether_buf *out) {
  switch (tether_json_kind_of(v)) {
  case TETHER_JSON_ARRAY: {
    size_t n = tether_json_array_size(v);
    if (!n) {
      tether_buf_append_str(out, "[]");
      return;
    }
    tether_buf_append_str(out, "[\n");
    for (size_t i = 0; i < n; i++) {
      tether_buf_printf(out, "%*s", (depth + 1) * 2, "");
      dump_pretty(tether_json_array_get(v, i), depth + 1, out);
      tether_buf_append_str(out, i + 1 < n ? ",\n" : "\n");
    }
    tether_buf_printf(out, "%*s]", depth * 2, "");
    return;
  }
  case TETHER_JSON_OBJECT: {
    size_t n = tether_json_object_size(v);
    if (!n) {
      tether_buf_append_str(out, "{}");
      return;
    }
    tether_buf_append_str(out, "{\n");
    size_t it = 0, i = 0;
    const char *key;
    size_t klen;
    tether_json *m;
    while (tether_json_object_next(v, &it, &key, &klen, &m)) {
      tether_buf_printf(out, "%*s", (depth + 1) * 2, "");
      tether_json_dump_string(key, klen, out);
      tether_buf_append_str(out, ": ");
      dump_pretty(m, depth + 1, out);
      tether_buf_append_str(out, ++i < n ? ",\n" : "\n");
    }
    tether_buf_printf(out, "%*s}", depth * 2, "");
    return;
  }
  case TETHER_JSON_NULL:
  case TETHER_JSON_BOOL:
  case TETHER_JSON_NUMBER:
  case TETHER_JSON_STRING:
    tether_json_dump(v, out);
    return;
  }
}

static int show_state(const tt_model *m, const tether_json *const *states,
                      void *ctx) {
  const char *name = ctx;
  found_list l = {0};
  collect_all(m, states, &l);
  /* "sub.web" is accepted too: that is how references spell it. */
  char *want = tt_strdup(name);
  for (char *p = want; *p; p++)
    if (*p == '.')
      *p = '/';
  int status = 1;
  for (size_t i = 0; i < l.len; i++) {
    if (strcmp(l.items[i].path, want) != 0)
      continue;
    tether_buf b;
    tether_buf_init(&b);
    dump_pretty(l.items[i].rec, 0, &b);
    printf("%s\n", b.data);
    tether_buf_free(&b);
    status = 0;
    break;
  }
  if (status) {
    fprintf(stderr, "tether: no resource '%s' on record", name);
    for (size_t i = 0; i < l.len && i < 20; i++)
      fprintf(stderr, "%s%s", i ? ", " : " (recorded: ", l.items[i].path);
    fprintf(stderr, "%s\n", l.len ? (l.len > 20 ? ", ...)" : ")") : "");
  }
  free(want);
  found_free(&l);
  return status;
}

/* ---- state history: the event log read from the state file ---- */

/* The end of the JSON text starting at s[0] (an object or array), or 0
 * when the text is cut short. Strings are skipped with their escapes so a
 * brace inside one does not count. */
static size_t text_end(const char *s, size_t len) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      depth++;
    else if (c == '}' || c == ']') {
      if (depth == 0 || --depth == 0)
        return i + 1;
    }
  }
  return 0;
}

/* The whole file, or NULL with the errno in *error. */
static char *read_whole(const char *path, size_t *len, int *error) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *error = errno;
    return NULL;
  }
  tether_buf b;
  tether_buf_init(&b);
  char block[65536];
  size_t n;
  while ((n = fread(block, 1, sizeof block, f)) > 0)
    tether_buf_append(&b, block, n);
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    *error = EIO;
    tether_buf_free(&b);
    return NULL;
  }
  if (!b.data)
    tether_buf_append_str(&b, "");
  return tether_buf_steal(&b, len);
}

/* The paths a patch touched, e.g. "add /resources/web" or, when every
 * operation is the same on members of one object, "add
 * /resources/web/{outputProperties, status}". */
static void describe_patch(const tether_json *patch, tether_buf *out) {
  size_t n = patch && tether_json_is_array(patch) ? tether_json_array_size(patch)
                                                  : 0;
  const char *op0 = NULL, *parent = NULL;
  size_t parent_len = 0;
  bool same = n > 1;
  for (size_t k = 0; k < n && same; k++) {
    const tether_json *op = tether_json_array_get(patch, k);
    const char *o = rec_string(op, "op");
    const char *p = rec_string(op, "path");
    const char *slash = p ? strrchr(p, '/') : NULL;
    if (!o || !slash || rec_string(op, "from")) {
      same = false;
      break;
    }
    if (k == 0) {
      op0 = o;
      parent = p;
      parent_len = (size_t)(slash - p);
    } else if (strcmp(o, op0) != 0 || (size_t)(slash - p) != parent_len ||
               strncmp(p, parent, parent_len) != 0) {
      same = false;
    }
  }
  if (same) {
    tether_buf_printf(out, "%s %.*s/{", op0, (int)parent_len, parent);
    for (size_t k = 0; k < n; k++) {
      const char *p = rec_string(tether_json_array_get(patch, k), "path");
      tether_buf_printf(out, "%s%s", k ? ", " : "", p + parent_len + 1);
    }
    tether_buf_append_char(out, '}');
    return;
  }
  for (size_t k = 0; k < n; k++) {
    const tether_json *op = tether_json_array_get(patch, k);
    const char *p = rec_string(op, "path");
    const char *o = rec_string(op, "op");
    const char *from = rec_string(op, "from");
    if (k)
      tether_buf_append_str(out, ", ");
    tether_buf_printf(out, "%s%s%s %s", o ? o : "?", from ? " from " : "",
                      from ? from : "", p ? (p[0] ? p : "/") : "?");
  }
}

/* Prints the events of one state file and leaves its resolved state in
 * *state (NULL when it could not be read). Returns false on damage. */
static bool print_history(const char *label, const char *file,
                          tether_json **state) {
  *state = NULL;
  size_t len;
  int error = 0;
  char *text = read_whole(file, &len, &error);
  if (!text && error == ENOENT) {
    printf("store '%s' (%s): no events yet, the file does not exist\n",
           label, file);
    return true;
  }
  if (!text) {
    printf("store '%s' (%s): %s\n", label, file, strerror(error));
    return false;
  }
  printf("store '%s' (%s)\n", label, file);
  size_t pos = 0, position = 0;
  bool ok = true;
  tether_json *resolved = NULL;
  tether_buf paths;
  tether_buf_init(&paths);
  for (;;) {
    while (pos < len && (text[pos] == ' ' || text[pos] == '\n' ||
                         text[pos] == '\r' || text[pos] == '\t'))
      pos++;
    if (pos >= len)
      break;
    size_t end = text_end(text + pos, len - pos);
    if (!end) {
      printf("  (the last event is cut short: never acknowledged, ignored)\n");
      break;
    }
    tether_json_error jerr;
    tether_json *ev = tether_json_parse(text + pos, end, &jerr);
    if (!ev || !tether_json_is_object(ev)) {
      printf("  damaged event at byte %zu: %s\n", pos,
             ev ? "not an object" : jerr.message);
      tether_json_unref(ev);
      ok = false;
      break;
    }
    int64_t index = (int64_t)position;
    const tether_json *iv = tether_json_object_get(ev, "index");
    int64_t given;
    /* NixOps4's writer stamps every event with index 0. */
    if (iv && tether_json_get_int(iv, &given) && (given != 0 || position == 0))
      index = given;
    const tether_json *meta = tether_json_object_get(ev, "meta");
    const char *time = meta ? rec_string(meta, "time") : NULL;
    const char *event = meta ? rec_string(meta, "event") : NULL;
    const tether_json *patch = tether_json_object_get(ev, "patch");
    paths.len = 0;
    if (paths.data)
      paths.data[0] = '\0';
    describe_patch(patch, &paths);
    printf("  %6lld  %-24s  %-8s  %s\n", (long long)index, time ? time : "-",
           event ? event : (position == 0 ? "(initial)" : "-"),
           paths.data ? paths.data : "");
    if (patch) {
      if (!resolved)
        resolved = tether_json_null();
      tether_json_error perr;
      if (!tether_json_patch(&resolved, patch, &perr)) {
        printf("  event %lld does not apply: %s\n", (long long)index,
               perr.message);
        ok = false;
        tether_json_unref(ev);
        break;
      }
    }
    tether_json_unref(ev);
    pos += end;
    position++;
  }
  tether_buf_free(&paths);
  free(text);
  *state = resolved;
  return ok;
}

static bool is_tether_local_state_file(const tt_resource *r) {
  const char *exe = r->provider->executable;
  const char *slash = strrchr(exe, '/');
  const char *base = slash ? slash + 1 : exe;
  return strcmp(r->type, "state_file") == 0 &&
         strcmp(base, "tether-local") == 0;
}

/* Nothing is known before the stores are read: a bootstrap store's name
 * that references an output cannot be resolved here. */
static const tether_json *nothing_known(void *ctx, const tt_resource *target) {
  return NULL;
}

static int history(const char *file) {
  tt_diag diag;
  tt_model *m = tt_model_load(file, &diag);
  if (!m) {
    fprintf(stderr, "tether: %s\n", diag.message);
    return 1;
  }
  char *base = tt_engine_base_dir(file);
  tether_json **states = tt_calloc(m->nstores + 1, sizeof *states);
  int status = 0;
  for (size_t i = 0; i < m->nstores; i++) {
    const tt_resource *r = m->stores[i];
    if (i)
      putchar('\n');
    if (!is_tether_local_state_file(r)) {
      printf("store '%s': type '%s' of provider '%s' has no event log tether "
             "can read (history is read from tether-local state files)\n",
             r->path, r->type, r->provider->name);
      continue;
    }
    /* The file's name: a bootstrap store's from its inputs, a chained
     * one's from its record in the store it is recorded in. */
    const tether_json *name = NULL;
    tt_resolved in = {0};
    if (!r->store) {
      if (!tt_resolve_inputs(r, nothing_known, NULL, &in, &diag))
        name = tether_json_object_get(in.inputs, "name");
    } else if (states[r->store->store_index]) {
      const tether_json *rec = tether_json_pointer_get(
          states[r->store->store_index], r->record_pointer, NULL);
      name = tether_json_object_get(
          rec ? tether_json_object_get(rec, "inputProperties") : NULL, "name");
    }
    if (!name || !tether_json_is_string(name)) {
      printf("store '%s': not created yet\n", r->path);
      tt_resolved_free(&in);
      continue;
    }
    const char *n = tether_json_string_value(name);
    char *path = n[0] == '/' ? tt_strdup(n) : NULL;
    if (!path) {
      tether_buf b;
      tether_buf_init(&b);
      tether_buf_printf(&b, "%s/%s", base, n);
      path = tether_buf_steal(&b, NULL);
    }
    if (!print_history(r->path, path, &states[i]))
      status = 1;
    free(path);
    tt_resolved_free(&in);
  }
  for (size_t i = 0; i < m->nstores; i++)
    tether_json_unref(states[i]);
  free(states);
  free(base);
  tt_model_free(m);
  return status;
}

/* ---- state ---- */

static const char state_help[] =
    "usage: tether state list|show NAME|history [-f FILE]\n"
    "\n"
    "  list          every resource on record: path, type, provider, status\n"
    "  show NAME     one record as JSON (NAME is a path: web, sub/web)\n"
    "  history       each store's events: index, time, event and the paths\n"
    "                it touched (read from tether-local state files)\n"
    "\n" PROVIDER_FLAGS_HELP;

int tt_cmd_state(int argc, char **argv) {
  cmd_opts c;
  const char *err =
      parse_flags(argc, argv, F_FILE | F_TIMEOUT | F_START_TIMEOUT, 2, &c);
  if (err)
    return usage("state", err, state_help);
  if (c.help) {
    fputs(state_help, stdout);
    return 0;
  }
  if (c.nwords == 0)
    return usage("state", "missing the subcommand: list, show NAME or history",
                 state_help);
  const char *sub = c.words[0];
  bool show = strcmp(sub, "show") == 0;
  if (strcmp(sub, "list") != 0 && !show && strcmp(sub, "history") != 0)
    return usage("state", "unknown subcommand (expected list, show or history)",
                 state_help);
  if (show && c.nwords != 2)
    return usage("state", "show needs the NAME of a resource", state_help);
  if (!show && c.nwords != 1)
    return usage("state", "unexpected argument", state_help);
  line_buffered();
  if (strcmp(sub, "history") == 0)
    return history(c.file);
  tt_engine_opts e;
  engine_opts_from(&c, TT_ENGINE_STATE, &e);
  e.on_states = show ? show_state : list_states;
  e.ctx = show ? (void *)c.words[1] : NULL;
  return tt_engine_run(&e);
}
