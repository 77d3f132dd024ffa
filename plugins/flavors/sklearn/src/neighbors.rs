//! KNeighborsClassifier and KNeighborsRegressor.
//!
//! Neighbors are searched as scikit-learn searches them, so that ties between equal distances
//! (common with discrete or one-hot features) pick the same points: a fixed-size max-heap fed
//! in the same order — training order for `brute`, the depth-first walk of the fitted
//! `KDTree` / `BallTree` (saved in the skops file as `_tree`) otherwise — with sklearn's
//! `heap_push` rule (a value equal to the current largest is not taken).

use wasmflow_skops::Node;

use crate::data::{Error, Matrix, Output, Values};
use crate::estimator::Estimator;
use crate::util::{self, argmax};

pub const CLASSES: &[&str] = &["KNeighborsClassifier", "KNeighborsRegressor"];

#[derive(Clone, Copy, Debug)]
enum Metric {
    Euclidean,
    Manhattan,
    Chebyshev,
    Minkowski(f64),
}

/// How the fitted estimator searches: its `_fit_method` and, for trees, the tree's arrays.
enum Index {
    Brute,
    Tree(Tree),
}

struct Tree {
    ball: bool,
    idx_array: Vec<usize>,
    /// Per node: idx_start, idx_end, is_leaf, radius.
    nodes: Vec<(usize, usize, bool, f64)>,
    /// KD: lower bounds `[n_nodes, p]` then upper bounds; ball: centroids `[n_nodes, p]`.
    bounds: Vec<f64>,
}

struct Neighbors {
    name: String,
    index: Index,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    fit_x: Vec<f64>,
    n: usize,
    p: usize,
    k: usize,
    distance_weights: bool,
    metric: Metric,
}

impl Neighbors {
    fn read(node: &Node) -> Result<Neighbors, Error> {
        let name = node.qualname();
        let fit = node.attr("_fit_X")?;
        let shape = fit.shape()?;
        let [n, p] = shape[..] else {
            return Err(Error::invalid_model(format!(
                "{name}: _fit_X has shape {shape:?}"
            )));
        };
        let fit_x = fit.to_f64_vec()?;
        let k = util::to_usize(node.attr("n_neighbors")?.i64()?, "n_neighbors")?;
        if k == 0 || k > n {
            return Err(Error::invalid_model(format!(
                "{name}: n_neighbors is {k} for {n} training points"
            )));
        }
        let weights = util::opt_str(node, "weights", "uniform").map_err(|_| {
            Error::unsupported(format!(
                "{name}: only weights 'uniform' and 'distance' are supported (not a callable)"
            ))
        })?;
        let distance_weights = match weights {
            "uniform" => false,
            "distance" => true,
            other => {
                return Err(Error::unsupported(format!(
                    "{name}: weights '{other}' is not supported; supported: uniform, distance"
                )));
            }
        };
        let metric_name = match node.get_some("effective_metric_") {
            Some(m) => m.str().map_err(|_| {
                Error::unsupported(format!("{name}: a callable metric is not supported"))
            })?,
            None => util::opt_str(node, "metric", "minkowski")?,
        };
        let p_param = match node
            .get_some("effective_metric_params_")
            .and_then(|d| d.get_some("p"))
        {
            Some(p) => p.f64()?,
            None => util::opt_f64(node, "p", 2.0)?,
        };
        let metric = match metric_name {
            "euclidean" | "l2" => Metric::Euclidean,
            "manhattan" | "cityblock" | "l1" => Metric::Manhattan,
            "chebyshev" | "infinity" => Metric::Chebyshev,
            "minkowski" if p_param == 2.0 => Metric::Euclidean,
            "minkowski" if p_param == 1.0 => Metric::Manhattan,
            "minkowski" if p_param.is_infinite() => Metric::Chebyshev,
            "minkowski" if p_param >= 1.0 => Metric::Minkowski(p_param),
            other => {
                return Err(Error::unsupported(format!(
                    "{name}: metric '{other}' is not supported; supported: minkowski, euclidean, manhattan, chebyshev"
                )));
            }
        };
        let index = match util::opt_str(node, "_fit_method", "brute")? {
            "kd_tree" | "ball_tree" => Index::Tree(read_tree(node, n, p, &name)?),
            _ => Index::Brute,
        };
        Ok(Neighbors {
            name,
            index,
            n_features: util::n_features_in(node)?,
            names: util::feature_names_in(node)?,
            fit_x,
            n,
            p,
            k,
            distance_weights,
            metric,
        })
    }

    /// The reduced distance sklearn ranks by (squared for euclidean, `sum |d|^p` for
    /// minkowski).
    fn rdist(&self, a: &[f64], b: &[f64]) -> f64 {
        match self.metric {
            Metric::Euclidean => {
                let mut s = 0.0;
                for (x, y) in a.iter().zip(b) {
                    let d = x - y;
                    s += d * d;
                }
                s
            }
            Metric::Manhattan => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
            Metric::Chebyshev => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max),
            Metric::Minkowski(p) => a.iter().zip(b).map(|(x, y)| (x - y).abs().powf(p)).sum(),
        }
    }

    fn rdist_to_dist(&self, r: f64) -> f64 {
        match self.metric {
            Metric::Euclidean => r.sqrt(),
            Metric::Minkowski(p) => r.powf(1.0 / p),
            _ => r,
        }
    }

    fn dist_to_rdist(&self, d: f64) -> f64 {
        match self.metric {
            Metric::Euclidean => d * d,
            Metric::Minkowski(p) => d.powf(p),
            _ => d,
        }
    }

    /// The metric's `p` as the KD-tree bound uses it.
    fn p(&self) -> f64 {
        match self.metric {
            Metric::Euclidean => 2.0,
            Metric::Manhattan => 1.0,
            Metric::Chebyshev => f64::INFINITY,
            Metric::Minkowski(p) => p,
        }
    }

    fn point(&self, i: usize) -> &[f64] {
        &self.fit_x[i * self.p..(i + 1) * self.p]
    }

    /// sklearn's `min_rdist` of a tree node to a point.
    fn min_rdist(&self, tree: &Tree, node: usize, q: &[f64]) -> f64 {
        let p = self.p;
        if tree.ball {
            let centroid = &tree.bounds[node * p..(node + 1) * p];
            let d = self.rdist_to_dist(self.rdist(q, centroid));
            self.dist_to_rdist((d - tree.nodes[node].3).max(0.0))
        } else {
            let n_nodes = tree.nodes.len();
            let lo = &tree.bounds[node * p..(node + 1) * p];
            let hi = &tree.bounds[(n_nodes + node) * p..(n_nodes + node + 1) * p];
            let pw = self.p();
            let mut r = 0.0;
            for j in 0..p {
                let d_lo = lo[j] - q[j];
                let d_hi = q[j] - hi[j];
                let d = (d_lo + d_lo.abs()) + (d_hi + d_hi.abs());
                if pw.is_infinite() {
                    r = f64::max(r, 0.5 * d);
                } else if pw == 2.0 {
                    r += (0.5 * d) * (0.5 * d);
                } else {
                    r += (0.5 * d).powf(pw);
                }
            }
            r
        }
    }

    fn walk(&self, tree: &Tree, node: usize, q: &[f64], lb: f64, heap: &mut Heap) {
        if lb > heap.largest() {
            return;
        }
        let (start, end, leaf, _) = tree.nodes[node];
        if leaf {
            for &i in &tree.idx_array[start..end] {
                heap.push(self.rdist(q, self.point(i)), i);
            }
            return;
        }
        let i1 = 2 * node + 1;
        let i2 = i1 + 1;
        let lb1 = self.min_rdist(tree, i1, q);
        let lb2 = self.min_rdist(tree, i2, q);
        if lb1 <= lb2 {
            self.walk(tree, i1, q, lb1, heap);
            self.walk(tree, i2, q, lb2, heap);
        } else {
            self.walk(tree, i2, q, lb2, heap);
            self.walk(tree, i1, q, lb1, heap);
        }
    }

    /// For each row, its k nearest training points (index) with their weights, nearest first.
    fn neighbors(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>, Error> {
        x.expect_features(self.p, &self.name)?;
        let cols: Vec<_> = (0..self.p).map(|c| x.num(c)).collect::<Result<_, _>>()?;
        x.check_finite(&cols, &self.name)?;
        let data = x.dense()?;
        let mut out = Vec::with_capacity(x.rows);
        for r in 0..x.rows {
            let q = &data[r * self.p..(r + 1) * self.p];
            let mut heap = Heap::new(self.k);
            match &self.index {
                Index::Brute => {
                    for i in 0..self.n {
                        heap.push(self.rdist(q, self.point(i)), i);
                    }
                }
                Index::Tree(tree) => {
                    let lb = self.min_rdist(tree, 0, q);
                    self.walk(tree, 0, q, lb, &mut heap);
                }
            }
            let mut nearest: Vec<(f64, usize)> = heap
                .values
                .iter()
                .zip(&heap.indices)
                .map(|(&r, &i)| (self.rdist_to_dist(r), i))
                .collect();
            nearest.sort_by(|a, b| a.0.total_cmp(&b.0));
            let weights: Vec<f64> = if !self.distance_weights {
                vec![1.0; self.k]
            } else if nearest.iter().any(|(dist, _)| *dist == 0.0) {
                nearest
                    .iter()
                    .map(|(dist, _)| f64::from(u8::from(*dist == 0.0)))
                    .collect()
            } else {
                nearest.iter().map(|(dist, _)| 1.0 / dist).collect()
            };
            out.push(
                nearest
                    .iter()
                    .zip(weights)
                    .map(|(&(_, i), w)| (i, w))
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// sklearn's fixed-size max-heap of neighbors (`sklearn.utils._heap.heap_push`).
struct Heap {
    values: Vec<f64>,
    indices: Vec<usize>,
}

impl Heap {
    fn new(k: usize) -> Heap {
        Heap {
            values: vec![f64::INFINITY; k],
            indices: vec![0; k],
        }
    }

    fn largest(&self) -> f64 {
        self.values[0]
    }

    fn push(&mut self, val: f64, idx: usize) {
        let size = self.values.len();
        if val >= self.values[0] {
            return;
        }
        let mut cur = 0;
        loop {
            let left = 2 * cur + 1;
            let right = left + 1;
            let swap = if left >= size {
                break;
            } else if right >= size || self.values[left] >= self.values[right] {
                // (sklearn tests `values[left] > val` when there is no right child: the same.)
                if val < self.values[left] {
                    left
                } else {
                    break;
                }
            } else if val < self.values[right] {
                right
            } else {
                break;
            };
            self.values[cur] = self.values[swap];
            self.indices[cur] = self.indices[swap];
            cur = swap;
        }
        self.values[cur] = val;
        self.indices[cur] = idx;
    }
}

/// The fitted KDTree / BallTree of a k-neighbors estimator, checked so that the walk stays in
/// bounds: `_tree`'s state is `(data, idx_array, node_data, node_bounds, ...)`.
fn read_tree(node: &Node, n: usize, p: usize, name: &str) -> Result<Tree, Error> {
    let bad = |what: &str| Error::invalid_model(format!("{name}: _tree {what}"));
    let tree = node.attr("_tree")?;
    let ball = tree.class == "BallTree";
    let state = match &tree.value {
        wasmflow_skops::Value::Object(Some(s)) => s.items()?,
        _ => return Err(bad("has no state")),
    };
    if state.len() < 4 {
        return Err(bad("state is too short"));
    }
    let data = state[0].to_f64_vec()?;
    if data.len() != n * p {
        return Err(bad("data does not match _fit_X"));
    }
    let idx_array = state[1]
        .to_i64_vec()?
        .into_iter()
        .map(|v| {
            usize::try_from(v)
                .ok()
                .filter(|&i| i < n)
                .ok_or_else(|| bad("idx_array out of range"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nd = state[2].array()?;
    let starts = nd.field_i64("idx_start")?;
    let ends = nd.field_i64("idx_end")?;
    let leaves = nd.field_i64("is_leaf")?;
    let radii = nd.field_f64("radius")?;
    let mut nodes = Vec::with_capacity(starts.len());
    for i in 0..starts.len() {
        let (s, e) = (usize::try_from(starts[i]), usize::try_from(ends[i]));
        let (Ok(s), Ok(e)) = (s, e) else {
            return Err(bad("node range out of bounds"));
        };
        if s > e || e > idx_array.len() {
            return Err(bad("node range out of bounds"));
        }
        let leaf = leaves[i] != 0;
        if !leaf && 2 * i + 2 >= starts.len() {
            return Err(bad("inner node without children"));
        }
        nodes.push((s, e, leaf, radii[i]));
    }
    if nodes.is_empty() {
        return Err(bad("has no nodes"));
    }
    let bounds = state[3].to_f64_vec()?;
    let expected = if ball {
        nodes.len() * p
    } else {
        2 * nodes.len() * p
    };
    if bounds.len() != expected {
        return Err(bad("node_bounds has the wrong size"));
    }
    Ok(Tree {
        ball,
        idx_array,
        nodes,
        bounds,
    })
}

pub struct KNeighborsClassifier {
    nn: Neighbors,
    classes: Values,
    y: Vec<usize>,
}

pub struct KNeighborsRegressor {
    nn: Neighbors,
    y: Vec<f64>,
    outputs: Option<usize>,
}

pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let nn = Neighbors::read(node)?;
    let y_node = node.attr("_y")?;
    let y_shape = y_node.shape()?;
    if node.class == "KNeighborsClassifier" {
        if util::opt_bool(node, "outputs_2d_", false)? || y_shape.len() != 1 {
            return Err(Error::unsupported(format!(
                "{}: multi-output classification is not supported",
                nn.name
            )));
        }
        let classes = util::labels(node.attr("classes_")?)?;
        if classes.is_empty() {
            return Err(Error::invalid_model(format!(
                "{}: classes_ is empty",
                nn.name
            )));
        }
        let y = y_node
            .to_i64_vec()?
            .into_iter()
            .map(|v| {
                usize::try_from(v)
                    .ok()
                    .filter(|&i| i < classes.len())
                    .ok_or_else(|| {
                        Error::invalid_model(format!("{}: _y holds class index {v}", nn.name))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if y.len() != nn.n {
            return Err(Error::invalid_model(format!(
                "{}: _y has {} labels for {} points",
                nn.name,
                y.len(),
                nn.n
            )));
        }
        Ok(Box::new(KNeighborsClassifier { nn, classes, y }))
    } else {
        let y = y_node.to_f64_vec()?;
        let outputs = match y_shape[..] {
            [_] => None,
            [_, o] => Some(o),
            _ => {
                return Err(Error::invalid_model(format!(
                    "{}: _y has shape {y_shape:?}",
                    nn.name
                )));
            }
        };
        if y.len() != nn.n * outputs.unwrap_or(1) {
            return Err(Error::invalid_model(format!(
                "{}: _y does not match _fit_X",
                nn.name
            )));
        }
        Ok(Box::new(KNeighborsRegressor { nn, y, outputs }))
    }
}

impl KNeighborsClassifier {
    fn proba(&self, x: &Matrix) -> Result<Vec<f64>, Error> {
        let c = self.classes.len();
        let mut out = vec![0.0; x.rows * c];
        for (r, nb) in self.nn.neighbors(x)?.into_iter().enumerate() {
            let row = &mut out[r * c..(r + 1) * c];
            for (i, w) in nb {
                row[self.y[i]] += w;
            }
            let sum: f64 = row.iter().sum();
            let sum = if sum == 0.0 { 1.0 } else { sum };
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(out)
    }
}

impl Estimator for KNeighborsClassifier {
    fn name(&self) -> &str {
        &self.nn.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.nn.n_features.or(Some(self.nn.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.nn.names.as_deref()
    }
    fn classes(&self) -> Option<&Values> {
        Some(&self.classes)
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let p = self.proba(x)?;
        let idx: Vec<usize> = p.chunks(self.classes.len()).map(argmax).collect();
        Ok(Output::labels(&self.classes, &idx))
    }
    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        Ok(Output::matrix(x.rows, self.classes.len(), self.proba(x)?))
    }
}

impl Estimator for KNeighborsRegressor {
    fn name(&self) -> &str {
        &self.nn.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.nn.n_features.or(Some(self.nn.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.nn.names.as_deref()
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let o = self.outputs.unwrap_or(1);
        let mut out = vec![0.0; x.rows * o];
        for (r, nb) in self.nn.neighbors(x)?.into_iter().enumerate() {
            let total: f64 = nb.iter().map(|(_, w)| w).sum();
            for j in 0..o {
                let s: f64 = nb.iter().map(|&(i, w)| w * self.y[i * o + j]).sum();
                out[r * o + j] = if self.nn.distance_weights {
                    s / total
                } else {
                    s / nb.len() as f64
                };
            }
        }
        Ok(match self.outputs {
            None => Output::column(out),
            Some(o) => Output::matrix(x.rows, o, out),
        })
    }
}
