// ESM entry: the same objects as the CommonJS build, so `instanceof` and the
// per-thread lock queues are shared however the package is loaded.

export type {
  AcquireOptions,
  AcquireSyncOptions,
  FileLockOptions,
  FlockOperation,
  FlockOptions,
  MutexAcquireOptions,
  RegionInfo,
  SharedMutexOptions,
} from './index.js';
export {
  AbortError,
  FileLock,
  flock,
  flockSync,
  LockError,
  LockHandle,
  MutexHandle,
  SharedMutex,
} from './index.js';
