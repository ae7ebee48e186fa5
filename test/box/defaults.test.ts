// A run given no limits is still bounded, in a real box: its memory, the size and inode count of
// every writable tmpfs; `null` lifts those; and the defaults leave room to compile C++ with g++.
import { beforeAll, describe, expect, it } from 'vitest';

import { run, Sandbox } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';

beforeAll(() => requireRoot());

const MiB = 1024 * 1024;
/** Touches `mib` MiB, one page at a time, and says so if it got through. */
const touch = (mib: number): string[] => ['/usr/bin/python3', '-c', `b = bytearray(${mib} * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('touched')`];
/** Name, total inodes, size in blocks and block size of each filesystem, as statfs reports them (a shell command). */
const statfs = (paths: string[]): string => `/usr/bin/stat -f -c '%n %c %b %S' ${paths.join(' ')}`;

describe('defaults in a real box', () => {
  it('no limits given: the memory limit (cgroup) ends a program that takes 700 MiB', async () => {
    const r = await run({ command: touch(700) });
    expect(r.status).toBe('memory-limit');
    expect(r.limitsEnforced.memory).toBe('cgroup');
    expect(r.stdout).toBe('');
  });

  it('memory: null lifts it: the same program runs to its end', async () => {
    const r = await run({ command: touch(700), limits: { memory: null, wallTime: '60s' } });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('touched\n');
    expect(r.limitsEnforced.memory).toBe('none');
    expect(r.usage.memoryPeakBytes).toBeGreaterThan(700 * MiB);
  });

  it('every writable tmpfs has 64 MiB and 16384 inodes; the 16385th file cannot be made', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', `${statfs(['/tmp', '/work', '/dev/shm', '/scratch'])} && cd /tmp && i=0; while [ $i -lt 16400 ]; do true > f$i 2>/dev/null || { echo "stopped at $i"; break; }; i=$((i+1)); done`],
      mounts: [{ type: 'tmpfs', target: '/scratch' }],
      limits: { wallTime: '60s' },
    });
    expect(r.status).toBe('ok');
    const lines = r.stdout.trim().split('\n');
    for (const fs of ['/tmp', '/work', '/dev/shm', '/scratch']) expect(lines).toContain(`${fs} 16384 16384 4096`);
    // The root dir of the tmpfs is an inode too.
    expect(lines.at(-1)).toBe('stopped at 16383');
  });

  it('tmpfs: null leaves them to the kernel: more inodes than the default allows', async () => {
    const r = await run({ command: ['/bin/sh', '-c', statfs(['/tmp', '/work', '/dev/shm'])], limits: { tmpfs: null } });
    expect(r.status).toBe('ok');
    for (const line of r.stdout.trim().split('\n')) expect(Number(line.split(' ')[1])).toBeGreaterThan(16384);
  });

  it('g++ -O2 of a program including <bits/stdc++.h> compiles and runs within the defaults', async () => {
    const source = '#include <bits/stdc++.h>\nint main() { std::vector<int> v{3, 1, 2}; std::sort(v.begin(), v.end()); std::map<int, int> m; m[v[0]] = v[2]; std::cout << m[1] << std::endl; }\n';
    const r = await run({ command: ['/bin/sh', '-c', 'g++ -O2 -o main main.cpp && ./main'], files: { 'main.cpp': source } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('3\n');
    expect(r.limitsEnforced.memory).toBe('cgroup');
    expect(r.usage.memoryPeakBytes).toBeLessThan(512 * MiB);
  });

  it('a living box has the default memory limit for all its runs together', async () => {
    const box = await Sandbox.create();
    try {
      const r = await box.run({ command: touch(700) });
      expect(r.status).toBe('memory-limit');
    } finally {
      await box.destroy();
    }
  });
});
