/* Writes digits without end: output limit exceeded. */
#include <stdio.h>
int main(void) {
  for (;;) putchar('1');
}
