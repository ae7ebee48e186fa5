/*
 * check <input> <output> <answer>: the output must be one number within 1e-6 of the answer,
 * absolute or relative. Exit 0 accepted, 1 wrong answer, 2 presentation error (not one number).
 */
#include <math.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 4) return 3;
  FILE *out = fopen(argv[2], "r"), *ans = fopen(argv[3], "r");
  if (!out || !ans) return 3;
  double want, got;
  char extra;
  if (fscanf(ans, "%lf", &want) != 1) return 3;
  if (fscanf(out, "%lf", &got) != 1 || fscanf(out, " %c", &extra) == 1) return 2;
  if (!isfinite(got)) return 1;
  return fabs(got - want) <= 1e-6 * fmax(1.0, fabs(want)) ? 0 : 1;
}
