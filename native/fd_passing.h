// Descriptors passed over a unix socket (SCM_RIGHTS), by the addon and by the init alike: the
// seccomp listener goes out of the box this way, a prepared box's stdio comes in this way.
#pragma once

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>

namespace sandcell::fdpass {

// The most descriptors one message carries (a program's stdin, stdout and stderr).
constexpr size_t kMaxFds = 3;

// One sendmsg of `len` bytes with `count` (≤ kMaxFds) descriptors attached. Returns what
// sendmsg returns; EINTR is retried.
inline ssize_t send_fds(int sock, const void* buf, size_t len, const int* fds, size_t count) {
  char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * count);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}

// One recvmsg into `buf`; the descriptors that came with it (close-on-exec) go to `fds`, their
// number to `*count`. More than kMaxFds, or control data cut short, is a protocol error: what did
// come is closed and -1 returned with EPROTO. EINTR is returned to the caller (it may poll again).
inline ssize_t recv_fds(int sock, void* buf, size_t len, int (&fds)[kMaxFds], size_t* count) {
  char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  *count = 0;
  ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  bool bad = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*count < kMaxFds) fds[(*count)++] = fd;
      else {
        close(fd);
        bad = true;
      }
    }
  }
  if (bad) {
    for (size_t i = 0; i < *count; i++) close(fds[i]);
    *count = 0;
    errno = EPROTO;
    return -1;
  }
  return n;
}

}  // namespace sandcell::fdpass
