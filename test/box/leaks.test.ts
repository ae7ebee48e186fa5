// Many runs leave the host as they found it: fds, mounts, processes, cgroups. (That no sandcell
// cgroup at all remains after the whole suite is checked in test/global-setup.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../src/index.js';
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
});
