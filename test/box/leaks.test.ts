// Many runs leave the host as they found it: fds, mounts, processes, cgroups. (That no sandcell
// cgroup at all remains after the whole suite is checked in test/global-setup.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readdirSync, readlinkSync } from 'node:fs';

import { run, shutdown } from '../../src/index.js';
import { childPids, mountTable, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';

beforeAll(() => requireRoot());

async function settle(): Promise<void> {
  // Sockets wrapping the box's pipes close on the next turns of the event loop.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('no leaks', () => {
  let fds: number;
  let mounts: string;
  beforeAll(async () => {
    // One run first, so that lazily opened things (the cgroup parent, the addon) are counted.
    await run({ command: ['/bin/true'] });
    await settle();
    fds = await openFds();
    mounts = mountTable();
  });

  afterAll(async () => {
    expect(await runCgroupsInUse()).toEqual([]);
  });

  it('200 sequential runs of /bin/true', async () => {
    for (let i = 0; i < 200; i++) {
      const r = await run({ command: ['/bin/true'] });
      expect(r.status).toBe('ok');
    }
    await settle();
    expect(await openFds()).toBe(fds);
    expect(mountTable()).toBe(mounts);
    expect(await childPids()).toEqual([]);
  });

  it('200 concurrent runs of /bin/true, 16 at a time', async () => {
    let next = 0;
    const statuses: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < 200) {
        next++;
        statuses.push((await run({ command: ['/bin/true'] })).status);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(statuses).toHaveLength(200);
    expect(new Set(statuses)).toEqual(new Set(['ok']));
    await settle();
    expect(await openFds()).toBe(fds);
    expect(mountTable()).toBe(mounts);
    expect(await childPids()).toEqual([]);
  });

  // Runs ending while others still write a full input pipe and read both output pipes: every
  // stream arrives whole and no descriptor is left behind.
  it('40 runs echoing 3 MiB of input with output on both streams, 8 at a time', async () => {
    const input = Buffer.alloc(3 << 20);
    for (let i = 0; i < input.length; i++) input[i] = 97 + ((i * 7) % 26);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 40) {
        const n = next++;
        const r = await run({ command: ['/bin/sh', '-c', `cat; echo ${n} >&2`], stdin: input, limits: { wallTime: '60s' } });
        expect(r.status).toBe('ok');
        expect(r.stdout.length).toBe(input.length);
        expect(r.stdout === input.toString('latin1')).toBe(true);
        expect(r.stderr).toBe(`${n}\n`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await settle();
    expect(await openFds()).toBe(fds);
    expect(mountTable()).toBe(mounts);
    expect(await childPids()).toEqual([]);
  });

  // The pool's cgroups keep the control files they reuse open from run to run (the count above
  // closes them first, src/native.ts closeHeldCgroupFiles); the process's end of them is shutdown().
  it("a reused cgroup's control files stay open between its runs, never the memory cgroup's (made again), and shutdown() closes them all", async () => {
    const cgroupFiles = (): string[] =>
      readdirSync('/proc/self/fd').flatMap((fd) => {
        try {
          const to = readlinkSync(`/proc/self/fd/${fd}`);
          return to.startsWith('/sys/fs/cgroup/') ? [to] : [];
        } catch {
          return [];
        }
      });
    for (let i = 0; i < 20; i++) expect((await run({ command: ['/bin/true'], limits: { processes: 16 } })).status).toBe('ok');
    await settle();
    const held = cgroupFiles();
    expect(held.map((f) => f.slice(f.lastIndexOf('/') + 1))).toEqual(expect.arrayContaining(['cgroup.procs', 'pids.max', 'pids.current', 'cpuacct.usage']));
    expect(held.filter((f) => f.startsWith('/sys/fs/cgroup/memory/'))).toEqual([]);
    // Opened once per cgroup and kept: 20 more runs open none beyond the cgroups they use.
    for (let i = 0; i < 20; i++) await run({ command: ['/bin/true'], limits: { processes: 16 } });
    await settle();
    const dirs = new Set(cgroupFiles().map((f) => f.slice(0, f.lastIndexOf('/'))));
    expect(cgroupFiles().length).toBeLessThanOrEqual(dirs.size * 4);
    await shutdown();
    expect(cgroupFiles()).toEqual([]);
    expect(await openFds()).toBe(fds);
  });
});
