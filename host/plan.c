/*
 * plan.c: deciding each resource's step, ordering the steps, and the state
 * patches and output built from them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"

const char *tt_action_name(tt_action a) {
  switch (a) {
  case TT_ACTION_SKIP:
    return "skip";
  case TT_ACTION_CREATE:
    return "create";
  case TT_ACTION_UPDATE:
    return "update";
  case TT_ACTION_REPLACE:
    return "replace";
  case TT_ACTION_DELETE:
    return "delete";
  case TT_ACTION_BOOTSTRAP:
    return "bootstrap";
  }
  return "?";
}

const char *tt_op_name(tt_op op) {
  switch (op) {
  case TT_OP_CREATE:
    return "create";
  case TT_OP_UPDATE:
    return "update";
  case TT_OP_DELETE:
    return "delete";
  }
  return "?";
}

const char *tt_op_progress(tt_op op) {
  switch (op) {
  case TT_OP_CREATE:
    return "creating";
  case TT_OP_UPDATE:
    return "updating";
  case TT_OP_DELETE:
    return "deleting";
  }
  return "?";
}

/* Member access that tolerates a missing container, since records come
 * from stores that other tools may have written. */
const tether_json *tt_json_member(const tether_json *obj, const char *key) {
  return obj && tether_json_is_object(obj) ? tether_json_object_get(obj, key)
                                           : NULL;
}

static const char *record_string(const tether_json *rec, const char *member) {
  const tether_json *v = tt_json_member(rec, member);
  return v && tether_json_is_string(v) ? tether_json_string_value(v) : NULL;
}

static bool record_flag(const tether_json *obj, const char *member) {
  const tether_json *v = tt_json_member(obj, member);
  return v && tether_json_bool_value(v);
}

static bool is_array(const tether_json *v) {
  return v && tether_json_is_array(v);
}

/* The lifecycle statuses of SPEC section 6. */
typedef enum record_status {
  STATUS_CREATING,
  STATUS_CREATED,
  STATUS_UPDATING,
  STATUS_UPDATED,
  STATUS_DELETING
} record_status;

static bool parse_status(const tether_json *rec, record_status *out) {
  const tether_json *v = tt_json_member(rec, "status");
  if (!v) {
    /* NixOps4 writes no status; its records describe finished work. */
    *out = STATUS_CREATED;
    return true;
  }
  const char *s = tether_json_is_string(v) ? tether_json_string_value(v) : NULL;
  if (!s)
    return false;
  static const struct {
    const char *name;
    record_status status;
  } names[] = {{"creating", STATUS_CREATING},
               {"created", STATUS_CREATED},
               {"updating", STATUS_UPDATING},
               {"updated", STATUS_UPDATED},
               {"deleting", STATUS_DELETING}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) {
      *out = names[i].status;
      return true;
    }
  return false;
}

/* ---- Building the plan ---- */

/* One record found in a store. */
typedef struct record_ref {
  const tether_json *rec;      /* borrowed from the store's state */
  size_t store;                /* store_index */
  char *pointer;               /* inside the store's state */
  char *path;                  /* the resource path it stands for: "sub/web" */
  char *deployment_path;       /* "sub" */
  const tt_resource *resource; /* the resource in the file it belongs to */
  size_t step;                 /* the step that works on it */
} record_ref;

typedef struct edge {
  size_t from; /* waits ... */
  size_t to;   /* ... for this one */
} edge;

typedef struct planner {
  const tt_plan_input *in;
  const tt_model *m;
  tt_plan *p;
  tt_diag *diag;
  record_ref *recs;
  size_t nrecs, recs_cap;
  size_t *rec_of;   /* by resource index: index into recs, or TT_NO_STEP */
  bool *can_update; /* by resource index */
  size_t steps_cap;
  edge *edges;
  size_t nedges, edges_cap;
  tether_json *empty; /* {} for records without outputs */
} planner;

static const char *file_of(const planner *P) { return P->m->file; }

static const tether_json *state_of(const planner *P, size_t si) {
  return P->in->states ? P->in->states[si] : NULL;
}

static void add_edge(planner *P, size_t from, size_t to) {
  if (from == TT_NO_STEP || to == TT_NO_STEP || from == to)
    return;
  if (P->nedges == P->edges_cap) {
    P->edges_cap = P->edges_cap ? P->edges_cap * 2 : 64;
    P->edges = tt_realloc(P->edges, P->edges_cap * sizeof *P->edges);
  }
  P->edges[P->nedges].from = from;
  P->edges[P->nedges].to = to;
  P->nedges++;
}

/* Steps live in an array sized up front (one per resource plus two per
 * record at most), so a tt_step pointer stays valid while others are
 * added. */
static size_t new_step(planner *P, const char *path,
                       const char *deployment_path) {
  tt_plan *p = P->p;
  if (p->nsteps == P->steps_cap) {
    /* One step per resource and two per record bound the count; getting
     * here means that bound is wrong, and steps must not move. */
    fprintf(stderr, "tether: internal error: more plan steps than planned\n");
    abort();
  }
  size_t i = p->nsteps++;
  tt_step *s = &p->steps[i];
  memset(s, 0, sizeof *s);
  s->path = tt_strdup(path);
  s->deployment_path = tt_strdup(deployment_path);
  const char *slash = strrchr(path, '/');
  s->name = tt_strdup(slash ? slash + 1 : path);
  s->order = TT_REPLACE_CREATE_FIRST;
  return i;
}

/* ---- Provider types ---- */

static void list_keys(const tether_json *obj, tether_buf *out) {
  size_t it = 0;
  const char *key;
  size_t keylen;
  tether_json *v;
  while (tether_json_object_next(obj, &it, &key, &keylen, &v)) {
    if (out->len)
      tether_buf_append_str(out, ", ");
    tether_buf_append(out, key, keylen);
  }
}

bool tt_type_has_operation(const tether_json *type, const char *op) {
  const tether_json *ops = tt_json_member(type, "operations");
  if (!is_array(ops))
    return true; /* not declared: assume everything, the provider decides */
  for (size_t i = 0; i < tether_json_array_size(ops); i++) {
    const tether_json *e = tether_json_array_get(ops, i);
    const char *s =
        tether_json_is_string(e) ? tether_json_string_value(e) : NULL;
    if (s && strcmp(s, op) == 0)
      return true;
  }
  return false;
}

static const char *check_types(planner *P) {
  const tt_model *m = P->m;
  for (size_t i = 0; i < m->nresources; i++) {
    const tt_resource *r = m->resources[i];
    P->can_update[i] = true;
    const tether_json *types = P->in->provider_types
                                   ? P->in->provider_types[r->provider->index]
                                   : NULL;
    if (!types)
      continue;
    const tether_json *t = tt_json_member(types, r->type);
    if (!t) {
      tether_buf known;
      tether_buf_init(&known);
      list_keys(types, &known);
      tt_diag_set(P->diag,
                  "%s: %s.type: provider '%s' has no resource type '%s' "
                  "(its types: %s)",
                  file_of(P), r->json_path, r->provider->name, r->type,
                  known.len ? known.data : "none");
      tether_buf_free(&known);
      return P->diag->message;
    }
    P->can_update[i] = tt_type_has_operation(t, "update");
    if (r->is_store && !record_flag(t, "stateProvider"))
      return tt_diag_set(P->diag,
                         "%s: %s: cannot store state: type '%s' of provider "
                         "'%s' is not a state provider",
                         file_of(P), r->json_path, r->type, r->provider->name);
    if (r->is_store && !r->store && record_flag(t, "requireState"))
      return tt_diag_set(P->diag,
                         "%s: %s: type '%s' requires state, so this store "
                         "cannot bootstrap itself; give it a \"state\" to be "
                         "recorded in",
                         file_of(P), r->json_path, r->type);
  }
  return NULL;
}

/* ---- Records ---- */

static const char *store_problem(planner *P, size_t si, const char *pointer,
                                 const char *problem) {
  return tt_diag_set(P->diag, "%s: store '%s': %s: %s", file_of(P),
                     P->m->stores[si]->path, pointer[0] ? pointer : "/",
                     problem);
}

static const char *check_record(planner *P, size_t si, const char *pointer,
                                const tether_json *rec) {
  if (!tether_json_is_object(rec))
    return store_problem(P, si, pointer, "record is not an object");
  if (!record_string(rec, "type"))
    return store_problem(P, si, pointer, "record has no \"type\"");
  record_status st;
  if (!parse_status(rec, &st)) {
    char msg[200];
    const char *s = record_string(rec, "status");
    snprintf(msg, sizeof msg, "record has an unknown status %s%.60s%s",
             s ? "'" : "", s ? s : "(not a string)", s ? "'" : "");
    return store_problem(P, si, pointer, msg);
  }
  const tether_json *prev = tether_json_object_get(rec, "replaces");
  if (prev && (!tether_json_is_object(prev) || !record_string(prev, "type")))
    return store_problem(P, si, pointer,
                         "record's \"replaces\" is not a record");
  return NULL;
}

static const char *index_container(planner *P, size_t si,
                                   const tether_json *container,
                                   tether_buf *pointer, tether_buf *dpath) {
  const char *err = NULL;
  const tether_json *res = tether_json_object_get(container, "resources");
  if (res && !tether_json_is_object(res))
    return store_problem(P, si, pointer->data ? pointer->data : "",
                         "\"resources\" is not an object");
  size_t it = 0;
  const char *key;
  size_t keylen;
  tether_json *v;
  while (res && !err && tether_json_object_next(res, &it, &key, &keylen, &v)) {
    size_t mark = pointer->len;
    tether_buf_append_str(pointer, "/resources");
    tether_json_pointer_append(pointer, key, keylen);
    err = check_record(P, si, pointer->data, v);
    if (!err) {
      if (P->nrecs == P->recs_cap) {
        P->recs_cap = P->recs_cap ? P->recs_cap * 2 : 64;
        P->recs = tt_realloc(P->recs, P->recs_cap * sizeof *P->recs);
      }
      record_ref *rr = &P->recs[P->nrecs++];
      memset(rr, 0, sizeof *rr);
      rr->rec = v;
      rr->store = si;
      rr->pointer = tt_strdup(pointer->data);
      rr->deployment_path = tt_strdup(dpath->data ? dpath->data : "");
      tether_buf b;
      tether_buf_init(&b);
      if (dpath->len) {
        tether_buf_append(&b, dpath->data, dpath->len);
        tether_buf_append_char(&b, '/');
      }
      tether_buf_append(&b, key, keylen);
      rr->path = tether_buf_steal(&b, NULL);
      rr->step = TT_NO_STEP;
    }
    pointer->len = mark;
    pointer->data[mark] = '\0';
  }
  const tether_json *deps = tether_json_object_get(container, "deployments");
  if (!err && deps && !tether_json_is_object(deps))
    return store_problem(P, si, pointer->data ? pointer->data : "",
                         "\"deployments\" is not an object");
  it = 0;
  while (deps && !err &&
         tether_json_object_next(deps, &it, &key, &keylen, &v)) {
    size_t mark = pointer->len, dmark = dpath->len;
    tether_buf_append_str(pointer, "/deployments");
    tether_json_pointer_append(pointer, key, keylen);
    if (dpath->len)
      tether_buf_append_char(dpath, '/');
    tether_buf_append(dpath, key, keylen);
    if (!tether_json_is_object(v))
      err = store_problem(P, si, pointer->data, "not an object");
    else
      err = index_container(P, si, v, pointer, dpath);
    pointer->len = mark;
    pointer->data[mark] = '\0';
    dpath->len = dmark;
    dpath->data[dmark] = '\0';
  }
  return err;
}

/* Finds every record of every store and ties each to the resource in the
 * file it belongs to, through one hash table keyed by store and pointer. */
static const char *index_records(planner *P) {
  const tt_model *m = P->m;
  const char *err = NULL;
  for (size_t si = 0; !err && si < m->nstores; si++) {
    const tether_json *st = state_of(P, si);
    if (!st)
      continue;
    const char *type = record_string(st, "_type");
    if (!tether_json_is_object(st) || !type ||
        strcmp(type, "nixopsState") != 0) {
      err = store_problem(P, si, "", "not a state of type \"nixopsState\"");
      break;
    }
    tether_buf pointer, dpath;
    tether_buf_init(&pointer);
    tether_buf_init(&dpath);
    tether_buf_append_str(&pointer, "");
    tether_buf_append_str(&dpath, m->stores[si]->deployment->path);
    err = index_container(P, si, st, &pointer, &dpath);
    tether_buf_free(&pointer);
    tether_buf_free(&dpath);
  }
  for (size_t i = 0; i < m->nresources; i++)
    P->rec_of[i] = TT_NO_STEP;
  if (err || P->in->destroy)
    return err;
  tt_strmap by_place;
  tt_strmap_init(&by_place);
  tether_buf key;
  tether_buf_init(&key);
  for (size_t i = 0; i < m->nresources; i++) {
    const tt_resource *r = m->resources[i];
    if (!r->store)
      continue;
    key.len = 0;
    tether_buf_printf(&key, "%zu:%s", r->store->store_index, r->record_pointer);
    tt_strmap_put(&by_place, key.data, key.len, (void *)r);
  }
  for (size_t i = 0; i < P->nrecs; i++) {
    key.len = 0;
    tether_buf_printf(&key, "%zu:%s", P->recs[i].store, P->recs[i].pointer);
    const tt_resource *r = tt_strmap_get(&by_place, key.data, key.len);
    if (r) {
      P->recs[i].resource = r;
      P->rec_of[r->index] = i;
    }
  }
  tether_buf_free(&key);
  tt_strmap_free(&by_place);
  return NULL;
}

/* ---- Deciding ---- */

static const tether_json *plan_lookup(void *ctx, const tt_resource *target) {
  planner *P = ctx;
  size_t si = P->p->step_of[target->index];
  if (si == TT_NO_STEP)
    return NULL;
  const tt_step *s = &P->p->steps[si];
  switch (s->action) {
  case TT_ACTION_SKIP: {
    const tether_json *out = tt_step_recorded_outputs(s);
    return out ? out : P->empty;
  }
  case TT_ACTION_BOOTSTRAP:
    return P->in->bootstrap_outputs
               ? P->in->bootstrap_outputs[target->store_index]
               : NULL;
  case TT_ACTION_CREATE:
  case TT_ACTION_UPDATE:
  case TT_ACTION_REPLACE:
  case TT_ACTION_DELETE:
    return NULL;
  }
  return NULL;
}

/* The deployment whose providers a record's provider name is looked up
 * in: its own when it is still in the file, else the nearest enclosing one
 * that is (providers are usually declared at the top). */
const tt_deployment *tt_record_scope(const tt_model *m, const char *dpath) {
  size_t len = strlen(dpath);
  for (;;) {
    tt_deployment *d = tt_model_find_deployment(m, dpath, len);
    if (d)
      return d;
    while (len > 0 && dpath[len - 1] != '/')
      len--;
    if (len > 0)
      len--;
  }
}

/* Takes the record of the instance a step works on, without "replaces":
 * that member belongs to the record at the pointer, not to this instance. */
static const char *set_old(planner *P, tt_step *s, const tether_json *rec,
                           const char *dpath, const tt_resource *r) {
  tether_json *copy = tether_json_ref(rec);
  if (tether_json_object_get(copy, "replaces"))
    copy = tether_json_object_remove(copy, "replaces");
  s->record = copy;
  s->old_type = record_string(copy, "type");
  const char *prov = record_string(copy, "provider");
  if (!prov) {
    /* NixOps4 records name no provider: the one the file names now is the
     * best guess, and the only one there is for a removed resource. */
    s->old_provider = r ? r->provider : NULL;
    if (!s->old_provider)
      return tt_diag_set(P->diag,
                         "%s: cannot delete '%s': its record names no "
                         "provider",
                         file_of(P), s->path);
    return NULL;
  }
  s->old_provider = tt_deployment_find_provider(tt_record_scope(P->m, dpath),
                                                prov, strlen(prov));
  if (!s->old_provider)
    return tt_diag_set(P->diag,
                       "%s: cannot delete '%s': it was created by provider "
                       "'%s', which the file no longer declares (declare it "
                       "again so the old resource can be deleted)",
                       file_of(P), s->path, prov);
  return NULL;
}

/* Lists the input pointers where two values differ. A member present on
 * one side only, a change of kind and an array that changed length are
 * each reported at their own pointer. */
typedef struct path_list {
  char **items;
  size_t len, cap;
} path_list;

static void path_list_add(path_list *l, const char *p) {
  if (l->len == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 4;
    l->items = tt_realloc(l->items, l->cap * sizeof *l->items);
  }
  l->items[l->len++] = tt_strdup(p);
}

static void diff_values(const tether_json *old, const tether_json *new,
                        tether_buf *ptr, path_list *out) {
  const char *here = ptr->data ? ptr->data : "";
  if (!old || !new || tether_json_kind_of(old) != tether_json_kind_of(new)) {
    path_list_add(out, here);
    return;
  }
  switch (tether_json_kind_of(new)) {
  case TETHER_JSON_NULL:
  case TETHER_JSON_BOOL:
  case TETHER_JSON_NUMBER:
  case TETHER_JSON_STRING:
    if (!tether_json_equal(old, new))
      path_list_add(out, here);
    return;
  case TETHER_JSON_ARRAY: {
    size_t n = tether_json_array_size(new);
    if (n != tether_json_array_size(old)) {
      path_list_add(out, here);
      return;
    }
    for (size_t i = 0; i < n; i++) {
      size_t mark = ptr->len;
      tether_buf_printf(ptr, "/%zu", i);
      diff_values(tether_json_array_get(old, i), tether_json_array_get(new, i),
                  ptr, out);
      ptr->len = mark;
      ptr->data[mark] = '\0';
    }
    return;
  }
  case TETHER_JSON_OBJECT: {
    size_t it = 0;
    const char *key;
    size_t keylen;
    tether_json *v;
    while (tether_json_object_next(new, &it, &key, &keylen, &v)) {
      size_t mark = ptr->len;
      tether_json_pointer_append(ptr, key, keylen);
      diff_values(tether_json_object_getn(old, key, keylen), v, ptr, out);
      ptr->len = mark;
      ptr->data[mark] = '\0';
    }
    it = 0;
    while (tether_json_object_next(old, &it, &key, &keylen, &v)) {
      if (tether_json_object_getn(new, key, keylen))
        continue;
      size_t mark = ptr->len;
      tether_json_pointer_append(ptr, key, keylen);
      path_list_add(out, ptr->data);
      ptr->len = mark;
      ptr->data[mark] = '\0';
    }
    return;
  }
  }
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sets s->changed to the input pointers that differ between the record and
 * the resolved inputs, leaving out those known only after apply (their
 * null placeholder says nothing about the real value). */
static void compute_changed(tt_step *s) {
  for (size_t i = 0; i < s->nchanged; i++)
    free(s->changed[i]);
  free(s->changed);
  s->changed = NULL;
  s->nchanged = 0;
  const tether_json *old = tt_json_member(s->record, "inputProperties");
  tether_json *empty = NULL;
  if (!old)
    old = empty = tether_json_object();
  path_list l = {0};
  if (!tether_json_equal(old, s->inputs.inputs)) {
    tether_buf ptr;
    tether_buf_init(&ptr);
    tether_buf_append_str(&ptr, "");
    diff_values(old, s->inputs.inputs, &ptr, &l);
    tether_buf_free(&ptr);
  }
  tether_json_unref(empty);
  size_t nu = s->inputs.nunknown;
  char **unknown = NULL;
  if (nu) {
    unknown = tt_calloc(nu, sizeof *unknown);
    memcpy(unknown, s->inputs.unknown, nu * sizeof *unknown);
    qsort(unknown, nu, sizeof *unknown, compare_strings);
  }
  size_t kept = 0;
  for (size_t i = 0; i < l.len; i++) {
    if (nu &&
        bsearch(&l.items[i], unknown, nu, sizeof *unknown, compare_strings)) {
      free(l.items[i]);
      continue;
    }
    l.items[kept++] = l.items[i];
  }
  free(unknown);
  s->changed = l.items;
  s->nchanged = kept;
  if (!kept) {
    free(l.items);
    s->changed = NULL;
  }
}

static bool depends_on_matches(const tt_resource *r, const tether_json *rec) {
  const tether_json *deps = tt_json_member(rec, "dependsOn");
  size_t n = is_array(deps) ? tether_json_array_size(deps) : 0;
  if (n != r->ndepends_on)
    return false;
  for (size_t i = 0; i < n; i++) {
    const tether_json *e = tether_json_array_get(deps, i);
    const char *s =
        tether_json_is_string(e) ? tether_json_string_value(e) : NULL;
    if (!s || strcmp(s, r->depends_on[i]) != 0)
      return false;
  }
  return true;
}

/* A step for the previous instance inside a record's "replaces". */
static const char *plan_old_instance(planner *P, const record_ref *rr,
                                     const tt_resource *r, size_t *out) {
  *out = new_step(P, rr->path, rr->deployment_path);
  tt_step *o = &P->p->steps[*out];
  o->action = TT_ACTION_DELETE;
  o->old_instance = true;
  o->store = P->m->stores[rr->store];
  o->record_pointer = tt_strdup(rr->pointer);
  const tether_json *prev = tether_json_object_get(rr->rec, "replaces");
  record_status st = STATUS_CREATED;
  parse_status(prev, &st);
  o->resumed = st == STATUS_DELETING;
  return set_old(P, o, prev, rr->deployment_path, r);
}

static const char *plan_resource(planner *P, const tt_resource *r) {
  tt_plan *p = P->p;
  size_t idx = new_step(P, r->path, r->deployment->path);
  tt_step *s = &p->steps[idx];
  p->step_of[r->index] = idx;
  s->resource = r;
  s->provider = r->provider;
  s->type = r->type;
  s->store = r->store;
  s->record_pointer = r->record_pointer ? tt_strdup(r->record_pointer) : NULL;
  s->order = r->replace_order;
  const char *err = tt_resolve_inputs(r, plan_lookup, P, &s->inputs, P->diag);
  if (err)
    return err;
  if (!r->store) {
    s->action = TT_ACTION_BOOTSTRAP;
    return NULL;
  }
  size_t ri = P->rec_of[r->index];
  if (ri == TT_NO_STEP) {
    s->action = TT_ACTION_CREATE;
    return NULL;
  }
  record_ref *rr = &P->recs[ri];
  rr->step = idx;
  const tether_json *rec = rr->rec;
  record_status status;
  parse_status(rec, &status);
  const tether_json *prev = tether_json_object_get(rec, "replaces");
  if (prev && status == STATUS_CREATING) {
    /* Interrupted while creating the new instance of a create-first
     * replace: create it again, then delete the old one. */
    s->action = TT_ACTION_REPLACE;
    s->order = TT_REPLACE_CREATE_FIRST;
    s->resumed = true;
    err = set_old(P, s, prev, rr->deployment_path, r);
    if (err)
      return err;
    const char *old_provider = record_string(prev, "provider");
    s->type_changed = strcmp(s->old_type, r->type) != 0;
    s->provider_changed =
        old_provider && strcmp(old_provider, r->provider->name) != 0;
    compute_changed(s);
    return NULL;
  }
  if (prev) {
    size_t o;
    err = plan_old_instance(P, rr, r, &o);
    add_edge(P, idx, o);
    if (err)
      return err;
  }
  err = set_old(P, s, rec, rr->deployment_path, r);
  if (err)
    return err;
  const char *rec_provider = record_string(rec, "provider");
  s->type_changed = strcmp(s->old_type, r->type) != 0;
  s->provider_changed =
      rec_provider && strcmp(rec_provider, r->provider->name) != 0;
  bool kind_changed = s->type_changed || s->provider_changed;
  s->update_unsupported = !P->can_update[r->index];
  compute_changed(s);
  switch (status) {
  case STATUS_DELETING:
    /* The delete was under way; finish it and create anew. */
    s->action = TT_ACTION_REPLACE;
    s->order = TT_REPLACE_DELETE_FIRST;
    s->resumed = true;
    return NULL;
  case STATUS_CREATING:
    s->resumed = true;
    if (kind_changed) {
      s->action = TT_ACTION_REPLACE;
      return NULL;
    }
    /* Nothing may exist yet: create again with the current inputs. */
    s->action = TT_ACTION_CREATE;
    for (size_t i = 0; i < s->nchanged; i++)
      free(s->changed[i]);
    free(s->changed);
    s->changed = NULL;
    s->nchanged = 0;
    tether_json_unref(s->record);
    s->record = NULL;
    s->old_provider = NULL;
    s->old_type = NULL;
    return NULL;
  case STATUS_UPDATING:
    s->resumed = true;
    s->action = kind_changed || s->update_unsupported ? TT_ACTION_REPLACE
                                                      : TT_ACTION_UPDATE;
    return NULL;
  case STATUS_CREATED:
  case STATUS_UPDATED:
    break;
  }
  if (kind_changed) {
    s->action = TT_ACTION_REPLACE;
    return NULL;
  }
  if (!s->nchanged && !s->inputs.nunknown) {
    s->action = TT_ACTION_SKIP;
    s->update_unsupported = false;
    s->refresh_depends_on = !depends_on_matches(r, rec);
    return NULL;
  }
  s->action = s->update_unsupported ? TT_ACTION_REPLACE : TT_ACTION_UPDATE;
  s->conditional = s->nchanged == 0;
  return NULL;
}

static const char *plan_removed(planner *P, size_t ri,
                                tt_strmap *delete_of_path) {
  record_ref *rr = &P->recs[ri];
  const char *err = NULL;
  size_t o = TT_NO_STEP;
  if (tether_json_object_get(rr->rec, "replaces"))
    err = plan_old_instance(P, rr, NULL, &o);
  if (err)
    return err;
  size_t idx = new_step(P, rr->path, rr->deployment_path);
  tt_step *s = &P->p->steps[idx];
  rr->step = idx;
  add_edge(P, idx, o);
  s->action = TT_ACTION_DELETE;
  s->store = P->m->stores[rr->store];
  s->record_pointer = tt_strdup(rr->pointer);
  record_status st;
  parse_status(rr->rec, &st);
  s->resumed = st == STATUS_DELETING;
  tt_strmap_put(delete_of_path, rr->path, strlen(rr->path),
                (void *)(uintptr_t)(idx + 1));
  return set_old(P, s, rr->rec, rr->deployment_path, NULL);
}

/* Deletes go in reverse dependency order: a record that depends on a
 * deleted resource (by its recorded dependsOn) is deleted, updated or
 * replaced first. A resource that is replaced also loses its old instance,
 * so a removed resource that depended on it is deleted before the replace;
 * dependents still in the file come after the replace, as their own
 * dependencies say. In destroy mode a store is deleted after every record
 * it holds. */
static void order_deletes(planner *P, tt_strmap *delete_of_path,
                          tt_strmap *replace_of_path) {
  tether_buf path;
  tether_buf_init(&path);
  for (size_t i = 0; i < P->nrecs; i++) {
    const record_ref *rr = &P->recs[i];
    const tether_json *deps = tt_json_member(rr->rec, "dependsOn");
    size_t n = is_array(deps) ? tether_json_array_size(deps) : 0;
    for (size_t k = 0; k < n; k++) {
      const tether_json *e = tether_json_array_get(deps, k);
      const char *s =
          tether_json_is_string(e) ? tether_json_string_value(e) : NULL;
      if (!s)
        continue;
      path.len = 0;
      if (rr->deployment_path[0]) {
        tether_buf_append_str(&path, rr->deployment_path);
        tether_buf_append_char(&path, '/');
      }
      size_t start = path.len;
      tether_buf_append(&path, s, tether_json_string_length(e));
      for (size_t c = start; c < path.len; c++)
        if (path.data[c] == '.')
          path.data[c] = '/';
      uintptr_t d =
          (uintptr_t)tt_strmap_get(delete_of_path, path.data, path.len);
      if (d)
        add_edge(P, (size_t)d - 1, rr->step);
      uintptr_t rep =
          (uintptr_t)tt_strmap_get(replace_of_path, path.data, path.len);
      if (rep && rr->step != TT_NO_STEP &&
          P->p->steps[rr->step].action == TT_ACTION_DELETE)
        add_edge(P, (size_t)rep - 1, rr->step);
    }
  }
  tether_buf_free(&path);
  /* A record that moved to another store leaves a delete of the old
   * instance and a create of the new one under the same path. They are
   * the two halves of a replace and go in the resource's replaceOrder;
   * left unordered, the delete could remove what the create just made
   * (a file of the same name). */
  for (size_t i = 0; !P->in->destroy && i < P->m->nresources; i++) {
    size_t si = P->p->step_of[i];
    if (si == TT_NO_STEP || P->p->steps[si].action != TT_ACTION_CREATE)
      continue;
    const char *rp = P->p->steps[si].path;
    uintptr_t d = (uintptr_t)tt_strmap_get(delete_of_path, rp, strlen(rp));
    if (!d)
      continue;
    if (P->m->resources[i]->replace_order == TT_REPLACE_DELETE_FIRST)
      add_edge(P, si, (size_t)d - 1);
    else
      add_edge(P, (size_t)d - 1, si);
  }
  if (!P->in->destroy)
    return;
  size_t *store_step = tt_calloc(P->m->nstores, sizeof *store_step);
  for (size_t si = 0; si < P->m->nstores; si++)
    store_step[si] = TT_NO_STEP;
  for (size_t i = 0; i < P->nrecs; i++) {
    const record_ref *rr = &P->recs[i];
    const tt_resource *r =
        tt_model_find_resource(P->m, rr->path, strlen(rr->path));
    if (r && r->is_store && r->store && r->store->store_index == rr->store &&
        strcmp(r->record_pointer, rr->pointer) == 0)
      store_step[r->store_index] = rr->step;
  }
  for (size_t i = 0; i < P->nrecs; i++)
    add_edge(P, store_step[P->recs[i].store], P->recs[i].step);
  free(store_step);
}

/* Puts the steps in an order that respects their dependencies (among
 * steps free to go, the one planned first), fills deps and dependents, and
 * renumbers everything. Recorded dependsOn comes from past runs and may,
 * after a failed or hand-edited run, contradict itself; such a loop is
 * broken at the step planned first rather than left to deadlock an
 * executor. */
static void order_steps(planner *P) {
  tt_plan *p = P->p;
  size_t n = p->nsteps;
  /* Deduplicated adjacency in compressed rows, by planning index. */
  size_t *dep_first = tt_calloc(n + 1, sizeof *dep_first);
  for (size_t e = 0; e < P->nedges; e++)
    dep_first[P->edges[e].from + 1]++;
  for (size_t i = 0; i < n; i++)
    dep_first[i + 1] += dep_first[i];
  size_t *dep_list = tt_calloc(P->nedges + 1, sizeof *dep_list);
  size_t *fill = tt_calloc(n + 1, sizeof *fill);
  for (size_t e = 0; e < P->nedges; e++) {
    size_t f = P->edges[e].from;
    dep_list[dep_first[f] + fill[f]++] = P->edges[e].to;
  }
  size_t *stamp = tt_calloc(n + 1, sizeof *stamp);
  size_t *ndep = tt_calloc(n + 1, sizeof *ndep);
  for (size_t i = 0; i < n; i++) {
    size_t w = dep_first[i];
    for (size_t k = dep_first[i]; k < dep_first[i] + fill[i]; k++) {
      size_t t = dep_list[k];
      if (stamp[t] == i + 1)
        continue;
      stamp[t] = i + 1;
      dep_list[w++] = t;
    }
    ndep[i] = w - dep_first[i];
  }
  size_t *rev_first = tt_calloc(n + 1, sizeof *rev_first);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < ndep[i]; k++)
      rev_first[dep_list[dep_first[i] + k] + 1]++;
  for (size_t i = 0; i < n; i++)
    rev_first[i + 1] += rev_first[i];
  size_t *rev_list = tt_calloc(rev_first[n] + 1, sizeof *rev_list);
  memset(fill, 0, (n + 1) * sizeof *fill);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < ndep[i]; k++) {
      size_t t = dep_list[dep_first[i] + k];
      rev_list[rev_first[t] + fill[t]++] = i;
    }

  /* Kahn's algorithm over a min-heap of planning indexes. */
  size_t *waiting = tt_calloc(n + 1, sizeof *waiting);
  size_t *heap = tt_calloc(n + 1, sizeof *heap);
  size_t *new_index = tt_calloc(n + 1, sizeof *new_index);
  bool *placed = tt_calloc(n + 1, sizeof *placed);
  size_t *order = tt_calloc(n + 1, sizeof *order);
  size_t hlen = 0, count = 0, scan = 0;
  for (size_t i = 0; i < n; i++)
    waiting[i] = ndep[i];
#define HEAP_PUSH(v)                                                           \
  do {                                                                         \
    size_t hi = hlen++;                                                        \
    heap[hi] = (v);                                                            \
    while (hi > 0 && heap[(hi - 1) / 2] > heap[hi]) {                          \
      size_t ht = heap[hi];                                                    \
      heap[hi] = heap[(hi - 1) / 2];                                           \
      heap[(hi - 1) / 2] = ht;                                                 \
      hi = (hi - 1) / 2;                                                       \
    }                                                                          \
  } while (0)
  for (size_t i = 0; i < n; i++)
    if (!waiting[i])
      HEAP_PUSH(i);
  while (count < n) {
    if (!hlen) {
      while (placed[scan])
        scan++;
      waiting[scan] = 0;
      HEAP_PUSH(scan);
    }
    size_t v = heap[0];
    heap[0] = heap[--hlen];
    for (size_t hi = 0;;) {
      size_t l = 2 * hi + 1, r = l + 1, min = hi;
      if (l < hlen && heap[l] < heap[min])
        min = l;
      if (r < hlen && heap[r] < heap[min])
        min = r;
      if (min == hi)
        break;
      size_t ht = heap[hi];
      heap[hi] = heap[min];
      heap[min] = ht;
      hi = min;
    }
    if (placed[v])
      continue;
    placed[v] = true;
    new_index[v] = count;
    order[count++] = v;
    for (size_t k = rev_first[v]; k < rev_first[v + 1]; k++) {
      size_t d = rev_list[k];
      if (!placed[d] && waiting[d] && --waiting[d] == 0)
        HEAP_PUSH(d);
    }
  }
#undef HEAP_PUSH

  tt_step *sorted = tt_calloc(n + 1, sizeof *sorted);
  for (size_t k = 0; k < n; k++) {
    size_t old = order[k];
    tt_step *s = &sorted[k];
    *s = p->steps[old];
    s->deps = tt_calloc(ndep[old] + 1, sizeof *s->deps);
    s->ndeps = 0;
    for (size_t j = 0; j < ndep[old]; j++) {
      size_t t = dep_list[dep_first[old] + j];
      /* A dependency placed later was a broken loop's edge: drop it. */
      if (new_index[t] < k)
        s->deps[s->ndeps++] = new_index[t];
    }
  }
  for (size_t k = 0; k < n; k++)
    for (size_t j = 0; j < sorted[k].ndeps; j++)
      sorted[sorted[k].deps[j]].ndependents++;
  for (size_t k = 0; k < n; k++) {
    sorted[k].dependents = tt_calloc(sorted[k].ndependents + 1, sizeof(size_t));
    sorted[k].ndependents = 0;
  }
  for (size_t k = 0; k < n; k++)
    for (size_t j = 0; j < sorted[k].ndeps; j++) {
      tt_step *t = &sorted[sorted[k].deps[j]];
      t->dependents[t->ndependents++] = k;
    }
  for (size_t i = 0; i < P->m->nresources; i++)
    if (p->step_of[i] != TT_NO_STEP)
      p->step_of[i] = new_index[p->step_of[i]];
  free(p->steps);
  p->steps = sorted;

  free(dep_first);
  free(dep_list);
  free(fill);
  free(stamp);
  free(ndep);
  free(rev_first);
  free(rev_list);
  free(waiting);
  free(heap);
  free(new_index);
  free(placed);
  free(order);
}

static void count_steps(tt_plan *p) {
  for (size_t i = 0; i < p->nsteps; i++)
    switch (p->steps[i].action) {
    case TT_ACTION_SKIP:
      p->nskip++;
      break;
    case TT_ACTION_CREATE:
      p->ncreate++;
      break;
    case TT_ACTION_UPDATE:
      p->nupdate++;
      break;
    case TT_ACTION_REPLACE:
      p->nreplace++;
      break;
    case TT_ACTION_DELETE:
      p->ndelete++;
      break;
    case TT_ACTION_BOOTSTRAP:
      p->nbootstrap++;
      break;
    }
}

tt_plan *tt_plan_build(const tt_plan_input *in, tt_diag *diag) {
  const tt_model *m = in->model;
  tt_plan *p = tt_calloc(1, sizeof *p);
  p->model = m;
  p->step_of = tt_calloc(m->nresources + 1, sizeof *p->step_of);
  for (size_t i = 0; i < m->nresources; i++)
    p->step_of[i] = TT_NO_STEP;
  planner P = {.in = in, .m = m, .p = p, .diag = diag};
  P.rec_of = tt_calloc(m->nresources + 1, sizeof *P.rec_of);
  P.can_update = tt_calloc(m->nresources + 1, sizeof *P.can_update);
  P.empty = tether_json_object();
  tt_strmap delete_of_path, replace_of_path;
  tt_strmap_init(&delete_of_path);
  tt_strmap_init(&replace_of_path);

  const char *err = check_types(&P);
  if (!err)
    err = index_records(&P);
  if (!err) {
    P.steps_cap = m->nresources + 2 * P.nrecs + 1;
    p->steps = tt_calloc(P.steps_cap, sizeof *p->steps);
  }
  for (size_t k = 0; !err && k < m->nresources; k++) {
    const tt_resource *r = m->resources[m->order[k]];
    if (in->destroy && r->store)
      continue;
    err = plan_resource(&P, r);
    if (!err)
      for (size_t j = 0; j < r->ndeps; j++)
        add_edge(&P, p->step_of[r->index],
                 p->step_of[r->deps[j].target->index]);
  }
  for (size_t i = 0; !err && i < P.nrecs; i++)
    if (!P.recs[i].resource)
      err = plan_removed(&P, i, &delete_of_path);
  for (size_t i = 0; !err && i < p->nsteps; i++)
    if (p->steps[i].action == TT_ACTION_REPLACE)
      tt_strmap_put(&replace_of_path, p->steps[i].path,
                    strlen(p->steps[i].path), (void *)(uintptr_t)(i + 1));
  if (!err) {
    order_deletes(&P, &delete_of_path, &replace_of_path);
    order_steps(&P);
    count_steps(p);
  }

  for (size_t i = 0; i < P.nrecs; i++) {
    free(P.recs[i].pointer);
    free(P.recs[i].path);
    free(P.recs[i].deployment_path);
  }
  free(P.recs);
  free(P.rec_of);
  free(P.can_update);
  free(P.edges);
  tether_json_unref(P.empty);
  tt_strmap_free(&delete_of_path);
  tt_strmap_free(&replace_of_path);
  if (err) {
    tt_plan_free(p);
    return NULL;
  }
  return p;
}

static void free_step(tt_step *s) {
  free(s->path);
  free(s->deployment_path);
  free(s->name);
  tt_resolved_free(&s->inputs);
  tether_json_unref(s->record);
  free(s->record_pointer);
  for (size_t i = 0; i < s->nchanged; i++)
    free(s->changed[i]);
  free(s->changed);
  free(s->deps);
  free(s->dependents);
}

void tt_plan_free(tt_plan *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nsteps; i++)
    free_step(&p->steps[i]);
  free(p->steps);
  free(p->step_of);
  free(p);
}

/* ---- Apply-time helpers ---- */

const char *tt_step_settle(tt_step *s, tt_outputs_lookup *lookup, void *ctx,
                           tt_diag *diag) {
  const tt_resource *r = s->resource;
  if (!r)
    return NULL;
  tt_resolved fresh;
  const char *err = tt_resolve_inputs(r, lookup, ctx, &fresh, diag);
  if (err)
    return err;
  if (fresh.nunknown) {
    tt_diag_set(
        diag, "%s: %s.inputs: '%s' is still unknown when '%s' is applied",
        r->deployment->model->file, r->json_path, fresh.unknown[0], s->path);
    tt_resolved_free(&fresh);
    return diag->message;
  }
  tt_resolved_free(&s->inputs);
  s->inputs = fresh;
  switch (s->action) {
  case TT_ACTION_UPDATE:
  case TT_ACTION_REPLACE:
    compute_changed(s);
    if (s->conditional && !s->nchanged) {
      s->action = TT_ACTION_SKIP;
      s->update_unsupported = false;
      s->refresh_depends_on = !depends_on_matches(r, s->record);
    }
    s->conditional = false;
    break;
  case TT_ACTION_SKIP:
  case TT_ACTION_CREATE:
  case TT_ACTION_DELETE:
  case TT_ACTION_BOOTSTRAP:
    break;
  }
  return NULL;
}

const tether_json *tt_step_recorded_outputs(const tt_step *s) {
  return tt_json_member(s->record, "outputProperties");
}

size_t tt_step_ops(const tt_step *s, tt_op ops[2]) {
  switch (s->action) {
  case TT_ACTION_SKIP:
  case TT_ACTION_BOOTSTRAP:
    return 0;
  case TT_ACTION_CREATE:
    ops[0] = TT_OP_CREATE;
    return 1;
  case TT_ACTION_UPDATE:
    ops[0] = TT_OP_UPDATE;
    return 1;
  case TT_ACTION_DELETE:
    ops[0] = TT_OP_DELETE;
    return 1;
  case TT_ACTION_REPLACE:
    if (s->order == TT_REPLACE_DELETE_FIRST) {
      ops[0] = TT_OP_DELETE;
      ops[1] = TT_OP_CREATE;
    } else {
      ops[0] = TT_OP_CREATE;
      ops[1] = TT_OP_DELETE;
    }
    return 2;
  }
  return 0;
}

static tether_json *member_or_empty(const tether_json *rec,
                                    const char *member) {
  const tether_json *v = tt_json_member(rec, member);
  return v ? tether_json_ref(v) : tether_json_object();
}

tether_json *tt_step_old_resource(const tt_step *s) {
  tether_json *res = tether_json_object();
  res = tether_json_object_set(
      res, "type", tether_json_string(s->old_type ? s->old_type : ""));
  res = tether_json_object_set(res, "inputProperties",
                               member_or_empty(s->record, "inputProperties"));
  res = tether_json_object_set(res, "outputProperties",
                               member_or_empty(s->record, "outputProperties"));
  return res;
}

/* ---- Patches ---- */

static tether_json *patch_op(tether_json *patch, const char *op,
                             const char *path, tether_json *value) {
  tether_json *o = tether_json_object();
  o = tether_json_object_set(o, "op", tether_json_string(op));
  o = tether_json_object_set(o, "path", tether_json_string(path));
  if (value)
    o = tether_json_object_set(o, "value", value);
  return tether_json_array_append(patch, o);
}

static tether_json *patch_member(tether_json *patch, const char *base,
                                 const char *member, tether_json *value) {
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, base);
  tether_json_pointer_append(&b, member, strlen(member));
  patch = patch_op(patch, "add", b.data, value);
  tether_buf_free(&b);
  return patch;
}

/* The pointer of the instance a delete removes: the record itself, or its
 * "replaces" member for the previous instance of a create-first replace
 * (which has moved there by the time the old one is deleted). */
static char *old_pointer(const tt_step *s) {
  bool inside = s->old_instance || (s->action == TT_ACTION_REPLACE &&
                                    s->order == TT_REPLACE_CREATE_FIRST);
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, s->record_pointer ? s->record_pointer : "");
  if (inside)
    tether_buf_append_str(&b, "/replaces");
  return tether_buf_steal(&b, NULL);
}

static tether_json *depends_on_value(const tt_step *s) {
  tether_json *arr = tether_json_array();
  const tt_resource *r = s->resource;
  for (size_t i = 0; r && i < r->ndepends_on; i++)
    arr = tether_json_array_append(arr, tether_json_string(r->depends_on[i]));
  return arr;
}

static tether_json *inputs_value(const tt_step *s) {
  return s->inputs.inputs ? tether_json_ref(s->inputs.inputs)
                          : tether_json_object();
}

/* Adds the /deployments/NAME containers a nested record needs and that the
 * store does not have yet, never replacing one that exists. */
static tether_json *add_containers(tether_json *patch, const tt_step *s,
                                   const tether_json *state) {
  const tt_resource *r = s->resource;
  const tt_deployment *top = r->store->deployment;
  size_t depth = 0;
  for (const tt_deployment *d = r->deployment; d != top; d = d->parent)
    depth++;
  const tt_deployment **chain = tt_calloc(depth + 1, sizeof *chain);
  size_t i = depth;
  for (const tt_deployment *d = r->deployment; d != top; d = d->parent)
    chain[--i] = d;
  /* A store that does not exist yet starts as the empty state, which has
   * both members at the top. */
  const tether_json *cur = state;
  bool exists = true;
  tether_buf ptr;
  tether_buf_init(&ptr);
  tether_buf_append_str(&ptr, "");
  for (i = 0; i < depth; i++) {
    if (exists && cur && !tt_json_member(cur, "deployments")) {
      size_t mark = ptr.len;
      tether_buf_append_str(&ptr, "/deployments");
      patch = patch_op(patch, "add", ptr.data, tether_json_object());
      ptr.len = mark;
      ptr.data[mark] = '\0';
    }
    const tether_json *next =
        exists && cur
            ? tt_json_member(tt_json_member(cur, "deployments"), chain[i]->name)
            : NULL;
    tether_buf_append_str(&ptr, "/deployments");
    tether_json_pointer_append(&ptr, chain[i]->name, strlen(chain[i]->name));
    if (!next) {
      exists = false;
      tether_json *c = tether_json_object();
      c = tether_json_object_set(c, "resources", tether_json_object());
      c = tether_json_object_set(c, "deployments", tether_json_object());
      patch = patch_op(patch, "add", ptr.data, c);
    }
    cur = next;
  }
  if (exists && cur && !tt_json_member(cur, "resources")) {
    tether_buf_append_str(&ptr, "/resources");
    patch = patch_op(patch, "add", ptr.data, tether_json_object());
  }
  tether_buf_free(&ptr);
  free(chain);
  return patch;
}

static tether_json *new_record(const tt_step *s, const char *status) {
  tether_json *rec = tether_json_object();
  rec = tether_json_object_set(rec, "type", tether_json_string(s->type));
  rec = tether_json_object_set(rec, "provider",
                               tether_json_string(s->provider->name));
  rec = tether_json_object_set(rec, "inputProperties", inputs_value(s));
  rec = tether_json_object_set(rec, "outputProperties", tether_json_object());
  rec = tether_json_object_set(rec, "dependsOn", depends_on_value(s));
  rec = tether_json_object_set(rec, "status", tether_json_string(status));
  return rec;
}

static bool create_keeps_old(const tt_step *s) {
  return s->action == TT_ACTION_REPLACE &&
         s->order == TT_REPLACE_CREATE_FIRST && s->record;
}

tether_json *tt_patch_intent(const tt_step *s, tt_op op,
                             const tether_json *store_state) {
  tether_json *patch = tether_json_array();
  switch (op) {
  case TT_OP_CREATE: {
    patch = add_containers(patch, s, store_state);
    tether_json *rec = new_record(s, "creating");
    if (create_keeps_old(s))
      rec = tether_json_object_set(rec, "replaces", tether_json_ref(s->record));
    patch = patch_op(patch, "add", s->record_pointer, rec);
    break;
  }
  case TT_OP_UPDATE:
    patch = patch_member(patch, s->record_pointer, "status",
                         tether_json_string("updating"));
    break;
  case TT_OP_DELETE: {
    char *p = old_pointer(s);
    patch = patch_member(patch, p, "status", tether_json_string("deleting"));
    free(p);
    break;
  }
  }
  return patch;
}

tether_json *tt_patch_result(const tt_step *s, tt_op op,
                             const tether_json *outputs) {
  tether_json *patch = tether_json_array();
  tether_json *out = outputs ? tether_json_ref(outputs) : tether_json_object();
  const char *ptr = s->record_pointer;
  switch (op) {
  case TT_OP_CREATE:
    patch = patch_member(patch, ptr, "outputProperties", out);
    patch = patch_member(patch, ptr, "status", tether_json_string("created"));
    break;
  case TT_OP_UPDATE:
    /* Member by member, so members other tools added survive. */
    patch = patch_member(patch, ptr, "type", tether_json_string(s->type));
    patch = patch_member(patch, ptr, "provider",
                         tether_json_string(s->provider->name));
    patch = patch_member(patch, ptr, "inputProperties", inputs_value(s));
    patch = patch_member(patch, ptr, "outputProperties", out);
    patch = patch_member(patch, ptr, "dependsOn", depends_on_value(s));
    patch = patch_member(patch, ptr, "status", tether_json_string("updated"));
    break;
  case TT_OP_DELETE: {
    tether_json_unref(out);
    char *p = old_pointer(s);
    patch = patch_op(patch, "remove", p, NULL);
    free(p);
    break;
  }
  }
  return patch;
}

static const char *recorded_status(const tether_json *rec) {
  const char *st = record_string(rec, "status");
  return st ? st : "created";
}

tether_json *tt_patch_revert(const tt_step *s, tt_op op) {
  tether_json *patch = tether_json_array();
  if (s->resumed)
    return patch;
  switch (op) {
  case TT_OP_CREATE:
    if (create_keeps_old(s))
      patch =
          patch_op(patch, "add", s->record_pointer, tether_json_ref(s->record));
    else
      patch = patch_op(patch, "remove", s->record_pointer, NULL);
    break;
  case TT_OP_UPDATE:
    patch = patch_member(patch, s->record_pointer, "status",
                         tether_json_string(recorded_status(s->record)));
    break;
  case TT_OP_DELETE: {
    char *p = old_pointer(s);
    patch = patch_member(patch, p, "status",
                         tether_json_string(recorded_status(s->record)));
    free(p);
    break;
  }
  }
  return patch;
}

tether_json *tt_patch_depends_on(const tt_step *s) {
  return patch_member(tether_json_array(), s->record_pointer, "dependsOn",
                      depends_on_value(s));
}

/* ---- Output ---- */

static void append_list(tether_buf *out, char *const *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (i)
      tether_buf_append_str(out, ", ");
    tether_buf_append_str(out, items[i][0] ? items[i] : "(all inputs)");
  }
}

/* Puts "; " between the parts of a description started at start. */
static void separate(tether_buf *out, size_t start) {
  if (out->len > start)
    tether_buf_append_str(out, "; ");
}

/* Why a step does what it does, in words; empty when the action says it
 * all. */
static void describe(const tt_step *s, tether_buf *out) {
  size_t start = out->len;
  if (s->old_instance) {
    tether_buf_append_str(out, "previous instance left by an interrupted "
                               "replace");
  } else if (s->resumed) {
    switch (s->action) {
    case TT_ACTION_CREATE:
      tether_buf_append_str(out, "resuming an interrupted create");
      break;
    case TT_ACTION_UPDATE:
      tether_buf_append_str(out, "resuming an interrupted update");
      break;
    case TT_ACTION_REPLACE:
    case TT_ACTION_DELETE: {
      bool deleting =
          s->action == TT_ACTION_DELETE || s->order == TT_REPLACE_DELETE_FIRST;
      tether_buf_append_str(out, deleting ? "resuming an interrupted delete"
                                          : "resuming an interrupted replace");
      break;
    }
    case TT_ACTION_SKIP:
    case TT_ACTION_BOOTSTRAP:
      break;
    }
  }
  if (s->type_changed) {
    separate(out, start);
    tether_buf_printf(out, "type %s -> %s", s->old_type, s->type);
  }
  if (s->provider_changed) {
    separate(out, start);
    tether_buf_printf(out, "provider %s -> %s",
                      record_string(s->record, "provider"), s->provider->name);
  }
  if (s->action == TT_ACTION_UPDATE || s->action == TT_ACTION_REPLACE) {
    if (s->nchanged) {
      separate(out, start);
      append_list(out, s->changed, s->nchanged);
    }
    if (s->inputs.nunknown) {
      separate(out, start);
      tether_buf_append_str(out, "known after apply: ");
      append_list(out, s->inputs.unknown, s->inputs.nunknown);
    }
    if (s->action == TT_ACTION_REPLACE && s->update_unsupported &&
        !s->type_changed && !s->provider_changed) {
      separate(out, start);
      tether_buf_printf(out, "%s cannot be updated", s->type);
    }
  }
}

void tt_plan_render_text(const tt_plan *p, tether_buf *out) {
  tether_buf why;
  tether_buf_init(&why);
  for (size_t i = 0; i < p->nsteps; i++) {
    const tt_step *s = &p->steps[i];
    const char *mark = NULL;
    switch (s->action) {
    case TT_ACTION_SKIP:
    case TT_ACTION_BOOTSTRAP:
      continue;
    case TT_ACTION_CREATE:
      mark = "  +";
      break;
    case TT_ACTION_UPDATE:
      mark = "  ~";
      break;
    case TT_ACTION_REPLACE:
      mark = "-/+";
      break;
    case TT_ACTION_DELETE:
      mark = "  -";
      break;
    }
    why.len = 0;
    if (why.data)
      why.data[0] = '\0';
    describe(s, &why);
    tether_buf_printf(out, "%s %s", mark, s->path);
    if (s->action == TT_ACTION_CREATE || s->action == TT_ACTION_DELETE)
      tether_buf_printf(out, " (%s)",
                        s->action == TT_ACTION_CREATE ? s->type : s->old_type);
    if (why.len)
      tether_buf_printf(out, ": %s", why.data);
    if (s->action == TT_ACTION_REPLACE && s->order == TT_REPLACE_DELETE_FIRST &&
        !s->resumed)
      tether_buf_append_str(out, " [delete first]");
    tether_buf_append_char(out, '\n');
  }
  tether_buf_free(&why);
  size_t changes = p->ncreate + p->nupdate + p->nreplace + p->ndelete;
  if (!changes) {
    tether_buf_printf(out, "No changes. %zu resource%s unchanged.\n", p->nskip,
                      p->nskip == 1 ? "" : "s");
    return;
  }
  tether_buf_printf(out,
                    "Plan: %zu to create, %zu to update, %zu to replace, "
                    "%zu to delete, %zu unchanged.\n",
                    p->ncreate, p->nupdate, p->nreplace, p->ndelete, p->nskip);
}

static void json_key(tether_buf *out, const char *key) {
  tether_buf_append_char(out, ',');
  tether_json_dump_string(key, strlen(key), out);
  tether_buf_append_char(out, ':');
}

static void json_str(tether_buf *out, const char *key, const char *value) {
  json_key(out, key);
  tether_json_dump_string(value, strlen(value), out);
}

static void json_list(tether_buf *out, const char *key, char *const *items,
                      size_t n) {
  json_key(out, key);
  tether_buf_append_char(out, '[');
  for (size_t i = 0; i < n; i++) {
    if (i)
      tether_buf_append_char(out, ',');
    tether_json_dump_string(items[i], strlen(items[i]), out);
  }
  tether_buf_append_char(out, ']');
}

void tt_plan_render_json(const tt_plan *p, tether_buf *out) {
  tether_buf why;
  tether_buf_init(&why);
  tether_buf_append_str(out, "{\"changes\":[");
  for (size_t i = 0; i < p->nsteps; i++) {
    const tt_step *s = &p->steps[i];
    if (i)
      tether_buf_append_char(out, ',');
    tether_buf_append_str(out, "{\"path\":");
    tether_json_dump_string(s->path, strlen(s->path), out);
    bool bootstrap = s->action == TT_ACTION_BOOTSTRAP;
    json_str(out, "action", bootstrap ? "skip" : tt_action_name(s->action));
    bool gone = s->action == TT_ACTION_DELETE;
    const char *type = gone ? s->old_type : s->type;
    const tt_provider_decl *prov = gone ? s->old_provider : s->provider;
    if (type)
      json_str(out, "type", type);
    if (prov)
      json_str(out, "provider", prov->name);
    if (s->nchanged)
      json_list(out, "changed", s->changed, s->nchanged);
    if (s->inputs.nunknown &&
        (s->action == TT_ACTION_UPDATE || s->action == TT_ACTION_REPLACE ||
         s->action == TT_ACTION_CREATE))
      json_list(out, "knownAfterApply", s->inputs.unknown, s->inputs.nunknown);
    why.len = 0;
    if (why.data)
      why.data[0] = '\0';
    if (s->action == TT_ACTION_REPLACE) {
      if (s->type_changed)
        tether_buf_append_str(&why, "type changed");
      else if (s->provider_changed)
        tether_buf_append_str(&why, "provider changed");
      else if (s->resumed)
        tether_buf_append_str(&why, "interrupted");
      else if (s->update_unsupported)
        tether_buf_append_str(&why, "update not supported");
      if (why.len)
        json_str(out, "reason", why.data);
      json_str(out, "replaceOrder", tt_replace_order_name(s->order));
    }
    if (s->resumed)
      tether_buf_append_str(out, ",\"resumed\":true");
    if (s->old_instance)
      tether_buf_append_str(out, ",\"previousInstance\":true");
    if (bootstrap)
      tether_buf_append_str(out, ",\"bootstrap\":true");
    tether_buf_append_char(out, '}');
  }
  tether_buf_append_str(out, "]}\n");
  tether_buf_free(&why);
}
