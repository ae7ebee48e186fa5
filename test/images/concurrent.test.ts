// Two `sandcell image import` processes of one image at once, into one store: both succeed, and
// the store holds each layer once, one record, nothing half-done; a lock left by a dead process,
// or naming a pid reused since, is taken over by exactly one of them.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { buildahTwoLayer, tempStore, type TempStore, type ToolImages } from './helpers.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

let images: ToolImages;
let t: TempStore;
beforeAll(() => {
  requireRoot();
  images = buildahTwoLayer();
  t = tempStore();
}, 120_000);
afterAll(() => {
  t?.remove();
  images?.remove();
});

function emptyStore(): void {
  rmSync(t.root, { recursive: true, force: true });
  for (const d of ['layers', 'images', 'tmp']) mkdirSync(join(t.root, d), { recursive: true });
}

function importer(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, 'image', 'import', images.dockerArchive, '--name', name, '--quiet'], { env: { ...process.env, SANDCELL_STORE: t.root } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function bothImport(): Promise<void> {
  const [a, b] = await Promise.all([importer('first'), importer('second')]);
  expect(a.stderr).toBe('');
  expect(b.stderr).toBe('');
  expect([a.code, b.code]).toEqual([0, 0]);
  const id = a.stdout.split(' ')[0];
  expect(b.stdout.split(' ')[0]).toBe(id);
  const layers = readdirSync(join(t.root, 'layers'));
  expect(layers).toHaveLength(2);
  for (const l of layers) {
    expect(existsSync(join(t.root, 'layers', l, 'layer.json'))).toBe(true);
    expect(existsSync(join(t.root, 'layers', l, 'root'))).toBe(true);
  }
  expect(readdirSync(join(t.root, 'images'))).toEqual([`${id!.slice(7)}.json`]);
  expect(t.store.get('first')?.names).toEqual(expect.arrayContaining(['first', 'second']));
  expect(readdirSync(join(t.root, 'tmp'))).toEqual([]);
  expect(existsSync(join(t.root, 'lock'))).toBe(false);
  expect(existsSync(join(t.root, 'lock.takeover'))).toBe(false);
}

describe('imports in two processes at once', () => {
  it('both succeed; one copy of each layer, one record with both names, no leftovers (three rounds)', async () => {
    for (let round = 0; round < 3; round++) {
      emptyStore();
      await bothImport();
    }
    const r = await run({ image: 'second', command: ['/bin/cat', '/opq/c.txt'] });
    expect(r.stdout).toBe('c\n');
  }, 180_000);

  it('a lock left by a dead process, or naming a pid now another process\'s, is taken over', async () => {
    emptyStore();
    const dead = spawnSync('/bin/true').pid!;
    writeFileSync(join(t.root, 'lock'), `${dead} 1`);
    await bothImport();
    emptyStore();
    // This process is alive, but started at another time than the lock says: its pid was reused.
    writeFileSync(join(t.root, 'lock'), `${process.pid} 1`);
    await bothImport();
  }, 180_000);
});
