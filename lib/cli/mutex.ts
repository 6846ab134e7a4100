// `interlock status --mutex <name>`: a SharedMutex region's header, read
// without mapping or locking it, and whether its holder still runs.
import { existsSync } from 'node:fs';
import { SharedMutex } from '../shared-mutex';
import { commandOf } from '../status';
import { quote } from './status';

export interface MutexStatus {
  name: string;
  path: string;
  held: boolean;
  ready: boolean;
  dataSize: number;
  /** The fencing token of the latest acquisition (a decimal string: it is a u64). */
  token: string;
  /** Set while held; set while free means a holder died or was torn down mid-update. */
  dirty: boolean;
  /** When the current or last holder acquired it (ISO 8601), or null if never. */
  acquiredAt: string | null;
  holder: { pid: number; tid: number; alive: boolean; threadAlive: boolean; command: string[] | null } | null;
  abi: string;
  /** A user lost writes to it (its file was cut while mapped): every use is refused, no ownerDied is promised. */
  broken: boolean;
  /** Made in this PID namespace; if not, its pid/tid are another namespace's and it is refused here. */
  samePidNamespace: boolean;
  /** A starving waiter's turn is pending: nobody else may take it until that waiter has. */
  handoff: boolean;
  /** How many times a starving waiter was given a turn since the region was made. */
  handoffs: number;
}

/** A header field holds what no holder writes: the region was overwritten. */
export class DamagedHeader extends Error {}

/** The acquisition time as ISO 8601; null if never acquired. */
function acquiredAt(ms: number): string | null {
  if (ms === 0) return null;
  const date = new Date(ms);
  if (!(ms > 0) || Number.isNaN(date.getTime())) throw new DamagedHeader(`acquisition time ${ms} ms is out of range`);
  return date.toISOString();
}

/**
 * Throws SharedMutex.inspect's errors (ENOENT, ERR_INCOMPATIBLE_REGION, bad
 * names) and DamagedHeader.
 */
export function mutexStatus(name: string): MutexStatus {
  const info = SharedMutex.inspect(name);
  const pid = info.holderPid;
  const holder =
    pid > 0
      ? {
          pid,
          tid: info.holderTid,
          alive: existsSync(`/proc/${pid}`),
          threadAlive: existsSync(`/proc/${pid}/task/${info.holderTid}`),
          command: commandOf(pid),
        }
      : null;
  return {
    name,
    path: `/dev/shm/${name}`,
    held: holder !== null,
    ready: info.ready,
    dataSize: info.dataSize,
    token: info.token.toString(),
    dirty: info.dirty,
    acquiredAt: acquiredAt(info.acquiredAt),
    holder,
    abi: info.abi,
    broken: info.broken,
    samePidNamespace: info.samePidNamespace,
    handoff: info.handoff,
    handoffs: info.handoffs,
  };
}

export function formatMutex(s: MutexStatus): string {
  const state = s.broken ? 'broken' : s.held ? 'held' : 'free';
  const lines = [`${s.path}: ${state}${s.ready ? '' : ' (not initialised yet)'}`];
  if (s.broken) {
    lines.push('  a user lost writes to it (its file was cut while mapped): every open and acquisition');
    lines.push('  is refused with ERR_INCOMPATIBLE_REGION, and no ownerDied will be reported; unlink it');
  }
  if (!s.samePidNamespace) lines.push('  made in another PID namespace: refused here, and its pids are not ours');
  const h = s.holder;
  if (h !== null && (s.broken || !s.samePidNamespace)) {
    lines.push(`  holder  pid ${h.pid} tid ${h.tid} (as recorded)`);
  } else if (h !== null) {
    const who = h.command === null ? '' : `  ${h.command.map(quote).join(' ')}`;
    const since = s.acquiredAt === null ? '' : ` since ${s.acquiredAt}`;
    lines.push(`  holder  pid ${h.pid} tid ${h.tid}${since}${who}`);
    if (!h.alive) lines.push('          not running: the next acquirer gets ownerDied');
    else if (!h.threadAlive) lines.push('          that thread has exited: the next acquirer gets ownerDied');
  } else if (s.acquiredAt !== null) {
    lines.push(`  last acquired ${s.acquiredAt}`);
  }
  lines.push(`  token   ${s.token}`);
  lines.push(
    `  dirty   ${s.dirty ? (s.held ? 'yes (an update is in progress)' : 'yes: a holder died mid-update; data may need repair') : 'no'}`,
  );
  lines.push(`  handoff ${s.handoff ? 'yes (a starving waiter is next)' : 'no'}; ${s.handoffs} so far`);
  lines.push(`  data    ${s.dataSize} bytes`);
  return `${lines.join('\n')}\n`;
}
