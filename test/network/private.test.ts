// Private networks: boxes on one network reach each other by address and by hostname, and
// nothing else (not another network's boxes, not the host's loopback or addresses, nothing
// outside); a `none` box cannot reach them. A network in use cannot be removed; one whose owner
// died is swept; nothing of a network (namespace, bridge, veth, mount, file) is left after it.
import { spawn as spawnChild, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cleanupOrphans, listSandcellCgroups } from '../../src/cgroup/index.js';
import { createNetwork, listNetworks, run, Sandbox, SandboxNetworkError, SandboxOptionsError, spawn } from '../../src/index.js';
import { NETWORKS_DIR, sweepNetworks } from '../../src/network/private.js';
import { warmBoxes } from '../../src/runtime.js';
import { childPids, requireRoot } from '../helpers/host.js';
import { ECHO_SERVER } from './programs.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

function sandcell(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The host's links, by name (a network must add none). */
function hostLinks(): string[] {
  return readdirSync('/sys/class/net').sort();
}

/** A network's traces on the host: its directory and its namespace's mount. */
function traces(name: string): string[] {
  const out: string[] = [];
  if (existsSync(join(NETWORKS_DIR, name))) out.push(`dir ${name}`);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (line.includes(`${NETWORKS_DIR}/${name}/`)) out.push(`mount ${line}`);
  return out;
}

let linksBefore: string[];
let pidsBefore: number[];

beforeAll(async () => {
  requireRoot();
  await run({ command: ['true'] });
  linksBefore = hostLinks();
  pidsBefore = await childPids();
});

afterAll(async () => {
  expect(hostLinks()).toEqual(linksBefore);
  expect(await childPids()).toEqual(pidsBefore);
});


/** Connects to each `host:port` argument in turn; prints what came back, or the error's name. */
const PROBE = [
  'import errno, socket, sys',
  'for target in sys.argv[1:]:',
  '    host, port = target.rsplit(":", 1)',
  '    try:',
  '        c = socket.create_connection((host, int(port)), timeout=3); c.sendall(b"hi"); print(c.recv(100).decode())',
  '    except socket.gaierror:',
  '        print("unresolved")',
  '    except socket.timeout:',
  '        print("timeout")',
  '    except OSError as e:',
  '        print(errno.errorcode.get(e.errno, str(e)))',
].join('\n');

async function probe(network: string | undefined, ...targets: string[]): Promise<string[]> {
  const r = await run({ command: ['python3', '-c', PROBE, ...targets], ...(network !== undefined ? { network } : {}), limits: { wallTime: '20s' } });
  expect(r.stderr).toBe('');
  return r.stdout.trim().split('\n');
}

function hostAddress(): string {
  const a = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  if (!a) throw new Error('this test needs a host interface with an IPv4 address');
  return a.address;
}

/** Has boxes of this shape built ahead (only those, from here on) and gives their pids once one waits. */
async function builtAhead(options: { network: string; hostname?: string }): Promise<number[]> {
  await warmBoxes.drain();
  for (let i = 0; i < 2; i++) expect((await run({ command: ['true'], ...options })).status).toBe('ok');
  let warm: number[] = [];
  for (let i = 0; i < 200 && warm.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    warm = warmBoxes.pids();
  }
  expect(warm.length).toBeGreaterThan(0);
  return warm;
}

describe('private networks', () => {
  it('two boxes talk over TCP by hostname and address; another network, a none box and the host are out of reach', async () => {
    const host = net.createServer((c) => c.end('host says hi'));
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    const hostPort = (host.address() as net.AddressInfo).port;
    try {
      await using judge = await createNetwork('sc-test-judge');
      await using other = await createNetwork('sc-test-other');
      expect(judge.subnet).not.toBe(other.subnet);
      await using early = await Sandbox.create({ network: 'sc-test-judge', hostname: 'early' });
      const web = await spawn({ command: ['python3', '-c', ECHO_SERVER], network: 'sc-test-judge', hostname: 'web' });
      try {
        await new Promise((resolve) => web.stdout.once('data', resolve));
        expect(web.address).toMatch(new RegExp(`^${judge.subnet.replace(/\.0\/24$/, '').replaceAll('.', '\\.')}\\.\\d+$`));

        // Same network: by name, by address, and from a box that joined before the server did.
        expect(await probe('sc-test-judge', 'web:8000', `${web.address}:8000`)).toEqual(['web says hi', 'web says hi']);
        const fromEarly = await early.run({ command: ['python3', '-c', PROBE, 'web:8000'] });
        expect(fromEarly.stdout.trim()).toBe('web says hi');
        const hosts = await early.run({ command: ['cat', '/etc/hosts'] });
        expect(hosts.stdout).toContain(`${web.address}\tweb`);
        expect(hosts.stdout).toContain(`${early.address}\tearly`);

        // The box's routes: the network's /24 on eth0, and no default route.
        const routes = await run({ command: ['cat', '/proc/net/route'], network: 'sc-test-judge' });
        const lines = routes.stdout.trim().split('\n').slice(1);
        expect(lines.map((l) => l.split('\t')[0])).toEqual(['eth0']);
        expect(lines.some((l) => l.split('\t')[1] === '00000000')).toBe(false);

        // Another network, and a box of its own: neither the name nor the address reaches web.
        expect(await probe('sc-test-other', 'web:8000', `${web.address}:8000`)).toEqual(['unresolved', 'ENETUNREACH']);
        expect(await probe('none', 'web:8000', `${web.address}:8000`)).toEqual(['unresolved', 'ENETUNREACH']);
        expect(await probe(undefined, `${web.address}:8000`)).toEqual(['ENETUNREACH']);

        // The host: its 127.0.0.1 is not the box's, and its own address has no route from the box.
        expect(await probe('sc-test-judge', `127.0.0.1:${hostPort}`, `${hostAddress()}:${hostPort}`)).toEqual(['ECONNREFUSED', 'ENETUNREACH']);
        expect(await probe('sc-test-other', `127.0.0.1:${hostPort}`)).toEqual(['ECONNREFUSED']);

        // The network's own namespace has no address a box could reach: the .1 a gateway would have is nobody.
        expect(await probe('sc-test-judge', `${judge.subnet.replace(/0\/24$/, '1')}:8000`)).toEqual([expect.stringMatching(/^(EHOSTUNREACH|timeout)$/)]);
      } finally {
        web.kill();
        await web.wait();
      }
    } finally {
      host.close();
    }
    expect(traces('sc-test-judge')).toEqual([]);
    expect(traces('sc-test-other')).toEqual([]);
    expect(hostLinks()).toEqual(linksBefore);
  });

  it('a box built ahead for a network shape gets its veth and its name when a run takes it', async () => {
    await using n = await createNetwork('sc-test-warm');
    const options = { network: 'sc-test-warm', hostname: 'w' };
    const warm = await builtAhead(options);
    const p = await spawn({ command: ['sh', '-c', 'cut -f1 /proc/net/route; cat /etc/hosts'], ...options });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += String(d)));
    expect((await p.wait()).status).toBe('ok');
    expect(warm).toContain(p.pid);
    expect(p.address?.startsWith(n.subnet.replace(/0\/24$/, ''))).toBe(true);
    expect(out).toBe(`Iface\neth0\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${p.address}\tw\n`);
  });

  it('a box built ahead has its veth before any run takes it, keeps no one from removing its network, and is not used on the network made again', async () => {
    const options = { network: 'sc-test-again' };
    const first = await createNetwork('sc-test-again');
    const warm = await builtAhead(options);
    // Its eth0 is there while it waits (its init's /proc/<pid>/net is its namespace's).
    expect(readFileSync(`/proc/${warm[0]}/net/dev`, 'utf8')).toMatch(/^\s*eth0:/m);
    // Each box built ahead (another may be being built) holds an address, as waiting.
    const members = join(NETWORKS_DIR, 'sc-test-again', 'members');
    const records = readdirSync(members).map((f) => JSON.parse(readFileSync(join(members, f), 'utf8')) as { pid: number; waiting?: boolean });
    expect(records.map((r) => r.pid)).toEqual(expect.arrayContaining(warm));
    expect(records.every((r) => r.waiting === true)).toBe(true);
    // A box without a program is not a member yet: the network is not in use.
    expect((await listNetworks()).find((x) => x.name === 'sc-test-again')?.members).toEqual([]);
    await first.remove();
    await using second = await createNetwork('sc-test-again');
    const p = await spawn({ command: ['cut', '-f1', '/proc/net/route'], ...options });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += String(d)));
    expect((await p.wait()).status).toBe('ok');
    // The box built for the first network (its eth0 went with it) was discarded, not used.
    expect(warm).not.toContain(p.pid);
    expect(out).toBe('Iface\neth0\n');
    expect(p.address?.startsWith(second.subnet.replace(/0\/24$/, ''))).toBe(true);
  });

  it('boxes put on a network at once (their veth pairs made on several worker threads) each get their eth0', async () => {
    await using n = await createNetwork('sc-test-many');
    let next = 0;
    const got: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < 24) {
        next++;
        const r = await run({ command: ['cut', '-f1', '/proc/net/route'], network: 'sc-test-many', limits: { wallTime: '20s' } });
        got.push(`${r.status} ${r.stdout.trim().replace('\n', ' ')}`);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    expect(got).toEqual(Array.from({ length: 24 }, () => 'ok Iface eth0'));
    expect(n.subnet).toMatch(/\.0\/24$/);
  });

  it('removing a network that boxes are on is refused, naming them; it is removed once they end', async () => {
    const n = await createNetwork('sc-test-busy');
    const box = await Sandbox.create({ network: 'sc-test-busy', hostname: 'busy' });
    const refused = await n.remove().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SandboxNetworkError);
    expect(refused).toMatchObject({ code: 'in-use', network: 'sc-test-busy' });
    expect((refused as Error).message).toContain('busy');
    expect((await listNetworks()).find((x) => x.name === 'sc-test-busy')?.members).toEqual([{ hostname: 'busy', address: box.address, pid: expect.any(Number) }]);
    await box.destroy();
    await n.remove();
    expect(traces('sc-test-busy')).toEqual([]);
  });

  it('bad names, a missing network, a taken name and a taken hostname are typed errors; nothing is left', async () => {
    await expect(createNetwork('host')).rejects.toBeInstanceOf(SandboxOptionsError);
    await expect(createNetwork('../x')).rejects.toMatchObject({ path: 'name' });
    await expect(run({ command: ['true'], network: 'sc-test-absent' })).rejects.toMatchObject({ name: 'SandboxNetworkError', code: 'not-found' });
    await expect(run({ command: ['true'], hostname: '-bad' })).rejects.toMatchObject({ path: 'hostname' });
    await using n = await createNetwork('sc-test-dup');
    await expect(createNetwork('sc-test-dup')).rejects.toMatchObject({ code: 'exists' });
    await expect(createNetwork('sc-test-clash', { subnet: n.subnet })).rejects.toMatchObject({ code: 'subnet-taken' });
    await expect(createNetwork('sc-test-bad', { subnet: '8.8.8.0/24' })).rejects.toMatchObject({ path: 'subnet' });
    await using a = await Sandbox.create({ network: 'sc-test-dup', hostname: 'same' });
    await expect(Sandbox.create({ network: 'sc-test-dup', hostname: 'same' })).rejects.toMatchObject({ code: 'hostname-taken' });
    expect(a.address).not.toBeNull();
    expect(traces('sc-test-clash')).toEqual([]);
    expect(traces('sc-test-bad')).toEqual([]);
  });

  it("a network whose owner process was killed is swept by the next process's sweep", async () => {
    const code = `
import { createNetwork, spawn } from ${JSON.stringify(DIST)};
      const n = await createNetwork('sc-test-orphan');
      const p = await spawn({ command: ['sleep', '60'], network: 'sc-test-orphan', hostname: 'left' });
      console.log(JSON.stringify({ pid: p.pid }));
      setInterval(() => undefined, 1000);`;
    const owner = spawnChild(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve) => owner.stdout.once('data', (d: Buffer) => resolve(String(d))));
    const { pid } = JSON.parse(line) as { pid: number };
    expect(traces('sc-test-orphan').length).toBe(2);
    // A live owner's network is not swept.
    expect(await sweepNetworks()).not.toContain('sc-test-orphan');
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('exit', resolve));
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        break;
      }
    }
    // Any sandcell process that starts a box on this machine sweeps dead owners' networks too
    // (other test workers'): this sweep removes it, unless one of those was first.
    const gone = await sweepNetworks();
    if (!gone.includes('sc-test-orphan')) expect(existsSync(join(NETWORKS_DIR, 'sc-test-orphan'))).toBe(false);
    expect(traces('sc-test-orphan')).toEqual([]);
    expect((await listNetworks()).map((x) => x.name)).not.toContain('sc-test-orphan');
    // The owner's cgroups go as any dead owner's do, once the kernel has emptied them.
    const ownerDirs = (): string[] => listSandcellCgroups().filter((d) => d.endsWith(`/sandcell-${owner.pid}`));
    for (let i = 0; i < 50 && ownerDirs().length > 0; i++) {
      await cleanupOrphans();
      if (ownerDirs().length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ownerDirs()).toEqual([]);
  });

  it('the CLI: network create, run --network --hostname, ls, rm (refused while in use), and its errors', async () => {
    const made = sandcell(['network', 'create', 'sc-test-cli']);
    expect(made.stderr).toBe('');
    expect(made.stdout).toMatch(/^sc-test-cli\t\d+\.\d+\.\d+\.0\/24\n$/);
    try {
      const r = sandcell(['run', '--network', 'sc-test-cli', '--hostname', 'solo', '--', 'sh', '-c', 'hostname; grep solo /etc/hosts']);
      expect(r).toMatchObject({ status: 0, stderr: '' });
      expect(r.stdout).toMatch(/^solo\n\d+\.\d+\.\d+\.\d+\tsolo\n$/);
      expect(sandcell(['network', 'ls']).stdout).toMatch(/^sc-test-cli\t\S+\tpersistent\t-$/m);
      await using box = await Sandbox.create({ network: 'sc-test-cli', hostname: 'held' });
      expect(sandcell(['network', 'rm', 'sc-test-cli'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/in-use: 1 box\(es\) use it: held/) });
      expect(box.address).not.toBeNull();
    } finally {
      expect(sandcell(['network', 'rm', 'sc-test-cli'])).toMatchObject({ status: 0, stderr: '' });
    }
    expect(traces('sc-test-cli')).toEqual([]);
    expect(sandcell(['network', 'rm', 'sc-test-cli'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/not-found/) });
    expect(sandcell(['run', '--network', 'sc-test-cli', '--', 'true'])).toMatchObject({ status: 125, stderr: expect.stringMatching(/network sc-test-cli: not-found/) });
    expect(sandcell(['network', 'create', 'none']).status).toBe(125);
    expect(sandcell(['network', 'frob']).status).toBe(125);
  });

  it('without root: creating or joining a network is a typed error naming the reason', () => {
    const code = `
import { createNetwork, run } from ${JSON.stringify(DIST)};
      const made = await createNetwork('sc-test-rootless').then(() => 'made', (e) => e.name + ' ' + e.code);
      const joined = await run({ command: ['true'], network: 'sc-test-rootless' }).then(() => 'ran', (e) => e.name + ' ' + e.path + ' ' + e.message);
      console.log(JSON.stringify({ made, joined }));`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { made: string; joined: string };
    expect(out.made).toBe('SandboxNetworkError root-required');
    expect(out.joined).toMatch(/^SandboxOptionsError network .*needs root/);
  });
});
