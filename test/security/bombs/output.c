/* 1 GiB of output on stdout, written as fast as the pipe takes it. */
#include <string.h>
#include <unistd.h>
int main(void) {
  static char buf[1 << 16];
  memset(buf, 'x', sizeof buf);
  for (long total = 0; total < (1L << 30);) {
    ssize_t n = write(1, buf, sizeof buf);
    if (n <= 0) return 1;
    total += n;
  }
  return 0;
}
