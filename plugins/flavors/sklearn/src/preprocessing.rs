//! Transformers: StandardScaler, MinMaxScaler, RobustScaler, SimpleImputer, OneHotEncoder,
//! OrdinalEncoder and PCA, each computing what its sklearn `transform` computes.

use std::collections::HashMap;

use wasmflow_skops::{Json, Kind, Node, Value};

use crate::data::{Column, Error, Matrix, clip};
use crate::estimator::Estimator;
use crate::util::{self, json_str, py_float};

pub const CLASSES: &[&str] = &[
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "SimpleImputer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "PCA",
];

pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    Ok(match node.class.as_str() {
        "StandardScaler" | "MinMaxScaler" | "RobustScaler" => Box::new(Scaler::read(node)?),
        "SimpleImputer" => Box::new(Imputer::read(node)?),
        "OneHotEncoder" | "OrdinalEncoder" => Box::new(Encoder::read(node)?),
        "PCA" => Box::new(Pca::read(node)?),
        _ => return Err(crate::estimator::unsupported_class(node)),
    })
}

/// What every transformer knows about its input.
struct Base {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
}

impl Base {
    fn read(node: &Node) -> Result<Base, Error> {
        Ok(Base {
            name: node.qualname(),
            n_features: util::n_features_in(node)?,
            names: util::feature_names_in(node)?,
        })
    }

    fn check(&self, x: &Matrix) -> Result<(), Error> {
        if let Some(n) = self.n_features {
            x.expect_features(n, &self.name)?;
        }
        Ok(())
    }
}

/// An optional per-feature array attribute (None when absent or None).
fn opt_vec(node: &Node, name: &str, p: usize) -> Result<Option<Vec<f64>>, Error> {
    match node.get_some(name) {
        None => Ok(None),
        Some(n) => {
            let v = match &n.value {
                Value::Json(_) => vec![n.f64()?; p],
                _ => n.to_f64_vec()?,
            };
            if v.len() != p {
                return Err(Error::invalid_model(format!(
                    "{}: {name} has {} values for {p} features",
                    node.qualname(),
                    v.len()
                )));
            }
            Ok(Some(v))
        }
    }
}

/// StandardScaler, MinMaxScaler, RobustScaler: `(x - sub) / div * mul + add`, then clip.
struct Scaler {
    base: Base,
    p: usize,
    sub: Option<Vec<f64>>,
    div: Option<Vec<f64>>,
    mul: Option<Vec<f64>>,
    add: Option<Vec<f64>>,
    clip: Option<(f64, f64)>,
}

impl Scaler {
    fn read(node: &Node) -> Result<Scaler, Error> {
        let base = Base::read(node)?;
        let p = match base.n_features {
            Some(p) => p,
            None => node.attr("scale_")?.to_f64_vec()?.len(),
        };
        let mut s = Scaler {
            base,
            p,
            sub: None,
            div: None,
            mul: None,
            add: None,
            clip: None,
        };
        match node.class.as_str() {
            "StandardScaler" => {
                if util::opt_bool(node, "with_mean", true)? {
                    s.sub = opt_vec(node, "mean_", p)?;
                }
                if util::opt_bool(node, "with_std", true)? {
                    s.div = opt_vec(node, "scale_", p)?;
                }
            }
            "RobustScaler" => {
                if util::opt_bool(node, "with_centering", true)? {
                    s.sub = opt_vec(node, "center_", p)?;
                }
                if util::opt_bool(node, "with_scaling", true)? {
                    s.div = opt_vec(node, "scale_", p)?;
                }
            }
            _ => {
                s.mul = opt_vec(node, "scale_", p)?;
                s.add = opt_vec(node, "min_", p)?;
                if util::opt_bool(node, "clip", false)? {
                    let r = node.attr("feature_range")?.to_f64_vec()?;
                    let [lo, hi] = r[..] else {
                        return Err(Error::invalid_model("feature_range is not a pair"));
                    };
                    s.clip = Some((lo, hi));
                }
            }
        }
        Ok(s)
    }
}

impl Estimator for Scaler {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn n_features_in(&self) -> Option<usize> {
        Some(self.p)
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.base.names.as_deref()
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        x.expect_features(self.p, &self.base.name)?;
        let mut cols = Vec::with_capacity(self.p);
        for c in 0..self.p {
            let mut v = x.num(c)?.into_owned();
            if let Some(sub) = &self.sub {
                v.iter_mut().for_each(|x| *x -= sub[c]);
            }
            if let Some(div) = &self.div {
                v.iter_mut().for_each(|x| *x /= div[c]);
            }
            if let Some(mul) = &self.mul {
                v.iter_mut().for_each(|x| *x *= mul[c]);
            }
            if let Some(add) = &self.add {
                v.iter_mut().for_each(|x| *x += add[c]);
            }
            if let Some((lo, hi)) = self.clip {
                // np.clip keeps NaN.
                v.iter_mut().for_each(|x| *x = x.max(lo).min(hi));
                v.iter_mut().zip(x.num(c)?.iter()).for_each(|(o, i)| {
                    if i.is_nan() {
                        *o = f64::NAN;
                    }
                });
            }
            cols.push(v);
        }
        Ok(Matrix::from_columns(x.rows, cols))
    }
}

/// A category of an encoder, or a value of a column.
#[derive(Clone, Debug, PartialEq)]
enum Cat {
    Str(String),
    Num(f64),
    Missing,
}

impl Cat {
    fn from_json(j: &Json) -> Cat {
        match j {
            Json::Null => Cat::Missing,
            Json::Float(f) if f.is_nan() => Cat::Missing,
            Json::Str(s) => Cat::Str(s.clone()),
            other => other
                .as_f64()
                .map_or_else(|| Cat::Str(json_str(other)), Cat::Num),
        }
    }

    fn show(&self) -> String {
        match self {
            Cat::Str(s) => format!("'{}'", clip(s)),
            Cat::Num(f) if *f == f.trunc() && f.abs() < 1e15 => format!("{}", *f as i64),
            Cat::Num(f) => py_float(*f),
            Cat::Missing => "nan".into(),
        }
    }
}

/// The categories of one feature, with a fast lookup.
struct Categories {
    cats: Vec<Cat>,
    strings: HashMap<String, usize>,
    numbers: HashMap<u64, usize>,
    missing: Option<usize>,
    numeric: bool,
}

fn num_key(f: f64) -> u64 {
    if f == 0.0 { 0 } else { f.to_bits() }
}

impl Categories {
    fn read(node: &Node) -> Result<Categories, Error> {
        let cats: Vec<Cat> = match &node.value {
            Value::Array(a) => match a.scalar()?.kind {
                Kind::Unicode | Kind::Bytes => a.to_strings()?.into_iter().map(Cat::Str).collect(),
                _ => a
                    .to_f64()?
                    .into_iter()
                    .map(|f| {
                        if f.is_nan() {
                            Cat::Missing
                        } else {
                            Cat::Num(f)
                        }
                    })
                    .collect(),
            },
            Value::ObjectArray { items, .. } | Value::List(items) => items
                .iter()
                .map(|n| n.json().map(Cat::from_json))
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(Error::invalid_model(
                    "categories_ holds something other than arrays",
                ));
            }
        };
        let mut c = Categories {
            strings: HashMap::new(),
            numbers: HashMap::new(),
            missing: None,
            numeric: cats.iter().all(|c| !matches!(c, Cat::Str(_))),
            cats,
        };
        for (i, cat) in c.cats.iter().enumerate() {
            match cat {
                Cat::Str(s) => {
                    c.strings.entry(s.clone()).or_insert(i);
                }
                Cat::Num(f) => {
                    c.numbers.entry(num_key(*f)).or_insert(i);
                }
                Cat::Missing => {
                    c.missing.get_or_insert(i);
                }
            }
        }
        Ok(c)
    }

    /// The index of a value, or None when unknown.
    fn code(&self, value: &Cat) -> Option<usize> {
        match value {
            Cat::Str(s) => self.strings.get(s).copied().or_else(|| {
                // A text cell for a numeric feature: compare as numbers.
                if self.numeric {
                    crate::data::parse_float(s).and_then(|f| self.code(&Cat::Num(f)))
                } else {
                    None
                }
            }),
            Cat::Num(f) if f.is_nan() => self.missing,
            Cat::Num(f) => self.numbers.get(&num_key(*f)).copied(),
            Cat::Missing => self.missing,
        }
    }
}

/// The cells of column `c` as category values.
fn cells(x: &Matrix, c: usize) -> Vec<Cat> {
    match &x.columns[c] {
        Column::Num(v) => v
            .iter()
            .map(|&f| {
                if f.is_nan() {
                    Cat::Missing
                } else {
                    Cat::Num(f)
                }
            })
            .collect(),
        Column::Text(v) => v
            .iter()
            .map(|s| match s {
                None => Cat::Missing,
                Some(s) => Cat::Str(s.clone()),
            })
            .collect(),
    }
}

/// An optional list (one entry per feature) of optional integer arrays.
fn per_feature_indices(
    node: &Node,
    name: &str,
    p: usize,
) -> Result<Vec<Option<Vec<usize>>>, Error> {
    let Some(list) = node.get_some(name) else {
        return Ok(vec![None; p]);
    };
    let items = list.items()?;
    if items.len() != p {
        return Err(Error::invalid_model(format!(
            "{name} has {} entries for {p} features",
            items.len()
        )));
    }
    items
        .iter()
        .map(|n| {
            if n.is_none() {
                Ok(None)
            } else {
                n.to_i64_vec()?
                    .into_iter()
                    .map(|v| util::to_usize(v, name))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Unknown {
    Error,
    Ignore,
    Infrequent,
    /// OrdinalEncoder's use_encoded_value.
    Encoded(f64),
}

/// OneHotEncoder and OrdinalEncoder.
struct Encoder {
    base: Base,
    one_hot: bool,
    categories: Vec<Categories>,
    unknown: Unknown,
    infrequent_indices: Vec<Option<Vec<usize>>>,
    infrequent_mappings: Vec<Option<Vec<usize>>>,
    /// OneHotEncoder: `_drop_idx_after_grouping`.
    drop: Vec<Option<usize>>,
    /// OneHotEncoder: `_n_features_outs`.
    n_outs: Vec<usize>,
    /// OrdinalEncoder: feature -> the code of its missing category.
    missing_indices: HashMap<usize, usize>,
    encoded_missing: f64,
}

impl Encoder {
    fn read(node: &Node) -> Result<Encoder, Error> {
        let base = Base::read(node)?;
        let name = base.name.clone();
        let one_hot = node.class == "OneHotEncoder";
        let categories: Vec<Categories> = node
            .attr("categories_")?
            .items()?
            .iter()
            .map(|n| Categories::read(n))
            .collect::<Result<_, _>>()?;
        let p = categories.len();
        let handle = util::opt_str(node, "handle_unknown", "error")?;
        let unknown = match handle {
            "error" => Unknown::Error,
            "ignore" => Unknown::Ignore,
            "infrequent_if_exist" | "warn" => Unknown::Infrequent,
            "use_encoded_value" => Unknown::Encoded(node.attr("unknown_value")?.f64()?),
            other => {
                return Err(Error::unsupported(format!(
                    "{name}: handle_unknown '{other}' is not supported"
                )));
            }
        };
        let infrequent = util::opt_bool(node, "_infrequent_enabled", false)?;
        let (infrequent_indices, infrequent_mappings) = if infrequent {
            (
                per_feature_indices(node, "_infrequent_indices", p)?,
                per_feature_indices(node, "_default_to_infrequent_mappings", p)?,
            )
        } else {
            (vec![None; p], vec![None; p])
        };
        for (i, m) in infrequent_mappings.iter().enumerate() {
            if let Some(m) = m
                && m.len() != categories[i].cats.len()
            {
                return Err(Error::invalid_model(format!(
                    "{name}: infrequent mapping of feature {i} has the wrong length"
                )));
            }
        }
        for (i, inf) in infrequent_indices.iter().enumerate() {
            if let Some(inf) = inf
                && inf.iter().any(|&j| j >= categories[i].cats.len())
            {
                return Err(Error::invalid_model(format!(
                    "{name}: infrequent category of feature {i} out of range"
                )));
            }
        }
        let mut drop = vec![None; p];
        let mut n_outs = Vec::new();
        let mut missing_indices = HashMap::new();
        let mut encoded_missing = f64::NAN;
        if one_hot {
            if let Some(d) = node.get_some("_drop_idx_after_grouping") {
                let items: Vec<Option<usize>> = match &d.value {
                    Value::Array(a) => a
                        .to_i64()?
                        .into_iter()
                        .map(|v| usize::try_from(v).ok())
                        .collect(),
                    _ => d
                        .items()?
                        .iter()
                        .map(|n| {
                            if n.is_none() {
                                Ok(None)
                            } else {
                                n.i64().map(|v| usize::try_from(v).ok())
                            }
                        })
                        .collect::<Result<_, _>>()?,
                };
                if items.len() != p {
                    return Err(Error::invalid_model(format!(
                        "{name}: drop index has the wrong length"
                    )));
                }
                drop = items;
            }
            n_outs = match node.get_some("_n_features_outs") {
                Some(n) => n
                    .to_i64_vec()?
                    .into_iter()
                    .map(|v| util::to_usize(v, "_n_features_outs"))
                    .collect::<Result<_, _>>()?,
                None => categories.iter().map(|c| c.cats.len()).collect(),
            };
            if let Some(f) =
                (0..n_outs.len().min(p)).find(|&f| n_outs[f] > categories[f].cats.len())
            {
                return Err(Error::invalid_model(format!(
                    "{name}: feature {f} has {} outputs for {} categories",
                    n_outs[f],
                    categories[f].cats.len()
                )));
            }
            if n_outs.len() != p {
                return Err(Error::invalid_model(format!(
                    "{name}: _n_features_outs has the wrong length"
                )));
            }
        } else {
            if let Some(m) = node.get_some("_missing_indices") {
                for (k, v) in m.entries().unwrap_or_default() {
                    let f: usize = k.parse().map_err(|_| {
                        Error::invalid_model(format!("{name}: bad _missing_indices key '{k}'"))
                    })?;
                    missing_indices.insert(f, util::to_usize(v.i64()?, "_missing_indices")?);
                }
            }
            encoded_missing = util::opt_f64(node, "encoded_missing_value", f64::NAN)?;
        }
        Ok(Encoder {
            base,
            one_hot,
            categories,
            unknown,
            infrequent_indices,
            infrequent_mappings,
            drop,
            n_outs,
            missing_indices,
            encoded_missing,
        })
    }

    /// sklearn's `_transform`: per feature, each row's code and whether it is known.
    fn codes(&self, x: &Matrix, f: usize) -> Result<(Vec<usize>, Vec<bool>), Error> {
        let cats = &self.categories[f];
        let values = cells(x, f);
        let mut codes = Vec::with_capacity(x.rows);
        let mut mask = Vec::with_capacity(x.rows);
        let mut unknown: Vec<String> = Vec::new();
        for v in &values {
            match cats.code(v) {
                Some(c) => {
                    codes.push(c);
                    mask.push(true);
                }
                None => {
                    if self.unknown == Unknown::Error
                        && !unknown.contains(&v.show())
                        && unknown.len() < 10
                    {
                        unknown.push(v.show());
                    }
                    codes.push(0);
                    mask.push(false);
                }
            }
        }
        if !unknown.is_empty() && self.unknown == Unknown::Error {
            return Err(Error::invalid_input(format!(
                "found unknown categories [{}] in column {f} during transform",
                unknown.join(", ")
            )));
        }
        // _map_infrequent_categories
        if let Some(inf) = &self.infrequent_indices[f]
            && let Some(&first) = inf.first()
        {
            for (c, m) in codes.iter_mut().zip(mask.iter_mut()) {
                if !*m {
                    *c = first;
                    if self.unknown == Unknown::Infrequent {
                        *m = true;
                    }
                }
            }
        }
        if let Some(mapping) = &self.infrequent_mappings[f] {
            let ignore = self.missing_indices.get(&f);
            for c in codes.iter_mut() {
                if ignore != Some(c) {
                    *c = mapping[*c];
                }
            }
        }
        Ok((codes, mask))
    }
}

impl Estimator for Encoder {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn n_features_in(&self) -> Option<usize> {
        Some(self.categories.len())
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.base.names.as_deref()
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        x.expect_features(self.categories.len(), &self.base.name)?;
        let mut out = Vec::new();
        for f in 0..self.categories.len() {
            let (mut codes, mut mask) = self.codes(x, f)?;
            if self.one_hot {
                if let Some(d) = self.drop[f] {
                    for (c, m) in codes.iter_mut().zip(mask.iter_mut()) {
                        if *c == d {
                            *m = false;
                        } else if *c > d {
                            *c -= 1;
                        }
                    }
                }
                let width = self.n_outs[f];
                let mut cols = vec![vec![0.0; x.rows]; width];
                for (r, (&c, &m)) in codes.iter().zip(&mask).enumerate() {
                    if m {
                        let col = cols.get_mut(c).ok_or_else(|| {
                            Error::invalid_model(format!(
                                "{}: code {c} past the {width} outputs of feature {f}",
                                self.base.name
                            ))
                        })?;
                        col[r] = 1.0;
                    }
                }
                out.extend(cols);
            } else {
                let mut v: Vec<f64> = codes.iter().map(|&c| c as f64).collect();
                if let Some(&mi) = self.missing_indices.get(&f) {
                    for (o, &c) in v.iter_mut().zip(&codes) {
                        if c == mi {
                            *o = self.encoded_missing;
                        }
                    }
                }
                if let Unknown::Encoded(u) = self.unknown {
                    for (o, &m) in v.iter_mut().zip(&mask) {
                        if !m {
                            *o = u;
                        }
                    }
                }
                out.push(v);
            }
        }
        Ok(Matrix::from_columns(x.rows, out))
    }
}

/// SimpleImputer (and its MissingIndicator when `add_indicator`).
struct Imputer {
    base: Base,
    p: usize,
    /// The fill value of each feature (`statistics_`); None for a feature without any
    /// observed value, which is dropped unless `keep_empty_features`.
    statistics: Vec<Option<Cat>>,
    missing: Cat,
    indicator: Option<Vec<usize>>,
}

impl Imputer {
    fn read(node: &Node) -> Result<Imputer, Error> {
        let base = Base::read(node)?;
        let stats = node.attr("statistics_")?;
        let strategy = util::opt_str(node, "strategy", "mean")?;
        let keep_all =
            strategy == "constant" || util::opt_bool(node, "keep_empty_features", false)?;
        let statistics: Vec<Option<Cat>> = match &stats.value {
            Value::Array(a) => match a.scalar()?.kind {
                Kind::Unicode | Kind::Bytes => a
                    .to_strings()?
                    .into_iter()
                    .map(|s| Some(Cat::Str(s)))
                    .collect(),
                _ => a
                    .to_f64()?
                    .into_iter()
                    .map(|f| {
                        if f.is_nan() && !keep_all {
                            None
                        } else {
                            Some(Cat::Num(f))
                        }
                    })
                    .collect(),
            },
            _ => stats
                .items()?
                .iter()
                .map(|n| {
                    n.json().map(|j| match Cat::from_json(j) {
                        Cat::Missing if !keep_all => None,
                        Cat::Missing => Some(Cat::Num(f64::NAN)),
                        c => Some(c),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let missing = match node.get("missing_values") {
            None => Cat::Missing,
            Some(n) => Cat::from_json(n.json()?),
        };
        let indicator: Option<Vec<usize>> = if util::opt_bool(node, "add_indicator", false)? {
            let ind = node.attr("indicator_")?;
            if util::opt_str(ind, "features", "missing-only")? == "all" {
                Some((0..statistics.len()).collect())
            } else {
                Some(
                    ind.attr("features_")?
                        .to_i64_vec()?
                        .into_iter()
                        .map(|v| util::to_usize(v, "features_"))
                        .collect::<Result<_, _>>()?,
                )
            }
        } else {
            None
        };
        let p = statistics.len();
        if indicator
            .as_ref()
            .is_some_and(|i| i.iter().any(|&f| f >= p))
        {
            return Err(Error::invalid_model(format!(
                "{}: indicator feature out of range",
                base.name
            )));
        }
        Ok(Imputer {
            base,
            p,
            statistics,
            missing,
            indicator,
        })
    }

    fn is_missing(&self, v: &Cat) -> bool {
        match (&self.missing, v) {
            (Cat::Missing, Cat::Missing) => true,
            (Cat::Missing, _) => false,
            (m, v) => m == v,
        }
    }
}

impl Estimator for Imputer {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn n_features_in(&self) -> Option<usize> {
        Some(self.p)
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.base.names.as_deref()
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        self.base.check(x)?;
        x.expect_features(self.p, &self.base.name)?;
        let mut columns = Vec::new();
        let mut masks: Vec<Vec<bool>> = Vec::with_capacity(self.p);
        for c in 0..self.p {
            let values = cells(x, c);
            let mask: Vec<bool> = values.iter().map(|v| self.is_missing(v)).collect();
            if let Some(stat) = &self.statistics[c] {
                let column = match (&x.columns[c], stat) {
                    (Column::Num(v), Cat::Num(s)) => Column::Num(
                        v.iter()
                            .zip(&mask)
                            .map(|(&x, &m)| if m { *s } else { x })
                            .collect(),
                    ),
                    (Column::Num(v), Cat::Str(s)) => Column::Text(
                        v.iter()
                            .zip(&mask)
                            .map(|(&x, &m)| Some(if m { s.clone() } else { py_float(x) }))
                            .collect(),
                    ),
                    (Column::Text(v), stat) => {
                        let fill = match stat {
                            Cat::Str(s) => Some(s.clone()),
                            Cat::Num(f) => Some(py_num(*f)),
                            Cat::Missing => None,
                        };
                        Column::Text(
                            v.iter()
                                .zip(&mask)
                                .map(|(x, &m)| if m { fill.clone() } else { x.clone() })
                                .collect(),
                        )
                    }
                    (Column::Num(v), Cat::Missing) => Column::Num(v.clone()),
                };
                columns.push(column);
            }
            masks.push(mask);
        }
        if let Some(ind) = &self.indicator {
            for &f in ind {
                columns.push(Column::Num(
                    masks[f].iter().map(|&m| f64::from(u8::from(m))).collect(),
                ));
            }
        }
        Ok(Matrix {
            rows: x.rows,
            columns,
            names: None,
        })
    }
}

/// A number in a text column, as str() of a Python int or float.
fn py_num(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        py_float(f)
    }
}

/// PCA: `x @ components_.T - mean_ @ components_.T`, divided by `sqrt(explained_variance_)`
/// when whitening.
struct Pca {
    base: Base,
    p: usize,
    k: usize,
    components: Vec<f64>,
    offset: Vec<f64>,
    scale: Option<Vec<f64>>,
}

impl Pca {
    fn read(node: &Node) -> Result<Pca, Error> {
        let base = Base::read(node)?;
        let (components, shape) = util::array_f64(node, "components_")?;
        let [k, p] = shape[..] else {
            return Err(Error::invalid_model(format!(
                "{}: components_ has shape {shape:?}",
                base.name
            )));
        };
        let mean = opt_vec(node, "mean_", p)?.unwrap_or_else(|| vec![0.0; p]);
        let offset = (0..k)
            .map(|j| (0..p).map(|c| mean[c] * components[j * p + c]).sum::<f64>())
            .collect();
        let scale = if util::opt_bool(node, "whiten", false)? {
            let var = opt_vec(node, "explained_variance_", k)?.ok_or_else(|| {
                Error::invalid_model(format!("{}: no explained_variance_", base.name))
            })?;
            Some(var.iter().map(|v| v.sqrt().max(f64::EPSILON)).collect())
        } else {
            None
        };
        Ok(Pca {
            base,
            p,
            k,
            components,
            offset,
            scale,
        })
    }
}

impl Estimator for Pca {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn n_features_in(&self) -> Option<usize> {
        Some(self.p)
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.base.names.as_deref()
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        x.expect_features(self.p, &self.base.name)?;
        let cols: Vec<_> = (0..self.p).map(|c| x.num(c)).collect::<Result<_, _>>()?;
        x.check_finite(&cols, &self.base.name)?;
        let mut out = vec![vec![0.0; x.rows]; self.k];
        for (j, o) in out.iter_mut().enumerate() {
            let w = &self.components[j * self.p..(j + 1) * self.p];
            for (r, v) in o.iter_mut().enumerate() {
                let mut s = 0.0;
                for c in 0..self.p {
                    s += cols[c][r] * w[c];
                }
                s -= self.offset[j];
                if let Some(scale) = &self.scale {
                    s /= scale[j];
                }
                *v = s;
            }
        }
        Ok(Matrix::from_columns(x.rows, out))
    }
}
