//! The `flavor-plugin` exports: load a skops model from `/model`, predict on tables and tensors.

use serde::Deserialize;
use wasmflow_plugin_sdk::{Data, Error, ErrorKind, Guest, GuestModel, PluginInfo, Tensor, Values};

use crate::data::{self, Column};
use crate::estimator::{Estimator, Method, build};
use crate::input;

struct Plugin;

impl Guest for Plugin {
    type Model = SklearnModel;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "sklearn".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            loads: vec!["sklearn".into()],
            description: "scikit-learn estimators and pipelines saved with skops (mlflow's default), read as data".into(),
        }
    }
}

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

pub struct SklearnModel {
    estimator: Box<dyn Estimator>,
    method: Method,
}

fn convert(e: data::Error) -> Error {
    let kind = match e.kind {
        data::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
        data::ErrorKind::InvalidModel => ErrorKind::InvalidModel,
        data::ErrorKind::Unsupported => ErrorKind::Unsupported,
        data::ErrorKind::Internal => ErrorKind::Internal,
    };
    Error {
        kind,
        message: e.message,
    }
}

impl GuestModel for SklearnModel {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config: LoadConfig = serde_json::from_str(&config)
            .map_err(|e| Error::invalid_model(format!("bad load config: {e}")))?;
        let section = config.section.unwrap_or_default();
        // MLflow reads a section without `serialization_format` as a pickle.
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
            None => std::fs::read_to_string("/model/MLmodel")
                .ok()
                .and_then(|t| input::predict_fn_from_mlmodel(&t)),
        };
        let method = Method::parse(predict_fn.as_deref().unwrap_or("predict")).map_err(convert)?;
        let bytes = wasmflow_plugin_sdk::read_model_file(&file)?;
        let skops = wasmflow_skops::read(&bytes)
            .map_err(|e| convert(data::Error::from(e).context(format!("cannot read '{file}'"))))?;
        let estimator = build(&skops.root).map_err(convert)?;
        wasmflow_plugin_sdk::info(&format!(
            "loaded {} from '{file}' (scikit-learn {}, skops {}), predict_fn {predict_fn:?}",
            estimator.name(),
            section.sklearn_version.as_deref().unwrap_or("?"),
            skops.skops_version.as_deref().unwrap_or("?"),
        ));
        Ok(wasmflow_plugin_sdk::Model::new(SklearnModel {
            estimator,
            method,
        }))
    }

    fn signature(&self) -> Option<String> {
        None
    }

    fn predict(&self, input: Data, _params: Option<String>) -> Result<Data, Error> {
        // MLflow's sklearn pyfunc calls `model.<predict_fn>(data)` and ignores params.
        let est = self.estimator.as_ref();
        let x = match input {
            Data::Table(columns) => {
                let columns = columns
                    .into_iter()
                    .map(|c| Ok((c.name.clone(), column(c.values, &c.name)?)))
                    .collect::<Result<Vec<_>, Error>>()?;
                input::from_table(est, columns).map_err(convert)?
            }
            Data::Tensors(tensors) => {
                let [tensor] = <[Tensor; 1]>::try_from(tensors).map_err(|t| {
                    Error::invalid_input(format!("expected one tensor, got {}", t.len()))
                })?;
                let values = column(tensor.values, &tensor.name)?;
                input::from_array(&tensor.shape, values).map_err(convert)?
            }
        };
        let out = self.method.call(est, &x).map_err(convert)?;
        let values = match out.values {
            data::Values::F64(v) => Values::Float64(v),
            data::Values::F32(v) => Values::Float32(v),
            data::Values::I64(v) => Values::Int64(v),
            data::Values::Bool(v) => Values::Boolean(v),
            data::Values::Text(v) => Values::Text(v),
        };
        Ok(Data::Tensors(vec![Tensor {
            name: String::new(),
            shape: out.shape.iter().map(|&d| d as i64).collect(),
            values,
        }]))
    }
}

/// A request's values as an input column: numbers and booleans as numbers, text as text.
fn column(values: Values, name: &str) -> Result<Column, Error> {
    match values {
        Values::Text(v) => Ok(Column::Text(v.into_iter().map(Some).collect())),
        Values::Binary(_) => Err(Error::invalid_input(format!(
            "column '{name}' holds binary values; scikit-learn estimators take numbers or text"
        ))),
        other => Ok(Column::Num(other.to_f64().unwrap_or_default())),
    }
}

wasmflow_plugin_sdk::export_flavor!(Plugin);
