// What a command loads decides how soon it answers (bench section 17): help loads no engine, and a
// one-shot run none of the other commands' modules. An import added at the top of src/cli/main.ts
// or src/cli/run.ts shows up here, not only as a slower bench. A run on a daemon loads no engine:
// the daemon checks its options.
import { spawnSync } from 'node:child_process';
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

/** The modules of this package and of its dependencies that `sandcell <args>` loads, as paths below the package. */
function loadedBy(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; modules: string[] } {
  const r = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], { encoding: 'utf8', timeout: 30_000, env });
  const modules = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded file://'))
    .map((l) => fileURLToPath(l.slice('loaded '.length)).slice(ROOT.length + 1));
  return { status: r.status, modules };
}

describe('what a command loads', () => {
  it('help and a mistyped command line load neither the engine nor zod', () => {
    for (const args of [['--help'], [], ['frob']]) {
      const { status, modules } = loadedBy(args);
      expect(status, args.join(' ')).not.toBeNull();
      expect(modules, args.join(' ')).toContain('dist/cli/main.js');
      expect(modules.filter((m) => m === 'dist/index.js' || m.startsWith('node_modules/zod/')), args.join(' ')).toEqual([]);
    }
  });

  it("run loads the engine and none of the daemon's, the farm's, judging's, profiles' or the client's modules", () => {
    requireRoot();
    const { status, modules } = loadedBy(['run', '--', '/bin/true']);
    expect(status).toBe(0);
    expect(modules).toContain('dist/index.js');
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
