// Exit statuses and messages shared by the CLI. flock(1) exits with
// <sysexits.h> codes; scripts test for them, so we use the same ones.
import { getSystemErrorMap } from 'node:util';

export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_UNAVAILABLE = 69;
export const EX_OSERR = 71;
export const EX_CANTCREAT = 73;

/** Bad command line: reported with a hint and EX_USAGE. */
export class UsageError extends Error {}

export function warn(message: string): void {
  process.stderr.write(`interlock: ${message}\n`);
}

const systemErrors = getSystemErrorMap();

/** "No such file or directory", as strerror(3) words it. */
export function describeError(err: unknown): string {
  const errno = (err as { errno?: unknown })?.errno;
  const text = typeof errno === 'number' ? systemErrors.get(errno)?.[1] : undefined;
  if (text === undefined) return err instanceof Error ? err.message : String(err);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}
