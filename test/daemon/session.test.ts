// engine.session(): many runs over one WebSocket with the TS client, against the real daemon:
// the library's results and errors per run, one connection for all of them, a run cancelled by
// its AbortSignal alone (its box gone on the daemon), and close() aborting what is in flight.
import { describe, expect, it } from 'vitest';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { SandboxOptionsError } from '../../src/errors.js';
import { requireRoot } from '../helpers/host.js';
import { isInit, processesOf, startDaemon, until } from './daemon.js';

const programs = (pid: number): number[] => processesOf(pid).filter((p) => !isInit(p));
/** The daemon's log lines of requests on the WebSocket (one per connection, when it closes). */
const wsConnections = (log: string): number => (log.match(/"url":"\/v1\/ws","status":101/g) ?? []).length;

describe('engine.session(): many runs over one WebSocket', () => {
  it('runs at once over one connection, each with its own result or the library\'s error', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    try {
      {
        await using s = await engine.session();
        const runs = Array.from({ length: 6 }, (_, i) => s.run({ command: ['/bin/sh', '-c', `cat; echo ${i}; exit ${i % 2}`], stdin: `in${i}\n` }));
        const badOption = s.run({ command: ['/bin/true'], limits: { memory: 'lots' } });
        const forbidden = s.run({ command: ['/bin/true'], network: 'host' });
        badOption.catch(() => undefined);
        forbidden.catch(() => undefined);
        const collected = s.run({ command: ['/bin/sh', '-c', 'printf "\\377\\0" > out.bin'], collect: ['out.bin'] });
        expect(s.pending).toBe(9);
        const results = await Promise.all(runs);
        results.forEach((r, i) => expect(r).toMatchObject({ status: i % 2 === 0 ? 'ok' : 'nonzero-exit', exitCode: i % 2, stdout: `in${i}\n${i}\n` }));
        await expect(badOption).rejects.toBeInstanceOf(SandboxOptionsError);
        await expect(badOption).rejects.toMatchObject({ path: 'limits.memory' });
        await expect(forbidden).rejects.toMatchObject({ name: 'SandcellRemoteError', status: 403, field: 'network' });
        const c = await collected;
        expect(c.status).toBe('ok');
        expect(c.files?.['out.bin']).toEqual(Buffer.from([0xff, 0]));
        expect(s.pending).toBe(0);
        // The same connection serves more runs after the first ones ended.
        expect((await s.run({ command: ['/bin/echo', 'again'] })).stdout).toBe('again\n');
      }
      // The scope left: the session is closed, and all of it was one connection.
      expect(await until(() => wsConnections(d.log()) === 1)).toBe(true);
      // The option and policy errors were refused before they were admitted: 8 runs ran.
      expect((d.log().match(/"msg":"run"/g) ?? []).length).toBe(8);
    } finally {
      engine.close();
    }
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('an aborted signal cancels its run alone: its box ends on the daemon, the session goes on', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    try {
      const s = await engine.session();
      const ac = new AbortController();
      const doomed = s.run({ command: ['/bin/sleep', '300'], signal: ac.signal });
      doomed.catch(() => undefined);
      const other = s.run({ command: ['/bin/sh', '-c', 'sleep 1; echo other'] });
      expect(await until(() => programs(d.pid).length >= 2)).toBe(true);
      ac.abort();
      await expect(doomed).rejects.toMatchObject({ name: 'AbortError' });
      expect(s.pending).toBe(1);
      expect(await until(() => /"what":"run","status":"aborted"/.test(d.log()))).toBe(true);
      expect(await other).toMatchObject({ status: 'ok', stdout: 'other\n' });
      expect(await until(() => programs(d.pid).length === 0)).toBe(true);
      // Already aborted: nothing is sent.
      await expect(s.run({ command: ['/bin/true'], signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      expect((await s.run({ command: ['/bin/echo', 'still open'] })).stdout).toBe('still open\n');
      await s.close();
      expect(await until(() => wsConnections(d.log()) === 1)).toBe(true);
    } finally {
      engine.close();
    }
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('close() aborts the runs in flight and leaves nothing on the daemon; a closed or drained session refuses runs', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    try {
      const s = await engine.session();
      const inFlight = [s.run({ command: ['/bin/sleep', '300'] }), s.run({ command: ['/bin/sleep', '300'] })].map((r) => r.then(() => null, (e: unknown) => e));
      expect(await until(() => programs(d.pid).length === 2)).toBe(true);
      await s.close();
      for (const r of inFlight) expect(await r).toMatchObject({ name: 'AbortError' });
      expect(await until(() => programs(d.pid).length === 0)).toBe(true);
      expect(await until(() => (d.log().match(/"status":"aborted"/g) ?? []).length === 2)).toBe(true);
      await expect(s.run({ command: ['/bin/true'] })).rejects.toMatchObject({ name: 'AbortError' });

      // engine.close() closes the sessions it opened.
      const t = await engine.session();
      const held = t.run({ command: ['/bin/sleep', '300'] }).then(() => null, (e: unknown) => e);
      expect(await until(() => programs(d.pid).length === 1)).toBe(true);
      engine.close();
      expect(await held).toMatchObject({ name: 'AbortError' });
      expect(await until(() => programs(d.pid).length === 0)).toBe(true);

      // The daemon drains: the session's run in flight finishes, then the daemon closes it.
      const u = await engine.session();
      const slow = u.run({ command: ['/bin/sh', '-c', 'sleep 2; echo done'] });
      expect(await until(() => programs(d.pid).length > 0)).toBe(true);
      d.proc.kill('SIGTERM');
      expect(await slow).toMatchObject({ status: 'ok', stdout: 'done\n' });
      const late = u.run({ command: ['/bin/true'] });
      await expect(late).rejects.toBeInstanceOf(SandcellRemoteError);
      await expect(late).rejects.toMatchObject({ code: 'closed' });
      expect(await d.exited).toBe(0);
    } finally {
      engine.close();
    }
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('a session the daemon refuses rejects with its error', { timeout: 60_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket, token: 'not-a-token-of-this-daemon' });
    try {
      await expect(engine.session()).rejects.toMatchObject({ name: 'SandcellRemoteError', status: 401 });
    } finally {
      engine.close();
    }
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
