// What the repo tells an operator to run: the systemd unit (checked by systemd-analyze, and its
// ExecStart run as written, in a mount namespace where the paths it names are this checkout and
// a temp dir), and the README's curl example for every route, run against a real daemon.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

import { ROUTES } from '../../src/daemon/routes.js';
import { requireRoot } from '../helpers/host.js';
import { startDaemon, until } from './daemon.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const UNIT = join(ROOT, 'contrib', 'sandcell.service');

function unitValue(key: string): string {
  const line = readFileSync(UNIT, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new Error(`${UNIT} has no ${key}=`);
  return line.slice(key.length + 1);
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-service-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs the unit's ExecStart, word for word, in a mount namespace of its own where the global
 * install it names is this checkout, `/run/sandcell` (systemd's RuntimeDirectory, 0755) is `run`,
 * and `/etc/group` is `groupFile` when given: nothing outside the namespace is touched.
 */
async function execStart(run: string, groupFile?: string): Promise<{ pid: number; log: () => string; stop: () => Promise<number | null> }> {
  const argv = unitValue('ExecStart').split(/\s+/);
  const install = argv.find((a) => a.endsWith('/dist/cli/main.js'));
  expect(install).toBeDefined();
  const pkg = (install as string).slice(0, -'/dist/cli/main.js'.length);
  const script = [
    'set -e',
    `mount -t tmpfs -o mode=0755 tmpfs "${dirname(pkg)}"`,
    `mkdir "${pkg}"`,
    `mount --bind "${ROOT}" "${pkg}"`,
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    `mkdir -m ${unitValue('RuntimeDirectoryMode')} /run/${unitValue('RuntimeDirectory')}`,
    `mount --bind "${run}" /run/${unitValue('RuntimeDirectory')}`,
    ...(groupFile ? [`mount --bind "${groupFile}" /etc/group`] : []),
    `exec ${argv.join(' ')}`,
  ].join('\n');
  const proc = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const up = await until(() => out.includes('"msg":"listening"') || proc.exitCode !== null);
  if (!up || proc.exitCode !== null) throw new Error(`ExecStart did not start listening:\n${out}`);
  return {
    pid: proc.pid as number,
    log: () => out,
    stop: async () => {
      proc.kill(unitValue('KillSignal') as NodeJS.Signals);
      return exited;
    },
  };
}

function curl(socket: string, ...args: string[]): { status: number; body: string } {
  const out = execFileSync('curl', ['-sS', '--unix-socket', socket, '-w', '\n%{http_code}', ...args], { encoding: 'utf8' });
  const at = out.lastIndexOf('\n');
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
}

describe('contrib/sandcell.service', () => {
  it('passes systemd-analyze verify', () => {
    const dir = tempDir();
    // verify wants a unit file name it can load as a unit: the same file, copied.
    copyFileSync(UNIT, join(dir, 'sandcell.service'));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'sandcell.service')], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 0, stderr: '' });
  });

  it('its ExecStart, as written, listens on /run/sandcell/sandcell.sock, 0660, root:root without a sandcell group; SIGTERM ends it cleanly', { timeout: 120_000 }, async () => {
    requireRoot();
    const run = tempDir();
    const groups = readFileSync('/etc/group', 'utf8');
    // The host may have the group; the namespace is given a group file without it.
    const noGroup = join(run, '..', `${run.split('/').pop()}.group`);
    writeFileSync(noGroup, groups.split('\n').filter((l) => !l.startsWith('sandcell:')).join('\n'));
    onTestFinished(() => rmSync(noGroup, { force: true }));
    const d = await execStart(run, noGroup);
    const socket = join(run, 'sandcell.sock');
    const st = statSync(socket);
    expect({ socket: st.isSocket(), mode: (st.mode & 0o777).toString(8), uid: st.uid, gid: st.gid }).toEqual({ socket: true, mode: '660', uid: 0, gid: 0 });
    const r = curl(socket, '-H', 'content-type: application/json', '-d', '{"command":["/bin/echo","hi"],"limits":{"wallTime":"2s"}}', 'http://sandcell/v1/run');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ status: 'ok', stdout: 'hi\n' });
    expect(await d.stop()).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(d.log()).toContain('"msg":"drained"');
  });

  it('gives the socket to the group sandcell when it exists', { timeout: 120_000 }, async () => {
    requireRoot();
    const run = tempDir();
    const groups = readFileSync('/etc/group', 'utf8');
    const used = new Set(groups.split('\n').map((l) => Number(l.split(':')[2])));
    let gid = 64_000;
    while (used.has(gid)) gid++;
    const withGroup = join(run, '..', `${run.split('/').pop()}.group`);
    writeFileSync(withGroup, `${groups.split('\n').filter((l) => l !== '' && !l.startsWith('sandcell:')).join('\n')}\nsandcell:x:${gid}:\n`);
    onTestFinished(() => rmSync(withGroup, { force: true }));
    const d = await execStart(run, withGroup);
    const st = statSync(join(run, 'sandcell.sock'));
    expect({ mode: (st.mode & 0o777).toString(8), gid: st.gid }).toEqual({ mode: '660', gid });
    expect(await d.stop()).toBe(0);
  });
});

describe("the README's curl examples", () => {
  it('one for every route, each answered as its comment says', { timeout: 120_000 }, async () => {
    requireRoot();
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /```sh\n(S='--unix-socket [^\n]*\n(?:[^`][^\n]*\n)*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    // Continuation lines joined; the first line sets S and J.
    const lines = (block as string).replace(/\\\n\s*/g, '').split('\n').filter((l) => l.startsWith('curl '));
    const d = await startDaemon();
    const dir = tempDir();
    writeFileSync(join(dir, 'input.txt'), 'stored input\n');
    const ids: Record<string, string> = {};
    const covered = new Set<string>();
    for (const line of lines) {
      const [command, comment = ''] = line.split(/\s+#\s+/) as [string, string?];
      // The placeholders stand for ids answered before; S is the socket.
      const concrete = command
        .replace(/box-…/g, () => ids.box ?? 'box-none')
        .replace(/sha256:…/g, () => ids.file ?? 'sha256:none')
        .replace(/\$S/g, `--unix-socket '${d.socket}'`)
        .replace(/"\$J"/g, "'content-type: application/json'");
      const r = spawnSync('sh', ['-c', `${concrete} -sS -w '\\n%{http_code}'`], { cwd: dir, encoding: 'utf8' });
      expect(r.status, `${concrete}\n${r.stderr}`).toBe(0);
      const at = r.stdout.lastIndexOf('\n');
      const status = Number(r.stdout.slice(at + 1));
      const body = r.stdout.slice(0, at);
      const said = /^(\d{3})\b/.exec(comment)?.[1];
      expect(status, `${line}\n${body}`).toBe(said !== undefined ? Number(said) : 200);
      const json = /^\{"(\w+)"/.exec(comment)?.[1];
      if (json !== undefined) expect(Object.keys(JSON.parse(body) as object)[0]).toBe(json);
      if (/"id":"box-/.test(comment)) ids.box = (JSON.parse(body) as { id: string }).id;
      if (/"id":"sha256:/.test(comment)) ids.file = (JSON.parse(body) as { id: string }).id;
      const method = / -X (\w+)/.exec(concrete)?.[1] ?? (/ (-d|--data-binary) /.test(concrete) ? 'POST' : 'GET');
      const path = /http:\/\/sandcell(\S+)/.exec(concrete)?.[1] as string;
      const route = ROUTES.find((rt) => rt.method === method && new RegExp(`^${rt.path.replace(/\{\w+\}/g, '[^/]+')}$`).test(path));
      expect(route, `${method} ${path} is no route`).toBeDefined();
      covered.add(route?.operation as string);
    }
    expect([...covered].sort()).toEqual(ROUTES.map((r) => r.operation).sort());
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
