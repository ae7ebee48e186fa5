// The service layers (the daemon and its client, the CLI, the farm, judge problems, groups of boxes) are
// layers on top of the library: what they import from it comes through the package's public
// entry points (package.json "exports"), so a front end of anyone's can do everything they do.
// A layer's own files import each other freely; the daemon, the client, the CLI and the farm also
// import each other's files (they ship together, none is inside the engine). Problems and groups
// are reached by others only through their entry points.
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

/** Service layers whose files import each other's. */
const OPEN_LAYERS = new Set(['daemon', 'client', 'cli', 'cluster']);

/** The layer of a file: its first directory below src/ (null for a file directly in src/). */
function layerOf(file: string): string | null {
  const parts = relative(SRC, file).split('/');
  return parts.length > 1 ? (parts[0] as string) : null;
}

/** The files held to the rule. */
function checkedFiles(): string[] {
  const below = (d: string): string[] =>
    readdirSync(join(SRC, d), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(SRC, d, f));
  return ['daemon', 'client', 'cli', 'problems', 'cluster', 'group'].flatMap(below);
}

/** Every relative module a source text imports (static, dynamic, `export ... from`), type-only imports included. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/\bfrom\s+'(\.[^']*)'|\bimport\s*\(\s*'(\.[^']*)'\s*\)|^\s*import\s+'(\.[^']*)'/gm)) specs.push((m[1] ?? m[2] ?? m[3]) as string);
  return specs;
}

/**
 * Engine-free modules the CLI takes directly: it ships in the package, and the entry points that
 * export these (`sandcell`, `sandcell/seccomp`) load the engine, which a run on a daemon must not.
 */
const CLI_DIRECT = new Set([join(SRC, 'units.ts'), join(SRC, 'seccomp', 'presets.ts')]);

/** Whether `file` may import `target` (a source file) without going through an entry point. */
function reachable(file: string, target: string): boolean {
  const from = layerOf(file);
  const to = layerOf(target);
  if (from === 'cli' && CLI_DIRECT.has(target)) return true;
  return to !== null && (to === from || (OPEN_LAYERS.has(from as string) && OPEN_LAYERS.has(to)));
}

/** The imports of `file` (with source `text`) that reach into the library's internals. */
function internalImports(file: string, text: string, entries: Set<string>): string[] {
  return relativeImports(text)
    .map((spec) => ({ spec, target: resolve(dirname(file), spec).replace(/\.js$/, '.ts') }))
    .filter(({ target }) => !entries.has(target) && !reachable(file, target))
    .map(({ spec }) => `${relative(ROOT, file)}: ${spec}`);
}

const HOW_TO_FIX =
  'a service layer imported a module that is no public entry point (file: import). Import it from the entry point that exports it ' +
  "(the package.json \"exports\" module: '../index.js', '../profiles/index.js', ...), or make it public there if a user would want it too, " +
  'or move it to the layer that needs it';

describe('the service layers use the library through its public entry points', () => {
  it('import nothing else from it', () => {
    const entries = publicEntries();
    const files = checkedFiles();
    for (const layer of ['daemon', 'client', 'cli', 'problems', 'cluster', 'group']) expect(files.filter((f) => layerOf(f) === layer).length, layer).toBeGreaterThan(0);
    expect(files).toContain(join(SRC, 'cluster', 'services', 'agent.ts'));
    expect(files).toContain(join(SRC, 'cli', 'main.ts'));
    const found = files.flatMap((f) => internalImports(f, readFileSync(f, 'utf8'), entries));
    expect(found, HOW_TO_FIX).toEqual([]);
  });

  it('what they need is there by the package\'s own names (the built package, imported as a user does)', () => {
    const script = `import * as errors from 'sandcell/errors';
import * as lib from 'sandcell';
import * as client from 'sandcell/client';
process.stdout.write(JSON.stringify({
  errors: Object.keys(errors).sort(),
  sameClasses: Object.keys(errors).every((k) => errors[k] === lib[k]),
  front: [typeof lib.optionSchemas.run.safeParse, typeof lib.parseOptions, typeof lib.DEFAULT_LIMITS.memoryBytes, typeof lib.peerCredentials],
  units: [lib.parseDuration('2s'), lib.parseDuration(1500), lib.parseSize('256MiB'), lib.parseSize('1.5k'), typeof lib.parseSize('12 parsecs')],
  client: typeof client.connect,
}));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' })) as unknown;
    expect(out).toEqual({
      errors: ['AbortError', 'SandboxNetworkError', 'SandboxOptionsError', 'SandboxSetupError', 'formatOptionPath'],
      sameClasses: true,
      front: ['function', 'function', 'number', 'function'],
      units: [2000, 1500, 268435456, 1536, 'string'],
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

  it("the CLI's direct imports are the engine-free units and preset names only, and only for the CLI", () => {
    const entries = publicEntries();
    const text = [
      "import { parseSize } from '../units.js';",
      "import { isPresetName } from '../seccomp/presets.js';",
      "import { compile } from '../seccomp/compile.js';",
      "import { parseOptions } from '../options.js';",
    ].join('\n');
    expect(internalImports(join(SRC, 'cli', 'flags.ts'), text, entries)).toEqual(['src/cli/flags.ts: ../seccomp/compile.js', 'src/cli/flags.ts: ../options.js']);
    expect(internalImports(join(SRC, 'daemon', 'server.ts'), text, entries)).toEqual([
      'src/daemon/server.ts: ../units.js',
      'src/daemon/server.ts: ../seccomp/presets.js',
      'src/daemon/server.ts: ../seccomp/compile.js',
      'src/daemon/server.ts: ../options.js',
    ]);
  });

  it('the check holds problems, the farm and groups to their own files and the entry points', () => {
    const entries = publicEntries();
    const problems = join(SRC, 'problems', 'load.ts');
    expect(
      internalImports(
        problems,
        [
          "import { Source } from '../profiles/source.js';",
          "import { parseDuration } from '../units.js';",
          "import { connectCluster } from '../cluster/farm.js';",
          "import { Profiles } from '../profiles/index.js';",
          "import { runGroup } from '../group/index.js';",
          "import { problemSchema } from './schema.js';",
        ].join('\n'),
        entries,
      ),
    ).toEqual(['src/problems/load.ts: ../profiles/source.js', 'src/problems/load.ts: ../units.js', 'src/problems/load.ts: ../cluster/farm.js']);
    const agent = join(SRC, 'cluster', 'services', 'agent.ts');
    expect(
      internalImports(
        agent,
        [
          "import { parseDuration } from '../../units.js';",
          "import type { Verdict } from '../../problems/verdict.js';",
          "import { profileSchema } from '../../profiles/schema.js';",
          "import { redisOptions } from '../connection.js';",
          "import { spawn } from '../../index.js';",
          "import { serve } from '../../daemon/server.js';",
        ].join('\n'),
        entries,
      ),
    ).toEqual(['src/cluster/services/agent.ts: ../../units.js', 'src/cluster/services/agent.ts: ../../problems/verdict.js', 'src/cluster/services/agent.ts: ../../profiles/schema.js']);
    const group = join(SRC, 'group', 'group.ts');
    expect(internalImports(group, "import { launch } from '../launch/launcher.js';\nimport { spawn } from '../index.js';", entries)).toEqual(['src/group/group.ts: ../launch/launcher.js']);
  });
});
