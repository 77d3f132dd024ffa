//! `wasmflow models serve`: one model behind MLflow's scoring server protocol —
//! `POST /invocations`, `GET /ping` and `/health` (200 once the model is loaded), `GET /version`,
//! and `GET /metrics`. It listens before the model is loaded, so an orchestrator sees the
//! process up at once and waits on `/ping`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::OnceCell;
use wasmflow_core::{Error, ErrorCode};
use wasmflow_runtime::PluginManager;
use wasmflow_serving::{ModelLabels, ServingMetrics, SharedModel, model};

use crate::error::ApiError;
use crate::serving::{answer_response, content_type, metrics_response};

pub struct ServeOptions {
    pub model_dir: PathBuf,
    /// The model's name and version in the metrics (the URI when it named no registered model).
    pub labels: ModelLabels,
    pub host: String,
    pub port: u16,
    /// Instances in the model's pool: requests answered at the same time.
    pub workers: usize,
    /// Plugins tried after the installed ones (a tracking server's, downloaded).
    pub other_plugins: model::OtherPlugins,
    pub limits: crate::connections::Limits,
}

struct Scoring {
    model: OnceCell<SharedModel>,
    metrics: ServingMetrics,
    labels: ModelLabels,
    plugins: Arc<PluginManager>,
}

fn router(state: Arc<Scoring>) -> anyhow::Result<Router> {
    // MLflow's scoring server has no Host or Origin checks; the security headers cost nothing.
    let guard = crate::guard::Guard::headers_only(&crate::guard::GuardArgs {
        x_frame_options: "SAMEORIGIN".into(),
        ..Default::default()
    })?;
    Ok(Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/metrics", get(metrics))
        .fallback(crate::error::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::app::MAX_JSON_BODY,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::guard::check,
        )))
}

/// Serves until Ctrl-C or SIGTERM; fails if the model cannot be loaded.
pub async fn run(
    options: ServeOptions,
    plugins: Arc<PluginManager>,
    started: Instant,
    runtimes: &crate::connections::ConnectionRuntimes,
) -> anyhow::Result<()> {
    let state = Arc::new(Scoring {
        model: OnceCell::new(),
        metrics: ServingMetrics::default(),
        labels: options.labels,
        plugins: plugins.clone(),
    });
    let (listener, addr) = crate::listen(&options.host, options.port).await?;
    tracing::info!(
        "listening on http://{addr} ({} ms after start); loading the model from '{}'",
        started.elapsed().as_millis(),
        options.model_dir.display()
    );

    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let loader = state.clone();
    let (dir, workers, other) = (options.model_dir, options.workers, options.other_plugins);
    // A plain thread, not the server's blocking pool: WASI inside the plugin then runs on
    // wasmtime-wasi's own runtime, which a Ctrl-C during loading does not tear down under it.
    std::thread::Builder::new()
        .name("model-loader".into())
        .spawn(move || {
            let load_started = Instant::now();
            let loaded =
                model::load_with(&loader.plugins, &dir, workers, &other).and_then(|model| {
                    model.pool.fill().map_err(model::plugin_error)?;
                    Ok(model)
                });
            match loaded {
                Ok(model) => {
                    tracing::info!(
                        "model loaded (flavor '{}', plugin {}, {} instances, {} MiB) in {} ms; \
                         ready {} ms after start",
                        model.flavor,
                        model.plugin,
                        model.pool.instances(),
                        model.pool.memory() >> 20,
                        load_started.elapsed().as_millis(),
                        started.elapsed().as_millis()
                    );
                    let _ = loader.model.set(Arc::new(model));
                }
                Err(e) => {
                    let _ = failed_tx.send(anyhow::anyhow!("cannot load the model: {}", e.message));
                }
            }
        })
        .context("cannot start the model-loading thread")?;

    let server = crate::connections::serve(
        listener,
        router(state)?,
        options.limits,
        crate::connections::Placement::Pinned(runtimes),
        crate::shutdown_signal(),
    );
    // A load failure ends the server at once: it could only ever answer 503.
    tokio::select! {
        served = server => served.context("the server stopped with an error"),
        Ok(e) = failed_rx => Err(e),
    }
}

fn loading() -> Response {
    ApiError(Error::new(
        ErrorCode::TemporarilyUnavailable,
        "the model is still loading",
    ))
    .into_response()
}

async fn ping(State(state): State<Arc<Scoring>>) -> Response {
    match state.model.get() {
        Some(_) => (StatusCode::OK, "\n").into_response(),
        None => loading(),
    }
}

async fn invocations(
    State(state): State<Arc<Scoring>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(model) = state.model.get() else {
        return loading();
    };
    let answer = wasmflow_serving::served::score(
        model.clone(),
        &state.metrics,
        &state.labels,
        content_type(&headers),
        body,
    )
    .await;
    answer_response(answer)
}

async fn metrics(State(state): State<Arc<Scoring>>) -> Response {
    if let Some(model) = state.model.get() {
        state
            .metrics
            .set_pool(&state.labels, model.pool.instances(), model.pool.memory());
    }
    let text = state.metrics.render(Some(state.plugins.runtime()));
    metrics_response(text)
}
