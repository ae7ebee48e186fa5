// Without root: the store is under the user's data dir; whiteouts and opaque directories are
// made unprivileged; the image runs in a rootless box, its files the box root's.
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';
import { buildahConfigured, buildahTwoLayer, type ConfiguredImages, type ToolImages } from './helpers.js';

const DIST = new URL('../../dist/', import.meta.url).pathname;

let images: ToolImages;
let configured: ConfiguredImages;
let home: string;

beforeAll(() => {
  requireRoot();
  images = buildahTwoLayer();
  configured = buildahConfigured(['app']);
  chownSync(configured.work, 65534, 65534);
  home = mkdtempSync(join(tmpdir(), 'sandcell-rootless-home-'));
  chownSync(home, 65534, 65534);
}, 120_000);
afterAll(() => {
  configured?.remove();
  images?.remove();
  if (home) rmSync(home, { recursive: true, force: true });
});

function asNobody(script: string) {
  const code = `import { run } from ${JSON.stringify(join(DIST, 'index.js'))};
import { ImageStore } from ${JSON.stringify(join(DIST, 'images', 'index.js'))};
${script}`;
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home };
  return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000, env });
}

describe('images without root', () => {
  it("imports into ~/.local/share/sandcell and runs the image: layer 2's whiteout and opaque directory hold", () => {
    const r = asNobody(`
      const store = new ImageStore();
      const image = await store.import(${JSON.stringify(images.dockerArchive)}, { names: ['mine'] });
      const r = await run({ image: 'mine', command: ['/bin/sh', '-c', 'ls /data; echo --; ls /opq; echo --; ls -ln /data/keep.txt'] });
      console.log(JSON.stringify({ root: store.root, layers: image.layers.length, r }));`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { root: string; layers: number; r: { status: string; stdout: string; stderr: string } };
    expect(out.root).toBe(join(home, '.local', 'share', 'sandcell'));
    expect(out.layers).toBe(2);
    expect(out.r.stderr).toBe('');
    expect(out.r.status).toBe('ok');
    const [data, opq, owner] = out.r.stdout.split('--\n');
    expect(data).toBe('keep.txt\nnobody.txt\n');
    expect(opq).toBe('c.txt\n');
    // The caller's files are the rootless box's root's.
    expect(owner).toMatch(/^-rw-r--r-- 1 0 0 /);
    expect(existsSync(join(out.root, 'layers'))).toBe(true);
    expect(readdirSync(join(out.root, 'tmp'))).toEqual([]);
  });

  it("an image's User other than 0 is refused naming the image and the field; as the box's root its Entrypoint, Cmd and WorkingDir apply", () => {
    const r = asNobody(`
      import { SandboxOptionsError } from ${JSON.stringify(join(DIST, 'index.js'))};
      await new ImageStore().import(${JSON.stringify(configured.archives.app)}, { names: ['app'] });
      const refused = await run({ image: 'app' }).then(() => null, (e) => e instanceof SandboxOptionsError ? e.issues : String(e));
      const asRoot = await run({ image: 'app', user: { uid: 0, gid: 0 } });
      console.log(JSON.stringify({ refused, asRoot }));`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { refused: unknown; asRoot: { stdout: string; stderr: string } };
    expect(out.refused).toEqual([
      { path: 'image', message: 'image "app": config User "app" is 1000:1000, and a box without root maps only 0 (give user: { uid: 0, gid: 0 })' },
    ]);
    expect(out.asRoot.stderr).toBe('');
    expect(out.asRoot.stdout).toBe('args: from-cmd\nUid: 0\nGid: 0\n/app\nGREETING=hi\n');
  });
});
