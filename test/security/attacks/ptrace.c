/* ptrace of anything (the box's init, the program's own child, itself via TRACEME) and the other
 * cross-process memory and fd calls. */
#include "attack.h"
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

int main(void) {
  static char target[16] = "target";
  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  expect_fail("ptrace attach init", ptrace(PTRACE_ATTACH, 1, 0, 0));
  expect_fail("ptrace seize init", ptrace(PTRACE_SEIZE, 1, 0, 0));
  long rc = ptrace(PTRACE_ATTACH, child, 0, 0);
  expect_fail("ptrace attach own child", rc);
  if (rc == 0) ptrace(PTRACE_DETACH, child, 0, 0);
  pid_t t = fork();
  if (t == 0) _exit(ptrace(PTRACE_TRACEME, 0, 0, 0) == 0 ? 0 : 1);
  int st = 0;
  waitpid(t, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) hole("ptrace traceme", "succeeded");
  else note("ptrace traceme", "failed");
  char buf[16];
  struct iovec local = {buf, sizeof buf}, remote = {target, sizeof target};
  expect_fail("process_vm_readv own child", syscall(SYS_process_vm_readv, child, &local, 1, &remote, 1, 0));
  expect_fail("process_vm_readv init", syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0));
  expect_fail("kcmp", syscall(SYS_kcmp, getpid(), child, 0 /* KCMP_FILE */, 0, 0));
  long pfd = syscall(SYS_pidfd_open, child, 0);
  if (pfd >= 0) expect_fail("pidfd_getfd own child", syscall(SYS_pidfd_getfd, pfd, 0, 0));
  long ipfd = syscall(SYS_pidfd_open, 1, 0);
  if (ipfd >= 0) expect_fail("pidfd_getfd init", syscall(SYS_pidfd_getfd, ipfd, 0, 0));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  return finish();
}
