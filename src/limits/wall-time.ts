/**
 * The wall-clock limit (`limits.wallTime`), from the program's start: a timer of the supervisor's
 * that ends the run with `wall-time-limit`.
 */
import type { Outcome, Status } from '../result.js';

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
