#!/bin/sh
# Interrupting an apply: the first Ctrl-C (SIGINT) cancels what is in
# flight, records the answers and exits 1; SIGTERM does the same; a second
# Ctrl-C stops every provider and exits at once; kill -9 of the host
# mid-apply loses nothing acknowledged, and the next apply converges.
# Nothing is left running after any of them (lib.sh checks every case).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/engine_lib.inc"
require_binaries "$TETHER" "$LOCAL" "$MISBEHAVE"

# A slow misbehave resource "t" (provider args: SPEC words) with a file
# "after" that depends on it and an independent file "other".
slow_thing() { # SPEC
  _args=
  for _w in $1 @MARK@; do _args="$_args\"$_w\", "; done
  deploy <<EOF
{ "state": "state",
  "providers": {"local": {"executable": "tether-local"},
                "mb": {"executable": "@MB@", "args": [${_args%, }]}},
  "resources": { $STATE_RES,
    "t": {"provider": "mb", "type": "thing", "inputs": {"x": "1"}},
    "after": {"provider": "local", "type": "file",
              "inputs": {"name": "after.txt", "contents": "\${t.outputs.x}"}}
  }
}
EOF
}

# Waits for the background apply to be inside t's create.
wait_busy() {
  wait_for_file "$CASE_DIR/busy" 10 ||
    fail "the apply never reached its provider: $(squash "$CASE_DIR/bg.err")"
}

begin "the first Ctrl-C cancels the operation in flight, records it and exits 1"
slow_thing "good delay=8000 touch=@DIR@/busy"
tf_bg apply
wait_busy
kill -INT "$BG"
wait_job "$BG" 5 "$BG_START"
expect_rc 1
ERR=$CASE_DIR/bg.err OUT=$CASE_DIR/bg.out
expect_err "interrupted by SIGINT: cancelling 1 operation in flight"
expect_stdout "t: failed: create was cancelled"
expect_stdout "Apply interrupted"
expect_stdout "1 not run"
# The provider answered the cancel: nothing was created, and the intent
# was taken back.
expect_record t absent
tf 30 state history
expect_stdout "revert    remove /resources/t"
slow_thing "good"
tf 30 apply
expect_rc 0
expect_file after.txt "1"
end

begin "SIGTERM stops the apply the way the first Ctrl-C does"
slow_thing "good delay=8000 touch=@DIR@/busy"
tf_bg apply
wait_busy
kill -TERM "$BG"
wait_job "$BG" 5 "$BG_START"
expect_rc 1
ERR=$CASE_DIR/bg.err
expect_err "interrupted by SIGTERM"
expect_record t absent
end

begin "a second Ctrl-C stops every provider and exits at once"
# slow ignores cancels: only the second Ctrl-C ends the wait.
slow_thing "slow delay=30000 touch=@DIR@/busy"
tf_bg apply
wait_busy
kill -INT "$BG"
sleep 0.5
running "$BG" || fail "tether ended on the first Ctrl-C although t had not answered"
kill -INT "$BG"
wait_job "$BG" 3 "$BG_START"
expect_rc 1
ERR=$CASE_DIR/bg.err
expect_err "SIGINT again: stopping every provider now"
# The intent stays on record: the next apply resumes t's create.
expect_record t creating
slow_thing "good"
tf 30 plan
expect_stdout "resuming an interrupted create"
tf 30 apply
expect_rc 0
expect_file after.txt "1"
end

begin "kill -9 of the host mid-apply loses nothing acknowledged; the next apply converges"
N=400
{
  printf '{ %s\n  "resources": { %s' "$LOCAL_HEAD" "$STATE_RES"
  i=0
  while [ $i -lt $N ]; do
    printf ',\n "f%d": {"provider": "local", "type": "file", "inputs": {"name": "f%d.txt", "contents": "%d"}}' $i $i $i
    i=$((i + 1))
  done
  printf '}}\n'
} | deploy
DEPLOY=$CASE_DIR/tether.json
tf_bg apply --parallelism 8
# Killed once a good part of the events is on record.
events() {
  if [ -f "$CASE_DIR/tether-state.json" ]; then
    wc -l <"$CASE_DIR/tether-state.json"
  else
    echo 0
  fi
}
n=0
while [ "$(events)" -lt 120 ]; do
  n=$((n + 1))
  [ $n -gt 500 ] && break
  sleep 0.01
done
kill -KILL "$BG"
wait "$BG" 2>/dev/null
# The providers see their stdin close and end on their own.
n=0
while [ -n "$(marked_pids)" ] && [ $n -lt 50 ]; do
  n=$((n + 1))
  sleep 0.1
done
tf 30 state list
expect_rc 0
created=$(awk '$4 == "created"' "$OUT" | wc -l)
[ "$created" -gt 0 ] && [ "$created" -lt $N ] ||
  fail "the kill did not land mid-apply: $created of $N created"
# Every resource recorded as created exists as recorded.
for f in $(awk '$4 == "created" { print $1 }' "$OUT"); do
  [ "$(cat "$CASE_DIR/$f.txt" 2>/dev/null)" = "${f#f}" ] ||
    { fail "$f is recorded as created but $f.txt does not hold ${f#f}"; break; }
done
tf 60 apply --json
expect_rc 0
last=$(tail -n 1 "$OUT")
case $last in
  *'"failed":0}') ;;
  *) fail "the rerun did not finish cleanly: $last" ;;
esac
tf 30 apply
expect_stdout "No changes. $N resources unchanged."
missing=0
i=0
while [ $i -lt $N ]; do
  [ "$(cat "$CASE_DIR/f$i.txt" 2>/dev/null)" = "$i" ] || missing=$((missing + 1))
  i=$((i + 1))
done
[ $missing -eq 0 ] || fail "$missing files missing or wrong after the rerun"
end

finish
