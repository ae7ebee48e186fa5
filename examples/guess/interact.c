/*
 * interact <input>: holds the number from the input file and answers at most 30 guesses read
 * from stdin. Exit 0 when it was guessed, 1 when not (no guess, not a number, too many guesses).
 */
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2) return 3;
  FILE *in = fopen(argv[1], "r");
  long n;
  if (!in || fscanf(in, "%ld", &n) != 1) return 3;
  for (int q = 0; q < 30; q++) {
    long g;
    if (scanf("%ld", &g) != 1) return 1;
    if (g == n) {
      puts("=");
      fflush(stdout);
      return 0;
    }
    puts(n < g ? "<" : ">");
    fflush(stdout);
  }
  return 1;
}
