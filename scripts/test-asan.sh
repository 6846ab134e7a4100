#!/usr/bin/env bash
# The mocha suite against an AddressSanitizer + UBSan build of the addon
# (issue 7). The addon is built by cmake-js from CMakeLists.txt (which reads
# sources and flags from binding.gyp) with INTERLOCK_SANITIZE=address,undefined
# (-fno-sanitize-recover=all, -O1 -g) into build-asan/, never build/. mocha
# then runs in a copy of the working tree whose build/Release holds that
# addon, with libasan preloaded into node (node is not instrumented; the ASan
# runtime must be loaded first) and so into every process the suite starts.
#
# Where reports go: ASan writes one file per process to $logs/asan.<pid>.
# UBSan, beside a preloaded libasan, ignores log_path and prints to stderr,
# so mocha's output is scanned for "runtime error:"; and since UB aborts the
# process (no recovery), UB in a child whose stderr a test keeps fails that
# test instead. Canaries (a heap overflow and a signed overflow in tiny
# sanitized libraries, dlopened by node like the addon) prove first that
# both kinds of report would be seen. Pass: mocha green and no report.
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
libs=$(ldd "$addon")
for lib in libasan libubsan; do
  [[ $libs == *$lib* ]] || { echo "$addon is not linked with $lib" >&2; exit 1; }
done

libasan=$(gcc -print-file-name=libasan.so)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/interlock-asan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # some tests run fixtures as nobody
logs=$tmp/logs
mkdir -m 1777 "$logs" # nobody's processes log here too

# detect_leaks=0: node does not free everything at exit. V8 handles SIGSEGV
# itself (wasm trap handler), and SIGBUS is what hostile.test.js provokes on
# purpose (a region truncated under its users), so ASan leaves both signals
# to their owners.
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:detect_odr_violation=0:log_path=$logs/asan:print_summary=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# canary NAME SANITIZER 'C statements' 'report text': the report must show up
# in an ASan log file or on stderr.
canary() {
  printf '#include <stdlib.h>\n__attribute__((constructor)) static void bad(void) { %s }\n' "$3" >"$tmp/$1.c"
  gcc -shared -fPIC -fsanitize="$2" -fno-sanitize-recover=all -g -o "$tmp/$1.so" "$tmp/$1.c"
  LD_PRELOAD=$libasan node -e "process.dlopen({ exports: {} }, '$tmp/$1.so')" >"$tmp/$1.out" 2>&1 || true
  if ! grep -qs "$4" "$tmp/$1.out" "$logs"/asan.*; then
    echo "canary: no '$4' report from -fsanitize=$2; reports would go unseen" >&2
    exit 1
  fi
  echo "canary: -fsanitize=$2 reported '$4'"
  rm -f -- "$logs"/asan.*
}
canary heap address 'volatile char* p = malloc(8); p[8] = 1; free((void*)p);' heap-buffer-overflow
canary signed undefined 'volatile int i = 2147483647; i = i + 1;' 'runtime error: signed integer overflow'

# A copy of the working tree (tracked and new files) with the ASan addon
# where node-gyp-build looks first.
git ls-files -z -co --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar -C "$root" --null -T - -cf - | tar -C "$tmp" -xf -
[ -e "$tmp/node_modules" ] || ln -s "$root/node_modules" "$tmp/node_modules"
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

echo "mocha ${*:-(whole suite)} against $addon, libasan preloaded, ASan logs in $logs"
start=$EPOCHREALTIME
set +e
node_modules/.bin/mocha "$@" 2>&1 | tee "$tmp/mocha.out"
status=${PIPESTATUS[0]}
set -e
seconds=$(since "$start")
unset LD_PRELOAD

asan=$(find "$logs" -type f | wc -l)
for f in "$logs"/*; do
  [ -f "$f" ] || continue
  echo "==== $f"
  head -60 "$f"
done
ubsan=$(grep -c 'runtime error:' "$tmp/mocha.out" || true)
[ "$ubsan" -eq 0 ] || grep -A 12 'runtime error:' "$tmp/mocha.out" | head -80
echo "asan: mocha exit $status in $seconds s; $asan ASan report file(s), $ubsan UBSan report(s) on mocha's output"
[ "$status" -eq 0 ] && [ "$asan" -eq 0 ] && [ "$ubsan" -eq 0 ]
