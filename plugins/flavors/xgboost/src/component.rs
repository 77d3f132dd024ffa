//! The `flavor-plugin` exports: load an XGBoost model from `/model`, predict on tables and
//! tensors as MLflow's xgboost pyfunc does.

use serde_json::Value as Json;
use wasmflow_plugin_sdk::{Data, Error, Guest, GuestModel, PluginInfo, Tensor, Values};

use wasmflow_features::tensor_rows;

use crate::input::{match_columns, parse_number, rows_from_columns};
use crate::model::{Booster, LoadError};
use crate::predict::{self, ModelClass, Options, SUPPORTED_CLASSES};

struct Plugin;

impl Guest for Plugin {
    type Model = XgboostModel;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "xgboost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            loads: vec!["xgboost".into()],
            description: "XGBoost boosters and scikit-learn wrappers saved as UBJSON or JSON"
                .into(),
        }
    }
}

pub struct XgboostModel {
    booster: Booster,
    class: ModelClass,
}

impl GuestModel for XgboostModel {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config: Json = serde_json::from_str(&config)
            .map_err(|e| Error::invalid_model(format!("bad load config: {e}")))?;
        let section = config.get("section").cloned().unwrap_or(Json::Null);
        let text = |key: &str| section.get(key).and_then(Json::as_str);
        let class_name = text("model_class").unwrap_or("xgboost.core.Booster");
        let class = ModelClass::from_name(class_name).ok_or_else(|| {
            Error::unsupported(format!(
                "model_class '{class_name}' is not supported; supported: {}",
                SUPPORTED_CLASSES.join(", ")
            ))
        })?;
        let data = text("data").unwrap_or("model.ubj").to_owned();
        let bytes = wasmflow_plugin_sdk::read_model_file(&data)?;
        let booster = Booster::load(&bytes).map_err(|e| {
            let message = format!("cannot load '{data}': {e}");
            match e {
                LoadError::Invalid(_) => Error::invalid_model(message),
                LoadError::Unsupported(_) => Error::unsupported(message),
            }
        })?;
        wasmflow_plugin_sdk::info(&format!(
            "loaded an xgboost {class_name}: {} booster, objective {}, {} trees, {} features, {} outputs",
            booster.booster,
            booster.objective,
            booster.num_trees(),
            booster.num_feature,
            booster.outputs
        ));
        Ok(wasmflow_plugin_sdk::Model::new(XgboostModel {
            booster,
            class,
        }))
    }

    fn signature(&self) -> Option<String> {
        let b = &self.booster;
        if b.feature_names.is_empty() {
            return None;
        }
        let inputs: Vec<Json> = b
            .feature_names
            .iter()
            .map(|name| serde_json::json!({"type": "double", "name": name, "required": true}))
            .collect();
        let width = b.output_width(false);
        let (dtype, shape) = match self.class {
            ModelClass::Classifier => ("int64", serde_json::json!([-1])),
            _ if width == 1 => ("float32", serde_json::json!([-1])),
            _ => ("float32", serde_json::json!([-1, width])),
        };
        let outputs = serde_json::json!([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}]);
        Some(serde_json::json!({"inputs": inputs, "outputs": outputs}).to_string())
    }

    fn predict(&self, input: Data, params: Option<String>) -> Result<Data, Error> {
        let options = self.options(params.as_deref())?;
        let (features, rows) = self.features(input)?;
        let prediction = predict::predict(
            &self.booster,
            self.class,
            &features,
            rows,
            &options,
            f32::NAN,
        )
        .map_err(Error::invalid_input)?;
        Ok(Data::Tensors(vec![to_tensor(prediction)]))
    }
}

/// One tensor named "" (a numpy array, as MLflow's pyfunc returns).
pub fn to_tensor(prediction: predict::Prediction) -> Tensor {
    Tensor {
        name: String::new(),
        shape: prediction.shape.iter().map(|&d| d as i64).collect(),
        values: match prediction.values {
            predict::Values::Float32(v) => Values::Float32(v),
            predict::Values::Float64(v) => Values::Float64(v),
            predict::Values::Int32(v) => Values::Int32(v),
            predict::Values::Int64(v) => Values::Int64(v),
        },
    }
}

impl XgboostModel {
    /// The request's parameters, as MLflow passes them to `predict` (it drops the ones the
    /// predict function does not take).
    fn options(&self, params: Option<&str>) -> Result<Options, Error> {
        let mut options = Options::default();
        let Some(params) = params else {
            return Ok(options);
        };
        let params: Json = serde_json::from_str(params)
            .map_err(|e| Error::invalid_input(format!("bad params: {e}")))?;
        let Some(params) = params.as_object() else {
            return Ok(options);
        };
        let flag = |key: &str| -> Result<bool, Error> {
            match params.get(key) {
                None | Some(Json::Null) => Ok(false),
                Some(Json::Bool(b)) => Ok(*b),
                Some(other) => Err(Error::invalid_input(format!(
                    "parameter '{key}' is {other}; expected true or false"
                ))),
            }
        };
        options.output_margin = flag("output_margin")?;
        if self.class == ModelClass::Booster {
            options.strict_shape = flag("strict_shape")?;
            for key in [
                "pred_leaf",
                "pred_contribs",
                "approx_contribs",
                "pred_interactions",
            ] {
                if flag(key)? {
                    return Err(Error::unsupported(format!(
                        "parameter '{key}' is not supported; supported parameters: \
                         output_margin, iteration_range, strict_shape"
                    )));
                }
            }
        }
        if params.get("base_margin").is_some_and(|v| !v.is_null()) {
            return Err(Error::unsupported(
                "parameter 'base_margin' is not supported; supported parameters: output_margin, \
                 iteration_range",
            ));
        }
        match params.get("iteration_range") {
            None | Some(Json::Null) => {}
            Some(Json::Array(pair)) if pair.len() == 2 => {
                let bound = |v: &Json| v.as_u64().and_then(|x| usize::try_from(x).ok());
                match (bound(&pair[0]), bound(&pair[1])) {
                    (Some(a), Some(b)) => options.iteration_range = Some((a, b)),
                    _ => {
                        return Err(Error::invalid_input(format!(
                            "parameter 'iteration_range' is {}; expected [begin, end] with \
                             non-negative integers",
                            Json::Array(pair.clone())
                        )));
                    }
                }
            }
            Some(other) => {
                return Err(Error::invalid_input(format!(
                    "parameter 'iteration_range' is {other}; expected [begin, end]"
                )));
            }
        }
        Ok(options)
    }

    /// The input as float32 rows of the model's features, and the row count.
    fn features(&self, input: Data) -> Result<(Vec<f32>, usize), Error> {
        let b = &self.booster;
        match input {
            Data::Table(columns) => {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let chosen = match_columns(&b.feature_names, b.num_feature, &names)
                    .map_err(Error::invalid_input)?;
                let rows = chosen.first().map_or(0, |&i| columns[i].values.len());
                let values = chosen
                    .iter()
                    .map(|&i| {
                        let column = &columns[i];
                        if column.values.len() != rows {
                            return Err(Error::invalid_input(format!(
                                "column '{}' has {} values; expected {rows}",
                                column.name,
                                column.values.len()
                            )));
                        }
                        match &column.values {
                            Values::Text(text) => text
                                .iter()
                                .map(|t| {
                                    parse_number(t).ok_or_else(|| {
                                        Error::invalid_input(format!(
                                            "column '{}' holds '{}', which is not a number \
                                             (xgboost takes int, float and bool columns)",
                                            column.name,
                                            t.chars().take(40).collect::<String>()
                                        ))
                                    })
                                })
                                .collect(),
                            other => other.to_f64().ok_or_else(|| {
                                Error::invalid_input(format!(
                                    "column '{}' has {} values; expected numbers",
                                    column.name,
                                    other.type_name()
                                ))
                            }),
                        }
                    })
                    .collect::<Result<Vec<Vec<f64>>, _>>()?;
                let slices: Vec<&[f64]> = values.iter().map(Vec::as_slice).collect();
                Ok((rows_from_columns(&slices, rows), rows))
            }
            // One 2-D tensor [rows, features] (`instances` / `inputs`): its columns are the
            // features in order, as with a numpy array.
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
                let width = b.num_feature;
                // A 1-D tensor [n] is n rows of a one-feature model.
                let rows =
                    tensor_rows(&tensor.shape, values.len(), width, true).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "tensor shape {:?} does not match [rows, {width}] (the model has \
                             {width} features)",
                            tensor.shape
                        ))
                    })?;
                Ok((values.iter().map(|&x| x as f32).collect(), rows))
            }
        }
    }
}

wasmflow_plugin_sdk::export_flavor!(Plugin);
