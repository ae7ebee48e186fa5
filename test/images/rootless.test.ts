// Without root: the store is under the user's data dir; whiteouts and opaque directories are
// made unprivileged; the image runs in a rootless box, its files the box root's.
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';
import { buildahTwoLayer, type ToolImages } from './helpers.js';

const DIST = new URL('../../dist/', import.meta.url).pathname;

let images: ToolImages;
let home: string;

beforeAll(() => {
  requireRoot();
  images = buildahTwoLayer();
  home = mkdtempSync(join(tmpdir(), 'sandcell-rootless-home-'));
  chownSync(home, 65534, 65534);
}, 120_000);
afterAll(() => {
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
});
