// The box's root as a mount list: the host's system dirs read-only, a generated /etc, a fresh
// /proc, a minimal read-only /dev, a writable /tmp and working directory, the caller's volumes
// with their read-only flag, and an image's top level instead of the host's dirs.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { NativeMount } from '../../src/native.js';
import { boxRoot, type RootOptions } from '../../src/plan/rootfs.js';

const root = (o: Partial<RootOptions> = {}): NativeMount[] =>
  boxRoot({ uid: 65534, gid: 65534, cwd: '/work', tmpfsBytes: 1 << 20, hostNetwork: false, hostname: 'sandcell', hostsFile: null, mounts: [], image: null, writable: false, files: [], deviceTree: false, ...o });
const at = (mounts: NativeMount[], target: string): NativeMount[] => mounts.filter((m) => m.target === target);
const fileText = (mounts: NativeMount[], target: string): string => {
  const [m] = at(mounts, target);
  if (m?.kind !== 'file') throw new Error(`no file at ${target}`);
  return m.data.toString();
};

describe('boxRoot with the host system', () => {
  const mounts = root();

  it("binds the host's /usr read-only, without setuid or devices", () => {
    expect(at(mounts, '/usr')).toEqual([{ kind: 'bind', source: '/usr', target: '/usr', readOnly: true, noSuid: true, noDev: true, optional: true }]);
  });

  it('shows nothing else of the host: no /home, /root, /var, /etc dir or /sys', () => {
    for (const hidden of ['/home', '/root', '/var', '/etc', '/sys', '/run']) expect(at(mounts, hidden)).toEqual([]);
  });

  it("generates /etc: the program's user and group, the box's hostname, no resolver without host networking", () => {
    expect(fileText(mounts, '/etc/passwd')).toBe('root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:65534:65534:sandbox:/work:/usr/sbin/nologin\n');
    expect(fileText(mounts, '/etc/group')).toBe('root:x:0:\nsandbox:x:65534:\n');
    expect(fileText(mounts, '/etc/hostname')).toBe('sandcell\n');
    expect(at(mounts, '/etc/resolv.conf')).toEqual([]);
    expect(at(root({ hostNetwork: true }), '/etc/resolv.conf')).toMatchObject([{ kind: 'bind', source: '/etc/resolv.conf', readOnly: true }]);
  });

  it('a fresh /proc; /dev a read-only, no-exec tmpfs with the harmless devices only', () => {
    expect(at(mounts, '/proc')).toEqual([{ kind: 'proc', target: '/proc' }]);
    expect(at(mounts, '/dev')).toMatchObject([{ kind: 'tmpfs', readOnly: true, noExec: true, noSuid: true }]);
    const devices = mounts.filter((m) => m.kind === 'bind' && m.target.startsWith('/dev/')).map((m) => m.target);
    expect(devices).toEqual(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);
    expect(at(mounts, '/dev/shm')).toMatchObject([{ kind: 'tmpfs', noSuid: true, noDev: true }]);
  });

  it('with the device tree, /dev is its clone, one mount where the binds were six, /dev/shm still its own tmpfs', () => {
    const tree = root({ deviceTree: true });
    expect(at(tree, '/dev')).toEqual([{ kind: 'devices', target: '/dev' }]);
    expect(tree.filter((m) => m.target.startsWith('/dev/')).map((m) => m.target)).toEqual(['/dev/shm']);
    expect(at(tree, '/dev/shm')).toEqual(at(mounts, '/dev/shm'));
  });

  it('/tmp and the working directory are writable tmpfs of the tmpfs size, the latter owned by the program', () => {
    expect(at(mounts, '/tmp')).toEqual([{ kind: 'tmpfs', target: '/tmp', data: 'size=1048576,nr_inodes=256,mode=1777', noSuid: true, noDev: true }]);
    expect(at(mounts, '/work')).toEqual([{ kind: 'tmpfs', target: '/work', data: 'size=1048576,nr_inodes=256,mode=755,uid=65534,gid=65534', noSuid: true, noDev: true }]);
  });
});

describe('boxRoot with volumes and files', () => {
  it('volumes follow the box, in order, with their read-only flag', () => {
    const mounts = root({
      mounts: [
        { type: 'bind', source: '/srv/in', target: '/in', readonly: true },
        { type: 'bind', source: '/srv/out', target: '/out', readonly: false },
        { type: 'tmpfs', target: '/scratch', sizeBytes: 4096 },
      ],
    });
    const tail = mounts.slice(mounts.findIndex((m) => m.target === '/work') + 1);
    expect(tail).toEqual([
      { kind: 'bind', source: '/srv/in', target: '/in', readOnly: true, noSuid: true, noDev: true },
      { kind: 'bind', source: '/srv/out', target: '/out', readOnly: false, noSuid: true, noDev: true },
      { kind: 'tmpfs', target: '/scratch', data: 'size=4096,nr_inodes=64,mode=1777', noSuid: true, noDev: true },
    ]);
  });

  it("the working directory's tmpfs comes before the volumes, so that one inside it is not hidden by it", () => {
    const mounts = root({ mounts: [{ type: 'bind', source: '/srv/main', target: '/work/main', readonly: true }] });
    expect(mounts.map((m) => m.target).filter((t) => t.startsWith('/work'))).toEqual(['/work', '/work/main']);
  });

  it('a working directory inside a volume or /tmp gets no tmpfs of its own', () => {
    expect(at(root({ cwd: '/tmp/job' }), '/tmp/job')).toEqual([]);
    expect(at(root({ cwd: '/in/sub', mounts: [{ type: 'bind', source: '/srv', target: '/in', readonly: false }] }), '/in/sub')).toEqual([]);
  });

  it("the caller's files go last, below the working directory, owned by the program", () => {
    const mounts = root({ files: [{ name: 'src/main.c', data: Buffer.from('int main;'), mode: 0o600 }] });
    expect(mounts.at(-1)).toEqual({ kind: 'file', target: '/work/src/main.c', data: Buffer.from('int main;'), mode: 0o600, programOwned: true });
  });
});

describe('boxRoot with an image', () => {
  const image = mkdtempSync(join(tmpdir(), 'sandcell-unit-image-'));
  for (const d of ['usr', 'etc', 'proc', 'dev', 'tmp', 'sys', 'work']) mkdirSync(join(image, d));
  writeFileSync(join(image, 'README'), 'x');
  symlinkSync('usr/bin', join(image, 'bin'));
  afterAll(() => rmSync(image, { recursive: true, force: true }));

  it("binds its top level read-only and recreates its symlinks, leaving what the box provides (and the working directory's top) out", () => {
    const mounts = root({ image });
    const top = mounts.slice(0, mounts.findIndex((m) => m.kind === 'proc'));
    expect(top.sort((a, b) => (a.target < b.target ? -1 : 1))).toEqual([
      { kind: 'bind', source: join(image, 'README'), target: '/README', readOnly: true, noSuid: true, noDev: true },
      { kind: 'symlink', target: '/bin', data: 'usr/bin' },
      { kind: 'bind', source: join(image, 'etc'), target: '/etc', readOnly: true, noSuid: true, noDev: true },
      { kind: 'bind', source: join(image, 'usr'), target: '/usr', readOnly: true, noSuid: true, noDev: true },
    ]);
  });

  it("writable: the init's overlay is the root, so nothing of the image is bound and the working directory is a plain dir", () => {
    const mounts = root({ image, writable: true });
    expect(mounts.some((m) => m.kind === 'bind' && m.source.startsWith(image))).toBe(false);
    expect(at(mounts, '/work')).toEqual([{ kind: 'dir', target: '/work', mode: 0o755, programOwned: true }]);
  });
});
