import { type SeccompArch, syscallName, syscallTable } from '../../src/seccomp/arch.js';
import type { SeccompPolicy, SeccompRule } from '../../src/seccomp/policy.js';

/** Conditions on both 32-bit halves, every operator, AND-ed conditions, first-match ordering. */
export const halvesPolicy: SeccompPolicy = {
  defaultAction: { errno: 'EPERM' },
  rules: [
    { syscall: 'write', action: 'allow', args: [{ index: 0, op: 'le', value: 2 }] },
    { syscall: 'write', action: { errno: 9 }, args: [{ index: 0, op: 'gt', value: '0x100000000' }] },
    { syscall: 'read', action: 'allow', args: [{ index: 2, op: 'lt', value: '0x100000000' }] },
    { syscall: 'read', action: 'log', args: [{ index: 2, op: 'ge', value: '0xffffffff00000001' }] },
    {
      syscall: 'mmap',
      action: 'allow',
      args: [
        { index: 1, op: 'gt', value: '0x100000005' },
        { index: 1, op: 'le', value: '0x2fffffff0' },
        { index: 3, op: 'masked-eq', value: '0x1000000020', mask: '0xff000000ff' },
      ],
    },
    { syscall: 'mmap', action: 'kill', args: [{ index: 5, op: 'ne', value: 0 }] },
    { syscall: 'openat', action: { errno: 'EACCES' }, args: [{ index: 0, op: 'eq', value: -100 }] },
    { syscall: 'openat', action: 'allow', args: [{ index: 2, op: 'masked-eq', value: 0, mask: 3 }] },
    { syscall: 'openat', action: 'notify' },
    // degenerate conditions (always / never true), dead rules: still compiled correctly
    { syscall: 'getpid', action: 'allow', args: [{ index: 0, op: 'ge', value: 0n }] },
    { syscall: 'getppid', action: 'kill', args: [{ index: 4, op: 'lt', value: 0 }] },
    { syscall: 'gettid', action: 'allow', args: [{ index: 1, op: 'masked-eq', value: 5, mask: 0 }] },
    { syscall: 'mprotect', action: 'allow', args: [{ index: 1, op: 'le', value: '0x2ffffffff' }] },
    { syscall: 'close', action: 'allow' },
    { syscall: 'close', action: 'kill', args: [{ index: 0, op: 'eq', value: 0 }] },
    { syscall: 'gettid', action: 'allow', args: [{ index: 1, op: 'masked-eq', value: '0x8000000000000000', mask: '0x8000000000000000' }] },
    { syscall: 'getuid', action: 'allow', args: [{ index: 1, op: 'masked-eq', value: 0, mask: '0xffffffff00000000' }] },
    { syscall: ['fstat', 'newfstatat'], action: 'allow', args: [{ index: 0, op: 'lt', value: '0xffffffffffffffff' }] },
    { syscall: 'newfstatat', action: 'log' },
    { syscall: ['open', 'stat'], action: 'allow', optional: true },
  ],
};

/** halvesPolicy without its degenerate rules: every constant in its program matters. */
export const strictHalvesPolicy: SeccompPolicy = {
  ...halvesPolicy,
  rules: halvesPolicy.rules.filter(
    (r) => !['getpid', 'getppid', 'mprotect', 'close'].includes(r.syscall as string) && !(r.args?.[0]?.op === 'masked-eq' && r.args[0].mask === 0),
  ),
};

/** Long runs of numbers sharing one action, holes, and a default-allow policy. */
export function rangesPolicy(arch: SeccompArch): SeccompPolicy {
  const table = syscallTable(arch);
  const names = (lo: number, hi: number): string[] =>
    Object.entries(table)
      .filter(([, nr]) => nr >= lo && nr <= hi)
      .map(([n]) => n);
  return {
    defaultAction: 'allow',
    rules: [
      { syscall: names(0, 60), action: { errno: 'ENOSYS' } },
      { syscall: names(61, 61), action: 'allow' },
      { syscall: names(100, 200), action: 'log' },
      { syscall: names(150, 150), action: 'kill' }, // shadowed by the log rule above
      { syscall: names(201, 201), action: 'kill', args: [{ index: 0, op: 'eq', value: 7 }] },
      { syscall: names(420, 450), action: 'kill' },
    ],
  };
}

/**
 * Conditional rules on every second syscall: a program of well over 256 instructions whose
 * binary search and shared returns need `ja` trampolines and return copies.
 */
export function bigPolicy(arch: SeccompArch): SeccompPolicy {
  const rules: SeccompRule[] = [];
  const nrs = Object.values(syscallTable(arch)).sort((a, b) => a - b);
  nrs.forEach((nr, i) => {
    const name = syscallName(nr, arch)!;
    if (i % 2 === 0)
      rules.push({
        syscall: name,
        action: i % 4 === 0 ? 'allow' : { errno: 1 + (i % 50) },
        args: [
          i % 3 === 0
            ? { index: (i % 6) as 0, op: 'gt', value: i * 1000003 }
            : { index: (i % 6) as 0, op: 'masked-eq', value: i * 1000003, mask: '0xffff0000ffff' },
        ],
      });
    else if (i % 3 === 0) rules.push({ syscall: name, action: 'allow' });
  });
  return { defaultAction: 'kill', rules };
}

export const placeholderPolicy: SeccompPolicy = {
  defaultAction: 'kill',
  rules: [
    { syscall: 'execve', action: 'allow', args: [{ index: 0, op: 'eq', value: { placeholder: 'execPath' } }] },
    { syscall: 'execveat', action: { errno: 'EPERM' }, args: [{ index: 1, op: 'ne', value: { placeholder: 'execPath' } }] },
    { syscall: ['exit_group', 'write'], action: 'allow' },
  ],
};
