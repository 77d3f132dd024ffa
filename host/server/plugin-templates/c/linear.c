#include "linear.h"

#include <stdio.h>
#include <stdlib.h>

#include "json.h"

bool linear_parse(const char *json, linear_t *m, char *why, size_t why_len) {
  *m = (linear_t){0};
  const char *features = json_get(json, "features");
  const char *weights = json_get(json, "weights");
  const char *bias = json_get(json, "bias");
  if (features == NULL || weights == NULL || bias == NULL || !json_number(bias, &m->bias)) {
    snprintf(why, why_len, "expected features, weights and bias");
    return false;
  }
  size_t n = 0;
  while (json_item(features, n) != NULL) n++;
  m->features = calloc(n ? n : 1, sizeof *m->features);
  m->weights = calloc(n ? n : 1, sizeof *m->weights);
  m->n_features = n;
  for (size_t i = 0; i < n; i++) {
    m->features[i] = json_string(json_item(features, i));
    const char *w = json_item(weights, i);
    if (m->features[i] == NULL || w == NULL || !json_number(w, &m->weights[i])) {
      snprintf(why, why_len, "feature %zu needs a name and a weight", i);
      linear_free(m);
      return false;
    }
  }
  if (json_item(weights, n) != NULL) {
    snprintf(why, why_len, "more weights than the %zu features", n);
    linear_free(m);
    return false;
  }
  return true;
}

void linear_add_feature(const linear_t *m, size_t j, const double *x, size_t rows, double *out) {
  for (size_t r = 0; r < rows; r++) out[r] += m->weights[j] * x[r];
}

void linear_free(linear_t *m) {
  for (size_t i = 0; i < m->n_features; i++) free(m->features[i]);
  free(m->features);
  free(m->weights);
  *m = (linear_t){0};
}
