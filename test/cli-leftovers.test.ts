// A one-shot `sandcell run` leaves nothing behind when it ends: none of its cgroups (the run's, and
// its process's sandcell-<pid> parents), no process of its box, no mount, no file in its
// temporary directory. Nor when SIGINT or SIGTERM ends it while its program runs: the command
// ends the run first and reports the signal as a shell does (128 + its number).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../src/cgroup/index.js';
import { mountTable, pidsRunning, requireRoot } from './helpers/host.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');

let tmp: string;
beforeEach(() => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-cli-leftovers-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** Host mounts that name sandcell (a box's are in its own mount namespace). */
const sandcellMounts = (): string[] => mountTable().split('\n').filter((l) => l.includes('sandcell'));

/** What a CLI process of this pid left: its cgroups, the processes running `argv`, its temporary files. */
function leftBy(pid: number, argv: string[]): { cgroups: string[]; processes: number[]; files: string[] } {
  return { cgroups: listSandcellCgroups({ pid }), processes: pidsRunning(argv), files: readdirSync(tmp) };
}

describe('what a one-shot sandcell run leaves behind', () => {
  it('nothing, after its program ended', () => {
    const mounts = sandcellMounts();
    const argv = ['/bin/sleep', '0.1'];
    const r = spawnSync(process.execPath, [CLI, 'run', '--', ...argv], { env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(leftBy(r.pid!, argv)).toEqual({ cgroups: [], processes: [], files: [] });
    expect(sandcellMounts()).toEqual(mounts);
  });

  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`nothing, ended by ${signal} while its program runs, with status ${status}`, async () => {
      const mounts = sandcellMounts();
      // A command line no other process has, to find the program on the host.
      const argv = ['/bin/sleep', `3599.${process.pid}${status}`];
      const cli = spawn(process.execPath, [CLI, 'run', '--', '/bin/sh', '-c', `echo ready; exec ${argv.join(' ')}`], {
        env: { ...process.env, TMPDIR: tmp },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = once(cli, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      let stderr = '';
      cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        await new Promise<void>((resolve, reject) => {
          cli.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
          void exited.then(() => reject(new Error(`the CLI ended before its program ran: ${stderr}`)));
        });
        // The run is under way: its cgroups and its program are there to be left or not.
        expect(listSandcellCgroups({ pid: cli.pid! }).length).toBeGreaterThan(0);
        expect(pidsRunning(argv)).toHaveLength(1);
        cli.kill(signal);
        expect(await exited).toEqual([status, null]);
        expect(stderr).toBe(`sandcell: ${signal}: the run was aborted\n`);
        expect(leftBy(cli.pid!, argv)).toEqual({ cgroups: [], processes: [], files: [] });
        expect(sandcellMounts()).toEqual(mounts);
      } finally {
        if (cli.exitCode === null && cli.signalCode === null) {
          cli.kill('SIGKILL');
          await exited;
        }
      }
    });
  }
});
