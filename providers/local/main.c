/*
 * main.c: tether-local's resource types and its entry point.
 */
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
  /* Handlers run one at a time on one worker thread, so the held stores
   * need no locking against each other, while the library's own thread
   * keeps reading: a $/cancelRequest reaches a long exec. A concurrency
   * above 1 lets the host pipeline state events, which state_store.c then
   * makes durable together (group commit). */
  tether_provider_info info = {.name = "tether-local",
                               .version = TETHER_VERSION,
                               .concurrency = 64,
                               .threads = 1,
                               .types = local_types};
  int status = tether_provider_main(&info, argc, argv);
  tt_store_drop_all();
  return status;
}
