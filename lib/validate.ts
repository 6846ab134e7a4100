// Argument checks. Messages follow Node's own (ERR_INVALID_ARG_TYPE and
// friends) so users meet familiar wording.
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';

function coded<E extends Error>(err: E, code: string): E & { code: string } {
  return Object.assign(err, { code });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor;
    return ctor?.name ? `an instance of ${ctor.name}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

export function invalidType(name: string, expected: string, value: unknown): TypeError {
  return coded(
    new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

export function invalidValue(name: string, value: unknown, reason: string): TypeError {
  return coded(new TypeError(`The argument '${name}' ${reason}. Received ${inspect(value)}`), 'ERR_INVALID_ARG_VALUE');
}

export function outOfRange(name: string, range: string, value: unknown): RangeError {
  return coded(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`),
    'ERR_OUT_OF_RANGE',
  );
}

export function validateObject(value: unknown, name: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidType(name, 'of type object', value);
  }
  return value as Record<string, unknown>;
}

export function validateBoolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

/**
 * The longest timeout, in ms (about 24.8 days): what setTimeout can wait for.
 * Longer is refused rather than clamped or read as "no timeout".
 */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** Milliseconds, or -1 for "no timeout" (undefined or Infinity). */
export function validateTimeout(value: unknown, name: string): number {
  if (value === undefined || value === Number.POSITIVE_INFINITY) return -1;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!(value >= 0 && value <= MAX_TIMEOUT)) {
    throw outOfRange(name, `>= 0 && <= ${MAX_TIMEOUT} (2**31-1 ms, the longest timeout), or Infinity`, value);
  }
  return value;
}

export function validateSignal(value: unknown, name: string): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (
    value === null ||
    typeof value !== 'object' ||
    typeof (value as AbortSignal).aborted !== 'boolean' ||
    typeof (value as AbortSignal).addEventListener !== 'function'
  ) {
    throw invalidType(name, 'an instance of AbortSignal', value);
  }
  return value as AbortSignal;
}

export function validateMode(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 0 || value > 0o7777) throw outOfRange(name, '>= 0 && <= 0o7777', value);
  return value;
}

export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max)
    throw outOfRange(name, `an integer >= ${min} && <= ${max}`, value);
  return value;
}

export function validateFunction<F>(value: unknown, name: string): F {
  if (typeof value !== 'function') throw invalidType(name, 'of type function', value);
  return value as F;
}

/**
 * A lock file path: string, Buffer or file: URL; no NUL bytes; not empty. A
 * Buffer comes back as a copy of its bytes, which need not be UTF-8 (the
 * kernel takes bytes); a URL as a string, by Node's own fileURLToPath rules
 * (it refuses a host and an encoded '/').
 */
export function validatePath(value: unknown, name: string): string | Buffer {
  let path: string | Buffer;
  if (typeof value === 'string') path = value;
  else if (Buffer.isBuffer(value)) path = Buffer.from(value);
  else if (value instanceof URL) {
    if (value.protocol !== 'file:') throw invalidValue(name, value.href, 'must be a file: URL');
    try {
      // Decoded here first: Bun's fileURLToPath returns '' where Node's throws.
      decodeURIComponent(value.pathname);
      path = fileURLToPath(value);
    } catch (err) {
      // Escapes that do not decode as UTF-8 (%FF): such bytes go in a Buffer.
      if (err instanceof URIError) throw invalidValue(name, value.href, 'must decode as UTF-8 (pass a Buffer path)');
      throw err;
    }
  } else throw invalidType(name, 'of type string or an instance of Buffer or URL', value);
  if (path.length === 0) throw invalidValue(name, path, 'must be a non-empty path');
  if (typeof path === 'string' ? path.includes('\u0000') : path.includes(0)) {
    throw invalidValue(name, path, 'must be a string, Buffer or URL without null bytes');
  }
  return path;
}
