/**
 * One start per turn of the event loop. A start's synchronous part (its shape, a warm box or a
 * cgroup to take, the limits and plan sent to the addon) is a fraction of a millisecond, but
 * eight starts made in one tick would run back to back before the loop could do anything else, and
 * the caller's timers and other requests would wait for the sum. The first start of a turn
 * goes at once (a lone run waits for nothing); the others queue and go one per later turn, in
 * order, each in a `setImmediate` of its own, so timers and I/O come between them.
 */

const queued: (() => void)[] = [];
/** Whether a start went in this turn, or one is queued: the next start waits for its turn. */
let held = false;

/** Null when the caller may start now, else a promise that resolves on its turn. */
export function startTurn(): Promise<void> | null {
  if (!held) {
    held = true;
    setImmediate(turnOver);
    return null;
  }
  return new Promise((resolve) => queued.push(resolve));
}

/** The check phase of the turn a start went in: the next queued start goes in the next turn. */
function turnOver(): void {
  if (queued.length === 0) held = false;
  // Queued from the check phase, it runs in the next turn: timers and I/O come first.
  else setImmediate(release);
}

function release(): void {
  const next = queued.shift();
  if (!next) {
    held = false;
    return;
  }
  next();
  setImmediate(release);
}
