// ESM entry: the same objects as the CommonJS build, so `instanceof` and the
// per-thread lock queues are shared however the package is loaded.

export type {
  AcquireOptions,
  AcquireSyncOptions,
  FileLockOptions,
  FlockOperation,
  FlockOptions,
  Lockable,
  LockGrantedCallback,
  LockInfo,
  LockManagerOptions,
  LockManagerSnapshot,
  LockMode,
  LockOptions,
  MutexAcquireOptions,
  RegionInfo,
  SemaphoreAcquireOptions,
  SemaphoreInfo,
  SemaphoreOptions,
  SharedMutexOptions,
} from './index.js';
export {
  AbortError,
  FileLock,
  flock,
  flockSync,
  LOCK_NAME_MAX,
  Lock,
  LockError,
  LockHandle,
  LockManager,
  locks,
  MutexHandle,
  Semaphore,
  SemaphoreHandle,
  SharedMutex,
} from './index.js';
