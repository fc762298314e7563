/*
 * run.h: `tether run` (SPEC section 8), which drives one provider in
 * isolation: one operation, its result as JSON on stdout, or the same
 * request many times as a load test. Split into parsing, building the
 * request and running it, so the first two can be tested without a
 * process.
 */
#ifndef TETHER_HOST_RUN_H
#define TETHER_HOST_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "framing.h"
#include "tether/json.h"

typedef enum tt_run_op {
  TT_RUN_CREATE,
  TT_RUN_UPDATE,
  TT_RUN_DELETE,
  TT_RUN_READ,
  TT_RUN_STATE_READ,
  TT_RUN_STATE_EVENT
} tt_run_op;

/* The command line, parsed. JSON members are owned (tt_run_opts_free);
 * strings point into argv. */
typedef struct tt_run_opts {
  tt_run_op op;
  const char *provider_exe;
  const char **provider_args; /* NULL-terminated */
  const char *type;
  tether_json *inputs;       /* --inputs-json with --input-* applied; {} */
  tether_json *outputs;      /* --outputs-json, or NULL */
  tether_json *prev_inputs;  /* --previous-inputs-json, or NULL */
  tether_json *prev_outputs; /* --previous-outputs-json, or NULL */
  tether_json *patch;        /* --patch-json, or NULL */
  bool stateful;
  const char *event;
  const char *host_version; /* TETHER_VERSION unless given */
  bool has_expect_index;
  uint64_t expect_index;
  tt_framing framing;
  uint64_t repeat;   /* 0 when --repeat was not given */
  uint64_t pipeline; /* 1 unless given */
  uint64_t timeout_ms;       /* 0: none */
  uint64_t start_timeout_ms; /* 0: the provider module's default (30 s) */
  bool help;
  /* Flags given that the operation does not use, one line each ("--event
   * does not apply to read; ignored\n"); empty when none. */
  char warnings[600];
  char err[400];
} tt_run_opts;

/* Parses argv[1..argc) (argv[0] is "run"). Returns NULL when fine (o->help
 * set for --help; o->warnings may name flags that were ignored), else a
 * one-line message naming the bad flag, which lives in o->err. Call
 * tt_run_opts_free either way. */
const char *tt_run_parse(int argc, char **argv, tt_run_opts *o);
void tt_run_opts_free(tt_run_opts *o);

/* The wire name of an operation: "create", ..., "state_read". */
const char *tt_run_method(tt_run_op op);

/* The request's params per SPEC section 5; a new value. */
tether_json *tt_run_params(const tt_run_opts *o);

/* `tether run ...` with argv[0] == "run". Returns the exit status: 0
 * success, 1 the operation failed (also when interrupted by SIGINT or
 * SIGTERM, after the provider has been stopped), 2 a usage error. */
int tt_run_main(int argc, char **argv);

#endif /* TETHER_HOST_RUN_H */
