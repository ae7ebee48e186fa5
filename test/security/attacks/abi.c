/* Other system call ABIs: x32 (nr | 0x40000000) and i386 (int 0x80) versions of calls the filter
 * denies. Each attempt runs in a child, since the filter kills a process that tries. */
#include "attack.h"
#include <sched.h>
#include <sys/wait.h>

static long x32_unshare(long flags) {
  long rc;
  __asm__ volatile("syscall" : "=a"(rc) : "0"(0x40000000L | 272), "D"(flags) : "rcx", "r11", "memory");
  return rc;
}

static long i386_call(long nr, long a) {
  long rc;
  __asm__ volatile("int $0x80" : "=a"(rc) : "0"(nr), "b"(a) : "memory");
  return rc;
}

static void attempt(const char *what, int which) {
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) {
    long rc = which == 0 ? x32_unshare(CLONE_NEWUSER) : which == 1 ? i386_call(310 /* unshare */, CLONE_NEWUSER) : i386_call(20 /* getpid */, 0);
    if (rc >= 0) {
      printf("HOLE %s: succeeded (rc=%ld)\n", what, rc);
      fflush(stdout);
      _exit(3);
    }
    printf("ok %s: %s\n", what, strerrorname_np((int)-rc));
    fflush(stdout);
    _exit(0);
  }
  int st = 0;
  waitpid(c, &st, 0);
  if (WIFSIGNALED(st)) note(what, "killed by signal %d", WTERMSIG(st));
  else if (WIFEXITED(st) && WEXITSTATUS(st) == 3) holes++;
}

int main(void) {
  attempt("x32 unshare(CLONE_NEWUSER)", 0);
  attempt("int 0x80 unshare(CLONE_NEWUSER)", 1);
  attempt("int 0x80 getpid", 2);
  return finish();
}
