//! What every handler shares.

use std::sync::Arc;

use wasmflow_artifacts::ArtifactRepository;
use wasmflow_runtime::PluginManager;
use wasmflow_serving::ServedModels;
use wasmflow_store::{EvalDatasetStore, RegistryStore, Store, TraceStore, TrackingStore};

use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TrackingStore>,
    /// The model registry (the same SQLite database as the tracking store).
    pub registry: Arc<dyn RegistryStore>,
    /// GenAI evaluation datasets (the same database as the tracking store).
    pub eval_datasets: Arc<dyn EvalDatasetStore>,
    /// The proxied artifact root (`--artifacts-destination`); absent with `--no-serve-artifacts`.
    pub artifacts: Option<Arc<dyn ArtifactRepository>>,
    /// Model versions loaded for serving, and the plugins they load with (absent in tests that
    /// serve no models).
    pub served: Arc<ServedModels>,
    /// Traces, spans and assessments (the same database as the tracking store).
    pub traces: Arc<dyn TraceStore>,
    /// Webhooks: their store, secrets' key and delivery.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

impl AppState {
    /// The state over one backend store, which keeps tracking, the registry, traces, evaluation
    /// datasets and webhooks alike (every backend does: `wasmflow_store::Store`).
    pub fn new(
        store: Arc<dyn Store>,
        webhooks: Arc<crate::webhooks::Webhooks>,
        artifacts: Option<Arc<dyn ArtifactRepository>>,
        served: Arc<ServedModels>,
    ) -> Self {
        Self {
            store: store.clone(),
            registry: store.clone(),
            eval_datasets: store.clone(),
            traces: store,
            webhooks,
            artifacts,
            served,
        }
    }

    /// A state that serves no models and keeps webhook secrets under a key of this process's own:
    /// tests, and the CLI's in-process server (`cli/remote.rs`), which keep nothing across runs.
    pub fn ephemeral(
        store: Arc<dyn Store>,
        artifacts: Option<Arc<dyn ArtifactRepository>>,
    ) -> Self {
        let webhooks = crate::webhooks::Webhooks::ephemeral(store.clone());
        Self::new(store, webhooks, artifacts, Default::default())
    }

    /// Runs a store call off the async runtime: the store is synchronous (SQLite).
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn TrackingStore) -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let store = self.store.clone();
        self.blocking(move || f(store.as_ref())).await
    }

    /// Runs a registry call off the async runtime.
    pub async fn registry_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RegistryStore) -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let registry = self.registry.clone();
        self.blocking(move || f(registry.as_ref())).await
    }

    /// Runs an evaluation dataset call off the async runtime.
    pub async fn eval_datasets_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EvalDatasetStore) -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let datasets = self.eval_datasets.clone();
        self.blocking(move || f(datasets.as_ref())).await
    }

    /// Runs a trace store call off the async runtime.
    pub async fn traces_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn TraceStore) -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let traces = self.traces.clone();
        self.blocking(move || f(traces.as_ref())).await
    }

    /// Runs blocking work (SQLite, plugin calls) on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| {
                ApiError(wasmflow_core::Error::internal(format!(
                    "blocking task failed: {e}"
                )))
            })?
            .map_err(ApiError)
    }

    pub fn plugins(&self) -> ApiResult<&Arc<PluginManager>> {
        self.served.plugins().ok_or_else(|| {
            ApiError(wasmflow_core::Error::new(
                wasmflow_core::ErrorCode::EndpointNotFound,
                "plugins are not enabled on this server",
            ))
        })
    }

    pub fn artifacts(&self) -> ApiResult<&Arc<dyn ArtifactRepository>> {
        self.artifacts.as_ref().ok_or_else(|| {
            ApiError(wasmflow_core::Error::new(
                wasmflow_core::ErrorCode::EndpointNotFound,
                "artifact proxying is disabled on this server (--no-serve-artifacts)",
            ))
        })
    }
}
