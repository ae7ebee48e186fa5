/**
 * Loads compiled programs into the real kernel (unprivileged: no_new_privs + seccomp filter mode)
 * in a throw-away python3 process, makes one system call and reports the outcome. This checks that
 * the kernel's own checker accepts the programs and that they behave as the emulator says.
 * Runs only on x86_64 hosts with python3 (ctypes); skipped elsewhere.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CompileOptions, compile } from '../../src/seccomp/compile.js';
import type { SeccompPolicy } from '../../src/seccomp/policy.js';
import { presets } from '../../src/seccomp/presets.js';
import { bigPolicy, halvesPolicy } from './policies.js';

const PY = `
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
prog = open(sys.argv[1], 'rb').read()
call = [int(x, 0) for x in sys.argv[2].split(',')]
class Fprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]
buf = ctypes.create_string_buffer(prog, len(prog))
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
libc.syscall.restype = ctypes.c_long
out = sys.stdout
if libc.prctl(38, 1, 0, 0, 0) != 0:
    out.write(json.dumps({'setup': 'no_new_privs', 'errno': ctypes.get_errno()})); out.flush(); sys.exit(3)
if libc.prctl(22, 2, ctypes.byref(fp), 0, 0) != 0:
    out.write(json.dumps({'setup': 'seccomp', 'errno': ctypes.get_errno()})); out.flush(); sys.exit(3)
ctypes.set_errno(0)
r = libc.syscall(ctypes.c_long(call[0]), *[ctypes.c_ulong(a & 0xffffffffffffffff) for a in call[1:]])
e = ctypes.get_errno() if r == -1 else 0
out.write(json.dumps({'ret': r, 'errno': e})); out.flush()
`;

const hasPython = spawnSync('python3', ['-c', 'import ctypes'], { stdio: 'ignore' }).status === 0;
const runnable = process.arch === 'x64' && process.platform === 'linux' && hasPython;
const dir = mkdtempSync(join(tmpdir(), 'sandcell-seccomp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function runUnder(policy: SeccompPolicy, call: (number | bigint)[], opts: CompileOptions = {}) {
  const c = compile(policy, 'x86_64', opts);
  const file = join(dir, `p${n++}.bpf`);
  writeFileSync(file, c.program);
  const r = spawnSync('python3', ['-c', PY, file, call.map((v) => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`).join(',')], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  const parsed = r.stdout ? (JSON.parse(r.stdout) as { ret?: number; errno?: number; setup?: string }) : undefined;
  return { status: r.status, signal: r.signal, ...parsed };
}

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

describe.skipIf(!runnable)('real kernel (x86_64)', () => {
  it('accepts the default preset and enforces it on mounts, sockets, namespaces and clone3', () => {
    const p = presets.default;
    expect(runUnder(p, [39])).toMatchObject({ status: 0, errno: 0 }); // getpid
    expect(runUnder(p, [165, 0, 0, 0, 0, 0])).toMatchObject({ ret: -1, errno: EPERM }); // mount
    expect(runUnder(p, [41, 16, 3, 0])).toMatchObject({ ret: -1, errno: EAFNOSUPPORT }); // socket(AF_NETLINK)
    expect(runUnder(p, [41, 1, 1, 0]).errno).toBe(0); // socket(AF_UNIX)
    expect(runUnder(p, [272, 0x10000000])).toMatchObject({ ret: -1, errno: EPERM }); // unshare(CLONE_NEWUSER)
    expect(runUnder(p, [272, 0x200])).toMatchObject({ ret: 0 }); // unshare(CLONE_FS)
    expect(runUnder(p, [56, 0x10000000 | 17, 0, 0, 0, 0])).toMatchObject({ ret: -1, errno: EPERM }); // clone(CLONE_NEWUSER)
    expect(runUnder(p, [435, 0, 0])).toMatchObject({ ret: -1, errno: ENOSYS }); // clone3
  });

  // One python process per call: split so that each test stays well inside the timeout on a busy machine.
  it('enforces the default preset on io_uring, personality, ioctl and the x32 ABI', () => {
    const p = presets.default;
    expect(runUnder(p, [425, 1, 0])).toMatchObject({ ret: -1, errno: ENOSYS }); // io_uring_setup
    expect(runUnder(p, [135, 0x400000])).toMatchObject({ ret: -1, errno: EPERM }); // personality(READ_IMPLIES_EXEC)
    expect(runUnder(p, [135, 0xffffffff]).errno).toBe(0); // personality query
    expect(runUnder(p, [16, 0, 0x5412, 0])).toMatchObject({ ret: -1, errno: EPERM }); // ioctl TIOCSTI
    expect(runUnder(p, [16, 0, 0x1_0000_5412n, 0])).toMatchObject({ ret: -1, errno: EPERM }); // upper bits ignored
    // the x32 ABI is killed, not answered with the default errno
    expect(runUnder(p, [0x40000000 | 39])).toMatchObject({ signal: 'SIGSYS' });
  });

  it('the default preset is an allow-list: unknown numbers get ENOSYS, socketpair keeps to the socket families', () => {
    const p = presets.default;
    expect(runUnder(p, [462, 0, 0, 0])).toMatchObject({ ret: -1, errno: ENOSYS }); // mseal: newer than the tables
    expect(runUnder(p, [1000])).toMatchObject({ ret: -1, errno: ENOSYS }); // no such call
    expect(runUnder(p, [53, 16, 3, 0, 0])).toMatchObject({ ret: -1, errno: EAFNOSUPPORT }); // socketpair(AF_NETLINK)
  });

  it('accepts the judge preset (kill-process) and kills on sockets', () => {
    const opts: CompileOptions = { killAction: 'kill-process' };
    expect(runUnder(presets.judge, [39], opts)).toMatchObject({ status: 0, errno: 0 });
    expect(runUnder(presets.judge, [41, 2, 1, 0], opts)).toMatchObject({ signal: 'SIGSYS' }); // AF_INET
    expect(runUnder(presets.judge, [41, 10, 2, 0], opts)).toMatchObject({ signal: 'SIGSYS' }); // AF_INET6
    expect(runUnder(presets.judge, [53, 1, 1, 0, 0], opts)).toMatchObject({ signal: 'SIGSYS' }); // socketpair
    expect(runUnder(presets.judge, [41, 1, 1, 0], opts)).toMatchObject({ ret: -1, errno: 13 }); // AF_UNIX: nscd probe
    expect(runUnder(presets.judge, [435, 0, 0], opts)).toMatchObject({ ret: -1, errno: ENOSYS });
  });

  it('kill as USER_NOTIF without a listener fails the call with ENOSYS', () => {
    expect(runUnder({ defaultAction: 'allow', rules: [{ syscall: 'getppid', action: 'kill' }] }, [110])).toMatchObject({
      ret: -1,
      errno: ENOSYS,
    });
  });

  it('accepts large programs with trampolines and 64-bit comparisons', () => {
    const big = bigPolicy('x86_64');
    expect(compile(big, 'x86_64').instructions).toBeGreaterThan(600);
    // allowed unconditionally in bigPolicy? ask the policy: any outcome but a setup failure will do
    const r = runUnder(big, [39], { killAction: 'kill-process' });
    expect(r.setup).toBeUndefined();
    // write(fd>2) → EBADF(9) per halvesPolicy; write(1, ...) allowed
    expect(runUnder(halvesPolicy, [1, 0x1_0000_0000n + 7n, 0, 0], { killAction: 'kill-process' })).toMatchObject({ ret: -1, errno: 9 });
    expect(runUnder(halvesPolicy, [1, 5, 0, 0], { killAction: 'kill-process' })).toMatchObject({ ret: -1, errno: EPERM });
  });
});
