//! What to load, from the host's load config and MLmodel, and loading it.

use serde::Deserialize;

use crate::data::Error;
use crate::estimator::{Estimator, Method, build};
use crate::input;

#[derive(Deserialize)]
struct LoadConfig {
    #[serde(default)]
    section: Option<FlavorSection>,
    /// MLmodel's `python_function` section, when the host passes it.
    #[serde(default)]
    python_function: Option<PyfuncSection>,
}

/// The `sklearn` section of MLmodel, as `mlflow.sklearn.save_model` writes it.
#[derive(Deserialize, Default)]
struct FlavorSection {
    #[serde(default)]
    pickled_model: Option<String>,
    #[serde(default)]
    serialization_format: Option<String>,
    #[serde(default)]
    sklearn_version: Option<String>,
}

#[derive(Deserialize, Default)]
struct PyfuncSection {
    #[serde(default)]
    predict_fn: Option<String>,
}

/// The model file, the prediction method, and what MLmodel says of the model.
#[derive(Debug)]
pub struct LoadPlan {
    /// The skops file, relative to the model directory (`pickled_model`).
    pub file: String,
    /// MLflow's `pyfunc_predict_fn` (python_function's `predict_fn`), `predict` by default.
    pub method: Method,
    pub sklearn_version: Option<String>,
}

impl LoadPlan {
    /// Reads the host's load config (`{"flavor": "sklearn", "section": {...}}`, optionally
    /// with `python_function`) and, for `predict_fn`, MLmodel's text when given.
    ///
    /// A model pickled by MLflow (`serialization_format` pickle or cloudpickle, or none, which
    /// MLflow reads as pickle) is refused: loading a pickle runs code.
    pub fn from_config(config: &str, mlmodel: Option<&str>) -> Result<LoadPlan, Error> {
        let config: LoadConfig = serde_json::from_str(config)
            .map_err(|e| Error::invalid_model(format!("bad load config: {e}")))?;
        let section = config.section.unwrap_or_default();
        let format = section.serialization_format.as_deref().unwrap_or("pickle");
        let file = section.pickled_model.clone().unwrap_or_else(|| {
            if format == "skops" {
                "model.skops".into()
            } else {
                "model.pkl".into()
            }
        });
        if format != "skops" {
            return Err(Error::unsupported(format!(
                "this scikit-learn model is saved as a {format} file ('{file}'); pickles are not \
                 loaded because loading one runs arbitrary code. re-log the model with \
                 mlflow.sklearn.log_model(model, ..., serialization_format=\"skops\"), or convert \
                 it to onnx (skl2onnx) and log it with mlflow.onnx.log_model"
            )));
        }
        let predict_fn = match config.python_function.and_then(|p| p.predict_fn) {
            Some(p) => Some(p),
            None => mlmodel.and_then(input::predict_fn_from_mlmodel),
        };
        let method = Method::parse(predict_fn.as_deref().unwrap_or("predict"))?;
        Ok(LoadPlan {
            file,
            method,
            sklearn_version: section.sklearn_version,
        })
    }
}

/// Reads a skops file and builds its estimator; also the skops version that wrote it.
pub fn load_estimator(
    bytes: &[u8],
    file: &str,
) -> Result<(Box<dyn Estimator>, Option<String>), Error> {
    let skops = wasmflow_skops::read(bytes)
        .map_err(|e| Error::from(e).context(format!("cannot read '{file}'")))?;
    let estimator = build(&skops.root)?;
    Ok((estimator, skops.skops_version))
}
