// What a command loads decides how soon it answers (bench section 17): help loads no engine, and a
// one-shot run none of the other commands' modules. An import added at the top of src/cli/main.ts
// or src/cli/run.ts shows up here, not only as a slower bench. A run on a daemon loads no engine:
// the daemon checks its options. The command is a bundle (scripts/bundle-cli.mjs): each file it
// loads is read for the modules bundled into it, named as their dist/ modules.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { startDaemon } from './daemon/daemon.js';
import { requireRoot } from './helpers/host.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');

/** A loader hook that names every module the process loads, one `loaded <url>` line each on stderr. */
const HOOK = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent('export async function load(url, context, next) { process.stderr.write("loaded " + url + "\\\\n"); return next(url, context); }'));
`)}`;

/** Whether a file the loader read is the command's bundle: its entry or one of its chunks. */
const isBundle = (file: string): boolean => /^dist\/cli\/(main|bundle-[^/]+)\.js$/.test(file);

/**
 * The modules a bundle file holds, from the comment esbuild writes above each one's code
 * (`// src/run.ts`, `// node_modules/zod/v4/core/core.js`): ours named as tsc's dist/ files. A
 * module without code of its own (a file of re-exports only, like src/index.ts) has none.
 */
function bundled(file: string): string[] {
  return readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .flatMap((l) => /^\/\/ ((?:src|node_modules)\/\S+\.[jt]s)$/.exec(l)?.[1] ?? [])
    .map((m) => m.replace(/^src\/(.*)\.ts$/, 'dist/$1.js'));
}

/**
 * The files of this package and of its dependencies that `sandcell <args>` loads (`files`), and
 * the modules they hold (`modules`), as paths below the package.
 */
function loadedBy(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; files: string[]; modules: string[] } {
  const r = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], { encoding: 'utf8', timeout: 30_000, env });
  const files = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded file://'))
    .map((l) => fileURLToPath(l.slice('loaded '.length)).slice(ROOT.length + 1));
  return { status: r.status, files, modules: files.flatMap((f) => (isBundle(f) ? bundled(f) : [f])) };
}

describe('what a command loads', () => {
  it("the bin is the bundle: a run reads none of this package's modules but the bundle's files, and none of zod's files nor its locales but English", () => {
    requireRoot();
    const { status, files, modules } = loadedBy(['run', '--', '/bin/true']);
    expect(status).toBe(0);
    expect(files.filter((f) => f.startsWith('dist/') && !isBundle(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('node_modules/zod/'))).toEqual([]);
    expect(modules).toContain('node_modules/zod/v4/core/core.js');
    expect(modules.filter((m) => m.startsWith('node_modules/zod/v4/locales/'))).toEqual(['node_modules/zod/v4/locales/en.js']);
  });

  it('help and a mistyped command line load neither the engine nor zod', () => {
    for (const args of [['--help'], [], ['frob']]) {
      const { status, modules } = loadedBy(args);
      expect(status, args.join(' ')).not.toBeNull();
      expect(modules, args.join(' ')).toContain('dist/cli/main.js');
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
      const clientSide = /^(dist\/cli\/(main|run|args|flags|help|usage|remote)\.js|dist\/client\/[a-z0-9]+\.js|dist\/daemon\/(replies|wire)\.js|dist\/(errors|units)\.js|dist\/seccomp\/presets\.js|dist\/cluster\/(connection|queues)\.js|node_modules\/zod\/)/;
      expect(modules.filter((m) => !clientSide.test(m))).toEqual([]);
    } finally {
      await d.stop();
    }
  });
});
