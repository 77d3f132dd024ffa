// A wasmflow flavor plugin in JavaScript: one decision tree saved as JSON (flavor `js_tree`).
//
// The tree uses scikit-learn's array layout (`tree_.children_left`, `children_right`, `feature`,
// `threshold`, `value`), so a fitted DecisionTreeRegressor or DecisionTreeClassifier exports to it
// with a few lines of Python; see README.md.  At node `i` a row goes left when
// `x[feature[i]] <= threshold[i]` and stops at a leaf (`children_left[i] == -1`).
//
// Built with `jco componentize` (ComponentizeJS on StarlingMonkey) against the world in
// ../wit/world.wit, which is wasmflow's `flavor-plugin` plus the WASI filesystem import used to
// read the model file from /model.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { log } from 'wasmflow:plugin/host@0.1.0';

const PLUGIN_VERSION = '0.1.0';
const FLAVOR = 'js_tree';

/** An error the host turns into an HTTP status: `kind` is a WIT `error-kind`. */
class PluginError {
  constructor(kind, message) {
    this.kind = kind;
    this.message = message;
  }
}
const invalidInput = (message) => new PluginError('invalid-input', message);
const invalidModel = (message) => new PluginError('invalid-model', message);
const unsupported = (message) => new PluginError('unsupported', message);

/**
 * Runs `f`, handing a `PluginError` to the host as the function's `err` result and turning any
 * other exception (a bug) into an `internal` error instead of a trap.
 */
function guarded(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof PluginError) {
      throw { kind: e.kind, message: e.message };
    }
    throw { kind: 'internal', message: `js_tree: ${e && e.message ? e.message : String(e)}` };
  }
}

/** Reads a file of the model directory, which the host mounts read-only at /model. */
function readModelFile(relPath) {
  if (typeof relPath !== 'string' || relPath === '' || relPath.startsWith('/') ||
      relPath.split('/').includes('..')) {
    throw invalidModel(`bad model file path '${relPath}': expected a path inside the model directory`);
  }
  const preopen = getDirectories().find(([, guestPath]) => guestPath === '/model');
  if (!preopen) {
    throw invalidModel('the host did not mount the model directory at /model');
  }
  let file;
  try {
    file = preopen[0].openAt({ symlinkFollow: true }, relPath, {}, { read: true });
  } catch (e) {
    throw invalidModel(`cannot open '${relPath}': ${e && e.payload !== undefined ? e.payload : e}`);
  }
  const chunks = [];
  let offset = 0n;
  let total = 0;
  for (;;) {
    const [bytes, eof] = file.read(65536n, offset);
    chunks.push(bytes);
    total += bytes.length;
    offset += BigInt(bytes.length);
    if (eof || bytes.length === 0) break;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/** Checks the tree's arrays and returns the model, ready to predict. */
function parseTree(text, fileName) {
  let t;
  try {
    t = JSON.parse(text);
  } catch (e) {
    throw invalidModel(`bad '${fileName}': ${e.message}`);
  }
  const bad = (why) => invalidModel(`bad '${fileName}': ${why}`);
  if (!Array.isArray(t.features) || t.features.some((f) => typeof f !== 'string')) {
    throw bad("'features' must be a list of column names");
  }
  const task = t.task ?? 'regression';
  if (task !== 'regression' && task !== 'classification') {
    throw bad(`'task' must be 'regression' or 'classification', not '${task}'`);
  }
  const n = Array.isArray(t.children_left) ? t.children_left.length : 0;
  if (n === 0) throw bad("'children_left' must be a non-empty list");
  for (const key of ['children_right', 'feature', 'threshold', 'value']) {
    if (!Array.isArray(t[key]) || t[key].length !== n) {
      throw bad(`'${key}' must be a list of ${n} entries, like 'children_left'`);
    }
  }
  const left = Int32Array.from(t.children_left);
  const right = Int32Array.from(t.children_right);
  const feature = Int32Array.from(t.feature);
  const threshold = Float64Array.from(t.threshold);
  for (let i = 0; i < n; i++) {
    if (left[i] === -1) continue;
    if (left[i] <= i || left[i] >= n || right[i] <= i || right[i] >= n) {
      throw bad(`node ${i} has children ${left[i]} and ${right[i]} outside ${i + 1}..${n - 1}`);
    }
    if (feature[i] < 0 || feature[i] >= t.features.length) {
      throw bad(`node ${i} splits on feature ${feature[i]} of ${t.features.length}`);
    }
  }
  const classes = task === 'classification' ? t.classes : undefined;
  if (task === 'classification') {
    if (!Array.isArray(classes) || classes.length === 0) {
      throw bad("a classification tree needs 'classes'");
    }
    if (t.value.some((v) => !Array.isArray(v) || v.length !== classes.length)) {
      throw bad(`every 'value' entry must hold one weight per class (${classes.length})`);
    }
  } else if (t.value.some((v) => !Array.isArray(v) || v.length !== 1)) {
    throw bad("every 'value' entry of a regression tree must be a list of one number");
  }
  return {
    features: t.features,
    task,
    left,
    right,
    feature,
    threshold,
    value: t.value,
    classes,
    numericClasses: classes !== undefined && classes.every((c) => typeof c === 'number'),
    output: typeof t.output === 'string' ? t.output : 'prediction',
    // scikit-learn compares float32 copies of the inputs with the thresholds.
    float32Inputs: t.float32_inputs === true,
  };
}

/** Converts one WIT `values` variant to a list of numbers, or undefined for non-numbers. */
function toNumbers(values) {
  switch (values.tag) {
    case 'float64':
    case 'float32':
    case 'int32':
      return values.val;
    case 'int64':
      return Float64Array.from(values.val, (v) => Number(v));
    default:
      return undefined;
  }
}

/** The input as one array of numbers per model feature, plus the number of rows. */
function featureColumns(model, input) {
  const names = model.features;
  if (input.tag === 'table') {
    const cols = names.map((name) => {
      const col = input.val.find((c) => c.name === name);
      if (!col) throw invalidInput(`missing column '${name}'`);
      const nums = toNumbers(col.values);
      if (!nums) {
        throw invalidInput(`column '${name}' has ${col.values.tag} values; expected numbers`);
      }
      return nums;
    });
    return { cols, rows: cols.length ? cols[0].length : 0 };
  }
  // A single 2-D tensor [rows, features], as `instances` and `inputs` payloads give.
  if (input.val.length !== 1) {
    throw invalidInput(`expected one tensor, got ${input.val.length}`);
  }
  const tensor = input.val[0];
  const shape = Array.from(tensor.shape, (d) => Number(d));
  const nums = toNumbers(tensor.values);
  if (!nums) throw invalidInput(`tensor has ${tensor.values.tag} values; expected numbers`);
  const width = names.length;
  if (shape.length !== 2 || shape[1] !== width || nums.length !== shape[0] * width) {
    throw invalidInput(`tensor shape [${shape.join(', ')}] does not match [rows, ${width}]`);
  }
  const rows = shape[0];
  const cols = names.map((_, j) => {
    const col = new Float64Array(rows);
    for (let r = 0; r < rows; r++) col[r] = nums[r * width + j];
    return col;
  });
  return { cols, rows };
}

/** The leaf each row lands in. */
function leaves(model, cols, rows) {
  const out = new Int32Array(rows);
  const round = model.float32Inputs ? Math.fround : (x) => x;
  for (let r = 0; r < rows; r++) {
    let node = 0;
    while (model.left[node] !== -1) {
      const x = round(Number(cols[model.feature[node]][r]));
      if (Number.isNaN(x)) {
        throw invalidInput(`row ${r}: column '${model.features[model.feature[node]]}' is NaN`);
      }
      node = x <= model.threshold[node] ? model.left[node] : model.right[node];
    }
    out[r] = node;
  }
  return out;
}

/** What `predict` should return, from the request's parameters. */
function outputKind(model, params) {
  if (params === undefined || params === null) return 'label';
  let p;
  try {
    p = JSON.parse(params);
  } catch (e) {
    throw invalidInput(`bad params: ${e.message}`);
  }
  const out = p && p.output !== undefined ? p.output : 'label';
  if (out !== 'label' && out !== 'proba') {
    throw invalidInput(`params.output must be 'label' or 'proba', not '${out}'`);
  }
  if (out === 'proba' && model.task !== 'classification') {
    throw unsupported("params.output 'proba' needs a classification tree");
  }
  return out;
}

class Model {
  constructor(tree) {
    this.tree = tree;
  }

  static load(config) {
    return guarded(() => {
      let cfg;
      try {
        cfg = JSON.parse(config);
      } catch (e) {
        throw invalidModel(`bad load config: ${e.message}`);
      }
      const section = (cfg && cfg.section) || {};
      const fileName = section.data ?? 'tree.json';
      const tree = parseTree(readModelFile(fileName), fileName);
      log('info', `loaded a ${tree.task} tree with ${tree.left.length} nodes over ${tree.features.length} features`);
      return new Model(tree);
    });
  }

  signature() {
    const t = this.tree;
    const outType = t.task === 'classification' && !t.numericClasses ? 'string' : 'double';
    return JSON.stringify({
      inputs: t.features.map((name) => ({ name, type: 'double', required: true })),
      outputs: [{ name: t.output, type: outType, required: true }],
    });
  }

  predict(input, params) {
    return guarded(() => {
      const t = this.tree;
      const kind = outputKind(t, params);
      const { cols, rows } = featureColumns(t, input);
      const leaf = leaves(t, cols, rows);
      if (t.task === 'regression') {
        const y = Float64Array.from(leaf, (node) => t.value[node][0]);
        return { tag: 'table', val: [{ name: t.output, values: { tag: 'float64', val: y } }] };
      }
      // Class probabilities: the leaf's class weights, normalised.
      const proba = (node) => {
        const w = t.value[node];
        const sum = w.reduce((a, b) => a + b, 0);
        return w.map((v) => (sum > 0 ? v / sum : 0));
      };
      if (kind === 'proba') {
        const columns = t.classes.map((c, k) => ({
          name: String(c),
          values: { tag: 'float64', val: Float64Array.from(leaf, (node) => proba(node)[k]) },
        }));
        return { tag: 'table', val: columns };
      }
      // The label of the heaviest class, the first one on ties (numpy's argmax).
      const label = (node) => {
        const w = t.value[node];
        let best = 0;
        for (let k = 1; k < w.length; k++) if (w[k] > w[best]) best = k;
        return t.classes[best];
      };
      const values = t.numericClasses
        ? { tag: 'float64', val: Float64Array.from(leaf, (node) => label(node)) }
        : { tag: 'text', val: Array.from(leaf, (node) => String(label(node))) };
      return { tag: 'table', val: [{ name: t.output, values }] };
    });
  }
}

export const flavor = {
  info() {
    return {
      name: 'tree-js',
      version: PLUGIN_VERSION,
      loads: [FLAVOR],
      description: 'a single decision tree (scikit-learn layout, JSON), written in JavaScript',
    };
  },
  Model,
};
