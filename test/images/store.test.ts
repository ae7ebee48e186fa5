// The store: digests verified, layers shared, rm by name, prune of unreferenced layers only,
// concurrent imports, an import killed half-way leaving nothing, names vs paths in `image`.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ImageError, ImageStore } from '../../src/images/index.js';
import { run, SandboxOptionsError } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { buildImage, type Image } from '../helpers/images.js';
import { tarOf } from './tar.js';
import { tempStore, type TempStore } from './helpers.js';

let t: TempStore;
let work: string;
let base: Image;

beforeAll(() => {
  requireRoot();
  t = tempStore();
  work = mkdtempSync(join(tmpdir(), 'sandcell-store-test-'));
  base = buildImage();
});
afterAll(() => {
  t?.remove();
  base?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function blobWriter(dir: string): (b: Buffer) => string {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  return (b: Buffer): string => {
    const d = sha(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return d;
  };
}

/** A manifest (and its config and layers) written as blobs; its digest and size. */
function manifestBlob(put: (b: Buffer) => string, layers: Buffer[]): { digest: string; size: number } {
  const layerDescs = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: put(l), size: l.length }));
  const config = Buffer.from(JSON.stringify({ created: '2026-01-01T00:00:00Z', config: { Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: layers.map(sha) } }));
  const configDigest = put(config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length }, layers: layerDescs }));
  return { digest: put(manifest), size: manifest.length };
}

/** An OCI layout by hand: layers given as uncompressed tars, bottom first. */
function layout(dir: string, layers: Buffer[], ref: string): string {
  const put = blobWriter(dir);
  const { digest: m, size } = manifestBlob(put, layers);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m, size, annotations: { 'org.opencontainers.image.ref.name': ref } }] }));
  return dir;
}

const layerA = tarOf([{ name: 'shared/', type: '5' }, { name: 'shared/a', data: 'a\n' }]);
const layerB = tarOf([{ name: 'b', data: 'b\n' }]);
const layerC = tarOf([{ name: 'c', data: 'c\n' }]);

describe('the image store', () => {
  it('a blob whose bytes do not match its digest is refused; nothing is stored', async () => {
    const dir = layout(join(work, 'bad'), [layerA, layerB], 'bad');
    const blob = join(dir, 'blobs', 'sha256', sha(layerB).slice(7));
    writeFileSync(blob, tarOf([{ name: 'b', data: 'evil\n' }]));
    const e = await t.store.import(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImageError);
    expect((e as ImageError).code).toBe('DIGEST_MISMATCH');
    expect((e as ImageError).message).toContain(sha(layerB));
    expect(t.store.list()).toEqual([]);
    expect(readdirSync(join(t.root, 'layers'))).toEqual([]);
    expect(readdirSync(join(t.root, 'tmp'))).toEqual([]);
  });

  it('two images with a common base share its layer; rm by name; prune removes only unreferenced layers', async () => {
    const one = await t.store.import(layout(join(work, 'one'), [layerA, layerB], 'one'));
    const two = await t.store.import(layout(join(work, 'two'), [layerA, layerC], 'two'));
    expect(one.names).toEqual(['one']);
    expect(two.layers[0]).toBe(one.layers[0]);
    expect(readdirSync(join(t.root, 'layers')).sort()).toEqual([sha(layerA), sha(layerB), sha(layerC)].map((d) => d.slice(7)).sort());
    expect((await t.store.prune()).layers).toEqual([]);

    await t.store.remove('one');
    expect(t.store.get('one')).toBeNull();
    await expect(t.store.remove('one')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const pruned = await t.store.prune();
    expect(pruned.layers).toEqual([sha(layerB)]);
    expect(readdirSync(join(t.root, 'layers')).sort()).toEqual([sha(layerA), sha(layerC)].map((d) => d.slice(7)).sort());
    const r = await run({ image: 'two', cwd: '/', command: ['/bin/ls'] }).catch((x: unknown) => x);
    // The image has no programs; the box is built, the command is not found.
    expect(String((r as Error).message ?? r)).toMatch(/execve|ENOENT/);
  });

  it('concurrent imports of the same image are safe: one copy of each layer, one record', async () => {
    const dir = layout(join(work, 'same'), [layerA, tarOf([{ name: 'd', data: 'd\n' }])], 'same');
    const [a, b, c] = await Promise.all([t.store.import(dir), t.store.import(dir), t.store.import(dir)]);
    expect(new Set([a.id, b.id, c.id]).size).toBe(1);
    expect(t.store.list().filter((i) => i.id === a.id)).toHaveLength(1);
    expect(readdirSync(join(t.root, 'tmp'))).toEqual([]);
    for (const l of a.layers) expect(statSync(join(t.root, 'layers', l.slice(7), 'root')).isDirectory()).toBe(true);
  });

  it('an import killed half-way leaves no image and no layer; its leftovers go with the next import', async () => {
    // A large single-layer tarball, imported by a process killed while it unpacks.
    const big = join(work, 'big.tar');
    writeFileSync(big, tarOf(Array.from({ length: 200 }, (_, i) => ({ name: `f${i}`, data: Buffer.alloc(256 << 10, i) as unknown as string }))));
    const before = readdirSync(join(t.root, 'layers')).sort();
    const script = `import { ImageStore } from ${JSON.stringify(new URL('../../dist/images/index.js', import.meta.url).pathname)};
      new ImageStore(${JSON.stringify(t.root)}).import(${JSON.stringify(big)}, { names: ['killed'], onProgress: (e) => { if (e.type === 'bytes' && e.bytes > (10 << 20)) process.stdout.write('go\\n'); } });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(readdirSync(join(t.root, 'tmp')).length).toBe(1);
    expect(t.store.get('killed')).toBeNull();
    expect(readdirSync(join(t.root, 'layers')).sort()).toEqual(before);
    await t.store.import(layout(join(work, 'after'), [layerC], 'after'));
    expect(readdirSync(join(t.root, 'tmp'))).toEqual([]);
  });

  it("a multi-platform index: this machine's image is the one imported", async () => {
    const dir = join(work, 'multi');
    const put = blobWriter(dir);
    const here = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const other = here === 'arm64' ? 'amd64' : 'arm64';
    const mine = manifestBlob(put, [tarOf([{ name: 'arch', data: `${here}\n` }])]);
    const theirs = manifestBlob(put, [tarOf([{ name: 'arch', data: `${other}\n` }])]);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...theirs, platform: { os: 'linux', architecture: other } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...mine, platform: { os: 'linux', architecture: here } },
        ],
      }),
    );
    const i = put(index);
    writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: i, size: index.length, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }] }));
    const image = await t.store.import(dir);
    expect(image.names).toEqual(['multi']);
    expect(readFileSync(join(t.root, 'layers', image.layers[0]!.slice(7), 'root', 'arch'), 'utf8')).toBe(`${here}\n`);
  });

  it('a directory and a rootfs tarball import as one-layer images that run', async () => {
    const fromDir = await t.store.import(base.dir, { names: ['base-dir'] });
    expect(fromDir.format).toBe('directory');
    const r = await run({ image: 'base-dir', command: ['/bin/sh', '-c', 'ls /; echo $PATH'] });
    expect(r.status).toBe('ok');
    expect(r.stdout).toContain('bin\n');
    const tgz = join(work, 'rootfs.tar.gz');
    const { execFileSync } = await import('node:child_process');
    execFileSync('tar', ['-czf', tgz, '-C', base.dir, '.']);
    const fromTar = await t.store.import(tgz, { names: ['base-tar'] });
    expect(fromTar.format).toBe('rootfs-tar');
    const r2 = await run({ image: 'base-tar', command: ['/bin/cat', '/etc/passwd'] });
    expect(r2.stdout).toBe(readFileSync(join(base.dir, 'etc', 'passwd'), 'utf8'));
  });

  it("`image` is a path when it starts with '/', a stored image's name otherwise; '.' and unknown names are refused by field", async () => {
    const dir = await run({ image: base.dir, command: ['/bin/cat', '/etc/group'] });
    expect(dir.status).toBe('ok');
    for (const [image, message] of [
      ['./rootfs', "names never start with '.' or '/'"],
      ['no-such-image', 'no image "no-such-image" in the image store'],
    ] as const) {
      const e = await run({ image, command: ['/bin/true'] }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SandboxOptionsError);
      expect((e as SandboxOptionsError).path).toBe('image');
      expect((e as SandboxOptionsError).message).toContain(message);
    }
    await expect(new ImageStore(t.root).import(base.dir, { names: ['/abs'] })).rejects.toMatchObject({ code: 'BAD_NAME' });
    await expect(new ImageStore(t.root).import(base.dir, { names: ['.hidden'] })).rejects.toMatchObject({ code: 'BAD_NAME' });
  });
});
