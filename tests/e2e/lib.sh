# tests/e2e/lib.sh: the harness every end-to-end script sources.
#
#   . "$(dirname "$0")/lib.sh"
#   begin "crash is reported"
#   run_mb 10 create crash --type thing
#   expect_rc 1
#   expect_err 'status 3'
#   end
#   finish
#
# Each case prints one TAP-style line, "ok NAME" or "not ok NAME: why";
# `finish` exits non-zero when any case failed (tests/run.sh counts both).
# Every command runs under `timeout`, so a hang fails its case instead of
# the suite.
#
# Variables of the harness's own start with an underscore, so the
# scripts' names are theirs to choose.
#
# Every case gets a unique mark. The commands a case runs carry it in their
# environment (TETHER_TEST_MARK) and the misbehave providers also in their
# argv (mark=...), which survives a host that cleans the environment. After
# the case, any process still carrying the mark fails the case and is
# killed: "nothing left running" is checked for every case, not only for
# the ones about stopping.
#
# Variables: TETHER_BUILD (default build) is the build directory,
# TETHER_BIN (default $TETHER_BUILD/bin) where tether is, MISBEHAVE the
# test provider (default $TETHER_BUILD/tests/misbehave).

set -u
cd "$(dirname "$0")/../.." || exit 1
TETHER_BUILD=${TETHER_BUILD:-build}
TETHER_BIN=${TETHER_BIN:-$TETHER_BUILD/bin}
# Absolute paths: the host is free to change directory before it spawns.
case $TETHER_BIN in /*) ;; *) TETHER_BIN=$(pwd)/$TETHER_BIN ;; esac
TETHER=$TETHER_BIN/tether
MISBEHAVE=${MISBEHAVE:-$TETHER_BUILD/tests/misbehave}
case $MISBEHAVE in /*) ;; *) MISBEHAVE=$(pwd)/$MISBEHAVE ;; esac

E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tether-e2e.XXXXXX") || exit 1
trap 'rm -rf "$E2E_TMP"' EXIT
trap 'rm -rf "$E2E_TMP"; exit 130' INT TERM

cases_failed=0
cases_run=0
CASE_NAME=
CASE_WHY=
CASE_DIR=
MARK=
OUT=
ERR=
RC=
ELAPSED_MS=

now_ms() { date +%s%3N; }

# One line of text from a file, for a failure message: newlines folded,
# cut at 300 bytes.
squash() { # FILE
  tr '\n\r\t' '   ' <"$1" | cut -c 1-300
}

begin() { # NAME
  cases_run=$((cases_run + 1))
  CASE_NAME=$1
  CASE_WHY=
  CASE_DIR=$E2E_TMP/$cases_run
  mkdir -p "$CASE_DIR"
  MARK=e2emark$$x${cases_run}x$(date +%s%N)
  OUT=$CASE_DIR/stdout
  ERR=$CASE_DIR/stderr
  : >"$OUT"
  : >"$ERR"
  RC=
  ELAPSED_MS=0
}

# Records why the case failed; the first reason is the one reported, as the
# later ones usually follow from it.
fail() { # WHY
  [ -n "$CASE_WHY" ] || CASE_WHY=$1
}

# PIDs of the processes carrying the case's mark.
marked_pids() {
  # The mark comes from a file so that grep's own argv does not hold it.
  printf '%s\n' "$MARK" >"$CASE_DIR/mark"
  for _pid in $(grep -l -a -F -f "$CASE_DIR/mark" /proc/[0-9]*/environ \
      /proc/[0-9]*/cmdline 2>/dev/null | sed 's|^/proc/||; s|/.*||' |
      sort -u); do
    [ "$_pid" = "$$" ] || [ ! -e "/proc/$_pid" ] && continue
    echo "$_pid"
  done
}

# Fails the case when anything it started still runs, and kills it. A
# process the host has just SIGKILLed may take a moment to go, so this
# waits up to a second before it calls it left behind.
check_nothing_left() {
  _tries=0
  while :; do
    _left=$(marked_pids)
    [ -z "$_left" ] && return 0
    _tries=$((_tries + 1))
    [ $_tries -ge 10 ] && break
    sleep 0.1
  done
  _what=
  for _pid in $_left; do
    _what="$_what $_pid ($(tr '\0' ' ' <"/proc/$_pid/cmdline" 2>/dev/null |
      cut -c 1-80))"
    kill -KILL "$_pid" 2>/dev/null
  done
  fail "left running:$_what"
}

end() {
  check_nothing_left
  if [ -z "$CASE_WHY" ]; then
    echo "ok $CASE_NAME"
  else
    echo "not ok $CASE_NAME: $CASE_WHY"
    # Diagnostics, as TAP comments: what tether said, to start from.
    if [ -n "$RC" ]; then
      echo "#   exit status $RC after ${ELAPSED_MS}ms; stdout, then stderr:"
      head -c 600 "$OUT" | awk '{ print "#   | " $0 }'
      tail -n 12 "$ERR" | cut -c 1-300 | sed 's/^/#   ! /'
    fi
    cases_failed=$((cases_failed + 1))
  fi
}

finish() {
  echo "# $((cases_run - cases_failed)) passed, $cases_failed failed"
  [ "$cases_failed" -eq 0 ]
  exit
}

skip() { # WHY
  echo "ok $CASE_NAME # SKIP $1"
}

# ---- Running tether ----

# Runs tether ARGS with the case's mark, stdin from /dev/null, stdout to
# $OUT, stderr to $ERR, killed after LIMIT seconds. Sets RC and ELAPSED_MS.
tt() { # LIMIT ARGS...
  _limit=$1
  shift
  _start=$(now_ms)
  TETHER_TEST_MARK=$MARK timeout -k 2 "$_limit" "$TETHER" "$@" \
    </dev/null >"$OUT" 2>"$ERR"
  RC=$?
  ELAPSED_MS=$(($(now_ms) - _start))
  if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    fail "tether still running after ${_limit}s (killed); stderr: $(squash "$ERR")"
  fi
}

# `tether run OP` against the misbehave provider: SPEC is "MODE [KEY=VALUE]..."
# (words without spaces), each passed with --provider-arg; ARGS follow.
run_mb() { # LIMIT OP SPEC ARGS...
  _limit=$1 _op=$2 _spec=$3
  shift 3
  for _w in $_spec; do
    set -- "$@" --provider-arg "$_w"
  done
  tt "$_limit" run "$_op" --provider-exe "$MISBEHAVE" "$@" \
    --provider-arg "mark=$MARK"
}

# ---- Assertions ----

expect_rc() { # STATUS...
  for _want in "$@"; do
    [ "$RC" = "$_want" ] && return 0
  done
  fail "exit status $RC, want $*; stderr: $(squash "$ERR")"
}

# stderr matches the extended regular expression, ignoring case: tolerant
# about wording, strict about the facts a user needs.
expect_err() { # ERE [WHAT]
  grep -q -i -E -e "$1" "$ERR" ||
    fail "stderr does not say ${2:-/$1/}: $(squash "$ERR")"
}

expect_no_err() { # ERE WHAT
  ! grep -q -i -E -e "$1" "$ERR" ||
    fail "stderr says $2: $(squash "$ERR")"
}

# Compares JSON text with whitespace removed, so compact and pretty output
# both pass; the JSON under test keeps spaces out of its strings.
compact() { # FILE
  tr -d ' \n\r\t' <"$1"
}

# stdout holds FRAGMENT (compact JSON text).
expect_out() { # FRAGMENT
  case $(compact "$OUT") in
    *"$1"*) ;;
    *) fail "stdout lacks $1: $(squash "$OUT")" ;;
  esac
}

# stdout is exactly JSON (compact JSON text).
expect_out_is() { # JSON
  _got=$(compact "$OUT")
  [ "$_got" = "$1" ] || fail "stdout is $(squash "$OUT"), want $1"
}

expect_out_empty() {
  [ ! -s "$OUT" ] || fail "stdout is not empty: $(squash "$OUT")"
}

expect_within() { # SECONDS
  [ "$ELAPSED_MS" -le $(($1 * 1000)) ] ||
    fail "took ${ELAPSED_MS}ms, more than ${1}s"
}

# ---- Waiting ----

# Waits up to SECONDS for FILE to exist.
wait_for_file() { # FILE SECONDS
  _n=0
  while [ ! -e "$1" ]; do
    _n=$((_n + 1))
    [ $_n -gt $(($2 * 10)) ] && return 1
    sleep 0.1
  done
}

# True while PID runs (a zombie waiting for `wait` does not count).
running() { # PID
  [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

# Waits up to SECONDS for background job PID to end; sets RC (124 and a
# SIGKILL when it did not end in time) and ELAPSED_MS from START_MS.
wait_job() { # PID SECONDS START_MS
  _n=0
  while running "$1"; do
    _n=$((_n + 1))
    if [ $_n -gt $(($2 * 10)) ]; then
      kill -KILL "$1" 2>/dev/null
      wait "$1" 2>/dev/null
      RC=124
      ELAPSED_MS=$(($(now_ms) - $3))
      fail "tether still running ${2}s after the signal (killed)"
      return 1
    fi
    sleep 0.1
  done
  wait "$1"
  RC=$?
  ELAPSED_MS=$(($(now_ms) - $3))
}

# The setup checks every script starts with.
require_binaries() { # BINARY...
  for _b in "$@"; do
    if [ ! -x "$_b" ]; then
      echo "not ok setup: $_b is missing; build it with make BUILD=$TETHER_BUILD"
      exit 1
    fi
  done
}
