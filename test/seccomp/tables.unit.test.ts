import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ARCHES, syscallName, syscallNumber, syscallTable } from '../../src/seccomp/arch.js';
import { presets } from '../../src/seccomp/presets.js';

describe('syscall tables', () => {
  it('have the well-known numbers', () => {
    expect(syscallNumber('read', 'x86_64')).toBe(0);
    expect(syscallNumber('execve', 'x86_64')).toBe(59);
    expect(syscallNumber('openat', 'x86_64')).toBe(257);
    expect(syscallNumber('clone3', 'x86_64')).toBe(435);
    expect(syscallNumber('io_uring_setup', 'x86_64')).toBe(425);
    expect(syscallNumber('openat', 'aarch64')).toBe(56);
    expect(syscallNumber('execve', 'aarch64')).toBe(221);
    expect(syscallNumber('clone', 'aarch64')).toBe(220);
    // __NR3264_* names get their 64-bit names
    expect(syscallNumber('fstat', 'aarch64')).toBe(80);
    expect(syscallNumber('newfstatat', 'aarch64')).toBe(79);
    expect(syscallNumber('mmap', 'aarch64')).toBe(222);
    expect(syscallNumber('fcntl', 'aarch64')).toBe(25);
    expect(syscallNumber('lseek', 'aarch64')).toBe(62);
    expect(syscallNumber('renameat', 'aarch64')).toBe(38);
    expect(syscallNumber('getrlimit', 'aarch64')).toBe(163);
    expect(syscallNumber('clone3', 'aarch64')).toBe(435);
    // legacy calls arm64 never had, and 32-bit-only names
    for (const n of ['open', 'stat', 'fork', 'pipe', 'fcntl64', 'mmap2', 'arch_specific_syscall', 'clock_gettime64', 'syscalls'])
      expect(syscallNumber(n, 'aarch64')).toBeUndefined();
    expect(syscallName(0, 'x86_64')).toBe('read');
    expect(syscallName(63, 'aarch64')).toBe('read');
    expect(syscallName(244, 'aarch64')).toBeUndefined();
    expect(syscallNumber('toString', 'x86_64')).toBeUndefined();
  });

  it.each(ARCHES)('%s: numbers are unique', (arch) => {
    const nrs = Object.values(syscallTable(arch));
    expect(new Set(nrs).size).toBe(nrs.length);
  });

  it('are what the generator makes of the installed headers', () => {
    execFileSync(process.execPath, ['scripts/gen-syscalls.mjs', '--check'], { stdio: 'pipe' });
  });

  it('every name in the presets exists on at least one arch (no typos hidden by optional)', () => {
    for (const policy of Object.values(presets)) {
      for (const r of policy.rules) {
        for (const n of typeof r.syscall === 'string' ? [r.syscall] : r.syscall) {
          expect(ARCHES.some((a) => syscallNumber(n, a) !== undefined), n).toBe(true);
        }
      }
    }
  });
});
