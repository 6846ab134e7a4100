// Which signals sent to interlock reach the command, and how. Imported first
// by main.ts: the SIGUSR1 listener must be in place as early as possible.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1'] as const;

let command: ChildProcess | null = null;

/**
 * Whether a terminal's ^C already reached the command: a terminal signals its
 * foreground process group, which the command shares with us. Then passing
 * SIGINT on would deliver it twice (many tools take a second one as "force
 * quit"); flock(1) does not pass it on at all.
 */
function inTerminalForeground(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state ppid pgrp session tty_nr tpgid
    const [, , pgrp, , tty, tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return tty !== '0' && pgrp === tpgid;
  } catch {
    return false;
  }
}

function forward(signal: NodeJS.Signals): void {
  if (command === null) {
    // Only SIGUSR1 is listened to while no command runs: end as its default
    // action (and flock(1)) would.
    process.exit(128 + constants.signals[signal]);
  }
  if (signal === 'SIGINT' && command.pid !== undefined && inTerminalForeground(command.pid)) return;
  command.kill(signal);
}

// SIGUSR1 makes Node open its inspector on 127.0.0.1:9229, where any local
// user could run code as ours, and Node 20 has no --disable-sigusr1. A
// listener of ours replaces Node's handler; it stays for the life of the
// process (removing the last one would restore SIGUSR1's default action).
process.on('SIGUSR1', forward);

/** Passes FORWARDED signals on to `child` until the returned function is called. */
export function forwardSignals(child: ChildProcess): () => void {
  command = child;
  const others = FORWARDED.filter((s) => s !== 'SIGUSR1');
  for (const signal of others) process.on(signal, forward);
  return () => {
    for (const signal of others) process.off(signal, forward);
    command = null;
  };
}
