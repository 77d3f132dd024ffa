// The model: a linear score over named features, read from a JSON file,
// {"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}: each row's prediction is
// bias + sum_i weights[i] * x_i. No WIT types here, so test_linear.c tests it natively.
#ifndef LINEAR_H
#define LINEAR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  size_t n_features;
  char **features;
  double *weights;
  double bias;
} linear_t;

// Parses the NUL-terminated JSON document into `m`; on failure returns false with a message
// in `why` (at most `why_len` bytes) and leaves nothing allocated.
bool linear_parse(const char *json, linear_t *m, char *why, size_t why_len);

// Adds weights[j] * x[r] to out[r] for each of `rows` rows: feature j's contribution.
void linear_add_feature(const linear_t *m, size_t j, const double *x, size_t rows, double *out);

void linear_free(linear_t *m);

#endif
