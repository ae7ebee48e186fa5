/* New namespaces and setns: every way to get a namespace of the program's own, or to join one. */
#include "attack.h"
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void clone_ns(const char *what, unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  expect_fail(what, pid);
}

int main(void) {
  expect_fail("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
  expect_fail("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
  expect_fail("unshare(CLONE_NEWNET)", unshare(CLONE_NEWNET));
  expect_fail("unshare(CLONE_NEWPID)", unshare(CLONE_NEWPID));
  expect_fail("unshare(CLONE_NEWUTS)", unshare(CLONE_NEWUTS));
  expect_fail("unshare(CLONE_NEWCGROUP)", unshare(CLONE_NEWCGROUP));
  expect_fail("unshare(CLONE_NEWTIME)", unshare(0x80));
  clone_ns("clone(CLONE_NEWUSER)", CLONE_NEWUSER);
  clone_ns("clone(CLONE_NEWNET)", CLONE_NEWNET);
  struct clone_args ca = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
  long pid = syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, 0);
  expect_fail("clone3(CLONE_NEWUSER)", pid);
  const char *names[] = {"user", "mnt", "net", "pid", "uts", "ipc", "cgroup", "time"};
  const char *pids[] = {"1", "self"};
  for (int p = 0; p < 2; p++) {
    for (int i = 0; i < 8; i++) {
      char path[64], what[96];
      snprintf(path, sizeof path, "/proc/%s/ns/%s", pids[p], names[i]);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        note(path, "open: %s", strerrorname_np(errno));
        continue;
      }
      snprintf(what, sizeof what, "setns %s", path);
      expect_fail(what, setns(fd, 0));
      close(fd);
    }
  }
  return finish();
}
