import { describe, expect, it } from 'vitest';
import { ARCHES, AUDIT_ARCH, syscallName, syscallNumber } from '../../src/seccomp/arch.js';
import { BpfProgramError, type BpfInsn, encodeProgram } from '../../src/seccomp/bpf.js';
import { compile } from '../../src/seccomp/compile.js';
import { emulate, emulateTrace } from '../../src/seccomp/emulator.js';
import { SECCOMP_RET } from '../../src/seccomp/policy.js';
import { presets } from '../../src/seccomp/presets.js';

const ld = (k: number): BpfInsn => ({ code: 0x20, jt: 0, jf: 0, k });
const ret = (k: number): BpfInsn => ({ code: 0x06, jt: 0, jf: 0, k });
const jeq = (k: number, jt: number, jf: number): BpfInsn => ({ code: 0x15, jt, jf, k });
const call = { nr: 3, arch: AUDIT_ARCH.x86_64, args: [0x1_0000_0002n] };

describe('the emulator refuses what the kernel refuses', () => {
  it.each<[string, BpfInsn[], RegExp]>([
    ['empty', [], /empty/],
    ['no return at the end', [ld(0)], /last instruction/],
    ['conditional jump past the end', [ld(0), jeq(3, 1, 0), ret(0)], /out of the program/],
    ['ja past the end', [{ code: 0x05, jt: 0, jf: 0, k: 1 }, ret(0)], /out of the program/],
    ['load beyond seccomp_data', [ld(64), ret(0)], /offset 64/],
    ['misaligned load', [ld(2), ret(0)], /offset 2/],
    ['packet loads', [{ code: 0x28, jt: 0, jf: 0, k: 0 }, ret(0)], /not allowed/],
    ['division by constant zero', [{ code: 0x34, jt: 0, jf: 0, k: 0 }, ret(0)], /division/],
    ['scratch slot out of range', [{ code: 0x02, jt: 0, jf: 0, k: 16 }, ret(0)], /slot/],
    ['return of X', [{ code: 0x0e, jt: 0, jf: 0, k: 0 }], /not allowed/],
    ['too long', Array.from({ length: 4097 }, () => ret(0)), /4096/],
  ])('%s', (_name, insns, message) => {
    expect(() => emulate(encodeProgram(insns), call)).toThrow(BpfProgramError);
    expect(() => emulate(encodeProgram(insns), call)).toThrow(message);
  });

  it('rejects a byte length that is not a whole number of instructions', () => {
    expect(() => emulate(Buffer.alloc(12), call)).toThrow(/multiple of 8/);
  });
});

describe('execution', () => {
  it('loads the right halves and reports what it read', () => {
    // if args[0].hi == 1 && args[0].lo == 2 → 0x7fff0000 else 0
    const p = encodeProgram([ld(20), jeq(1, 0, 3), ld(16), jeq(2, 0, 1), ret(0x7fff0000), ret(0)]);
    expect(emulateTrace(p, call)).toEqual({ action: 0x7fff0000, offsetsRead: [20, 16], steps: 5 });
    expect(emulate(p, { ...call, args: [2n] })).toBe(0);
    expect(emulate(p, { ...call, args: [0x1_0000_0003n] })).toBe(0);
  });

  it('runs ALU, scratch memory, TAX/TXA and ret A', () => {
    const p = encodeProgram([
      ld(0), // A = nr
      { code: 0x04, jt: 0, jf: 0, k: 10 }, // A += 10
      { code: 0x02, jt: 0, jf: 0, k: 3 }, // M[3] = A
      { code: 0x00, jt: 0, jf: 0, k: 0xffff }, // A = 0xffff
      { code: 0x07, jt: 0, jf: 0, k: 0 }, // X = A
      { code: 0x60, jt: 0, jf: 0, k: 3 }, // A = M[3]
      { code: 0x5c, jt: 0, jf: 0, k: 0 }, // A &= X
      { code: 0x64, jt: 0, jf: 0, k: 4 }, // A <<= 4
      { code: 0x16, jt: 0, jf: 0, k: 0 }, // ret A
    ]);
    expect(emulate(p, call)).toBe((3 + 10) << 4);
  });

  it('treats jump offsets as unsigned and relative to the next instruction', () => {
    const p = encodeProgram([ld(0), { code: 0x35, jt: 1, jf: 0, k: 3 }, ret(1), ret(2)]); // jge 3
    expect(emulate(p, { ...call, nr: 2 })).toBe(1);
    expect(emulate(p, { ...call, nr: 3 })).toBe(2);
    expect(emulate(p, { ...call, nr: 0xffffffff })).toBe(2);
  });
});

it('notices a program buffer changed after it was first checked', () => {
  const p = encodeProgram([ld(0), ret(7)]);
  expect(emulate(p, call)).toBe(7);
  p.writeUInt32LE(9, 12);
  expect(emulate(p, call)).toBe(9);
  p.writeUInt16LE(0x28, 0); // now an illegal packet load
  expect(() => emulate(p, call)).toThrow(BpfProgramError);
});

describe.each(ARCHES)("the default preset compiled for %s is an allow-list", (arch) => {
  const program = compile(presets.default, arch).program;
  const native = AUDIT_ARCH[arch];
  const run = (nr: number, args: bigint[] = []): number => emulate(program, { nr, arch: native, args });
  const ENOSYS = SECCOMP_RET.ERRNO | 38;

  it('answers ENOSYS to system calls newer than the tables (numbers shared by both arches)', () => {
    const newer = { statmount: 457, listmount: 458, lsm_get_self_attr: 459, lsm_set_self_attr: 460, lsm_list_modules: 461, mseal: 462, open_tree_attr: 467 };
    for (const [name, nr] of Object.entries(newer)) {
      expect(syscallName(nr, arch), `${name} is not in the ${arch} table`).toBeUndefined();
      expect(run(nr), name).toBe(ENOSYS);
    }
  });

  it('answers ENOSYS to every number the table does not know (x32 numbers aside: they end the process)', () => {
    const unknown: number[] = [];
    for (let nr = 0; nr < 1024; nr++) if (syscallName(nr, arch) === undefined) unknown.push(nr);
    unknown.push(0x3fffffff, 0x80000000, 0xbfffffff);
    // bit 30 marks x32 on x86_64 only; on aarch64 these are plain unknown numbers
    if (arch === 'aarch64') unknown.push(0x40000000 | 63, 0x7fffffff, 0xffffffff);
    expect(unknown.length).toBeGreaterThan(600);
    for (const nr of unknown) expect(run(nr, [1n, 2n, 3n]), `nr ${nr}`).toBe(ENOSYS);
  });

  it('holds socketpair() to the families socket() may use', () => {
    const socket = syscallNumber('socket', arch)!;
    const socketpair = syscallNumber('socketpair', arch)!;
    for (let family = 0n; family < 64n; family++) {
      const want = [1n, 2n, 10n].includes(family) ? SECCOMP_RET.ALLOW : SECCOMP_RET.ERRNO | 97;
      expect(run(socket, [family, 1n, 0n]), `socket(${family})`).toBe(want);
      expect(run(socketpair, [family, 1n, 0n]), `socketpair(${family})`).toBe(want);
    }
  });
});
