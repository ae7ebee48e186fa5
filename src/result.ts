/**
 * The result of a run: a plain JSON-serialisable object (the public contract: its keys are
 * stable, the CLI's --json prints it as is) and the rule that turns what happened into one status
 * (each limit's own verdict lives with the limit, in src/limits/; the order in which they are
 * asked is here).
 */
import { constants as osConstants } from 'node:os';

import { cpuTimeVerdict } from './limits/cpu-time.js';
import { memoryVerdict } from './limits/memory.js';
import { outputVerdict } from './limits/output.js';
import { wallTimeVerdict } from './limits/wall-time.js';
import type { NetworkReport } from './network/proxy.js';
import { AUDIT_ARCH, syscallName, type SeccompArch } from './seccomp/arch.js';

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

/** How each limit was enforced (or that it was not: no limit, or no mechanism for it). */
export interface LimitsEnforced {
  memory: Enforcement;
  cpuTime: Enforcement;
  processes: Enforcement;
}

/**
 * What a run ended with. `Output` is the type of `stdout` and `stderr`: strings, or Buffers for a
 * run given `encoding: 'buffer'`.
 */
export interface Result<Output extends string | Buffer = string> {
  status: Status;
  exitCode: number | null;
  signal: string | null;
  stdout: Output;
  stderr: Output;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  usage: Usage;
  violation: Violation | null;
  limitsEnforced: LimitsEnforced;
  /** The connections the box asked its egress proxy for (only for a box with `network.allow`). */
  network?: NetworkReport;
}

/** Why the supervisor itself ended a run, first reason first. */
export type KillReason = 'wall-time-limit' | 'time-limit' | 'output-limit' | 'aborted';

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

export function signalName(sig: number): string {
  return signalNames.get(sig) ?? `SIG${sig}`;
}

/**
 * One status from what happened. A denied system call and the kernel's OOM kill explain a death
 * better than anything else; then CPU time past the limit (the supervisor's kill, the RLIMIT_CPU
 * backstop's SIGXCPU and its SIGKILL a second later); then the supervisor's other reasons for
 * ending the run; then how the program ended.
 */
export function deriveStatus(o: Outcome): Status {
  if (o.violation) return 'syscall-denied';
  const limit = memoryVerdict(o) ?? cpuTimeVerdict(o) ?? outputVerdict(o) ?? wallTimeVerdict(o);
  if (limit) return limit;
  if (o.signal !== null) return 'signaled';
  return o.exitCode === 0 ? 'ok' : 'nonzero-exit';
}

/** Names a call the seccomp filter denied, from what the kernel reported. */
export function describeViolation(nr: number, auditArch: number): Violation {
  const entry = (Object.entries(AUDIT_ARCH) as [string, number][]).find(([, v]) => v === auditArch);
  const archName = entry?.[0] ?? `0x${auditArch.toString(16)}`;
  const known = entry && (entry[0] === 'x86_64' || entry[0] === 'aarch64') ? syscallName(nr, entry[0] as SeccompArch) : undefined;
  return { syscall: known ?? `syscall_${nr}`, nr, arch: archName };
}
