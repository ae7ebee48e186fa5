/*
 * PID 1 of the test guest (scripts/vm/run.mjs builds it statically and packs it into the
 * initramfs with the kernel modules it loads). It turns the host's root, shared read-only over
 * virtio-9p, into the guest's root with a tmpfs over it for everything that must be written,
 * mounts the kernel filesystems with a pure cgroup v2 hierarchy, runs scripts/vm/guest.sh of the
 * worktree given on the kernel command line (sandcell.dir=), reaps every orphan while it runs,
 * prints the script's exit code on the console and powers the machine off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("sandcell-vm-init: ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  fflush(stdout);
  va_end(ap);
}

/* Any failure before the suites run ends the guest with a result the host reads as failed. */
static void fail(const char *what) {
  say("FAILED: %s: %s", what, strerror(errno));
  printf("SANDCELL-VM-EXIT 125\n");
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  _exit(1);
}

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  mkdir(dst, 0755);
  if (mount(src, dst, type, flags, data) != 0) {
    char what[512];
    snprintf(what, sizeof what, "mount %s on %s (%s)", src, dst, type);
    fail(what);
  }
}

/* /modules/order lists the modules in load order (dependencies first), one file name a line. */
static void load_modules(void) {
  FILE *order = fopen("/modules/order", "r");
  if (!order) fail("open /modules/order");
  char line[256];
  while (fgets(line, sizeof line, order)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) continue;
    char path[300];
    snprintf(path, sizeof path, "/modules/%s", line);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path);
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) fail(path);
    close(fd);
  }
  fclose(order);
}

/* The value of `key=` on the kernel command line, or NULL. */
static char *cmdline_value(const char *key) {
  static char buf[4096];
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return NULL;
  buf[n] = 0;
  size_t klen = strlen(key);
  for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
    if (strncmp(tok, key, klen) == 0 && tok[klen] == '=') return tok + klen + 1;
  }
  return NULL;
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail("SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail("SIOCSIFFLAGS lo");
  close(s);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  mnt("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  int con = open("/dev/console", O_RDWR);
  if (con >= 0) {
    dup2(con, 0);
    dup2(con, 1);
    dup2(con, 2);
    if (con > 2) close(con);
  }
  mnt("proc", "/proc", "proc", 0, NULL);
  load_modules();
  char *dir = cmdline_value("sandcell.dir");
  if (!dir) {
    errno = EINVAL;
    fail("no sandcell.dir= on the kernel command line");
  }
  static char dirbuf[1024];
  snprintf(dirbuf, sizeof dirbuf, "%s", dir);
  dir = dirbuf;

  /* The host's root, read-only, below a tmpfs that takes every write (vitest's cache, HOME, logs). */
  mnt("hostroot", "/lower", "9p", MS_RDONLY, "trans=virtio,version=9p2000.L,msize=512000,cache=loose");
  mnt("rw", "/rw", "tmpfs", 0, "mode=755");
  mkdir("/rw/upper", 0755);
  mkdir("/rw/work", 0755);
  mnt("overlay", "/newroot", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work");
  umount2("/proc", MNT_DETACH);
  umount2("/dev", MNT_DETACH);

  if (chdir("/newroot") != 0) fail("chdir /newroot");
  if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) fail("move the new root onto /");
  if (chroot(".") != 0) fail("chroot");
  if (chdir("/") != 0) fail("chdir /");

  mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mnt("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mnt("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=755");
  mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
  mnt("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate");
  mnt("tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mnt("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755");
  loopback_up();
  sethostname("sandcell-vm", 11);

  char script[1200];
  snprintf(script, sizeof script, "%s/scripts/vm/guest.sh", dir);
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    if (chdir(dir) != 0) fail(dir);
    char *const argv[] = {"/bin/bash", script, NULL};
    char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=dumb",
                          "LANG=C.UTF-8", NULL};
    execve(argv[0], argv, envp);
    fail("exec /bin/bash guest.sh");
  }
  int code = 125;
  for (;;) {
    int st;
    pid_t p = wait(&st);
    if (p < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p == child) {
      code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
  }
  printf("SANDCELL-VM-EXIT %d\n", code);
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  return 0;
}
