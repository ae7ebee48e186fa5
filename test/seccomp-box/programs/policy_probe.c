/* For custom policies: `policy_probe getpid` prints the errno of a raw getpid (glibc does not cache
 * it, but the raw call makes sure it reaches the kernel); `policy_probe sendmsg-fd4` puts one end of
 * a socketpair at fd 4 (the fd sandcell's own report socket has before the execve) and sends on it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  printf("%s start\n", argv[1]);
  fflush(stdout);
  if (!strcmp(argv[1], "getpid")) {
    errno = 0;
    long r = syscall(SYS_getpid);
    printf("getpid rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
  } else if (!strcmp(argv[1], "sendmsg-fd4")) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 3;
    /* move both ends above 10 first: socketpair itself may have returned 4 */
    int a = fcntl(sv[0], F_DUPFD, 10), b = fcntl(sv[1], F_DUPFD, 10);
    close(sv[0]);
    close(sv[1]);
    if (a < 0 || b < 0 || dup2(a, 4) != 4) return 3;
    char c = 'x';
    struct iovec iov = {&c, 1};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    long r = sendmsg(4, &msg, MSG_NOSIGNAL);
    printf("sendmsg rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
  } else if (!strcmp(argv[1], "getppid")) {
    printf("getppid %ld\n", syscall(SYS_getppid));
  }
  return 0;
}
