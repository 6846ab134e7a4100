// ESM entry of interlock/redis: the CommonJS build's own objects.
export type { RedisLockOptions, RemoteAcquireOptions } from './index.js';
export { RedisLock, RemoteHandle } from './index.js';
