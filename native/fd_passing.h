// Descriptors passed over a unix socket (SCM_RIGHTS), by the addon and by the init alike: the
// seccomp listener and a run's init go out of the box this way, a prepared box's stdio comes in
// this way. Raw system calls and a control buffer walked by hand, so that the init, which has no C
// library, takes the same code: both return -errno, as raw_syscall.h's calls do.
#pragma once

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <cstddef>

#include "raw_syscall.h"

namespace sandcell::fdpass {

// The most descriptors one message carries (a program's stdin, stdout and stderr).
constexpr size_t kMaxFds = 3;

// One sendmsg of `len` bytes with `count` (≤ kMaxFds) descriptors attached: the bytes sent, or
// -errno. EINTR is retried.
inline long send_fds(int sock, const void* buf, size_t len, const int* fds, size_t count) {
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
  auto* c = reinterpret_cast<cmsghdr*>(cbuf);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * count);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
  long n;
  do n = raw::syscall6(__NR_sendmsg, sock, reinterpret_cast<long>(&msg), MSG_NOSIGNAL);
  while (n == -EINTR);
  return n;
}

// One recvmsg into `buf`: the bytes read, or -errno (EINTR too: the caller may poll again). The
// descriptors that came with it (close-on-exec) go to `fds`, their number to `*count`. More than
// kMaxFds, or control data cut short, is -EPROTO, with what did come closed.
inline long recv_fds(int sock, void* buf, size_t len, int (&fds)[kMaxFds], size_t* count) {
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  *count = 0;
  long n = raw::syscall6(__NR_recvmsg, sock, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  bool bad = (msg.msg_flags & MSG_CTRUNC) != 0;
  // Walked by hand: the C library's CMSG_NXTHDR is a function of its own.
  for (size_t off = 0; off + sizeof(cmsghdr) <= msg.msg_controllen;) {
    auto* c = reinterpret_cast<cmsghdr*>(cbuf + off);
    if (c->cmsg_len < sizeof(cmsghdr) || off + c->cmsg_len > msg.msg_controllen) break;
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (*count < kMaxFds) {
          fds[(*count)++] = fd;
        } else {
          raw::syscall6(__NR_close, fd);
          bad = true;
        }
      }
    }
    off += CMSG_ALIGN(c->cmsg_len);
  }
  if (bad) {
    for (size_t i = 0; i < *count; i++) raw::syscall6(__NR_close, fds[i]);
    *count = 0;
    return -EPROTO;
  }
  return n;
}

}  // namespace sandcell::fdpass
