#!/bin/sh
# Parallelism and what a person sees while an apply runs: independent
# resources at once (more processes for a provider that takes one request
# at a time), --parallelism 1 one at a time, a provider's concurrency never
# exceeded, dependencies in order, provider logs and progress prefixed
# with the resource, and a line for operations that take long.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/engine_lib.inc"
require_binaries "$TETHER" "$LOCAL" "$MISBEHAVE"

# COUNT independent misbehave resources t0..t(COUNT-1) on one provider
# (args: SPEC words).
things() { # COUNT SPEC
  _args=
  for _w in $2 @MARK@; do _args="$_args\"$_w\", "; done
  {
    printf '{ "state": "state",\n'
    printf '  "providers": {"local": {"executable": "tether-local"},\n'
    printf '    "mb": {"executable": "@MB@", "args": [%s]}},\n' "${_args%, }"
    printf '  "resources": { %s' "$STATE_RES"
    _i=0
    while [ $_i -lt "$1" ]; do
      printf ',\n "t%d": {"provider": "mb", "type": "thing", "inputs": {"n": %d}}' \
        $_i $_i
      _i=$((_i + 1))
    done
    printf '}}\n'
  } | deploy
  DEPLOY=$CASE_DIR/tether.json
}

begin "independent resources run in parallel, one process each for a provider of concurrency 1"
things 4 "good delay=1000 concurrency=1"
TETHER_STATS=1 tf 30 apply --parallelism 4
expect_rc 0
expect_stdout "4 created"
[ "$ELAPSED_MS" -lt 2500 ] || fail "4 one-second creates took ${ELAPSED_MS}ms"
# tether-local for the store, and four misbehave processes.
expect_err '"processes":5,'
end

begin "--parallelism 1 runs one step at a time"
things 3 "good delay=500 concurrency=1"
TETHER_STATS=1 tf 30 apply --parallelism 1
expect_rc 0
expect_stdout "3 created"
[ "$ELAPSED_MS" -ge 1500 ] || fail "3 half-second creates took only ${ELAPSED_MS}ms"
expect_err '"processes":2,'
end

begin "a provider's declared concurrency is never exceeded"
things 6 "good delay=300 concurrency=2 stats=@DIR@/stats"
TETHER_STATS=1 tf 30 apply --parallelism 6
expect_rc 0
expect_stdout "6 created"
# One process (its concurrency is not 1), never more than 2 requests in it.
expect_err '"processes":2,'
grep -q '^max_inflight=2 ' "$CASE_DIR/stats" ||
  fail "the provider saw: $(squash "$CASE_DIR/stats")"
end

begin "a resource waits for what it depends on"
deploy <<EOF
{ "state": "state",
  "providers": {"local": {"executable": "tether-local"},
                "mb": {"executable": "@MB@",
                       "args": ["good", "delay=200", "concurrency=4", "@MARK@"]}},
  "resources": { $STATE_RES,
    "c": {"provider": "mb", "type": "thing", "inputs": {"v": "\${b.outputs.v}"}},
    "b": {"provider": "mb", "type": "thing", "inputs": {"v": "\${a.outputs.v}"}},
    "a": {"provider": "mb", "type": "thing", "inputs": {"v": "x"}},
    "d": {"provider": "mb", "type": "thing", "inputs": {}, "dependsOn": ["c"]}
  }
}
EOF
tf 30 apply --parallelism 8
expect_rc 0
expect_stdout "4 created"
tf 30 state history
order=$(sed -n 's/.*  create    add \/resources\/\([a-d]\)$/\1/p' "$OUT" | tr -d '\n')
[ "$order" = abcd ] || fail "created in the order '$order', want abcd"
tf 30 state show c
expect_out '"inputProperties":{"v":"x"}'
end

begin "provider logs and progress are shown with the resource they concern"
things 1 "notify-and-response"
tf 30 apply
expect_rc 0
expect_stdout "t0: halfway (50%"
expect_err "\\[t0\\] info: misbehave: working on it"
end

begin "an operation that takes long says it is still running"
things 1 "good delay=10800"
tf 30 apply
expect_rc 0
expect_stdout "t0: still creating... (10s elapsed)"
end

finish
