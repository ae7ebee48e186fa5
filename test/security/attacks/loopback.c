/* Listeners on the host: a TCP port on 127.0.0.1 (argv[1]) and an abstract unix socket (argv[2]). */
#include "attack.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  expect_fail("connect 127.0.0.1", connect(s, (struct sockaddr *)&a, sizeof a));
  int s6 = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = a.sin_port, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  note("connect ::1", "rc=%d", connect(s6, (struct sockaddr *)&a6, sizeof a6));
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  size_t n = strlen(argv[2]);
  memcpy(un.sun_path + 1, argv[2], n);
  /* Abstract names are compared on the address length: try the exact name and the padded form
   * (libuv, hence Node.js, binds the whole sun_path). */
  long rc = connect(u, (struct sockaddr *)&un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n));
  if (rc < 0) {
    close(u);
    u = socket(AF_UNIX, SOCK_STREAM, 0);
    rc = connect(u, (struct sockaddr *)&un, sizeof un);
  }
  expect_fail("connect abstract unix", rc);
  return finish();
}
