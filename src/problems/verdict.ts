/** Verdicts: what a run's result means for a submission, and the default comparison. */
import type { Result } from '../index.js';

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
