/* Right number, but words around it: presentation error. */
#include <stdio.h>
int main(void) {
  long long a, b;
  if (scanf("%lld %lld", &a, &b) != 2) return 1;
  printf("%.9f is the answer\n", (double)a / (double)b);
}
