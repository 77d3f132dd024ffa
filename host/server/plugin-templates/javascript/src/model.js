// The model: a linear score over named features, read from a JSON file,
// `{"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}`: each row's prediction is
// `bias + sum_i weights[i] * x_i`. No WIT imports, so `node --test` tests it natively.

export class Linear {
  constructor(doc) {
    const { features, weights, bias } = doc;
    if (!Array.isArray(features) || !Array.isArray(weights) || typeof bias !== 'number') {
      throw new Error('expected features, weights and bias');
    }
    if (weights.length !== features.length) {
      throw new Error(`${weights.length} weights for ${features.length} features`);
    }
    Object.assign(this, { features, weights, bias });
  }

  /** One score per row of the matrix `{ rows, cols, values }` (columns in feature order). */
  score(x, offset = 0) {
    const out = new Float64Array(x.rows);
    for (let r = 0; r < x.rows; r++) {
      let acc = this.bias + offset;
      for (let j = 0; j < x.cols; j++) acc += this.weights[j] * x.values[r * x.cols + j];
      out[r] = acc;
    }
    return out;
  }
}
