// Boxes on a real root filesystem image instead of the host's /usr.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { BOX_TOP_LEVEL, buildImage, snapshot, type Image } from '../helpers/images.js';

let image: Image;
beforeAll(() => {
  requireRoot();
  image = buildImage();
});
afterAll(() => image?.remove());

describe('images', () => {
  it('runs /bin/sh -c "ls /" in the image, seeing only the image and the box', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'ls /; ls /usr 2>&1; echo x > /work/f && cat /work/f'], image: image.dir, limits: { wallTime: '10s' } });
    expect(r.status).toBe('ok');
    const root = [...new Set([...image.topLevel, ...BOX_TOP_LEVEL])].sort();
    expect(image.topLevel).not.toContain('usr');
    expect(r.stdout.split('\n').slice(0, root.length)).toEqual(root);
    expect(r.stdout).toContain('No such file or directory');
    expect(r.stdout).toContain('x\n');
  });

  it("the image's files, owned by the host id the box's root maps to, belong to root in the box", async () => {
    const r = await run({ command: ['/bin/ls', '-ln', '/etc/passwd'], image: image.dir });
    expect(r.stdout).toMatch(/^-rw-r--r-- 1 0 0 /);
  });

  it('a read-only image cannot be written', async () => {
    const before = snapshot(image.dir);
    const r = await run({ command: ['/bin/sh', '-c', 'rm -rf /bin/ls; echo $?; touch /etc/new; echo $?'], image: image.dir, user: { uid: 0, gid: 0 } });
    expect(r.stdout).not.toContain('0\n0\n');
    expect(snapshot(image.dir)).toBe(before);
  });

  it('a writable box can rm -rf /bin; the image directory is unchanged afterwards', async () => {
    const before = snapshot(image.dir);
    const r = await run({
      // test and echo are shell builtins: they still work once /bin is gone.
      command: ['/bin/sh', '-c', '/bin/rm -rf /bin; test -e /bin && echo still-there || echo gone'],
      image: image.dir,
      writable: true,
      user: { uid: 0, gid: 0 },
      limits: { wallTime: '10s' },
    });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('gone\n');
    expect(snapshot(image.dir)).toBe(before);
    const again = await run({ command: ['/bin/ls', '/bin/ls'], image: image.dir, writable: true });
    expect(again.stdout).toBe('/bin/ls\n');
  });

  it("a writable box's writes count against its memory limit", async () => {
    const r = await run({
      command: ['/bin/sh', '-c', 'dd if=/dev/zero of=/big bs=1M count=200 2>&1; echo rc=$?'],
      image: image.dir,
      writable: true,
      user: { uid: 0, gid: 0 },
      limits: { memory: '64MiB', tmpfs: '1GiB', wallTime: '20s' },
    });
    // Either the kernel's OOM killer ends the box or the write fails: never 200 MiB written.
    expect(['memory-limit', 'ok']).toContain(r.status);
    if (r.status === 'ok') expect(r.stdout).not.toContain('rc=0');
    expect(r.usage.memoryPeakBytes ?? 0).toBeLessThanOrEqual(64 * 1024 * 1024);
  });
});
