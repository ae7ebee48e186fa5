/**
 * The result of a run: a plain JSON-serialisable object (the public contract: its keys are
 * stable, the CLI's --json prints it as is) and the rule that turns what happened into one status.
 */
import { constants as osConstants } from 'node:os';

export type Status =
  | 'ok'
  | 'nonzero-exit'
  | 'signaled'
  | 'time-limit'
  | 'wall-time-limit'
  | 'memory-limit'
  | 'output-limit'
  | 'syscall-denied';

/** How a limit was enforced: by a cgroup, by an rlimit, or not at all. */
export type Enforcement = 'cgroup' | 'rlimit' | 'none';

export interface Usage {
  /** CPU time of the whole process tree (user + system), ms. */
  cpuTimeMs: number;
  userTimeMs: number;
  systemTimeMs: number;
  /** From the program's start to its end, ms. */
  wallTimeMs: number;
  /** Peak memory of the whole box (cgroup), bytes; null where no cgroup measured it. */
  memoryPeakBytes: number | null;
  /** Largest resident set of any single process of the tree (rusage), bytes. */
  maxRssBytes: number;
}

export interface Violation {
  syscall: string;
  nr: number;
  arch: string;
}

export interface Result {
  status: Status;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  usage: Usage;
  violation: Violation | null;
  limitsEnforced: { memory: Enforcement; cpuTime: Enforcement; processes: Enforcement };
}

/** Why the supervisor itself ended a run, first reason first. */
export type KillReason = 'wall-time-limit' | 'time-limit' | 'output-limit' | 'memory-limit' | 'aborted';

export interface Outcome {
  /** How the main process ended; null when the box was ended before it did. */
  exitCode: number | null;
  signal: number | null;
  killReason: KillReason | null;
  violation: Violation | null;
  oomKilled: boolean;
  cpuTimeMs: number;
  cpuLimitMs: number | null;
}

// The first name of a number is the usual one (SIGABRT before SIGIOT, SIGIO before SIGPOLL).
const signalNames = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.signals)) if (!signalNames.has(n)) signalNames.set(n, name);
const SIGXCPU = osConstants.signals.SIGXCPU;

export function signalName(sig: number): string {
  return signalNames.get(sig) ?? `SIG${sig}`;
}

/**
 * One status from what happened. A denied system call and the kernel's OOM kill explain a death
 * better than anything else; then the supervisor's own reason for ending the run; then CPU time
 * past the limit (the RLIMIT_CPU backstop's SIGXCPU and its SIGKILL a second later included);
 * then how the program ended.
 */
export function deriveStatus(o: Outcome): Status {
  if (o.violation) return 'syscall-denied';
  if (o.oomKilled && (o.signal !== null || o.killReason === null)) return 'memory-limit';
  if (o.killReason === 'time-limit' || o.signal === SIGXCPU) return 'time-limit';
  if (o.cpuLimitMs !== null && o.cpuTimeMs >= o.cpuLimitMs && (o.signal !== null || o.killReason !== null)) return 'time-limit';
  if (o.killReason === 'output-limit') return 'output-limit';
  if (o.killReason === 'wall-time-limit') return 'wall-time-limit';
  if (o.killReason === 'memory-limit') return 'memory-limit';
  if (o.signal !== null) return 'signaled';
  return o.exitCode === 0 ? 'ok' : 'nonzero-exit';
}
