#!/usr/bin/env bash
# The package as a user gets it: pack, install the tarball into a fresh
# project with a PATH that holds only node, npm and sh (no compiler, make or
# python, so a fallback to a source build would fail), then require and
# import it, round-trip a FileLock and a SharedMutex, run the CLI, and check
# that the prebuild was loaded and nothing was built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/lib-prebuilds.sh
. scripts/lib-prebuilds.sh
ensure_prebuilds

work="$(mktemp -d /tmp/interlock-package.XXXXXX)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/project" "$work/tmp"
for tool in node npm sh; do ln -s "$(readlink -f "$(command -v "$tool")")" "$work/bin/$tool"; done

npm pack --silent --pack-destination "$work" >/dev/null
tarball="$(ls "$work"/interlock-*.tgz)"
echo "tarball: $(basename "$tarball"), $(stat -c %s "$tarball") bytes"
tar -tzvf "$tarball" | awk '{ printf "  %8s  %s\n", $3, $6 }'

# Only node, npm and sh on PATH; HOME kept for npm's cache and registry config.
run() {
  (cd "$work/project" && env -i PATH="$work/bin" HOME="$HOME" TMPDIR="$work/tmp" \
    ${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"} "$@")
}
for tool in cc gcc g++ c++ make python3 python; do
  if run sh -c "command -v $tool" >/dev/null; then
    echo "test-package: $tool is reachable from the install PATH" >&2
    exit 1
  fi
done

run npm init -y >/dev/null
# npm 11 skips dependencies' install scripts unless allowed; allow ours, so
# that its `install` (node-gyp-build, which falls back to compiling) runs.
run npm pkg set allowScripts.interlock=true --json
run npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$tarball"
installed="$work/project/node_modules/interlock"
if [ -e "$installed/build" ]; then
  echo "test-package: FAIL: the install built from source ($installed/build exists)" >&2
  exit 1
fi

name="interlock-package-$$-$RANDOM"
cat >"$work/project/roundtrip.js" <<'EOF'
'use strict';
// Round-trips a FileLock and a SharedMutex; `api` is the loaded package.
module.exports = async function roundtrip(api, how, name) {
  const fs = require('node:fs');
  const path = require('node:path');
  const { FileLock, SharedMutex } = api;
  const file = path.join(process.env.TMPDIR, `${name}.lock`);
  const lock = new FileLock(file);
  const h = await lock.acquire({ timeout: 1000 });
  if (lock.tryAcquire() !== null) throw new Error('FileLock: a second exclusive grant');
  h.release();
  lock.runSync(() => {});
  lock.close();
  const m = new SharedMutex(name, { dataSize: 8 });
  try {
    const g = await m.acquire({ timeout: 1000 });
    m.data.writeBigUInt64LE(m.data.readBigUInt64LE(0) + 1n);
    g.release();
    const g2 = m.acquireSync({ timeout: 1000 });
    if (g2.token <= g.token || g2.ownerDied) throw new Error('SharedMutex: bad token or ownerDied');
    g2.release();
  } finally {
    m.close();
  }
  const loaded = fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/)[5])
    .find((p) => p?.endsWith('.node'));
  console.log(`${how}: FileLock and SharedMutex round-trip ok; addon ${path.relative(process.cwd(), loaded)}`);
  return loaded;
};
EOF
cat >"$work/project/check.cjs" <<'EOF'
'use strict';
require('./roundtrip.js')(require('interlock'), 'require', process.argv[2]).then((loaded) => {
  if (!loaded.endsWith(`prebuilds/linux-${process.arch}/interlock.glibc.node`)) throw new Error(`not the prebuild: ${loaded}`);
});
EOF
cat >"$work/project/check.mjs" <<'EOF'
import { createRequire } from 'node:module';
import { FileLock, SharedMutex } from 'interlock';
const roundtrip = createRequire(import.meta.url)('./roundtrip.js');
await roundtrip({ FileLock, SharedMutex }, 'import', process.argv[2]);
EOF
status=0
run node check.cjs "$name" || status=1
run node check.mjs "$name" || status=1
run node -e "require('interlock').SharedMutex.unlink(process.argv[1])" "$name" || status=1
[ ! -e "/dev/shm/$name" ] || status=1
out="$(run node_modules/.bin/interlock -n "$work/tmp/cli.lock" node -e "console.log('cli ok')")" || status=1
echo "bin: $out"
[ "$out" = "cli ok" ] || status=1

# Control: without its prebuild the same install must fail here, which
# shows that the PATH above really rules out a build from source.
rm -rf "$installed/prebuilds/linux-x64"
if run npm rebuild interlock --foreground-scripts >"$work/control.log" 2>&1; then
  echo "test-package: FAIL: control: a rebuild without the prebuild succeeded" >&2
  status=1
else
  echo "control: without the prebuild, install fails: $(grep -m1 -o -E "gyp ERR! (stack|find Python).*" "$work/control.log" || tail -1 "$work/control.log")"
fi
[ ! -e "$installed/build/Release/interlock.node" ] || status=1

if [ "$status" != 0 ]; then
  echo "test-package: FAIL" >&2
  exit 1
fi
echo "test-package: ok (installed with PATH=node,npm,sh; no build/; prebuild loaded)"
