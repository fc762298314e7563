/*
 * plan.h: what an apply must do, decided without running anything.
 *
 * The planner compares the model (deployment.h) with the records read from
 * its stores and decides one step per resource, following Alchemy's
 * lifecycle and NixOps4's state layout (SPEC section 6):
 *
 *   no record                                   create
 *   same type and provider, equal inputs        skip (the provider is not
 *                                               called)
 *   inputs changed                              update, or replace when the
 *                                               type does not support update
 *   type or provider changed                    replace
 *   record whose resource left the file         delete, dependents first
 *                                               (from recorded dependsOn)
 *
 * Inputs are compared after references are resolved. A reference to a
 * resource that is skipped resolves from its recorded outputs; one to a
 * resource being created, updated or replaced is "known after apply": the
 * dependent is planned as a conditional update (or replace) that the
 * executor settles with tt_step_settle once the outputs exist.
 *
 * Records left by an interrupted run are never dropped:
 *   status "creating"  -> create again (the provider may find a partial
 *                         resource: create is retried, not skipped)
 *   status "updating"  -> update again, even when inputs look equal
 *   status "deleting"  -> delete again; when the resource is still in the
 *                         file, that is a delete-first replace
 *   a record without "status" (written by NixOps4) counts as "created".
 *
 * REPLACE and the "replaces" member. A create-first replace keeps the old
 * instance's record inside the new record, as the extra member
 * "replaces", from the moment the new one is being created until the old
 * one is deleted:
 *   intent of create  /resources/web = {new record, status "creating",
 *                                       "replaces": old record}
 *   result of create  /resources/web/outputProperties, status "created"
 *   intent of delete  /resources/web/replaces/status = "deleting"
 *   result of delete  remove /resources/web/replaces
 * so an interruption at any point leaves both instances on record. A
 * record found with "replaces" and status "creating" resumes that replace;
 * with any other status, the previous instance is deleted by a step of its
 * own (old_instance) before anything else happens to the resource. A
 * delete-first replace deletes (status "deleting", then the record is
 * removed) and then creates as usual.
 *
 * A record is matched to a resource by its store and pointer. A resource
 * whose record moves (say a nested deployment gains a store of its own)
 * is therefore deleted from the old store and created in the new one.
 *
 * Recorded dependsOn holds the paths of a resource's references and
 * dependsOn relative to its deployment ("db", "sub.db"); a skipped
 * resource whose recorded list is stale gets it rewritten (refresh) without
 * calling its provider.
 *
 * Linear: records are indexed once by hash, each resource is decided from
 * its own record and its dependencies' steps, and each state patch is
 * built from one step. Nothing diffs the whole state.
 *
 * EXECUTING A PLAN. Before planning, go through tt_model.stores in order:
 * create each bootstrap store (isStateful false) and keep its outputs,
 * and state_read each store that exists. Plan with those. Then run the
 * steps in array order, or concurrently as deps allow. For each step:
 *   1. tt_step_settle, with the outputs known by then (for a skip,
 *      tt_step_recorded_outputs; for a bootstrap store, what its create
 *      returned; otherwise what create or update returned this run).
 *   2. A skip calls no provider; when refresh_depends_on, send
 *      tt_patch_depends_on.
 *   3. For each op of tt_step_ops: send tt_patch_intent to the step's
 *      store with state_event, call the provider (create: provider, type,
 *      inputs.inputs, isStateful true; update: provider,
 *      tt_step_old_resource, inputs.inputs; delete: old_provider,
 *      tt_step_old_resource), then send tt_patch_result. When the provider
 *      fails and nothing changed, send tt_patch_revert instead and fail the
 *      step; its dependents do not run.
 * Keep a copy of each store's state with every sent patch applied:
 * tt_patch_intent reads it.
 */
#ifndef TETHER_HOST_PLAN_H
#define TETHER_HOST_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "deployment.h"
#include "refs.h"
#include "tether/json.h"

typedef enum tt_action {
  TT_ACTION_SKIP,
  TT_ACTION_CREATE,
  TT_ACTION_UPDATE,
  TT_ACTION_REPLACE,
  TT_ACTION_DELETE,
  /* A bootstrap store: recorded nowhere, created again (idempotently, with
   * isStateful false) on every run. The executor does that before
   * planning, since it needs the store to read state; the step is there so
   * dependents can wait for it and plan output can show it. Shown as
   * "skip" with "bootstrap": true in --json. */
  TT_ACTION_BOOTSTRAP
} tt_action;

/* "skip", "create", "update", "replace", "delete", "bootstrap". */
const char *tt_action_name(tt_action a);

/* One provider call of a step. */
typedef enum tt_op { TT_OP_CREATE, TT_OP_UPDATE, TT_OP_DELETE } tt_op;

const char *tt_op_name(tt_op op);     /* "create", "update", "delete" */
const char *tt_op_progress(tt_op op); /* "creating", "updating", "deleting" */

/* obj[key], or NULL when obj is missing or not an object: records come from
 * stores that other tools may have written. */
const tether_json *tt_json_member(const tether_json *obj, const char *key);

/* Whether a resource type's description (an entry of resourceTypes) lists
 * op among its operations; a type that lists none is assumed to support
 * every operation, and the provider decides. */
bool tt_type_has_operation(const tether_json *type, const char *op);

/* The deployment whose providers a record's provider name is looked up in,
 * dpath being the record's deployment path: that deployment when it is
 * still in the file, else the nearest enclosing one that is. */
const tt_deployment *tt_record_scope(const tt_model *m, const char *dpath);

#define TT_NO_STEP ((size_t)-1)

typedef struct tt_step {
  tt_action action;
  char *path;            /* "web", "sub/web": the resource's path */
  char *deployment_path; /* "", "sub" */
  char *name;            /* "web" */
  /* The resource in the file; NULL for a delete of a record whose resource
   * is gone (and in destroy mode). */
  const tt_resource *resource;

  /* The new side (create, update, replace, bootstrap): provider, type and
   * inputs with references resolved. Values known only after apply are
   * null in inputs.inputs and listed in inputs.unknown until
   * tt_step_settle resolves them. */
  const tt_provider_decl *provider;
  const char *type;
  tt_resolved inputs;

  /* The existing instance the step keeps, updates, replaces or deletes,
   * as recorded: {"type", "provider", "inputProperties",
   * "outputProperties", "dependsOn", "status"}. NULL for create and
   * bootstrap. Owned by the step (a reference of its own), so the
   * executor may patch its copy of the state freely. */
  tether_json *record;
  /* The provider that updates or deletes that instance: the one its record
   * names, looked up from its deployment outwards. */
  const tt_provider_decl *old_provider;
  const char *old_type;

  /* Where the record lives: the store and the pointer inside its state
   * (e.g. "/deployments/sub/resources/web"). store is NULL for bootstrap
   * steps, which are recorded nowhere. */
  const tt_resource *store;
  char *record_pointer;

  /* Why. */
  char **changed; /* input pointers ("/contents") that differ from the
                     record, in input order */
  size_t nchanged;
  bool type_changed;
  bool provider_changed;
  bool update_unsupported; /* the type has no "update" operation */
  /* Finishing an interrupted run (the record's status was creating,
   * updating or deleting). */
  bool resumed;
  /* Nothing known differs, but inputs known only after apply might: the
   * executor settles the step before running it. */
  bool conditional;
  /* The delete of the previous instance left inside record "replaces" by an
   * interrupted create-first replace. */
  bool old_instance;
  /* A skip whose recorded dependsOn is stale: write tt_patch_depends_on. */
  bool refresh_depends_on;
  tt_replace_order order; /* how a replace runs */

  /* Indexes of the steps that must finish first, and of those waiting for
   * this one. Steps are stored in an order that already respects them. */
  size_t *deps;
  size_t ndeps;
  size_t *dependents;
  size_t ndependents;
} tt_step;

/* A plan borrows from its model (resources, providers, types), which must
 * outlive it; it holds its own references to the records it uses. */
typedef struct tt_plan {
  const tt_model *model;
  tt_step *steps;
  size_t nsteps;
  /* By resource index: its step, or TT_NO_STEP (destroy mode). */
  size_t *step_of;
  size_t ncreate, nupdate, nreplace, ndelete, nskip, nbootstrap;
} tt_plan;

/* What the planner works from. Every array may be NULL, meaning "all
 * NULL". */
typedef struct tt_plan_input {
  const tt_model *model;
  /* The resolved state of each store (by store_index), as state_read
   * returned it; NULL for a store that does not exist yet, which holds no
   * records. Borrowed during tt_plan_build only. */
  const tether_json *const *states;
  /* The outputs each bootstrap store returned when it was re-validated
   * this run (by store_index); NULL when not known, which makes values
   * referencing them "known after apply". */
  const tether_json *const *bootstrap_outputs;
  /* The "resourceTypes" object each provider answered to initialize (by
   * provider index). With it the planner refuses unknown types and stores
   * that are not state providers, and replaces where a type has no update.
   * NULL for a provider that was not started: every type is then taken to
   * exist and to support update. */
  const tether_json *const *provider_types;
  /* tether destroy: delete every record, each store after the records it
   * holds. */
  bool destroy;
} tt_plan_input;

/* Plans. Returns NULL with the problem in *diag when the file and the
 * state cannot be reconciled: a resource type its provider does not offer,
 * a store whose type cannot store state, a bootstrap store whose type
 * requires state, a record whose provider is no longer declared, a record
 * that is not an object or has an unknown status, or a reference to an
 * output the recorded outputs do not have. */
tt_plan *tt_plan_build(const tt_plan_input *in, tt_diag *diag);
void tt_plan_free(tt_plan *p);

/* Re-resolves a step's inputs through lookup (the outputs as they are now,
 * at apply time, once the step's dependencies have finished) and decides
 * again: a conditional update or replace whose inputs turned out equal to
 * the record becomes a skip, one whose inputs differ becomes
 * unconditional, and changed is recomputed. Steps without a resource are
 * left alone. Returns NULL, or the message in *diag when a referenced
 * output is missing or a value is still unknown. */
const char *tt_step_settle(tt_step *s, tt_outputs_lookup *lookup, void *ctx,
                           tt_diag *diag);

/* The recorded outputs of the instance a step keeps (skip) or works on, or
 * NULL without a record. Borrowed from the step. */
const tether_json *tt_step_recorded_outputs(const tt_step *s);

/* The provider calls of a step, in order: create, update or delete alone,
 * a replace as create then delete (create-first) or delete then create
 * (delete-first). Skip and bootstrap have none (bootstrap's create is made
 * before planning). Returns how many (0 to 2). */
size_t tt_step_ops(const tt_step *s, tt_op ops[2]);

/* The existing resource for an update or delete request:
 * {"type", "inputProperties", "outputProperties"} from the record. */
tether_json *tt_step_old_resource(const tt_step *s) TETHER_MUST_USE;

/* ---- State patches (RFC 6902), each built from one step ---- */

/* Records the intent of op before the provider is called. store_state is
 * the store's current resolved state (borrowed; NULL for a fresh store):
 * it is read only to learn which /deployments/NAME containers exist, so a
 * nested record's containers are added without overwriting anything. */
tether_json *tt_patch_intent(const tt_step *s, tt_op op,
                             const tether_json *store_state) TETHER_MUST_USE;
/* Records the result after the provider answered. outputs (borrowed) are
 * the outputProperties returned by create or update (or the data.partial
 * ones); ignored for delete. */
tether_json *tt_patch_result(const tt_step *s, tt_op op,
                             const tether_json *outputs) TETHER_MUST_USE;
/* Undoes tt_patch_intent when the provider refused op and nothing changed.
 * An empty patch (nothing to send) when the step resumed an interrupted
 * operation: the earlier attempt may have left something behind, so its
 * intent stays on record. */
tether_json *tt_patch_revert(const tt_step *s, tt_op op) TETHER_MUST_USE;
/* Rewrites the recorded dependsOn of a skipped resource. */
tether_json *tt_patch_depends_on(const tt_step *s) TETHER_MUST_USE;

/* ---- Output ---- */

/* The plan for a person, one line per change:
 *     + id (memo)
 *     ~ hello: /contents
 *   -/+ web: type file -> dir
 *     - old (file)
 * then "Plan: 1 to create, 1 to update, 1 to replace, 1 to delete,
 * 3 unchanged." (or "No changes. 3 resources unchanged."). Skips are
 * counted, not listed. */
void tt_plan_render_text(const tt_plan *p, tether_buf *out);
/* tether plan --json: {"changes": [{"path", "action", "type", "provider",
 * "changed"?, "knownAfterApply"?, "reason"?, "replaceOrder"?, "resumed"?,
 * "previousInstance"?, "bootstrap"?}, ...]} in step order, skips included,
 * followed by a newline. */
void tt_plan_render_json(const tt_plan *p, tether_buf *out);

#endif /* TETHER_HOST_PLAN_H */
