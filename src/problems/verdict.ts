/** Verdicts: what a run's result means for a submission, and the default comparison. */
import type { GroupBoxResult } from '../group/index.js';
import { parseDuration, type Limits, type Result } from '../index.js';

export type Verdict = 'AC' | 'WA' | 'PE' | 'TLE' | 'MLE' | 'RE' | 'OLE' | 'SV' | 'CE' | 'JE';

export interface Judged {
  verdict: Verdict;
  /** Which limit (`cpu time`, `wall time`), which exit code, signal or system call. */
  detail?: string;
}

/** The verdict a run earns by how it ended; null when it ended normally and its output decides. */
export function runVerdict(r: Result): Judged | null {
  switch (r.status) {
    case 'ok':
      return null;
    case 'nonzero-exit':
      return { verdict: 'RE', detail: `exit code ${r.exitCode}` };
    case 'signaled':
      return { verdict: 'RE', detail: `signal ${r.signal}` };
    case 'time-limit':
      return { verdict: 'TLE', detail: 'cpu time' };
    case 'wall-time-limit':
      return { verdict: 'TLE', detail: 'wall time' };
    case 'memory-limit':
      return { verdict: 'MLE' };
    case 'output-limit':
      return { verdict: 'OLE' };
    case 'syscall-denied':
      return { verdict: 'SV', detail: `syscall ${r.violation?.syscall ?? 'unknown'}` };
  }
}

/** A checker's or interactor's exit: 0 AC, 1 WA, 2 PE; anything else means the judge failed. */
export function trustedVerdict(r: Result, what: string): Judged {
  if (r.status === 'ok') return { verdict: 'AC' };
  if (r.status === 'nonzero-exit' && r.exitCode === 1) return { verdict: 'WA' };
  if (r.status === 'nonzero-exit' && r.exitCode === 2) return { verdict: 'PE' };
  const why = runVerdict(r);
  return { verdict: 'JE', detail: `${what} ${why?.detail ?? r.status}${why && !why.detail ? ` (${why.verdict})` : ''}` };
}

/** The default check: the same tokens in the same order, however they are separated by whitespace. */
export function sameTokens(output: string, answer: string): boolean {
  const a = output.split(/\s+/).filter((t) => t !== '');
  const b = answer.split(/\s+/).filter((t) => t !== '');
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** The interactor outlives the solution's wall limit by this much, so that waiting on each other ends as the solution's TLE. */
const INTERACTOR_EXTRA_WALL_MS = 2000;

/** A wall limit in ms (a profile holds it as written); 0 when there is none (not given, or lifted with null). */
function wallMs(d: Limits['wallTime']): number {
  const ms = d === undefined || d === null ? 0 : parseDuration(d);
  return typeof ms === 'number' ? ms : 0;
}

/** The interactor's wall limit in ms: its own, or the solution's and some, whichever is longer. */
export function interactorWallTime(interactor: Limits['wallTime'], solution: Limits['wallTime']): number {
  return Math.max(wallMs(interactor), wallMs(solution) + INTERACTOR_EXTRA_WALL_MS);
}

/**
 * An interactive test's verdict from the solution's and the interactor's ends. Which ended first
 * decides: an interactor that ended first with WA (or PE) makes the verdict whatever the solution
 * did after; a solution that ended first on its own limit or error keeps that verdict, whatever
 * the interactor did then; when both ended normally the interactor's exit code decides.
 */
export function interactiveVerdict(solution: GroupBoxResult, interactor: GroupBoxResult): Judged {
  // A SIGPIPE is the consequence of the other side's end, whatever order the ends were seen in.
  const interactorFirst = solution.signal === 'SIGPIPE' || solution.endedByGroup || (interactor.signal !== 'SIGPIPE' && interactor.endOrder < solution.endOrder);
  const said = trustedVerdict(interactor, 'interactor');
  if (interactorFirst) {
    if (said.verdict !== 'AC') return said;
    if (solution.endedByGroup) return { verdict: 'TLE', detail: 'did not end after the interactor did' };
    if (solution.signal === 'SIGPIPE') return { verdict: 'AC' };
    return runVerdict(solution) ?? said;
  }
  const own = runVerdict(solution);
  if (own) return own;
  if (interactor.signal === 'SIGPIPE') return { verdict: 'WA', detail: 'the solution ended before the interactor was done' };
  return said;
}
