// `encoding` through the options: checked by the schema (its values named when refused), carried
// by every way options are resolved (fresh, by their shape's content, checked beforehand, a box's
// run), and refused for a spawn; and the types it gives a result.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { checkOptions, checkSandboxRunOptions, parseOptions, type OutputEncoding, type RunOptions } from '../../src/index.js';
import { resolveOptions, resolveSandboxOptions, resolveSandboxRun } from '../../src/options.js';
import { refusal } from '../helpers/refusal.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');

afterEach(() => vi.restoreAllMocks());

const asRoot = (): void => {
  vi.spyOn(process, 'geteuid').mockReturnValue(0);
  vi.spyOn(process, 'getegid').mockReturnValue(0);
};

const ENCODING_REFUSED = "encoding: must be one of 'utf8', 'buffer'";
const SPAWN_REFUSED = "encoding: is for run() and box.run(): a spawned program's stdout and stderr are streams of bytes";

describe('encoding in the options', () => {
  it("is 'utf8' unless given, and 'buffer' when given", () => {
    asRoot();
    expect(resolveOptions({ command: ['/bin/true'] }).encoding).toBe('utf8');
    expect(resolveOptions({ command: ['/bin/true'], encoding: 'utf8' }).encoding).toBe('utf8');
    expect(resolveOptions({ command: ['/bin/true'], encoding: 'buffer' }).encoding).toBe('buffer');
    expect(parseOptions('run', { command: ['/bin/true'], encoding: 'buffer' }).encoding).toBe('buffer');
    expect(parseOptions('sandboxRun', { command: ['/bin/true'], encoding: 'buffer' }).encoding).toBe('buffer');
  });

  it('options of the same content but their encoding each resolve to their own, whichever was resolved last', () => {
    asRoot();
    const options = (encoding?: OutputEncoding): Record<string, unknown> => ({ command: ['/bin/cat'], env: { A: '1' }, ...(encoding ? { encoding } : {}) });
    for (let i = 0; i < 3; i++) {
      for (const e of ['buffer', undefined, 'buffer', 'utf8', 'buffer'] as const) {
        const o = resolveOptions({ ...options(e), stdin: `${i}` });
        expect(o.shape).not.toBeNull();
        expect(o.encoding).toBe(e ?? 'utf8');
      }
    }
    expect(resolveOptions(options('buffer')).shape).not.toBe(resolveOptions(options()).shape);
  });

  it('checked options keep theirs, run after run and after options of the other encoding', () => {
    asRoot();
    const asBytes = checkOptions({ command: ['/bin/cat'], env: { B: '1' }, encoding: 'buffer' });
    const asText = checkOptions({ command: ['/bin/cat'], env: { B: '1' } });
    for (let i = 0; i < 3; i++) {
      expect(resolveOptions(asBytes).encoding).toBe('buffer');
      expect(resolveOptions({ command: ['/bin/cat'], env: { B: '1' } }).encoding).toBe('utf8');
      expect(resolveOptions(asText).encoding).toBe('utf8');
      expect(resolveOptions({ command: ['/bin/cat'], env: { B: '1' }, encoding: 'buffer' }).encoding).toBe('buffer');
    }
    expect(parseOptions('run', asBytes).encoding).toBe('buffer');
  });

  it("a box's run has its own, never the box's", () => {
    asRoot();
    const box = resolveSandboxOptions({});
    expect(box.encoding).toBe('utf8');
    expect(resolveSandboxRun({ command: ['/bin/true'], encoding: 'buffer' }, box, 'run').encoding).toBe('buffer');
    expect(resolveSandboxRun({ command: ['/bin/true'] }, box, 'run').encoding).toBe('utf8');
    const checked = checkSandboxRunOptions({ command: ['/bin/true'], encoding: 'buffer' });
    expect(resolveSandboxRun(checked, box, 'run').encoding).toBe('buffer');
    expect(refusal(() => resolveSandboxOptions({ encoding: 'buffer' }))).toEqual([': Unrecognized key: "encoding"']);
  });

  it('refuses any other value, naming the field and the values it takes', () => {
    asRoot();
    const box = resolveSandboxOptions({});
    for (const encoding of ['latin1', 'utf-8', 'base64', 'BUFFER', '', null, 0, true, {}]) {
      expect(refusal(() => resolveOptions({ command: ['/bin/true'], encoding }))).toEqual([ENCODING_REFUSED]);
      expect(refusal(() => resolveSandboxRun({ command: ['/bin/true'], encoding }, box, 'run'))).toEqual([ENCODING_REFUSED]);
      expect(refusal(() => checkOptions({ command: ['/bin/true'], encoding } as unknown as RunOptions))).toEqual([ENCODING_REFUSED]);
    }
  });

  it('refuses any encoding for a spawn, fresh, by shape or checked', () => {
    asRoot();
    const box = resolveSandboxOptions({});
    for (const encoding of ['buffer', 'utf8'] as const) {
      const o = { command: ['/bin/cat'], encoding };
      // Resolved for a run first: its shape is there for the spawn to find.
      resolveOptions(o);
      expect(refusal(() => resolveOptions(o, 'spawn'))).toEqual([SPAWN_REFUSED]);
      expect(refusal(() => resolveOptions(checkOptions(o), 'spawn'))).toEqual([SPAWN_REFUSED]);
      expect(refusal(() => resolveSandboxRun(o, box, 'spawn'))).toEqual([SPAWN_REFUSED]);
    }
    expect(resolveOptions({ command: ['/bin/cat'] }, 'spawn').encoding).toBe('utf8');
  });
});

describe('the types of a result', () => {
  // The assertions are type-checked, so the check is tsc's: one process over the file that holds them.
  it('are what the type checker finds in test/options/fixtures/encoding-types.ts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-types-'));
    try {
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: join(ROOT, 'tsconfig.json'), compilerOptions: { noEmit: true, typeRoots: [join(ROOT, 'node_modules', '@types')] }, include: [], files: [join(HERE, 'fixtures', 'encoding-types.ts')] }));
      const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { encoding: 'utf8', timeout: 120_000 });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
