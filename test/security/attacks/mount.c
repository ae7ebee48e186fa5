/* Remounting and unmounting: the box's mounts must stay as they are, and no new mount (even in
 * a new user + mount namespace of the program's own) may be made. */
#include "attack.h"
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>

static void attempts(const char *where) {
  char what[128];
#define TRY(name, call) (snprintf(what, sizeof what, "%s %s", where, name), expect_fail(what, call))
  TRY("mount tmpfs on /tmp", mount("none", "/tmp", "tmpfs", 0, NULL));
  TRY("remount /usr rw", mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL));
  TRY("remount / rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  TRY("remount /proc rw", mount(NULL, "/proc", NULL, MS_REMOUNT, NULL));
  TRY("umount /proc", umount2("/proc", MNT_DETACH));
  TRY("umount /usr", umount2("/usr", MNT_DETACH));
  TRY("mount proc", mount("proc", "/tmp", "proc", 0, NULL));
  TRY("mount sysfs", mount("sysfs", "/tmp", "sysfs", 0, NULL));
  TRY("bind / on /tmp", mount("/", "/tmp", NULL, MS_BIND | MS_REC, NULL));
  TRY("fsopen tmpfs", syscall(SYS_fsopen, "tmpfs", 0));
  TRY("open_tree /usr", syscall(SYS_open_tree, AT_FDCWD, "/usr", 1 /* OPEN_TREE_CLONE */));
  TRY("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
#undef TRY
}

int main(void) {
  attempts("box:");
  /* With a user namespace of its own the program would hold every capability over it. */
  long rc = unshare(CLONE_NEWUSER | CLONE_NEWNS);
  expect_fail("unshare(user|mount)", rc);
  if (rc == 0) attempts("own userns:");
  return finish();
}
