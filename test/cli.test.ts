// The `sandcell` command as a user runs it, from the built package.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from './helpers/host.js';
import { BOX_TOP_LEVEL, buildImage } from './helpers/images.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
let tmp: string;

beforeAll(() => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-cli-'));
  // Boxes run as unprivileged host ids: they must reach what the tests bind from here.
  chmodSync(tmp, 0o755);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sandcell(args: string[], input = '') {
  return spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 30_000 });
}

describe('sandcell CLI', () => {
  it('run -- /bin/echo hi prints hi and exits 0', () => {
    const r = sandcell(['run', '--', '/bin/echo', 'hi']);
    expect(r.stdout).toBe('hi\n');
    expect(r.status).toBe(0);
  });

  it('passes stdin through and returns the exit code', () => {
    const r = sandcell(['run', '--', '/bin/sh', '-c', 'cat; exit 3'], 'piped\n');
    expect(r.stdout).toBe('piped\n');
    expect(r.status).toBe(3);
  });

  it('exit codes: 127 not found, 126 not executable, 128+signal, 137 for a limit, 125 bad options', () => {
    expect(sandcell(['run', '--', '/no/such']).status).toBe(127);
    expect(sandcell(['run', '--', '/etc/passwd']).status).toBe(126);
    expect(sandcell(['run', '--', '/bin/sh', '-c', 'kill -SEGV $$']).status).toBe(128 + 11);
    const wall = sandcell(['run', '--wall', '200ms', '--', '/bin/sleep', '10']);
    expect(wall.status).toBe(137);
    expect(wall.stderr).toContain('sandcell: wall-time-limit');
    // Past the output limit the program may finish before the kill reaches it; the verdict is the limit's either way.
    for (let i = 0; i < 5; i++) {
      const output = sandcell(['run', '--output', '10', '--', '/bin/sh', '-c', 'yes | head -c 100']);
      expect({ status: output.status, stderr: output.stderr }).toEqual({ status: 137, stderr: 'sandcell: output-limit\n' });
    }
    const bad = sandcell(['run', '--memory', 'lots', '--', '/bin/true']);
    expect(bad.status).toBe(125);
    expect(bad.stderr).toContain('limits.memory');
    expect(sandcell(['run', '--bogus', '--', '/bin/true']).status).toBe(125);
  });

  it('--json prints the whole result and --report writes it', () => {
    const report = join(tmp, 'report.json');
    const r = sandcell(['run', '--json', '--report', report, '--env', 'GREETING=hey', '--', '/bin/sh', '-c', 'echo $GREETING; echo err >&2']);
    const json = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ status: 'ok', exitCode: 0, signal: null, stdout: 'hey\n', stderr: 'err\n', violation: null });
    expect(Object.keys(json).sort()).toEqual(
      ['status', 'exitCode', 'signal', 'stdout', 'stderr', 'stdoutTruncated', 'stderrTruncated', 'usage', 'violation', 'limitsEnforced'].sort(),
    );
    expect(Object.keys(json.usage as object).sort()).toEqual(
      ['cpuTimeMs', 'userTimeMs', 'systemTimeMs', 'wallTimeMs', 'memoryPeakBytes', 'maxRssBytes'].sort(),
    );
    expect(JSON.parse(readFileSync(report, 'utf8'))).toEqual(json);
  });

  it('--bind makes a host dir visible read-only, :rw writable', () => {
    const r = sandcell(['run', '--bind', `${tmp}:/data:rw`, '--bind', '/etc/os-release:/info', '--', '/bin/sh', '-c', 'cat /info | head -1; echo x > /data/out; echo y > /info; echo rc=$?']);
    expect(r.stdout).toMatch(/^PRETTY_NAME=|^NAME=/);
    expect(r.stdout).toContain('rc=');
    expect(r.stdout).not.toContain('rc=0');
  });

  it('--file puts a host file in the box and --collect brings the result back', () => {
    const src = join(tmp, 'hello.c');
    writeFileSync(src, '#include <stdio.h>\nint main(void) { puts("compiled in a box"); return 0; }\n');
    const out = join(tmp, 'out');
    const r = sandcell(['run', '--file', `hello.c=@${src}`, '--collect', 'hello', '--collect', 'missing*', '--collect-to', out, '--', '/usr/bin/gcc', '-o', 'hello', 'hello.c']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('collect missing*: no file matched');
    chmodSync(join(out, 'hello'), 0o755);
    expect(execFileSync(join(out, 'hello'), { encoding: 'utf8' })).toBe('compiled in a box\n');
  });

  it('--collect passes output that is not UTF-8 through as the program wrote it, as a streamed run does', () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3]);
    const script = "printf '\\377\\376\\000A\\303'; printf '\\377' >&2; echo kept > f";
    for (const collect of [[], ['--collect', 'f', '--collect-to', join(tmp, 'bytes-out')]]) {
      const r = spawnSync(process.execPath, [CLI, 'run', ...collect, '--', '/bin/sh', '-c', script], { timeout: 30_000 });
      expect(r.status).toBe(0);
      expect(r.stdout).toEqual(bytes);
      expect(r.stderr).toEqual(Buffer.from([0xff]));
    }
    expect(readFileSync(join(tmp, 'bytes-out', 'f'), 'utf8')).toBe('kept\n');
  });

  it('--image and --writable run on a root filesystem image', () => {
    const image = buildImage();
    try {
      const r = sandcell(['run', '--image', image.dir, '--writable', '--mount', 'tmpfs:/scratch:1MiB', '--', '/bin/sh', '-c', 'ls /; echo changed > /tmp/x; cat /tmp/x']);
      expect(r.status).toBe(0);
      const root = [...new Set([...image.topLevel, ...BOX_TOP_LEVEL, 'scratch'])].sort();
      expect(r.stdout).toBe(`${root.join('\n')}\nchanged\n`);
    } finally {
      image.remove();
    }
  });

  it('--help and run --help explain themselves', () => {
    const main = sandcell(['--help']);
    expect(main.status).toBe(0);
    expect(main.stdout).toContain('sandcell run [options] -- <command>');
    const run = sandcell(['run', '--help']);
    expect(run.status).toBe(0);
    for (const flag of ['--time', '--wall', '--memory', '--pids', '--stack', '--output', '--file-size', '--tmpfs', '--bind', '--cwd', '--env', '--network', '--seccomp', '--report', '--json', '--image', '--writable', '--mount', '--file', '--collect']) {
      expect(run.stdout).toContain(flag);
    }
  });

  it('--version and version print the package\'s version; a SANDCELL_HOST nothing answers at is the command\'s error, not an internal one', () => {
    const { version } = JSON.parse(readFileSync(join(dirname(CLI), '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V', 'version']) {
      const r = sandcell([flag]);
      expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: `sandcell ${version}\n`, stderr: '' });
    }
    expect(sandcell(['version', 'extra']).stderr).toBe('sandcell: version takes no arguments\n');
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-nohost-'));
    try {
      const socket = join(dir, 'none.sock');
      for (const args of [['run', '--', '/bin/true'], ['version']]) {
        const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, SANDCELL_HOST: socket } });
        expect(r.status).toBe(125);
        expect(r.stderr).toContain(`sandcell: cannot reach the daemon at ${socket} (SANDCELL_HOST): connect ENOENT ${socket}; is sandcell serve running there?\n`);
        expect(r.stderr).not.toContain('internal error');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('NODE_DEBUG=sandcell reports the cgroup driver, warm-box use and the time of each stage on stderr; without it nothing', () => {
    const quiet = sandcell(['run', '--', '/bin/true']);
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).toBe('');
    const r = spawnSync(process.execPath, [CLI, 'run', '--', '/bin/true'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_DEBUG: 'sandcell' } });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^SANDCELL \d+: cgroups parent="\(own cgroup\)" driver=v[12] controllers=\[[^\]]*"memory"[^\]]*\] warnings=\[.*\]$/m);
    expect(r.stderr).toMatch(/^SANDCELL \d+: start pid=\d+ box=new warm="off: setWarmBoxes\(0\)" enforced\.memory=cgroup enforced\.cpuTime=none enforced\.processes=cgroup degraded=\[\]$/m);
    expect(r.stderr).toMatch(/^SANDCELL \d+: end pid=\d+ status=ok ms\.options=[\d.]+ ms\.cgroup=[\d.]+ ms\.plan=[\d.]+ ms\.spawn=[\d.]+(?: ms\.spawn\.[a-zA-Z]+=[\d.]+)+ ms\.run=[\d.]+ ms\.result=[\d.]+$/m);
  });

  it('NODE_DEBUG=sandcell without root says why there are no cgroups and what stands in for them', () => {
    const asNobody = (env: NodeJS.ProcessEnv) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'run', '--time', '1s', '--', '/bin/true'], { encoding: 'utf8', timeout: 30_000, env });
    const quiet = asNobody({ ...process.env, NODE_DEBUG: '' });
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).toBe('');
    const r = asNobody({ ...process.env, NODE_DEBUG: 'sandcell' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^SANDCELL \d+: cgroups parent="\(own cgroup\)" driver=none reason=".+: rlimits stand in for the memory, CPU-time and process limits"$/m);
    expect(r.stderr).toMatch(/^SANDCELL \d+: start .* enforced\.memory=rlimit enforced\.cpuTime=rlimit enforced\.processes=rlimit degraded=\["memory: RLIMIT_AS \(.+\)","cpuTime: RLIMIT_CPU only \(.+\)","processes: RLIMIT_NPROC \(.+\)"\]$/m);
    expect(r.stderr).toMatch(/^SANDCELL \d+: end pid=\d+ status=ok /m);
  });

  it('--file keeps the host file\'s permission bits: a script copied in runs, a plain file stays unexecutable', () => {
    const script = join(tmp, 'hello.sh');
    writeFileSync(script, '#!/bin/sh\necho from the copy\n');
    chmodSync(script, 0o755);
    const ran = sandcell(['run', '--file', `hello.sh=@${script}`, '--', './hello.sh']);
    expect(ran.stderr).toBe('');
    expect(ran.stdout).toBe('from the copy\n');
    expect(ran.status).toBe(0);
    const plain = join(tmp, 'plain.sh');
    writeFileSync(plain, '#!/bin/sh\necho no\n');
    chmodSync(plain, 0o644);
    const listed = sandcell(['run', '--file', `hello.sh=@${script}`, '--file', `plain.sh=@${plain}`, '--', '/bin/sh', '-c', 'stat -c "%n %a" hello.sh plain.sh']);
    expect(listed.stdout).toBe('hello.sh 755\nplain.sh 644\n');
    expect(sandcell(['run', '--file', `plain.sh=@${plain}`, '--', './plain.sh']).status).toBe(126);
  });

  it('seccomp explain prints a decision table', () => {
    const r = sandcell(['seccomp', 'explain', 'default']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ptrace');
  });

  it('seccomp answers --help, and a name that is neither a preset nor a file with a usage error', () => {
    const help = sandcell(['seccomp', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('sandcell seccomp explain <preset|policy.json>');
    expect(sandcell(['seccomp', 'explain', '--help']).stdout).toBe(help.stdout);
    const bare = sandcell(['seccomp']);
    expect(bare.status).toBe(125);
    expect(bare.stderr).toBe('sandcell: usage: sandcell seccomp explain <preset|policy.json>\n');
    const missing = sandcell(['seccomp', 'explain', '/nonexistent/policy.json']);
    expect(missing.status).toBe(125);
    expect(missing.stderr).toMatch(/^sandcell: seccomp explain \/nonexistent\/policy.json: not a preset \(none, default, judge\) and not a readable file \(ENOENT/);
    expect(missing.stderr).not.toContain('internal error');
  });
});
