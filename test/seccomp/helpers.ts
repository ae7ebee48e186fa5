import { AUDIT_ARCH, type SeccompArch, syscallTable } from '../../src/seccomp/arch.js';
import { type ResolvedCondition, type SeccompPolicy, resolvePolicy } from '../../src/seccomp/policy.js';

export const U64 = (1n << 64n) - 1n;
const wrap = (v: bigint): bigint => BigInt.asUintN(64, v);

/** Values every argument is tried with. */
export const GLOBAL_SAMPLES: bigint[] = [
  0n,
  1n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  1n << 32n,
  (1n << 32n) + 1n,
  1n << 63n,
  U64,
  U64 - 1n,
];

/** Boundary values around one condition: value ±1, each half changed alone, mask edges. */
export function boundarySamples(c: ResolvedCondition, placeholderValue: bigint): bigint[] {
  const v = typeof c.value === 'string' ? placeholderValue : c.value;
  const lo = v & 0xffffffffn;
  const hi = v >> 32n;
  const out = [
    v,
    v - 1n,
    v + 1n,
    v ^ (1n << 32n),
    v ^ 1n,
    lo,
    hi << 32n,
    ((hi + 1n) << 32n) | lo,
    ((hi - 1n) << 32n) | lo,
    (hi << 32n) | ((lo + 1n) & 0xffffffffn),
    (hi << 32n) | ((lo - 1n) & 0xffffffffn),
    (hi << 32n) | 0xffffffffn,
  ];
  if (c.op === 'masked-eq') {
    const m = c.mask;
    out.push(v | (~m & U64), (v | (~m & U64)) ^ (1n << 40n), v | (m & ~v), v & m);
    // flip the lowest and highest set bit of the mask
    if (m !== 0n) {
      let low = 1n;
      while ((m & low) === 0n) low <<= 1n;
      let high = 1n << 63n;
      while ((m & high) === 0n) high >>= 1n;
      out.push(v ^ low, v ^ high);
    }
  }
  return out.map(wrap);
}

/** A vector that satisfies one condition (when possible), to combine conditions of one rule. */
function satisfying(c: ResolvedCondition, placeholderValue: bigint): bigint {
  const v = typeof c.value === 'string' ? placeholderValue : c.value;
  switch (c.op) {
    case 'gt': return wrap(v + 1n);
    case 'lt': return wrap(v - 1n);
    case 'ne': return wrap(v + 1n);
    default: return v;
  }
}

let seed = 12345;
export function rand32(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed;
}
export const randU64 = (): bigint => (BigInt(rand32()) << 32n) | BigInt(rand32());

/**
 * Argument vectors for system call `nr`: zeros, each global sample in every argument, and for
 * each rule a vector satisfying all its conditions perturbed one argument at a time by the
 * boundary samples of every condition on that argument, plus a few random vectors.
 */
export function argVectors(policy: SeccompPolicy, arch: SeccompArch, nr: number, placeholderValue = 0n): bigint[][] {
  const rules = resolvePolicy(policy, arch, syscallTable(arch)).get(nr) ?? [];
  const conds = rules.flatMap((r) => r.conditions);
  const vectors: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n]];
  if (conds.length === 0) {
    vectors.push(GLOBAL_SAMPLES.slice(0, 6), [U64, U64, U64, U64, U64, U64]);
    return vectors;
  }
  const perIndex = new Map<number, bigint[]>();
  for (const c of conds) {
    const list = perIndex.get(c.index) ?? [...GLOBAL_SAMPLES];
    list.push(...boundarySamples(c, placeholderValue));
    perIndex.set(c.index, list);
  }
  const bases: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n]];
  for (const r of rules) {
    const b = [0n, 0n, 0n, 0n, 0n, 0n];
    for (const c of r.conditions) b[c.index] = satisfying(c, placeholderValue);
    bases.push(b);
  }
  for (const base of bases) {
    vectors.push(base);
    for (const [i, samples] of perIndex) {
      for (const s of samples) {
        const v = base.slice();
        v[i] = s;
        vectors.push(v);
      }
    }
  }
  for (let k = 0; k < 8; k++) vectors.push([randU64(), randU64(), randU64(), randU64(), randU64(), randU64()]);
  return vectors;
}

/** Every number of the arch's table, plus unassigned numbers up to 1023 and a few far ones. */
export function numbersToTry(arch: SeccompArch): number[] {
  const set = new Set<number>(Object.values(syscallTable(arch)));
  for (let nr = 0; nr < 1024; nr++) set.add(nr);
  for (const nr of [4095, 4096, 65535, 0x3fffffff, 0x7fffffff, 0x80000000, 0xffffffff]) set.add(nr);
  return [...set].sort((a, b) => a - b);
}

export const nativeArch = (arch: SeccompArch): number => AUDIT_ARCH[arch];
