//! Building `predict`'s answer. The host writes it as MLflow's scoring server writes what a
//! pyfunc model returns: a table as a DataFrame (`[{"y": 0.5}, ...]` records, even with one
//! column), one tensor named `""` as a numpy array (a plain list, nested by its shape), other
//! tensors as a dict of arrays.

use crate::{Column, Data, Tensor, Values};

impl Data {
    /// A table of one column: answered as `{"predictions": [{"name": v0}, {"name": v1}, ...]}`.
    pub fn single_column(name: impl Into<String>, values: impl Into<Values>) -> Data {
        Data::Table(vec![Column {
            name: name.into(),
            values: values.into(),
        }])
    }

    /// One unnamed 1-D tensor, one value per row: answered as `{"predictions": [v0, v1, ...]}`,
    /// as scikit-learn's `predict` is.
    pub fn single_vector(values: impl Into<Values>) -> Data {
        let values = values.into();
        Data::single_tensor(vec![values.len() as i64], values)
    }

    /// One unnamed tensor of `shape` (row-major values), answered as a nested list; `[rows,
    /// k]` gives one list of `k` values per row, as `predict_proba` does.
    pub fn single_tensor(shape: Vec<i64>, values: impl Into<Values>) -> Data {
        Data::Tensors(vec![Tensor {
            name: String::new(),
            shape,
            values: values.into(),
        }])
    }
}

macro_rules! values_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl From<Vec<$ty>> for Values {
            fn from(v: Vec<$ty>) -> Self {
                Values::$variant(v)
            }
        }
    )*};
}

values_from!(f64 => Float64, f32 => Float32, i64 => Int64, i32 => Int32, bool => Boolean, String => Text);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders() {
        assert_eq!(
            Data::single_column("y", vec![1.0, 2.0]),
            Data::Table(vec![Column {
                name: "y".into(),
                values: Values::Float64(vec![1.0, 2.0])
            }])
        );
        assert_eq!(
            Data::single_vector(vec![1i64, 0, 1]),
            Data::Tensors(vec![Tensor {
                name: String::new(),
                shape: vec![3],
                values: Values::Int64(vec![1, 0, 1])
            }])
        );
        let Data::Tensors(t) = Data::single_tensor(vec![2, 2], vec![0.1f32, 0.9, 0.5, 0.5]) else {
            panic!("not a tensor");
        };
        assert_eq!(t[0].shape, vec![2, 2]);
    }
}
