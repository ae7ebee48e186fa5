/* An ordinary C program: threads, file I/O in /tmp, a pipe, fork + exec of a child. Prints one
 * line per step; the tests compare the whole output. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long sums[4];
static void *work(void *arg) {
  long i = (long)arg, s = 0;
  for (long k = 1; k <= 1000; k++) s += k * (i + 1);
  sums[i] = s;
  return 0;
}

int main(void) {
  printf("hello from C\n");
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    if (pthread_create(&t[i], 0, work, (void *)i) != 0) return 10;
  long total = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], 0);
    total += sums[i];
  }
  printf("threads %ld\n", total);

  FILE *f = fopen("/tmp/c-file.txt", "w");
  if (!f) return 11;
  fprintf(f, "written in /tmp\n");
  fclose(f);
  char line[64] = {0};
  f = fopen("/tmp/c-file.txt", "r");
  if (!f || !fgets(line, sizeof line, f)) return 12;
  fclose(f);
  printf("file %s", line);

  int p[2];
  if (pipe(p) != 0) return 13;
  pid_t pid = fork();
  if (pid < 0) return 14;
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl("/bin/echo", "echo", "child via pipe", (char *)0);
    _exit(127);
  }
  close(p[1]);
  char buf[64] = {0};
  ssize_t n = read(p[0], buf, sizeof buf - 1);
  int st = 0;
  waitpid(pid, &st, 0);
  printf("pipe %.*s exit %d\n", (int)(n > 0 ? n : 0), buf, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  fflush(stdout);
  return system("echo system ok") == 0 ? 0 : 15;
}
