// The compiled addon, found by node-gyp-build: a prebuild for this platform
// if one ships, else build/Release from a source build.
import { join } from 'node:path';

export interface NativeWait {
  cancel(): void;
}

/** errno is 0 on success, else negative; `syscall` names the failing call. */
export type WaitCallback = (errno: number, syscall?: string) => void;

export interface NativeLockFile {
  tryLock(shared: boolean): boolean;
  lockSync(shared: boolean, timeoutMs: number): void;
  lockAsync(shared: boolean, callback: WaitCallback): NativeWait;
  unlock(): void;
  close(): void;
}

export interface Binding {
  LockFile: new (path: string, mode: number, create: boolean) => NativeLockFile;
  flockSync(fd: number, op: number, timeoutMs: number): boolean;
  flockAsync(fd: number, op: number, callback: WaitCallback): NativeWait;
  waitThreadsAlive(): number;
  LOCK_SH: number;
  LOCK_EX: number;
  LOCK_UN: number;
  LOCK_NB: number;
}

const load = require('node-gyp-build') as (dir: string) => unknown;

export const native = load(join(__dirname, '..')) as Binding;

export const ECANCELED = -125;
export const EWOULDBLOCK = -11;
