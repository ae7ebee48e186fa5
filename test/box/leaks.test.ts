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
});
