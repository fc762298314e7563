#!/bin/sh
# Benchmarks of tether-local's state_file.
#
# 1. state_read replay of a 100,000-event log (60% creates, 30% updates,
#    10% removes, inputs of about 200 bytes; written by gen_state_log):
#    the whole `tether run state-read` process from start to exit, median
#    wall time and peak RSS of the largest process (tether or the
#    provider) over RUNS runs, next to the same log replayed on Node with
#    fast-json-patch, with the ratios. Targets: 100 ms and 64 MB.
# 2. state_event rate with durable appends, one at a time and pipelined
#    (group commit), next to the disk's own rate of synced small writes,
#    which is what bounds it.
#
#   sh tests/bench/local_bench.sh        (after make bench, or make all and
#                                        the bench binaries)
# Variables: BUILD (default build), RUNS (default 9), EVENTS (100000).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-9}
EVENTS=${EVENTS:-100000}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
TETHER=$BUILD/bin/tether
LOCAL=$BUILD/bin/tether-local
GEN=$BUILD/bench/gen_state_log
RUNSTAT=$BUILD/bench/runstat
for b in "$TETHER" "$LOCAL" "$GEN" "$RUNSTAT" "$BUILD/bench/sync_floor"; do
  [ -x "$b" ] || { echo "local_bench: $b is missing: run make bench" >&2; exit 1; }
done
WORK=$BUILD/bench/local
mkdir -p "$WORK"
LOG=$WORK/state-$EVENTS.json

# The median of the numbers on stdin.
median() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# KB to MB, one decimal.
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Runs CMD RUNS times under runstat after one warm-up run; prints
# "WALL_MS RSS_KB MIN_WALL_MS" (medians, and the fastest run: on a busy
# machine the two tell noise from cost) and leaves the last output in
# $WORK/out.
measure() { # CMD...
  "$RUNSTAT" -o "$WORK/out" "$@" 2>"$WORK/stat" ||
    { echo "local_bench: $* failed: $(cat "$WORK/stat")" >&2; return 1; }
  : >"$WORK/walls"
  : >"$WORK/rss"
  i=0
  while [ $i -lt "$RUNS" ]; do
    i=$((i + 1))
    "$RUNSTAT" -o "$WORK/out" "$@" 2>"$WORK/stat" || return 1
    sed -n 's/.*wall_ms=\([0-9.]*\).*/\1/p' "$WORK/stat" >>"$WORK/walls"
    sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' "$WORK/stat" >>"$WORK/rss"
  done
  echo "$(median <"$WORK/walls") $(median <"$WORK/rss") $(sort -n "$WORK/walls" | head -n 1)"
}

echo "== tether-local: state_read replay of $EVENTS events"
if [ ! -s "$LOG" ] || [ "$GEN" -nt "$LOG" ]; then
  "$GEN" --events "$EVENTS" "$LOG" >"$WORK/gen.out" || exit 1
fi
echo "log: $LOG ($(wc -c <"$LOG") bytes, $(wc -l <"$LOG") events)"

set -- $(measure "$TETHER" run state-read --provider-exe "$LOCAL" \
  --type state_file --inputs-json "{\"name\":\"$LOG\"}" --outputs-json '{}') ||
  exit 1
t_ms=$1 t_rss=$2 t_min=$3
tail -c 40 "$WORK/out" | grep -q "\"index\":$((EVENTS - 1))}" ||
  { echo "local_bench: tether's answer does not end at index $((EVENTS - 1))" >&2; exit 1; }
t_bytes=$(wc -c <"$WORK/out")
echo "tether run state-read: median ${t_ms} ms (fastest ${t_min} ms), peak RSS" \
  "$(mb "$t_rss") MB (largest process; targets 100 ms, 64 MB); answer $t_bytes bytes"

NODE_DIR=$BUILD/bench/node
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  mkdir -p "$NODE_DIR"
  cp tests/bench/node/package.json tests/bench/node/package-lock.json \
    tests/bench/node/replay.js "$NODE_DIR/"
  if [ ! -d "$NODE_DIR/node_modules/fast-json-patch" ]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1) ||
      echo "local_bench: npm ci failed in $NODE_DIR: no Node peer" >&2
  fi
fi
if [ -d "$NODE_DIR/node_modules/fast-json-patch" ]; then
  set -- $(measure node "$NODE_DIR/replay.js" "$LOG") || exit 1
  n_ms=$1 n_rss=$2 n_min=$3
  tail -c 40 "$WORK/out" | grep -q "\"index\":$((EVENTS - 1))}" ||
    echo "local_bench: the Node peer's answer does not end at index $((EVENTS - 1))" >&2
  echo "node + fast-json-patch $(node -p 'require(process.argv[1] + "/node_modules/fast-json-patch/package.json").version' "$NODE_DIR"):" \
    "median ${n_ms} ms (fastest ${n_min} ms), peak RSS $(mb "$n_rss") MB"
  awk -v tm="$t_ms" -v nm="$n_ms" -v tr="$t_rss" -v nr="$n_rss" 'BEGIN {
    printf "ratio node/tether: time %.1fx, memory %.1fx\n", nm / tm, nr / tr }'
else
  echo "node + fast-json-patch: not available (node and npm are needed)"
fi

# Replay must grow linearly with the log: the same per-event cost at a
# quarter, half and the whole of it.
scaling=
for n in $((EVENTS / 4)) $((EVENTS / 2)); do
  "$GEN" --events "$n" "$WORK/state-$n.json" >/dev/null || exit 1
  set -- $(RUNS=3 measure "$TETHER" run state-read --provider-exe "$LOCAL" \
    --type state_file --inputs-json "{\"name\":\"$WORK/state-$n.json\"}" \
    --outputs-json '{}') || exit 1
  scaling="$scaling $(awk -v n="$n" -v ms="$1" 'BEGIN { printf "%d events %.0f ms (%.2f us/event),", n, ms, ms * 1000 / n }')"
  rm -f "$WORK/state-$n.json"
done
echo "scaling:$scaling $(awk -v n="$EVENTS" -v ms="$t_ms" 'BEGIN { printf "%d events %.0f ms (%.2f us/event)", n, ms, ms * 1000 / n }')"

echo "== tether-local: state_event with durable appends"
EV_FILE=$WORK/events.json
rm -f "$EV_FILE" "$EV_FILE.lock"
"$TETHER" run create --provider-exe "$LOCAL" --type state_file \
  --input-str name "$EV_FILE" >/dev/null || exit 1
PATCH='[{"op":"add","path":"/resources/web","value":{"type":"file","provider":"local","inputProperties":{"name":"/srv/www/index.html","contents":"<html><body>hello from tether, the resource-provider host, with a fairly ordinary page</body></html>","mode":"0644"},"outputProperties":{},"dependsOn":[],"status":"created"}}]'
# Prints "RATE CPU_US_PER_EVENT" for N events with up to PIPELINE in flight.
rate() { # N [PIPELINE]
  "$RUNSTAT" "$TETHER" run state-event --provider-exe "$LOCAL" \
    --type state_file --inputs-json "{\"name\":\"$EV_FILE\"}" \
    --outputs-json '{}' --event create --host-version bench \
    --patch-json "$PATCH" --repeat "$1" ${2:+--pipeline "$2"} \
    2>"$WORK/stat" >/dev/null || { cat "$WORK/stat" >&2; return 1; }
  awk -v n="$1" '/wall_ms=/ { for (i = 1; i <= NF; i++) { split($i, kv, "=");
      v[kv[1]] = kv[2] } }
    END { printf "%.0f %.0f\n", n / (v["wall_ms"] / 1000), v["cpu_ms"] * 1000 / n }' \
    "$WORK/stat"
}
set -- $(rate 2000) || exit 1
seq_rate=$1 seq_cpu=$2
set -- $(rate 20000 64) || exit 1
pipe_rate=$1 pipe_cpu=$2
set -- $("$BUILD/bench/sync_floor" "$WORK" 2000 400 |
  sed -n 's/.*per_s=\([0-9]*\) us_each=\([0-9.]*\).*/\1 \2/p')
floor_rate=${1:-?} floor_us=${2:-?}
echo "disk floor:    $floor_rate synced appends/s (${floor_us} us per write+fdatasync of 400 bytes; sync_floor)"
echo "one at a time: $seq_rate events/s, ${seq_cpu} us CPU per event (tether + provider):"
echo "               bound by the disk: each answer waits for its own fdatasync"
echo "               (the floor above) plus one round trip through tether"
echo "64 in flight:  $pipe_rate events/s, ${pipe_cpu} us CPU per event (tether + provider):"
echo "               group commit shares one fdatasync among the events that arrive"
echo "               during it, so the bound moves to the CPU of the two processes"
echo "               (${pipe_cpu} us per event on $(nproc) CPUs)"
echo "events in the file: $(wc -l <"$EV_FILE")"
