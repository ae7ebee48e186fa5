// Options of the same content resolve once: a run whose options read like an earlier run's takes
// that resolution, with its own input (stdin, signal, files) checked and filled in. Nothing of one
// run may reach another, a changed field is a new resolution, and every refusal is the one a
// fresh resolution gives.
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { resolveOptions } from '../src/options.js';
import { planRun, preparedShape } from '../src/plan/build.js';
import { DEFAULT_OWNER_IDS, setOwnerIds } from '../src/plan/ids.js';
import { refusal } from './helpers/refusal.js';
import { shapeChanges } from './helpers/shapes.js';

const asRoot = (root: boolean): void => {
  vi.spyOn(process, 'geteuid').mockReturnValue(root ? 0 : 1000);
  vi.spyOn(process, 'getegid').mockReturnValue(root ? 0 : 1000);
};
afterEach(() => {
  vi.restoreAllMocks();
  setOwnerIds(DEFAULT_OWNER_IDS);
});

/** `body` with a fresh host directory as a bind source (as root), and run options binding it; removed after. */
function withBindSource(body: (source: string, options: () => object) => void): void {
  asRoot(true);
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-shape-'));
  const source = join(dir, 'data');
  mkdirSync(source);
  try {
    body(source, () => ({ command: ['/bin/true'], binds: [{ source }] }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('resolveOptions by content', () => {
  it('options of the same content share one resolution; each run keeps its own stdin, signal and files', () => {
    asRoot(true);
    const signal = new AbortController().signal;
    const a = resolveOptions({ command: ['/bin/cat'], env: { A: '1' }, stdin: 'first', signal, files: { 'in.txt': 'secret' } });
    const b = resolveOptions({ command: ['/bin/cat'], env: { A: '1' } });
    expect(b.shape).not.toBeNull();
    expect(b.shape).toBe(a.shape);
    expect(a).toMatchObject({ stdin: 'first', signal, files: [{ name: 'in.txt', data: Buffer.from('secret'), mode: 0o644 }] });
    expect(b).toMatchObject({ stdin: null, signal: null, files: [] });
    const stream = new PassThrough();
    const c = resolveOptions({ command: ['/bin/cat'], env: { A: '1' }, stdin: stream, files: { 'x/y': { data: new Uint8Array([1]), mode: 0o600 } } });
    expect(c.stdin).toBe(stream);
    expect(c.files).toEqual([{ name: 'x/y', data: Buffer.from([1]), mode: 0o600 }]);
    // What a fresh resolution of the same options gives, field for field.
    const { shape: _s, ...fresh } = resolveOptions({ command: ['/bin/cat'], env: { A: '1' }, cwd: '/work' });
    const { shape: _b, ...shared } = b;
    expect(shared).toEqual(fresh);
  });

  it('a shared resolution is frozen: one run cannot change the next one', () => {
    asRoot(true);
    const a = resolveOptions({ command: ['/bin/true'], limits: { memory: '64MiB' } });
    expect(() => {
      (a.limits as { memoryBytes: number }).memoryBytes = 1;
    }).toThrow(TypeError);
    expect(() => (a.command as string[]).push('x')).toThrow(TypeError);
    expect(resolveOptions({ command: ['/bin/true'], limits: { memory: '64MiB' } }).limits.memoryBytes).toBe(64 << 20);
  });

  it('a field changed in the same object, or the same fields in another order, is resolved anew', () => {
    asRoot(true);
    const options: { command: string[]; env: Record<string, string> } = { command: ['/bin/true'], env: { A: '1', B: '2' } };
    const first = resolveOptions(options);
    options.command = ['/bin/false'];
    options.env.A = 'changed';
    const second = resolveOptions(options);
    expect(second.command).toEqual(['/bin/false']);
    expect(second.env).toEqual({ A: 'changed', B: '2' });
    expect(first.command).toEqual(['/bin/true']);
    expect(first.env).toEqual({ A: '1', B: '2' });
    expect(Object.keys(resolveOptions({ command: ['/bin/true'], env: { B: '2', A: '1' } }).env)).toEqual(['B', 'A']);
  });

  it('values JSON would confuse stay apart: NaN is not null, an undefined key is not a missing one, a string is not a number', () => {
    asRoot(true);
    expect(resolveOptions({ command: ['/bin/true'], limits: { cpus: null } }).limits.cpus).toBeNull();
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], limits: { cpus: NaN } }))[0]).toMatch(/^limits\.cpus: /);
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], limits: { cpus: Infinity } }))[0]).toMatch(/^limits\.cpus: /);
    resolveOptions({ command: ['/bin/true'] });
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], extra: undefined }))).toHaveLength(1);
    resolveOptions({ command: ['/bin/true'], limits: { processes: 8 } });
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], limits: { processes: '8' } }))[0]).toMatch(/^limits\.processes: /);
  });

  it("options read right after their shape's last run are matched by their data exactly as their key would match them", () => {
    asRoot(true);
    const base = (): Record<string, unknown> => ({ command: ['/bin/true'], env: { A: '1' }, limits: { processes: 8 }, user: { uid: 0 } });
    const shape = resolveOptions(base()).shape;
    expect(shape).not.toBeNull();
    // Each variant is read with the base's shape the last one taken.
    const after = (o: Record<string, unknown>, kind: 'run' | 'spawn' = 'run'): object | null => {
      expect(resolveOptions(base()).shape).toBe(shape);
      return resolveOptions(o, kind).shape;
    };
    expect(after({ ...base(), stdin: 'x', signal: new AbortController().signal, files: { f: 'y' } })).toBe(shape);
    expect(after({ ...base(), env: Object.assign(Object.create(null) as object, { A: '1' }) })).toBe(shape);
    expect(after(base(), 'spawn')).not.toBe(shape);
    expect(after({ ...base(), limits: { processes: 8, memory: undefined } })).not.toBe(shape);
    expect(after({ env: { A: '1' }, command: ['/bin/true'], limits: { processes: 8 }, user: { uid: 0 } })).not.toBe(shape);
    expect(after({ ...base(), command: ['/bin/true', 'x'] })).not.toBe(shape);
    expect(after({ ...base(), env: { A: '1', B: '2' } })).not.toBe(shape);
    expect(after({ ...base(), env: {} })).not.toBe(shape);
    expect(resolveOptions(base()).shape).toBe(shape);
    const minusZero = resolveOptions({ ...base(), user: { uid: -0 } });
    expect(minusZero.shape).not.toBe(shape);
    expect(Object.is(minusZero.uid, -0)).toBe(true);
    class Argv extends Array<string> {}
    expect(after({ ...base(), command: Argv.from(['/bin/true']) })).toBeNull();
    expect(refusal(() => after({ ...base(), limits: { processes: '8' } }))[0]).toMatch(/^limits\.processes: /);
    expect(after(base())).toBe(shape);
  });

  it("a run's own input in error is refused as a fresh resolution refuses it, naming the field", () => {
    asRoot(true);
    resolveOptions({ command: ['/bin/true'] });
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], stdin: 42 }))[0]).toMatch(/^stdin: /);
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], signal: 'abort' }))[0]).toMatch(/^signal: /);
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], files: { '../out': 'x' } }))).toEqual(["files.../out: must not contain '..' or empty parts"]);
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], files: { a: 42 } }))[0]).toMatch(/^files\.a/);
  });

  it('a bind source removed since is refused, naming the field', () => {
    withBindSource((source, options) => {
      expect(resolveOptions(options()).mounts).toEqual([{ type: 'bind', source, target: source, readonly: true }]);
      rmSync(source, { recursive: true });
      expect(refusal(() => resolveOptions(options()))).toEqual([`binds[0].source: does not exist on the host (${source})`]);
    });
  });

  it('a bind source that was a directory and became a file is a new shape, kept as such', () => {
    withBindSource((source, options) => {
      const asDir = resolveOptions(options());
      expect(resolveOptions(options()).shape).toBe(asDir.shape);
      rmSync(source, { recursive: true });
      writeFileSync(source, 'now a file');
      const asFile = resolveOptions(options());
      expect(asFile.shape).not.toBeNull();
      expect(asFile.shape).not.toBe(asDir.shape);
      expect(asFile.mounts).toEqual([{ type: 'bind', source, target: source, readonly: true }]);
      expect(resolveOptions(options()).shape).toBe(asFile.shape);
      rmSync(source);
      mkdirSync(source);
      expect(resolveOptions(options()).shape).not.toBe(asFile.shape);
    });
  });

  it('the ids this process runs as are part of the shape', () => {
    asRoot(true);
    expect(resolveOptions({ command: ['/bin/true'] })).toMatchObject({ uid: 65534, gid: 65534 });
    asRoot(false);
    expect(resolveOptions({ command: ['/bin/true'] })).toMatchObject({ uid: 0, gid: 0 });
    expect(refusal(() => resolveOptions({ command: ['/bin/true'], user: { uid: 5 } }))).toEqual([
      "user.uid: only 0 is available without root (the box maps just the caller's own id)",
    ]);
  });

  it("a box built ahead is planned once per shape, holds no run's data, and is planned anew for other owner ids", () => {
    asRoot(true);
    const key = (): string => 'k';
    const a = preparedShape(resolveOptions({ command: ['/bin/true'], env: { S: 'x' }, files: { f: 'one' }, stdin: 'in' }), key);
    const b = preparedShape(resolveOptions({ command: ['/bin/true'], env: { S: 'x' } }), key);
    expect(b).toBe(a);
    expect(Object.isFrozen(a.plan.mounts)).toBe(true);
    expect(a.plan).toMatchObject({ prepared: true, argv: [], env: [] });
    expect(a.plan.mounts.some((m) => m.kind === 'file' && m.target.startsWith('/work/'))).toBe(false);
    setOwnerIds({ first: 0x60000000, count: 16 });
    const c = preparedShape(resolveOptions({ command: ['/bin/true'], env: { S: 'x' } }), key);
    expect(c).not.toBe(a);
    expect(c.plan.owners).toEqual({ first: 0x60000000, count: 16 });
  });

  it("plans made from one shape each carry their own run's files, program-owned, and nothing of another run's", () => {
    asRoot(true);
    const setup = { cgroup: null, filter: null, stdin: 'null' } as const;
    const files = (p: ReturnType<typeof planRun>['plan']): string[] => p.mounts.flatMap((m) => (m.kind === 'file' && m.target.startsWith('/work/') ? [`${m.target}=${m.data.toString()}`] : []));
    for (const into of ['new', 'living'] as const) {
      const a = planRun(resolveOptions({ command: ['/bin/true'], files: { 'a.txt': 'one' } }), { ...setup, into });
      const b = planRun(resolveOptions({ command: ['/bin/true'] }), { ...setup, into });
      const c = planRun(resolveOptions({ command: ['/bin/true'], files: { 'c.txt': 'three' } }), { ...setup, into });
      expect(files(a.plan)).toEqual(['/work/a.txt=one']);
      expect(files(b.plan)).toEqual([]);
      expect(files(c.plan)).toEqual(['/work/c.txt=three']);
      expect(a.plan.mounts.length - 1).toBe(b.plan.mounts.length);
      // Each plan's list is its own: what one run's plan gets added does not reach the next.
      a.plan.mounts.push({ kind: 'proc', target: '/extra' });
      expect(planRun(resolveOptions({ command: ['/bin/true'] }), { ...setup, into }).plan.mounts).toEqual(b.plan.mounts);
    }
  });

  it("gives a shape's runs, and their plans, one object shape from run to run, each with its own input", () => {
    asRoot(true);
    const setup = { into: 'new', cgroup: null, filter: null, stdin: 'null' } as const;
    const runs = Array.from({ length: 200 }, (_, i) => resolveOptions({ command: ['/bin/true'], stdin: String(i) }));
    expect(runs.map((o) => o.stdin)).toEqual(runs.map((_, i) => String(i)));
    expect(shapeChanges(runs)).toBe(0);
    expect(shapeChanges(runs.map((o) => planRun(o, setup).plan))).toBe(0);
  });
});
