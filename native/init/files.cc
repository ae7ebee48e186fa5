// A run's own files, placed in a box that exists already (a living box, or a warm box's run):
// below the working directory whatever an earlier run left there, and as the program would write
// them. An earlier run may have planted a FIFO where a file goes (opening it would block), or a
// symlink on the way (the file would land where it points).
#include <linux/capability.h>

#include "init.h"
#include "sys.h"

namespace sandcell::init {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) sys::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd) {
    if (fd_ >= 0) sys::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

bool plain_name(Str name) { return !name.empty() && !(name == ".") && !(name == ".."); }

// The directory `name` below `dir` (made if missing), never through a symlink: one component,
// O_NOFOLLOW, O_DIRECTORY (so a FIFO is refused before it could block). -errno on failure.
long open_subdir(int dir, Str name) {
  if (!plain_name(name)) return -EINVAL;
  long r = sys::mkdirat(dir, name.p, 0755);
  if (r < 0 && r != -EEXIST) return r;
  return sys::openat(dir, name.p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

// One file or directory. A file is written under a fresh name in its directory and renamed over
// its own name: a FIFO, a device or a symlink in its place is replaced, never opened; a directory
// there makes the rename fail.
int place_one(int cwd_fd, Str cwd, const Mount& m, Str* what) {
  Str dir_prefix = cwd == "/" ? Str{"/", 1} : join(cwd.p, "/");
  Str rel = m.target.starts_with(dir_prefix.p) ? Str{m.target.p + dir_prefix.n, m.target.n - dir_prefix.n} : Str{};
  *what = join(m.kind == wire::kDir ? "place dir " : "place file ", rel.p);
  if (rel.empty() || !m.owner || (m.kind != wire::kFile && m.kind != wire::kDir)) return EINVAL;
  // The path's components, each a string of its own.
  size_t count = 1;
  for (uint32_t i = 0; i < rel.n; i++) count += rel[i] == '/';
  Str* parts = allocate_array<Str>(count);
  for (size_t start = 0, k = 0; k < count; k++) {
    size_t end = start;
    while (end < rel.n && rel[end] != '/') end++;
    parts[k] = prefix({rel.p + start, static_cast<uint32_t>(rel.n - start)}, end - start);
    start = end + 1;
  }
  long r = sys::fcntl(cwd_fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return static_cast<int>(-r);
  Fd dir(static_cast<int>(r));
  size_t dirs = m.kind == wire::kDir ? count : count - 1;
  for (size_t i = 0; i < dirs; i++) {
    long next = open_subdir(dir.get(), parts[i]);
    if (next < 0) return static_cast<int>(-next);
    dir.reset(static_cast<int>(next));
  }
  if (m.kind == wire::kDir) return static_cast<int>(-sys::fchmod(dir.get(), m.mode));

  Str name = parts[count - 1];
  if (!plain_name(name)) return EINVAL;
  uint64_t nonce = 0;
  r = sys::getrandom(&nonce, sizeof nonce);
  if (r < 0) return static_cast<int>(-r);
  if (r != sizeof nonce) return EIO;
  char tmp[32] = ".sandcell-";
  for (int i = 0; i < 16; i++) tmp[10 + i] = "0123456789abcdef"[(nonce >> (60 - 4 * i)) & 15];
  long f = sys::openat(dir.get(), tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (f < 0) return static_cast<int>(-f);
  Fd file(static_cast<int>(f));
  if ((r = write_all(file.get(), m.data.p, m.data.n)) < 0 || (r = sys::fchmod(file.get(), m.mode)) < 0 ||
      (r = sys::renameat(dir.get(), tmp, dir.get(), name.p)) < 0) {
    sys::unlinkat(dir.get(), tmp, 0);
    return static_cast<int>(-r);
  }
  return 0;
}

}  // namespace

// With the program's uid and gid as fsuid/fsgid and no capability in effect, so a file goes only
// where the program could write it and is the program's. Called in the program's process before
// its rlimits apply (as for a box's own files); it keeps its privileges for the rest of its setup.
int place_run_files(const Plan& plan, Str* what) {
  if (plan.mounts.empty()) return 0;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2] = {};
  long r = sys::capget(&hdr, caps);
  if (r < 0) return static_cast<int>(-r);
  sys::setfsgid(plan.gid);
  sys::setfsuid(plan.uid);
  if (sys::setfsuid(static_cast<uint32_t>(-1)) != plan.uid || sys::setfsgid(static_cast<uint32_t>(-1)) != plan.gid) return EPERM;
  __user_cap_data_struct none[2] = {caps[0], caps[1]};
  none[0].effective = none[1].effective = 0;
  if ((r = sys::capset(&hdr, none)) < 0) return static_cast<int>(-r);

  long c = sys::open(plan.cwd.p, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c < 0) {
    *what = join("chdir ", plan.cwd.p);  // as the program's own chdir would report it
    return static_cast<int>(-c);
  }
  Fd cwd(static_cast<int>(c));
  for (const auto& m : plan.mounts)
    if (int err = place_one(cwd.get(), plan.cwd, m, what)) return err;
  *what = Str{};

  sys::setfsuid(0);
  sys::setfsgid(0);
  return static_cast<int>(-sys::capset(&hdr, caps));
}

}  // namespace sandcell::init
