/**
 * Human-readable decision tables of policies (`sandcell seccomp explain <policy>`).
 */
import { AUDIT_ARCH, type SeccompArch, syscallName } from './arch.js';
import { type CompileOptions, type Segment, compile, planPolicy } from './compile.js';
import { type ResolvedCondition, type SeccompPolicy, SECCOMP_RET, errnoName } from './policy.js';

/** Describes a 32-bit filter return value. */
export function describeReturn(value: number, opts: CompileOptions = {}): string {
  const v = value >>> 0;
  const action = v & SECCOMP_RET.ACTION_FULL;
  if (v === SECCOMP_RET.ALLOW) return 'allow';
  if (v === SECCOMP_RET.LOG) return 'log';
  if (v === SECCOMP_RET.KILL_PROCESS) return 'kill-process';
  if (v === SECCOMP_RET.USER_NOTIF)
    return (opts.killAction ?? 'notify') === 'notify' ? 'kill (user-notif: supervisor reports, ends the box)' : 'notify';
  if (action >>> 0 === SECCOMP_RET.ERRNO) {
    const n = v & SECCOMP_RET.DATA;
    const name = errnoName(n);
    return name ? `errno ${name} (${n})` : `errno ${n}`;
  }
  return `0x${v.toString(16).padStart(8, '0')}`;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function describeCondition(c: ResolvedCondition): string {
  const arg = `arg${c.index}`;
  const val = typeof c.value === 'string' ? `$${c.value}` : hex(c.value);
  switch (c.op) {
    case 'masked-eq': return `(${arg} & ${hex(c.mask)}) == ${val}`;
    case 'eq': return `${arg} == ${val}`;
    case 'ne': return `${arg} != ${val}`;
    case 'lt': return `${arg} < ${val}`;
    case 'le': return `${arg} <= ${val}`;
    case 'gt': return `${arg} > ${val}`;
    case 'ge': return `${arg} >= ${val}`;
  }
}

function names(seg: Segment, arch: SeccompArch): string {
  const out: string[] = [];
  const hi = Math.min(seg.hi, 4095);
  for (let nr = seg.lo; nr <= hi; nr++) {
    const n = syscallName(nr, arch);
    if (n) out.push(n);
  }
  if (out.length === 0) return '(unassigned)';
  if (out.length <= 6) return out.join(' ');
  return `${out.slice(0, 3).join(' ')} … ${out.slice(-2).join(' ')} (${out.length} calls)`;
}

/**
 * A decision table of `policy` on `arch`: how foreign ABIs are treated, then each range of
 * system call numbers that shares one decision, with the argument conditions of conditional
 * rules in the order they are tried, and the size of the compiled program.
 */
export function explain(policy: SeccompPolicy, arch: SeccompArch, opts: CompileOptions = {}): string {
  const plan = planPolicy(policy, arch, opts);
  const compiled = compile(policy, arch, opts);
  const lines: string[] = [];
  lines.push(
    `seccomp policy for ${arch} (AUDIT_ARCH 0x${AUDIT_ARCH[arch].toString(16)}): ${compiled.instructions} BPF instructions, ` +
      `${plan.segments.length} ranges`,
  );
  lines.push(`  other architectures${arch === 'x86_64' ? ' (i386 int 0x80, ...) and x32 calls' : ' (arm32 compat, ...)'}: ${describeReturn(plan.foreign, opts)}`);
  lines.push(`  default: ${describeReturn(plan.fallback, opts)}`);
  if (compiled.placeholders.length > 0)
    lines.push(
      `  placeholders: ${compiled.placeholders.map((p) => `$${p.name}.${p.half} at instruction ${p.index}`).join(', ')}`,
    );
  lines.push('');
  const width = 13;
  for (const seg of plan.segments) {
    const isDefault = seg.decision.kind === 'action' && seg.decision.value === plan.fallback;
    if (isDefault && seg.hi > 4095) continue; // the open-ended tail
    const range = (seg.lo === seg.hi ? `${seg.lo}` : `${seg.lo}-${seg.hi}`).padEnd(width);
    const label = names(seg, arch);
    if (seg.decision.kind === 'action') {
      lines.push(`  ${range} ${label}: ${describeReturn(seg.decision.value, opts)}`);
      continue;
    }
    lines.push(`  ${range} ${label}:`);
    seg.decision.rules.forEach((r, i) => {
      lines.push(
        `  ${''.padEnd(width)}   if ${r.conditions.map(describeCondition).join(' && ')} → ${describeReturn(seg.decision.kind === 'chain' ? seg.decision.values[i]! : 0, opts)}  (rule ${r.rule})`,
      );
    });
    lines.push(`  ${''.padEnd(width)}   otherwise → ${describeReturn(seg.decision.fallback, opts)}`);
  }
  const lastCovered = plan.segments[plan.segments.length - 1];
  if (lastCovered) lines.push(`  ${'…-4294967295'.padEnd(width)} everything else: ${describeReturn(plan.fallback, opts)}`);
  return lines.join('\n') + '\n';
}

/** Instruction counts of `policy` per architecture (for benchmarks and reports). */
export function instructionCounts(
  policy: SeccompPolicy,
  opts: CompileOptions = {},
): Record<SeccompArch, number> {
  return {
    x86_64: compile(policy, 'x86_64', opts).instructions,
    aarch64: compile(policy, 'aarch64', opts).instructions,
  };
}
