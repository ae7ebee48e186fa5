/* Host files: reach a host file (argv[1], an absolute host path outside the box) through
 * traversal, /proc/<pid>/root and cwd, inherited directory fds, chroot-in-chroot and
 * open_by_handle_at; write into a read-only bound host dir (argv[2], its path inside the box)
 * and into the bound system dirs. */
#include "attack.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

static const char *secret;

static void try_read(const char *what, int dirfd, const char *path) {
  int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[64] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  hole(what, "read %s: %.*s", path, n > 0 ? (int)n : 0, buf);
}

static void try_create(const char *what, const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/sandcell-attack-%d", dir, getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    close(fd);
    unlink(path);
    hole(what, "created %s", path);
  } else {
    note(what, "%s: %s", dir, strerrorname_np(errno));
  }
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  secret = argv[1];
  char up[3900];
  snprintf(up, sizeof up, "../../../../../../../../..%s", secret);

  try_read("direct path", AT_FDCWD, secret);
  try_read("dot-dot traversal", AT_FDCWD, up);
  chdir("/");
  try_read("dot-dot from /", AT_FDCWD, up);
  char path[4300];
  snprintf(path, sizeof path, "/proc/self/cwd/%s", up);
  try_read("/proc/self/cwd", AT_FDCWD, path);
  snprintf(path, sizeof path, "/proc/self/root/%s", up);
  try_read("/proc/self/root", AT_FDCWD, path);
  DIR *d = opendir("/proc");
  struct dirent *e;
  int pids = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    pids++;
    snprintf(path, sizeof path, "/proc/%s/root%s", e->d_name, secret);
    try_read("/proc/<pid>/root", AT_FDCWD, path);
    snprintf(path, sizeof path, "/proc/%s/cwd/%s", e->d_name, up);
    try_read("/proc/<pid>/cwd", AT_FDCWD, path);
  }
  if (d) closedir(d);
  note("/proc/<pid>/root and cwd", "tried %d pids", pids);

  /* Every inherited descriptor: a directory fd from outside the root escapes it with "..". */
  int dirs = 0;
  for (int fd = 0; fd < 1024; fd++) {
    struct stat st;
    if (fstat(fd, &st) != 0) continue;
    char what[64];
    snprintf(what, sizeof what, "inherited fd %d", fd);
    if (S_ISDIR(st.st_mode)) {
      dirs++;
      try_read(what, fd, up);
      try_read(what, fd, secret + 1);
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d/%s", fd, up);
    try_read(what, AT_FDCWD, path);
  }
  note("inherited fds", "%d directory fds", dirs);

  /* chroot-in-chroot: chroot into a subdir and climb out of the old root with "..". */
  mkdir("/tmp/cc", 0755);
  if (chroot("/tmp/cc") == 0) {
    for (int i = 0; i < 64; i++) chdir("..");
    chroot(".");
    hole("chroot", "chroot succeeded");
    try_read("chroot-in-chroot", AT_FDCWD, secret);
  } else {
    note("chroot", "%s", strerrorname_np(errno));
  }

  /* open_by_handle_at (the "shocker" escape): a handle names any inode of a bound filesystem. */
  struct {
    struct file_handle fh;
    unsigned char bytes[8];
  } h = {{.handle_bytes = 8, .handle_type = 1}, {2, 0, 0, 0, 0, 0, 0, 0}};
  int mfd = open("/usr", O_RDONLY | O_DIRECTORY);
  expect_fail("open_by_handle_at", open_by_handle_at(mfd, &h.fh, O_RDONLY));
  int mount_id;
  struct {
    struct file_handle fh;
    unsigned char bytes[128];
  } h2 = {{.handle_bytes = 128}, {0}};
  expect_fail("name_to_handle_at", name_to_handle_at(AT_FDCWD, "/usr", &h2.fh, &mount_id, 0));

  /* Writes: the read-only bind, the system dirs bound from the host, the generated /etc. */
  try_create("write read-only bind", argv[2]);
  try_create("write /usr", "/usr");
  try_create("write /usr/bin", "/usr/bin");
  try_create("write /etc", "/etc");
  try_create("write /", "/");
  int fd = open("/etc/passwd", O_WRONLY | O_APPEND);
  expect_fail("write /etc/passwd", fd);
  return finish();
}
