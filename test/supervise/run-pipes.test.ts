// run() keeps its output through the addon (native/run_pipes.cc): both streams read as they come,
// one output budget across them enforced natively, what is left read once the run has ended, the
// input written, and every descriptor closed with the run, however it ended.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AbortError, run, Sandbox } from '../../src/index.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';

beforeAll(() => requireRoot());

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');

describe('run() output and input through the addon', () => {
  let fds: number;
  beforeAll(async () => {
    // One run first, so that lazily opened things (the cgroup parent, the addon) are counted.
    await run({ command: ['/bin/true'] });
    fds = await openFds();
  });

  afterAll(async () => {
    expect(await openFds()).toBe(fds);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });

  it('keeps stdout and stderr apart when the program writes to both in turn', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'] });
    expect(r.status).toBe('ok');
    const lines = (tag: string): string => Array.from({ length: 2000 }, (_, i) => `${tag} ${i}\n`).join('');
    expect(r.stdout).toBe(lines('out'));
    expect(r.stderr).toBe(lines('err'));
    expect([r.stdoutTruncated, r.stderrTruncated]).toEqual([false, false]);
  });

  it('binary output is kept byte for byte (decoded as UTF-8, as before)', async () => {
    // Every byte value, 4 times, written by the box's own printf from octal escapes.
    const bytes = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
    const escaped = Array.from({ length: 256 }, (_, i) => `\\${i.toString(8).padStart(3, '0')}`).join('');
    const r = await run({ command: ['/bin/sh', '-c', `for i in 1 2 3 4; do printf '${escaped}'; done`] });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe(bytes.toString('utf8'));
  });

  it('64 MiB of output with a 1 MiB limit: exactly the limit, truncated, output-limit', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'head -c 67108864 /dev/zero | tr "\\0" z'], limits: { output: '1MiB', wallTime: '20s' } });
    expect(r.status).toBe('output-limit');
    expect(r.stdout.length).toBe(1 << 20);
    expect(r.stdout).toMatch(/^z+$/);
    expect([r.stdoutTruncated, r.stderrTruncated]).toEqual([true, false]);
  });

  it('the budget is shared: the stream that crosses it is the one flagged', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'head -c 3000 /dev/zero; head -c 3000 /dev/zero >&2'], limits: { output: '4000B' } });
    expect(r.status).toBe('output-limit');
    expect([r.stdout.length, r.stderr.length]).toEqual([3000, 1000]);
    expect([r.stdoutTruncated, r.stderrTruncated]).toEqual([false, true]);
  });

  it('output exactly at the limit is not truncated', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'head -c 4000 /dev/zero'], limits: { output: '4000B' } });
    expect(r.status).toBe('ok');
    expect(r.stdout.length).toBe(4000);
    expect(r.stdoutTruncated).toBe(false);
  });

  it('a program that exits leaving a background child holding stdout: the result comes with what was written', async () => {
    const r = await run({ command: ['/bin/sh', '-c', '(sleep 30; echo late) & echo early'], limits: { wallTime: '20s' } });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('early\n');
  });

  it('stdin larger than the pipe is streamed in whole (bytes, a string and a stream)', async () => {
    const big = Buffer.alloc(8 << 20);
    for (let i = 0; i < big.length; i++) big[i] = 97 + (i % 26);
    const asBytes = await run({ command: ['/bin/cat'], stdin: big, limits: { output: '16MiB' } });
    expect(asBytes.status).toBe('ok');
    expect(asBytes.stdout.length).toBe(big.length);
    expect(asBytes.stdout === big.toString('latin1')).toBe(true);
    const asString = await run({ command: ['/usr/bin/wc', '-c'], stdin: 'é'.repeat(3 << 20) });
    expect(asString.stdout.trim()).toBe(String(6 << 20));
    const asStream = await run({ command: ['/usr/bin/wc', '-c'], stdin: Readable.from([big, big]) });
    expect(asStream.stdout.trim()).toBe(String(16 << 20));
  });

  it('a program that never reads its (large) stdin ends as usual', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'echo ignored'], stdin: Buffer.alloc(8 << 20) });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('ignored\n');
  });

  it('small stdin and empty stdin', async () => {
    expect((await run({ command: ['/bin/cat'], stdin: 'a+b\n' })).stdout).toBe('a+b\n');
    expect((await run({ command: ['/bin/cat'], stdin: '' })).stdout).toBe('');
    expect((await run({ command: ['/bin/cat'], stdin: new Uint8Array([104, 105]) })).stdout).toBe('hi');
  });

  it('an AbortSignal mid-output rejects with AbortError and leaves no descriptor', async () => {
    const before = await openFds();
    const ac = new AbortController();
    const pending = run({ command: ['/usr/bin/yes'], limits: { output: '1GiB', wallTime: '20s' }, signal: ac.signal });
    setTimeout(() => ac.abort(), 300);
    await expect(pending).rejects.toBeInstanceOf(AbortError);
    expect(await openFds()).toBe(before);
  });

  it('many runs of every kind leave no descriptor behind', async () => {
    const before = await openFds();
    const kinds = [
      () => run({ command: ['/bin/true'] }),
      () => run({ command: ['/bin/cat'], stdin: Buffer.alloc(3 << 20, 'x') }),
      () => run({ command: ['/bin/sh', '-c', 'head -c 2000000 /dev/zero'], limits: { output: '1MB' } }),
      () => run({ command: ['/bin/sh', '-c', 'echo x; echo y >&2; exit 3'] }),
    ];
    for (let i = 0; i < 40; i++) await kinds[i % kinds.length]!();
    expect(await openFds()).toBe(before);
  });

  it('a finished run keeps nothing of it alive: its options (here, its signal) are collected', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const one = async (): Promise<WeakRef<AbortSignal>> => {
      const signal = new AbortController().signal;
      expect((await run({ command: ['/bin/sh', '-c', 'echo out; echo err >&2'], signal })).stdout).toBe('out\n');
      return new WeakRef(signal);
    };
    const signals: WeakRef<AbortSignal>[] = [];
    for (let i = 0; i < 20; i++) signals.push(await one());
    // Every run's, the most recent one's included: nothing waits for a next run to let go.
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    expect(signals.flatMap((s, i) => (s.deref() !== undefined ? [i] : []))).toEqual([]);
  });

  it('in a living box, a writer of another run holding the pipe does not hold the result', async () => {
    // Run 1 takes run 2's stdout over a Unix socket in the box and keeps writing to it: run 2's
    // init cannot end it, so run 2's output is read while it keeps coming, for a second at most.
    const box = await Sandbox.create();
    try {
      const keeper = await box.spawn({
        command: ['/usr/bin/python3', '-u', '-c', [
          'import socket, time',
          's = socket.socket(socket.AF_UNIX); s.bind("/tmp/keep"); s.listen(); print("up")',
          'c, _ = s.accept(); _, fds, _, _ = socket.recv_fds(c, 1, 1)',
          'while True:',
          '    import os; os.write(fds[0], b"k"); time.sleep(0.01)',
        ].join('\n')],
      });
      await new Promise<void>((resolve) => keeper.stdout.once('data', () => resolve()));
      const r = await box.run({
        command: ['/usr/bin/python3', '-c', 'import socket, sys; print("mine", flush=True); c = socket.socket(socket.AF_UNIX); c.connect("/tmp/keep"); socket.send_fds(c, [b"x"], [1])'],
        limits: { wallTime: '10s' },
      });
      expect(r.status).toBe('ok');
      expect(r.stdout).toMatch(/^mine\nk*$/);
      keeper.kill();
      await keeper.wait();
    } finally {
      await box.destroy();
    }
  });

  it('without root (64 KiB pipes): large input streamed in and large output cut at the limit', () => {
    const script = `import { run } from ${JSON.stringify(DIST)};
      const big = Buffer.alloc(3 << 20, 'q');
      const echo = await run({ command: ['/bin/cat'], stdin: big, limits: { output: '8MiB', wallTime: '20s' } });
      const cut = await run({ command: ['/bin/sh', '-c', 'head -c 67108864 /dev/zero'], limits: { output: '1MiB', wallTime: '20s' } });
      console.log(JSON.stringify([echo.status, echo.stdout === big.toString('latin1'), cut.status, cut.stdout.length, cut.stdoutTruncated]));`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 50_000,
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(['ok', true, 'output-limit', 1 << 20, true]);
  });
});
