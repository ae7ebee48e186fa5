/**
 * The compiler's shorter programs decide exactly what the earlier ones did.
 *
 * fixtures/programs-before-prelude.json holds the programs the compiler emitted for every preset,
 * arch and kill action before frequent argument-checked calls were tested ahead of the binary
 * search and repeated argument loads were dropped (commit 542284e). For every syscall number of
 * the table (and unassigned, x32 and far numbers), foreign arches, and argument vectors around
 * every condition, today's program must return what that program returned.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARCHES, AUDIT_ARCH, type SeccompArch, syscallNumber } from '../../src/seccomp/arch.js';
import { BPF_ABS, BPF_JMP, BPF_LD, BPF_RET, BPF_W, type BpfInsn } from '../../src/seccomp/bpf.js';
import { type CompileOptions, compile, dropRedundantLoads, patchPlaceholders } from '../../src/seccomp/compile.js';
import { emulate, emulateTrace } from '../../src/seccomp/emulator.js';
import type { PlaceholderName } from '../../src/seccomp/policy.js';
import { type PresetName, presetNames, presets } from '../../src/seccomp/presets.js';
import { U64, argVectors, numbersToTry } from './helpers.js';

interface Stored {
  program: string;
  placeholders: { name: PlaceholderName; index: number; half: 'lo' | 'hi' }[];
}
const before = JSON.parse(readFileSync(new URL('./fixtures/programs-before-prelude.json', import.meta.url), 'utf8')) as Record<
  string,
  Stored
>;

const EXEC_PATH = 0x7ffd_1234_5678n;
const KILL_ACTIONS: NonNullable<CompileOptions['killAction']>[] = ['notify', 'kill-process'];
const TCGETS = 0x5401n;
const TIOCSTI = 0x5412n;
const TIOCLINUX = 0x541cn;

/** ioctl requests and other values worth trying in every argument on top of the policy's own. */
const EXTRA = [TCGETS, TIOCSTI, TIOCLINUX, TIOCSTI | (1n << 32n), TIOCLINUX | (U64 << 32n), U64 & ~0xffffn, 0x4000n];

function programs(arch: SeccompArch, name: PresetName, killAction: CompileOptions['killAction']): { old: Buffer; now: Buffer } {
  const stored = before[`${arch}/${name}/${killAction}`];
  if (!stored) throw new Error(`fixture lacks ${arch}/${name}/${killAction}`);
  const old = patchPlaceholders({ program: Buffer.from(stored.program, 'hex'), placeholders: stored.placeholders }, { execPath: EXEC_PATH });
  const now = patchPlaceholders(compile(presets[name], arch, { killAction }), { execPath: EXEC_PATH });
  return { old, now };
}

/** Compares two programs on every call worth trying; returns the number of calls and the first mismatches. */
function compare(arch: SeccompArch, name: PresetName, old: Buffer, now: Buffer): { calls: number; mismatches: string[] } {
  const mismatches: string[] = [];
  let calls = 0;
  const archValues = [AUDIT_ARCH[arch], AUDIT_ARCH.i386, AUDIT_ARCH.arm, arch === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64, 0];
  const numbers = numbersToTry(arch);
  for (const nr of [...numbers, ...numbers.filter((n) => n < 1024).map((n) => (n | 0x40000000) >>> 0)]) {
    const vectors = argVectors(presets[name], arch, nr, EXEC_PATH);
    for (const v of EXTRA) for (let i = 0; i < 6; i++) vectors.push(Object.assign([0n, 0n, 0n, 0n, 0n, 0n], { [i]: v }));
    for (const auditArch of archValues) {
      // A foreign arch is decided before the number: a few vectors are enough there.
      for (const args of auditArch === AUDIT_ARCH[arch] ? vectors : vectors.slice(0, 2)) {
        const call = { nr, arch: auditArch, args };
        const a = emulate(old, call);
        const b = emulate(now, call);
        calls++;
        if (a !== b && mismatches.length < 5)
          mismatches.push(`arch 0x${auditArch.toString(16)} nr ${nr} args [${args.map((x) => `0x${x.toString(16)}`).join(', ')}]: before 0x${a.toString(16)}, now 0x${b.toString(16)}`);
      }
    }
  }
  return { calls, mismatches };
}

describe.each(ARCHES)('on %s, today’s programs decide what the earlier ones did', (arch) => {
  it.each(presetNames.flatMap((n) => KILL_ACTIONS.map((k) => [n, k] as const)))('preset %s, kill as %s', (name, killAction) => {
    const { old, now } = programs(arch, name, killAction);
    const { calls, mismatches } = compare(arch, name, old, now);
    expect(mismatches).toEqual([]);
    expect(calls).toBeGreaterThan(10_000);
  });

  it('the ioctl path is shorter than before and the argument is loaded once', () => {
    const nr = syscallNumber('ioctl', arch)!;
    for (const name of ['default', 'judge'] as const) {
      const { old, now } = programs(arch, name, 'notify');
      for (const request of [TCGETS, TIOCSTI, TIOCLINUX]) {
        const call = { nr, arch: AUDIT_ARCH[arch], args: [U64, request, 0n] };
        const was = emulateTrace(old, call);
        const is = emulateTrace(now, call);
        // ld arch, jeq, ld nr, jeq ioctl, ld args[1].lo, jeq TIOCSTI, (jeq TIOCLINUX,) ret
        expect(is.steps).toBeLessThanOrEqual(request === TIOCSTI ? 7 : 8);
        expect(is.steps).toBeLessThan(was.steps);
        expect(is.offsetsRead).toEqual([4, 0, 24]);
      }
    }
  });
});

it('the comparison can fail: a program that lets TIOCSTI through is caught', () => {
  const arch = 'x86_64';
  const { old, now } = programs(arch, 'default', 'notify');
  const insns = now.length / 8;
  let patched = 0;
  for (let i = 0; i < insns; i++) {
    if (now.readUInt16LE(i * 8) === (BPF_JMP | 0x10) && now.readUInt32LE(i * 8 + 4) === Number(TIOCSTI)) {
      now.writeUInt32LE(Number(TIOCSTI) + 1, i * 8 + 4);
      patched++;
    }
  }
  expect(patched).toBe(1);
  const { mismatches } = compare(arch, 'default', old, now);
  expect(mismatches.length).toBeGreaterThan(0);
  expect(mismatches.join('\n')).toMatch(/nr 16 args \[[^\]]*0x5412/);
});

describe('dropRedundantLoads', () => {
  const ld = (k: number): BpfInsn => ({ code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k });
  const jeq = (k: number, jt: number, jf: number): BpfInsn => ({ code: BPF_JMP | 0x10, jt, jf, k });
  const ret = (k: number): BpfInsn => ({ code: BPF_RET, jt: 0, jf: 0, k });

  it('a jump that arrives with the word already loaded skips its reload, which then goes', () => {
    // ld [24]; jeq 1 → ret 5 else (ld [24]; jeq 2 → ret 5 else ret 7)
    const program = [ld(24), jeq(1, 3, 0), ld(24), jeq(2, 1, 0), ret(7), ret(5)];
    const { insns, newIndex } = dropRedundantLoads(program);
    expect(insns).toEqual([ld(24), jeq(1, 2, 0), jeq(2, 1, 0), ret(7), ret(5)]);
    expect(newIndex).toEqual([0, 1, undefined, 2, 3, 4]);
    for (const w of [0, 1, 2, 3]) {
      const call = { nr: 0, arch: 0, args: [0n, BigInt(w)] };
      expect(emulate(insns, call)).toBe(emulate(program, call));
    }
  });

  it('a load stays where paths meet with different words in the accumulator', () => {
    // At `jeq 2`, A holds [24] or [16] depending on the path, so the reload of [24] it reaches
    // must stay. In the first program [16] arrives first, in the second [24]: a meet that kept
    // the first or the last word to arrive would make that jump skip the reload.
    for (const [first, second] of [[16, 24], [24, 16]] as const) {
      const program = [ld(first), jeq(1, 0, 1), ld(second), jeq(2, 0, 1), ld(24), jeq(3, 0, 1), ret(5), ret(7)];
      const { insns } = dropRedundantLoads(program);
      expect(insns).toEqual(program);
      for (const a of [0n, 1n, 3n]) for (const b of [0n, 1n, 2n, 3n]) {
        const call = { nr: 0, arch: 0, args: [a, b] };
        expect(emulate(insns, call)).toBe(emulate(program, call));
      }
    }
  });
});
