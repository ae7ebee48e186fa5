/**
 * The daemon as a client sees it: `sandcell serve` started on a Unix socket in a temp dir, and
 * three ways to run through it (the TS client's run() and its session over one WebSocket, and a
 * raw JSON POST with node:http as a go-judge-style caller sends it), and the floor under its round
 * trip. Section 12 of `npm run bench` uses this module; run alone it prints the
 * p50 of one run through the socket against the same run() in this process:
 *   npm run build && tsc -p tsconfig.bench.json && node dist-bench/daemon.js
 * Environment: BENCH_ITERATIONS runs per figure (default 500).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { connect, type Engine, type RunSession } from '../dist/client/index.js';
import { run, shutdown, type RunOptions } from '../dist/index.js';
import { dist, ms, nowMs, ratio } from './stats.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');

/** What every daemon figure runs, locally and remotely alike. */
export const DAEMON_OPTIONS: RunOptions = { command: ['/bin/true'], limits: { wallTime: '10s', cpuTime: '5s', memory: '256MiB' } };
const RAW_BODY = JSON.stringify(DAEMON_OPTIONS);

export interface Daemon {
  socket: string;
  engine: Engine;
  /** One run of DAEMON_OPTIONS with the TS client. */
  clientRun(): Promise<void>;
  /** One run of DAEMON_OPTIONS as a bare `POST /v1/run` with a JSON body over a kept-alive connection. */
  rawRun(): Promise<void>;
  /** One run of DAEMON_OPTIONS with the TS client's session: a frame on one WebSocket kept open. */
  sessionRun(): Promise<void>;
  /** `GET /v1/health` with the TS client: the round trip through the socket with no run in it. */
  health(): Promise<void>;
  /** Stops the daemon (SIGTERM, awaited) and removes its temp dir. */
  stop(): Promise<void>;
}

/** Starts `sandcell serve` (with `args` added) on a socket in a fresh temp dir and waits until it answers /v1/health. */
export async function startDaemon(args: readonly string[] = []): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-bench-daemon-'));
  const socket = join(dir, 'sandcell.sock');
  // As a service runs it: the default log level (a JSON line per request and per run, written in
  // blocks), into a file as a service manager would take it, not into a pipe this process would
  // have to wake up for and read.
  const log = openSync(join(dir, 'serve.log'), 'a');
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--socket', socket, ...args], { stdio: ['ignore', log, 'inherit'] });
  closeSync(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const engine = connect({ socket });
  const agent = new Agent({ keepAlive: true });
  let session: RunSession | null = null;
  const stop = async (): Promise<void> => {
    await session?.close();
    engine.close();
    agent.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      if (child.exitCode !== null) throw new Error(`sandcell serve exited with ${child.exitCode}`);
      up = await engine.health().then(() => true, () => false);
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    if (!up) throw new Error('sandcell serve did not answer /v1/health within 10 s');
  } catch (e) {
    await stop();
    throw e;
  }
  const clientRun = async (): Promise<void> => {
    const r = await engine.run(DAEMON_OPTIONS);
    if (r.status !== 'ok') throw new Error(`daemon run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
  };
  const sessionRun = async (): Promise<void> => {
    session ??= await engine.session();
    const r = await session.run(DAEMON_OPTIONS);
    if (r.status !== 'ok') throw new Error(`daemon session run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
  };
  const rawRun = (): Promise<void> =>
    new Promise((ok, fail) => {
      const req = request(
        { socketPath: socket, path: '/v1/run', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(RAW_BODY) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', fail);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            let status: unknown;
            try {
              status = (JSON.parse(body) as { status?: unknown }).status;
            } catch {
              status = undefined;
            }
            if (res.statusCode === 200 && status === 'ok') ok();
            else fail(new Error(`POST /v1/run answered ${res.statusCode}: ${body.slice(0, 300)}`));
          });
        },
      );
      req.on('error', fail);
      req.end(RAW_BODY);
    });
  const health = async (): Promise<void> => {
    await engine.health();
  };
  return { socket, engine, clientRun, sessionRun, rawRun, health, stop };
}

/**
 * The floor under a daemon's round trip: two bare servers in one Node process of their own, on
 * Unix sockets beside nothing else, answering as little as a process can. `health()` is the same
 * client's `GET /v1/health` against a bare node:http server that answers every request with a
 * health reply (two Node processes speaking HTTP, none of the daemon's code); `ping()` is a byte
 * echoed by a bare node:net server over a kept connection (two Node processes' wake-ups, no HTTP).
 */
export interface Floor {
  health(): Promise<void>;
  ping(): Promise<void>;
  stop(): Promise<void>;
}

const FLOOR_SERVERS = `
const { createServer } = require('node:http');
const net = require('node:net');
const [httpSocket, netSocket] = process.argv.slice(1);
const body = JSON.stringify({ ok: true, draining: false, running: 0, queued: 0 });
const head = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))];
let up = 0;
const listening = () => { if (++up === 2) process.stdout.write('up\\n'); };
createServer((req, res) => { res.writeHead(200, head); res.end(body); }).listen(httpSocket, listening);
net.createServer((s) => s.on('data', (d) => s.write(d))).listen(netSocket, listening);
`;

/** Starts the floor's two bare servers in a child process and connects to both. */
export async function startFloor(): Promise<Floor> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-bench-floor-'));
  const httpSocket = join(dir, 'http.sock');
  const netSocket = join(dir, 'net.sock');
  const child = spawn(process.execPath, ['-e', FLOOR_SERVERS, httpSocket, netSocket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let engine: Engine | null = null;
  let echo: Socket | null = null;
  const stop = async (): Promise<void> => {
    engine?.close();
    echo?.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((ok, fail) => {
      child.stdout?.once('data', () => ok());
      child.once('exit', (code) => fail(new Error(`the floor's servers exited with ${code}`)));
    });
    engine = connect({ socket: httpSocket });
    const s = netConnect(netSocket);
    echo = s;
    await new Promise<void>((ok, fail) => {
      s.once('connect', ok);
      s.once('error', fail);
    });
  } catch (e) {
    await stop();
    throw e;
  }
  const socket = echo;
  let answered: (() => void) | null = null;
  socket.on('data', () => {
    const a = answered;
    answered = null;
    a?.();
  });
  const health = async (): Promise<void> => {
    await (engine as Engine).health();
  };
  const ping = (): Promise<void> =>
    new Promise((ok) => {
      answered = ok;
      socket.write('x');
    });
  return { health, ping, stop };
}

async function sample(iterations: number, f: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 50; i++) await f();
  const out: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = nowMs();
    await f();
    out.push(nowMs() - t);
  }
  return out;
}

async function standalone(): Promise<void> {
  const iterations = Number(process.env.BENCH_ITERATIONS ?? 500);
  const d = await startDaemon();
  const f = await startFloor();
  try {
    const local = dist(await sample(iterations, () => run(DAEMON_OPTIONS)));
    const remote = dist(await sample(iterations, d.clientRun));
    const raw = dist(await sample(iterations, d.rawRun));
    const session = dist(await sample(iterations, d.sessionRun));
    const floor = dist(await sample(iterations, d.health));
    const bare = dist(await sample(iterations, f.health));
    const ping = dist(await sample(iterations, f.ping));
    console.log(`/bin/true, ${iterations} runs each, one at a time`);
    console.log(`  run() in process        p50 ${ms(local.p50)}  p99 ${ms(local.p99)}`);
    console.log(`  daemon, TS client       p50 ${ms(remote.p50)}  p99 ${ms(remote.p99)}  (${ratio(remote.p50, local.p50)} of local)`);
    console.log(`  daemon, raw JSON POST   p50 ${ms(raw.p50)}  p99 ${ms(raw.p99)}  (${ratio(raw.p50, local.p50)} of local)`);
    console.log(`  daemon, TS session      p50 ${ms(session.p50)}  p99 ${ms(session.p99)}  (${ratio(session.p50, local.p50)} of local)`);
    console.log(`  GET /v1/health          p50 ${ms(floor.p50)}  p99 ${ms(floor.p99)}  (the round trip alone)`);
    console.log(`  bare node:http health   p50 ${ms(bare.p50)}  p99 ${ms(bare.p99)}  (the floor: no daemon code)`);
    console.log(`  bare node:net echo      p50 ${ms(ping.p50)}  p99 ${ms(ping.p99)}  (two Node processes, no HTTP)`);
  } finally {
    await f.stop();
    await d.stop();
    await shutdown();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await standalone();
