#!/usr/bin/env node
// interlock(1): util-linux flock(1)'s command line over flock(2), and
// `interlock status` to ask who holds a lock.
import './signals'; // first: SIGUSR1 must not open Node's inspector
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { fileStatus } from '../status';
import { describeError, EX_DATAERR, EX_NOINPUT, EX_OSERR, EX_USAGE, errorCode, UsageError, warn } from './exit';
import { DamagedHeader, formatMutex, type MutexStatus, mutexStatus } from './mutex';
import { type LockRequest, lockDescriptor, runLocked } from './run';
import { formatStatus } from './status';

const HELP = `Usage:
 interlock [options] <file>|<directory> <command> [<argument>...]
 interlock [options] <file>|<directory> -c <command>
 interlock [options] <file descriptor number>
 interlock status [--json] <file>
 interlock status [--json] --mutex <name>

Hold a flock(2) lock while a command runs: a drop-in for util-linux flock(1).

Options:
 -s, --shared             get a shared lock
 -x, -e, --exclusive      get an exclusive lock (default)
 -u, --unlock             remove a lock (file descriptor form)
 -n, --nb, --nonblock     fail rather than wait
 -w, --wait, --timeout <secs>  wait at most <secs> (fractions allowed; 0 = -n;
                          at most 2147483.647, i.e. 2**31-1 ms, about 24.8 days)
 -E, --conflict-exit-code <number>  exit code after conflict or timeout
                          (0 to 255, default 1)
 -o, --close              close the lock's descriptor in the command: the lock
                          then ends with interlock; without -o the command
                          inherits it (at the same number) and the lock lasts
                          while either of them runs
 -c <command>             (right after <file>) run <command> with $SHELL -c
     --verbose            report how long getting the lock took
     --allow-unsafe-filesystem  lock files on NFS, SMB, FUSE, 9p, virtiofs,
                          ceph and the like too, where flock(2) may not
                          exclude other holders (refused by default: exit 69)
 -h, --help               display this help
 -V, --version            display version
 -F, --no-fork is not supported: Node cannot replace itself with the command.

The command runs as a child and inherits the lock's descriptor (unless -o),
so the lock lasts while either of them runs. SIGINT, SIGTERM, SIGHUP and
SIGUSR1 sent to interlock are passed on to it, except SIGINT while the command
is in its terminal's foreground: the terminal's ^C has reached it already.
SIGUSR1 never opens Node's inspector.

Options end at <file>: in \`interlock f cmd -n\`, -n belongs to cmd.

Exit status: the command's (128+n if signal n killed it); the -E code on
conflict (-n) or timeout (-w); 64 for usage errors and other <sysexits.h>
codes for failures, as flock(1); 69 for a lock file on a filesystem where
flock(2) may not exclude (see --allow-unsafe-filesystem).

interlock status [--json] <file>
  Who holds <file> and who waits (pid, mode, command line), from /proc/locks.
  When /proc/locks shows no holder, a non-blocking try confirms the lock is
  free: holders in another PID namespace (a container) are not listed there.
  Exit 0 if free, 1 if held; 66 if <file> does not exist.
interlock status [--json] --mutex <name>
  A SharedMutex's header, read without locking it: holder pid/tid and since
  when, whether it still runs, fencing token, dirty flag, data size.
  Exit 0 if free, 1 if held (also by a dead holder: its successor gets
  ownerDied); 66 if there is no such mutex; 65 if the name is not an
  interlock region, its header is damaged, or it is broken (a user lost
  writes to it when its file was cut: every use is refused).
`;

const LOCK_OPTIONS = {
  shared: { type: 'boolean', short: 's' },
  exclusive: { type: 'boolean', short: 'x' },
  e: { type: 'boolean' }, // flock(1)'s other spelling of -x
  unlock: { type: 'boolean', short: 'u' },
  nonblock: { type: 'boolean', short: 'n' },
  nb: { type: 'boolean' },
  timeout: { type: 'string', short: 'w' },
  wait: { type: 'string' },
  'conflict-exit-code': { type: 'string', short: 'E' },
  close: { type: 'boolean', short: 'o' },
  'no-fork': { type: 'boolean', short: 'F' },
  verbose: { type: 'boolean' },
  'allow-unsafe-filesystem': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} satisfies ParseArgsConfig['options'];

type LockOption = keyof typeof LOCK_OPTIONS;

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return `interlock ${pkg.version}\n`;
}

function seconds(text: string): number {
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text)) throw new UsageError(`invalid timeout value: '${text}'`);
  return Number(text);
}

function exitCode(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`invalid exit code: '${text}'`);
  const n = Number(text);
  if (n > 255) throw new UsageError('exit code out of range (expected 0 to 255)');
  return n;
}

/**
 * Options stop at the first operand (the file), like getopt with '+': the
 * command's own options are not ours. A lenient pass finds where they stop,
 * with values bound to the options that take them; its tokens are then checked.
 */
async function lockCommand(args: string[]): Promise<number> {
  const { tokens } = parseArgs({ args, options: LOCK_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  const operands = first === undefined ? [] : args.slice(first.index);
  const req: LockRequest = {
    shared: false,
    unlock: false,
    nonblock: false,
    timeout: undefined,
    conflictExitCode: 1,
    verbose: false,
    close: false,
    allowUnsafeFilesystem: false,
  };
  let help = false;
  // In order, so the last of -s/-x wins, as in flock(1).
  for (const t of tokens) {
    if (t.kind !== 'option' || (first !== undefined && t.index >= first.index)) continue;
    if (!Object.hasOwn(LOCK_OPTIONS, t.name)) throw new UsageError(`unrecognized option '${t.rawName}'`);
    const name = t.name as LockOption;
    const takesValue = LOCK_OPTIONS[name].type === 'string';
    if (takesValue && t.value === undefined) throw new UsageError(`option '${t.rawName}' requires an argument`);
    if (!takesValue && t.value !== undefined) throw new UsageError(`option '${t.rawName}' doesn't allow an argument`);
    const value = t.value as string;
    if (name === 'help') help = true;
    else if (name === 'version') {
      process.stdout.write(version());
      return 0;
    } else if (name === 'shared') req.shared = true;
    else if (name === 'exclusive' || name === 'e') req.shared = false;
    else if (name === 'unlock') req.unlock = true;
    else if (name === 'nonblock' || name === 'nb') req.nonblock = true;
    else if (name === 'timeout' || name === 'wait') {
      const ms = seconds(value) * 1000;
      if (ms > MAX_TIMEOUT_MS)
        throw new UsageError(`timeout too long: '${value}' (at most ${MAX_TIMEOUT_MS / 1000} seconds)`);
      if (ms === 0) req.nonblock = true;
      req.timeout = ms;
    } else if (name === 'conflict-exit-code') req.conflictExitCode = exitCode(value);
    else if (name === 'no-fork') throw new UsageError('-F/--no-fork is not supported: the command runs as a child');
    else if (name === 'verbose') req.verbose = true;
    else if (name === 'close') req.close = true;
    else if (name === 'allow-unsafe-filesystem') req.allowUnsafeFilesystem = true;
  }
  if (help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [file, ...command] = operands;
  if (file === undefined) throw new UsageError('not enough arguments');
  if (command.length === 0) return lockDescriptor(file, req);
  return runLocked(file, command, req);
}

async function statusCommand(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseStatus>;
  try {
    parsed = parseStatus(args);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.mutex !== undefined) {
    if (positionals.length !== 0) throw new UsageError('status --mutex <name> takes no <file>');
    return statusOfMutex(values.mutex, values.json === true);
  }
  if (positionals.length !== 1)
    throw new UsageError('status takes exactly one <file> (for a lock file named status, write ./status)');
  const path = positionals[0] as string;
  let status: ReturnType<typeof fileStatus>;
  try {
    status = fileStatus(path);
  } catch (err) {
    warn(`cannot stat ${path}: ${describeError(err)}`);
    return errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR' ? EX_NOINPUT : EX_OSERR;
  }
  process.stdout.write(values.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return status.held ? 1 : 0;
}

function statusOfMutex(name: string, json: boolean): number {
  let status: MutexStatus;
  try {
    status = mutexStatus(name);
  } catch (err) {
    if (err instanceof DamagedHeader) {
      warn(`/dev/shm/${name}: damaged header (${err.message}): something other than interlock wrote to it`);
      return EX_DATAERR;
    }
    const code = errorCode(err);
    if (code === 'ERR_INVALID_ARG_VALUE') throw new UsageError(`invalid mutex name: '${name}'`);
    warn(`${code === 'ENOENT' ? `no mutex named ${name}` : (err as Error).message}`);
    if (code === 'ENOENT') return EX_NOINPUT;
    return code === 'ERR_INCOMPATIBLE_REGION' ? EX_DATAERR : EX_OSERR;
  }
  process.stdout.write(json ? `${JSON.stringify(status, null, 2)}\n` : formatMutex(status));
  if (status.broken) return EX_DATAERR;
  return status.held ? 1 : 0;
}

function parseStatus(args: string[]) {
  return parseArgs({
    args,
    options: {
      json: { type: 'boolean' },
      mutex: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
}

export async function main(args: string[]): Promise<number> {
  try {
    if (args[0] === 'status') return await statusCommand(args.slice(1));
    return await lockCommand(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    warn(err.message);
    process.stderr.write("Try 'interlock --help' for more information.\n");
    return EX_USAGE;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      warn(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exit(70); // EX_SOFTWARE: a bug of ours, not the user's
    },
  );
}
