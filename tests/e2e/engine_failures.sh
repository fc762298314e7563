#!/bin/sh
# Runs that go wrong: a second apply on a locked store, a provider that
# crashes mid-apply, one that refuses, one that hangs past --timeout, one
# that cannot start, a failure among parallel work, and a provider that
# reports a partly done create. Each time the state stays consistent with
# what happened, the message names the resource and the cause, and the
# next apply converges.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/engine_lib.inc"
require_binaries "$TETHER" "$LOCAL" "$MISBEHAVE"

# A deployment with a tether-local file "a", a misbehave resource "t"
# (provider args: SPEC, words) and a file "b" that references t.
with_thing() { # SPEC
  _args=
  for _w in $1 @MARK@; do _args="$_args\"$_w\", "; done
  deploy <<EOF
{ "state": "state",
  "providers": {"local": {"executable": "tether-local"},
                "mb": {"executable": "@MB@", "args": [${_args%, }]}},
  "resources": { $STATE_RES,
    "a": {"provider": "local", "type": "file",
          "inputs": {"name": "a.txt", "contents": "a"}},
    "t": {"provider": "mb", "type": "thing", "inputs": {"x": "1"}},
    "b": {"provider": "local", "type": "file",
          "inputs": {"name": "b.txt", "contents": "\${t.outputs.x}"}}
  }
}
EOF
}

begin "a second apply on the same store fails at once, naming the holder"
with_thing "good delay=3000 touch=@DIR@/busy"
tf_bg apply
wait_for_file "$CASE_DIR/busy" 10 || fail "the first apply never reached its provider"
tf 10 apply
expect_rc 1
expect_within 5
expect_err "state store 'state' is in use by another run"
expect_err "held by pid [0-9]+ \\(tether-local\\) since [0-9T:-]+Z"
expect_err "started by tether pid $BG\\)"
wait_job "$BG" 15 "$BG_START"
expect_rc 0
expect_file b.txt "1"
end

begin "a provider that crashes mid-apply leaves consistent state; the rerun converges"
with_thing "crash"
tf 30 apply
expect_rc 1
expect_err "t: provider 'mb' exited with status 3 while handling create of type thing"
expect_err "crashing on purpose"
expect_stdout "t: failed: provider 'mb' exited with status 3"
expect_stdout "1 created"
expect_stdout "1 failed, 1 not run"
# a was created and recorded; t's intent stays on record (the provider
# may have done part of it); b never started.
expect_file a.txt "a"
expect_record a created
expect_record t creating
expect_record b absent
expect_no_file b.txt
with_thing "good"
tf 30 plan
expect_stdout "+ t (thing): resuming an interrupted create"
tf 30 apply
expect_rc 0
expect_stdout "2 created"
expect_file b.txt "1"
expect_record t created
tf 30 apply
expect_stdout "No changes. 3 resources unchanged."
end

begin "a provider's error is recorded as nothing changed"
with_thing "fail"
tf 30 apply
expect_rc 1
expect_stdout "t: failed: provider 'mb': create of type thing failed"
expect_record t absent
tf 30 state history
expect_stdout "revert    remove /resources/t"
with_thing "good"
tf 30 apply
expect_rc 0
expect_stdout "2 created"
end

begin "a provider that hangs is stopped after --timeout; the rerun converges"
with_thing "hang"
tf 30 apply --timeout 1
expect_rc 1
expect_within 10
expect_err "provider 'mb' timed out: create of type thing got no answer within 1 s"
expect_record t creating
with_thing "good"
tf 30 apply --timeout 5
expect_rc 0
expect_file b.txt "1"
end

begin "a provider that cannot start fails the run before anything changes"
with_thing "exit-init"
tf 30 apply
expect_rc 1
expect_err "provider 'mb' exited with status 4 while handling initialize"
expect_no_file tether-state.json
expect_no_file a.txt
end

begin "a provider that does not answer initialize in time fails the run"
with_thing "hang-init"
tf 30 apply --start-timeout 1
expect_rc 1
expect_within 10
expect_err "mb"
expect_no_file tether-state.json
end

begin "a failure stops new work while running work finishes and is recorded"
deploy <<EOF
{ "state": "state",
  "providers": {"local": {"executable": "tether-local"},
                "bad": {"executable": "@MB@", "args": ["fail", "@MARK@"]},
                "slow": {"executable": "@MB@",
                         "args": ["good", "delay=1500", "@MARK@"]}},
  "resources": { $STATE_RES,
    "f": {"provider": "bad", "type": "thing", "inputs": {}},
    "s": {"provider": "slow", "type": "thing", "inputs": {"x": "s"}},
    "later": {"provider": "local", "type": "file",
              "inputs": {"name": "later.txt", "contents": "l"}}
  }
}
EOF
tf 30 apply --parallelism 2
expect_rc 1
expect_stdout "1 created"
expect_stdout "1 failed, 1 not run"
grep -q '^  f: provider .bad.: create of type thing failed' "$OUT" ||
  fail "the summary does not name f and its error: $(squash "$OUT")"
expect_record s created
expect_record f absent
expect_record later absent
expect_no_file later.txt
end

begin "a partly done create is recorded with its outputs and updated next time"
# A provider in sh: its create fails with data.partial, its update works.
cat >"$CASE_DIR/half.sh" <<'PROVIDER'
#!/bin/sh
answer() { printf '{"jsonrpc":"2.0","id":%s,%s}\n' "$1" "$2"; }
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9]*\),.*/\1/p')
  case $line in
  *'"method":"initialize"'*)
    answer "$id" '"result":{"protocolVersion":1,"provider":{"name":"half","version":"1"},"resourceTypes":{"half":{"description":"half done","requireState":false,"stateProvider":false,"operations":["create","update","delete"]}}}' ;;
  *'"method":"create"'*)
    echo "half: creating, will stop halfway" >&2
    answer "$id" '"error":{"code":-32000,"message":"disk full halfway","data":{"partial":{"outputProperties":{"done":1}}}}' ;;
  *'"method":"update"'*)
    answer "$id" '"result":{"outputProperties":{"done":2}}' ;;
  *'"method":"delete"'*) answer "$id" '"result":{}' ;;
  *'"method":"shutdown"'*) answer "$id" '"result":null' ;;
  *'"method":"exit"'*) exit 0 ;;
  esac
done
PROVIDER
chmod +x "$CASE_DIR/half.sh"
deploy <<EOF
{ "state": "state",
  "providers": {"local": {"executable": "tether-local"},
                "half": {"executable": "./half.sh"}},
  "resources": { $STATE_RES,
    "h": {"provider": "half", "type": "half", "inputs": {"size": 2}}
  }
}
EOF
tf 30 apply
expect_rc 1
expect_stdout "h: failed: provider 'half': create of type half failed: disk full halfway"
expect_err "\\[h\\] half: creating, will stop halfway"
tf 30 state show h
expect_out '"outputProperties":{"done":1}'
expect_out '"status":"updating"'
tf 30 plan
expect_stdout "~ h"
tf 30 apply
expect_rc 0
expect_stdout "1 updated"
tf 30 state show h
expect_out '"outputProperties":{"done":2}'
expect_out '"status":"updated"'
end

finish
