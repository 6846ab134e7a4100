#!/usr/bin/env bash
# Runs the mocha suite under Node 22, 24 and 26, Bun and Deno (issue 15), with
# the addon and dist/ built once by the system Node (npm ci / npm run build):
# Node-API is ABI-stable, so the same interlock.node must load everywhere.
# Runtimes come from scripts/runtimes.sh (pinned, cached in .cache/runtimes).
#   bash scripts/test-runtimes.sh                 # all five, whole suite
#   bash scripts/test-runtimes.sh bun deno        # just these
#   bash scripts/test-runtimes.sh --teardown      # also test:stress's chaos
#                                                 # module under node24/26
#   bash scripts/test-runtimes.sh --jobs 2 ...    # two runtimes at a time
# Test files may follow `--`. Tests that need what a runtime lacks skip with
# the runtime and the reason printed. Exits non-zero if any run failed.
# With --jobs N, up to N runtimes run at once (in the order named: put the
# longest first), each into a log printed whole when it ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

teardown=0
jobs=1
names=()
files=()
while [ $# -gt 0 ]; do
  case $1 in
  --teardown) teardown=1 ;;
  --jobs)
    shift
    [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || { echo "test-runtimes: --jobs needs a count" >&2; exit 1; }
    jobs=$1
    ;;
  --) shift; files=("$@"); break ;;
  *) names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || names=(node22 node24 node26 bun deno)

[ -e build/Release/interlock.node ] && [ -e dist/index.js ] ||
  { echo "test-runtimes: build first (npm run build)" >&2; exit 1; }

mapfile -t exes < <(bash scripts/runtimes.sh install "${names[@]}")

# The runtime's own command line for a script: Deno needs run and
# permissions (all of them: the suite spawns, opens, reads env, loads addons).
run_cmd() {
  case $1 in
  deno) echo "$2 run -A" ;;
  *) echo "$2" ;;
  esac
}

mocha=(node_modules/mocha/bin/mocha.js)
# .mocharc.json's spec would add every file to the ones named: drop it then.
[ ${#files[@]} -eq 0 ] || mocha+=(--no-config --timeout 30000 --forbid-only)
# Runtime $1's runs, each followed by a summary line in $out/$1.summary: the
# suite, and with --teardown on Node 24 and 26 the chaos stress module.
run_one() {
  local name=${names[$1]} exe=${exes[$1]} sum=$out/$1.summary t
  # shellcheck disable=SC2207 # a command and its flags, no spaces inside
  local cmd=($(run_cmd "$name" "$exe"))
  echo
  echo "==> $name: $("$exe" --version | head -1)"
  t=$SECONDS
  if "${cmd[@]}" "${mocha[@]}" "${files[@]}"; then
    echo "$name: ok ($((SECONDS - t)) s)" >>"$sum"
  else
    echo "$name: FAILED ($((SECONDS - t)) s)" >>"$sum"
  fi
  if [ $teardown = 1 ] && [[ $name == node2[46] ]]; then
    # The worker-teardown crash class (nodejs/node#65100) is newer Node's:
    # terminate workers inside contended waits there, many times over.
    t=$SECONDS
    if "${cmd[@]}" test/stress/run.js --quick --only chaos --no-report; then
      echo "$name chaos (quick): ok ($((SECONDS - t)) s)" >>"$sum"
    else
      echo "$name chaos (quick): FAILED ($((SECONDS - t)) s)" >>"$sum"
    fi
  fi
}

out=$(mktemp -d)
declare -A running=() # pid -> index of the runtime it runs
trap 'for p in "${!running[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$out"' EXIT
# Waits for one runtime's run to end and prints its log.
reap() {
  local pid
  wait -n -p pid || true
  cat "$out/${running[$pid]}.log"
  unset "running[$pid]"
}
t0=$SECONDS
if [ "$jobs" = 1 ]; then
  for i in "${!names[@]}"; do run_one "$i"; done
else
  for i in "${!names[@]}"; do
    while [ ${#running[@]} -ge "$jobs" ]; do reap; done
    run_one "$i" >"$out/$i.log" 2>&1 &
    running[$!]=$i
  done
  while [ ${#running[@]} -gt 0 ]; do reap; done
fi

echo
echo "==> test-runtimes summary ($((SECONDS - t0)) s, $jobs at a time)"
failed=()
for i in "${!names[@]}"; do
  sed 's/^/  /' "$out/$i.summary"
  ! grep -q FAILED "$out/$i.summary" || failed+=("${names[$i]}")
done
[ ${#failed[@]} -eq 0 ] || { echo "test-runtimes: failed: ${failed[*]}" >&2; exit 1; }
