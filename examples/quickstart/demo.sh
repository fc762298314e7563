#!/bin/sh
# The quickstart walkthrough (`make demo`): a deployment of tether-local
# resources with a local state file, taken through its life in a
# temporary directory that is removed afterwards, so it can run any
# number of times from a fresh clone.
#
#   1. plan, then apply: three resources created, recorded in
#      tether-state.json next to tether.json;
#   2. apply again: nothing to do, no provider called but the state store;
#   3. a change (the greeting), planned and applied: the dependent file
#      follows, because its contents reference the greeting's output;
#   4. the state as recorded: list, one record, the event history;
#   5. the dependency graph, and destroy.
#
# Variables: TETHER_BUILD (default build), where make put the binaries.
set -eu
cd "$(dirname "$0")"
EXAMPLE=$(pwd)
cd ../..
BUILD=${TETHER_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
TETHER=$BUILD/bin/tether
for b in "$TETHER" "$BUILD/bin/tether-local"; do
  [ -x "$b" ] || { echo "demo: $b is missing: run make first" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tether-quickstart.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'rm -rf "$WORK"; exit 130' HUP INT PIPE TERM
cp "$EXAMPLE/tether.json" "$WORK/"
cd "$WORK"

# Shows a command the way a person would type it (in bold on a terminal),
# then runs it.
if [ -t 1 ]; then BOLD=$(printf '\033[1m') PLAIN=$(printf '\033[0m'); else
  BOLD= PLAIN=; fi
run() {
  printf '\n%s$ %s%s\n' "$BOLD" "$*" "$PLAIN"
  "$@"
}
tether() { "$TETHER" "$@"; }

echo "Working in $WORK (removed at the end)."
run cat tether.json
run tether plan
run tether apply
run cat hello.txt
echo
echo "# Applying again changes nothing: every resource is unchanged."
run tether apply
echo
echo "# A change: the greeting's program prints something else. hello.txt"
echo "# references its output, so it is updated too, once the new output"
echo "# is known."
sed 's/"args": \["hello"\]/"args": ["hello again"]/' tether.json >tether.json.new
mv tether.json.new tether.json
run tether plan
run tether apply
run cat hello.txt
run tether state list
run tether state show hello
run tether state history
run tether graph
run tether destroy
run tether state list
echo
echo "Done: the walkthrough's directory is removed now."
