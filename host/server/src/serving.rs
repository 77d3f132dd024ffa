//! Registered models served by `wasmflow server` at
//! `/serving/models/<name>/<version | alias | stage | latest>/invocations`, with MLflow's
//! scoring protocol. Each request resolves the name (so a moved alias takes effect on the next
//! request), loads the version on first use and keeps it warm.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::OnceCell;
use wasmflow_core::Error;

use crate::error::{ApiError, ApiResult};
use crate::models::{self, SharedModel};
use crate::scoring::{self, ScoringError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/serving/models/{name}/{reference}/invocations",
        post(invocations),
    )
}

/// Loaded model versions by (name, version); a slot is filled once even when many requests
/// ask for the same version at the same time.
#[derive(Default)]
pub struct ServedModels {
    slots: Mutex<HashMap<VersionKey, Arc<OnceCell<SharedModel>>>>,
}

/// A registered model's name and version.
type VersionKey = (String, String);

impl ServedModels {
    async fn get_or_load(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        artifact_uri: &str,
    ) -> ApiResult<SharedModel> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry((name.to_string(), version.to_string()))
                .or_default()
                .clone()
        };
        let model = slot
            .get_or_try_init(|| async {
                let dir = model_dir(state, artifact_uri).await?;
                let manager = state.plugins()?.clone();
                let started = std::time::Instant::now();
                let loaded = state
                    .blocking(move || models::load(&manager, &dir, models::default_instances()))
                    .await?;
                tracing::info!(
                    "loaded model '{name}' version {version} (flavor '{}') with plugin '{}' in {:.1?}",
                    loaded.flavor,
                    loaded.pool.plugin_name(),
                    started.elapsed()
                );
                Ok::<_, ApiError>(Arc::new(loaded))
            })
            .await?;
        Ok(model.clone())
    }
}

/// The local directory holding a model version's files.
pub async fn model_dir(state: &AppState, artifact_uri: &str) -> ApiResult<PathBuf> {
    if let Some(path) = crate::artifacts::proxied_path_of(artifact_uri) {
        let repo = state.artifacts()?;
        return match repo.local_dir(&path).await? {
            Some(dir) => Ok(dir),
            None => Err(ApiError(Error::invalid(format!(
                "the model's files at '{artifact_uri}' are not on this machine's file system"
            )))),
        };
    }
    let path = artifact_uri.strip_prefix("file://").unwrap_or(artifact_uri);
    if artifact_uri.contains("://") && !artifact_uri.starts_with("file://") {
        return Err(ApiError(Error::invalid(format!(
            "cannot serve a model stored at '{artifact_uri}'"
        ))));
    }
    Ok(PathBuf::from(path))
}

/// `models:/` URI for a path segment: a number is a version, `latest` and stage names are
/// themselves, anything else is an alias.
fn model_uri(name: &str, reference: &str) -> String {
    let is_named = reference.parse::<i64>().is_ok()
        || reference.eq_ignore_ascii_case("latest")
        || wasmflow_store::registry::Stage::parse(reference).is_ok();
    if is_named {
        format!("models:/{name}/{reference}")
    } else {
        format!("models:/{name}@{reference}")
    }
}

async fn invocations(
    State(state): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let uri = model_uri(&name, &reference);
    let resolved = state
        .registry_call(move |r| r.resolve_model_uri(&uri))
        .await?;
    let version = resolved.version.clone().unwrap_or_default();
    let model = state
        .served
        .get_or_load(&state, &name, &version, &resolved.artifact_uri)
        .await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = state
        .blocking(move || {
            let request = match scoring::parse_request(
                content_type.as_deref(),
                &body,
                model.input_schema.as_ref(),
            ) {
                Ok(request) => request,
                Err(e) => return Ok(Err(e)),
            };
            let output = model
                .pool
                .predict(&request.input, request.params.as_deref())
                .map_err(models::plugin_error)?;
            Ok(Ok(scoring::predictions(output)))
        })
        .await?;
    Ok(match response {
        Ok(predictions) => axum::Json(predictions).into_response(),
        Err(e) => scoring_error(e),
    })
}

/// 415 as plain text (as MLflow's scoring server answers it), 400 in MLflow's error shape.
pub fn scoring_error(e: ScoringError) -> Response {
    match e {
        ScoringError::UnsupportedMediaType(message) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response()
        }
        ScoringError::BadRequest(message) => {
            ApiError(Error::new(wasmflow_core::ErrorCode::BadRequest, message)).into_response()
        }
        ScoringError::Invalid(message) => ApiError(Error::invalid(message)).into_response(),
    }
}
