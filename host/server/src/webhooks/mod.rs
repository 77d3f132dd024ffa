//! MLflow's webhooks API (`webhooks.proto`): create, get, list, update, delete and test, under
//! `/api/2.0/mlflow/webhooks`; delivery of registry events off the request path; and wasmflow's
//! record of deliveries at `/api/2.0/wasmflow/webhooks/{id}/deliveries`.

mod delivery;
// Shared with `wasmflow run`'s downloads of https:// parameters.
pub(crate) use delivery::tls_config;
mod payload;
mod secret;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use wasmflow_core::Error;
use wasmflow_store::WebhookStore;
use wasmflow_store::webhooks::{
    LIST_WEBHOOKS_MAX_RESULTS_DEFAULT, LIST_WEBHOOKS_MAX_RESULTS_THRESHOLD, NewWebhook, Webhook,
    WebhookAction, WebhookDelivery, WebhookEntity, WebhookEvent, WebhookStatus, WebhookUpdate,
};

pub use delivery::Settings;
pub use payload::{python_dumps, tag_object};
pub use secret::Fernet;

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::state::AppState;

/// Webhook storage, the key of their secrets, and delivery.
pub struct Webhooks {
    store: Arc<dyn WebhookStore>,
    settings: Settings,
    fernet: Fernet,
    /// Bounds the deliveries under way (MLflow's thread pool of `max_workers`).
    workers: Arc<Semaphore>,
}

impl Webhooks {
    pub fn new(store: Arc<dyn WebhookStore>, settings: Settings, fernet: Fernet) -> Arc<Self> {
        let workers = Arc::new(Semaphore::new(settings.max_workers));
        Arc::new(Self {
            store,
            settings,
            fernet,
            workers,
        })
    }

    /// MLflow's settings from the environment and a key of this process's own (tests, and
    /// servers that keep nothing across restarts).
    pub fn ephemeral(store: Arc<dyn WebhookStore>) -> Arc<Self> {
        let key = Fernet::generate_key();
        Self::new(
            store,
            Settings::from_env().unwrap_or_default(),
            Fernet::from_key(&key).expect("a generated key is valid"),
        )
    }

    /// Sends `event` with `data` to every active webhook subscribed to it, in the background:
    /// the request that caused it does not wait, and a failed delivery does not fail it.
    pub fn emit(self: &Arc<Self>, event: WebhookEvent, data: Value) {
        let this = self.clone();
        tokio::spawn(async move {
            let store = this.store.clone();
            let hooks =
                match tokio::task::spawn_blocking(move || store.webhooks_for_event(event)).await {
                    Ok(Ok(hooks)) => hooks,
                    Ok(Err(e)) => {
                        tracing::error!("cannot list the webhooks of {}: {e}", event.name());
                        return;
                    }
                    Err(e) => {
                        tracing::error!("cannot list the webhooks of {}: {e}", event.name());
                        return;
                    }
                };
            for hook in hooks
                .into_iter()
                .filter(|h| h.status == WebhookStatus::Active)
            {
                let (this, data) = (this.clone(), data.clone());
                tokio::spawn(async move {
                    let Ok(_permit) = this.workers.clone().acquire_owned().await else {
                        return;
                    };
                    this.deliver(&hook, event, &data).await;
                });
            }
        });
    }

    /// One delivery to one webhook, recorded when it ends.
    async fn deliver(
        &self,
        hook: &Webhook,
        event: WebhookEvent,
        data: &Value,
    ) -> delivery::Outcome {
        let started = Instant::now();
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let outcome = match self.outgoing(hook, event, data, &delivery_id) {
            Ok(out) => delivery::send(&out, &self.settings).await,
            Err(e) => delivery::Outcome {
                attempts: 0,
                status: None,
                body: None,
                error: Some(e),
            },
        };
        if outcome.success() {
            tracing::info!(
                webhook = %hook.webhook_id, delivery = %delivery_id, event = %event.name(),
                status = ?outcome.status, attempts = outcome.attempts, "webhook delivered"
            );
        } else {
            tracing::error!(
                webhook = %hook.webhook_id, delivery = %delivery_id, event = %event.name(),
                status = ?outcome.status, error = ?outcome.error, attempts = outcome.attempts,
                "failed to send webhook to {}", hook.url
            );
        }
        let record = WebhookDelivery {
            delivery_id,
            webhook_id: hook.webhook_id.clone(),
            event: event.name(),
            timestamp: now_ms(),
            attempts: outcome.attempts,
            success: outcome.success(),
            response_status: outcome.status,
            error: outcome.error.clone(),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.record_webhook_delivery(record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot record a webhook delivery: {e}"),
            Err(e) => tracing::error!("cannot record a webhook delivery: {e}"),
        }
        outcome
    }

    /// The request MLflow sends: the payload bytes and its headers, signed when the webhook has
    /// a secret.
    fn outgoing(
        &self,
        hook: &Webhook,
        event: WebhookEvent,
        data: &Value,
        delivery_id: &str,
    ) -> Result<delivery::Outgoing, String> {
        let now = SystemTime::now();
        let body = payload::envelope(event, data, now);
        let timestamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let secret = match &hook.secret {
            Some(token) => Some(self.fernet.decrypt(token).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("x-mlflow-delivery-id", delivery_id.to_string()),
            ("x-mlflow-timestamp", timestamp.clone()),
        ];
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            headers.push((
                "x-mlflow-signature",
                payload::signature(&secret, delivery_id, &timestamp, &body),
            ));
        }
        Ok(delivery::Outgoing {
            url: hook.url.clone(),
            body: Bytes::from(body),
            headers,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Under `/api/2.0/mlflow` (and `/ajax-api/2.0/mlflow`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route(
            "/webhooks/{webhook_id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/webhooks/{webhook_id}/test", post(test))
}

/// wasmflow's record of deliveries, under `/api/2.0/wasmflow`.
pub fn wasmflow_router() -> Router<AppState> {
    Router::new().route("/webhooks/{webhook_id}/deliveries", get(deliveries))
}

async fn call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn WebhookStore) -> wasmflow_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let store = state.webhooks.store.clone();
    state.blocking(move || f(store.as_ref())).await
}

// ---- request fields ----

/// An enum field as the proto's JSON carries it: its name, or its number.
fn enum_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_i64().map(|n| format!("#{n}")),
        _ => None,
    }
}

fn entity_of(value: &Value) -> Option<WebhookEntity> {
    let text = enum_text(value)?;
    match text.strip_prefix('#') {
        Some(n) => {
            let n: usize = n.parse().ok()?;
            WebhookEntity::ALL.get(n.checked_sub(1)?).copied()
        }
        None => WebhookEntity::parse(&text),
    }
}

fn action_of(value: &Value) -> Option<WebhookAction> {
    let text = enum_text(value)?;
    match text.strip_prefix('#') {
        Some(n) => {
            let n: usize = n.parse().ok()?;
            WebhookAction::ALL.get(n.checked_sub(1)?).copied()
        }
        None => WebhookAction::parse(&text),
    }
}

/// One `WebhookEvent` message: `{"entity": "MODEL_VERSION", "action": "CREATED"}`; the
/// `"model_version.created"` string form is taken too.
fn event_of(value: &Value) -> ApiResult<WebhookEvent> {
    if let Value::String(s) = value {
        return Ok(WebhookEvent::parse(s)?);
    }
    let field = |name: &str| value.get(name).filter(|v| !v.is_null());
    let (Some(entity), Some(action)) = (field("entity"), field("action")) else {
        return Err(ApiError::invalid(format!(
            "Invalid webhook event {value}: both 'entity' and 'action' are required."
        )));
    };
    match (entity_of(entity), action_of(action)) {
        (Some(e), Some(a)) => Ok(WebhookEvent::new(e, a)?),
        (None, _) => Err(ApiError::invalid(format!(
            "Invalid webhook event entity {entity}. Valid entities are: {}",
            WebhookEntity::ALL
                .iter()
                .map(|e| e.as_str().to_uppercase())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        (_, None) => Err(ApiError::invalid(format!(
            "Invalid webhook event action {action}. Valid actions are: {}",
            WebhookAction::ALL
                .iter()
                .map(|a| a.as_str().to_uppercase())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn events_of(value: Option<Value>) -> ApiResult<Option<Vec<WebhookEvent>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(event_of)
            .collect::<ApiResult<_>>()
            .map(Some),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value {other} for parameter 'events' supplied."
        ))),
    }
}

fn status_of(value: Option<Value>) -> ApiResult<Option<WebhookStatus>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(WebhookStatus::Active)),
        Some(Value::Number(n)) if n.as_i64() == Some(2) => Ok(Some(WebhookStatus::Disabled)),
        Some(Value::String(s)) => Ok(Some(WebhookStatus::parse(&s)?)),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value {other} for parameter 'status' supplied."
        ))),
    }
}

fn string_field(value: Option<Value>, name: &str) -> ApiResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value {other} for parameter '{name}' supplied."
        ))),
    }
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("Missing value for required parameter '{name}'.")))
}

// ---- handlers ----

#[derive(Deserialize)]
struct Fields {
    name: Option<Value>,
    description: Option<Value>,
    url: Option<Value>,
    events: Option<Value>,
    secret: Option<Value>,
    status: Option<Value>,
}

async fn create(
    State(state): State<AppState>,
    Message(m): Message<Fields>,
) -> ApiResult<Json<Value>> {
    let name = required(string_field(m.name, "name")?, "name")?;
    let url = required(string_field(m.url, "url")?, "url")?;
    let events = events_of(m.events)?
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'events'."))?;
    let description = string_field(m.description, "description")?.filter(|d| !d.is_empty());
    let secret = string_field(m.secret, "secret")?.filter(|s| !s.is_empty());
    let status = status_of(m.status)?.unwrap_or(WebhookStatus::Active);
    // MLflow's order: the name, then the URL, then the events.
    wasmflow_store::webhooks::validate_webhook_name(&name)?;
    let hooks = state.webhooks.clone();
    delivery::validate_url(&url, &hooks.settings).await?;
    let new = NewWebhook {
        name,
        url,
        events,
        description,
        secret: secret.map(|s| hooks.fernet.encrypt(&s)),
        status,
    };
    let hook = call(&state, move |s| s.create_webhook(new)).await?;
    Ok(Json(json!({ "webhook": hook })))
}

#[derive(Deserialize)]
struct ListQuery {
    max_results: Option<Value>,
    page_token: Option<Value>,
}

async fn list(
    State(state): State<AppState>,
    Message(q): Message<ListQuery>,
) -> ApiResult<Json<Value>> {
    let max_results = match q.max_results {
        None | Some(Value::Null) => LIST_WEBHOOKS_MAX_RESULTS_DEFAULT as i64,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
            s.trim().parse().unwrap_or_default()
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {other} for parameter 'max_results' supplied."
            )));
        }
    };
    // MLflow reads 0 as "unset" (`max_results or 100`).
    let max_results = if max_results == 0 {
        LIST_WEBHOOKS_MAX_RESULTS_DEFAULT as i64
    } else {
        max_results
    };
    if !(1..=LIST_WEBHOOKS_MAX_RESULTS_THRESHOLD as i64).contains(&max_results) {
        return Err(ApiError::invalid("max_results must be between 1 and 1000."));
    }
    let token = string_field(q.page_token, "page_token")?;
    let page = call(&state, move |s| {
        s.list_webhooks(max_results as usize, token.as_deref())
    })
    .await?;
    let mut body = Map::new();
    if !page.items.is_empty() {
        body.insert("webhooks".into(), json!(page.items));
    }
    if let Some(token) = page.next_page_token {
        body.insert("next_page_token".into(), json!(token));
    }
    Ok(Json(Value::Object(body)))
}

async fn get_one(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let hook = call(&state, move |s| s.get_webhook(&webhook_id)).await?;
    Ok(Json(json!({ "webhook": hook })))
}

async fn update(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    Message(m): Message<Fields>,
) -> ApiResult<Json<Value>> {
    let hooks = state.webhooks.clone();
    // As MLflow: an empty name, URL or event list leaves the field as it is; an empty
    // description or secret clears it.
    let url = string_field(m.url, "url")?.filter(|u| !u.is_empty());
    let update = WebhookUpdate {
        name: string_field(m.name, "name")?.filter(|n| !n.is_empty()),
        description: string_field(m.description, "description")?,
        events: events_of(m.events)?.filter(|e| !e.is_empty()),
        secret: string_field(m.secret, "secret")?.map(|s| hooks.fernet.encrypt(&s)),
        status: status_of(m.status)?,
        url: url.clone(),
    };
    // The webhook must exist before its new URL is looked at, as in MLflow.
    let id = webhook_id.clone();
    call(&state, move |s| s.get_webhook(&id)).await?;
    if let Some(name) = &update.name {
        wasmflow_store::webhooks::validate_webhook_name(name)?;
    }
    if let Some(url) = &url {
        delivery::validate_url(url, &hooks.settings).await?;
    }
    let hook = call(&state, move |s| s.update_webhook(&webhook_id, update)).await?;
    Ok(Json(json!({ "webhook": hook })))
}

async fn delete(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<Value>> {
    call(&state, move |s| s.delete_webhook(&webhook_id)).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct TestFields {
    event: Option<Value>,
}

/// Sends the event's example payload now and answers what the receiver said (MLflow's
/// `test_webhook`): the one delivery that runs on the request path, since its answer is the
/// result.
async fn test(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    Message(m): Message<TestFields>,
) -> ApiResult<Json<Value>> {
    let event = match m.event.filter(|e| !e.is_null()) {
        Some(e) => Some(event_of(&e)?),
        None => None,
    };
    let hook = call(&state, move |s| s.get_webhook(&webhook_id)).await?;
    let event = event
        .or_else(|| hook.events.first().copied())
        .ok_or_else(|| ApiError(Error::invalid("Webhook events cannot be empty")))?;
    let outcome = state
        .webhooks
        .deliver(&hook, event, &payload::example(event))
        .await;
    let mut result = Map::new();
    result.insert("success".into(), json!(outcome.success()));
    match outcome.status {
        Some(status) => {
            result.insert("response_status".into(), json!(status));
            result.insert(
                "response_body".into(),
                json!(outcome.body.unwrap_or_default()),
            );
        }
        None => {
            result.insert(
                "error_message".into(),
                json!(format!(
                    "Failed to test webhook: {}",
                    outcome.error.unwrap_or_default()
                )),
            );
        }
    }
    Ok(Json(json!({ "result": result })))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    max_results: Option<String>,
}

async fn deliveries(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    Message(q): Message<DeliveriesQuery>,
) -> ApiResult<Json<Value>> {
    let limit = match q.max_results.filter(|s| !s.is_empty()) {
        None => 100,
        Some(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value '{s}' for parameter 'max_results' supplied."
                ))
            })?,
    };
    let id = webhook_id.clone();
    call(&state, move |s| s.get_webhook(&id)).await?;
    let list = call(&state, move |s| s.webhook_deliveries(&webhook_id, limit)).await?;
    Ok(Json(json!({ "deliveries": list })))
}

// ---- events from the registry ----

/// The registry's calls into webhooks: each builds MLflow's payload for its event.
pub mod events {
    use super::*;

    fn emit(state: &AppState, entity: WebhookEntity, action: WebhookAction, data: Value) {
        if let Ok(event) = WebhookEvent::new(entity, action) {
            state.webhooks.emit(event, data);
        }
    }

    /// `registered_model.created` (or `prompt.created` for a prompt), with the request's tags
    /// and its description as given (`""` when absent, as MLflow reads an unset proto field).
    pub fn model_created(
        state: &AppState,
        name: &str,
        tags: &[(String, String)],
        description: &str,
        prompt: bool,
    ) {
        let (entity, tags) = if prompt {
            (
                WebhookEntity::Prompt,
                tag_object(
                    tags.iter()
                        .filter(|(k, _)| k != IS_PROMPT && k != PROMPT_TYPE)
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            )
        } else {
            (
                WebhookEntity::RegisteredModel,
                tag_object(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
        };
        emit(
            state,
            entity,
            WebhookAction::Created,
            json!({ "name": name, "tags": tags, "description": description }),
        );
    }

    pub const IS_PROMPT: &str = "mlflow.prompt.is_prompt";
    const PROMPT_TYPE: &str = "_mlflow_prompt_type";
    const PROMPT_TEXT: &str = "mlflow.prompt.text";

    /// `model_version.created` (or `prompt_version.created`).
    pub struct VersionCreated<'a> {
        pub name: &'a str,
        pub version: i64,
        pub source: &'a str,
        pub run_id: Option<&'a str>,
        pub tags: &'a [(String, String)],
        pub description: Option<&'a str>,
        pub prompt: bool,
    }

    pub fn version_created(state: &AppState, v: VersionCreated<'_>) {
        let description = v.description.filter(|d| !d.is_empty());
        if v.prompt {
            let mut tags = tag_object(v.tags.iter().map(|(k, val)| (k.as_str(), val.as_str())));
            let map = tags.as_object_mut().expect("tag_object makes an object");
            let template = map.shift_remove(PROMPT_TEXT).unwrap_or(Value::Null);
            map.shift_remove(IS_PROMPT);
            map.shift_remove(PROMPT_TYPE);
            emit(
                state,
                WebhookEntity::PromptVersion,
                WebhookAction::Created,
                json!({
                    "name": v.name, "version": v.version.to_string(), "template": template,
                    "tags": tags, "description": description,
                }),
            );
        } else {
            emit(
                state,
                WebhookEntity::ModelVersion,
                WebhookAction::Created,
                json!({
                    "name": v.name, "version": v.version.to_string(), "source": v.source,
                    "run_id": v.run_id.filter(|r| !r.is_empty()),
                    "tags": tag_object(v.tags.iter().map(|(k, val)| (k.as_str(), val.as_str()))),
                    "description": description,
                }),
            );
        }
    }

    /// Whether the registered model is a prompt (MLflow's `_is_prompt`), looked up off the
    /// request path; then `build` makes the event for a prompt or a model.
    fn emit_for(
        state: &AppState,
        name: &str,
        build: impl FnOnce(bool) -> Option<(WebhookEntity, WebhookAction, Value)> + Send + 'static,
    ) {
        let (state, name) = (state.clone(), name.to_string());
        tokio::spawn(async move {
            let prompt = state
                .registry_call(move |r| r.get_registered_model(&name))
                .await
                .map(|m| {
                    m.tags
                        .iter()
                        .any(|t| t.key == IS_PROMPT && t.value.eq_ignore_ascii_case("true"))
                })
                .unwrap_or(false);
            if let Some((entity, action, data)) = build(prompt) {
                emit(&state, entity, action, data);
            }
        });
    }

    fn pick(prompt: bool, for_prompt: WebhookEntity, for_model: WebhookEntity) -> WebhookEntity {
        if prompt { for_prompt } else { for_model }
    }

    /// `model_version_tag.set` / `prompt_version_tag.set`; `version` as the request sent it.
    pub fn version_tag_set(state: &AppState, name: &str, version: &str, key: &str, value: &str) {
        let data = json!({ "name": name, "version": version, "key": key, "value": value });
        emit_for(state, name, move |prompt| {
            let entity = pick(
                prompt,
                WebhookEntity::PromptVersionTag,
                WebhookEntity::ModelVersionTag,
            );
            Some((entity, WebhookAction::Set, data))
        });
    }

    pub fn version_tag_deleted(state: &AppState, name: &str, version: &str, key: &str) {
        let data = json!({ "name": name, "version": version, "key": key });
        emit_for(state, name, move |prompt| {
            let entity = pick(
                prompt,
                WebhookEntity::PromptVersionTag,
                WebhookEntity::ModelVersionTag,
            );
            Some((entity, WebhookAction::Deleted, data))
        });
    }

    /// `prompt_tag.set`: a registered model's tags send nothing unless it is a prompt.
    pub fn model_tag_set(state: &AppState, name: &str, key: &str, value: &str) {
        let data = json!({ "name": name, "key": key, "value": value });
        emit_for(state, name, move |prompt| {
            prompt.then_some((WebhookEntity::PromptTag, WebhookAction::Set, data))
        });
    }

    pub fn model_tag_deleted(state: &AppState, name: &str, key: &str) {
        let data = json!({ "name": name, "key": key });
        emit_for(state, name, move |prompt| {
            prompt.then_some((WebhookEntity::PromptTag, WebhookAction::Deleted, data))
        });
    }

    pub fn alias_created(state: &AppState, name: &str, alias: &str, version: &str) {
        let data = json!({ "name": name, "alias": alias, "version": version });
        emit_for(state, name, move |prompt| {
            let entity = pick(
                prompt,
                WebhookEntity::PromptAlias,
                WebhookEntity::ModelVersionAlias,
            );
            Some((entity, WebhookAction::Created, data))
        });
    }

    /// For a prompt the model is looked up after the alias went, as MLflow does.
    pub fn alias_deleted(state: &AppState, name: &str, alias: &str) {
        let data = json!({ "name": name, "alias": alias });
        emit_for(state, name, move |prompt| {
            let entity = pick(
                prompt,
                WebhookEntity::PromptAlias,
                WebhookEntity::ModelVersionAlias,
            );
            Some((entity, WebhookAction::Deleted, data))
        });
    }
}
