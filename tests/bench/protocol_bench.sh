#!/bin/sh
# Benchmarks of the protocol path, each next to its peer in the same run.
#
# 1. Sequential round trips: `tether run read --repeat N` against the C
#    bench provider, next to a bare pipe ping-pong (tests/bench/pingpong.c)
#    exchanging messages of the same sizes, both pinned to one CPU.
#    Target: at most 2x the bare pipe.
# 2. Pipelined throughput against a provider declaring concurrency > 1.
# 3. JSON parse and serialize throughput on a large document
#    (tests/bench/bench_json.c). Target: at least 300 MB/s parse.
#
# Variables: BUILD (default build), RUNS (default 7), N (default 20000).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-7}
N=${N:-20000}
TETHER=$BUILD/bin/tether
PROV=$BUILD/bench/bench_provider
PING=$BUILD/bench/pingpong
for b in "$TETHER" "$PROV" "$PING" "$BUILD/bench/bench_json"; do
  [ -x "$b" ] || { echo "protocol_bench: $b is missing: run make bench" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

median() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

INPUTS='{"name":"web","size":12,"zone":"eu-west"}'
OUTPUTS='{"id":"i-0123456789abcdef"}'
run_read() { # extra flags...
  "$TETHER" run read --provider-exe "$PROV" "$@" --type item \
    --inputs-json "$INPUTS" --outputs-json "$OUTPUTS" --repeat "$N" \
    2>&1 >/dev/null | tail -n 1
}

# The sizes of one request and one answer as they cross the pipe, so the
# ping-pong moves the same bytes.
"$TETHER" run read --provider-exe "$PROV" --type item --inputs-json "$INPUTS" \
  --outputs-json "$OUTPUTS" >"$WORK/result" 2>/dev/null
RESP=$(( $(wc -c <"$WORK/result") + 25 ))
REQ=$(printf '{"jsonrpc":"2.0","id":12345,"method":"read","params":{"resource":{"type":"item","inputProperties":%s,"outputProperties":%s}}}\n' \
  "$INPUTS" "$OUTPUTS" | wc -c)

echo "== sequential round trips: $N small read requests, one CPU (taskset -c 0)"
: >"$WORK/t"; : >"$WORK/p"
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  taskset -c 0 "$PING" "$N" "$REQ" "$RESP" |
    sed -n 's/.*per_rt_us=\([0-9.]*\).*/\1/p' >>"$WORK/p"
  line=$(taskset -c 0 sh -c "\"$TETHER\" run read --provider-exe \"$PROV\" --type item \
    --inputs-json '$INPUTS' --outputs-json '$OUTPUTS' --repeat $N 2>&1 >/dev/null | tail -n 1")
  echo "$line" | awk -v n="$N" '{ for (i = 1; i <= NF; i++) if ($i ~ /^seconds=/) {
    split($i, a, "="); printf "%.3f\n", a[2] * 1e6 / n } }' >>"$WORK/t"
done
t=$(median <"$WORK/t"); p=$(median <"$WORK/p")
echo "  tether run --repeat $N:  median $t us per round trip (request $REQ B, answer $RESP B)"
echo "  bare pipe ping-pong:     median $p us per round trip"
echo "  ratio tether/pipe:       $(echo "$t $p" | awk '{ printf "%.2fx", $1 / $2 }') (target <= 2x)"

echo "== pipelined throughput: provider concurrency 16, --pipeline 16"
: >"$WORK/r"
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  "$TETHER" run read --provider-exe "$PROV" --provider-arg --concurrency \
    --provider-arg 16 --type item --inputs-json "$INPUTS" \
    --outputs-json "$OUTPUTS" --repeat "$N" --pipeline 16 2>&1 >/dev/null |
    tail -n 1 | sed -n 's/.*per_s=\([0-9]*\).*/\1/p' >>"$WORK/r"
done
: >"$WORK/s"
i=0
while [ $i -lt "$RUNS" ]; do
  i=$((i + 1))
  run_read | sed -n 's/.*per_s=\([0-9]*\).*/\1/p' >>"$WORK/s"
done
r=$(median <"$WORK/r"); s=$(median <"$WORK/s")
echo "  pipelined (16 in flight): median $r requests/s"
echo "  sequential (1 in flight): median $s requests/s"
echo "  ratio:                    $(echo "$r $s" | awk '{ printf "%.2fx", $1 / $2 }')"

echo "== JSON parse and serialize"
"$BUILD/bench/bench_json"
