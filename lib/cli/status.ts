// `interlock status <file>`: FileLock.status() as text.
import type { FileStatus, LockProcess } from '../status';

export function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function describeOwner(role: string, o: LockProcess): string {
  let what: string;
  if (o.command !== null) what = o.command.map(quote).join(' ');
  else if (!o.alive) what = '(exited; its descriptor may live on in a child)';
  else what = '(command line unreadable)';
  if (o.inherited) what += '  (inherited descriptor)';
  return `  ${role}  pid ${String(o.pid).padEnd(7)} ${o.mode.padEnd(9)}  ${what}`;
}

export function formatStatus(s: FileStatus): string {
  const outside = s.heldOutside === null ? '' : ` by a process outside this PID namespace (${s.heldOutside})`;
  const lines = [`${s.path}: ${s.held ? 'held' : 'free'}${outside}`];
  for (const h of s.holders) lines.push(describeOwner('holder', h));
  for (const w of s.waiters) lines.push(describeOwner('waiter', w));
  // Said once there is something to say, as for --mutex.
  if (s.handoff || s.handoffs > 0) {
    lines.push(`  handoff ${s.handoff ? 'yes (a starving waiter is next)' : 'no'}; ${s.handoffs} so far`);
  }
  return `${lines.join('\n')}\n`;
}
