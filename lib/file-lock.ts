// FileLock: flock(2) on a lock file, exclusive across processes, worker
// threads and async tasks.
import { resolve } from 'node:path';
import { closedError, fromNative, LockError, systemError, teardownError } from './errors';
import { LockHandle, runHeld, runHeldSync } from './handle';
import { type NativeLockFile, native } from './native';
import { type Backend, LockQueue } from './queue';
import { type FileStatus, fileStatus } from './status';
import {
  validateBoolean,
  validateFunction,
  validateMode,
  validateObject,
  validatePath,
  validateSignal,
  validateTimeout,
} from './validate';

export interface FileLockOptions {
  /** Permission bits if the file is created. Default 0o600. */
  mode?: number;
  /** Create the lock file if missing. Default true. */
  create?: boolean;
  /**
   * Lock a file on NFS, CIFS/SMB, FUSE, 9p, virtiofs, ceph and the like,
   * where flock(2) may not exclude other holders. Default false: refused
   * with ERR_UNSAFE_FILESYSTEM.
   */
  allowUnsafeFilesystem?: boolean;
}

export interface AcquireOptions {
  shared?: boolean;
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  signal?: AbortSignal;
}

export interface AcquireSyncOptions {
  shared?: boolean;
  timeout?: number;
}

/** What the binding says about the filesystem of a refused lock file. */
export interface Filesystem {
  type: number;
  name: string | null;
}

/** ERR_UNSAFE_FILESYSTEM, naming the filesystem and the path. */
export function unsafeFilesystemError(fs: Filesystem, path: string): LockError {
  const type = `f_type 0x${fs.type.toString(16)}`;
  const err = new LockError(
    'ERR_UNSAFE_FILESYSTEM',
    `ERR_UNSAFE_FILESYSTEM: flock(2) may not exclude other holders on ${fs.name ?? 'this filesystem'} (${type}) ` +
      `'${path}'; keep lock files on a local filesystem, or pass allowUnsafeFilesystem: true`,
    { syscall: 'fstatfs', path },
  );
  return Object.assign(err, { filesystem: fs.name ?? type });
}

class FileBackend implements Backend<true> {
  readonly path: string;
  readonly waitSyscall = 'flock';
  readonly #file: NativeLockFile;
  readonly #slot: number;

  constructor(target: string | Buffer, path: string, mode: number, create: boolean, allowUnsafe: boolean) {
    this.path = path;
    this.#file = new native.LockFile(target, mode, create, allowUnsafe);
    this.#slot = this.#file.slot;
  }

  /** Opens the file; returns its identity ("dev:ino"). */
  open(): string {
    try {
      return this.#file.open();
    } catch (err) {
      throw this.#convert(err);
    }
  }

  #convert(err: unknown, timeoutMs?: number): unknown {
    if ((err as { errno?: unknown } | null)?.errno === native.LockFile.UNSAFE_FILESYSTEM) {
      return unsafeFilesystemError(this.#file.filesystem(), this.path);
    }
    return fromNative(err, this.path, timeoutMs);
  }

  tryLock(shared: boolean): true | null {
    try {
      return native.fileTryLock(this.#slot, shared) ? true : null;
    } catch (err) {
      throw this.#convert(err);
    }
  }

  lockSync(shared: boolean, timeoutMs: number): true {
    try {
      // The slot call first: uncontended, it is the whole job, without the
      // object method's napi_unwrap.
      if (native.fileTryLock(this.#slot, shared)) return true;
      if (this.#file.lockSync(shared, timeoutMs) !== true) throw teardownError(this.path);
      return true;
    } catch (err) {
      throw this.#convert(err, timeoutMs);
    }
  }

  lockAsync(shared: boolean, done: (errno: number, syscall: string | undefined, grant: true | undefined) => void) {
    try {
      return this.#file.lockAsync(shared, (errno, syscall) => done(errno, syscall, errno === 0 ? true : undefined));
    } catch (err) {
      throw this.#convert(err);
    }
  }

  unlock(): void {
    try {
      native.fileUnlock(this.#slot);
    } catch (err) {
      throw this.#convert(err);
    }
  }

  close(): void {
    this.#file.close();
  }

  waitError(errno: number, syscall: string | undefined): unknown {
    if (errno === native.LockFile.UNSAFE_FILESYSTEM) return unsafeFilesystemError(this.#file.filesystem(), this.path);
    return systemError(errno, syscall, this.path);
  }
}

type FileQueue = LockQueue<true, LockHandle>;

// This thread's lock files (each worker loads its own copy of this module, so
// the map is naturally per thread), under two kinds of key: every resolved
// path that reached one, and `#dev:ino`, so that a hard link or a path through
// a symlinked directory finds the same queue (one fd, one EDEADLK, one FIFO).
const queues = new Map<string, FileQueue>();
const keysOf = new Map<FileQueue, string[]>();

/** The key of a resolved path; Buffer paths keep their bytes (NUL is never in a path). */
function pathKey(target: string | Buffer): string {
  return typeof target === 'string' ? target : `\0${target.toString('latin1')}`;
}

/**
 * The queue of the file at `target`: by path if this thread knows the path,
 * else by opening the file (which the first acquisition does anyway) and
 * asking for its identity.
 */
function bindQueue(target: string | Buffer, path: string, mode: number, create: boolean, unsafe: boolean): FileQueue {
  const key = pathKey(target);
  const known = queues.get(key);
  if (known !== undefined) return known;
  const backend = new FileBackend(target, path, mode, create, unsafe);
  const identity = `#${backend.open()}`;
  let queue = queues.get(identity);
  if (queue === undefined) {
    const created: FileQueue = new LockQueue<true, LockHandle>(
      backend,
      (owner, shared) => new LockHandle(owner, shared),
      () => {
        for (const k of keysOf.get(created) ?? []) if (queues.get(k) === created) queues.delete(k);
        keysOf.delete(created);
      },
    );
    queue = created;
    queues.set(identity, queue);
    keysOf.set(queue, [identity]);
  } else {
    backend.close(); // an alias of a file this thread has open already
  }
  queues.set(key, queue);
  keysOf.get(queue)?.push(key);
  return queue;
}

/** A path as given, made absolute against the current directory (bytes stay bytes). */
function absolute(p: string | Buffer): string | Buffer {
  if (typeof p === 'string') return resolve(p);
  if (p[0] === 0x2f) return p;
  return Buffer.concat([Buffer.from(`${process.cwd()}/`), p]);
}

export class FileLock {
  /** The absolute path of the lock file. */
  readonly path: string;
  readonly #target: string | Buffer;
  readonly #mode: number;
  readonly #create: boolean;
  readonly #allowUnsafe: boolean;
  #queue: FileQueue | undefined;
  #closed = false;

  /**
   * A lock on `path`. Nothing is opened until the first acquisition. All
   * FileLocks of one thread on one file (by any of its names) share one fd
   * and one queue; the options of the first one opened apply.
   */
  constructor(path: string | Buffer | URL, options?: FileLockOptions) {
    const p = validatePath(path, 'path');
    const opts = validateObject(options, 'options');
    this.#mode = validateMode(opts.mode, 'options.mode', 0o600);
    this.#create = validateBoolean(opts.create, 'options.create', true);
    this.#allowUnsafe = validateBoolean(opts.allowUnsafeFilesystem, 'options.allowUnsafeFilesystem', false);
    this.#target = absolute(p);
    this.path = typeof p === 'string' ? (this.#target as string) : resolve(p.toString());
    // A path this thread already uses joins its queue now, without a system call.
    this.#queue = queues.get(pathKey(this.#target));
    if (this.#queue !== undefined) this.#queue.refs++;
  }

  /** The queue, found or opened on first use; throws if closed or if the file cannot be opened. */
  #open(): FileQueue {
    if (this.#queue !== undefined) return this.#queue;
    if (this.#closed) throw closedError(`FileLock '${this.path}'`);
    const queue = bindQueue(this.#target, this.path, this.#mode, this.#create, this.#allowUnsafe);
    queue.refs++;
    this.#queue = queue;
    return queue;
  }

  /** Waits for the lock without blocking the event loop. */
  acquire(options?: AcquireOptions): Promise<LockHandle> {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    const signal = validateSignal(opts?.signal, 'options.signal');
    let queue = this.#queue;
    if (queue === undefined) {
      try {
        queue = this.#open();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return queue.acquire(this, shared, timeout, signal, this.acquire);
  }

  /** The lock if it is free now, else null. Never waits. */
  tryAcquire(options?: { shared?: boolean }): LockHandle | null {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    return this.#open().tryAcquire(this, shared);
  }

  /**
   * Blocks this thread until the lock is granted, like fs.*Sync. Throws
   * EDEADLK if this thread already holds or waits for it. In a Worker, give
   * a timeout: terminate() cannot interrupt a thread blocked in native code.
   */
  acquireSync(options?: AcquireSyncOptions): LockHandle {
    const opts = options === undefined ? undefined : validateObject(options, 'options');
    const shared = validateBoolean(opts?.shared, 'options.shared', false);
    const timeout = validateTimeout(opts?.timeout, 'options.timeout');
    return this.#open().acquireSync(this, shared, timeout);
  }

  /** Acquires, runs `fn` with the handle, and always releases. */
  run<T>(fn: (handle: LockHandle) => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    validateFunction(fn, 'fn');
    return runHeld(this.acquire(options), fn);
  }

  runSync<T>(fn: (handle: LockHandle) => T, options?: AcquireSyncOptions): T {
    validateFunction(fn, 'fn');
    return runHeldSync(this.acquireSync(options), fn);
  }

  /** Releases what this instance holds and rejects what it waits for. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const queue = this.#queue;
    this.#queue = undefined;
    queue?.closeOwner(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Who holds the lock file at `path` and who waits (what `interlock status
   * --json` prints). Never creates the file; throws stat(2)'s error.
   */
  static status(path: string | Buffer | URL): FileStatus {
    return fileStatus(validatePath(path, 'path'));
  }
}
