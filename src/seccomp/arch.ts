/**
 * Architectures the seccomp compiler knows, their AUDIT_ARCH values (what the kernel puts in
 * `seccomp_data.arch`) and their system call tables.
 */
import { AARCH64_SYSCALLS } from './tables/aarch64.js';
import { X86_64_SYSCALLS } from './tables/x86_64.js';

/** The architectures a policy can be compiled for. */
export type SeccompArch = 'x86_64' | 'aarch64';

export const ARCHES: readonly SeccompArch[] = ['x86_64', 'aarch64'];

/** `seccomp_data.arch` values (from <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE). */
export const AUDIT_ARCH = Object.freeze({
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
  /** 32-bit x86 (`int 0x80` on an x86_64 kernel): always refused by compiled filters. */
  i386: 0x40000003,
  /** 32-bit ARM (compat mode on an arm64 kernel): always refused by compiled filters. */
  arm: 0x40000028,
} as const);

/** x86_64 system call numbers with this bit set belong to the x32 ABI. */
export const X32_SYSCALL_BIT = 0x40000000;

const TABLES: Readonly<Record<SeccompArch, Readonly<Record<string, number>>>> = {
  x86_64: X86_64_SYSCALLS,
  aarch64: AARCH64_SYSCALLS,
};

/** Names by number, per architecture, made by the first lookup: a process that compiles for one architecture never needs the other's. */
const reverse = new Map<SeccompArch, Map<number, string>>();

export function isSeccompArch(arch: string): arch is SeccompArch {
  return arch === 'x86_64' || arch === 'aarch64';
}

/** The system call table of `arch`: name → number. */
export function syscallTable(arch: SeccompArch): Readonly<Record<string, number>> {
  const t = TABLES[arch];
  if (!t) throw new TypeError(`unknown seccomp architecture ${String(arch)}`);
  return t;
}

/** The number of system call `name` on `arch`, or `undefined` when that arch has no such call. */
export function syscallNumber(name: string, arch: SeccompArch): number | undefined {
  const t = syscallTable(arch);
  return Object.prototype.hasOwnProperty.call(t, name) ? t[name] : undefined;
}

/** The name of system call number `nr` on `arch`, or `undefined` when the number is unassigned. */
export function syscallName(nr: number, arch: SeccompArch): string | undefined {
  const table = syscallTable(arch);
  let names = reverse.get(arch);
  if (!names) {
    names = new Map(Object.entries(table).map(([n, nr]) => [nr, n]));
    reverse.set(arch, names);
  }
  return names.get(nr);
}

/** The architecture of the running Node process, if the compiler supports it. */
export function hostArch(): SeccompArch | undefined {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  return undefined;
}
