#!/bin/sh
# make bench: every benchmark, each printing its figures next to its peer's.
set -u
cd "$(dirname "$0")/../.." || exit 1
status=0
for b in protocol_bench local_bench engine_bench; do
  [ -f "tests/bench/$b.sh" ] || continue
  sh "tests/bench/$b.sh" || { echo "bench: $b failed" >&2; status=1; }
  echo
done
exit $status
