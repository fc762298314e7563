#!/bin/sh
# `tether patch DOC PATCH`: applies an RFC 6902 patch and prints the result.
# The examples of RFC 6902 appendix A, the failing operation's index in the
# error, exit statuses, and invalid JSON files named with a byte offset.
. "$(dirname "$0")/lib.sh"
require_binaries "$TETHER"

# Writes DOC and PATCH into the case's directory and runs tether patch.
run_patch() { # DOC PATCH
  printf '%s\n' "$1" >"$CASE_DIR/doc.json"
  printf '%s\n' "$2" >"$CASE_DIR/patch.json"
  cp "$CASE_DIR/doc.json" "$CASE_DIR/doc.orig"
  tt 10 patch "$CASE_DIR/doc.json" "$CASE_DIR/patch.json"
  cmp -s "$CASE_DIR/doc.json" "$CASE_DIR/doc.orig" ||
    fail "tether patch changed the document file"
}

# The patch applies and stdout is EXPECTED (compared without whitespace;
# members in the order the document had them, new ones last).
patch_ok() { # NAME DOC PATCH EXPECTED
  begin "$1"
  run_patch "$2" "$3"
  expect_rc 0
  expect_out_is "$4"
  [ "$(tail -c 1 "$OUT" | od -An -tx1 | tr -d ' ')" = 0a ] ||
    fail "the printed document does not end with a newline"
  expect_within 5
  end
}

# The patch does not apply: exit 1, the failing operation's index (from 0,
# as in state_event's data.op) in the message, nothing on stdout.
patch_fails_at() { # NAME DOC PATCH INDEX
  begin "$1"
  run_patch "$2" "$3"
  expect_rc 1
  expect_err "(op|operation|index)[^0-9a-z]{0,12}$4([^0-9]|$)" \
    "the failing operation's index $4"
  expect_out_empty
  expect_within 5
  end
}

# ---- RFC 6902 appendix A ----

patch_ok "A.1 adding an object member" \
  '{"foo":"bar"}' \
  '[{"op":"add","path":"/baz","value":"qux"}]' \
  '{"foo":"bar","baz":"qux"}'
patch_ok "A.2 adding an array element" \
  '{"foo":["bar","baz"]}' \
  '[{"op":"add","path":"/foo/1","value":"qux"}]' \
  '{"foo":["bar","qux","baz"]}'
patch_ok "A.3 removing an object member" \
  '{"baz":"qux","foo":"bar"}' \
  '[{"op":"remove","path":"/baz"}]' \
  '{"foo":"bar"}'
patch_ok "A.4 removing an array element" \
  '{"foo":["bar","qux","baz"]}' \
  '[{"op":"remove","path":"/foo/1"}]' \
  '{"foo":["bar","baz"]}'
patch_ok "A.5 replacing a value" \
  '{"baz":"qux","foo":"bar"}' \
  '[{"op":"replace","path":"/baz","value":"boo"}]' \
  '{"baz":"boo","foo":"bar"}'
patch_ok "A.6 moving a value" \
  '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}' \
  '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]' \
  '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}'
patch_ok "A.7 moving an array element" \
  '{"foo":["all","grass","cows","eat"]}' \
  '[{"op":"move","from":"/foo/1","path":"/foo/3"}]' \
  '{"foo":["all","cows","eat","grass"]}'
patch_ok "A.8 testing a value: success" \
  '{"baz":"qux","foo":["a",2,"c"]}' \
  '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]' \
  '{"baz":"qux","foo":["a",2,"c"]}'
patch_fails_at "A.9 testing a value: error" \
  '{"baz":"qux"}' \
  '[{"op":"test","path":"/baz","value":"bar"}]' 0
patch_ok "A.10 adding a nested member object" \
  '{"foo":"bar"}' \
  '[{"op":"add","path":"/child","value":{"grandchild":{}}}]' \
  '{"foo":"bar","child":{"grandchild":{}}}'
patch_ok "A.11 ignoring unrecognized elements" \
  '{"foo":"bar"}' \
  '[{"op":"add","path":"/baz","value":"qux","xyz":123}]' \
  '{"foo":"bar","baz":"qux"}'
patch_fails_at "A.12 adding to a nonexistent target" \
  '{"foo":"bar"}' \
  '[{"op":"add","path":"/baz/bat","value":"qux"}]' 0
patch_ok "A.14 ~ escape ordering" \
  '{"/":9,"~1":10}' \
  '[{"op":"test","path":"/~01","value":10}]' \
  '{"/":9,"~1":10}'
patch_fails_at "A.15 comparing strings and numbers" \
  '{"/":9,"~1":10}' \
  '[{"op":"test","path":"/~01","value":"10"}]' 0
patch_ok "A.16 adding an array value" \
  '{"foo":["bar"]}' \
  '[{"op":"add","path":"/foo/-","value":["abc","def"]}]' \
  '{"foo":["bar",["abc","def"]]}'

# ---- Beyond the appendix ----

patch_ok "copy, then replace the whole document" \
  '{"a":{"b":1}}' \
  '[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"","value":[1,2]}]' \
  '[1,2]'
patch_ok "test compares objects regardless of order and numbers by value" \
  '{"a":{"x":1,"y":[2.0]}}' \
  '[{"op":"test","path":"/a","value":{"y":[2],"x":1.0}}]' \
  '{"a":{"x":1,"y":[2.0]}}'
patch_ok "an empty patch keeps numbers exactly" \
  '{"big":123456789012345678901234567890,"f":1.50,"e":-2E-7}' \
  '[]' \
  '{"big":123456789012345678901234567890,"f":1.50,"e":-2E-7}'
patch_ok "pretty-printed input" \
  '{
    "resources": {
      "web": {"type": "file"}
    }
  }' \
  '[ { "op": "remove", "path": "/resources/web" } ]' \
  '{"resources":{}}'

patch_fails_at "the index of a later failing operation" \
  '{"a":1}' \
  '[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":1},{"op":"remove","path":"/nope"}]' 2
patch_fails_at "all or nothing: an earlier add is not printed" \
  '{"a":1}' \
  '[{"op":"add","path":"/b","value":2},{"op":"replace","path":"/missing","value":3}]' 1
patch_fails_at "an unknown op" \
  '{"a":1}' \
  '[{"op":"add","path":"/b","value":2},{"op":"frobnicate","path":"/a"}]' 1
patch_fails_at "an op without its value" \
  '{"a":1}' \
  '[{"op":"add","path":"/b"}]' 0
patch_fails_at "an array index out of range" \
  '{"a":[1,2]}' \
  '[{"op":"add","path":"/a/3","value":9}]' 0
patch_fails_at "a leading zero in an array index" \
  '{"a":[1,2]}' \
  '[{"op":"remove","path":"/a/01"}]' 0

begin "a patch that is not an array"
run_patch '{"a":1}' '{"op":"add","path":"/b","value":2}'
expect_rc 1
expect_err 'array' "that a patch is an array"
expect_out_empty
end

# ---- Files that are not JSON: the file and the byte offset ----

# The offending byte is on the second line, so a line or column number
# cannot pass for the byte offset (byte 8; line 2, column 7).
begin "invalid JSON in the document: file and byte offset"
printf '{\n "a": @\n}\n' >"$CASE_DIR/broken-doc.json"
printf '[]\n' >"$CASE_DIR/patch.json"
tt 10 patch "$CASE_DIR/broken-doc.json" "$CASE_DIR/patch.json"
expect_rc 1
expect_err 'broken-doc\.json' "the file"
expect_err '(byte|offset|position|at)[^0-9]{0,12}8([^0-9]|$)' "byte offset 8"
expect_out_empty
end

begin "trailing data in the patch: file and byte offset"
printf '{"a":1}\n' >"$CASE_DIR/doc.json"
printf '[] x\n' >"$CASE_DIR/broken-patch.json"
tt 10 patch "$CASE_DIR/doc.json" "$CASE_DIR/broken-patch.json"
expect_rc 1
expect_err 'broken-patch\.json' "the file"
expect_err '(byte|offset|position|at)[^0-9]{0,12}3([^0-9]|$)' "byte offset 3"
expect_out_empty
end

begin "invalid UTF-8 in the document"
printf '{"a":"\377"}\n' >"$CASE_DIR/latin1.json"
printf '[]\n' >"$CASE_DIR/patch.json"
tt 10 patch "$CASE_DIR/latin1.json" "$CASE_DIR/patch.json"
expect_rc 1
expect_err 'latin1\.json' "the file"
expect_err '(byte|offset|position|at)[^0-9]{0,12}6([^0-9]|$)' "byte offset 6"
expect_out_empty
end

begin "nesting 100000 deep is refused, not a crash"
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "["; print "" }' \
  >"$CASE_DIR/deep.json"
printf '[]\n' >"$CASE_DIR/patch.json"
tt 10 patch "$CASE_DIR/deep.json" "$CASE_DIR/patch.json"
expect_rc 1
expect_err 'deep|depth|nest' "that it is nested too deep"
end

begin "a document file that does not exist"
printf '[]\n' >"$CASE_DIR/patch.json"
tt 10 patch "$CASE_DIR/nothing-here.json" "$CASE_DIR/patch.json"
expect_rc 1
expect_err 'nothing-here\.json' "the file"
end

# ---- Usage ----

begin "usage: one file"
printf '{}\n' >"$CASE_DIR/doc.json"
tt 10 patch "$CASE_DIR/doc.json"
expect_rc 2
expect_err 'usage|patch' "how to call it"
end

begin "usage: three files"
printf '{}\n' >"$CASE_DIR/doc.json"
tt 10 patch "$CASE_DIR/doc.json" "$CASE_DIR/doc.json" "$CASE_DIR/doc.json"
expect_rc 2
expect_err 'usage|patch' "how to call it"
end

finish
