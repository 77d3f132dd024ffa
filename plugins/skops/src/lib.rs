//! Reads skops files — scikit-learn models saved with `skops.io.dump`, which MLflow writes as
//! `model.skops` — as data. Nothing is executed, imported or constructed by name: the file
//! becomes a tree of [`Node`]s that say which Python class each object was (`module`, `class`)
//! and hold its attributes, lists, JSON values and numpy arrays.
//!
//! A skops file is a zip holding `schema.json` and one `.npy` file per numpy array. Each node
//! of the schema is a JSON object with `__class__`, `__module__`, `__loader__` (the skops node
//! type: `ObjectNode`, `DictNode`, `ListNode`, `TupleNode`, `JsonNode`, `NdArrayNode`,
//! `TreeNode`, ...), usually `__id__` (Python's `id()` of the object when saved) and a
//! `content`. Like skops, a node whose `__id__` was already read stands for that earlier node
//! (skops 0.16 writes shared objects in full each time, so this only matters for `CachedNode`
//! and hostile files); a node that contains itself is an error.
//!
//! ```ignore
//! let file = wasmflow_skops::read(&bytes)?;
//! let est = &file.root;                       // e.g. sklearn.tree._classes.DecisionTreeClassifier
//! let tree = est.attr("tree_")?;              // a TreeNode (Reduce)
//! let nodes = tree.state()?.attr("nodes")?.array()?;
//! let left = nodes.field_i64("left_child")?;
//! ```
//!
//! Every size is checked before anything is allocated: zip entries against [`Limits`], `.npy`
//! shapes against the bytes present, nesting against a depth limit.

pub mod json;
mod node;
pub mod npy;
pub mod sparse;

pub use json::Json;
pub use node::{Node, Value};
pub use npy::{DType, Field, Kind, NdArray, Scalar};
pub use sparse::SparseMatrix;

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

/// What kind of problem a file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is malformed, truncated, too large, or not what was expected.
    Invalid,
    /// The file is well formed but uses something this reader does not support.
    Unsupported,
}

/// An error reading a skops file or navigating its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// A lowercase message naming the bad value.
    pub message: String,
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Invalid,
            message: message.into(),
        }
    }

    pub fn unsupported(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Unsupported,
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

/// Bounds on what a file may make the reader allocate or traverse.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most entries the zip may have.
    pub max_entries: usize,
    /// The largest `schema.json`, in bytes.
    pub max_schema_bytes: u64,
    /// The largest single `.npy` (or other) entry, uncompressed, in bytes.
    pub max_entry_bytes: u64,
    /// The most bytes all arrays together may hold.
    pub max_total_bytes: u64,
    /// The deepest nesting of JSON in `schema.json` (each skops node takes two levels or so).
    pub max_json_depth: usize,
    /// The deepest nesting of skops nodes.
    pub max_node_depth: usize,
    /// The most nodes the schema may hold.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 1_000_000,
            max_schema_bytes: 256 << 20,
            max_entry_bytes: 1 << 30,
            max_total_bytes: 2 << 30,
            max_json_depth: 256,
            max_node_depth: 100,
            max_nodes: 20_000_000,
        }
    }
}

/// A skops file read into nodes.
#[derive(Clone, Debug)]
pub struct SkopsFile {
    /// The saved object (for MLflow, the estimator or pipeline).
    pub root: Arc<Node>,
    /// skops's format protocol (`protocol` in schema.json; 2 for skops 0.10 to 0.16).
    pub protocol: Option<i64>,
    /// The version of skops that wrote the file (`_skops_version`).
    pub skops_version: Option<String>,
}

/// Reads a skops file from its bytes with the default [`Limits`].
pub fn read(bytes: &[u8]) -> Result<SkopsFile, Error> {
    read_with_limits(bytes, &Limits::default())
}

/// Reads a skops file from its bytes.
pub fn read_with_limits(bytes: &[u8], limits: &Limits) -> Result<SkopsFile, Error> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::invalid(format!("not a skops file (a zip): {e}")))?;
    if zip.len() > limits.max_entries {
        return Err(Error::invalid(format!(
            "the zip has {} entries, more than {}",
            zip.len(),
            limits.max_entries
        )));
    }
    let schema = read_entry(&mut zip, "schema.json", limits.max_schema_bytes)?
        .ok_or_else(|| Error::invalid("not a skops file: no schema.json in the zip"))?;
    let schema =
        std::str::from_utf8(&schema).map_err(|_| Error::invalid("schema.json is not utf-8"))?;
    let schema =
        json::parse(schema, limits.max_json_depth).map_err(|e| e.context("schema.json"))?;
    let protocol = schema.get("protocol").and_then(Json::as_i64);
    let skops_version = schema
        .get("_skops_version")
        .and_then(Json::as_str)
        .map(str::to_string);
    let mut builder = node::Builder {
        zip: &mut zip,
        limits,
        memo: HashMap::new(),
        in_progress: Vec::new(),
        total_bytes: 0,
        nodes: 0,
    };
    let root = builder.node(&schema, 0)?;
    Ok(SkopsFile {
        root,
        protocol,
        skops_version,
    })
}

/// Reads one entry of the zip, refusing entries larger than `max` (declared or actual).
/// `Ok(None)` when there is no such entry.
pub(crate) fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, Error> {
    let entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => {
            return Err(Error::invalid(format!(
                "cannot read '{name}' in the zip: {e}"
            )));
        }
    };
    let declared = entry.size();
    if declared > max {
        return Err(Error::invalid(format!(
            "'{name}' declares {declared} bytes, more than the limit of {max}"
        )));
    }
    // Never trust the declared size for the allocation beyond the limit: read at most one byte
    // more than declared and compare.
    let mut out = Vec::with_capacity(declared.min(64 << 20) as usize);
    entry
        .take(declared + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid(format!("cannot read '{name}' in the zip: {e}")))?;
    if out.len() as u64 != declared {
        return Err(Error::invalid(format!(
            "'{name}' holds {} bytes but declares {declared}",
            out.len()
        )));
    }
    Ok(Some(out))
}
