#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>

#include "dev_tree.h"
#include "fd_passing.h"
#include "process_util.h"
#include "raw_syscall.h"
#include "wire.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef PIDFD_GET_MNT_NAMESPACE
#define PIDFD_GET_MNT_NAMESPACE _IO(0xFF, 3)
#endif

namespace sandcell {
namespace {

constexpr size_t kStackSize = 128 * 1024;
constexpr size_t kGuardSize = 4096;
constexpr int kSetupTimeoutMs = 30000;
constexpr int kPipeBytes = 1 << 20;
constexpr int kMaxSelfAttach = 8;  // v1 hierarchies a box joins by itself (sandcell uses up to 4)

// The clone child's stack is kept by each worker thread for its next spawn. Unmapping it cost
// every spawn a TLB flush on each CPU running this process (the stack is in the whole Node
// process's address space), and a fresh one costs the child a page fault per page it touches.
struct CloneStack {
  void* base = nullptr;
  ~CloneStack() {
    if (base) munmap(base, kStackSize + kGuardSize);
  }
};
thread_local CloneStack t_clone_stack;

void* take_stack() {
  if (void* kept = t_clone_stack.base) {
    t_clone_stack.base = nullptr;
    return kept;
  }
  void* stack = mmap(nullptr, kStackSize + kGuardSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return nullptr;
  mprotect(stack, kGuardSize, PROT_NONE);
  return stack;
}

// Only once no child runs on it: before the clone, after its exec (EOF on the exec pipe), or
// once it is reaped.
void give_back_stack(void* stack) {
  if (t_clone_stack.base) munmap(stack, kStackSize + kGuardSize);
  else t_clone_stack.base = stack;
}

// Everything the cloned child needs, prepared before clone(): it runs on its own stack inside
// this process's memory and may only make raw system calls.
struct ChildArgs {
  int ctl_rd;
  int ctl_wr;
  int exec_wr;
  int sources[6];  // become fds 0..5 in the box: stdin, stdout, stderr, plan, report, status
  int init_fd;
  int devices_fd;  // the box's /dev tree, installed at wire::kDevicesFd; -1: none
  int join_pidfd;
  long unshare_flags;  // the box's namespaces other than its user and PID namespaces (0 for a join)
  int cgroup_fds[kMaxSelfAttach];  // cgroup v1 cgroup.procs files, opened by the parent, to join
  int cgroup_fd_count;
  bool setgroups_denied;
  char* const* argv;
  char* const* envp;
};

[[noreturn]] void child_fail(int fd, const char* stage, long err) {
  wire::Report f;
  f.kind = wire::kSetupFailed;
  f.err = static_cast<int32_t>(err);
  size_t i = 0;
  for (; stage[i] != '\0' && i < sizeof(f.stage) - 1; i++) f.stage[i] = stage[i];
  for (; i < sizeof(f.stage); i++) f.stage[i] = '\0';
  raw::syscall6(__NR_write, fd, reinterpret_cast<long>(&f), sizeof f);
  for (;;) raw::syscall6(__NR_exit_group, 127);
}

int child_main(void* p) {
  const ChildArgs* a = static_cast<const ChildArgs*>(p);
  // Our copy of the parent's end: without closing it, the read below would never see EOF if the
  // parent died before releasing us.
  raw::syscall6(__NR_close, a->ctl_wr);
  char go = 0;
  long n = raw::syscall6(__NR_read, a->ctl_rd, reinterpret_cast<long>(&go), 1);
  if (n != 1) child_fail(a->exec_wr, "sync with parent", n < 0 ? -n : EPIPE);
  // Into the run's v1 cgroups first, before anything else of the box's setup: the move (a new
  // css_set per hierarchy) is then this process's CPU, not the embedding process's. "0" is the
  // writer; v1 lets a task move itself, and the file was opened by the parent.
  for (int i = 0; i < a->cgroup_fd_count; i++) {
    if ((n = raw::syscall6(__NR_write, a->cgroup_fds[i], reinterpret_cast<long>("0"), 1)) != 1)
      child_fail(a->exec_wr, "cgroup attach", n < 0 ? -n : EIO);
    raw::syscall6(__NR_close, a->cgroup_fds[i]);
  }
  if (a->join_pidfd >= 0) {
    // A run in a living box: all of the box's namespaces (the PID namespace for the init's
    // children: the init makes the run's own below it), and a mount namespace of the run's own,
    // where the run's /proc is mounted; the box's files stay shared (the same superblocks).
    constexpr long kAll = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWCGROUP;
    if ((n = raw::syscall6(__NR_setns, a->join_pidfd, kAll)) < 0) child_fail(a->exec_wr, "join box", -n);
    if ((n = raw::syscall6(__NR_unshare, CLONE_NEWNS)) < 0) child_fail(a->exec_wr, "run mount namespace", -n);
  }

  // The parent has written our id maps. Become root of the new user namespace (an unprivileged id
  // on the host) so the init keeps its capabilities inside across execve, and shed the host's
  // supplementary groups, which would otherwise stay attached to every process of the box.
  if ((n = raw::syscall6(__NR_setresgid, 0, 0, 0)) < 0) child_fail(a->exec_wr, "setresgid", -n);
  // Without privilege the parent had to deny setgroups (before it could map our gid); then the
  // host's groups are already out of reach and the call would only fail.
  if (!a->setgroups_denied && (n = raw::syscall6(__NR_setgroups, 0, 0)) < 0) child_fail(a->exec_wr, "setgroups", -n);
  if ((n = raw::syscall6(__NR_setresuid, 0, 0, 0)) < 0) child_fail(a->exec_wr, "setresuid", -n);

  // The box's other namespaces are made here, by the box's own process, not by clone() on the
  // caller's thread: their kernel work (copying the mount table, setting up a network stack) is
  // then the box's CPU, charged to its cgroup (attached before the go byte), not the embedding
  // process's. They belong to the box's user namespace either way.
  if (a->unshare_flags != 0 && (n = raw::syscall6(__NR_unshare, a->unshare_flags)) < 0)
    child_fail(a->exec_wr, "namespaces", -n);

  // Lift every source above the target numbers first, so installing one cannot clobber another.
  constexpr long kHigh = 16;
  long tmp[6];
  for (int i = 0; i < 6; i++) {
    tmp[i] = raw::syscall6(__NR_fcntl, a->sources[i], F_DUPFD_CLOEXEC, kHigh);
    if (tmp[i] < 0) child_fail(a->exec_wr, "install fds", -tmp[i]);
  }
  long init_tmp = raw::syscall6(__NR_fcntl, a->init_fd, F_DUPFD_CLOEXEC, kHigh);
  long exec_tmp = raw::syscall6(__NR_fcntl, a->exec_wr, F_DUPFD_CLOEXEC, kHigh);
  long devices_tmp = a->devices_fd < 0 ? -1 : raw::syscall6(__NR_fcntl, a->devices_fd, F_DUPFD_CLOEXEC, kHigh);
  if (init_tmp < 0 || exec_tmp < 0 || (a->devices_fd >= 0 && devices_tmp < 0)) child_fail(a->exec_wr, "install fds", EBADF);
  for (int i = 0; i < 6; i++)
    if ((n = raw::syscall6(__NR_dup3, tmp[i], i, 0)) < 0) child_fail(a->exec_wr, "install fds", -n);
  // Without a tree, whatever this process had at that number is closed like any other fd.
  if (devices_tmp >= 0) {
    if ((n = raw::syscall6(__NR_dup3, devices_tmp, wire::kDevicesFd, 0)) < 0) child_fail(a->exec_wr, "install fds", -n);
  } else {
    raw::syscall6(__NR_close, wire::kDevicesFd);
  }
  constexpr int kInitFd = 7, kExecFd = 8;
  if ((n = raw::syscall6(__NR_dup3, init_tmp, kInitFd, O_CLOEXEC)) < 0) child_fail(a->exec_wr, "install fds", -n);
  if ((n = raw::syscall6(__NR_dup3, exec_tmp, kExecFd, O_CLOEXEC)) < 0) child_fail(a->exec_wr, "install fds", -n);
  // Whatever else this process had open, including fds another thread opened a moment ago,
  // must not reach the box.
  if ((n = raw::syscall6(__NR_close_range, kExecFd + 1, ~0U, 0)) < 0) child_fail(kExecFd, "close fds", -n);

  n = raw::syscall6(__NR_execveat, kInitFd, reinterpret_cast<long>(""), reinterpret_cast<long>(a->argv),
                    reinterpret_cast<long>(a->envp), AT_EMPTY_PATH);
  child_fail(kExecFd, "execve init", -n);
}

// Owns descriptors until they are handed over; a deque keeps the returned pointers stable.
class Fds {
 public:
  ~Fds() {
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }
  int* add(int fd) {
    fds_.push_back(fd);
    return &fds_.back();
  }
  void close_now(int* fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  int release(int* fd) {
    int v = *fd;
    *fd = -1;
    return v;
  }

 private:
  std::deque<int> fds_;
};

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool write_file(const std::string& path, const std::string& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write_all(fd, content.data(), content.size());
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

// Reads one message: 0 on EOF, the message size, or -errno.
ssize_t read_msg(int fd, void* buf, size_t n) {
  for (;;) {
    ssize_t r = read(fd, buf, n);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

void fail(SpawnResult* res, const char* stage, int err) {
  res->stage = stage;
  res->err = err;
}

// The box's ends of its stdio (child_io) and ours (parent_io, null where not a pipe), owned by
// `fds`. A kFd descriptor is the caller's: its child_io slot is in `borrowed`, which `fds` never
// closes, on any path.
bool make_stdio(const StdioSpec (&stdio)[3], Fds* fds, int* parent_io[3], int* child_io[3], int (&borrowed)[3],
                SpawnResult* res) {
  for (int i = 0; i < 3; i++) {
    const StdioSpec& s = stdio[i];
    if (s.kind == StdioKind::kPipe) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) < 0) return fail(res, "pipe", errno), false;
      // A 64 KiB pipe makes a megabyte of input or output a dozen wake-ups of each side; as
      // root (exempt from the per-user pipe quota) the pipe holds 1 MiB, allocated only as it
      // fills. Unprivileged, a large pipe would eat the user's quota and shrink its other pipes.
      if (geteuid() == 0) fcntl(p[0], F_SETPIPE_SZ, kPipeBytes);
      // stdin: the box reads p[0]; stdout/stderr: the box writes p[1].
      parent_io[i] = fds->add(i == 0 ? p[1] : p[0]);
      child_io[i] = fds->add(i == 0 ? p[0] : p[1]);
    } else if (s.kind == StdioKind::kNull) {
      int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (fd < 0) return fail(res, "open /dev/null", errno), false;
      child_io[i] = fds->add(fd);
    } else {
      if (fcntl(s.fd, F_GETFD) < 0) return fail(res, "stdio fd", EBADF), false;
      borrowed[i] = s.fd;
      child_io[i] = &borrowed[i];
    }
  }
  return true;
}

// Waits on the report channel until the program has exec'd (EOF) or, for a box built ahead
// (until_ready), until its root is ready. The channel carries Reports: a setup failure, the
// seccomp listener and a joined run's init (each with its fd), the ready note; it ends in EOF when
// the program's execve succeeded. Once the listener is here it is watched too: a policy that sends
// a call the program makes before its execve to the supervisor would otherwise leave it waiting
// for an answer while we wait for its execve. Building a box takes milliseconds; one that is not
// running its program after kSetupTimeoutMs is stuck (a hung mount source, say) and is ended
// rather than holding this thread forever. On failure the box is ended and `res` says why.
// run_pidfd is null where no joined run's init is expected (a prepared box's start).
bool is_exec_call(uint32_t arch, int nr) {
  if (arch == AUDIT_ARCH_X86_64) return nr == __NR_execve || nr == __NR_execveat;
  if (arch == AUDIT_ARCH_AARCH64) return nr == 221 || nr == 281;  // execve, execveat
  return false;
}

// Whether the task `pid` runs another executable than the init (`init_fd`): it is the program,
// past its execve. An exec call notified before the channel's EOF is then the program's own next
// one, not the init's execve of it: the init (PID 1 of the box) closes its copy of the channel
// just after it starts the program, and on a busy host the program can exec and make its next
// call before that. Unknown (no init fd, the task gone) reads as not past its execve.
bool runs_other_than_init(pid_t pid, int init_fd) {
  struct stat init_st, exe_st;
  char exe[40];
  snprintf(exe, sizeof exe, "/proc/%d/exe", static_cast<int>(pid));
  if (init_fd < 0 || fstat(init_fd, &init_st) != 0 || stat(exe, &exe_st) != 0) return false;
  return init_st.st_dev != exe_st.st_dev || init_st.st_ino != exe_st.st_ino;
}

bool await_report(int rep_fd, int pidfd, int* notify_fd, int* run_pidfd, bool until_ready, int init_fd, SpawnResult* res) {
  wire::Report report;
  auto end = [&] { end_box(pidfd, run_pidfd ? *run_pidfd : -1); };
  const int64_t deadline = now_ns() + int64_t{kSetupTimeoutMs} * 1000000;
  for (;;) {
    {
      pollfd p[2] = {{rep_fd, POLLIN, 0}, {*notify_fd, POLLIN, 0}};
      int64_t left_ms = (deadline - now_ns()) / 1000000;
      int ready = left_ms > 0 ? poll(p, *notify_fd >= 0 ? 2 : 1, static_cast<int>(left_ms)) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        int err = ready == 0 ? ETIMEDOUT : errno;
        end();
        return fail(res, "box setup", err), false;
      }
      if (*notify_fd >= 0 && (p[1].revents & POLLIN) && !(p[0].revents & (POLLIN | POLLHUP))) {
        seccomp_notif req;
        memset(&req, 0, sizeof req);
        int nr = ioctl(*notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0 ? req.data.nr : -1;
        // Between loading its filter and its execve the program's thread makes no system call
        // but that execve: any other call comes from the program itself, already running, whose
        // EOF has not arrived only because another process of the box still held the channel.
        // So does an exec call from a task that no longer runs the init.
        if (nr >= 0 && (!is_exec_call(req.data.arch, nr) || runs_other_than_init(static_cast<pid_t>(req.pid), init_fd))) {
          res->early_violation_nr = nr;
          res->early_violation_arch = req.data.arch;
          return true;
        }
        end();
        res->stage = "seccomp: the policy ends the run at syscall " + std::to_string(nr) + ", made before the program's execve";
        res->err = EPERM;
        return false;
      }
    }
    int passed[fdpass::kMaxFds];
    size_t count = 0;
    long n = fdpass::recv_fds(rep_fd, &report, sizeof report, passed, &count);
    if (n == -EINTR) continue;
    bool whole = n == static_cast<ssize_t>(sizeof report);
    if (count > 0) {
      // One fd per note, each kind once: never keep a second, never leak any.
      int* slot = !whole || count != 1 ? nullptr : report.kind == wire::kListener ? notify_fd : report.kind == wire::kRunInit ? run_pidfd : nullptr;
      if (slot && *slot < 0) *slot = passed[0];
      else
        for (size_t i = 0; i < count; i++) close(passed[i]);
      continue;
    }
    if (until_ready ? whole && report.kind == wire::kReady : n == 0) return true;
    end();
    if (whole && report.kind == wire::kSetupFailed) {
      report.stage[sizeof report.stage - 1] = '\0';
      return fail(res, report.stage, report.err), false;
    }
    return fail(res, "box setup", n < 0 ? static_cast<int>(-n) : EPROTO), false;
  }
}

// The moment the program started, and what the box's setup cost in CPU by then, so a CPU-time
// limit counts the program and not the sandbox.
void mark_started(const std::string& cpu_usage_file, SpawnResult* res) {
  res->started_ns = now_ns();
  if (cpu_usage_file.empty()) return;
  int fd = open(cpu_usage_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t got = read(fd, buf, sizeof buf);
  if (got > 0) res->cpu_usage_at_start.assign(buf, static_cast<size_t>(got));
  close(fd);
}

// The host ids boxes' user namespaces are owned by, one per living box, so that no two boxes
// share the kernel's per-user allowances. Handed out in turn from a start drawn at random: other
// processes using the same range then rarely pick the same id at the same time.
class OwnerIds {
 public:
  // A free id of [first, first + count), or -1 when every one is taken.
  int64_t take(uint32_t first, uint32_t count) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!seeded_) {
      if (getrandom(&next_, sizeof next_, GRND_NONBLOCK) != sizeof next_) next_ = static_cast<uint64_t>(getpid()) * 2654435761u;
      seeded_ = true;
    }
    for (uint64_t i = 0; i < count; i++) {
      uint32_t id = first + static_cast<uint32_t>((next_ + i) % count);
      if (busy_.insert(id).second) {
        next_ += i + 1;
        return id;
      }
    }
    return -1;
  }

  void release(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    busy_.erase(id);
  }

 private:
  std::mutex mu_;
  std::set<uint32_t> busy_;
  uint64_t next_ = 0;
  bool seeded_ = false;
};

OwnerIds g_owner_ids;

// A box's owner id until the box is handed over (keep()); given back on every failure path.
class OwnerLease {
 public:
  OwnerLease() = default;
  OwnerLease(const OwnerLease&) = delete;
  OwnerLease& operator=(const OwnerLease&) = delete;
  ~OwnerLease() {
    if (id_ >= 0) g_owner_ids.release(static_cast<uint32_t>(id_));
  }
  bool take(uint32_t first, uint32_t count) { return (id_ = g_owner_ids.take(first, count)) >= 0; }
  uint32_t id() const { return static_cast<uint32_t>(id_); }
  int64_t keep() {
    int64_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  int64_t id_ = -1;
};

// While it lives, the calling thread acts as `id` (effective uid and gid), keeping its saved
// set-user-ID 0 and its capabilities, so that a user namespace it creates is owned by `id`: the
// kernel takes the creator's effective ids as the namespace's owner. Only this thread changes:
// raw system calls, never glibc's setresuid()/setresgid(), which change every thread of Node. The
// capabilities are raised again after the uid change cleared the effective set, so that hosts
// that refuse unprivileged user namespaces still let us make one. The destructor restores the
// thread exactly; that cannot fail (the saved ids are 0 and ours), and a libuv worker thread left
// with another identity would run Node's file system calls as it, so a failure aborts.
class ThreadActsAs {
 public:
  ThreadActsAs() = default;
  ThreadActsAs(const ThreadActsAs&) = delete;
  ThreadActsAs& operator=(const ThreadActsAs&) = delete;

  // 0, or the errno of the step that failed (the thread is then as it was).
  int enter(uint32_t id) {
    uid_t ru, su;
    gid_t rg, sg;
    if (syscall(SYS_getresuid, &ru, &euid_, &su) < 0 || syscall(SYS_getresgid, &rg, &egid_, &sg) < 0) return errno;
    hdr_ = {_LINUX_CAPABILITY_VERSION_3, 0};
    if (syscall(SYS_capget, &hdr_, caps_) < 0) return errno;
    if (syscall(SYS_setresgid, -1, id, -1) < 0) return errno;
    gid_changed_ = true;
    if (syscall(SYS_setresuid, -1, id, -1) < 0) {
      int e = errno;
      restore();
      return e;
    }
    uid_changed_ = true;
    __user_cap_data_struct raised[2] = {caps_[0], caps_[1]};
    for (auto& c : raised) c.effective = c.permitted;
    if (syscall(SYS_capset, &hdr_, raised) < 0) {
      int e = errno;
      restore();
      return e;
    }
    return 0;
  }

  ~ThreadActsAs() { restore(); }

 private:
  void restore() {
    if (uid_changed_ && syscall(SYS_setresuid, -1, euid_, -1) < 0) abort();
    if (gid_changed_ && syscall(SYS_setresgid, -1, egid_, -1) < 0) abort();
    if ((uid_changed_ || gid_changed_) && syscall(SYS_capset, &hdr_, caps_) < 0) abort();
    uid_changed_ = gid_changed_ = false;
  }

  uid_t euid_ = 0;
  gid_t egid_ = 0;
  __user_cap_header_struct hdr_{};
  __user_cap_data_struct caps_[2]{};
  bool uid_changed_ = false;
  bool gid_changed_ = false;
};

}  // namespace

void release_owner(uint32_t id) { g_owner_ids.release(id); }

// The mount namespace of the process we cloned, once it has its own (-1 if it cannot be had).
// A process that exits holding the last reference to a mount namespace tears the whole tree down
// in its exit (unmounting every mount, an expedited RCU grace period, each superblock's release)
// before its parent or its pidfd hears of it: the run's end would wait for all of it. Held here,
// the init's exit is short, and the tree goes when the box releases this descriptor, off the
// event loop (Box::release_namespace). Asked of the pidfd where the kernel answers (6.11 on): no
// walk of /proc/<pid>/ns on the worker thread.
int hold_mount_namespace(int pidfd, pid_t pid) {
  int fd = ioctl(pidfd, PIDFD_GET_MNT_NAMESPACE, 0);
  if (fd >= 0) return fd;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", pid);
  return open(path, O_RDONLY | O_CLOEXEC);
}

void spawn_box(const SpawnRequest& req, SpawnResult* res) {
  res->marks[SpawnResult::kBegun] = now_ns();
  Fds fds;
  int ctl[2], exe[2], rep[2], st[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0) return fail(res, "socketpair", errno);
  int* ctl_rd = fds.add(ctl[0]);
  int* ctl_wr = fds.add(ctl[1]);
  if (pipe2(exe, O_CLOEXEC) < 0) return fail(res, "pipe", errno);
  int* exe_rd = fds.add(exe[0]);
  int* exe_wr = fds.add(exe[1]);
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rep) < 0) return fail(res, "socketpair", errno);
  int* rep_rd = fds.add(rep[0]);
  int* rep_wr = fds.add(rep[1]);
  int* notify_fd = fds.add(-1);
  int* run_pidfd = fds.add(-1);
  if (pipe2(st, O_CLOEXEC | O_NONBLOCK) < 0) return fail(res, "pipe", errno);
  int* st_rd = fds.add(st[0]);
  int* st_wr = fds.add(st[1]);
  // O_NONBLOCK was only meant for our end: the init writes its status once, blocking is right.
  fcntl(*st_wr, F_SETFL, 0);

  int* parent_io[3] = {nullptr, nullptr, nullptr};
  int* child_io[3] = {nullptr, nullptr, nullptr};
  int borrowed[3] = {-1, -1, -1};
  if (!make_stdio(req.stdio, &fds, parent_io, child_io, borrowed, res)) return;

  char init_name[] = "sandcell-init";
  char* argv[] = {init_name, nullptr};
  char* envp[] = {nullptr};
  ChildArgs args{};
  args.ctl_rd = *ctl_rd;
  args.ctl_wr = *ctl_wr;
  args.exec_wr = *exe_wr;
  for (int i = 0; i < 3; i++) args.sources[i] = *child_io[i];
  args.sources[wire::kPlanFd] = *ctl_rd;
  args.sources[wire::kReportFd] = *rep_wr;
  args.sources[wire::kStatusFd] = *st_wr;
  args.init_fd = req.init_fd;
  args.devices_fd = -1;
  args.join_pidfd = req.join_pidfd;
  args.setgroups_denied = req.deny_setgroups;
  args.argv = argv;
  args.envp = envp;

  // A cgroup v1 file is written by the box's process itself (child_main); others (v2, whose move
  // a process without write access to the common ancestor may not make on kernels before 5.16)
  // by this thread before the go byte, as the box's first pid.
  std::vector<int*> parent_attach, self_attach;
  for (const auto& file : req.cgroup_procs) {
    int* fd = fds.add(open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (*fd < 0) return fail(res, "cgroup attach", errno);
    struct statfs fs {};
    if (fstatfs(*fd, &fs) == 0 && fs.f_type == CGROUP_SUPER_MAGIC && args.cgroup_fd_count < kMaxSelfAttach) {
      args.cgroup_fds[args.cgroup_fd_count++] = *fd;
      self_attach.push_back(fd);
    } else {
      parent_attach.push_back(fd);
    }
  }

  void* stack = take_stack();
  if (stack == nullptr) return fail(res, "mmap stack", errno);
  char* stack_top = static_cast<char*>(stack) + kStackSize + kGuardSize;

  bool join = req.join_pidfd >= 0;
  int* devices_tree = fds.add(-1);
  if (!join && req.devices) {
    // Cloned here, in this process's mount namespace: the box's init may move a detached tree
    // into its own namespace, but not clone one made in another.
    int tree = req.devices_fd < 0 ? -EBADF : clone_device_tree(req.devices_fd);
    if (tree < 0) {
      give_back_stack(stack);
      return fail(res, "clone /dev tree", -tree);
    }
    *devices_tree = tree;
    args.devices_fd = tree;
  }
  int flags = CLONE_VM | CLONE_PIDFD;
  // A PID namespace must come with the process that is to be its PID 1; the rest the child unshares.
  if (!join) flags |= CLONE_NEWUSER | CLONE_NEWPID;
  if (!join) args.unshare_flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (req.new_net ? CLONE_NEWNET : 0);
  int pidfd = -1;
  pid_t pid;
  int clone_err = 0;
  OwnerLease owner;
  {
    // The new user namespace's owner is the creator's effective uid. Every per-user count its
    // processes raise (inotify instances, message queue bytes, queued signals...) is also charged
    // to that owner, level by level up to the host: it must be an id only this box uses, never
    // host root. The thread is itself again before it writes the maps and cgroup files.
    ThreadActsAs as_owner;
    if (!join && req.owner_count > 0) {
      if (!owner.take(req.owner_first, req.owner_count)) {
        give_back_stack(stack);
        return fail(res, "box owner id (every id of the range is in use)", EAGAIN);
      }
      if (int e = as_owner.enter(owner.id())) {
        give_back_stack(stack);
        return fail(res, "box owner id", e);
      }
    }
    // No exit signal: the box's init must not disturb the SIGCHLD handling of Node's child_process.
    pid = clone(child_main, stack_top, flags, &args, &pidfd);
    if (pid < 0) clone_err = errno;
  }
  if (pid < 0) {
    give_back_stack(stack);
    return fail(res, "clone", clone_err);
  }
  res->marks[SpawnResult::kCloned] = now_ns();
  int* pidfd_p = fds.add(pidfd);
  fds.close_now(ctl_rd);
  fds.close_now(exe_wr);
  fds.close_now(rep_wr);
  fds.close_now(st_wr);
  fds.close_now(devices_tree);
  for (int* fd : self_attach) fds.close_now(fd);
  // The box has its copies now; a kFd descriptor stays open: it is the caller's.
  for (int i = 0; i < 3; i++)
    if (req.stdio[i].kind != StdioKind::kFd) fds.close_now(child_io[i]);

  auto abort_child = [&](const char* stage, int err) {
    kill_and_reap(*pidfd_p);
    give_back_stack(stack);
    fail(res, stage, err);
  };

  if (!join) {
    char proc_path[64];
    snprintf(proc_path, sizeof proc_path, "/proc/%d/uid_map", pid);
    if (!write_file(proc_path, req.uid_map)) return abort_child("uid_map", errno);
    if (req.deny_setgroups) {
      snprintf(proc_path, sizeof proc_path, "/proc/%d/setgroups", pid);
      if (!write_file(proc_path, "deny")) return abort_child("setgroups deny", errno);
    }
    snprintf(proc_path, sizeof proc_path, "/proc/%d/gid_map", pid);
    if (!write_file(proc_path, req.gid_map)) return abort_child("gid_map", errno);
  }
  std::string pid_text = std::to_string(pid);
  for (int* fd : parent_attach) {
    if (!write_all(*fd, pid_text.data(), pid_text.size())) return abort_child("cgroup attach", errno);
    fds.close_now(fd);
  }

  res->marks[SpawnResult::kMapped] = now_ns();
  // The go byte releases the child; the plan that follows is read by the init after execve.
  if (!write_all(*ctl_wr, "g", 1)) return abort_child("sync with child", errno);
  uint32_t plan_len = static_cast<uint32_t>(req.plan.size());
  bool plan_sent = write_all(*ctl_wr, reinterpret_cast<const char*>(&plan_len), sizeof plan_len) &&
                   write_all(*ctl_wr, req.plan.data(), req.plan.size());
  int plan_err = errno;

  wire::Report failure;
  ssize_t n = read_msg(*exe_rd, &failure, sizeof failure);
  // EOF: the child exec'd the init (or died); either way it no longer runs on our stack.
  if (n != 0) {
    kill_and_reap(*pidfd_p);
    give_back_stack(stack);
    if (n == static_cast<ssize_t>(sizeof failure)) {
      failure.stage[sizeof failure.stage - 1] = '\0';
      return fail(res, failure.stage, failure.err);
    }
    return fail(res, "start init", n < 0 ? static_cast<int>(-n) : EPROTO);
  }
  give_back_stack(stack);
  res->marks[SpawnResult::kInitExec] = now_ns();
  int* mnt_ns = join ? fds.add(-1) : fds.add(hold_mount_namespace(*pidfd_p, pid));
  if (!plan_sent) {
    kill_and_reap(*pidfd_p);
    return fail(res, "send plan", plan_err);
  }

  // EOF can also mean the init died before starting the program: it then sent no status.
  if (!await_report(*rep_rd, *pidfd_p, notify_fd, run_pidfd, req.prepared, req.init_fd, res)) return;
  res->marks[SpawnResult::kReported] = now_ns();
  if (!req.prepared) mark_started(req.cpu_usage_file, res);
  res->pid = pid;
  res->owner = owner.keep();
  res->pidfd = fds.release(pidfd_p);
  res->status_fd = fds.release(st_rd);
  res->control_fd = fds.release(ctl_wr);
  res->notify_fd = fds.release(notify_fd);
  res->run_pidfd = fds.release(run_pidfd);
  if (req.prepared) res->report_fd = fds.release(rep_rd);
  res->mnt_ns_fd = fds.release(mnt_ns);
  for (int i = 0; i < 3; i++) res->stdio[i] = parent_io[i] ? fds.release(parent_io[i]) : -1;
}

void start_prepared(const StartRequest& req, SpawnResult* res) {
  res->marks[SpawnResult::kBegun] = now_ns();
  Fds fds;
  int* parent_io[3] = {nullptr, nullptr, nullptr};
  int* child_io[3] = {nullptr, nullptr, nullptr};
  int borrowed[3] = {-1, -1, -1};
  if (!make_stdio(req.stdio, &fds, parent_io, child_io, borrowed, res)) return;
  int* notify_fd = fds.add(-1);

  // The stdio descriptors travel with the plan's length, the plan follows.
  uint32_t plan_len = static_cast<uint32_t>(req.plan.size());
  const int passing[3] = {*child_io[0], *child_io[1], *child_io[2]};
  long sent = fdpass::send_fds(req.control_fd, &plan_len, sizeof plan_len, passing, 3);
  bool ok = sent > 0 && (sent == static_cast<long>(sizeof plan_len) ||
                         write_all(req.control_fd, reinterpret_cast<const char*>(&plan_len) + sent, sizeof plan_len - static_cast<size_t>(sent)));
  ok = ok && write_all(req.control_fd, req.plan.data(), req.plan.size());
  int err = sent < 0 ? static_cast<int>(-sent) : errno;
  for (int i = 0; i < 3; i++)
    if (req.stdio[i].kind != StdioKind::kFd) fds.close_now(child_io[i]);
  if (!ok) {
    kill_and_reap(req.pidfd);
    return fail(res, "send run plan", err);
  }
  res->marks[SpawnResult::kSent] = now_ns();
  if (!await_report(req.report_fd, req.pidfd, notify_fd, nullptr, false, req.init_fd, res)) return;
  res->marks[SpawnResult::kReported] = now_ns();
  mark_started(req.cpu_usage_file, res);
  res->notify_fd = fds.release(notify_fd);
  for (int i = 0; i < 3; i++) res->stdio[i] = parent_io[i] ? fds.release(parent_io[i]) : -1;
}

}  // namespace sandcell
