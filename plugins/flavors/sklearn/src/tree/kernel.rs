//! Prediction kernels of the tree ensembles, on plain Rust structs (no skops in here).
//!
//! Every model is a list of [`Tree`]s whose leaves hold a small vector of f64 that is added
//! into a row of an output matrix. scikit-learn's own trees (`sklearn.tree._tree.Tree`) compare
//! the input cast to float32 with float64 thresholds; HistGradientBoosting's `TreePredictor`
//! compares the float64 input with float64 thresholds. Both send NaN down the side that the
//! node's `missing_go_to_left` names.
//!
//! Layout: one flat array of 24-byte nodes per tree, leaves numbered apart and their values in
//! one flat array; rows are processed in blocks with the trees in the outer loop over a block,
//! so that a tree's nodes stay in cache while the block's rows go through it. Nothing is
//! allocated per row.

/// Rows per block: the trees run in the outer loop over a block.
const BLOCK: usize = 64;

/// Rows walking a tree in lockstep.
const LANES: usize = 8;

/// One node. For a split: go left when `x <= threshold` (or when `x` is NaN and
/// `missing_left`); its children differ. A leaf is its own two children (so that several rows
/// can walk a tree in lockstep, those done staying put), splits on feature 0, and holds its
/// leaf number in `missing_left`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Node {
    pub threshold: f64,
    pub feature: u32,
    pub left: u32,
    pub right: u32,
    pub missing_left: u32,
}

/// One tree: its nodes (root first) and its leaves' values (`dim` per leaf), added into the
/// output row at `column..column + dim`.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    leaf_values: Vec<f64>,
    dim: usize,
    column: usize,
    /// HistGradientBoosting's categorical splits, when the tree has any (walked row by row).
    categorical: Option<Box<Categorical>>,
}

/// A 256-bit set of category codes (`sklearn.utils._bitset`: 8 × u32).
pub type Bitset = [u32; 8];

fn in_bitset(set: &Bitset, code: u8) -> bool {
    (set[usize::from(code / 32)] >> (code % 32)) & 1 == 1
}

/// The categorical splits of a tree: per node, an index into `splits` (`u32::MAX`: numeric).
#[derive(Clone, Debug)]
struct Categorical {
    per_node: Vec<u32>,
    /// (categories that go left, categories known for the split's feature)
    splits: Vec<(Bitset, Bitset)>,
}

/// A tree's structure in the form both scikit-learn formats hold it: per node, its children
/// (`is_leaf[i]` tells a leaf), split feature, threshold and missing-value side.
pub struct RawTree<'a> {
    pub left: &'a [i64],
    pub right: &'a [i64],
    pub feature: &'a [i64],
    pub threshold: &'a [f64],
    pub missing_left: &'a [u8],
    pub is_leaf: &'a [bool],
}

impl Tree {
    /// Builds a tree, checking everything the traversal relies on: children in range and
    /// numbered after their parent (so every walk ends), features below `n_features`, one
    /// `dim`-vector per node in `node_values` (only the leaves' are kept, mapped by `map`).
    pub fn new(
        raw: &RawTree<'_>,
        n_features: usize,
        node_values: &[f64],
        dim: usize,
        column: usize,
        mut map: impl FnMut(&[f64], &mut Vec<f64>),
    ) -> Result<Tree, String> {
        let n = raw.left.len();
        if n == 0 {
            return Err("a tree has no nodes".into());
        }
        if [
            raw.right.len(),
            raw.feature.len(),
            raw.threshold.len(),
            raw.missing_left.len(),
            raw.is_leaf.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err("a tree's node arrays differ in length".into());
        }
        if n_features == 0 {
            return Err("a tree model needs at least one feature".into());
        }
        if n > u32::MAX as usize / 2 || dim == 0 || node_values.len() != n.saturating_mul(dim) {
            return Err(format!(
                "a tree of {n} nodes has {} values, expected {} per node",
                node_values.len(),
                dim
            ));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut leaf_values = Vec::new();
        let mut leaves = 0u32;
        for i in 0..n {
            if raw.is_leaf[i] {
                map(&node_values[i * dim..(i + 1) * dim], &mut leaf_values);
                nodes.push(Node {
                    threshold: 0.0,
                    feature: 0,
                    left: i as u32,
                    right: i as u32,
                    missing_left: leaves,
                });
                leaves += 1;
                continue;
            }
            let child = |c: i64| -> Result<u32, String> {
                if c <= i as i64 || c >= n as i64 {
                    Err(format!(
                        "node {i} of a tree has a child {c} out of order or range"
                    ))
                } else {
                    Ok(c as u32)
                }
            };
            let left = child(raw.left[i])?;
            let right = child(raw.right[i])?;
            if left == right {
                return Err(format!("node {i} of a tree has the same two children"));
            }
            let f = raw.feature[i];
            if f < 0 || f as u64 >= n_features as u64 {
                return Err(format!(
                    "node {i} of a tree splits on feature {f}, the model has {n_features} features"
                ));
            }
            nodes.push(Node {
                threshold: raw.threshold[i],
                feature: f as u32,
                left,
                right,
                missing_left: u32::from(raw.missing_left[i] != 0),
            });
        }
        if leaf_values.len() != leaves as usize * dim {
            return Err("a tree's leaf values do not match its leaves".into());
        }
        Ok(Tree {
            nodes,
            leaf_values,
            dim,
            column,
            categorical: None,
        })
    }

    /// Makes node `i` a categorical split, as HistGradientBoosting's predictor reads one: a
    /// code (the input is the preprocessor's ordinal code) goes left when in `left`, right
    /// when in `known`, and down the missing side when NaN, negative or unknown.
    pub fn set_categorical(&mut self, i: usize, left: Bitset, known: Bitset) -> Result<(), String> {
        let n = self.nodes.len();
        match self.nodes.get(i) {
            Some(node) if node.left != node.right => {}
            _ => {
                return Err(format!(
                    "categorical split at node {i}, which is not a split"
                ));
            }
        }
        let c = self.categorical.get_or_insert_with(|| {
            Box::new(Categorical {
                per_node: vec![u32::MAX; n],
                splits: Vec::new(),
            })
        });
        c.per_node[i] = c.splits.len() as u32;
        c.splits.push((left, known));
        Ok(())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn column(&self) -> usize {
        self.column
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Multiplies every leaf value by `scale` (gradient boosting's learning rate: sklearn adds
    /// `scale * value` for each row, the same product).
    pub fn scale_leaves(&mut self, scale: f64) {
        for v in &mut self.leaf_values {
            *v *= scale;
        }
    }

    /// The leaf number that `row` reaches.
    #[inline(always)]
    fn leaf<T: Copy + Into<f64>>(&self, row: &[T]) -> usize {
        let nodes = &self.nodes[..];
        let mut node = nodes[0];
        while node.left != node.right {
            node = nodes[step(&node, row[node.feature as usize].into()) as usize];
        }
        node.missing_left as usize
    }

    /// The leaf numbers that four rows reach, walking the tree in lockstep: four independent
    /// chains of loads for the CPU to overlap.
    #[inline(always)]
    fn leaves_n<T: Copy + Into<f64>, const N: usize>(&self, rows: [&[T]; N]) -> [usize; N] {
        let nodes = &self.nodes[..];
        // node indices only (kept in registers / Wasm locals), not node copies
        let mut at = [0u32; N];
        loop {
            let mut moving = false;
            for j in 0..N {
                let node = &nodes[at[j] as usize];
                moving |= node.left != node.right;
                at[j] = step(node, rows[j][node.feature as usize].into());
            }
            if !moving {
                return at.map(|i| nodes[i as usize].missing_left as usize);
            }
        }
    }

    /// The leaf number that `row` reaches in a tree with categorical splits.
    fn leaf_categorical<T: Copy + Into<f64>>(&self, row: &[T], c: &Categorical) -> usize {
        let nodes = &self.nodes[..];
        let mut i = 0usize;
        loop {
            let node = nodes[i];
            if node.left == node.right {
                return node.missing_left as usize;
            }
            let x: f64 = row[node.feature as usize].into();
            let split = c.per_node[i];
            i = if split == u32::MAX {
                step(&node, x)
            } else {
                let (left, known) = &c.splits[split as usize];
                let missing = node.missing_left != 0;
                let go_left = if !(0.0..256.0).contains(&x) {
                    missing
                } else {
                    // sklearn casts the code to uint8 (truncating)
                    let code = x as u8;
                    if in_bitset(left, code) {
                        true
                    } else if in_bitset(known, code) {
                        false
                    } else {
                        missing
                    }
                };
                if go_left { node.left } else { node.right }
            } as usize;
        }
    }

    #[inline(always)]
    fn values(&self, leaf: usize) -> &[f64] {
        &self.leaf_values[leaf * self.dim..(leaf + 1) * self.dim]
    }

    /// The leaf values that `row` reaches.
    #[inline(always)]
    pub fn leaf_value<T: Copy + Into<f64>>(&self, row: &[T]) -> &[f64] {
        match &self.categorical {
            Some(c) => self.values(self.leaf_categorical(row, c)),
            None => self.values(self.leaf(row)),
        }
    }
}

/// The child of a split for the value `x` (a leaf's child is itself).
#[inline(always)]
fn step(node: &Node, x: f64) -> u32 {
    // bitwise, so that the step is a select and not a branch (splits are unpredictable)
    let go_left = (x <= node.threshold) | (x.is_nan() & (node.missing_left != 0));
    node.right ^ ((node.right ^ node.left) & (go_left as u32).wrapping_neg())
}

/// Adds, for every row of `x` (`n_features` values each), each tree's leaf values into that
/// row of `out` (`out_dim` values each), trees in order: `out[r][t.column + j] += leaf[j]`.
/// The trees' columns must fit in `out_dim` (checked when the model is built), and
/// `n_features` must be the trees' (at least 1).
pub fn accumulate<T: Copy + Into<f64>>(
    trees: &[Tree],
    x: &[T],
    n_features: usize,
    out: &mut [f64],
    out_dim: usize,
) {
    for (xb, ob) in x
        .chunks(BLOCK * n_features)
        .zip(out.chunks_mut(BLOCK * out_dim))
    {
        for t in trees {
            if t.categorical.is_some() {
                for (row, o) in xb
                    .chunks_exact(n_features)
                    .zip(ob.chunks_exact_mut(out_dim))
                {
                    add(o, t, t.leaf_value(row));
                }
                continue;
            }
            let mut rows = xb.chunks_exact(LANES * n_features);
            let mut outs = ob.chunks_exact_mut(LANES * out_dim);
            for (rn, on) in (&mut rows).zip(&mut outs) {
                let rs: [&[T]; LANES] =
                    std::array::from_fn(|j| &rn[j * n_features..(j + 1) * n_features]);
                let l = t.leaves_n(rs);
                for (j, o) in on.chunks_exact_mut(out_dim).enumerate() {
                    add(o, t, t.values(l[j]));
                }
            }
            for (row, o) in rows
                .remainder()
                .chunks_exact(n_features)
                .zip(outs.into_remainder().chunks_exact_mut(out_dim))
            {
                add(o, t, t.leaf_value(row));
            }
        }
    }
}

#[inline(always)]
fn add(o: &mut [f64], t: &Tree, v: &[f64]) {
    if t.dim == 1 {
        o[t.column] += v[0];
    } else {
        for (a, b) in o[t.column..t.column + t.dim].iter_mut().zip(v) {
            *a += b;
        }
    }
}

/// The input as scikit-learn's trees read it: cast to float32 (`validate_data(dtype=float32)`),
/// refusing what scikit-learn refuses: infinity, values too large for float32, and NaN where the
/// estimator does not take missing values.
pub fn to_f32(x: &[f64], nan_allowed: bool) -> Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(x.len());
    for &v in x {
        let f = v as f32;
        if f.is_infinite() {
            return Err(format!(
                "input contains infinity or a value too large for float32 ({v})"
            ));
        }
        if f.is_nan() && !nan_allowed {
            return Err(
                "input contains nan; this estimator does not take missing values \
                        (scikit-learn refuses them too)"
                    .into(),
            );
        }
        out.push(f);
    }
    Ok(out)
}

/// numpy's float64 sum of a contiguous vector (pairwise summation with 8 accumulators), so that
/// normalizations divide by the same sum as scikit-learn.
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = -0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// A tree classifier's leaf as `predict_proba` gives it: divided by its sum (a zero sum by 1).
pub fn normalize_into(v: &[f64], out: &mut Vec<f64>) {
    let mut s = np_sum(v);
    if s == 0.0 {
        s = 1.0;
    }
    out.extend(v.iter().map(|x| x / s));
}

/// `np.argmax` of a row: the first maximum (NaN counts as the maximum, as in numpy).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v.is_nan() {
            if !row[best].is_nan() {
                return i;
            }
        } else if v > row[best] {
            best = i;
        }
    }
    if row.first().is_some_and(|v| v.is_nan()) {
        0
    } else {
        best
    }
}

/// `scipy.special.expit`.
pub fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `scipy.special.logit` (scipy ≥ 1.14: log1p form near 1/2).
pub fn logit(p: f64) -> f64 {
    if !(0.3..=0.65).contains(&p) {
        (p / (1.0 - p)).ln()
    } else {
        let s = 2.0 * (p - 0.5);
        s.ln_1p() - (-s).ln_1p()
    }
}

/// `sklearn.utils.extmath.softmax` of each row of `raw` (`k` values each), in place.
pub fn softmax_rows(raw: &mut [f64], k: usize) {
    for row in raw.chunks_exact_mut(k) {
        let m =
            row.iter().copied().fold(
                f64::NEG_INFINITY,
                |a, b| {
                    if b > a || b.is_nan() { b } else { a }
                },
            );
        for v in row.iter_mut() {
            *v = (*v - m).exp();
        }
        let s = np_sum(row);
        for v in row.iter_mut() {
            *v /= s;
        }
    }
}

/// Binary probabilities from `p1 = f(raw)` as the losses' `predict_proba`: `[1 - p1, p1]`.
pub fn binary_proba(raw: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    for &r in raw {
        let p = f(r);
        out.push(1.0 - p);
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> Tree {
        // x0 <= 0.5 ? leaf 0 (value 1) : leaf 1 (value 2); NaN goes right
        let raw = RawTree {
            left: &[1, -1, -1],
            right: &[2, -1, -1],
            feature: &[0, -2, -2],
            threshold: &[0.5, -2.0, -2.0],
            missing_left: &[0, 0, 0],
            is_leaf: &[false, true, true],
        };
        Tree::new(&raw, 1, &[0.0, 1.0, 2.0], 1, 0, |v, o| {
            o.extend_from_slice(v)
        })
        .unwrap()
    }

    #[test]
    fn walks_and_accumulates() {
        let t = stump();
        let x = [0.5f64, 0.6, f64::NAN, -1.0];
        let mut out = vec![10.0; 4];
        accumulate(&[t.clone(), t], &x, 1, &mut out, 1);
        assert_eq!(out, vec![12.0, 14.0, 14.0, 12.0]);
    }

    #[test]
    fn refuses_cycles_and_bad_features() {
        let raw = RawTree {
            left: &[0, -1],
            right: &[1, -1],
            feature: &[0, -2],
            threshold: &[0.5, 0.0],
            missing_left: &[0, 0],
            is_leaf: &[false, true],
        };
        assert!(Tree::new(&raw, 1, &[0.0, 0.0], 1, 0, |v, o| o.extend_from_slice(v)).is_err());
        let raw = RawTree {
            left: &[1, -1, -1],
            right: &[2, -1, -1],
            feature: &[3, -2, -2],
            threshold: &[0.5, 0.0, 0.0],
            missing_left: &[0, 0, 0],
            is_leaf: &[false, true, true],
        };
        assert!(Tree::new(&raw, 3, &[0.0; 3], 1, 0, |v, o| o.extend_from_slice(v)).is_err());
    }

    #[test]
    fn numpy_sum_and_argmax() {
        let v: Vec<f64> = (0..200).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        assert!((np_sum(&v) - v.iter().sum::<f64>()).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 3.0]), 1);
    }
}
