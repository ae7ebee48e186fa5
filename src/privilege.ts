/**
 * The one answer to "are we root?". Root may map other ids than its own into a box, make cgroups
 * and give a box its own unprivileged host ids; without it a box is rootless (the caller's own id
 * is its root, rlimits stand in for cgroups).
 */
export function privileged(): boolean {
  return process.geteuid?.() === 0;
}
