#!/usr/bin/env bash
# A TypeScript user's view of the package (issue 15): install the packed
# tarball into a fresh project and type-check test/types/consumer.ts, which
# uses `await using` and `using`, under each `module` setting a consumer may
# have: commonjs (the `types` field), node16 and nodenext (the exports
# conditions, from a .cts and an .mts file), and bundler. The typescript is
# the repository's own; the project gets the tarball and @types/node only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

work=$(mktemp -d /tmp/interlock-types.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/interlock-*.tgz)
types_node=$(node -p 'require("./package.json").devDependencies["@types/node"]')

mkdir "$work/project"
cd "$work/project"
npm init -y >/dev/null
# Types only: no install script, so no native build.
npm install --ignore-scripts --no-audit --no-fund --prefer-offline "$tarball" "@types/node@$types_node" >/dev/null

tsc() { node "$root/node_modules/typescript/bin/tsc" "$@"; }
check() {
  local module=$1 resolution=$2
  shift 2
  rm -rf src && mkdir src
  for ext in "$@"; do cp "$root/test/types/consumer.ts" "src/consumer.$ext"; done
  # skipLibCheck off: our .d.ts files are checked too.
  tsc --noEmit --strict --skipLibCheck false --target ES2022 --lib ES2022,ESNext.Disposable \
    --types node --module "$module" --moduleResolution "$resolution" src/consumer.*
  echo "test-types: module $module, moduleResolution $resolution ($*): ok"
}
check commonjs node10 ts
check node16 node16 cts mts
check nodenext nodenext cts mts
check esnext bundler ts mts
check preserve bundler ts
