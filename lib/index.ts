export { AbortError, LockError } from './errors';
export {
  type AcquireOptions,
  type AcquireSyncOptions,
  FileLock,
  FileLockHandle,
  type FileLockOptions,
} from './file-lock';
export { type FlockOperation, type FlockOptions, flock, flockSync } from './flock';
export { LockHandle } from './handle';
export type { Lockable } from './lock';
export type { RegionInfo, SemaphoreInfo } from './native';
export {
  Semaphore,
  type SemaphoreAcquireOptions,
  SemaphoreHandle,
  type SemaphoreOptions,
} from './semaphore';
export { type MutexAcquireOptions, MutexHandle, SharedMutex, type SharedMutexOptions } from './shared-mutex';
export type { FileStatus, LockProcess } from './status';
export {
  LOCK_NAME_MAX,
  Lock,
  type LockGrantedCallback,
  type LockInfo,
  LockManager,
  type LockManagerOptions,
  type LockManagerSnapshot,
  type LockMode,
  type LockOptions,
  locks,
} from './web-locks';
