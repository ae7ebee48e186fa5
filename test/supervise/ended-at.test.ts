// When a box ended, and the clock it is read on: process.hrtime's, which the init's own report is
// on too, so that a run never loads perf_hooks (performance.now()'s module) into its process.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { spawn } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';

beforeAll(() => requireRoot());

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

describe('endedAt', () => {
  it("is in milliseconds on process.hrtime's clock, between the spawn and the end of wait()", async () => {
    const before = monotonicMs();
    const proc = await spawn({ command: ['/bin/true'] });
    expect(proc.endedAt).toBeNull();
    await proc.wait();
    const after = monotonicMs();
    expect(proc.endedAt).toBeGreaterThanOrEqual(before);
    expect(proc.endedAt).toBeLessThanOrEqual(after);
  });

  it('is when kill() ended a box, on the same clock', async () => {
    const proc = await spawn({ command: ['/bin/sleep', '30'] });
    const before = monotonicMs();
    proc.kill();
    const after = monotonicMs();
    await proc.wait();
    expect(proc.endedAt).toBeGreaterThanOrEqual(before);
    expect(proc.endedAt).toBeLessThanOrEqual(after);
  });

  it('a run in a fresh process loads no perf_hooks (the build in dist/)', () => {
    const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    const script = `
      const { run } = await import(${JSON.stringify(index)});
      const before = new Set(process.moduleLoadList);
      const r = await run({ command: ['/bin/true'] });
      const loaded = process.moduleLoadList.filter((m) => !before.has(m));
      console.log(JSON.stringify({ exitCode: r.exitCode, loaded }));
      process.exit(0);`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(out.stderr).toBe('');
    const { exitCode, loaded } = JSON.parse(out.stdout) as { exitCode: number; loaded: string[] };
    expect(exitCode).toBe(0);
    expect(loaded.filter((m) => m.includes('perf'))).toEqual([]);
  });
});
