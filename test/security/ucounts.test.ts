// Per-user kernel counts (inotify instances, POSIX message queue bytes, queued signals) are charged
// up the user-namespace chain to the owner of the box's namespace. A box that takes all it can of
// one must leave host root able to take its own: the box's namespace is owned by an id only boxes
// use, never by host root.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, Sandbox, SandboxOptionsError, SandboxSetupError, setOwnerIds, spawn, type SandboxProcess } from '../../src/index.js';
import { DEFAULT_OWNER_IDS, HOST_ID_BASE, HOST_ID_LAST } from '../../src/plan/ids.js';
import { childPids, requireRoot } from '../helpers/host.js';

const HERE = join(dirname(fileURLToPath(import.meta.url)), 'ucounts');
let dir = '';

beforeAll(() => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'sandcell-ucounts-'));
  chmodSync(dir, 0o755);
  execFileSync('gcc', ['-O1', '-static', '-Wall', '-o', join(dir, 'hog'), join(HERE, 'hog.c')], { stdio: 'inherit' });
  execFileSync('gcc', ['-O1', '-Wall', '-o', join(dir, 'probe'), join(HERE, 'probe.c')], { stdio: 'inherit' });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The first line the box prints: what it took of the count and why it stopped. */
async function firstLine(p: SandboxProcess): Promise<string> {
  let text = '';
  for await (const chunk of p.stdout) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  return text.split('\n')[0] ?? '';
}

/** Host root asks for one more of the count: "ok" or the errno's name. */
function hostRootProbe(kind: string): string {
  return execFileSync(join(dir, 'probe'), [kind], { encoding: 'utf8' }).trim();
}

/** Runs the hog in a box until it holds all it can get, probes as host root, ends the box. */
async function exhaust(kind: string): Promise<{ took: string; host: string }> {
  const box = await spawn({
    command: ['/hog/hog', kind],
    binds: [{ source: dir, target: '/hog' }],
    limits: { wallTime: '20s', openFiles: 4096, memory: '256MiB' },
  });
  try {
    const took = await firstLine(box);
    return { took, host: hostRootProbe(kind) };
  } finally {
    box.kill();
    await box.wait();
  }
}

describe('per-user kernel counts a box raises are not host root’s', () => {
  it('inotify instances: a box that takes all it can leaves host root its own', async () => {
    const { took, host } = await exhaust('inotify');
    // Refused at the owner's level (fs.inotify.max_user_instances), not by a descriptor limit.
    expect(took).toMatch(/^inotify [1-9]\d* EMFILE$/);
    expect(host).toBe('ok');
  });

  it('POSIX message queue bytes: a box that takes all it can leaves host root its own', async () => {
    const { took, host } = await exhaust('mqueue');
    expect(took).toMatch(/^mqueue [1-9]\d* EMFILE$/);
    expect(host).toBe('ok');
  });

  it('queued signals: a box that queues all it can leaves host root able to receive its own', async () => {
    const { took, host } = await exhaust('signals');
    expect(took).toMatch(/^signals [1-9]\d* EAGAIN$/);
    expect(host).toBe('ok');
  });

  it('two boxes that live at once are charged to different owners: one cannot starve the other', async () => {
    const a = await Sandbox.create({ binds: [{ source: dir, target: '/hog' }], limits: { openFiles: 4096 } });
    const b = await Sandbox.create({ binds: [{ source: dir, target: '/hog' }], limits: { openFiles: 4096 } });
    try {
      const pa = await a.spawn({ command: ['/hog/hog', 'inotify'] });
      const tookA = await firstLine(pa);
      const pb = await b.spawn({ command: ['/hog/hog', 'inotify'] });
      const tookB = await firstLine(pb);
      const max = Number(execFileSync('cat', ['/proc/sys/fs/inotify/max_user_instances'], { encoding: 'utf8' }));
      // Each box gets the whole per-user allowance: the second is not left with what the first left over.
      expect(tookA).toBe(`inotify ${max} EMFILE`);
      expect(tookB).toBe(`inotify ${max} EMFILE`);
      pa.kill();
      pb.kill();
      await Promise.all([pa.wait(), pb.wait()]);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });

  it('each box’s user namespace is owned by its own id of the range, never host root', async () => {
    const boxes = await Promise.all([Sandbox.create({}), Sandbox.create({})]);
    try {
      const owners = boxes.map((b) => Number(execFileSync(join(dir, 'probe'), ['owner', String(b.pid)], { encoding: 'utf8' })));
      for (const o of owners) {
        expect(o).toBeGreaterThanOrEqual(DEFAULT_OWNER_IDS.first);
        expect(o).toBeLessThan(DEFAULT_OWNER_IDS.first + DEFAULT_OWNER_IDS.count);
      }
      expect(owners[0]).not.toBe(owners[1]);
      // What the box's ids map to is unchanged: root inside is HOST_ID_BASE.
      expect(readFileSync(`/proc/${boxes[0]!.pid}/uid_map`, 'utf8').trim().split(/\s+/).slice(0, 3)).toEqual(['0', String(HOST_ID_BASE), '1']);
    } finally {
      await Promise.all(boxes.map((b) => b.destroy()));
    }
  });

  it('every thread of this process is root again after boxes were made, with its capabilities', async () => {
    const ids = (): string[] =>
      readdirSync('/proc/self/task').map((t) => {
        const status = readFileSync(`/proc/self/task/${t}/status`, 'utf8');
        return ['Uid', 'Gid', 'CapEff', 'CapPrm'].map((k) => status.split('\n').find((l) => l.startsWith(`${k}:`))).join(' ');
      });
    const before = new Set(ids());
    expect(before.size).toBe(1);
    await Promise.all(Array.from({ length: 8 }, () => run({ command: ['/bin/true'] })));
    expect(new Set(ids())).toEqual(before);
    // Files written by libuv's worker threads (the ones that made the boxes) are root's.
    const files = Array.from({ length: 16 }, (_, i) => join(dir, `written-${i}`));
    await Promise.all(files.map((f) => writeFile(f, 'x')));
    for (const f of files) expect(statSync(f).uid).toBe(0);
  });

  it('the owner range is a validated setting; a box fails cleanly when every id is taken', async () => {
    const refused = (range: unknown): string => {
      try {
        setOwnerIds(range as { first: number; count: number });
      } catch (e) {
        expect(e).toBeInstanceOf(SandboxOptionsError);
        return (e as SandboxOptionsError).path;
      }
      return 'accepted';
    };
    expect(refused({ first: 0, count: 10 })).toBe('ownerIds.first');
    expect(refused({ first: 1.5, count: 10 })).toBe('ownerIds.first');
    expect(refused({ first: 0xfffffff0, count: 100 })).toBe('ownerIds.count');
    expect(refused({ first: 5000, count: 0 })).toBe('ownerIds.count');
    expect(refused({ first: HOST_ID_LAST, count: 1 })).toBe('ownerIds');
    expect(refused({ first: HOST_ID_BASE - 5, count: 10 })).toBe('ownerIds');
    expect(refused(null)).toBe('ownerIds');

    setOwnerIds({ first: 0x60000000, count: 2 });
    const boxes: Sandbox[] = [];
    try {
      boxes.push(await Sandbox.create({}), await Sandbox.create({}));
      const owners = boxes.map((b) => Number(execFileSync(join(dir, 'probe'), ['owner', String(b.pid)], { encoding: 'utf8' })));
      expect(owners.sort()).toEqual([0x60000000, 0x60000001]);
      const third = await Sandbox.create({}).then(
        (b) => (boxes.push(b), null),
        (e: unknown) => e,
      );
      expect(third).toBeInstanceOf(SandboxSetupError);
      expect((third as SandboxSetupError).errno).toBe(constants.errno.EAGAIN);
      expect((third as SandboxSetupError).stage).toMatch(/owner id/);
      // An id comes back when its box ends.
      await boxes.pop()!.destroy();
      boxes.push(await Sandbox.create({}));
    } finally {
      await Promise.all(boxes.map((b) => b.destroy()));
      setOwnerIds(DEFAULT_OWNER_IDS);
    }
  });

  it('leaves no box behind', async () => {
    expect(await childPids()).toEqual([]);
  });
});
