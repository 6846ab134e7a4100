#!/usr/bin/env node
'use strict';
// Fails if a prebuilt .node needs more from glibc or libstdc++ than Node 20's
// oldest supported Linux (glibc 2.28, GCC 8's libstdc++: RHEL 8) provides.
// Reads the ELF version needs (readelf -V) and names the symbols behind each
// version above the floor (readelf --dyn-syms).
//   node scripts/check-glibc.js [file.node ...]   (default: prebuilds/*/*.node)
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11', GCC: '7.0.0' };

function compare(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** { prefix, number } for a version tag like GLIBC_2.34, or null (e.g. GLIBC_PRIVATE). */
function parseTag(tag) {
  const m = /^([A-Z]+)_(\d+(?:\.\d+)*)$/.exec(tag);
  return m ? { prefix: m[1], number: m[2] } : null;
}

/** Version needs and undefined versioned symbols of one ELF file. */
function inspect(file) {
  const out = execFileSync('readelf', ['-V', '-W', '--dyn-syms', '-d', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const needs = []; // { file, tag, weak }
  const symbols = new Map(); // tag -> [symbol]
  const needed = [];
  let lib = null;
  for (const line of out.split('\n')) {
    let m = /File: (\S+)/.exec(line);
    if (m) lib = m[1];
    m = /Name: (\S+)\s+Flags: (.*?)\s+Version:/.exec(line);
    if (m && lib) needs.push({ file: lib, tag: m[1], weak: /WEAK/.test(m[2]) });
    m = /\sUND\s+(\S+?)@@?(\S+)/.exec(line);
    if (m) {
      const list = symbols.get(m[2]) ?? [];
      list.push(/\sWEAK\s/.test(line) ? `${m[1]} (weak)` : m[1]);
      symbols.set(m[2], list);
    }
    m = /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(line);
    if (m) needed.push(m[1]);
  }
  return { needs, symbols, needed };
}

function check(file) {
  const { needs, symbols, needed } = inspect(file);
  const max = {};
  const over = [];
  for (const need of needs) {
    const v = parseTag(need.tag);
    if (!v || !(v.prefix in FLOORS)) continue;
    // A weak need (all its symbols weak) is not checked by the loader: a
    // missing version there only leaves those symbols null.
    if (need.weak) continue;
    if (!max[v.prefix] || compare(v.number, max[v.prefix]) > 0) max[v.prefix] = v.number;
    if (compare(v.number, FLOORS[v.prefix]) > 0) over.push(need.tag);
  }
  const weak = needs.filter((n) => n.weak).map((n) => n.tag);
  console.log(`${file}`);
  console.log(`  needed: ${needed.join(', ')}`);
  for (const prefix of Object.keys(FLOORS)) {
    if (max[prefix]) console.log(`  ${prefix}: needs ${max[prefix]} (floor ${FLOORS[prefix]})`);
  }
  for (const tag of weak) console.log(`  weak (optional) ${tag}: ${(symbols.get(tag) ?? []).join(', ')}`);
  for (const tag of over) console.log(`  OVER ${tag}: ${(symbols.get(tag) ?? []).join(', ')}`);
  return over.length === 0;
}

function defaultFiles() {
  const root = path.join(__dirname, '..', 'prebuilds');
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .flatMap((dir) => fs.readdirSync(path.join(root, dir)).map((f) => path.join(root, dir, f)))
    .filter((f) => f.endsWith('.node'));
}

const files = process.argv.length > 2 ? process.argv.slice(2) : defaultFiles();
if (files.length === 0) {
  console.error('check-glibc: no .node files (run `npm run prebuilds` first)');
  process.exit(1);
}
let ok = true;
for (const file of files) ok = check(file) && ok;
console.log(ok ? 'check-glibc: ok' : 'check-glibc: FAIL: needs above the floor');
process.exit(ok ? 0 : 1);
