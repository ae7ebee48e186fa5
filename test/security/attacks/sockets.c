/* Socket families a box must not open: raw IP, packet, netlink (every protocol), and others. */
#include "attack.h"
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(void) {
  char what[64];
  expect_fail("socket(AF_INET, SOCK_RAW)", socket(AF_INET, SOCK_RAW, IPPROTO_RAW));
  expect_fail("socket(AF_INET6, SOCK_RAW)", socket(AF_INET6, SOCK_RAW, IPPROTO_RAW));
  expect_fail("socket(AF_PACKET, SOCK_RAW)", socket(AF_PACKET, SOCK_RAW, 0));
  expect_fail("socket(AF_PACKET, SOCK_DGRAM)", socket(AF_PACKET, SOCK_DGRAM, 0));
  for (int proto = 0; proto < 23; proto++) {
    snprintf(what, sizeof what, "socket(AF_NETLINK, proto %d)", proto);
    expect_fail(what, socket(AF_NETLINK, SOCK_RAW, proto));
  }
  int fams[] = {AF_KEY, AF_ALG, AF_VSOCK, AF_BLUETOOTH, AF_CAN, AF_TIPC, AF_RDS, AF_XDP, AF_PPPOX, AF_X25, AF_AX25};
  for (unsigned i = 0; i < sizeof fams / sizeof *fams; i++) {
    snprintf(what, sizeof what, "socket(family %d)", fams[i]);
    expect_fail(what, socket(fams[i], SOCK_RAW, 0) < 0 ? (socket(fams[i], SOCK_DGRAM, 0) < 0 ? socket(fams[i], SOCK_STREAM, 0) : 0) : 0);
  }
  return finish();
}
