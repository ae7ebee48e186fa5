// Boxes that live: create → run many → destroy, with files in and out.
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';

import { Sandbox, SandboxOptionsError, SandboxSetupError } from '../../src/index.js';
import { childPids, mountTable, requireRoot, runCgroupsInUse } from '../helpers/host.js';

beforeAll(() => requireRoot());

const liveCgroups = runCgroupsInUse;

const SOLUTION = `#include <iostream>
int main() { long long a, b; std::cin >> a >> b; std::cout << a + b << std::endl; return 0; }
`;

describe('Sandbox', () => {
  it('judge flow: compile once, run the binary 50 times with different input, then destroy', async () => {
    const mounts = mountTable();
    const box = await Sandbox.create({ limits: { memory: '512MiB', processes: 64 }, files: { 'main.cpp': SOLUTION } });
    try {
      const compile = await box.run({ command: ['/usr/bin/g++', '-O2', '-o', 'main', 'main.cpp'], limits: { wallTime: '60s', cpuTime: '30s' } });
      expect(compile.status).toBe('ok');
      expect(compile.usage.cpuTimeMs).toBeGreaterThan(10);
      for (let i = 0; i < 50; i++) {
        const r = await box.run({ command: ['./main'], stdin: `${i} ${i * 1000}\n`, limits: { cpuTime: '1s', wallTime: '5s', memory: '64MiB' }, seccomp: 'judge' });
        expect(r.status).toBe('ok');
        expect(r.stdout).toBe(`${i + i * 1000}\n`);
        expect(r.usage.cpuTimeMs).toBeGreaterThan(0);
        expect(r.usage.cpuTimeMs).toBeLessThan(200);
        expect(r.usage.wallTimeMs).toBeGreaterThan(0);
        expect(r.usage.memoryPeakBytes).toBeGreaterThan(0);
        expect(r.limitsEnforced.memory).toBe('cgroup');
      }
      // A run that breaks its limit leaves the box usable.
      const tle = await box.run({ command: ['/bin/sh', '-c', 'while :; do :; done'], limits: { cpuTime: '200ms', wallTime: '5s' } });
      expect(tle.status).toBe('time-limit');
      const after = await box.run({ command: ['./main'], stdin: '1 2\n' });
      expect(after.stdout).toBe('3\n');
    } finally {
      await box.destroy();
    }
    expect(await liveCgroups()).toEqual([]);
    expect(await childPids()).toEqual([]);
    expect(mountTable()).toBe(mounts);
  });

  it('files written by one run are seen by the next, and collect reads them back', async () => {
    const box = await Sandbox.create();
    try {
      await box.run({ command: ['/bin/sh', '-c', 'mkdir -p out; echo one > out/a.txt; echo two > out/b.txt; echo x > out/c.log'] });
      const r = await box.run({ command: ['/bin/cat', 'out/a.txt'], collect: ['out/*.txt', 'missing.bin'] });
      expect(r.stdout).toBe('one\n');
      expect(Object.keys(r.files ?? {})).toEqual(['out/a.txt', 'out/b.txt']);
      expect(r.files?.['out/b.txt']?.toString()).toBe('two\n');
      expect(r.fileErrors).toEqual({ 'missing.bin': 'does not exist' });
    } finally {
      await box.destroy();
    }
  });

  it('hostile collect: symlinks, FIFOs and huge sparse files are refused; nothing outside the box is read', async () => {
    const box = await Sandbox.create({ limits: { fileSize: '10GiB' } });
    try {
      await box.run({
        command: [
          '/bin/sh',
          '-c',
          'ln -s /etc/shadow shadow; ln -s /etc/passwd passwd; mkfifo fifo; truncate -s 10G sparse; mkdir d; ln -s / d/root; echo ok > fine',
        ],
      });
      const c = await box.collect(['shadow', 'passwd', 'fifo', 'sparse', 'd/root', 'fine'], '/work');
      expect(Object.keys(c.files)).toEqual(['fine']);
      expect(c.errors.shadow).toMatch(/symbolic link/);
      expect(c.errors.passwd).toMatch(/symbolic link/);
      expect(c.errors['d/root']).toMatch(/symbolic link/);
      expect(c.errors.fifo).toMatch(/not a regular file/);
      expect(c.errors.sparse).toMatch(/larger than/);
      // A run that swaps the file for a link between runs is refused the same way.
      await box.run({ command: ['/bin/sh', '-c', 'rm fine; ln -s /etc/hostname fine'] });
      expect((await box.collect(['fine'])).errors.fine).toMatch(/symbolic link/);
    } finally {
      await box.destroy();
    }
  });

  it('destroy() kills whatever still runs in the box', async () => {
    const box = await Sandbox.create();
    const proc = await box.spawn({ command: ['/bin/sleep', '1000'] });
    await box.destroy();
    const r = await proc.wait();
    expect(r.signal).toBe('SIGKILL');
    expect(await childPids()).toEqual([]);
    await expect(box.run({ command: ['/bin/true'] })).rejects.toBeInstanceOf(SandboxSetupError);
  });

  it('two runs in one box share its loopback', async () => {
    const box = await Sandbox.create();
    try {
      const server = await box.spawn({
        command: ['/usr/bin/python3', '-u', '-c', "import socket\ns=socket.socket()\ns.bind(('127.0.0.1', 7777))\ns.listen()\nprint('up')\nc,_=s.accept()\nc.sendall(b'hello from run 1')\nc.close()"],
      });
      await new Promise<void>((resolve) => server.stdout.once('data', () => resolve()));
      const client = await box.run({
        command: ['/usr/bin/python3', '-c', "import socket\ns=socket.create_connection(('127.0.0.1', 7777))\nprint(s.recv(100).decode())"],
        limits: { wallTime: '10s' },
      });
      expect(client.stdout).toBe('hello from run 1\n');
      expect((await server.wait()).status).toBe('ok');
    } finally {
      await box.destroy();
    }
  });

  it('a killed run leaves the box usable and its other runs alive', async () => {
    // What a run leaves behind dying with it, out of sight of other runs: test/security/living-boxes.
    const box = await Sandbox.create();
    try {
      const keeper = await box.spawn({ command: ['/bin/sleep', '1000'] });
      const victim = await box.spawn({ command: ['/bin/sh', '-c', '(setsid sleep 999 &); sleep 1000'] });
      await sleep(100);
      victim.kill();
      expect((await victim.wait()).signal).toBe('SIGKILL');
      expect((await box.run({ command: ['/bin/echo', 'next'] })).stdout).toBe('next\n');
      expect(keeper.kill()).toBe(true);
      expect((await keeper.wait()).signal).toBe('SIGKILL');
    } finally {
      await box.destroy();
    }
  });

  it('await using disposes the box', async () => {
    let pid = 0;
    {
      const box = await Sandbox.create();
      pid = box.pid;
      await box[Symbol.asyncDispose]();
    }
    expect(await childPids()).not.toContain(pid);
  });

  it.each([
    [{ mounts: [{ type: 'tmpfs', target: 'relative' }] }, 'mounts[0].target'],
    [{ mounts: [{ source: '/tmp', target: '/data/../etc' }] }, 'mounts[0].target'],
    [{ mounts: [{ source: '/no/such/dir', target: '/data' }] }, 'mounts[0].source'],
    [{ mounts: [{ source: '/tmp', target: '/proc' }] }, 'mounts[0].target'],
    [{ mounts: [{ type: 'tmpfs', target: '/dev/x' }] }, 'mounts[0].target'],
    [{ image: '/no/such/image' }, 'image'],
    [{ writable: true }, 'writable'],
    [{ files: { '../escape': 'x' } }, 'files.../escape'],
  ])('bad box options %j are refused naming %s, nothing left mounted', async (options, path) => {
    const mounts = mountTable();
    const e = await Sandbox.create(options as never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SandboxOptionsError);
    expect((e as SandboxOptionsError).issues.map((i) => i.path)).toContain(path);
    expect(mountTable()).toBe(mounts);
  });

  it('volumes: a tmpfs of a given size and a read-write bind', async () => {
    const box = await Sandbox.create({ mounts: [{ type: 'tmpfs', target: '/scratch', size: '1MiB' }] });
    try {
      const r = await box.run({ command: ['/bin/sh', '-c', 'head -c 2000000 /dev/zero > /scratch/f; echo rc=$?; df -k /scratch | tail -1'] });
      expect(r.stdout).not.toContain('rc=0');
      expect(r.stderr).toMatch(/No space left/);
    } finally {
      await box.destroy();
    }
  });
});
