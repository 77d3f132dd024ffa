//! The `flavor-plugin` exports: load a skops model from `/model`, predict on tables and tensors.

use wasmflow_plugin_sdk::{Data, Error, ErrorKind, Guest, GuestModel, PluginInfo, Tensor, Values};

use crate::data::{self, Column};
use crate::estimator::{Estimator, Method};
use crate::input;
use crate::load::{LoadPlan, load_estimator};

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
        let mlmodel = std::fs::read_to_string("/model/MLmodel").ok();
        let plan = LoadPlan::from_config(&config, mlmodel.as_deref()).map_err(convert)?;
        let file = &plan.file;
        let bytes = wasmflow_plugin_sdk::read_model_file(file)?;
        let (estimator, skops_version) = load_estimator(&bytes, file).map_err(convert)?;
        wasmflow_plugin_sdk::info(&format!(
            "loaded {} from '{file}' (scikit-learn {}, skops {}), {:?}",
            estimator.name(),
            plan.sklearn_version.as_deref().unwrap_or("?"),
            skops_version.as_deref().unwrap_or("?"),
            plan.method,
        ));
        Ok(wasmflow_plugin_sdk::Model::new(SklearnModel {
            estimator,
            method: plan.method,
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
