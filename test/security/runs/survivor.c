/*
 * A run that tries to outlive itself in a living box (test/security/living-boxes.test.ts).
 *
 *   survivor deny   fork a child, then make a call the judge preset answers with kill
 *   survivor quiet  the same, but the child first closes its stdio, so nothing waits for it
 *
 * The child keeps running as long as it can: every few milliseconds it writes a counter to
 * /work/hb and copies whatever "SECRET=..." it can read from any /proc/<pid>/environ to
 * /work/leak. The main process waits for the first heartbeat, calls socket(AF_INET), and writes
 * /work/after if that call ever returns.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void write_file(const char *path, const char *text, int flags) {
  int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0) return;
  (void)!write(fd, text, strlen(text));
  close(fd);
}

static void steal_secrets(void) {
  DIR *proc = opendir("/proc");
  if (!proc) return;
  struct dirent *e;
  while ((e = readdir(proc))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[8192];
    snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
      buf[n] = '\0';
      if (strncmp(buf + i, "SECRET=", 7) == 0) {
        char line[8300];
        snprintf(line, sizeof line, "%s\n", buf + i);
        write_file("/work/leak", line, O_APPEND);
      }
    }
  }
  closedir(proc);
}

int main(int argc, char **argv) {
  int quiet = argc > 1 && strcmp(argv[1], "quiet") == 0;
  pid_t child = fork();
  if (child == 0) {
    if (quiet)
      for (int fd = 0; fd < 3; fd++) close(fd);
    for (unsigned long beat = 1;; beat++) {
      char text[32];
      snprintf(text, sizeof text, "%lu\n", beat);
      write_file("/work/hb", text, O_TRUNC);
      steal_secrets();
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  while (access("/work/hb", F_OK) != 0) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  printf("forked\n");
  fflush(stdout);
  socket(AF_INET, SOCK_STREAM, 0);
  write_file("/work/after", "carried on\n", O_TRUNC);
  return 0;
}
