//! The MLmodel file: a model's flavors, signature and identity, as MLflow writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::{Error, Result};

/// The flavor whose section names a component the model brings with it.
pub const CARRIED_PLUGIN_FLAVOR: &str = "wasmflow";

/// An MLmodel file. Keys wasmflow does not use are kept, so a file read and written again
/// loses nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// Flavor name → its section, in the file's order (the first flavor is the preferred one).
    #[serde(default)]
    pub flavors: serde_yaml_ng::Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_time_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_input_example_info: Option<serde_yaml_ng::Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// The signature as MLmodel stores it: each part a JSON document inside the YAML.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SignatureText {
    #[serde(default)]
    pub inputs: Option<String>,
    #[serde(default)]
    pub outputs: Option<String>,
    #[serde(default)]
    pub params: Option<String>,
}

/// A model's declared inputs and outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    pub inputs: Option<Schema>,
    pub outputs: Option<Schema>,
    /// The inference parameters a request may pass; `None` when the model declares none, in
    /// which case MLflow ignores a request's `params`.
    pub params: Option<Vec<ParamSpec>>,
}

/// One inference parameter of a signature's `params`: `{"name": "k", "type": "long",
/// "default": 3, "shape": null}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    /// MLflow's data type name (`string`, `double`, `float`, `long`, `integer`, `boolean`, ...).
    pub dtype: String,
    pub default: Json,
    /// `None` for a scalar; `Some([-1])` for a list.
    pub shape: Option<Vec<i64>>,
}

impl ParamSpec {
    /// Parses the `params` part of a signature.
    pub fn parse_list(json: &str) -> Result<Vec<Self>> {
        let bad = |why: String| Error::invalid(format!("invalid signature params: {why}"));
        let specs: Vec<Json> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        specs
            .iter()
            .map(|spec| {
                let name = name_of(spec).ok_or_else(|| bad("a param without 'name'".into()))?;
                let dtype = spec
                    .get("type")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("param '{name}' has no 'type'")))?
                    .to_string();
                let shape = spec
                    .get("shape")
                    .and_then(Json::as_array)
                    .map(|dims| dims.iter().map(|d| d.as_i64().unwrap_or(-1)).collect());
                Ok(ParamSpec {
                    name,
                    dtype,
                    default: spec.get("default").cloned().unwrap_or(Json::Null),
                    shape,
                })
            })
            .collect()
    }
}

/// MLflow's schema: named columns of a table, or tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    Columns(Vec<ColumnSpec>),
    Tensors(Vec<TensorSpec>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: Option<String>,
    pub dtype: ColumnType,
    pub required: bool,
}

/// MLflow's `DataType` for columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    String,
    Binary,
    Datetime,
    /// Arrays, objects, maps and any type wasmflow passes through as JSON text.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: Option<String>,
    /// A numpy dtype name: `float32`, `float64`, `int64`, `bool`, `str`, …
    pub dtype: String,
    /// `-1` for a dimension of any size.
    pub shape: Vec<i64>,
}

/// The component a model brings with it (its `wasmflow` flavor section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarriedPlugin {
    /// The component file, relative to the model directory.
    pub component: String,
    pub sha256: String,
    /// The flavor section its `load` receives; the `wasmflow` section itself by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
}

/// `text` (an MLmodel file) with `plugin` as its `wasmflow` flavor section, added after the
/// other flavors or replacing the one there. The YAML is edited as data, not through
/// [`MlModel`], so every other key keeps its value and its place.
pub fn attach_carried_plugin(text: &str, plugin: &CarriedPlugin) -> Result<String> {
    let invalid = |why: String| Error::invalid(format!("invalid MLmodel file: {why}"));
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let root = doc
        .as_mapping_mut()
        .ok_or_else(|| invalid("it is not a mapping".into()))?;
    let flavors = root
        .entry("flavors".into())
        .or_insert_with(|| serde_yaml_ng::Value::Mapping(Default::default()))
        .as_mapping_mut()
        .ok_or_else(|| invalid("its 'flavors' is not a mapping".into()))?;
    if let Some(flavor) = &plugin.flavor
        && (flavor == CARRIED_PLUGIN_FLAVOR || !flavors.contains_key(flavor.as_str()))
    {
        let names: Vec<&str> = flavors
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k != CARRIED_PLUGIN_FLAVOR)
            .collect();
        return Err(Error::invalid(format!(
            "the MLmodel has no flavor '{flavor}' for the plugin to load; its flavors are {names:?}"
        )));
    }
    let section = serde_yaml_ng::to_value(plugin).expect("a carried plugin always serializes");
    flavors.insert(CARRIED_PLUGIN_FLAVOR.into(), section);
    serde_yaml_ng::to_string(&doc).map_err(|e| invalid(e.to_string()))
}

impl MlModel {
    pub fn parse(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text)
            .map_err(|e| Error::invalid(format!("invalid MLmodel file: {e}")))
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("an MLmodel always serializes")
    }

    /// The flavor names in the file's order.
    pub fn flavor_names(&self) -> impl Iterator<Item = &str> {
        self.flavors.keys().filter_map(|k| k.as_str())
    }

    /// A flavor's section as JSON, for a plugin's `load`.
    pub fn flavor_section(&self, flavor: &str) -> Option<Json> {
        let section = self.flavors.get(flavor)?;
        Some(serde_json::to_value(section).unwrap_or(Json::Null))
    }

    /// Adds or replaces a flavor's section.
    pub fn set_flavor(&mut self, flavor: &str, section: Json) {
        let section = serde_yaml_ng::to_value(section).expect("JSON always converts to YAML");
        self.flavors.insert(flavor.into(), section);
    }

    /// The `wasmflow` flavor section, when the model carries its own plugin.
    pub fn carried_plugin(&self) -> Result<Option<CarriedPlugin>> {
        let Some(section) = self.flavors.get(CARRIED_PLUGIN_FLAVOR) else {
            return Ok(None);
        };
        serde_yaml_ng::from_value(section.clone())
            .map(Some)
            .map_err(|e| {
                Error::invalid(format!(
                    "invalid '{CARRIED_PLUGIN_FLAVOR}' flavor in MLmodel: {e}"
                ))
            })
    }

    pub fn signature(&self) -> Result<Signature> {
        let Some(text) = &self.signature else {
            return Ok(Signature::default());
        };
        Ok(Signature {
            inputs: text.inputs.as_deref().map(Schema::parse).transpose()?,
            outputs: text.outputs.as_deref().map(Schema::parse).transpose()?,
            params: text
                .params
                .as_deref()
                .map(ParamSpec::parse_list)
                .transpose()?,
        })
    }
}

impl Schema {
    /// Parses MLflow's schema JSON: `[{"name": "x", "type": "double"}]` or
    /// `[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]`.
    pub fn parse(json: &str) -> Result<Self> {
        let bad = |why: String| Error::invalid(format!("invalid signature schema: {why}"));
        let specs: Vec<Json> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let is_tensor = |s: &Json| s.get("type").and_then(Json::as_str) == Some("tensor");
        if !specs.is_empty() && specs.iter().all(is_tensor) {
            let tensors = specs
                .iter()
                .map(|spec| {
                    let tensor = spec
                        .get("tensor-spec")
                        .ok_or_else(|| bad("a tensor without 'tensor-spec'".into()))?;
                    let dtype = tensor
                        .get("dtype")
                        .and_then(Json::as_str)
                        .ok_or_else(|| bad("a tensor without 'dtype'".into()))?;
                    let shape = tensor
                        .get("shape")
                        .and_then(Json::as_array)
                        .map(|dims| dims.iter().map(|d| d.as_i64().unwrap_or(-1)).collect())
                        .unwrap_or_default();
                    Ok(TensorSpec {
                        name: name_of(spec),
                        dtype: dtype.to_string(),
                        shape,
                    })
                })
                .collect::<Result<_>>()?;
            return Ok(Schema::Tensors(tensors));
        }
        if specs.iter().any(is_tensor) {
            return Err(bad("a schema mixes tensors and columns".into()));
        }
        let columns = specs
            .iter()
            .map(|spec| {
                let dtype = spec
                    .get("type")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad("a column without 'type'".into()))?;
                Ok(ColumnSpec {
                    name: name_of(spec),
                    dtype: ColumnType::parse(dtype),
                    required: spec.get("required").and_then(Json::as_bool).unwrap_or(true),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Schema::Columns(columns))
    }
}

fn name_of(spec: &Json) -> Option<String> {
    spec.get("name").and_then(Json::as_str).map(str::to_string)
}

impl ColumnType {
    pub fn parse(name: &str) -> Self {
        match name {
            "boolean" => Self::Boolean,
            "integer" => Self::Integer,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "string" => Self::String,
            "binary" => Self::Binary,
            "datetime" => Self::Datetime,
            other => Self::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MLmodel `mlflow.onnx.log_model` wrote with mlflow 3.17.2 (abridged values).
    const ONNX_MLMODEL: &str = r#"artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.19.1
    providers:
    - CUDAExecutionProvider
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 3.17.2
model_id: m-0123456789abcdef
model_size_bytes: 1234
model_uuid: m-0123456789abcdef
run_id: 5f1c2d
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}, "name": "input"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}, "name": "label"}]'
  params: null
utc_time_created: '2026-11-27 03:00:00.000000'
"#;

    #[test]
    fn reads_flavors_in_order_and_the_tensor_signature() {
        let model = MlModel::parse(ONNX_MLMODEL).unwrap();
        assert_eq!(
            model.flavor_names().collect::<Vec<_>>(),
            ["onnx", "python_function"]
        );
        assert_eq!(model.flavor_section("onnx").unwrap()["data"], "model.onnx");
        let signature = model.signature().unwrap();
        assert_eq!(
            signature.inputs,
            Some(Schema::Tensors(vec![TensorSpec {
                name: Some("input".into()),
                dtype: "float32".into(),
                shape: vec![-1, 4]
            }]))
        );
        assert!(model.carried_plugin().unwrap().is_none());
    }

    #[test]
    fn keeps_unknown_keys_when_written_again() {
        let model = MlModel::parse(ONNX_MLMODEL).unwrap();
        assert!(model.other.contains_key("model_size_bytes"));
        let again = MlModel::parse(&model.to_yaml()).unwrap();
        assert_eq!(again, model);
    }

    #[test]
    fn reads_column_schemas_and_optional_columns() {
        let schema =
            Schema::parse(r#"[{"type": "double", "name": "x"}, {"type": "string", "name": "s", "required": false}]"#)
                .unwrap();
        let Schema::Columns(columns) = schema else {
            panic!("expected columns")
        };
        assert_eq!(columns[0].dtype, ColumnType::Double);
        assert!(!columns[1].required);
        assert!(Schema::parse("not json").is_err());
    }

    #[test]
    fn attaching_a_plugin_keeps_every_other_key_in_place() {
        let plugin = CarriedPlugin {
            component: "wasmflow_plugin.wasm".into(),
            sha256: "ab".repeat(32),
            flavor: Some("onnx".into()),
        };
        let text = attach_carried_plugin(ONNX_MLMODEL, &plugin).unwrap();
        let model = MlModel::parse(&text).unwrap();
        assert_eq!(
            model.flavor_names().collect::<Vec<_>>(),
            ["onnx", "python_function", "wasmflow"]
        );
        assert_eq!(model.carried_plugin().unwrap(), Some(plugin.clone()));
        // Everything else reads back the same, and the top-level keys keep their order.
        let mut before = MlModel::parse(ONNX_MLMODEL).unwrap();
        before.set_flavor("wasmflow", model.flavor_section("wasmflow").unwrap());
        assert_eq!(model, before);
        let keys = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
                .filter_map(|l| l.split(':').next().map(str::to_string))
                .collect()
        };
        assert_eq!(keys(&text), keys(ONNX_MLMODEL));

        // Attached again, the section is replaced where it is, not added twice.
        let again = CarriedPlugin {
            sha256: "cd".repeat(32),
            ..plugin
        };
        let text = attach_carried_plugin(&text, &again).unwrap();
        assert_eq!(text.matches("wasmflow:").count(), 1);
        let model = MlModel::parse(&text).unwrap();
        assert_eq!(
            model.carried_plugin().unwrap().unwrap().sha256,
            again.sha256
        );
    }

    #[test]
    fn attaching_a_plugin_for_a_flavor_the_model_lacks_is_refused() {
        let plugin = |flavor: &str| CarriedPlugin {
            component: "p.wasm".into(),
            sha256: "ab".repeat(32),
            flavor: Some(flavor.into()),
        };
        let e = attach_carried_plugin(ONNX_MLMODEL, &plugin("xgboost")).unwrap_err();
        assert_eq!(
            e.message,
            "the MLmodel has no flavor 'xgboost' for the plugin to load; its flavors are \
             [\"onnx\", \"python_function\"]"
        );
        assert!(attach_carried_plugin(ONNX_MLMODEL, &plugin("wasmflow")).is_err());
        assert!(attach_carried_plugin("- a list\n", &plugin("onnx")).is_err());
    }

    #[test]
    fn reads_a_carried_plugin_and_writes_new_flavors() {
        let mut model = MlModel::parse("flavors: {}\n").unwrap();
        model.set_flavor(
            "wasmflow",
            serde_json::json!({"component": "plugin.wasm", "sha256": "ab"}),
        );
        let carried = model.carried_plugin().unwrap().unwrap();
        assert_eq!(carried.component, "plugin.wasm");
        assert_eq!(carried.flavor, None);
    }
}
