/**
 * Plain child processes for baselines and peers (Node's own spawn, bubblewrap, util-linux unshare),
 * awaited the same way `run()` is: stdin/stdout/stderr are pipes, the input is written and closed,
 * the output read to its end, and the promise settles on 'close'.
 */
import { spawn as cpSpawn, spawnSync } from 'node:child_process';
import { lstatSync, readlinkSync } from 'node:fs';

export interface PlainResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdoutBytes: number;
  stderr: string;
}

/** Runs a command like run() does and resolves on 'close'. Every child is awaited: none outlives the bench. */
export function plainRun(file: string, args: readonly string[], input?: Buffer): Promise<PlainResult> {
  return new Promise((resolve, reject) => {
    const c = cpSpawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdoutBytes = 0;
    const err: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => {
      stdoutBytes += d.length;
    });
    c.stderr.on('data', (d: Buffer) => err.push(d));
    c.stdin.on('error', () => undefined);
    c.on('error', reject);
    c.on('close', (code, signal) => resolve({ code, signal, stdoutBytes, stderr: Buffer.concat(err).toString('utf8') }));
    if (input) c.stdin.end(input);
    else c.stdin.end();
  });
}

/** A plain run that must succeed (exit 0), for benchmarks. */
export async function plainOk(file: string, args: readonly string[], input?: Buffer): Promise<PlainResult> {
  const r = await plainRun(file, args, input);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} ended with ${r.code ?? r.signal}: ${r.stderr.slice(0, 500)}`);
  return r;
}

export function commandVersion(file: string, args: string[]): string | null {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? null;
}

export interface BwrapSetup {
  path: string | null;
  version: string | null;
  note: string;
}

/** bwrap, installed from Debian (apt-get update + install) when missing. */
export function ensureBwrap(log: (s: string) => void): BwrapSetup {
  let v = commandVersion('bwrap', ['--version']);
  if (v) return { path: 'bwrap', version: v, note: 'already installed' };
  if (process.getuid?.() !== 0) return { path: null, version: null, note: 'absent: not installed and the bench is not root, so apt-get could not install it' };
  log('bwrap missing: apt-get update && apt-get install -y bubblewrap');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const up = spawnSync('apt-get', ['update'], { encoding: 'utf8', env, timeout: 180_000 });
  const inst = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'bubblewrap'], { encoding: 'utf8', env, timeout: 180_000 });
  v = commandVersion('bwrap', ['--version']);
  if (v) return { path: 'bwrap', version: v, note: 'installed by the bench setup (apt-get install bubblewrap)' };
  const why = (inst.stderr || up.stderr || String(inst.error ?? up.error ?? '')).trim().split('\n').slice(-2).join(' ');
  return { path: null, version: null, note: `absent: apt-get install bubblewrap failed (${why})` };
}

/** Host top-level dirs the default box shows (the same list as src/plan/rootfs.ts). */
const HOST_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
const HOST_ETC = ['/etc/ld.so.cache', '/etc/alternatives', '/etc/localtime'];

/**
 * bwrap arguments with isolation equal to sandcell's default box as far as bwrap goes: every
 * namespace, the host's /usr & co read-only (or the same symlinks), fresh /proc, minimal /dev,
 * tmpfs /tmp. bwrap has no cgroup limits and no seccomp filter here; sandcell's box has both.
 */
export function bwrapArgs(command: readonly string[]): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--new-session'];
  for (const p of HOST_DIRS) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(p), p);
    else args.push('--ro-bind', p, p);
  }
  for (const p of HOST_ETC) args.push('--ro-bind-try', p, p);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--chdir', '/tmp', ...command);
  return args;
}

/** util-linux unshare with every namespace sandcell's box has (no root change, no cgroup, no seccomp). */
export const UNSHARE_ALL = ['--user', '--map-root-user', '--pid', '--fork', '--mount', '--net', '--ipc', '--uts', '--cgroup', '--mount-proc'];

/** Runs a command with `input` on stdin and resolves with its stdout (a string, or the bytes as one Buffer); it must exit 0. */
export function plainOutput(file: string, input: Buffer): Promise<string>;
export function plainOutput(file: string, input: Buffer, as: 'buffer'): Promise<Buffer>;
export function plainOutput(file: string, input: Buffer, as: 'string' | 'buffer' = 'string'): Promise<string | Buffer> {
  return new Promise((resolve, reject) => {
    const c = cpSpawn(file, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => err.push(d));
    c.stdin.on('error', () => undefined);
    c.on('error', reject);
    c.on('close', (code, signal) => {
      if (code === 0) resolve(as === 'buffer' ? Buffer.concat(out) : Buffer.concat(out).toString('utf8'));
      else reject(new Error(`${file} ended with ${code ?? signal}: ${Buffer.concat(err).toString('utf8').slice(0, 500)}`));
    });
    c.stdin.end(input);
  });
}
