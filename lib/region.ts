// Names and errors shared by the kinds that live in a /dev/shm region:
// refusals of a region (native/core/region_file.h) become LockErrors that
// name the cause and what to do.
import { readFileSync } from 'node:fs';
import { fromNative, LockError } from './errors';
import { native } from './native';
import { invalidType, invalidValue } from './validate';

const NAME = /^[A-Za-z0-9._-]{1,200}$/;
const codes = native.SharedMutex.codes;
const EACCES = -13;
const ENOLCK = -37;
const EMFILE = -24;
/** native/core/shared_region.h kRobustListLimit */
export const ROBUST_LIST_LIMIT = 2048;

export function regionPath(name: string): string {
  return `/dev/shm/${name}`;
}

export function validateName(name: unknown): string {
  if (typeof name !== 'string') throw invalidType('name', 'of type string', name);
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw invalidValue('name', name, 'must be 1 to 200 characters of [A-Za-z0-9._-], not "." or ".."');
  }
  return name;
}

export function incompatible(path: string, detail: string): LockError {
  return new LockError('ERR_INCOMPATIBLE_REGION', `ERR_INCOMPATIBLE_REGION: '${path}' ${detail}; it was not used`, {
    path,
  });
}

function userName(uid: number): string {
  try {
    const line = readFileSync('/etc/passwd', 'latin1')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    if (line !== undefined) return `uid ${uid} (${line.split(':')[0]})`;
  } catch {
    // no passwd file (a minimal container): the number alone
  }
  return `uid ${uid}`;
}

function refused(path: string, message: string, syscall?: string): LockError {
  return new LockError('EACCES', `EACCES: ${message}`, { errno: EACCES, syscall, path });
}

/**
 * Converts an error thrown by the binding for region `path` (`kind` names it
 * in messages, e.g. "SharedMutex"); `mode` is the caller's options.mode.
 */
export function regionError(err: unknown, path: string, kind: string, timeoutMs?: number, mode?: number): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { errno?: number; syscall?: string; ownerUid?: number; fileMode?: number };
  switch (e.errno) {
    case codes.incompatible:
      return incompatible(
        path,
        'was made by another version, libc or architecture, with another size, or is not a region',
      );
    case codes.damaged:
      return incompatible(
        path,
        'lost pages while mapped (its file was truncated or overwritten), so writes to its data may be lost; it is ' +
          'marked broken for every user: unlink it and create it again',
      );
    case codes.broken:
      return incompatible(
        path,
        'is marked broken (a user lost writes to it when its file was truncated under it): unlink it and create it again',
      );
    case codes.otherKind:
      return incompatible(path, `is another kind of region, not a ${kind}`);
    case codes.otherPidNamespace:
      return incompatible(
        path,
        `was created in another PID namespace (a container sharing /dev/shm?): a robust mutex names its owner by ` +
          `thread id, and thread ids collide across PID namespaces, so a ${kind} cannot be shared between them; ` +
          'use a FileLock on a file both sides share instead',
      );
    case codes.foreignOwner:
      return refused(
        path,
        `'${path}' is owned by ${userName(e.ownerUid ?? -1)}, not by this process's user (uid ${process.geteuid?.()}), ` +
          `who could hold it for ever or write its data; pass { allowForeignOwner: true } to share a ${kind} ` +
          'between cooperating users',
        e.syscall,
      );
    case codes.tooOpen:
      return refused(
        path,
        `'${path}' (owner ${userName(e.ownerUid ?? -1)}) has mode 0${(e.fileMode ?? 0).toString(8)}, writable by users ` +
          `that options.mode 0${(mode ?? 0o600).toString(8)} excludes; pass a mode that includes them if they may share it`,
        e.syscall,
      );
    case codes.guardFull:
      return new LockError(
        'EMFILE',
        `EMFILE: too many shared regions mapped in this process to guard one more '${path}'; close some`,
        { errno: EMFILE, syscall: e.syscall, path },
      );
    case ENOLCK:
      return new LockError(
        'ENOLCK',
        `ENOLCK: this thread already holds ${ROBUST_LIST_LIMIT} robust mutexes, the most the kernel releases when a ` +
          `thread dies; release one before acquiring '${path}' (or acquire it from another thread)`,
        { errno: ENOLCK, syscall: e.syscall, path },
      );
    default:
      return fromNative(err, path, timeoutMs);
  }
}
