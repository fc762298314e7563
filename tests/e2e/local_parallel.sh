#!/bin/sh
# tether-local doing independent work at once: files written side by
# side, programs running while files are written, a deployment of files
# and slow programs finishing in the time of its slowest part, and what
# must not change with it: a store's events applied in the order they
# came, each program's output its own, stderr in whole lines, and nothing
# left running when the provider is told to exit.
. "$(dirname "$0")/lib.sh"
LOCAL=$TETHER_BIN/tether-local
require_binaries "$TETHER" "$LOCAL"
command -v jq >/dev/null 2>&1 || {
  echo "not ok setup: jq is not installed (make test installs it)"
  exit 1
}

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"host":{"name":"e2e","version":"0"}}}'

# Runs tether-local in the case's directory on the requests in
# $CASE_DIR/requests (its stdin ends after them, so it answers them all
# and exits); answers in $OUT, its stderr in $ERR. Sets RC and
# ELAPSED_MS.
local_on_requests() { # LIMIT
  _start=$(now_ms)
  (cd "$CASE_DIR" && TETHER_TEST_MARK=$MARK timeout -k 2 "$1" "$LOCAL") \
    <"$CASE_DIR/requests" >"$OUT" 2>"$ERR"
  RC=$?
  ELAPSED_MS=$(($(now_ms) - _start))
}

# A create request with id ID of TYPE with INPUTS (JSON).
create_request() { # ID TYPE INPUTS
  printf '{"jsonrpc":"2.0","id":%d,"method":"create","params":{"type":"%s","inputProperties":%s,"isStateful":false}}\n' \
    "$1" "$2" "$3"
}

# The line number in $OUT of the answer with id ID (0 when none).
answer_line() { # ID
  grep -n "\"id\":$1," "$OUT" | head -n 1 | cut -d: -f1 | grep . || echo 0
}

begin "file: one name written 64 times, 16 at a time: every write succeeds, one whole copy stays"
head -c 72000 /dev/urandom | base64 -w 0 >"$CASE_DIR/contents"
here=$(pwd)
cd "$CASE_DIR" || exit 1
tt 30 run create --provider-exe "$LOCAL" --type file --input-str name same.txt \
  --input-str contents "$(cat "$CASE_DIR/contents")" --repeat 64 --pipeline 16
cd "$here" || exit 1
expect_rc 0
expect_err 'requests=64 '
cmp -s "$CASE_DIR/contents" "$CASE_DIR/same.txt" ||
  fail "same.txt is not the contents written"
left=$(ls -A "$CASE_DIR" | grep -v -x -e same.txt -e contents -e stdout \
  -e stderr -e mark)
[ -z "$left" ] || fail "left behind: $(echo "$left" | tr '\n' ' ')"
end

begin "file: a write is answered while a long program runs in the same process"
{
  echo "$INIT"
  create_request 2 exec '{"executable":"sleep","args":["2"]}'
  create_request 3 file '{"name":"quick.txt","contents":"quick"}'
} >"$CASE_DIR/requests"
local_on_requests 20
expect_rc 0
expect_out '"id":2,"result":{"outputProperties":{"stdout":""}}'
expect_out '"id":3,"result":{"outputProperties":{}}'
[ "$(answer_line 3)" -gt 0 ] && [ "$(answer_line 3)" -lt "$(answer_line 2)" ] ||
  fail "the file's answer did not come before the program's: $(squash "$OUT")"
[ "$(cat "$CASE_DIR/quick.txt" 2>/dev/null)" = quick ] || fail "quick.txt is wrong"
end

begin "apply: 50 files and 4 one-second programs with --parallelism 16 take the time of one program, not four"
{
  printf '{"state": "state",\n "providers": {"local": {"executable": "tether-local"}},\n'
  printf ' "resources": {\n  "state": {"provider": "local", "type": "state_file", "inputs": {"name": "state.json"}}'
  i=0
  while [ $i -lt 50 ]; do
    printf ',\n  "f%d": {"provider": "local", "type": "file", "inputs": {"name": "f%d.txt", "contents": "file %d"}}' $i $i $i
    i=$((i + 1))
  done
  i=0
  while [ $i -lt 4 ]; do
    printf ',\n  "p%d": {"provider": "local", "type": "exec", "inputs": {"executable": "sleep", "args": ["1"]}}' $i
    i=$((i + 1))
  done
  printf '\n }\n}\n'
} >"$CASE_DIR/tether.json"
tt 30 apply -f "$CASE_DIR/tether.json" --parallelism 16
expect_rc 0
grep -q -F '54 created' "$OUT" || fail "stdout lacks '54 created': $(squash "$OUT")"
# One after another the programs alone take 4 s; side by side about 1 s.
# The bound leaves room for a loaded machine.
[ "$ELAPSED_MS" -lt 3500 ] ||
  fail "took ${ELAPSED_MS}ms: the programs ran one after another"
i=0
while [ $i -lt 50 ]; do
  [ "$(cat "$CASE_DIR/f$i.txt" 2>/dev/null)" = "file $i" ] ||
    { fail "f$i.txt is wrong"; break; }
  i=$((i + 1))
done
end

begin "state_file: 100 pipelined events with expectIndex keep their order while files are written beside them"
here=$(pwd)
cd "$CASE_DIR" || exit 1
tt 20 run create --provider-exe "$LOCAL" --type state_file --input-str name s.json
cd "$here" || exit 1
expect_rc 0
{
  echo "$INIT"
  i=0
  while [ $i -lt 100 ]; do
    printf '{"jsonrpc":"2.0","id":%d,"method":"state_event","params":{"resource":{"type":"state_file","inputProperties":{"name":"s.json"},"outputProperties":{}},"event":"create","hostVersion":"e2e","expectIndex":%d,"patch":[{"op":"add","path":"/resources/r%d","value":%d}]}}\n' \
      $((100 + i)) $i $i $i
    create_request $((1000 + i)) file "{\"name\":\"f$i.txt\",\"contents\":\"$i\"}"
    i=$((i + 1))
  done
} >"$CASE_DIR/requests"
local_on_requests 60
expect_rc 0
# Event i (id 100 + i) expected index i and became index i + 1.
bad=$(jq -c 'select(.id >= 100 and .id < 200) |
  select(.result.index != .id - 99) | {id, result, error}' "$OUT" | head -n 3)
[ -z "$bad" ] || fail "events out of order: $bad"
[ "$(jq -c 'select(.id >= 100 and .id < 200 and .result.index)' "$OUT" |
  wc -l)" = 100 ] || fail "not every event was answered with its index"
[ "$(grep -c '"outputProperties":{}' "$OUT")" = 100 ] ||
  fail "not every file was created: $(grep -v outputProperties "$OUT" | squash /dev/stdin)"
# The file holds event 0 and the 100 in order.
got=$(jq -c -s 'map(.index)' "$CASE_DIR/s.json")
want=$(jq -c -n '[range(101)]')
[ "$got" = "$want" ] || fail "the file's indexes are $got"
end

begin "exec: programs running at once each get their own stdout, and their stderr in whole lines"
{
  echo "$INIT"
  k=0
  while [ $k -lt 12 ]; do
    # Each stderr line is written in two pieces, which another program's
    # line must not come between.
    create_request $((10 + k)) exec "{\"executable\":\"sh\",\"args\":[\"-c\",\"i=0; while [ \$i -lt 300 ]; do echo out-\$1-\$i; printf 'err-%s ' \$1 >&2; echo line-\$i >&2; i=\$((i+1)); done\",\"sh\",\"$k\"]}"
    k=$((k + 1))
  done
} >"$CASE_DIR/requests"
local_on_requests 60
expect_rc 0
own=$(jq -r 'select(.id >= 10) | (.id - 10) as $k |
  .result.outputProperties.stdout == ([range(300) | "out-\($k)-\(.)"] |
  join("\n") + "\n")' "$OUT" | sort | uniq -c | tr -s ' ')
[ "$own" = " 12 true" ] || fail "stdout mixed up or missing: $own"
torn=$(grep -v -c -E '^err-[0-9]+ line-[0-9]+$' "$ERR")
[ "$torn" = 0 ] ||
  fail "$torn stderr lines are not whole: $(grep -v -E '^err-[0-9]+ line-[0-9]+$' "$ERR" | head -n 3 | tr '\n' '|')"
[ "$(wc -l <"$ERR")" = 3600 ] || fail "stderr has $(wc -l <"$ERR") lines, want 3600"
end

begin "exec: \$/cancelRequest stops one program and leaves the other running one alone"
start=$(now_ms)
{
  echo "$INIT"
  create_request 2 exec '{"executable":"sh","args":["-c","sleep 1; echo finished"]}'
  create_request 3 exec '{"executable":"sleep","args":["30"]}'
  sleep 0.3
  echo '{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}'
} | (cd "$CASE_DIR" && TETHER_TEST_MARK=$MARK timeout -k 2 20 "$LOCAL") \
  >"$OUT" 2>"$ERR"
RC=$?
ELAPSED_MS=$(($(now_ms) - start))
expect_rc 0
expect_out '"id":3,"error":{"code":-32800'
expect_out '"id":2,"result":{"outputProperties":{"stdout":"finished\n"}}'
expect_within 10
end

begin "exit while programs run and files are written: the provider ends, nothing is left running"
start=$(now_ms)
{
  echo "$INIT"
  k=0
  while [ $k -lt 4 ]; do
    create_request $((10 + k)) exec '{"executable":"sleep","args":["30"]}'
    k=$((k + 1))
  done
  k=0
  while [ $k -lt 20 ]; do
    create_request $((20 + k)) file "{\"name\":\"x$k.txt\",\"contents\":\"x\"}"
    k=$((k + 1))
  done
  sleep 0.5
  echo '{"jsonrpc":"2.0","method":"exit"}'
} | (cd "$CASE_DIR" && TETHER_TEST_MARK=$MARK timeout -k 2 20 "$LOCAL") \
  >"$OUT" 2>"$ERR"
RC=$?
ELAPSED_MS=$(($(now_ms) - start))
# exit without shutdown is an unclean end.
expect_rc 1
[ "$ELAPSED_MS" -lt 5000 ] || fail "took ${ELAPSED_MS}ms to end after exit"
! grep -q '"id":1[0-3],' "$OUT" || fail "a program was answered after exit"
end

finish
