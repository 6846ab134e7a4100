// ESM entry of `interlock/web-locks`: the same module as the CommonJS one.
export { builtinLocks, locks } from './web-locks-install.js';
