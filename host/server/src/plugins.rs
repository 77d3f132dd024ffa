//! `/api/2.0/wasmflow/plugins`: list, install (the component's bytes as the body) and remove
//! plugins on a running server; `/api/2.0/wasmflow/plugins/<sha256>`: a plugin's component, for
//! `wasmflow models predict`/`serve` to load a model with the server's plugins.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::state::AppState;
use wasmflow_serving::model::manager_error;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/2.0/wasmflow/plugins",
            get(list).post(install).delete(remove),
        )
        .route("/api/2.0/wasmflow/plugins/{sha256}", get(component))
}

/// A built-in or installed plugin's component (`application/wasm`), by its sha256.
async fn component(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> ApiResult<impl IntoResponse> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!(
            "invalid plugin sha256 '{sha256}': it must be 64 hexadecimal digits"
        )));
    }
    let sha256 = sha256.to_ascii_lowercase();
    let manager = state.plugins()?.clone();
    let wasm = state
        .blocking(move || {
            manager
                .component(&sha256)
                .map_err(|e| wasmflow_core::Error::internal(format!("{e:#}")))?
                .ok_or_else(|| {
                    wasmflow_core::Error::not_found(format!("no plugin with sha256 '{sha256}'"))
                })
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], wasm))
}

async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let manager = state.plugins()?.clone();
    let plugins = state
        .blocking(move || {
            manager
                .list()
                .map_err(|e| wasmflow_core::Error::internal(format!("{e:#}")))
        })
        .await?;
    let records: Vec<_> = plugins.iter().map(|p| &p.record).collect();
    Ok(axum::Json(json!({ "plugins": records })))
}

async fn install(State(state): State<AppState>, body: Bytes) -> ApiResult<axum::Json<Value>> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body must be the plugin's component (.wasm)",
        ));
    }
    let manager = state.plugins()?.clone();
    let plugin = state
        .blocking(move || manager.install(&body).map_err(manager_error))
        .await?;
    Ok(axum::Json(json!({ "plugin": plugin.record })))
}

#[derive(Deserialize)]
struct Remove {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    req: Message<Remove>,
) -> ApiResult<axum::Json<Value>> {
    let Remove { name, version } = req.0;
    let manager = state.plugins()?.clone();
    let removed = state
        .blocking(move || {
            manager
                .remove(&name, version.as_deref())
                .map_err(manager_error)
        })
        .await?;
    Ok(axum::Json(json!({ "removed": removed })))
}
