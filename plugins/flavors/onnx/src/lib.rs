//! The `onnx` flavor: serves models logged with `mlflow.onnx.log_model`, running them with
//! tract.
//!
//! MLflow writes the flavor's section of MLmodel as
//!
//! ```yaml
//! flavors:
//!   onnx:
//!     data: model.onnx          # the ONNX file, relative to the model directory
//!     onnx_version: 1.23.2
//!     providers: [CUDAExecutionProvider, CPUExecutionProvider]   # onnxruntime's; ignored
//!     onnx_session_options: null                                 # onnxruntime's; ignored
//!     code: null
//! ```
//!
//! and, since `onnx.save_model(..., save_as_external_data=True)`, may put large tensors in
//! files beside `model.onnx`, which tract reads from the same directory.
//!
//! [`engine`] is the inference core in plain Rust (native tests and benchmarks use it);
//! the component glue that adapts it to the WIT world is compiled for wasm32 only.

pub mod dense;
pub mod engine;

#[cfg(target_arch = "wasm32")]
mod component;

use serde::Deserialize;

/// What `load` receives from the host: the flavor's name and its MLmodel section.
#[derive(Debug, Deserialize)]
pub struct LoadConfig {
    #[serde(default)]
    pub flavor: Option<String>,
    #[serde(default)]
    pub section: FlavorSection,
}

/// The keys of MLmodel's `onnx` section that matter here.
#[derive(Debug, Deserialize, Default)]
pub struct FlavorSection {
    /// The ONNX file, relative to the model directory (MLflow writes `model.onnx`).
    #[serde(default)]
    pub data: Option<String>,
    /// onnxruntime's session options; tract has its own plan, so they are only logged.
    #[serde(default)]
    pub onnx_session_options: Option<serde_json::Value>,
}

impl LoadConfig {
    /// Parses the host's load config.
    pub fn parse(config: &str) -> Result<LoadConfig, engine::EngineError> {
        serde_json::from_str(config).map_err(|e| engine::EngineError {
            kind: engine::ErrorKind::InvalidModel,
            message: format!("bad load config: {e}"),
        })
    }

    /// The ONNX file's path relative to the model directory; refuses paths that leave it.
    pub fn data_path(&self) -> Result<String, engine::EngineError> {
        let data = self
            .section
            .data
            .clone()
            .unwrap_or_else(|| "model.onnx".into());
        let path = std::path::Path::new(&data);
        let inside = path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if data.is_empty() || !inside {
            return Err(engine::EngineError {
                kind: engine::ErrorKind::InvalidModel,
                message: format!(
                    "the onnx section's data '{data}' is not a path inside the model directory"
                ),
            });
        }
        Ok(data)
    }
}
