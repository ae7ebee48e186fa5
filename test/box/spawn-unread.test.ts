// spawn()'s output streams hold the program's pipes until they are read to their end or
// destroyed: disposing the process destroys those nobody read, destroying a stream closes its pipe,
// and what the program wrote stays readable after its end.
import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';

import { spawn, type SandboxProcess } from '../../src/index.js';
import { childPids, openFds, requireRoot } from '../helpers/host.js';

/** More than a pipe holds (1 MiB as root): the program blocks until its output is read or it is killed. */
const BIG = 4 << 20;
/** Less than a pipe holds, more than the streams' buffers: the program ends, its pipes short of EOF. */
const MID = 512 << 10;
const writeBoth = (bytes: number): string[] => ['/bin/sh', '-c', `head -c ${bytes} /dev/zero; head -c ${bytes} /dev/zero >&2`];

let baseline = 0;
beforeAll(async () => {
  requireRoot();
  // One spawn first, so that what the library opens once (the cgroup parent, the addon) is counted.
  const p = await spawn({ command: ['/bin/true'] });
  p.stdout.resume();
  p.stderr.resume();
  await p.wait();
  baseline = await openFds();
});

/** Everything written to `w`, once the stream piped into it has ended. */
function collector(): { sink: Writable; bytes: () => number; done: Promise<void> } {
  let n = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      cb();
    },
    final(cb) {
      finished();
      cb();
    },
  });
  return { sink, bytes: () => n, done };
}

describe('spawn() output nobody reads', () => {
  it('await using: leaving the scope destroys the unread streams and closes their pipes', async () => {
    let held: SandboxProcess | null = null;
    {
      await using p = await spawn({ command: writeBoth(BIG) });
      held = p;
      // The program is blocked on its full pipe; the scope ends it.
    }
    expect([held.stdout.destroyed, held.stderr.destroyed]).toEqual([true, true]);
    expect((await held.wait()).signal).toBe('SIGKILL');
    expect(await openFds()).toBe(baseline);
    expect(await childPids()).toEqual([]);
  });

  it('wait() leaves the streams to the caller; destroying them closes their pipes', async () => {
    const p = await spawn({ command: writeBoth(MID) });
    expect((await p.wait()).status).toBe('ok');
    expect([p.stdout.destroyed, p.stderr.destroyed]).toEqual([false, false]);
    p.stdout.destroy();
    p.stderr.destroy();
    expect(await openFds()).toBe(baseline);
  });

  it('after kill() too', async () => {
    const p = await spawn({ command: writeBoth(BIG) });
    p.kill();
    expect((await p.wait()).signal).toBe('SIGKILL');
    expect([p.stdout.destroyed, p.stderr.destroyed]).toEqual([false, false]);
    p.stdout.destroy();
    p.stderr.destroy();
    expect(await openFds()).toBe(baseline);
  });

  it('await using, for a program that ended by itself: its unread streams are destroyed and their pipes closed', async () => {
    let held: SandboxProcess | null = null;
    {
      await using p = await spawn({ command: writeBoth(MID) });
      held = p;
      expect((await p.wait()).status).toBe('ok');
    }
    expect([held.stdout.destroyed, held.stderr.destroyed]).toEqual([true, true]);
    expect(await openFds()).toBe(baseline);
  });

  it('what the program wrote is read after its end, and reading it to its end closes the pipes', async () => {
    const p = await spawn({ command: ['/bin/sh', '-c', 'echo out; echo err >&2'] });
    expect((await p.wait()).status).toBe('ok');
    const text = async (s: NodeJS.ReadableStream): Promise<string> => {
      let t = '';
      for await (const c of s) t += String(c);
      return t;
    };
    expect([await text(p.stdout), await text(p.stderr)]).toEqual(['out\n', 'err\n']);
    expect(await openFds()).toBe(baseline);
  });

  it('a stream being read when the scope ends is left to its reader, which gets all of it', async () => {
    const out = collector();
    const err = collector();
    {
      await using p = await spawn({ command: writeBoth(BIG) });
      p.stdout.pipe(out.sink);
      p.stderr.pipe(err.sink);
      expect((await p.wait()).status).toBe('ok');
    }
    await Promise.all([out.done, err.done]);
    expect([out.bytes(), err.bytes()]).toEqual([BIG, BIG]);
    expect(await openFds()).toBe(baseline);
  });
});
