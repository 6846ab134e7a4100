// Type-checked by scripts/test-types.sh as a user's code would be, under
// each `module` setting (copied to .cts and .mts where the setting tells
// the formats apart). Never run: it only has to compile, and each line
// marked as an expected error must stay one (so the types are not `any`).
import { AbortError, FileLock, flock, flockSync, LockError, type LockHandle, SharedMutex } from 'interlock';

export async function use(path: string, fd: number): Promise<number> {
  const lock = new FileLock(path, { mode: 0o600, create: true });
  {
    await using held = await lock.acquire({ shared: false, timeout: 1000, signal: AbortSignal.timeout(2000) });
    const handle: LockHandle = held;
    if (handle.released) return -1;
  }
  {
    using held = lock.acquireSync({ shared: true, timeout: 100 });
    held.release();
  }
  const maybe: LockHandle | null = lock.tryAcquire();
  maybe?.release();
  const n: number = await lock.run(async () => 1, { timeout: 10 });

  const mutex = new SharedMutex('interlock-types');
  {
    await using held = await mutex.acquire({ timeout: 1000 });
    if (held.ownerDied) return -2;
  }
  const info = mutex.info();
  const m: number = mutex.runSync(() => info.dataSize);

  const took: boolean = flockSync(fd, 'ex', { nonblocking: true });
  await flock(fd, 'un');
  try {
    await lock.acquire({ signal: AbortSignal.abort() });
  } catch (err) {
    if (err instanceof AbortError) return -3;
    if (err instanceof LockError && err.code === 'ETIMEDOUT') return -4;
  }
  // @ts-expect-error a timeout is a number of milliseconds
  await lock.acquire({ timeout: '1s' });
  // @ts-expect-error flock's operations are 'ex', 'sh' and 'un'
  await flock(fd, 'exclusive');
  // @ts-expect-error a handle's release() returns nothing to await on
  const nothing: Promise<void> = lock.acquireSync().release();
  lock.close();
  mutex.close();
  await nothing;
  return n + m + (took ? 1 : 0);
}
