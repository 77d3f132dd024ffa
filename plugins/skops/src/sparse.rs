//! scipy sparse matrices, as skops saves them (`SparseMatrixNode`): an `.npz` file (itself a
//! zip, written by `scipy.sparse.save_npz`) of `format.npy` (`csr`, `csc` or `coo`),
//! `shape.npy`, `data.npy` and the index arrays (`indices` + `indptr`, or `row` + `col`).

use std::io::Cursor;

use crate::npy::NdArray;
use crate::{Error, Limits, read_entry};

/// A 2-d sparse matrix as (row, column, value) triplets, every index checked against `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseMatrix {
    /// scipy's format: `csr`, `csc` or `coo`.
    pub format: String,
    /// `[rows, columns]`.
    pub shape: [usize; 2],
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
    pub values: Vec<f64>,
}

impl SparseMatrix {
    /// The matrix as a dense row-major array, refusing more than `max_elements` values.
    /// Duplicate entries are summed, as scipy's `toarray()` does.
    pub fn to_dense(&self, max_elements: usize) -> Result<Vec<f64>, Error> {
        let n = self.shape[0]
            .checked_mul(self.shape[1])
            .filter(|&n| n <= max_elements)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "sparse matrix of shape {:?} is too large to densify",
                    self.shape
                ))
            })?;
        let mut out = vec![0.0; n];
        for ((&r, &c), &v) in self.rows.iter().zip(&self.cols).zip(&self.values) {
            out[r * self.shape[1] + c] += v;
        }
        Ok(out)
    }

    pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<SparseMatrix, Error> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| Error::invalid(format!("not an .npz file: {e}")))?;
        if zip.len() > 16 {
            return Err(Error::invalid("an .npz file with too many entries"));
        }
        let mut array = |name: &str| -> Result<NdArray, Error> {
            let b = read_entry(&mut zip, name, limits.max_entry_bytes)?
                .ok_or_else(|| Error::invalid(format!("the .npz file has no '{name}'")))?;
            NdArray::parse(&b).map_err(|e| e.context(format!("'{name}'")))
        };
        let format = array("format.npy")?
            .to_strings()?
            .into_iter()
            .next()
            .unwrap_or_default();
        let shape = array("shape.npy")?.to_i64()?;
        let [r, c] = shape[..] else {
            return Err(Error::invalid(format!("sparse matrix shape {shape:?}")));
        };
        let (Ok(nr), Ok(nc)) = (usize::try_from(r), usize::try_from(c)) else {
            return Err(Error::invalid(format!("sparse matrix shape {shape:?}")));
        };
        let values = array("data.npy")?.to_f64()?;
        let index = |v: Vec<i64>, bound: usize, what: &str| -> Result<Vec<usize>, Error> {
            v.into_iter()
                .map(|i| {
                    usize::try_from(i)
                        .ok()
                        .filter(|&i| i < bound)
                        .ok_or_else(|| {
                            Error::invalid(format!("sparse {what} index {i} out of range"))
                        })
                })
                .collect()
        };
        let (rows, cols) = match format.as_str() {
            "csr" | "csc" => {
                let (major, minor) = if format == "csr" { (nr, nc) } else { (nc, nr) };
                let indices = index(array("indices.npy")?.to_i64()?, minor, "minor")?;
                let indptr = array("indptr.npy")?.to_i64()?;
                if indptr.len() != major + 1 || indices.len() != values.len() {
                    return Err(Error::invalid("sparse matrix index arrays do not match"));
                }
                let mut majors = Vec::with_capacity(values.len());
                for m in 0..major {
                    let (a, b) = (indptr[m], indptr[m + 1]);
                    if a < 0 || b < a || b as usize > values.len() {
                        return Err(Error::invalid("sparse matrix indptr is not increasing"));
                    }
                    majors.extend(std::iter::repeat_n(m, (b - a) as usize));
                }
                if majors.len() != values.len() {
                    return Err(Error::invalid(
                        "sparse matrix indptr does not cover its data",
                    ));
                }
                if format == "csr" {
                    (majors, indices)
                } else {
                    (indices, majors)
                }
            }
            "coo" => {
                let rows = index(array("row.npy")?.to_i64()?, nr, "row")?;
                let cols = index(array("col.npy")?.to_i64()?, nc, "column")?;
                if rows.len() != values.len() || cols.len() != values.len() {
                    return Err(Error::invalid("sparse matrix index arrays do not match"));
                }
                (rows, cols)
            }
            other => {
                return Err(Error::unsupported(format!(
                    "sparse matrices of format '{other}' are not supported (csr, csc, coo are)"
                )));
            }
        };
        Ok(SparseMatrix {
            format,
            shape: [nr, nc],
            rows,
            cols,
            values,
        })
    }
}
