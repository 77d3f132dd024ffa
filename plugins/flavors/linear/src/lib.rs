//! A flavor for linear and logistic models, annotated for plugin authors (`wasmflow plugins new`
//! makes a project to start from).
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
use wasmflow_plugin_sdk::{Column, Data, Error, Guest, GuestModel, LoadConfig, PluginInfo, Values};

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

/// The flavor's MLmodel section, which `load` receives (with the flavor's name) as JSON; the
/// SDK's [`LoadConfig`] parses it into this type.
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
        let config = LoadConfig::<FlavorSection>::parse(&config)?;
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
        let m = &self.model;
        // The SDK matches the request's columns to the features by name (or by position when no
        // column is named like a feature), or reads one [rows, features] tensor, into a dense
        // row-major matrix; a null arrives as NaN.
        let x = input.to_matrix_f64(&m.features)?;
        let columns = m
            .coefficients
            .iter()
            .zip(&m.intercept)
            .zip(&m.outputs)
            .map(|((coefs, &intercept), name)| {
                let out = x
                    .iter_rows()
                    .map(|row| {
                        let z = intercept + row.iter().zip(coefs).map(|(x, c)| x * c).sum::<f64>();
                        match m.link {
                            Link::Identity => z,
                            Link::Logistic => 1.0 / (1.0 + (-z).exp()),
                        }
                    })
                    .collect();
                Column {
                    name: name.clone(),
                    values: Values::Float64(out),
                }
            })
            .collect();
        Ok(Data::Table(columns))
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
