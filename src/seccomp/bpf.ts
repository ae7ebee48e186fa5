/**
 * Classic BPF as seccomp uses it: instruction encoding, the `seccomp_data` layout, and a checker
 * that accepts what the kernel's bpf_check_classic() + seccomp_check_filter() accept.
 */

// Instruction classes and fields (<linux/bpf_common.h>).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;

export const BPF_W = 0x00;
export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_MEM = 0x60;
export const BPF_LEN = 0x80;

export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_XOR = 0xa0;

export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;

export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_A = 0x10; // BPF_RET source
export const BPF_TAX = 0x00;
export const BPF_TXA = 0x80;

/** The kernel's limit on the length of a classic BPF program (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;
/** Scratch memory slots (BPF_MEMWORDS). */
export const BPF_MEMWORDS = 16;

/** `struct seccomp_data` (64 bytes): nr, arch, instruction_pointer, args[6]; native (little) endian. */
export const SECCOMP_DATA = Object.freeze({
  nr: 0,
  arch: 4,
  instructionPointerLo: 8,
  instructionPointerHi: 12,
  /** Offset of the low 32 bits of args[i] on a little-endian machine. */
  argLo: (i: number): number => 16 + 8 * i,
  /** Offset of the high 32 bits of args[i] on a little-endian machine. */
  argHi: (i: number): number => 20 + 8 * i,
  size: 64,
});

/** One `struct sock_filter`. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const SOCK_FILTER_SIZE = 8;

/** Serialises instructions to `struct sock_filter[]` bytes (u16 code, u8 jt, u8 jf, u32 k, LE). */
export function encodeProgram(insns: readonly BpfInsn[]): Buffer {
  const buf = Buffer.alloc(insns.length * SOCK_FILTER_SIZE);
  insns.forEach((ins, i) => {
    const o = i * SOCK_FILTER_SIZE;
    buf.writeUInt16LE(ins.code, o);
    buf.writeUInt8(ins.jt, o + 2);
    buf.writeUInt8(ins.jf, o + 3);
    buf.writeUInt32LE(ins.k >>> 0, o + 4);
  });
  return buf;
}

/** Parses `struct sock_filter[]` bytes. */
export function decodeProgram(program: Uint8Array): BpfInsn[] {
  if (program.length % SOCK_FILTER_SIZE !== 0)
    throw new BpfProgramError(`program length ${program.length} is not a multiple of ${SOCK_FILTER_SIZE}`);
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const out: BpfInsn[] = [];
  for (let o = 0; o < program.length; o += SOCK_FILTER_SIZE) {
    out.push({
      code: view.getUint16(o, true),
      jt: view.getUint8(o + 2),
      jf: view.getUint8(o + 3),
      k: view.getUint32(o + 4, true),
    });
  }
  return out;
}

/** The program would be refused by the kernel's checker. */
export class BpfProgramError extends Error {
  override readonly name = 'BpfProgramError';
  readonly pc: number | undefined;
  constructor(message: string, pc?: number) {
    super(pc === undefined ? message : `instruction ${pc}: ${message}`);
    this.pc = pc;
  }
}

const ALU_OPS = new Set([BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH]);

/**
 * Checks a program the way the kernel does before attaching a seccomp filter: 1..4096
 * instructions, only the opcodes seccomp allows, `ld [k]` only at aligned offsets inside
 * seccomp_data, jumps that stay inside the program, no division by a constant zero, scratch slots
 * in range and a return as the last instruction. Throws {@link BpfProgramError}.
 */
export function checkProgram(insns: readonly BpfInsn[]): void {
  const len = insns.length;
  if (len === 0) throw new BpfProgramError('empty program');
  if (len > BPF_MAXINSNS) throw new BpfProgramError(`${len} instructions, more than BPF_MAXINSNS (${BPF_MAXINSNS})`);
  for (let pc = 0; pc < len; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    const cls = code & 0x07;
    const bad = (why: string): never => {
      throw new BpfProgramError(why, pc);
    };
    switch (cls) {
      case BPF_LD:
        if (code === (BPF_LD | BPF_W | BPF_ABS)) {
          if (k & 3 || k >= SECCOMP_DATA.size) bad(`load of seccomp_data offset ${k} (must be aligned and < 64)`);
        } else if (code === (BPF_LD | BPF_W | BPF_LEN) || code === (BPF_LD | BPF_IMM)) {
          /* ok */
        } else if (code === (BPF_LD | BPF_MEM)) {
          if (k >= BPF_MEMWORDS) bad(`scratch slot ${k} out of range`);
        } else bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        break;
      case BPF_LDX:
        if (code === (BPF_LDX | BPF_W | BPF_LEN) || code === (BPF_LDX | BPF_IMM)) {
          /* ok */
        } else if (code === (BPF_LDX | BPF_MEM)) {
          if (k >= BPF_MEMWORDS) bad(`scratch slot ${k} out of range`);
        } else bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        break;
      case BPF_ST:
      case BPF_STX:
        if (code !== cls) bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        if (k >= BPF_MEMWORDS) bad(`scratch slot ${k} out of range`);
        break;
      case BPF_ALU: {
        const op = code & 0xf0;
        if (code === (BPF_ALU | BPF_NEG)) break;
        if (!ALU_OPS.has(op) || (code & ~0xf8) !== BPF_ALU) bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        if ((code & BPF_X) === BPF_K) {
          if (op === BPF_DIV && k === 0) bad('division by constant zero');
          if ((op === BPF_LSH || op === BPF_RSH) && k >= 32) bad(`shift by ${k}`);
        }
        break;
      }
      case BPF_JMP: {
        const op = code & 0xf0;
        if (code === (BPF_JMP | BPF_JA)) {
          if (k >= len - pc - 1) bad(`ja +${k} jumps out of the program`);
          break;
        }
        if (![BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET].includes(op) || (code & ~0xf8) !== BPF_JMP)
          bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        if (pc + jt + 1 >= len || pc + jf + 1 >= len) bad(`conditional jump (+${jt}/+${jf}) out of the program`);
        break;
      }
      case BPF_RET:
        if (code !== (BPF_RET | BPF_K) && code !== (BPF_RET | BPF_A))
          bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        break;
      case BPF_MISC:
        if (code !== (BPF_MISC | BPF_TAX) && code !== (BPF_MISC | BPF_TXA))
          bad(`opcode 0x${code.toString(16)} not allowed in seccomp filters`);
        break;
    }
  }
  if ((insns[len - 1]!.code & 0x07) !== BPF_RET) throw new BpfProgramError('the last instruction is not a return', len - 1);
}

/** Short disassembly of one instruction (for explain and debugging). */
export function disassemble(ins: BpfInsn, pc: number): string {
  const { code, jt, jf, k } = ins;
  const hex = `0x${(k >>> 0).toString(16)}`;
  const cls = code & 0x07;
  if (code === (BPF_LD | BPF_W | BPF_ABS)) return `ld [${k}]`;
  if (code === (BPF_RET | BPF_K)) return `ret ${hex}`;
  if (code === (BPF_RET | BPF_A)) return 'ret a';
  if (code === (BPF_JMP | BPF_JA)) return `ja ${pc + 1 + k}`;
  if (cls === BPF_JMP) {
    const name = { [BPF_JEQ]: 'jeq', [BPF_JGT]: 'jgt', [BPF_JGE]: 'jge', [BPF_JSET]: 'jset' }[code & 0xf0] ?? '?';
    return `${name} ${(code & BPF_X) === BPF_X ? 'x' : hex}, ${pc + 1 + jt}, ${pc + 1 + jf}`;
  }
  if (code === (BPF_ALU | BPF_AND | BPF_K)) return `and ${hex}`;
  return `code=0x${code.toString(16)} jt=${jt} jf=${jf} k=${hex}`;
}
