//! Registered models served by `wasmflow server` at
//! `/serving/models/<name>/<version | alias | @alias | stage | latest>/invocations` and
//! `/serving/models/<name>@<alias>/invocations` (the spelling of `models:/<name>@<alias>`), with MLflow's
//! scoring protocol (wasmflow-serving does the work), and the serving metrics at `/metrics`.
//! Each request resolves the name through the registry, so a moved alias takes effect on the
//! next request.

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use wasmflow_artifacts::Location;
use wasmflow_core::Error;
use wasmflow_serving::{Located, ModelLocator, Refused};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/serving/models/{name}/{reference}/invocations",
            post(invocations),
        )
        .route(
            "/serving/models/{name_at_alias}/invocations",
            post(alias_invocations),
        )
        .route("/metrics", get(metrics))
}

async fn invocations(
    State(state): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = state
        .served
        .invoke(&state, &name, &reference, content_type(&headers), body)
        .await;
    answer_response(answer)
}

/// `/serving/models/<name>@<alias>/invocations`: the alias follows the last `@`, as in a
/// `models:/<name>@<alias>` URI.
async fn alias_invocations(
    State(state): State<AppState>,
    Path(name_at_alias): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((name, alias)) = name_at_alias
        .rsplit_once('@')
        .filter(|(n, a)| !n.is_empty() && !a.is_empty())
    else {
        return ApiError(Error::not_found(format!(
            "no model at '/serving/models/{name_at_alias}/invocations': name a version as \
             /serving/models/<name>/<version | @alias | stage | latest>/invocations or \
             /serving/models/<name>@<alias>/invocations"
        )))
        .into_response();
    };
    let reference = format!("@{alias}");
    let answer = state
        .served
        .invoke(&state, name, &reference, content_type(&headers), body)
        .await;
    answer_response(answer)
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.served.render_metrics())
}

/// The registry says which version a reference means and where its files are.
impl ModelLocator for AppState {
    async fn locate(&self, name: &str, reference: &str) -> Result<Located, Error> {
        let uri = model_uri(name, reference);
        let resolved = self
            .registry_call(move |r| r.resolve_model_uri(&uri))
            .await
            .map_err(|ApiError(e)| e)?;
        Ok(Located {
            version: resolved.version.unwrap_or_default(),
            source: resolved.artifact_uri,
        })
    }

    async fn model_dir(&self, artifact_uri: &str) -> Result<PathBuf, Error> {
        model_dir(self, artifact_uri).await.map_err(|ApiError(e)| e)
    }
}

/// The local directory holding a model version's files: where they are when the artifacts are
/// on this machine, else a download of them in the model cache (see [`model_cache`]).
pub async fn model_dir(state: &AppState, artifact_uri: &str) -> Result<PathBuf, ApiError> {
    if let Some(path) = wasmflow_artifacts::proxied_path_of(artifact_uri) {
        let repo = state.artifacts()?;
        return match repo.local_dir(&path).await? {
            Some(dir) => Ok(dir),
            None => Ok(model_cache()
                .fetch(repo.as_ref(), artifact_uri, &path)
                .await?),
        };
    }
    match wasmflow_artifacts::parse_location(artifact_uri) {
        Ok(Location::Local(dir)) => Ok(dir),
        Ok(Location::Object(location)) => {
            let repo = wasmflow_artifacts::open_object(&location).map_err(Error::internal)?;
            Ok(model_cache().fetch(&repo, artifact_uri, "").await?)
        }
        Err(e) => Err(ApiError(Error::invalid(format!(
            "cannot serve the model at '{artifact_uri}': {e}"
        )))),
    }
}

/// Models downloaded from an object store for the plugins: under the user's cache directory
/// (`WASMFLOW_MODEL_CACHE_DIR` to choose another), at most `WASMFLOW_MODEL_CACHE_MIB` MiB
/// (default 10 GiB) kept beyond the model in use.
fn model_cache() -> &'static wasmflow_artifacts::ModelCache {
    static CACHE: OnceLock<wasmflow_artifacts::ModelCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let root = std::env::var_os("WASMFLOW_MODEL_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| wasmflow_runtime::user_cache_dir().map(|dir| dir.join("models")))
            .unwrap_or_else(|| std::env::temp_dir().join("wasmflow-models"));
        let mib = std::env::var("WASMFLOW_MODEL_CACHE_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(10 * 1024);
        wasmflow_artifacts::ModelCache::new(root, mib << 20)
    })
}

/// `models:/` URI for a path segment: a number is a version, `latest` and stage names are
/// themselves, `@alias` and anything else is an alias (`@` lets an alias named like a stage,
/// `@staging`, be reached).
fn model_uri(name: &str, reference: &str) -> String {
    if let Some(alias) = reference.strip_prefix('@') {
        return format!("models:/{name}@{alias}");
    }
    let is_named = reference.parse::<i64>().is_ok()
        || reference.eq_ignore_ascii_case("latest")
        || wasmflow_store::registry::Stage::parse(reference).is_ok();
    if is_named {
        format!("models:/{name}/{reference}")
    } else {
        format!("models:/{name}@{reference}")
    }
}

pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A scoring answer over HTTP: the JSON, a plain-text 415 as MLflow's scoring server answers
/// it, or an error in MLflow's shape.
pub fn answer_response(answer: Result<Vec<u8>, Refused>) -> Response {
    match answer {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(Refused::UnsupportedMediaType(message)) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response()
        }
        Err(Refused::Error(e)) => ApiError(e).into_response(),
    }
}

/// The `/metrics` answer.
pub fn metrics_response(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            wasmflow_serving::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::model_uri;

    #[test]
    fn a_path_segment_names_a_version_stage_or_alias() {
        assert_eq!(model_uri("m", "3"), "models:/m/3");
        assert_eq!(model_uri("m", "latest"), "models:/m/latest");
        assert_eq!(model_uri("m", "Staging"), "models:/m/Staging");
        assert_eq!(model_uri("m", "champion"), "models:/m@champion");
        assert_eq!(model_uri("m", "@champion"), "models:/m@champion");
        assert_eq!(model_uri("m", "@staging"), "models:/m@staging");
    }
}
