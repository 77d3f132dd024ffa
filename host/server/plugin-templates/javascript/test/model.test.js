// Native unit tests: `npm test` (node's test runner; no component needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { toMatrix, parseParams, PluginError } from '../src/matrix.js';
import { Linear } from '../src/model.js';

const linear = new Linear({ features: ['x1', 'x2'], weights: [0.5, -1.0], bias: 0.25 });

test('scores columns by name', () => {
  const input = { tag: 'table', val: [
    { name: 'x2', values: { tag: 'float64', val: Float64Array.of(1, 0) } },
    { name: 'x1', values: { tag: 'int64', val: BigInt64Array.of(2n, 4n) } },
  ] };
  assert.deepEqual(Array.from(linear.score(toMatrix(input, linear.features))), [0.25, 2.25]);
});

test('scores a tensor with an offset', () => {
  const input = { tag: 'tensors', val: [
    { name: '', shape: BigInt64Array.of(1n, 2n), values: { tag: 'float64', val: Float64Array.of(2, 1) } },
  ] };
  assert.deepEqual(Array.from(linear.score(toMatrix(input, linear.features), 1)), [1.25]);
});

test('a missing column and bad params are invalid input', () => {
  const input = { tag: 'table', val: [{ name: 'x1', values: { tag: 'float64', val: Float64Array.of(1) } }] };
  assert.throws(() => toMatrix(input, linear.features), (e) =>
    e instanceof PluginError && e.message === "missing column 'x2'; the model's features are 'x1', 'x2'");
  assert.throws(() => parseParams('{"offset": "1"}', { offset: 0 }), PluginError);
});
