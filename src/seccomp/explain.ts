/**
 * Human-readable decision tables of policies (`sandcell seccomp explain <policy>`).
 */
import { AUDIT_ARCH, type SeccompArch, syscallName, syscallTable } from './arch.js';
import { type CompileOptions, type CompilePlan, type Segment, compile, planPolicy } from './compile.js';
import { type ResolvedCondition, type SeccompPolicy, SECCOMP_RET, errnoName, withoutTerminalRules } from './policy.js';

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

/** The names of the calls in `seg`, every one of them: an allow-list is read name by name. */
function names(seg: Segment, arch: SeccompArch): string[] {
  const out: string[] = [];
  const hi = Math.min(seg.hi, 4095);
  for (let nr = seg.lo; nr <= hi; nr++) {
    const n = syscallName(nr, arch);
    if (n) out.push(n);
  }
  return out;
}

const WIDTH = 100;

/** `head` followed by `words` and `tail`, wrapped at WIDTH with continuation lines indented by `indent`. */
function wrap(head: string, words: readonly string[], tail: string, indent: string): string[] {
  const lines: string[] = [];
  let line = head;
  for (const [i, w] of words.entries()) {
    const piece = i === words.length - 1 ? `${w}${tail}` : w;
    if (line.length + 1 + piece.length > WIDTH && line.trim().length > head.trim().length) {
      lines.push(line);
      line = `${indent}${piece}`;
    } else line = line === head && head.endsWith(' ') ? `${line}${piece}` : `${line} ${piece}`;
  }
  if (words.length === 0) line = `${line} (unassigned)${tail}`;
  lines.push(line);
  return lines;
}

/** How many calls of the table get each decision: "263 allow, 8 with argument checks, ...". */
function tally(plan: CompilePlan, arch: SeccompArch, opts: CompileOptions): string {
  const counts = new Map<string, number>();
  for (const nr of Object.values(syscallTable(arch))) {
    const seg = plan.segments.find((s) => s.lo <= nr && nr <= s.hi)!;
    const what = seg.decision.kind === 'chain' ? 'with argument checks' : describeReturn(seg.decision.value, opts);
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${n} ${what}`).join(', ');
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
  lines.push(`  default: ${describeReturn(plan.fallback, opts)} (every number no rule names, known to the table or not)`);
  lines.push(`  the ${Object.keys(syscallTable(arch)).length} calls of the ${arch} table: ${tally(plan, arch, opts)}`);
  const terminalRules = policy.rules.flatMap((r, i) => (r.terminal === true ? [i] : []));
  if (terminalRules.length > 0) {
    const without = withoutTerminalRules(policy);
    lines.push(
      `  rules marked terminal (${terminalRules.join(', ')}): in the filter of a run that may hold a terminal; a run that cannot ` +
        `(stdio the sandbox's pipes or /dev/null, no host directory bound in, not the host's network) gets the policy without them: ` +
        `${compile(without, arch, opts).instructions} instructions, ` +
        `the ${Object.keys(syscallTable(arch)).length} calls: ${tally(planPolicy(without, arch, opts), arch, opts)}`,
    );
  }
  if (compiled.placeholders.length > 0)
    lines.push(
      `  placeholders: ${compiled.placeholders.map((p) => `$${p.name}.${p.half} at instruction ${p.index}`).join(', ')}`,
    );
  lines.push('');
  const width = 13;
  const indent = `  ${''.padEnd(width)}   `;
  for (const seg of plan.segments) {
    const isDefault = seg.decision.kind === 'action' && seg.decision.value === plan.fallback;
    if (isDefault && seg.hi > 4095) continue; // the open-ended tail
    const range = `  ${(seg.lo === seg.hi ? `${seg.lo}` : `${seg.lo}-${seg.hi}`).padEnd(width)}`;
    const label = names(seg, arch);
    if (seg.decision.kind === 'action') {
      lines.push(...wrap(range, label, `: ${describeReturn(seg.decision.value, opts)}`, indent));
      continue;
    }
    const d = seg.decision;
    lines.push(...wrap(range, label, ':', indent));
    d.rules.forEach((r, i) => {
      const terminal = policy.rules[r.rule]?.terminal === true ? ', terminal' : '';
      lines.push(`${indent}if ${r.conditions.map(describeCondition).join(' && ')} → ${describeReturn(d.values[i]!, opts)}  (rule ${r.rule}${terminal})`);
    });
    lines.push(`${indent}otherwise → ${describeReturn(d.fallback, opts)}`);
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
