//! wasmflow's tracking store: the [`TrackingStore`] trait the server talks to, and its SQLite
//! implementation. The trait is synchronous: callers on an async runtime use `spawn_blocking`.
//! SQL is kept portable so that a PostgreSQL store can implement the same trait.

mod assessment_columns;
pub mod auth;
mod columns;
pub mod eval_datasets;
mod import;
pub mod plugins;
mod postgres;
pub mod registry;
#[cfg(test)]
mod schema_tests;
mod search_sql;
mod span_text;
pub mod sql_conn;
mod sqlite;
#[doc(hidden)]
pub mod testing;
pub mod trace_metrics;
mod trace_rules;
pub mod traces;
mod tracking_rules;
pub mod webhooks;

pub use auth::AuthStore;
pub use eval_datasets::EvalDatasetStore;
pub use import::{
    ImportDataset, ImportExperiment, ImportLoggedModel, ImportMetric, ImportModelMetric,
    ImportModelVersion, ImportRegisteredModel, ImportRun, ImportTallies, ImportTarget, Tally,
};
pub use plugins::{Inserted, PluginStore, StoredPlugin};
pub use postgres::{PgPool, PgStore, redact_password};
pub use registry::RegistryStore;
pub use sqlite::SqliteStore;
pub(crate) use sqlite::append_to_uri;
pub use traces::TraceStore;
use wasmflow_core::entities::{
    DatasetInput, Experiment, LoggedModel, LoggedModelStatus, Metric, ModelInput, ModelOutput,
    Param, Run, RunInfo, RunStatus, Tag, ViewType,
};
use wasmflow_core::paging::Page;
use wasmflow_core::search::{Comparison, OrderBy};
pub use wasmflow_core::{Error, ErrorCode, Result};
pub use webhooks::WebhookStore;

/// Every capability a backend store serves: what the server holds one of.
pub trait Store:
    TrackingStore + RegistryStore + WebhookStore + AuthStore + TraceStore + EvalDatasetStore
{
    /// The installed plugins, when the store is shared by replicas (PostgreSQL); `None` for a
    /// SQLite store, whose one server keeps its plugins in its plugin directory.
    fn plugins(&self) -> Option<&dyn PluginStore>;
}

impl Store for SqliteStore {
    fn plugins(&self) -> Option<&dyn PluginStore> {
        None
    }
}

impl Store for PgStore {
    fn plugins(&self) -> Option<&dyn PluginStore> {
        Some(self)
    }
}

/// Where new experiments put their artifacts unless they name a location themselves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// For example `mlflow-artifacts:/` when the server proxies artifacts, or `./mlruns`.
    pub default_artifact_root: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: String,
    pub user_id: String,
    pub run_name: Option<String>,
    pub start_time: Option<i64>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunSearch {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<Comparison>,
    pub order_by: Vec<OrderBy>,
    pub view: ViewType,
    pub max_results: usize,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExperimentSearch {
    pub filter: Vec<Comparison>,
    pub order_by: Vec<OrderBy>,
    pub view: ViewType,
    pub max_results: usize,
    pub page_token: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct LoggedModelSearch {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<Comparison>,
    /// Only models with metrics on one of these datasets (and metric filters only count
    /// those metrics), as MLflow's `datasets` clause.
    pub datasets: Vec<DatasetFilter>,
    pub order_by: Vec<OrderBy>,
    pub max_results: usize,
    pub page_token: Option<String>,
}

/// One entry of `search_logged_models(datasets=[...])`: a dataset name and its digest. As
/// MLflow's server passes it to its store, an absent digest matches metrics logged without one.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    pub name: String,
    pub digest: Option<String>,
}

/// Everything the tracking API stores. Validation of shapes and lengths happens before these
/// calls (in `wasmflow_core::validation`); the store enforces what needs the stored state:
/// existence, lifecycle stages, uniqueness and immutability of params.
pub trait TrackingStore: Send + Sync + 'static {
    fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String>;
    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;
    fn search_experiments(&self, search: &ExperimentSearch) -> Result<Page<Experiment>>;
    fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()>;
    fn delete_experiment(&self, experiment_id: &str) -> Result<()>;
    fn restore_experiment(&self, experiment_id: &str) -> Result<()>;
    fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()>;
    fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;

    fn create_run(&self, run: NewRun) -> Result<Run>;
    fn get_run(&self, run_id: &str) -> Result<Run>;
    fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo>;
    fn delete_run(&self, run_id: &str) -> Result<()>;
    fn restore_run(&self, run_id: &str) -> Result<()>;
    /// Logs metrics, params and tags in one transaction: all or nothing.
    fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()>;
    fn delete_tag(&self, run_id: &str, key: &str) -> Result<()>;
    fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()>;
    fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()>;
    fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>>;
    /// The number of active runs of each experiment (experiments without runs count 0).
    fn count_active_runs(&self, experiment_ids: &[String]) -> Result<Vec<(String, u64)>>;
    /// All points of a metric in (step, timestamp, value) order, paged when `max_results` is set.
    fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>>;
    /// Up to `max_results` points per run, evenly sampled and keeping the first and last, each
    /// carrying its `run_id`.
    fn metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        steps: Option<(i64, i64)>,
        max_results: usize,
    ) -> Result<Vec<Metric>>;

    fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel>;
    fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel>;
    fn set_logged_model_status(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()>;
    fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()>;
    fn search_logged_models(&self, search: &LoggedModelSearch) -> Result<Page<LoggedModel>>;

    /// Runs in the deleted stage whose deletion is at least `older_than_ms` old (`wasmflow gc`).
    fn deleted_run_ids(&self, older_than_ms: i64) -> Result<Vec<String>>;
    /// Experiments in the deleted stage last changed at least `older_than_ms` ago.
    fn deleted_experiment_ids(&self, older_than_ms: i64) -> Result<Vec<String>>;
    /// Removes a run in the deleted stage and everything logged to it, for good; returns the
    /// run's artifact URI, whose files the caller removes.
    fn purge_run(&self, run_id: &str) -> Result<String>;
    /// Removes an experiment in the deleted stage with its runs, logged models and datasets, for
    /// good; returns the artifact URIs of what it removed (runs, logged models, the experiment).
    fn purge_experiment(&self, experiment_id: &str) -> Result<Vec<String>>;
    /// The datasets runs of these experiments used, each with its input's `mlflow.data.context`
    /// tag (MLflow's `_search_datasets`, for the UI), at most 1,000.
    fn search_dataset_summaries(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>>;
}

/// One dataset an experiment's runs used, in MLflow's `DatasetSummary` wire shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetSummary {
    pub experiment_id: String,
    pub name: String,
    pub digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// The schema version of a database before and after `wasmflow db upgrade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaUpgrade {
    pub from: usize,
    pub to: usize,
}

/// Brings the database a `--backend-store-uri` names to this binary's schema (creating it when
/// empty), as `mlflow db upgrade` does: a SQLite file or a PostgreSQL database.
pub fn upgrade(uri: &str) -> Result<SchemaUpgrade> {
    if postgres::parse_uri(uri).is_some() {
        return postgres::upgrade(&PgPool::connect(uri)?);
    }
    let (from, to) = sqlite::upgrade(&sqlite_path(uri)?)?;
    Ok(SchemaUpgrade { from, to })
}

/// A database migrated by a newer wasmflow has tables or meanings this binary does not know:
/// refused in one line rather than read wrongly. Shared by both backends.
pub(crate) fn check_schema_not_newer(version: usize, known: usize) -> Result<()> {
    if version > known {
        return Err(Error::invalid(format!(
            "the database schema is at version {version}, newer than this wasmflow knows ({known}); \
             run a newer wasmflow"
        )));
    }
    Ok(())
}

/// Opens the store a `--backend-store-uri` names: `sqlite:///rel/path` or `sqlite:////abs/path`
/// (SQLAlchemy's forms, which MLflow users already write), a plain file path, or a PostgreSQL
/// database (`postgresql://USER:PASSWORD@HOST:PORT/DATABASE`, `postgresql+psycopg2://...`).
pub fn open(uri: &str, mut config: StoreConfig) -> Result<std::sync::Arc<dyn Store>> {
    // MLflow's store resolves a relative default root once, against the server's directory.
    config.default_artifact_root = resolve_uri_if_local(&config.default_artifact_root);
    if is_postgres(uri) {
        return Ok(std::sync::Arc::new(PgStore::open(uri, config)?));
    }
    Ok(std::sync::Arc::new(SqliteStore::open(
        &store_path(uri)?,
        config,
    )?))
}

/// Whether `uri` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(uri: &str) -> bool {
    postgres::parse_uri(uri).is_some()
}

/// Opens the database `uri` names (as [`open`] reads it: SQLite or PostgreSQL) for
/// `wasmflow import`.
pub fn open_import_target(uri: &str) -> Result<ImportTarget> {
    if is_postgres(uri) {
        return ImportTarget::open_postgres(uri);
    }
    ImportTarget::open(&store_path(uri)?)
}

/// Refuses a `--backend-store-uri` that names an MLflow store (its SQL database or an `mlruns`
/// directory), with a message pointing to `wasmflow import mlflow`.
pub fn refuse_foreign_store(uri: &str) -> Result<()> {
    if is_postgres(uri) {
        // PostgreSQL's schema check refuses an MLflow database when the store opens.
        return Ok(());
    }
    sqlite::refuse_mlflow_database(&store_path(uri)?)
}

/// The database file a `--backend-store-uri` (a `sqlite:` URI or a plain path) names; a
/// PostgreSQL database has none, and is refused by what needs a file (`wasmflow import`'s
/// target).
pub fn store_path(uri: &str) -> Result<std::path::PathBuf> {
    if is_postgres(uri) {
        return Err(Error::invalid(format!(
            "'{}' is a PostgreSQL database: this command needs a SQLite store (sqlite:///PATH or \
             a file path)",
            redact_password(uri)
        )));
    }
    sqlite_path(uri)
}

/// The database file a `sqlite:` URI or a plain path names.
fn sqlite_path(uri: &str) -> Result<std::path::PathBuf> {
    let path = if let Some(rest) = uri.strip_prefix("sqlite:///") {
        // `sqlite:////abs` and `sqlite:///rel` as SQLAlchemy reads them.
        rest.to_string()
    } else if let Some(rest) = uri.strip_prefix("sqlite://") {
        rest.to_string()
    } else if uri.starts_with("file:") {
        // MLflow's file store (`file:///path/mlruns`).
        return Err(Error::invalid(format!(
            "'{uri}' is an MLflow file store, which wasmflow does not open; copy it into \
             wasmflow with `wasmflow import mlflow --from {uri}`"
        )));
    } else if uri.contains("://") {
        return Err(Error::invalid(format!(
            "unsupported backend store uri '{uri}': expected sqlite:///PATH, a file path or \
             postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )));
    } else {
        uri.to_string()
    };
    Ok(path.into())
}

/// A relative local artifact location made absolute against the current directory, as MLflow's
/// `resolve_uri_if_local` does: `my_location` becomes `/cwd/my_location` and `file:rel` becomes
/// `file:///cwd/rel`; absolute paths and URIs of other schemes are returned as they are.
pub fn resolve_uri_if_local(uri: &str) -> String {
    let (file_scheme, path) = match uri.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
            let path = match rest.strip_prefix("//") {
                Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
                None => rest,
            };
            (true, path.split(['?', '#']).next().unwrap_or_default())
        }
        // Any other scheme (a letter, then letters, digits, `+`, `-`, `.`) is not local.
        Some((scheme, _))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            return uri.to_string();
        }
        _ => (false, uri),
    };
    if path.is_empty() && file_scheme || std::path::Path::new(path).is_absolute() {
        return uri.to_string();
    }
    let Ok(cwd) = std::env::current_dir() else {
        return uri.to_string();
    };
    // `Path::components` drops `.` and repeated separators, as `pathlib` does.
    let joined: std::path::PathBuf = cwd.join(path).components().collect();
    let joined = joined.to_string_lossy().into_owned();
    if file_scheme {
        format!("file://{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod uri_tests {
    use super::resolve_uri_if_local;

    #[test]
    fn relative_locations_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let cwd = cwd.to_string_lossy();
        assert_eq!(
            resolve_uri_if_local("my_location"),
            format!("{cwd}/my_location")
        );
        assert_eq!(resolve_uri_if_local("./mlruns"), format!("{cwd}/mlruns"));
        assert_eq!(
            resolve_uri_if_local("file:rel/x"),
            format!("file://{cwd}/rel/x")
        );
        for kept in [
            "/abs/x",
            "file:///abs/x",
            "mlflow-artifacts:/",
            "mlflow-artifacts:/1",
            "s3://bucket/x",
            "http://h/api/2.0/mlflow-artifacts/artifacts/x",
        ] {
            assert_eq!(resolve_uri_if_local(kept), kept);
        }
    }
}
