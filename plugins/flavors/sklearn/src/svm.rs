//! Kernel support vector machines (libsvm): SVC, NuSVC, SVR, NuSVR.
//!
//! Decision values are libsvm's one-vs-one values, `sum(dual_coef * K(sv, x)) + intercept` per
//! pair of classes; `predict` counts the pairs' votes as libsvm does, `decision_function`
//! turns them into sklearn's one-vs-rest shape, and `predict_proba` applies libsvm's Platt
//! sigmoids and, for more than two classes, its pairwise coupling (Wu, Lin and Weng, 2004).

// The pair loops follow libsvm's index arithmetic (pair p of classes i < j), clearer as indices.
#![allow(clippy::needless_range_loop)]

use wasmflow_skops::Node;

use crate::data::{Error, Matrix, Output, Values};
use crate::estimator::Estimator;
use crate::util::{self, argmax};

pub const CLASSES: &[&str] = &["SVC", "NuSVC", "SVR", "NuSVR"];

#[derive(Clone, Copy)]
enum Kernel {
    Linear,
    Poly { gamma: f64, coef0: f64, degree: f64 },
    Rbf { gamma: f64 },
    Sigmoid { gamma: f64, coef0: f64 },
}

struct Machine {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    p: usize,
    kernel: Kernel,
    /// `[n_sv, p]`.
    sv: Vec<f64>,
    n_sv: usize,
    /// `[n_class - 1, n_sv]` (libsvm's layout).
    dual: Vec<f64>,
    /// One per pair (i < j) of classes, or one for regression.
    intercept: Vec<f64>,
    /// Start of each class's support vectors.
    starts: Vec<usize>,
}

impl Machine {
    fn read(node: &Node, classification: bool) -> Result<Machine, Error> {
        let name = node.qualname();
        let bad = |what: String| Error::invalid_model(format!("{name}: {what}"));
        let kernel_name = util::opt_str(node, "kernel", "rbf").map_err(|_| {
            Error::unsupported(format!("{name}: a callable kernel is not supported"))
        })?;
        let gamma = match node.get_some("_gamma") {
            Some(g) => g.f64()?,
            None => util::opt_f64(node, "gamma", 0.0)?,
        };
        let coef0 = util::opt_f64(node, "coef0", 0.0)?;
        let degree = util::opt_f64(node, "degree", 3.0)?;
        let kernel = match kernel_name {
            "linear" => Kernel::Linear,
            "poly" => Kernel::Poly {
                gamma,
                coef0,
                degree,
            },
            "rbf" => Kernel::Rbf { gamma },
            "sigmoid" => Kernel::Sigmoid { gamma, coef0 },
            other => {
                return Err(Error::unsupported(format!(
                    "{name}: kernel '{other}' is not supported; supported: linear, poly, rbf, sigmoid"
                )));
            }
        };
        if util::opt_bool(node, "_sparse", false)? {
            return Err(Error::unsupported(format!(
                "{name} fitted on a sparse matrix is not supported"
            )));
        }
        let (sv, shape) = util::array_f64(node, "support_vectors_")?;
        let [n_sv, p] = shape[..] else {
            return Err(bad(format!("support_vectors_ has shape {shape:?}")));
        };
        let (dual, dshape) = util::array_f64(node, "_dual_coef_")?;
        let intercept = node.attr("_intercept_")?.to_f64_vec()?;
        let n_support: Vec<usize> = node
            .attr("_n_support")?
            .to_i64_vec()?
            .into_iter()
            .map(|v| util::to_usize(v, "_n_support"))
            .collect::<Result<_, _>>()?;
        let mut starts = vec![0];
        for n in &n_support {
            let last = *starts.last().unwrap_or(&0);
            starts.push(last + n);
        }
        let rows = dshape.first().copied().unwrap_or(0);
        if dshape.get(1) != Some(&n_sv) {
            return Err(bad(format!(
                "_dual_coef_ has shape {dshape:?} for {n_sv} support vectors"
            )));
        }
        if classification {
            let k = n_support.len();
            if k < 2 || starts[k] != n_sv || rows != k - 1 || intercept.len() != k * (k - 1) / 2 {
                return Err(bad(
                    "support vectors, dual coefficients and intercepts do not match".into(),
                ));
            }
        } else if rows != 1 || intercept.len() != 1 {
            return Err(bad("dual coefficients and intercept do not match".into()));
        }
        Ok(Machine {
            name: name.clone(),
            n_features: util::n_features_in(node)?,
            names: util::feature_names_in(node)?,
            p,
            kernel,
            sv,
            n_sv,
            dual,
            intercept,
            starts,
        })
    }

    fn k(&self, x: &[f64], i: usize) -> f64 {
        let y = &self.sv[i * self.p..(i + 1) * self.p];
        let dot = || x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
        match self.kernel {
            Kernel::Linear => dot(),
            Kernel::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * dot() + coef0).powf(degree),
            Kernel::Rbf { gamma } => {
                let d: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * d).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }

    /// The rows of the input, checked.
    fn rows(&self, x: &Matrix) -> Result<Vec<f64>, Error> {
        x.expect_features(self.p, &self.name)?;
        let cols: Vec<_> = (0..self.p).map(|c| x.num(c)).collect::<Result<_, _>>()?;
        x.check_finite(&cols, &self.name)?;
        x.dense()
    }

    /// libsvm's one-vs-one decision values of each row, `[rows, k(k-1)/2]`.
    fn ovo(&self, x: &Matrix) -> Result<(Vec<f64>, usize), Error> {
        let data = self.rows(x)?;
        let k = self.starts.len() - 1;
        let pairs = k * (k - 1) / 2;
        let mut out = Vec::with_capacity(x.rows * pairs);
        let mut kv = vec![0.0; self.n_sv];
        for r in 0..x.rows {
            let row = &data[r * self.p..(r + 1) * self.p];
            for (i, v) in kv.iter_mut().enumerate() {
                *v = self.k(row, i);
            }
            let mut pair = 0;
            for i in 0..k {
                for j in i + 1..k {
                    let mut s = 0.0;
                    let ci = &self.dual[(j - 1) * self.n_sv..j * self.n_sv];
                    for t in self.starts[i]..self.starts[i + 1] {
                        s += ci[t] * kv[t];
                    }
                    let cj = &self.dual[i * self.n_sv..(i + 1) * self.n_sv];
                    for t in self.starts[j]..self.starts[j + 1] {
                        s += cj[t] * kv[t];
                    }
                    out.push(s + self.intercept[pair]);
                    pair += 1;
                }
            }
        }
        Ok((out, pairs))
    }
}

pub struct Svc {
    m: Machine,
    classes: Values,
    ovr: bool,
    break_ties: bool,
    /// Platt parameters per pair, when fitted with `probability=True`.
    prob: Option<(Vec<f64>, Vec<f64>)>,
}

pub struct Svr {
    m: Machine,
}

pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    if node.class.ends_with("SVR") {
        return Ok(Box::new(Svr {
            m: Machine::read(node, false)?,
        }));
    }
    let m = Machine::read(node, true)?;
    let classes = util::labels(node.attr("classes_")?)?;
    let k = m.starts.len() - 1;
    if classes.len() != k {
        return Err(Error::invalid_model(format!(
            "{}: {} classes for {k} support groups",
            m.name,
            classes.len()
        )));
    }
    let pairs = k * (k - 1) / 2;
    // scikit-learn 1.9 keeps the fitted choice in `_effective_probability` (`probability`
    // may read "deprecated").
    let probability = match node.get_some("_effective_probability") {
        Some(p) => p.bool()?,
        None => node
            .get_some("probability")
            .and_then(|p| p.bool().ok())
            .unwrap_or(false),
    };
    let prob = if probability {
        let a = node.attr("_probA")?.to_f64_vec()?;
        let b = node.attr("_probB")?.to_f64_vec()?;
        if a.len() != pairs || b.len() != pairs {
            return Err(Error::invalid_model(format!(
                "{}: probA/probB do not match the classes",
                m.name
            )));
        }
        Some((a, b))
    } else {
        None
    };
    Ok(Box::new(Svc {
        ovr: util::opt_str(node, "decision_function_shape", "ovr")? == "ovr",
        break_ties: util::opt_bool(node, "break_ties", false)?,
        m,
        classes,
        prob,
    }))
}

/// sklearn's `_ovr_decision_function(dec < 0, -dec, k)` of one row.
fn ovr_row(dec: &[f64], k: usize) -> Vec<f64> {
    let mut votes = vec![0.0; k];
    let mut conf = vec![0.0; k];
    let mut p = 0;
    for i in 0..k {
        for j in i + 1..k {
            let c = -dec[p];
            conf[i] -= c;
            conf[j] += c;
            if dec[p] < 0.0 {
                votes[j] += 1.0;
            } else {
                votes[i] += 1.0;
            }
            p += 1;
        }
    }
    votes
        .iter()
        .zip(&conf)
        .map(|(v, s)| v + s / (3.0 * (s.abs() + 1.0)))
        .collect()
}

/// libsvm's Platt sigmoid.
fn sigmoid_predict(dec: f64, a: f64, b: f64) -> f64 {
    let f = dec * a + b;
    if f >= 0.0 {
        (-f).exp() / (1.0 + (-f).exp())
    } else {
        1.0 / (1.0 + f.exp())
    }
}

/// libsvm's pairwise coupling of `r[i][j]` (the probability of i against j) into class
/// probabilities.
fn multiclass_probability(k: usize, r: &[Vec<f64>]) -> Vec<f64> {
    let max_iter = 100.max(k);
    let eps = 0.005 / k as f64;
    let mut p = vec![1.0 / k as f64; k];
    let mut q = vec![vec![0.0; k]; k];
    for t in 0..k {
        q[t][t] = 0.0;
        for j in 0..t {
            q[t][t] += r[j][t] * r[j][t];
            q[t][j] = q[j][t];
        }
        for j in t + 1..k {
            q[t][t] += r[j][t] * r[j][t];
            q[t][j] = -r[j][t] * r[t][j];
        }
    }
    let mut qp = vec![0.0; k];
    for _ in 0..max_iter {
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = 0.0;
            for j in 0..k {
                qp[t] += q[t][j] * p[j];
            }
            pqp += p[t] * qp[t];
        }
        let max_error = qp.iter().map(|v| (v - pqp).abs()).fold(0.0, f64::max);
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t][t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t][t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t][j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

impl Svc {
    fn k(&self) -> usize {
        self.classes.len()
    }
}

impl Estimator for Svc {
    fn name(&self) -> &str {
        &self.m.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.m.n_features.or(Some(self.m.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.m.names.as_deref()
    }
    fn classes(&self) -> Option<&Values> {
        Some(&self.classes)
    }
    fn decision_function(&self, x: &Matrix) -> Result<Output, Error> {
        let (dec, pairs) = self.m.ovo(x)?;
        let k = self.k();
        if k == 2 {
            return Ok(Output::column(dec.iter().map(|d| -d).collect()));
        }
        if self.ovr {
            let out: Vec<f64> = dec.chunks(pairs).flat_map(|row| ovr_row(row, k)).collect();
            Ok(Output::matrix(x.rows, k, out))
        } else {
            Ok(Output::matrix(x.rows, pairs, dec))
        }
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let (dec, pairs) = self.m.ovo(x)?;
        let k = self.k();
        let idx: Vec<usize> = dec
            .chunks(pairs)
            .map(|row| {
                if self.break_ties && self.ovr && k > 2 {
                    return argmax(&ovr_row(row, k));
                }
                let mut votes = vec![0usize; k];
                let mut p = 0;
                for i in 0..k {
                    for j in i + 1..k {
                        if row[p] > 0.0 {
                            votes[i] += 1;
                        } else {
                            votes[j] += 1;
                        }
                        p += 1;
                    }
                }
                let mut best = 0;
                for (i, &v) in votes.iter().enumerate() {
                    if v > votes[best] {
                        best = i;
                    }
                }
                best
            })
            .collect();
        Ok(Output::labels(&self.classes, &idx))
    }
    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let Some((a, b)) = &self.prob else {
            return Err(Error::unsupported(format!(
                "{} was fitted with probability=False and has no predict_proba",
                self.m.name
            )));
        };
        let k = self.k();
        // The coupling costs k^2 per iteration and row; refuse absurd class counts.
        if k > 1000 {
            return Err(Error::unsupported(format!(
                "{}: predict_proba with {k} classes is not supported",
                self.m.name
            )));
        }
        let (dec, pairs) = self.m.ovo(x)?;
        let min_prob = 1e-7;
        let mut out = Vec::with_capacity(x.rows * k);
        for row in dec.chunks(pairs) {
            let mut r = vec![vec![0.0; k]; k];
            let mut p = 0;
            for i in 0..k {
                for j in i + 1..k {
                    let v = sigmoid_predict(row[p], a[p], b[p])
                        .max(min_prob)
                        .min(1.0 - min_prob);
                    r[i][j] = v;
                    r[j][i] = 1.0 - v;
                    p += 1;
                }
            }
            // sklearn's libsvm couples the pairs for two classes too (newer libsvm does not).
            out.extend(multiclass_probability(k, &r));
        }
        Ok(Output::matrix(x.rows, k, out))
    }
}

impl Estimator for Svr {
    fn name(&self) -> &str {
        &self.m.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.m.n_features.or(Some(self.m.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.m.names.as_deref()
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let data = self.m.rows(x)?;
        let mut out = Vec::with_capacity(x.rows);
        for r in 0..x.rows {
            let row = &data[r * self.m.p..(r + 1) * self.m.p];
            let mut s = 0.0;
            for t in 0..self.m.n_sv {
                s += self.m.dual[t] * self.m.k(row, t);
            }
            out.push(s + self.m.intercept[0]);
        }
        Ok(Output::column(out))
    }
}
