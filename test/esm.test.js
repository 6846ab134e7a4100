'use strict';
// The package as users load it: `import` and `require` of 'interlock' through
// package.json exports, from a project with the repo in node_modules.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');
const cjs = require('..');
const { tmpDir } = require('./support/helpers');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** Every `types` target under an exports condition tree. */
function typesTargets(node, out = []) {
  if (node !== null && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'types' && typeof value === 'string') out.push(value);
      else typesTargets(value, out);
    }
  }
  return out;
}

describe('package entry points (ESM and CJS)', () => {
  let project;

  before(() => {
    project = tmpDir('interlock-consumer-');
    fs.mkdirSync(path.join(project, 'node_modules'));
    fs.symlinkSync(root, path.join(project, 'node_modules', 'interlock'), 'dir');
    // Listed as a user's project would: Deno resolves bare imports of a
    // fresh process only through a package.json that names them.
    const manifest = { name: 'consumer', private: true, dependencies: { interlock: pkg.version } };
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify(manifest));
    fs.writeFileSync(path.join(project, 'load.mjs'), "export const load = () => import('interlock');\n");
  });

  it("import('interlock') gives the same objects as require('interlock')", async () => {
    const { load } = await import(pathToFileURL(path.join(project, 'load.mjs')).href);
    const esm = await load();
    const cjsNames = Object.keys(cjs).sort();
    for (const name of ['FileLock', 'LockHandle', 'LockError', 'AbortError', 'flock', 'flockSync']) {
      assert.ok(cjsNames.includes(name), `CJS exports ${name}`);
    }
    assert.deepEqual(
      Object.keys(esm)
        .filter((k) => k !== 'default')
        .sort(),
      cjsNames,
      'ESM has a named export for every CJS export',
    );
    for (const name of cjsNames) assert.equal(esm[name], cjs[name], `${name} is the same object`);
  });

  it("require('interlock') resolves through exports to dist/, the same module as the repo's", () => {
    const req = createRequire(path.join(project, 'index.js'));
    assert.equal(req.resolve('interlock'), path.join(root, 'dist', 'index.js'));
    assert.equal(req('interlock'), cjs);
    assert.equal(req('interlock/package.json').name, 'interlock');
  });

  it('every types path in package.json exists in dist/ and declares the API', () => {
    const targets = [...new Set([...typesTargets(pkg.exports), pkg.types].filter(Boolean))];
    assert.ok(targets.length >= 2, `types for import and require: ${targets}`);
    for (const target of targets) {
      const file = path.join(root, target);
      assert.ok(file.startsWith(path.join(root, 'dist') + path.sep), `${target} is under dist/`);
      assert.ok(fs.existsSync(file), `${target} exists (run npm run build:ts)`);
      const text = fs.readFileSync(file, 'utf8');
      // Subpath entries (interlock/web-locks, ...) declare their own API.
      if (!typesTargets(pkg.exports['.']).includes(target) && target !== pkg.types) continue;
      for (const name of ['FileLock', 'flock', 'flockSync', 'LockError']) {
        assert.match(text, new RegExp(`\\b${name}\\b`), `${target} declares ${name}`);
      }
    }
  });

  it('a static ESM import works in a fresh process', () => {
    const script = path.join(project, 'static.mjs');
    fs.writeFileSync(
      script,
      [
        "import { FileLock, LockError } from 'interlock';",
        "import { join } from 'node:path';",
        `const lock = new FileLock(join(${JSON.stringify(project)}, 'esm.lock'));`,
        'const h = await lock.acquire();',
        'console.log(JSON.stringify({ held: !h.released, error: typeof LockError }));',
        'h.release();',
        'lock.close();',
      ].join('\n'),
    );
    const out = JSON.parse(execFileSync(process.execPath, [script], { cwd: project, encoding: 'utf8' }));
    assert.deepEqual(out, { held: true, error: 'function' });
  });
});
