#include "box_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace sandcell {
namespace {

constexpr unsigned long long kNoLinks = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

[[noreturn]] void fail(int err, const std::string& what) { throw BoxFileError{err, what}; }

int open2(int dirfd, const std::string& path, unsigned long long flags, unsigned long long resolve) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  long fd;
  do fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  return static_cast<int>(fd);
}

// The box directory `dir`, opened through the init's root: "/" and ".." stop at the box's root.
int open_box_dir(int pid, int pidfd, const std::string& dir) {
  std::string root_path = "/proc/" + std::to_string(pid) + "/root";
  Fd root(open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) fail(errno, "open box root");
  // The pid could have been reused if the init had died; the pidfd cannot. Alive after the open
  // means the root we hold is the box's.
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) < 0) fail(ESRCH, "the box has ended");
  std::string rel = dir;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  if (rel.empty()) rel = ".";
  int fd = open2(root.get(), rel, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT | kNoLinks);
  if (fd < 0) fail(errno, "open " + dir);
  return fd;
}

}  // namespace

std::string box_read_file(int pid, int pidfd, const std::string& dir, const std::string& name, size_t max_bytes) {
  Fd base(open_box_dir(pid, pidfd, dir));
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after.
  Fd f(open2(base.get(), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, RESOLVE_BENEATH | kNoLinks));
  if (f.get() < 0) fail(errno, name);
  struct stat st;
  if (fstat(f.get(), &st) < 0) fail(errno, name);
  if (!S_ISREG(st.st_mode)) fail(EINVAL, name + " is not a regular file");
  if (static_cast<unsigned long long>(st.st_size) > max_bytes) fail(EFBIG, name + " is larger than the limit");
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t off = 0;
  // The file may grow while we read (a box still running): stop at the limit either way.
  while (off < out.size()) {
    ssize_t n = read(f.get(), &out[off], out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(errno, name);
    if (n == 0) break;
    off += static_cast<size_t>(n);
  }
  out.resize(off);
  return out;
}

std::vector<DirEntry> box_list_dir(int pid, int pidfd, const std::string& dir, const std::string& name, size_t max_entries,
                                   bool* truncated) {
  Fd base(open_box_dir(pid, pidfd, dir));
  Fd d(name.empty() ? fcntl(base.get(), F_DUPFD_CLOEXEC, 0)
                    : open2(base.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_BENEATH | kNoLinks));
  if (d.get() < 0) fail(errno, name.empty() ? dir : name);
  int listing = name.empty() ? openat(base.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : d.release();
  if (listing < 0) fail(errno, dir);
  DIR* dp = fdopendir(listing);
  if (!dp) {
    close(listing);
    fail(errno, dir);
  }
  std::vector<DirEntry> out;
  *truncated = false;
  // A box can make a directory of millions of entries: never read more than one past the limit.
  while (dirent* e = readdir(dp)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (out.size() == max_entries) {
      *truncated = true;
      break;
    }
    out.push_back({e->d_name, e->d_type == DT_DIR});
  }
  closedir(dp);
  return out;
}

}  // namespace sandcell
