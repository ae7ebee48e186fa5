// The init's own reading of a plan, byte by byte: it has no C library and decodes the addon's
// format itself, so each malformed plan here is handed straight to the binary (fd 3, as the addon
// does) and must end it with the setup report the addon turns into a SandboxSetupError: stage and
// errno, exit status 127; and no plan at all (the parent gone) is a silent exit 1. No plan here
// should decode; each still runs as PID 1 of a PID namespace of its own, with mount, UTS and
// network namespaces of its own, so a decoder that let one through would build its root there and
// its kill(-1) at the end would reach that namespace only, not every process of this machine.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';

const INIT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'sandcell-init');
const EINVAL = 22;
const EPIPE = 32;
const SETUP_FAILED = 1;

beforeAll(() => requireRoot());

interface Outcome {
  status: number | null;
  report: { kind: number; err: number; stage: string } | null;
}

// `pid1: false` runs the init as PID 2 of that namespace, below a shell that waits for it.
async function feed(bytes: Buffer, { pid1 = true } = {}): Promise<Outcome> {
  const init = pid1 ? [INIT] : ['sh', '-c', '"$0" & wait $!', INIT];
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount', '--uts', '--net', '--propagation', 'private', ...init], { stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'pipe', 'pipe'] });
  const [, , , plan, report, status] = child.stdio as unknown as [null, null, null, Writable, Readable, Readable];
  const chunks: Buffer[] = [];
  report.on('data', (c: Buffer) => chunks.push(c));
  status.resume();
  // A refused length ends the init before it reads the rest: the write then meets EPIPE.
  plan.on('error', () => {});
  plan.end(bytes);
  const [code] = await Promise.all([
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    new Promise((resolve) => report.on('close', resolve)),
  ]);
  const r = Buffer.concat(chunks);
  if (r.length === 0) return { status: code, report: null };
  expect(r.length).toBe(256);
  const stage = r.subarray(8).toString('latin1');
  return { status: code, report: { kind: r.readUInt32LE(0), err: r.readInt32LE(4), stage: stage.slice(0, stage.indexOf('\0')) } };
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

function str(s: string | Buffer): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([u32(b.length), b]);
}

function strs(v: string[]): Buffer {
  return Buffer.concat([u32(v.length), ...v.map(str)]);
}

// The fields in the order native/wire.h's encode() writes them.
interface Fields {
  magic?: number;
  flags?: number;
  staging?: string;
  argv?: string[];
  mounts?: Buffer;
  seccomp?: Buffer;
  execPathLo?: number[];
}

function plan(f: Fields = {}): Buffer {
  const mount = Buffer.concat([u32(4), u32(0), u32(0o755), u32(0), str(''), str('/work'), str('')]);
  const rlimit = Buffer.concat([u32(7), Buffer.alloc(8, 0xff), Buffer.alloc(8, 0xff)]);
  const lo = f.execPathLo ?? [];
  return Buffer.concat([
    u32(f.magic ?? 0x53434c50),
    u32(f.flags ?? 0),
    u32(1000),
    u32(1000),
    str('box'),
    str(f.staging ?? '/tmp'),
    strs([]),
    str('size=1m'),
    str('/'),
    strs(f.argv ?? ['/bin/true']),
    strs(['PATH=/bin']),
    f.mounts ?? Buffer.concat([u32(1), mount]),
    u32(1),
    rlimit,
    str(f.seccomp ?? Buffer.alloc(0)),
    u32(lo.length),
    ...lo.map(u32),
    u32(0),
  ]);
}

function framed(body: Buffer): Buffer {
  return Buffer.concat([u32(body.length), body]);
}

function refused(stage: string, err: number): Outcome {
  return { status: 127, report: { kind: SETUP_FAILED, err, stage } };
}

describe('the init reading its plan', () => {
  it('ends silently with status 1 when the parent is gone before a plan (EOF)', async () => {
    expect(await feed(Buffer.alloc(0))).toEqual({ status: 1, report: null });
    expect(await feed(Buffer.from([1, 0]))).toEqual({ status: 1, report: null });
  });

  it('refuses a length of 0 or over 16 MiB, and a plan cut short, at stage "read plan"', async () => {
    expect(await feed(u32(0))).toEqual(refused('read plan', EINVAL));
    expect(await feed(u32((16 << 20) + 1))).toEqual(refused('read plan', EINVAL));
    expect(await feed(Buffer.concat([u32(100), Buffer.alloc(10)]))).toEqual(refused('read plan', EPIPE));
  });

  it('refuses at stage "decode plan": a wrong magic, no command, a relative staging dir', async () => {
    expect(await feed(framed(plan({ magic: 0x12345678 })))).toEqual(refused('decode plan', EINVAL));
    expect(await feed(framed(plan({ argv: [] })))).toEqual(refused('decode plan', EINVAL));
    expect(await feed(framed(plan({ staging: 'tmp' })))).toEqual(refused('decode plan', EINVAL));
    expect(await feed(framed(plan({ staging: '' })))).toEqual(refused('decode plan', EINVAL));
  });

  it('refuses counts over their bounds and lengths past the end', async () => {
    const tooManyMounts = Buffer.concat([u32(4097), Buffer.alloc(4097 * 28)]);
    expect(await feed(framed(plan({ mounts: tooManyMounts })))).toEqual(refused('decode plan', EINVAL));
    // A count the bytes left cannot hold.
    expect(await feed(framed(plan({ mounts: u32(4000) })))).toEqual(refused('decode plan', EINVAL));
    const longString = Buffer.concat([u32(1), u32(4), u32(0), u32(0), u32(0), u32(1 << 30)]);
    expect(await feed(framed(plan({ mounts: longString })))).toEqual(refused('decode plan', EINVAL));
  });

  it('refuses an execve-path patch that points past the filter', async () => {
    const oneInsn = Buffer.alloc(8);
    expect(await feed(framed(plan({ seccomp: oneInsn, execPathLo: [1] })))).toEqual(refused('decode plan', EINVAL));
  });

  it('refuses every proper prefix of a plan, and the plan with a byte more', async () => {
    // Each cut leaves a field short (the last one, the second patch list's count), so none
    // decodes; the whole plan itself is never sent.
    const whole = plan();
    const cuts = [...Array(whole.length).keys()].filter((n) => n > 0 && (n % 5 === 1 || n > whole.length - 12));
    for (const n of cuts) expect(await feed(framed(whole.subarray(0, n)))).toEqual(refused('decode plan', EINVAL));
    expect(await feed(framed(Buffer.concat([whole, Buffer.alloc(1)])))).toEqual(refused('decode plan', EINVAL));
  });

  it('starts nothing when it is not PID 1: its kill(-1) at the end would reach beyond what it started', async () => {
    expect(await feed(framed(plan()), { pid1: false })).toEqual(refused('PID namespace', EINVAL));
  });
});
