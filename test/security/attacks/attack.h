/*
 * Shared by the attack programs. Each program tries one kind of escape from inside the box and
 * prints one line per attempt: "HOLE <what>: <detail>" when the attempt worked (the box is
 * broken), "ok <what>: <errno or reason>" when it failed. It exits 3 when any hole was found,
 * 0 otherwise, so a test can assert both the exit code and the lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int holes = 0;

__attribute__((format(printf, 2, 3))) static void hole(const char *what, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("HOLE %s: ", what);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  holes++;
}

/* A call that must fail: rc < 0 is fine (prints errno), anything else is a hole. */
__attribute__((unused)) static void expect_fail(const char *what, long rc) {
  int e = errno;
  if (rc < 0) printf("ok %s: %s\n", what, strerrorname_np(e) ? strerrorname_np(e) : strerror(e));
  else hole(what, "succeeded (rc=%ld)", rc);
  fflush(stdout);
}

__attribute__((unused)) static void note(const char *what, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("ok %s: ", what);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

__attribute__((unused)) static int finish(void) {
  printf("holes=%d\n", holes);
  fflush(stdout);
  return holes ? 3 : 0;
}
