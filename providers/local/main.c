/*
 * main.c: tether-local's resource types and its entry point.
 */
#include <signal.h>
#include <stddef.h>

#include "local.h"

static const tether_resource_type local_types[] = {
    {.name = "file",
     .description = "A file on the local file system, written atomically "
                    "with the given contents (and optionally mode)",
     .inputs = tt_file_inputs,
     .op_create = tt_file_create,
     .op_update = tt_file_update,
     .op_delete = tt_file_delete,
     .op_read = tt_file_read},
    {.name = "exec",
     .description = "Runs a program (argv, never a shell) and records its "
                    "standard output; with once, only when created",
     .inputs = tt_exec_inputs,
     .op_create = tt_exec_create,
     .op_update = tt_exec_update,
     .op_delete = tt_exec_delete},
    {.name = "memo",
     .description = "Remembers the value it was first given, whatever the "
                    "inputs say later",
     .require_state = true,
     .inputs = tt_memo_inputs,
     .op_create = tt_memo_create,
     .op_update = tt_memo_update,
     .op_delete = tt_memo_delete},
    {.name = "state_file",
     .description = "A NixOps4-format state file on the local file system: "
                    "the store every other state store bootstraps from",
     .state_provider = true,
     .inputs = tt_state_file_inputs,
     .op_create = tt_state_file_create,
     .op_update = tt_state_file_update,
     .op_delete = tt_state_file_delete,
     .op_read = tt_state_file_read,
     .op_state_read = tt_state_file_state_read,
     .op_state_event = tt_state_file_state_event},
    {NULL}};

int main(int argc, char **argv) {
  /* Every handler runs on the library's thread (threads = 0), one at a
   * time, in the order the requests arrive. state_file and memo do their
   * work there: a store's events are applied and written in the order
   * the host sent them, and a concurrency above 1 lets the host pipeline
   * them, which state_store.c then makes durable together (group
   * commit). file and exec only check their inputs there and hand the
   * writing or the program to a pool thread (pool.c), so independent
   * files are written side by side, a long program holds up nothing
   * else, and the library's thread keeps reading: a $/cancelRequest
   * reaches a running program. */
  tt_file_init();
  /* Started with SIGCHLD ignored (a disposition a parent may pass on), the
   * kernel would reap our programs itself, and waitpid would find no exit
   * status to report. Set before any thread starts. */
  signal(SIGCHLD, SIG_DFL);
  tether_provider_info info = {.name = "tether-local",
                               .version = TETHER_VERSION,
                               .concurrency = TT_LOCAL_CONCURRENCY,
                               .threads = 0,
                               .types = local_types};
  int status = tether_provider_main(&info, argc, argv);
  tt_pool_stop();
  tt_store_drop_all();
  return status;
}
