// The init's only way to the kernel: it links no C library (its startup alone, per exec, cost
// more than the rest of a box's setup), so each call it makes is a system call here. Each returns
// what the kernel returns: a result, or -errno. Only the *at forms and others every arch has
// (aarch64 has no open, mkdir, poll, dup2...). The types are the kernel's, which on both arches
// are the C library's headers' too; those headers are included for types and constants only.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#include "../raw_syscall.h"

namespace sandcell::init::sys {

using raw::syscall6;

// One argument register's worth of a pointer or an unsigned value.
template <typename T>
inline long word(T v) {
  return (long)v;
}

// A signal set as the kernel takes it (one bit per signal, 64 signals), not libc's sigset_t.
using SigMask = uint64_t;
constexpr long kSigMaskBytes = sizeof(SigMask);

inline long read(int fd, void* buf, size_t n) { return syscall6(__NR_read, fd, word(buf), word(n)); }
inline long write(int fd, const void* buf, size_t n) { return syscall6(__NR_write, fd, word(buf), word(n)); }
inline long close(int fd) { return syscall6(__NR_close, fd); }
inline long openat(int dir, const char* path, int flags, unsigned mode = 0) {
  return syscall6(__NR_openat, dir, word(path), flags, mode);
}
inline long open(const char* path, int flags, unsigned mode = 0) { return openat(AT_FDCWD, path, flags, mode); }
inline long dup3(int from, int to, int flags) { return syscall6(__NR_dup3, from, to, flags); }
inline long fcntl(int fd, int cmd, long arg = 0) { return syscall6(__NR_fcntl, fd, cmd, arg); }
inline long mkdirat(int dir, const char* path, unsigned mode) { return syscall6(__NR_mkdirat, dir, word(path), mode); }
inline long mkdir(const char* path, unsigned mode) { return mkdirat(AT_FDCWD, path, mode); }
inline long chmod(const char* path, unsigned mode) { return syscall6(__NR_fchmodat, AT_FDCWD, word(path), mode); }
inline long fchmod(int fd, unsigned mode) { return syscall6(__NR_fchmod, fd, mode); }
inline long chown(const char* path, uint32_t uid, uint32_t gid) {
  return syscall6(__NR_fchownat, AT_FDCWD, word(path), uid, gid, 0);
}
inline long fchown(int fd, uint32_t uid, uint32_t gid) { return syscall6(__NR_fchown, fd, uid, gid); }
inline long symlink(const char* text, const char* path) { return syscall6(__NR_symlinkat, word(text), AT_FDCWD, word(path)); }
inline long renameat(int from_dir, const char* from, int to_dir, const char* to) {
  return syscall6(__NR_renameat2, from_dir, word(from), to_dir, word(to), 0);
}
inline long unlinkat(int dir, const char* path, int flags) { return syscall6(__NR_unlinkat, dir, word(path), flags); }
inline long access(const char* path, int mode) { return syscall6(__NR_faccessat, AT_FDCWD, word(path), mode); }
inline long fstat(int fd, struct stat* st) { return syscall6(__NR_fstat, fd, word(st)); }
inline long statfs(const char* path, struct statfs* st) { return syscall6(__NR_statfs, word(path), word(st)); }
inline long chdir(const char* path) { return syscall6(__NR_chdir, word(path)); }
inline long mount(const char* source, const char* target, const char* type, unsigned long flags, const void* data) {
  return syscall6(__NR_mount, word(source), word(target), word(type), word(flags), word(data));
}
inline long umount2(const char* target, int flags) { return syscall6(__NR_umount2, word(target), flags); }
inline long pivot_root(const char* new_root, const char* put_old) {
  return syscall6(__NR_pivot_root, word(new_root), word(put_old));
}
inline long mount_setattr(int dir, const char* path, unsigned flags, void* attr, size_t size) {
  return syscall6(__NR_mount_setattr, dir, word(path), flags, word(attr), word(size));
}
inline long move_mount(int from_dir, const char* from, int to_dir, const char* to, unsigned flags) {
  return syscall6(__NR_move_mount, from_dir, word(from), to_dir, word(to), flags);
}
inline long sethostname(const char* name, size_t n) { return syscall6(__NR_sethostname, word(name), word(n)); }
inline long unshare(int flags) { return syscall6(__NR_unshare, flags); }
inline long prctl(int op, unsigned long x = 0, unsigned long y = 0) { return syscall6(__NR_prctl, op, word(x), word(y), 0, 0); }
inline long capget(__user_cap_header_struct* hdr, __user_cap_data_struct* data) {
  return syscall6(__NR_capget, word(hdr), word(data));
}
inline long capset(__user_cap_header_struct* hdr, const __user_cap_data_struct* data) {
  return syscall6(__NR_capset, word(hdr), word(data));
}
inline long setresuid(uint32_t id) { return syscall6(__NR_setresuid, id, id, id); }
inline long setresgid(uint32_t id) { return syscall6(__NR_setresgid, id, id, id); }
// The previous fsuid/fsgid; never fails with -errno (an invalid id leaves it unchanged).
inline uint32_t setfsuid(uint32_t id) { return static_cast<uint32_t>(syscall6(__NR_setfsuid, id)); }
inline uint32_t setfsgid(uint32_t id) { return static_cast<uint32_t>(syscall6(__NR_setfsgid, id)); }
inline long setsid() { return syscall6(__NR_setsid); }
inline long setrlimit(unsigned resource, const rlimit* r) { return syscall6(__NR_setrlimit, resource, word(r)); }
inline long getrusage_children(rusage* ru) { return syscall6(__NR_getrusage, RUSAGE_CHILDREN, word(ru)); }
inline long clock_monotonic(timespec* ts) { return syscall6(__NR_clock_gettime, CLOCK_MONOTONIC, word(ts)); }
inline long getrandom(void* buf, size_t n) { return syscall6(__NR_getrandom, word(buf), word(n), 0); }
inline long getpid() { return syscall6(__NR_getpid); }
inline long pidfd_open(long pid) { return syscall6(__NR_pidfd_open, pid, 0); }
inline long kill(long pid, int sig) { return syscall6(__NR_kill, pid, sig); }
inline long wait4(long pid, int* status, int options) { return syscall6(__NR_wait4, pid, word(status), options, 0); }
inline long ptrace_detach(long pid, int sig) { return syscall6(__NR_ptrace, PTRACE_DETACH, pid, 0, sig); }
inline long sigprocmask(int how, const SigMask* set) { return syscall6(__NR_rt_sigprocmask, how, word(set), 0, kSigMaskBytes); }
// SIG_DFL for `sig`: a kernel sigaction of all zeroes (no handler, so no restorer either).
inline long default_action(int sig) {
  unsigned long act[4] = {};
  return syscall6(__NR_rt_sigaction, sig, word(act), 0, kSigMaskBytes);
}
inline long signalfd(const SigMask* set, int flags) { return syscall6(__NR_signalfd4, -1, word(set), kSigMaskBytes, flags); }
// poll; timeout_ms < 0 waits without end.
inline long poll(pollfd* fds, unsigned n, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  return syscall6(__NR_ppoll, word(fds), n, timeout_ms < 0 ? 0 : word(&ts), 0, kSigMaskBytes);
}
inline long socket(int domain, int type, int protocol) { return syscall6(__NR_socket, domain, type, protocol); }
inline long ioctl(int fd, unsigned long request, void* arg) { return syscall6(__NR_ioctl, fd, word(request), word(arg)); }
inline long sendmsg(int fd, const msghdr* msg, int flags) { return syscall6(__NR_sendmsg, fd, word(msg), flags); }
inline long recvmsg(int fd, msghdr* msg, int flags) { return syscall6(__NR_recvmsg, fd, word(msg), flags); }
inline long mmap(size_t n, int prot, int flags) { return syscall6(__NR_mmap, 0, word(n), prot, flags, -1, 0); }
inline long mprotect(void* p, size_t n, int prot) { return syscall6(__NR_mprotect, word(p), word(n), prot); }
inline long munmap(void* p, size_t n) { return syscall6(__NR_munmap, word(p), word(n)); }
inline long seccomp(unsigned op, unsigned flags, void* arg) { return syscall6(__NR_seccomp, op, flags, word(arg)); }
inline long execve(const char* path, char* const* argv, char* const* envp) {
  return syscall6(__NR_execve, word(path), word(argv), word(envp));
}
[[noreturn]] inline void exit_group(int code) {
  for (;;) syscall6(__NR_exit_group, code);
}

// clone(2) running fn(arg) on `stack_top` in the child, which exits with fn's return (start.cc).
extern "C" long sandcell_clone(unsigned long flags, void* stack_top, int (*fn)(void*), void* arg);
inline long clone(int (*fn)(void*), void* stack_top, unsigned long flags, void* arg) {
  return sandcell_clone(flags, stack_top, fn, arg);
}

}  // namespace sandcell::init::sys
