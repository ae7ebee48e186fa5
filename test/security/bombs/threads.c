/* A million threads asked for: create until refused; print how many. */
#define _GNU_SOURCE /* strerrorname_np */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void *idle(void *a) {
  (void)a;
  for (;;) pause();
  return NULL;
}
int main(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int n = 0, rc = 0;
  for (; n < 1000000; n++) {
    pthread_t t;
    if ((rc = pthread_create(&t, &attr, idle, NULL)) != 0) break;
  }
  printf("created %d stopped %s\n", n, rc ? strerrorname_np(rc) : "none");
  fflush(stdout);
  return 0;
}
