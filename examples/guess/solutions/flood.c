/* Guesses 500000 over and over without reading a reply. */
#include <stdio.h>
int main(void) {
  for (;;) fputs("500000\n", stdout);
}
