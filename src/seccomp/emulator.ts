/**
 * Runs compiled seccomp programs without a kernel (`emulate`), and evaluates a policy's intent
 * directly (`decide`), the reference the compiler is tested against.
 */
import { AUDIT_ARCH, type SeccompArch, X32_SYSCALL_BIT, syscallTable } from './arch.js';
import {
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_DIV,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_JSET,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_LSH,
  BPF_MEM,
  BPF_MISC,
  BPF_MUL,
  BPF_NEG,
  BPF_OR,
  BPF_RET,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_X,
  BPF_XOR,
  BPF_A,
  BPF_ABS,
  BPF_TXA,
  type BpfInsn,
  checkProgram,
  decodeProgram,
  SECCOMP_DATA,
} from './bpf.js';
import {
  type ActionOptions,
  type PlaceholderName,
  type ResolvedCondition,
  type SeccompPolicy,
  U64_MAX,
  actionValue,
  foreignAction,
  resolvePolicy,
  validatePolicy,
} from './policy.js';

/** The system call as a seccomp filter sees it (`struct seccomp_data`). */
export interface SeccompCall {
  /** The system call number (as the kernel passes it: a 32-bit value). */
  nr: number;
  /** `seccomp_data.arch`: an AUDIT_ARCH value (see `AUDIT_ARCH`). */
  arch: number;
  /** Up to six 64-bit arguments; missing ones are 0. */
  args?: readonly bigint[];
  instructionPointer?: bigint;
}

export interface EmulationTrace {
  /** The 32-bit value the filter returned. */
  action: number;
  /** seccomp_data offsets loaded, in order (0 = nr, 4 = arch, 8/12 = ip, 16.. = args). */
  offsetsRead: number[];
  /** Instructions executed. */
  steps: number;
}

function seccompDataWords(call: SeccompCall): Uint32Array {
  const w = new Uint32Array(SECCOMP_DATA.size / 4);
  w[0] = call.nr >>> 0;
  w[1] = call.arch >>> 0;
  const ip = BigInt.asUintN(64, call.instructionPointer ?? 0n);
  w[2] = Number(ip & 0xffffffffn);
  w[3] = Number(ip >> 32n);
  for (let i = 0; i < 6; i++) {
    const a = BigInt.asUintN(64, call.args?.[i] ?? 0n);
    w[4 + 2 * i] = Number(a & 0xffffffffn);
    w[5 + 2 * i] = Number(a >> 32n);
  }
  return w;
}

/** Checked programs by identity, with a copy of their bytes to notice later mutation. */
const programCache = new WeakMap<object, { bytes: Buffer; insns: BpfInsn[] }>();

function checkedInsns(program: Uint8Array | readonly BpfInsn[]): BpfInsn[] {
  if (!(program instanceof Uint8Array)) {
    const insns = [...program];
    checkProgram(insns);
    return insns;
  }
  const cached = programCache.get(program);
  if (cached && cached.bytes.equals(program)) return cached.insns;
  const insns = decodeProgram(program);
  checkProgram(insns);
  programCache.set(program, { bytes: Buffer.from(program), insns });
  return insns;
}

/**
 * Runs a seccomp program on one call and reports what it returned and which parts of
 * seccomp_data it read. The program is checked first like the kernel does (throws
 * `BpfProgramError` for malformed programs); the check is cached per buffer (and redone when the
 * buffer's bytes changed).
 */
export function emulateTrace(program: Uint8Array | readonly BpfInsn[], call: SeccompCall): EmulationTrace {
  const insns = checkedInsns(program);
  const data = seccompDataWords(call);
  const mem = new Uint32Array(16);
  const offsetsRead: number[] = [];
  let A = 0;
  let X = 0;
  let steps = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    steps++;
    switch (code & 0x07) {
      case BPF_LD:
        if ((code & 0xe0) === BPF_ABS) {
          offsetsRead.push(k);
          A = data[k / 4]!;
        } else if ((code & 0xe0) === BPF_LEN) A = SECCOMP_DATA.size;
        else if ((code & 0xe0) === BPF_MEM) A = mem[k]!;
        else A = k >>> 0;
        break;
      case BPF_LDX:
        if ((code & 0xe0) === BPF_LEN) X = SECCOMP_DATA.size;
        else if ((code & 0xe0) === BPF_MEM) X = mem[k]!;
        else X = k >>> 0;
        break;
      case BPF_ST:
        mem[k] = A;
        break;
      case BPF_STX:
        mem[k] = X;
        break;
      case BPF_ALU: {
        const src = (code & BPF_X) === BPF_X ? X : k >>> 0;
        switch (code & 0xf0) {
          case BPF_ADD: A = (A + src) >>> 0; break;
          case BPF_SUB: A = (A - src) >>> 0; break;
          case BPF_MUL: A = Number((BigInt(A) * BigInt(src)) & 0xffffffffn); break;
          case BPF_DIV: A = src === 0 ? 0 : Math.floor(A / src) >>> 0; break;
          case BPF_AND: A = (A & src) >>> 0; break;
          case BPF_OR: A = (A | src) >>> 0; break;
          case BPF_XOR: A = (A ^ src) >>> 0; break;
          case BPF_LSH: A = src >= 32 ? 0 : (A << src) >>> 0; break;
          case BPF_RSH: A = src >= 32 ? 0 : A >>> src; break;
          case BPF_NEG: A = -A >>> 0; break;
        }
        if ((code & 0xf0) === BPF_DIV && src === 0) return { action: 0, offsetsRead, steps }; // kernel: return 0
        break;
      }
      case BPF_JMP: {
        if ((code & 0xf0) === BPF_JA) {
          pc += k;
          break;
        }
        const src = (code & BPF_X) === BPF_X ? X : k >>> 0;
        let cond: boolean;
        switch (code & 0xf0) {
          case BPF_JEQ: cond = A === src; break;
          case BPF_JGT: cond = A > src; break;
          case BPF_JGE: cond = A >= src; break;
          case BPF_JSET: cond = (A & src) !== 0; break;
          default: cond = false;
        }
        pc += cond ? jt : jf;
        break;
      }
      case BPF_RET:
        return { action: ((code & 0x18) === BPF_A ? A : k) >>> 0, offsetsRead, steps };
      case BPF_MISC:
        if ((code & 0xf8) === BPF_TXA) A = X;
        else X = A;
        break;
    }
  }
  // checkProgram guarantees the last instruction returns and jumps stay inside.
  throw new Error('unreachable: program fell off its end');
}

/** Runs a seccomp program on one call and returns the 32-bit action it produced. */
export function emulate(program: Uint8Array | readonly BpfInsn[], call: SeccompCall): number {
  return emulateTrace(program, call).action;
}

// ---------------------------------------------------------------------------------------------
// Reference semantics
// ---------------------------------------------------------------------------------------------

export interface DecideOptions extends ActionOptions {
  /** Values of placeholders used by the policy (e.g. `{ execPath: 0x7ffd1234n }`). */
  placeholders?: Partial<Record<PlaceholderName, bigint>>;
}

function conditionHolds(c: ResolvedCondition, args: readonly bigint[] | undefined, opts: DecideOptions): boolean {
  const a = BigInt.asUintN(64, args?.[c.index] ?? 0n);
  let v: bigint;
  if (typeof c.value === 'string') {
    const p = opts.placeholders?.[c.value];
    if (p === undefined) throw new Error(`decide: no value given for placeholder ${c.value}`);
    v = BigInt.asUintN(64, p);
  } else v = c.value;
  switch (c.op) {
    case 'eq': return a === v;
    case 'ne': return a !== v;
    case 'lt': return a < v;
    case 'le': return a <= v;
    case 'gt': return a > v;
    case 'ge': return a >= v;
    case 'masked-eq': return (a & c.mask & U64_MAX) === v;
  }
}

const resolvedCache = new WeakMap<SeccompPolicy, Map<SeccompArch, ReturnType<typeof resolvePolicy>>>();

/**
 * What `policy` means for `call` on `arch`, evaluated directly from the rules (no BPF): the same
 * 32-bit action a correctly compiled filter returns, including the refusal of foreign
 * architectures and of the x32 ABI.
 */
export function decide(policy: SeccompPolicy, arch: SeccompArch, call: SeccompCall, opts: DecideOptions = {}): number {
  if (call.arch >>> 0 !== AUDIT_ARCH[arch]) return foreignAction(policy, opts);
  const nr = call.nr >>> 0;
  if (arch === 'x86_64' && (nr & X32_SYSCALL_BIT) !== 0) return foreignAction(policy, opts);
  let perArch = resolvedCache.get(policy);
  if (!perArch) resolvedCache.set(policy, (perArch = new Map()));
  let byNr = perArch.get(arch);
  if (!byNr) perArch.set(arch, (byNr = resolvePolicy(validatePolicy(policy), arch, syscallTable(arch))));
  for (const r of byNr.get(nr) ?? []) {
    if (r.conditions.every((c) => conditionHolds(c, call.args, opts))) return actionValue(r.action, opts);
  }
  return actionValue(policy.defaultAction, opts);
}
