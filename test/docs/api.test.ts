// docs/api is generated from the package's types: it must be exactly what `npm run docs:api`
// writes from them now. TypeDoc reads the declarations in dist/ (what a user of the package
// gets), which `npm test` builds first.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

function files(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.set(relative(dir, join(e.parentPath, e.name)), readFileSync(join(e.parentPath, e.name), 'utf8'));
  }
  return out;
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-api-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('API reference', () => {
  it('docs/api is what the types generate now', () => {
    const out = join(tmp, 'api');
    execFileSync(process.execPath, [TYPEDOC, '--out', out, '--logLevel', 'Error'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const fresh = files(out);
    const committed = files(join(ROOT, 'docs', 'api'));
    const stale = [
      ...[...fresh.keys()].filter((f) => !committed.has(f)).map((f) => `missing: ${f}`),
      ...[...committed.keys()].filter((f) => !fresh.has(f)).map((f) => `no longer generated: ${f}`),
      ...[...fresh].filter(([f, text]) => committed.has(f) && committed.get(f) !== text).map(([f]) => `changed: ${f}`),
    ];
    expect(fresh.size).toBeGreaterThan(0);
    expect(stale, 'docs/api is stale: run npm run docs:api').toEqual([]);
  });
});
