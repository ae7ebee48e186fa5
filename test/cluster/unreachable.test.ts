// `sandcell worker`, `sandcell service` and `sandcell serve --cluster` against a Redis that does not answer: a closed port
// refuses at once, a peer that accepts and never replies runs into --connect-timeout. Either
// ends the command with exit 125 and a message naming the address (its password masked), and
// the process ends: the farm's connections, which wait through reconnects, are never opened.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { startRedis } from '../helpers/redis.js';
import { CLI, descendantsOf } from './workers.js';

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Processes it had started, looked for while it ran. */
  children: number;
}

/** The CLI with `args`, killed (and so failing the test's status check) if it has not ended in a minute. */
function cli(args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    let children = 0;
    const child = execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' }, (_e, stdout, stderr) => {
      clearInterval(look);
      resolve({ status: child.exitCode, signal: child.signalCode, stdout, stderr, children });
    });
    const look = setInterval(() => (children = Math.max(children, descendantsOf(child.pid as number).length)), 50);
  });
}

/** A TCP port on 127.0.0.1 where nothing listens: bound once by us, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Where `serve --cluster` is told to put its socket: it must not get that far. */
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sandcell-unreachable-'));
});
afterAll(() => {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
}, 60_000);

/** A server on 127.0.0.1 that accepts connections and never says anything. */
async function silentServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as { port: number }).port;
}

describe('the farm commands when Redis does not answer', () => {
  it('a closed port: exit 125 naming the address and the refusal, password masked, no process left', async () => {
    const port = await closedPort();
    const url = `redis://farm:s3cret@127.0.0.1:${port}`;
    const runs = await Promise.all([
      cli(['worker', '--redis', url, '--name', 'nowhere']),
      cli(['service', 'ls', '--redis', url]),
      cli(['service', 'call', 'echo', '1', '--redis', url]),
      cli(['serve', '--socket', join(dir, 'refused.sock'), '--cluster', url]),
    ]);
    const prefixes = ['sandcell worker', 'sandcell service', 'sandcell service', 'sandcell serve --cluster'];
    runs.forEach((r, i) => {
      expect(r.signal).toBeNull();
      expect(r.status).toBe(125);
      expect(r.stderr).toBe(`${prefixes[i]}: cannot reach Redis at redis://farm:***@127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
      expect(r.stdout).toBe('');
      expect(r.children).toBe(0);
    });
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('a peer that never answers: exit 125 once --connect-timeout has passed', async () => {
    const port = await silentServer();
    const url = `redis://127.0.0.1:${port}`;
    const runs = await Promise.all([
      cli(['worker', '--redis', url, '--connect-timeout', '300ms']),
      cli(['service', 'scale', 'echo', '2', '--redis', url, '--connect-timeout', '300ms']),
      cli(['serve', '--socket', join(dir, 'silent.sock'), '--cluster', url, '--connect-timeout', '300ms']),
    ]);
    for (const r of runs) {
      expect(r.signal).toBeNull();
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(new RegExp(`: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: (no answer within 300 ms|connect ETIMEDOUT)\\n$`));
    }
    const bad = await cli(['service', 'ls', '--redis', url, '--connect-timeout', '0']);
    expect(bad.status).toBe(125);
    expect(bad.stderr).toMatch(/--connect-timeout: must be greater than zero/);
  }, 120_000);

  it('a Redis that answers: the command goes on (service ls on a real redis-server)', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const r = await cli(['service', 'ls', '--redis', redis.url, '--connect-timeout', '5s']);
    expect(r).toMatchObject({ status: 0, stdout: 'no services\n', stderr: '' });
  }, 120_000);
});
