// sandcell-init: PID 1 of every box. Started by the addon in fresh namespaces as root of the new
// user namespace, it reads the plan, builds the root filesystem, starts the program as its child
// with every privilege dropped, then reaps, forwards signals and reports how the program ended.
// An ordinary single-threaded static program: unlike the clone child it may use libc freely.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <pthread.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../fd_passing.h"
#include "../wire.h"

namespace {

using sandcell::wire::Mount;
using sandcell::wire::Plan;
namespace wire = sandcell::wire;
namespace fdpass = sandcell::fdpass;

[[noreturn]] void fail(const std::string& stage, int err) {
  wire::Report f{};
  f.kind = wire::kSetupFailed;
  f.err = err;
  snprintf(f.stage, sizeof f.stage, "%s", stage.c_str());
  (void)!write(wire::kReportFd, &f, sizeof f);
  _exit(127);
}

bool read_exact(int fd, char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = read(fd, buf + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// mkdir -p below the staging root; the plan's targets were checked to be absolute and clean.
void make_dirs(const std::string& path, mode_t mode) {
  for (size_t i = 1; i <= path.size(); i++) {
    if (i != path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (mkdir(prefix.c_str(), mode) < 0 && errno != EEXIST) fail("mkdir " + prefix, errno);
  }
}

std::string parent_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

unsigned long mount_flags(uint32_t f) {
  unsigned long out = 0;
  if (f & wire::kReadOnly) out |= MS_RDONLY;
  if (f & wire::kNoSuid) out |= MS_NOSUID;
  if (f & wire::kNoDev) out |= MS_NODEV;
  if (f & wire::kNoExec) out |= MS_NOEXEC;
  return out;
}

// Read-only (and nosuid/nodev/noexec) for a bind and everything below it. mount_setattr only adds
// flags, so flags the host locked on the source mount (which a user namespace may not clear) stay.
void restrict_bind(const std::string& target, uint32_t flags, const std::string& stage) {
  uint64_t set = 0;
  if (flags & wire::kReadOnly) set |= MOUNT_ATTR_RDONLY;
  if (flags & wire::kNoSuid) set |= MOUNT_ATTR_NOSUID;
  if (flags & wire::kNoDev) set |= MOUNT_ATTR_NODEV;
  if (flags & wire::kNoExec) set |= MOUNT_ATTR_NOEXEC;
  if (set == 0) return;
  mount_attr attr{};
  attr.attr_set = set;
  if (syscall(SYS_mount_setattr, AT_FDCWD, target.c_str(), AT_RECURSIVE, &attr, sizeof attr) == 0) return;
  if (errno != ENOSYS) fail(stage, errno);
  // Kernels before 5.12: a remount of the top mount, keeping the flags the source already has.
  struct statvfs sv;
  unsigned long keep = 0;
  if (statvfs(target.c_str(), &sv) == 0) {
    if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
    if (sv.f_flag & ST_RDONLY) keep |= MS_RDONLY;
    if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
  }
  if (mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | keep | mount_flags(flags), nullptr) < 0)
    fail(stage, errno);
}

// A procfs of the caller's PID namespace. hidepid hides the init from the program (which runs as
// another uid); older kernels reject the name "invisible", so fall back to no option at all.
void mount_proc(const std::string& at, const std::string& stage) {
  if (mount("proc", at.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") < 0 &&
      mount("proc", at.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    fail(stage, errno);
}

struct Source {
  const Mount* mount;
  int fd;
};

// Files and directories of the root being built (below `root`, a fresh tmpfs nothing else has
// written yet). A run's own files, in a box that exists already, go through place_run_files.
void place(const Plan& plan, const Mount& m, const std::string& root) {
  std::string at = root + m.target;
  if (m.kind == wire::kDir) {
    make_dirs(at, m.mode);
    if (chmod(at.c_str(), m.mode) < 0) fail("chmod " + m.target, errno);
    if (m.owner && chown(at.c_str(), plan.uid, plan.gid) < 0) fail("chown " + m.target, errno);
    return;
  }
  make_dirs(parent_of(at), 0755);
  int fd = open(at.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, m.mode);
  if (fd < 0 || !write_all(fd, m.data)) fail("write " + m.target, errno);
  if (fchmod(fd, m.mode) < 0) fail("chmod " + m.target, errno);
  if (m.owner && fchown(fd, plan.uid, plan.gid) < 0) fail("chown " + m.target, errno);
  close(fd);
}

// Opens the directory `name` below `dir` (made if missing), never through a symlink: one
// component at a time, O_NOFOLLOW, O_DIRECTORY (so a FIFO is refused before it could block).
int open_subdir(int dir, const std::string& name, const std::string& stage) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) fail(stage, EINVAL);
  if (mkdirat(dir, name.c_str(), 0755) < 0 && errno != EEXIST) fail(stage, errno);
  int fd = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(stage, errno);
  return fd;
}

// One of a run's files or directories, below the working directory whatever an earlier run left
// there: no symlink is followed on the way, and a file is written under a fresh name in its
// directory and renamed over its own, so a FIFO, a device or a symlink in its place is replaced,
// never opened, and a directory there fails the run naming the file.
void place_run_file(int cwd_fd, const std::string& cwd, const Mount& m) {
  std::string prefix = cwd == "/" ? "/" : cwd + "/";
  std::string rel = m.target.compare(0, prefix.size(), prefix) == 0 ? m.target.substr(prefix.size()) : "";
  std::string stage = (m.kind == wire::kDir ? "place dir " : "place file ") + rel;
  if (rel.empty() || !m.owner) fail(stage, EINVAL);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = rel.find('/', start);
    parts.push_back(rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  int dir = fcntl(cwd_fd, F_DUPFD_CLOEXEC, 0);
  if (dir < 0) fail(stage, errno);
  size_t dirs = m.kind == wire::kDir ? parts.size() : parts.size() - 1;
  for (size_t i = 0; i < dirs; i++) {
    int next = open_subdir(dir, parts[i], stage);
    close(dir);
    dir = next;
  }
  if (m.kind == wire::kDir) {
    if (fchmod(dir, m.mode) < 0) fail(stage, errno);
    close(dir);
    return;
  }
  const std::string& name = parts.back();
  if (name.empty() || name == "." || name == "..") fail(stage, EINVAL);
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce)) fail(stage, errno);
  char tmp[48];
  snprintf(tmp, sizeof tmp, ".sandcell-%016llx", static_cast<unsigned long long>(nonce));
  int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) fail(stage, errno);
  if (!write_all(fd, m.data) || fchmod(fd, m.mode) < 0 || renameat(dir, tmp, dir, name.c_str()) < 0) {
    int err = errno;
    unlinkat(dir, tmp, 0);
    fail(stage, err);
  }
  close(fd);
  close(dir);
}

// A run's files (a join plan's entries), written as the program would write them: with its uid
// and gid (fsuid/fsgid) and no capability in effect. The process keeps its privileges for the
// rest of the program's setup, and the files are placed before its rlimits apply, as a box's
// own files are.
void place_run_files(const Plan& plan) {
  if (plan.mounts.empty()) return;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2] = {};
  if (syscall(SYS_capget, &hdr, caps) < 0) fail("place files", errno);
  setfsgid(plan.gid);
  setfsuid(plan.uid);
  if (static_cast<uint32_t>(setfsuid(-1)) != plan.uid || static_cast<uint32_t>(setfsgid(-1)) != plan.gid)
    fail("place files", EPERM);
  __user_cap_data_struct none[2] = {caps[0], caps[1]};
  none[0].effective = none[1].effective = 0;
  if (syscall(SYS_capset, &hdr, none) < 0) fail("place files", errno);
  int cwd = open(plan.cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0) fail("place files in " + plan.cwd, errno);
  for (const auto& m : plan.mounts) place_run_file(cwd, plan.cwd, m);
  close(cwd);
  setfsuid(0);
  setfsgid(0);
  if (syscall(SYS_capset, &hdr, caps) < 0) fail("place files", errno);
}

void build_root(const Plan& plan) {
  // Open every bind source (and the image) while the host's tree is still in place: the staging
  // tmpfs may cover part of it (a source below /tmp, say).
  std::vector<Source> sources;
  for (const auto& m : plan.mounts) {
    if (m.kind != wire::kBind) continue;
    int fd = open(m.source.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if ((m.flags & wire::kOptional) && errno == ENOENT) continue;
      fail("open " + m.source, errno);
    }
    sources.push_back({&m, fd});
  }
  bool overlay = plan.flags & wire::kOverlayRoot;
  int image_fd = -1;
  if (overlay && (image_fd = open(plan.image.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
    fail("open image " + plan.image, errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail("make mounts private", errno);
  std::string root = plan.staging;
  if (mount("sandcell-root", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, plan.root_tmpfs.c_str()) < 0)
    fail("mount root tmpfs", errno);
  if (overlay) {
    // Copy-on-write over the image: writes land in the tmpfs (charged to the box's memory) and
    // vanish with the box; the image directory is never written.
    for (const char* d : {"/upper", "/work", "/root"})
      if (mkdir((root + d).c_str(), 0755) < 0) fail(std::string("mkdir overlay ") + d, errno);
    std::string opts = "lowerdir=/proc/self/fd/" + std::to_string(image_fd) + ",upperdir=" + root +
                       "/upper,workdir=" + root + "/work";
    if (mount("overlay", (root + "/root").c_str(), "overlay", MS_NOSUID | MS_NODEV, (opts + ",userxattr").c_str()) < 0 &&
        mount("overlay", (root + "/root").c_str(), "overlay", MS_NOSUID | MS_NODEV, opts.c_str()) < 0)
      fail("mount overlay " + plan.image, errno);
    close(image_fd);
    root += "/root";
  }

  size_t next_source = 0;
  for (const auto& m : plan.mounts) {
    std::string at = root + m.target;
    switch (m.kind) {
      case wire::kDir:
      case wire::kFile:
        place(plan, m, root);
        break;
      case wire::kSymlink:
        make_dirs(parent_of(at), 0755);
        if (symlink(m.data.c_str(), at.c_str()) < 0) fail("symlink " + m.target, errno);
        break;
      case wire::kTmpfs:
        make_dirs(at, 0755);
        if (mount("tmpfs", at.c_str(), "tmpfs", mount_flags(m.flags & ~wire::kReadOnly), m.data.c_str()) < 0)
          fail("mount tmpfs " + m.target, errno);
        break;
      case wire::kProc:
        make_dirs(at, 0555);
        mount_proc(at, "mount proc " + m.target);
        break;
      case wire::kBind: {
        if (next_source >= sources.size() || sources[next_source].mount != &m) break;  // optional, missing
        int fd = sources[next_source++].fd;
        struct stat st;
        if (fstat(fd, &st) < 0) fail("stat " + m.source, errno);
        if (S_ISDIR(st.st_mode)) {
          make_dirs(at, 0755);
        } else {
          make_dirs(parent_of(at), 0755);
          int f = open(at.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
          if (f < 0) fail("create mountpoint " + m.target, errno);
          close(f);
        }
        std::string via = "/proc/self/fd/" + std::to_string(fd);
        if (mount(via.c_str(), at.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) fail("bind " + m.target, errno);
        restrict_bind(at, m.flags, "bind " + m.target);
        close(fd);
        break;
      }
      default:
        fail("plan mount kind", EINVAL);
    }
  }

  if (chdir(root.c_str()) < 0) fail("chdir new root", errno);
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the box.
  if (syscall(SYS_pivot_root, ".", ".") < 0) fail("pivot_root", errno);
  if (umount2(".", MNT_DETACH) < 0) fail("detach old root", errno);
  if (chdir("/") < 0) fail("chdir /", errno);

  for (const auto& m : plan.mounts)
    if (m.kind == wire::kTmpfs && (m.flags & wire::kReadOnly))
      if (mount(nullptr, m.target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | mount_flags(m.flags), nullptr) < 0)
        fail("read-only " + m.target, errno);
  if (plan.flags & wire::kRootReadOnly)
    if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) < 0)
      fail("read-only /", errno);
}

void loopback_up() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("loopback socket", errno);
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail("loopback up", errno);
  close(s);
}

int last_cap() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 40;
  char buf[16] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : 40;
}

void clear_caps(const char* stage) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) < 0) fail(stage, errno);
}

// The seccomp listener's way out of the box. Once the filter is loaded every system call of the
// program's thread passes through it, sendmsg included, and a policy may answer sendmsg with
// `kill` (USER_NOTIF): judge does. That notification would wait for a supervisor that can only get
// the listener from this very sendmsg, and the box would hang before its program starts. So the
// listener is sent by a helper thread started before the filter is loaded (filters apply to the
// thread that loads them; threads started earlier do not get them), and the program's thread
// makes no system call between loading the filter and its execve: it hands the fd over and waits
// on shared memory.
struct ListenerHandoff {
  std::atomic<int> fd{-1};
  std::atomic<bool> sent{false};
};

void* send_listener(void* arg) {
  auto* h = static_cast<ListenerHandoff*>(arg);
  int lfd;
  while ((lfd = h->fd.load()) < 0) sched_yield();
  wire::Report note{};
  note.kind = wire::kListener;
  snprintf(note.stage, sizeof note.stage, "seccomp listener");
  // fail() ends the whole process (exit_group), the filtered thread included.
  if (fdpass::send_fds(wire::kReportFd, &note, sizeof note, &lfd, 1) < 0) fail("seccomp listener", errno);
  close(lfd);  // the fd table is shared: this is the program's copy
  h->sent.store(true);
  return nullptr;
}

const char* const kRlimitNames[] = {"cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                                    "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime"};

// The program's own process: everything it does not need is taken away, then execve.
[[noreturn]] void exec_program(const Plan& plan, int cap_last, bool run_files) {
  close(wire::kStatusFd);
  close(wire::kPlanFd);
  // The report channel must close when execve succeeds: that EOF is how the parent learns it did.
  if (fcntl(wire::kReportFd, F_SETFD, FD_CLOEXEC) < 0) fail("report channel", errno);
  setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  if (run_files) place_run_files(plan);
  if (chdir(plan.cwd.c_str()) < 0) fail("chdir " + plan.cwd, errno);
  for (const auto& l : plan.rlimits) {
    rlimit r{l.soft, l.hard};
    if (setrlimit(static_cast<__rlimit_resource>(l.resource), &r) < 0)
      fail(std::string("rlimit ") + (l.resource < 16 ? kRlimitNames[l.resource] : "?"), errno);
  }
  for (int cap = 0; cap <= cap_last; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) fail("drop capabilities", errno);
  if (setresgid(plan.gid, plan.gid, plan.gid) < 0) fail("setgid", errno);
  if (setresuid(plan.uid, plan.uid, plan.uid) < 0) fail("setuid", errno);
  clear_caps("drop capabilities");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail("drop capabilities", errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("no_new_privs", errno);

  std::vector<char*> argv, envp;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // Resolve the command before the filter is loaded, so the filter sees one execve only.
  std::string path = plan.argv[0];
  if (path.find('/') == std::string::npos) {
    std::string search = "/usr/local/bin:/usr/bin:/bin";
    for (const auto& e : plan.env)
      if (e.compare(0, 5, "PATH=") == 0) search = e.substr(5);
    int first_err = ENOENT;
    bool found = false;
    size_t start = 0;
    while (start <= search.size() && !found) {
      size_t end = search.find(':', start);
      if (end == std::string::npos) end = search.size();
      std::string dir = search.substr(start, end - start);
      std::string candidate = (dir.empty() ? "." : dir) + "/" + plan.argv[0];
      if (access(candidate.c_str(), X_OK) == 0) {
        path = candidate;
        found = true;
      } else if (errno == EACCES) {
        first_err = EACCES;
      }
      start = end + 1;
    }
    if (!found) fail("execve", first_err);
  }

  if (!plan.seccomp.empty()) {
    std::string filter = plan.seccomp;
    uint64_t address = reinterpret_cast<uintptr_t>(path.c_str());
    for (uint32_t i : plan.exec_path_lo) {
      uint32_t k = static_cast<uint32_t>(address);
      memcpy(&filter[i * 8 + 4], &k, 4);
    }
    for (uint32_t i : plan.exec_path_hi) {
      uint32_t k = static_cast<uint32_t>(address >> 32);
      memcpy(&filter[i * 8 + 4], &k, 4);
    }
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(filter.size() / sizeof(sock_filter));
    prog.filter = reinterpret_cast<sock_filter*>(filter.data());
    unsigned flags = (plan.flags & wire::kSeccompListener) ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    static ListenerHandoff handoff;
    pthread_t helper;
    if (flags && pthread_create(&helper, nullptr, send_listener, &handoff) != 0) fail("seccomp listener", EAGAIN);
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (listener < 0) fail("seccomp", errno);
    if (flags) {
      // No system call from here to execve (see ListenerHandoff): a spin on shared memory.
      handoff.fd.store(static_cast<int>(listener));
      while (!handoff.sent.load()) {
      }
    }
  }
  execve(path.c_str(), argv.data(), envp.data());
  fail("execve", errno);
}

// The init is PID 1 of the PID namespace of everything it started (a box's, or a joined run's
// own): kill(-1) reaches all of it, and nothing can hide from it by double-forking.
void kill_everything_started() {
  kill(-1, SIGKILL);
  while (waitpid(-1, nullptr, __WALL) >= 0 || errno == EINTR) {
  }
}

// Ends the run from the inside: every process it started dies and is reaped (so its usage is
// counted), and the supervisor learns how the main process ended.
[[noreturn]] void finish(uint32_t kind, int value) {
  kill_everything_started();
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  wire::ExitStatus s{};
  s.magic = wire::kStatusMagic;
  s.kind = kind;
  s.value = value;
  s.user_us = static_cast<uint64_t>(ru.ru_utime.tv_sec) * 1000000 + static_cast<uint64_t>(ru.ru_utime.tv_usec);
  s.system_us = static_cast<uint64_t>(ru.ru_stime.tv_sec) * 1000000 + static_cast<uint64_t>(ru.ru_stime.tv_usec);
  s.max_rss_kib = static_cast<uint64_t>(ru.ru_maxrss);
  (void)!write(wire::kStatusFd, &s, sizeof s);
  _exit(0);
}

// The init keeps only CAP_KILL (to end the box's processes, which run as another uid), cannot
// be ptraced (not dumpable) and cannot be signalled by the program (different uid, no caps).
void keep_only_kill(int cap_last) {
  for (int cap = 0; cap <= cap_last; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = 1u << CAP_KILL;
  if (syscall(SYS_capset, &hdr, data) < 0) clear_caps("init drop capabilities");
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// The init's life after setup: start the program (unless the box only waits for runs), then
// forward signals to it, reap, and end the run when it ends or when the supervisor says so.
[[noreturn]] void supervise(const Plan& plan, int cap_last, const sigset_t& all, bool run_files) {
  int sigfd = signalfd(-1, &all, SFD_CLOEXEC);
  if (sigfd < 0) fail("signalfd", errno);
  pid_t main_pid = -1;
  if (!(plan.flags & wire::kPersistent)) {
    main_pid = fork();
    if (main_pid < 0) fail("fork", errno);
    if (main_pid == 0) {
      close(sigfd);
      exec_program(plan, cap_last, run_files);
    }
  }
  // For a living box, this EOF tells the supervisor the box is ready for runs.
  close(wire::kReportFd);
  keep_only_kill(cap_last);

  pollfd fds[2] = {{sigfd, POLLIN, 0}, {wire::kPlanFd, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) {
      char c = 0;
      ssize_t n = read(wire::kPlanFd, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      // A terminate request, or EOF: the supervisor is gone and nobody would read the result.
      finish(wire::kTerminated, 0);
    }
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo si;
    if (read(sigfd, &si, sizeof si) != static_cast<ssize_t>(sizeof si)) continue;
    if (si.ssi_signo != SIGCHLD) {
      // Signals sent to the box (through the init) are meant for the program.
      if (main_pid > 0) kill(main_pid, static_cast<int>(si.ssi_signo));
      continue;
    }
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
      if (pid <= 0) break;
      // A ptrace stop, not an end: the program made itself our tracee (PTRACE_TRACEME, possible
      // under a policy that allows ptrace). Let it go on, signal delivered, no longer traced.
      if (WIFSTOPPED(status)) {
        ptrace(PTRACE_DETACH, pid, nullptr, reinterpret_cast<void*>(static_cast<uintptr_t>(WSTOPSIG(status))));
        continue;
      }
      if (pid != main_pid) continue;
      // The run ends with its main process; whatever it left behind dies with it.
      if (WIFEXITED(status)) finish(wire::kExited, WEXITSTATUS(status));
      finish(wire::kSignaled, WTERMSIG(status));
    }
  }
}

// PR_SET_PDEATHSIG for a child of ours, with the window between fork() and prctl() closed: the
// parent's pidfd, opened before the fork, says whether it is gone already.
void die_with_parent(int parent_pidfd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  pollfd p{parent_pidfd, POLLIN, 0};
  if (parent_pidfd < 0 || poll(&p, 1, 0) != 0) _exit(1);
  close(parent_pidfd);
}

// Forks a child that dies with us (see die_with_parent): 0 in the child, its pid in the parent.
pid_t fork_tied(const char* stage) {
  int self = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (self < 0) fail(stage, errno);
  pid_t pid = fork();
  if (pid < 0) fail(stage, errno);
  if (pid == 0) {
    die_with_parent(self);
    return 0;
  }
  close(self);
  return pid;
}

// A link between the process the addon watches and a joined run's init: it holds no privilege
// and no channel, and ends once its child is reaped, so the process the addon watches ends only
// after the whole run has.
[[noreturn]] void link_until_reaped(pid_t child, int cap_last) {
  close(wire::kPlanFd);
  close(wire::kReportFd);
  close(wire::kStatusFd);
  for (int cap = 0; cap <= cap_last; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  clear_caps("drop capabilities");
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  while (waitpid(child, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  _exit(0);
}

// A run in a living box. The addon started us in the box's namespaces (and a mount namespace of
// the run's own); the box's PID namespace holds for our children only, and a new PID namespace can
// be made only by a process inside the one it goes below. So our child, in the box's PID
// namespace, makes the run's own, and its child is PID 1 there: the run's init. Its death takes the
// whole run with it, by the kernel; the box's init never sees the run's processes, nor they it.
[[noreturn]] void join_box(const Plan& plan, int cap_last, const sigset_t& all) {
  pid_t link = fork_tied("fork");
  if (link > 0) link_until_reaped(link, cap_last);
  if (unshare(CLONE_NEWPID) < 0) fail("run PID namespace", errno);
  pid_t init = fork_tied("fork run init");
  if (init > 0) {
    // The supervisor ends the run through the run's init: killing us would leave it to die of
    // PR_SET_PDEATHSIG a moment later, after the result.
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, init, 0));
    wire::Report note{};
    note.kind = wire::kRunInit;
    snprintf(note.stage, sizeof note.stage, "run init");
    if (pidfd < 0 || fdpass::send_fds(wire::kReportFd, &note, sizeof note, &pidfd, 1) < 0) {
      int err = errno;
      kill(init, SIGKILL);
      fail("run init pidfd", err);
    }
    close(pidfd);
    link_until_reaped(init, cap_last);
  }
  // The run's own /proc, over the box's, in the run's mount namespace: the run sees its processes
  // only. (A new procfs needs one already fully visible in the namespace, so the box's stays below.)
  mount_proc("/proc", "mount run /proc");
  supervise(plan, cap_last, all, true);
}

// A box built ahead of its run (kPrepared): the root is ready; say so, then wait for the run's
// own plan and the program's stdio, which arrive together on the control channel. Everything the
// run may choose is taken from that plan; what the box is (namespaces, root, ids) stays as built.
void await_run(Plan* plan) {
  wire::Report ready{};
  ready.kind = wire::kReady;
  snprintf(ready.stage, sizeof ready.stage, "ready");
  if (write(wire::kReportFd, &ready, sizeof ready) != static_cast<ssize_t>(sizeof ready)) _exit(1);

  // The stdio descriptors ride on the first bytes of the plan's length.
  uint32_t len = 0;
  int received[fdpass::kMaxFds] = {-1, -1, -1};
  size_t count = 0;
  ssize_t n;
  do n = fdpass::recv_fds(wire::kPlanFd, &len, sizeof len, received, &count);
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);  // the box was discarded unused
  if (n < 0) fail("read run plan", errno);
  if (count != 3) fail("run stdio", EPROTO);
  if (n < static_cast<ssize_t>(sizeof len) &&
      !read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len) + n, sizeof len - static_cast<size_t>(n)))
    fail("read run plan", EPIPE);
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read run plan", EINVAL);
  std::string bytes(len, '\0');
  if (!read_exact(wire::kPlanFd, bytes.data(), len)) fail("read run plan", EPIPE);
  Plan run;
  if (!wire::decode(bytes, &run) || run.argv.empty() || !(run.flags & wire::kJoin) || run.uid != plan->uid ||
      run.gid != plan->gid)
    fail("decode run plan", EINVAL);
  for (const auto& m : run.mounts)
    if (m.kind != wire::kFile && m.kind != wire::kDir) fail("decode run plan", EINVAL);

  for (int i = 0; i < 3; i++) {
    if (dup2(received[i], i) < 0) fail("run stdio", errno);
    if (received[i] != i) close(received[i]);
  }
  plan->argv = std::move(run.argv);
  plan->env = std::move(run.env);
  plan->cwd = std::move(run.cwd);
  plan->rlimits = std::move(run.rlimits);
  plan->seccomp = std::move(run.seccomp);
  plan->exec_path_lo = std::move(run.exec_path_lo);
  plan->exec_path_hi = std::move(run.exec_path_hi);
  plan->flags = (plan->flags & ~wire::kSeccompListener) | (run.flags & wire::kSeccompListener);
  plan->mounts = std::move(run.mounts);
}

}  // namespace

int main() {
  // If the Node process dies, so does the box: the kernel kills the rest of the PID namespace
  // when its init goes. The control socket gives EOF too when the whole parent process is gone,
  // which also covers the parent thread dying first.
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);

  uint32_t len = 0;
  if (!read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len), sizeof len)) _exit(1);  // the parent went away
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read plan", EINVAL);
  std::string bytes(len, '\0');
  if (!read_exact(wire::kPlanFd, bytes.data(), len)) fail("read plan", errno ? errno : EPIPE);
  Plan plan;
  bool decoded = wire::decode(bytes, &plan);
  bool argv_later = plan.flags & (wire::kPersistent | wire::kPrepared);
  if (!decoded || (plan.argv.empty() && !argv_later) ||
      plan.staging.empty() || plan.staging[0] != '/')
    fail("decode plan", EINVAL);
  bytes.clear();

  int cap_last = last_cap();
  if (plan.flags & wire::kJoin) join_box(plan, cap_last, all);
  if (plan.flags & wire::kNewCgroupNs)
    if (unshare(CLONE_NEWCGROUP) < 0) fail("cgroup namespace", errno);
  if (sethostname(plan.hostname.data(), plan.hostname.size()) < 0) fail("sethostname", errno);
  if (plan.flags & wire::kLoopbackUp) loopback_up();
  build_root(plan);
  bool prepared = plan.flags & wire::kPrepared;
  if (prepared) await_run(&plan);
  supervise(plan, cap_last, all, prepared);
}
