#!/bin/sh
# `tether check`, the provider conformance suite, against four providers:
# tether-local and the example C provider (which should pass), a Perl
# provider in tests/e2e/perl-provider.pl (correct, then sloppy on purpose),
# and misbehave (tests/helpers/misbehave.c) in every mode it has. For a
# broken provider the suite must name the case and say what was wrong, in
# bounded time, leaving nothing running (lib.sh checks that after every
# case).
. "$(dirname "$0")/lib.sh"
require_binaries "$TETHER" "$TETHER_BIN/tether-local" "$MISBEHAVE"
LOCAL=$TETHER_BIN/tether-local
PERL_PROVIDER=$(pwd)/tests/e2e/perl-provider.pl

# ---- Helpers ----

# `tether check` against misbehave: SPEC is "MODE [KEY=VALUE]..." as in
# run_misbehave.sh, each word passed with --provider-arg; ARGS follow.
check_mb() { # LIMIT SPEC ARGS...
  _limit=$1 _spec=$2
  shift 2
  for _w in $_spec; do
    set -- "$@" --provider-arg "$_w"
  done
  tt "$_limit" check --provider-exe "$MISBEHAVE" "$@" --provider-arg "mark=$MARK"
}

# The line of case NAME is VERDICT (PASS, FAIL or SKIP) and, when ERE is
# given, matches it (ignoring case).
expect_case() { # VERDICT NAME [ERE]
  _line=$(grep -F -e "$2" "$OUT" | grep -E "^(PASS|FAIL|SKIP) " |
    while IFS= read -r _l; do
      _n=${_l#* }
      _n=${_n%%: *}
      [ "$_n" = "$2" ] && { printf '%s\n' "$_l"; break; }
    done)
  case $_line in
    "$1 $2" | "$1 $2: "*) ;;
    *)
      fail "want $1 $2, got: ${_line:-no such line}"
      return
      ;;
  esac
  if [ -n "${3:-}" ] && ! printf '%s\n' "$_line" | grep -q -i -E -e "$3"; then
    fail "$1 $2 does not say /$3/: $(printf '%s' "$_line" | cut -c 1-300)"
  fi
}

# The tty case needs a pseudo-terminal; without one it is skipped, for that
# reason and no other.
expect_tty() {
  if grep -q '^SKIP tty: .*pseudo-terminal' "$OUT"; then
    echo "# tty skipped: no pseudo-terminal here"
  else
    expect_case PASS tty
  fi
}

# No case failed, and the summary says so.
expect_no_failures() {
  _fails=$(grep '^FAIL ' "$OUT" | cut -c 1-200 | tr '\n' ' ')
  [ -z "$_fails" ] || fail "cases failed: $_fails"
  grep -q -E '^[0-9]+ passed, 0 failed, [0-9]+ skipped$' "$OUT" ||
    fail "no summary line saying 0 failed: $(tail -n 1 "$OUT")"
}

# Exactly these cases failed (names separated by spaces, any order).
expect_failures() { # NAMES
  _got=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$OUT" | sort | tr '\n' ' ')
  _want=$(printf '%s\n' $1 | sort | tr '\n' ' ')
  [ "$_got" = "$_want" ] || fail "failed cases are [$_got], want [$_want]"
  _n=$(printf '%s\n' $1 | grep -c .)
  grep -q -E "^[0-9]+ passed, $_n failed, [0-9]+ skipped\$" "$OUT" ||
    fail "the summary does not count $_n failures: $(tail -n 1 "$OUT")"
}

# The last line is the summary, and every other line is a case.
expect_format() {
  tail -n 1 "$OUT" | grep -q -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' ||
    fail "the last line is not the summary: $(tail -n 1 "$OUT")"
  _odd=$(sed '$d' "$OUT" | grep -v -E '^(PASS [^ :]+|(FAIL|SKIP) [^ :]+: .+)$' |
    head -n 3 | tr '\n' ' ')
  [ -z "$_odd" ] || fail "lines that are not PASS/FAIL/SKIP: $_odd"
}

LOCAL_CASES="--type file --inputs-json {\"name\":\"f.txt\",\"contents\":\"x\"}
  --update-inputs-json {\"name\":\"f.txt\",\"contents\":\"y\"}
  --type state_file --inputs-json {\"name\":\"s.json\"}
  --type memo --inputs-json {\"initialize_with\":\"abc\"}
  --type exec --inputs-json {\"executable\":\"/bin/echo\",\"args\":[\"hi\"]}"

# ---- Providers that should pass ----

for framing in ndjson content-length; do
  begin "tether-local passes every case ($framing)"
  # shellcheck disable=SC2086 # LOCAL_CASES is split on purpose.
  tt 60 check --provider-exe "$LOCAL" --framing "$framing" $LOCAL_CASES
  expect_rc 0
  expect_format
  expect_no_failures
  for c in initialize ids content-length concurrency host-session \
    file/create file/read file/update file/delete file/read-after-delete \
    file/unknown-input memo/requires-state state_file/state-read-fresh \
    state_file/state-event state_file/state-read-after-event \
    state_file/state-expect-index state_file/state-bad-patch \
    state_file/state-lock state_file/state-persists \
    stdout-protocol-only notifications; do
    expect_case PASS "$c"
  done
  expect_tty
  expect_within 30
  end
done

begin "tether-local without inputs: life cycles skipped, saying how to run them"
tt 60 check --provider-exe "$LOCAL"
expect_rc 0
expect_no_failures
expect_case SKIP file/lifecycle '--type file --inputs-json'
expect_case SKIP state_file/state '--type state_file --inputs-json'
expect_case PASS file/unknown-input
end

begin "--cases FILE gives the inputs as JSON"
cat >"$CASE_DIR/cases.json" <<'EOF'
[{"type": "file", "inputs": {"name": "f.txt", "contents": "x"},
  "updateInputs": {"name": "f.txt", "contents": "y"}},
 {"type": "state_file", "inputs": {"name": "s.json"}}]
EOF
tt 60 check --provider-exe "$LOCAL" --cases "$CASE_DIR/cases.json"
expect_rc 0
expect_no_failures
expect_case PASS file/update
expect_case PASS state_file/state-persists
end

begin "--only runs the matching cases alone"
tt 30 check --provider-exe "$LOCAL" --only 'state_file/state-*' --only ids \
  --type state_file --inputs-json '{"name":"s.json"}'
expect_rc 0
expect_case PASS ids
expect_case PASS state_file/state-lock
grep -q '^PASS unknown-method' "$OUT" && fail "unknown-method ran despite --only"
grep -q -E '^8 passed, 0 failed, 0 skipped$' "$OUT" ||
  fail "want 8 cases, got: $(tail -n 1 "$OUT")"
end

begin "the example C provider, built against the provider library"
LIBPROV=$TETHER_BUILD/lib/libtether-provider.a
if [ ! -f "$LIBPROV" ]; then
  fail "$LIBPROV is missing; build it with make BUILD=$TETHER_BUILD"
elif ! ${CC:-cc} -std=c11 -Iinclude -o "$CASE_DIR/hello" \
  examples/c-provider/hello.c "$LIBPROV" -lm -pthread 2>"$ERR"; then
  fail "the example does not build: $(squash "$ERR")"
else
  tt 60 check --provider-exe "$CASE_DIR/hello" --type greeting \
    --inputs-json '{"name":"world"}' \
    --update-inputs-json '{"name":"you","shout":true}'
  expect_format
  _fails=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$OUT" | tr '\n' ' ')
  [ -z "$_fails" ] || fail "cases failed: $_fails"
  for c in initialize greeting/create greeting/update greeting/unknown-input \
    host-session content-length; do
    expect_case PASS "$c"
  done
fi
end

# ---- A provider in another language ----

begin "a Perl provider passes every case"
tt 60 check --provider-exe "$PERL_PROVIDER" --type note \
  --inputs-json '{"name":"n.txt","text":"hello"}' \
  --update-inputs-json '{"name":"m.txt","text":"bye"}'
expect_rc 0
expect_format
expect_no_failures
expect_case PASS note/read-after-delete
expect_case PASS strict-json
expect_tty
end

begin "a sloppy Perl provider: every mistake named"
tt 60 check --provider-exe "$PERL_PROVIDER" --provider-arg sloppy \
  --type note --inputs-json '{"name":"n.txt","text":"hello"}'
expect_rc 1
expect_format
expect_failures "unknown-method notification ids note/unknown-input
  stdout-protocol-only"
expect_case FAIL unknown-method 'expected error -32601.*got error -32603'
expect_case FAIL notification 'answered a notification.*an answer with id null'
expect_case FAIL ids '12345678901234567168'
expect_case FAIL ids 'id "42".*id 42'
expect_case FAIL note/unknown-input '__tether_check_unknown__.*got result'
expect_case FAIL stdout-protocol-only 'creating note n\.txt'
expect_case PASS note/create
end

# ---- misbehave ----

THING="--type thing --inputs-json {\"a\":\"b\"}"
FAST="--timeout 1 --start-timeout 1 --grace 1"

begin "misbehave good: what it gets right passes, what it skips is named"
# shellcheck disable=SC2086
check_mb 60 good $THING
expect_rc 1
expect_format
expect_failures "invalid-request thing/invalid-params thing/unknown-input
  thing/read-after-delete thing/state-read-after-event
  thing/state-expect-index thing/state-bad-patch thing/state-lock"
expect_case FAIL invalid-request 'no "jsonrpc" member: expected error -32600.*got error -32601'
expect_case FAIL thing/unknown-input 'a typo in a deployment would go unnoticed'
expect_case FAIL thing/state-lock 'expected error -32020'
expect_case FAIL thing/state-bad-patch 'expected error -32602.*got result'
expect_case FAIL thing/state-expect-index 'expected error -32021'
expect_tty
for c in initialize before-initialize protocol-version parse-error \
  strict-json deep-nesting notification ids content-length concurrency \
  unknown-type shutdown after-shutdown exit eof host-session thing/create \
  thing/state-persists stdout-protocol-only notifications; do
  expect_case PASS "$c"
done
expect_within 20
end

# Each failure mode: the case that must fail, what its line must say, and
# a time bound (the failures cost at most a timeout of 1 s each).
mb_case() { # NAME SPEC LIMIT CASE ERE [CASE ERE]...
  _name=$1 _spec=$2 _limit=$3
  shift 3
  begin "misbehave $_name"
  # shellcheck disable=SC2086
  check_mb $((_limit + 15)) "$_spec" $FAST $THING
  expect_rc 1
  expect_format
  while [ $# -ge 2 ]; do
    expect_case FAIL "$1" "$2"
    shift 2
  done
  expect_within "$_limit"
  end
}

mb_case "crash: the exit status and the stderr" crash 10 \
  thing/create 'exited with status 3.*crashing on purpose' \
  thing/invalid-params 'exited with status 3'
mb_case "killed by SIGKILL" sigkill 10 thing/create 'SIGKILL'
mb_case "killed by SIGSEGV" sigsegv 10 thing/create 'SIGSEGV'
mb_case "hangs on operations" hang 25 \
  thing/create 'no answer within 1\.0 s' \
  concurrency 'no answer within'
mb_case "hangs in initialize" hang-init 15 \
  initialize 'within 1\.0 s \(--start-timeout\), got no answer'
mb_case "exits during initialize" exit-init 10 \
  initialize 'exited with status 4.*misbehave\.conf'
mb_case "refuses the protocol version" wrong-version 10 \
  initialize 'got error -32602.*version 7'
mb_case "stray text on stdout" stray 10 \
  stdout-protocol-only '"hello world".*not JSON'
mb_case "stray text before initialize" stray-init 10 \
  stdout-protocol-only 'in case initialize: stdout held "hello world"'
mb_case "a cut-off JSON text" bad-json 20 \
  thing/create 'not JSON.*\{\\"jsonrpc\\":\\"2\.0\\",\\"id\\":[0-9]+,\\"result\\"' \
  stdout-protocol-only 'not JSON'
mb_case "an answer with the wrong id" wrong-id 20 \
  thing/create 'answer with id 424242'
mb_case "an answer with both result and error" both 10 \
  thing/create 'not valid JSON-RPC 2\.0.*both'
mb_case "half an answer, then exit 0" partial 10 \
  thing/create 'exited with status 0, leaving an unfinished message'
mb_case "an answer over the size limit" big 40 \
  thing/create 'could not be cut into messages.*(large|limit)'
mb_case "ignores shutdown, exit and EOF" ignore-term 30 \
  shutdown 'no answer within' \
  exit 'still running' \
  eof 'still running.*stdin was closed' \
  host-session 'SIGKILL'

begin "misbehave leave-child: its child goes with it"
# shellcheck disable=SC2086
check_mb 30 leave-child $FAST $THING
expect_case PASS host-session
expect_case PASS exit
expect_case PASS thing/create
expect_within 15
end

begin "misbehave notify-and-response: log and progress are fine"
# shellcheck disable=SC2086
check_mb 30 notify-and-response $THING
expect_case PASS notifications
expect_case PASS stdout-protocol-only
expect_case PASS thing/create
end

begin "misbehave bytewise: answers split at every byte"
# shellcheck disable=SC2086
check_mb 60 "bytewise byte_us=20" $THING --only initialize --only ids \
  --only content-length --only 'thing/*'
expect_case PASS initialize
expect_case PASS ids
expect_case PASS content-length
expect_case PASS thing/create
end

begin "misbehave stderr-flood: 50 MB of stderr per operation"
# shellcheck disable=SC2086
check_mb 60 stderr-flood $THING --only 'thing/create' --only 'thing/read'
expect_rc 0
expect_case PASS thing/create
expect_case PASS thing/read
end

# ---- Usage and the suite's own failures ----

usage_case() { # NAME ERE ARGS...
  _n=$1 _re=$2
  shift 2
  begin "usage: $_n"
  tt 10 check "$@"
  expect_rc 2
  expect_err "$_re"
  expect_out_empty
  end
}
usage_case "no --provider-exe" 'provider-exe' --type file --inputs-json '{}'
usage_case "unknown flag" 'frobnicate' --provider-exe "$LOCAL" --frobnicate
usage_case "--inputs-json without --type" 'needs a --type' \
  --provider-exe "$LOCAL" --inputs-json '{}'
usage_case "--type without --inputs-json" 'file.*needs --inputs-json' \
  --provider-exe "$LOCAL" --type file
usage_case "--inputs-json not an object" 'object' \
  --provider-exe "$LOCAL" --type file --inputs-json '[1]'
usage_case "--timeout not a number" 'timeout' \
  --provider-exe "$LOCAL" --timeout soon
usage_case "--framing unknown" 'framing' --provider-exe "$LOCAL" --framing xml
usage_case "--cases missing" 'cases.*nonexistent' \
  --provider-exe "$LOCAL" --cases /nonexistent/cases.json
usage_case "a flag without its value" 'provider-exe needs a value' \
  --provider-exe

begin "--help lists the cases"
tt 10 check --help
expect_rc 0
expect_out 'protocol-version'
expect_out 'state-lock'
end

begin "a provider executable that does not exist"
tt 10 check --provider-exe /nonexistent/tether-nothing
expect_rc 1
expect_err '/nonexistent/tether-nothing'
end

# SIGTERM to the suite while a provider hangs: it stops the provider and
# exits 1 at once (lib.sh then checks that nothing is left).
begin "SIGTERM to tether check stops the provider"
start=$(now_ms)
TETHER_TEST_MARK=$MARK "$TETHER" check --provider-exe "$MISBEHAVE" \
  --provider-arg hang --provider-arg "touch=$CASE_DIR/started" \
  --provider-arg "mark=$MARK" --timeout 60 --only 'thing/create' \
  --type thing --inputs-json '{"a":"b"}' </dev/null >"$OUT" 2>"$ERR" &
pid=$!
if wait_for_file "$CASE_DIR/started" 10; then
  kill -TERM "$pid"
  if wait_job "$pid" 10 "$start"; then
    expect_rc 1
    expect_err 'interrupted'
  fi
else
  fail "the provider never got the request; stderr: $(squash "$ERR")"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
fi
end

finish
