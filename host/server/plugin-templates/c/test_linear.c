// Native unit test: cc -o test_linear test_linear.c linear.c json.c && ./test_linear
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "linear.h"

int main(void) {
  linear_t m;
  char why[128];
  assert(linear_parse("{\"features\": [\"x1\", \"x2\"], \"weights\": [0.5, -1.0], \"bias\": 0.25}", &m, why,
                      sizeof why));
  assert(m.n_features == 2 && strcmp(m.features[1], "x2") == 0);
  double x1[] = {2, 4}, x2[] = {1, 0}, out[] = {m.bias, m.bias};
  linear_add_feature(&m, 0, x1, 2, out);
  linear_add_feature(&m, 1, x2, 2, out);
  assert(out[0] == 0.25 && out[1] == 2.25);
  linear_free(&m);
  assert(!linear_parse("{\"features\": [\"a\"], \"weights\": [1, 2], \"bias\": 0}", &m, why, sizeof why));
  assert(strcmp(why, "more weights than the 1 features") == 0);
  puts("test_linear: ok");
  return 0;
}
