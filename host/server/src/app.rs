//! The HTTP application: every router, mounted where MLflow's server mounts it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::routing::{any, get};
use serde_json::json;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use wasmflow_core::{Error, ErrorCode};

use crate::error::ApiError;
use crate::state::AppState;
use crate::{
    artifacts, error, eval_datasets, graphql, logged_models, plugins, registry, serving, traces,
    tracking, ui, ui_api, webhooks,
};

/// The MLflow release whose REST API this server implements. `/version` answers it because
/// MLflow's client reads that answer as the server's MLflow version and turns features on by it
/// (it sends trace spans only to servers of 3.4 or later).
pub const MLFLOW_API_VERSION: &str = "3.17.2";
/// wasmflow's own version: in every response's `X-Wasmflow-Version` header and at
/// `/api/2.0/wasmflow/version`.
pub const WASMFLOW_VERSION: &str = env!("CARGO_PKG_VERSION");

/// log-batch requests may reach 1 MB (MLflow's limit); leave room for JSON overhead.
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

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
            .merge(webhooks::router())
            .merge(traces::router_v2())
            .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
    };
    // MLflow serves its UI's own endpoints under /ajax-api only; /graphql resolves through them.
    let ajax = || mlflow().merge(ui_api::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)));
    let graphql_api: Router = ajax().with_state(state.clone());
    let graphql_route = move |method: Method, uri: Uri, body: Bytes| {
        let api = graphql_api.clone();
        async move { graphql::handle(api, method, uri.query().map(str::to_string), body).await }
    };
    let app = Router::new()
        .nest("/api/2.0/mlflow", mlflow())
        .nest("/ajax-api/2.0/mlflow", ajax())
        .route("/graphql", get(graphql_route.clone()).post(graphql_route))
        .nest("/api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .merge(registry::wasmflow_router())
        .merge(eval_datasets::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)))
        .nest("/api/2.0/wasmflow", webhooks::wasmflow_router())
        .nest("/ajax-api/2.0/wasmflow", webhooks::wasmflow_router())
        .merge(plugins::router())
        .merge(serving::router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)))
        .nest(
            "/api/3.0/mlflow",
            traces::router_v3().layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .nest(
            "/ajax-api/3.0/mlflow",
            traces::router_v3().layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .merge(traces::root_router().layer(DefaultBodyLimit::max(MAX_JSON_BODY)))
        .route("/api/3.0/mlflow/server-info", get(server_info))
        .route("/ajax-api/3.0/mlflow/server-info", get(server_info))
        .nest("/ajax-api/3.0/mlflow/assistant", ui_api::assistant_router())
        .route(
            "/ajax-api/3.0/mlflow/ui-telemetry",
            get(ui_api::ui_telemetry_settings).post(ui_api::ui_telemetry_records),
        )
        .merge(artifacts::root_router())
        .merge(gateway_router())
        .merge(ui::router())
        .route("/health", get(|| async { "OK" }))
        // MLflow's server answers the version as Flask answers a returned string: HTML.
        .route(
            "/version",
            get(|| async { axum::response::Html(MLFLOW_API_VERSION) }),
        )
        .route(
            "/api/2.0/wasmflow/version",
            get(|| async {
                axum::Json(json!({
                    "wasmflow_version": WASMFLOW_VERSION,
                    "mlflow_api_version": MLFLOW_API_VERSION,
                }))
            }),
        )
        .fallback(error::not_found)
        .with_state(state);
    // Outside auth, so that its 401s carry the header too.
    crate::auth::protect(app, auth)
        .layer(axum::middleware::map_response(version_header))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// Checks `mlflow server --static-prefix`'s value as MLflow does, in MLflow's words.
pub fn check_static_prefix(prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        prefix.starts_with('/'),
        "--static-prefix must begin with a '/'. (got '{prefix}')"
    );
    anyhow::ensure!(
        !prefix.ends_with('/'),
        "--static-prefix should not end with a '/'. (got '{prefix}')"
    );
    Ok(())
}

/// The whole app under `prefix` (`/mlflow`), as `mlflow server --static-prefix` serves it behind
/// a proxy that keeps the prefix. The prefix is stripped before the app routes, so auth's rules,
/// the Host guard's health paths and every handler see the paths they know; `prefix` alone is
/// redirected to `prefix/` (the UI's page, whose relative links need the slash, as Flask
/// redirects it), and every path outside the prefix is 404.
pub fn under_prefix(app: Router, prefix: &str) -> Router {
    let prefix: Arc<str> = prefix.into();
    Router::new().fallback(move |request: axum::extract::Request| {
        let (app, prefix) = (app.clone(), prefix.clone());
        async move {
            use axum::response::IntoResponse as _;
            use tower::ServiceExt as _;
            let uri = request.uri().clone();
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            match uri.path().strip_prefix(&*prefix) {
                Some("") => (
                    axum::http::StatusCode::PERMANENT_REDIRECT,
                    [(axum::http::header::LOCATION, format!("{prefix}/{query}"))],
                )
                    .into_response(),
                Some(rest) if rest.starts_with('/') => {
                    let (mut parts, body) = request.into_parts();
                    let mut uri_parts = uri.clone().into_parts();
                    uri_parts.path_and_query = format!("{rest}{query}").parse().ok();
                    match Uri::from_parts(uri_parts) {
                        Ok(stripped) => parts.uri = stripped,
                        Err(_) => return error::not_found(parts.uri).await.into_response(),
                    }
                    let request = axum::extract::Request::from_parts(parts, body);
                    match app.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }
                _ => error::not_found(uri).await.into_response(),
            }
        }
    })
}

async fn version_header(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        HeaderName::from_static("x-wasmflow-version"),
        HeaderValue::from_static(WASMFLOW_VERSION),
    );
    response
}

/// MLflow's AI gateway (its endpoints, secrets, budgets and guardrails API under
/// `/api/3.0/mlflow/gateway/`, and the serving routes under `/gateway/`) is not part of wasmflow:
/// every such path gets one error that names the feature, rather than the `ENDPOINT_NOT_FOUND`
/// of a path MLflow does not have. The UI's `/ajax-api/2.0/mlflow/gateway-proxy` answers as
/// MLflow's does without a gateway ([`ui_api`]).
fn gateway_router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in [
        "/api/3.0/mlflow/gateway",
        "/ajax-api/3.0/mlflow/gateway",
        "/api/2.0/mlflow/gateway-proxy",
        "/gateway",
    ] {
        router = router
            .route(prefix, any(gateway_not_implemented))
            .route(&format!("{prefix}/{{*rest}}"), any(gateway_not_implemented));
    }
    router
}

async fn gateway_not_implemented(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::new(
        ErrorCode::NotImplemented,
        format!(
            "MLflow's AI gateway is not implemented by wasmflow ('{}'); run an MLflow AI \
             gateway server for it",
            uri.path()
        ),
    ))
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
