#!/bin/sh
# Runs every test: the cmocka unit tests (plain build and ASan+UBSan build)
# and the end-to-end scripts, each under a time limit, and prints one
# closing line "N passed, N failed".
#
# Unit test binaries live in build/tests/test_* and build/san/tests/test_*.
# End-to-end scripts (tests/e2e/*.sh) print TAP-style lines, "ok NAME" or
# "not ok NAME: why", and exit non-zero when any case failed.
set -u
cd "$(dirname "$0")/.."
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
passed=0
failed=0
failures=""
log=$(mktemp -d "${TMPDIR:-/tmp}/tether-tests.XXXXXX")
trap 'rm -rf "$log"' EXIT INT TERM

record() { # status name
  if [ "$1" = ok ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); failures="$failures
  $2"; fi
}

run_unit() { # binary label [wrapper]
  out="$log/unit.out"
  CMOCKA_MESSAGE_OUTPUT=stdout timeout -k 5 "$UNIT_TIMEOUT" ${3:-} "$1" >"$out" 2>&1
  rc=$?
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -n 1)
  p=${p:-0}; f=${f:-0}
  passed=$((passed + p))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
    failed=$((failed + f)); failures="$failures
  $2 (exit $rc)"
    sed 's/^/    /' "$out" | tail -n 40
  fi
  printf '%-44s %s passed, %s failed\n' "$2" "$p" "$f"
}

for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  run_unit "$t" "unit $(basename "$t")"
done
for t in build/san/tests/test_*; do
  [ -x "$t" ] || continue
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_unit "$t" "asan+ubsan $(basename "$t")"
done

# valgrind finds what the sanitizers do not: leaks and uninitialised reads in
# the optimised build. A leak counts as an error.
if command -v valgrind >/dev/null 2>&1; then
  for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    run_unit "$t" "valgrind $(basename "$t")" "valgrind -q --leak-check=full \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99"
  done
else
  echo "valgrind is not installed: the leak check of the unit tests did not run"
  failed=$((failed + 1)); failures="$failures
  valgrind missing"
fi

for s in tests/e2e/*.sh; do
  [ -f "$s" ] || continue
  case "$s" in */lib.sh) continue ;; esac
  out="$log/e2e.out"
  timeout -k 5 "$E2E_TIMEOUT" sh "$s" >"$out" 2>&1
  rc=$?
  p=$(grep -c '^ok ' "$out")
  f=$(grep -c '^not ok ' "$out")
  passed=$((passed + p))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  failed=$((failed + f))
  if [ "$f" -ne 0 ]; then
    failures="$failures
  $(basename "$s") (exit $rc)"
    grep -v '^ok ' "$out" | tail -n 60 | sed 's/^/    /'
  fi
  printf '%-44s %s passed, %s failed\n' "e2e $(basename "$s")" "$p" "$f"
done

if [ "$failed" -ne 0 ]; then
  echo "failed:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
