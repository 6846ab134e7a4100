#!/usr/bin/env bash
# Builds prebuilds/linux-x64 and prebuilds/linux-arm64 with prebuildify
# (--napi --strip), arm64 cross-compiled with Debian's aarch64 toolchain.
# The builds run in a temporary copy of the sources, so build/ (the shared
# source build) is never touched. Every unit is compiled with
# native/core/glibc_compat.h so that the binaries load on glibc >= 2.28 and
# GCC 8's libstdc++; scripts/check-glibc.js checks that at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [ "$(uname -m)" != x86_64 ]; then
  echo "prebuild: runs on an x86_64 host (it cross-compiles arm64 from there)" >&2
  exit 1
fi

# Tools, installed from Debian's archive when missing.
need=()
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v strip >/dev/null || need+=(binutils)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v aarch64-linux-gnu-strip >/dev/null || need+=(binutils-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
  echo "prebuild: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work="$(mktemp -d /tmp/interlock-prebuild.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp -r binding.gyp package.json native "$work/"
ln -s "$root/node_modules" "$work/node_modules"

export npm_config_nodedir="${npm_config_nodedir:-/usr}" # headers of this node; no downloads
compat_cxx="-include $work/native/core/glibc_compat.h"
# --wrap: see glibc_compat.h (fstat). libpthread.so.0: on glibc < 2.34 the
# pinned pthread symbols live there (on 2.34+ it is an empty stub).
compat_ld="-Wl,--wrap=fstat64 -Wl,--push-state,--no-as-needed,-l:libpthread.so.0,--pop-state"

# --tag-libc names them interlock.glibc.node: on musl (Alpine) node-gyp-build
# then finds no match and builds from source, rather than load a glibc binary.
build() { # arch, then env assignments for the compiler
  local arch="$1"
  shift
  echo "prebuild: linux-$arch"
  (cd "$work" && env "$@" CXXFLAGS="$compat_cxx ${CXXFLAGS:-}" LDFLAGS="$compat_ld ${LDFLAGS:-}" \
    node_modules/.bin/prebuildify --napi --strip --tag-libc --arch "$arch" "${strip_bin[@]}" >"$work/$arch.log" 2>&1) || {
    cat "$work/$arch.log" >&2
    exit 1
  }
}

strip_bin=()
build x64
strip_bin=(--strip-bin aarch64-linux-gnu-strip)
build arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++

node scripts/lib-weak-version-needs.js "$work"/prebuilds/*/*.node
for pair in x64:X86-64 arm64:AArch64; do
  f="$work/prebuilds/linux-${pair%%:*}/interlock.glibc.node"
  readelf -h "$f" | grep -q "Machine:.*${pair#*:}" || {
    echo "prebuild: $f is not ${pair#*:}" >&2
    exit 1
  }
done

rm -rf prebuilds
cp -r "$work/prebuilds" prebuilds
ls -l prebuilds/*/*.node
node scripts/check-glibc.js
