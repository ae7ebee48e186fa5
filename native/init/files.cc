// A run's own files, placed in a box that exists already (a living box, or a warm box's run):
// below the working directory whatever an earlier run left there, and as the program would write
// them. An earlier run may have planted a FIFO where a file goes (opening it would block), or a
// symlink on the way (the file would land where it points).
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "init.h"

namespace sandcell::init {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

bool plain_name(const std::string& name) { return !name.empty() && name != "." && name != ".."; }

// The directory `name` below `dir` (made if missing), never through a symlink: one component,
// O_NOFOLLOW, O_DIRECTORY (so a FIFO is refused before it could block). -errno on failure.
int open_subdir(int dir, const std::string& name) {
  if (!plain_name(name)) return -EINVAL;
  if (mkdirat(dir, name.c_str(), 0755) < 0 && errno != EEXIST) return -errno;
  int fd = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

// One file or directory. A file is written under a fresh name in its directory and renamed over
// its own name: a FIFO, a device or a symlink in its place is replaced, never opened; a directory
// there makes the rename fail.
int place_one(int cwd_fd, const std::string& cwd, const Mount& m, std::string* what) {
  std::string prefix = cwd == "/" ? "/" : cwd + "/";
  std::string rel = m.target.compare(0, prefix.size(), prefix) == 0 ? m.target.substr(prefix.size()) : "";
  *what = (m.kind == wire::kDir ? "place dir " : "place file ") + rel;
  if (rel.empty() || !m.owner || (m.kind != wire::kFile && m.kind != wire::kDir)) return EINVAL;
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t slash = rel.find('/', start);
    parts.push_back(rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  Fd dir(fcntl(cwd_fd, F_DUPFD_CLOEXEC, 0));
  if (dir.get() < 0) return errno;
  size_t dirs = m.kind == wire::kDir ? parts.size() : parts.size() - 1;
  for (size_t i = 0; i < dirs; i++) {
    int next = open_subdir(dir.get(), parts[i]);
    if (next < 0) return -next;
    dir.reset(next);
  }
  if (m.kind == wire::kDir) return fchmod(dir.get(), m.mode) < 0 ? errno : 0;

  const std::string& name = parts.back();
  if (!plain_name(name)) return EINVAL;
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != static_cast<ssize_t>(sizeof nonce)) return errno;
  char tmp[32];
  snprintf(tmp, sizeof tmp, ".sandcell-%016llx", static_cast<unsigned long long>(nonce));
  Fd file(openat(dir.get(), tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  if (file.get() < 0) return errno;
  if (!write_all(file.get(), m.data) || fchmod(file.get(), m.mode) < 0 || renameat(dir.get(), tmp, dir.get(), name.c_str()) < 0) {
    int err = errno;
    unlinkat(dir.get(), tmp, 0);
    return err;
  }
  return 0;
}

}  // namespace

// With the program's uid and gid as fsuid/fsgid and no capability in effect, so a file goes only
// where the program could write it and is the program's. Called in the program's process before
// its rlimits apply (as for a box's own files); it keeps its privileges for the rest of its setup.
int place_run_files(const Plan& plan, std::string* what) {
  if (plan.mounts.empty()) return 0;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2] = {};
  if (syscall(SYS_capget, &hdr, caps) < 0) return errno;
  setfsgid(plan.gid);
  setfsuid(plan.uid);
  if (static_cast<uint32_t>(setfsuid(-1)) != plan.uid || static_cast<uint32_t>(setfsgid(-1)) != plan.gid) return EPERM;
  __user_cap_data_struct none[2] = {caps[0], caps[1]};
  none[0].effective = none[1].effective = 0;
  if (syscall(SYS_capset, &hdr, none) < 0) return errno;

  Fd cwd(open(plan.cwd.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (cwd.get() < 0) {
    *what = "chdir " + plan.cwd;  // as the program's own chdir would report it
    return errno;
  }
  for (const auto& m : plan.mounts)
    if (int err = place_one(cwd.get(), plan.cwd, m, what)) return err;
  what->clear();

  setfsuid(0);
  setfsgid(0);
  return syscall(SYS_capset, &hdr, caps) < 0 ? errno : 0;
}

}  // namespace sandcell::init
