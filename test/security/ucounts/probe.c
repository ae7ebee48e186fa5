// Asks once for one more of a per-user kernel count, as whoever runs it: prints "ok" or the
// errno's name, and gives back what it got. "owner <pid>" prints the host uid owning the user
// namespace of process <pid>.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/nsfs.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int report(int ok) {
  puts(ok ? "ok" : strerrorname_np(errno));
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "owner") == 0) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/ns/user", argv[2]);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uid_t uid;
    if (fd < 0 || ioctl(fd, NS_GET_OWNER_UID, &uid) < 0) return report(0);
    printf("%u\n", uid);
    return 0;
  }
  if (argc != 2) return 2;
  if (strcmp(argv[1], "inotify") == 0) return report(inotify_init1(IN_CLOEXEC) >= 0);
  if (strcmp(argv[1], "mqueue") == 0) {
    char name[64];
    snprintf(name, sizeof name, "/sandcell-probe-%d", getpid());
    struct mq_attr a = {0};
    a.mq_maxmsg = 10;
    a.mq_msgsize = 8192;
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    if (q >= 0) mq_unlink(name);
    return report(q >= 0);
  }
  if (strcmp(argv[1], "signals") == 0) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    union sigval v = {0};
    return report(sigqueue(getpid(), SIGRTMIN, v) == 0);
  }
  return 2;
}
