//! What every handler shares.

use std::sync::Arc;

use wasmflow_artifacts::ArtifactRepository;
use wasmflow_store::{RegistryStore, TrackingStore};

use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TrackingStore>,
    /// The model registry (the same SQLite database as the tracking store).
    pub registry: Arc<dyn RegistryStore>,
    /// The proxied artifact root (`--artifacts-destination`); absent with `--no-serve-artifacts`.
    pub artifacts: Option<Arc<dyn ArtifactRepository>>,
}

impl AppState {
    /// Runs a store call off the async runtime: the store is synchronous (SQLite).
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn TrackingStore) -> wasmflow_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| {
                ApiError(wasmflow_core::Error::internal(format!(
                    "store task failed: {e}"
                )))
            })?
            .map_err(ApiError)
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
