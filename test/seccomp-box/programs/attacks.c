/* Attempts on the kernel surface the `default` preset denies. `attacks <name>` makes one attempt and
 * prints "<name> rc=<return> errno=<errno>" (errno 0 when the call succeeded). Attempts that the
 * policy answers by ending the process print "<name> attempting" first, then nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <mqueue.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *name, long rc) {
  printf("%s rc=%ld errno=%d\n", name, rc, rc < 0 ? errno : 0);
  fflush(stdout);
}

static long int80(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
  return ret;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *what = argv[1];
  errno = 0;
  if (!strcmp(what, "unshare-user")) {
    report(what, unshare(CLONE_NEWUSER));
  } else if (!strcmp(what, "unshare-net")) {
    report(what, unshare(CLONE_NEWNET));
  } else if (!strcmp(what, "unshare-files")) {
    report(what, unshare(CLONE_FILES)); /* allowed: no namespace flag */
  } else if (!strcmp(what, "clone-newuser")) {
    report(what, syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  } else if (!strcmp(what, "clone3")) {
    report(what, syscall(SYS_clone3, 0, 0));
  } else if (!strcmp(what, "mount")) {
    report(what, mount("none", "/tmp", "tmpfs", 0, 0));
  } else if (!strcmp(what, "umount")) {
    report(what, umount2("/tmp", MNT_DETACH));
  } else if (!strcmp(what, "keyctl")) {
    report(what, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1));
  } else if (!strcmp(what, "add_key")) {
    report(what, syscall(SYS_add_key, "user", "sandcell", "x", 1, KEY_SPEC_SESSION_KEYRING));
  } else if (!strcmp(what, "bpf")) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    report(what, syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  } else if (!strcmp(what, "ptrace")) {
    /* PTRACE_TRACEME, then attach attempts on a sibling (a child of ours, so Yama's scope 1 would
     * allow it without seccomp). */
    report("ptrace-traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
    pid_t sib = fork();
    if (sib == 0) {
      pause();
      _exit(0);
    }
    pid_t other = fork();
    if (other == 0) {
      /* the sibling of `sib` tries too */
      errno = 0;
      report("ptrace-attach-sibling", ptrace(PTRACE_ATTACH, sib, 0, 0));
      errno = 0;
      report("ptrace-seize-sibling", ptrace(PTRACE_SEIZE, sib, 0, 0));
      _exit(0);
    }
    waitpid(other, 0, 0);
    errno = 0;
    report("ptrace-attach-child", ptrace(PTRACE_ATTACH, sib, 0, 0));
    errno = 0;
    report("ptrace-seize-child", ptrace(PTRACE_SEIZE, sib, 0, 0));
    errno = 0;
    report("process_vm_readv", syscall(SYS_process_vm_readv, sib, 0, 0, 0, 0, 0));
    kill(sib, SIGKILL);
    waitpid(sib, 0, 0);
  } else if (!strcmp(what, "io_uring_setup")) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    report(what, syscall(SYS_io_uring_setup, 8, &p));
  } else if (!strcmp(what, "perf_event_open")) {
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    pe.exclude_kernel = 1;
    report(what, syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  } else if (!strcmp(what, "tiocsti")) {
    char c = 'x';
    report(what, ioctl(0, TIOCSTI, &c));
  } else if (!strcmp(what, "tiocsti-high")) {
    /* the request with garbage in the upper half of the register: the kernel uses the low 32 bits */
    char c = 'x';
    report(what, syscall(SYS_ioctl, 0, 0xdead000000000000UL | TIOCSTI, &c));
  } else if (!strcmp(what, "tcgets")) {
    struct termios t;
    report(what, ioctl(0, TCGETS, &t)); /* allowed: fails with ENOTTY on a pipe */
  } else if (!strcmp(what, "socket-netlink")) {
    report(what, syscall(SYS_socket, 16 /* AF_NETLINK */, SOCK_RAW, 0));
  } else if (!strcmp(what, "socketpair-families")) {
    int sv[2];
    report("socketpair-netlink", socketpair(16 /* AF_NETLINK */, SOCK_RAW, 0, sv));
    errno = 0;
    report("socketpair-packet", socketpair(17 /* AF_PACKET */, SOCK_RAW, 0, sv));
    errno = 0;
    report("socketpair-vsock", socketpair(40 /* AF_VSOCK */, SOCK_STREAM, 0, sv));
  } else if (!strcmp(what, "socketpair-unix")) {
    int sv[2];
    report(what, socketpair(AF_UNIX, SOCK_STREAM, 0, sv)); /* allowed */
  } else if (!strcmp(what, "newer-than-tables")) {
    /* Calls newer than the syscall tables, by number (the same on x86_64 and aarch64), with
     * arguments that make each one fail harmlessly (or do nothing) when it reaches the kernel. */
    report("statmount", syscall(457, 0, 0, 0, 0));
    errno = 0;
    report("listmount", syscall(458, 0, 0, 0, 0));
    errno = 0;
    report("lsm_get_self_attr", syscall(459, 0, 0, 0, 0));
    errno = 0;
    report("lsm_set_self_attr", syscall(460, 0, 0, 0, 0));
    errno = 0;
    report("lsm_list_modules", syscall(461, 0, 0, 0));
    errno = 0;
    report("mseal", syscall(462, 0, 0, 0));
    errno = 0;
    report("open_tree_attr", syscall(467, -1, 0, 0, 0, 0));
  } else if (!strcmp(what, "reviewed")) {
    /* The calls whose place in the allow-list docs/seccomp.md decides: the first two refused,
     * the last two allowed. */
    unsigned long mode = 0, mask = 0;
    report("get_mempolicy", syscall(SYS_get_mempolicy, &mode, &mask, 8 * sizeof mask, 0, 0));
    errno = 0;
    report("memfd_secret", syscall(SYS_memfd_secret, 0));
    errno = 0;
    report("inotify_init1", syscall(SYS_inotify_init1, 0) < 0 ? -1 : 0);
    errno = 0;
    struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = 8};
    mqd_t q = mq_open("/sandcell-reviewed", O_CREAT | O_RDWR, 0600, &attr);
    report("mq_open", q < 0 ? -1 : 0);
    if (q >= 0) {
      mq_close(q);
      mq_unlink("/sandcell-reviewed");
    }
  } else if (!strcmp(what, "socket-inet")) {
    report(what, syscall(SYS_socket, 2, SOCK_STREAM, 0));
  } else if (!strcmp(what, "personality")) {
    report(what, syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */));
  } else if (!strcmp(what, "x32")) {
    printf("%s attempting\n", what);
    fflush(stdout);
    /* getpid through the x32 ABI (__X32_SYSCALL_BIT | 39) */
    report(what, syscall(0x40000000L | SYS_getpid));
  } else if (!strcmp(what, "x32-mount")) {
    printf("%s attempting\n", what);
    fflush(stdout);
    report(what, syscall(0x40000000L | SYS_mount, "none", "/tmp", "tmpfs", 0, 0));
  } else if (!strcmp(what, "int80-mount")) {
    /* i386 mount is 21; arguments are 32-bit pointers, irrelevant: it must never reach the kernel */
    printf("%s attempting\n", what);
    fflush(stdout);
    long r = int80(21, 0, 0, 0);
    printf("%s rc=%ld\n", what, r);
  } else if (!strcmp(what, "int80-getpid")) {
    printf("%s attempting\n", what);
    fflush(stdout);
    long r = int80(20, 0, 0, 0);
    printf("%s rc=%ld\n", what, r);
  } else {
    fprintf(stderr, "unknown attempt %s\n", what);
    return 2;
  }
  return 0;
}
