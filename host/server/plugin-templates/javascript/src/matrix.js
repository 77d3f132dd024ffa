// The parts of the helpers that touch no WIT import, so that `node --test` runs them natively.

/** An error the host turns into an HTTP status: `kind` is a WIT `error-kind`. */
export class PluginError {
  constructor(kind, message) {
    this.kind = kind;
    this.message = message;
  }
}
export const invalidInput = (message) => new PluginError('invalid-input', message);
export const invalidModel = (message) => new PluginError('invalid-model', message);
export const unsupported = (message) => new PluginError('unsupported', message);

/**
 * The request's params (a JSON string or undefined) over `defaults`; an unknown name or a value
 * of another type than its default's is an invalid input.
 */
export function parseParams(params, defaults) {
  const out = { ...defaults };
  if (params === undefined || params === null) return out;
  let given;
  try {
    given = JSON.parse(params);
  } catch (e) {
    throw invalidInput(`bad params: ${e.message}`);
  }
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw invalidInput('bad params: expected a JSON object');
  }
  for (const [key, value] of Object.entries(given)) {
    if (!(key in defaults)) throw invalidInput(`unknown param '${key}'`);
    if (typeof value !== typeof defaults[key]) {
      throw invalidInput(`param '${key}' must be a ${typeof defaults[key]}, got ${JSON.stringify(value)}`);
    }
    out[key] = value;
  }
  return out;
}

/**
 * For each feature, the table column feeding it: by name, or by position when no column is
 * named like a feature and there are as many columns as features.
 */
export function matchFeatures(input, features) {
  if (input.tag !== 'table') throw invalidInput('expected a table of columns, got tensors');
  const found = features.map((f) => input.val.find((c) => c.name === f));
  if (found.every((c) => c !== undefined)) return found;
  if (found.every((c) => c === undefined) && input.val.length === features.length) return input.val;
  const missing = features.filter((f, i) => found[i] === undefined).slice(0, 10).map((f) => `'${f}'`);
  const known = features.slice(0, 20).map((f) => `'${f}'`).join(', ');
  throw invalidInput(
    `missing column${missing.length === 1 ? '' : 's'} ${missing.join(', ')}; the model's features are ${known}`);
}

function numbers(values, what) {
  switch (values.tag) {
    case 'float64':
    case 'float32':
    case 'int32':
      return values.val;
    case 'int64':
      return Float64Array.from(values.val, (v) => Number(v));
    case 'boolean':
      return Float64Array.from(values.val, (v) => (v ? 1 : 0));
    default:
      throw invalidInput(`${what} has ${values.tag} values; expected numbers`);
  }
}

/**
 * The data as a dense row-major Float64Array `{ rows, cols, values }` in the order of
 * `features`: a table's columns matched by `matchFeatures`, or one tensor [rows, features]
 * ([rows] for one feature). Missing values arrive as NaN; a text column goes through
 * `encode(featureIndex, value)` (an error without one).
 */
export function toMatrix(input, features, encode) {
  const cols = features.length;
  if (input.tag === 'table') {
    const columns = matchFeatures(input, features);
    const rows = columns.length ? columns[0].values.val.length : 0;
    const values = new Float64Array(rows * cols);
    columns.forEach((column, j) => {
      const x = column.values.tag === 'text' && encode
        ? column.values.val.map((s) => encode(j, s))
        : numbers(column.values, `column '${column.name}'`);
      if (x.length !== rows) throw invalidInput(`column '${column.name}' has ${x.length} values, not ${rows}`);
      for (let r = 0; r < rows; r++) values[r * cols + j] = x[r];
    });
    return { rows, cols, values };
  }
  if (input.val.length !== 1) throw invalidInput(`expected one tensor, got ${input.val.length}`);
  const tensor = input.val[0];
  const shape = Array.from(tensor.shape, (d) => Number(d));
  const x = numbers(tensor.values, `tensor '${tensor.name}'`);
  let rows;
  if (shape.length === 2 && shape[1] === cols && shape[0] * cols === x.length) rows = shape[0];
  else if (shape.length === 1 && cols === 1 && shape[0] === x.length) rows = shape[0];
  else throw invalidInput(`tensor shape [${shape.join(', ')}] does not match [rows, ${cols}]`);
  return { rows, cols, values: Float64Array.from(x) };
}

/** One value per row, answered as `{"predictions": [v0, v1, ...]}`. */
export function singleVector(values) {
  const val = Float64Array.from(values);
  return { tag: 'tensors', val: [{ name: '', shape: BigInt64Array.of(BigInt(val.length)), values: { tag: 'float64', val } }] };
}

/** A one-column table, answered as `{"predictions": [{name: v0}, ...]}`. */
export function singleColumn(name, values) {
  return { tag: 'table', val: [{ name, values: { tag: 'float64', val: Float64Array.from(values) } }] };
}
