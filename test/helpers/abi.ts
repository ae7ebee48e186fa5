/**
 * Whether this machine delivers i386 system calls (`int $0x80`) from a 64-bit process at all.
 * Some hypervisors do not: the instruction faults (SIGSEGV) before any system call entry, the
 * seccomp filter's included, so the i386 ABI can be no way around the filter there, and what the
 * filter does with it can only be checked by the BPF emulator (test/seccomp). The ABI tests then
 * assert the fault, inside the box and outside, and say so loudly: never a silent pass.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { compileProgram } from './fixtures.js';

const PROBE = 'int main(void) { long r; __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory"); return r > 0 ? 0 : 1; }\n';

function probe(): boolean {
  if (process.arch !== 'x64') return false;
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-int80-'));
  try {
    writeFileSync(join(dir, 'p.c'), PROBE);
    compileProgram(join(dir, 'p.c'), join(dir, 'p'));
    const r = spawnSync(join(dir, 'p'));
    if (r.status === 0) return true;
    if (r.signal === 'SIGSEGV') return false;
    throw new Error(`the int 0x80 probe ended unexpectedly (status ${String(r.status)}, signal ${String(r.signal)})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True where `int $0x80` reaches the kernel's system call entry outside any box. */
export const INT80_DELIVERED = probe();

/** Says, once per suite, that the i386 ABI is refused by the machine itself here. */
export function warnIfInt80Absent(): void {
  if (INT80_DELIVERED) return;
  console.warn(
    'WARNING: this machine does not deliver int 0x80 system calls (SIGSEGV outside any box too): the i386 ABI tests assert that fault, and the filter\'s i386 branch is checked by the BPF emulator only.',
  );
}
