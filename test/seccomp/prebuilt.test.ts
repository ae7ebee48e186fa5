// The presets' programs the build ships (dist/seccomp/prebuilt.js, written by
// scripts/prebuild-seccomp.mjs, and the same module in the command's bundle) against what the
// compiler makes from the sources' tables and presets: a shipped program that differs from the
// compiler's, or a preset, architecture or variant without one, fails here.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

import { ARCHES } from '../../src/seccomp/arch.js';
import { compilePresetVariant, prebuiltKey } from '../../src/seccomp/compile.js';
import type { PrebuiltProgram } from '../../src/seccomp/prebuilt.js';
import { presetNames } from '../../src/seccomp/presets.js';
import { functionsRan, withCoverage } from '../helpers/coverage.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'seccomp');

describe('the presets compiled by the build', () => {
  it('are every preset with a filter, as it is and without its terminal rules, for every architecture, each program the compiler makes', async () => {
    const { PREBUILT } = (await import(pathToFileURL(join(DIST, 'prebuilt.js')).href)) as { PREBUILT: Record<string, PrebuiltProgram> };
    const expected: Record<string, PrebuiltProgram> = {};
    for (const name of presetNames.filter((n) => n !== 'none')) {
      for (const arch of ARCHES) {
        for (const terminal of [true, false]) {
          const r = compilePresetVariant(name, arch, terminal);
          expected[prebuiltKey(name, arch, terminal)] = { program: r.program.toString('base64'), instructions: r.instructions, placeholders: r.placeholders };
        }
      }
    }
    expect(Object.keys(PREBUILT).sort()).toEqual(Object.keys(expected).sort());
    expect(PREBUILT).toEqual(expected);
  });

  it("are what the built library's presetProgram returns, with no program compiled in that process", () => {
    const script = `
      const { presetProgram } = await import(${JSON.stringify(pathToFileURL(join(DIST, 'compile.js')).href)});
      const out = {};
      for (const name of ['default', 'judge']) for (const arch of ['x86_64', 'aarch64']) for (const terminal of [true, false]) {
        const r = presetProgram(name, arch, terminal);
        out[name + ' ' + arch + ' ' + terminal] = { ...r, program: r.program.toString('base64') };
      }
      process.stdout.write(JSON.stringify(out));`;
    const { run: r, scripts } = withCoverage(['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout) as Record<string, { program: string }>;
    for (const name of ['default', 'judge'] as const) {
      for (const arch of ARCHES) {
        for (const terminal of [true, false]) {
          const c = compilePresetVariant(name, arch, terminal);
          expect(got[`${name} ${arch} ${terminal}`]).toEqual({ ...c, program: c.program.toString('base64') });
        }
      }
    }
    const compileJs = pathToFileURL(join(DIST, 'compile.js')).href;
    const ran = functionsRan(scripts.filter((s) => s.url === compileJs));
    expect(ran).toContain('presetProgram');
    expect(ran).not.toContain('emitProgram');
    expect(ran).not.toContain('planOf');
  });
});
