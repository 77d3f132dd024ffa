//! The data estimators take and give: a [`Matrix`] of columns (numbers or text), an
//! [`Output`] (an n-d array of numbers or labels), and the crate's [`Error`].

/// The values of one column, or of an output, in one typed list.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F64(Vec<f64>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values at `indices`, in that order (e.g. class labels for argmax indices).
    /// Every index must be below `len()`.
    pub fn take(&self, indices: &[usize]) -> Values {
        match self {
            Values::F64(v) => Values::F64(indices.iter().map(|&i| v[i]).collect()),
            Values::F32(v) => Values::F32(indices.iter().map(|&i| v[i]).collect()),
            Values::I64(v) => Values::I64(indices.iter().map(|&i| v[i]).collect()),
            Values::Bool(v) => Values::Bool(indices.iter().map(|&i| v[i]).collect()),
            Values::Text(v) => Values::Text(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }

    /// The values as f64, when they are numbers or booleans.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            Values::F64(v) => v.clone(),
            Values::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Values::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Values::Text(_) => return None,
        })
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Values::F64(_) => "float64",
            Values::F32(_) => "float32",
            Values::I64(_) => "int64",
            Values::Bool(_) => "bool",
            Values::Text(_) => "text",
        }
    }
}

/// What an estimator answers: an array of `shape` (`[rows]` or `[rows, k]`), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub shape: Vec<usize>,
    pub values: Values,
}

impl Output {
    /// A 1-d output of f64, one value per row.
    pub fn column(values: Vec<f64>) -> Output {
        Output {
            shape: vec![values.len()],
            values: Values::F64(values),
        }
    }

    /// A 2-d output `[rows, k]` of f64 from row-major values.
    pub fn matrix(rows: usize, k: usize, values: Vec<f64>) -> Output {
        debug_assert_eq!(values.len(), rows * k);
        Output {
            shape: vec![rows, k],
            values: Values::F64(values),
        }
    }

    /// The labels `classes[index]` for each row's index.
    pub fn labels(classes: &Values, indices: &[usize]) -> Output {
        Output {
            shape: vec![indices.len()],
            values: classes.take(indices),
        }
    }
}

/// One input column: numbers (NaN is a missing value) or text (`None` is a missing value:
/// pandas' None/NaN in an object column).
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Num(Vec<f64>),
    Text(Vec<Option<String>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Num(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch of rows, stored by column (as a pandas DataFrame is): numeric columns for most
/// estimators, text columns for the encoders (OneHotEncoder, OrdinalEncoder, SimpleImputer
/// with strings) and for ColumnTransformer to route. `names` are the column names when the
/// input was a table (matched against `feature_names_in_`), `None` for a plain array.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub columns: Vec<Column>,
    pub names: Option<Vec<String>>,
}

impl Matrix {
    /// A numeric matrix from row-major values (`rows * cols` of them).
    pub fn from_rows(rows: usize, cols: usize, values: &[f64]) -> Matrix {
        debug_assert_eq!(values.len(), rows * cols);
        let columns = (0..cols)
            .map(|c| Column::Num((0..rows).map(|r| values[r * cols + c]).collect()))
            .collect();
        Matrix {
            rows,
            columns,
            names: None,
        }
    }

    /// A numeric matrix from its columns (each `rows` long).
    pub fn from_columns(rows: usize, columns: Vec<Vec<f64>>) -> Matrix {
        Matrix {
            rows,
            columns: columns.into_iter().map(Column::Num).collect(),
            names: None,
        }
    }

    pub fn n_cols(&self) -> usize {
        self.columns.len()
    }

    /// The name of column `c`, or `x{c}` (sklearn's name for unnamed columns) for messages.
    pub fn name(&self, c: usize) -> String {
        self.names
            .as_ref()
            .and_then(|n| n.get(c).cloned())
            .unwrap_or_else(|| format!("x{c}"))
    }

    /// Column `c` as numbers; a text column is an invalid input naming it (text that parses as
    /// a number is accepted, as numpy's `astype(float)` would, and so are missing values).
    pub fn num(&self, c: usize) -> Result<std::borrow::Cow<'_, [f64]>, Error> {
        match self.columns.get(c) {
            Some(Column::Num(v)) => Ok(std::borrow::Cow::Borrowed(v)),
            Some(Column::Text(v)) => v
                .iter()
                .map(|s| match s {
                    None => Ok(f64::NAN),
                    Some(s) => parse_float(s).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "column '{}' holds '{}', which is not a number",
                            self.name(c),
                            clip(s)
                        ))
                    }),
                })
                .collect::<Result<Vec<f64>, _>>()
                .map(std::borrow::Cow::Owned),
            None => Err(Error::internal(format!("no column {c}"))),
        }
    }

    /// All values as a row-major f64 array (`rows * n_cols`), every column numeric.
    pub fn dense(&self) -> Result<Vec<f64>, Error> {
        let cols = self.n_cols();
        let mut out = vec![0.0; self.rows * cols];
        for c in 0..cols {
            let col = self.num(c)?;
            for (r, v) in col.iter().enumerate().take(self.rows) {
                out[r * cols + c] = *v;
            }
        }
        Ok(out)
    }

    /// Refuses NaN and infinite values, as sklearn's `check_array(ensure_all_finite=True)`
    /// does for estimators that do not accept missing values.
    pub fn check_finite(
        &self,
        columns: &[std::borrow::Cow<'_, [f64]>],
        estimator: &str,
    ) -> Result<(), Error> {
        for (c, col) in columns.iter().enumerate() {
            if let Some(v) = col.iter().find(|v| !v.is_finite()) {
                let what = if v.is_nan() {
                    "nan (a missing value)"
                } else {
                    "infinity"
                };
                return Err(Error::invalid_input(format!(
                    "input x contains {what} in column '{}'; {estimator} does not accept missing \
                     values (put a SimpleImputer in front of it)",
                    self.name(c)
                )));
            }
        }
        Ok(())
    }

    /// Checks that the matrix has `n` columns, as sklearn's `n_features_in_` check does.
    pub fn expect_features(&self, n: usize, estimator: &str) -> Result<(), Error> {
        if self.n_cols() != n {
            return Err(Error::invalid_input(format!(
                "x has {} features, but {estimator} is expecting {n} features as input",
                self.n_cols()
            )));
        }
        Ok(())
    }

    /// The columns at `indices`, in that order (names kept).
    pub fn select(&self, indices: &[usize]) -> Matrix {
        Matrix {
            rows: self.rows,
            columns: indices.iter().map(|&i| self.columns[i].clone()).collect(),
            names: self
                .names
                .as_ref()
                .map(|n| indices.iter().map(|&i| n[i].clone()).collect()),
        }
    }

    /// The columns of `parts` side by side (numbered, unnamed), as `np.hstack`.
    pub fn hstack(rows: usize, parts: Vec<Matrix>) -> Matrix {
        Matrix {
            rows,
            columns: parts.into_iter().flat_map(|m| m.columns).collect(),
            names: None,
        }
    }
}

/// Parses a number as Python's `float()` does for the common spellings (`nan`, `inf`).
pub fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

/// At most 40 characters of `s`, for messages.
pub use wasmflow_features::clip;

/// The class of an error, mapped to the plugin's error kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request's data does not fit the model.
    InvalidInput,
    /// The model's files are malformed.
    InvalidModel,
    /// The model uses an estimator or option not implemented.
    Unsupported,
    /// A bug.
    Internal,
}

/// An error with a lowercase message naming the bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn invalid_input(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    pub fn invalid_model(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidModel,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Unsupported,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }

    /// The same error with `context: ` in front of its message.
    pub fn context(self, context: impl std::fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A skops error is a malformed model, or an unsupported one.
impl From<wasmflow_skops::Error> for Error {
    fn from(e: wasmflow_skops::Error) -> Error {
        match e.kind {
            wasmflow_skops::ErrorKind::Invalid => Error::invalid_model(e.message),
            wasmflow_skops::ErrorKind::Unsupported => Error::unsupported(e.message),
        }
    }
}
