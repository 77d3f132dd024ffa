//! skops's schema nodes as data, and the builder that reads them from `schema.json`.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use crate::json::{self, Json};
use crate::npy::NdArray;
use crate::{Error, Limits, read_entry};

/// The most values [`Node::to_f64_vec`] makes of a sparse matrix (256 Mi values, 2 GiB).
const MAX_DENSE: usize = 1 << 28;

/// The deepest a `JsonNode`'s own JSON content may nest.
const MAX_CONTENT_DEPTH: usize = 64;

/// One object of the saved Python object graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The Python module of the object's class (`sklearn.linear_model._logistic`, `builtins`,
    /// `numpy`).
    pub module: String,
    /// The Python class name (`LogisticRegression`, `dict`, `ndarray`, `float64`).
    pub class: String,
    /// The skops node type that wrote it (`ObjectNode`, `JsonNode`, ...).
    pub loader: String,
    /// Python's `id()` of the object when it was saved, when the schema has one.
    pub id: Option<String>,
    pub value: Value,
}

/// What a node holds, by skops node type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `ObjectNode`: an object restored from its `__dict__` / `__getstate__`; the attributes
    /// node is usually a [`Value::Dict`]. `None` when the object had no state.
    Object(Option<Arc<Node>>),
    /// `ReduceNode`, `TreeNode`, `LossNode`: an object built by calling its class with `args`
    /// (a tuple node) and then given `state` (usually a dict node). sklearn's `Tree` is one.
    Reduce { args: Arc<Node>, state: Arc<Node> },
    /// `ConstructorFromReduceNode`: the class called with `args` (a tuple node).
    Constructed(Arc<Node>),
    /// `DictNode`: entries in the file's order (keys as written: JSON object keys are strings;
    /// `key_types` holds the Python type of each key, as `TypeNode`s).
    Dict {
        entries: Vec<(String, Arc<Node>)>,
        key_types: Option<Arc<Node>>,
    },
    /// `DefaultDictNode`.
    DefaultDict {
        main: Arc<Node>,
        default_factory: Arc<Node>,
    },
    /// `ListNode`.
    List(Vec<Arc<Node>>),
    /// `TupleNode`.
    Tuple(Vec<Arc<Node>>),
    /// `SetNode`.
    Set(Vec<Arc<Node>>),
    /// `JsonNode`: a Python value that `json.dumps` could write (None, bool, int, float, str,
    /// and lists/dicts of them).
    Json(Json),
    /// `NdArrayNode` stored as a `.npy` file: an ndarray, or a numpy scalar as a 0-d array
    /// (then `class` is its type, e.g. `float64`).
    Array(NdArray),
    /// `NdArrayNode` of dtype object, stored as a list of nodes and a shape.
    ObjectArray {
        shape: Vec<usize>,
        items: Vec<Arc<Node>>,
    },
    /// `DTypeNode`: a numpy dtype, saved as an empty array of that dtype (an object dtype is
    /// an empty array of [`crate::Kind::Object`]).
    DType(NdArray),
    /// `TypeNode`: a class (named by `module` and `class`).
    Type,
    /// `FunctionNode`: a function (named by `module` and `class`).
    Function,
    /// `PartialNode`: `functools.partial(func, *args, **kwds)`.
    Partial {
        func: Arc<Node>,
        args: Arc<Node>,
        kwds: Arc<Node>,
        namespace: Arc<Node>,
    },
    /// `MethodNode`: the bound method `func` of `obj`.
    Method { func: String, obj: Arc<Node> },
    /// `SliceNode`: `slice(start, stop, step)`; the bounds may be ints, strings or null.
    Slice { start: Json, stop: Json, step: Json },
    /// `BytesNode` / `BytearrayNode`.
    Bytes(Vec<u8>),
    /// `MaskedArrayNode`.
    MaskedArray { data: Arc<Node>, mask: Arc<Node> },
    /// `SparseMatrixNode`: a scipy sparse matrix (csr, csc or coo).
    Sparse(crate::SparseMatrix),
    /// A node this reader keeps without interpreting its content (`RandomStateNode`,
    /// `RandomGeneratorNode`, `OperatorFuncNode`, ...).
    Opaque,
}

impl Node {
    /// `module.class`, e.g. `sklearn.linear_model._base.LinearRegression`.
    pub fn qualname(&self) -> String {
        format!("{}.{}", self.module, self.class)
    }

    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::invalid(format!("{} ({}): {what}", self.qualname(), self.loader))
    }

    /// The attributes of an object (an `ObjectNode`'s dict, a reduced object's state dict), or
    /// the entries of a dict node.
    pub fn entries(&self) -> Option<&[(String, Arc<Node>)]> {
        match &self.value {
            Value::Dict { entries, .. } => Some(entries),
            Value::Object(Some(attrs)) => attrs.entries(),
            Value::Reduce { state, .. } => state.entries(),
            _ => None,
        }
    }

    /// An attribute of an object (or an entry of a dict), when present.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// An attribute of an object (or an entry of a dict); missing is an error naming it.
    pub fn attr(&self, name: &str) -> Result<&Node, Error> {
        self.get(name)
            .ok_or_else(|| Error::invalid(format!("{} has no attribute '{name}'", self.qualname())))
    }

    /// An attribute that is present and not `None`.
    pub fn get_some(&self, name: &str) -> Option<&Node> {
        self.get(name).filter(|n| !n.is_none())
    }

    /// Whether the node is Python's `None`.
    pub fn is_none(&self) -> bool {
        matches!(&self.value, Value::Json(Json::Null))
    }

    /// The state (attributes) node of a reduced object (`TreeNode`, ...).
    pub fn state(&self) -> Result<&Node, Error> {
        match &self.value {
            Value::Reduce { state, .. } => Ok(state),
            Value::Object(Some(attrs)) => Ok(attrs),
            _ => Err(self.err("expected an object with state")),
        }
    }

    /// The constructor arguments of a reduced object (`TreeNode`: `(n_features, n_classes,
    /// n_outputs)`).
    pub fn args(&self) -> Result<&[Arc<Node>], Error> {
        match &self.value {
            Value::Reduce { args, .. } | Value::Constructed(args) => args.items(),
            _ => Err(self.err("expected a reduced object")),
        }
    }

    /// The JSON value of a `JsonNode`.
    pub fn json(&self) -> Result<&Json, Error> {
        match &self.value {
            Value::Json(j) => Ok(j),
            _ => Err(self.err("expected a json value")),
        }
    }

    /// A string (`JsonNode` str, or a 0-d/one-element string array).
    pub fn str(&self) -> Result<&str, Error> {
        match &self.value {
            Value::Json(Json::Str(s)) => Ok(s),
            _ => Err(self.err("expected a string")),
        }
    }

    /// A number: a JSON int/float/bool, or a numpy scalar (0-d or one-element array).
    pub fn f64(&self) -> Result<f64, Error> {
        match &self.value {
            Value::Json(j) => j
                .as_f64()
                .ok_or_else(|| self.err(format!("expected a number, got {}", j.type_name()))),
            Value::Array(a) => a.scalar_f64().map_err(|e| e.context(self.qualname())),
            _ => Err(self.err("expected a number")),
        }
    }

    /// An integer: a JSON int/bool, or an integer numpy scalar.
    pub fn i64(&self) -> Result<i64, Error> {
        match &self.value {
            Value::Json(j) => j
                .as_i64()
                .ok_or_else(|| self.err(format!("expected an integer, got {}", j.type_name()))),
            Value::Array(a) => a.scalar_i64().map_err(|e| e.context(self.qualname())),
            _ => Err(self.err("expected an integer")),
        }
    }

    /// A boolean: a JSON bool, or a numpy bool scalar.
    pub fn bool(&self) -> Result<bool, Error> {
        match &self.value {
            Value::Json(Json::Bool(b)) => Ok(*b),
            Value::Array(a) => Ok(a.scalar_i64().map_err(|e| e.context(self.qualname()))? != 0),
            _ => Err(self.err("expected a boolean")),
        }
    }

    /// The ndarray of an `NdArrayNode` stored as `.npy` (not object arrays: see
    /// [`Node::to_f64_vec`], [`Node::to_strings`]).
    pub fn array(&self) -> Result<&NdArray, Error> {
        match &self.value {
            Value::Array(a) => Ok(a),
            _ => Err(self.err("expected a numpy array")),
        }
    }

    /// The items of a list, tuple, set, or object array.
    pub fn items(&self) -> Result<&[Arc<Node>], Error> {
        match &self.value {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => Ok(v),
            Value::ObjectArray { items, .. } => Ok(items),
            _ => Err(self.err("expected a list or tuple")),
        }
    }

    /// The shape of an array (numeric or object); a list's shape is `[len]`.
    pub fn shape(&self) -> Result<Vec<usize>, Error> {
        match &self.value {
            Value::Array(a) => Ok(a.shape.clone()),
            Value::Sparse(m) => Ok(m.shape.to_vec()),
            Value::ObjectArray { shape, .. } => Ok(shape.clone()),
            Value::List(v) | Value::Tuple(v) => Ok(vec![v.len()]),
            _ => Err(self.err("expected an array")),
        }
    }

    /// The values of a numeric array, of an object array of numbers, of a list/tuple of
    /// numbers, or of a sparse matrix (densified), as f64 (row-major).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, Error> {
        match &self.value {
            Value::Array(a) => a.to_f64().map_err(|e| e.context(self.qualname())),
            Value::Sparse(m) => m.to_dense(MAX_DENSE),
            Value::ObjectArray { items, .. } | Value::List(items) | Value::Tuple(items) => {
                items.iter().map(|n| n.f64()).collect()
            }
            Value::Json(Json::List(items)) => items
                .iter()
                .map(|j| j.as_f64().ok_or_else(|| self.err("expected numbers")))
                .collect(),
            _ => Err(self.err("expected an array of numbers")),
        }
    }

    /// The values of an integer array, or of an object array / list of ints, as i64.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, Error> {
        match &self.value {
            Value::Array(a) => a.to_i64().map_err(|e| e.context(self.qualname())),
            Value::ObjectArray { items, .. } | Value::List(items) | Value::Tuple(items) => {
                items.iter().map(|n| n.i64()).collect()
            }
            Value::Json(Json::List(items)) => items
                .iter()
                .map(|j| j.as_i64().ok_or_else(|| self.err("expected integers")))
                .collect(),
            _ => Err(self.err("expected an array of integers")),
        }
    }

    /// The values of a string array (`<U`, `S`), or of an object array / list of str.
    pub fn to_strings(&self) -> Result<Vec<String>, Error> {
        match &self.value {
            Value::Array(a) => a.to_strings().map_err(|e| e.context(self.qualname())),
            Value::ObjectArray { items, .. } | Value::List(items) | Value::Tuple(items) => {
                items.iter().map(|n| n.str().map(str::to_string)).collect()
            }
            Value::Json(Json::List(items)) => items
                .iter()
                .map(|j| {
                    j.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.err("expected strings"))
                })
                .collect(),
            _ => Err(self.err("expected an array of strings")),
        }
    }
}

pub(crate) struct Builder<'a, 'b> {
    pub zip: &'a mut zip::ZipArchive<Cursor<&'b [u8]>>,
    pub limits: &'a Limits,
    pub memo: HashMap<String, Arc<Node>>,
    pub in_progress: Vec<String>,
    pub total_bytes: u64,
    pub nodes: usize,
}

fn id_of(state: &Json) -> Option<String> {
    match state.get("__id__")? {
        Json::Int(i) => Some(i.to_string()),
        Json::BigInt(s) => Some(s.clone()),
        Json::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn field<'j>(state: &'j Json, key: &str, loader: &str) -> Result<&'j Json, Error> {
    state
        .get(key)
        .ok_or_else(|| Error::invalid(format!("schema.json: a {loader} has no '{key}'")))
}

impl Builder<'_, '_> {
    pub fn node(&mut self, state: &Json, depth: usize) -> Result<Arc<Node>, Error> {
        if depth > self.limits.max_node_depth {
            return Err(Error::invalid(format!(
                "schema.json: nodes nested more than {} deep",
                self.limits.max_node_depth
            )));
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(Error::invalid(format!(
                "schema.json: more than {} nodes",
                self.limits.max_nodes
            )));
        }
        if !matches!(state, Json::Object(_)) {
            return Err(Error::invalid(format!(
                "schema.json: expected a node (an object), got {}",
                state.type_name()
            )));
        }
        let id = id_of(state);
        let loader = state
            .get("__loader__")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::invalid("schema.json: a node has no '__loader__'"))?
            .to_string();
        if let Some(id) = &id {
            if let Some(node) = self.memo.get(id) {
                return Ok(node.clone());
            }
            if self.in_progress.contains(id) {
                return Err(Error::invalid(format!(
                    "schema.json: node {id} contains itself (a reference cycle)"
                )));
            }
        }
        if loader == "CachedNode" {
            return Err(Error::invalid(format!(
                "schema.json: a cached node refers to an unknown object id {}",
                id.as_deref().unwrap_or("(none)")
            )));
        }
        let text = |key: &str| -> String {
            state
                .get(key)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let module = text("__module__");
        let class = text("__class__");
        if let Some(id) = &id {
            self.in_progress.push(id.clone());
        }
        let value = self.value(state, &loader, depth);
        if id.is_some() {
            self.in_progress.pop();
        }
        let node = Arc::new(Node {
            module,
            class,
            loader,
            id: id.clone(),
            value: value?,
        });
        if let Some(id) = id {
            self.memo.insert(id, node.clone());
        }
        Ok(node)
    }

    fn child(
        &mut self,
        state: &Json,
        key: &str,
        loader: &str,
        depth: usize,
    ) -> Result<Arc<Node>, Error> {
        let c = field(state, key, loader)?;
        self.node(c, depth + 1)
    }

    fn list(
        &mut self,
        content: &Json,
        loader: &str,
        depth: usize,
    ) -> Result<Vec<Arc<Node>>, Error> {
        let items = content.as_list().ok_or_else(|| {
            Error::invalid(format!("schema.json: a {loader}'s content is not a list"))
        })?;
        items.iter().map(|i| self.node(i, depth + 1)).collect()
    }

    fn file(&mut self, state: &Json, loader: &str) -> Result<Vec<u8>, Error> {
        let name = field(state, "file", loader)?.as_str().ok_or_else(|| {
            Error::invalid(format!("schema.json: a {loader}'s 'file' is not a string"))
        })?;
        let max = self
            .limits
            .max_entry_bytes
            .min(self.limits.max_total_bytes.saturating_sub(self.total_bytes));
        let bytes = read_entry(self.zip, name, max)?.ok_or_else(|| {
            Error::invalid(format!(
                "schema.json names '{name}', which is not in the zip"
            ))
        })?;
        self.total_bytes += bytes.len() as u64;
        Ok(bytes)
    }

    fn value(&mut self, state: &Json, loader: &str, depth: usize) -> Result<Value, Error> {
        Ok(match loader {
            "ObjectNode" => match state.get("content") {
                None | Some(Json::Null) => Value::Object(None),
                Some(c) => Value::Object(Some(self.node(c, depth + 1)?)),
            },
            "ReduceNode" | "TreeNode" | "LossNode" => {
                let reduce = field(state, "__reduce__", loader)?;
                let args = self.child(reduce, "args", loader, depth)?;
                let state = self.child(state, "content", loader, depth)?;
                Value::Reduce { args, state }
            }
            "ConstructorFromReduceNode" => {
                Value::Constructed(self.child(state, "content", loader, depth)?)
            }
            "DictNode" => {
                let Json::Object(content) = field(state, "content", loader)? else {
                    return Err(Error::invalid(
                        "schema.json: a DictNode's content is not an object",
                    ));
                };
                let mut entries = Vec::with_capacity(content.len());
                for (k, v) in content {
                    entries.push((k.clone(), self.node(v, depth + 1)?));
                }
                let key_types = match state.get("key_types") {
                    Some(k) => Some(self.node(k, depth + 1)?),
                    None => None,
                };
                Value::Dict { entries, key_types }
            }
            "DefaultDictNode" => {
                let content = field(state, "content", loader)?;
                Value::DefaultDict {
                    main: self.child(content, "main", loader, depth)?,
                    default_factory: self.child(content, "default_factory", loader, depth)?,
                }
            }
            "ListNode" => {
                Value::List(self.list(field(state, "content", loader)?, loader, depth)?)
            }
            "TupleNode" => {
                Value::Tuple(self.list(field(state, "content", loader)?, loader, depth)?)
            }
            "SetNode" => Value::Set(self.list(field(state, "content", loader)?, loader, depth)?),
            "JsonNode" => {
                let text = field(state, "content", loader)?.as_str().ok_or_else(|| {
                    Error::invalid("schema.json: a JsonNode's content is not a string")
                })?;
                Value::Json(json::parse(text, MAX_CONTENT_DEPTH)?)
            }
            "NdArrayNode" => match field(state, "type", loader)?.as_str() {
                Some("numpy") => {
                    let bytes = self.file(state, loader)?;
                    let name = state.get("file").and_then(Json::as_str).unwrap_or_default();
                    Value::Array(
                        NdArray::parse(&bytes).map_err(|e| e.context(format!("'{name}'")))?,
                    )
                }
                Some("json") => {
                    let items = self.list(field(state, "content", loader)?, loader, depth)?;
                    let shape_node = self.child(state, "shape", loader, depth)?;
                    let shape = shape_node
                        .items()?
                        .iter()
                        .map(|d| {
                            d.i64().and_then(|v| {
                                usize::try_from(v)
                                    .map_err(|_| Error::invalid(format!("bad array size {v}")))
                            })
                        })
                        .collect::<Result<Vec<usize>, _>>()?;
                    // skops writes `obj.tolist()`: for 1-d arrays, the items; for n-d arrays,
                    // nested lists whose outer length is the first dimension.
                    let n = if shape.len() == 1 {
                        shape[0]
                    } else {
                        shape.first().copied().unwrap_or(1)
                    };
                    if items.len() != n {
                        return Err(Error::invalid(format!(
                            "schema.json: an object array of shape {shape:?} holds {} items",
                            items.len()
                        )));
                    }
                    Value::ObjectArray { shape, items }
                }
                other => {
                    return Err(Error::unsupported(format!(
                        "schema.json: unknown NdArrayNode type {other:?}"
                    )));
                }
            },
            "DTypeNode" => {
                let content = self.child(state, "content", loader, depth)?;
                match &content.value {
                    Value::Array(a) => Value::DType(a.clone()),
                    // An object dtype: skops saved an empty object array, as JSON.
                    Value::ObjectArray { .. } => Value::DType(NdArray {
                        shape: vec![0],
                        dtype: crate::npy::DType::Scalar(crate::npy::Scalar {
                            kind: crate::npy::Kind::Object,
                            size: 8,
                            big_endian: false,
                        }),
                        data: Vec::new(),
                    }),
                    _ => return Err(Error::invalid("schema.json: a DTypeNode holds no array")),
                }
            }
            "TypeNode" => Value::Type,
            "FunctionNode" => Value::Function,
            "PartialNode" => {
                let content = field(state, "content", loader)?;
                Value::Partial {
                    func: self.child(content, "func", loader, depth)?,
                    args: self.child(content, "args", loader, depth)?,
                    kwds: self.child(content, "kwds", loader, depth)?,
                    namespace: self.child(content, "namespace", loader, depth)?,
                }
            }
            "MethodNode" => {
                let content = field(state, "content", loader)?;
                let func = field(content, "func", loader)?
                    .as_str()
                    .ok_or_else(|| {
                        Error::invalid("schema.json: a MethodNode's func is not a string")
                    })?
                    .to_string();
                Value::Method {
                    func,
                    obj: self.child(content, "obj", loader, depth)?,
                }
            }
            "SliceNode" => {
                let content = field(state, "content", loader)?;
                let get = |k: &str| content.get(k).cloned().unwrap_or(Json::Null);
                Value::Slice {
                    start: get("start"),
                    stop: get("stop"),
                    step: get("step"),
                }
            }
            "BytesNode" | "BytearrayNode" => Value::Bytes(self.file(state, loader)?),
            "MaskedArrayNode" => {
                let content = field(state, "content", loader)?;
                Value::MaskedArray {
                    data: self.child(content, "data", loader, depth)?,
                    mask: self.child(content, "mask", loader, depth)?,
                }
            }
            "SparseMatrixNode" => {
                let bytes = self.file(state, loader)?;
                let name = state.get("file").and_then(Json::as_str).unwrap_or_default();
                Value::Sparse(
                    crate::SparseMatrix::parse(&bytes, self.limits)
                        .map_err(|e| e.context(format!("'{name}'")))?,
                )
            }
            "RandomStateNode"
            | "RandomGeneratorNode"
            | "OperatorFuncNode"
            | "_DictWithDeprecatedKeysNode" => Value::Opaque,
            other => {
                return Err(Error::unsupported(format!(
                    "schema.json: unknown skops node type '{other}'"
                )));
            }
        })
    }
}
