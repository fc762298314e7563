#!/bin/sh
# Invalid deployments: each kind is refused with exit status 1 and a
# message naming the file, the place and the problem, and nothing changes.
# Problems in the file itself are found before any provider starts (the
# provider here is a wrapper that leaves a mark when started); an unknown
# resource type or a store type that cannot store state is found from the
# providers' initialize answers, before any store is created. Usage
# errors exit 2.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/engine_lib.inc"
require_binaries "$TETHER" "$LOCAL"

# The provider "local" is ./wrap.sh: tether-local, after touching
# "started".
wrapper() {
  printf '#!/bin/sh\ntouch "%s/started"\nexec "%s" "$@"\n' "$CASE_DIR" \
    "$LOCAL" >"$CASE_DIR/wrap.sh"
  chmod +x "$CASE_DIR/wrap.sh"
}

# An invalid deployment (stdin, with @RES@ for the state resource): plan,
# apply and destroy each exit 1 saying ERE; no provider starts unless
# STARTS is "starts", and nothing is created either way.
refused() { # ERE [STARTS]
  wrapper
  # deploy runs in a subshell here, as the end of a pipeline.
  DEPLOY=$CASE_DIR/tether.json
  sed -e "s|@RES@|\"state\": {\"provider\": \"local\", \"type\": \"state_file\", \"inputs\": {\"name\": \"s.json\"}}|" |
    deploy
  for _cmd in plan apply destroy; do
    tf 30 "$_cmd"
    expect_rc 1
    expect_err "$1"
  done
  if [ "${2:-}" = starts ]; then
    [ -e "$CASE_DIR/started" ] || fail "the provider was never asked"
  else
    expect_no_file started
  fi
  expect_no_file s.json
  expect_no_file x.txt
}

HEAD='"providers": {"local": {"executable": "./wrap.sh"}}'

begin "a file that is not JSON is refused with its line and column"
refused 'tether\.json: line 2, column 1: invalid JSON' <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
EOF
end

begin "a missing deployment file is refused"
DEPLOY=$CASE_DIR/nothere.json
tf 30 apply
expect_rc 1
expect_err 'nothere\.json: cannot read: No such file'
end

begin "an unknown member is refused, naming it"
refused 'resources\.x\.colour: unknown member' <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "file", "colour": 1,
       "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "a resource without a type is refused"
refused 'resources\.x: missing member "type"' <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "an invalid resource name is refused"
refused 'invalid resource name' <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x y": {"provider": "local", "type": "file",
         "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "an undeclared provider is refused, naming the declared ones"
refused "unknown provider 'nope' \\(declared: local\\)" <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "nope", "type": "file",
       "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "a reference to an unknown resource is refused"
refused "resources\\.x\\.inputs\\.contents: reference to unknown resource 'y'" <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "file",
       "inputs": {"name": "x.txt", "contents": "\${y.outputs.z}"}}}}
EOF
end

begin "a malformed reference is refused"
refused "malformed reference" <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "file",
       "inputs": {"name": "x.txt", "contents": "\${HOME}"}}}}
EOF
end

begin "dependsOn naming an unknown resource is refused"
refused "dependsOn\\[0\\]: depends on unknown resource 'zz'" <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "file", "dependsOn": ["zz"],
       "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "a dependency cycle is refused, naming its members"
refused "dependency cycle: x -> y -> x" <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "file",
       "inputs": {"name": "x.txt", "contents": "\${y.outputs.a}"}},
 "y": {"provider": "local", "type": "file", "dependsOn": ["x"],
       "inputs": {"name": "y.txt", "contents": ""}}}}
EOF
end

begin "a cycle of state stores is refused"
refused "state store cycle: a -> b -> a" <<EOF
{"state": "a", $HEAD, "resources": {
 "a": {"provider": "local", "type": "state_file", "state": "b",
       "inputs": {"name": "s.json"}},
 "b": {"provider": "local", "type": "state_file", "state": "a",
       "inputs": {"name": "t.json"}}}}
EOF
end

begin "resources without a state store are refused"
refused 'state: missing' <<EOF
{$HEAD, "resources": {
 "x": {"provider": "local", "type": "file",
       "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "a provider executable that does not exist is refused before any starts"
refused "providers\\.other\\.executable: .*nothere: No such file" <<EOF
{"state": "state",
 "providers": {"local": {"executable": "./wrap.sh"},
               "other": {"executable": "./nothere"}},
 "resources": {@RES@}}
EOF
end

begin "a provider not found on PATH is refused before any starts"
refused "executable 'tether-nope' not found next to tether" <<EOF
{"state": "state",
 "providers": {"local": {"executable": "./wrap.sh"},
               "other": {"executable": "tether-nope"}},
 "resources": {@RES@}}
EOF
end

begin "a resource type its provider lacks is refused before anything changes"
refused "resources\\.x\\.type: provider 'local' has no resource type 'flie' \\(its types: .*file" starts <<EOF
{"state": "state", $HEAD, "resources": {@RES@,
 "x": {"provider": "local", "type": "flie",
       "inputs": {"name": "x.txt", "contents": ""}}}}
EOF
end

begin "a store whose type cannot store state is refused before anything changes"
refused "resources\\.state: cannot store state: type 'file'" starts <<EOF
{"state": "state", $HEAD, "resources": {
 "state": {"provider": "local", "type": "file",
           "inputs": {"name": "s.json", "contents": ""}}}}
EOF
end

begin "a nested deployment's problem is reported at its path"
refused "deployments\\.sub\\.resources\\.x\\.provider: unknown provider 'zz'" <<EOF
{"state": "state", $HEAD, "resources": {@RES@},
 "deployments": {"sub": {"resources": {
   "x": {"provider": "zz", "type": "file",
         "inputs": {"name": "x.txt", "contents": ""}}}}}}
EOF
end

begin "usage errors exit 2"
echo '{}' >"$CASE_DIR/tether.json"
DEPLOY=$CASE_DIR/tether.json
for args in "apply --bogus" "apply --parallelism 0" "plan --timeout -1" \
  "state" "state show" "state frob" "state list extra" "graph --json" \
  "destroy --refresh"; do
  # shellcheck disable=SC2086
  tt 30 $args
  expect_rc 2
done
expect_err "unknown flag"
end

finish
