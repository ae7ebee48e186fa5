// What a command loads decides how soon it answers (bench section 17): help loads no engine, and a
// one-shot run none of the other commands' modules. An import added at the top of
// src/cli/command.ts or src/cli/run.ts shows up here, not only as a slower bench. A run on a
// daemon loads no engine: the daemon checks its options. The command is one bundled script
// (scripts/bundle-cli.mjs) in which each module's code runs when it is first imported: V8's
// coverage of the process says which ran, and which other files it ran.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

import { startDaemon } from './daemon/daemon.js';
import { functionsRan, withCoverage, type ScriptCoverage } from './helpers/coverage.js';
import { requireRoot } from './helpers/host.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const BUNDLE = join(ROOT, 'dist', 'cli', 'command.cjs');


/**
 * The modules of the bundle whose code ran, named as tsc's dist/ files (ours) or as their files
 * in node_modules. esbuild writes each module's path above its code; a module that a dynamic
 * import reaches is wrapped in a function named by that path, called at its first import.
 */
function bundled(coverage: ScriptCoverage): string[] {
  const ran = new Set(functionsRan([coverage]));
  const text = readFileSync(BUNDLE, 'utf8');
  return [...text.matchAll(/^\/\/ ((?:src|node_modules)\/\S+\.[jt]s)$/gm)].flatMap(([, path]) => {
    const wrapped = text.includes(`\n  ${JSON.stringify(path)}(`);
    if (wrapped && !ran.has(path!)) return [];
    return [path!.replace(/^src\/(.*)\.ts$/, 'dist/$1.js')];
  });
}

/**
 * The files of this package and of its dependencies that `sandcell <args>` runs (`files`), and
 * the modules whose code ran (`modules`: the bundle's, and every other file), as paths below the
 * package.
 */
function loadedBy(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; files: string[]; modules: string[] } {
  const { status, scripts } = covered(args, env);
  const ours = scripts.filter((s) => s.url.startsWith(pathToFileURL(ROOT).href + '/'));
  const files = ours.map((s) => fileURLToPath(s.url).slice(ROOT.length + 1));
  return { status, files, modules: ours.flatMap((s, i) => (fileURLToPath(s.url) === BUNDLE ? bundled(s) : [files[i]!])) };
}

/** The names of the bundle's functions that ran in `sandcell <args>`. */
function bundleFunctionsRun(args: string[]): { status: number | null; ran: string[] } {
  const { status, scripts } = covered(args, process.env);
  return { status, ran: functionsRan(scripts.filter((s) => s.url === pathToFileURL(BUNDLE).href)) };
}

/** V8's coverage of every script `sandcell <args>` ran. */
function covered(args: string[], env: NodeJS.ProcessEnv): { status: number | null; scripts: ScriptCoverage[] } {
  const { run, scripts } = withCoverage([CLI, ...args], env);
  return { status: run.status, scripts };
}

/**
 * A node process run with `args`, and at its exit the builtin modules it loaded and the zod schemas
 * it made (zod calls `__zod_globalConfig.postProcessor`, a hook of its own, after making each).
 */
function traced(args: string[]): { status: number | null; modules: string[]; schemas: number } {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-traced-'));
  try {
    const out = join(dir, 'trace.json');
    const preload = join(dir, 'preload.cjs');
    writeFileSync(
      preload,
      `let schemas = 0;
globalThis.__zod_globalConfig = { postProcessor: () => { schemas += 1; } };
process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ modules: process.moduleLoadList, schemas })));
`,
    );
    const r = spawnSync(process.execPath, ['--require', preload, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    return { status: r.status, ...(JSON.parse(readFileSync(out, 'utf8')) as { modules: string[]; schemas: number }) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of the bin and the bundle in a package of its own: the package's own caches are shared with every other test. */
function copyOfBin(): { pkg: string; cli: string } {
  const pkg = mkdtempSync(join(tmpdir(), 'sandcell-cache-'));
  const cli = join(pkg, 'dist', 'cli');
  mkdirSync(cli, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  for (const f of ['main.js', 'command.cjs', 'package.json']) copyFileSync(join(ROOT, 'dist', 'cli', f), join(cli, f));
  return { pkg, cli };
}

describe('what a command loads', () => {
  it("the bin runs the bundle: a run runs no other file of this package, none of zod's files, and of its locales English alone", () => {
    requireRoot();
    const { status, files, modules } = loadedBy(['run', '--', '/bin/true']);
    expect(status).toBe(0);
    expect(files.filter((f) => f.startsWith('dist/'))).toEqual(['dist/cli/main.js', 'dist/cli/command.cjs']);
    expect(files.filter((f) => f.startsWith('node_modules/'))).toEqual([]);
    expect(modules).toContain('node_modules/zod/v4/core/core.js');
    // locales/index.js, its re-exports dropped, is left with no code.
    expect(modules.filter((m) => m.startsWith('node_modules/zod/v4/locales/') && m !== 'node_modules/zod/v4/locales/index.js')).toEqual(['node_modules/zod/v4/locales/en.js']);
  });

  it("the bin keeps V8's code cache of the bundle beside it, takes it in the next process, makes a new one for another bundle, and runs without one where it cannot write", () => {
    requireRoot();
    const { pkg, cli } = copyOfBin();
    try {
      const cache = join(cli, 'command.cjs.cache');
      const help = (): string => {
        const r = spawnSync(process.execPath, [join(cli, 'main.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        return r.stdout;
      };
      expect(help()).toContain('Usage:');
      const made = statSync(cache);
      expect(made.size).toBeGreaterThan(100_000);
      // Rewritten only when missing or refused: the same file is the cache taken.
      expect(help()).toContain('Usage:');
      expect(statSync(cache).ino).toBe(made.ino);
      // Another bundle of the same length, which V8's own check of a cache would let through.
      const bundle = readFileSync(join(cli, 'command.cjs'), 'utf8');
      writeFileSync(join(cli, 'command.cjs'), bundle.replace('Usage:', 'USAGE:'));
      expect(help()).toContain('USAGE:');
      expect(statSync(cache).ino).not.toBe(made.ino);
      // A user who may not write the package's directory (a root install) runs without a cache.
      rmSync(cache);
      chmodSync(pkg, 0o755);
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(cli, 'main.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('USAGE:');
      expect(r.status).toBe(0);
      expect(readdirSync(cli).sort()).toEqual(['command.cjs', 'main.js', 'package.json']);
    } finally {
      rmSync(pkg, { recursive: true, force: true });
    }
  });

  it("each command keeps a cache of its own: a run after a --help takes a run's, which it makes once and keeps", () => {
    requireRoot();
    const { pkg, cli } = copyOfBin();
    try {
      // The addon and the init, which the bundle finds from the package's root as the library does.
      for (const d of ['build', 'prebuilds']) if (existsSync(join(ROOT, d))) symlinkSync(join(ROOT, d), join(pkg, d));
      const sandcell = (...args: string[]): number | null => {
        const r = spawnSync(process.execPath, [join(cli, 'main.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
        expect(r.stderr, args.join(' ')).toBe(args[0] === 'frob' ? 'sandcell: unknown command "frob" (see sandcell --help)\n' : '');
        return r.status;
      };
      const caches = (): string[] => readdirSync(cli).filter((f) => f.startsWith('command.cjs.cache')).sort();
      expect(sandcell('--help')).toBe(0);
      expect(caches()).toEqual(['command.cjs.cache']);
      const help = statSync(join(cli, 'command.cjs.cache'));
      expect(sandcell('run', '--', '/bin/true')).toBe(0);
      expect(caches()).toEqual(['command.cjs.cache', 'command.cjs.cache-run']);
      const run = statSync(join(cli, 'command.cjs.cache-run'));
      // The run's holds the engine, which help's has none of.
      expect(run.size).toBeGreaterThan(2 * help.size);
      expect(sandcell('run', '--', '/bin/true')).toBe(0);
      expect(sandcell('frob')).toBe(125);
      expect(caches()).toEqual(['command.cjs.cache', 'command.cjs.cache-run']);
      expect(statSync(join(cli, 'command.cjs.cache-run')).ino).toBe(run.ino);
      expect(statSync(join(cli, 'command.cjs.cache')).ino).toBe(help.ino);
    } finally {
      rmSync(pkg, { recursive: true, force: true });
    }
  });

  it("a run loads no node:crypto (the run cgroup's name and the image store's temporary names need no secret randomness)", () => {
    requireRoot();
    const r = traced([CLI, 'run', '--', '/bin/true']);
    expect(r.status).toBe(0);
    expect(r.modules).toContain('NativeModule net');
    expect(r.modules.filter((m) => /crypto/.test(m))).toEqual([]);
  });

  it('a run builds the option schemas of the fields its options hold, a tenth of those the library has', () => {
    requireRoot();
    const r = traced([CLI, 'run', '--', '/bin/true']);
    expect(r.status).toBe(0);
    const whole = traced(['--input-type=module', '-e', `const { optionSchemas } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)}); void optionSchemas.run, optionSchemas.sandbox, optionSchemas.sandboxRun;`]);
    expect(whole.status).toBe(0);
    expect(r.schemas).toBeGreaterThan(0);
    expect(r.schemas * 10).toBeLessThan(whole.schemas);
  });

  it("a run compiles no seccomp program for its preset: it takes the build's (scripts/prebuild-seccomp.mjs)", () => {
    requireRoot();
    for (const args of [['run', '--', '/bin/true'], ['run', '--seccomp', 'judge', '--', '/bin/true']]) {
      const { status, ran } = bundleFunctionsRun(args);
      expect(status, args.join(' ')).toBe(0);
      expect(ran, args.join(' ')).toContain('presetProgram');
      expect(ran, args.join(' ')).not.toContain('emitProgram');
    }
  });

  it('help and a mistyped command line load neither the engine nor zod', () => {
    for (const args of [['--help'], [], ['frob']]) {
      const { status, modules } = loadedBy(args);
      expect(status, args.join(' ')).not.toBeNull();
      expect(modules, args.join(' ')).toContain('dist/cli/command.js');
      expect(modules.filter((m) => m === 'dist/run.js' || m.startsWith('node_modules/zod/')), args.join(' ')).toEqual([]);
    }
  });

  it("run loads the engine and none of the daemon's, the farm's, judging's, profiles' or the client's modules", () => {
    requireRoot();
    const { status, modules } = loadedBy(['run', '--', '/bin/true']);
    expect(status).toBe(0);
    expect(modules).toContain('dist/run.js');
    const others = /^(dist\/(daemon|problems|profiles|group)\/|dist\/cluster\/(?!connection\.js|queues\.js)|dist\/client\/(?!errors\.js)|dist\/cli\/(serve|worker|service|judge|image|network|schema|remote)\.js|node_modules\/(pino|prom-client|yaml|tar|ws|bullmq|ioredis)\/)/;
    expect(modules.filter((m) => others.test(m))).toEqual([]);
  });

  it("run on a daemon (SANDCELL_HOST) loads the client and the command line's own modules, none of the engine's nor ws (a run is one HTTP request)", async () => {
    requireRoot();
    const d = await startDaemon();
    try {
      const { status, modules } = loadedBy(['run', '--memory', '64MiB', '--seccomp', 'judge', '--', '/bin/true'], { ...process.env, SANDCELL_HOST: `unix://${d.socket}` });
      expect(status).toBe(0);
      expect(modules).toContain('dist/client/index.js');
      const clientSide = /^(dist\/cli\/(main|command|run|args|flags|help|usage|remote)\.js|dist\/client\/[a-z0-9]+\.js|dist\/daemon\/(replies|wire)\.js|dist\/(errors|units)\.js|dist\/seccomp\/presets\.js|dist\/cluster\/(connection|queues)\.js|node_modules\/zod\/)/;
      expect(modules.filter((m) => !clientSide.test(m))).toEqual([]);
    } finally {
      await d.stop();
    }
  });
});
