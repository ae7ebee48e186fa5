import { describe, expect, it } from 'vitest';
import { AUDIT_ARCH } from '../../src/seccomp/arch.js';
import { BpfProgramError, type BpfInsn, encodeProgram } from '../../src/seccomp/bpf.js';
import { emulate, emulateTrace } from '../../src/seccomp/emulator.js';

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
