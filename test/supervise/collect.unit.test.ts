// Reading files back out of a box: patterns expanded segment by segment (`*` and `?` never cross
// '/', only files at the end, only directories on the way), per-file and total limits, each
// refusal with its reason, and no pattern that could leave the working directory asked for at all.
import { constants } from 'node:os';

import { describe, expect, it } from 'vitest';

import type { NativeBox } from '../../src/native.js';
import { collectFiles } from '../../src/supervise/collect.js';

const SYMLINK = Symbol('symlink');
const FIFO = Symbol('fifo');
type Node = string | typeof SYMLINK | typeof FIFO | { [name: string]: Node };

const errnoError = (code: keyof typeof constants.errno): Error => Object.assign(new Error(code), { errno: constants.errno[code] });

/** A box's working directory in memory, answering as the native side does; it records what was asked. */
function fakeBox(tree: { [name: string]: Node }) {
  const asked: string[] = [];
  const find = (path: string): Node | undefined =>
    path === '' ? tree : path.split('/').reduce<Node | undefined>((n, part) => (typeof n === 'object' ? n[part] : undefined), tree);
  const box = {
    async listDir(dir: string, name: string, maxEntries: number) {
      asked.push(`list ${dir} ${name}`);
      const node = find(name);
      if (!node || typeof node !== 'object') throw errnoError('ENOTDIR');
      const entries = Object.entries(node);
      const kept = entries.slice(0, maxEntries);
      return {
        names: kept.map(([n]) => `${n}\0`).join(''),
        dirs: Buffer.from(kept.map(([, v]) => (typeof v === 'object' ? 1 : 0))),
        truncated: entries.length > maxEntries,
      };
    },
    async readFile(dir: string, name: string, maxBytes: number) {
      asked.push(`read ${dir} ${name}`);
      const node = find(name);
      if (node === undefined) throw errnoError('ENOENT');
      if (node === SYMLINK) throw errnoError('ELOOP');
      if (typeof node !== 'string') throw errnoError('EINVAL');
      if (node.length > maxBytes) throw errnoError('EFBIG');
      return Buffer.from(node);
    },
  } as unknown as NativeBox;
  return { box, asked };
}

const LIMITS = { perFileBytes: 1000, totalBytes: 10_000, entries: 1000, files: 1000 };
const tree: { [name: string]: Node } = {
  'a.txt': 'A',
  'b.txt': 'B',
  'bc.txt': 'BC',
  'notes.md': 'N',
  'dir.txt': { inner: 'I' },
  'dataXtxt': 'D',
  out: { run1: { 'x.log': 'X1', 'y.dat': 'Y' }, run2: { 'x.log': 'X2' }, 'top.log': 'T' },
  link: SYMLINK,
  fifo: FIFO,
};
const names = async (patterns: string[]) => Object.keys((await collectFiles(fakeBox(tree).box, '/work', patterns, LIMITS)).files);

describe('collectFiles: patterns', () => {
  it('reads named files, with their contents', async () => {
    const c = await collectFiles(fakeBox(tree).box, '/work', ['a.txt', 'out/run1/x.log'], LIMITS);
    expect(c.files).toEqual({ 'a.txt': Buffer.from('A'), 'out/run1/x.log': Buffer.from('X1') });
    expect(c.errors).toEqual({});
  });

  it("'*' matches files of one directory only: not directories, not across '/', '.' taken literally", async () => {
    expect(await names(['*.txt'])).toEqual(['a.txt', 'b.txt', 'bc.txt']);
  });

  it("'?' matches exactly one character", async () => {
    expect(await names(['?.txt'])).toEqual(['a.txt', 'b.txt']);
  });

  it('a glob on the way matches directories only, and the walk goes on below each', async () => {
    expect(await names(['out/*/x.log'])).toEqual(['out/run1/x.log', 'out/run2/x.log']);
    expect(await names(['*/*/*.log'])).toEqual(['out/run1/x.log', 'out/run2/x.log']);
  });

  it('a file named by two patterns is read once', async () => {
    const { box, asked } = fakeBox(tree);
    await collectFiles(box, '/work', ['a.txt', '*.txt'], LIMITS);
    expect(asked.filter((a) => a === 'read /work a.txt')).toHaveLength(1);
  });

  it('a pattern that matches nothing is reported as such', async () => {
    expect((await collectFiles(fakeBox(tree).box, '/work', ['*.csv', 'nodir/*.log'], LIMITS)).errors).toEqual({
      '*.csv': 'no file matched',
      'nodir/*.log': 'no file matched',
    });
  });
});

describe('collectFiles: refusals', () => {
  it("a pattern that could leave the working directory is refused before the box is asked anything", async () => {
    const { box, asked } = fakeBox(tree);
    const c = await collectFiles(box, '/work', ['../etc/passwd', 'out/../../x', '/etc/passwd', 'out//x.log', '*/..'], LIMITS);
    const reason = "must be relative to the working directory, without '..' or empty parts";
    expect(c.errors).toEqual({ '../etc/passwd': reason, 'out/../../x': reason, '/etc/passwd': reason, 'out//x.log': reason, '*/..': reason });
    expect(c.files).toEqual({});
    expect(asked).toEqual([]);
  });

  it('missing files, symbolic links and special files, each with its reason', async () => {
    expect((await collectFiles(fakeBox(tree).box, '/work', ['gone', 'link', 'fifo'], LIMITS)).errors).toEqual({
      gone: 'does not exist',
      link: 'is a symbolic link (not followed)',
      fifo: 'is not a regular file',
    });
  });

  it('a file over the per-file limit is refused; the others are read', async () => {
    const c = await collectFiles(fakeBox(tree).box, '/work', ['*.txt'], { ...LIMITS, perFileBytes: 1, totalBytes: 100 });
    expect(Object.keys(c.files)).toEqual(['a.txt', 'b.txt']);
    expect(c.errors).toEqual({ 'bc.txt': 'is larger than the per-file limit of 1 bytes' });
  });

  it('once the total is spent, what is left is refused naming the remaining total', async () => {
    const c = await collectFiles(fakeBox(tree).box, '/work', ['bc.txt', 'a.txt', 'b.txt'], { ...LIMITS, perFileBytes: 10, totalBytes: 3 });
    expect(Object.keys(c.files)).toEqual(['bc.txt', 'a.txt']);
    expect(c.errors).toEqual({ 'b.txt': 'is larger than the remaining total limit of 0 bytes' });
  });
});

describe('collectFiles: bounded work', () => {
  it('stops reading directories at the entry limit, all patterns together, and says so under each cut pattern', async () => {
    const { box, asked } = fakeBox(tree);
    const c = await collectFiles(box, '/work', ['*.txt', 'out/*/x.log'], { ...LIMITS, entries: 9 });
    // The top directory has 9 entries: the budget is spent, nothing more is listed.
    expect(asked.filter((a) => a.startsWith('list'))).toEqual(['list /work ']);
    expect(Object.keys(c.files)).toEqual(['a.txt', 'b.txt', 'bc.txt']);
    expect(c.errors['out/*/x.log']).toMatch(/^not fully matched: the limit of 9 directory entries/);
  });

  it('considers at most the file limit, and says how many matches were left', async () => {
    const c = await collectFiles(fakeBox(tree).box, '/work', ['*.txt', 'notes.md'], { ...LIMITS, files: 2 });
    expect(Object.keys(c.files)).toEqual(['a.txt', 'b.txt']);
    expect(c.errors).toEqual({
      '*.txt': 'the limit of 2 files was reached: 1 more matched and were not read',
      'notes.md': 'the limit of 2 files was reached: 1 more matched and were not read',
    });
  });
});
