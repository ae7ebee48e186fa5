/* Descriptor exhaustion: open files, pipes and sockets until refused; print how many. */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  int n = 0, e = 0;
  for (;;) {
    int p[2];
    if (open("/dev/null", O_RDONLY) < 0) { e = errno; break; }
    n++;
    if (pipe(p) < 0) { e = errno; break; }
    n += 2;
    if (socket(AF_UNIX, SOCK_STREAM, 0) < 0) { e = errno; break; }
    n++;
  }
  printf("opened %d stopped %s\n", n, strerrorname_np(e));
  return 0;
}
