/*
 * deployment.c: loading tether.json into a model, checking everything a
 * provider is not needed for.
 *
 * Loading runs in passes. The first builds the tree (deployments,
 * providers, resources) and checks each member's shape. References and
 * dependsOn may point into nested deployments, which exist only once the
 * whole tree is built, so a second pass links them, then assigns stores
 * and record pointers, and the graph pass orders everything and refuses
 * cycles.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "graph.h"
#include "refs.h"
#include "util.h"

const char *tt_diag_set(tt_diag *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->message, sizeof d->message, fmt, ap);
  va_end(ap);
  return d->message;
}

bool tt_name_valid(const char *s, size_t len) {
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

void tt_path_append_key(tether_buf *path, const char *key, size_t keylen) {
  if (tt_name_valid(key, keylen)) {
    if (path->len)
      tether_buf_append_char(path, '.');
    tether_buf_append(path, key, keylen);
    return;
  }
  tether_buf_append_char(path, '[');
  tether_json_dump_string(key, keylen, path);
  tether_buf_append_char(path, ']');
}

void tt_path_append_index(tether_buf *path, size_t i) {
  tether_buf_printf(path, "[%zu]", i);
}

const char *tt_replace_order_name(tt_replace_order o) {
  switch (o) {
  case TT_REPLACE_CREATE_FIRST:
    return "create-first";
  case TT_REPLACE_DELETE_FIRST:
    return "delete-first";
  }
  return "?";
}

/* ---- Lookups ---- */

tt_resource *tt_deployment_find_resource(const tt_deployment *d,
                                         const char *path, size_t len,
                                         size_t *missing_len) {
  if (missing_len)
    *missing_len = 0;
  size_t start = 0;
  for (;;) {
    const char *dot = memchr(path + start, '.', len - start);
    if (!dot)
      return tt_strmap_get(&d->resource_names, path + start, len - start);
    size_t seg_end = (size_t)(dot - path);
    d = tt_strmap_get(&d->deployment_names, path + start, seg_end - start);
    if (!d) {
      if (missing_len)
        *missing_len = seg_end;
      return NULL;
    }
    start = seg_end + 1;
  }
}

tt_deployment *tt_model_find_deployment(const tt_model *m, const char *path,
                                        size_t len) {
  tt_deployment *d = m->root;
  size_t start = 0;
  while (d && start < len) {
    const char *slash = memchr(path + start, '/', len - start);
    size_t seg_end = slash ? (size_t)(slash - path) : len;
    d = tt_strmap_get(&d->deployment_names, path + start, seg_end - start);
    start = seg_end + 1;
  }
  return d;
}

tt_resource *tt_model_find_resource(const tt_model *m, const char *path,
                                    size_t len) {
  const char *slash = NULL;
  for (size_t i = len; i > 0; i--)
    if (path[i - 1] == '/') {
      slash = path + i - 1;
      break;
    }
  if (!slash)
    return tt_strmap_get(&m->root->resource_names, path, len);
  tt_deployment *d = tt_model_find_deployment(m, path, (size_t)(slash - path));
  if (!d)
    return NULL;
  size_t name_start = (size_t)(slash - path) + 1;
  return tt_strmap_get(&d->resource_names, path + name_start, len - name_start);
}

const tt_provider_decl *tt_deployment_find_provider(const tt_deployment *d,
                                                    const char *name,
                                                    size_t len) {
  for (; d; d = d->parent) {
    const tt_provider_decl *p = tt_strmap_get(&d->provider_names, name, len);
    if (p)
      return p;
  }
  return NULL;
}

/* ---- Freeing ---- */

static void free_resource(tt_resource *r) {
  free(r->name);
  free(r->path);
  free(r->json_path);
  free(r->type);
  tether_json_unref(r->inputs);
  free(r->deps);
  for (size_t i = 0; i < r->ndepends_on; i++)
    free(r->depends_on[i]);
  free(r->depends_on);
  free(r->record_pointer);
  free(r);
}

static void free_provider(tt_provider_decl *p) {
  free(p->name);
  free(p->executable);
  for (size_t i = 0; i < p->nargs; i++)
    free(p->args[i]);
  free(p->args);
  free(p);
}

static void free_deployment(tt_deployment *d) {
  for (size_t i = 0; i < d->ndeployments; i++)
    free_deployment(d->deployments[i]);
  free(d->deployments);
  for (size_t i = 0; i < d->nresources; i++)
    free_resource(d->resources[i]);
  free(d->resources);
  for (size_t i = 0; i < d->nproviders; i++)
    free_provider(d->providers[i]);
  free(d->providers);
  tt_strmap_free(&d->resource_names);
  tt_strmap_free(&d->deployment_names);
  tt_strmap_free(&d->provider_names);
  free(d->name);
  free(d->path);
  free(d->json_path);
  free(d);
}

void tt_model_free(tt_model *m) {
  if (!m)
    return;
  if (m->root)
    free_deployment(m->root);
  free(m->resources);
  free(m->providers);
  free(m->stores);
  free(m->order);
  free(m->file);
  free(m);
}

/* ---- The loader ---- */

typedef struct loader {
  tt_model *m;
  tt_diag *diag;
  tether_buf path; /* dotted JSON path of the value being checked */
  /* The JSON object each resource was declared with, by resource index;
   * borrowed from the document, which outlives loading. */
  const tether_json **specs;
  size_t specs_cap;
} loader;

static const char *fail(loader *L, const char *fmt, ...) TETHER_PRINTF(2, 3);

/* Reports a problem at the current path. */
static const char *fail(loader *L, const char *fmt, ...) {
  char problem[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(problem, sizeof problem, fmt, ap);
  va_end(ap);
  if (L->path.len)
    return tt_diag_set(L->diag, "%s: %s: %s", L->m->file, L->path.data,
                       problem);
  return tt_diag_set(L->diag, "%s: %s", L->m->file, problem);
}

static size_t path_push_key(loader *L, const char *key, size_t keylen) {
  size_t mark = L->path.len;
  tt_path_append_key(&L->path, key, keylen);
  return mark;
}

static size_t path_push_index(loader *L, size_t i) {
  size_t mark = L->path.len;
  tt_path_append_index(&L->path, i);
  return mark;
}

static void path_pop(loader *L, size_t mark) {
  L->path.len = mark;
  if (L->path.data)
    L->path.data[mark] = '\0';
}

/* Points the path at a value recorded during the first pass. */
static void path_set(loader *L, const char *json_path) {
  path_pop(L, 0);
  tether_buf_append_str(&L->path, json_path);
}

/* A user's string made safe to quote in a one-line message: control
 * characters become '?', and long text is cut short. */
static const char *printable(const char *s, size_t len, char *out,
                             size_t outlen) {
  size_t n = 0;
  size_t limit = outlen - 4;
  for (size_t i = 0; i < len && n < limit; i++) {
    unsigned char c = (unsigned char)s[i];
    out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (n < len && n >= limit) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
  return out;
}

static const char *expect_kind(loader *L, const tether_json *v,
                               tether_json_kind want) {
  tether_json_kind have = tether_json_kind_of(v);
  if (have == want)
    return NULL;
  return fail(L, "expected %s, found %s", tt_json_kind_phrase(want), tt_json_kind_phrase(have));
}

/* Refuses members other than the allowed ones, naming them in the message
 * so a misspelling is easy to see. */
static const char *check_members(loader *L, const tether_json *obj,
                                 const char *const *allowed) {
  size_t it = 0;
  const char *key;
  size_t keylen;
  tether_json *value;
  while (tether_json_object_next(obj, &it, &key, &keylen, &value)) {
    bool known = false;
    for (size_t i = 0; allowed[i]; i++)
      if (strlen(allowed[i]) == keylen && memcmp(allowed[i], key, keylen) == 0)
        known = true;
    if (known)
      continue;
    tether_buf list;
    tether_buf_init(&list);
    for (size_t i = 0; allowed[i]; i++) {
      if (allowed[i][0] == '$')
        continue;
      if (list.len)
        tether_buf_append_str(&list, ", ");
      tether_buf_append_str(&list, allowed[i]);
    }
    size_t mark = path_push_key(L, key, keylen);
    const char *err = fail(L, "unknown member (expected %s)", list.data);
    path_pop(L, mark);
    tether_buf_free(&list);
    return err;
  }
  return NULL;
}

/* A string member that must be present and non-empty. */
static const char *get_required_string(loader *L, const tether_json *obj,
                                       const char *member, char **out) {
  const tether_json *v = tether_json_object_get(obj, member);
  if (!v)
    return fail(L, "missing member \"%s\"", member);
  size_t mark = path_push_key(L, member, strlen(member));
  const char *err = expect_kind(L, v, TETHER_JSON_STRING);
  if (!err && tether_json_string_length(v) == 0)
    err = fail(L, "must not be empty");
  if (!err &&
      strlen(tether_json_string_value(v)) != tether_json_string_length(v))
    err = fail(L, "must not contain NUL characters");
  path_pop(L, mark);
  if (!err)
    *out =
        tt_strndup(tether_json_string_value(v), tether_json_string_length(v));
  return err;
}

static tt_deployment *new_deployment(tt_model *m, tt_deployment *parent,
                                     const char *name, size_t len) {
  tt_deployment *d = tt_calloc(1, sizeof *d);
  d->model = m;
  d->parent = parent;
  d->name = tt_strndup(name, len);
  tt_strmap_init(&d->resource_names);
  tt_strmap_init(&d->deployment_names);
  tt_strmap_init(&d->provider_names);
  tether_buf b;
  tether_buf_init(&b);
  if (parent && parent->path[0]) {
    tether_buf_append_str(&b, parent->path);
    tether_buf_append_char(&b, '/');
  }
  tether_buf_append(&b, name, len);
  d->path = tether_buf_steal(&b, NULL);
  if (parent) {
    tether_buf_append_str(&b, parent->json_path);
    tt_path_append_key(&b, "deployments", 11);
    tt_path_append_key(&b, name, len);
  }
  d->json_path = tether_buf_steal(&b, NULL);
  return d;
}

static const char *load_provider(loader *L, tt_deployment *d, const char *name,
                                 size_t len, const tether_json *v) {
  static const char *const members[] = {"executable", "args", "framing", NULL};
  const char *err = NULL;
  if (!tt_name_valid(name, len))
    err = fail(L, "invalid provider name: use ASCII letters, digits, '_' "
                  "and '-'");
  if (!err)
    err = expect_kind(L, v, TETHER_JSON_OBJECT);
  if (!err)
    err = check_members(L, v, members);
  if (err)
    return err;

  tt_provider_decl *p = tt_calloc(1, sizeof *p);
  p->name = tt_strndup(name, len);
  p->deployment = d;
  p->framing = TT_FRAMING_NDJSON;
  d->providers =
      tt_realloc(d->providers, (d->nproviders + 1) * sizeof *d->providers);
  d->providers[d->nproviders++] = p;
  tt_strmap_put(&d->provider_names, name, len, p);
  tt_model *m = L->m;
  p->index = m->nproviders;
  m->providers =
      tt_realloc(m->providers, (m->nproviders + 1) * sizeof *m->providers);
  m->providers[m->nproviders++] = p;

  err = get_required_string(L, v, "executable", &p->executable);
  const tether_json *args = tether_json_object_get(v, "args");
  if (!err && args) {
    size_t mark = path_push_key(L, "args", 4);
    err = expect_kind(L, args, TETHER_JSON_ARRAY);
    size_t n = err ? 0 : tether_json_array_size(args);
    p->args = tt_calloc(n, sizeof *p->args);
    for (size_t i = 0; !err && i < n; i++) {
      const tether_json *a = tether_json_array_get(args, i);
      size_t imark = path_push_index(L, i);
      err = expect_kind(L, a, TETHER_JSON_STRING);
      if (!err &&
          strlen(tether_json_string_value(a)) != tether_json_string_length(a))
        err = fail(L, "must not contain NUL characters");
      path_pop(L, imark);
      if (!err)
        p->args[p->nargs++] = tt_strdup(tether_json_string_value(a));
    }
    path_pop(L, mark);
  }
  const tether_json *framing = tether_json_object_get(v, "framing");
  if (!err && framing) {
    size_t mark = path_push_key(L, "framing", 7);
    err = expect_kind(L, framing, TETHER_JSON_STRING);
    if (!err &&
        tt_framing_parse(tether_json_string_value(framing), &p->framing) != 0) {
      char shown[120];
      err = fail(L, "unknown framing '%s' (expected ndjson or content-length)",
                 printable(tether_json_string_value(framing),
                           tether_json_string_length(framing), shown,
                           sizeof shown));
    }
    path_pop(L, mark);
  }
  return err;
}

/* Lists the providers a deployment sees, for "unknown provider" messages. */
static void list_visible_providers(const tt_deployment *d, tether_buf *out) {
  tt_strmap seen;
  tt_strmap_init(&seen);
  for (; d; d = d->parent)
    for (size_t i = 0; i < d->nproviders; i++) {
      const char *n = d->providers[i]->name;
      if (!tt_strmap_put(&seen, n, strlen(n), NULL))
        continue;
      if (out->len)
        tether_buf_append_str(out, ", ");
      tether_buf_append_str(out, n);
    }
  tt_strmap_free(&seen);
}

static const char *load_resource(loader *L, tt_deployment *d, const char *name,
                                 size_t len, const tether_json *v) {
  static const char *const members[] = {
      "provider", "type", "inputs", "dependsOn", "state", "replaceOrder", NULL};
  const char *err = NULL;
  if (!tt_name_valid(name, len))
    err = fail(L, "invalid resource name: use ASCII letters, digits, '_' "
                  "and '-'");
  if (!err)
    err = expect_kind(L, v, TETHER_JSON_OBJECT);
  if (!err)
    err = check_members(L, v, members);
  if (err)
    return err;

  tt_model *m = L->m;
  tt_resource *r = tt_calloc(1, sizeof *r);
  r->name = tt_strndup(name, len);
  r->deployment = d;
  r->index = m->nresources;
  r->replace_order = TT_REPLACE_CREATE_FIRST;
  r->json_path = tt_strdup(L->path.data);
  tether_buf b;
  tether_buf_init(&b);
  if (d->path[0]) {
    tether_buf_append_str(&b, d->path);
    tether_buf_append_char(&b, '/');
  }
  tether_buf_append(&b, name, len);
  r->path = tether_buf_steal(&b, NULL);
  d->resources =
      tt_realloc(d->resources, (d->nresources + 1) * sizeof *d->resources);
  d->resources[d->nresources++] = r;
  tt_strmap_put(&d->resource_names, name, len, r);
  m->resources =
      tt_realloc(m->resources, (m->nresources + 1) * sizeof *m->resources);
  m->resources[m->nresources++] = r;
  if (L->specs_cap < m->nresources) {
    L->specs_cap = L->specs_cap ? L->specs_cap * 2 : 64;
    L->specs = tt_realloc(L->specs, L->specs_cap * sizeof *L->specs);
  }
  L->specs[r->index] = v;

  char *provider_name = NULL;
  err = get_required_string(L, v, "provider", &provider_name);
  if (!err) {
    r->provider =
        tt_deployment_find_provider(d, provider_name, strlen(provider_name));
    if (!r->provider) {
      tether_buf known;
      tether_buf_init(&known);
      list_visible_providers(d, &known);
      size_t mark = path_push_key(L, "provider", 8);
      char shown[120];
      printable(provider_name, strlen(provider_name), shown, sizeof shown);
      if (known.len)
        err =
            fail(L, "unknown provider '%s' (declared: %s)", shown, known.data);
      else
        err =
            fail(L, "unknown provider '%s' (no providers are declared)", shown);
      path_pop(L, mark);
      tether_buf_free(&known);
    }
  }
  free(provider_name);
  if (!err)
    err = get_required_string(L, v, "type", &r->type);

  const tether_json *inputs = tether_json_object_get(v, "inputs");
  if (!err && inputs) {
    size_t mark = path_push_key(L, "inputs", 6);
    err = expect_kind(L, inputs, TETHER_JSON_OBJECT);
    path_pop(L, mark);
  }
  if (!err)
    r->inputs = inputs ? tether_json_ref(inputs) : tether_json_object();

  const tether_json *deps = tether_json_object_get(v, "dependsOn");
  if (!err && deps) {
    size_t mark = path_push_key(L, "dependsOn", 9);
    err = expect_kind(L, deps, TETHER_JSON_ARRAY);
    for (size_t i = 0; !err && i < tether_json_array_size(deps); i++) {
      size_t imark = path_push_index(L, i);
      err = expect_kind(L, tether_json_array_get(deps, i), TETHER_JSON_STRING);
      path_pop(L, imark);
    }
    path_pop(L, mark);
  }
  const tether_json *state = tether_json_object_get(v, "state");
  if (!err && state) {
    size_t mark = path_push_key(L, "state", 5);
    err = expect_kind(L, state, TETHER_JSON_STRING);
    path_pop(L, mark);
  }
  const tether_json *order = tether_json_object_get(v, "replaceOrder");
  if (!err && order) {
    size_t mark = path_push_key(L, "replaceOrder", 12);
    err = expect_kind(L, order, TETHER_JSON_STRING);
    const char *o = err ? "" : tether_json_string_value(order);
    if (!err && strcmp(o, "create-first") == 0)
      r->replace_order = TT_REPLACE_CREATE_FIRST;
    else if (!err && strcmp(o, "delete-first") == 0)
      r->replace_order = TT_REPLACE_DELETE_FIRST;
    else if (!err) {
      char shown[120];
      err = fail(
          L,
          "expected \"create-first\" or \"delete-first\", found "
          "\"%s\"",
          printable(o, tether_json_string_length(order), shown, sizeof shown));
    }
    path_pop(L, mark);
  }
  return err;
}

/* Runs fn on each member of the object v[member], with the path pointing
 * at the member. */
typedef const char *member_loader(loader *L, tt_deployment *d, const char *name,
                                  size_t len, const tether_json *v);

static const char *load_each(loader *L, tt_deployment *d,
                             const tether_json *obj, const char *member,
                             member_loader *fn) {
  const tether_json *v = tether_json_object_get(obj, member);
  if (!v)
    return NULL;
  size_t mark = path_push_key(L, member, strlen(member));
  const char *err = expect_kind(L, v, TETHER_JSON_OBJECT);
  size_t it = 0;
  const char *key;
  size_t keylen;
  tether_json *value;
  while (!err && tether_json_object_next(v, &it, &key, &keylen, &value)) {
    size_t kmark = path_push_key(L, key, keylen);
    err = fn(L, d, key, keylen, value);
    path_pop(L, kmark);
  }
  path_pop(L, mark);
  return err;
}

static const char *load_deployment(loader *L, tt_deployment *d,
                                   const tether_json *v);

static const char *load_nested(loader *L, tt_deployment *parent,
                               const char *name, size_t len,
                               const tether_json *v) {
  if (!tt_name_valid(name, len))
    return fail(L, "invalid deployment name: use ASCII letters, digits, '_' "
                   "and '-'");
  tt_deployment *d = new_deployment(L->m, parent, name, len);
  parent->deployments =
      tt_realloc(parent->deployments,
                 (parent->ndeployments + 1) * sizeof(tt_deployment *));
  parent->deployments[parent->ndeployments++] = d;
  tt_strmap_put(&parent->deployment_names, name, len, d);
  return load_deployment(L, d, v);
}

static const char *load_deployment(loader *L, tt_deployment *d,
                                   const tether_json *v) {
  static const char *const members[] = {"state",       "providers", "resources",
                                        "deployments", "$schema",   NULL};
  const char *err = NULL;
  if (tether_json_kind_of(v) != TETHER_JSON_OBJECT) {
    if (!d->parent)
      return fail(L, "a deployment must be a JSON object, found %s",
                  tt_json_kind_phrase(tether_json_kind_of(v)));
    err = expect_kind(L, v, TETHER_JSON_OBJECT);
  }
  if (!err)
    err = check_members(L, v, members);
  const tether_json *state = tether_json_object_get(v, "state");
  if (!err && state) {
    size_t mark = path_push_key(L, "state", 5);
    err = expect_kind(L, state, TETHER_JSON_STRING);
    path_pop(L, mark);
  }
  /* Providers first: a resource names one visible from its deployment,
   * and nested deployments see the ones declared here. */
  if (!err)
    err = load_each(L, d, v, "providers", load_provider);
  if (!err)
    err = load_each(L, d, v, "resources", load_resource);
  if (!err)
    err = load_each(L, d, v, "deployments", load_nested);
  return err;
}

/* ---- Linking: state members, references, dependsOn ---- */

static const char *resolve_state_name(loader *L, tt_deployment *d,
                                      const tether_json *state,
                                      tt_resource **out) {
  const char *name = tether_json_string_value(state);
  size_t len = tether_json_string_length(state);
  *out = tt_strmap_get(&d->resource_names, name, len);
  if (*out)
    return NULL;
  char shown[120];
  printable(name, len, shown, sizeof shown);
  if (memchr(name, '.', len))
    return fail(L,
                "unknown resource '%s' (a store must be a resource of the "
                "same deployment)",
                shown);
  return fail(L, "unknown resource '%s'", shown);
}

/* Resolves every "state" member, marking the resources they name as
 * stores. Which resources are stores decides where the others are
 * recorded, so this runs over the whole tree before stores are assigned. */
static const char *link_states(loader *L, tt_deployment *d,
                               const tether_json *v) {
  const char *err = NULL;
  const tether_json *state = tether_json_object_get(v, "state");
  if (state) {
    path_set(L, d->json_path);
    size_t mark = path_push_key(L, "state", 5);
    err = resolve_state_name(L, d, state, &d->state);
    path_pop(L, mark);
    if (!err)
      d->state->is_store = true;
  }
  for (size_t i = 0; !err && i < d->nresources; i++) {
    tt_resource *r = d->resources[i];
    const tether_json *rs = tether_json_object_get(L->specs[r->index], "state");
    if (!rs)
      continue;
    path_set(L, r->json_path);
    path_push_key(L, "state", 5);
    err = resolve_state_name(L, d, rs, &r->state);
    if (!err && r->state == r)
      err = fail(L, "a resource cannot be recorded in itself");
    if (!err)
      r->state->is_store = true;
  }
  const tether_json *nested = tether_json_object_get(v, "deployments");
  for (size_t i = 0; !err && i < d->ndeployments; i++) {
    tt_deployment *child = d->deployments[i];
    err = link_states(L, child, tether_json_object_get(nested, child->name));
  }
  return err;
}

/* Collects a resource's dependencies, each target once. seen[i] holds the
 * index plus one of the last resource that added resource i, which makes
 * the duplicate check constant-time without clearing between resources. */
typedef struct dep_collector {
  tt_resource *r;
  size_t *seen;
  size_t cap;
} dep_collector;

static void add_dep(dep_collector *c, tt_resource *target, tt_dep_kind kind,
                    const char *written, size_t written_len) {
  tt_resource *r = c->r;
  if (kind != TT_DEP_STATE) {
    if (c->seen[target->index] == r->index + 1)
      return;
    c->seen[target->index] = r->index + 1;
    r->depends_on =
        tt_realloc(r->depends_on, (r->ndepends_on + 1) * sizeof *r->depends_on);
    r->depends_on[r->ndepends_on++] = tt_strndup(written, written_len);
  }
  if (r->ndeps == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 4;
    r->deps = tt_realloc(r->deps, c->cap * sizeof *r->deps);
  }
  r->deps[r->ndeps].target = target;
  r->deps[r->ndeps].kind = kind;
  r->ndeps++;
}

static const char *link_reference(loader *L, dep_collector *c,
                                  const tt_ref *ref) {
  tt_resource *r = c->r;
  size_t missing = 0;
  tt_resource *target = tt_deployment_find_resource(r->deployment, ref->target,
                                                    ref->target_len, &missing);
  char shown[120], prefix[120];
  printable(ref->target, ref->target_len, shown, sizeof shown);
  if (!target && missing)
    return fail(L,
                "reference to unknown resource '%s': there is no "
                "deployment '%s'",
                shown, printable(ref->target, missing, prefix, sizeof prefix));
  if (!target)
    return fail(L, "reference to unknown resource '%s'", shown);
  if (target == r)
    return fail(L, "a resource cannot reference its own outputs");
  add_dep(c, target, TT_DEP_REFERENCE, ref->target, ref->target_len);
  return NULL;
}

static const char *link_value(loader *L, dep_collector *c,
                              const tether_json *v) {
  const char *err = NULL;
  switch (tether_json_kind_of(v)) {
  case TETHER_JSON_NULL:
  case TETHER_JSON_BOOL:
  case TETHER_JSON_NUMBER:
    return NULL;
  case TETHER_JSON_STRING: {
    tt_ref_scanner sc;
    tt_ref_scan_init(&sc, tether_json_string_value(v),
                     tether_json_string_length(v));
    for (tt_ref_token t; !err && (t = tt_ref_scan_next(&sc)) != TT_REF_END;) {
      if (t == TT_REF_REFERENCE)
        err = link_reference(L, c, &sc.ref);
      else if (t == TT_REF_ERROR)
        err = fail(L, "%s", sc.error);
    }
    return err;
  }
  case TETHER_JSON_ARRAY:
    for (size_t i = 0; !err && i < tether_json_array_size(v); i++) {
      size_t mark = path_push_index(L, i);
      err = link_value(L, c, tether_json_array_get(v, i));
      path_pop(L, mark);
    }
    return err;
  case TETHER_JSON_OBJECT: {
    size_t it = 0;
    const char *key;
    size_t keylen;
    tether_json *member;
    while (!err && tether_json_object_next(v, &it, &key, &keylen, &member)) {
      size_t mark = path_push_key(L, key, keylen);
      err = link_value(L, c, member);
      path_pop(L, mark);
    }
    return err;
  }
  }
  return NULL;
}

/* True for NAME or NAME.NAME...: the resource paths of dependsOn. */
static bool resource_path_valid(const char *s, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++)
    if (i == len || s[i] == '.') {
      if (!tt_name_valid(s + start, i - start))
        return false;
      start = i + 1;
    }
  return true;
}

static const char *link_depends_on(loader *L, dep_collector *c,
                                   const tether_json *deps) {
  tt_resource *r = c->r;
  const char *err = NULL;
  path_push_key(L, "dependsOn", 9);
  for (size_t i = 0; !err && i < tether_json_array_size(deps); i++) {
    const tether_json *e = tether_json_array_get(deps, i);
    const char *s = tether_json_string_value(e);
    size_t len = tether_json_string_length(e);
    size_t mark = path_push_index(L, i);
    char shown[120], prefix[120];
    printable(s, len, shown, sizeof shown);
    if (!resource_path_valid(s, len)) {
      err = fail(L,
                 "'%s' is not a resource path (expected a name like "
                 "\"db\", or \"sub.db\" for a nested deployment's)",
                 shown);
    } else {
      size_t missing = 0;
      tt_resource *target =
          tt_deployment_find_resource(r->deployment, s, len, &missing);
      if (!target && missing)
        err = fail(L,
                   "depends on unknown resource '%s': there is no "
                   "deployment '%s'",
                   shown, printable(s, missing, prefix, sizeof prefix));
      else if (!target)
        err = fail(L, "depends on unknown resource '%s'", shown);
      else if (target == r)
        err = fail(L, "a resource cannot depend on itself");
      else
        add_dep(c, target, TT_DEP_EXPLICIT, s, len);
    }
    path_pop(L, mark);
  }
  return err;
}

static const char *link_dependencies(loader *L) {
  tt_model *m = L->m;
  const char *err = NULL;
  dep_collector c = {.seen = tt_calloc(m->nresources, sizeof(size_t))};
  for (size_t i = 0; !err && i < m->nresources; i++) {
    tt_resource *r = m->resources[i];
    c.r = r;
    c.cap = 0;
    path_set(L, r->json_path);
    size_t mark = path_push_key(L, "inputs", 6);
    err = link_value(L, &c, r->inputs);
    path_pop(L, mark);
    const tether_json *deps =
        tether_json_object_get(L->specs[r->index], "dependsOn");
    if (!err && deps)
      err = link_depends_on(L, &c, deps);
    /* The store edge comes last; reserve room for it now so the array
     * never needs to know its capacity later. */
    if (!err) {
      r->deps = tt_realloc(r->deps, (r->ndeps + 1) * sizeof *r->deps);
    }
  }
  free(c.seen);
  return err;
}

/* The record's place in its store: one /deployments/NAME step for each
 * deployment between the store's and the resource's, then
 * /resources/NAME. */
static char *record_pointer(const tt_resource *r) {
  const tt_deployment *top = r->store->deployment;
  size_t depth = 0;
  for (const tt_deployment *d = r->deployment; d != top; d = d->parent)
    depth++;
  const tt_deployment **chain = tt_calloc(depth, sizeof *chain);
  size_t i = depth;
  for (const tt_deployment *d = r->deployment; d != top; d = d->parent)
    chain[--i] = d;
  tether_buf b;
  tether_buf_init(&b);
  for (i = 0; i < depth; i++) {
    tether_buf_append_str(&b, "/deployments");
    tether_json_pointer_append(&b, chain[i]->name, strlen(chain[i]->name));
  }
  tether_buf_append_str(&b, "/resources");
  tether_json_pointer_append(&b, r->name, strlen(r->name));
  free(chain);
  return tether_buf_steal(&b, NULL);
}

static const char *assign_stores(loader *L, tt_deployment *d) {
  const char *err = NULL;
  d->store = d->state ? d->state : d->parent ? d->parent->store : NULL;
  for (size_t i = 0; !err && i < d->nresources; i++) {
    tt_resource *r = d->resources[i];
    r->store = r->state ? r->state : r->is_store ? NULL : d->store;
    if (r->store) {
      r->record_pointer = record_pointer(r);
      r->deps[r->ndeps].target = r->store;
      r->deps[r->ndeps].kind = TT_DEP_STATE;
      r->ndeps++;
    } else if (!r->is_store) {
      path_set(L, d->json_path);
      path_push_key(L, "state", 5);
      err = fail(L, "missing; name the resource that stores this "
                    "deployment's records");
    }
  }
  for (size_t i = 0; !err && i < d->ndeployments; i++)
    err = assign_stores(L, d->deployments[i]);
  return err;
}

/* ---- Entry points ---- */

static void line_and_column(const char *text, size_t len, size_t offset,
                            size_t *line, size_t *column) {
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < offset && i < len; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *column = 1;
    } else {
      (*column)++;
    }
  }
}

tt_model *tt_model_parse(const char *file, const char *text, size_t len,
                         tt_diag *diag) {
  tt_model *m = tt_calloc(1, sizeof *m);
  m->file = tt_strdup(file);
  tether_json_error jerr;
  tether_json *doc = tether_json_parse(text, len, &jerr);
  if (!doc) {
    size_t line, column;
    line_and_column(text, len, jerr.offset, &line, &column);
    tt_diag_set(diag, "%s: line %zu, column %zu: %s", file, line, column,
                jerr.message);
    tt_model_free(m);
    return NULL;
  }
  loader L = {.m = m, .diag = diag};
  tether_buf_init(&L.path);
  m->root = new_deployment(m, NULL, "", 0);
  const char *err = load_deployment(&L, m->root, doc);
  if (!err)
    err = link_states(&L, m->root, doc);
  if (!err)
    err = link_dependencies(&L);
  if (!err)
    err = assign_stores(&L, m->root);
  if (!err)
    err = tt_graph_sort(m, diag);
  tether_buf_free(&L.path);
  free(L.specs);
  tether_json_unref(doc);
  if (err) {
    tt_model_free(m);
    return NULL;
  }
  return m;
}

tt_model *tt_model_load(const char *path, tt_diag *diag) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    tt_diag_set(diag, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  tether_buf b;
  tether_buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    tether_buf_append(&b, chunk, n);
  int failed = ferror(f);
  int saved = errno;
  fclose(f);
  if (failed) {
    tt_diag_set(diag, "%s: cannot read: %s", path, strerror(saved));
    tether_buf_free(&b);
    return NULL;
  }
  tt_model *m = tt_model_parse(path, b.data ? b.data : "", b.len, diag);
  tether_buf_free(&b);
  return m;
}
