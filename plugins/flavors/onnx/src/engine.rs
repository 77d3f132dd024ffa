//! The inference core: plain Rust on tract's types, with nothing of the WIT world, so that
//! native code (tests, benchmarks) runs exactly what the component runs.
//!
//! [`OnnxModel::load`] parses an ONNX file (and any external-data files beside it), gives the
//! inputs' unknown dimensions symbols (the leading one is the batch, `N`, shared by every
//! input), and optimizes the graph once into a plan that serves every batch size.
//! [`OnnxModel::predict`] maps a batch the way MLflow's `_OnnxModelWrapper.predict` maps a
//! pandas DataFrame or a dict of numpy arrays (see [`Batch`]); [`OnnxModel::run`] is the bare
//! tract call underneath.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{SimplePlan, SimpleState};
use tract_onnx::tract_hir::internal::{DimFact, DimLike, Factoid, ShapeFactoid};

use crate::dense::{DenseBackend, offload};

/// The class of an [`EngineError`], the same four as the WIT interface's `error-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    InvalidModel,
    Unsupported,
    Internal,
}

/// What went wrong, with a lowercase message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
}

impl EngineError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError {
            kind,
            message: message.into(),
        }
    }
    fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    fn invalid_model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidModel, message)
    }
    fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for EngineError {}

/// tract's error chain on one line ("outer: inner: root").
fn chain(e: &TractError) -> String {
    format!("{e:#}")
}

/// Flat, typed values: the WIT interface's `values`, owned, so the component hands its
/// lists over without copying them.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float64(Vec<f64>),
    Float32(Vec<f32>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Boolean(Vec<bool>),
    Text(Vec<String>),
    Binary(Vec<Vec<u8>>),
}

impl Values {
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

    pub fn type_name(&self) -> &'static str {
        match self {
            Values::Float64(_) => "float64",
            Values::Float32(_) => "float32",
            Values::Int64(_) => "int64",
            Values::Int32(_) => "int32",
            Values::Boolean(_) => "boolean",
            Values::Text(_) => "text",
            Values::Binary(_) => "binary",
        }
    }
}

/// A named column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// A named tensor, values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// A model's input or output, as MLflow's ONNX wrapper sees it.
///
/// Input: a `Table` is a pandas DataFrame. With one ONNX input, the whole frame becomes one
/// `[rows, columns]` tensor (`DataFrame.values`, columns in the order given) cast to the
/// input's type; with several inputs, input `x` takes column `x` (`[rows]`, or `[rows, 1]` when
/// the input is declared 2-D). `Tensors` are a dict of numpy arrays fed by name; a single
/// tensor whose name matches no input feeds a single-input model (a bare ndarray).
///
/// Output: a `Table` input gives a `Table` whose column `o` is output `o` flattened (MLflow's
/// `DataFrame.from_dict({o: p.reshape(-1)})`), when every output flattens to the same length;
/// otherwise (a classifier's labels and probabilities, where MLflow fails) and for `Tensors`
/// input, `Tensors` in the model's output order with their full shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    Table(Vec<Column>),
    Tensors(Vec<NamedTensor>),
}

/// One of the model's inputs or outputs as the ONNX file declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct IoSpec {
    pub name: String,
    /// The element type, e.g. `F32`, `I64`, `String`.
    pub datum_type: DatumType,
    /// The dimensions, `None` where it is a symbol (the batch, say); `None` for the whole
    /// shape when the model does not say.
    pub shape: Option<Vec<Option<usize>>>,
}

impl IoSpec {
    fn describe(&self) -> String {
        let shape = match &self.shape {
            None => "?".to_string(),
            Some(dims) => dims
                .iter()
                .map(|d| d.map_or("N".to_string(), |d| d.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!("{}: {}[{shape}]", self.name, dt_name(self.datum_type))
    }
}

/// The lowercase name of an element type, as numpy says it.
pub fn dt_name(dt: DatumType) -> String {
    match dt {
        DatumType::F32 => "float32".into(),
        DatumType::F64 => "float64".into(),
        DatumType::F16 => "float16".into(),
        DatumType::I64 => "int64".into(),
        DatumType::I32 => "int32".into(),
        DatumType::I16 => "int16".into(),
        DatumType::I8 => "int8".into(),
        DatumType::U64 => "uint64".into(),
        DatumType::U32 => "uint32".into(),
        DatumType::U16 => "uint16".into(),
        DatumType::U8 => "uint8".into(),
        DatumType::Bool => "bool".into(),
        DatumType::String => "string".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

type Plan = SimplePlan<TypedFact, Box<dyn TypedOp>>;
type State = SimpleState<TypedFact, Box<dyn TypedOp>>;

/// A loaded, optimized ONNX model. `Send + Sync`: concurrent `predict` calls each take a
/// run state from a small pool.
pub struct OnnxModel {
    plan: Arc<Plan>,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    /// Dense layers run by a [`DenseBackend`].
    host_layers: usize,
    /// Run states kept between calls (their buffers are reused).
    states: Mutex<Vec<State>>,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

/// Loads an ONNX file; external-data files are read relative to its directory.
pub fn load(path: &Path) -> Result<OnnxModel, EngineError> {
    OnnxModel::load(path)
}

/// Predicts for a batch; see [`Batch`] for how it maps to the model's inputs and outputs.
pub fn predict(model: &OnnxModel, input: Batch) -> Result<Batch, EngineError> {
    model.predict(input)
}

impl OnnxModel {
    /// Loads an ONNX file; external-data files are read relative to its directory.
    pub fn load(path: &Path) -> Result<OnnxModel, EngineError> {
        Self::load_with(path, None)
    }

    /// [`load`](Self::load), with the dense layers run by `backend` when one is given (see
    /// [`crate::dense`]).
    pub fn load_with(
        path: &Path,
        backend: Option<&dyn DenseBackend>,
    ) -> Result<OnnxModel, EngineError> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_path(path).map_err(|e| {
            EngineError::invalid_model(format!(
                "cannot read the onnx model '{}': {}",
                path.display(),
                chain(&e)
            ))
        })?;
        // External data is read here rather than by tract, which canonicalizes paths: WASI
        // has no canonicalize.
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(graph) = proto.graph.as_mut() {
            inline_external_data(graph, dir)?;
        }
        Self::from_proto(&onnx, &proto, None, backend)
    }

    /// Loads an ONNX model from its bytes; it cannot have external data.
    pub fn load_bytes(bytes: &[u8]) -> Result<OnnxModel, EngineError> {
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| EngineError::invalid_model(format!("not an onnx model: {}", chain(&e))))?;
        Self::from_proto(&onnx, &proto, None, None)
    }

    fn from_proto(
        onnx: &tract_onnx::Onnx,
        proto: &pb::ModelProto,
        dir: Option<&str>,
        backend: Option<&dyn DenseBackend>,
    ) -> Result<OnnxModel, EngineError> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| EngineError::invalid_model("the onnx model has no graph"))?;
        check_outputs_are_tensors(graph)?;

        let parsed = onnx.parse(proto, dir).map_err(|e| {
            EngineError::unsupported(format!("cannot load the onnx model: {}", chain(&e)))
        })?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(EngineError::invalid_model(format!(
                "the onnx graph uses undefined values {:?}",
                parsed.unresolved_inputs
            )));
        }
        let mut model = parsed.model;

        // Every unknown dimension of an input becomes a symbol: the leading one is the batch
        // size `N`, the same for all inputs (as MLflow's columns or tensors share their rows).
        let batch = model.symbols.sym("N");
        for ix in 0..model.inputs.len() {
            let fact = model.input_fact(ix).map_err(internal)?.clone();
            let Some(dt) = fact.datum_type.concretize() else {
                continue;
            };
            if fact.shape.is_open() {
                continue;
            }
            let dims: TVec<DimFact> = fact
                .shape
                .dims()
                .enumerate()
                .map(|(axis, d)| match d.concretize() {
                    Some(d) => DimFact::from(d),
                    None if axis == 0 => DimFact::from(TDim::Sym(batch.clone())),
                    None => DimFact::from(TDim::Sym(
                        model.symbols.new_with_prefix(&format!("d{ix}_{axis}_")),
                    )),
                })
                .collect();
            let fact = InferenceFact::dt_shape(dt, ShapeFactoid::closed(dims));
            model.set_input_fact(ix, fact).map_err(internal)?;
        }

        let typed = model.into_typed().map_err(|e| {
            EngineError::unsupported(format!(
                "cannot type the onnx graph (unsupported operator or shape?): {}",
                chain(&e)
            ))
        })?;
        // Names as the ONNX graph spells them (initializers are constants, not inputs).
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input_names = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()));
        let output_names = graph.output.iter();
        let inputs = io_specs(
            &typed,
            typed.input_outlets().map_err(internal)?,
            input_names,
        )?;
        let outputs = io_specs(
            &typed,
            typed.output_outlets().map_err(internal)?,
            output_names,
        )?;
        let mut typed = typed;
        let mut host_layers = 0;
        if let Some(backend) = backend {
            // Decluttered first, so that Gemm's scaling and the Relu's clip are plain ops the
            // rewrite recognizes; tract optimizes the rest as usual.
            typed.declutter().map_err(|e| {
                EngineError::unsupported(format!("cannot simplify the onnx graph: {}", chain(&e)))
            })?;
            host_layers = offload(&mut typed, backend).map_err(internal)?;
        }
        let optimized = typed.into_optimized().map_err(|e| {
            EngineError::unsupported(format!("cannot optimize the onnx graph: {}", chain(&e)))
        })?;
        let plan = SimplePlan::new(optimized).map_err(internal)?;
        Ok(OnnxModel {
            plan,
            inputs,
            outputs,
            host_layers,
            states: Mutex::new(Vec::new()),
        })
    }

    /// The model's inputs, in the ONNX graph's order.
    pub fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }

    /// The model's outputs, in the ONNX graph's order.
    pub fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }

    /// How many dense layers a [`DenseBackend`] runs.
    pub fn host_layers(&self) -> usize {
        self.host_layers
    }

    /// One line describing the inputs and outputs, for logs.
    pub fn describe(&self) -> String {
        let list = |specs: &[IoSpec]| {
            specs
                .iter()
                .map(IoSpec::describe)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let host = match self.host_layers {
            0 => String::new(),
            n => format!("; {n} dense layer(s) on the host's kernels"),
        };
        format!(
            "inputs ({}) -> outputs ({}){host}",
            list(&self.inputs),
            list(&self.outputs)
        )
    }

    /// Runs the plan on tensors in the model's input order; outputs in its output order.
    pub fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let pooled = self.states.lock().ok().and_then(|mut pool| pool.pop());
        let mut state = match pooled {
            Some(state) => state,
            None => SimpleState::new(&self.plan)?,
        };
        let outputs = state.run(inputs)?;
        // A state that failed mid-run is dropped rather than reused.
        if let Ok(mut pool) = self.states.lock()
            && pool.len() < 4
        {
            pool.push(state);
        }
        Ok(outputs)
    }

    /// Predicts for a batch, mapping it as MLflow's ONNX wrapper does (see [`Batch`]).
    pub fn predict(&self, input: Batch) -> Result<Batch, EngineError> {
        let as_table = matches!(input, Batch::Table(_));
        let feeds = match input {
            Batch::Table(columns) => self.feeds_from_table(columns)?,
            Batch::Tensors(tensors) => self.feeds_from_tensors(tensors)?,
        };
        let outputs = self.run(feeds).map_err(|e| {
            EngineError::invalid_input(format!("the model failed on this input: {}", chain(&e)))
        })?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for (value, spec) in outputs.into_iter().zip(&self.outputs) {
            let mut tensor = value.into_tensor();
            // tract computes some integers (casts, argmax) as symbolic dims internally: give
            // the type the graph declares.
            if tensor.datum_type() != spec.datum_type {
                tensor = tensor
                    .cast_to_dt(spec.datum_type)
                    .map_err(internal)?
                    .into_owned();
            }
            let shape = tensor.shape().to_vec();
            let values = tensor_values(tensor, &spec.name)?;
            tensors.push(NamedTensor {
                name: spec.name.clone(),
                shape,
                values,
            });
        }
        let same_length = tensors
            .windows(2)
            .all(|w| w[0].values.len() == w[1].values.len());
        Ok(if as_table && same_length {
            Batch::Table(
                tensors
                    .into_iter()
                    .map(|t| Column {
                        name: t.name,
                        values: t.values,
                    })
                    .collect(),
            )
        } else {
            Batch::Tensors(tensors)
        })
    }

    fn feeds_from_table(&self, columns: Vec<Column>) -> Result<TVec<TValue>, EngineError> {
        let rows = columns.first().map_or(0, |c| c.values.len());
        if let Some(c) = columns.iter().find(|c| c.values.len() != rows) {
            return Err(EngineError::invalid_input(format!(
                "column '{}' has {} values; the first has {rows}",
                c.name,
                c.values.len()
            )));
        }
        if let [spec] = self.inputs.as_slice() {
            // The whole frame as one tensor: DataFrame.values, cast to the input's type.
            if columns.is_empty() {
                return Err(EngineError::invalid_input("the input has no columns"));
            }
            let width = columns.len();
            let shape = frame_shape(spec, rows, width)?;
            let parts: Vec<&Values> = columns.iter().map(|c| &c.values).collect();
            let tensor = build_tensor(spec, &shape, &parts, &|c| {
                format!("column '{}'", columns[c].name)
            })?;
            return Ok(tvec!(tensor.into_tvalue()));
        }
        // One column per input, by name.
        let mut columns: Vec<Option<Column>> = columns.into_iter().map(Some).collect();
        let mut feeds = TVec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let column = columns
                .iter_mut()
                .find(|c| c.as_ref().is_some_and(|c| c.name == spec.name))
                .and_then(Option::take)
                .ok_or_else(|| {
                    EngineError::invalid_input(format!(
                        "missing column '{}': this model takes one column per input ({})",
                        spec.name,
                        self.input_names()
                    ))
                })?;
            let shape = column_shape(spec, rows)?;
            let tensor = build_tensor(spec, &shape, &[&column.values], &|_| {
                format!("column '{}'", column.name)
            })?;
            feeds.push(tensor.into_tvalue());
        }
        Ok(feeds)
    }

    fn feeds_from_tensors(&self, tensors: Vec<NamedTensor>) -> Result<TVec<TValue>, EngineError> {
        for t in &tensors {
            let volume: usize = t.shape.iter().product();
            if volume != t.values.len() {
                return Err(EngineError::invalid_input(format!(
                    "tensor '{}' has shape {:?} but {} values",
                    t.name,
                    t.shape,
                    t.values.len()
                )));
            }
        }
        let mut tensors: Vec<Option<NamedTensor>> = tensors.into_iter().map(Some).collect();
        // A lone tensor that names no input is a bare ndarray: MLflow feeds it to a lone input.
        if let ([spec], [Some(t)]) = (self.inputs.as_slice(), tensors.as_slice())
            && t.name != spec.name
        {
            tensors[0].as_mut().unwrap().name = spec.name.clone();
        }
        // Otherwise names must match, as onnxruntime wants of a feed dict.
        if let Some(t) = tensors
            .iter()
            .flatten()
            .find(|t| !self.inputs.iter().any(|s| s.name == t.name))
        {
            return Err(EngineError::invalid_input(format!(
                "tensor '{}' is not an input of this model; its inputs are {}",
                t.name,
                self.input_names()
            )));
        }
        let mut feeds = TVec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let t = tensors
                .iter_mut()
                .find(|t| t.as_ref().is_some_and(|t| t.name == spec.name))
                .and_then(Option::take)
                .ok_or_else(|| {
                    EngineError::invalid_input(format!(
                        "missing tensor '{}': this model's inputs are {}",
                        spec.name,
                        self.input_names()
                    ))
                })?;
            let shape = tensor_shape(spec, &t.shape)?;
            let tensor = build_tensor(spec, &shape, &[&t.values], &|_| {
                format!("tensor '{}'", t.name)
            })?;
            feeds.push(tensor.into_tvalue());
        }
        Ok(feeds)
    }

    fn input_names(&self) -> String {
        let names: Vec<String> = self
            .inputs
            .iter()
            .map(|s| format!("'{}'", s.name))
            .collect();
        names.join(", ")
    }
}

/// Reads every tensor stored outside the ONNX file (`onnx.save_model(...,
/// save_as_external_data=True)`, which `mlflow.onnx.save_model` uses) into the tensor itself:
/// initializers and tensor attributes, in subgraphs too. `location` must be a relative path
/// inside `dir`; `offset` and `length` select a part of the file.
fn inline_external_data(graph: &mut pb::GraphProto, dir: &Path) -> Result<(), EngineError> {
    for tensor in &mut graph.initializer {
        inline_tensor(tensor, dir)?;
    }
    for node in &mut graph.node {
        for attribute in &mut node.attribute {
            if let Some(t) = attribute.t.as_mut() {
                inline_tensor(t, dir)?;
            }
            for t in &mut attribute.tensors {
                inline_tensor(t, dir)?;
            }
            if let Some(g) = attribute.g.as_mut() {
                inline_external_data(g, dir)?;
            }
            for g in &mut attribute.graphs {
                inline_external_data(g, dir)?;
            }
        }
    }
    Ok(())
}

fn inline_tensor(tensor: &mut pb::TensorProto, dir: &Path) -> Result<(), EngineError> {
    use std::io::{Read, Seek, SeekFrom};

    const EXTERNAL: i32 = pb::tensor_proto::DataLocation::External as i32;
    if tensor.data_location != Some(EXTERNAL) {
        return Ok(());
    }
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let bad =
        |what: String| EngineError::invalid_model(format!("tensor '{}': {what}", tensor.name));
    let location =
        entry("location").ok_or_else(|| bad("external data without a location".into()))?;
    let relative = Path::new(&location);
    let inside = relative.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if location.is_empty() || !inside {
        return Err(bad(format!(
            "external data location '{location}' is not a relative path inside the model directory"
        )));
    }
    let number = |key: &str| -> Result<Option<u64>, EngineError> {
        entry(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("bad external data {key} '{v}'")))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?;
    let path = dir.join(relative);
    let mut file = std::fs::File::open(&path).map_err(|e| {
        bad(format!(
            "cannot open external data '{}': {e}",
            path.display()
        ))
    })?;
    let size = file
        .metadata()
        .map_err(|e| {
            bad(format!(
                "cannot read external data '{}': {e}",
                path.display()
            ))
        })?
        .len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(bad(format!(
            "external data '{location}' has {size} bytes; the tensor wants {length} from offset {offset}"
        )));
    }
    let mut bytes = vec![0u8; length as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| {
            bad(format!(
                "cannot read external data '{}': {e}",
                path.display()
            ))
        })?;
    tensor.raw_data = bytes;
    tensor.external_data.clear();
    tensor.data_location = None;
    Ok(())
}

fn internal(e: TractError) -> EngineError {
    EngineError::internal(chain(&e))
}

/// ZipMap (skl2onnx's default for classifiers) outputs a sequence of maps, which has no
/// tensor form: say how to convert the model without it.
fn check_outputs_are_tensors(graph: &pb::GraphProto) -> Result<(), EngineError> {
    let zipmap = graph.node.iter().any(|n| n.op_type == "ZipMap");
    let non_tensor: Vec<&str> = graph
        .output
        .iter()
        .filter(|o| o.r#type.as_ref().and_then(|t| t.value.as_ref()).is_none())
        .map(|o| o.name.as_str())
        .collect();
    if zipmap || !non_tensor.is_empty() {
        let what = if non_tensor.is_empty() {
            "a ZipMap operator".to_string()
        } else {
            format!(
                "outputs that are not tensors ({})",
                non_tensor
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(EngineError::unsupported(format!(
            "the onnx model has {what}: sequences of maps (skl2onnx's ZipMap) are not supported; \
             convert the classifier with options={{'zipmap': False}} (e.g. \
             skl2onnx.to_onnx(model, X, options={{'zipmap': False}})) to get a probabilities tensor"
        )));
    }
    Ok(())
}

fn io_specs<'a>(
    model: &TypedModel,
    outlets: &[OutletId],
    declared: impl Iterator<Item = &'a pb::ValueInfoProto>,
) -> Result<Vec<IoSpec>, EngineError> {
    let declared: Vec<&pb::ValueInfoProto> = declared.collect();
    if declared.len() != outlets.len() {
        return Err(EngineError::internal(format!(
            "the graph declares {} values but tract sees {}",
            declared.len(),
            outlets.len()
        )));
    }
    outlets
        .iter()
        .zip(declared)
        .map(|(&outlet, info)| {
            let fact = model.outlet_fact(outlet).map_err(internal)?;
            // The element type as the graph declares it: tract types some int64 values (casts,
            // argmax) as its symbolic dims.
            let declared_dt = info
                .r#type
                .as_ref()
                .and_then(|t| t.value.as_ref())
                .and_then(|pb::type_proto::Value::TensorType(t)| onnx_dt(t.elem_type));
            let datum_type = match (declared_dt, fact.datum_type) {
                (Some(dt), _) => dt,
                (None, DatumType::TDim) => DatumType::I64,
                (None, dt) => dt,
            };
            let shape = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
            Ok(IoSpec {
                name: info.name.clone(),
                datum_type,
                shape: Some(shape),
            })
        })
        .collect()
}

/// ONNX's TensorProto.DataType codes for the types this plugin feeds and returns.
fn onnx_dt(code: i32) -> Option<DatumType> {
    Some(match code {
        1 => DatumType::F32,
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        6 => DatumType::I32,
        7 => DatumType::I64,
        8 => DatumType::String,
        9 => DatumType::Bool,
        10 => DatumType::F16,
        11 => DatumType::F64,
        12 => DatumType::U32,
        13 => DatumType::U64,
        _ => return None,
    })
}

/// The shape of a whole frame `[rows, width]` fed to a lone input: `[rows]` for a 1-D input
/// and one column, `[rows, a, b..]` when the trailing dimensions hold `width` values.
fn frame_shape(spec: &IoSpec, rows: usize, width: usize) -> Result<Vec<usize>, EngineError> {
    let Some(dims) = &spec.shape else {
        return Ok(vec![rows, width]);
    };
    match dims.as_slice() {
        [_] if width == 1 => Ok(vec![rows]),
        [_, d] if d.is_none_or(|d| d == width) => Ok(vec![rows, width]),
        [_, rest @ ..] if !rest.is_empty() && rest.iter().all(Option::is_some) => {
            let inner: Vec<usize> = rest.iter().map(|d| d.unwrap()).collect();
            if inner.iter().product::<usize>() == width {
                Ok(std::iter::once(rows).chain(inner).collect())
            } else {
                Err(shape_mismatch(spec, &format!("{width} columns")))
            }
        }
        _ => Err(shape_mismatch(spec, &format!("{width} columns"))),
    }
}

/// The shape of one column fed to one of several inputs: `[rows]`, or `[rows, 1]` for a 2-D
/// input.
fn column_shape(spec: &IoSpec, rows: usize) -> Result<Vec<usize>, EngineError> {
    match spec.shape.as_deref() {
        None | Some([_]) => Ok(vec![rows]),
        Some([_, d]) if d.is_none_or(|d| d == 1) => Ok(vec![rows, 1]),
        Some(_) => Err(shape_mismatch(spec, "one column")),
    }
}

/// A tensor's shape as fed: as given, or with a trailing 1 added when the input wants it.
fn tensor_shape(spec: &IoSpec, shape: &[usize]) -> Result<Vec<usize>, EngineError> {
    let Some(dims) = &spec.shape else {
        return Ok(shape.to_vec());
    };
    let fits = |shape: &[usize]| {
        shape.len() == dims.len()
            && dims
                .iter()
                .zip(shape)
                .all(|(d, s)| d.is_none_or(|d| d == *s))
    };
    if fits(shape) {
        return Ok(shape.to_vec());
    }
    let mut padded = shape.to_vec();
    padded.push(1);
    if fits(&padded) {
        return Ok(padded);
    }
    Err(shape_mismatch(spec, &format!("shape {shape:?}")))
}

fn shape_mismatch(spec: &IoSpec, got: &str) -> EngineError {
    EngineError::invalid_input(format!(
        "the model's input {} does not fit {got}",
        spec.describe()
    ))
}

/// Numbers the input tensors can be built of, converted exactly or not at all.
trait Element: Datum + Copy + tract_onnx::prelude::tract_num_traits::Zero {
    fn from_f64(x: f64) -> Option<Self>;
    fn from_i64(x: i64) -> Option<Self>;
    fn from_bool(b: bool) -> Self;
}

macro_rules! float_element {
    ($t:ty) => {
        impl Element for $t {
            #[inline]
            fn from_f64(x: f64) -> Option<Self> {
                Some(x as $t)
            }
            #[inline]
            fn from_i64(x: i64) -> Option<Self> {
                Some(x as $t)
            }
            #[inline]
            fn from_bool(b: bool) -> Self {
                if b { 1.0 } else { 0.0 }
            }
        }
    };
}
float_element!(f32);
float_element!(f64);

macro_rules! int_element {
    ($t:ty) => {
        impl Element for $t {
            #[inline]
            fn from_f64(x: f64) -> Option<Self> {
                // Whole numbers only, within range: 1.0 is 1, 1.5 is an error.
                if x.fract() == 0.0 && x >= <$t>::MIN as f64 && x <= <$t>::MAX as f64 {
                    Some(x as $t)
                } else {
                    None
                }
            }
            #[inline]
            fn from_i64(x: i64) -> Option<Self> {
                <$t>::try_from(x).ok()
            }
            #[inline]
            fn from_bool(b: bool) -> Self {
                b as $t
            }
        }
    };
}
int_element!(i64);
int_element!(i32);
int_element!(i16);
int_element!(i8);
int_element!(u64);
int_element!(u32);
int_element!(u16);
int_element!(u8);

/// Builds the tensor fed to `spec` from `parts`, the values of `parts.len()` interleaved
/// columns (one part: the values in order), converting each value to the input's type.
/// `what(i)` names part `i` in error messages.
fn build_tensor(
    spec: &IoSpec,
    shape: &[usize],
    parts: &[&Values],
    what: &dyn Fn(usize) -> String,
) -> Result<Tensor, EngineError> {
    match spec.datum_type {
        DatumType::F32 => numeric::<f32>(spec, shape, parts, what),
        DatumType::F64 => numeric::<f64>(spec, shape, parts, what),
        DatumType::I64 => numeric::<i64>(spec, shape, parts, what),
        DatumType::I32 => numeric::<i32>(spec, shape, parts, what),
        DatumType::I16 => numeric::<i16>(spec, shape, parts, what),
        DatumType::I8 => numeric::<i8>(spec, shape, parts, what),
        DatumType::U64 => numeric::<u64>(spec, shape, parts, what),
        DatumType::U32 => numeric::<u32>(spec, shape, parts, what),
        DatumType::U16 => numeric::<u16>(spec, shape, parts, what),
        DatumType::U8 => numeric::<u8>(spec, shape, parts, what),
        DatumType::F16 => numeric::<f32>(spec, shape, parts, what)?
            .cast_to_dt(DatumType::F16)
            .map(|t| t.into_owned())
            .map_err(internal),
        DatumType::Bool => booleans(spec, shape, parts, what),
        DatumType::String => strings(spec, shape, parts, what),
        other => Err(EngineError::unsupported(format!(
            "the model's input '{}' has type {}, which this plugin cannot feed",
            spec.name,
            dt_name(other)
        ))),
    }
}

fn bad_value(spec: &IoSpec, what: String, value: String) -> EngineError {
    EngineError::invalid_input(format!(
        "{what} has value {value}, which the model's input '{}' ({}) cannot take",
        spec.name,
        dt_name(spec.datum_type)
    ))
}

fn wrong_type(spec: &IoSpec, what: String, values: &Values) -> EngineError {
    EngineError::invalid_input(format!(
        "{what} holds {} values; the model's input '{}' takes {}",
        values.type_name(),
        spec.name,
        dt_name(spec.datum_type)
    ))
}

/// Fills every `stride`-th element of `out` (the column `offset` of a row-major matrix).
fn fill<T: Element, S: Copy>(
    out: &mut [T],
    stride: usize,
    offset: usize,
    src: &[S],
    convert: impl Fn(S) -> Option<T>,
) -> Result<(), usize> {
    if stride == 1 {
        for (row, (o, &x)) in out.iter_mut().zip(src).enumerate() {
            *o = convert(x).ok_or(row)?;
        }
    } else {
        for (row, (chunk, &x)) in out.chunks_exact_mut(stride).zip(src).enumerate() {
            chunk[offset] = convert(x).ok_or(row)?;
        }
    }
    Ok(())
}

fn numeric<T: Element>(
    spec: &IoSpec,
    shape: &[usize],
    parts: &[&Values],
    what: &dyn Fn(usize) -> String,
) -> Result<Tensor, EngineError> {
    let mut tensor = Tensor::zero::<T>(shape).map_err(internal)?;
    {
        let mut view = tensor.try_as_plain_ram_mut().map_err(internal)?;
        let out = view.as_slice_mut::<T>().map_err(internal)?;
        let stride = parts.len();
        for (offset, values) in parts.iter().enumerate() {
            let result = match values {
                Values::Float64(v) => fill(out, stride, offset, v, T::from_f64),
                Values::Float32(v) => fill(out, stride, offset, v, |x| T::from_f64(f64::from(x))),
                Values::Int64(v) => fill(out, stride, offset, v, T::from_i64),
                Values::Int32(v) => fill(out, stride, offset, v, |x| T::from_i64(i64::from(x))),
                Values::Boolean(v) => fill(out, stride, offset, v, |x| Some(T::from_bool(x))),
                other => return Err(wrong_type(spec, what(offset), other)),
            };
            if let Err(row) = result {
                let value = match values {
                    Values::Float64(v) => v[row].to_string(),
                    Values::Float32(v) => v[row].to_string(),
                    Values::Int64(v) => v[row].to_string(),
                    Values::Int32(v) => v[row].to_string(),
                    _ => String::new(),
                };
                return Err(bad_value(
                    spec,
                    format!("{} (row {row})", what(offset)),
                    value,
                ));
            }
        }
    }
    Ok(tensor)
}

fn booleans(
    spec: &IoSpec,
    shape: &[usize],
    parts: &[&Values],
    what: &dyn Fn(usize) -> String,
) -> Result<Tensor, EngineError> {
    let volume: usize = shape.iter().product();
    let stride = parts.len();
    let mut out = vec![false; volume];
    for (offset, values) in parts.iter().enumerate() {
        let zero_or_one = |x: f64| (x == 0.0 || x == 1.0).then_some(x == 1.0);
        let mut set = |row: usize, b: Option<bool>, shown: &dyn Fn() -> String| match b {
            Some(b) => {
                out[row * stride + offset] = b;
                Ok(())
            }
            None => Err(bad_value(
                spec,
                format!("{} (row {row})", what(offset)),
                shown(),
            )),
        };
        match values {
            Values::Boolean(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &b)| set(r, Some(b), &|| b.to_string()))?,
            Values::Float64(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &x)| set(r, zero_or_one(x), &|| x.to_string()))?,
            Values::Float32(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &x)| set(r, zero_or_one(f64::from(x)), &|| x.to_string()))?,
            Values::Int64(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &x)| set(r, zero_or_one(x as f64), &|| x.to_string()))?,
            Values::Int32(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &x)| set(r, zero_or_one(f64::from(x)), &|| x.to_string()))?,
            other => return Err(wrong_type(spec, what(offset), other)),
        }
    }
    Tensor::from_shape(shape, &out).map_err(internal)
}

fn strings(
    spec: &IoSpec,
    shape: &[usize],
    parts: &[&Values],
    what: &dyn Fn(usize) -> String,
) -> Result<Tensor, EngineError> {
    let volume: usize = shape.iter().product();
    let stride = parts.len();
    let mut out = vec![String::new(); volume];
    for (offset, values) in parts.iter().enumerate() {
        match values {
            Values::Text(v) => {
                for (row, s) in v.iter().enumerate() {
                    out[row * stride + offset].clone_from(s);
                }
            }
            Values::Binary(v) => {
                for (row, b) in v.iter().enumerate() {
                    out[row * stride + offset] = String::from_utf8(b.clone()).map_err(|_| {
                        bad_value(
                            spec,
                            format!("{} (row {row})", what(offset)),
                            "(not utf-8)".into(),
                        )
                    })?;
                }
            }
            other => return Err(wrong_type(spec, what(offset), other)),
        }
    }
    tract_ndarray::ArrayD::from_shape_vec(shape, out)
        .map(Tensor::from)
        .map_err(|e| EngineError::internal(e.to_string()))
}

/// An output tensor's values, widened to the nearest type of the interface.
fn tensor_values(tensor: Tensor, name: &str) -> Result<Values, EngineError> {
    fn slice<T: Datum + Clone>(t: &Tensor) -> Result<Vec<T>, EngineError> {
        let view = t.try_as_plain_ram().map_err(internal)?;
        Ok(view.as_slice::<T>().map_err(internal)?.to_vec())
    }
    fn widened<T: Datum + Copy, U>(t: &Tensor, f: impl Fn(T) -> U) -> Result<Vec<U>, EngineError> {
        let view = t.try_as_plain_ram().map_err(internal)?;
        Ok(view
            .as_slice::<T>()
            .map_err(internal)?
            .iter()
            .map(|&x| f(x))
            .collect())
    }
    let t = &tensor;
    Ok(match t.datum_type() {
        DatumType::F32 => Values::Float32(slice(t)?),
        DatumType::F64 => Values::Float64(slice(t)?),
        DatumType::I64 => Values::Int64(slice(t)?),
        DatumType::I32 => Values::Int32(slice(t)?),
        DatumType::Bool => Values::Boolean(slice(t)?),
        DatumType::String => Values::Text(slice(t)?),
        DatumType::I16 => Values::Int32(widened(t, |x: i16| i32::from(x))?),
        DatumType::I8 => Values::Int32(widened(t, |x: i8| i32::from(x))?),
        DatumType::U16 => Values::Int32(widened(t, |x: u16| i32::from(x))?),
        DatumType::U8 => Values::Int32(widened(t, |x: u8| i32::from(x))?),
        DatumType::U32 => Values::Int64(widened(t, |x: u32| i64::from(x))?),
        DatumType::U64 => Values::Int64(widened(t, |x: u64| x as i64)?),
        DatumType::F16 => Values::Float32(widened(t, |x: f16| x.to_f32())?),
        other => {
            return Err(EngineError::unsupported(format!(
                "the model's output '{name}' has type {}, which this plugin cannot return",
                dt_name(other)
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(location: &str, offset: Option<&str>, length: Option<&str>) -> pb::TensorProto {
        let entry = |key: &str, value: &str| pb::StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        };
        let mut external_data = vec![entry("location", location)];
        external_data.extend(offset.map(|o| entry("offset", o)));
        external_data.extend(length.map(|l| entry("length", l)));
        pb::TensorProto {
            name: "w".into(),
            data_location: Some(pb::tensor_proto::DataLocation::External as i32),
            external_data,
            ..Default::default()
        }
    }

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    #[test]
    fn external_data_is_read_by_offset_and_length() {
        // linear_external.weights: W (6 float32) then B (2 float32).
        let mut t = external("linear_external.weights", Some("24"), Some("8"));
        inline_tensor(&mut t, &fixtures()).unwrap();
        let b: Vec<f32> = t
            .raw_data
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(b, [0.5, -0.5]);
        assert!(t.external_data.is_empty() && t.data_location.is_none());
    }

    #[test]
    fn external_data_must_stay_inside_the_model_directory() {
        for location in ["../onnx/Cargo.toml", "/etc/hostname", ""] {
            let e = inline_tensor(&mut external(location, None, None), &fixtures()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidModel, "{location}: {e}");
        }
        let e = inline_tensor(
            &mut external("linear_external.weights", Some("24"), Some("16")),
            &fixtures(),
        )
        .unwrap_err();
        assert!(e.message.contains("has 32 bytes"), "{e}");
        let e = inline_tensor(&mut external("missing.bin", None, None), &fixtures()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidModel);
    }
}
