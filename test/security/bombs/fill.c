/* Fill a file system: write argv[1]/fill until the write fails; print how far it got. */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  signal(SIGXFSZ, SIG_IGN);
  char path[4096];
  static char buf[1 << 16];
  memset(buf, 'f', sizeof buf);
  long total = 0;
  int e = 0;
  for (int i = 0; i < 1000000 && !e; i++) {
    snprintf(path, sizeof path, "%s/fill-%d", argv[1], i);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) { e = errno; break; }
    for (int k = 0; k < 256; k++) {
      ssize_t n = write(fd, buf, sizeof buf);
      if (n < 0) { e = errno; break; }
      total += n;
    }
    close(fd);
  }
  printf("wrote %ld stopped %s\n", total, strerrorname_np(e));
  return 0;
}
