// Whether anyone on this machine waits for a remote lock's machine-local
// lock: each lock object holds a shared flock on a file beside it while one
// of its acquire() calls waits there, and a releaser tries an exclusive one
// on a descriptor of its own (flock conflicts between open file
// descriptions, even within one process). A releaser that passed a lease
// and sees a waiter need not stay to take the lease back: the waiter claims
// it. It is a hint only: exclusion never depends on it, and a lease nobody
// claims is still taken back (by this process while it lives, else when
// its lease runs out).
import { closeSync, constants, openSync } from 'node:fs';
import { flockSync } from './flock';

const IDLE_MS = 1000; // closed after this long unused, as LeaseFile

function open(path: string): number {
  try {
    return openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch {
    return -1;
  }
}

function tryFlock(fd: number, op: 'ex' | 'sh' | 'un'): boolean {
  try {
    return flockSync(fd, op, { nonblocking: true });
  } catch {
    return false;
  }
}

export class WaitingFile {
  readonly #path: string;
  /** Holds the shared flock while `#waiters` > 0. */
  #waitFd = -1;
  /** Tries the exclusive one. */
  #probeFd = -1;
  #waiters = 0;
  #marked = false;
  #idle: NodeJS.Timeout | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  #touch(): void {
    if (this.#idle === undefined) {
      this.#idle = setTimeout(() => {
        this.#idle = undefined;
        if (this.#waiters === 0) this.close();
      }, IDLE_MS);
      this.#idle.unref();
    } else this.#idle.refresh();
  }

  /** One more acquire() of this lock waits for the local lock. */
  enter(): void {
    this.#touch();
    if (this.#waiters++ > 0) return;
    if (this.#waitFd < 0) this.#waitFd = open(this.#path);
    // Missed only while a releaser's probe holds it for a moment: that
    // releaser then takes its lease back itself, as without this file.
    this.#marked = this.#waitFd >= 0 && tryFlock(this.#waitFd, 'sh');
  }

  /** That acquire() holds the local lock now, or gave up. */
  leave(): void {
    if (--this.#waiters > 0) return;
    if (this.#marked) tryFlock(this.#waitFd, 'un');
    this.#marked = false;
    this.#touch(); // closed in a while, even after close() ran during the wait
  }

  /** Whether some lock object on this machine has an acquire() waiting. */
  waited(): boolean {
    this.#touch();
    if (this.#probeFd < 0) this.#probeFd = open(this.#path);
    if (this.#probeFd < 0) return false;
    if (!tryFlock(this.#probeFd, 'ex')) return true;
    tryFlock(this.#probeFd, 'un');
    return false;
  }

  /** Closes both descriptors (reopened on the next use); a wait in progress keeps its mark. */
  close(): void {
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#idle = undefined;
    if (this.#probeFd >= 0) closeSync(this.#probeFd);
    this.#probeFd = -1;
    if (this.#waiters === 0 && this.#waitFd >= 0) {
      closeSync(this.#waitFd);
      this.#waitFd = -1;
    }
  }
}
