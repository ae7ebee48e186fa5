/* Writes to /proc/sys, /proc's other writable host knobs and /sys. Every write writes a value
 * that changes nothing (the current one, or a harmless sysrq help request is NOT used: only
 * same-value writes), so a hole does no harm to the host. */
#include "attack.h"
#include <fcntl.h>

static void same_value(const char *path) {
  char buf[256] = {0};
  int fd = open(path, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) {
    note(path, "not readable: %s", strerrorname_np(errno));
    n = 0;
  }
  /* "[always] madvise never" style files: write the selected word. */
  char *sel = strchr(buf, '['), *end = sel ? strchr(sel, ']') : NULL;
  char *val = buf;
  if (sel && end) {
    *end = 0;
    val = sel + 1;
    n = end - val;
  }
  fd = open(path, O_WRONLY);
  if (fd < 0) {
    note(path, "open for writing: %s", strerrorname_np(errno));
    return;
  }
  ssize_t w = write(fd, val, (size_t)n);
  int e = errno;
  close(fd);
  if (w >= 0) hole(path, "wrote %zd bytes", w);
  else note(path, "write: %s", strerrorname_np(e));
}

int main(void) {
  const char *paths[] = {"/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname", "/proc/sys/kernel/core_pattern",
                         "/proc/sys/kernel/modprobe", "/proc/sys/vm/overcommit_memory", "/proc/sys/net/ipv4/ip_forward",
                         "/proc/sys/fs/file-max", "/proc/sys/user/max_user_namespaces", "/proc/sysrq-trigger",
                         "/proc/self/oom_score_adj", "/proc/1/oom_score_adj", "/proc/self/attr/current",
                         "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper",
                         "/sys/fs/cgroup/cgroup.procs", "/sys/power/state"};
  for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
    /* oom_score_adj of itself may be raised by anyone: that is not a host effect. */
    if (strcmp(paths[i], "/proc/self/oom_score_adj") == 0) continue;
    /* sysrq-trigger takes commands, not settings: only see whether it opens for writing. */
    if (strcmp(paths[i], "/proc/sysrq-trigger") == 0) {
      int fd = open(paths[i], O_WRONLY);
      if (fd >= 0) hole(paths[i], "opened for writing");
      else note(paths[i], "%s", strerrorname_np(errno));
      if (fd >= 0) close(fd);
      continue;
    }
    same_value(paths[i]);
  }
  return finish();
}
