/**
 * The memory limit (`limits.memory`): memory of the whole box, page cache and tmpfs files
 * included.
 *
 * Enforced by the run cgroup's memory controller (memory.max on v2, memory.limit_in_bytes on v1,
 * swap forbidden; written from `cgroupLimits` in src/launch/cgroups.ts), whose OOM kill gives
 * `memory-limit`. Without a memory cgroup (rootless, no controller) RLIMIT_AS stands in per
 * process (`memoryRlimit`): an allocation past it fails instead.
 */
import type { RunCgroup } from '../cgroup/index.js';
import type { NativeRlimit } from '../native.js';
import type { Enforcement, Outcome, Status } from '../result.js';

const RLIMIT_AS = 9;

/**
 * A run given no memory limit still has one: enough for g++ -O2 of a program including
 * <bits/stdc++.h> (about 200 MiB resident) with the default tmpfs filled, and little enough that
 * a runaway program cannot take a shared host's memory. `memory: null` lifts it.
 */
export const DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024;

/** How the limit is enforced in this cgroup (null: the run has none). */
export function memoryEnforcement(limitBytes: number | null, cgroup: RunCgroup | null): Enforcement {
  if (limitBytes === null) return 'none';
  return cgroup?.enforced.memory === 'cgroup' ? 'cgroup' : 'rlimit';
}

/** RLIMIT_AS, when it stands in for the cgroup. */
export function memoryRlimit(limitBytes: number | null, enforcement: Enforcement): NativeRlimit | null {
  if (limitBytes === null || enforcement !== 'rlimit') return null;
  return { resource: RLIMIT_AS, soft: limitBytes, hard: limitBytes };
}

/**
 * `memory-limit` when the kernel's OOM killer acted in the run's cgroup and the run died of a
 * signal (or ended by itself: a killed child it did not survive); not when the supervisor ended
 * it for a reason of its own first.
 */
export function memoryVerdict(o: Outcome): Status | null {
  return o.oomKilled && (o.signal !== null || o.killReason === null) ? 'memory-limit' : null;
}
