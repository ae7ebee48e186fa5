/**
 * The seccomp policy compiler: policy → classic BPF (`struct sock_filter[]` bytes).
 *
 * Program shape:
 *
 *   ld [arch]; jeq AUDIT_ARCH_<arch> else → foreign action     (i386, arm32, anything else)
 *   ld [nr]
 *   jeq <nr> → rule chain                                     (frequent calls with argument rules)
 *   (x86_64) jset 0x40000000 → foreign action                 (x32 ABI)
 *   binary search (jge) over the sorted ranges of the other syscall numbers sharing one decision
 *     leaf: ret <action>                                        (decided by arch + nr alone)
 *     leaf: per-syscall rule chain: load args[i] halves, compare, ret <action>
 *
 * An unconditionally allowed call only ever meets `ld [arch]`, `ld [nr]`, `jeq/jset/jge` with
 * constants and `ret`, which is what the kernel's seccomp action cache (5.11+) needs to prove the
 * call always allowed and skip the filter for it. The filter therefore runs only for calls with
 * argument rules and for refused calls; the prelude puts the frequent ones among the first kind
 * (ioctl above all) a few instructions from the start instead of at the bottom of the search.
 * Jumps too long for the 8-bit offsets of conditional jumps get a `ja` trampoline (or a fresh
 * copy of the `ret` they aim at). A last pass ({@link dropRedundantLoads}) makes a jump that
 * arrives with an argument word already in the accumulator skip the reload of that word, so
 * consecutive rules on one argument load it once.
 */
import { AUDIT_ARCH, type SeccompArch, X32_SYSCALL_BIT, isSeccompArch, syscallName, syscallTable } from './arch.js';
import {
  BPF_ABS,
  BPF_ALU,
  BPF_AND,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_JSET,
  BPF_K,
  BPF_LD,
  BPF_MAXINSNS,
  BPF_MISC,
  BPF_RET,
  BPF_TXA,
  BPF_W,
  type BpfInsn,
  checkProgram,
  encodeProgram,
  SECCOMP_DATA,
} from './bpf.js';
import {
  type ActionOptions,
  type PlaceholderName,
  type ResolvedCondition,
  type ResolvedRule,
  type SeccompPolicy,
  actionValue,
  foreignAction,
  resolvePolicy,
  validatePolicy,
  withoutTerminalRules,
} from './policy.js';
import { PREBUILT } from './prebuilt.js';
import { type PresetName, presets } from './presets.js';

export interface CompileOptions extends ActionOptions {}

/** Where a placeholder value must be patched into the program before it is loaded. */
export interface PlaceholderSite {
  name: PlaceholderName;
  /** Instruction index; patch its `k` field (bytes `index*8+4 .. index*8+8`, little-endian u32). */
  index: number;
  /** Which 32-bit half of the 64-bit value goes there. */
  half: 'lo' | 'hi';
}

export interface CompileResult {
  arch: SeccompArch;
  /** `struct sock_filter[]`: u16 code, u8 jt, u8 jf, u32 k, little-endian, 8 bytes each. */
  program: Buffer;
  /** Number of instructions (`program.length / 8`), at most 4096. */
  instructions: number;
  /**
   * Instructions whose constant must be replaced by a value known only when the filter is
   * installed (for now: `execPath`, the address of the path string the sandbox passes to its
   * own execve). Compiled with 0 there. Patch with {@link patchPlaceholders} or natively.
   */
  placeholders: PlaceholderSite[];
}

/** The policy does not fit in a seccomp program (more than BPF_MAXINSNS instructions). */
export class SeccompCompileError extends Error {
  override readonly name = 'SeccompCompileError';
  readonly instructions: number;
  constructor(message: string, instructions: number) {
    super(message);
    this.instructions = instructions;
  }
}

// ---------------------------------------------------------------------------------------------
// Planning: per-number decisions merged into ranges (shared with explain)
// ---------------------------------------------------------------------------------------------

/** What happens to one syscall number: a constant action or a chain of conditional rules. */
export type Decision =
  | { kind: 'action'; value: number }
  | { kind: 'chain'; rules: ResolvedRule[]; values: number[]; fallback: number; key: string };

/** A range of syscall numbers (inclusive) sharing one decision. */
export interface Segment {
  lo: number;
  hi: number;
  decision: Decision;
  key: string;
}

export interface CompilePlan {
  arch: SeccompArch;
  auditArch: number;
  /** Returned for foreign architectures and x32 calls. */
  foreign: number;
  /** Returned for numbers no rule names. */
  fallback: number;
  /** Ranges covering 0 .. 2^32-1 in order. */
  segments: Segment[];
}

function conditionKey(c: ResolvedCondition): string {
  return `${c.index}:${c.op}:${typeof c.value === 'bigint' ? c.value.toString(16) : `$${c.value}`}:${c.mask.toString(16)}`;
}

function decisionFor(rules: readonly ResolvedRule[], dflt: number, opts: ActionOptions): Decision {
  const chain: ResolvedRule[] = [];
  let fallback = dflt;
  for (const r of rules) {
    if (r.conditions.length === 0) {
      fallback = actionValue(r.action, opts);
      break;
    }
    chain.push(r);
  }
  // Conditional rules at the end whose action is the fallback anyway change nothing.
  while (chain.length > 0 && actionValue(chain[chain.length - 1]!.action, opts) === fallback) chain.pop();
  if (chain.length === 0) return { kind: 'action', value: fallback };
  const values = chain.map((r) => actionValue(r.action, opts));
  const key = `chain|${fallback}|${chain.map((r, i) => `${values[i]}(${r.conditions.map(conditionKey).join('&')})`).join('|')}`;
  return { kind: 'chain', rules: chain, values, fallback, key };
}

/** Resolves a policy for an architecture into ranges of syscall numbers with their decisions. */
export function planPolicy(policy: SeccompPolicy, arch: SeccompArch, opts: CompileOptions = {}): CompilePlan {
  return planOf(policy, arch, opts, validatePolicy);
}

function planOf(policy: SeccompPolicy, arch: SeccompArch, opts: CompileOptions, check: (p: SeccompPolicy) => SeccompPolicy): CompilePlan {
  if (!isSeccompArch(arch)) throw new TypeError(`unknown seccomp architecture ${String(arch)}`);
  const byNr = resolvePolicy(check(policy), arch, syscallTable(arch));
  const fallback = actionValue(policy.defaultAction, opts);
  const dfltKey = `ret|${fallback}`;
  const points = [...byNr.keys()].sort((a, b) => a - b);
  const segments: Segment[] = [];
  const push = (lo: number, hi: number, decision: Decision, key: string): void => {
    const last = segments[segments.length - 1];
    if (last && last.key === key && last.hi + 1 === lo) last.hi = hi;
    else segments.push({ lo, hi, decision, key });
  };
  let next = 0;
  for (const nr of points) {
    if (nr > next) push(next, nr - 1, { kind: 'action', value: fallback }, dfltKey);
    const d = decisionFor(byNr.get(nr)!, fallback, opts);
    push(nr, nr, d, d.kind === 'action' ? `ret|${d.value}` : d.key);
    next = nr + 1;
  }
  if (next <= 0xffffffff) push(next, 0xffffffff, { kind: 'action', value: fallback }, dfltKey);
  return { arch, auditArch: AUDIT_ARCH[arch], foreign: foreignAction(policy, opts), fallback, segments };
}

// ---------------------------------------------------------------------------------------------
// Code generation, back to front
// ---------------------------------------------------------------------------------------------

/** A jump target: a return of some value (emitted lazily, shared when near) or a position. */
type Target = { ret: number } | { pos: number };

const MAX_JUMP = 255;

/**
 * Emits instructions from the last to the first. Positions count from the end of the program
 * (0 = last instruction), so they stay valid as code is prepended.
 */
class BackwardEmitter {
  readonly rev: BpfInsn[] = [];
  private readonly retPos = new Map<number, number>();
  readonly sites: { name: PlaceholderName; pos: number; half: 'lo' | 'hi' }[] = [];

  get len(): number {
    return this.rev.length;
  }

  push(ins: BpfInsn): number {
    this.rev.push(ins);
    if (this.rev.length > 64 * BPF_MAXINSNS)
      throw new SeccompCompileError(
        `seccomp policy is far too large: more than ${64 * BPF_MAXINSNS} BPF instructions so far (the kernel accepts ${BPF_MAXINSNS})`,
        this.rev.length,
      );
    return this.rev.length - 1;
  }

  /** Returns the position of `t`, adding a bridge if a jump placed at len+extra could not reach it. */
  private reach(t: Target, extra: number): number {
    const jumpPos = this.len + extra;
    if ('ret' in t) {
      const p = this.retPos.get(t.ret);
      if (p !== undefined && jumpPos - p - 1 <= MAX_JUMP) return p;
      const np = this.push({ code: BPF_RET | BPF_K, jt: 0, jf: 0, k: t.ret });
      this.retPos.set(t.ret, np);
      return np;
    }
    if (jumpPos - t.pos - 1 <= MAX_JUMP) return t.pos;
    return this.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: this.len - t.pos - 1 });
  }

  /** Conditional jump on A (`code` = BPF_JMP|op|BPF_K) against k. */
  jump(op: number, k: number, onTrue: Target, onFalse: Target): Target {
    const pf = this.reach(onFalse, 1);
    const pt = this.reach(onTrue, 0);
    const pos = this.len;
    const jt = pos - pt - 1;
    const jf = pos - pf - 1;
    if (jt > MAX_JUMP || jf > MAX_JUMP || jt < 0 || jf < 0) throw new Error(`internal: jump offsets ${jt}/${jf}`);
    return { pos: this.push({ code: BPF_JMP | op | BPF_K, jt, jf, k: k >>> 0 }) };
  }

  /** `ld [offset]` falling through to `next`, which must be the block emitted just before. */
  load(offset: number, next: Target): Target {
    this.fallsTo(next);
    return { pos: this.push({ code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: offset }) };
  }

  and(mask: number, next: Target): Target {
    this.fallsTo(next);
    return { pos: this.push({ code: BPF_ALU | BPF_AND | BPF_K, jt: 0, jf: 0, k: mask >>> 0 }) };
  }

  /** Makes sure the instruction about to be pushed falls through into `next`. */
  private fallsTo(next: Target): void {
    if ('pos' in next && next.pos === this.len - 1) return;
    if ('ret' in next) {
      this.push({ code: BPF_RET | BPF_K, jt: 0, jf: 0, k: next.ret });
      this.retPos.set(next.ret, this.len - 1);
      return;
    }
    this.push({ code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k: this.len - next.pos - 1 });
  }

  /** Position of `t`, materialising a lazy return. */
  materialise(t: Target): number {
    return this.reach(t, 0);
  }
}

const hi32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);
const lo32 = (v: bigint): number => Number(v & 0xffffffffn);

/** Emits the test of one condition: control goes to `onTrue` when it holds, else `onFalse`. */
function emitCondition(e: BackwardEmitter, c: ResolvedCondition, onTrue: Target, onFalse: Target): Target {
  const loOff = SECCOMP_DATA.argLo(c.index);
  const hiOff = SECCOMP_DATA.argHi(c.index);
  if (typeof c.value === 'string') {
    // Placeholder: eq or ne against a value patched in later (compiled as 0).
    const [t, f] = c.op === 'eq' ? [onTrue, onFalse] : [onFalse, onTrue];
    const jLo = e.jump(BPF_JEQ, 0, t, f);
    e.sites.push({ name: c.value, pos: (jLo as { pos: number }).pos, half: 'lo' });
    const ldLo = e.load(loOff, jLo);
    const jHi = e.jump(BPF_JEQ, 0, ldLo, f);
    e.sites.push({ name: c.value, pos: (jHi as { pos: number }).pos, half: 'hi' });
    return e.load(hiOff, jHi);
  }
  const v = c.value;
  const vh = hi32(v);
  const vl = lo32(v);
  switch (c.op) {
    case 'eq':
    case 'ne': {
      const [t, f] = c.op === 'eq' ? [onTrue, onFalse] : [onFalse, onTrue];
      const jLo = e.jump(BPF_JEQ, vl, t, f);
      const ldLo = e.load(loOff, jLo);
      const jHi = e.jump(BPF_JEQ, vh, ldLo, f);
      return e.load(hiOff, jHi);
    }
    case 'masked-eq': {
      const mh = hi32(c.mask);
      const ml = lo32(c.mask);
      // Low half: (lo & ml) == vl.
      let loEntry: Target;
      if (ml === 0) loEntry = vl === 0 ? onTrue : onFalse;
      else {
        const j = e.jump(BPF_JEQ, vl, onTrue, onFalse);
        const a = ml === 0xffffffff ? j : e.and(ml, j);
        loEntry = e.load(loOff, a);
      }
      if (mh === 0) return vh === 0 ? loEntry : onFalse;
      const j = e.jump(BPF_JEQ, vh, loEntry, onFalse);
      const a = mh === 0xffffffff ? j : e.and(mh, j);
      return e.load(hiOff, a);
    }
    case 'gt':
    case 'ge':
    case 'lt':
    case 'le': {
      // lt = !ge, le = !gt.
      const strict = c.op === 'gt' || c.op === 'le';
      const [t, f] = c.op === 'gt' || c.op === 'ge' ? [onTrue, onFalse] : [onFalse, onTrue];
      // ld hi; jgt vh → t; jeq vh → (ld lo; jgt/jge vl → t, f) else f
      const jLo = e.jump(strict ? BPF_JGT : BPF_JGE, vl, t, f);
      const ldLo = e.load(loOff, jLo);
      const jEq = e.jump(BPF_JEQ, vh, ldLo, f);
      const jGt = e.jump(BPF_JGT, vh, t, jEq);
      return e.load(hiOff, jGt);
    }
  }
}

function emitChain(e: BackwardEmitter, d: Extract<Decision, { kind: 'chain' }>): Target {
  let next: Target = { ret: d.fallback };
  for (let i = d.rules.length - 1; i >= 0; i--) {
    let t: Target = { ret: d.values[i]! };
    const conds = d.rules[i]!.conditions;
    for (let j = conds.length - 1; j >= 0; j--) t = emitCondition(e, conds[j]!, t, next);
    next = t;
  }
  return next;
}

/**
 * Compiles `policy` for `arch` into a seccomp BPF program. Throws `SeccompPolicyError` for
 * system call names `arch` lacks (in rules not marked `optional`) and `SeccompCompileError` when
 * the program would exceed the kernel's 4096 instructions.
 *
 * `kill` compiles to SECCOMP_RET_USER_NOTIF by default (`killAction: 'notify'`): the supervisor
 * must install the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, and for each notification it
 * receives it records the call (`seccomp_notif.data.nr`/`.arch`) as the run's violation and kills
 * the box without letting the call proceed. Policies may also use `'notify'` directly; the
 * supervisor cannot tell the two apart, so sandcell's presets use `'notify'` for nothing else.
 */
export function compile(policy: SeccompPolicy, arch: SeccompArch, opts: CompileOptions = {}): CompileResult {
  return emitProgram(planPolicy(policy, arch, opts));
}

/**
 * `compile` without zod's check of the policy, for a built-in preset (deeply frozen, each parsed
 * by the tests) or its rules without those marked `terminal`: a one-shot run then neither builds
 * the policy schema nor checks the preset again.
 */
export function compilePreset(policy: SeccompPolicy, arch: SeccompArch): CompileResult {
  return emitProgram(planOf(policy, arch, {}, (p) => p));
}

/** Where {@link PREBUILT} holds a preset's program: `terminal`, the preset as it is; otherwise without its rules marked `terminal`. */
export function prebuiltKey(name: PresetName, arch: SeccompArch, terminal: boolean): string {
  return `${name} ${arch} ${terminal ? 'terminal' : 'no-terminal'}`;
}

/** A preset's program for `arch` compiled now: as it is (`terminal`), or without its rules marked `terminal`. */
export function compilePresetVariant(name: PresetName, arch: SeccompArch, terminal: boolean): CompileResult {
  return compilePreset(terminal ? presets[name] : withoutTerminalRules(presets[name]), arch);
}

/**
 * A preset's program for `arch`: as it is (`terminal`), or without its rules marked `terminal`.
 * The program the build compiled when it shipped one ({@link PREBUILT}), else compiled now.
 */
export function presetProgram(name: PresetName, arch: SeccompArch, terminal: boolean): CompileResult {
  const shipped = PREBUILT[prebuiltKey(name, arch, terminal)];
  if (shipped) {
    return {
      arch,
      program: Buffer.from(shipped.program, 'base64'),
      instructions: shipped.instructions,
      placeholders: shipped.placeholders.map((s) => ({ ...s })),
    };
  }
  return compilePresetVariant(name, arch, terminal);
}

function emitProgram(plan: CompilePlan): CompileResult {
  const { arch } = plan;
  const e = new BackwardEmitter();
  const chains = new Map<string, Target>();
  const chainFor = (d: Extract<Decision, { kind: 'chain' }>): Target => {
    const known = chains.get(d.key);
    if (known) return known;
    const t = emitChain(e, d);
    chains.set(d.key, t);
    return t;
  };

  const prelude = preludeOf(plan, arch);
  const preludeTargets = prelude.map((s) => chainFor(s.decision as Extract<Decision, { kind: 'chain' }>));
  const segs = withoutNumbers(plan.segments, new Set(prelude.map((s) => s.lo)));
  const node = (i: number, j: number): Target => {
    if (i === j) {
      const d = segs[i]!.decision;
      return d.kind === 'action' ? { ret: d.value } : chainFor(d);
    }
    const m = (i + j + 1) >> 1;
    const right = node(m, j);
    const left = node(i, m - 1);
    return e.jump(BPF_JGE, segs[m]!.lo, right, left);
  };

  const tree = node(0, segs.length - 1);
  const foreign: Target = { ret: plan.foreign };
  let afterNr: Target = tree;
  if (arch === 'x86_64') afterNr = e.jump(BPF_JSET, X32_SYSCALL_BIT, foreign, tree);
  // Prelude numbers are table numbers (far below the x32 bit), so testing them first is safe.
  for (let i = prelude.length - 1; i >= 0; i--) afterNr = e.jump(BPF_JEQ, prelude[i]!.lo, preludeTargets[i]!, afterNr);
  const ldNr = e.load(SECCOMP_DATA.nr, afterNr);
  const archOk = e.jump(BPF_JEQ, plan.auditArch, ldNr, foreign);
  e.load(SECCOMP_DATA.arch, archOk);

  const emitted = e.rev.slice().reverse();
  const sitesAt = e.sites.map((s) => ({ name: s.name, index: emitted.length - 1 - s.pos, half: s.half }));
  const { insns, newIndex } = dropRedundantLoads(emitted);
  const total = insns.length;
  if (total > BPF_MAXINSNS) {
    throw new SeccompCompileError(
      `seccomp policy compiles to ${total} BPF instructions for ${arch}, more than the kernel's limit of ` +
        `${BPF_MAXINSNS} (BPF_MAXINSNS): use fewer argument conditions or merge rules`,
      total,
    );
  }
  checkProgram(insns); // self-check: the kernel would refuse anything this rejects
  const placeholders = sitesAt
    .filter((s) => newIndex[s.index] !== undefined)
    .map((s) => ({ ...s, index: newIndex[s.index]! }))
    .sort((a, b) => a.index - b.index);
  return { arch, program: encodeProgram(insns), instructions: total, placeholders };
}

/**
 * Calls programs make per operation (a terminal query, a lock, a mapping, an I/O), rather than a
 * few times per process like clone, socket or personality, most frequent first. Those of them
 * with argument rules are tested by number before the binary search.
 */
const FREQUENT_CALLS = ['ioctl', 'fcntl', 'futex', 'mmap', 'mprotect', 'madvise', 'read', 'write', 'openat', 'close'];

/**
 * The calls tested by number before the binary search: frequent calls whose decision depends on
 * arguments. Only such calls (and refused ones) make the kernel run the filter at all; a call
 * allowed without conditions pays one `jeq` per prelude entry only on kernels without the
 * seccomp action cache.
 */
function preludeOf(plan: CompilePlan, arch: SeccompArch): Segment[] {
  const rank = (s: Segment): number => FREQUENT_CALLS.indexOf(syscallName(s.lo, arch) ?? '');
  return plan.segments
    .filter((s) => s.decision.kind === 'chain' && s.lo === s.hi && rank(s) >= 0)
    .sort((a, b) => rank(a) - rank(b));
}

/**
 * The segments left for the binary search once the prelude has taken `taken`: a taken number
 * never reaches the search, so its range joins the one before it (or after it, at 0), and
 * neighbours that now touch with the same decision merge into one range.
 */
function withoutNumbers(segments: readonly Segment[], taken: ReadonlySet<number>): Segment[] {
  const out: Segment[] = [];
  let pendingLo: number | undefined;
  for (const s of segments) {
    if (s.lo === s.hi && taken.has(s.lo)) {
      const last = out[out.length - 1];
      if (last) last.hi = s.hi;
      else pendingLo ??= s.lo;
      continue;
    }
    const last = out[out.length - 1];
    if (last && last.key === s.key) last.hi = s.hi;
    else {
      out.push({ ...s, lo: pendingLo ?? s.lo });
      pendingLo = undefined;
    }
  }
  return out;
}

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;

/**
 * Retargets jumps that arrive at `ld [k]` while the accumulator already holds word k of
 * seccomp_data to the instruction after that load, then removes what became unreachable.
 *
 * Which word the accumulator holds is tracked forward (classic BPF only jumps forward, so one
 * pass in order sees every predecessor of an instruction first): `ld [k]` sets it to word k,
 * any other write to A makes it unknown, and where paths meet it stays known only if they agree.
 * Skipping a load that would put the same value into A changes no result. Retargeting only
 * removes predecessors, which can never make a known word unknown, so the decisions stay valid
 * as the pass goes. Removing instructions only shortens forward jumps, so no offset overflows.
 * Returns the new program and, per old index, the new index of each kept instruction.
 */
export function dropRedundantLoads(program: readonly BpfInsn[]): { insns: BpfInsn[]; newIndex: (number | undefined)[] } {
  const insns = program.map((i) => ({ ...i }));
  const n = insns.length;
  const UNKNOWN = -1;
  const word: (number | undefined)[] = new Array(n).fill(undefined);
  word[0] = UNKNOWN;
  const meet = (pc: number, w: number): void => {
    const cur = word[pc];
    word[pc] = cur === undefined || cur === w ? w : UNKNOWN;
  };
  const skipLoads = (pc: number, off: number, w: number, max: number): number => {
    while (off < max && insns[pc + 1 + off]!.code === LD_ABS && insns[pc + 1 + off]!.k === w) off++;
    return off;
  };
  for (let pc = 0; pc < n; pc++) {
    const w = word[pc];
    if (w === undefined) continue;
    const ins = insns[pc]!;
    const cls = ins.code & 0x07;
    if (cls === BPF_RET) continue;
    if (cls === BPF_JMP) {
      if (ins.code === (BPF_JMP | BPF_JA)) {
        if (w !== UNKNOWN) ins.k = skipLoads(pc, ins.k, w, Number.MAX_SAFE_INTEGER);
        meet(pc + 1 + ins.k, w);
      } else {
        if (w !== UNKNOWN) {
          ins.jt = skipLoads(pc, ins.jt, w, MAX_JUMP);
          ins.jf = skipLoads(pc, ins.jf, w, MAX_JUMP);
        }
        meet(pc + 1 + ins.jt, w);
        meet(pc + 1 + ins.jf, w);
      }
      continue;
    }
    const writesA = ins.code === LD_ABS ? ins.k : cls === BPF_LD || cls === BPF_ALU || ins.code === (BPF_MISC | BPF_TXA) ? UNKNOWN : w;
    meet(pc + 1, writesA);
  }
  const newIndex: (number | undefined)[] = new Array(n).fill(undefined);
  let kept = 0;
  for (let pc = 0; pc < n; pc++) if (word[pc] !== undefined) newIndex[pc] = kept++;
  const out: BpfInsn[] = [];
  for (let pc = 0; pc < n; pc++) {
    const at = newIndex[pc];
    if (at === undefined) continue;
    const ins = insns[pc]!;
    const to = (off: number): number => newIndex[pc + 1 + off]! - at - 1;
    if ((ins.code & 0x07) === BPF_JMP) {
      if (ins.code === (BPF_JMP | BPF_JA)) out.push({ ...ins, k: to(ins.k) });
      else out.push({ ...ins, jt: to(ins.jt), jf: to(ins.jf) });
    } else out.push(ins);
  }
  return { insns: out, newIndex };
}

/**
 * Returns a copy of `program` with the placeholder constants filled in, e.g.
 * `patchPlaceholders(result, { execPath: 0x7ffc0000n })`. Throws if a value is missing.
 */
export function patchPlaceholders(
  result: Pick<CompileResult, 'program' | 'placeholders'>,
  values: Partial<Record<PlaceholderName, bigint>>,
): Buffer {
  const out = Buffer.from(result.program);
  for (const s of result.placeholders) {
    const v = values[s.name];
    if (v === undefined) throw new Error(`no value for placeholder ${s.name}`);
    const u = BigInt.asUintN(64, v);
    out.writeUInt32LE(s.half === 'lo' ? lo32(u) : hi32(u), s.index * 8 + 4);
  }
  return out;
}
