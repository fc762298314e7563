/*
 * check.h: `tether check`, the provider conformance suite (SPEC section 8).
 *
 * It starts the provider many times, each time in a fresh process, and
 * holds it to SPEC sections 1 to 5 one named case at a time: the
 * handshake, JSON-RPC 2.0 as the specification words it, framing, the
 * stop sequence, errors with their codes and data, and, given inputs for
 * a resource type, its create/read/update/delete life cycle and its state
 * store. Every case prints one line, PASS, FAIL with what was expected
 * and what came back, or SKIP with why; a summary line ends the run.
 */
#ifndef TETHER_HOST_CHECK_H
#define TETHER_HOST_CHECK_H

/* `tether check ...` with argv[0] == "check". Returns the exit status: 0
 * when no case failed, 1 when one did (or the run was interrupted), 2 a
 * usage error. */
int tt_cmd_check(int argc, char **argv);

#endif /* TETHER_HOST_CHECK_H */
