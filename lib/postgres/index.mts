// ESM entry of interlock/postgres: the CommonJS build's own objects.
export type { PgLockOptions, RemoteAcquireOptions } from './index.js';
export { advisoryKey, PgLock, RemoteHandle } from './index.js';
