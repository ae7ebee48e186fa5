// checkOptions (and checkSandboxOptions, checkSandboxRunOptions for a box and a run in it): options
// checked once, taken by run() and spawn() (Sandbox.create(), box.run()) without a second check, and a
// copy nobody can change or forge into something unchecked. The daemon checks every run's
// options with it.
import { afterEach, describe, expect, it, vi } from 'vitest';

import { checkOptions, checkSandboxOptions, checkSandboxRunOptions, optionSchemas, parseOptions, run, Sandbox, spawn, SandboxOptionsError, type RunOptions } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';

/** The error run() gives for `options`, or null. */
async function runError(options: unknown): Promise<SandboxOptionsError | null> {
  try {
    await run(options as RunOptions);
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(SandboxOptionsError);
    return e as SandboxOptionsError;
  }
}

function checkError(options: unknown): SandboxOptionsError | null {
  try {
    checkOptions(options as RunOptions);
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(SandboxOptionsError);
    return e as SandboxOptionsError;
  }
}

/** Options of a content no earlier run had, so that no resolution of an earlier run serves them. */
let unique = 0;
const fresh = (o: RunOptions): RunOptions => ({ ...o, env: { CHECK_OPTIONS_TEST: `${process.pid}-${unique++}` } });

afterEach(() => {
  vi.restoreAllMocks();
});

describe('checkOptions', () => {
  it('is honoured: run() and spawn() take its copy without parsing it again, and give what plain options give', async () => {
    requireRoot();
    const parse = vi.spyOn(optionSchemas.run, 'safeParse');
    const options = fresh({ command: ['/bin/sh', '-c', 'echo "$CHECK_OPTIONS_TEST"; cat'], stdin: 'in\n', limits: { wallTime: '5s' } });
    const checked = checkOptions(options);
    expect(parse).toHaveBeenCalledTimes(1);
    const r = await run(checked);
    expect(parse).toHaveBeenCalledTimes(1);
    expect(r).toMatchObject({ status: 'ok', stdout: `${options.env!.CHECK_OPTIONS_TEST}\nin\n` });
    // Run again, and as spawn(): the same copy, still not parsed.
    expect((await run(checked)).stdout).toBe(r.stdout);
    const p = await spawn(checkOptions(fresh({ command: ['/bin/echo', 'spawned'] })));
    const out: Buffer[] = [];
    p.stdout!.on('data', (c: Buffer) => out.push(c));
    expect((await p.wait()).status).toBe('ok');
    expect(Buffer.concat(out).toString()).toBe('spawned\n');
    expect(parse).toHaveBeenCalledTimes(2);
    // What the schema made of them, without a parse either: frozen, so it stays what was checked.
    const parsed = parseOptions('run', checked);
    expect(parse).toHaveBeenCalledTimes(2);
    expect(parsed).toMatchObject({ command: options.command, limits: { wallTime: 5000 }, stdin: 'in\n' });
    expect(parseOptions('run', checked)).toBe(parsed);
    expect(() => {
      (parsed.limits as { wallTime: number }).wallTime = 3_600_000;
    }).toThrow(TypeError);
  });

  it('its copy is frozen, and the caller changing its own object after the check changes nothing that runs', async () => {
    requireRoot();
    const options = { command: ['/bin/echo', 'checked'], limits: { wallTime: '5s' as string | number } };
    const checked = checkOptions(options);
    expect(checked).not.toBe(options);
    expect(Object.isFrozen(checked) && Object.isFrozen(checked.command) && Object.isFrozen(checked.limits)).toBe(true);
    expect(() => {
      (checked.command as string[])[1] = 'changed';
    }).toThrow(TypeError);
    expect(() => {
      (checked as { cgroupParent?: string }).cgroupParent = '/elsewhere';
    }).toThrow(TypeError);
    options.command[1] = 'changed';
    options.limits.wallTime = 'not a duration';
    expect((await run(checked)).stdout).toBe('checked\n');
  });

  it('a getter is read once, before the check: what was checked is what runs', async () => {
    requireRoot();
    let reads = 0;
    const options = {
      get command(): string[] {
        reads++;
        return reads === 1 ? ['/bin/echo', 'first read'] : ['/bin/sh', '-c', 'echo later read'];
      },
    };
    const checked = checkOptions(options);
    expect(reads).toBe(1);
    expect((await run(checked)).stdout).toBe('first read\n');
    expect(reads).toBe(1);
  });

  it('cannot be forged: a look-alike or a spread copy is plain options, checked by run() as any other', async () => {
    requireRoot();
    const checked = checkOptions({ command: ['/bin/true'], limits: { wallTime: '5s' } });
    const spread = { ...checked, limits: { wallTime: 'forever' } };
    const lookAlike = Object.freeze({ command: Object.freeze(['/bin/true']), limits: Object.freeze({ wallTime: -1 }) });
    for (const forged of [spread, lookAlike]) {
      const e = await runError(forged);
      expect(e?.path).toBe('limits.wallTime');
      expect(() => parseOptions('run', forged)).toThrow(SandboxOptionsError);
    }
  });

  it('file bytes are counted again at the run: a buffer grown past the limit after the check is refused', async () => {
    requireRoot();
    // A resizable ArrayBuffer (ES2024, newer than this project's lib typings).
    const Resizable = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(length: number): void };
    const buffer = new Resizable(16, { maxByteLength: 9 << 20 });
    const checked = checkOptions({ command: ['/bin/true'], files: { 'big.bin': new Uint8Array(buffer) } });
    buffer.resize(9 << 20);
    const e = await runError(checked);
    expect(e?.issues).toEqual([{ path: 'files', message: expect.stringContaining('bytes in all') as string }]);
  });

  it('a bad input gives the error run() gives: the same class, message, path and issues', async () => {
    const bad: unknown[] = [
      null,
      'options',
      [],
      { command: ['/bin/true'], limits: { wallTime: 'x', memory: 12 } },
      { command: ['/bin/true'], unknownField: 1 },
      { command: ['/bin/true'], stdin: 42 },
      { command: ['/bin/true'], files: { 'a.txt': 7 } },
      { command: [], cwd: 'relative' },
    ];
    for (const options of bad) {
      const fromRun = await runError(options);
      const fromCheck = checkError(options);
      expect(fromRun).not.toBeNull();
      expect({ message: fromCheck?.message, path: fromCheck?.path, issues: fromCheck?.issues }).toEqual({ message: fromRun?.message, path: fromRun?.path, issues: fromRun?.issues });
    }
  });

  it("a run's own input beside options of a shape already resolved is checked as the schema checks it", async () => {
    requireRoot();
    const base = fresh({ command: ['/bin/cat'], limits: { wallTime: '5s' } });
    expect((await run(base)).status).toBe('ok');
    // The shape is resolved: its parse serves the next check, the run's own input is checked apart.
    const e = checkError({ ...base, stdin: 42 });
    expect(e?.issues).toEqual((await runError({ ...base, stdin: 42 }))?.issues);
    const parse = vi.spyOn(optionSchemas.run, 'safeParse');
    const checked = checkOptions({ ...base, stdin: 'own input\n' });
    // Keyed as run() keys plain options: the shape's parse is taken, the schema is not walked.
    expect(parse).not.toHaveBeenCalled();
    expect(parseOptions('run', checked)).toMatchObject({ command: ['/bin/cat'], limits: { wallTime: 5000 }, env: base.env, stdin: 'own input\n' });
    expect((await run(checked)).stdout).toBe('own input\n');
  });
});

describe('checkSandboxOptions and checkSandboxRunOptions', () => {
  it('are honoured: Sandbox.create(), box.run() and box.spawn() take their copies without walking the schema again', async () => {
    requireRoot();
    const shape = vi.spyOn(optionSchemas.sandbox, 'safeParse');
    const program = vi.spyOn(optionSchemas.sandboxRun, 'safeParse');
    const boxOptions = checkSandboxOptions({ env: { BOX: 'box' }, limits: { memory: '128MiB' } });
    const runOptions = checkSandboxRunOptions({ command: ['/bin/sh', '-c', 'echo "$BOX $RUN"; cat'], env: { RUN: 'run' }, stdin: 'in\n', limits: { wallTime: '5s' } });
    expect([shape.mock.calls.length, program.mock.calls.length]).toEqual([1, 1]);
    await using box = await Sandbox.create(boxOptions);
    expect((await box.run(runOptions)).stdout).toBe('box run\nin\n');
    expect((await box.run(runOptions)).stdout).toBe('box run\nin\n');
    const p = await box.spawn(checkSandboxRunOptions({ command: ['/bin/echo', 'spawned'] }));
    const out: Buffer[] = [];
    p.stdout!.on('data', (c: Buffer) => out.push(c));
    expect((await p.wait()).status).toBe('ok');
    expect(Buffer.concat(out).toString()).toBe('spawned\n');
    expect([shape.mock.calls.length, program.mock.calls.length]).toEqual([1, 2]);
    // What the schema made of them, without a walk either, and frozen.
    const parsed = parseOptions('sandboxRun', runOptions);
    expect(parsed).toMatchObject({ limits: { wallTime: 5000 }, stdin: 'in\n' });
    expect(parseOptions('sandbox', boxOptions)).toMatchObject({ limits: { memory: 128 << 20 } });
    expect([shape.mock.calls.length, program.mock.calls.length]).toEqual([1, 2]);
    expect(() => {
      (parsed.limits as { wallTime: number }).wallTime = 3_600_000;
    }).toThrow(TypeError);
  });

  it('their copies are frozen; a spread copy, a look-alike or a copy checked as the other kind is walked as plain options', async () => {
    requireRoot();
    const options = { command: ['/bin/echo', 'checked'], limits: { wallTime: '5s' as string | number } };
    const checked = checkSandboxRunOptions(options);
    expect(Object.isFrozen(checked) && Object.isFrozen(checked.command) && Object.isFrozen(checked.limits)).toBe(true);
    options.command[1] = 'changed';
    await using box = await Sandbox.create(checkSandboxOptions({}));
    expect((await box.run(checked)).stdout).toBe('checked\n');
    const spread = { ...checked, limits: { wallTime: 'forever' } };
    const lookAlike = Object.freeze({ command: Object.freeze(['/bin/true']), limits: Object.freeze({ wallTime: -1 }) });
    for (const forged of [spread, lookAlike] as never[]) {
      await expect(box.run(forged)).rejects.toMatchObject({ name: 'SandboxOptionsError', path: 'limits.wallTime' });
      expect(() => parseOptions('sandboxRun', forged)).toThrow(SandboxOptionsError);
    }
    // Checked as a box's options, they are no run's: walked by the run's schema, refused as the same plain options are.
    const asBox = checkSandboxOptions({ network: 'none', env: { A: 'b' } });
    const program = vi.spyOn(optionSchemas.sandboxRun, 'safeParse');
    const e = (await box.run(asBox as never).catch((err: unknown) => err)) as SandboxOptionsError;
    expect(program).toHaveBeenCalledTimes(1);
    expect(e).toBeInstanceOf(SandboxOptionsError);
    expect(e.issues).toEqual(((await box.run({ ...asBox } as never).catch((err: unknown) => err)) as SandboxOptionsError).issues);
  });

  it('a bad input gives the error Sandbox.create() or box.run() gives: the same message, path and issues', async () => {
    requireRoot();
    await using box = await Sandbox.create();
    const cases: [unknown, () => unknown, (o: unknown) => Promise<unknown>][] = [
      [null, () => checkSandboxOptions(null as never), (o) => Sandbox.create(o as never)],
      [{ limits: { memory: 'lots' } }, () => checkSandboxOptions({ limits: { memory: 'lots' } }), (o) => Sandbox.create(o as never)],
      [{ nonsense: 1 }, () => checkSandboxOptions({ nonsense: 1 } as never), (o) => Sandbox.create(o as never)],
      [[], () => checkSandboxRunOptions([] as never), (o) => box.run(o as never)],
      [{ command: ['/bin/true'], stdin: 42 }, () => checkSandboxRunOptions({ command: ['/bin/true'], stdin: 42 } as never), (o) => box.run(o as never)],
      [{ command: [], cwd: 'relative' }, () => checkSandboxRunOptions({ command: [], cwd: 'relative' }), (o) => box.run(o as never)],
    ];
    for (const [options, check, use] of cases) {
      const fromUse = (await use(options).then(() => null, (e: unknown) => e)) as SandboxOptionsError;
      let fromCheck: SandboxOptionsError | null = null;
      try {
        check();
      } catch (e) {
        fromCheck = e as SandboxOptionsError;
      }
      expect(fromUse).toBeInstanceOf(SandboxOptionsError);
      expect(fromCheck).toBeInstanceOf(SandboxOptionsError);
      expect({ message: fromCheck?.message, path: fromCheck?.path, issues: fromCheck?.issues }).toEqual({ message: fromUse.message, path: fromUse.path, issues: fromUse.issues });
    }
  });
});
