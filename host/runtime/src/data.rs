//! Checks on what plugins return: the WIT types cannot say that columns have equal lengths or
//! that a tensor's shape matches its values, so the host checks before using them.

use crate::bindings::{Data, Values};

impl Values {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Float64(v) => v.len(),
            Values::Float32(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Boolean(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Binary(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why `data` breaks the contract, if it does.
pub(crate) fn check_output(data: &Data) -> Result<(), String> {
    match data {
        Data::Table(columns) => {
            let Some(first) = columns.first() else {
                return Ok(());
            };
            let rows = first.values.len();
            if let Some(bad) = columns.iter().find(|c| c.values.len() != rows) {
                return Err(format!(
                    "returned columns of different lengths: '{}' has {} values, '{}' has {}",
                    first.name,
                    rows,
                    bad.name,
                    bad.values.len()
                ));
            }
        }
        Data::Tensors(tensors) => {
            for tensor in tensors {
                if let Some(dim) = tensor.shape.iter().find(|&&d| d < 0) {
                    return Err(format!(
                        "returned tensor '{}' with a negative dimension {dim}",
                        tensor.name
                    ));
                }
                let expected = tensor
                    .shape
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
                if expected != Some(tensor.values.len() as u64) {
                    return Err(format!(
                        "returned tensor '{}' of shape {:?} with {} values",
                        tensor.name,
                        tensor.shape,
                        tensor.values.len()
                    ));
                }
            }
        }
    }
    Ok(())
}
