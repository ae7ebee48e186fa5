// `npm install sandcell` as a production image does it: the tarball `npm pack` makes at the
// repository root, installed into an empty project by an npm that has no compiler, make or python3
// on its PATH. Nothing may compile; the CLI and the README's run() example must work from the
// prebuilt binaries the package ships. `npm test` builds dist/ first (pretest), as the CLI test
// relies on too, so the pack runs without its prepack build.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT } from '../../scripts/native-sources.mjs';
import { requireRoot } from '../helpers/host.js';

let tmp: string;
let project: string;
let env: NodeJS.ProcessEnv;
let installLog: string;
let packed: { filename: string; size: number; files: { path: string }[] };

function which(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not on PATH`);
}

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}) {
  return spawnSync(cmd, args, { cwd: project, env, encoding: 'utf8', timeout: 60_000, ...options }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}

beforeAll(() => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-install-'));
  // Boxes run as unprivileged host ids: they must reach the init inside the installed package.
  chmodSync(tmp, 0o755);
  // Only node, npm/npx and the shell npm runs commands with: no g++, make or python3.
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const tool of ['npm', 'npx']) symlinkSync(which(tool), join(bin, tool));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  env = { HOME: process.env.HOME, PATH: bin };

  const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(pack.status, pack.stderr).toBe(0);
  packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;

  project = join(tmp, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The dependencies come from npm's cache when `npm ci` put them there, else from the registry.
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', join(tmp, packed.filename)]);
  installLog = `${install.stdout}${install.stderr}`;
  expect(install.status, installLog).toBe(0);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package, installed without a compiler', () => {
  it('the PATH it installs with has no g++, make or python3', () => {
    for (const tool of ['g++', 'make', 'python3']) expect(run(tool, ['--version']).error, tool).toMatchObject({ code: 'ENOENT' });
  });

  it('ships the prebuilt binaries for linux-x64 and linux-arm64, and no build output', () => {
    const paths = packed.files.map((f) => f.path);
    for (const target of ['linux-x64', 'linux-arm64']) {
      expect(paths).toContain(`prebuilds/${target}/sandcell.node`);
      expect(paths).toContain(`prebuilds/${target}/sandcell-init`);
    }
    expect(paths.filter((p) => p.startsWith('build/'))).toEqual([]);
    expect(packed.filename).toBe('sandcell-0.1.0.tgz');
  });

  it('installs running no script and compiling nothing', () => {
    expect(installLog).not.toMatch(/gyp|g\+\+|make|CXX|install scripts/);
    expect(installLog).toMatch(/added \d+ packages/);
    expect(existsSync(join(project, 'node_modules', 'sandcell', 'build'))).toBe(false);
  });

  it('npx sandcell run -- /bin/echo hi prints hi', () => {
    const r = run('npx', ['sandcell', 'run', '--', '/bin/echo', 'hi']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
    expect(r.status).toBe(0);
  });

  it("the README's run() example works from the installed package", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = /^const r = await run\(\{$[\s\S]*?^\}\);$/m.exec(readme)?.[0];
    expect(example, 'the README has its run() example').toBeDefined();
    writeFileSync(join(project, 'example.mjs'), `import { run } from 'sandcell';\n${example}\nconsole.log(JSON.stringify({ status: r.status, stdout: r.stdout }));\n`);
    const r = run('node', ['example.mjs']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ status: 'ok', stdout: 'olleh\n' });
  });

  it('without a binary for this platform, or with one that does not load, a run fails naming how to build one from source', () => {
    const dir = join(project, 'node_modules', 'sandcell', 'prebuilds', `linux-${process.arch}`);
    renameSync(dir, `${dir}.moved`);
    try {
      const missing = run('npx', ['sandcell', 'run', '--', '/bin/echo', 'hi']);
      expect(missing.status).toBe(125);
      expect(missing.stderr).toContain(`no native binary for linux-${process.arch}`);
      expect(missing.stderr).toContain('npm explore sandcell -- npm run build:native');
      // What a host with another C library (or an older glibc) meets: a file dlopen refuses.
      mkdirSync(dir);
      writeFileSync(join(dir, 'sandcell.node'), 'not an ELF object');
      writeFileSync(join(dir, 'sandcell-init'), '');
      const broken = run('npx', ['sandcell', 'run', '--', '/bin/echo', 'hi']);
      expect(broken.status).toBe(125);
      expect(broken.stderr).toContain(`${join(dir, 'sandcell.node')} does not load here`);
      expect(broken.stderr).toContain('npm explore sandcell -- npm run build:native');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      renameSync(`${dir}.moved`, dir);
    }
  });
});
