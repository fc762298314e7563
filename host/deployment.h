/*
 * deployment.h: tether.json (SPEC section 7) loaded and validated into a
 * model the planner and the executor walk.
 *
 * Everything that can be checked without a provider is checked here, before
 * any provider starts: the shape of every member, names, providers,
 * references, dependsOn, state stores, dependency cycles and cycles of
 * state stores. The first problem found is reported as
 * "FILE: JSON.PATH: problem", e.g.
 * "tether.json: resources.web.inputs.url: reference to unknown resource 'db'".
 * JSON paths are dotted (`deployments.sub.resources.web`), array elements
 * are `[i]`, and a key that is not a plain name is quoted: `inputs["a b"]`.
 *
 * THE FILE. An object with these members, all optional, except that every
 * resource needs a store: `state` is required in a deployment with
 * resources unless an enclosing deployment names one (nested deployments
 * inherit their parent's store):
 *
 *   "state":       the name of the resource in this deployment that stores
 *                  its records.
 *   "providers":   {NAME: {"executable": "tether-local", "args": [..],
 *                  "framing": "ndjson"|"content-length"}}. A nested
 *                  deployment sees its own providers and, by name, those of
 *                  every enclosing deployment (the nearest declaration
 *                  wins), so providers are usually declared once at the top.
 *   "resources":   {NAME: {"provider", "type", "inputs": {..},
 *                  "dependsOn": ["db", "sub.db"], "state": "store",
 *                  "replaceOrder": "create-first"|"delete-first"}}.
 *                  `provider` and `type` are required. `dependsOn` uses the
 *                  resource paths of references (see refs.h). `state`
 *                  records this resource in another store of the same
 *                  deployment (chaining). `replaceOrder` says how a replace
 *                  runs: the default "create-first" creates the new resource
 *                  before deleting the old one; "delete-first" deletes first,
 *                  for resources whose identity (a file name, a port) cannot
 *                  exist twice.
 *   "deployments": {NAME: the same shape, nested}.
 *   "$schema":     ignored, so editors can validate the file.
 *
 * Unknown members are errors: a misspelt member would otherwise be ignored
 * without a word. Resource, deployment and provider names are made of ASCII
 * letters, digits, '_' and '-', because they appear in references, in
 * paths like "sub/web" and in state pointers.
 *
 * STORES. A resource named by some `state` member is a store. Each
 * resource is recorded in exactly one store, or in none:
 *   - a resource with its own `state` is recorded in that store;
 *   - a store without its own `state` is a bootstrap store: recorded
 *     nowhere, re-validated (created again, idempotently) on every run;
 *   - every other resource is recorded in its deployment's store, which is
 *     the deployment's own `state` or, failing that, its parent's.
 * A store's records are laid out relative to the deployment that holds the
 * store resource: a resource of that deployment at /resources/NAME, one of
 * its nested deployment sub (which inherits the store) at
 * /deployments/sub/resources/NAME.
 */
#ifndef TETHER_HOST_DEPLOYMENT_H
#define TETHER_HOST_DEPLOYMENT_H

#include <stdbool.h>
#include <stddef.h>

#include "framing.h"
#include "strmap.h"
#include "tether/json.h"

/* A message for the user, naming the file, the JSON path and the problem.
 * Functions that can fail fill one and return a pointer to its text. */
typedef struct tt_diag {
  char message[1024];
} tt_diag;

/* Fills d with a printf-style message and returns d->message. */
const char *tt_diag_set(tt_diag *d, const char *fmt, ...) TETHER_PRINTF(2, 3);

/* Appends ".key" (or "key" at the start of the path, or ["key"] for a key
 * that is not a plain name) to a dotted JSON path. */
void tt_path_append_key(tether_buf *path, const char *key, size_t keylen);
/* Appends "[i]". */
void tt_path_append_index(tether_buf *path, size_t i);

typedef enum tt_replace_order {
  TT_REPLACE_CREATE_FIRST,
  TT_REPLACE_DELETE_FIRST
} tt_replace_order;

const char *tt_replace_order_name(tt_replace_order o);

struct tt_deployment;
struct tt_model;

typedef struct tt_provider_decl {
  char *name;
  char *executable;
  char **args;
  size_t nargs;
  tt_framing framing; /* TT_FRAMING_NDJSON unless declared otherwise */
  struct tt_deployment *deployment; /* where it is declared */
  size_t index;                     /* position in tt_model.providers */
} tt_provider_decl;

/* Why one resource must come after another. */
typedef enum tt_dep_kind {
  TT_DEP_REFERENCE, /* its inputs reference the target's outputs */
  TT_DEP_EXPLICIT,  /* it names the target in dependsOn */
  TT_DEP_STATE      /* it is recorded in the target, a store */
} tt_dep_kind;

typedef struct tt_dep {
  struct tt_resource *target;
  tt_dep_kind kind;
} tt_dep;

typedef struct tt_resource {
  char *name;
  char *path;      /* "web", "sub/web": unique in the model, shown to users */
  char *json_path; /* "resources.web", "deployments.sub.resources.web" */
  struct tt_deployment *deployment;
  const tt_provider_decl *provider;
  char *type;
  tether_json *inputs; /* as written, references unresolved; an object */
  /* Each resource this one must come after: the targets of its references
   * in the order they appear in inputs, then those of dependsOn not
   * referenced already (each target once), then its store. */
  tt_dep *deps;
  size_t ndeps;
  /* The same targets as the TT_DEP_REFERENCE and TT_DEP_EXPLICIT deps, as
   * paths relative to this resource's deployment ("db", "sub.db"): what is
   * recorded as dependsOn, which orders deletes once the resource is gone
   * from the file. */
  char **depends_on;
  size_t ndepends_on;
  struct tt_resource *state; /* its own "state" member, or NULL */
  /* Where its record lives: `state`, else its deployment's store; NULL for
   * a bootstrap store. */
  struct tt_resource *store;
  /* The record's JSON pointer inside store's state, e.g.
   * "/deployments/sub/resources/web"; NULL for a bootstrap store. */
  char *record_pointer;
  tt_replace_order replace_order;
  bool is_store;      /* named by some "state" member */
  size_t store_index; /* when is_store: position in tt_model.stores */
  size_t index;       /* position in tt_model.resources */
} tt_resource;

typedef struct tt_deployment {
  char *name;      /* "" for the top level */
  char *path;      /* "" for the top level, "sub", "sub/inner" */
  char *json_path; /* "" for the top level, "deployments.sub" */
  struct tt_deployment *parent;
  struct tt_model *model;
  tt_resource *state; /* its own "state" member, or NULL */
  tt_resource *store; /* its own store or the nearest ancestor's */
  tt_provider_decl **providers;
  size_t nproviders;
  tt_resource **resources; /* in the order written */
  size_t nresources;
  struct tt_deployment **deployments; /* in the order written */
  size_t ndeployments;
  tt_strmap resource_names;
  tt_strmap deployment_names;
  tt_strmap provider_names;
} tt_deployment;

typedef struct tt_model {
  char *file; /* the name errors start with, e.g. "tether.json" */
  tt_deployment *root;
  /* Every resource of every deployment, depth first: a deployment's own
   * resources, then its nested deployments'. */
  tt_resource **resources;
  size_t nresources;
  /* Every provider declaration, in the same order. */
  tt_provider_decl **providers;
  size_t nproviders;
  /* Every store, each after the store it is recorded in: the order in
   * which an executor opens them (bootstrap stores come first). */
  tt_resource **stores;
  size_t nstores;
  /* Indexes into resources, each resource after everything it depends on
   * (references, dependsOn and its store); ties keep file order. */
  size_t *order;
} tt_model;

/* Parses and validates a deployment. file is only used in messages.
 * Returns the model, or NULL with the first problem in *diag. */
tt_model *tt_model_parse(const char *file, const char *text, size_t len,
                         tt_diag *diag);
/* Reads path and parses it; a file that cannot be read is reported as
 * "tether.json: cannot read: No such file or directory". */
tt_model *tt_model_load(const char *path, tt_diag *diag);
void tt_model_free(tt_model *m);

/* The resource at a reference path ("db", "sub.db") relative to d, or
 * NULL. When a deployment on the way is missing, *missing_len (if not NULL)
 * receives the length of the path prefix that names it ("sub" in
 * "sub.db"), else 0. */
tt_resource *tt_deployment_find_resource(const tt_deployment *d,
                                         const char *path, size_t len,
                                         size_t *missing_len);
/* The nested deployment at a slash path ("sub/inner") from the top level,
 * or NULL. "" is the top level. */
tt_deployment *tt_model_find_deployment(const tt_model *m, const char *path,
                                        size_t len);
/* The resource at a slash path ("web", "sub/web"), or NULL. */
tt_resource *tt_model_find_resource(const tt_model *m, const char *path,
                                    size_t len);
/* The provider a deployment sees under name: its own declaration or the
 * nearest enclosing deployment's; NULL when none declares it. */
const tt_provider_decl *tt_deployment_find_provider(const tt_deployment *d,
                                                    const char *name,
                                                    size_t len);

/* True for [A-Za-z0-9_-]+. */
bool tt_name_valid(const char *s, size_t len);

#endif /* TETHER_HOST_DEPLOYMENT_H */
