//! Turning a model directory into something that predicts: read its MLmodel, choose the
//! plugin (installed, built in, or carried by the model), load it into a pool of instances;
//! and scoring one request on it.

use std::path::{Component, Path};
use std::sync::Arc;

use wasmflow_core::mlmodel::{CARRIED_PLUGIN_FLAVOR, MlModel, ParamSpec, Schema};
use wasmflow_core::{Error, ErrorCode};
use wasmflow_runtime::{
    CheckedPlugin, ManagerError, ModelPool, ModelSource, PluginError, PluginErrorKind,
    PluginManager, PluginRecord, Runtime, choose,
};

use crate::scoring::{self, ScoringError, ScoringRequest};

/// A model loaded and ready to predict.
pub struct LoadedModel {
    pub pool: ModelPool,
    /// The input schema: the MLmodel's signature, or else the one the plugin reports.
    pub input_schema: Option<Schema>,
    /// The signature's inference parameters; a request's `params` are checked against them
    /// and dropped when there are none, as MLflow's pyfunc does.
    pub params_schema: Option<Vec<ParamSpec>>,
    pub flavor: String,
    /// The plugin that loaded it and where it came from.
    pub plugin: ServingPlugin,
    /// The MLmodel's flavors in its order: what the plugin was chosen by, and is chosen by
    /// again when the installed plugins change.
    pub flavors: Vec<String>,
}

/// Where the plugin serving a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginOrigin {
    BuiltIn,
    /// Installed in the plugin directory.
    Installed,
    /// In the model directory, named by the MLmodel's `wasmflow` flavor.
    Carried,
    /// Installed on a tracking server and downloaded from it (`models predict`/`serve`).
    Server,
    /// The component given to `wasmflow plugins check`.
    Given,
}

impl std::fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BuiltIn => "built-in",
            Self::Installed => "installed",
            Self::Carried => "carried by the model",
            Self::Server => "from the tracking server",
            Self::Given => "given to plugins check",
        })
    }
}

/// The plugin serving a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingPlugin {
    pub origin: PluginOrigin,
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl std::fmt::Display for ServingPlugin {
    /// `'linear@0.1.0' (built-in, sha256 0123456789ab)`, for the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "'{}@{}' ({}, sha256 {})",
            self.name,
            self.version,
            self.origin,
            &self.sha256[..self.sha256.len().min(12)]
        )
    }
}

/// Plugins tried after the manager's: those a tracking server has installed, which the CLI
/// downloads before loading.
#[derive(Default)]
pub struct OtherPlugins {
    pub plugins: Vec<Arc<CheckedPlugin>>,
    /// Where else was searched, for the "no plugin" error (e.g. "the plugins installed on the
    /// server at http://host:5000 (MLFLOW_TRACKING_URI), which load [\"x\"]").
    pub searched: Vec<String>,
}

/// Loads the model in `dir` with `instances` instances at most, with the plugin it carries or
/// else the installed or built-in one that loads its first loadable flavor.
pub fn load(manager: &PluginManager, dir: &Path, instances: usize) -> Result<LoadedModel, Error> {
    load_with(manager, dir, instances, &OtherPlugins::default())
}

/// `load`, trying `other` plugins after the manager's.
pub fn load_with(
    manager: &PluginManager,
    dir: &Path,
    instances: usize,
    other: &OtherPlugins,
) -> Result<LoadedModel, Error> {
    load_from(
        PluginChoice::Installed(manager, other),
        manager.runtime(),
        dir,
        instances,
    )
}

/// Loads the model in `dir` with `plugin`, installed or not, whatever plugin the model carries
/// (`wasmflow plugins check`): the flavor is the carried plugin's, else the first of the
/// model's flavors that `plugin` loads.
pub fn load_with_plugin(
    runtime: &Arc<Runtime>,
    plugin: &CheckedPlugin,
    dir: &Path,
    instances: usize,
) -> Result<LoadedModel, Error> {
    load_from(PluginChoice::Given(plugin), runtime, dir, instances)
}

/// Where the plugin that loads a model comes from.
enum PluginChoice<'a> {
    /// The model's own, or else the manager's for the model's flavors, or else one of `other`.
    Installed(&'a PluginManager, &'a OtherPlugins),
    /// This one.
    Given(&'a CheckedPlugin),
}

/// The MLmodel file of the model in `dir`.
pub fn read_mlmodel(dir: &Path) -> Result<MlModel, Error> {
    // Named relative to the model's root: where the server keeps models is not the client's
    // business.
    let text = std::fs::read_to_string(dir.join("MLmodel"))
        .map_err(|e| Error::invalid(format!("cannot read the model's 'MLmodel' file: {e}")))?;
    MlModel::parse(&text)
}

fn load_from(
    choice: PluginChoice<'_>,
    runtime: &Arc<Runtime>,
    dir: &Path,
    instances: usize,
) -> Result<LoadedModel, Error> {
    let mlmodel = read_mlmodel(dir)?;
    let flavors: Vec<String> = mlmodel.flavor_names().map(str::to_string).collect();
    let (flavor, plugin, compiled) = match (mlmodel.carried_plugin()?, choice) {
        (Some(carried), PluginChoice::Given(plugin)) => {
            let flavor = carried
                .flavor
                .unwrap_or_else(|| CARRIED_PLUGIN_FLAVOR.into());
            (
                flavor,
                serving_plugin(&plugin.record, PluginOrigin::Given),
                plugin.compiled.clone(),
            )
        }
        (Some(carried), PluginChoice::Installed(manager, _)) => {
            // Checked before the component is read: a typo in `flavor:` must not end as the
            // plugin's own "cannot read '/model/...'".
            if let Some(flavor) = &carried.flavor
                && (flavor == CARRIED_PLUGIN_FLAVOR || mlmodel.flavor_section(flavor).is_none())
            {
                let sections: Vec<&str> = mlmodel
                    .flavor_names()
                    .filter(|f| *f != CARRIED_PLUGIN_FLAVOR)
                    .collect();
                return Err(Error::invalid(format!(
                    "the model's plugin is to load flavor '{flavor}', which is not a section of \
                     its MLmodel (the sections are {sections:?})"
                )));
            }
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
            let record = plugin.record;
            if let Some(flavor) = &carried.flavor
                && !record.loads.contains(flavor)
            {
                return Err(Error::invalid(format!(
                    "the model's plugin '{}@{}' does not load flavor '{flavor}' (it loads {:?})",
                    record.name, record.version, record.loads
                )));
            }
            let flavor = carried
                .flavor
                .unwrap_or_else(|| CARRIED_PLUGIN_FLAVOR.into());
            (
                flavor,
                serving_plugin(&record, PluginOrigin::Carried),
                plugin.compiled,
            )
        }
        (None, PluginChoice::Given(plugin)) => {
            let Some(flavor) = flavors.iter().find(|f| plugin.record.loads.contains(f)) else {
                return Err(Error::invalid(format!(
                    "plugin '{}' loads {:?}, none of this model's flavors {flavors:?}",
                    plugin.record.name, plugin.record.loads
                )));
            };
            (
                flavor.clone(),
                serving_plugin(&plugin.record, PluginOrigin::Given),
                plugin.compiled.clone(),
            )
        }
        (None, PluginChoice::Installed(manager, other)) => {
            let found = manager
                .for_flavors(flavors.iter().map(String::as_str))
                .map_err(io_error)?;
            if let Some((flavor, plugin)) = found {
                let origin = if plugin.record.builtin {
                    PluginOrigin::BuiltIn
                } else {
                    PluginOrigin::Installed
                };
                // Compiled on first use (once, however many loads wait for it).
                let compiled = manager.compile(&plugin).map_err(manager_error)?;
                (flavor, serving_plugin(&plugin.record, origin), compiled)
            } else {
                let records: Vec<&PluginRecord> = other.plugins.iter().map(|p| &p.record).collect();
                let Some((flavor, i)) = choose(&records, flavors.iter().map(String::as_str)) else {
                    return Err(no_plugin(manager, &flavors, other)?);
                };
                let plugin = &other.plugins[i];
                (
                    flavor,
                    serving_plugin(&plugin.record, PluginOrigin::Server),
                    plugin.compiled.clone(),
                )
            }
        }
    };
    let section = mlmodel
        .flavor_section(&flavor)
        .unwrap_or(serde_json::Value::Null);
    let load_config = serde_json::json!({ "flavor": flavor, "section": section }).to_string();
    let source = ModelSource {
        plugin_name: plugin.name.clone(),
        plugin: compiled,
        model_dir: dir.to_path_buf(),
        load_config,
    };
    let pool = ModelPool::new(runtime.clone(), source, instances).map_err(plugin_error)?;
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
        plugin,
        flavors,
    })
}

fn serving_plugin(record: &PluginRecord, origin: PluginOrigin) -> ServingPlugin {
    ServingPlugin {
        origin,
        name: record.name.clone(),
        version: record.version.clone(),
        sha256: record.sha256.clone(),
    }
}

/// The "no plugin" error: the flavors, every place searched and the flags that change them.
fn no_plugin(
    manager: &PluginManager,
    flavors: &[String],
    other: &OtherPlugins,
) -> Result<Error, Error> {
    let mut loadable: Vec<String> = manager
        .list()
        .map_err(|e| Error::internal(format!("{e:#}")))?
        .iter()
        .flat_map(|p| p.record.loads.clone())
        .collect();
    loadable.sort();
    loadable.dedup();
    let mut searched = vec![format!(
        "the built-in plugins and the plugin directory '{}' (--plugins-dir or \
         WASMFLOW_PLUGINS_DIR), which load {loadable:?}",
        manager.dir().display()
    )];
    searched.extend(other.searched.iter().cloned());
    Ok(Error::invalid(format!(
        "no plugin loads any of this model's flavors {flavors:?}; searched {}",
        searched.join("; ")
    )))
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

/// Why `LoadedModel::try_score` got no answer: the host refused the request, or the plugin
/// failed (with its error kind, which `plugins check` judges).
#[derive(Debug)]
pub enum ScoreFailure {
    Refused(Refused),
    Plugin(PluginError),
}

impl LoadedModel {
    /// Scores one request body of `content_type` with MLflow's protocol: the answer's JSON.
    /// Blocking: it runs the plugin.
    pub fn score(&self, content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Refused> {
        self.try_score(content_type, body).map_err(|e| match e {
            ScoreFailure::Refused(refused) => refused,
            ScoreFailure::Plugin(e) => Refused::Error(plugin_error(e)),
        })
    }

    /// `score`, keeping a plugin failure's kind.
    pub fn try_score(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, ScoreFailure> {
        let request = self
            .parse(content_type, body)
            .map_err(ScoreFailure::Refused)?;
        let output = self
            .pool
            .predict(&request.input, request.params.as_deref())
            .map_err(ScoreFailure::Plugin)?;
        Ok(scoring::predictions(&output))
    }

    /// A request body parsed and cast to this model's signature.
    pub fn parse(
        &self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ScoringRequest, Refused> {
        scoring::parse_request(
            content_type,
            body,
            self.input_schema.as_ref(),
            self.params_schema.as_deref(),
        )
        .map_err(Refused::from)
    }

    /// Scores a parsed request. Blocking: it runs the plugin, waiting for an instance.
    pub fn score_parsed(&self, request: &ScoringRequest) -> Result<Vec<u8>, Refused> {
        let output = self
            .pool
            .predict(&request.input, request.params.as_deref())
            .map_err(plugin_error)?;
        Ok(scoring::predictions(&output))
    }

    /// [`score_parsed`](Self::score_parsed) if an instance is idle now; the request back (and
    /// no plugin call) if the call would wait for one or make one.
    pub fn score_if_idle(
        &self,
        request: ScoringRequest,
    ) -> Result<Result<Vec<u8>, Refused>, ScoringRequest> {
        match self
            .pool
            .try_predict(&request.input, request.params.as_deref())
        {
            Some(output) => Ok(output
                .map(|o| scoring::predictions(&o))
                .map_err(|e| plugin_error(e).into())),
            None => Err(request),
        }
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
        // A store error (the shared plugins' database unreachable: 503) keeps its code and
        // message; any other failure to read the plugins is internal.
        ManagerError::Io(e) => match e.downcast_ref::<Error>() {
            Some(store) => store.clone(),
            None => Error::internal(format!("{e:#}")),
        },
    }
}

/// A plugin manager's failure to read its plugins, as the client sees it.
pub fn io_error(e: impl Into<ManagerError>) -> Error {
    manager_error(e.into())
}

/// How many instances a model's pool may hold: one per core.
pub fn default_instances() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub type SharedModel = Arc<LoadedModel>;
