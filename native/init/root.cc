// Building a box's root: every bind source opened while the host's tree is still in place, a
// tmpfs (or an overlay over an image) assembled on the staging dir, pivot_root into it. /dev is a
// mount tree the addon passed at wire::kDevicesFd, or (rootless) a tmpfs with a bind per device.
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "init.h"

namespace sandcell::init {
namespace {

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

struct Source {
  const Mount* mount;
  int fd;
};

// Files and directories of the root being built (below `root`, a fresh tmpfs nothing else has
// written yet). A run's own files, in a box that exists already, are placed by files.cc.
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

}  // namespace

// A procfs of the caller's PID namespace. hidepid hides the init from the program (which runs as
// another uid); older kernels reject the name "invisible", so fall back to no option at all.
void mount_proc(const std::string& at, const std::string& stage) {
  if (mount("proc", at.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") < 0 &&
      mount("proc", at.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    fail(stage, errno);
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
  std::string lowerdir;
  std::vector<int> layer_fds;
  for (const auto& layer : plan.layers) {
    int fd = open(layer.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("open image layer " + layer, errno);
    layer_fds.push_back(fd);
    lowerdir += (lowerdir.empty() ? "/proc/self/fd/" : ":/proc/self/fd/") + std::to_string(fd);
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) fail("make mounts private", errno);
  std::string root = plan.staging;
  if (mount("sandcell-root", root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, plan.root_tmpfs.c_str()) < 0)
    fail("mount root tmpfs", errno);
  if (overlay) {
    // Copy-on-write over the image's layers: writes land in the tmpfs (charged to the box's
    // memory) and vanish with the box; no layer directory is ever written. A read-only image is
    // the same overlay with the root made read-only once its mount points are in place.
    for (const char* d : {"/upper", "/work", "/root"})
      if (mkdir((root + d).c_str(), 0755) < 0) fail(std::string("mkdir overlay ") + d, errno);
    std::string opts = "lowerdir=" + lowerdir + ",upperdir=" + root + "/upper,workdir=" + root + "/work";
    if (mount("overlay", (root + "/root").c_str(), "overlay", MS_NOSUID | MS_NODEV, (opts + ",userxattr").c_str()) < 0 &&
        mount("overlay", (root + "/root").c_str(), "overlay", MS_NOSUID | MS_NODEV, opts.c_str()) < 0)
      fail("mount overlay " + plan.layers.front(), errno);
    for (int fd : layer_fds) close(fd);
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
      case wire::kDevices:
        // A clone of the device tree the addon made once, read-only with its devices usable:
        // one mount, where a tmpfs and a bind per device would be six.
        make_dirs(at, 0755);
        if (syscall(SYS_move_mount, wire::kDevicesFd, "", AT_FDCWD, at.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
          fail("mount " + m.target, errno);
        close(wire::kDevicesFd);
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

}  // namespace sandcell::init
