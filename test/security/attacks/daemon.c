/* Outliving the run: double-fork a daemon that ignores every catchable signal, leaves the
 * process group and session, and sleeps under a name the test looks for on the host; then exit. */
#include "attack.h"
#include <signal.h>
#include <sys/prctl.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  for (int i = 0; i < 4; i++) {
    if (fork() == 0) {
      setsid();
      if (fork() != 0) _exit(0);
      for (int s = 1; s < 65; s++) signal(s, SIG_IGN);
      prctl(PR_SET_PDEATHSIG, 0);
      execl("/bin/sleep", "sleep", argv[1], (char *)NULL);
      _exit(1);
    }
  }
  usleep(200 * 1000);
  printf("started daemons\n");
  return 0;
}
