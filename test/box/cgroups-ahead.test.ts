// setCgroupsAhead: how many empty run cgroups a process keeps made ahead. Each case is a fresh
// Node process of the built package, since the count holds for the cgroup parents a process
// opens after it is set.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

import { SandboxOptionsError, setCgroupsAhead } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
const at = (file: string): string => JSON.stringify(pathToFileURL(join(DIST, file)).href);

/** One run in a fresh process (after `setCgroupsAhead(ahead)` unless null): its status, the cgroups left made ahead, the run cgroups in use. */
function oneRun(ahead: number | null): { status: string; idle: number; runs: number } {
  const script = `
    import { readdirSync } from 'node:fs';
    import { run, setCgroupsAhead } from ${at('index.js')};
    import { idleCgroupDirs } from ${at('runtime.js')};
    import { listSandcellCgroups } from ${at('cgroup/index.js')};
    ${ahead === null ? '' : `setCgroupsAhead(${ahead});`}
    const r = await run({ command: ['/bin/true'] });
    const idle = await idleCgroupDirs();
    const runs = listSandcellCgroups({ pid: process.pid }).flatMap((d) => readdirSync(d).filter((n) => n.startsWith('run-')).map((n) => d + '/' + n));
    console.log(JSON.stringify({ status: r.status, idle: idle.length, runs: runs.filter((d) => !idle.includes(d)).length }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as { status: string; idle: number; runs: number };
}

describe('setCgroupsAhead', () => {
  it('0: a run makes its own cgroup, none is made ahead, and the run leaves none once over', () => {
    requireRoot();
    expect(oneRun(0)).toEqual({ status: 'ok', idle: 0, runs: 0 });
  });

  it('by default cgroups are made ahead, the finished run’s kept among them', () => {
    requireRoot();
    const r = oneRun(null);
    expect(r.status).toBe('ok');
    expect(r.runs).toBe(0);
    expect(r.idle).toBeGreaterThan(0);
  });

  it('refuses a count that is not an integer from 0 to 64, naming it', () => {
    for (const bad of [-1, 1.5, 65, Number.NaN]) {
      expect(() => setCgroupsAhead(bad)).toThrow(SandboxOptionsError);
      expect(() => setCgroupsAhead(bad)).toThrow(/cgroupsAhead/);
    }
  });
});
