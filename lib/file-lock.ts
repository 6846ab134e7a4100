// FileLock: flock(2) on a lock file, exclusive across processes, worker
// threads and async tasks.
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { fromNative, teardownError } from './errors';
import { GrantHandle, makeHandle, notThenable } from './handle';
import { fileGrant, type Grant, type NativeError, type NativeLockFile, native, type WaitCallback } from './native';
import type { Backend, LockQueue } from './queue';
import { QueuedLock, QueueTable } from './queued-lock';
import { type FileStatus, fileStatus } from './status';
import { validateBoolean, validateMode, validateObject, validatePath } from './validate';

/** The options of `new FileLock()`. */
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

/** How `acquire()` and `run()` wait for a FileLock. */
export interface AcquireOptions {
  /** Ask for a shared lock: any number of shared holders, or one exclusive. */
  shared?: boolean;
  /** Milliseconds to wait before rejecting with ETIMEDOUT. */
  timeout?: number;
  /** Stops the wait with an AbortError whose `cause` is the signal's reason. */
  signal?: AbortSignal;
}

/** How `acquireSync()` and `runSync()` wait: on this thread, so no signal. */
export interface AcquireSyncOptions {
  /** Ask for a shared lock: any number of shared holders, or one exclusive. */
  shared?: boolean;
  /** Milliseconds to block before throwing ETIMEDOUT. */
  timeout?: number;
}

/**
 * A held FileLock: `token` and `ownerDied` (see GrantHandle), kept beside the
 * lock file in /dev/shm by interlock's own holders on this machine (see
 * README). Shared handles of one thread share its grant, and its token.
 * Token 0n: the marks were unavailable (a process warning said why).
 */
export class FileLockHandle extends GrantHandle {}
notThenable(FileLockHandle);

/** Once per lock per thread: why its grants carry no marks. */
function warnNoMarks(path: string, file: NativeLockFile): void {
  const why = file.marks();
  if (why === null) return;
  const cause =
    why.kind === 'foreignOwner'
      ? `'${why.region}' is owned by uid ${why.ownerUid}, not by this user (uid ${process.geteuid?.()}): marks are ` +
        'per user, so another user planted it'
      : (fromNative(why, why.region, undefined, { what: 'FileLock marks region' }) as Error).message;
  process.emitWarning(
    `FileLock '${path}': its handles carry token 0n and no ownerDied news, because its marks are unavailable ` +
      `(${cause}); the lock itself is unaffected`,
    { code: 'INTERLOCK_NO_MARKS' },
  );
}

class FileBackend implements Backend<Grant> {
  readonly path: string;
  readonly waitSyscall = 'flock';
  readonly #target: string | Buffer;
  readonly #file: NativeLockFile;
  readonly #slot: number;
  #warned = false;

  constructor(target: string | Buffer, path: string, mode: number, create: boolean, allowUnsafe: boolean) {
    this.path = path;
    this.#target = target;
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

  /**
   * Whether the file at this backend's path is still `identity` ("dev:ino").
   * Read from the path, not the fd: the fd may be moving to a new file on a
   * wait thread, and a file replaced at the path is followed there.
   */
  names(identity: string): boolean {
    try {
      const st = lstatSync(this.#target, { bigint: true });
      return `${st.dev}:${st.ino}` === identity;
    } catch {
      return false; // gone (or unreadable): nothing here vouches for the identity
    }
  }

  #convert(err: unknown, timeoutMs?: number): unknown {
    return fromNative(err, this.path, timeoutMs, { filesystem: () => this.#file.filesystem() });
  }

  /** A grant without marks: says why, once. */
  #unmarked(grant: Grant): Grant {
    if (!this.#warned) {
      this.#warned = true;
      warnNoMarks(this.path, this.#file);
    }
    return grant;
  }

  tryLock(shared: boolean): Grant | null {
    let grant: Grant | null;
    try {
      grant = fileGrant(native.fileTryLock(this.#slot, shared));
    } catch (err) {
      throw this.#convert(err);
    }
    return grant === 0 ? this.#unmarked(grant) : grant;
  }

  lockSync(shared: boolean, timeoutMs: number): Grant {
    let grant: Grant | null | undefined;
    try {
      // The slot call first: uncontended, it is the whole job, without the
      // object method's napi_unwrap.
      grant = fileGrant(native.fileTryLock(this.#slot, shared)) ?? this.#file.lockSync(shared, timeoutMs);
    } catch (err) {
      throw this.#convert(err, timeoutMs);
    }
    if (grant === undefined) throw teardownError(this.path);
    return grant === 0 ? this.#unmarked(grant) : grant;
  }

  lockAsync(shared: boolean, done: WaitCallback<Grant>) {
    try {
      return this.#file.lockAsync(shared, (error, grant) => done(error, grant === 0 ? this.#unmarked(grant) : grant));
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

  waitError(error: NativeError): unknown {
    return this.#convert(error);
  }
}

// This thread's lock files, under two kinds of key: every resolved path that
// reached one, and `#dev:ino`, so that a hard link or a path through a
// symlinked directory finds the same queue (one fd, one EDEADLK, one FIFO).
const table = new QueueTable<Grant, FileLockHandle, boolean, FileBackend>((owner, shared, grant) =>
  makeHandle(FileLockHandle, owner, shared, grant),
);

/** The key of a resolved path; Buffer paths keep their bytes (NUL is never in a path). */
function pathKey(target: string | Buffer): string {
  return typeof target === 'string' ? target : `\0${target.toString('latin1')}`;
}

/** A path as given, made absolute against the current directory (bytes stay bytes). */
function absolute(p: string | Buffer): string | Buffer {
  if (typeof p === 'string') return resolve(p);
  if (p[0] === 0x2f) return p;
  return Buffer.concat([Buffer.from(`${process.cwd()}/`), p]);
}

/**
 * A lock on a file with flock(2), held across processes, worker threads and
 * async tasks, and seen by every other flock user (flock(1), Python,
 * Rust). Exclusive by default, or shared. Tasks of one thread wait in a FIFO
 * queue; only its head waits in the kernel, on a thread of its own.
 */
export class FileLock extends QueuedLock<
  Grant,
  FileLockHandle,
  boolean,
  AcquireOptions,
  AcquireSyncOptions,
  {
    /** Ask for a shared lock: any number of shared holders, or one exclusive. */
    shared?: boolean;
  }
> {
  /** The absolute path of the lock file. */
  readonly path: string;
  readonly #target: string | Buffer;
  readonly #mode: number;
  readonly #create: boolean;
  readonly #allowUnsafe: boolean;

  /**
   * A lock on `path`. Nothing is opened until the first acquisition. All
   * FileLocks of one thread on one file (by any of its names) share one fd
   * and one queue; the options of the first one opened apply.
   */
  constructor(path: string | Buffer | URL, options?: FileLockOptions) {
    const p = validatePath(path, 'path');
    const opts = validateObject(options, 'options');
    const mode = validateMode(opts.mode, 'options.mode', 0o600);
    const create = validateBoolean(opts.create, 'options.create', true);
    const allowUnsafe = validateBoolean(opts.allowUnsafeFilesystem, 'options.allowUnsafeFilesystem', false);
    const target = absolute(p);
    // A path this thread already uses joins its queue now, without a system call.
    super(table.join(pathKey(target))?.queue);
    this.#target = target;
    this.#mode = mode;
    this.#create = create;
    this.#allowUnsafe = allowUnsafe;
    this.path = typeof p === 'string' ? (target as string) : resolve(p.toString());
  }

  protected label(): string {
    return `FileLock '${this.path}'`;
  }

  protected mode(opts: Record<string, unknown> | undefined): boolean {
    return validateBoolean(opts?.shared, 'options.shared', false);
  }

  /**
   * The queue of the file: by path if this thread knows the path, else by
   * opening the file (which the first acquisition does anyway) and asking
   * for its identity.
   */
  protected override bind(): LockQueue<Grant, FileLockHandle> {
    const key = pathKey(this.#target);
    const known = table.join(key);
    if (known !== undefined) return known.queue;
    const backend = new FileBackend(this.#target, this.path, this.#mode, this.#create, this.#allowUnsafe);
    let identity: string;
    try {
      identity = `#${backend.open()}`;
    } catch (err) {
      backend.close();
      throw err;
    }
    // The queue filed under this identity may have moved on: its backend
    // follows its own path to a new file once the old one is replaced, and
    // the old inode's number, freed, can come back as another file (this one).
    const filed = table.peek(identity);
    if (filed !== undefined && !filed.backend.names(identity.slice(1))) table.forget(identity);
    // An alias of a file this thread has open already keeps the open fd.
    const entry = table.open(
      identity,
      () => backend,
      () => backend.close(),
    );
    table.alias(key, entry);
    return entry.queue;
  }

  /**
   * Who holds the lock file at `path` and who waits (what `interlock status
   * --json` prints). Never creates the file; throws stat(2)'s error.
   */
  static status(path: string | Buffer | URL): FileStatus {
    return fileStatus(validatePath(path, 'path'));
  }
}
