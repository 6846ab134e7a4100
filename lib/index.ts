export { AbortError, LockError } from './errors';
export { type AcquireOptions, type AcquireSyncOptions, FileLock, type FileLockOptions } from './file-lock';
export { type FlockOperation, type FlockOptions, flock, flockSync } from './flock';
export { LockHandle } from './handle';
