//! Artifacts: MLflow's artifact proxy (`mlflow_artifacts.proto`), and the tracking API's
//! `artifacts/list`, which lists a run's artifacts through the same repository.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::state::AppState;

/// Routes under `/api/2.0/mlflow-artifacts`.
pub fn proxy_router() -> Router<AppState> {
    Router::new().route("/artifacts", get(list_proxied)).route(
        "/artifacts/{*path}",
        get(download).put(upload).delete(delete_artifact),
    )
}

/// Routes under `/api/2.0/mlflow` that read artifacts of runs and logged models.
pub fn tracking_router() -> Router<AppState> {
    Router::new()
        .route("/artifacts/list", get(list_run_artifacts))
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(list_model_artifacts),
        )
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
}

async fn list_proxied(
    State(state): State<AppState>,
    Message(req): Message<ListQuery>,
) -> ApiResult<Json<Value>> {
    let path = req.path.unwrap_or_default();
    let files = state.artifacts()?.list(&path).await?;
    Ok(Json(json!({ "files": files })))
}

async fn download(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let (size, stream) = state.artifacts()?.get(&path).await?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}

async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let repo = state.artifacts()?.clone();
    // The body goes to disk as it arrives; it is never held in memory whole.
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    repo.put(&path, Box::pin(stream)).await?;
    Ok(Json(json!({})))
}

async fn delete_artifact(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> ApiResult<Json<Value>> {
    state.artifacts()?.delete(&path).await?;
    Ok(Json(json!({})))
}

/// The path inside the proxied root that an artifact URI names, or why it names none.
fn proxied_path(uri: &str) -> ApiResult<String> {
    wasmflow_artifacts::proxied_path_of(uri).ok_or_else(|| {
        ApiError::invalid(format!(
            "artifact uri '{uri}' is not served by this server's artifact proxy"
        ))
    })
}

fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (_, true) => base.to_string(),
        (true, false) => rel.to_string(),
        (false, false) => format!("{}/{}", base.trim_end_matches('/'), rel),
    }
}

/// Lists `rel` under `root_uri`, with paths relative to `root_uri` as `ListArtifacts` returns.
async fn list_under(state: &AppState, root_uri: &str, rel: &str) -> ApiResult<Json<Value>> {
    let rel = wasmflow_artifacts::sanitize_relative_path(rel)?;
    let root = proxied_path(root_uri)?;
    let files = state.artifacts()?.list(&join(&root, &rel)).await?;
    let files: Vec<Value> = files
        .into_iter()
        .map(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            let mut entry = json!({ "path": join(&rel, &name), "is_dir": f.is_dir });
            if let Some(size) = f.file_size {
                entry["file_size"] = json!(size);
            }
            entry
        })
        .collect();
    Ok(Json(json!({ "root_uri": root_uri, "files": files })))
}

#[derive(Deserialize)]
struct ListRunArtifacts {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

async fn list_run_artifacts(
    State(state): State<AppState>,
    Message(req): Message<ListRunArtifacts>,
) -> ApiResult<Json<Value>> {
    let run_id = req
        .run_id
        .or(req.run_uuid)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'run_id'."))?;
    wasmflow_core::validation::validate_run_id(&run_id, "run_id")?;
    let run = state.store(move |s| s.get_run(&run_id)).await?;
    list_under(
        &state,
        &run.info.artifact_uri,
        req.path.as_deref().unwrap_or(""),
    )
    .await
}

#[derive(Deserialize)]
struct ListModelArtifacts {
    artifact_directory_path: Option<String>,
}

async fn list_model_artifacts(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Message(req): Message<ListModelArtifacts>,
) -> ApiResult<Json<Value>> {
    let model = state.store(move |s| s.get_logged_model(&model_id)).await?;
    list_under(
        &state,
        &model.info.artifact_uri,
        req.artifact_directory_path.as_deref().unwrap_or(""),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths() {
        assert_eq!(
            proxied_path("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        assert_eq!(
            proxied_path("mlflow-artifacts://host:5000/1/x").unwrap(),
            "1/x"
        );
        assert!(proxied_path("s3://bucket/x").is_err());
    }
}
