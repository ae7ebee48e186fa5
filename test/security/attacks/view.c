/* What the box can see, printed for the test to judge: every process (pid and command line),
 * every mount point, every open descriptor and its target, and the process's credentials. */
#include "attack.h"
#include <dirent.h>
#include <fcntl.h>

int main(void) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  char path[512], buf[4096];
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : 0;
    if (fd >= 0) close(fd);
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] == 0) buf[i] = ' ';
    printf("proc %s %.*s\n", e->d_name, n > 0 ? (int)n : 0, buf);
  }
  if (d) closedir(d);
  FILE *m = fopen("/proc/self/mountinfo", "r");
  while (m && fgets(buf, sizeof buf, m)) {
    char mp[4096];
    if (sscanf(buf, "%*d %*d %*s %*s %4095s", mp) == 1) printf("mount %s\n", mp);
  }
  if (m) fclose(m);
  d = opendir("/proc/self/fd");
  int self = d ? dirfd(d) : -1;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    printf("fd %s %.*s\n", e->d_name, n > 0 ? (int)n : 0, buf);
  }
  if (d) closedir(d);
  FILE *s = fopen("/proc/self/status", "r");
  while (s && fgets(buf, sizeof buf, s)) {
    if (!strncmp(buf, "Cap", 3) || !strncmp(buf, "Uid", 3) || !strncmp(buf, "Gid", 3) || !strncmp(buf, "NoNewPrivs", 10) ||
        !strncmp(buf, "Seccomp:", 8) || !strncmp(buf, "Groups", 6))
      printf("status %s", buf);
  }
  if (s) fclose(s);
  return 0;
}
