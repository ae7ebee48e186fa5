// Collecting from a box that holds a hundred thousand entries: the work is bounded (directory
// entries read, files considered), every cut is reported under its pattern, what is collected is
// right, and every read of the box's files is made off the event loop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NativeBox, NativeSpawned } from '../../src/native.js';
import { Sandbox } from '../../src/index.js';
import { collectFiles, DEFAULT_COLLECT_LIMITS } from '../../src/supervise/collect.js';
import { childPids, requireRoot } from '../helpers/host.js';

let box: Sandbox;

// 100,000 hard links of one file in one directory, and 100,000 more below 2,500 directories
// (flat/1..100000, n/a<i>/b<j>/f<k>): names only, one inode.
const MAKE = `
  open(my $f, ">", "one") or die; print $f "x"; close $f;
  mkdir "flat"; mkdir "n";
  link("one", "flat/$_") or die for 1 .. 100000;
  for my $i (0 .. 49) { mkdir "n/a$i"; for my $j (0 .. 49) { mkdir "n/a$i/b$j"; link("one", "n/a$i/b$j/f$_") or die for 0 .. 39 } }
`;

beforeAll(async () => {
  requireRoot();
  // 200,000 links are more than the working dir's default inode count (a tmpfs charges each link
  // as an inode): its bounds are lifted for this box, whose memory limit still holds.
  box = await Sandbox.create({ limits: { memory: '512MiB', wallTime: '60s', tmpfs: null } });
  const r = await box.run({ command: ['/usr/bin/perl', '-e', MAKE], limits: { wallTime: '60s' } });
  expect(r.status, r.stderr).toBe('ok');
});

afterAll(async () => {
  await box?.destroy();
});

/** The box's native handle, with every directory entry it hands back counted. */
function counted(): { native: NativeBox; read: { entries: number; lists: number; files: number } } {
  const inner = (box as unknown as { box: { native: NativeSpawned } }).box.native.box;
  const read = { entries: 0, lists: 0, files: 0 };
  const native = {
    listDir: async (dir: string, name: string, max: number) => {
      const l = await inner.listDir(dir, name, max);
      read.lists++;
      read.entries += l.dirs.length;
      return l;
    },
    readFile: async (dir: string, name: string, max: number) => {
      read.files++;
      return inner.readFile(dir, name, max);
    },
  } as NativeBox;
  return { native, read };
}

describe('collect from a box full of entries', () => {
  it('a glob over 100,000 entries reads at most the entry limit, considers at most the file limit, says so', async () => {
    const { native, read } = counted();
    const c = await collectFiles(native, '/work', ['flat/*'], DEFAULT_COLLECT_LIMITS);
    expect(read.entries).toBeLessThanOrEqual(DEFAULT_COLLECT_LIMITS.entries);
    expect(read.files).toBe(DEFAULT_COLLECT_LIMITS.files);
    expect(Object.keys(c.files)).toHaveLength(DEFAULT_COLLECT_LIMITS.files);
    for (const data of Object.values(c.files)) expect(data.toString()).toBe('x');
    expect(c.errors['flat/*']).toMatch(/limit of 20000 directory entries .*; the limit of 1000 files was reached: 19000 more/);
  });

  it('a nested glob (*/*/*) stops at the entry limit, over all patterns together', async () => {
    const { native, read } = counted();
    const limits = { ...DEFAULT_COLLECT_LIMITS, entries: 5000, files: 100_000 };
    const c = await collectFiles(native, '/work', ['n/*/*/*', 'n/a1/*/*'], limits);
    expect(read.entries).toBeLessThanOrEqual(5000);
    // The first pattern spent the budget: the second reads nothing more.
    expect(c.errors['n/*/*/*']).toMatch(/limit of 5000 directory entries/);
    expect(c.errors['n/a1/*/*']).toMatch(/limit of 5000 directory entries/);
    const names = Object.keys(c.files);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(name).toMatch(/^n\/a\d+\/b\d+\/f\d+$/);
    expect(read.files).toBe(names.length);
  });

  it('within the limits the result is complete and exact', async () => {
    const { native, read } = counted();
    const c = await collectFiles(native, '/work', ['n/a7/b3/*', 'n/a7/b3/f1', 'one', 'missing', 'n/*/b99/*'], DEFAULT_COLLECT_LIMITS);
    expect(Object.keys(c.files).sort()).toEqual(['one', ...Array.from({ length: 40 }, (_, k) => `n/a7/b3/f${k}`)].sort());
    expect(c.errors).toEqual({ missing: 'does not exist', 'n/*/b99/*': 'no file matched' });
    // 'n/*/b99/*' lists n (50 entries) and, for each a<i>, nothing: b99 does not exist.
    expect(read.entries).toBe(40 + 50);
  });

  it('a box file named __proto__ is an ordinary key of the result', async () => {
    await box.run({ command: ['/bin/sh', '-c', 'mkdir -p p && echo -n y > p/__proto__'] });
    const c = await box.collect(['*'], '/work/p');
    expect(Object.keys(c.files)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(c.files)).toBe(Object.prototype);
    expect(c.files['__proto__']?.toString()).toBe('y');
  });

  it('run({ collect }) in the box reports each cut in fileErrors; the box is read off the event loop', async () => {
    const r = await box.run({ command: ['/bin/true'], collect: ['flat/*', 'n/*/*/*'] });
    expect(r.status).toBe('ok');
    expect(Object.keys(r.files ?? {})).toHaveLength(DEFAULT_COLLECT_LIMITS.files);
    expect(r.fileErrors?.['flat/*']).toMatch(/limit of 20000 directory entries.*limit of 1000 files/);
    expect(r.fileErrors?.['n/*/*/*']).toMatch(/^not fully matched: the limit of 20000 directory entries/);
    // Each listing and read is a promise settled from a libuv worker thread.
    const inner = (box as unknown as { box: { native: NativeSpawned } }).box.native.box;
    const listing = inner.listDir('/work', 'n', 10);
    const reading = inner.readFile('/work', 'one', 10);
    expect(listing).toBeInstanceOf(Promise);
    expect(reading).toBeInstanceOf(Promise);
    const l = await listing;
    expect(l.truncated).toBe(true);
    expect(l.dirs).toEqual(Buffer.alloc(10, 1));
    expect(l.names.split('\0').slice(0, -1).sort()).toHaveLength(10);
    for (const name of l.names.split('\0').slice(0, -1)) expect(name).toMatch(/^a\d+$/);
    expect((await reading).toString()).toBe('x');
  });

  it('leaves no box behind', async () => {
    await box.destroy();
    expect(await childPids()).toEqual([]);
  });
});
