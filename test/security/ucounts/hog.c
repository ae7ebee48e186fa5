// Takes as much of one per-user kernel count as the kernel grants, says how much and why it
// stopped, then holds it until killed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  long n = 0;
  int err = 0;
  if (strcmp(argv[1], "inotify") == 0) {
    for (;;) {
      if (inotify_init1(IN_CLOEXEC) < 0) { err = errno; break; }
      n++;
    }
  } else if (strcmp(argv[1], "mqueue") == 0) {
    for (;;) {
      char name[32];
      snprintf(name, sizeof name, "/hog%ld", n);
      struct mq_attr a = {0};
      a.mq_maxmsg = 10;
      a.mq_msgsize = 8192;
      if (mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a) < 0) { err = errno; break; }
      n++;
    }
  } else if (strcmp(argv[1], "signals") == 0) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    union sigval v = {0};
    for (;;) {
      if (sigqueue(getpid(), SIGRTMIN, v) < 0) { err = errno; break; }
      n++;
    }
  } else {
    return 2;
  }
  printf("%s %ld %s\n", argv[1], n, strerrorname_np(err));
  fflush(stdout);
  for (;;) pause();
}
