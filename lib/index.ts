export { AbortError, LockError } from './errors';
export { type AcquireOptions, type AcquireSyncOptions, FileLock, type FileLockOptions } from './file-lock';
export { type FlockOperation, type FlockOptions, flock, flockSync } from './flock';
export { LockHandle } from './handle';
export type { RegionInfo } from './native';
export { type MutexAcquireOptions, MutexHandle, SharedMutex, type SharedMutexOptions } from './shared-mutex';
