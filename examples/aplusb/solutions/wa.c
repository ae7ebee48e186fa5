/* Off by one when a is 0: wrong answer on that test only. */
#include <stdio.h>
int main(void) {
  long long a, b;
  if (scanf("%lld %lld", &a, &b) != 2) return 1;
  printf("%lld\n", a + b + (a == 0));
}
