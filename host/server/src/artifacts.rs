//! Artifacts: MLflow's artifact proxy (`mlflow_artifacts.proto`); the tracking API's
//! `artifacts/list` and the logged models' artifact listing and download; and the download and
//! upload routes MLflow's UI uses (`/get-artifact`, `/model-versions/get-artifact`,
//! `upload-artifact`).
//!
//! A run's or a model's artifact root is either behind the proxy (`mlflow-artifacts:` or
//! `http(s)://.../api/2.0/mlflow-artifacts/artifacts/...`), a local directory (a path or a
//! `file:` URI, what `--default-artifact-root /some/dir` gives) or an object store's prefix
//! (`s3://`, `gs://`, Azure; `--default-artifact-root s3://...`); [`open_root`] finds which.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use wasmflow_artifacts::{ArtifactRepository, LocalArtifactRepository, Location};
use wasmflow_core::{Error, ErrorCode};

use crate::error::{ApiError, ApiResult};
use crate::request::{Message, missing_param, required};
use crate::state::AppState;

/// MLflow's limit on `upload-artifact` bodies (its UI uploads small files with it).
const MAX_UI_UPLOAD: usize = 10 * 1024 * 1024;

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
        .route("/upload-artifact", post(upload_run_artifact))
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(list_model_artifacts),
        )
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(download_model_artifact),
        )
}

/// The download routes MLflow's server mounts at its root.
pub fn root_router() -> Router<AppState> {
    Router::new()
        .route("/get-artifact", get(download_run_artifact))
        .route(
            "/model-versions/get-artifact",
            get(download_model_version_artifact),
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
    send(state.artifacts()?.as_ref(), &path).await
}

/// A file as MLflow's `_send_artifact` sends it: streamed, as an attachment, typed by its name.
async fn send(repo: &dyn ArtifactRepository, path: &str) -> ApiResult<Response> {
    let (size, stream) = repo.get(path).await?;
    let mut response = Body::from_stream(stream).into_response();
    crate::mime::set_download_headers(response.headers_mut(), path, size);
    Ok(response)
}

async fn upload(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> ApiResult<()> {
    let repo = state.artifacts()?.clone();
    // The body goes to disk as it arrives; it is never held in memory whole.
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    repo.put(&path, Box::pin(stream)).await?;
    // MLflow's server answers an upload with an empty body (and a delete with `{}`).
    Ok(())
}

async fn delete_artifact(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> ApiResult<Json<Value>> {
    state.artifacts()?.delete(&path).await?;
    Ok(Json(json!({})))
}

/// Where the files under an artifact root are: a repository and the root's path inside it.
/// `repo` is `None` for a local root that does not exist yet (nothing logged there).
struct Root {
    repo: Option<Arc<dyn ArtifactRepository>>,
    base: String,
}

impl Root {
    fn path(&self, rel: &str) -> String {
        join(&self.base, rel)
    }

    fn repo(&self, rel: &str) -> ApiResult<&dyn ArtifactRepository> {
        self.repo.as_deref().ok_or_else(|| {
            ApiError(Error::not_found(format!(
                "no artifact at '{rel}': nothing was logged under this root"
            )))
        })
    }
}

/// Opens the root `uri` names, as MLflow's server does (`_is_servable_proxied_run_artifact_root`,
/// else the repository of the URI's scheme); `create` makes a missing local root (uploads).
async fn open_root(state: &AppState, uri: &str, create: bool) -> ApiResult<Root> {
    if let Some(base) = wasmflow_artifacts::proxied_path_of(uri) {
        return Ok(Root {
            repo: Some(state.artifacts()?.clone()),
            base,
        });
    }
    let dir = match wasmflow_artifacts::parse_location(uri) {
        Ok(Location::Local(dir)) => dir,
        Ok(Location::Object(location)) => {
            // Object stores have no directories to create: the root is its prefix.
            let repo = wasmflow_artifacts::open_object(&location).map_err(Error::internal)?;
            return Ok(Root {
                repo: Some(Arc::new(repo)),
                base: String::new(),
            });
        }
        Err(e) => return Err(ApiError(Error::new(ErrorCode::NotImplemented, e))),
    };
    let repo = tokio::task::spawn_blocking(move || {
        if !create && !dir.is_dir() {
            return Ok(None);
        }
        LocalArtifactRepository::new(&dir)
            .map(|repo| Some(Arc::new(repo) as Arc<dyn ArtifactRepository>))
            .map_err(|e| {
                Error::internal(format!(
                    "cannot open the artifact directory '{}': {e}",
                    dir.display()
                ))
            })
    })
    .await
    .map_err(|e| ApiError(Error::internal(format!("blocking task failed: {e}"))))??;
    Ok(Root {
        repo,
        base: String::new(),
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
    let root = open_root(state, root_uri, false).await?;
    let files = match &root.repo {
        Some(repo) => repo.list(&root.path(&rel)).await?,
        None => Vec::new(),
    };
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

/// Sends the file `rel` under `root_uri`.
pub(crate) async fn send_under(state: &AppState, root_uri: &str, rel: &str) -> ApiResult<Response> {
    let rel = wasmflow_artifacts::sanitize_relative_path(rel)?;
    let root = open_root(state, root_uri, false).await?;
    send(root.repo(&rel)?, &root.path(&rel)).await
}

#[derive(Deserialize)]
struct ListRunArtifacts {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

async fn run_root(
    state: &AppState,
    run_id: Option<String>,
    run_uuid: Option<String>,
) -> ApiResult<String> {
    let run_id = run_id
        .filter(|s| !s.is_empty())
        .or(run_uuid)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_param("run_id"))?;
    wasmflow_core::validation::validate_run_id(&run_id, "run_id")?;
    let run = state.store(move |s| s.get_run(&run_id)).await?;
    Ok(run.info.artifact_uri)
}

async fn list_run_artifacts(
    State(state): State<AppState>,
    Message(req): Message<ListRunArtifacts>,
) -> ApiResult<Json<Value>> {
    let root = run_root(&state, req.run_id, req.run_uuid).await?;
    list_under(&state, &root, req.path.as_deref().unwrap_or("")).await
}

/// `GET /get-artifact?run_id=&path=`: one file of a run (MLflow's `get_artifact_handler`).
async fn download_run_artifact(
    State(state): State<AppState>,
    Message(req): Message<ListRunArtifacts>,
) -> ApiResult<Response> {
    let path = required(req.path, "path")?;
    let root = run_root(&state, req.run_id, req.run_uuid).await?;
    send_under(&state, &root, &path).await
}

#[derive(Deserialize)]
struct ModelVersionArtifact {
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}

/// `GET /model-versions/get-artifact?name=&version=&path=`: one file of a registered version.
async fn download_model_version_artifact(
    State(state): State<AppState>,
    Message(req): Message<ModelVersionArtifact>,
) -> ApiResult<Response> {
    let path = required(req.path, "path")?;
    let name = required(req.name, "name")?;
    let version = wasmflow_store::registry::parse_version(&required(req.version, "version")?)?;
    let root = state
        .registry_call(move |r| r.get_model_version_download_uri(&name, version))
        .await?;
    send_under(&state, &root, &path).await
}

#[derive(Deserialize)]
struct UploadQuery {
    run_uuid: Option<String>,
    path: Option<String>,
}

/// `POST upload-artifact?run_uuid=&path=` with the file as the body: how MLflow's UI adds a
/// small file to a run (`upload_artifact_handler`, up to 10 MB).
async fn upload_run_artifact(
    State(state): State<AppState>,
    Query(req): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let invalid = |m: &str| ApiError::invalid(m.to_string());
    let run_id = req
        .run_uuid
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("Request must specify run_uuid."))?;
    let path = req
        .path
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("Request must specify path."))?;
    let path = wasmflow_artifacts::sanitize_relative_path(&path)?;
    if body.len() > MAX_UI_UPLOAD {
        return Err(invalid("Artifact size is too large. Max size is 10MB."));
    }
    if body.is_empty() {
        return Err(invalid("Request must specify data."));
    }
    let root_uri = run_root(&state, Some(run_id), None).await?;
    let root = open_root(&state, &root_uri, true).await?;
    let stream = futures_util::stream::once(async move { Ok(body) });
    root.repo(&path)?
        .put(&root.path(&path), Box::pin(stream))
        .await?;
    // MLflow answers an empty JSON response.
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], "").into_response())
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

#[derive(Deserialize)]
struct ModelArtifactFile {
    artifact_file_path: Option<String>,
}

/// `GET logged-models/<id>/artifacts/files?artifact_file_path=`: one file of a logged model.
async fn download_model_artifact(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Message(req): Message<ModelArtifactFile>,
) -> ApiResult<Response> {
    let path = req
        .artifact_file_path
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError(Error::new(
                ErrorCode::BadRequest,
                "Request must include the \"artifact_file_path\" query parameter.",
            ))
        })?;
    let model = state.store(move |s| s.get_logged_model(&model_id)).await?;
    send_under(&state, &model.info.artifact_uri, &path).await
}
