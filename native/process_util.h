// Helpers the addon and the executor share: the monotonic clock and ending a process by pidfd.
#pragma once

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace sandcell {

inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// SIGKILL through a pidfd; -1 is no process.
inline void kill_pidfd(int pidfd) {
  if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

// Kills a child of this process and waits until it is reaped.
inline void kill_and_reap(int pidfd) {
  kill_pidfd(pidfd);
  siginfo_t si;
  while (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | __WALL, nullptr) < 0 && errno == EINTR) {
  }
}

// Ends a box at once: a joined run's init first (its PID namespace, the whole run, dies with it;
// its pidfd turns readable only once that namespace is empty), then the process this one cloned,
// which is reaped.
inline void end_box(int pidfd, int run_pidfd) {
  if (run_pidfd >= 0) {
    kill_pidfd(run_pidfd);
    pollfd p{run_pidfd, POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  kill_and_reap(pidfd);
}

}  // namespace sandcell
