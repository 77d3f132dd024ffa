//! KNeighborsClassifier and KNeighborsRegressor, by brute force over the training points the
//! estimator keeps (`_fit_X`), whatever index (`kd_tree`, `ball_tree`) it was fitted with: the
//! same neighbors, ties between equal distances broken by training order.

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

struct Neighbors {
    name: String,
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
        Ok(Neighbors {
            name,
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

    fn distance(&self, a: &[f64], b: &[f64]) -> f64 {
        match self.metric {
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt(),
            Metric::Manhattan => a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum(),
            Metric::Chebyshev => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max),
            Metric::Minkowski(p) => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs().powf(p))
                .sum::<f64>()
                .powf(1.0 / p),
        }
    }

    /// For each row, its k nearest training points (index) with their weights.
    fn neighbors(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>, Error> {
        x.expect_features(self.p, &self.name)?;
        let data = x.dense()?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_input(format!(
                "input x contains nan or infinity; {} does not accept missing values",
                self.name
            )));
        }
        let mut out = Vec::with_capacity(x.rows);
        let mut d: Vec<(f64, usize)> = Vec::with_capacity(self.n);
        for r in 0..x.rows {
            let q = &data[r * self.p..(r + 1) * self.p];
            d.clear();
            d.extend((0..self.n).map(|i| {
                (
                    self.distance(q, &self.fit_x[i * self.p..(i + 1) * self.p]),
                    i,
                )
            }));
            let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if self.k < self.n {
                d.select_nth_unstable_by(self.k - 1, cmp);
            }
            let nearest = &mut d[..self.k];
            nearest.sort_by(cmp);
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
