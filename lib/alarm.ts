// One unref'd timer for many deadlines: a RedisLock's command bounds (see
// bounded() in remote.ts) and lease renewals. A timer set and cleared for every command and every hold
// was about a twentieth of an uncontended acquire + release; here a deadline
// that is met is only forgotten, and the timer, left armed, finds nothing due
// when it fires (at most once per bound) and is set again for what remains.

/** A deadline, as add() hands it out for cancel(). */
export interface Deadline {
  /** mono() at which `run` is due. */
  readonly at: number;
  readonly run: () => void;
}

/** Milliseconds of CLOCK_MONOTONIC: the same clock in every process of the machine. */
export const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

export class Alarm {
  readonly #due = new Set<Deadline>();
  #timer: NodeJS.Timeout | undefined;
  /** When the timer fires; Infinity when it is not armed. */
  #armedAt = Number.POSITIVE_INFINITY;

  /** Calls `run` at mono() `at` (or soon after), unless cancelled first. */
  add(at: number, run: () => void): Deadline {
    const deadline = { at, run };
    this.#due.add(deadline);
    if (at < this.#armedAt) this.#arm(at);
    return deadline;
  }

  cancel(deadline: Deadline): void {
    this.#due.delete(deadline);
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedAt = at;
    // Whole milliseconds: Node keeps one timer list per delay.
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, Math.ceil(at - mono())));
    this.#timer.unref(); // never what keeps a process alive
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = mono();
    const ready: Deadline[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const d of this.#due) {
      if (d.at <= now) ready.push(d);
      else if (d.at < next) next = d.at;
    }
    for (const d of ready) this.#due.delete(d);
    if (next < this.#armedAt) this.#arm(next);
    for (const d of ready) d.run(); // may add more: add() arms for them
  }
}
