// `require('interlock/web-locks')`: makes `navigator.locks` this package's
// manager, so code written for the browser's (or Node's in-process) Web Locks
// coordinates with every process and worker thread of the user instead.
// Node 20 has no `navigator`: one is made holding `locks`. Node 21-23 have a
// `navigator` without `locks`. Node >= 24.5 has its own in-process
// `navigator.locks` (a getter on Navigator.prototype): it is shadowed on the
// instance, and the built-in stays reachable as `builtinLocks` below.
import { locks } from './web-locks';

type WithNavigator = { navigator?: object };
const g = globalThis as WithNavigator;

function builtin(): unknown {
  if (g.navigator === undefined) return undefined;
  const proto = Object.getPrototypeOf(g.navigator) as object | null;
  const desc = proto === null ? undefined : Object.getOwnPropertyDescriptor(proto, 'locks');
  return desc?.get?.call(g.navigator);
}

/** Node's own in-process manager when there was one (Node >= 24.5), else undefined. */
export const builtinLocks = builtin();

if (g.navigator === undefined) {
  Object.defineProperty(globalThis, 'navigator', {
    value: {},
    writable: true,
    configurable: true,
    enumerable: false,
  });
}
Object.defineProperty(g.navigator as object, 'locks', {
  value: locks,
  writable: false,
  configurable: true,
  enumerable: true,
});

export { locks };
