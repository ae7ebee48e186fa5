/* Binary search: at most 20 guesses. */
#include <stdio.h>
int main(void) {
  long lo = 1, hi = 1000000;
  char reply[8];
  while (lo <= hi) {
    long g = lo + (hi - lo) / 2;
    printf("%ld\n", g);
    fflush(stdout);
    if (scanf("%7s", reply) != 1 || reply[0] == '=') return 0;
    if (reply[0] == '<') hi = g - 1;
    else lo = g + 1;
  }
  return 0;
}
