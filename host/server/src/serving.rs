//! Registered models served by `wasmflow server` at
//! `/serving/models/<name>/<version | alias | stage | latest>/invocations`, with MLflow's
//! scoring protocol. Each request resolves the name (so a moved alias takes effect on the next
//! request), loads the version on first use and keeps it warm.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::OnceCell;
use wasmflow_core::Error;

use crate::error::{ApiError, ApiResult};
use crate::metrics::{ModelLabels, ServingMetrics};
use crate::models::{self, SharedModel};
use crate::scoring::{self, ScoringError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/serving/models/{name}/{reference}/invocations",
            post(invocations),
        )
        .route("/metrics", get(metrics))
}

/// Loaded model versions by (name, version); a slot is filled once even when many requests
/// ask for the same version at the same time. Versions used least recently are unloaded when
/// the pools together hold more memory than the budget.
pub struct ServedModels {
    slots: Mutex<HashMap<VersionKey, Arc<Slot>>>,
    memory_budget: usize,
    pub metrics: ServingMetrics,
    /// Orders uses for the least-recently-used choice without reading the clock.
    uses: AtomicU64,
}

#[derive(Default)]
struct Slot {
    model: OnceCell<SharedModel>,
    last_use: AtomicU64,
}

/// A registered model's name and version.
type VersionKey = (String, String);

/// Keeps every model warm unless a budget is given.
impl Default for ServedModels {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl ServedModels {
    pub fn new(memory_budget: usize) -> Self {
        Self {
            slots: Mutex::default(),
            memory_budget,
            metrics: ServingMetrics::default(),
            uses: AtomicU64::new(0),
        }
    }

    async fn get_or_load(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        artifact_uri: &str,
    ) -> ApiResult<SharedModel> {
        let slot = self
            .lock()
            .entry((name.to_string(), version.to_string()))
            .or_default()
            .clone();
        slot.last_use
            .store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let model = slot
            .model
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
                let loaded = Arc::new(loaded);
                // The rest of the pool is made in the background: this request need not wait
                // for it, and the next concurrent ones find instances ready.
                let (filling, model_name) = (loaded.clone(), name.to_string());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = filling.pool.fill() {
                        tracing::warn!("cannot make more instances of '{model_name}': {e}");
                    }
                });
                Ok::<_, ApiError>(loaded)
            })
            .await;
        if model.is_err() {
            // Don't keep an empty slot for every bad reference a client sends.
            let mut slots = self.lock();
            let key = (name.to_string(), version.to_string());
            if slots.get(&key).is_some_and(|s| s.model.get().is_none()) {
                slots.remove(&key);
            }
        }
        Ok(model?.clone())
    }

    /// Unloads the least recently used versions, other than `keep`, while the loaded pools
    /// hold more than the budget. Requests in flight keep their model until they finish.
    fn enforce_budget(&self, keep: &VersionKey) {
        let mut slots = self.lock();
        let mut used: usize = slots
            .values()
            .filter_map(|s| s.model.get())
            .map(|m| m.pool.memory())
            .sum();
        while used > self.memory_budget {
            let victim = slots
                .iter()
                .filter(|(key, slot)| *key != keep && slot.model.get().is_some())
                .min_by_key(|(_, slot)| slot.last_use.load(Ordering::Relaxed))
                .map(|(key, _)| key.clone());
            let Some(victim) = victim else { break };
            let Some(slot) = slots.remove(&victim) else {
                break;
            };
            let freed = slot.model.get().map_or(0, |m| m.pool.memory());
            used -= freed;
            self.metrics.unloaded(&labels(&victim), true);
            tracing::info!(
                "unloaded model '{}' version {} ({} MiB) to stay under the serving memory \
                 budget of {} MiB",
                victim.0,
                victim.1,
                freed >> 20,
                self.memory_budget >> 20
            );
        }
    }

    /// Sets the pool gauges of every loaded version.
    fn refresh_gauges(&self) {
        for (key, slot) in self.lock().iter() {
            if let Some(model) = slot.model.get() {
                self.metrics
                    .set_pool(&labels(key), model.pool.instances(), model.pool.memory());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VersionKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn labels((model, version): &VersionKey) -> ModelLabels {
    ModelLabels {
        model: model.clone(),
        version: version.clone(),
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
    let served = &state.served;
    let model = served
        .get_or_load(&state, &name, &version, &resolved.artifact_uri)
        .await?;
    let key = (name, version);
    let response = invoke(model, &served.metrics, &labels(&key), &headers, body).await;
    served.enforce_budget(&key);
    Ok(response)
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.served.refresh_gauges();
    let runtime = state.plugins.as_ref().map(|p| p.runtime().as_ref());
    crate::metrics::response(state.served.metrics.render(runtime))
}

/// Bodies up to this size are parsed and scored on the async thread that received them, when
/// an instance is idle and the model's last call was short: such a call takes tens of
/// microseconds, about what handing it to tokio's blocking pool and back costs. Larger bodies (a
/// 1,000-row frame is 200 KiB and a millisecond or more) and slow models go to the blocking pool,
/// so that they never hold up the other connections this thread serves.
const INLINE_BODY_LIMIT: usize = 16 << 10;
const INLINE_CALL_LIMIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Scores one request with MLflow's protocol on a loaded model, and records it.
pub async fn invoke(
    model: SharedModel,
    metrics: &ServingMetrics,
    labels: &ModelLabels,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let inline = body.len() <= INLINE_BODY_LIMIT && model.pool.last_call() <= INLINE_CALL_LIMIT;
    let response = if inline {
        match parse(&model, content_type.as_deref(), &body) {
            Err(e) => scoring_error(e),
            Ok(request) => match model
                .pool
                .try_predict(&request.input, request.params.as_deref())
            {
                Some(result) => respond(result),
                // Every instance is busy (or not made yet): wait on a blocking thread.
                None => {
                    blocking(move || {
                        respond(
                            model
                                .pool
                                .predict(&request.input, request.params.as_deref()),
                        )
                    })
                    .await
                }
            },
        }
    } else {
        blocking(
            move || match parse(&model, content_type.as_deref(), &body) {
                Err(e) => scoring_error(e),
                Ok(request) => respond(
                    model
                        .pool
                        .predict(&request.input, request.params.as_deref()),
                ),
            },
        )
        .await
    };
    metrics.record(labels, started.elapsed(), !response.status().is_success());
    response
}

fn parse(
    model: &SharedModel,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<scoring::ScoringRequest, ScoringError> {
    scoring::parse_request(
        content_type,
        body,
        model.input_schema.as_ref(),
        model.params_schema.as_deref(),
    )
}

fn respond(result: Result<wasmflow_runtime::Data, wasmflow_runtime::PluginError>) -> Response {
    match result {
        Ok(output) => (
            [(header::CONTENT_TYPE, "application/json")],
            scoring::predictions(&output),
        )
            .into_response(),
        Err(e) => ApiError(models::plugin_error(e)).into_response(),
    }
}

/// Runs `f` on tokio's blocking pool.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        ApiError(Error::internal(format!("the scoring task failed: {e}"))).into_response()
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
