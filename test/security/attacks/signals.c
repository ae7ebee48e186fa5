/* Signals to processes outside the box: a host pid (argv[1]) and kill(-1), which would reach
 * every process the caller may signal if the PID namespace did not bound it. */
#include "attack.h"
#include <signal.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  pid_t host = (pid_t)atoi(argv[1]);
  expect_fail("kill(host pid, 0)", kill(host, 0));
  expect_fail("kill(host pid, SIGKILL)", kill(host, SIGKILL));
  expect_fail("pidfd_open(host pid)", syscall(SYS_pidfd_open, host, 0));
  expect_fail("kill(-host pgrp, SIGKILL)", kill(-host, SIGKILL));
  /* Inside the box this reaches nothing but the box (and never its init). */
  int rc = kill(-1, SIGKILL);
  note("kill(-1, SIGKILL)", "rc=%d %s", rc, rc ? strerrorname_np(errno) : "");
  rc = kill(1, SIGKILL);
  note("kill(1, SIGKILL)", "rc=%d (the init ignores it)", rc);
  /* kill(-1) must not have taken this process or the init with it. */
  sleep(1);
  note("alive", "after kill(-1)");
  return finish();
}
