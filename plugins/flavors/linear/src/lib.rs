//! A flavor for linear and logistic models: the template to copy when writing a plugin.
//!
//! A model in this flavor is a directory with an `MLmodel` file that has a `linear` section,
//!
//! ```yaml
//! flavors:
//!   linear:
//!     data: model.json
//! ```
//!
//! and the JSON file it names:
//!
//! ```json
//! {"features": ["x1", "x2"], "coefficients": [[0.5, -1.0]], "intercept": [0.25],
//!  "outputs": ["y"], "link": "identity"}
//! ```
//!
//! Each output `j` is `link(intercept[j] + sum_i coefficients[j][i] * x_i)`, with `link` the
//! identity (regression) or the logistic function (a probability).

use serde::Deserialize;
use wasmflow_plugin_sdk::{Column, Data, Error, Guest, GuestModel, PluginInfo, Values};

/// The plugin itself: the host calls `info` when the plugin is installed.
struct Plugin;

impl Guest for Plugin {
    type Model = LinearModel;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "linear".into(),
            // Cargo's version, so the host tells releases of the plugin apart.
            version: env!("CARGO_PKG_VERSION").into(),
            // The MLmodel flavors this plugin loads: the host picks it for models that have a
            // `linear` section.
            loads: vec!["linear".into()],
            description: "linear and logistic models stored as JSON coefficients".into(),
        }
    }
}

/// What `load` receives from the host: the flavor's name and its MLmodel section.
#[derive(Deserialize)]
struct LoadConfig {
    section: FlavorSection,
}

#[derive(Deserialize)]
struct FlavorSection {
    /// The coefficients file, relative to the model directory.
    #[serde(default = "default_data_file")]
    data: String,
}

fn default_data_file() -> String {
    "model.json".into()
}

/// The model file's contents.
#[derive(Deserialize)]
struct Coefficients {
    features: Vec<String>,
    /// One row of coefficients per output, each as long as `features`.
    coefficients: Vec<Vec<f64>>,
    intercept: Vec<f64>,
    #[serde(default)]
    outputs: Vec<String>,
    #[serde(default)]
    link: Link,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Link {
    #[default]
    Identity,
    Logistic,
}

/// A loaded model: the host keeps it between calls, so work done in `load` is done once.
pub struct LinearModel {
    model: Coefficients,
}

impl GuestModel for LinearModel {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config: LoadConfig = serde_json::from_str(&config)
            .map_err(|e| Error::invalid_model(format!("bad load config: {e}")))?;
        // The host mounts the model's files read-only at /model; nothing else is readable.
        let bytes = wasmflow_plugin_sdk::read_model_file(&config.section.data)?;
        let mut model: Coefficients = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid_model(format!("bad '{}': {e}", config.section.data)))?;
        check_shapes(&model)?;
        if model.outputs.is_empty() {
            model.outputs = (0..model.intercept.len())
                .map(|j| format!("output_{j}"))
                .collect();
        }
        wasmflow_plugin_sdk::info(&format!(
            "loaded a linear model with {} features and {} outputs",
            model.features.len(),
            model.outputs.len()
        ));
        Ok(wasmflow_plugin_sdk::Model::new(LinearModel { model }))
    }

    fn signature(&self) -> Option<String> {
        // MLflow's signature format: column specs for inputs and outputs.
        let spec = |names: &[String]| {
            let cols: Vec<_> = names
                .iter()
                .map(|n| serde_json::json!({"name": n, "type": "double", "required": true}))
                .collect();
            serde_json::Value::Array(cols)
        };
        Some(
            serde_json::json!({"inputs": spec(&self.model.features), "outputs": spec(&self.model.outputs)})
                .to_string(),
        )
    }

    /// One column per output. The host answers as MLflow's scoring server writes what a pyfunc
    /// returns: a table is a DataFrame (records, `[{"y": 0.5}, ...]`, even for one column), one
    /// tensor named `""` a numpy array (a list, nested by its shape), other tensors a dict of
    /// arrays. Return the shape the framework's own MLflow flavor returns.
    fn predict(&self, input: Data, _params: Option<String>) -> Result<Data, Error> {
        let features = self.feature_matrix(input)?;
        let m = &self.model;
        let rows = features.first().map_or(0, Vec::len);
        // Work column by column: the input arrives columnar, so this reads each list in order.
        let columns = m
            .coefficients
            .iter()
            .zip(&m.intercept)
            .zip(&m.outputs)
            .map(|((coefs, &intercept), name)| {
                let mut out = vec![intercept; rows];
                for (feature, &coef) in features.iter().zip(coefs) {
                    for (acc, &x) in out.iter_mut().zip(feature) {
                        *acc += coef * x;
                    }
                }
                if let Link::Logistic = m.link {
                    out.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
                }
                Column {
                    name: name.clone(),
                    values: Values::Float64(out),
                }
            })
            .collect();
        Ok(Data::Table(columns))
    }
}

impl LinearModel {
    /// The input as one list of values per feature, in the model's feature order.
    fn feature_matrix(&self, input: Data) -> Result<Vec<Vec<f64>>, Error> {
        let features = &self.model.features;
        match input {
            Data::Table(columns) => features
                .iter()
                .map(|name| {
                    let column = columns
                        .iter()
                        .find(|c| &c.name == name)
                        .ok_or_else(|| Error::invalid_input(format!("missing column '{name}'")))?;
                    column.values.to_f64().ok_or_else(|| {
                        Error::invalid_input(format!(
                            "column '{name}' has {} values; expected numbers",
                            column.values.type_name()
                        ))
                    })
                })
                .collect(),
            // A single 2-D tensor [rows, features], as `instances` or `inputs` payloads give.
            Data::Tensors(tensors) => {
                let [tensor] = tensors.as_slice() else {
                    return Err(Error::invalid_input(format!(
                        "expected one tensor, got {}",
                        tensors.len()
                    )));
                };
                let values = tensor
                    .values
                    .to_f64()
                    .ok_or_else(|| Error::invalid_input("tensor values must be numbers"))?;
                let width = features.len();
                let rows = match tensor.shape.as_slice() {
                    [rows, w] if *w as usize == width && values.len() == *rows as usize * width => {
                        *rows as usize
                    }
                    shape => {
                        return Err(Error::invalid_input(format!(
                            "tensor shape {shape:?} does not match [rows, {width}]"
                        )));
                    }
                };
                Ok((0..width)
                    .map(|i| (0..rows).map(|r| values[r * width + i]).collect())
                    .collect())
            }
        }
    }
}

fn check_shapes(m: &Coefficients) -> Result<(), Error> {
    if m.coefficients.len() != m.intercept.len() {
        return Err(Error::invalid_model(format!(
            "{} rows of coefficients but {} intercepts",
            m.coefficients.len(),
            m.intercept.len()
        )));
    }
    if let Some(row) = m
        .coefficients
        .iter()
        .find(|row| row.len() != m.features.len())
    {
        return Err(Error::invalid_model(format!(
            "a row of {} coefficients for {} features",
            row.len(),
            m.features.len()
        )));
    }
    if !m.outputs.is_empty() && m.outputs.len() != m.intercept.len() {
        return Err(Error::invalid_model(format!(
            "{} output names for {} outputs",
            m.outputs.len(),
            m.intercept.len()
        )));
    }
    Ok(())
}

// Registers the plugin's implementation as the component's exports.
wasmflow_plugin_sdk::export_flavor!(Plugin);
