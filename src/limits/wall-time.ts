/**
 * The wall-clock limit (`limits.wallTime`), from the program's start: a timer of the supervisor's
 * that ends the run with `wall-time-limit`.
 */
import type { Outcome, Status } from '../result.js';

/**
 * `run()` and `box.run()` wait for their program's end: given no wall-clock limit, a program that
 * never ends (a sleep, a read from a pipe nobody writes) would hold the caller forever. Five
 * minutes is far beyond a judge's or a compiler's run and still an end. `spawn()` has none: its
 * caller talks to the program and ends it. `wallTime: null` lifts it.
 */
export const RUN_WALL_TIME_MS = 5 * 60 * 1000;

/** Ends the run when the time is up; `stop()` when it ended first. */
export class WallTimeLimit {
  private readonly timer: NodeJS.Timeout;

  constructor(limitMs: number, onExceeded: () => void) {
    this.timer = setTimeout(onExceeded, limitMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

export function wallTimeVerdict(o: Outcome): Status | null {
  return o.killReason === 'wall-time-limit' ? 'wall-time-limit' : null;
}
