#!/bin/sh
# tether-local's state_file as a state store: the NixOps4 format read in
# every layout NixOps4 writes it, compact appends, torn tails, damage,
# expectIndex, patches that do not apply, the one-holder lock, and kill -9
# at random points of a stream of events, repeatedly, with every
# acknowledged event checked afterwards.
. "$(dirname "$0")/lib.sh"
LOCAL=$TETHER_BIN/tether-local
require_binaries "$TETHER" "$LOCAL"
REF=$(pwd)/../shared/reference/nixops4

# ---- Helpers ----

# tether run OP on the state file NAME, in the case's directory.
state_run() { # OP NAME ARGS...
  op=$1 name=$2
  shift 2
  here=$(pwd)
  cd "$CASE_DIR" || return
  tt 30 run "$op" --provider-exe "$LOCAL" --type state_file \
    --inputs-json "{\"name\":\"$name\"}" --outputs-json '{}' "$@"
  cd "$here" || exit 1
}

state_read() { state_run state-read "$1"; }

# Appends through tether run: a state event with PATCH on NAME.
state_event() { # NAME PATCH [EVENT]
  state_run state-event "$1" --event "${3:-create}" --host-version e2e \
    --patch-json "$2"
}

# A random number in [0, N).
random_below() { # N
  echo $(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1))
}

# The direct driver: tether-local on two FIFOs in the case's directory, fd
# 3 its stdin and fd 4 its stdout, for what tether run cannot send
# (expectIndex, many requests in flight) and for holding a store open.
lp_start() {
  rm -f "$CASE_DIR/lp.in" "$CASE_DIR/lp.out"
  mkfifo "$CASE_DIR/lp.in" "$CASE_DIR/lp.out"
  (cd "$CASE_DIR" && TETHER_TEST_MARK=$MARK exec "$LOCAL") \
    <"$CASE_DIR/lp.in" >"$CASE_DIR/lp.out" 2>>"$CASE_DIR/lp.err" &
  LPID=$!
  exec 3>"$CASE_DIR/lp.in" 4<"$CASE_DIR/lp.out"
  LPN=0
  lp_send initialize '{"protocolVersion":1,"host":{"name":"e2e","version":"0"}}'
  lp_recv
}

lp_send() { # METHOD PARAMS
  LPN=$((LPN + 1))
  printf '{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}\n' \
    "$LPN" "$1" "$2" >&3
}

# Reads one reply into LPREPLY (empty at EOF).
lp_recv() {
  LPREPLY=
  IFS= read -r LPREPLY <&4 || LPREPLY=
}

lp_stop() {
  exec 3>&-
  wait "$LPID" 2>/dev/null
  exec 4<&-
}

lp_kill() {
  kill -KILL "$LPID" 2>/dev/null
  exec 3>&-
  wait "$LPID" 2>/dev/null
  exec 4<&-
}

# Params of a state_event on NAME; EXTRA is more members, such as
# expectIndex.
event_params() { # NAME PATCH [EXTRA]
  printf '{"resource":{"type":"state_file","inputProperties":{"name":"%s"},"outputProperties":{}},"event":"create","hostVersion":"e2e","patch":%s%s}' \
    "$1" "$2" "${3:+,$3}"
}

read_params() { # NAME
  printf '{"resource":{"type":"state_file","inputProperties":{"name":"%s"},"outputProperties":{}}}' "$1"
}

# The resource names recorded in the state tether run printed, sorted.
names_in_out() {
  compact "$OUT" | grep -o '"e[0-9]*":{"n":' | sed 's/"\(e[0-9]*\)".*/\1/' |
    sort
}

# ---- The NixOps4 format ----

begin "the documented state file resolves to the documented state"
cp "$REF/state-file.json" "$CASE_DIR/doc.json"
state_read doc.json
expect_rc 0
expect_out "$(compact "$REF/resolved-state.json")"
expect_out '"index":1'
cmp -s "$REF/state-file.json" "$CASE_DIR/doc.json" ||
  fail "reading changed the file"
end

begin "appending to the documented file (no final newline) keeps it readable"
cp "$REF/state-file.json" "$CASE_DIR/doc.json"
state_event doc.json '[{"op":"add","path":"/resources/two","value":{"type":"memo","inputProperties":{},"outputProperties":{"value":2}}}]'
expect_rc 0
expect_out '"index":2'
# The old bytes stay as they were; the event is one compact line after.
head -c "$(wc -c <"$REF/state-file.json")" "$CASE_DIR/doc.json" |
  cmp -s - "$REF/state-file.json" || fail "the existing events were rewritten"
last=$(tail -n 1 "$CASE_DIR/doc.json")
case $last in
  '{"index":2,"meta":{"time":"'*'","event":"create","hostVersion":"e2e"},"patch":[{"op":"add","path":"/resources/two",'*) ;;
  *) fail "the appended line is not a compact event: $last" ;;
esac
[ "$(tail -c 1 "$CASE_DIR/doc.json" | od -An -c | tr -d ' ')" = '\n' ] ||
  fail "the appended event does not end with a newline"
state_read doc.json
expect_out '"myfile":{'
expect_out '"two":{'
expect_out '"index":2'
end

begin "a file NixOps4 wrote (pretty, appended events stamped 0) reads"
cat >"$CASE_DIR/nixops.json" <<'EOF'
{
  "index": 0,
  "meta": {
    "time": "2025-03-04T07:40:00.000000000+00:00"
  },
  "patch": [
    {
      "op": "add",
      "path": "",
      "value": {
        "_type": "nixopsState",
        "deployments": {},
        "resources": {}
      }
    }
  ]
}
{
  "index": 0,
  "meta": {
    "time": "2025-03-04T07:41:00.000000000+00:00",
    "event": "create"
  },
  "patch": [
    {
      "op": "add",
      "path": "/resources/a",
      "value": {
        "type": "file",
        "inputProperties": {
          "name": "a.txt",
          "contents": "Hi there"
        },
        "outputProperties": {}
      }
    }
  ]
}
{
  "index": 0,
  "meta": {
    "time": "2025-03-04T07:42:00.000000000+00:00",
    "event": "update"
  },
  "patch": [
    {
      "op": "replace",
      "path": "/resources/a/inputProperties/contents",
      "value": "Bye"
    }
  ]
}
EOF
cp "$CASE_DIR/nixops.json" "$CASE_DIR/nixops.orig"
state_read nixops.json
expect_rc 0
expect_out '"a":{"type":"file","inputProperties":{"name":"a.txt","contents":"Bye"},"outputProperties":{}}'
expect_out '"index":2'
state_event nixops.json '[{"op":"remove","path":"/resources/a"}]' destroy
expect_rc 0
expect_out '"index":3'
head -c "$(wc -c <"$CASE_DIR/nixops.orig")" "$CASE_DIR/nixops.json" |
  cmp -s - "$CASE_DIR/nixops.orig" || fail "the NixOps4 events were rewritten"
state_read nixops.json
expect_out '"resources":{}'
expect_out '"index":3'
end

begin "what tether appends reads as NixOps4 reads it: a stream of events"
if command -v jq >/dev/null 2>&1; then
  tt 30 run create --provider-exe "$LOCAL" --type state_file \
    --input-str name "$CASE_DIR/stream.json"
  for i in 1 2 3; do
    state_event stream.json "[{\"op\":\"add\",\"path\":\"/resources/r$i\",\"value\":{\"text\":\"line\\nbreak \\\"quoted\\\" \\u00e9\"}}]"
  done
  # jq reads a sequence of JSON texts the way serde's stream reader in
  # NixOps4 does; each must be an event with the fields NixOps4 requires.
  got=$(jq -c -s 'map([.index, (.meta.time | type), (.patch | type)])' \
    "$CASE_DIR/stream.json" 2>&1)
  want='[[0,"string","array"],[1,"string","array"],[2,"string","array"],[3,"string","array"]]'
  [ "$got" = "$want" ] || fail "jq reads $got, want $want"
  got=$(jq -r -s '.[3].patch[0].value.text' "$CASE_DIR/stream.json")
  [ "$got" = "$(printf 'line\nbreak "quoted" \303\251')" ] ||
    fail "a string came back as $got"
  end
else
  fail "jq is not installed (make test installs it)"
  end
fi

begin "events in any whitespace layout, several on a line"
printf '%s' '  {"index":0,"meta":{"time":"t"},"patch":[{"op":"add","path":"","value":{"_type":"nixopsState","resources":{},"deployments":{}}}]} {"index":1,"meta":{"time":"t"},"patch":[{"op":"add","path":"/resources/x","value":1}]}
	{"index":2,
"meta":{"time":"t"},"patch":[{"op":"add","path":"/resources/y","value":2}]}

' >"$CASE_DIR/layout.json"
state_read layout.json
expect_rc 0
expect_out '"resources":{"x":1,"y":2}'
expect_out '"index":2'
end

begin "a new state file: mode 0600, event 0, one line"
tt 30 run create --provider-exe "$LOCAL" --type state_file \
  --input-str name "$CASE_DIR/fresh.json"
expect_rc 0
[ "$(stat -c %a "$CASE_DIR/fresh.json")" = 600 ] ||
  fail "mode is $(stat -c %a "$CASE_DIR/fresh.json"), not 600"
[ "$(wc -l <"$CASE_DIR/fresh.json")" = 1 ] || fail "event 0 is not one line"
grep -q '^{"index":0,"meta":{"time":"[0-9T:.-]*Z"},"patch":\[{"op":"add","path":"","value":{"_type":"nixopsState","resources":{},"deployments":{}}}\]}$' \
  "$CASE_DIR/fresh.json" || fail "event 0 is $(squash "$CASE_DIR/fresh.json")"
ls -A "$CASE_DIR" | grep -q tether- && fail "a temporary file was left behind"
end

# ---- Torn tails and damage ----

# A file of 5 events for the cases below.
make_five() { # FILE
  {
    echo '{"index":0,"meta":{"time":"t"},"patch":[{"op":"add","path":"","value":{"_type":"nixopsState","resources":{},"deployments":{}}}]}'
    for i in 1 2 3 4; do
      echo "{\"index\":$i,\"meta\":{\"time\":\"t\",\"event\":\"create\"},\"patch\":[{\"op\":\"add\",\"path\":\"/resources/e$i\",\"value\":{\"n\":$i}}]}"
    done
  } >"$1"
}

begin "a torn last event is ignored with a warning, then cut off"
make_five "$CASE_DIR/s.json"
printf '{"index":5,"meta":{"time":"t"},"patch":[{"op":"add","path":"/resour' \
  >>"$CASE_DIR/s.json"
cp "$CASE_DIR/s.json" "$CASE_DIR/s.torn"
state_read s.json
expect_rc 0
expect_out '"index":4'
expect_out '"e4":{"n":4}'
expect_err 'incomplete last event at line 6'
cmp -s "$CASE_DIR/s.json" "$CASE_DIR/s.torn" ||
  fail "reading changed the file"
state_event s.json '[{"op":"add","path":"/resources/e5","value":{"n":5}}]'
expect_rc 0
expect_out '"index":5'
[ "$(wc -l <"$CASE_DIR/s.json")" = 6 ] || fail "the file has not 6 lines"
grep -q 'resour$' "$CASE_DIR/s.json" && fail "the torn tail is still there"
state_read s.json
expect_rc 0
expect_no_err 'incomplete' "that the file is still torn"
expect_out '"e5":{"n":5}'
end

begin "a torn tail of zero bytes (a crash's unwritten blocks) is ignored"
make_five "$CASE_DIR/s.json"
head -c 300 /dev/zero >>"$CASE_DIR/s.json"
state_read s.json
expect_rc 0
expect_out '"index":4'
expect_err 'incomplete last event'
state_event s.json '[{"op":"add","path":"/resources/e5","value":{"n":5}}]'
expect_rc 0
[ "$(tr -d '\000' <"$CASE_DIR/s.json" | wc -c)" = "$(wc -c <"$CASE_DIR/s.json")" ] ||
  fail "the zero bytes are still there"
end

begin "cut at every byte of its last event, a file never reads as damaged"
make_five "$CASE_DIR/full.json"
full=$(wc -c <"$CASE_DIR/full.json")
four=$((full - $(tail -n 1 "$CASE_DIR/full.json" | wc -c)))
cut=$four
bad=
while [ $cut -lt "$full" ]; do
  head -c $cut "$CASE_DIR/full.json" >"$CASE_DIR/cut.json"
  state_read cut.json
  [ "$RC" = 0 ] || bad="$bad $cut(rc $RC)"
  case $(compact "$OUT") in
    *'"index":3'*) ;;
    *) [ $cut -eq $((full - 1)) ] || bad="$bad $cut" ;;
  esac
  cut=$((cut + 7))
done
[ -z "$bad" ] || fail "wrong at cut offsets:$bad"
end

begin "damage before the last event: -32022 with line and offset, file untouched"
make_five "$CASE_DIR/s.json"
# Line 3 loses its closing bracket: a bracket counter would read on.
sed -i '3s/}]}$/}]/' "$CASE_DIR/s.json"
cp "$CASE_DIR/s.json" "$CASE_DIR/s.orig"
off=$(head -n 3 "$CASE_DIR/s.json" | wc -c)
state_read s.json
expect_rc 1
expect_out_empty
expect_err '-32022'
expect_err 'line 4'
expect_err "offset $off"
expect_err 's.json'
state_event s.json '[{"op":"add","path":"/resources/x","value":1}]'
expect_rc 1
expect_err '-32022'
cmp -s "$CASE_DIR/s.json" "$CASE_DIR/s.orig" || fail "the damaged file was changed"
end

begin "a lost quote in the middle is damage, not a torn tail"
make_five "$CASE_DIR/s.json"
sed -i '2s/"time":"t"/"time":"t/' "$CASE_DIR/s.json"
state_read s.json
expect_rc 1
expect_err '-32022'
expect_err 'line 2'
end

begin "an event out of order is damage"
make_five "$CASE_DIR/s.json"
sed -i '4s/"index":3/"index":7/' "$CASE_DIR/s.json"
state_read s.json
expect_rc 1
expect_err '-32022'
expect_err 'line 4'
expect_err 'index 7'
end

begin "an event whose patch does not apply is damage"
make_five "$CASE_DIR/s.json"
sed -i '3s|"add","path":"/resources/e2"|"remove","path":"/resources/nothing"|' \
  "$CASE_DIR/s.json"
state_read s.json
expect_rc 1
expect_err '-32022'
expect_err 'line 3'
end

begin "an empty file is damage, not an empty store"
: >"$CASE_DIR/empty.json"
state_read empty.json
expect_rc 1
expect_err '-32022'
state_run create empty.json
expect_rc 1
expect_err '-32022'
[ ! -s "$CASE_DIR/empty.json" ] || fail "the empty file was written"
end

begin "a missing state file is not found (-32030)"
state_read nothing.json
expect_rc 1
expect_err '-32030'
expect_err 'nothing.json'
[ ! -e "$CASE_DIR/nothing.json" ] || fail "state_read created the file"
end

# ---- Appending ----

begin "a patch that does not apply writes nothing (-32602 with op)"
make_five "$CASE_DIR/s.json"
cp "$CASE_DIR/s.json" "$CASE_DIR/s.orig"
state_event s.json '[{"op":"add","path":"/resources/ok","value":1},{"op":"replace","path":"/resources/missing/x","value":2}]'
expect_rc 1
expect_err '-32602'
expect_err '"op": ?1'
cmp -s "$CASE_DIR/s.json" "$CASE_DIR/s.orig" || fail "something was written"
state_read s.json
expect_rc 0
case $(compact "$OUT") in *'"ok":'*) fail "half of the patch was kept" ;; esac
end

begin "a patch that would break the state's shape writes nothing"
make_five "$CASE_DIR/s.json"
cp "$CASE_DIR/s.json" "$CASE_DIR/s.orig"
state_event s.json '[{"op":"remove","path":"/resources"}]'
expect_rc 1
expect_err '-32602'
cmp -s "$CASE_DIR/s.json" "$CASE_DIR/s.orig" || fail "something was written"
end

begin "expectIndex: equal appends, different is -32021 and writes nothing"
make_five "$CASE_DIR/s.json"
lp_start
lp_send state_event "$(event_params s.json '[{"op":"add","path":"/resources/a","value":1}]' '"expectIndex":4')"
lp_recv
case $LPREPLY in *'"result":{"index":5}'*) ;; *) fail "expectIndex 4: $LPREPLY" ;; esac
size=$(wc -c <"$CASE_DIR/s.json")
lp_send state_event "$(event_params s.json '[{"op":"add","path":"/resources/b","value":2}]' '"expectIndex":4')"
lp_recv
case $LPREPLY in
  *'"code":-32021'*'"expected":4'*'"actual":5'* | *'"code":-32021'*'"actual":5'*'"expected":4'*) ;;
  *) fail "a stale expectIndex got: $LPREPLY" ;;
esac
[ "$(wc -c <"$CASE_DIR/s.json")" = "$size" ] || fail "the conflict wrote"
lp_send state_read "$(read_params s.json)"
lp_recv
case $LPREPLY in *'"index":5'*) ;; *) fail "state_read: $LPREPLY" ;; esac
lp_stop
end

begin "a NixOps4 host's nixopsVersion is taken in place of hostVersion"
make_five "$CASE_DIR/s.json"
lp_start
lp_send state_event '{"resource":{"type":"state_file","inputProperties":{"name":"s.json"},"outputProperties":{}},"event":"create","nixopsVersion":"4.0.0","patch":[]}'
lp_recv
case $LPREPLY in *'"result":{"index":5}'*) ;; *) fail "got: $LPREPLY" ;; esac
lp_stop
tail -n 1 "$CASE_DIR/s.json" | grep -q '"hostVersion":"4.0.0"' ||
  fail "the version was not recorded: $(tail -n 1 "$CASE_DIR/s.json")"
end

begin "pipelined events are answered in order with rising indexes"
make_five "$CASE_DIR/s.json"
lp_start
i=0
while [ $i -lt 50 ]; do
  i=$((i + 1))
  lp_send state_event "$(event_params s.json "[{\"op\":\"add\",\"path\":\"/resources/p$i\",\"value\":$i}]")"
done
i=0
while [ $i -lt 50 ]; do
  i=$((i + 1))
  lp_recv
  case $LPREPLY in
    *"\"id\":$((i + 1)),"*"\"index\":$((i + 4))}"* | *"\"index\":$((i + 4))}"*"\"id\":$((i + 1))"*) ;;
    *) fail "reply $i: $LPREPLY"; break ;;
  esac
done
lp_stop
[ "$(wc -l <"$CASE_DIR/s.json")" = 55 ] || fail "the file has not 55 events"
end

# ---- One holder at a time ----

begin "a second process gets -32020 naming the holder; the hold ends with it"
make_five "$CASE_DIR/s.json"
lp_start
lp_send state_read "$(read_params s.json)"
lp_recv
case $LPREPLY in *'"index":4'*) ;; *) fail "holder's state_read: $LPREPLY" ;; esac
state_read s.json
expect_rc 1
expect_err '-32020'
expect_err "pid $LPID \\(tether-local\\)"
expect_err 'since.?.?.?[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z'
state_event s.json '[{"op":"add","path":"/resources/x","value":1}]'
expect_rc 1
expect_err '-32020'
lp_kill
state_read s.json
expect_rc 0
expect_out '"index":4'
end

begin "the hold ends when the holder exits"
make_five "$CASE_DIR/s.json"
lp_start
lp_send state_event "$(event_params s.json '[{"op":"add","path":"/resources/a","value":1}]')"
lp_recv
state_read s.json
expect_rc 1
expect_err '-32020'
lp_stop
state_read s.json
expect_rc 0
expect_out '"index":5'
[ ! -e "$CASE_DIR/s.json.lock" ] || fail "the holder record outlived a clean exit"
end

# ---- kill -9 at random points ----

# Round after round, a stream of events goes to one state file and
# tether-local is killed with SIGKILL at a random moment. An event counts
# as acknowledged when its answer carried an index. Afterwards every
# acknowledged event must be in the state, and the file must never read as
# damaged.

begin "kill -9 at random points of pipelined event streams loses nothing acknowledged"
state_run create crash.json
: >"$CASE_DIR/acked"
trap '' PIPE
n=0
round=0
while [ $round -lt 15 ]; do
  round=$((round + 1))
  lp_start
  (sleep "0.$(random_below 4)$(random_below 10)"; kill -KILL "$LPID") 2>/dev/null &
  killer=$!
  # Up to 8 events in flight: send 8, then one more per answer.
  sent=0
  while [ $sent -lt 8 ]; do
    sent=$((sent + 1))
    lp_send state_event "$(event_params crash.json "[{\"op\":\"add\",\"path\":\"/resources/e$((n + sent))\",\"value\":{\"n\":$((n + sent))}}]")" 2>/dev/null
  done
  while lp_recv && [ -n "$LPREPLY" ]; do
    id=$(echo "$LPREPLY" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
    case $LPREPLY in
      *'"result":{"index":'*) echo "e$((n + id - 1))" >>"$CASE_DIR/acked" ;;
      *) fail "round $round: $LPREPLY"; break ;;
    esac
    sent=$((sent + 1))
    lp_send state_event "$(event_params crash.json "[{\"op\":\"add\",\"path\":\"/resources/e$((n + sent))\",\"value\":{\"n\":$((n + sent))}}]")" 2>/dev/null
  done
  wait "$killer" 2>/dev/null
  lp_kill
  n=$((n + sent + 1))
done
trap - PIPE
state_read crash.json
expect_rc 0
names_in_out >"$CASE_DIR/present"
sort "$CASE_DIR/acked" >"$CASE_DIR/acked.sorted"
lost=$(comm -23 "$CASE_DIR/acked.sorted" "$CASE_DIR/present" | head -n 5 | tr '\n' ' ')
[ -z "$lost" ] || fail "acknowledged events lost: $lost"
[ "$(wc -l <"$CASE_DIR/acked")" -gt 50 ] ||
  fail "too few events acknowledged ($(wc -l <"$CASE_DIR/acked")) to mean anything"
echo "# $(wc -l <"$CASE_DIR/acked") acknowledged, $(wc -l <"$CASE_DIR/present") present"
end

begin "kill -9 at random points of tether run state-event loses nothing acknowledged"
state_run create crash.json
: >"$CASE_DIR/acked"
(
  cd "$CASE_DIR" || exit 1
  i=0
  while [ ! -e stop ]; do
    i=$((i + 1))
    if out=$(TETHER_TEST_MARK=$MARK timeout -k 2 20 "$TETHER" run state-event \
      --provider-exe "$LOCAL" --type state_file \
      --inputs-json '{"name":"crash.json"}' --outputs-json '{}' \
      --event create --host-version e2e \
      --patch-json "[{\"op\":\"add\",\"path\":\"/resources/e$i\",\"value\":{\"n\":$i}}]" \
      2>>run.err); then
      case $out in *'"index":'*) echo "e$i" >>acked ;; esac
    fi
  done
) &
loop=$!
kills=0
tries=0
while [ $kills -lt 25 ] && [ $tries -lt 300 ]; do
  tries=$((tries + 1))
  sleep "0.$(random_below 3)$(random_below 10)"
  # The provider that holds the file right now, if one does: its holder
  # record names it.
  pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$CASE_DIR/crash.json.lock" 2>/dev/null)
  if [ -n "$pid" ] && grep -q -a "$LOCAL" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
  fi
done
[ $kills -ge 10 ] || fail "only $kills providers could be killed"
touch "$CASE_DIR/stop"
wait "$loop"
state_read crash.json
expect_rc 0
expect_no_err 'damaged' "that the file is damaged"
names_in_out >"$CASE_DIR/present"
sort "$CASE_DIR/acked" >"$CASE_DIR/acked.sorted"
lost=$(comm -23 "$CASE_DIR/acked.sorted" "$CASE_DIR/present" | head -n 5 | tr '\n' ' ')
[ -z "$lost" ] || fail "acknowledged events lost: $lost"
echo "# $kills kills, $(wc -l <"$CASE_DIR/acked") acknowledged, $(wc -l <"$CASE_DIR/present") present"
end

finish
