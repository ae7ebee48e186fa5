// sandcell inside a container that is not --privileged. There is no container engine here, so each
// test makes the piece of a container it is about with the mechanism a runtime uses for it, starts
// a Node process in it and runs sandcell there (the CLI, or the public API): a seccomp filter
// refusing what Docker's default profile refuses (compiled by sandcell's own compiler, installed
// by test/container/fixtures/confine.c), Docker's default capability set (setpriv), a user
// namespace whose user.max_user_namespaces is 0 or that maps only 65536 ids, a mount namespace with the cgroupfs read-only or
// with /proc's paths masked as a runtime masks them, no_new_privs. Each asserts the outcome and the
// exact text of what sandcell reports. docs/containers.md is the user's side of this file.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { compile, hostArch, type SeccompRule } from '../../src/seccomp/index.js';
import { compileProgram } from '../helpers/fixtures.js';
import { requireRoot } from '../helpers/host.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, '..', '..', 'dist');
const CLI = join(DIST, 'cli', 'main.js');

/** Docker's default capabilities (moby's oci/caps defaults): no CAP_SYS_ADMIN. */
const DOCKER_CAPS = '-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap';
/** Docker's masked paths: directories get a read-only tmpfs, files /dev/null. */
const MASKED = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi'];
/** Docker's read-only paths: bound onto themselves read-only. */
const READ_ONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

const SECCOMP_HINT =
  "refused with EPERM while this process runs under a seccomp filter (a container's seccomp profile): the profile must allow " +
  'clone() and unshare() with CLONE_NEW* flags, setns(), mount(), umount2(), pivot_root() and sethostname() ' +
  '(Docker: --security-opt seccomp=unconfined or a profile allowing them; Kubernetes: securityContext.seccompProfile)';
const DELEGATE =
  'cgroup delegation is missing: give this process a writable cgroup v2 subtree with memory, pids and cpu in the cgroup.subtree_control of its parent ' +
  '(in a container: --cgroupns=private and a writable /sys/fs/cgroup, Docker: --security-opt writable-cgroups=true; under systemd: Delegate=yes) ' +
  'and pass an empty cgroup there as cgroupParent';

let dir: string;
let confine: string;
/** Every Node process the tests start appends its pid here (through NODE_OPTIONS), wherever it runs. */
let pidsFile: string;
let recorder: string;

/**
 * A filter that allows everything but `refused`: EPERM, as Docker's default profile answers
 * (clone only with a CLONE_NEW* flag, as its rule reads); clone3 gets ENOSYS, as there.
 */
function filterFile(name: string, refused: string[]): string {
  const rules: SeccompRule[] = refused.flatMap((s): SeccompRule[] =>
    s === 'clone'
      ? [
          { syscall: 'clone', action: 'allow', args: [{ index: 0, op: 'masked-eq', mask: '0x7e020000', value: 0 }] },
          { syscall: 'clone', action: { errno: 'EPERM' } },
        ]
      : s === 'clone3'
        ? [{ syscall: 'clone3', action: { errno: 'ENOSYS' } }]
        : [{ syscall: s, action: { errno: 'EPERM' } }],
  );
  const arch = hostArch();
  if (!arch) throw new Error(`no seccomp syscall table for ${process.arch}`);
  const file = join(dir, `${name}.bpf`);
  writeFileSync(file, compile({ defaultAction: 'allow', rules }, arch).program);
  return file;
}

/** What Docker's default profile refuses to a container without CAP_SYS_ADMIN, of what sandcell or a service might call. */
const DOCKER_REFUSES = ['clone', 'clone3', 'unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'sethostname', 'keyctl', 'add_key', 'request_key', 'bpf'];
/** What it refuses that sandcell does not need. */
const OTHER_REFUSALS = ['clone3', 'keyctl', 'add_key', 'request_key', 'bpf'];

/** Runs `argv`: the container's entry, ending in a Node command. */
function exec(argv: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: `--require ${recorder}`, ...env } });
  if (r.error) throw r.error;
  return r;
}



const sandcell = (...args: string[]): string[] => [process.execPath, CLI, ...args];
const confined = (opts: string[], inner: string[]): string[] => [confine, ...opts, '--', ...inner];
/** A private mount namespace where `setup` (shell) runs first; the namespace dies with the process. */
const inMountNs = (setup: string, inner: string[]): string[] => ['unshare', '--mount', '--propagation', 'private', 'sh', '-ec', `${setup}\nexec "$@"`, 'sh', ...inner];

beforeAll(() => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'sandcell-container-'));
  confine = join(dir, 'confine');
  compileProgram(join(HERE, 'fixtures', 'confine.c'), confine);
  // Processes of the tests run as 65534 and 1000 too: they read the recorder and append to the file.
  chmodSync(dir, 0o755);
  pidsFile = join(dir, 'pids');
  writeFileSync(pidsFile, '', { mode: 0o666 });
  chmodSync(pidsFile, 0o666);
  recorder = join(dir, 'record-pid.cjs');
  writeFileSync(recorder, `require('node:fs').appendFileSync(${JSON.stringify(pidsFile)}, process.pid + '\\n');\n`, { mode: 0o644 });
});

afterAll(() => {
  // Every Node process of these tests has exited: none may have left a cgroup behind.
  const pids = readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean).map(Number);
  rmSync(dir, { recursive: true, force: true });
  expect(pids.length).toBeGreaterThan(20);
  for (const pid of pids) expect(listSandcellCgroups({ pid })).toEqual([]);
});

describe("Docker's default seccomp profile", () => {
  it('refuses the box: the error names clone() and what the profile must allow', () => {
    const r = exec(confined(['--filter', filterFile('docker', DOCKER_REFUSES)], sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(`sandcell: sandbox setup failed at clone: EPERM (clone() with CLONE_NEWUSER and the other CLONE_NEW* flags ${SECCOMP_HINT})\n`);
    expect(r.status).toBe(125);
  });

  it('says the same to a service that runs as a non-root user (rootless boxes), through the public API', () => {
    const script = `
      const { run, SandboxSetupError } = await import(${JSON.stringify(join(DIST, 'index.js'))});
      try { await run({ command: ['/bin/true'] }); console.log('ran'); }
      catch (e) { console.log(JSON.stringify({ setup: e instanceof SandboxSetupError, stage: e.stage, code: e.code, message: e.message })); }`;
    const r = exec(
      confined(['--filter', filterFile('docker', DOCKER_REFUSES)], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script]),
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      setup: true,
      stage: 'clone',
      code: 'EPERM',
      message: `sandbox setup failed at clone: EPERM (clone() with CLONE_NEWUSER and the other CLONE_NEW* flags ${SECCOMP_HINT})`,
    });
  });

  // A custom profile that lets one call through still fails at the next: each is named.
  it.each([
    ['mount', 'make mounts private', 'mount()'],
    ['pivot_root', 'pivot_root', 'pivot_root()'],
    ['sethostname', 'sethostname', 'sethostname()'],
    ['umount2', 'detach old root', 'umount2()'],
  ])('a profile refusing only %s: the error names the stage and %s', (call, stage, named) => {
    const r = exec(confined(['--filter', filterFile(`only-${call}`, [call])], sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(`sandcell: sandbox setup failed at ${stage}: EPERM (${named} ${SECCOMP_HINT})\n`);
    expect(r.status).toBe(125);
  });

  it('a profile older than close_range() (refused with EPERM, as old Docker profiles refused calls they did not know): named too', () => {
    const r = exec(confined(['--filter', filterFile('old', ['close_range'])], sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(
      'sandcell: sandbox setup failed at close fds: EPERM (close_range() refused with EPERM while this process runs under a seccomp filter ' +
        "(a container's seccomp profile): the profile must allow close_range() (a profile older than the call refuses it) and " +
        'clone() and unshare() with CLONE_NEW* flags, setns(), mount(), umount2(), pivot_root() and sethostname() ' +
        '(Docker: --security-opt seccomp=unconfined or a profile allowing them; Kubernetes: securityContext.seccompProfile))\n',
    );
    expect(r.status).toBe(125);
  });

  it("needs nothing else: with the namespace calls allowed, the profile's other refusals (clone3, keyctl, bpf) do not matter", () => {
    const r = exec(confined(['--filter', filterFile('others', OTHER_REFUSALS)], sandcell('run', '--', '/bin/sh', '-c', 'echo hi; grep -c . /proc/self/mountinfo >/dev/null')));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
    expect(r.status).toBe(0);
  });
});

describe('user namespaces disabled', () => {
  it('user.max_user_namespaces=0: the error names the sysctl', () => {
    const r = exec(confined(['--userns', '4294967295', '--max-userns', '0'], sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(
      "sandcell: sandbox setup failed at clone: ENOSPC (user namespaces are disabled here (user.max_user_namespaces=0): sandcell needs them; set user.max_user_namespaces above 0 on the host (a container shares the host's value unless it has a user namespace of its own))\n",
    );
    expect(r.status).toBe(125);
  });

  it('the same user namespace with user.max_user_namespaces=10 runs the box (the emulation itself is not what fails)', () => {
    const r = exec(confined(['--userns', '4294967295', '--max-userns', '10'], sandcell('run', '--', '/bin/echo', 'hi')));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
  });
});

describe('a container with a user namespace of its own (Kubernetes hostUsers: false: 65536 ids)', () => {
  const NOT_MAPPED = "are not mapped in this process's user namespace, which maps ids 0–65535 (a container with a user namespace of its own, as Kubernetes hostUsers: false makes): run the service as a non-root user there (boxes are then rootless)";

  it('a root service: the error names the host ids that are not mapped', () => {
    const r = exec(confined(['--userns', '65536'], sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(`sandcell: sandbox setup failed at box owner id: EINVAL (the host ids root gives boxes (1879048192–1879113727 and 100000–165536) ${NOT_MAPPED})\n`);
    expect(r.status).toBe(125);
  });

  it('a root service with its owner ids moved into the namespace: the error names the ids boxes map to', () => {
    const script = `
      const { run, setOwnerIds } = await import(${JSON.stringify(join(DIST, 'index.js'))});
      setOwnerIds({ first: 60000, count: 1000 });
      try { await run({ command: ['/bin/true'] }); console.log('ran'); } catch (e) { console.log(e.message); }`;
    const r = exec(confined(['--userns', '65536'], [process.execPath, '--input-type=module', '-e', script]));
    expect(r.stdout).toBe(`sandbox setup failed at uid_map: EPERM (the host ids root gives boxes (100000–165536) ${NOT_MAPPED})\n`);
  });

  it('a non-root service there runs rootless boxes', () => {
    const r = exec(confined(['--userns', '65536'], ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', ...sandcell('run', '--', '/bin/sh', '-c', 'id -u; echo hi')]));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0\nhi\n');
  });
});

describe("a container's capabilities", () => {
  it("root with Docker's default capabilities (no CAP_SYS_ADMIN): the error names CAP_SYS_ADMIN and the rootless way out", () => {
    const r = exec(['setpriv', `--bounding-set=${DOCKER_CAPS}`, '--inh-caps=-all', ...sandcell('run', '--', '/bin/true')]);
    expect(r.stderr).toBe(
      "sandcell: sandbox setup failed at uid_map: EPERM (this process is root without CAP_SYS_ADMIN (a container's default capabilities): as root, sandcell gives each box host ids of its own, and writing the id map of a user namespace another id owns needs CAP_SYS_ADMIN; grant it (Docker: --cap-add SYS_ADMIN) or run the service as a non-root user (boxes are then rootless))\n",
    );
    expect(r.status).toBe(125);
  });

  it('root with every capability dropped: the error names CAP_SETUID and CAP_SETGID', () => {
    const r = exec(['setpriv', '--bounding-set=-all', '--inh-caps=-all', ...sandcell('run', '--', '/bin/true')]);
    expect(r.stderr).toBe(
      'sandcell: sandbox setup failed at box owner id: EPERM (this process is root without CAP_SETUID and CAP_SETGID: as root, sandcell gives each box host ids of its own, which needs CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN; grant them, or run the service as a non-root user (boxes are then rootless))\n',
    );
    expect(r.status).toBe(125);
  });

  it("Docker's default capabilities plus CAP_SYS_ADMIN: the box runs, its program as 65534", () => {
    const r = exec(['setpriv', `--bounding-set=${DOCKER_CAPS},+sys_admin`, '--inh-caps=-all', ...sandcell('run', '--', '/bin/sh', '-c', 'id -u; grep CapEff /proc/self/status')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('65534\nCapEff:\t0000000000000000\n');
  });
});

describe('no delegated cgroup', () => {
  const readOnlyCgroupfs = 'for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do mount -o remount,bind,ro "$m"; done';

  it('a read-only cgroupfs: the run works on rlimits, and the debug log says cgroup delegation is missing and what to delegate', () => {
    const r = exec(inMountNs(readOnlyCgroupfs, sandcell('run', '--json', '--memory', '256MiB', '--time', '2s', '--', '/bin/sh', '-c', 'ulimit -v')), { NODE_DEBUG: 'sandcell' });
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout) as { status: string; stdout: string; limitsEnforced: unknown; usage: { memoryPeakBytes: unknown } };
    expect(result.status).toBe('ok');
    expect(result.stdout).toBe(`${256 * 1024}\n`);
    expect(result.limitsEnforced).toEqual({ memory: 'rlimit', cpuTime: 'rlimit', processes: 'rlimit' });
    expect(result.usage.memoryPeakBytes).toBeNull();
    const line = r.stderr.split('\n').find((l) => / cgroups /.test(l)) ?? '';
    expect(line).toContain('driver=none');
    expect(line).toMatch(/cannot create \/sys\/fs\/cgroup\/\S+\/sandcell-\d+/);
    expect(line).toContain(`: the cgroup filesystem is mounted read-only here (EROFS): ${DELEGATE}: rlimits stand in for the memory, CPU-time and process limits"`);
  });

  it('the host cgroupfs is untouched: still read-write outside the test namespace', () => {
    const r = spawnSync('findmnt', ['-rn', '-t', 'cgroup,cgroup2', '-o', 'OPTIONS'], { encoding: 'utf8' });
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.split(',')[0]).toBe('rw');
  });
});

/** Docker's masks, as runc makes them, in the test's own mount namespace. */
const MASK = [
  ...MASKED.map((p) => `if [ -d ${p} ]; then mount -t tmpfs -o ro tmpfs ${p}; elif [ -e ${p} ]; then mount --bind /dev/null ${p}; fi`),
  ...READ_ONLY.map((p) => `if [ -e ${p} ]; then mount --bind ${p} ${p}; mount -o remount,bind,ro ${p}; fi`),
].join('\n');
/** The paths of MASK this kernel has. */
const covered = (): string[] => [...MASKED, ...READ_ONLY].filter((p) => spawnSync('test', ['-e', p]).status === 0);

describe("a container's /proc", () => {
  const mask = MASK;

  it("masked and read-only paths as Docker's: the error names them and the flag that unmasks them", () => {
    const coveredHere = covered();
    expect(coveredHere).toContain('/proc/sys');
    const r = exec(inMountNs(mask, sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toBe(
      `sandcell: sandbox setup failed at mount proc /proc: EPERM (the kernel refuses a new /proc in a box while parts of this /proc are hidden by other mounts (${coveredHere.join(', ')}), ` +
        "as a container runtime's masked and read-only paths are: unmask them (Docker: --security-opt systempaths=unconfined; Kubernetes: securityContext.procMount: Unmasked))\n",
    );
    expect(r.status).toBe(125);
  });

  it('one read-only bind over /proc/sys is enough to refuse it', () => {
    const r = exec(inMountNs('mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys', sandcell('run', '--', '/bin/true')));
    expect(r.stderr).toContain('failed at mount proc /proc: EPERM (the kernel refuses a new /proc in a box while parts of this /proc are hidden by other mounts (/proc/sys), ');
    expect(r.status).toBe(125);
  });
});

describe('a default Docker container, root service', () => {
  it("its seccomp profile, capabilities and masked /proc: the first refusal's error names the other two as well", () => {
    const inner = confined(['--filter', filterFile('docker', DOCKER_REFUSES)], ['setpriv', `--bounding-set=${DOCKER_CAPS}`, '--inh-caps=-all', ...sandcell('run', '--', '/bin/true')]);
    const r = exec(inMountNs(MASK, inner));
    expect(r.stderr).toBe(
      `sandcell: sandbox setup failed at clone: EPERM (clone() with CLONE_NEWUSER and the other CLONE_NEW* flags ${SECCOMP_HINT}; next in the way: ` +
        'root without CAP_SYS_ADMIN (Docker: --cap-add SYS_ADMIN), or run the service as a non-root user; ' +
        `parts of /proc hidden by other mounts (${covered().join(', ')}) (Docker: --security-opt systempaths=unconfined; Kubernetes: securityContext.procMount: Unmasked))\n`,
    );
    expect(r.status).toBe(125);
  });
});

describe('no_new_privs set by the runtime', () => {
  it('a box runs, its program sees no_new_privs, and its own filter stacks on the runtime filter', () => {
    const r = exec(
      confined(['--no-new-privs', '--filter', filterFile('others', OTHER_REFUSALS)], sandcell('run', '--', '/bin/sh', '-c', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status')),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('NoNewPrivs:\t1\nSeccomp:\t2\n');
  });

  it('a living box works too: runs join it (setns) and share its files', () => {
    const script = `
      const { Sandbox } = await import(${JSON.stringify(join(DIST, 'index.js'))});
      const box = await Sandbox.create({});
      try {
        const a = await box.run({ command: ['/bin/sh', '-c', 'echo kept > /tmp/f'] });
        const b = await box.run({ command: ['/bin/cat', '/tmp/f'] });
        console.log(JSON.stringify([a.status, b.status, b.stdout]));
      } finally { await box.destroy(); }`;
    const r = exec(confined(['--no-new-privs'], [process.execPath, '--input-type=module', '-e', script]));
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual(['ok', 'ok', 'kept\n']);
  });
});

describe('the documented minimum, emulated as a whole', () => {
  const readOnlyCgroupfs = 'for m in $(findmnt -rn -t cgroup,cgroup2 -o TARGET); do mount -o remount,bind,ro "$m"; done';

  it("a non-root service: Docker's other seccomp refusals, no_new_privs, read-only cgroupfs: rootless boxes on rlimits", () => {
    const inner = confined(
      ['--no-new-privs', '--filter', filterFile('others', OTHER_REFUSALS)],
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...sandcell('run', '--json', '--memory', '128MiB', '--', '/bin/sh', '-c', 'id -u; ulimit -v')],
    );
    const r = exec(inMountNs(readOnlyCgroupfs, inner));
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { status: string; stdout: string; limitsEnforced: unknown };
    expect([result.status, result.stdout]).toEqual(['ok', `0\n${128 * 1024}\n`]);
    expect(result.limitsEnforced).toEqual({ memory: 'rlimit', cpuTime: 'none', processes: 'rlimit' });
  });

  it("a root service: Docker's capabilities plus CAP_SYS_ADMIN, the same filter, read-only cgroupfs: boxes with their own ids on rlimits", () => {
    const inner = confined(
      ['--no-new-privs', '--filter', filterFile('others', OTHER_REFUSALS)],
      ['setpriv', `--bounding-set=${DOCKER_CAPS},+sys_admin`, '--inh-caps=-all', ...sandcell('run', '--json', '--', '/bin/sh', '-c', 'id -u')],
    );
    const r = exec(inMountNs(readOnlyCgroupfs, inner));
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { status: string; stdout: string; limitsEnforced: unknown };
    expect([result.status, result.stdout]).toEqual(['ok', '65534\n']);
    expect(result.limitsEnforced).toEqual({ memory: 'rlimit', cpuTime: 'none', processes: 'rlimit' });
  });
});
