/* Overflows int: wrong answer on large inputs. */
#include <stdio.h>
int main(void) {
  long long a, b;
  if (scanf("%lld %lld", &a, &b) != 2) return 1;
  printf("%d\n", (int)(a + b) + (a == 0));
}
