#!/bin/sh
# `tether run` against the misbehave provider (tests/helpers/misbehave.c):
# the six operations in both framings, the load-test mode, usage errors,
# and every way a provider can fail. For each failure: the exit status, a
# message a user can act on, a bounded time, and (checked by lib.sh after
# every case) nothing left running.
. "$(dirname "$0")/lib.sh"
require_binaries "$TETHER" "$MISBEHAVE"

# What the host's reports must say, tolerant about the wording around it.
RE_TIMED_OUT='timed? ?out|timeout'
RE_START='initiali[sz]|start'

# Reads KEY from the stats file misbehave writes at exit.
stat_of() { # FILE KEY
  sed -n "s/.*$2=\([^ ]*\).*/\1/p" "$1" 2>/dev/null
}

# ---- The six operations against a correct provider ----

stats() { echo "good stats=$CASE_DIR/stats"; }
expect_framing() { # FRAMING
  got=$(stat_of "$CASE_DIR/stats" framing)
  [ "$got" = "$1" ] ||
    fail "the provider was spoken to in ${got:-nothing}, not $1"
}

for framing in ndjson content-length; do

  begin "create ($framing)"
  run_mb 10 create "$(stats)" --framing "$framing" --type thing \
    --input-str name web --input-json port 8080 \
    --input-json tags '["a","b"]'
  expect_rc 0
  expect_out '"name":"web"'
  expect_out '"port":8080'
  expect_out '"tags":["a","b"]'
  expect_framing "$framing"
  expect_within 5
  end

  begin "create with --inputs-json ($framing)"
  run_mb 10 create "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"nested":{"deep":[1,2,{"x":null}]},"flag":true}'
  expect_rc 0
  expect_out '"nested":{"deep":[1,2,{"x":null}]}'
  expect_out '"flag":true'
  expect_framing "$framing"
  end

  begin "update ($framing)"
  run_mb 10 update "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"size":"large"}' \
    --previous-inputs-json '{"size":"small"}' \
    --previous-outputs-json '{"size":"small"}'
  expect_rc 0
  expect_out '"size":"large"'
  expect_framing "$framing"
  expect_within 5
  end

  begin "delete ($framing)"
  run_mb 10 delete "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"size":"small"}' --outputs-json '{"size":"small"}'
  expect_rc 0
  expect_no_err 'error' "an error"
  expect_framing "$framing"
  expect_within 5
  end

  begin "read ($framing)"
  run_mb 10 read "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"size":"small"}' --outputs-json '{"id":"i-123"}'
  expect_rc 0
  expect_out '"exists":true'
  expect_out '"id":"i-123"'
  expect_framing "$framing"
  expect_within 5
  end

  begin "state-read ($framing)"
  run_mb 10 state-read "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"name":"s.json"}'
  expect_rc 0
  expect_out '"_type":"nixopsState"'
  expect_out '"index":0'
  expect_framing "$framing"
  expect_within 5
  end

  begin "state-event ($framing)"
  run_mb 10 state-event "$(stats)" --framing "$framing" --type thing \
    --inputs-json '{"name":"s.json"}' --event create --host-version 0.1.0 \
    --patch-json '[{"op":"add","path":"/resources/web","value":{}}]'
  expect_rc 0
  expect_out '"index":1'
  expect_framing "$framing"
  expect_within 5
  end
done

# SPEC section 1: argv without a shell, TETHER_PROVIDER and TETHER_PROTOCOL
# in the environment, a process group of its own, and the stop sequence
# (shutdown, then exit) when all went well.
begin "spawned and stopped as the SPEC says"
run_mb 10 create "good stats=$CASE_DIR/stats note=\$(touch\${IFS}$CASE_DIR/shell)" \
  --type thing --input-str a b
expect_rc 0
expect_out '"a":"b"'
for kv in stop=exit host=tether env=1 own_group=1; do
  got=$(stat_of "$CASE_DIR/stats" "${kv%%=*}")
  [ "$got" = "${kv#*=}" ] ||
    fail "the provider saw ${kv%%=*}=${got:-nothing}, want $kv"
done
[ ! -e "$CASE_DIR/shell" ] || fail "the provider's argv went through a shell"
end

begin "--nixops-version is another name for --host-version"
run_mb 10 state-event good --type thing --inputs-json '{"name":"s.json"}' \
  --event create --nixops-version 0.1.0 --patch-json '[]'
expect_rc 0
expect_out '"index":1'
end

begin "a provider's error is shown, exit 1"
run_mb 10 create fail --type thing --input-str a b
expect_rc 1
expect_err 'quota of things exceeded' "the provider's message"
expect_err 'create' "the operation"
expect_within 5
end

begin "an unknown resource type is the provider's error, exit 1"
run_mb 10 create good --type gizmo --input-str a b
expect_rc 1
expect_err 'gizmo' "the type"
expect_within 5
end

begin "a slow answer within --timeout succeeds"
run_mb 10 create "slow delay=500" --timeout 5 --type thing --input-str a b
expect_rc 0
expect_out '"a":"b"'
end

# ---- The load test: --repeat and --pipeline ----

RE_SUMMARY='^requests=[0-9]+ seconds=[0-9]+(\.[0-9]+)? p50_us=[0-9]+ p99_us=[0-9]+ per_s=[0-9]+(\.[0-9]+)?$'

# Checks the summary line: last on stderr, the right count, p50 <= p99.
expect_summary() { # REQUESTS
  last=$(tail -n 1 "$ERR")
  if ! printf '%s\n' "$last" | grep -q -E "$RE_SUMMARY"; then
    fail "last stderr line is not the summary: $last"
    return
  fi
  n=$(printf '%s\n' "$last" | sed 's/^requests=\([0-9]*\) .*/\1/')
  p50=$(printf '%s\n' "$last" | sed 's/.* p50_us=\([0-9]*\) .*/\1/')
  p99=$(printf '%s\n' "$last" | sed 's/.* p99_us=\([0-9]*\) .*/\1/')
  [ "$n" -eq "$1" ] || fail "summary says requests=$n, want $1"
  [ "$p50" -le "$p99" ] || fail "summary has p50 $p50 above p99 $p99"
  got=$(stat_of "$CASE_DIR/stats" requests)
  [ "$got" = "$1" ] || fail "the provider got ${got:-no} requests, want $1"
}

begin "--repeat 50 prints the summary line last"
run_mb 20 create "good stats=$CASE_DIR/stats" --type thing --input-str a b \
  --repeat 50
expect_rc 0
expect_summary 50
end

begin "--repeat in content-length framing"
run_mb 20 read "good stats=$CASE_DIR/stats" --type thing \
  --framing content-length --inputs-json '{"a":"b"}' --repeat 20
expect_rc 0
expect_summary 20
end

# With a delay per answer, misbehave sees how many requests the host keeps
# in flight; one beyond its declared concurrency is answered with an error.
for c in "4 8 40" "8 3 24" "1 4 8"; do
  # shellcheck disable=SC2086 # three numbers, split on purpose
  set -- $c
  concurrency=$1 pipeline=$2 repeat=$3
  want=$pipeline
  [ "$concurrency" -lt "$want" ] && want=$concurrency
  begin "--pipeline $pipeline with concurrency $concurrency keeps at most $want in flight"
  run_mb 30 create \
    "good concurrency=$concurrency delay=50 stats=$CASE_DIR/stats" \
    --type thing --input-str a b --repeat "$repeat" --pipeline "$pipeline"
  expect_rc 0
  expect_summary "$repeat"
  got=$(stat_of "$CASE_DIR/stats" max_inflight)
  if [ -z "$got" ]; then
    fail "the provider wrote no statistics"
  elif [ "$got" -gt "$want" ]; then
    fail "$got requests in flight at once, more than $want"
  elif [ "$want" -gt 1 ] && [ "$got" -lt 2 ]; then
    fail "requests were not pipelined: at most $got in flight, want $want"
  fi
  end
done

# ---- Usage errors: exit 2, saying what is wrong ----

usage_case() { # NAME ERE ARGS...
  name=$1 re=$2
  shift 2
  begin "usage: $name"
  tt 10 "$@"
  expect_rc 2
  expect_err "$re"
  expect_within 5
  end
}

PROV="--provider-exe $MISBEHAVE --provider-arg good"
# shellcheck disable=SC2086 # PROV is split on purpose.
{
  usage_case "no operation" 'usage|operation' run
  usage_case "unknown operation" 'frobnicate' \
    run frobnicate $PROV --type thing
  usage_case "no --provider-exe" 'provider-exe' run create --type thing
  usage_case "no --type" 'type' run create $PROV
  usage_case "unknown flag" 'frobnicate' \
    run create $PROV --type thing --frobnicate
  usage_case "invalid --input-json" 'input-json|json' \
    run create $PROV --type thing --input-json k '{"bad":'
  usage_case "--inputs-json not an object" 'inputs-json|object' \
    run create $PROV --type thing --inputs-json '[1,2]'
  usage_case "--repeat 0" 'repeat' \
    run create $PROV --type thing --repeat 0
  usage_case "--repeat not a number" 'repeat' \
    run create $PROV --type thing --repeat lots
  usage_case "--pipeline without --repeat" 'pipeline' \
    run create $PROV --type thing --pipeline 4
  usage_case "--pipeline 0" 'pipeline' \
    run create $PROV --type thing --repeat 4 --pipeline 0
  usage_case "--framing unknown" 'framing' \
    run create $PROV --type thing --framing xml
  usage_case "--timeout not a number" 'timeout' \
    run create $PROV --type thing --timeout soon
  usage_case "flag without its value" 'input-str' \
    run create $PROV --type thing --input-str onlykey
  usage_case "unknown command" 'frobnicate' frobnicate
}

begin "a provider executable that does not exist"
tt 10 run create --provider-exe /nonexistent/tether-nothing --type thing
expect_rc 1
expect_err '/nonexistent/tether-nothing' "the path"
expect_within 5
end

# ---- Providers that die ----

begin "crash mid-request: exit status and stderr reported"
run_mb 10 create crash --type thing --input-str a b
expect_rc 1
expect_err 'create' "the operation"
expect_err '(exit|status|code)[^0-9]{0,16}3([^0-9]|$)' "exit status 3"
expect_err 'crashing on purpose' "the provider's stderr"
expect_within 5
end

# The child holds the provider's stdout open, so no EOF comes: the host has
# to notice the exit itself, and clear the child away.
begin "crash with a child holding stdout open"
run_mb 10 create "crash child=1" --type thing --input-str a b
expect_rc 1
expect_err '(exit|status|code)[^0-9]{0,16}3([^0-9]|$)' "exit status 3"
expect_within 8
end

begin "killed by SIGKILL mid-request"
run_mb 10 update sigkill --type thing --inputs-json '{"a":"b"}'
expect_rc 1
expect_err 'update' "the operation"
expect_err 'signal|killed' "a signal"
expect_err 'KILL|signal 9|killed' "which signal"
expect_within 5
end

begin "killed by SIGSEGV mid-request"
run_mb 10 delete sigsegv --type thing --inputs-json '{"a":"b"}'
expect_rc 1
expect_err 'delete' "the operation"
expect_err 'signal|segmentation' "a signal"
expect_err 'SEGV|signal 11|segmentation' "which signal"
expect_within 5
end

begin "exits during initialize with a message on stderr"
run_mb 10 create exit-init --type thing --input-str a b
expect_rc 1
expect_err "$RE_START" "that it failed to start"
expect_err '(exit|status|code)[^0-9]{0,16}4([^0-9]|$)' "exit status 4"
expect_err 'misbehave\.conf' "the end of the provider's stderr"
expect_within 5
end

begin "writes half an answer and exits 0"
run_mb 10 read partial --type thing --inputs-json '{"a":"b"}'
expect_rc 1
expect_err 'read' "the operation"
expect_err 'exit' "that the provider exited"
expect_within 5
end

begin "refuses the protocol version"
run_mb 10 create wrong-version --type thing --input-str a b
expect_rc 1
expect_err 'version' "the version"
expect_within 5
end

# ---- Providers that hang or are slow ----

# After a timeout the stop sequence may take its grace period (5 s) and the
# SIGTERM wait (2 s): bounds below allow for both.
begin "hangs mid-request: --timeout"
run_mb 20 create hang --timeout 1 --type thing --input-str a b
expect_rc 1
expect_err "$RE_TIMED_OUT" "that it timed out"
expect_err 'create' "the operation"
expect_within 10
end

begin "slow answer beyond --timeout"
run_mb 20 create "slow delay=4000" --timeout 1 --type thing --input-str a b
expect_rc 1
expect_err "$RE_TIMED_OUT" "that it timed out"
expect_within 10
end

begin "hangs in initialize: --start-timeout"
run_mb 20 create hang-init --start-timeout 1 --type thing --input-str a b
expect_rc 1
expect_err "$RE_TIMED_OUT" "that it timed out"
expect_err "$RE_START" "that it was starting"
expect_within 10
end

begin "hangs mid-request and ignores SIGTERM: --timeout"
run_mb 25 create "hang ignore_term=1 child=1" --timeout 1 --type thing \
  --input-str a b
expect_rc 1
expect_err "$RE_TIMED_OUT" "that it timed out"
expect_within 13
end

# ---- Providers that break the protocol ----

begin "stray text on stdout is quoted"
run_mb 10 create stray --type thing --input-str a b
expect_rc 1
expect_err 'hello world' "the stray text"
expect_err 'printing by mistake' "the provider's stderr"
expect_err 'create' "the operation"
expect_within 5
end

begin "stray text on stdout before initialize is quoted"
run_mb 10 create stray-init --type thing --input-str a b
expect_rc 1
expect_err 'hello world' "the stray text"
expect_err 'printing by mistake' "the provider's stderr"
expect_within 5
end

begin "a cut-off JSON text is quoted"
run_mb 10 create bad-json --type thing --input-str a b
expect_rc 1
expect_err 'jsonrpc' "the bytes"
expect_err 'answering in haste' "the provider's stderr"
expect_within 5
end

begin "a response with an unknown id"
run_mb 20 create wrong-id --timeout 3 --type thing --input-str a b
expect_rc 1
expect_err '424242' "the id"
expect_within 12
end

begin "a response with both result and error"
run_mb 10 create both --type thing --input-str a b
expect_rc 1
expect_err 'result|invalid|malformed' "what is wrong"
expect_within 5
end

begin "a response over the 64 MiB limit"
run_mb 30 create big --type thing --input-str a b
expect_rc 1
expect_err 'too (large|big|long)|limit|exceed|MiB' "the size limit"
expect_err 'answering at length' "the provider's stderr"
expect_within 15
end

# ---- Providers that are odd but correct ----

begin "50 MB of stderr while answering"
run_mb 30 create stderr-flood --type thing --input-str a b
expect_rc 0
expect_out '"a":"b"'
expect_within 20
end

for framing in ndjson content-length; do
  begin "answers written a byte at a time ($framing)"
  run_mb 20 create "bytewise byte_us=200" --framing "$framing" \
    --type thing --input-str a b
  expect_rc 0
  expect_out '"a":"b"'
  expect_within 10
  end

  begin "a log, a progress and the answer in one write ($framing)"
  run_mb 10 create notify-and-response --framing "$framing" --type thing \
    --input-str a b
  expect_rc 0
  expect_out '"a":"b"'
  expect_within 5
  end
done

# The operation succeeded, so its result is printed; whether the failed
# stop makes the exit status 1 is the host's call. What matters is that
# the provider is gone, and in bounded time: grace 5 s, SIGTERM 2 s.
begin "ignores SIGTERM and hangs on stop"
run_mb 25 create ignore-term --type thing --input-str a b
expect_rc 0 1
expect_out '"a":"b"'
expect_within 13
end

begin "leaves a child process behind"
run_mb 25 create leave-child --type thing --input-str a b
expect_rc 0
expect_out '"a":"b"'
expect_within 13
end

# ---- Signals to tether itself ----

# Starts tether in the background on a provider that hangs mid-request,
# waits until the request is in the provider, sends SIGNAL to tether alone
# (not its group: the test is that tether passes the news on), and waits.
signal_case() { # SIGNAL SPEC
  sig=$1 spec=$2
  begin "SIG$sig to tether mid-request stops the provider ($spec)"
  touch=$CASE_DIR/started
  start=$(now_ms)
  # A background job of a non-interactive shell starts with SIGINT
  # ignored; env --default-signal gives tether the terminal's default.
  set --
  for w in $spec "touch=$touch" "mark=$MARK"; do
    set -- "$@" --provider-arg "$w"
  done
  TETHER_TEST_MARK=$MARK $RESET_SIGNALS "$TETHER" run create \
    --provider-exe "$MISBEHAVE" "$@" --type thing --input-str a b \
    </dev/null >"$OUT" 2>"$ERR" &
  pid=$!
  if wait_for_file "$touch" 10; then
    # The provider never answers: a tether that has ended by now did so on
    # its own, and the case would prove nothing.
    if running "$pid"; then
      kill -"$sig" "$pid"
    else
      fail "tether ended before the signal was sent"
    fi
    if wait_job "$pid" 12 "$start"; then
      [ "$RC" -ne 0 ] || fail "tether exited 0 after SIG$sig"
    fi
  else
    fail "the provider never got the request; stderr: $(squash "$ERR")"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  end
}

RESET_SIGNALS=
if env --default-signal=INT true 2>/dev/null; then
  RESET_SIGNALS="env --default-signal=INT"
fi
signal_case TERM hang
signal_case TERM "hang ignore_term=1"
if [ -n "$RESET_SIGNALS" ]; then
  signal_case INT hang
  signal_case INT "hang ignore_term=1 child=1"
else
  begin "SIGINT to tether mid-request stops the provider"
  fail "env --default-signal is missing (coreutils 8.31 or later has it)"
  end
fi

finish
