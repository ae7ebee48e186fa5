/* Guesses 1, 2, 3, ...: out of questions long before a large number. */
#include <stdio.h>
int main(void) {
  char reply[8];
  for (long g = 1;; g++) {
    printf("%ld\n", g);
    fflush(stdout);
    if (scanf("%7s", reply) != 1 || reply[0] == '=') return 0;
  }
}
