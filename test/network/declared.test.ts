// Networks named by declarations: a sandcell.yaml profile and a problem file take `network`
// (none / loopback / host / a private network's name / { allow, publish, limits }) and `hostname`
// with the checks run() applies, and a mistake in either is a DeclarationError naming the file,
// the line and the field. Then real boxes: profiles putting boxes on a private network and giving
// one an allow list, and an interactive problem whose solution and interactor talk over TCP on a
// private network, by the interactor's hostname.
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createNetwork, run, spawn, type Network } from '../../src/index.js';
import { Judge, loadProblem } from '../../src/problems/index.js';
import { DeclarationError, Profiles, Source, withProfile } from '../../src/profiles/index.js';
import { childPids, runCgroupsInUse, requireRoot } from '../helpers/host.js';
import { ECHO_SERVER } from './programs.js';

let tmp: string;
let net: Network;
const NET = `sc-decl-${process.pid}`;

beforeAll(async () => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-declared-'));
  net = await createNetwork(NET);
});

afterAll(async () => {
  await net.remove();
  rmSync(tmp, { recursive: true, force: true });
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

const profiles = (text: string): Profiles => Profiles.fromSource(Source.parse(text, 'sandcell.yaml'));

/** The issues of the DeclarationError `f` throws, as `file:line: path: message`. */
function declared(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof DeclarationError) return e.message.split('\n');
    throw e;
  }
  throw new Error('no DeclarationError thrown');
}

describe('networks in declarations: the checks of run(), with the line', () => {
  it('a profile: every form of network and a hostname are taken as written', () => {
    const p = profiles(`sandcell: 1
profiles:
  off: { network: none }
  lo: { network: loopback }
  open: { network: host }
  web: { network: judge-net, hostname: web }
  egress:
    network:
      allow: [api.example.com:443, 127.0.0.1:8125]
      publish: [{ box: 8000, host: 127.0.0.1:18000 }, { box: 9000 }]
      limits: { connections: 4, bytesIn: 1MiB }
`);
    expect(p.resolve('web')).toEqual({ network: 'judge-net', hostname: 'web' });
    expect(p.resolve('lo')).toEqual({ network: 'loopback' });
    expect(p.resolve('egress').network).toEqual({
      allow: ['api.example.com:443', '127.0.0.1:8125'],
      publish: [{ box: 8000, host: '127.0.0.1:18000' }, { box: 9000 }],
      limits: { connections: 4, bytesIn: '1MiB' },
    });
  });

  it('a profile: a bad network or hostname names the file, the line and the field', () => {
    expect(
      declared(() =>
        profiles(`sandcell: 1
profiles:
  a: { hostname: -web }
  b: { network: Judge Net }
  c:
    network:
      allow: [nope]
  d:
    network:
      publish:
        - { box: 8000, host: example.com:80 }
  e:
    network: { limits: { connections: 2 } }
  f:
    network: { allow: [a.b:1], hostname: x }
`),
      ),
    ).toEqual([
      'sandcell.yaml:3: profiles.a.hostname: must be a hostname label: 1-63 of a-z 0-9 - (not at either end)',
      "sandcell.yaml:4: profiles.b.network: must be 'none', 'loopback', 'host', the name of a private network (1-32 of a-z 0-9 _ -) or { allow, publish, limits }",
      `sandcell.yaml:7: profiles.c.network.allow[0]: "nope" must be 'host:port' (host a name, *.name, an IPv4 address or [IPv6]; port a number or *)`,
      "sandcell.yaml:11: profiles.d.network.publish[0].host: must be 'address:port' with an IP address (127.0.0.1:18000, [::1]:18000) or a port number",
      'sandcell.yaml:13: profiles.e.network.limits: bound the egress proxy: give network.allow too',
      'sandcell.yaml:15: profiles.f.network.hostname: is not a known field',
    ]);
  });

  it('a problem file: the same checks in its profiles; the build box is the run box, so its network and hostname are the run profile\'s', () => {
    const dir = join(tmp, 'bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.in'), '1\n');
    writeFileSync(join(dir, 'a.ans'), '1\n');
    const problem = (profilesYaml: string): string => {
      writeFileSync(
        join(dir, 'problem.yaml'),
        `sandcell: 1
name: bad
profiles:
${profilesYaml}languages:
  sh: { source: main.sh, run: [sh, main.sh] }
tests:
  - { input: a.in, answer: a.ans }
`,
      );
      return join(dir, 'problem.yaml');
    };
    const bad = problem(`  run: { network: { publish: [{ box: 80, host: "1.2.3:80" }] }, hostname: "a_b" }\n`);
    writeFileSync(join(dir, 'sandcell.yaml'), 'sandcell: 1\nprofiles: {}\n');
    expect(declared(() => loadProblem(bad, { config: join(dir, 'sandcell.yaml') }))).toEqual([
      "problem.yaml:4: profiles.run.network.publish[0].host: must be 'address:port' with an IP address (127.0.0.1:18000, [::1]:18000) or a port number",
      "problem.yaml:4: profiles.run.hostname: must be a hostname label: 1-63 of a-z 0-9 - (not at either end)",
    ]);
    const split = problem(`  run: { network: ${NET}, hostname: sol }\n  build: { network: ${NET}, hostname: builder }\n`);
    expect(declared(() => loadProblem(split, { config: join(dir, 'sandcell.yaml') }))).toEqual([
      "problem.yaml:5: profiles.build.hostname: differs from the run profile's: the submission is built in the box its tests run in, so hostname is the run profile's to set",
    ]);
    const good = loadProblem(problem(`  run: { network: ${NET}, hostname: sol }\n  trusted: { network: { allow: [127.0.0.1:80] } }\n`), { config: join(dir, 'sandcell.yaml') });
    expect(good.profiles.run).toMatchObject({ network: NET, hostname: 'sol' });
    expect(good.profiles.trusted).toMatchObject({ network: { allow: ['127.0.0.1:80'] } });
  });
});


describe('networks in declarations: real boxes', () => {
  it('profiles put a server and a client on a private network (by hostname), and give a box an allow list', async () => {
    const host = http.createServer((req, res) => res.end(`host ${req.url}\n`));
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    const port = (host.address() as AddressInfo).port;
    try {
      const p = profiles(`sandcell: 1
profiles:
  member: { network: ${NET}, limits: { wallTime: 20s } }
  web: { extends: member, hostname: web }
  egress: { network: { allow: [127.0.0.1:${port}] } }
`);
      const web = await spawn(withProfile(p, 'web', { command: ['python3', '-c', ECHO_SERVER] }));
      try {
        await new Promise((resolve) => web.stdout.once('data', resolve));
        const client = await run(
          withProfile(p, 'member', {
            command: ['python3', '-c', 'import socket; c = socket.create_connection(("web", 8000), timeout=5); c.sendall(b"hi"); print(c.recv(100).decode())'],
          }),
        );
        expect(client.stderr).toBe('');
        expect(client.stdout).toBe('web says hi\n');
        const hosts = await run(withProfile(p, 'member', { command: ['cat', '/etc/hosts'] }));
        expect(hosts.stdout).toContain(`${web.address}\tweb`);
      } finally {
        web.kill();
        await web.wait();
      }
      const out = await run(withProfile(p, 'egress', { command: ['curl', '-sSf', `http://127.0.0.1:${port}/declared`] }));
      expect(out.stdout).toBe('host /declared\n');
      expect(out.network?.connections).toEqual([expect.objectContaining({ to: `127.0.0.1:${port}`, allowed: true })]);
    } finally {
      host.closeAllConnections();
      await new Promise((resolve) => host.close(resolve));
    }
  });

  it('an interactive problem on a private network: the solution reaches the interactor by its hostname over TCP', async () => {
    const dir = join(tmp, 'sum');
    mkdirSync(dir);
    writeFileSync(join(dir, '1.in'), '2 3\n');
    writeFileSync(join(dir, '2.in'), '40 2\n');
    // The interactor serves the test's numbers on interactor:9000 and expects their sum back.
    writeFileSync(
      join(dir, 'interact.py'),
      [
        'import socket, sys',
        'a, b = map(int, open(sys.argv[1]).read().split())',
        's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9000)); s.listen()',
        's.settimeout(15); c, _ = s.accept(); c.settimeout(15)',
        'c.sendall(f"{a} {b}\\n".encode()); got = c.makefile().readline().strip()',
        'sys.exit(0 if got == str(a + b) else 1)',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'problem.yaml'),
      `sandcell: 1
name: sum-over-tcp
profiles:
  run: { network: ${NET}, limits: { wallTime: 20s, cpuTime: 5s } }
  trusted: { network: ${NET}, hostname: interactor }
languages:
  py: { source: main.py, run: [python3, main.py] }
tests:
  - { glob: "*.in" }
interactor:
  source: interact.py
  run: [python3, interact.py, input]
`,
    );
    writeFileSync(join(dir, 'sandcell.yaml'), 'sandcell: 1\nprofiles: {}\n');
    // Started together with the interactor, the solution tries until the interactor listens.
    const solution = (answer: string): string =>
      [
        'import socket, sys, time',
        'sys.stderr.write(socket.gethostbyname("interactor"))',
        'for _ in range(300):',
        '    try: c = socket.create_connection(("interactor", 9000), timeout=5); break',
        '    except OSError: time.sleep(0.05)',
        'f = c.makefile("rw"); a, b = map(int, f.readline().split())',
        `f.write(str(${answer}) + "\\n"); f.flush()`,
      ].join('\n');
    const j = await Judge.open(join(dir, 'problem.yaml'), { config: join(dir, 'sandcell.yaml') });
    try {
      const ac = await j.judge({ language: 'py', source: solution('a + b') });
      // The solution says where "interactor" is: an address of the network, from its hosts file.
      const onNet = new RegExp(`^${net.subnet.replace(/\.0\/24$/, '').replaceAll('.', '\\.')}\\.\\d+$`);
      expect(ac.tests.map((t) => [t.verdict, t.interactor?.stderr])).toEqual([
        ['AC', ''],
        ['AC', ''],
      ]);
      for (const t of ac.tests) expect(t.result.stderr).toMatch(onNet);
      expect(ac.verdict).toBe('AC');
      const wa = await j.judge({ language: 'py', source: solution('a * b') });
      expect(wa.tests.map((t) => t.verdict)).toEqual(['WA', 'WA']);
    } finally {
      await j.close();
    }
  });
});
