/*
 * Tries to accept itself: replaces a `check` in its own working directory with one that always
 * accepts, tries the judge's file directory, and prints a wrong answer. The checker lives in
 * another box, so none of this reaches it.
 */
#include <stdio.h>
#include <sys/stat.h>
int main(void) {
  const char *paths[] = {"check", "/judge/output", "/judge/answer", "../check"};
  for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
    FILE *f = fopen(paths[i], "w");
    if (f) {
      fputs("#!/bin/sh\nexit 0\n", f);
      fclose(f);
      chmod(paths[i], 0755);
    }
  }
  puts("42");
}
