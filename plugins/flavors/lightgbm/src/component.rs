//! The `flavor-plugin` exports: load a booster from `/model`, predict on tables and tensors.

use serde::Deserialize;
use wasmflow_plugin_sdk::{Data, Error, Guest, GuestModel, PluginInfo, Tensor, Values};

use wasmflow_features::tensor_rows;

use crate::input::{match_columns, text_feature};
use crate::model::{Booster, LoadError};
use crate::sklearn::{self, Labels, Prediction, SklearnModel};

/// MLflow's `model_class` for a booster (and its default when MLmodel has none).
const BOOSTER_CLASS: &str = "lightgbm.basic.Booster";

struct Plugin;

impl Guest for Plugin {
    type Model = LightGbmModel;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "lightgbm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            loads: vec!["lightgbm".into()],
            description: "LightGBM boosters saved in LightGBM's text model format".into(),
        }
    }
}

#[derive(Deserialize)]
struct LoadConfig {
    section: FlavorSection,
}

/// The `lightgbm` section of MLmodel, as `mlflow.lightgbm.save_model` writes it.
#[derive(Deserialize)]
struct FlavorSection {
    #[serde(default = "default_data_file")]
    data: String,
    #[serde(default)]
    model_class: Option<String>,
    #[serde(default)]
    serialization_format: Option<String>,
}

fn default_data_file() -> String {
    "model.lgb".into()
}

pub struct LightGbmModel {
    /// A bare booster (`lightgbm.basic.Booster`).
    booster: Option<Booster>,
    /// A scikit-learn estimator around its booster (`LGBMClassifier`, ...).
    sklearn: Option<SklearnModel>,
}

fn load_error(e: LoadError, file: &str) -> Error {
    let message = format!("cannot load '{file}': {e}");
    match e {
        LoadError::Invalid(_) => Error::invalid_model(message),
        LoadError::Unsupported(_) => Error::unsupported(message),
    }
}

/// Loads `LGBMClassifier`/`LGBMRegressor`/`LGBMRanker` from a skops file; refuses pickles.
fn load_sklearn(section: &FlavorSection, class: &str) -> Result<SklearnModel, Error> {
    let short = class.rsplit('.').next().unwrap_or(class);
    if !sklearn::SUPPORTED_CLASSES.contains(&short) {
        return Err(Error::unsupported(format!(
            "model_class '{class}' is not supported; supported: {BOOSTER_CLASS}, \
             lightgbm.sklearn.LGBMClassifier, lightgbm.sklearn.LGBMRegressor, \
             lightgbm.sklearn.LGBMRanker"
        )));
    }
    let format = section
        .serialization_format
        .as_deref()
        .unwrap_or("cloudpickle");
    if format != "skops" {
        return Err(Error::unsupported(format!(
            "the model is a {class} saved with serialization_format '{format}': pickled models \
             are not loaded, because loading a pickle runs arbitrary code; re-log it with \
             mlflow.lightgbm.log_model(model, ..., serialization_format=\"skops\") (mlflow's \
             default) or log its booster_ (a lightgbm.basic.Booster), or convert it to onnx"
        )));
    }
    let bytes = wasmflow_plugin_sdk::read_model_file(&section.data)?;
    let file = wasmflow_skops::read(&bytes).map_err(|e| {
        let message = format!("cannot read skops file '{}': {e}", section.data);
        match e.kind {
            wasmflow_skops::ErrorKind::Invalid => Error::invalid_model(message),
            wasmflow_skops::ErrorKind::Unsupported => Error::unsupported(message),
        }
    })?;
    SklearnModel::from_node(&file.root).map_err(|e| load_error(e, &section.data))
}

impl GuestModel for LightGbmModel {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config: LoadConfig = serde_json::from_str(&config)
            .map_err(|e| Error::invalid_model(format!("bad load config: {e}")))?;
        let section = config.section;
        let class = section.model_class.as_deref().unwrap_or(BOOSTER_CLASS);
        if class != BOOSTER_CLASS {
            let model = load_sklearn(&section, class)?;
            wasmflow_plugin_sdk::info(&format!(
                "loaded a {class}: objective {}, {} trees, {} features, {} outputs, best \
                 iteration {}",
                model.booster.objective,
                model.booster.num_trees(),
                model.booster.num_features(),
                model.booster.outputs,
                model.best_iteration
            ));
            return Ok(wasmflow_plugin_sdk::Model::new(LightGbmModel {
                booster: None,
                sklearn: Some(model),
            }));
        }
        let bytes = wasmflow_plugin_sdk::read_model_file(&section.data)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::invalid_model(format!(
                "'{}' is not a lightgbm text model (not utf-8)",
                section.data
            ))
        })?;
        let booster = Booster::parse(&text).map_err(|e| load_error(e, &section.data))?;
        wasmflow_plugin_sdk::info(&format!(
            "loaded a lightgbm booster: objective {}, {} trees, {} features, {} outputs",
            booster.objective,
            booster.num_trees(),
            booster.num_features(),
            booster.outputs
        ));
        Ok(wasmflow_plugin_sdk::Model::new(LightGbmModel {
            booster: Some(booster),
            sklearn: None,
        }))
    }

    fn signature(&self) -> Option<String> {
        let b = self.booster();
        let inputs: Vec<_> = b
            .feature_names
            .iter()
            .zip(&b.pandas_categories)
            .map(|(name, categories)| {
                let kind = if categories.is_some() {
                    "string"
                } else {
                    "double"
                };
                serde_json::json!({"type": kind, "name": name, "required": true})
            })
            .collect();
        let shape = if b.outputs == 1 {
            serde_json::json!([-1])
        } else {
            serde_json::json!([-1, b.outputs])
        };
        let dtype = match self.sklearn.as_ref().map(|m| &m.kind) {
            Some(sklearn::Kind::Classifier { classes }) => {
                let dtype = match classes {
                    Labels::Int(_) => "int64",
                    Labels::Float(_) => "float64",
                    Labels::Bool(_) => "bool",
                    Labels::Text(_) => "str",
                };
                return Some(
                    serde_json::json!({"inputs": inputs, "outputs": [{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": [-1]}}]})
                        .to_string(),
                );
            }
            _ => "float64",
        };
        let outputs = serde_json::json!([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}]);
        Some(serde_json::json!({"inputs": inputs, "outputs": outputs}).to_string())
    }

    fn predict(&self, input: Data, _params: Option<String>) -> Result<Data, Error> {
        // MLflow's pyfunc for lightgbm calls `model.predict(data)` and ignores params: a
        // numpy array, so one tensor named "".
        let (columns, rows) = self.features(input)?;
        if let Some(model) = &self.sklearn {
            let (shape, values) = match model.predict(&columns, rows) {
                Prediction::Values { values, shape } => (shape, Values::Float64(values)),
                Prediction::Labels(labels) => (
                    vec![rows],
                    match labels {
                        Labels::Int(v) => Values::Int64(v),
                        Labels::Float(v) => Values::Float64(v),
                        Labels::Bool(v) => Values::Boolean(v),
                        Labels::Text(v) => Values::Text(v),
                    },
                ),
            };
            return Ok(Data::Tensors(vec![Tensor {
                name: String::new(),
                shape: shape.iter().map(|&d| d as i64).collect(),
                values,
            }]));
        }
        let b = self.booster();
        let values = b.predict(&columns, rows);
        let shape = if b.outputs == 1 {
            vec![rows as i64]
        } else {
            vec![rows as i64, b.outputs as i64]
        };
        // MLflow's pyfunc returns the booster's ndarray, which the scoring server writes as a
        // list (nested for several outputs per row): one tensor named "" says "an array".
        Ok(Data::Tensors(vec![Tensor {
            name: String::new(),
            shape,
            values: Values::Float64(values),
        }]))
    }
}

impl LightGbmModel {
    fn booster(&self) -> &Booster {
        match (&self.sklearn, &self.booster) {
            (Some(model), _) => &model.booster,
            (None, Some(booster)) => booster,
            (None, None) => unreachable!("a model holds a booster"),
        }
    }

    /// The input as one list of values per feature, in the model's order, and the row count.
    fn features(&self, input: Data) -> Result<(Vec<Vec<f64>>, usize), Error> {
        let b = self.booster();
        match input {
            Data::Table(columns) => {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let chosen =
                    match_columns(&b.feature_names, &names).map_err(Error::invalid_input)?;
                let rows = chosen.first().map_or(0, |&i| columns[i].values.len());
                let features = chosen
                    .iter()
                    .zip(&b.pandas_categories)
                    .map(|(&i, categories)| {
                        let column = &columns[i];
                        if column.values.len() != rows {
                            return Err(Error::invalid_input(format!(
                                "column '{}' has {} values; expected {rows}",
                                column.name,
                                column.values.len()
                            )));
                        }
                        match &column.values {
                            Values::Text(text) => {
                                text_feature(text, categories.as_deref(), &column.name)
                                    .map_err(Error::invalid_input)
                            }
                            other => other.to_f64().ok_or_else(|| {
                                Error::invalid_input(format!(
                                    "column '{}' has {} values; expected numbers",
                                    column.name,
                                    other.type_name()
                                ))
                            }),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((features, rows))
            }
            // A single 2-D tensor [rows, features], as `instances` or `inputs` payloads give;
            // its columns are the features in the model's order, as with a numpy array.
            Data::Tensors(tensors) => {
                let [tensor] = tensors.as_slice() else {
                    return Err(Error::invalid_input(format!(
                        "expected one tensor, got {}",
                        tensors.len()
                    )));
                };
                let values = tensor.values.to_f64().ok_or_else(|| {
                    Error::invalid_input(format!(
                        "tensor '{}' has {} values; expected numbers",
                        tensor.name,
                        tensor.values.type_name()
                    ))
                })?;
                let width = b.num_features();
                let rows = tensor_rows(&tensor.shape, values.len(), width, false).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "tensor shape {:?} does not match [rows, {width}] (the model has {width} features)",
                        tensor.shape
                    ))
                })?;
                let features = (0..width)
                    .map(|i| (0..rows).map(|r| values[r * width + i]).collect())
                    .collect();
                Ok((features, rows))
            }
        }
    }
}

wasmflow_plugin_sdk::export_flavor!(Plugin);
