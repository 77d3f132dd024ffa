//! Turning a model directory into something that predicts: read its MLmodel, choose the
//! plugin (installed, built in, or carried by the model), load it into a pool of instances;
//! and scoring one request on it.

use std::path::{Component, Path};
use std::sync::Arc;

use wasmflow_core::mlmodel::{MlModel, ParamSpec, Schema};
use wasmflow_core::{Error, ErrorCode};
use wasmflow_runtime::{
    ManagerError, ModelPool, ModelSource, PluginError, PluginErrorKind, PluginManager,
};

use crate::scoring::{self, ScoringError};

/// A model loaded and ready to predict.
pub struct LoadedModel {
    pub pool: ModelPool,
    /// The input schema: the MLmodel's signature, or else the one the plugin reports.
    pub input_schema: Option<Schema>,
    /// The signature's inference parameters; a request's `params` are checked against them
    /// and dropped when there are none, as MLflow's pyfunc does.
    pub params_schema: Option<Vec<ParamSpec>>,
    pub flavor: String,
}

/// Loads the model in `dir` with `instances` instances at most.
pub fn load(manager: &PluginManager, dir: &Path, instances: usize) -> Result<LoadedModel, Error> {
    let mlmodel_path = dir.join("MLmodel");
    let text = std::fs::read_to_string(&mlmodel_path).map_err(|e| {
        Error::invalid(format!(
            "cannot read the model's MLmodel file ('{}'): {e}",
            mlmodel_path.display()
        ))
    })?;
    let mlmodel = MlModel::parse(&text)?;
    let (flavor, plugin_name, compiled) = match mlmodel.carried_plugin()? {
        Some(carried) => {
            let file = dir.join(inside_model_dir(&carried.component)?);
            let wasm = std::fs::read(&file).map_err(|e| {
                Error::invalid(format!(
                    "cannot read the model's plugin '{}': {e}",
                    carried.component
                ))
            })?;
            let plugin = manager
                .compile_carried(&wasm, &carried.sha256)
                .map_err(manager_error)?;
            let flavor = carried
                .flavor
                .unwrap_or_else(|| wasmflow_core::mlmodel::CARRIED_PLUGIN_FLAVOR.into());
            (flavor, plugin.record.name, plugin.compiled)
        }
        None => {
            let flavors: Vec<&str> = mlmodel.flavor_names().collect();
            let found = manager
                .for_flavors(flavors.iter().copied())
                .map_err(|e| Error::internal(format!("{e:#}")))?;
            let Some((flavor, plugin)) = found else {
                let loadable: Vec<String> = manager
                    .list()
                    .map_err(|e| Error::internal(format!("{e:#}")))?
                    .iter()
                    .flat_map(|p| p.record.loads.clone())
                    .collect();
                return Err(Error::invalid(format!(
                    "no installed plugin loads any of this model's flavors {flavors:?}; the \
                     installed plugins load {loadable:?}"
                )));
            };
            (flavor, plugin.record.name.clone(), plugin.compiled.clone())
        }
    };
    let section = mlmodel
        .flavor_section(&flavor)
        .unwrap_or(serde_json::Value::Null);
    let load_config = serde_json::json!({ "flavor": flavor, "section": section }).to_string();
    let source = ModelSource {
        plugin_name,
        plugin: compiled,
        model_dir: dir.to_path_buf(),
        load_config,
    };
    let pool =
        ModelPool::new(manager.runtime().clone(), source, instances).map_err(plugin_error)?;
    let signature = mlmodel.signature()?;
    let params_schema = signature.params;
    let input_schema = match signature.inputs {
        Some(schema) => Some(schema),
        None => pool
            .plugin_signature()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|s| s.get("inputs").map(serde_json::Value::to_string))
            .and_then(|inputs| Schema::parse(&inputs).ok()),
    };
    Ok(LoadedModel {
        pool,
        input_schema,
        params_schema,
        flavor,
    })
}

/// Why a request got no predictions. MLflow answers an unknown content type with a plain-text
/// 415 and everything else in its error shape, so the transport needs to tell them apart.
#[derive(Debug)]
pub enum Refused {
    UnsupportedMediaType(String),
    Error(Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedMediaType(m) => f.write_str(m),
            Self::Error(e) => f.write_str(&e.message),
        }
    }
}

impl From<ScoringError> for Refused {
    fn from(e: ScoringError) -> Self {
        match e {
            ScoringError::UnsupportedMediaType(message) => Self::UnsupportedMediaType(message),
            ScoringError::BadRequest(message) => {
                Self::Error(Error::new(ErrorCode::BadRequest, message))
            }
            ScoringError::Invalid(message) => Self::Error(Error::invalid(message)),
        }
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

impl LoadedModel {
    /// Scores one request body of `content_type` with MLflow's protocol: the answer's JSON.
    /// Blocking: it runs the plugin.
    pub fn score(&self, content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Refused> {
        let request = scoring::parse_request(
            content_type,
            body,
            self.input_schema.as_ref(),
            self.params_schema.as_deref(),
        )?;
        let output = self
            .pool
            .predict(&request.input, request.params.as_deref())
            .map_err(plugin_error)?;
        Ok(scoring::predictions(&output))
    }

    /// [`score`](Self::score) if an instance is idle now; `None` (and no plugin call) if the
    /// call would wait for one or make one.
    pub fn try_score(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Option<Result<Vec<u8>, Refused>> {
        let request = match scoring::parse_request(
            content_type,
            body,
            self.input_schema.as_ref(),
            self.params_schema.as_deref(),
        ) {
            Ok(request) => request,
            Err(e) => return Some(Err(e.into())),
        };
        let output = self
            .pool
            .try_predict(&request.input, request.params.as_deref())?;
        Some(
            output
                .map(|o| scoring::predictions(&o))
                .map_err(|e| plugin_error(e).into()),
        )
    }
}

/// A path from an MLmodel file, refused if it leaves the model directory.
fn inside_model_dir(relative: &str) -> Result<&Path, Error> {
    let path = Path::new(relative);
    if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::invalid(format!(
            "the model's plugin path '{relative}' must be a relative path inside the model directory"
        )));
    }
    Ok(path)
}

/// A plugin failure in MLflow's error shape; the message always names the plugin.
pub fn plugin_error(e: PluginError) -> Error {
    let code = match e.kind {
        PluginErrorKind::InvalidInput | PluginErrorKind::Unsupported => {
            ErrorCode::InvalidParameterValue
        }
        PluginErrorKind::Timeout => ErrorCode::TemporarilyUnavailable,
        _ => ErrorCode::InvalidState,
    };
    Error::new(code, e.to_string())
}

pub fn manager_error(e: ManagerError) -> Error {
    match e {
        ManagerError::Invalid(m) => Error::invalid(m),
        ManagerError::AlreadyExists(m) => Error::new(ErrorCode::ResourceAlreadyExists, m),
        ManagerError::NotFound(m) => Error::new(ErrorCode::ResourceDoesNotExist, m),
        ManagerError::Io(e) => Error::internal(format!("{e:#}")),
    }
}

/// How many instances a model's pool may hold: one per core.
pub fn default_instances() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub type SharedModel = Arc<LoadedModel>;
