/*
 * apply.h: the executor: it loads a deployment, starts its providers,
 * opens its state stores, plans (plan.h), and for `tether apply` and
 * `tether destroy` carries the plan out, recording every change in the
 * stores as it goes. `tether plan` and `tether state` use the same path
 * and stop earlier.
 *
 * ONE RUN, IN ORDER.
 *   1. The file is loaded and validated (deployment.h) and every declared
 *      provider executable is found, before any provider starts.
 *   2. Providers start: the process that serves each provider's stores
 *      (one per provider declaration that hosts a store) and, for a
 *      provider that hosts none, one process for its resources. Their
 *      `initialize` answers name their resource types, and a deployment
 *      naming a type its provider lacks, or a store whose type cannot
 *      store state, fails here, before anything changes.
 *   3. Stores open in tt_model.stores order. A bootstrap store is created
 *      again with isStateful false (apply, destroy) or, for plan and
 *      state, read when its type supports `read` so that looking changes
 *      nothing; then its state is read. A chained store is read when its
 *      parent records it. The first `state_read` takes the store's lock
 *      for the rest of the run: a second tether on the same store fails
 *      here with the holder named.
 *   4. With --refresh, every recorded resource whose type supports `read`
 *      is read and the plan is made from what exists (apply records the
 *      differences first).
 *   5. The plan is made and shown. Apply and destroy then run its steps,
 *      independent ones in parallel, each after the steps it depends on:
 *      intent recorded, provider called, result recorded (plan.h,
 *      "EXECUTING A PLAN").
 *   6. Every provider is stopped politely and the run's summary printed.
 *
 * PROCESSES. Each store is served by the single state process of its
 * provider: its create, update and delete too, since that process holds
 * its lock. Resource operations go to the provider's work processes,
 * started when first needed: one, and more (up to the parallelism) only
 * for a provider whose concurrency is 1 while work is waiting for it.
 * Relative provider executables (those with a '/') and the providers'
 * working directory are the directory that holds the deployment file, so
 * relative file names in tether.json mean the same from wherever tether
 * runs.
 *
 * FAILURE. A step whose provider answers with an error is recorded as not
 * done (tt_patch_revert), unless the error carries data.partial
 * {outputProperties}: then the resource is recorded with those outputs and
 * status "updating", so the next apply updates it again. A step whose
 * provider died, hung past --timeout or was stopped leaves its intent on
 * record (the provider may have done part of the work): the next apply
 * resumes it. The first failure stops new work; what is running finishes
 * and is recorded, and the run exits 1 naming every failed resource.
 *
 * INTERRUPTS. The first SIGINT or SIGTERM cancels the resource operations
 * in flight ($/cancelRequest), waits for their answers, records them and
 * exits 1. A second one kills every provider's process group and exits at
 * once; what was acknowledged is on record, and the next apply resumes
 * the rest.
 *
 * STATISTICS. With TETHER_STATS=1 in the environment, the last line on
 * stderr is "tether-stats: {JSON}" with
 *   wall_ms                the whole run;
 *   host_cpu_ms            tether's own CPU time (user and system);
 *   provider_cpu_ms        the CPU time of the provider processes;
 *   operations_busy_ms     time with at least one resource operation
 *                          (create, update, delete, read) in flight;
 *   state_writes_busy_ms   time with at least one state_event in flight;
 *   no_request_ms          time with no request of ours in flight: the
 *                          host's own work (loading, planning, output)
 *                          plus process start-up and shutdown;
 *   processes              provider processes started;
 *   requests, latency_ms   requests answered and their summed latency, by
 *                          method (initialize is counted per process).
 */
#ifndef TETHER_HOST_APPLY_H
#define TETHER_HOST_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deployment.h"
#include "tether/json.h"

typedef enum tt_engine_mode {
  TT_ENGINE_PLAN,     /* show what apply would do */
  TT_ENGINE_APPLY,    /* make it so */
  TT_ENGINE_DESTROY,  /* delete every recorded resource */
  TT_ENGINE_STATE     /* open the stores and hand their states over */
} tt_engine_mode;

/* Called in TT_ENGINE_STATE mode once every store is open: states holds
 * each store's resolved state by store_index (NULL for a store that does
 * not exist yet). Returns the exit status of the run. Runs while the
 * providers are still up, so what it prints comes before their stop. */
typedef int tt_engine_states_cb(const tt_model *m,
                                const tether_json *const *states, void *ctx);

typedef struct tt_engine_opts {
  tt_engine_mode mode;
  const char *file;     /* the deployment file */
  size_t parallelism;   /* steps at once; 0: tt_engine_default_parallelism */
  uint64_t timeout_ms;  /* per request; 0: none */
  uint64_t start_timeout_ms; /* 0: the provider module's default */
  bool json;            /* plan: the plan as JSON; apply, destroy: counts as
                           the last line of stdout, everything else on
                           stderr */
  bool refresh;         /* read resources before planning */
  bool color;           /* ANSI colours in what a person reads */
  tt_engine_states_cb *on_states; /* TT_ENGINE_STATE */
  void *ctx;
} tt_engine_opts;

/* The number of CPUs times two. */
size_t tt_engine_default_parallelism(void);

/* Runs one command per the steps above. Returns the exit status: 0
 * success, 1 the operation failed or was interrupted. Messages go to
 * stderr, the plan and progress to stdout (stderr with json in apply and
 * destroy). */
int tt_engine_run(const tt_engine_opts *o);

/* The directory that holds a deployment file, as an absolute path
 * (malloc'd): where providers run and relative names start. */
char *tt_engine_base_dir(const char *file);

#endif /* TETHER_HOST_APPLY_H */
