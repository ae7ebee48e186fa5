#include "dev_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace sandcell {

int make_device_tree(const DeviceTreeSpec& spec, int* fd, std::string* stage) {
  auto failed = [&](const std::string& what, int ctx, int mnt) {
    int err = errno;
    *stage = what;
    if (ctx >= 0) close(ctx);
    if (mnt >= 0) close(mnt);
    return err;
  };
  int ctx = static_cast<int>(syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC));
  if (ctx < 0) return failed("fsopen tmpfs", -1, -1);
  for (const auto& [key, value] : {std::pair<const char*, const char*>{"source", "tmpfs"}, {"size", "64k"}, {"nr_inodes", "64"}, {"mode", "755"}})
    if (syscall(SYS_fsconfig, ctx, FSCONFIG_SET_STRING, key, value, 0) < 0) return failed(std::string("fsconfig ") + key, ctx, -1);
  if (syscall(SYS_fsconfig, ctx, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) return failed("create tmpfs", ctx, -1);
  // nosuid and noexec as the box's /dev always was; devices allowed: they are what it is for.
  int mnt = static_cast<int>(syscall(SYS_fsmount, ctx, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  if (mnt < 0) return failed("fsmount", ctx, -1);
  close(ctx);
  ctx = -1;
  if (fchownat(mnt, "", spec.uid, spec.gid, AT_EMPTY_PATH) < 0) return failed("chown /dev", ctx, mnt);
  // Modes set after creation: the process's umask must not decide them.
  for (const auto& n : spec.nodes) {
    if (mknodat(mnt, n.name.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) < 0 || fchmodat(mnt, n.name.c_str(), 0666, 0) < 0)
      return failed("mknod " + n.name, ctx, mnt);
  }
  for (const auto& l : spec.links) {
    if (symlinkat(l.target.c_str(), mnt, l.name.c_str()) < 0 ||
        fchownat(mnt, l.name.c_str(), spec.uid, spec.gid, AT_SYMLINK_NOFOLLOW) < 0)
      return failed("symlink " + l.name, ctx, mnt);
  }
  for (const auto& d : spec.dirs) {
    if (mkdirat(mnt, d.c_str(), 0755) < 0 || fchmodat(mnt, d.c_str(), 0755, 0) < 0 || fchownat(mnt, d.c_str(), spec.uid, spec.gid, 0) < 0)
      return failed("mkdir " + d, ctx, mnt);
  }
  // The superblock itself read-only, not only this mount: a box's root (in a user namespace that
  // does not own it) may make its own mount writable again, never the filesystem below it.
  ctx = static_cast<int>(syscall(SYS_fspick, mnt, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC));
  if (ctx < 0 || syscall(SYS_fsconfig, ctx, FSCONFIG_SET_FLAG, "ro", nullptr, 0) < 0 ||
      syscall(SYS_fsconfig, ctx, FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) < 0)
    return failed("read-only /dev", ctx, mnt);
  close(ctx);
  // The mount read-only too, as the box's mount table has always said (kernels before 5.12 lack
  // the call: the read-only superblock is what holds).
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0 && errno != ENOSYS)
    return failed("read-only /dev mount", -1, mnt);
  *fd = mnt;
  return 0;
}

int clone_device_tree(int tree_fd) {
  int fd = static_cast<int>(syscall(SYS_open_tree, tree_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
  return fd < 0 ? -errno : fd;
}

}  // namespace sandcell
