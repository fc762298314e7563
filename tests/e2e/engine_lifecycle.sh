#!/bin/sh
# The life of a deployment through tether's engine commands, on real
# tether-local resources in a temporary directory: create, skip, update,
# replace (both orders), delete, destroy; plan as text and JSON; apply
# --json; nested deployments; a store chained in another; state list,
# show and history; graph.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/engine_lib.inc"
require_binaries "$TETHER" "$LOCAL"

# A memo, a file that references it, and an exec whose output a second
# file uses.
basic() { # GREETING CONTENTS_PREFIX
  deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "id": {"provider": "local", "type": "memo",
           "inputs": {"initialize_with": "abc123"}},
    "hello": {"provider": "local", "type": "file",
              "inputs": {"name": "hello.txt",
                         "contents": "$2 \${id.outputs.value}"}},
    "greeting": {"provider": "local", "type": "exec",
                 "inputs": {"executable": "printf", "args": ["$1"]}},
    "echo": {"provider": "local", "type": "file",
             "inputs": {"name": "echo.txt",
                        "contents": "\${greeting.outputs.stdout}"}}
  }
}
EOF
}

begin "the first apply creates every resource and records it"
basic hi id=
tf 30 apply
expect_rc 0
expect_stdout "4 created"
expect_file hello.txt "id= abc123"
expect_file echo.txt "hi"
expect_record hello created
expect_record id created
expect_record echo created
end

begin "applying again changes nothing and calls no provider but the store"
basic hi id=
tf 30 apply
TETHER_STATS=1 tf 30 apply --json
expect_rc 0
expect_last_line '{"created":0,"updated":0,"replaced":0,"deleted":0,"unchanged":4,"failed":0}'
# Only the store is opened: its create (re-validation) and state_read.
expect_err '"requests":\{"initialize":1,"create":1,"state_read":1\}' \
  "no request but the store's"
expect_no_err 'state_event' "a state write"
end

begin "plan shows creates, then nothing once applied, and changes nothing"
basic hi id=
tf 30 plan
expect_rc 0
expect_stdout "+ hello (file)"
expect_stdout "Plan: 4 to create, 0 to update, 0 to replace, 0 to delete"
expect_no_file tether-state.json
expect_no_file hello.txt
tf 30 apply
tf 30 plan
expect_rc 0
expect_stdout "No changes. 4 resources unchanged."
end

begin "plan --json lists every change with its path and action"
basic hi id=
tf 30 apply
basic hello id=
tf 30 plan --json
expect_rc 0
expect_out '{"path":"greeting","action":"update","type":"exec","provider":"local","changed":["/args/0"]}'
expect_out '{"path":"echo","action":"update"'
expect_out '"knownAfterApply":["/contents"]'
expect_out '{"path":"hello","action":"skip"'
end

begin "an input change updates the resource and what references it"
basic hi id=
tf 30 apply
basic hello ID:
tf 30 plan
expect_stdout "~ hello: /contents"
expect_stdout "~ greeting: /args/0"
expect_stdout "~ echo: known after apply: /contents"
tf 30 apply --json
expect_rc 0
expect_last_line '{"created":0,"updated":3,"replaced":0,"deleted":0,"unchanged":1,"failed":0}'
expect_file hello.txt "ID: abc123"
expect_file echo.txt "hello"
expect_record hello updated
end

begin "a dependent whose input turns out unchanged is not updated"
basic hi id=
tf 30 apply
# The memo's input changes, but a memo keeps its first value: the file
# that references it is planned as "known after apply" and then skipped.
sed 's/"initialize_with": "abc123"/"initialize_with": "other"/' "$DEPLOY" \
  >"$DEPLOY.new" && mv "$DEPLOY.new" "$DEPLOY"
tf 30 plan
expect_stdout "~ hello: known after apply: /contents"
tf 30 apply --json
expect_rc 0
expect_last_line '{"created":0,"updated":1,"replaced":0,"deleted":0,"unchanged":3,"failed":0}'
expect_err "hello: unchanged: its inputs turned out the same"
expect_file hello.txt "id= abc123"
expect_record hello created
end

begin "a type change replaces the resource, creating the new one first"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "x": {"provider": "local", "type": "memo", "inputs": {"initialize_with": "m"}},
    "user": {"provider": "local", "type": "file",
             "inputs": {"name": "user.txt", "contents": "\${x.outputs.value}"}}
  }
}
EOF
tf 30 apply
expect_file user.txt "m"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "x": {"provider": "local", "type": "exec",
          "inputs": {"executable": "printf", "args": ["e"]}},
    "user": {"provider": "local", "type": "file",
             "inputs": {"name": "user.txt", "contents": "\${x.outputs.stdout}"}}
  }
}
EOF
tf 30 plan
expect_stdout "-/+ x: type memo -> exec"
tf 30 apply --json
expect_rc 0
expect_last_line '{"created":0,"updated":1,"replaced":1,"deleted":0,"unchanged":0,"failed":0}'
expect_file user.txt "e"
tf 30 state show x
expect_out '"type":"exec"'
case $(compact "$OUT") in *replaces*) fail "the old instance is still on record" ;; esac
end

begin "replaceOrder delete-first deletes the old resource before creating"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "f": {"provider": "local", "type": "file", "replaceOrder": "delete-first",
          "inputs": {"name": "f.txt", "contents": "one"}}
  }
}
EOF
tf 30 apply
expect_file f.txt "one"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "f": {"provider": "local", "type": "exec", "replaceOrder": "delete-first",
          "inputs": {"executable": "printf", "args": ["x"]}}
  }
}
EOF
tf 30 plan
expect_stdout "[delete first]"
tf 30 apply
expect_rc 0
expect_stdout "1 replaced"
expect_no_file f.txt
tf 30 state history
expect_stdout "delete    add /resources/f/status"
end

begin "a resource removed from the file is deleted, dependents first"
basic hi id=
tf 30 apply
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES }
}
EOF
tf 30 plan
expect_stdout "- hello (file)"
expect_stdout "4 to delete"
tf 30 apply
expect_rc 0
expect_stdout "4 deleted"
expect_no_file hello.txt
expect_no_file echo.txt
expect_record hello absent
# hello depends on id (recorded dependsOn): it goes first.
tf 30 state history
hello_at=$(grep -n 'deleted   remove /resources/hello$' "$OUT" | cut -d: -f1)
id_at=$(grep -n 'delete    add /resources/id/status' "$OUT" | cut -d: -f1)
[ -n "$hello_at" ] && [ -n "$id_at" ] && [ "$hello_at" -lt "$id_at" ] ||
  fail "hello was not deleted before id was: $(squash "$OUT")"
end

begin "destroy deletes everything on record and leaves the store"
basic hi id=
tf 30 apply
tf 30 destroy
expect_rc 0
expect_stdout "Destroy complete"
expect_stdout "4 deleted"
expect_no_file hello.txt
expect_no_file echo.txt
[ -f "$CASE_DIR/tether-state.json" ] || fail "the bootstrap state file is gone"
tf 30 state list
expect_stdout "No resources on record."
tf 30 plan
expect_stdout "4 to create"
end

begin "nested deployments are applied, recorded under their path and destroyed"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "top": {"provider": "local", "type": "file",
            "inputs": {"name": "top.txt", "contents": "\${sub.mid.outputs.stdout}"}}
  },
  "deployments": {
    "sub": {
      "resources": {
        "mid": {"provider": "local", "type": "exec",
                "inputs": {"executable": "printf",
                           "args": ["\${inner.leaf.outputs.value}"]}}
      },
      "deployments": {
        "inner": {"resources": {
          "leaf": {"provider": "local", "type": "memo",
                   "inputs": {"initialize_with": "deep"}}}}
      }
    }
  }
}
EOF
tf 30 apply
expect_rc 0
expect_stdout "3 created"
expect_file top.txt "deep"
expect_record sub/mid created
expect_record sub/inner/leaf created
tf 30 state show sub/inner/leaf
expect_out '"outputProperties":{"value":"deep"}'
tf 30 state history
expect_stdout "/deployments/sub/deployments/inner/resources/leaf"
tf 30 apply
expect_stdout "No changes. 3 resources unchanged."
tf 30 destroy
expect_rc 0
expect_stdout "3 deleted"
expect_no_file top.txt
end

begin "a store chained in another records its resources and is destroyed last"
deploy <<EOF
{ $LOCAL_HEAD
  "resources": { $STATE_RES,
    "inner": {"provider": "local", "type": "state_file", "state": "state",
              "inputs": {"name": "inner-state.json"}},
    "a": {"provider": "local", "type": "file", "state": "inner",
          "inputs": {"name": "a.txt", "contents": "a"}},
    "b": {"provider": "local", "type": "file",
          "inputs": {"name": "b.txt", "contents": "b"}}
  }
}
EOF
tf 30 apply
expect_rc 0
expect_stdout "3 created"
expect_file a.txt "a"
[ -f "$CASE_DIR/inner-state.json" ] || fail "the chained state file was not created"
tf 30 state list
expect_stdout "STORE"
grep -q '^a .* inner$' "$OUT" || fail "a is not recorded in inner: $(squash "$OUT")"
grep -q '^inner .* state$' "$OUT" || fail "inner is not recorded in state: $(squash "$OUT")"
tf 30 state history
expect_stdout "store 'inner' ("
expect_stdout "create    add /resources/a"
tf 30 apply
expect_stdout "No changes. 3 resources unchanged."
tf 30 destroy
expect_rc 0
expect_stdout "3 deleted"
expect_no_file inner-state.json
expect_no_file a.txt
end

begin "state show prints one record and names the recorded ones when missing"
basic hi id=
tf 30 apply
tf 30 state show hello
expect_rc 0
expect_out '"type":"file","provider":"local","inputProperties":{"name":"hello.txt","contents":"id=abc123"}'
expect_out '"dependsOn":["id"],"status":"created"'
tf 30 state show nope
expect_rc 1
expect_err "no resource 'nope' on record .*hello"
end

begin "state history lists each event's index, time, event and paths"
basic hi id=
tf 30 apply
tf 30 state history
expect_rc 0
expect_stdout "store 'state' ("
grep -q '^ *0  [0-9T:.-]*Z  (initial)  add /$' "$OUT" ||
  fail "no initial event: $(squash "$OUT")"
grep -q '^ *[0-9]*  [0-9T:.-]*Z  create    add /resources/hello$' "$OUT" ||
  fail "no create event for hello: $(squash "$OUT")"
grep -q 'created   add /resources/hello/{outputProperties, status}' "$OUT" ||
  fail "no result event for hello: $(squash "$OUT")"
# 1 initial event and an intent and a result for each of 4 resources.
[ "$(grep -c '^ *[0-9]*  [0-9T]' "$OUT")" -eq 9 ] ||
  fail "not 9 events: $(squash "$OUT")"
end

begin "graph prints DOT with store edges dashed and starts no provider"
basic hi id=
tf 30 graph
expect_rc 0
expect_stdout "digraph"
expect_stdout '"hello" -> "id";'
expect_stdout '"hello" -> "state" [style=dashed];'
expect_no_file tether-state.json
end

begin "apply --json prints the counts as the last line of stdout only"
basic hi id=
tf 30 apply --json
expect_rc 0
expect_last_line '{"created":4,"updated":0,"replaced":0,"deleted":0,"unchanged":0,"failed":0}'
[ "$(wc -l <"$OUT")" -eq 1 ] || fail "stdout holds more than the counts: $(squash "$OUT")"
expect_err "Apply complete"
end

finish
