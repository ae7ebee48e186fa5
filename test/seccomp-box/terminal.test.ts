// The rules of the presets marked `terminal` (ioctl TIOCSTI and TIOCLINUX), in real boxes. A run
// given a caller's descriptor that is a terminal keeps them: `default` answers EPERM, `judge`
// ends the run, and without a filter the injection would succeed (the pty is one the box can take
// as its controlling terminal). So does a run that reaches host sockets (a bind, the host's
// network), through which a host process could hand it a terminal. A run whose stdio are the
// library's pipes or /dev/null, with neither, gets the policy without them, so the kernel answers
// ioctl (ENOTTY); and no terminal can be opened or made from inside a box, nor through a bind of
// the host's /dev. The probe is put in the box as a file of the run, not bound.
import { spawn as spawnHost } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, type Result, type RunOptions } from '../../src/index.js';
import { filterFor } from '../../src/launch/filter.js';
import { nativeSpawn, type NativePlan } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { planRun } from '../../src/plan/build.js';
import { AUDIT_ARCH, emulateTrace, hostArch, presets, syscallNumber, withoutTerminalRules } from '../../src/seccomp/index.js';
import { SandboxProcess } from '../../src/supervise/process.js';
import { buildFixtureSet, type Fixtures } from '../helpers/fixtures.js';
import { childPids, requireRoot } from '../helpers/host.js';

const EPERM = 1;
const ENOENT = 2;
const ENOTTY = 25;
const EACCES = 13;
const TIOCSTI = 0x5412n;
const TIOCLINUX = 0x541cn;
const TCGETS = 0x5401n;

let probe: Fixtures;
beforeAll(() => {
  requireRoot();
  probe = buildFixtureSet({ sources: [join(dirname(fileURLToPath(import.meta.url)), 'terminal')], target: '/probe' });
});
afterAll(() => probe?.remove());

/** The "name rc=… errno=…" lines of a run, as { name: errno } (errno 0: the call succeeded). */
function errnos(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^(\S+) rc=(-?\d+) errno=(\d+)$/gm)) out[m[1]!] = Number(m[3]);
  return out;
}

/**
 * A pty pair made by a Python process (which holds both ends until its stdin closes), and the
 * slave opened here: no one's controlling terminal, so a session leader may take it as its own.
 */
async function withPty<T>(use: (fd: number, path: string) => Promise<T>): Promise<T> {
  const py = spawnHost('python3', ['-c', 'import os, pty, sys\nm, s = pty.openpty()\nprint(os.ttyname(s), flush=True)\nsys.stdin.read()'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(py, 'exit');
  try {
    const lines = createInterface({ input: py.stdout! });
    const [path] = (await once(lines, 'line')) as [string];
    lines.close();
    expect(path).toMatch(/^\/dev\/pts\/\d+$/);
    const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
    try {
      return await use(fd, path);
    } finally {
      closeSync(fd);
    }
  } finally {
    py.stdin!.end();
    await exited;
  }
}

/** A run through the plan and supervisor `run()` uses, with this stdin (a caller's descriptor, or /dev/null). */
async function runWithStdin(options: RunOptions, stdin: number | 'null'): Promise<{ plan: NativePlan; result: Result }> {
  const o = resolveOptions(options);
  const { plan, enforced } = planRun(o, { into: 'new', cgroup: null, filter: filterFor(o.seccomp), stdin });
  const native = await nativeSpawn(plan);
  const proc = new SandboxProcess({ native, cgroup: null, options: o, enforced, output: 'collect', stages: null, network: null });
  return { plan, result: await proc.collectOutput() };
}

const probeRun = (args: string[], seccomp: RunOptions['seccomp'], extra: Partial<RunOptions> = {}): RunOptions => ({
  command: ['/work/probe', ...args],
  files: { probe: { data: readFileSync(join(probe.dir, 'probe')), mode: 0o755 } },
  seccomp,
  limits: { wallTime: '10s' },
  ...extra,
});

/** Instructions `program` runs for ioctl(fd, request) on the host's architecture, and its answer. */
function ioctlPath(program: Buffer, request: bigint): { steps: number; argsRead: boolean; ret: number } {
  const arch = hostArch()!;
  const t = emulateTrace(program, { nr: syscallNumber('ioctl', arch)!, arch: AUDIT_ARCH[arch], args: [0n, request, 0n] });
  return { steps: t.steps, argsRead: t.offsetsRead.some((offset) => offset >= 16), ret: t.action };
}

describe('a run whose stdin is a terminal keeps the terminal rules', () => {
  it("default: TIOCSTI and TIOCLINUX fail with EPERM on the pty it leads", async () => {
    await withPty(async (fd) => {
      const { plan, result } = await runWithStdin(probeRun(['stdin'], 'default'), fd);
      expect(plan.stdio).toEqual([fd, 'pipe', 'pipe']);
      expect(plan.seccomp).toEqual(filterFor('default')!.terminal.program);
      expect(result.stderr).toBe('');
      expect(result.status).toBe('ok');
      expect(result.stdout).toMatch(/^isatty 1$/m);
      // It took the pty as its controlling terminal: only the filter stands in the way.
      expect(errnos(result.stdout)).toEqual({ tiocsctty: 0, tiocsti: EPERM, tioclinux: EPERM });
    });
  });

  it('judge: TIOCSTI ends the run, naming ioctl', async () => {
    await withPty(async (fd) => {
      const { plan, result } = await runWithStdin(probeRun(['stdin'], 'judge'), fd);
      expect(plan.seccomp).toEqual(filterFor('judge')!.terminal.program);
      expect(result.status).toBe('syscall-denied');
      expect(result.violation).toMatchObject({ syscall: 'ioctl' });
      expect(result.stdout).toBe('isatty 1\ntiocsctty rc=0 errno=0\ntiocsti attempting\n');
    });
  });

  it('without a filter the same program injects a character: the pty is a terminal the box could type into', async () => {
    await withPty(async (fd) => {
      const { result } = await runWithStdin(probeRun(['stdin'], 'none'), fd);
      expect(result.status).toBe('ok');
      expect(errnos(result.stdout)).toMatchObject({ tiocsctty: 0, tiocsti: 0 });
    });
  });
});

describe("a run with the library's own stdio gets the policy without them", () => {
  it.each(['default', 'judge'] as const)('%s: the filter answers ioctl from the call number alone, TIOCSTI and TIOCLINUX included', (preset) => {
    const f = filterFor(preset)!;
    expect(f.noTerminal.program).not.toEqual(f.terminal.program);
    for (const request of [TIOCSTI, TIOCLINUX, TCGETS]) {
      const without = ioctlPath(f.noTerminal.program, request);
      expect(without).toMatchObject({ argsRead: false, ret: 0x7fff0000 });
      // ld arch, jeq, ld nr, then jumps on the number alone to ret ALLOW: what the action cache proves.
      expect(without.steps).toBeLessThanOrEqual(12);
      expect(ioctlPath(f.terminal.program, request).argsRead).toBe(true);
    }
    // Nothing else changes: the policy without the marked rules is the preset minus two rules.
    expect(withoutTerminalRules(presets[preset]).rules).toHaveLength(presets[preset].rules.length - 2);
  });

  it.each(['default', 'judge'] as const)('%s: the plan of a run with /dev/null and pipes holds that program, and the tty layer answers', async (preset) => {
    const { plan, result } = await runWithStdin(probeRun(['stdin'], preset), 'null');
    expect(plan.seccomp).toEqual(filterFor(preset)!.noTerminal.program);
    expect(result.status).toBe('ok');
    expect(errnos(result.stdout)).toEqual({ tiocsctty: ENOTTY, tiocsti: ENOTTY, tioclinux: ENOTTY });
  });

  it.each(['default', 'judge'] as const)('%s: run() with pipes, TIOCSTI on stdin gets the kernel\'s ENOTTY and the run goes on', async (preset) => {
    const r = await run(probeRun(['stdin'], preset));
    expect(r.stderr).toBe('');
    expect(r.status).toBe('ok');
    expect(r.violation).toBeNull();
    // TIOCLINUX reaches the console driver's ioctl only on a virtual console: on a pipe, ENOTTY too.
    expect(r.stdout).toMatch(/^isatty 0$/m);
    expect(errnos(r.stdout)).toEqual({ tiocsctty: ENOTTY, tiocsti: ENOTTY, tioclinux: ENOTTY });
  });
});

describe('a run that reaches host sockets keeps them, whatever its stdio', () => {
  const reaches: [string, Partial<RunOptions>][] = [
    ['a bind of a host directory', { binds: [{ source: '/usr/share', target: '/share', readonly: true }] }],
    ["the host's network (its abstract sockets)", { network: 'host' }],
  ];
  for (const [what, extra] of reaches) {
    it(`${what}: default answers TIOCSTI and TIOCLINUX on a pipe with EPERM`, async () => {
      const r = await run(probeRun(['stdin'], 'default', extra));
      expect(r.status).toBe('ok');
      expect(errnos(r.stdout)).toEqual({ tiocsctty: ENOTTY, tiocsti: EPERM, tioclinux: EPERM });
    });
  }
});

describe('no terminal can be opened or made inside a box', () => {
  const inBox = ['/dev/tty', '/dev/console', '/dev/ptmx', '/dev/pts/ptmx', '/dev/pts/0', '/dev/tty0', '/dev/tty1'];

  it("the box's /dev has none of them", async () => {
    const r = await run(probeRun(['open', ...inBox], 'none'));
    expect(r.status).toBe('ok');
    expect(errnos(r.stdout)).toEqual(Object.fromEntries(inBox.map((p) => [p, ENOENT])));
  });

  it("the host's /dev bound in is nodev: none of its devices opens, its /dev/null neither", async () => {
    await withPty(async (_fd, pts) => {
      const paths = ['tty', 'console', 'ptmx', 'pts/ptmx', pts.slice('/dev/'.length), 'tty0', 'null'].map((p) => `/hostdev/${p}`);
      const r = await run(probeRun(['open', ...paths, '/dev/null'], 'none', { binds: [{ source: '/dev', target: '/hostdev', readonly: true }] }));
      expect(r.status).toBe('ok');
      // EACCES for every device of the bind (/dev/null, mode 0666, shows it is the nodev flag,
      // not the file's mode); the box's own /dev/null opens.
      expect(errnos(r.stdout)).toEqual({ ...Object.fromEntries(paths.map((p) => [p, EACCES])), '/dev/null': 0 });
    });
  });

  it('a device node cannot be made, nor devpts mounted, even without a filter', async () => {
    const r = await run(probeRun(['make'], 'none'));
    expect(r.status).toBe('ok');
    expect(errnos(r.stdout)).toEqual({ mknod: EPERM, 'mount-devpts': EPERM });
  });
});

describe('`sandcell run` in a terminal', () => {
  it('copies the terminal through pipes: the box holds no terminal, and gets the filter without the terminal rules', async () => {
    const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');
    const inBox = [
      'import fcntl, os, termios',
      "print('isatty', int(os.isatty(0)))",
      'try:',
      "  fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('tiocsti rc=0 errno=0')",
      'except OSError as e:',
      "  print('tiocsti rc=-1 errno=%d' % e.errno)",
    ].join('\n');
    const argv = [process.execPath, cli, 'run', '--', '/usr/bin/python3', '-c', inBox];
    // The CLI's stdin, stdout and stderr are a pty (Python's pty.spawn); its output comes back through it.
    const py = spawnHost('python3', ['-c', 'import pty, sys\nsys.exit(pty.spawn(sys.argv[1:]) >> 8)', ...argv], { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    py.stdout!.on('data', (c: Buffer) => chunks.push(c));
    const [code] = (await once(py, 'exit')) as [number];
    const out = Buffer.concat(chunks).toString().replace(/\r\n/g, '\n');
    expect(code, out).toBe(0);
    expect(out).toMatch(/^isatty 0$/m);
    // EPERM would be the terminal rules' answer; ENOTTY is the tty layer's on a pipe.
    expect(errnos(out)).toEqual({ tiocsti: ENOTTY });
    expect(await childPids()).toEqual([]);
  });
});
