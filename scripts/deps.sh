#!/bin/sh
# Installs the Debian packages tether needs, or says exactly what to run.
#   deps.sh build   compiler, libuv, jsmn, cmocka, pkg-config
#   deps.sh bench   also hyperfine-free peers: Node.js and npm (for the
#                   fast-json-patch comparison)
set -eu
want="build-essential pkg-config libuv1-dev libjsmn-dev libcmocka-dev"
[ "${1:-build}" = bench ] && want="$want nodejs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
# Node may come from outside Debian's packages; a working node is enough.
case "$missing" in *nodejs*) command -v node >/dev/null 2>&1 &&
  missing=$(echo "$missing" | sed 's/ nodejs//') ;; esac
[ -z "$missing" ] && exit 0

echo "tether: missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >&2 && exit 0
  echo "tether: apt-get install failed" >&2
  exit 1
fi
echo "tether: run this, then try again:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
