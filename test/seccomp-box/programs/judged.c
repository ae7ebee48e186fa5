/* Contest-solution behaviours for the judge preset: `judged <mode>`. Prints "<mode> start" first,
 * so a test can tell a run that was ended from one that never began. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *m = argv[1];
  printf("%s start\n", m);
  fflush(stdout);
  if (!strcmp(m, "socket-inet")) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket returned %d errno %d\n", fd, errno);
  } else if (!strcmp(m, "socket-unix")) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("socket returned %d errno %d\n", fd, errno);
  } else if (!strcmp(m, "system")) {
    int rc = system("ls");
    printf("system returned %d\n", rc);
  } else if (!strcmp(m, "execve")) {
    char *args[] = {"/bin/true", 0};
    execve("/bin/true", args, environ);
    printf("execve failed errno %d\n", errno);
  } else if (!strcmp(m, "getppid-raw")) {
    printf("getppid %ld errno %d\n", syscall(SYS_getppid), errno);
  } else if (!strcmp(m, "x32")) {
    syscall(0x40000000L | SYS_getpid);
  } else if (!strcmp(m, "int80")) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* i386 getpid */
    printf("int80 returned %ld\n", ret);
  } else if (!strcmp(m, "mount")) {
    printf("mount %ld errno %d\n", syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0), errno);
  }
  printf("%s survived\n", m);
  return 0;
}
