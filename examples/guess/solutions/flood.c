/* Guesses 1 over and over without reading a reply. */
#include <stdio.h>
int main(void) {
  for (;;) fputs("1\n", stdout);
}
