// runGroup: boxes joined by pipes, their results, the end of a group, and bad options.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runGroup } from '../../src/group/index.js';
import { Sandbox, SandboxOptionsError } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { expectNothingLeft } from './helpers.js';

beforeAll(() => requireRoot());
afterAll(() => expectNothingLeft());

describe('runGroup', () => {
  it('a pipeline: stdout to stdin, stderr and unpiped stdout collected, every result returned', async () => {
    const g = await runGroup({
      boxes: {
        a: { command: ['/bin/sh', '-c', 'echo hello; echo to-err >&2'] },
        b: { command: ['/usr/bin/tr', 'a-z', 'A-Z'] },
        c: { command: ['/bin/cat'], stdin: 'given\n' },
      },
      pipes: [{ from: 'a.stdout', to: 'b.stdin' }],
    });
    expect(g.boxes.a).toMatchObject({ status: 'ok', stdout: '', stderr: 'to-err\n', endedByGroup: false });
    expect(g.boxes.b).toMatchObject({ status: 'ok', stdout: 'HELLO\n' });
    expect(g.boxes.c).toMatchObject({ status: 'ok', stdout: 'given\n' });
    expect(g.pipes).toEqual([{ from: 'a.stdout', to: 'b.stdin', bytes: 6 }]);
    expect([...g.order].sort()).toEqual(['a', 'b', 'c']);
  });

  it('two boxes talking both ways, one of them a run in a living Sandbox', async () => {
    const box = await Sandbox.create({ files: { 'ask.sh': 'for i in 1 2 3; do echo $i; read r; echo "got $r" >&2; done' } });
    try {
      const g = await runGroup({
        boxes: {
          asker: { sandbox: box, command: ['/bin/sh', 'ask.sh'] },
          doubler: { command: ['/bin/sh', '-c', 'while read n; do echo $((n * 2)); done'] },
        },
        pipes: [
          { from: 'asker.stdout', to: 'doubler.stdin' },
          { from: 'doubler.stdout', to: 'asker.stdin' },
        ],
      });
      expect(g.boxes.asker?.stderr).toBe('got 2\ngot 4\ngot 6\n');
      expect(g.boxes.doubler?.status).toBe('ok');
      expect(g.boxes.doubler?.stdout).toBe('');
    } finally {
      await box.destroy();
    }
  });

  it('endOn: when that box ends, the others get the grace and are then killed', async () => {
    const g = await runGroup({
      boxes: {
        quick: { command: ['/bin/true'] },
        sleeper: { command: ['/bin/sleep', '30'], limits: { wallTime: '30s' } },
      },
      endOn: ['quick'],
      graceMs: 100,
    });
    expect(g.order).toEqual(['quick', 'sleeper']);
    expect(g.boxes.sleeper).toMatchObject({ endedByGroup: true, signal: 'SIGKILL', endOrder: 1 });
    expect(g.boxes.quick?.endedByGroup).toBe(false);
  });

  it('a receiver that is gone does not stop the sender, whose output limit still caps the flood', async () => {
    const g = await runGroup({
      boxes: {
        flood: { command: ['/bin/sh', '-c', 'exec /usr/bin/yes'], limits: { output: '256KiB' } },
        gone: { command: ['/usr/bin/head', '-c', '10'] },
      },
      pipes: [{ from: 'flood.stdout', to: 'gone.stdin' }],
    });
    expect(g.boxes.gone).toMatchObject({ status: 'ok', stdout: 'y\ny\ny\ny\ny\n' });
    expect(g.boxes.flood?.status).toBe('output-limit');
  });

  it('bad options are a SandboxOptionsError naming the field; nothing is started', async () => {
    const bad = async (o: Parameters<typeof runGroup>[0]) => {
      try {
        await runGroup(o);
      } catch (e) {
        if (e instanceof SandboxOptionsError) return e.issues.map((i) => `${i.path}: ${i.message}`);
        throw e;
      }
      throw new Error('ran');
    };
    const one = { command: ['/bin/true'] };
    expect(await bad({ boxes: {} })).toEqual(['boxes: must name at least one box']);
    expect(await bad({ boxes: { a: one }, pipes: [{ from: 'a.stdin', to: 'b.stdin' }] })).toEqual([
      'pipes[0].from: must be "<box>.stdout" or "<box>.stderr"',
      'pipes[0].to: names no box of the group ("b")',
    ]);
    expect(
      await bad({ boxes: { a: one, b: { ...one, stdin: 'x' } }, pipes: [{ from: 'a.stdout', to: 'b.stdin' }], endOn: ['c'] }),
    ).toEqual(['pipes[0].to: box b is given stdin already', 'endOn[0]: names no box of the group ("c")']);
    // A box that cannot start: those started are ended, the error is the box's own.
    await expect(runGroup({ boxes: { a: { command: ['/bin/sleep', '30'] }, b: { command: ['/no/such'] } } })).rejects.toThrow(/execve/);
  });
});
