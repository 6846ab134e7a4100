#!/usr/bin/env node
'use strict';
// Marks a version need VER_FLG_WEAK in an ELF64 little-endian shared object
// when every symbol that uses it is a weak undefined reference.
//   node scripts/lib-weak-version-needs.js file.node [...]
//
// Why: ld records a version need (say GLIBC_2.30 for an optional function
// referenced weakly) as required even when only weak references use it, and
// ld.so then refuses to load the file on an older glibc. With the flag set,
// ld.so skips a missing version (dl-version.c: "weak version not found" is
// not fatal) and the weak symbol resolves to null, which the code checks for.
// The addon has no such reference today (pthread_mutex_clocklock was one until
// SharedMutex waits stopped calling glibc's blocking lock); this keeps the
// prebuilds loadable if one comes back.
const fs = require('node:fs');

const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
const STB_WEAK = 2;

function cstr(buf, at) {
  return buf.toString('latin1', at, buf.indexOf(0, at));
}

function sections(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not an ELF64 LE file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const out = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    out.push({
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
      entsize: Number(buf.readBigUInt64LE(at + 0x38)),
    });
  }
  return out;
}

/** Version indexes used by at least one non-weak undefined dynamic symbol. */
function strongIndexes(buf, secs) {
  const dynsym = secs.find((s) => s.type === SHT_DYNSYM);
  const versym = secs.find((s) => s.type === SHT_GNU_VERSYM);
  const strong = new Set();
  for (let i = 0; i < dynsym.size / dynsym.entsize; i++) {
    const sym = dynsym.offset + i * dynsym.entsize;
    const bind = buf[sym + 4] >> 4;
    const shndx = buf.readUInt16LE(sym + 6);
    const index = buf.readUInt16LE(versym.offset + i * 2) & 0x7fff;
    if (shndx !== 0 || bind !== STB_WEAK) strong.add(index);
  }
  return strong;
}

function markWeak(file) {
  const buf = fs.readFileSync(file);
  const secs = sections(buf);
  const verneed = secs.find((s) => s.type === SHT_GNU_VERNEED);
  if (!verneed) return [];
  const strtab = secs[verneed.link].offset;
  const strong = strongIndexes(buf, secs);
  const marked = [];
  let need = verneed.offset;
  for (;;) {
    const cnt = buf.readUInt16LE(need + 2);
    let aux = need + buf.readUInt32LE(need + 8);
    for (let j = 0; j < cnt; j++) {
      const flags = buf.readUInt16LE(aux + 4);
      const index = buf.readUInt16LE(aux + 6) & 0x7fff;
      if (!strong.has(index) && !(flags & VER_FLG_WEAK)) {
        buf.writeUInt16LE(flags | VER_FLG_WEAK, aux + 4);
        marked.push(cstr(buf, strtab + buf.readUInt32LE(aux + 8)));
      }
      aux += buf.readUInt32LE(aux + 12);
    }
    const next = buf.readUInt32LE(need + 12);
    if (next === 0) break;
    need += next;
  }
  if (marked.length > 0) fs.writeFileSync(file, buf);
  return marked;
}

for (const file of process.argv.slice(2)) {
  const marked = markWeak(file);
  console.log(`${file}: ${marked.length ? `weak version needs: ${marked.join(', ')}` : 'no weak-only version needs'}`);
}
