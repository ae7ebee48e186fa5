/**
 * The one answer to "are we root?", and to "what refused this box?". Root may map other ids than
 * its own into a box, make cgroups and give a box its own unprivileged host ids; without it a box
 * is rootless (the caller's own id is its root, rlimits stand in for cgroups).
 *
 * When a setup step is refused, `refusalHint` names what was missing: a seccomp profile or
 * AppArmor profile that refuses a namespace or mount call (a container's defaults), a /proc with
 * masked paths, capabilities a container dropped, user namespaces disabled by a sysctl. It reads
 * this process's confinement from /proc only then, never on the path of a run.
 */
import { readFileSync } from 'node:fs';

export function privileged(): boolean {
  return process.geteuid?.() === 0;
}

/** What confines this process beyond its uid, as /proc shows it. */
export interface Confinement {
  root: boolean;
  /** The effective capability set (bit n is capability n). */
  capEff: bigint;
  /** How many seccomp filters this process runs under (0: none). */
  seccompFilters: number;
  /** The AppArmor profile confining this process; null when unconfined or without AppArmor. */
  apparmor: string | null;
  /** Mount points below /proc in this mount namespace (a container's masked and read-only paths). */
  procCovered: string[];
  /** The ids this process's user namespace maps (`/proc/self/uid_map`), as [first, last] ranges of its own ids. */
  uids: [number, number][];
  /** A sysctl's value (`user.max_user_namespaces`), null when absent. */
  sysctl(name: string): string | null;
}

/** The host ids root gives boxes: the owners of their user namespaces and the ids inside mapped to. */
export interface RootIds {
  owner: { first: number; count: number } | undefined;
  box: [number, number];
}

const CAP_SETGID = 6n;
const CAP_SETUID = 7n;
const CAP_SYS_ADMIN = 21n;

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * Mounts under /proc hide part of it. The kernel lets a user namespace mount a new procfs only
 * where no part of an existing one is hidden, except by a mount on an empty directory: binfmt_misc
 * (and the autofs systemd puts there for it) is such a mount on every ordinary host, so it is left out.
 */
function procCovered(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const target = (fields[4] ?? '').replace(/\\040/g, ' ');
    const fstype = fields[sep + 1] ?? '';
    if (sep < 0 || !target.startsWith('/proc/') || fstype === 'binfmt_misc' || fstype === 'autofs') continue;
    out.push(target);
  }
  return out;
}

export function readConfinement(): Confinement {
  const status = read('/proc/self/status') ?? '';
  const field = (name: string): string | undefined => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1];
  // AppArmor's own file (kernel 5.8 and later): /proc/self/attr/current is whichever LSM is
  // primary, an SELinux context on SELinux hosts.
  const label = read('/proc/self/attr/apparmor/current');
  return {
    root: privileged(),
    capEff: BigInt(`0x${field('CapEff') ?? '0'}`),
    // Seccomp_filters appeared in 5.9; before it, mode 2 says there is at least one.
    seccompFilters: Number(field('Seccomp_filters') ?? (field('Seccomp') === '2' ? 1 : 0)),
    apparmor: label && label !== 'unconfined' && !label.startsWith('unconfined') ? label.replace(/\s*\(.*\)$/, '') : null,
    procCovered: procCovered(read('/proc/self/mountinfo') ?? ''),
    uids: (read('/proc/self/uid_map') ?? '')
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .filter((f) => f.length === 3 && f.every(Number.isInteger))
      .map(([inside, , count]) => [inside!, inside! + count! - 1]),
    sysctl: (name) => read(`/proc/sys/${name.replace(/\./g, '/')}`),
  };
}

const has = (c: Confinement, cap: bigint): boolean => ((c.capEff >> cap) & 1n) === 1n;
const mapped = (c: Confinement, [first, last]: [number, number]): boolean => c.uids.some(([a, b]) => a <= first && last <= b);
const ranges = (c: Confinement): string => c.uids.map(([a, b]) => `${a}–${b}`).join(', ') || 'none';

/** The system call a setup stage makes, for the stages a container's profile may refuse. */
function callOf(stage: string): string | null {
  if (stage === 'clone') return 'clone() with CLONE_NEWUSER and the other CLONE_NEW* flags';
  if (stage === 'join box') return 'setns()';
  if (stage === 'namespaces' || stage === 'run mount namespace' || stage === 'run PID namespace' || stage === 'cgroup namespace') return 'unshare()';
  if (stage === 'sethostname') return 'sethostname()';
  if (stage === 'pivot_root') return 'pivot_root()';
  if (stage === 'detach old root') return 'umount2()';
  if (/^(make mounts private|mount |bind |read-only )/.test(stage)) return 'mount()';
  if (stage === 'close fds') return 'close_range()';
  if (stage === 'execve init') return 'execveat()';
  if (stage === 'run init pidfd') return 'pidfd_open()';
  return null;
}

const NAMESPACE_CALLS = 'clone() and unshare() with CLONE_NEW* flags, setns(), mount(), umount2(), pivot_root() and sethostname()';

/** What the profile must allow: the namespace calls, and a newer call a profile older than it refuses. */
function toAllow(call: string): string {
  return /^(clone|unshare|setns|mount|umount2|pivot_root|sethostname)\(/.test(call)
    ? NAMESPACE_CALLS
    : `${call} (a profile older than the call refuses it) and ${NAMESPACE_CALLS}`;
}

/** Stages that come before the box's /proc is mounted. */
const BEFORE_PROC = new Set(['clone', 'box owner id', 'uid_map', 'setgroups deny', 'gid_map', 'namespaces', 'cgroup namespace', 'sethostname', 'make mounts private']);

const PROC_FIX = '(Docker: --security-opt systempaths=unconfined; Kubernetes: securityContext.procMount: Unmasked)';

/**
 * What else a container withholds that the stages after `stage` need, so that one error names
 * every piece missing rather than the next one only.
 */
function ahead(stage: string, c: Confinement): string {
  const out: string[] = [];
  if (stage === 'clone' && c.root && !has(c, CAP_SYS_ADMIN)) out.push('root without CAP_SYS_ADMIN (Docker: --cap-add SYS_ADMIN), or run the service as a non-root user');
  if (BEFORE_PROC.has(stage) && c.procCovered.length > 0) out.push(`parts of /proc hidden by other mounts (${c.procCovered.join(', ')}) ${PROC_FIX}`);
  return out.length > 0 ? `; next in the way: ${out.join('; ')}` : '';
}

/**
 * Why a setup stage failed with `code`, and what would let it pass; undefined when nothing is
 * known. First what a container imposes (the ids a user namespace of its own maps, a /proc with
 * masked paths, a seccomp or AppArmor profile, dropped capabilities), then what a host's sysctls
 * deny an unprivileged caller.
 */
export function refusalHint(stage: string, code: string, ids: RootIds, c: Confinement = readConfinement()): string | undefined {
  if (stage === 'clone' && code === 'ENOSPC') {
    const max = c.sysctl('user.max_user_namespaces');
    return max === '0'
      ? "user namespaces are disabled here (user.max_user_namespaces=0): sandcell needs them; set user.max_user_namespaces above 0 on the host (a container shares the host's value unless it has a user namespace of its own)"
      : `no more user namespaces may be created here (user.max_user_namespaces=${max ?? '?'}, all in use): raise it`;
  }
  const idsStage = (stage === 'box owner id' && code === 'EINVAL') || (/^(uid_map|gid_map)$/.test(stage) && code === 'EPERM');
  if (c.root && ids.owner && idsStage) {
    const owner: [number, number] = [ids.owner.first, ids.owner.first + ids.owner.count - 1];
    const missing = [owner, ids.box].filter((r) => !mapped(c, r));
    if (missing.length > 0) {
      return (
        `the host ids root gives boxes (${missing.map(([a, b]) => `${a}–${b}`).join(' and ')}) are not mapped in this process's user namespace, which maps ids ${ranges(c)} ` +
        '(a container with a user namespace of its own, as Kubernetes hostUsers: false makes): run the service as a non-root user there (boxes are then rootless)' +
        ahead(stage, c)
      );
    }
  }
  if (code !== 'EPERM' && code !== 'EACCES') return undefined;
  if (/^mount (proc|run \/proc)/.test(stage) && c.procCovered.length > 0) {
    return (
      `the kernel refuses a new /proc in a box while parts of this /proc are hidden by other mounts (${c.procCovered.join(', ')}), ` +
      `as a container runtime's masked and read-only paths are: unmask them ${PROC_FIX}`
    );
  }
  const call = callOf(stage);
  if (call !== null && c.seccompFilters > 0) {
    return (
      `${call} refused with ${code} while this process runs under ${c.seccompFilters === 1 ? 'a seccomp filter' : `${c.seccompFilters} seccomp filters`} ` +
      `(a container's seccomp profile): the profile must allow ${toAllow(call)} ` +
      '(Docker: --security-opt seccomp=unconfined or a profile allowing them; Kubernetes: securityContext.seccompProfile)' +
      ahead(stage, c)
    );
  }
  if (call !== null && c.apparmor !== null) {
    return (
      `${call} refused with ${code} while this process is confined by the AppArmor profile ${c.apparmor}: ` +
      'the profile must allow mount, umount, pivot_root and user namespaces (Docker: --security-opt apparmor=unconfined or such a profile; Kubernetes: securityContext.appArmorProfile)' +
      ahead(stage, c)
    );
  }
  if (c.root && stage === 'box owner id' && !(has(c, CAP_SETUID) && has(c, CAP_SETGID))) {
    return `this process is root without CAP_SETUID and CAP_SETGID: as root, sandcell gives each box host ids of its own, which needs CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN; grant them, or run the service as a non-root user (boxes are then rootless)${ahead(stage, c)}`;
  }
  if (c.root && /^(uid_map|gid_map|setgroups deny)$/.test(stage) && !has(c, CAP_SYS_ADMIN)) {
    return (
      "this process is root without CAP_SYS_ADMIN (a container's default capabilities): as root, sandcell gives each box host ids of its own, " +
      'and writing the id map of a user namespace another id owns needs CAP_SYS_ADMIN; grant it (Docker: --cap-add SYS_ADMIN) or run the service as a non-root user (boxes are then rootless)' +
      ahead(stage, c)
    );
  }
  if (c.root && has(c, CAP_SYS_ADMIN)) return undefined;
  const fix = c.root ? 'grant CAP_SYS_ADMIN' : 'run as root';
  // Some distributions (Ubuntu 23.10 and later) let anyone create a user namespace but deny it
  // every capability inside, so the box's first mount fails with EPERM/EACCES.
  if (c.sysctl('kernel.apparmor_restrict_unprivileged_userns') === '1') {
    return `this host restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): ${fix}, or allow them for node with an AppArmor profile`;
  }
  if (c.sysctl('user.max_user_namespaces') === '0') {
    return `user namespaces are disabled on this host (user.max_user_namespaces=0): ${fix}`;
  }
  if (c.sysctl('kernel.unprivileged_userns_clone') === '0') {
    return `unprivileged user namespaces are disabled on this host (kernel.unprivileged_userns_clone=0): ${fix}`;
  }
  return c.root ? undefined : 'not running as root: the host may not allow unprivileged user namespaces';
}
