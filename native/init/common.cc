// What every phase of the init uses: the report channel and a few careful I/O helpers.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "../fd_passing.h"
#include "init.h"

namespace sandcell::init {

[[noreturn]] void fail(const std::string& stage, int err) {
  wire::Report f{};
  f.kind = wire::kSetupFailed;
  f.err = err;
  snprintf(f.stage, sizeof f.stage, "%s", stage.c_str());
  (void)!write(wire::kReportFd, &f, sizeof f);
  _exit(127);
}

bool send_note(wire::ReportKind kind, const char* stage, int fd) {
  wire::Report note{};
  note.kind = kind;
  snprintf(note.stage, sizeof note.stage, "%s", stage);
  return fdpass::send_fds(wire::kReportFd, &note, sizeof note, &fd, 1) >= 0;
}

bool read_exact(int fd, char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = read(fd, buf + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

int last_cap() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 40;
  char buf[16] = {};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : 40;
}

int clear_caps() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return syscall(SYS_capset, &hdr, data) < 0 ? errno : 0;
}

}  // namespace sandcell::init
