// Images made by buildah/skopeo/umoci, imported in every format they write, run by name.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ImageInfo } from '../../src/images/index.js';
import { run, Sandbox } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { snapshot } from '../helpers/images.js';
import { buildahTwoLayer, sh, tempStore, type TempStore, type ToolImages } from './helpers.js';

let images: ToolImages;
let t: TempStore;
let image: ImageInfo;
const events: string[] = [];
beforeAll(async () => {
  requireRoot();
  images = buildahTwoLayer();
  t = tempStore();
  image = await t.store.import(images.dockerArchive, { onProgress: (e) => events.push(e.type) });
}, 120_000);
afterAll(() => {
  t?.remove();
  images?.remove();
});

/** What `ls -1aR` shows of these dirs, relative to `cwd` (the same command as inside the box). */
const LISTED = ['data', 'opq', 'bin', 'etc'];

describe('images made by real tools', () => {
  it('a docker-archive from buildah: layer 2 deleted a file and made a directory opaque; the box shows what umoci unpacks', async () => {
    expect(image.format).toBe('docker-archive');
    expect(image.layers).toHaveLength(2);
    expect(image.names).toContain('docker.io/sandcell/two:1');
    expect(events).toContain('layer-done');
    expect(events.filter((e) => e === 'layer-done')).toHaveLength(2);
    expect(events.at(-1)).toBe('done');

    const r = await run({ image: 'docker.io/sandcell/two:1', cwd: '/', command: ['/bin/sh', '-c', `ls -1aR ${LISTED.join(' ')}; cat /opq/c.txt /data/keep.txt`] });
    expect(r.stderr).toBe('');
    expect(r.status).toBe('ok');
    const expected = sh('ls', ['-1aR', ...LISTED], { cwd: images.unpacked });
    expect(r.stdout).toBe(`${expected}c\nkeep\n`);
    expect(r.stdout).not.toContain('gone.txt');
    expect(r.stdout).not.toContain('a.txt');
  });

  it("the config's Env and WorkingDir are the run's defaults; env and cwd given win", async () => {
    const r = await run({ image: 'docker.io/sandcell/two:1', command: ['/bin/sh', '-c', 'echo $FOO; pwd'] });
    expect(r.stdout).toBe('bar\n/srv\n');
    const own = await run({ image: 'docker.io/sandcell/two:1', env: { FOO: 'mine' }, cwd: '/work', command: ['/bin/sh', '-c', 'echo $FOO; pwd'] });
    expect(own.stdout).toBe('mine\n/work\n');
  });

  it('the oci-archive and the OCI layout of the same image are the same image, its layers stored once', async () => {
    const a = await t.store.import(images.ociArchive);
    const b = await t.store.import(images.ociLayout, { names: ['two-layout'] });
    const d = t.store.get('docker.io/sandcell/two:1')!;
    expect(a.format).toBe('oci-archive');
    expect(b.format).toBe('oci-layout');
    expect(a.id).toBe(d.id);
    expect(b.id).toBe(d.id);
    expect(readdirSync(join(t.root, 'layers'))).toHaveLength(2);
    expect(t.store.get('two-layout')!.names).toEqual(expect.arrayContaining(['docker.io/sandcell/two:1', 'two', 'two-layout']));
    const r = await run({ image: 'two-layout', command: ['/bin/cat', '/opq/c.txt'] });
    expect(r.stdout).toBe('c\n');
    // The docker-archive unpacked by hand (as `docker save | tar x` leaves it) is the same image too.
    const dir = join(images.work, 'docker-dir');
    mkdirSync(dir);
    sh('tar', ['-xf', images.dockerArchive, '-C', dir]);
    const d2 = await t.store.import(dir);
    expect(d2.format).toBe('docker-archive');
    expect(d2.id).toBe(d.id);
  });

  it("files are owned by the ids mapped into the box: root's by its root, nobody's by the program (65534)", async () => {
    const r = await run({ image: 'docker.io/sandcell/two:1', command: ['/bin/ls', '-ln', '/data/keep.txt', '/data/nobody.txt', '/bin/sh'] });
    const owners = r.stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(2, 4).join(':'));
    // ls sorts: /bin/sh, /data/keep.txt, /data/nobody.txt.
    expect(owners).toEqual(['0:0', '0:0', '65534:65534']);
    // The program (65534) may write its own file, not root's (both mode 644).
    const w = await run({
      image: 'docker.io/sandcell/two:1',
      writable: true,
      command: ['/bin/sh', '-c', 'echo more >> /data/nobody.txt && echo ok; { echo more >> /data/keep.txt; } 2>/dev/null || echo refused'],
    });
    expect(w.stderr).toBe('');
    expect(w.stdout).toBe('ok\nrefused\n');
  });

  it('read-only unless writable; a writable box changes only its own upper layer', async () => {
    const before = snapshot(join(t.root, 'layers'));
    const ro = await run({ image: 'docker.io/sandcell/two:1', user: { uid: 0, gid: 0 }, command: ['/bin/sh', '-c', 'touch /data/new 2>/dev/null; echo $?'] });
    expect(ro.stdout).not.toBe('0\n');
    const box = await Sandbox.create({ image: 'docker.io/sandcell/two:1', writable: true, user: { uid: 0, gid: 0 } });
    try {
      const w = await box.run({ command: ['/bin/sh', '-c', 'rm /data/keep.txt && echo x > /opq/new && ls /data; ls /opq'] });
      expect(w.stdout).toBe('nobody.txt\nc.txt\nnew\n');
    } finally {
      await box.destroy();
    }
    expect(snapshot(join(t.root, 'layers'))).toBe(before);
  });
});
