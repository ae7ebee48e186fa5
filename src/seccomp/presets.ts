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

/**
 * TIOCSTI pushes bytes into a terminal's input as if typed; TIOCLINUX drives a virtual console
 * (and can paste its selection as input). Both act only on a descriptor of a terminal, so their
 * rules are marked `terminal`: a run that can hold no terminal (its stdio the sandbox's own pipes
 * or /dev/null, no terminal device openable in its box, no host process able to hand it one;
 * `mayHoldTerminal` in src/plan/build.ts) gets the policy without them (`withoutTerminalRules`),
 * and the kernel's action cache then answers every ioctl without running the filter. A run that
 * may hold a terminal gets them. docs/seccomp.md gives the proof.
 */
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
 * What general-purpose programs need, on both architectures: the calls Docker's default profile
 * allows a container without extra capabilities, minus the ones this preset refuses on purpose
 * (see DEFAULT_EPERM and the rules of `defaultPreset`). Grouped by purpose so a reviewer can see
 * why each one is here.
 */
const DEFAULT_ALLOWED = [
  // files and descriptors
  'read', 'write', 'readv', 'writev', 'pread64', 'pwrite64', 'preadv', 'pwritev', 'preadv2', 'pwritev2',
  'openat', 'openat2', 'close', 'close_range', 'lseek', 'fstat', 'newfstatat', 'statx', 'statfs', 'fstatfs',
  'faccessat', 'faccessat2', 'readlinkat', 'getdents64', 'getcwd', 'chdir', 'fchdir', 'fcntl', 'dup', 'dup3',
  'flock', 'truncate', 'ftruncate', 'fallocate', 'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range',
  'fadvise64', 'readahead', 'sendfile', 'copy_file_range', 'splice', 'tee', 'vmsplice',
  'mkdirat', 'mknodat', 'unlinkat', 'renameat', 'renameat2', 'linkat', 'symlinkat',
  'fchmod', 'fchmodat', 'fchown', 'fchownat', 'utimensat', 'umask',
  'getxattr', 'lgetxattr', 'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr',
  'listxattr', 'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr', 'fremovexattr',
  'pipe2', 'eventfd2', 'memfd_create', 'signalfd4', 'timerfd_create', 'timerfd_settime', 'timerfd_gettime',
  'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch',
  // waiting for descriptors
  'ppoll', 'pselect6', 'epoll_create1', 'epoll_ctl', 'epoll_pwait', 'epoll_pwait2',
  // Linux AIO (libaio; io_uring is refused below)
  'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents',
  // sockets (socket and socketpair are held to some families below)
  'bind', 'connect', 'listen', 'accept', 'accept4', 'getsockname', 'getpeername', 'getsockopt', 'setsockopt',
  'sendto', 'recvfrom', 'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg', 'shutdown',
  // memory
  'brk', 'mmap', 'munmap', 'mprotect', 'mremap', 'madvise', 'msync', 'mincore', 'membarrier',
  'mlock', 'mlock2', 'mlockall', 'munlock', 'munlockall', 'remap_file_pages',
  'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  // System V and POSIX IPC (the box has its own IPC namespace)
  'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semtimedop', 'semctl',
  'msgget', 'msgsnd', 'msgrcv', 'msgctl',
  'mq_open', 'mq_unlink', 'mq_timedsend', 'mq_timedreceive', 'mq_notify', 'mq_getsetattr',
  // threads, synchronisation, scheduling
  'futex', 'futex_waitv', 'set_robust_list', 'get_robust_list', 'set_tid_address', 'rseq', 'sched_yield',
  'sched_getaffinity', 'sched_setaffinity', 'sched_getparam', 'sched_setparam', 'sched_getscheduler',
  'sched_setscheduler', 'sched_getattr', 'sched_setattr', 'sched_get_priority_max', 'sched_get_priority_min',
  'sched_rr_get_interval', 'getcpu', 'getpriority', 'setpriority', 'ioprio_get', 'ioprio_set',
  // signals
  'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigpending', 'rt_sigtimedwait',
  'rt_sigqueueinfo', 'rt_tgsigqueueinfo', 'sigaltstack', 'kill', 'tgkill', 'tkill', 'restart_syscall',
  'pidfd_open', 'pidfd_send_signal',
  // time
  'clock_gettime', 'clock_getres', 'clock_nanosleep', 'nanosleep', 'gettimeofday', 'times', 'getrusage',
  'getitimer', 'setitimer', 'timer_create', 'timer_settime', 'timer_gettime', 'timer_getoverrun',
  'timer_delete',
  // processes, identity and limits (changing ids or capabilities needs privileges the box lacks)
  'execve', 'execveat', 'exit', 'exit_group', 'wait4', 'waitid',
  'getpid', 'getppid', 'gettid', 'getuid', 'geteuid', 'getgid', 'getegid', 'getresuid', 'getresgid',
  'getgroups', 'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid',
  'setgroups', 'capget', 'capset', 'getpgid', 'setpgid', 'getsid', 'setsid',
  'uname', 'sysinfo', 'prlimit64', 'getrlimit', 'setrlimit', 'prctl', 'getrandom',
  // self-restriction only: filters and rulesets stack on top of this one
  'seccomp', 'landlock_create_ruleset', 'landlock_add_rule', 'landlock_restrict_self',
];

/** x86_64-only names of the same kind (legacy forms libc and runtimes still use). */
const DEFAULT_ALLOWED_X86 = [
  'open', 'creat', 'stat', 'lstat', 'access', 'readlink', 'getdents', 'dup2', 'pipe', 'eventfd', 'signalfd',
  'inotify_init', 'poll', 'select', 'epoll_create', 'epoll_wait', 'unlink', 'mkdir', 'rmdir', 'rename',
  'link', 'symlink', 'mknod', 'chmod', 'chown', 'lchown', 'utime', 'utimes', 'futimesat', 'time', 'alarm',
  'pause', 'getpgrp', 'fork', 'vfork', 'arch_prctl', 'get_thread_area', 'set_thread_area',
];

/**
 * Host administration and kernel surface a box must not reach. Refused with EPERM, the answer an
 * unprivileged process gets for most of them anyway, so programs report a permission problem.
 */
const DEFAULT_EPERM = [
  'mount', 'umount2', 'pivot_root', 'chroot', 'setns',
  'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr',
  'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open', 'userfaultfd', 'syslog', 'lookup_dcookie',
  'fanotify_init', 'fanotify_mark',
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'process_madvise', 'process_mrelease', 'kcmp', 'pidfd_getfd',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'reboot', 'swapon', 'swapoff',
  'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex', 'acct', 'quotactl', 'quotactl_fd',
  'open_by_handle_at', 'name_to_handle_at', 'vhangup', 'sethostname', 'setdomainname',
];

/** x86_64-only entries of the same list (stime and umount exist on neither arch). */
const DEFAULT_EPERM_X86 = [
  'iopl', 'ioperm', 'modify_ldt', 'create_module', 'get_kernel_syms', 'query_module', 'uselib', 'nfsservctl', '_sysctl',
];

/** socket()/socketpair() domains a box may use: AF_UNIX, AF_INET, AF_INET6. */
const SOCKET_FAMILIES = [1, 2, 10];

/**
 * General untrusted code (the role of Docker's default profile), as an allow-list: a call runs
 * only when named in DEFAULT_ALLOWED (or by an argument rule below). Everything else fails:
 *
 * - any number not named, above all those of system calls newer than the syscall tables →
 *   ENOSYS, what an older kernel answers, so programs fall back and a newer kernel never widens
 *   the box. Known calls left out on purpose get the same answer (memfd_secret; the NUMA policy
 *   calls mbind, set_mempolicy, get_mempolicy, set_mempolicy_home_node; migrate_pages, move_pages);
 * - DEFAULT_EPERM → EPERM;
 * - clone() with any CLONE_NEW* flag and unshare() of any namespace → EPERM (unshare of
 *   CLONE_FILES/CLONE_FS/CLONE_SYSVSEM stays allowed);
 * - clone3 → ENOSYS: its flags are behind a pointer a filter cannot read; libc falls back to clone;
 * - io_uring_* → ENOSYS (io_uring performs I/O without passing through seccomp; libuv falls back);
 * - personality() other than 0, PER_LINUX32 (0x8), UNAME26 (0x20000), 0x20008 and the query 0xffffffff → EPERM;
 * - ioctl TIOCSTI (0x5412) and TIOCLINUX (0x541c), the request compared on its low 32 bits → EPERM
 *   (rules marked `terminal`: compiled only for a run that may hold a terminal, see TIOCSTI above);
 * - socket() and socketpair() with a domain other than AF_UNIX, AF_INET, AF_INET6 → EAFNOSUPPORT
 *   (this includes AF_NETLINK: glibc's getaddrinfo/getifaddrs fall back without it).
 *
 * Calls from another ABI (x32, i386 through int 0x80) end the process (see `foreignAction`).
 * C, C++, Python, Node.js, Java and shell programs run unchanged.
 */
const defaultPreset: SeccompPolicy = {
  defaultAction: ENOSYS,
  rules: [
    { syscall: DEFAULT_ALLOWED, action: 'allow' },
    { syscall: DEFAULT_ALLOWED_X86, action: 'allow', optional: true },
    { syscall: 'clone', action: 'allow', args: noNamespaceFlags(CLONE_NS_FLAGS) },
    { syscall: 'clone', action: EPERM },
    { syscall: 'unshare', action: 'allow', args: noNamespaceFlags(UNSHARE_NS_FLAGS) },
    { syscall: 'unshare', action: EPERM },
    { syscall: 'clone3', action: ENOSYS },
    { syscall: ['io_uring_setup', 'io_uring_enter', 'io_uring_register'], action: ENOSYS },
    { syscall: DEFAULT_EPERM, action: EPERM },
    { syscall: DEFAULT_EPERM_X86, action: EPERM, optional: true },
    ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map(
      (p): SeccompRule => ({ syscall: 'personality', action: 'allow', args: int32Eq(0, p) }),
    ),
    { syscall: 'personality', action: EPERM },
    { syscall: 'ioctl', action: EPERM, args: int32Eq(1, TIOCSTI), terminal: true },
    { syscall: 'ioctl', action: EPERM, args: int32Eq(1, TIOCLINUX), terminal: true },
    { syscall: 'ioctl', action: 'allow' },
    ...SOCKET_FAMILIES.map((d): SeccompRule => ({ syscall: ['socket', 'socketpair'], action: 'allow', args: int32Eq(0, d) })),
    { syscall: ['socket', 'socketpair'], action: { errno: 'EAFNOSUPPORT' } },
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
 * - ioctl is allowed (isatty, terminal queries) except TIOCSTI and TIOCLINUX (marked `terminal`,
 *   see TIOCSTI above).
 */
const judge: SeccompPolicy = {
  defaultAction: 'kill',
  rules: [
    { syscall: 'execve', action: 'allow', args: [{ index: 0, op: 'eq', value: { placeholder: 'execPath' } }] },
    { syscall: 'clone', action: 'allow', args: noNamespaceFlags(CLONE_NS_FLAGS) },
    { syscall: 'clone3', action: ENOSYS },
    { syscall: 'ioctl', action: 'kill', args: int32Eq(1, TIOCSTI), terminal: true },
    { syscall: 'ioctl', action: 'kill', args: int32Eq(1, TIOCLINUX), terminal: true },
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
