#!/usr/bin/env bash
# Builds interlock.node a second way, through cmake-js and CMakeLists.txt, into
# build-cmake/ (node-gyp's build/ is left alone). Headers come from the local
# Node install, never from the network.
#
#   scripts/build-cmake.sh          build build-cmake/Release/interlock.node
#   scripts/build-cmake.sh --clean  the same from an empty build-cmake/
#   scripts/build-cmake.sh --test   build, then run the mocha suite against it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=build-cmake
clean=0 test=0
for arg in "$@"; do
  case $arg in
    --clean) clean=1 ;;
    --test) test=1 ;;
    *) echo "usage: $0 [--clean] [--test]" >&2; exit 2 ;;
  esac
done

# The prefix node runs from holds include/node (Debian: /usr); cmake-js takes
# it as its "nodedir" and then skips its download. A mirror that refuses
# connections makes any attempt to download fail at once instead.
nodedir=${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  echo "no Node headers in $nodedir/include/node; set npm_config_nodedir" >&2
  exit 1
fi
export npm_config_nodedir=$nodedir
export NVM_NODEJS_ORG_MIRROR=http://127.0.0.1:9

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

[ $clean -eq 0 ] || rm -rf "$out"
start=$EPOCHREALTIME
node_modules/.bin/cmake-js build --directory "$root" --out "$out" --config Release --parallel 2 --log-level warn
addon=$out/Release/interlock.node
[ -f "$addon" ] || { echo "cmake-js produced no $addon" >&2; exit 1; }
echo "built $addon in $(since "$start") s"

[ $test -eq 1 ] || exit 0

# mocha runs in a copy of the working tree (tracked and new files, nothing
# ignored: no build/, no prebuilds/) whose build/Release holds the cmake
# build, which is where node-gyp-build looks first. The copy, not a git
# clone, so the JS under test matches the native sources just compiled.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/interlock-cmake.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # some tests run fixtures as another user (nobody)
git ls-files -z -co --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar -C "$root" --null -T - -cf - | tar -C "$tmp" -xf -
ln -s "$root/node_modules" "$tmp/node_modules"
mkdir -p "$tmp/build/Release"
cp "$addon" "$tmp/build/Release/interlock.node"
cd "$tmp"
node_modules/.bin/tsc -p tsconfig.build.json
node -e '
  const fs = require("fs"), path = require("path");
  const found = require("node-gyp-build").path(".");
  if (fs.realpathSync(found) !== path.resolve("build/Release/interlock.node")) {
    console.error("node-gyp-build would load", found, "not the cmake build");
    process.exit(1);
  }'
if ! cmp -s build/Release/interlock.node "$root/$addon"; then
  echo "the copy is not the cmake build" >&2
  exit 1
fi
echo "mocha against $root/$addon (copied to $tmp)"
# The copy has no .cache/: the runtimes installed for the checkout (Node 24,
# Deno) are found there, so their cases run here too instead of skipping.
export INTERLOCK_RUNTIMES_DIR=${INTERLOCK_RUNTIMES_DIR:-$root/.cache/runtimes}
start=$EPOCHREALTIME
node_modules/.bin/mocha
echo "mocha against the cmake build passed in $(since "$start") s"
