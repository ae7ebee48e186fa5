/**
 * The judge preset on the real kernel: a launcher (python3 + ctypes, standing in for the native
 * side) patches the execPath placeholder with the address of its path string, installs the
 * filter, and execs a real solution: static and dynamic C++ with threads, Python, Java. They must
 * run to completion; a second execve, execveat and sockets must end the run (SIGSYS with
 * killAction 'kill-process'). The default preset runs shell, Node.js, Python and Java the same
 * way (no placeholder needed). x86_64 only; each toolchain is skipped when missing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/seccomp/compile.js';
import { presets } from '../../src/seccomp/presets.js';
import { compileProgram } from '../helpers/fixtures.js';

const LAUNCHER = `
import ctypes, json, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
prog = bytearray(open(sys.argv[1], 'rb').read())
sites = json.loads(sys.argv[2])
argv = sys.argv[3:]
path = ctypes.create_string_buffer(argv[0].encode())
addr = ctypes.addressof(path)
for s in sites:
    struct.pack_into('<I', prog, s['index'] * 8 + 4, (addr & 0xffffffff) if s['half'] == 'lo' else (addr >> 32))
class Fprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]
buf = ctypes.create_string_buffer(bytes(prog), len(prog))
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
cargv = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
envp = (ctypes.c_char_p * 3)(b'PATH=/usr/bin:/bin', b'LANG=C', None)
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fp), 0, 0) != 0:
    sys.stderr.write('setup failed %d\\n' % ctypes.get_errno()); sys.exit(125)
libc.syscall.restype = ctypes.c_long
libc.syscall(ctypes.c_long(59), path, cargv, envp)
sys.stderr.write('execve failed %d\\n' % ctypes.get_errno()); sys.exit(126)
`;

const have = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const python = have('python3', ['-c', 'import ctypes'])
  ? execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim()
  : '';
const runnable = process.arch === 'x64' && process.platform === 'linux' && python !== '';
const dir = mkdtempSync(join(tmpdir(), 'sandcell-judge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const compiled = compile(presets.judge, 'x86_64', { killAction: 'kill-process' });
const programFile = join(dir, 'judge.bpf');

function runJudged(argv: string[], input = '', file = programFile, sites: unknown[] = compiled.placeholders) {
  const r = spawnSync(python, ['-c', LAUNCHER, file, JSON.stringify(sites), ...argv], {
    encoding: 'utf8',
    input,
    timeout: 60_000,
    cwd: dir,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const CPP = `
#include <thread>
#include <vector>
#include <iostream>
#include <fstream>
#include <mutex>
int main() {
  std::vector<std::thread> ts; std::vector<long> r(4); std::mutex m;
  for (int i = 0; i < 4; i++) ts.emplace_back([&r, &m, i] { long s = 0; for (long j = 0; j < 100000; j++) s += j * i; std::lock_guard<std::mutex> g(m); r[i] = s; });
  for (auto &t : ts) t.join();
  std::vector<char> big(64 << 20, 1);
  { std::ofstream f("out.txt"); f << r[3] << "\\n"; }
  long x = 0; std::cin >> x;
  std::cout << x + 1 << " " << r[3] << " " << (int)big[12345] << std::endl;
  return 0;
}
`;

const C_SOCKET = `
#include <sys/socket.h>
#include <stdio.h>
int main() { printf("before\\n"); fflush(stdout); int s = socket(AF_INET, SOCK_STREAM, 0); printf("socket %d\\n", s); return 0; }
`;

const C_EXEC = `
#include <unistd.h>
#include <stdio.h>
int main() { printf("before\\n"); fflush(stdout); char *a[] = {"/bin/true", 0}; execv("/bin/true", a); printf("execv failed\\n"); return 3; }
`;

const JAVA = `
public class Main { public static void main(String[] a) throws Exception {
  Thread t = new Thread(() -> System.out.println("thread")); t.start(); t.join();
  java.util.Scanner s = new java.util.Scanner(System.in); System.out.println(s.nextInt() + 1);
} }
`;

const gpp = have('g++', ['--version']);
const gppStatic = gpp && (() => {
  try {
    writeFileSync(join(dir, 'probe.cpp'), 'int main(){}');
    compileProgram(join(dir, 'probe.cpp'), join(dir, 'probe'), { static: true });
    return true;
  } catch {
    return false;
  }
})();
const java = have('javac', ['-version']) && have('java', ['-version']);

describe.skipIf(!runnable)('judge preset on the real kernel (x86_64)', () => {
  beforeAll(() => {
    writeFileSync(programFile, compiled.program);
  });

  it('runs Python', () => {
    const r = runJudged([python, '-c', 'import sys, threading, os\nt = threading.Thread(target=lambda: print("thread")); t.start(); t.join()\nprint(int(sys.stdin.read()) + 1)'], '41\n');
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ status: 0, signal: null, stdout: 'thread\n42\n' });
  });

  it.skipIf(!gpp)('runs dynamic C++ with threads, memory and files', () => {
    writeFileSync(join(dir, 'a.cpp'), CPP);
    compileProgram(join(dir, 'a.cpp'), join(dir, 'dyn'));
    expect(runJudged([join(dir, 'dyn')], '41\n')).toMatchObject({ status: 0, stdout: '42 14999850000 1\n' });
  });

  it.skipIf(!gppStatic)('runs static C++ with threads', () => {
    writeFileSync(join(dir, 'a.cpp'), CPP);
    compileProgram(join(dir, 'a.cpp'), join(dir, 'static'), { static: true });
    expect(runJudged([join(dir, 'static')], '1\n')).toMatchObject({ status: 0, stdout: '2 14999850000 1\n' });
  });

  it.skipIf(!gpp)('ends the run on socket() and on a second execve', () => {
    writeFileSync(join(dir, 's.c'), C_SOCKET);
    compileProgram(join(dir, 's.c'), join(dir, 'sock'));
    expect(runJudged([join(dir, 'sock')])).toMatchObject({ signal: 'SIGSYS', stdout: 'before\n' });
    writeFileSync(join(dir, 'e.c'), C_EXEC);
    compileProgram(join(dir, 'e.c'), join(dir, 'exec'));
    expect(runJudged([join(dir, 'exec')])).toMatchObject({ signal: 'SIGSYS', stdout: 'before\n' });
  });

  it.skipIf(!java)('runs Java with threads', () => {
    writeFileSync(join(dir, 'Main.java'), JAVA);
    execFileSync('javac', ['-d', dir, join(dir, 'Main.java')]);
    const javaBin = execFileSync('sh', ['-c', 'readlink -f "$(command -v java)"'], { encoding: 'utf8' }).trim();
    const r = runJudged([javaBin, '-Xshare:auto', '-XX:+UseSerialGC', '-cp', dir, 'Main'], '41\n');
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ status: 0, stdout: 'thread\n42\n' });
  });
});

describe.skipIf(!runnable)('default preset on the real kernel (x86_64)', () => {
  const file = join(dir, 'default.bpf');
  const run = (argv: string[], input = '') => runJudged(argv, input, file, []);
  beforeAll(() => {
    writeFileSync(file, compile(presets.default, 'x86_64', { killAction: 'kill-process' }).program);
  });

  it('runs shell pipelines', () => {
    const r = run(['/bin/sh', '-c', 'echo hello | tr a-z A-Z; ls / > /dev/null && echo listed; (sleep 0; echo sub) & wait']);
    expect(r).toMatchObject({ status: 0, stdout: 'HELLO\nlisted\nsub\n' });
  });

  it('runs Node.js (io_uring and clone3 refused, it falls back)', () => {
    const node = process.execPath;
    const r = run([node, '-e', 'const fs=require("fs");fs.promises.readFile("/etc/hostname").then(()=>{require("child_process").execFileSync("/bin/true");console.log("ok")})']);
    expect(r.stderr).toBe('');
    expect(r).toMatchObject({ status: 0, stdout: 'ok\n' });
  });

  it('runs Python with sockets of the allowed families', () => {
    const r = run([python, '-c', 'import socket, threading\na,b = socket.socketpair(); a.send(b"x"); print(b.recv(1))\ns = socket.socket(); s.close()\ntry:\n  socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\nexcept OSError as e: print(e.errno)']);
    expect(r).toMatchObject({ status: 0, stdout: "b'x'\n97\n" });
  });

  it.skipIf(!java)('runs Java', () => {
    writeFileSync(join(dir, 'Main.java'), JAVA);
    execFileSync('javac', ['-d', dir, join(dir, 'Main.java')]);
    const javaBin = execFileSync('sh', ['-c', 'readlink -f "$(command -v java)"'], { encoding: 'utf8' }).trim();
    expect(run([javaBin, '-cp', dir, 'Main'], '1\n')).toMatchObject({ status: 0, stdout: 'thread\n2\n' });
  });
});
