/**
 * Ready-made policies. All are plain data (JSON-serialisable), shared by x86_64 and aarch64: names
 * only one architecture has sit in rules marked `optional`.
 */
import type { ArgCondition, SeccompPolicy, SeccompRule } from './policy.js';

export const presetNames = ['none', 'default', 'judge'] as const;
export type PresetName = (typeof presetNames)[number];

// clone(2) flags that create namespaces. CLONE_NEWTIME (0x80) is not among them for clone(): its
// low byte is the exit signal there, and new time namespaces are only made by unshare/clone3.
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
const CLONE_NEWTIME = 0x00000080;
/** Every namespace flag clone() accepts: 0x7e020000. */
export const CLONE_NS_FLAGS =
  CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
/** The namespace flags unshare() accepts (clone's plus CLONE_NEWTIME): 0x7e020080. */
export const UNSHARE_NS_FLAGS = CLONE_NS_FLAGS | CLONE_NEWTIME;

const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

/** clone()/unshare() flags: arg0 on both x86_64 and aarch64; compared on all 64 bits. */
const noNamespaceFlags = (mask: number): ArgCondition[] => [{ index: 0, op: 'masked-eq', value: 0, mask }];
/** An `int`/`unsigned int` argument equal to `v`, ignoring the undefined upper 32 bits of the register. */
const int32Eq = (index: ArgCondition['index'], v: number): ArgCondition[] => [
  { index, op: 'masked-eq', value: v, mask: '0xffffffff' },
];

const EPERM = { errno: 'EPERM' } as const;
const ENOSYS = { errno: 'ENOSYS' } as const;

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Allow everything: the explicit opt-out. Compiles to the arch check and one `ret ALLOW`. */
const none: SeccompPolicy = { defaultAction: 'allow', rules: [] };

/**
 * General untrusted code (the role of Docker's default profile). Everything is allowed except the
 * kernel surface a container must not reach, which fails with EPERM (ENOSYS where programs probe
 * and fall back, EAFNOSUPPORT for socket families). C, C++, Python, Node.js, Java and shell
 * programs run unchanged.
 *
 * - mounts (old and new API), pivot_root, chroot, setns; clone() with any CLONE_NEW* flag and
 *   unshare() of any namespace (unshare of CLONE_FILES/CLONE_FS/CLONE_SYSVSEM stays allowed);
 * - clone3 → ENOSYS: its flags are behind a pointer a filter cannot read; libc falls back to clone;
 * - io_uring_* → ENOSYS (io_uring performs I/O without passing through seccomp; libuv falls back);
 * - keyrings, bpf, perf_event_open, ptrace and cross-process memory/fd access (process_vm_*,
 *   process_madvise, process_mrelease, kcmp, pidfd_getfd), kexec, modules, reboot, swap, clock
 *   and time setting, acct, quotas, file handles, userfaultfd, syslog, iopl/ioperm,
 *   lookup_dcookie, fanotify_init, vhangup, sethostname/setdomainname, modify_ldt;
 * - personality() other than 0, PER_LINUX32 (0x8), UNAME26 (0x20000), 0x20008 and the query 0xffffffff;
 * - ioctl TIOCSTI (0x5412) and TIOCLINUX (0x541c), the request compared on its low 32 bits;
 * - socket() with a domain other than AF_UNIX (1), AF_INET (2), AF_INET6 (10) → EAFNOSUPPORT
 *   (this includes AF_NETLINK: glibc's getaddrinfo/getifaddrs fall back without it).
 */
const defaultPreset: SeccompPolicy = {
  defaultAction: 'allow',
  rules: [
    { syscall: 'clone', action: 'allow', args: noNamespaceFlags(CLONE_NS_FLAGS) },
    { syscall: 'clone', action: EPERM },
    { syscall: 'unshare', action: 'allow', args: noNamespaceFlags(UNSHARE_NS_FLAGS) },
    { syscall: 'unshare', action: EPERM },
    { syscall: 'clone3', action: ENOSYS },
    { syscall: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'], action: ENOSYS },
    {
      syscall: [
        'mount',
        'umount2',
        'pivot_root',
        'chroot',
        'setns',
        'open_tree',
        'move_mount',
        'fsopen',
        'fsconfig',
        'fsmount',
        'fspick',
        'mount_setattr',
        'keyctl',
        'add_key',
        'request_key',
        'bpf',
        'perf_event_open',
        'ptrace',
        'process_vm_readv',
        'process_vm_writev',
        'process_madvise',
        'process_mrelease',
        'kcmp',
        'pidfd_getfd',
        'kexec_load',
        'kexec_file_load',
        'init_module',
        'finit_module',
        'delete_module',
        'reboot',
        'swapon',
        'swapoff',
        'settimeofday',
        'clock_settime',
        'clock_adjtime',
        'adjtimex',
        'acct',
        'quotactl',
        'quotactl_fd',
        'open_by_handle_at',
        'name_to_handle_at',
        'userfaultfd',
        'syslog',
        'lookup_dcookie',
        'fanotify_init',
        'vhangup',
        'sethostname',
        'setdomainname',
      ],
      action: EPERM,
    },
    // x86_64-only entries of the same list (stime and umount exist on neither arch).
    {
      syscall: ['iopl', 'ioperm', 'modify_ldt', 'create_module', 'get_kernel_syms', 'query_module', 'uselib', 'nfsservctl', '_sysctl'],
      action: EPERM,
      optional: true,
    },
    ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map(
      (p): SeccompRule => ({ syscall: 'personality', action: 'allow', args: int32Eq(0, p) }),
    ),
    { syscall: 'personality', action: EPERM },
    { syscall: 'ioctl', action: EPERM, args: int32Eq(1, TIOCSTI) },
    { syscall: 'ioctl', action: EPERM, args: int32Eq(1, TIOCLINUX) },
    ...[1, 2, 10].map((d): SeccompRule => ({ syscall: 'socket', action: 'allow', args: int32Eq(0, d) })),
    { syscall: 'socket', action: { errno: 'EAFNOSUPPORT' } },
  ],
};

/** What a compiled or interpreted solution needs, on both architectures. */
const JUDGE_ALLOWED = [
  // files and descriptors
  'read', 'write', 'readv', 'writev', 'pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2',
  'openat', 'close', 'close_range', 'lseek', 'fstat', 'newfstatat', 'statx', 'faccessat', 'faccessat2',
  'readlinkat', 'getdents64', 'getcwd', 'chdir', 'fchdir', 'fcntl', 'dup', 'dup3', 'flock',
  'truncate', 'ftruncate', 'fallocate', 'fsync', 'fdatasync', 'fadvise64', 'statfs', 'fstatfs', 'sendfile',
  'copy_file_range', 'unlinkat', 'mkdirat', 'renameat', 'renameat2', 'fchmod', 'fchmodat', 'utimensat',
  'umask', 'pipe2', 'eventfd2', 'memfd_create',
  // waiting for descriptors (pipes, stdio)
  'ppoll', 'pselect6', 'epoll_create1', 'epoll_ctl', 'epoll_pwait', 'epoll_pwait2',
  // memory
  'brk', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'msync', 'mincore', 'membarrier',
  // threads, synchronisation, scheduling
  'futex', 'set_robust_list', 'get_robust_list', 'set_tid_address', 'rseq', 'sched_yield',
  'sched_getaffinity', 'sched_setaffinity', 'sched_getparam', 'sched_getscheduler',
  'sched_get_priority_max', 'sched_get_priority_min', 'getcpu',
  // signals
  'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigpending', 'rt_sigtimedwait',
  'sigaltstack', 'kill', 'tgkill', 'tkill', 'restart_syscall',
  // time
  'clock_gettime', 'clock_getres', 'clock_nanosleep', 'nanosleep', 'gettimeofday', 'times', 'getrusage',
  'getitimer', 'setitimer', 'timer_create', 'timer_settime', 'timer_gettime', 'timer_getoverrun',
  'timer_delete',
  // process identity and limits
  'getpid', 'getppid', 'gettid', 'getuid', 'geteuid', 'getgid', 'getegid', 'getresuid', 'getresgid',
  'getgroups', 'getpgid', 'getsid', 'uname', 'sysinfo', 'prlimit64', 'getrlimit', 'setrlimit', 'prctl',
  'getrandom',
  // ending
  'exit', 'exit_group', 'wait4', 'waitid',
];

/** x86_64-only names with the same meaning (legacy forms libc or runtimes still use). */
const JUDGE_ALLOWED_X86 = [
  'open', 'stat', 'lstat', 'access', 'readlink', 'getdents', 'dup2', 'pipe', 'poll', 'select',
  'epoll_wait', 'epoll_create', 'unlink', 'mkdir', 'rmdir', 'rename', 'chmod', 'time', 'alarm', 'pause',
  'arch_prctl', 'getpgrp', 'fork', 'vfork',
];

/**
 * Contest solutions (static or dynamic C/C++, Python, Java): a tight allow-list. Anything not on
 * it is `kill`: the run ends with status `syscall-denied` naming the call (see `killAction`).
 * Sockets of any kind are refused the same way (an explicit rule, so `explain` shows it), except
 * that socket(AF_UNIX, ...) fails with EACCES instead: glibc probes the nscd daemon that way
 * whenever a program looks up a user (every JVM does at startup) and falls back to files.
 *
 * - Threads and processes: clone() without namespace flags; clone3 fails with ENOSYS so libc
 *   falls back to clone (the flags of clone3 are behind a pointer a filter cannot inspect).
 * - execve: the sandbox itself makes the first execve with this filter already installed, so it
 *   must pass: execve is allowed only when its path pointer (arg0) equals the `execPath`
 *   placeholder. The compile result lists the instructions holding that constant
 *   (`placeholders`); the native side patches in the address of the path string it passes to
 *   execve (a buffer it prepared before clone) and installs the filter. Any other execve and every
 *   execveat ends the run. Caveat: after the first execve the new image has a fresh address
 *   space, and a solution that places a path at exactly that address (MAP_FIXED) and calls execve
 *   would pass; the address is not visible inside the box, so the native side should use a fresh,
 *   randomised mapping per run to make guessing it hopeless (one wrong guess kills the run).
 * - ioctl is allowed (isatty, terminal queries) except TIOCSTI and TIOCLINUX.
 */
const judge: SeccompPolicy = {
  defaultAction: 'kill',
  rules: [
    { syscall: 'execve', action: 'allow', args: [{ index: 0, op: 'eq', value: { placeholder: 'execPath' } }] },
    { syscall: 'clone', action: 'allow', args: noNamespaceFlags(CLONE_NS_FLAGS) },
    { syscall: 'clone3', action: ENOSYS },
    { syscall: 'ioctl', action: 'kill', args: int32Eq(1, TIOCSTI) },
    { syscall: 'ioctl', action: 'kill', args: int32Eq(1, TIOCLINUX) },
    { syscall: 'ioctl', action: 'allow' },
    // glibc's NSS (getpwuid: Java always asks for user.home, Python's site when HOME is unset)
    // first tries the nscd daemon through an AF_UNIX socket and falls back to /etc/passwd when
    // socket() fails: that probe gets EACCES instead of ending the run. No socket is ever made.
    { syscall: 'socket', action: { errno: 'EACCES' }, args: int32Eq(0, 1) },
    { syscall: ['socket', 'socketpair'], action: 'kill' },
    { syscall: JUDGE_ALLOWED, action: 'allow' },
    { syscall: JUDGE_ALLOWED_X86, action: 'allow', optional: true },
  ],
};

/** The presets by name (deeply frozen). */
export const presets: Readonly<Record<PresetName, SeccompPolicy>> = deepFreeze({
  none,
  default: defaultPreset,
  judge,
});

export function isPresetName(name: string): name is PresetName {
  return (presetNames as readonly string[]).includes(name);
}
