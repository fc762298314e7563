#!/bin/sh
# Benchmarks of the engine (tether apply), on N tether-local file
# resources with a local state file:
#
# 1. Creating N independent resources with --parallelism 16: the whole
#    `tether apply` process, median wall time over CREATE_RUNS runs (each
#    from an empty directory), and for the median run how the time splits:
#    time with a provider operation in flight, time with a state write in
#    flight (they overlap), time with no request in flight (the host's own
#    work and process start-up), and the CPU time of tether and of the
#    providers.
# 2. A no-op apply of the same N resources (every one unchanged): median
#    wall time over RUNS runs and the provider requests it made. Goal: no
#    request but initialize and the state store's own (its re-validation,
#    a create, and state_read), and at most 150 ms.
#
# The figures come from TETHER_STATS=1 (see host/apply.h) and runstat.
#
#   sh tests/bench/engine_bench.sh       (after make bench)
# Variables: BUILD (default build), N (1000), RUNS (9), CREATE_RUNS (3).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
N=${N:-1000}
RUNS=${RUNS:-9}
CREATE_RUNS=${CREATE_RUNS:-3}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
TETHER=$BUILD/bin/tether
RUNSTAT=$BUILD/bench/runstat
for b in "$TETHER" "$BUILD/bin/tether-local" "$RUNSTAT"; do
  [ -x "$b" ] || { echo "engine_bench: $b is missing: run make bench" >&2; exit 1; }
done
WORK=$BUILD/bench/engine
rm -rf "$WORK"
mkdir -p "$WORK/run"
DEPLOY=$WORK/run/tether.json

{
  printf '{"state": "state",\n "providers": {"local": {"executable": "tether-local"}},\n'
  printf ' "resources": {\n  "state": {"provider": "local", "type": "state_file", "inputs": {"name": "state.json"}}'
  i=0
  while [ $i -lt "$N" ]; do
    printf ',\n  "r%d": {"provider": "local", "type": "file", "inputs": {"name": "files/r%d.txt", "contents": "resource %d of the engine benchmark"}}' $i $i $i
    i=$((i + 1))
  done
  printf '\n }\n}\n'
} >"$DEPLOY"

median() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# One apply under runstat with statistics; leaves "WALL_MS" on stdout and
# the statistics line in $WORK/stats.N.
apply_once() { # TAG ARGS...
  tag=$1
  shift
  TETHER_STATS=1 "$RUNSTAT" -o "$WORK/out" "$TETHER" apply -f "$DEPLOY" \
    --json "$@" 2>"$WORK/err" ||
    { echo "engine_bench: tether apply failed:" >&2; tail -n 5 "$WORK/err" >&2; return 1; }
  grep '^tether-stats: ' "$WORK/err" | sed 's/^tether-stats: //' >"$WORK/stats.$tag"
  sed -n 's/.*wall_ms=\([0-9.]*\).*/\1/p' "$WORK/err" | tail -n 1
}

# A number from a statistics line.
stat_of() { # FILE KEY
  sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"
}

# The requests object of a statistics line, as "method=count ...".
requests_of() { # FILE
  sed -n 's/.*"requests":{\([^}]*\)}.*/\1/p' "$1" | tr -d '"' | tr ':,' '= '
}

echo "== engine: creating $N independent resources, --parallelism 16"
: >"$WORK/create_walls"
k=0
while [ $k -lt "$CREATE_RUNS" ]; do
  k=$((k + 1))
  rm -rf "$WORK/run/files" "$WORK/run/state.json" "$WORK/run/state.json.lock"
  mkdir -p "$WORK/run/files"
  w=$(apply_once "create$k" --parallelism 16) || exit 1
  echo "$w create$k" >>"$WORK/create_walls"
  grep -q "\"created\":$N," "$WORK/out" ||
    { echo "engine_bench: the create run did not create $N: $(cat "$WORK/out")" >&2; exit 1; }
done
mid=$(sort -n "$WORK/create_walls" | awk -v n="$CREATE_RUNS" 'NR == int((n + 1) / 2) { print $2 }')
S=$WORK/stats.$mid
c_wall=$(sort -n "$WORK/create_walls" | awk -v n="$CREATE_RUNS" 'NR == int((n + 1) / 2) { print $1 }')
echo "wall: median ${c_wall} ms over $CREATE_RUNS runs (whole tether apply process)"
echo "split of that run: provider operations in flight $(stat_of "$S" operations_busy_ms) ms," \
  "state writes in flight $(stat_of "$S" state_writes_busy_ms) ms (overlapping)," \
  "no request in flight $(stat_of "$S" no_request_ms) ms"
echo "cpu: tether $(stat_of "$S" host_cpu_ms) ms, providers $(stat_of "$S" provider_cpu_ms) ms;" \
  "processes $(stat_of "$S" processes)"
echo "requests: $(requests_of "$S")"

echo "== engine: no-op apply of $N unchanged resources"
: >"$WORK/noop_walls"
apply_once warm >/dev/null || exit 1
k=0
while [ $k -lt "$RUNS" ]; do
  k=$((k + 1))
  apply_once noop >>"$WORK/noop_walls" || exit 1
  grep -q "\"unchanged\":$N," "$WORK/out" ||
    { echo "engine_bench: the no-op run changed something: $(cat "$WORK/out")" >&2; exit 1; }
done
n_wall=$(median <"$WORK/noop_walls")
reqs=$(requests_of "$WORK/stats.noop")
echo "wall: median ${n_wall} ms over $RUNS runs (goal 150 ms)"
echo "requests: $reqs (goal: initialize, and the store's create and state_read)"
case " $reqs " in
  *" update="* | *" delete="* | *" state_event="* | *" read="*)
    echo "engine_bench: the no-op apply made requests beyond the store's" >&2
    exit 1 ;;
esac
awk -v w="$n_wall" 'BEGIN { exit !(w <= 150) }' ||
  echo "engine_bench: the no-op apply took ${n_wall} ms, over the 150 ms goal" >&2
exit 0
