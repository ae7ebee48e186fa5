// Building a box's root: every bind source opened while the host's tree is still in place, a
// tmpfs (or an overlay over an image) assembled on the staging dir, pivot_root into it. /dev is a
// mount tree the addon passed at wire::kDevicesFd, or (rootless) a tmpfs with a bind per device.
#include <linux/mount.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "init.h"
#include "sys.h"

namespace sandcell::init {
namespace {

// mkdir -p below the staging root; the plan's targets were checked to be absolute and clean.
// The directory itself first: its parent (the root, /etc...) nearly always exists already, and
// every mkdir is a path walk and a system call (a dozen mounts and files each walked the staging
// root and /etc again, refused with EEXIST). Otherwise the walk from the top, which also names
// the component that fails.
void make_dirs(Str path, unsigned mode) {
  char* p = const_cast<char*>(prefix(path, path.n).p);
  if (long first = sys::mkdir(p, mode); first == 0 || first == -EEXIST) return;
  for (size_t i = 1; i <= path.n; i++) {
    if (i != path.n && p[i] != '/') continue;
    char at = p[i];
    p[i] = 0;
    long r = sys::mkdir(p, mode);
    if (r < 0 && r != -EEXIST) fail(join("mkdir ", p), static_cast<int>(-r));
    p[i] = at;
  }
}

Str parent_of(Str path) {
  size_t slash = path.n;
  while (slash > 0 && path[slash - 1] != '/') slash--;
  if (slash <= 1) return {"/", 1};
  return prefix(path, slash - 1);
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
void restrict_bind(const char* target, uint32_t flags, Str stage) {
  uint64_t set = 0;
  if (flags & wire::kReadOnly) set |= MOUNT_ATTR_RDONLY;
  if (flags & wire::kNoSuid) set |= MOUNT_ATTR_NOSUID;
  if (flags & wire::kNoDev) set |= MOUNT_ATTR_NODEV;
  if (flags & wire::kNoExec) set |= MOUNT_ATTR_NOEXEC;
  if (set == 0) return;
  mount_attr attr{};
  attr.attr_set = set;
  long r = sys::mount_setattr(AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr);
  if (r == 0) return;
  if (r != -ENOSYS) fail(stage, static_cast<int>(-r));
  // Kernels before 5.12: a remount of the top mount, keeping the flags the source already has
  // (statfs's f_flags are the ST_* flags of statvfs).
  struct statfs sv;
  unsigned long keep = 0;
  if (sys::statfs(target, &sv) == 0) {
    if (sv.f_flags & ST_NOSUID) keep |= MS_NOSUID;
    if (sv.f_flags & ST_NODEV) keep |= MS_NODEV;
    if (sv.f_flags & ST_NOEXEC) keep |= MS_NOEXEC;
    if (sv.f_flags & ST_RDONLY) keep |= MS_RDONLY;
    if (sv.f_flags & ST_NOATIME) keep |= MS_NOATIME;
    if (sv.f_flags & ST_NODIRATIME) keep |= MS_NODIRATIME;
    if (sv.f_flags & ST_RELATIME) keep |= MS_RELATIME;
  }
  r = sys::mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | keep | mount_flags(flags), nullptr);
  if (r < 0) fail(stage, static_cast<int>(-r));
}

// Files and directories of the root being built (below `root`, a fresh tmpfs nothing else has
// written yet). A run's own files, in a box that exists already, are placed by files.cc.
void place(const Plan& plan, const Mount& m, Str at) {
  long r;
  if (m.kind == wire::kDir) {
    make_dirs(at, m.mode);
    if ((r = sys::chmod(at.p, m.mode)) < 0) fail(join("chmod ", m.target.p), static_cast<int>(-r));
    if (m.owner && (r = sys::chown(at.p, plan.uid, plan.gid)) < 0) fail(join("chown ", m.target.p), static_cast<int>(-r));
    return;
  }
  make_dirs(parent_of(at), 0755);
  long fd = sys::open(at.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, m.mode);
  if (fd < 0) fail(join("write ", m.target.p), static_cast<int>(-fd));
  int f = static_cast<int>(fd);
  if ((r = write_all(f, m.data.p, m.data.n)) < 0) fail(join("write ", m.target.p), static_cast<int>(-r));
  if ((r = sys::fchmod(f, m.mode)) < 0) fail(join("chmod ", m.target.p), static_cast<int>(-r));
  if (m.owner && (r = sys::fchown(f, plan.uid, plan.gid)) < 0) fail(join("chown ", m.target.p), static_cast<int>(-r));
  sys::close(f);
}

}  // namespace

// A procfs of the caller's PID namespace. hidepid hides the init from the program (which runs as
// another uid); older kernels reject the name "invisible", so fall back to no option at all.
void mount_proc(const char* at, const char* stage) {
  if (sys::mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") < 0) {
    long r = sys::mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    if (r < 0) fail(stage, static_cast<int>(-r));
  }
}

void build_root(const Plan& plan) {
  // Open every bind source (and the image) while the host's tree is still in place: the staging
  // tmpfs may cover part of it (a source below /tmp, say). A bind whose optional source is missing
  // keeps -1.
  int* sources = allocate_array<int>(plan.mounts.size);
  for (uint32_t i = 0; i < plan.mounts.size; i++) {
    const Mount& m = plan.mounts[i];
    sources[i] = -1;
    if (m.kind != wire::kBind) continue;
    long fd = sys::open(m.source.p, O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if ((m.flags & wire::kOptional) && fd == -ENOENT) continue;
      fail(join("open ", m.source.p), static_cast<int>(-fd));
    }
    sources[i] = static_cast<int>(fd);
  }
  bool overlay = plan.flags & wire::kOverlayRoot;
  // "/proc/self/fd/N" per layer, ':' between them.
  char* lowerdir = static_cast<char*>(allocate(plan.layers.size * 40 + 1));
  size_t lower_n = 0;
  lowerdir[0] = 0;
  int* layer_fds = allocate_array<int>(plan.layers.size);
  for (uint32_t i = 0; i < plan.layers.size; i++) {
    long fd = sys::open(plan.layers[i].p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail(join("open image layer ", plan.layers[i].p), static_cast<int>(-fd));
    layer_fds[i] = static_cast<int>(fd);
    Str name = join(i == 0 ? "/proc/self/fd/" : ":/proc/self/fd/", Decimal(static_cast<uint64_t>(fd)).c_str());
    for (uint32_t k = 0; k <= name.n; k++) lowerdir[lower_n + k] = name.p[k];
    lower_n += name.n;
  }
  long r;
  if ((r = sys::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) < 0) fail("make mounts private", static_cast<int>(-r));
  Str root = plan.staging;
  if ((r = sys::mount("sandcell-root", root.p, "tmpfs", MS_NOSUID | MS_NODEV, plan.root_tmpfs.p)) < 0)
    fail("mount root tmpfs", static_cast<int>(-r));
  if (overlay) {
    // Copy-on-write over the image's layers: writes land in the tmpfs (charged to the box's
    // memory) and vanish with the box; no layer directory is ever written. A read-only image is
    // the same overlay with the root made read-only once its mount points are in place.
    const char* dirs[] = {"/upper", "/work", "/root"};
    for (const char* d : dirs)
      if ((r = sys::mkdir(join(root.p, d).p, 0755)) < 0) fail(join("mkdir overlay ", d), static_cast<int>(-r));
    Str opts = join(join("lowerdir=", lowerdir, ",upperdir=", root.p, "/upper").p, ",workdir=", root.p, "/work");
    Str top = join(root.p, "/root");
    if (sys::mount("overlay", top.p, "overlay", MS_NOSUID | MS_NODEV, join(opts.p, ",userxattr").p) < 0 &&
        (r = sys::mount("overlay", top.p, "overlay", MS_NOSUID | MS_NODEV, opts.p)) < 0)
      fail(join("mount overlay ", plan.layers[0].p), static_cast<int>(-r));
    for (uint32_t i = 0; i < plan.layers.size; i++) sys::close(layer_fds[i]);
    root = top;
  }

  for (uint32_t i = 0; i < plan.mounts.size; i++) {
    const Mount& m = plan.mounts[i];
    Str at = join(root.p, m.target.p);
    switch (m.kind) {
      case wire::kDir:
      case wire::kFile:
        place(plan, m, at);
        break;
      case wire::kSymlink:
        make_dirs(parent_of(at), 0755);
        if ((r = sys::symlink(m.data.p, at.p)) < 0) fail(join("symlink ", m.target.p), static_cast<int>(-r));
        break;
      case wire::kTmpfs:
        make_dirs(at, 0755);
        if ((r = sys::mount("tmpfs", at.p, "tmpfs", mount_flags(m.flags & ~wire::kReadOnly), m.data.p)) < 0)
          fail(join("mount tmpfs ", m.target.p), static_cast<int>(-r));
        break;
      case wire::kProc:
        make_dirs(at, 0555);
        mount_proc(at.p, join("mount proc ", m.target.p).p);
        break;
      case wire::kDevices:
        // A clone of the device tree the addon made once, read-only with its devices usable:
        // one mount, where a tmpfs and a bind per device would be six.
        make_dirs(at, 0755);
        if ((r = sys::move_mount(wire::kDevicesFd, "", AT_FDCWD, at.p, MOVE_MOUNT_F_EMPTY_PATH)) < 0)
          fail(join("mount ", m.target.p), static_cast<int>(-r));
        sys::close(wire::kDevicesFd);
        break;
      case wire::kBind: {
        int fd = sources[i];
        if (fd < 0) break;  // optional, missing
        struct stat st;
        if ((r = sys::fstat(fd, &st)) < 0) fail(join("stat ", m.source.p), static_cast<int>(-r));
        if (S_ISDIR(st.st_mode)) {
          make_dirs(at, 0755);
        } else {
          make_dirs(parent_of(at), 0755);
          long f = sys::open(at.p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
          if (f < 0) fail(join("create mountpoint ", m.target.p), static_cast<int>(-f));
          sys::close(static_cast<int>(f));
        }
        Str via = join("/proc/self/fd/", Decimal(static_cast<uint64_t>(fd)).c_str());
        if ((r = sys::mount(via.p, at.p, nullptr, MS_BIND | MS_REC, nullptr)) < 0) fail(join("bind ", m.target.p), static_cast<int>(-r));
        restrict_bind(at.p, m.flags, join("bind ", m.target.p));
        sys::close(fd);
        break;
      }
      default:
        fail("plan mount kind", EINVAL);
    }
  }

  if ((r = sys::chdir(root.p)) < 0) fail("chdir new root", static_cast<int>(-r));
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the box.
  if ((r = sys::pivot_root(".", ".")) < 0) fail("pivot_root", static_cast<int>(-r));
  if ((r = sys::umount2(".", MNT_DETACH)) < 0) fail("detach old root", static_cast<int>(-r));
  if ((r = sys::chdir("/")) < 0) fail("chdir /", static_cast<int>(-r));

  for (const auto& m : plan.mounts)
    if (m.kind == wire::kTmpfs && (m.flags & wire::kReadOnly))
      if ((r = sys::mount(nullptr, m.target.p, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | mount_flags(m.flags), nullptr)) < 0)
        fail(join("read-only ", m.target.p), static_cast<int>(-r));
  if (plan.flags & wire::kRootReadOnly)
    if ((r = sys::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr)) < 0)
      fail("read-only /", static_cast<int>(-r));
}

void loopback_up() {
  long s = sys::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("loopback socket", static_cast<int>(-s));
  ifreq ifr{};
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  ifr.ifr_flags = IFF_UP | IFF_RUNNING;
  long r = sys::ioctl(static_cast<int>(s), SIOCSIFFLAGS, &ifr);
  if (r < 0) fail("loopback up", static_cast<int>(-r));
  sys::close(static_cast<int>(s));
}

}  // namespace sandcell::init
