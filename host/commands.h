/*
 * commands.h: the entry points host/main.c dispatches to, one per command
 * of SPEC section 8. Each takes the command's own argv (argv[0] is the
 * command's name) and returns the process exit status: 0 success, 1 the
 * operation failed, 2 a usage error.
 */
#ifndef TETHER_HOST_COMMANDS_H
#define TETHER_HOST_COMMANDS_H

/* `tether run`: host/run.c. */
int tt_run_main(int argc, char **argv);
/* `tether patch DOC.json PATCH.json`: host/patch_command.c. */
int tt_patch_main(int argc, char **argv);

/* host/engine_commands.c: the commands that work on a deployment. */
int tt_cmd_apply(int argc, char **argv);
int tt_cmd_plan(int argc, char **argv);
int tt_cmd_destroy(int argc, char **argv);
int tt_cmd_state(int argc, char **argv);
int tt_cmd_graph(int argc, char **argv);

#endif /* TETHER_HOST_COMMANDS_H */
