import { describe, expect, it } from 'vitest';
import { ARCHES, AUDIT_ARCH, type SeccompArch, syscallName, syscallTable } from '../../src/seccomp/arch.js';
import { BPF_MAXINSNS, decodeProgram } from '../../src/seccomp/bpf.js';
import { SeccompCompileError, compile, compilePreset, patchPlaceholders } from '../../src/seccomp/compile.js';
import { decide, emulate, emulateTrace } from '../../src/seccomp/emulator.js';
import { instructionCounts } from '../../src/seccomp/explain.js';
import { type SeccompPolicy, SECCOMP_RET, SeccompPolicyError, resolvePolicy, withoutTerminalRules } from '../../src/seccomp/policy.js';
import { presetNames, presets } from '../../src/seccomp/presets.js';
import { numbersToTry, randU64 } from './helpers.js';
import { bigPolicy, halvesPolicy, placeholderPolicy, rangesPolicy } from './policies.js';

const allPolicies = (arch: SeccompArch): [string, SeccompPolicy][] => [
  ...presetNames.map((n): [string, SeccompPolicy] => [`preset ${n}`, presets[n]]),
  ['halves', halvesPolicy],
  ['ranges', rangesPolicy(arch)],
  ['big', bigPolicy(arch)],
  ['placeholder', placeholderPolicy],
];

/**
 * The kernel's seccomp action cache (kernel/seccomp.c, seccomp_is_const_allow, 5.11+) runs the
 * filter with only nr and arch known and caches ALLOW when the result cannot depend on anything
 * else: loads of other fields or unsupported instructions make it give up. Re-implemented here.
 */
function kernelCacheAllows(program: Buffer, arch: number, nr: number): boolean {
  const insns = decodeProgram(program);
  let A = 0;
  for (let pc = 0; pc < insns.length; pc++) {
    const { code, jt, jf, k } = insns[pc]!;
    switch (code) {
      case 0x20: // ld [k]
        if (k === 0) A = nr >>> 0;
        else if (k === 4) A = arch >>> 0;
        else return false;
        break;
      case 0x06: // ret k
        return k === SECCOMP_RET.ALLOW;
      case 0x05: // ja
        pc += k;
        break;
      case 0x15: pc += A === k ? jt : jf; break; // jeq
      case 0x35: pc += A >= k ? jt : jf; break; // jge
      case 0x25: pc += A > k ? jt : jf; break; // jgt
      case 0x45: pc += (A & k) !== 0 ? jt : jf; break; // jset
      case 0x54: A = (A & k) >>> 0; break; // and
      default:
        return false;
    }
  }
  return false;
}

/** Numbers the policy allows without looking at arguments (no conditional rule decides first). */
function unconditionallyAllowed(policy: SeccompPolicy, arch: SeccompArch): number[] {
  const byNr = resolvePolicy(policy, arch, syscallTable(arch));
  const out: number[] = [];
  for (const nr of numbersToTry(arch)) {
    if (arch === 'x86_64' && nr & 0x40000000) continue;
    const rules = byNr.get(nr) ?? [];
    const first = rules[0];
    const action = first === undefined ? policy.defaultAction : first.conditions.length === 0 ? first.action : undefined;
    if (action === 'allow') out.push(nr);
  }
  return out;
}

describe.each(ARCHES)('on %s', (arch) => {
  const native = AUDIT_ARCH[arch];
  const foreignArches = [AUDIT_ARCH.i386, AUDIT_ARCH.arm, arch === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64, 0, 0xffffffff, native ^ 1];

  it.each(allPolicies(arch))('%s: foreign architectures are refused, never allowed', (_name, policy) => {
    const c = compile(policy, arch);
    for (const a of foreignArches) {
      for (const nr of [0, 1, 11, 59, 102, 173, 221, 252, 400, 0x40000000]) {
        const got = emulate(c.program, { nr, arch: a, args: [] });
        expect(got).toBe(decide(policy, arch, { nr, arch: a }));
        expect(got).not.toBe(SECCOMP_RET.ALLOW);
        expect(got).not.toBe(SECCOMP_RET.LOG);
        // only a kill default changes the answer (to a reported kill); never an errno
        if (policy.defaultAction !== 'kill') expect(got).toBe(SECCOMP_RET.KILL_PROCESS);
      }
    }
  });

  it.each(allPolicies(arch))('%s: never more than 4096 instructions, accepted by the checker', (_name, policy) => {
    const c = compile(policy, arch);
    expect(c.instructions).toBeLessThanOrEqual(BPF_MAXINSNS);
    expect(c.program.length).toBe(c.instructions * 8);
    // first instruction loads the arch
    expect(c.program.readUInt16LE(0)).toBe(0x20);
    expect(c.program.readUInt32LE(4)).toBe(4);
    expect(decodeProgram(c.program)).toHaveLength(c.instructions);
  });

  it.each(allPolicies(arch))('%s: unconditionally allowed calls are decided from arch and nr alone', (_name, policy) => {
    const c = compile(policy, arch);
    const program = c.placeholders.length ? patchPlaceholders(c, { execPath: 0x1234n }) : c.program;
    const allowed = unconditionallyAllowed(policy, arch);
    for (const nr of allowed) {
      const t = emulateTrace(program, { nr, arch: native, args: [randU64(), randU64(), randU64(), randU64(), randU64(), randU64()] });
      expect(t.action).toBe(SECCOMP_RET.ALLOW);
      expect(t.offsetsRead).toEqual([4, 0]);
      expect(kernelCacheAllows(program, native, nr)).toBe(true);
    }
    // and calls with argument conditions do read their arguments (the check can fail)
    const byNr = resolvePolicy(policy, arch, syscallTable(arch));
    for (const [nr, rules] of byNr) {
      if (rules[0]?.conditions.length) {
        const t = emulateTrace(program, { nr, arch: native, args: [0n, 0n, 0n, 0n, 0n, 0n] });
        if (t.offsetsRead.length > 2) expect(kernelCacheAllows(program, native, nr)).toBe(false);
      }
    }
  });

  it('the default preset leaves most calls to the action cache', () => {
    const allowed = unconditionallyAllowed(presets.default, arch);
    expect(allowed).toContain(syscallTable(arch).read);
    expect(allowed).toContain(syscallTable(arch).futex);
    expect(allowed).not.toContain(syscallTable(arch).clone);
    expect(allowed).not.toContain(syscallTable(arch).mount);
  });

  it('unknown system call names are errors naming the rule and the arch, unless optional', () => {
    const bad: SeccompPolicy = { defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow' }, { syscall: ['write', 'no_such_call'], action: 'kill' }] };
    let err: unknown;
    try {
      compile(bad, arch);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SeccompPolicyError);
    expect((err as SeccompPolicyError).path).toBe('rules.1.syscall.1');
    expect((err as Error).message).toContain('no_such_call');
    expect((err as Error).message).toContain(arch);
    expect(() => compile({ ...bad, rules: [{ syscall: ['write', 'no_such_call'], action: 'kill', optional: true }] }, arch)).not.toThrow();
  });

  it('an oversized policy gives a clear error with its size', () => {
    const names = Object.keys(syscallTable(arch));
    const huge: SeccompPolicy = {
      defaultAction: 'allow',
      rules: names.flatMap((n, i) =>
        [1, 2, 3].map((k) => ({
          syscall: n,
          action: { errno: k },
          args: [
            { index: 0 as const, op: 'ge' as const, value: k + i * 10 },
            { index: 1 as const, op: 'lt' as const, value: k * 7 + i },
          ],
        })),
      ),
    };
    expect(() => compile(huge, arch)).toThrow(SeccompCompileError);
    expect(() => compile(huge, arch)).toThrow(/compiles to \d+ BPF instructions for .*4096/);
    try {
      compile(huge, arch);
    } catch (e) {
      expect((e as SeccompCompileError).instructions).toBeGreaterThan(BPF_MAXINSNS);
    }
  });

  it('kill compiles to USER_NOTIF by default and to KILL_PROCESS on request', () => {
    const p: SeccompPolicy = { defaultAction: 'allow', rules: [{ syscall: 'ptrace', action: 'kill' }] };
    const nr = syscallTable(arch).ptrace!;
    expect(emulate(compile(p, arch).program, { nr, arch: native })).toBe(SECCOMP_RET.USER_NOTIF);
    expect(emulate(compile(p, arch, { killAction: 'kill-process' }).program, { nr, arch: native })).toBe(SECCOMP_RET.KILL_PROCESS);
    // a kill default is also what foreign arches get
    const k: SeccompPolicy = { defaultAction: 'kill', rules: [] };
    expect(emulate(compile(k, arch).program, { nr: 1, arch: AUDIT_ARCH.i386 })).toBe(SECCOMP_RET.USER_NOTIF);
    // an errno default was chosen for native numbers: a foreign ABI is killed instead
    const e: SeccompPolicy = { defaultAction: { errno: 'ENOSYS' }, rules: [] };
    expect(emulate(compile(e, arch).program, { nr: 1, arch: AUDIT_ARCH.i386 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  it('dispatch is a binary search: the path to any call is short', () => {
    for (const [, policy] of allPolicies(arch)) {
      const c = compile(policy, arch);
      const program = c.placeholders.length ? patchPlaceholders(c, { execPath: 0n }) : c.program;
      // The prelude: one `jeq nr` per frequent call with argument rules right after `ld [nr]`,
      // each followed by a `ja` to its rule chain when that is too far for a conditional jump.
      const insns = decodeProgram(program);
      let prelude = 0;
      for (let pc = insns.findIndex((i) => i.code === 0x20 && i.k === 0) + 1; ; pc++) {
        if (insns[pc]!.code === 0x15 && insns[pc]!.k < 0x40000000) prelude++;
        else if (insns[pc]!.code !== 0x05) break;
      }
      for (const nr of unconditionallyAllowed(policy, arch)) {
        // arch check (3) + prelude + x32 check (1) + ~log2(ranges) jumps + ret
        expect(emulateTrace(program, { nr, arch: native }).steps).toBeLessThanOrEqual(4 + prelude + 12 + 1);
      }
    }
  });
});

it('x32 system calls (nr | 0x40000000) are refused on x86_64', () => {
  const arch = 'x86_64';
  for (const [, policy] of allPolicies(arch)) {
    const c = compile(policy, arch);
    for (const base of [0, 1, 2, 15, 59, 322, 512, 545, 547]) {
      const nr = (base | 0x40000000) >>> 0;
      const got = emulate(c.program, { nr, arch: AUDIT_ARCH.x86_64 });
      expect(got).toBe(decide(policy, arch, { nr, arch: AUDIT_ARCH.x86_64 }));
      expect(got).not.toBe(SECCOMP_RET.ALLOW);
      if (policy.defaultAction !== 'kill') expect(got).toBe(SECCOMP_RET.KILL_PROCESS);
    }
  }
  // while on aarch64 such a number is just an unassigned call
  expect(emulate(compile(presets.none, 'aarch64').program, { nr: 0x40000001, arch: AUDIT_ARCH.aarch64 })).toBe(SECCOMP_RET.ALLOW);
});

it('placeholder sites point at the constants of execve arg0', () => {
  const arch = 'x86_64';
  const c = compile(presets.judge, arch);
  expect(c.placeholders).toHaveLength(2);
  const insns = decodeProgram(c.program);
  for (const p of c.placeholders) {
    expect(insns[p.index]!.code).toBe(0x15); // jeq k
    expect(insns[p.index]!.k).toBe(0);
    // the instruction before loads the matching half of args[0]
    expect(insns[p.index - 1]!.k).toBe(p.half === 'lo' ? 16 : 20);
  }
  const execve = syscallTable(arch).execve!;
  const addr = 0x5555_dead_beefn;
  const patched = patchPlaceholders(c, { execPath: addr });
  expect(emulate(patched, { nr: execve, arch: AUDIT_ARCH.x86_64, args: [addr] })).toBe(SECCOMP_RET.ALLOW);
  expect(emulate(patched, { nr: execve, arch: AUDIT_ARCH.x86_64, args: [addr + 8n] })).toBe(SECCOMP_RET.USER_NOTIF);
  expect(emulate(patched, { nr: execve, arch: AUDIT_ARCH.x86_64, args: [addr & 0xffffffffn] })).toBe(SECCOMP_RET.USER_NOTIF);
  expect(emulate(patched, { nr: syscallTable(arch).execveat!, arch: AUDIT_ARCH.x86_64, args: [0n, addr] })).toBe(SECCOMP_RET.USER_NOTIF);
  expect(() => patchPlaceholders(c, {})).toThrow(/execPath/);
});

it('reports the instruction counts of the presets', () => {
  const counts = Object.fromEntries(presetNames.map((n) => [n, instructionCounts(presets[n])]));
  console.log('seccomp preset instruction counts:', JSON.stringify(counts));
  expect(counts.none).toEqual({ x86_64: 6, aarch64: 5 });
  for (const n of presetNames) {
    expect(counts[n]!.x86_64).toBeLessThan(400);
    expect(counts[n]!.aarch64).toBeLessThan(400);
  }
  void syscallName;
});

it('refuses malformed typed policies instead of compiling them', () => {
  const bad = { defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 7, op: 'eq', value: 1 }] }] };
  expect(() => compile(bad as unknown as SeccompPolicy, 'x86_64')).toThrow(SeccompPolicyError);
  expect(() => compile(bad as unknown as SeccompPolicy, 'x86_64')).toThrow(/rules\.0\.args\.0\.index/);
  expect(() => decide(bad as unknown as SeccompPolicy, 'x86_64', { nr: 0, arch: AUDIT_ARCH.x86_64 })).toThrow(SeccompPolicyError);
  expect(() => compile(presets.none, 'mips' as SeccompArch)).toThrow(/unknown seccomp architecture/);
});

it('compiles each preset, and each without its terminal rules, to the same program without the check as with it', () => {
  for (const arch of ARCHES) {
    for (const n of presetNames) {
      for (const policy of [presets[n], withoutTerminalRules(presets[n])]) {
        expect(compilePreset(policy, arch)).toEqual(compile(policy, arch));
      }
    }
  }
});
