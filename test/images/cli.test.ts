// sandcell image import|ls|rm|prune|build and sandcell run --image NAME, as a user types them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';
import { buildImage, type Image } from '../helpers/images.js';
import { buildahConfigured, buildahTwoLayer, tempStore, type ConfiguredImages, type TempStore, type ToolImages } from './helpers.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

let t: TempStore;
let base: Image;
let images: ToolImages;
let configured: ConfiguredImages;
let work: string;

function sandcell(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, SANDCELL_STORE: t.root } });
}

beforeAll(() => {
  requireRoot();
  t = tempStore();
  base = buildImage();
  images = buildahTwoLayer();
  configured = buildahConfigured(['app']);
  work = mkdtempSync(join(tmpdir(), 'sandcell-image-cli-'));
}, 120_000);
afterAll(() => {
  configured?.remove();
  images?.remove();
  base?.remove();
  t?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('sandcell image', () => {
  it('import shows progress per layer on stderr and prints the id; ls lists it; run --image runs it by name', () => {
    const imp = sandcell('image', 'import', images.dockerArchive, '--name', 'two');
    expect(imp.status).toBe(0);
    expect(imp.stderr).toContain('(docker-archive)');
    expect(imp.stderr).toMatch(/layer 1\/2 [0-9a-f]{12}: /);
    expect(imp.stderr).toMatch(/layer 2\/2 [0-9a-f]{12}: /);
    expect(imp.stdout).toMatch(/^sha256:[0-9a-f]{64} /);
    const ls = sandcell('image', 'ls');
    expect(ls.stdout.split('\n')[0]).toMatch(/^NAME\s+ID\s+LAYERS\s+SIZE\s+CREATED$/);
    expect(ls.stdout).toMatch(/\ntwo\s+[0-9a-f]{12}\s+2\s/);
    const r = sandcell('run', '--image', 'two', '--', '/bin/sh', '-c', 'cat /opq/c.txt; echo $FOO');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('c\nbar\n');
    expect(r.status).toBe(0);
  });

  it('build runs a recipe (as rootfs/*.sh take it) into an image; its output is shown', () => {
    const recipe = join(work, 'recipe.sh');
    writeFileSync(recipe, `set -eu\ncp -a ${base.dir}/. "$1"/\necho "made with $2"\n`);
    const b = sandcell('image', 'build', recipe, '--name', 'built', '--', 'an-argument');
    expect(b.stderr).toContain('| made with an-argument');
    expect(b.status).toBe(0);
    // The recipe left its files owned by 100000 (the box's root), as rootfs/busybox.sh does: root's again in the box.
    const r = sandcell('run', '--image', 'built', '--', '/bin/ls', '-ln', '/etc/passwd');
    expect(r.stdout).toMatch(/^-rw-r--r-- 1 0 0 /);
    const failing = join(work, 'fails.sh');
    writeFileSync(failing, 'exit 3\n');
    const f = sandcell('image', 'build', failing, '--name', 'never');
    expect(f.status).toBe(1);
    expect(f.stderr).toContain('exited with status 3');
  });

  it('rm by name, prune removes the layers no image uses; errors name what is wrong', () => {
    expect(sandcell('image', 'rm', 'built').status).toBe(0);
    const p = sandcell('image', 'prune');
    expect(p.stdout).toMatch(/^removed 1 layer, /);
    expect(sandcell('image', 'ls').stdout).not.toContain('built');
    const missing = sandcell('image', 'rm', 'built');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no image "built"');
    const bad = sandcell('run', '--image', 'built', '--', '/bin/true');
    expect(bad.status).toBe(125);
    expect(bad.stderr).toContain('image: no image "built"');
    expect(sandcell('image', '--help').stdout).toContain('sandcell image import');
  });

  it('run --image NAME as docker run: no operands run Entrypoint + Cmd, operands replace Cmd, --entrypoint replaces both', () => {
    expect(sandcell('image', 'import', configured.archives.app, '--name', 'app', '--quiet').status).toBe(0);
    const d = sandcell('run', '--image', 'app');
    expect(d.stderr).toBe('');
    expect(d.stdout).toBe('args: from-cmd\nUid: 1000\nGid: 1000\n/app\nGREETING=hi\n');
    expect(sandcell('run', '--image', 'app', '--', 'a', 'b').stdout).toContain('args: a b\n');
    expect(sandcell('run', '--image', 'app', '--entrypoint', '/bin/cat', '--', '/app/entry.sh').stdout).toMatch(/^echo "args: \$\*"/);
    expect(sandcell('run', '--image', 'app', '--entrypoint=', '--', '/bin/sh', '-c', 'echo whole').stdout).toBe('whole\n');
    const none = sandcell('run', '--env', 'A=1');
    expect(none.status).toBe(125);
    expect(none.stderr).toContain('no command given');
  });
});
