/* What a program can do with terminals from inside a box. Prints "<name> rc=<return> errno=<errno>"
 * (errno 0 when the call succeeded) per attempt; an attempt the policy answers by ending the run
 * prints "<name> attempting" first, then nothing.
 *
 *   probe stdin           isatty(0), then on stdin: TIOCSCTTY (make it the controlling terminal:
 *                         the box's program leads a session of its own), TIOCSTI, TIOCLINUX
 *   probe open <path>...  open(path, O_RDWR | O_NOCTTY) of each path
 *   probe make            mknod of a terminal device (5,0) in /tmp, devpts mounted in /tmp */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void report(const char *name, long rc) {
  printf("%s rc=%ld errno=%d\n", name, rc, rc < 0 ? errno : 0);
  fflush(stdout);
}

static void attempting(const char *name) {
  printf("%s attempting\n", name);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (!strcmp(argv[1], "stdin")) {
    printf("isatty %d\n", isatty(0));
    report("tiocsctty", ioctl(0, TIOCSCTTY, 0));
    char c = 'x';
    attempting("tiocsti");
    report("tiocsti", ioctl(0, TIOCSTI, &c));
    char sub = 6; /* TIOCL_GETSHIFTSTATE */
    attempting("tioclinux");
    report("tioclinux", ioctl(0, TIOCLINUX, &sub));
    return 0;
  }
  if (!strcmp(argv[1], "open")) {
    for (int i = 2; i < argc; i++) {
      int fd = open(argv[i], O_RDWR | O_NOCTTY);
      report(argv[i], fd);
      if (fd >= 0) close(fd);
    }
    return 0;
  }
  if (!strcmp(argv[1], "make")) {
    report("mknod", mknod("/tmp/tty", S_IFCHR | 0666, makedev(5, 0)));
    mkdir("/tmp/pts", 0755);
    report("mount-devpts", mount("devpts", "/tmp/pts", "devpts", 0, "newinstance,ptmxmode=0666"));
    return 0;
  }
  return 2;
}
