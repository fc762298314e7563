/*
 * main.c: the `tether` binary: dispatches the first argument to its
 * command (SPEC section 8).
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "commands.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.0.0"
#endif

static const char usage_text[] =
    "usage: tether COMMAND [ARGS]\n"
    "\n"
    "  apply     create, update and delete resources to match tether.json\n"
    "  plan      show what apply would do\n"
    "  destroy   delete every resource of the deployment\n"
    "  state     list, show or trace the recorded state\n"
    "  graph     the dependency graph, in Graphviz DOT\n"
    "  run       drive one provider operation in isolation\n"
    "  check     the provider conformance suite\n"
    "  patch     apply an RFC 6902 patch to a JSON document\n"
    "  version   print tether's version\n"
    "\n"
    "Run 'tether COMMAND --help' for a command's options.\n";

static int version_main(int argc, char **argv) {
  printf("tether %s\n", TETHER_VERSION);
  return 0;
}

static const struct command {
  const char *name;
  int (*main)(int argc, char **argv);
} commands[] = {
    {"apply", tt_cmd_apply},   {"plan", tt_cmd_plan},
    {"destroy", tt_cmd_destroy}, {"state", tt_cmd_state},
    {"graph", tt_cmd_graph},   {"run", tt_run_main},
    {"patch", tt_patch_main},  {"version", version_main},
    {"check", tt_cmd_check},
};

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_text, stderr);
    return 2;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
      strcmp(name, "help") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (strcmp(name, "--version") == 0)
    name = "version";
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0)
      return commands[i].main(argc - 1, argv + 1);
  fprintf(stderr, "tether: unknown command '%s'\n%s", name, usage_text);
  return 2;
}
