// The program is not PID 1: signals it raises on itself behave as on any host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, spawn } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { requireRoot } from '../helpers/host.js';

let fx: Fixtures;
beforeAll(() => {
  requireRoot();
  fx = buildFixtures();
});
afterAll(() => fx?.remove());

describe('signals', () => {
  it('abort() gives signaled with SIGABRT', async () => {
    const r = await run({ command: [fx.inBox('abort')], binds: [fx.bind], limits: { wallTime: '10s' } });
    expect(r.status).toBe('signaled');
    expect(r.signal).toBe('SIGABRT');
    expect(r.exitCode).toBeNull();
  });

  it('kill(getpid(), SIGSEGV) gives SIGSEGV', async () => {
    const r = await run({ command: [fx.inBox('segv')], binds: [fx.bind], limits: { wallTime: '10s' } });
    expect(r.status).toBe('signaled');
    expect(r.signal).toBe('SIGSEGV');
  });

  it('a non-zero exit is reported as such', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'exit 42'] });
    expect(r.status).toBe('nonzero-exit');
    expect(r.exitCode).toBe(42);
    expect(r.signal).toBeNull();
  });

  it('signals sent through the handle reach the program', async () => {
    const box = await spawn({ command: ['/bin/sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done'] });
    const ready = new Promise<void>((resolve) => box.stdout.once('data', () => resolve()));
    let out = '';
    box.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const ended = new Promise((resolve) => box.stdout.once('end', resolve));
    await ready;
    expect(box.kill('SIGTERM')).toBe(true);
    const r = await box.wait();
    expect(r.exitCode).toBe(7);
    expect(r.status).toBe('nonzero-exit');
    await ended;
    expect(out).toContain('got-term');
  });
});
