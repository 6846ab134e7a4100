# Sourced by the test scripts: runs `npm run prebuilds` when a prebuild is
# missing or older than any native source, then checks the glibc floor.
ensure_prebuilds() {
  local arch f stale=0
  for arch in x64 arm64; do
    f="prebuilds/linux-$arch/interlock.glibc.node"
    if [ ! -f "$f" ] || [ -n "$(find binding.gyp native -newer "$f" -print -quit)" ]; then stale=1; fi
  done
  if [ "$stale" = 1 ]; then npm run prebuilds; fi
  node scripts/check-glibc.js >/dev/null
}
