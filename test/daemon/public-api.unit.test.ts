// The daemon and its client are layers on top of the library: what they import from it comes
// through the package's public entry points (package.json "exports"), so a front end of anyone's
// can do everything they do. Imports between the service layers themselves are theirs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'src');

/** The source file of each public entry point: `./dist/x/index.js` → `src/x/index.ts`. */
function publicEntries(): Set<string> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
  return new Set(Object.values(pkg.exports).map((e) => join(ROOT, e.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'))));
}

/** Service layers: built on the library, never part of what it exports from the inside. */
const LAYERS = ['daemon', 'client', 'cli', 'cluster'].map((d) => join(SRC, d));

/** The files held to the rule. */
function checkedFiles(): string[] {
  const inDir = (d: string): string[] => readdirSync(join(SRC, d)).filter((f) => f.endsWith('.ts')).map((f) => join(SRC, d, f));
  return [...inDir('daemon'), ...inDir('client'), join(SRC, 'cli', 'serve.ts'), join(SRC, 'cli', 'remote.ts')];
}

/** Every relative module a source text imports (static, dynamic, `export ... from`), type-only imports included. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/\bfrom\s+'(\.[^']*)'|\bimport\s*\(\s*'(\.[^']*)'\s*\)|^\s*import\s+'(\.[^']*)'/gm)) specs.push((m[1] ?? m[2] ?? m[3]) as string);
  return specs;
}

/** The imports of `file` (with source `text`) that reach into the library's internals. */
function internalImports(file: string, text: string, entries: Set<string>): string[] {
  return relativeImports(text)
    .map((spec) => ({ spec, target: resolve(dirname(file), spec).replace(/\.js$/, '.ts') }))
    .filter(({ target }) => !entries.has(target) && !LAYERS.some((l) => target.startsWith(l + '/')))
    .map(({ spec }) => `${relative(ROOT, file)}: ${spec}`);
}

describe('the daemon and the client use the library through its public entry points', () => {
  it('import nothing else from it', () => {
    const entries = publicEntries();
    const files = checkedFiles();
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) => internalImports(f, readFileSync(f, 'utf8'), entries));
    expect(found).toEqual([]);
  });

  it('what they need is there by the package\'s own names (the built package, imported as a user does)', () => {
    const script = `import * as errors from 'sandcell/errors';
import * as lib from 'sandcell';
import * as client from 'sandcell/client';
process.stdout.write(JSON.stringify({
  errors: Object.keys(errors).sort(),
  sameClasses: Object.keys(errors).every((k) => errors[k] === lib[k]),
  front: [typeof lib.optionSchemas.run.safeParse, typeof lib.parseOptions, typeof lib.DEFAULT_LIMITS.memoryBytes, typeof lib.peerCredentials],
  client: typeof client.connect,
}));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' })) as unknown;
    expect(out).toEqual({
      errors: ['AbortError', 'SandboxNetworkError', 'SandboxOptionsError', 'SandboxSetupError'],
      sameClasses: true,
      front: ['function', 'function', 'number', 'function'],
      client: 'function',
    });
  });

  it('the check finds an import of an internal module, type-only and dynamic ones too', () => {
    const entries = publicEntries();
    const file = join(SRC, 'daemon', 'server.ts');
    const text = [
      "import { parseOptions } from '../options.js';",
      "import type { Result } from '../result.js';",
      "const n = await import('../native.js');",
      "import { run } from '../index.js';",
      "import { Admission } from './admission.js';",
      "import { connect } from '../client/index.js';",
      "import { SandboxOptionsError } from '../errors.js';",
    ].join('\n');
    expect(internalImports(file, text, entries)).toEqual(['src/daemon/server.ts: ../options.js', 'src/daemon/server.ts: ../result.js', 'src/daemon/server.ts: ../native.js']);
  });
});
