'use strict';
// Bench children in this process tree: request/response over IPC, every
// request bounded in time, every child killed by the time the bench exits.
const { fork } = require('node:child_process');
const path = require('node:path');

const live = new Set();

class Child {
  constructor() {
    this.proc = fork(path.join(__dirname, 'child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.seq = 0;
    this.pending = new Map();
    this.exited = false;
    live.add(this);
    this.proc.on('message', (m) => {
      const p = this.pending.get(m.seq);
      if (p === undefined) return;
      this.pending.delete(m.seq);
      clearTimeout(p.timer);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.result);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      live.delete(this);
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`bench child exited (${signal ?? code})`));
      }
      this.pending.clear();
    });
  }

  /** Resolves with the child's answer; rejects with code 'EBOUND' after `boundMs`. */
  call(op, args = {}, boundMs = 60000) {
    if (this.exited) return Promise.reject(new Error('bench child has exited'));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(Object.assign(new Error(`${op} took over ${boundMs} ms`), { code: 'EBOUND' }));
      }, boundMs);
      this.pending.set(seq, { resolve, reject, timer });
      this.proc.send({ ...args, op, seq });
    });
  }

  kill() {
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  /** Kills and waits until it is gone. */
  async stop() {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.proc.once('exit', resolve));
    this.kill();
    await gone;
  }
}

function killAll() {
  for (const child of live) child.kill();
}

process.on('exit', killAll);

module.exports = { Child, killAll };

/** Children by index, respawned when one has died or been killed. */
class Pool {
  constructor() {
    this.children = [];
  }

  at(i) {
    const c = this.children[i];
    if (c === undefined || c.exited) this.children[i] = new Child();
    return this.children[i];
  }

  async stop(count = this.children.length) {
    await Promise.all(this.children.slice(0, count).map((c) => c?.stop()));
  }
}

module.exports.Pool = Pool;
