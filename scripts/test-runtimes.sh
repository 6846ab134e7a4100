#!/usr/bin/env bash
# Runs the mocha suite under Node 22, 24 and 26, Bun and Deno (issue 15), with
# the addon and dist/ built once by the system Node (npm ci / npm run build):
# Node-API is ABI-stable, so the same interlock.node must load everywhere.
# Runtimes come from scripts/runtimes.sh (pinned, cached in .cache/runtimes).
#   bash scripts/test-runtimes.sh                 # all five, whole suite
#   bash scripts/test-runtimes.sh bun deno        # just these
#   bash scripts/test-runtimes.sh --teardown      # also test:stress's chaos
#                                                 # module under node24/26
# Test files may follow `--`. Tests that need what a runtime lacks skip with
# the runtime and the reason printed. Exits non-zero if any run failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

teardown=0
names=()
files=()
while [ $# -gt 0 ]; do
  case $1 in
  --teardown) teardown=1 ;;
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
failed=()
summary=()
for i in "${!names[@]}"; do
  name=${names[$i]}
  # shellcheck disable=SC2207 # a command and its flags, no spaces inside
  cmd=($(run_cmd "$name" "${exes[$i]}"))
  echo
  echo "==> $name: $("${exes[$i]}" --version | head -1)"
  t=$SECONDS
  if "${cmd[@]}" "${mocha[@]}" "${files[@]}"; then
    summary+=("$name: ok ($((SECONDS - t)) s)")
  else
    summary+=("$name: FAILED ($((SECONDS - t)) s)")
    failed+=("$name")
  fi
  if [ $teardown = 1 ] && [[ $name == node2[46] ]]; then
    # The worker-teardown crash class (nodejs/node#65100) is newer Node's:
    # terminate workers inside contended waits there, many times over.
    t=$SECONDS
    if "${cmd[@]}" test/stress/run.js --quick --only chaos --no-report; then
      summary+=("$name chaos (quick): ok ($((SECONDS - t)) s)")
    else
      summary+=("$name chaos (quick): FAILED ($((SECONDS - t)) s)")
      failed+=("$name-chaos")
    fi
  fi
done

echo
echo "==> test-runtimes summary"
printf '  %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || { echo "test-runtimes: failed: ${failed[*]}" >&2; exit 1; }
