/* Devices: physical memory, the kernel log, disks, terminals, and making device nodes. Extra
 * device paths to try can be given as arguments (the weakened test binds a host disk). */
#include "attack.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static void try_open(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char b[16];
    ssize_t n = read(fd, b, sizeof b);
    hole(path, "opened for reading (read %zd bytes)", n);
    close(fd);
  } else {
    note(path, "%s", strerrorname_np(errno));
  }
}

int main(int argc, char **argv) {
  const char *devs[] = {"/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/nvme0n1",
                        "/dev/loop0", "/dev/loop-control", "/dev/zram0", "/dev/kvm", "/dev/fuse", "/dev/net/tun",
                        "/dev/cpu/0/msr", "/dev/hwrng", "/dev/console", "/dev/ptmx", "/dev/autofs", "/dev/btrfs-control"};
  for (unsigned i = 0; i < sizeof devs / sizeof *devs; i++) try_open(devs[i]);
  for (int i = 1; i < argc; i++) try_open(argv[i]);
  /* /dev/null and friends are bound read-write; writing them must not reach anything else. */
  expect_fail("mknod /tmp/mem c 1 1", mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)));
  expect_fail("mknod /work/disk b 254 0", mknod("/work/disk", S_IFBLK | 0666, makedev(254, 0)));
  expect_fail("mknod /dev/mem c 1 1", mknod("/dev/mem", S_IFCHR | 0666, makedev(1, 1)));
  return finish();
}
