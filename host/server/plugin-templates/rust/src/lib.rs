//! `{{name}}`: a wasmflow flavor plugin that scores rows with a linear function.
//!
//! A model in the `{{flavor}}` flavor is a directory whose `MLmodel` has the section
//!
//! ```yaml
//! flavors:
//!   {{flavor}}:
//!     data: coefficients.json
//! ```
//!
//! and the JSON file it names, `{"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}`.
//! Each row's prediction is `bias + sum_i weights[i] * x_i` (plus the request's `offset`
//! param, when given). Replace `Linear` with your model.

use serde::Deserialize;
use wasmflow_plugin_sdk::{Data, Error, Guest, GuestModel, LoadConfig, Matrix, PluginInfo};

struct Plugin;

impl Guest for Plugin {
    type Model = Model;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // The MLmodel flavor sections this plugin loads.
            loads: vec!["{{flavor}}".into()],
            description: "linear scores from a JSON file of coefficients".into(),
        }
    }
}

/// The plugin's MLmodel section.
#[derive(Deserialize)]
struct Section {
    /// The coefficients file, relative to the model directory.
    #[serde(default = "default_data")]
    data: String,
}

fn default_data() -> String {
    "coefficients.json".into()
}

/// The request's params (`{"params": {"offset": 1.5}}` in a scoring request).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Params {
    offset: f64,
}

/// The model file.
#[derive(Deserialize, Debug, PartialEq)]
struct Linear {
    features: Vec<String>,
    weights: Vec<f64>,
    bias: f64,
}

impl Linear {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let model: Linear = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if model.weights.len() != model.features.len() {
            return Err(format!(
                "{} weights for {} features",
                model.weights.len(),
                model.features.len()
            ));
        }
        Ok(model)
    }

    /// One score per row of `x` (whose columns are `features`, in order).
    fn score(&self, x: &Matrix<f64>, offset: f64) -> Vec<f64> {
        x.iter_rows()
            .map(|row| {
                let dot: f64 = row.iter().zip(&self.weights).map(|(a, w)| a * w).sum();
                self.bias + dot + offset
            })
            .collect()
    }
}

/// A loaded model: the host keeps it between calls, so `load` runs once per instance.
pub struct Model {
    linear: Linear,
}

impl GuestModel for Model {
    fn load(config: String) -> Result<wasmflow_plugin_sdk::Model, Error> {
        let config = LoadConfig::<Section>::parse(&config)?;
        // The host mounts the model's directory read-only at /model; nothing else is readable.
        let bytes = wasmflow_plugin_sdk::read_model_file(&config.section.data)?;
        let linear = Linear::parse(&bytes)
            .map_err(|e| Error::invalid_model(format!("bad '{}': {e}", config.section.data)))?;
        wasmflow_plugin_sdk::info(&format!(
            "loaded a linear model over {} features",
            linear.features.len()
        ));
        Ok(wasmflow_plugin_sdk::Model::new(Model { linear }))
    }

    fn signature(&self) -> Option<String> {
        // None: the host uses the MLmodel's own signature, when it has one.
        None
    }

    fn predict(&self, input: Data, params: Option<String>) -> Result<Data, Error> {
        let params: Params = wasmflow_plugin_sdk::parse_params(params.as_deref())?;
        // Columns by name (or by position when none is named like a feature), or one tensor
        // [rows, features]; missing values arrive as NaN and give a NaN score.
        let x = input.to_matrix_f64(&self.linear.features)?;
        // One value per row: answered as {"predictions": [v0, v1, ...]}.
        Ok(Data::single_vector(self.linear.score(&x, params.offset)))
    }
}

wasmflow_plugin_sdk::export_flavor!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflow_plugin_sdk::{Column, Values};

    #[test]
    fn scores_columns_by_name() {
        let linear =
            Linear::parse(br#"{"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}"#)
                .unwrap();
        let input = Data::Table(vec![
            Column { name: "x2".into(), values: Values::Float64(vec![1.0, 0.0]) },
            Column { name: "x1".into(), values: Values::Int64(vec![2, 4]) },
        ]);
        let x = input.to_matrix_f64(&linear.features).unwrap();
        assert_eq!(linear.score(&x, 0.0), vec![0.25, 2.25]);
        assert_eq!(linear.score(&x, 1.0), vec![1.25, 3.25]);
    }

    #[test]
    fn rejects_a_short_weight_list() {
        let err = Linear::parse(br#"{"features": ["a"], "weights": [], "bias": 0}"#).unwrap_err();
        assert_eq!(err, "0 weights for 1 features");
    }
}
