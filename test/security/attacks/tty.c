/* TIOCSTI (typing into a terminal) on the program's own descriptors and on any terminal it can
 * open; with a pty of its own (only in the weakened test, /dev/pts bound) it makes it its
 * controlling terminal first, the one case the kernel allows without capabilities. */
#include "attack.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static void sti(const char *what, int fd) {
  char c = '\n';
  long rc = ioctl(fd, TIOCSTI, &c);
  int e = errno;
  /* ENOTTY/EBADF: not a terminal at all; EPERM/EIO: refused. Success is the hole. */
  if (rc == 0) hole(what, "injected a character");
  else note(what, "%s", strerrorname_np(e));
}

int main(void) {
  sti("TIOCSTI stdin", 0);
  sti("TIOCSTI stdout", 1);
  sti("TIOCSTI stderr", 2);
  const char *ttys[] = {"/dev/tty", "/dev/console", "/dev/tty0", "/dev/tty1"};
  for (int i = 0; i < 4; i++) {
    int fd = open(ttys[i], O_RDWR | O_NOCTTY);
    if (fd < 0) {
      note(ttys[i], "open: %s", strerrorname_np(errno));
      continue;
    }
    hole(ttys[i], "opened");
    sti(ttys[i], fd);
  }
  int m = open("/dev/ptmx", O_RDWR | O_NOCTTY);
  if (m < 0) {
    note("/dev/ptmx", "open: %s", strerrorname_np(errno));
    return finish();
  }
  unlockpt(m);
  char *name = ptsname(m);
  pid_t c = fork();
  if (c == 0) {
    setsid();
    int s = open(name, O_RDWR);
    if (s < 0) _exit(2);
    ioctl(s, TIOCSCTTY, 0);
    char ch = '\n';
    _exit(ioctl(s, TIOCSTI, &ch) == 0 ? 0 : 1);
  }
  int st = 0;
  waitpid(c, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) hole("TIOCSTI own pty", "injected a character");
  else note("TIOCSTI own pty", "refused (status %d)", st);
  return finish();
}
