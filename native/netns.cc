#include "netns.h"

#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw_syscall.h"

namespace sandcell {
namespace {

constexpr size_t kStackSize = 64 * 1024;

struct NetArgs {
  int pidfd;
  int ns_flags;
  BoxSocket kind;
  uint16_t port;
  int result;  // the fd, or -errno
};

// Network namespace membership is per task, and entering the box's user namespace (what an
// unprivileged owner needs for the capability over the box's network) is refused to a task that
// shares its thread group. So a short-lived task does it: it shares our memory and fd table (the
// socket it makes is ours when it exits), not our thread group. Raw system calls only: it runs
// on our memory and thread-local storage.
int net_child(void* p) {
  NetArgs* a = static_cast<NetArgs*>(p);
  long r = raw::syscall6(__NR_setns, a->pidfd, a->ns_flags);
  if (r < 0) {
    a->result = static_cast<int>(r);
    return 0;
  }
  long fd = a->kind == BoxSocket::kNetlink ? raw::syscall6(__NR_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
                                           : raw::syscall6(__NR_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    a->result = static_cast<int>(fd);
    return 0;
  }
  if (a->kind == BoxSocket::kListen) {
    int one = 1;
    // The box may not have brought its loopback up yet: binding its address must not depend on it.
    raw::syscall6(__NR_setsockopt, fd, IPPROTO_IP, IP_FREEBIND, reinterpret_cast<long>(&one), sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(a->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r = raw::syscall6(__NR_bind, fd, reinterpret_cast<long>(&addr), sizeof addr);
    if (r == 0) r = raw::syscall6(__NR_listen, fd, 64);
    if (r < 0) {
      raw::syscall6(__NR_close, fd);
      a->result = static_cast<int>(r);
      return 0;
    }
  }
  a->result = static_cast<int>(fd);
  return 0;
}

}  // namespace

int box_net_socket(int pidfd, BoxSocket kind, uint16_t port) {
  // Root has the capability over every namespace and needs only the network one; an unprivileged
  // caller gets it by entering the box's user namespace, which it owns.
  NetArgs args{pidfd, geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET, kind, port, -EIO};
  void* stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -errno;
  // The task starts with every signal blocked: a handler of Node's running on our memory in
  // another task is what must never happen.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  // CLONE_VFORK: we continue once it has exited, so its stack and args are free to go. No exit
  // signal: Node's SIGCHLD handling never sees it; it is reaped here by pid with __WALL.
  int pid = clone(net_child, static_cast<char*>(stack) + kStackSize, CLONE_VM | CLONE_FILES | CLONE_VFORK, &args);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid > 0) {
    while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
    }
  }
  munmap(stack, kStackSize);
  return pid > 0 ? args.result : -err;
}

}  // namespace sandcell
