// Ordinary programs in C, C++, Python 3, Node.js, Java and /bin/sh run unaffected under the
// `default` preset: hello world, threads, file I/O in /tmp, a pipe to a child, fork/exec. Each
// prints the same lines under `default` and under `none`.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, type RunOptions } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { buildPrograms, javaHome, type Programs } from './programs.js';

let progs: Programs;
beforeAll(() => {
  requireRoot();
  progs = buildPrograms();
});
afterAll(() => progs?.remove());

const java = javaHome();

const expected = {
  c: 'hello from C\nthreads 5005000\nfile written in /tmp\npipe child via pipe\n exit 0\nsystem ok\n',
  cc: 'hello from C++\nthreads 5005000 4\nfile written in /tmp\npipe child via pipe\nexit 0\n',
  python: 'hello from Python\nthreads 5005000\nfile written in /tmp\npipe child via pipe\nfork forked 0\n',
  node: 'hello from Node.js\nthreads 5005000\nfile written in /tmp true\npipe child via pipe\nchild exit 3\n',
  sh: 'hello from sh\njob 1 job 2 job 3 job 4\nfile written in /tmp\npipe child via pipe\nchild exit 4\n',
  java: 'hello from Java\nthreads 5005000\nfile written in /tmp\npipe child via pipe\nexit 0\n',
};

function command(lang: keyof typeof expected): string[] {
  switch (lang) {
    case 'c':
      return [progs.inBox('workload')];
    case 'cc':
      return [progs.inBox('workload_cc')];
    case 'python':
      return ['/usr/bin/python3', progs.inBox('workload.py')];
    case 'node':
      return ['/usr/bin/node', progs.inBox('workload.mjs')];
    case 'sh':
      return ['/bin/sh', progs.inBox('workload.sh')];
    case 'java':
      return [java!, '-Xshare:auto', '-cp', progs.inBox(''), 'Workload'];
  }
}

const box = (lang: keyof typeof expected, seccomp: RunOptions['seccomp']) =>
  run({ command: command(lang), binds: [progs.bind], seccomp, limits: { wallTime: '30s', memory: '1GiB' } });

describe("seccomp 'default': ordinary programs run unaffected", () => {
  it('the interpreters are in the box (through the /usr bind)', async () => {
    expect(existsSync('/usr/bin/python3')).toBe(true);
    expect(existsSync('/usr/bin/node')).toBe(true);
    const r = await run({ command: ['/bin/sh', '-c', 'ls /usr/bin/node /usr/bin/python3 /bin/sh'], limits: { wallTime: '10s' } });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('/bin/sh\n/usr/bin/node\n/usr/bin/python3\n'); // ls sorts
  });

  const langs = Object.keys(expected).filter((l) => l !== 'java' || java !== null) as (keyof typeof expected)[];
  for (const lang of langs) {
    it(`${lang}: hello, threads, /tmp file, pipe, child process — same output as without a filter`, async () => {
      const [withFilter, without] = await Promise.all([box(lang, 'default'), box(lang, 'none')]);
      expect(withFilter.stderr).toBe('');
      expect(withFilter.status).toBe('ok');
      expect(withFilter.stdout).toBe(expected[lang]);
      expect(without.stdout).toBe(withFilter.stdout);
    });
  }

  it('ps, whose libnuma probes the NUMA calls the allow-list leaves out, prints the same as without a filter', async () => {
    const ps = (seccomp: RunOptions['seccomp']) => run({ command: ['/bin/ps', '-o', 'pid,comm'], seccomp, limits: { wallTime: '10s' } });
    const [withFilter, without] = await Promise.all([ps('default'), ps('none')]);
    expect(withFilter.stderr).toBe('');
    expect(withFilter.status).toBe('ok');
    expect(withFilter.stdout).toMatch(/^\s*PID COMMAND\n\s*\d+ ps\n$/);
    expect(without.stdout).toBe(withFilter.stdout);
  });

  it(`java is ${java ? `present (${java}) and tested above` : 'ABSENT on this host: its case did not run'}`, () => {
    // Names the host's state in the report instead of skipping silently.
    expect(java === null || java.startsWith('/usr/')).toBe(true);
  });
});
