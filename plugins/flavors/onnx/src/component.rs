//! The component glue: adapts [`crate::engine`] to the `flavor-plugin` world. Values move
//! between the WIT types and the engine's without copying; the engine does the one copy into
//! tract's tensors and the one out of them.

use wasmflow_plugin_sdk::{
    Column, Data, Error, ErrorKind, Guest, GuestModel, PluginInfo, Tensor, Values,
};

use std::sync::Arc;

use wasmflow_plugin_sdk::tensor;

use crate::LoadConfig;
use crate::dense::{DenseBackend, DenseLayer};
use crate::engine::{self, Batch, EngineError, OnnxModel};

struct Plugin;

impl Guest for Plugin {
    type Model = Model;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "onnx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            loads: vec!["onnx".into()],
            description: "onnx models logged with mlflow.onnx, run by tract".into(),
        }
    }
}

pub struct Model {
    model: OnnxModel,
}

impl GuestModel for Model {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config = LoadConfig::parse(&config).map_err(error)?;
        let data = config.data_path().map_err(error)?;
        if let Some(options) = &config.section.onnx_session_options
            && !options.is_null()
        {
            wasmflow_plugin_sdk::info(&format!(
                "ignoring onnxruntime session options {options} (tract runs the model)"
            ));
        }
        // The host mounts the model directory read-only at /model; external-data files
        // beside the ONNX file are read from there too.
        let path = std::path::PathBuf::from("/model").join(&data);
        let model = OnnxModel::load_with(&path, Some(&HostKernels)).map_err(error)?;
        wasmflow_plugin_sdk::info(&format!("loaded {data}: {}", model.describe()));
        Ok(wasmflow_plugin_sdk::Model::new(Model { model }))
    }

    /// None: MLflow serves an ONNX model without a signature (log_model infers none) and maps
    /// requests by the model's own inputs, which `predict` does too. Reporting one here would
    /// make the host parse requests differently from MLflow.
    fn signature(&self) -> Option<String> {
        None
    }

    fn predict(&self, input: Data, _params: Option<String>) -> Result<Data, Error> {
        let batch = match input {
            Data::Table(columns) => Batch::Table(
                columns
                    .into_iter()
                    .map(|c| engine::Column {
                        name: c.name,
                        values: to_engine(c.values),
                    })
                    .collect(),
            ),
            Data::Tensors(tensors) => Batch::Tensors(
                tensors
                    .into_iter()
                    .map(|t| {
                        let shape = t
                            .shape
                            .iter()
                            .map(|&d| usize::try_from(d))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|_| {
                                Error::invalid_input(format!(
                                    "tensor '{}' has a negative dimension in {:?}",
                                    t.name, t.shape
                                ))
                            })?;
                        Ok(engine::NamedTensor {
                            name: t.name,
                            shape,
                            values: to_engine(t.values),
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
        };
        Ok(match self.model.predict(batch).map_err(error)? {
            Batch::Table(columns) => Data::Table(
                columns
                    .into_iter()
                    .map(|c| Column {
                        name: c.name,
                        values: from_engine(c.values),
                    })
                    .collect(),
            ),
            Batch::Tensors(tensors) => Data::Tensors(
                tensors
                    .into_iter()
                    .map(|t| Tensor {
                        name: t.name,
                        shape: t.shape.into_iter().map(|d| d as i64).collect(),
                        values: from_engine(t.values),
                    })
                    .collect(),
            ),
        })
    }
}

/// The host's native kernels (`wasmflow:plugin/tensor`) as the engine's dense backend.
struct HostKernels;

/// Layers with fewer weights stay in tract's wasm kernels, where a host call would cost more
/// than it saves. Measured on 2026-12-04 (README, "Plugins"), after the host's ReLU stopped
/// branching per value: the serving benchmark's MLP (20 → 64 → 32 → 1; 1,280 and 2,048
/// weights) took 136 µs a 1,000-row call with those two layers on the host against 388 µs
/// with none (the 4,096 this was before, set while that ReLU branch made host layers look
/// slow), and 6 µs against 8 µs at one row.
const MIN_HOST_WEIGHTS: usize = 1024;

impl DenseBackend for HostKernels {
    fn create(
        &self,
        k: usize,
        n: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> Result<Arc<dyn DenseLayer>, String> {
        if k.saturating_mul(n) < MIN_HOST_WEIGHTS {
            return Err(format!("a {k}×{n} layer is faster in the plugin"));
        }
        let size = |v: usize| u32::try_from(v).map_err(|_| format!("{v} is too large a size"));
        let layer = tensor::Dense::create(size(k)?, size(n)?, &weights, bias.as_deref(), relu)?;
        Ok(Arc::new(HostLayer(layer)))
    }
}

struct HostLayer(tensor::Dense);

impl DenseLayer for HostLayer {
    fn apply(&self, rows: usize, input: &[f32]) -> Result<Vec<f32>, String> {
        let rows = u32::try_from(rows).map_err(|_| format!("{rows} rows are too many"))?;
        self.0.apply(rows, input)
    }
}

fn to_engine(values: Values) -> engine::Values {
    match values {
        Values::Float64(v) => engine::Values::Float64(v),
        Values::Float32(v) => engine::Values::Float32(v),
        Values::Int64(v) => engine::Values::Int64(v),
        Values::Int32(v) => engine::Values::Int32(v),
        Values::Boolean(v) => engine::Values::Boolean(v),
        Values::Text(v) => engine::Values::Text(v),
        Values::Binary(v) => engine::Values::Binary(v),
    }
}

fn from_engine(values: engine::Values) -> Values {
    match values {
        engine::Values::Float64(v) => Values::Float64(v),
        engine::Values::Float32(v) => Values::Float32(v),
        engine::Values::Int64(v) => Values::Int64(v),
        engine::Values::Int32(v) => Values::Int32(v),
        engine::Values::Boolean(v) => Values::Boolean(v),
        engine::Values::Text(v) => Values::Text(v),
        engine::Values::Binary(v) => Values::Binary(v),
    }
}

fn error(e: EngineError) -> Error {
    Error {
        kind: match e.kind {
            engine::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            engine::ErrorKind::InvalidModel => ErrorKind::InvalidModel,
            engine::ErrorKind::Unsupported => ErrorKind::Unsupported,
            engine::ErrorKind::Internal => ErrorKind::Internal,
        },
        message: e.message,
    }
}

wasmflow_plugin_sdk::export_flavor!(Plugin);
