//! `/api/2.0/wasmflow/plugins`: list, install (the component's bytes as the body) and remove
//! plugins on a running server.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::state::AppState;
use wasmflow_serving::model::manager_error;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/2.0/wasmflow/plugins",
        get(list).post(install).delete(remove),
    )
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
