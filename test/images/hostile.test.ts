// Hostile archives, written byte by byte: each is refused (a typed error naming the entry) or
// neutralised; nothing is written outside the store, nothing half-imported stays in it.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ImageArchiveError, ImageError } from '../../src/images/index.js';
import { HOST_ID_BASE } from '../../src/plan/ids.js';
import { requireRoot } from '../helpers/host.js';
import { snapshot } from '../helpers/images.js';
import { gzip, tarOf, type RawEntry } from './tar.js';
import { tempStore, type TempStore } from './helpers.js';

let t: TempStore;
let work: string;
/** A directory outside the store that hostile entries aim at. */
let outside: string;
let outsideBefore: string;

beforeAll(() => {
  requireRoot();
  t = tempStore();
  work = mkdtempSync(join(tmpdir(), 'sandcell-hostile-'));
  outside = join(work, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'target'), 'untouched\n');
  outsideBefore = snapshot(outside);
});
afterEach(() => {
  // Nothing ever lands outside; a refused import leaves no layer, no record, no tmp dir.
  expect(snapshot(outside)).toBe(outsideBefore);
  expect(readdirSync(join(t.root, 'tmp'))).toEqual([]);
});
afterAll(() => {
  t?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

let n = 0;
function archive(entries: RawEntry[], opts: { end?: boolean; gz?: boolean } = {}): string {
  const path = join(work, `a${n++}.tar${opts.gz ? '.gz' : ''}`);
  const tar = tarOf(entries, opts);
  writeFileSync(path, opts.gz ? gzip(tar) : tar);
  return path;
}

async function refused(path: string, code: string, entry: string | null): Promise<ImageArchiveError> {
  const layersBefore = readdirSync(join(t.root, 'layers'));
  const imagesBefore = readdirSync(join(t.root, 'images'));
  const e = await t.store.import(path, { names: ['hostile'] }).then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ImageArchiveError);
  const err = e as ImageArchiveError;
  expect(err.code).toBe(code);
  expect(err.entry).toBe(entry);
  if (entry !== null) expect(err.message).toContain(JSON.stringify(entry));
  expect(readdirSync(join(t.root, 'layers'))).toEqual(layersBefore);
  expect(readdirSync(join(t.root, 'images'))).toEqual(imagesBefore);
  return err;
}

/** Imports and returns the single layer's directory and the warnings. */
async function imported(path: string): Promise<{ root: string; warnings: string[] }> {
  const warnings: string[] = [];
  const image = await t.store.import(path, { onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
  return { root: join(t.root, 'layers', image.layers[0]!.slice(7), 'root'), warnings };
}

const file = (name: string, data = 'x\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra });

describe('hostile archives', () => {
  it("an entry with '..' is refused, naming it", async () => {
    await refused(archive([file('ok'), file('a/../../outside/target')]), 'PARENT_PATH', 'a/../../outside/target');
  });

  it("an absolute path is taken as relative to the layer's root, never the host's", async () => {
    const { root, warnings } = await imported(archive([file(`${outside}/abs`, 'inside\n')]));
    expect(existsSync(join(outside, 'abs'))).toBe(false);
    expect(readFileSync(join(root, outside, 'abs'), 'utf8')).toBe('inside\n');
    expect(warnings.join('\n')).toContain('absolute paths taken as relative');
  });

  it('a symlink followed by a later entry is refused (the entry would be written through it)', async () => {
    await refused(archive([{ name: 'link', type: '2', linkname: outside }, file('link/pwned')]), 'THROUGH_SYMLINK', 'link/pwned');
    await refused(archive([{ name: 'rel', type: '2', linkname: '../../../../../../..' + outside }, file('rel/x/y')]), 'THROUGH_SYMLINK', 'rel/x/y');
  });

  it('a file over a symlink replaces the symlink; its target is not written', async () => {
    const { root } = await imported(archive([{ name: 'f', type: '2', linkname: join(outside, 'target') }, file('f', 'replaced\n')]));
    expect(lstatSync(join(root, 'f')).isFile()).toBe(true);
    expect(readFileSync(join(outside, 'target'), 'utf8')).toBe('untouched\n');
  });

  it('a hard link out of the layer is refused: through .., absolute, through a symlink, or to a file the archive did not write', async () => {
    await refused(archive([{ name: 'h', type: '1', linkname: '../outside/target' }]), 'HARDLINK_OUTSIDE', 'h');
    await refused(archive([{ name: 'h', type: '1', linkname: join(outside, 'target') }]), 'HARDLINK_OUTSIDE', 'h');
    await refused(archive([{ name: 's', type: '2', linkname: outside }, { name: 'h', type: '1', linkname: 's/target' }]), 'THROUGH_SYMLINK', 'h');
  });

  it('a hard link to a file of the same archive is kept', async () => {
    const { root } = await imported(archive([file('a', 'same\n'), { name: 'b', type: '1', linkname: 'a' }]));
    expect(lstatSync(join(root, 'b')).ino).toBe(lstatSync(join(root, 'a')).ino);
  });

  it('device nodes and FIFOs are skipped with a warning naming them', async () => {
    const { root, warnings } = await imported(
      archive([
        { name: 'dev/', type: '5' },
        { name: 'dev/mem', type: '3', devmajor: 1, devminor: 1 },
        { name: 'dev/sda', type: '4', devmajor: 8, devminor: 0 },
        { name: 'fifo', type: '6' },
        file('keep'),
      ]),
    );
    expect(readdirSync(join(root, 'dev'))).toEqual([]);
    expect(existsSync(join(root, 'fifo'))).toBe(false);
    expect(existsSync(join(root, 'keep'))).toBe(true);
    expect(warnings.some((w) => w.includes('dev/mem: CharacterDevice skipped'))).toBe(true);
    expect(warnings.some((w) => w.includes('dev/sda: BlockDevice skipped'))).toBe(true);
  });

  it('setuid and setgid bits are dropped with a warning; owners are mapped into the box', async () => {
    const { root, warnings } = await imported(archive([file('su', '#!/bin/sh\n', { mode: 0o6755, uid: 0 }), file('mine', 'm\n', { mode: 0o2644, uid: 1000, gid: 1000 })]));
    const su = lstatSync(join(root, 'su'));
    expect(su.mode & 0o7777).toBe(0o755);
    expect(lstatSync(join(root, 'mine')).mode & 0o7777).toBe(0o644);
    expect(warnings.filter((w) => w.includes('setuid/setgid bits dropped'))).toHaveLength(2);
    expect([su.uid, su.gid]).toEqual([HOST_ID_BASE, HOST_ID_BASE]);
    expect(lstatSync(join(root, 'mine')).uid).toBe(HOST_ID_BASE + 1001);
  });

  it('a size that lies is refused: data shorter than declared, or longer (its excess is not a header)', async () => {
    await refused(archive([file('a'), { name: 'short', data: 'x'.repeat(100), size: 10_000 }], { end: false }), 'TRUNCATED', 'short');
    await refused(archive([file('a'), { name: 'long', data: 'y'.repeat(1500), size: 10 }]), 'BAD_ARCHIVE', null);
  });

  it('a decompression bomb stops at the bound, naming the archive', async () => {
    const bomb = archive([file('zeros', Buffer.alloc(16 << 20) as unknown as string)], { gz: true });
    expect(readFileSync(bomb).length).toBeLessThan(64 << 10);
    const e = await t.store.import(bomb, { limits: { maxBytes: 2 << 20 } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImageArchiveError);
    expect((e as ImageArchiveError).code).toBe('TOO_LARGE');
    expect((e as ImageArchiveError).message).toContain(bomb);
  });

  it('too many entries stop at the bound; a gzip inside the gzip is refused', async () => {
    const many = archive(Array.from({ length: 50 }, (_, i) => file(`f${i}`)));
    const e = await t.store.import(many, { limits: { maxEntries: 20 } }).catch((x: unknown) => x);
    expect((e as ImageArchiveError).code).toBe('TOO_MANY_ENTRIES');
    const twice = join(work, 'twice.tar.gz');
    writeFileSync(twice, gzip(gzip(tarOf([file('a')]))));
    await refused(twice, 'BAD_ARCHIVE', null);
  });

  it('a zstd layer is refused with an error naming the layer and its media type', async () => {
    const layout = join(work, 'zstd-layout');
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const put = (b: Buffer): string => {
      const d = createHash('sha256').update(b).digest('hex');
      writeFileSync(join(blobs, d), b);
      return `sha256:${d}`;
    };
    const layer = put(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    const config = put(Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } })));
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: layer }],
        }),
      ),
    );
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest }] }));
    const e = await t.store.import(layout).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImageError);
    expect((e as ImageError).code).toBe('UNSUPPORTED_COMPRESSION');
    expect((e as ImageError).message).toContain(layer);
    expect((e as ImageError).message).toContain('application/vnd.oci.image.layer.v1.tar+zstd');
  });
});
