//! The HTTP application: every router, mounted where MLflow's server mounts it.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use serde_json::json;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::state::AppState;
use crate::{artifacts, error, logged_models, plugins, registry, serving, tracking, ui};

/// log-batch requests may reach 1 MB (MLflow's limit); leave room for JSON overhead.
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// Components of Python and JavaScript plugins run to 40 MB.
const MAX_PLUGIN_BODY: usize = 256 * 1024 * 1024;

/// The app without auth (`wasmflow run`'s local server, the in-process tests).
pub fn build(state: AppState) -> Router {
    build_with_auth(state, None)
}

/// The app, behind MLflow's basic-auth checks when `auth` is given.
pub fn build_with_auth(state: AppState, auth: Option<Arc<crate::auth::Auth>>) -> Router {
    let mlflow = || {
        tracking::router()
            .merge(logged_models::router())
            .merge(registry::router())
            .merge(artifacts::tracking_router())
            .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
    };
    let app = Router::new()
        .nest("/api/2.0/mlflow", mlflow())
        .nest("/ajax-api/2.0/mlflow", mlflow())
        .nest("/api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .merge(registry::wasmflow_router())
        .merge(plugins::router().layer(DefaultBodyLimit::max(MAX_PLUGIN_BODY)))
        .merge(serving::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .merge(ui::router())
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .fallback(error::not_found)
        .with_state(state);
    crate::auth::protect(app, auth).layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}

/// What the MLflow 3 client asks before it logs models: the store kind and optional features.
async fn server_info() -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": { "gateway": false },
    }))
}
