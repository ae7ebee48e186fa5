// What a program inside the default box can see and do: only what the box gives it.
import { chmodSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Sandbox, onDebugEvent, run, setWarmBoxes } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { requireRoot } from '../helpers/host.js';

let fx: Fixtures;
const secretDirs = ['/root', '/var'].map((d) => `${d}/sandcell-test-secret-${process.pid}`);

beforeAll(() => {
  requireRoot();
  fx = buildFixtures();
  for (const d of secretDirs) {
    mkdirSync(d, { recursive: true });
    writeFileSync(`${d}/secret.txt`, 'host secret\n');
  }
});

afterAll(() => {
  fx?.remove();
  for (const d of secretDirs) rmSync(d, { recursive: true, force: true });
});

const sh = (script: string, extra: Partial<Parameters<typeof run>[0]> = {}) =>
  run({ command: ['/bin/sh', '-c', script], limits: { wallTime: '10s' }, ...extra });

describe('the default box', () => {
  it('hides host files outside the bound dirs', async () => {
    const r = await sh(secretDirs.map((d) => `cat ${d}/secret.txt; ls ${d}`).join('; ') + '; ls /; ls /var /root /home 2>&1; true');
    expect(r.status).toBe('ok');
    expect(r.stdout).not.toContain('host secret');
    expect(r.stdout.split('\n')).not.toContain('secret.txt');
    expect(r.stderr).toContain('No such file or directory');
    // The root holds exactly the default layout.
    const top = r.stdout.split('\n').slice(0, 12);
    expect(top).toEqual(expect.arrayContaining(['bin', 'dev', 'etc', 'proc', 'tmp', 'usr', 'work']));
    expect(top).not.toContain('root');
    expect(top).not.toContain('var');
  });

  it('cannot write to bound host dirs, but can write /tmp and its working directory', async () => {
    const r = await sh('touch /usr/sandcell-probe; echo rc=$?; touch /etc/probe; echo rc=$?; echo x > /tmp/a && echo tmp-ok; echo y > ./b && pwd && echo work-ok');
    expect(r.stdout).toContain('rc=1\nrc=1');
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(r.stdout).toContain('tmp-ok');
    expect(r.stdout).toContain('/work\nwork-ok');
  });

  it('sees only its own processes in /proc', async () => {
    const r = await sh('ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "; echo; cat /proc/self/status | grep -E "^(Pid|NSpid)"');
    const pids = r.stdout.split('\n')[0]!.trim().split(' ').map(Number);
    // The shell, ls, grep, sort and tr: all small pids of the new namespace, nothing of the host.
    expect(Math.max(...pids)).toBeLessThan(20);
    expect(r.stdout).toMatch(/^Pid:\s+\d$/m);
  });

  it('has no capabilities, no_new_privs, uid and gid 65534, and hostname sandcell', async () => {
    const r = await sh('grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Uid|Gid|Groups)" /proc/self/status; id -u; id -g; hostname');
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      expect(r.stdout).toMatch(new RegExp(`^${cap}:\\s+0000000000000000$`, 'm'));
    }
    expect(r.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(r.stdout).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(r.stdout).toMatch(/^Groups:\s*$/m);
    expect(r.stdout).toContain('65534\n65534\nsandcell\n');
  });

  it('has an empty bounding set however its box was made: while the caller waits, ahead of the run, or living', async () => {
    // The init empties the set once, for itself and every process it starts: each kind of box
    // reaches the program's start by another path.
    const caps = 'grep -E "^Cap(Bnd|Prm|Eff)" /proc/self/status';
    const none = (out: string): void => {
      for (const cap of ['CapBnd', 'CapPrm', 'CapEff']) expect(out).toMatch(new RegExp(`^${cap}:\\s+0000000000000000$`, 'm'));
    };
    const boxes: string[] = [];
    const stop = onDebugEvent((e) => {
      if (e.event === 'start') boxes.push(e.box);
    });
    try {
      await setWarmBoxes(0);
      const cold = await sh(caps);
      await setWarmBoxes(4);
      let warm = await sh(caps);
      // The pool builds the next box after a run: given a moment, the run after finds it.
      for (let i = 0; i < 20 && boxes.at(-1) !== 'warm'; i++) {
        await sleep(50);
        warm = await sh(caps);
      }
      const box = await Sandbox.create({});
      const living = await box.run({ command: ['/bin/sh', '-c', caps] }).finally(() => box.destroy());
      expect(boxes[0]).toBe('new');
      expect(boxes.slice(1, -1)).toContain('warm');
      expect(boxes.at(-1)).toBe('living');
      for (const r of [cold, warm, living]) {
        expect(r.status).toBe('ok');
        none(r.stdout);
      }
    } finally {
      stop();
    }
  });

  it('has only a loopback interface, and cannot reach a listener on the host loopback', async () => {
    let connections = 0;
    const server: Server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const r = await run({
        command: [
          '/usr/bin/python3',
          '-c',
          `import socket
print(open('/proc/net/dev').read())
try:
    socket.create_connection(('127.0.0.1', ${port}), timeout=2)
    print('CONNECTED')
except OSError as e:
    print('refused', e.errno)`,
        ],
        limits: { wallTime: '10s' },
      });
      const ifaces = r.stdout
        .split('\n')
        .filter((l) => l.includes(':') && !l.includes('|'))
        .map((l) => l.split(':')[0]!.trim())
        .filter((n) => n && !n.startsWith('refused'));
      expect(ifaces).toEqual(['lo']);
      expect(r.stdout).toContain('refused 111');
      expect(r.stdout).not.toContain('CONNECTED');
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('has only fds 0-2 even when the host opened more before the run', async () => {
    const extra = Array.from({ length: 8 }, () => openSync('/etc/hostname', 'r'));
    try {
      const r = await run({ command: [fx.inBox('fds')], binds: [fx.bind], limits: { wallTime: '10s' } });
      expect(r.status).toBe('ok');
      expect(r.stdout).toBe('');
    } finally {
      for (const fd of extra) closeSync(fd);
    }
  });

  it('has a minimal, read-only /dev and a fresh /proc', async () => {
    const r = await sh('ls /dev | tr "\\n" " "; echo; echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c; ls /dev/sda /dev/mem /dev/kmsg /dev/tty 2>&1 | wc -l; (: > /dev/new) 2>&1; echo x > /dev/shm/f && echo shm-ok');
    expect(r.stdout.split('\n')[0]!.trim().split(' ').sort()).toEqual(
      ['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero'].sort(),
    );
    expect(r.stdout).toContain('null-ok\n4\n4\n');
    expect(r.stdout).toMatch(/\/dev\/new: Read-only file system\nshm-ok\n$/);
  });

  it('shows what is bound inside its working directory, on the working directory of its own', async () => {
    const host = mkdtempSync(join(tmpdir(), 'sandcell-bind-in-cwd-'));
    try {
      chmodSync(host, 0o755);
      writeFileSync(join(host, 'main.sh'), 'echo bound program\n', { mode: 0o755 });
      mkdirSync(join(host, 'data'), { mode: 0o755 });
      writeFileSync(join(host, 'data', 'in.txt'), 'bound data\n', { mode: 0o644 });
      const r = await sh('./main.sh; cat data/in.txt; echo written > out.txt && cat out.txt', {
        binds: [{ source: join(host, 'main.sh'), target: '/work/main.sh' }, { source: join(host, 'data'), target: '/work/data' }],
      });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('bound program\nbound data\nwritten\n');
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });
});
