//! The HTTP application: every router, mounted where MLflow's server mounts it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::get;
use serde_json::json;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::state::AppState;
use crate::{
    artifacts, error, graphql, logged_models, plugins, registry, serving, tracking, ui, ui_api,
    webhooks,
};

/// log-batch requests may reach 1 MB (MLflow's limit); leave room for JSON overhead.
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;
/// Components of Python and JavaScript plugins run to 40 MB.
const MAX_PLUGIN_BODY: usize = 256 * 1024 * 1024;

pub fn build(state: AppState) -> Router {
    let mlflow = || {
        tracking::router()
            .merge(logged_models::router())
            .merge(registry::router())
            .merge(artifacts::tracking_router())
            .merge(webhooks::router())
            .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
    };
    // MLflow serves its UI's own endpoints under /ajax-api only; /graphql resolves through them.
    let ajax = || mlflow().merge(ui_api::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)));
    let graphql_api: Router = ajax().with_state(state.clone());
    let graphql_route = move |method: Method, uri: Uri, body: Bytes| {
        let api = graphql_api.clone();
        async move { graphql::handle(api, method, uri.query().map(str::to_string), body).await }
    };
    Router::new()
        .nest("/api/2.0/mlflow", mlflow())
        .nest("/ajax-api/2.0/mlflow", ajax())
        .route("/graphql", get(graphql_route.clone()).post(graphql_route))
        .nest("/api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .merge(registry::wasmflow_router())
        .nest("/api/2.0/wasmflow", webhooks::wasmflow_router())
        .nest("/ajax-api/2.0/wasmflow", webhooks::wasmflow_router())
        .merge(plugins::router().layer(DefaultBodyLimit::max(MAX_PLUGIN_BODY)))
        .merge(serving::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .merge(ui::router())
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .fallback(error::not_found)
        .with_state(state)
        .layer(
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
