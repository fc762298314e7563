#!/bin/sh
# tether run with tether-local in place of nixops4-resource-runner with
# nixops4-resources-local: the commands of the NixOps4 manual's "Testing
# with nixops4-resource-runner" section and of NixOps4's own check of its
# local provider (test/nixops4-resources-local.nix), with the same flags,
# and the same expectations where tether does not deliberately do better.
# Where the NixOps4 check runs `hello` and `die`, these run `echo` and
# `sh -c` (the provider runs argv directly, never through a shell).
. "$(dirname "$0")/lib.sh"
LOCAL=$TETHER_BIN/tether-local
require_binaries "$TETHER" "$LOCAL"
REF=$(pwd)/../shared/reference/nixops4

# tether run OP with tether-local in DIR: relative file names are relative
# to the provider's working directory.
run_in() { # DIR OP ARGS...
  dir=$1 op=$2
  shift 2
  here=$(pwd)
  cd "$dir" || return
  tt 20 run "$op" --provider-exe "$LOCAL" "$@"
  cd "$here" || exit 1
}

# Each case in a directory of its own.
run_local() { run_in "$CASE_DIR" "$@"; }

# ---- The manual: "Example: Testing a stateless resource" ----

begin "manual: create a file"
run_local create \
  --type file \
  --input-str name test.txt \
  --input-str contents "Hello, world!"
expect_rc 0
expect_out_is '{"outputProperties":{}}'
[ "$(cat "$CASE_DIR/test.txt" 2>/dev/null)" = "Hello, world!" ] ||
  fail "test.txt does not hold the contents"
end

# ---- The manual: "Example: Testing a stateful resource" ----

begin "manual: create a memo with state"
run_local create \
  --type memo \
  --stateful \
  --input-json initialize_with '"initial value"'
expect_rc 0
expect_out_is '{"outputProperties":{"value":"initialvalue"}}'
end

begin "manual: update the memo"
run_local update \
  --type memo \
  --inputs-json '{"initialize_with": "new value"}' \
  --previous-inputs-json '{"initialize_with": "initial value"}' \
  --previous-outputs-json '{"value": "initial value"}'
expect_rc 0
expect_out_is '{"outputProperties":{"value":"initialvalue"}}'
end

begin "manual: a memo refuses to be created without state"
run_local create \
  --type memo \
  --input-json initialize_with '"test value"'
expect_rc 1
expect_out_empty
expect_err '-32010|requires state'
end

# ---- NixOps4's check of nixops4-resources-local ----

begin "check: file create writes the contents"
run_local create \
  --type file \
  --input-str name test.txt \
  --input-str contents hi
expect_rc 0
expect_out_is '{"outputProperties":{}}'
printf hi >"$CASE_DIR/expected"
cmp -s "$CASE_DIR/expected" "$CASE_DIR/test.txt" ||
  fail "test.txt is not exactly 'hi'"
end

begin "check: exec create records stdout"
run_local create \
  --type exec \
  --input-str executable 'echo' \
  --input-json args '["hi there"]'
expect_rc 0
expect_out_is '{"outputProperties":{"stdout":"hithere\n"}}'
end

begin "check: exec with a non-zero exit fails with its stderr"
run_local create \
  --type exec \
  --input-str executable 'sh' \
  --input-json args '["-c", "echo \"$1\" >&2; exit 1", "die", "oh no, this and that failed"]'
expect_rc 1
expect_out_empty
expect_err 'oh no, this and that failed'
expect_err 'status 1'
end

begin "check: memo create with state"
run_local create \
  --type memo \
  --stateful \
  --input-json initialize_with '"hello world"'
expect_rc 0
expect_out_is '{"outputProperties":{"value":"helloworld"}}'
end

begin "check: memo update keeps the original value"
run_local update \
  --type memo \
  --inputs-json '{"initialize_with": "new value"}' \
  --previous-inputs-json '{"initialize_with": "hello world"}' \
  --previous-outputs-json '{"value": "hello world"}'
expect_rc 0
expect_out_is '{"outputProperties":{"value":"helloworld"}}'
end

begin "check: exec update runs again with the new args"
run_local update \
  --type exec \
  --inputs-json '{"executable": "echo", "args": ["updated greeting"], "once": false}' \
  --previous-inputs-json '{"executable": "echo", "args": ["old greeting"], "once": false}' \
  --previous-outputs-json '{"stdout": "old greeting\n"}'
expect_rc 0
expect_out_is '{"outputProperties":{"stdout":"updatedgreeting\n"}}'
end

begin "check: exec once=true create runs it"
run_local create \
  --type exec \
  --stateful \
  --input-str executable 'echo' \
  --input-json args '["once greeting"]' \
  --input-json once 'true'
expect_rc 0
expect_out_is '{"outputProperties":{"stdout":"oncegreeting\n"}}'
end

begin "check: exec once=true update keeps the first output"
run_local update \
  --type exec \
  --inputs-json '{"executable": "echo", "args": ["new args"], "once": true}' \
  --previous-inputs-json '{"executable": "echo", "args": ["once greeting"], "once": true}' \
  --previous-outputs-json '{"stdout": "once greeting\n"}'
expect_rc 0
expect_out_is '{"outputProperties":{"stdout":"oncegreeting\n"}}'
end

begin "check: exec once=true without state fails"
run_local create \
  --type exec \
  --input-str executable 'echo' \
  --input-json args '[]' \
  --input-json once 'true'
expect_rc 1
expect_out_empty
expect_err 'exec resource with once=true requires state \(use isStateful\)'
end

# NixOps4 refuses to update a file ("update called on stateless file
# resource"); tether-local rewrites it.
begin "check: file update rewrites the file (NixOps4 refuses)"
run_local update \
  --type file \
  --inputs-json '{"name": "test.txt", "contents": "new"}' \
  --previous-inputs-json '{"name": "test.txt", "contents": "old"}' \
  --previous-outputs-json '{}'
expect_rc 0
expect_out_is '{"outputProperties":{}}'
[ "$(cat "$CASE_DIR/test.txt" 2>/dev/null)" = "new" ] ||
  fail "test.txt was not rewritten"
end

# The state file commands run in one directory, one after the other.
STATE_DIR=$E2E_TMP/state
mkdir -p "$STATE_DIR"
run_state() { run_in "$STATE_DIR" "$@"; }

begin "check: state_file create makes a new state file"
run_state create \
  --type state_file \
  --input-str name "test-state.json"
expect_rc 0
expect_out_is '{"outputProperties":{}}'
[ -f "$STATE_DIR/test-state.json" ] || fail "test-state.json was not created"
end

begin "check: state_read of the new file is the empty state"
run_state state-read \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}'
expect_rc 0
expect_out '"_type":"nixopsState"'
expect_out '"resources":{}'
expect_out '"deployments":{}'
end

begin "check: state_event create adds a resource"
run_state state-event \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}' \
  --event "create" \
  --nixops-version "4.0.0-test" \
  --patch-json '[
    {
      "op": "add",
      "path": "/resources/myfile",
      "value": {
        "type": "file",
        "inputProperties": {"name": "test.txt", "contents": "hello"},
        "outputProperties": {"inode": 123}
      }
    }
  ]'
expect_rc 0
expect_out '"index":1'
end

begin "check: state_read after the create"
run_state state-read \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}'
expect_rc 0
expect_out '"myfile":{"type":"file","inputProperties":{"name":"test.txt","contents":"hello"},"outputProperties":{"inode":123}}'
end

begin "check: state_event update modifies the resource"
run_state state-event \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}' \
  --event "update" \
  --nixops-version "4.0.0-test" \
  --patch-json '[
    {
      "op": "replace",
      "path": "/resources/myfile/inputProperties/contents",
      "value": "modified content"
    }
  ]'
expect_rc 0
expect_out '"index":2'
end

begin "check: state_read after the update"
run_state state-read \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}'
expect_rc 0
expect_out '"contents":"modifiedcontent"'
expect_out '"outputProperties":{"inode":123}'
end

begin "check: state_event destroy removes the resource"
run_state state-event \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}' \
  --event "destroy" \
  --nixops-version "4.0.0-test" \
  --patch-json '[
    {
      "op": "remove",
      "path": "/resources/myfile"
    }
  ]'
expect_rc 0
expect_out '"index":3'
end

begin "check: state_read after the destroy"
run_state state-read \
  --type state_file \
  --inputs-json '{"name": "test-state.json"}' \
  --outputs-json '{}'
expect_rc 0
expect_out '"resources":{}'
expect_out '"index":3'
end

begin "check: state_file create leaves an existing file as it is"
cp "$STATE_DIR/test-state.json" "$STATE_DIR/test-state-backup.json"
run_state create \
  --type state_file \
  --input-str name "test-state.json"
expect_rc 0
expect_out_is '{"outputProperties":{}}'
cmp -s "$STATE_DIR/test-state.json" "$STATE_DIR/test-state-backup.json" ||
  fail "the existing state file was modified"
end

begin "check: state_file create of another name creates it"
run_state create \
  --type state_file \
  --input-str name "new-state.json"
expect_rc 0
[ -f "$STATE_DIR/new-state.json" ] || fail "new-state.json was not created"
end

begin "check: state_file create refuses an invalid file"
echo "invalid json" >"$STATE_DIR/invalid-state.json"
run_state create \
  --type state_file \
  --input-str name "invalid-state.json"
expect_rc 1
expect_out_empty
expect_err '-32022'
expect_err 'invalid-state.json'
expect_err 'line 1'
end

begin "check: the documented state file resolves to the documented state"
cp "$REF/state-file.json" "$STATE_DIR/doc-state-file.json"
run_state state-read \
  --type state_file \
  --inputs-json '{"name": "doc-state-file.json"}' \
  --outputs-json '{}'
expect_rc 0
expect_out "$(compact "$REF/resolved-state.json")"
expect_out '"index":1'
cmp -s "$REF/state-file.json" "$STATE_DIR/doc-state-file.json" ||
  fail "reading the documented state file changed it"
end

finish
