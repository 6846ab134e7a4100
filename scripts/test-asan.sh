#!/usr/bin/env bash
# The mocha suite against an AddressSanitizer + UBSan build of the addon
# (issue 7). The addon is built by cmake-js from CMakeLists.txt (which reads
# sources and flags from binding.gyp) with INTERLOCK_SANITIZE=address,undefined
# into build-asan/ (build/ is left alone); mocha then runs in a copy of the
# tree whose build/Release holds it, with libasan preloaded into every node
# (node itself is not instrumented; the runtime must come first). Every
# process the suite starts inherits the preload and writes any report to
# $logs/asan.<pid>; the run passes only with mocha green and no report.
# A canary (a deliberate heap overflow in a tiny sanitized library, dlopened
# by node) proves first that a report would be seen.
#
#   scripts/test-asan.sh [--no-build] [mocha args...]   (default: the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=build-asan
build=1
if [ "${1:-}" = "--no-build" ]; then
  build=0
  shift
fi

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

nodedir=${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}
export npm_config_nodedir=$nodedir
export NVM_NODEJS_ORG_MIRROR=http://127.0.0.1:9 # never download headers

if [ $build -eq 1 ]; then
  start=$EPOCHREALTIME
  node_modules/.bin/cmake-js build --directory "$root" --out "$out" --config Release --parallel 2 \
    --log-level warn --CDINTERLOCK_SANITIZE=address,undefined
  echo "built $out/Release/interlock.node in $(since "$start") s"
fi
addon=$root/$out/Release/interlock.node
[ -f "$addon" ] || { echo "no $addon" >&2; exit 1; }
ldd "$addon" | grep -q libasan || { echo "$addon is not linked with libasan" >&2; exit 1; }

libasan=$(gcc -print-file-name=libasan.so)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/interlock-asan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # some tests run fixtures as nobody
logs=$tmp/logs
mkdir -m 1777 "$logs" # nobody's processes log here too

# detect_leaks=0: node does not free everything at exit. V8 handles SIGSEGV
# itself (wasm trap handler), so ASan leaves the signal alone. Reports go to
# files, one per process, since children's stderr is often swallowed.
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:allow_user_segv_handler=1:detect_odr_violation=0:log_path=$logs/asan:print_summary=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"

# Canary: a heap overflow in a sanitized shared library, run by node.
cat >"$tmp/canary.c" <<'EOF'
#include <stdlib.h>
__attribute__((constructor)) static void overflow(void) {
  volatile char* p = malloc(8);
  p[8] = 1;
  free((void*)p);
}
EOF
gcc -shared -fPIC -fsanitize=address -g -o "$tmp/canary.so" "$tmp/canary.c"
LD_PRELOAD=$libasan node -e "try { process.dlopen({ exports: {} }, '$tmp/canary.so') } catch {}" 2>/dev/null || true
if ! cat "$logs"/asan.* 2>/dev/null | grep -q 'heap-buffer-overflow'; then
  echo "canary: ASan did not report the deliberate overflow; reports would go unseen" >&2
  exit 1
fi
echo "canary: ASan reported the deliberate heap overflow ($(ls "$logs" | wc -l) log)"
rm -f "$logs"/*

# A copy of the working tree (tracked and new files) with the ASan addon
# where node-gyp-build looks first.
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
    console.error("node-gyp-build would load", found, "not the ASan build");
    process.exit(1);
  }'

export LD_PRELOAD=$libasan
# The sanitized addon really loads under the preload (a missing runtime fails here).
node -e 'require("./").FileLock; require("./").SharedMutex'

echo "mocha ${*:-(whole suite)} against $addon, libasan preloaded, logs in $logs"
start=$EPOCHREALTIME
status=0
node_modules/.bin/mocha "$@" || status=$?
seconds=$(since "$start")
unset LD_PRELOAD

reports=$(find "$logs" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
  for f in "$logs"/*; do
    echo "==== $f"
    head -60 "$f"
  done
fi
echo "asan: mocha exit $status in $seconds s; $reports sanitizer report file(s)"
[ "$status" -eq 0 ] && [ "$reports" -eq 0 ]
