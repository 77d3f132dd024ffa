//! GaussianNB: the joint log likelihood of each class, normalized with sklearn's `_logsumexp`.

use wasmflow_skops::Node;

use crate::data::{Error, Matrix, Output, Values};
use crate::estimator::Estimator;
use crate::util::{self, argmax};

pub const CLASSES: &[&str] = &["GaussianNB"];

pub struct GaussianNb {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    classes: Values,
    log_prior: Vec<f64>,
    /// `-0.5 * sum(log(2 pi var_[i]))` per class.
    norm: Vec<f64>,
    theta: Vec<f64>,
    var: Vec<f64>,
    p: usize,
}

pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let name = node.qualname();
    let classes = util::labels(node.attr("classes_")?)?;
    let c = classes.len();
    let (theta, shape) = util::array_f64(node, "theta_")?;
    let (var, vshape) = util::array_f64(node, "var_")?;
    let [tc, p] = shape[..] else {
        return Err(Error::invalid_model(format!(
            "{name}: theta_ has shape {shape:?}"
        )));
    };
    let prior = node.attr("class_prior_")?.to_f64_vec()?;
    if c == 0 || tc != c || vshape != shape || prior.len() != c {
        return Err(Error::invalid_model(format!(
            "{name}: theta_, var_ and class_prior_ do not match {c} classes"
        )));
    }
    let norm = (0..c)
        .map(|i| {
            -0.5 * var[i * p..(i + 1) * p]
                .iter()
                .map(|v| (2.0 * std::f64::consts::PI * v).ln())
                .sum::<f64>()
        })
        .collect();
    Ok(Box::new(GaussianNb {
        n_features: util::n_features_in(node)?,
        names: util::feature_names_in(node)?,
        log_prior: prior.iter().map(|p| p.ln()).collect(),
        name,
        classes,
        norm,
        theta,
        var,
        p,
    }))
}

impl GaussianNb {
    fn jll(&self, x: &Matrix) -> Result<Vec<f64>, Error> {
        x.expect_features(self.p, &self.name)?;
        let cols: Vec<_> = (0..self.p).map(|c| x.num(c)).collect::<Result<_, _>>()?;
        x.check_finite(&cols, &self.name)?;
        let c = self.classes.len();
        let mut out = vec![0.0; x.rows * c];
        for r in 0..x.rows {
            for i in 0..c {
                let mut s = 0.0;
                for (j, col) in cols.iter().enumerate() {
                    let d = col[r] - self.theta[i * self.p + j];
                    s += d * d / self.var[i * self.p + j];
                }
                out[r * c + i] = self.log_prior[i] + (self.norm[i] - 0.5 * s);
            }
        }
        Ok(out)
    }

    fn log_proba(&self, x: &Matrix) -> Result<Vec<f64>, Error> {
        let c = self.classes.len();
        let mut jll = self.jll(x)?;
        for row in jll.chunks_mut(c) {
            let lse = logsumexp(row);
            row.iter_mut().for_each(|v| *v -= lse);
        }
        Ok(jll)
    }
}

/// sklearn's `_logsumexp` of one row: the maxima counted apart, `log1p` of the rest.
fn logsumexp(row: &[f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = row.iter().filter(|&&v| v == max).count() as f64;
    let shift = if max.is_finite() { max } else { 0.0 };
    let s: f64 = row
        .iter()
        .map(|&v| if v == max { f64::NEG_INFINITY } else { v })
        .map(|v| (v - shift).exp())
        .sum();
    let s = if s == 0.0 { s } else { s / m };
    s.ln_1p() + m.ln() + max
}

impl Estimator for GaussianNb {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.n_features.or(Some(self.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
    fn classes(&self) -> Option<&Values> {
        Some(&self.classes)
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let jll = self.jll(x)?;
        let idx: Vec<usize> = jll.chunks(self.classes.len()).map(argmax).collect();
        Ok(Output::labels(&self.classes, &idx))
    }
    fn predict_log_proba(&self, x: &Matrix) -> Result<Output, Error> {
        Ok(Output::matrix(
            x.rows,
            self.classes.len(),
            self.log_proba(x)?,
        ))
    }
    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let mut v = self.log_proba(x)?;
        v.iter_mut().for_each(|x| *x = x.exp());
        Ok(Output::matrix(x.rows, self.classes.len(), v))
    }
}
