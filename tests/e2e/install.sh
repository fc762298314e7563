#!/bin/sh
# make install, then a provider built outside the tree the way its author
# would: `cc hello.c $(pkg-config --cflags --libs tether-provider)` against
# the installed headers and library, driven by the installed tether.
. "$(dirname "$0")/lib.sh"

PREFIX=$E2E_TMP/prefix

begin "make install puts binaries, headers, library and pkg-config file in PREFIX"
if ! timeout 300 make -s BUILD="$TETHER_BUILD" install PREFIX="$PREFIX" \
  >"$E2E_TMP/install.out" 2>&1; then
  fail "make install failed: $(squash "$E2E_TMP/install.out")"
else
  for f in bin/tether bin/tether-local include/tether/provider.h \
    include/tether/json.h include/tether/protocol.h lib/libtether-provider.a \
    lib/pkgconfig/tether-provider.pc; do
    [ -e "$PREFIX/$f" ] || fail "$PREFIX/$f is missing"
  done
fi
end

begin "the example provider builds against the installed library with pkg-config"
if ! PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig timeout 120 \
  make -s -C examples/c-provider BUILD="$E2E_TMP/example" \
  >"$E2E_TMP/example.out" 2>&1; then
  fail "the example did not build: $(squash "$E2E_TMP/example.out")"
elif [ ! -x "$E2E_TMP/example/hello" ]; then
  fail "no binary at $E2E_TMP/example/hello"
elif grep -q -- "-I$(pwd)/include" "$E2E_TMP/example.out"; then
  fail "the build used the source tree's headers, not the installed ones"
fi
end

begin "the installed tether drives the example through create, update and delete"
HELLO=$E2E_TMP/example/hello
TETHER=$PREFIX/bin/tether
if [ -x "$HELLO" ]; then
  tt 20 run create --provider-exe "$HELLO" --type greeting \
    --input-str name world
  expect_rc 0
  expect_out '"greeting":"Hello,world."'
  tt 20 run update --provider-exe "$HELLO" --type greeting \
    --previous-inputs-json '{"name":"world"}' \
    --previous-outputs-json '{"greeting":"Hello, world."}' \
    --inputs-json '{"name":"you","shout":true}'
  expect_rc 0
  expect_out '"greeting":"Hello,you!"'
  tt 20 run delete --provider-exe "$HELLO" --type greeting \
    --inputs-json '{"name":"you"}'
  expect_rc 0
  tt 20 run create --provider-exe "$HELLO" --type greeting \
    --input-json name 42
  expect_rc 1
  expect_err '/inputProperties/name'
else
  fail "the example was not built"
fi
end

finish
