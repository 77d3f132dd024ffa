//! A request's data as a dense row-major matrix in the model's feature order.

use crate::features::{Naming, match_columns, tensor_rows};
use crate::{Column, Data, Error, Values};

/// Rows of features, stored row-major: row `r` is `values[r * cols..(r + 1) * cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    /// The number of rows.
    pub rows: usize,
    /// The number of features per row.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub values: Vec<T>,
}

impl<T> Matrix<T> {
    /// Row `r` (panics when `r >= rows`).
    pub fn row(&self, r: usize) -> &[T] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// The rows in order. A matrix with no columns has `rows` empty rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[T]> {
        (0..self.rows).map(move |r| self.row(r))
    }
}

/// A float type a matrix can hold. Sealed: `f32` and `f64`.
pub trait Float: Copy + private::Sealed {
    /// Converts a 64-bit float, rounding to nearest for `f32`.
    fn from_f64(x: f64) -> Self;
    /// Not-a-number, the value of a missing cell.
    const NAN: Self;
}

impl Float for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    const NAN: Self = f64::NAN;
}

impl Float for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    const NAN: Self = f32::NAN;
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Data {
    /// The number of rows: a table's column length, or the first dimension of the first tensor
    /// (0 when there is nothing).
    pub fn num_rows(&self) -> usize {
        match self {
            Data::Table(columns) => columns.first().map_or(0, |c| c.values.len()),
            Data::Tensors(tensors) => tensors
                .first()
                .and_then(|t| t.shape.first())
                .map_or(0, |&n| usize::try_from(n).unwrap_or(0)),
        }
    }

    /// A table's column by exact name (None for tensors).
    pub fn column(&self, name: &str) -> Option<&Column> {
        match self {
            Data::Table(columns) => columns.iter().find(|c| c.name == name),
            Data::Tensors(_) => None,
        }
    }

    /// For each of `features`, the table column that feeds it: by name, or by position when no
    /// column name is a feature and there are exactly as many columns as features (a DataFrame
    /// without names, an `instances` list of lists). The error names the missing features.
    pub fn match_features(
        &self,
        features: &[String],
        naming: Naming,
    ) -> Result<Vec<&Column>, Error> {
        let Data::Table(columns) = self else {
            return Err(Error::invalid_input(
                "expected a table of columns, got tensors",
            ));
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let picked = match_columns(features, features.len(), &names, naming)
            .map_err(Error::invalid_input)?;
        Ok(picked.into_iter().map(|i| &columns[i]).collect())
    }

    /// The data as a dense matrix of `f64` in the order of `features`; see
    /// [`Data::to_matrix_with`]. Text columns are an error.
    pub fn to_matrix_f64(&self, features: &[String]) -> Result<Matrix<f64>, Error> {
        self.to_matrix_with(features, Naming::default(), reject_text)
    }

    /// The data as a dense matrix of `f32` in the order of `features`; see
    /// [`Data::to_matrix_with`]. Text columns are an error.
    pub fn to_matrix_f32(&self, features: &[String]) -> Result<Matrix<f32>, Error> {
        self.to_matrix_with(features, Naming::default(), reject_text)
    }

    /// The data as a dense row-major matrix whose column `j` is `features[j]`.
    ///
    /// A table's columns are matched as [`Data::match_features`] does; numbers and booleans
    /// become floats (`true` is 1), and the host's missing values (JSON `null`, CSV's empty
    /// cells) already arrive as NaN in float columns. A text column goes through `encode(j,
    /// value)`, so a plugin with categorical features maps each string to its code (return
    /// NaN for an unknown or missing category); binary columns are an error.
    ///
    /// Tensors: one tensor shaped `[rows, features.len()]`, or `[rows]` for a one-feature model.
    pub fn to_matrix_with<T: Float>(
        &self,
        features: &[String],
        naming: Naming,
        mut encode: impl FnMut(usize, &str) -> Result<T, Error>,
    ) -> Result<Matrix<T>, Error> {
        let cols = features.len();
        match self {
            Data::Table(_) => {
                let columns = self.match_features(features, naming)?;
                let rows = columns.first().map_or(self.num_rows(), |c| c.values.len());
                let mut values = vec![T::NAN; rows * cols];
                for (j, column) in columns.iter().enumerate() {
                    if column.values.len() != rows {
                        return Err(Error::invalid_input(format!(
                            "column '{}' has {} values, the first column {rows}",
                            column.name,
                            column.values.len()
                        )));
                    }
                    let mut put = |r: usize, x: T| values[r * cols + j] = x;
                    match &column.values {
                        Values::Float64(v) => v
                            .iter()
                            .enumerate()
                            .for_each(|(r, &x)| put(r, T::from_f64(x))),
                        Values::Float32(v) => v
                            .iter()
                            .enumerate()
                            .for_each(|(r, &x)| put(r, T::from_f64(f64::from(x)))),
                        Values::Int64(v) => v
                            .iter()
                            .enumerate()
                            .for_each(|(r, &x)| put(r, T::from_f64(x as f64))),
                        Values::Int32(v) => v
                            .iter()
                            .enumerate()
                            .for_each(|(r, &x)| put(r, T::from_f64(f64::from(x)))),
                        Values::Boolean(v) => v
                            .iter()
                            .enumerate()
                            .for_each(|(r, &x)| put(r, T::from_f64(f64::from(u8::from(x))))),
                        Values::Text(v) => {
                            for (r, s) in v.iter().enumerate() {
                                let x = encode(j, s).map_err(|e| Error {
                                    kind: e.kind,
                                    message: format!("column '{}': {}", column.name, e.message),
                                })?;
                                put(r, x);
                            }
                        }
                        Values::Binary(_) => {
                            return Err(Error::invalid_input(format!(
                                "column '{}' has binary values; expected numbers",
                                column.name
                            )));
                        }
                    }
                }
                Ok(Matrix { rows, cols, values })
            }
            Data::Tensors(tensors) => {
                let [tensor] = tensors.as_slice() else {
                    return Err(Error::invalid_input(format!(
                        "expected one tensor, got {}",
                        tensors.len()
                    )));
                };
                let rows = tensor_rows(&tensor.shape, tensor.values.len(), cols, true).ok_or_else(
                    || {
                        Error::invalid_input(format!(
                            "tensor shape {:?} does not match [rows, {cols}]",
                            tensor.shape
                        ))
                    },
                )?;
                let values = match &tensor.values {
                    Values::Float32(v) => v.iter().map(|&x| T::from_f64(f64::from(x))).collect(),
                    other => other
                        .to_f64()
                        .ok_or_else(|| {
                            Error::invalid_input(format!(
                                "tensor '{}' has {} values; expected numbers",
                                tensor.name,
                                other.type_name()
                            ))
                        })?
                        .into_iter()
                        .map(T::from_f64)
                        .collect(),
                };
                Ok(Matrix { rows, cols, values })
            }
        }
    }
}

fn reject_text<T>(_feature: usize, value: &str) -> Result<T, Error> {
    Err(Error::invalid_input(format!(
        "text value '{}' where a number was expected",
        crate::features::clip(value)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Tensor};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn column(name: &str, values: Values) -> Column {
        Column {
            name: name.into(),
            values,
        }
    }

    #[test]
    fn table_by_name_in_feature_order_with_nan_kept() {
        let data = Data::Table(vec![
            column("b", Values::Int64(vec![1, 2])),
            column("a", Values::Float64(vec![0.5, f64::NAN])),
            column("c", Values::Boolean(vec![true, false])),
        ]);
        let m = data.to_matrix_f64(&names(&["a", "b", "c"])).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.row(0), &[0.5, 1.0, 1.0]);
        assert!(m.row(1)[0].is_nan());
        assert_eq!(&m.row(1)[1..], &[2.0, 0.0]);
        let m32 = data.to_matrix_f32(&names(&["c", "a"])).unwrap();
        assert_eq!(m32.row(0), &[1.0f32, 0.5]);
    }

    #[test]
    fn table_by_position_when_no_name_matches() {
        let data = Data::Table(vec![
            column("0", Values::Float32(vec![1.0, 3.0])),
            column("1", Values::Int32(vec![2, 4])),
        ]);
        let m = data.to_matrix_f64(&names(&["x", "y"])).unwrap();
        assert_eq!(m.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.iter_rows().count(), 2);
    }

    #[test]
    fn missing_column_and_text_are_invalid_input() {
        let data = Data::Table(vec![
            column("a", Values::Float64(vec![1.0])),
            column("s", Values::Text(vec!["red".into()])),
        ]);
        let err = data.to_matrix_f64(&names(&["a", "z"])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert_eq!(
            err.message,
            "missing column 'z'; the model's features are 'a', 'z'"
        );
        let err = data.to_matrix_f64(&names(&["a", "s"])).unwrap_err();
        assert_eq!(
            err.message,
            "column 's': text value 'red' where a number was expected"
        );
    }

    #[test]
    fn text_goes_through_the_encoder() {
        let data = Data::Table(vec![
            column(
                "colour",
                Values::Text(vec!["red".into(), "blue".into(), "".into()]),
            ),
            column("n", Values::Int64(vec![1, 2, 3])),
        ]);
        let m: Matrix<f64> = data
            .to_matrix_with(&names(&["n", "colour"]), Naming::default(), |j, s| {
                assert_eq!(j, 1);
                Ok(match s {
                    "red" => 0.0,
                    "blue" => 1.0,
                    _ => f64::NAN,
                })
            })
            .unwrap();
        assert_eq!(&m.values[..4], &[1.0, 0.0, 2.0, 1.0]);
        assert_eq!(m.values[4], 3.0);
        assert!(m.values[5].is_nan());
    }

    #[test]
    fn tensors_two_d_and_vector() {
        let t = |shape: Vec<i64>, values: Values| {
            Data::Tensors(vec![Tensor {
                name: String::new(),
                shape,
                values,
            }])
        };
        let m = t(vec![2, 2], Values::Int64(vec![1, 2, 3, 4]))
            .to_matrix_f32(&names(&["a", "b"]))
            .unwrap();
        assert_eq!((m.rows, m.values), (2, vec![1.0f32, 2.0, 3.0, 4.0]));
        let m = t(vec![3], Values::Float64(vec![1.0, 2.0, 3.0]))
            .to_matrix_f64(&names(&["a"]))
            .unwrap();
        assert_eq!((m.rows, m.cols), (3, 1));
        let err = t(vec![2, 3], Values::Float64(vec![0.0; 6]))
            .to_matrix_f64(&names(&["a", "b"]))
            .unwrap_err();
        assert_eq!(err.message, "tensor shape [2, 3] does not match [rows, 2]");
        let err = t(vec![1], Values::Text(vec!["x".into()]))
            .to_matrix_f64(&names(&["a"]))
            .unwrap_err();
        assert_eq!(err.message, "tensor '' has text values; expected numbers");
    }

    #[test]
    fn zero_rows() {
        let data = Data::Table(vec![column("a", Values::Float64(vec![]))]);
        let m = data.to_matrix_f64(&names(&["a"])).unwrap();
        assert_eq!((m.rows, m.cols, m.values.len()), (0, 1, 0));
        assert_eq!(data.num_rows(), 0);
    }
}
