#include "netlink.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>

#include "netns.h"

namespace sandcell {
namespace {

// One request at a time, built in place: a header, a fixed part, then attributes (some nested).
class Request {
 public:
  Request(uint16_t type, uint16_t flags) {
    memset(buf_, 0, sizeof buf_);
    hdr()->nlmsg_len = NLMSG_LENGTH(0);
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  }
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }
  void* put(const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (at + len > sizeof buf_) {
      overflow_ = true;
      return buf_;
    }
    if (data) memcpy(buf_ + at, data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + len);
    return buf_ + at;
  }
  void attr(uint16_t type, const void* data, size_t len) {
    rtattr* a = static_cast<rtattr*>(put(nullptr, RTA_LENGTH(len)));
    if (overflow_) return;
    a->rta_type = type;
    a->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    memcpy(RTA_DATA(a), data, len);
  }
  void str(uint16_t type, const char* s) { attr(type, s, strlen(s) + 1); }
  void u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  // Opens a nested attribute; close() sets its length to cover what was added since.
  size_t open(uint16_t type) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    rtattr* a = static_cast<rtattr*>(put(nullptr, RTA_LENGTH(0)));
    if (!overflow_) a->rta_type = type;
    return at;
  }
  void close(size_t at) {
    if (overflow_) return;
    reinterpret_cast<rtattr*>(buf_ + at)->rta_len = static_cast<uint16_t>(hdr()->nlmsg_len - at);
  }

  // Sends it and reads the kernel's answer: 0, or -errno. `index` (if given) receives the
  // interface index of an RTM_NEWLINK answer (a RTM_GETLINK request).
  int exchange(int fd, int* index = nullptr) {
    if (overflow_) return -EMSGSIZE;
    // Boxes are attached on several worker threads at once: each request keeps its own number.
    const uint32_t seq = hdr()->nlmsg_seq = seq_.fetch_add(1, std::memory_order_relaxed) + 1;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do n = sendto(fd, buf_, hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    alignas(nlmsghdr) char reply[8192];
    for (;;) {
      do n = recv(fd, reply, sizeof reply, 0);
      while (n < 0 && errno == EINTR);
      if (n < 0) return -errno;
      int len = static_cast<int>(n);
      for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq) continue;
        if (h->nlmsg_type == NLMSG_ERROR) return static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        if (h->nlmsg_type == RTM_NEWLINK && index) *index = static_cast<ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
      }
    }
  }

 private:
  alignas(nlmsghdr) char buf_[1024];
  bool overflow_ = false;
  static inline std::atomic<uint32_t> seq_{0};
};

int link_index(int fd, const char* name, int* index) {
  Request r(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  r.put(&ifi, sizeof ifi);
  r.str(IFLA_IFNAME, name);
  *index = 0;
  int err = r.exchange(fd, index);
  return err < 0 ? err : (*index > 0 ? 0 : -ENODEV);
}

int set_up(int fd, int index) {
  Request r(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  r.put(&ifi, sizeof ifi);
  return r.exchange(fd);
}

}  // namespace

int attach_veth(int network_nl, int box_nl, int box_pid, const char* bridge, const char* host_if, uint32_t address, int prefix,
                const char** step) {
  // A kernel that never answers must not hang the caller's thread.
  timeval tv{5, 0};
  setsockopt(network_nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(box_nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  *step = "the network's bridge";
  int br = 0;
  int err = link_index(network_nl, bridge, &br);
  if (err < 0) return err;

  *step = "the veth pair";
  {
    Request r(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_flags = IFF_UP;
    ifi.ifi_change = IFF_UP;
    r.put(&ifi, sizeof ifi);
    r.str(IFLA_IFNAME, host_if);
    r.u32(IFLA_MASTER, static_cast<uint32_t>(br));
    size_t info = r.open(IFLA_LINKINFO);
    r.str(IFLA_INFO_KIND, "veth");
    size_t data = r.open(IFLA_INFO_DATA);
    size_t peer = r.open(VETH_INFO_PEER);
    ifinfomsg peer_ifi{};
    peer_ifi.ifi_family = AF_UNSPEC;
    r.put(&peer_ifi, sizeof peer_ifi);
    r.str(IFLA_IFNAME, "eth0");
    r.u32(IFLA_NET_NS_PID, static_cast<uint32_t>(box_pid));
    r.close(peer);
    r.close(data);
    r.close(info);
    err = r.exchange(network_nl);
    if (err < 0) return err;
  }

  *step = "the box's eth0";
  int eth = 0;
  err = link_index(box_nl, "eth0", &eth);
  if (err < 0) return err;

  *step = "the box's address";
  {
    Request r(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_INET;
    ifa.ifa_prefixlen = static_cast<unsigned char>(prefix);
    ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    ifa.ifa_index = static_cast<uint32_t>(eth);
    r.put(&ifa, sizeof ifa);
    r.attr(IFA_LOCAL, &address, sizeof address);
    r.attr(IFA_ADDRESS, &address, sizeof address);
    err = r.exchange(box_nl);
    if (err < 0) return err;
  }

  *step = "bringing eth0 up";
  return set_up(box_nl, eth);
}

int attach_box(int network_ns, int box_pidfd, int box_pid, const char* host_if, uint32_t address, int prefix, const char** step) {
  *step = "a netlink socket in the network's namespace";
  int network_nl = box_net_socket(network_ns, BoxSocket::kNetlink, 0);
  if (network_nl < 0) return network_nl;
  *step = "a netlink socket in the box's namespace";
  int box_nl = box_net_socket(box_pidfd, BoxSocket::kNetlink, 0);
  int err = box_nl < 0 ? box_nl : attach_veth(network_nl, box_nl, box_pid, "br0", host_if, address, prefix, step);
  close(network_nl);
  if (box_nl >= 0) close(box_nl);
  return err;
}

}  // namespace sandcell
