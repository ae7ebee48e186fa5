// Options are parsed by the schema of the fields they hold until a layer builds the whole schema
// (`optionSchemas`): a one-shot run builds a few field schemas, not every one. Both parse alike,
// which is what this file shows: the same output, or the same issues in the same order.
import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';

import { formatOptionPath } from '../src/errors.js';

type Kind = 'run' | 'sandbox' | 'sandboxRun';

class WithInherited {
  declare command: string[];
}
WithInherited.prototype.command = ['/bin/inherited'];

const signal = new AbortController().signal;
const stdin = Readable.from([]);

/** Options of every field, good and bad, alone and together, and keys that are no field. */
const INPUTS: unknown[] = [
  {},
  { command: ['/bin/true'] },
  { args: ['/bin/true'], signal },
  { command: ['/bin/echo', 'a'], args: ['b'], env: { A: '1' }, cwd: '/work/./x/', stdin: 'in', collect: ['out/*.txt', './a'] },
  { command: [] },
  { command: ['/bin/true', 'a\0b'], env: { 'A=B': 'x' }, cwd: 'relative' },
  { limits: { wallTime: '5s', cpuTime: 1000, memory: '64MiB', processes: 8, output: '1KiB', fileSize: 4096, stack: '1MiB', openFiles: 64, tmpfs: null, cpus: 0.5 } },
  { limits: { wallTime: 0, memory: '1KiB', stack: 1, tmpfs: 1, cpus: 0, processes: 1.5, frob: 1 } },
  { limits: { wallTime: null, memory: null, cpuTime: 'soon' } },
  { image: '/srv/root/../x', writable: true, hostname: 'box-1', cgroupParent: '/sys/fs/cgroup/x' },
  { image: '.hidden', writable: 'yes', hostname: '-bad-', cgroupParent: '' },
  { network: 'host' },
  { network: 'my-net_1' },
  { network: 'Not A Name' },
  { network: { allow: ['example.com:443', '127.0.0.1:*'], publish: [{ box: 8000 }, { box: 8001, host: '127.0.0.1:18001' }], limits: { connections: 4, bytesIn: '1MiB' } } },
  { network: { allow: ['nonsense'], publish: [{ box: 3128 }, { box: 80, host: 'nowhere' }] } },
  { network: { limits: { connections: 1 } } },
  { binds: [{ source: '/etc' }, { source: '/tmp', target: '/data', readonly: false }], mounts: [{ type: 'tmpfs', target: '/scratch', size: '1MiB' }, { source: '/usr' }] },
  { binds: [{ source: 'etc', extra: 1 }], mounts: [{ type: 'tmpfs', target: '/x', size: 'big' }, { type: 'volume' }] },
  { user: { uid: 1000, gid: 1000 } },
  { user: { uid: -1, name: 'x' } },
  { files: { 'a.txt': 'a', 'b/c.bin': new Uint8Array([1, 2]), 'run.sh': { data: 'x', mode: 0o755 } } },
  { files: { 'a.txt': 7, 'b.txt': { data: 'x', mode: 0o7777 } } },
  { stdin, signal, seccomp: 'judge' },
  { stdin: 42, signal: 'stop', seccomp: { anything: true } },
  { collect: ['/abs', '../up', ''] },
  { frob: 1, command: ['/bin/true'], knob: 2 },
  { command: undefined, env: undefined, limits: undefined },
  new WithInherited(),
  Object.assign(new WithInherited(), { args: [1] }),
];

/** What a parse gave: its output, or its issues as the library names them. */
function outcome(parse: () => unknown): unknown {
  try {
    return { output: parse() };
  } catch (e) {
    return { issues: (e as { issues: unknown }).issues };
  }
}

/**
 * The zod schemas made while `fn` runs (zod calls `__zod_globalConfig.postProcessor`, a hook of
 * its own, global to the process, after making each).
 */
async function schemasMade(fn: () => unknown): Promise<number> {
  const global = globalThis as { __zod_globalConfig?: { postProcessor?: () => void } };
  const config = (global.__zod_globalConfig ??= {});
  let made = 0;
  config.postProcessor = () => {
    made += 1;
  };
  try {
    await fn();
    return made;
  } finally {
    delete config.postProcessor;
  }
}

/** options.ts as a fresh process has it: no whole schema built, no set of fields seen. */
async function freshOptions(): Promise<typeof import('../src/options.js')> {
  vi.resetModules();
  return await import('../src/options.js');
}

describe('option schemas', () => {
  it('a parse before the whole schema is built gives what the whole schema gives, for every kind', async () => {
    const kinds: Kind[] = ['run', 'sandbox', 'sandboxRun'];
    const all: unknown[] = [];
    for (const kind of kinds) {
      // Fewer sets of fields per process than a kind keeps schemas for, so that each parse here walks the schema of its own fields.
      for (let from = 0; from < INPUTS.length; from += 10) {
        const options = await freshOptions();
        const inputs = INPUTS.slice(from, from + 10);
        const byFields = inputs.map((input) => outcome(() => options.parseOptions(kind, input)));
        all.push(...byFields);
        const whole = options.optionSchemas[kind];
        inputs.forEach((input, i) => {
          const parsed = whole.safeParse(input);
          const expected = parsed.success ? { output: parsed.data } : { issues: parsed.error.issues.map((x) => ({ path: formatOptionPath(x.path), message: x.message })) };
          expect(byFields[i], `${kind} ${from + i}`).toEqual(expected);
        });
        // Once built, the whole schema is what a parse walks.
        const walk = vi.spyOn(whole, 'safeParse');
        options.parseOptions(kind, { env: { A: 'b' } });
        expect(walk).toHaveBeenCalledTimes(1);
      }
    }
    // Both good and bad options were compared.
    expect(all.filter((o) => 'issues' in (o as object)).length).toBeGreaterThan(30);
    expect(all.filter((o) => 'output' in (o as object)).length).toBeGreaterThan(30);
  });

  it('a parse builds the schemas of the fields its options hold, not all of them', async () => {
    let options!: typeof import('../src/options.js');
    expect(
      await schemasMade(async () => {
        options = await freshOptions();
      }),
    ).toBe(0);
    const oneRun = await schemasMade(() => options.parseOptions('run', { args: ['/bin/true'], signal }));
    expect(await schemasMade(() => options.parseOptions('run', { args: ['/bin/echo'], signal }))).toBe(0);
    const whole = await schemasMade(() => options.optionSchemas.run);
    expect(oneRun * 10).toBeLessThan(whole);
  });

  it('options in more sets of fields than a kind keeps schemas for are parsed by the whole schema', async () => {
    const options = await freshOptions();
    const fields = ['env', 'cwd', 'limits', 'hostname', 'writable'] as const;
    const values = { env: { A: 'b' }, cwd: '/work', limits: { wallTime: 1000 }, hostname: 'h', writable: false };
    // 31 sets: every non-empty combination of five fields.
    for (let set = 1; set < 32; set++) {
      options.parseOptions('run', Object.fromEntries(fields.filter((_, i) => set & (1 << i)).map((f) => [f, values[f]])));
    }
    // Built already: reading it makes no schema, and parses walk it.
    expect(await schemasMade(() => options.optionSchemas.run)).toBe(0);
    const walk = vi.spyOn(options.optionSchemas.run, 'safeParse');
    options.parseOptions('run', { cwd: '/work' });
    expect(walk).toHaveBeenCalledTimes(1);
  });
});
