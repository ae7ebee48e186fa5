// A box's /dev made once per process: a small tmpfs holding the device nodes a box may use, a few
// symlinks and empty dirs, owned by the host's user namespace, read-only, never attached to any
// mount tree. Each box gets a clone of it (open_tree) that its init moves into place, one mount
// in place of a tmpfs and a bind per device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sandcell {

struct DeviceTreeSpec {
  struct Node {
    std::string name;
    uint32_t major;
    uint32_t minor;
  };
  struct Link {
    std::string name;
    std::string target;
  };
  std::vector<Node> nodes;  // character devices, mode 0666, owned by host root
  std::vector<Link> links;
  std::vector<std::string> dirs;  // mode 0755, mount points for the box's own mounts
  uint32_t uid = 0;  // owner of the tree's root, links and dirs: the host id of the box's root
  uint32_t gid = 0;
};

// 0 and the tree's fd in *fd, or an errno with the failed step in *stage.
int make_device_tree(const DeviceTreeSpec& spec, int* fd, std::string* stage);

// A detached copy of the tree (close-on-exec), or -errno.
int clone_device_tree(int tree_fd);

}  // namespace sandcell
