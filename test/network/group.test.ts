// Groups on networks: boxes of one runGroup on a private network reach each other by hostname
// (a box spawned for the group and a run in a living box alike), a group box with an allow list
// reaches exactly its list through the proxy with its connections in its result, a box of the
// group on another network does not reach them, and two boxes claiming one hostname on a network
// are refused before anything starts. Nothing is left: no box, cgroup, member or host link.
import http from 'node:http';
import { readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runGroup } from '../../src/group/index.js';
import { createNetwork, listNetworks, run, Sandbox, SandboxOptionsError, type Network } from '../../src/index.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const NET = `sc-group-${process.pid}`;
const OTHER = `sc-group-o-${process.pid}`;
let net: Network;
let other: Network;
let host: http.Server;
let port: number;
let links: string[];
let fds: number;

beforeAll(async () => {
  requireRoot();
  links = readdirSync('/sys/class/net').sort();
  net = await createNetwork(NET);
  other = await createNetwork(OTHER);
  // What a process opens once, at its first box, is not a box's.
  await run({ command: ['/bin/true'], network: NET });
  fds = await openFds();
  host = http.createServer((req, res) => res.end(`host ${req.url}\n`));
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  port = (host.address() as AddressInfo).port;
});

afterAll(async () => {
  host.closeAllConnections();
  await new Promise((resolve) => host.close(resolve));
  await net.remove();
  await other.remove();
  expect(readdirSync('/sys/class/net').sort()).toEqual(links);
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
  expect(await openFds()).toBe(fds);
});

/** Answers each connection on port 8000 with its name and what it was sent. */
const server = (name: string): string[] => [
  'python3',
  '-c',
  [
    'import socket',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8000)); s.listen()',
    'while True:',
    `    c, _ = s.accept(); d = c.recv(100); c.sendall(b"${name} got " + d); c.close()`,
  ].join('\n'),
];

/** Connects to each `host:port` argument, retrying while it is refused (the groups' boxes start together); prints the reply or the error's name. */
const CLIENT = [
  'import errno, socket, sys, time',
  'for target in sys.argv[1:]:',
  '    h, p = target.rsplit(":", 1)',
  '    for attempt in range(200):',
  '        try:',
  '            c = socket.create_connection((h, int(p)), timeout=3); c.sendall(b"hi"); print(c.recv(100).decode()); break',
  '        except ConnectionRefusedError:',
  '            time.sleep(0.05)',
  '        except socket.gaierror:',
  '            print("unresolved"); break',
  '        except OSError as e:',
  '            print(errno.errorcode.get(e.errno, str(e))); break',
].join('\n');

describe('groups on networks', () => {
  it('boxes of a group on a private network talk by hostname; a run in a living box on it too; a box on another network does not reach them', async () => {
    await using living = await Sandbox.create({ network: NET, hostname: 'keeper' });
    const g = await runGroup({
      boxes: {
        web: { command: server('web'), network: NET, hostname: 'web' },
        keeper: { sandbox: living, command: server('keeper') },
        client: { command: ['python3', '-c', CLIENT, 'web:8000', 'keeper:8000'], network: NET, limits: { wallTime: '30s' } },
        stranger: { command: ['python3', '-c', CLIENT, 'web:8000', 'keeper:8000'], network: OTHER, limits: { wallTime: '30s' } },
      },
      endOn: ['client'],
      graceMs: 3000,
    });
    expect(g.boxes.client).toMatchObject({ status: 'ok', stdout: 'web got hi\nkeeper got hi\n', stderr: '' });
    expect(g.boxes.stranger).toMatchObject({ status: 'ok', stdout: 'unresolved\nunresolved\n', stderr: '' });
    // The servers never end on their own: the group ended them after the client.
    expect(g.boxes.web?.endedByGroup).toBe(true);
    expect(g.boxes.keeper?.endedByGroup).toBe(true);
    expect((await listNetworks()).find((n) => n.name === NET)?.members.map((m) => m.hostname)).toEqual(['keeper']);
  });

  it('a group box with an allow list reaches its list through the proxy, and its result lists the connections', async () => {
    const g = await runGroup({
      boxes: {
        fetch: {
          command: ['/bin/sh', '-c', `curl -sSf http://127.0.0.1:${port}/allowed; curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:${port + 1}/refused`],
          network: { allow: [`127.0.0.1:${port}`] },
        },
        upper: { command: ['/usr/bin/tr', 'a-z', 'A-Z'] },
      },
      pipes: [{ from: 'fetch.stdout', to: 'upper.stdin' }],
    });
    expect(g.boxes.upper).toMatchObject({ status: 'ok', stdout: 'HOST /ALLOWED\n403\n' });
    expect(g.boxes.fetch?.network?.connections).toEqual([
      expect.objectContaining({ to: `127.0.0.1:${port}`, allowed: true, address: '127.0.0.1' }),
      expect.objectContaining({ to: `127.0.0.1:${port + 1}`, allowed: false }),
    ]);
    // A box of the group without the list has no way out at all.
    expect(g.boxes.upper?.network).toBeUndefined();
  });

  it('two boxes of a group with one hostname on one network are refused before any starts', async () => {
    const err = await runGroup({
      boxes: {
        a: { command: ['/bin/true'], network: NET, hostname: 'dup' },
        b: { command: ['/bin/true'], network: NET, hostname: 'dup' },
        c: { command: ['/bin/true'], network: OTHER, hostname: 'dup' },
        d: { command: ['/bin/true'], hostname: 'dup' },
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxOptionsError);
    expect((err as SandboxOptionsError).issues).toEqual([{ path: 'boxes.b.hostname', message: `box a of the group is dup on network ${NET} already` }]);
    expect((await listNetworks()).find((n) => n.name === NET)?.members).toEqual([]);
  });
});
