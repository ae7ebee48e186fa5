// Load and abuse through the socket: every request answered and correct, a full queue answered
// with 429 rather than left to time out, bad requests answered with errors, and the daemon alive
// and leaving nothing behind after all of it.
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { requireRoot } from '../helpers/host.js';
import { http, isInit, processesOf, startDaemon, until } from './daemon.js';

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8').trim();
  } catch {
    return '(gone)';
  }
}

/** Writes raw bytes on a fresh connection and returns all that comes back until it closes. */
function raw(socket: string, write: (s: Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socket);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString()));
    s.on('close', () => resolve(text));
    // A reset or a broken pipe (the daemon closed on a client still writing) ends in 'close' too.
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    s.on('connect', () => write(s));
  });
}

describe('load', () => {
  it('2,000 runs of /bin/true at concurrency 16: every one answered and correct, nothing left', { timeout: 600_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    let next = 0;
    const results: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 2000) {
          next++;
          const r = await engine.run({ command: ['/bin/true'] });
          results.push(`${r.status}/${r.exitCode}/${r.stdout}/${r.stderr}`);
        }
      }),
    );
    engine.close();
    expect(results.length).toBe(2000);
    expect(new Set(results)).toEqual(new Set(['ok/0//']));
    // A warm box the daemon builds after the last run is not an init until its execve: a left
    // program stays, a box being built becomes an init within milliseconds.
    const others = (): string[] =>
      processesOf(d.pid)
        .filter((p) => !isInit(p))
        .map((p) => `${p} ${readProc(p, 'comm')} ${readProc(p, 'cmdline').replaceAll('\0', ' ')}`);
    await until(() => others().length === 0, 10_000);
    expect(others()).toEqual([]);
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('with parallelism 1 and max-queue 1, a burst gets 429s with Retry-After, not timeouts', async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--parallelism', '1', '--max-queue', '1'] });
    const engine = connect({ socket: d.socket });
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () =>
        engine.run({ command: ['/bin/sleep', '0.5'] }).then(
          (r) => r.status,
          (e: unknown) => (e instanceof SandcellRemoteError ? `${e.status}/${e.code}/${e.retryAfter}` : String(e)),
        ),
      ),
    );
    engine.close();
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(2);
    expect(outcomes.filter((o) => o === '429/queue-full/1').length).toBeGreaterThanOrEqual(1);
    expect(outcomes.every((o) => o === 'ok' || o === '429/queue-full/1')).toBe(true);
    // The log is written in blocks: a line is there within a moment, not at once.
    expect(await until(() => d.log().includes('"status":429'))).toBe(true);
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});

describe('bad requests are answered, never crash the daemon', () => {
  it('malformed JSON, wrong types, huge bodies, garbage, slow clients and half-closed sockets', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--max-body', '1MiB', '--request-timeout', '1s'] });
    const malformed = await http(d.socket, 'POST', '/v1/run', '{"command": ["/bin/true"');
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body)).toMatchObject({ error: { code: 'malformed-json' } });
    expect((await http(d.socket, 'POST', '/v1/run', '[1,2]')).status).toBe(400);
    expect((await http(d.socket, 'POST', '/v1/run', 'null')).status).toBe(400);
    const stdinBad = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ command: ['/bin/true'], stdin: 42 }));
    expect(JSON.parse(stdinBad.body)).toMatchObject({ error: { code: 'invalid-options', field: 'stdin' } });
    const unknownFile = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ command: ['/bin/true'], stdin: { fileId: `sha256:${'0'.repeat(64)}` } }));
    expect(unknownFile.status).toBe(400);
    expect(JSON.parse(unknownFile.body)).toMatchObject({ error: { code: 'unknown-file', field: 'stdin.fileId' } });
    expect((await http(d.socket, 'POST', '/v1/run', '{}', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await http(d.socket, 'GET', '/v1/nothing')).status).toBe(404);
    expect((await http(d.socket, 'POST', '/v1/files/%E0%A4%A')).status).toBe(400);

    // A body over the limit, declared or not: 413, the rest is not read.
    const declared = await raw(d.socket, (s) => {
      s.write('POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n');
      s.write('x'.repeat(64 * 1024));
    });
    expect(declared).toMatch(/^HTTP\/1\.1 413/);
    const chunked = await raw(d.socket, (s) => {
      s.write('POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = 'y'.repeat(64 * 1024);
      for (let i = 0; i < 20; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    });
    expect(chunked).toMatch(/^HTTP\/1\.1 413/);
    // Not HTTP at all.
    expect(await raw(d.socket, (s) => s.write('\x00\x01garbage\r\n\r\n'))).toMatch(/^HTTP\/1\.1 400/);
    // A client that sends half its headers and stalls is cut off by the request timeout.
    expect(await raw(d.socket, (s) => s.write('POST /v1/run HTTP/1.1\r\nHost: x\r\n'))).toMatch(/^HTTP\/1\.1 408/);
    // A client that sends a run and half-closes its socket: answered or cancelled, never a crash,
    // and its program does not outlive it.
    const half = await raw(d.socket, (s) => {
      const body = JSON.stringify({ command: ['/bin/sleep', '2'] });
      s.end(`POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    expect(half === '' || half.startsWith('HTTP/1.1 200')).toBe(true);
    expect(await until(() => processesOf(d.pid).filter((p) => !isInit(p)).length === 0)).toBe(true);
    // Many connections opened and dropped at once.
    await Promise.all(Array.from({ length: 50 }, () => raw(d.socket, (s) => s.destroy())));

    const health = await http(d.socket, 'GET', '/v1/health');
    expect(health.status).toBe(200);
    const ok = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ command: ['/bin/echo', 'still here'] }));
    expect(JSON.parse(ok.body)).toMatchObject({ status: 'ok', stdout: 'still here\n' });
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
