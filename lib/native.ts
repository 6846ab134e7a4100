// The compiled addon, found by node-gyp-build: a prebuild for this platform
// if one ships, else build/Release from a source build.
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';

export interface NativeWait {
  cancel(): void;
}

/**
 * A native failure, thrown by sync calls and passed to async callbacks alike
 * (native/binding/errors.h); lib/errors.ts fromNative() words it.
 */
export interface NativeError extends Error {
  /** A system error: negative, as Node's. */
  errno?: number;
  /** One of interlock's own failures (ErrorKind in native/core/status.h), instead of errno. */
  kind?: string;
  syscall?: string;
  /** A region refused for its owner or mode: the file's. */
  ownerUid?: number;
  fileMode?: number;
}

/** An async wait's end: `error` null when granted, with the kind's grant. */
export type WaitCallback<G = unknown> = (error: NativeError | null, grant?: G) => void;

export interface NativeLockFile {
  /** Index for the by-slot hot-path functions (they skip napi_unwrap). */
  readonly slot: number;
  /** Opens the file if needed; its identity, "dev:ino". */
  open(): string;
  /** The filesystem of the last open: f_type, and its name if flock may not exclude there. */
  filesystem(): { type: number; name: string | null };
  /** null, or why grants carry no marks (token 0, no ownerDied news): the region and its failure. */
  marks(): (NativeError & { region: string }) | null;
  /** A grant, or undefined (no grant) when the thread is being torn down. */
  lockSync(shared: boolean, timeoutMs: number): Grant | undefined;
  lockAsync(shared: boolean, callback: WaitCallback<Grant>): NativeWait;
  close(): void;
}

export interface Binding {
  LockFile: {
    new (path: string | Buffer, mode: number, create: boolean, allowUnsafe: boolean): NativeLockFile;
    /** fstatfs(2) of an fd opened elsewhere (the CLI's own). */
    filesystemOf(fd: number): { type: number; name: string | null };
    /** Handoff turns in the marks of the file at `path` (zeroes without marks). */
    turnsOf(path: string | Buffer): { handoff: boolean; handoffs: number };
    /** Tests only: later opens see this f_type (0: the real one). */
    setFsTypeForTesting(fsType: number): void;
  };
  /** undefined (no lock) when the thread is being torn down. */
  flockSync(fd: number, op: number, timeoutMs: number): boolean | undefined;
  flockAsync(fd: number, op: number, callback: WaitCallback): NativeWait;
  SharedMutex: {
    new (name: string, dataSize: number, mode: number, allowForeignOwner: boolean): NativeSharedMutex;
  };
  inspectRegion(name: string): RegionInfo;
  Semaphore: new (name: string, permits: number, mode: number) => NativeSemaphore;
  unlinkSemaphore(name: string): void;
  LockTable: new (region: string, mode: number, threadId: number, onEvents: () => void) => NativeLockTable;
  /**
   * null when busy; true when granted, the grant then in `lastGrant[0]`;
   * else the grant itself (too large for a double, or no lastGrant; see fileGrant).
   */
  fileTryLock(slot: number, shared: boolean): true | Grant | null;
  /**
   * Where fileTryLock leaves a grant that fits a double (no heap number per
   * call). Missing only in a thread torn down as it loaded the addon, whose
   * tries then return grants themselves.
   */
  lastGrant?: Float64Array;
  fileUnlock(slot: number): void;
  mutexTryLock(slot: number): Grant;
  /** undefined (no grant) when the thread is being torn down. */
  mutexLockSync(slot: number, timeoutMs: number): Grant | undefined;
  mutexUnlock(slot: number): void;
  /** Errnos os.constants.errno lacks, from the C headers (positive). */
  errno: { EOWNERDEAD: number; ENOTRECOVERABLE: number };
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_UN: number;
  LOCK_NB: number;
}

const load = require('node-gyp-build') as (dir: string) => unknown;

export const native = load(join(__dirname, '..')) as Binding;

/** The errno of a wait that was cancelled: nobody is told, as nobody waits for it. */
export const ECANCELED = -osConstants.errno.ECANCELED;

/** One JS thread's client of a Web Locks table (see lib/web-locks.ts). */
export interface NativeLockTable {
  /** -1 (or -3 with events) when ifAvailable found it taken; else id * 4 + granted + 2 when events wait. */
  request(name: string, shared: boolean, ifAvailable: boolean, steal: boolean): number;
  /** 2 when events wait. */
  release(id: number): number;
  /** 1 if it was still pending and left the queue; + 2 when events wait. */
  abort(id: number): number;
  /** [held, pending, names]: each list flat (name length, shared, pid, threadId); the names' code units in a row. */
  query(): [unknown[], unknown[], ArrayBuffer];
  /** Flat: id, granted (false: lost). */
  takeEvents(): unknown[];
  keepAlive(on: boolean): void;
  liveClients(): number;
  close(): void;
}

/**
 * Grants travel as token * 2 + ownerDied: a number while exact (tokens below
 * 2^52), else a bigint; 0 means busy (SharedMutex), or held without marks
 * (FileLock, whose busy is null).
 */
export type Grant = number | bigint;

const lastGrant = native.lastGrant;

/** fileTryLock's answer as a grant, or null when busy. */
export function fileGrant(answer: true | Grant | null): Grant | null {
  return answer === true ? ((lastGrant as Float64Array)[0] as number) : answer;
}

export interface NativeSharedMutex {
  readonly slot: number;
  lockAsync(callback: WaitCallback<Grant>): NativeWait;
  close(): void;
  data(): ArrayBuffer;
  info(): RegionInfo;
}

/**
 * The header of a SharedMutex region, as `info()` and `SharedMutex.inspect()`
 * read it: who holds it, its fencing token and its health.
 */
export interface RegionInfo {
  /** Bytes of shared data (`options.dataSize` of its creator). */
  dataSize: number;
  /** The fencing token of the latest acquisition (0n before the first). */
  token: bigint;
  /** Initialised: false only while a creator sets it up, or after it died doing so. */
  ready: boolean;
  /** The last holder did not release cleanly (died, or its worker ended): the next one gets ownerDied. */
  dirty: boolean;
  /**
   * A user lost writes to the region (its file was cut under it): every use is
   * refused, and `dirty` promises no ownerDied to anyone.
   */
  broken: boolean;
  /** Made in this process's PID namespace (else it is refused). */
  samePidNamespace: boolean;
  /** The holder's process id, or 0 when it is free. */
  holderPid: number;
  /** The holder's thread id (the kernel's, as robust mutexes name owners), or 0. */
  holderTid: number;
  /** ms since the epoch (CLOCK_REALTIME) of the current holder's acquisition. */
  acquiredAt: number;
  /**
   * Handoff mode: a waiter that has waited over 1 ms has its turn pending, so
   * nobody else may take the mutex until it has (see README, Fairness).
   */
  handoff: boolean;
  /** How many times a starving waiter was given a turn since the region was made. */
  handoffs: number;
  /** Who made it: libc, architecture and type sizes; a region of another is refused. */
  abi: string;
}

/** A Semaphore grant: [token * 2 + ownerDied, holder record]. */
export type SemaphoreGrant = [number, number];

export interface NativeSemaphore {
  tryLock(weight: number): SemaphoreGrant | null;
  /** undefined (no grant) when the thread is being torn down. */
  lockSync(weight: number, timeoutMs: number): SemaphoreGrant | undefined;
  lockAsync(weight: number, callback: WaitCallback<SemaphoreGrant>): NativeWait;
  unlock(record: number): void;
  close(): void;
  info(): SemaphoreInfo;
}

/** A Semaphore's state, from `info()`: its size, what is free and who holds the rest. */
export interface SemaphoreInfo {
  /** The most that can be held at once (`options.permits`). */
  permits: number;
  /** Permits free now, as the kernel counts them. */
  available: number;
  /**
   * Waiters the kernel has queued (for permits, or for a heavy request's gate).
   * A released permit goes to them before any newcomer: handoff mode, always.
   */
  waiting: number;
  /** Grants made to a queued waiter since the semaphore was made. */
  handoffs: number;
  /** Every grant held now, by any process or thread. */
  holders: {
    /** The holder's process id. */
    pid: number;
    /** The holder's thread id (the kernel's). */
    tid: number;
    /** Permits it holds. */
    weight: number;
    /** ms since the epoch (CLOCK_REALTIME) of the acquisition. */
    since: number;
  }[];
}
