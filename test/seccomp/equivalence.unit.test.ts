/**
 * The compiled program must mean what the policy says: for every preset and hand-written policy,
 * on both arches, for every syscall number in the table (and unassigned ones), with sampled
 * arguments around every condition, `emulate(compile(p))` equals `decide(p)`.
 */
import { describe, expect, it } from 'vitest';
import { ARCHES, AUDIT_ARCH, type SeccompArch } from '../../src/seccomp/arch.js';
import { type CompileOptions, compile, patchPlaceholders } from '../../src/seccomp/compile.js';
import { decide, emulate } from '../../src/seccomp/emulator.js';
import type { SeccompPolicy } from '../../src/seccomp/policy.js';
import { presetNames, presets } from '../../src/seccomp/presets.js';
import { argVectors, numbersToTry } from './helpers.js';
import { bigPolicy, halvesPolicy, placeholderPolicy, rangesPolicy, strictHalvesPolicy } from './policies.js';

const EXEC_PATH = 0x7ffd_1234_5678n;

function checkEquivalent(policy: SeccompPolicy, arch: SeccompArch, opts: CompileOptions = {}): number {
  const compiled = compile(policy, arch, opts);
  const program = compiled.placeholders.length > 0 ? patchPlaceholders(compiled, { execPath: EXEC_PATH }) : compiled.program;
  let checks = 0;
  const mismatches: string[] = [];
  for (const nr of numbersToTry(arch)) {
    for (const args of argVectors(policy, arch, nr, EXEC_PATH)) {
      const call = { nr, arch: AUDIT_ARCH[arch], args };
      const want = decide(policy, arch, call, { ...opts, placeholders: { execPath: EXEC_PATH } });
      const got = emulate(program, call);
      checks++;
      if (got !== want && mismatches.length < 5)
        mismatches.push(`nr ${nr} args [${args.map((a) => `0x${a.toString(16)}`).join(', ')}]: emulated 0x${got.toString(16)}, decided 0x${want.toString(16)}`);
    }
  }
  expect(mismatches).toEqual([]);
  return checks;
}

describe.each(ARCHES)('compiled programs match the policy on %s', (arch) => {
  it.each(presetNames)('preset %s', (name) => {
    expect(checkEquivalent(presets[name], arch)).toBeGreaterThan(1000);
    checkEquivalent(presets[name], arch, { killAction: 'kill-process' });
  });

  it('conditions on both halves, every operator, first match wins', () => {
    checkEquivalent(halvesPolicy, arch);
    checkEquivalent(halvesPolicy, arch, { killAction: 'kill-process' });
  });

  it('ranges of numbers sharing an action', () => {
    checkEquivalent(rangesPolicy(arch), arch);
  });

  it('a program large enough to need long-jump trampolines', () => {
    const p = bigPolicy(arch);
    const c = compile(p, arch);
    expect(c.instructions).toBeGreaterThan(600);
    checkEquivalent(p, arch);
  });

  it('placeholders patched in after compilation', () => {
    const c = compile(placeholderPolicy, arch);
    expect(c.placeholders.map((p) => `${p.name}.${p.half}`).sort()).toEqual([
      'execPath.hi',
      'execPath.hi',
      'execPath.lo',
      'execPath.lo',
    ]);
    checkEquivalent(placeholderPolicy, arch);
  });
});

it('the equivalence check can fail: a one-bit change of the program is noticed', () => {
  const arch = 'x86_64';
  const c = compile(strictHalvesPolicy, arch);
  // Flip the constant of every conditional jump in turn; each must change some decision.
  const insnCount = c.instructions;
  let noticed = 0;
  let mutated = 0;
  for (let i = 4; i < insnCount; i++) {
    const code = c.program.readUInt16LE(i * 8);
    if ((code & 0x07) !== 0x05 || (code & 0xf0) === 0) continue; // conditional jumps only
    const copy = Buffer.from(c.program);
    copy.writeUInt32LE((copy.readUInt32LE(i * 8 + 4) + 1) >>> 0, i * 8 + 4);
    mutated++;
    let differs = false;
    for (const nr of numbersToTry(arch)) {
      for (const args of argVectors(strictHalvesPolicy, arch, nr)) {
        const call = { nr, arch: AUDIT_ARCH[arch], args };
        if (emulate(copy, call) !== decide(strictHalvesPolicy, arch, call)) {
          differs = true;
          break;
        }
      }
      if (differs) break;
    }
    if (differs) noticed++;
  }
  expect(mutated).toBeGreaterThan(10);
  expect(noticed).toBe(mutated);
});
