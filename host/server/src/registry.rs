//! MLflow's model registry API (`model_registry.proto`): registered models, versions, stages,
//! tags and aliases; plus two wasmflow endpoints, the registry's event log and `models:/` URI
//! resolution.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use wasmflow_core::entities::Tag;
use wasmflow_core::paging::Page;
use wasmflow_core::search;
use wasmflow_store::RegistryStore;
use wasmflow_store::registry::{
    self as reg, NewModelVersion, RegistrySearch, SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
    SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD, SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
    SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD, Stage,
};

use crate::error::{ApiError, ApiResult};
use crate::request::{body_to_json, from_json, query_to_json};
use crate::state::AppState;
use crate::webhooks::events as webhook_events;

/// The registry under `/api/2.0/mlflow` (and `/ajax-api/2.0/mlflow`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/rename", post(rename_model))
        .route("/registered-models/update", patch(update_model))
        .route(
            "/registered-models/delete",
            axum::routing::delete(delete_model),
        )
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/search", get(search_models))
        .route(
            "/registered-models/get-latest-versions",
            get(latest_versions).post(latest_versions),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(delete_model_tag),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).get(get_by_alias).delete(delete_alias),
        )
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/update", patch(update_version))
        .route("/model-versions/transition-stage", post(transition_stage))
        .route(
            "/model-versions/delete",
            axum::routing::delete(delete_version),
        )
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/get-download-uri", get(download_uri))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(delete_version_tag),
        )
}

/// wasmflow's own endpoints for the UI and for serving: registry events, model URI resolution
/// and run counts.
pub fn wasmflow_router() -> Router<AppState> {
    let api = || {
        Router::new()
            .route("/registry/events", get(events))
            .route("/models/resolve", get(resolve))
            .route("/experiments/run-counts", get(crate::tracking::run_counts))
    };
    Router::new()
        .nest("/api/2.0/wasmflow", api())
        .nest("/ajax-api/2.0/wasmflow", api())
}

/// Runs a registry call off the async runtime.
async fn registry<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn RegistryStore) -> wasmflow_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    state.registry_call(f).await
}

/// A registry request: the message (query string for GET; JSON body otherwise, where the
/// client also sends DELETE's message, else the query string) and who sent it.
struct Req<T> {
    user: String,
    msg: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Req<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let user = user_of(req.headers());
        let query = req.uri().query().unwrap_or("").to_string();
        let value = if req.method() == Method::GET {
            query_to_json(&query)
        } else {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::invalid(format!("cannot read the request body: {e}")))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                query_to_json(&query)
            } else {
                body_to_json(&bytes)?
            }
        };
        Ok(Req {
            user,
            msg: from_json(value)?,
        })
    }
}

/// The acting user for the event log: `X-Wasmflow-User`, else the user of HTTP basic auth
/// (what `MLFLOW_TRACKING_USERNAME` sends), else unknown.
fn user_of(headers: &HeaderMap) -> String {
    if let Some(user) = headers.get("x-wasmflow-user").and_then(|v| v.to_str().ok()) {
        return user.trim().to_string();
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(u, _)| u.to_string()))
        .unwrap_or_default()
}

/// A proto string field that some clients send as a number (versions).
fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, got '{other}'"
            )));
        }
    })
}

/// A repeated string: a list in JSON, one value or a repeated key in a query string.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Strings {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Strings {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// A request's tags as (key, value) pairs, for the webhook payloads.
fn tag_pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// MLflow's `_is_prompt_request`: the last `mlflow.prompt.is_prompt` tag says "true".
fn is_prompt_request(tags: &[(String, String)]) -> bool {
    tags.iter()
        .rev()
        .find(|(k, _)| k == webhook_events::IS_PROMPT)
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::request::missing_param(name))
}

fn version_of(value: Option<String>) -> ApiResult<i64> {
    Ok(reg::parse_version(&required(value, "version")?)?)
}

#[derive(Deserialize)]
struct NameOnly {
    name: Option<String>,
}

// ---- registered models ----

#[derive(Deserialize)]
struct CreateModel {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    description: Option<String>,
}

async fn create_model(
    State(state): State<AppState>,
    req: Req<CreateModel>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let (tags, description, user) = (req.msg.tags, req.msg.description, req.user);
    let hook_tags = tag_pairs(&tags);
    let hook_description = description.clone().unwrap_or_default();
    let model = registry(&state, {
        let name = name.clone();
        move |r| r.create_registered_model(&user, &name, tags, description)
    })
    .await?;
    let prompt = is_prompt_request(&hook_tags);
    webhook_events::model_created(&state, &name, &hook_tags, &hook_description, prompt);
    Ok(Json(json!({ "registered_model": model })))
}

#[derive(Deserialize)]
struct RenameModel {
    name: Option<String>,
    new_name: Option<String>,
}

async fn rename_model(
    State(state): State<AppState>,
    req: Req<RenameModel>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let new_name = required(req.msg.new_name, "new_name")?;
    let user = req.user;
    let model = registry(&state, move |r| {
        r.rename_registered_model(&user, &name, &new_name)
    })
    .await?;
    Ok(Json(json!({ "registered_model": model })))
}

#[derive(Deserialize)]
struct UpdateModel {
    name: Option<String>,
    description: Option<String>,
}

async fn update_model(
    State(state): State<AppState>,
    req: Req<UpdateModel>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let (description, user) = (req.msg.description, req.user);
    let model = registry(&state, move |r| {
        r.update_registered_model(&user, &name, description)
    })
    .await?;
    Ok(Json(json!({ "registered_model": model })))
}

async fn delete_model(State(state): State<AppState>, req: Req<NameOnly>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let user = req.user;
    registry(&state, move |r| r.delete_registered_model(&user, &name)).await?;
    Ok(Json(json!({})))
}

async fn get_model(State(state): State<AppState>, req: Req<NameOnly>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let model = registry(&state, move |r| r.get_registered_model(&name)).await?;
    Ok(Json(json!({ "registered_model": model })))
}

#[derive(Deserialize)]
struct Search {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    max_results: Option<String>,
    #[serde(default)]
    order_by: Strings,
    page_token: Option<String>,
}

impl Search {
    /// The store's query: registered models and versions take the same request fields, each
    /// with its own filter grammar, order-by keys and result limits.
    fn into_query(
        self,
        parse_filter: fn(&str) -> wasmflow_core::Result<Vec<search::Comparison>>,
        parse_order_by: fn(&str) -> wasmflow_core::Result<search::OrderBy>,
        default_max_results: usize,
        max_results_limit: usize,
    ) -> ApiResult<RegistrySearch> {
        Ok(RegistrySearch {
            filter: parse_filter(self.filter.as_deref().unwrap_or(""))?,
            order_by: self
                .order_by
                .into_vec()
                .iter()
                .map(|o| parse_order_by(o))
                .collect::<Result<_, _>>()?,
            max_results: max_results(self.max_results, default_max_results, max_results_limit)?,
            page_token: self.page_token,
        })
    }
}

/// A search answer as MLflow writes it: the items' key is left out when there are none.
fn page_json<T: serde::Serialize>(items_key: &str, page: Page<T>) -> Json<Value> {
    let mut body = json!({});
    if !page.items.is_empty() {
        body[items_key] = json!(page.items);
    }
    if let Some(token) = page.next_page_token {
        body["next_page_token"] = json!(token);
    }
    Json(body)
}

/// A registry search's `max_results` (a query parameter, so text). MLflow's request schema
/// refuses one past the limit in the words of a wrongly typed parameter, the value as text.
fn max_results(value: Option<String>, default: usize, limit: usize) -> ApiResult<usize> {
    let Some(text) = value.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let n: i64 = text.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "Invalid value '{text}' for parameter 'max_results' supplied."
        ))
    })?;
    if n < 1 {
        return Err(ApiError::invalid(format!(
            "Invalid value for max_results. It must be a positive integer, but got {n}"
        )));
    }
    if n as u64 > limit as u64 {
        return Err(crate::request::invalid_param_type(
            "max_results",
            &Value::String(text),
        ));
    }
    Ok(n as usize)
}

async fn search_models(State(state): State<AppState>, req: Req<Search>) -> ApiResult<Json<Value>> {
    let search = req.msg.into_query(
        search::parse_registered_model_filter,
        search::parse_registered_model_order_by,
        SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
        SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
    )?;
    let page = registry(&state, move |r| r.search_registered_models(&search)).await?;
    Ok(page_json("registered_models", page))
}

#[derive(Deserialize)]
struct LatestVersions {
    name: Option<String>,
    #[serde(default)]
    stages: Strings,
}

async fn latest_versions(
    State(state): State<AppState>,
    req: Req<LatestVersions>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let stages = req
        .msg
        .stages
        .into_vec()
        .iter()
        .map(|s| Stage::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let versions = registry(&state, move |r| r.get_latest_versions(&name, &stages)).await?;
    Ok(Json(if versions.is_empty() {
        json!({})
    } else {
        json!({ "model_versions": versions })
    }))
}

#[derive(Deserialize)]
struct SetTag {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    version: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn set_model_tag(State(state): State<AppState>, req: Req<SetTag>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let tag = Tag {
        key: required(req.msg.key, "key")?,
        value: req.msg.value.unwrap_or_default(),
    };
    let user = req.user;
    let (hook_name, hook_tag) = (name.clone(), tag.clone());
    registry(&state, move |r| {
        r.set_registered_model_tag(&user, &name, tag)
    })
    .await?;
    webhook_events::model_tag_set(&state, &hook_name, &hook_tag.key, &hook_tag.value);
    Ok(Json(json!({})))
}

async fn delete_model_tag(
    State(state): State<AppState>,
    req: Req<SetTag>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let key = required(req.msg.key, "key")?;
    let user = req.user;
    let (hook_name, hook_key) = (name.clone(), key.clone());
    registry(&state, move |r| {
        r.delete_registered_model_tag(&user, &name, &key)
    })
    .await?;
    webhook_events::model_tag_deleted(&state, &hook_name, &hook_key);
    Ok(Json(json!({})))
}

// ---- aliases ----

#[derive(Deserialize)]
struct Alias {
    name: Option<String>,
    alias: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    version: Option<String>,
}

async fn set_alias(State(state): State<AppState>, req: Req<Alias>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let alias = required(req.msg.alias, "alias")?;
    let sent_version = req.msg.version.clone().unwrap_or_default();
    let version = version_of(req.msg.version)?;
    let user = req.user;
    let (hook_name, hook_alias) = (name.clone(), alias.clone());
    registry(&state, move |r| {
        r.set_registered_model_alias(&user, &name, &alias, version)
    })
    .await?;
    webhook_events::alias_created(&state, &hook_name, &hook_alias, &sent_version);
    Ok(Json(json!({})))
}

async fn get_by_alias(State(state): State<AppState>, req: Req<Alias>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let alias = required(req.msg.alias, "alias")?;
    let version = registry(&state, move |r| r.get_model_version_by_alias(&name, &alias)).await?;
    Ok(Json(json!({ "model_version": version })))
}

async fn delete_alias(State(state): State<AppState>, req: Req<Alias>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let alias = required(req.msg.alias, "alias")?;
    let user = req.user;
    let (hook_name, hook_alias) = (name.clone(), alias.clone());
    registry(&state, move |r| {
        r.delete_registered_model_alias(&user, &name, &alias)
    })
    .await?;
    webhook_events::alias_deleted(&state, &hook_name, &hook_alias);
    Ok(Json(json!({})))
}

// ---- model versions ----

#[derive(Deserialize)]
struct CreateVersion {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}

async fn create_version(
    State(state): State<AppState>,
    req: Req<CreateVersion>,
) -> ApiResult<Json<Value>> {
    let m = req.msg;
    let new = NewModelVersion {
        name: required(m.name, "name")?,
        source: required(m.source, "source")?,
        run_id: m.run_id,
        model_id: m.model_id,
        run_link: m.run_link,
        description: m.description,
        tags: m.tags,
    };
    let user = req.user;
    let hook_tags = tag_pairs(&new.tags);
    let hook_description = new.description.clone();
    let version = registry(&state, move |r| r.create_model_version(&user, new)).await?;
    webhook_events::version_created(
        &state,
        webhook_events::VersionCreated {
            name: &version.name,
            version: version.version,
            source: &version.source,
            run_id: Some(version.run_id.as_str()),
            tags: &hook_tags,
            description: hook_description.as_deref(),
            prompt: is_prompt_request(&hook_tags),
        },
    );
    Ok(Json(json!({ "model_version": version })))
}

#[derive(Deserialize)]
struct VersionRef {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    version: Option<String>,
    description: Option<String>,
}

async fn get_version(
    State(state): State<AppState>,
    req: Req<VersionRef>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = version_of(req.msg.version)?;
    let mv = registry(&state, move |r| r.get_model_version(&name, version)).await?;
    Ok(Json(json!({ "model_version": mv })))
}

async fn update_version(
    State(state): State<AppState>,
    req: Req<VersionRef>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = version_of(req.msg.version)?;
    let (description, user) = (req.msg.description, req.user);
    let mv = registry(&state, move |r| {
        r.update_model_version(&user, &name, version, description)
    })
    .await?;
    Ok(Json(json!({ "model_version": mv })))
}

async fn delete_version(
    State(state): State<AppState>,
    req: Req<VersionRef>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = version_of(req.msg.version)?;
    let user = req.user;
    registry(&state, move |r| {
        r.delete_model_version(&user, &name, version)
    })
    .await?;
    Ok(Json(json!({})))
}

async fn download_uri(
    State(state): State<AppState>,
    req: Req<VersionRef>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = version_of(req.msg.version)?;
    let uri = registry(&state, move |r| {
        r.get_model_version_download_uri(&name, version)
    })
    .await?;
    Ok(Json(json!({ "artifact_uri": uri })))
}

/// A bool as JSON or as a query-string word.
fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a boolean, got '{other}'"
            )));
        }
    })
}

#[derive(Deserialize)]
struct Transition {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    version: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    archive_existing_versions: Option<bool>,
}

async fn transition_stage(
    State(state): State<AppState>,
    req: Req<Transition>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = version_of(req.msg.version)?;
    let stage = Stage::parse(&required(req.msg.stage, "stage")?)?;
    let archive = req.msg.archive_existing_versions.unwrap_or(false);
    let user = req.user;
    let mv = registry(&state, move |r| {
        r.transition_model_version_stage(&user, &name, version, stage, archive)
    })
    .await?;
    Ok(Json(json!({ "model_version": mv })))
}

async fn search_versions(
    State(state): State<AppState>,
    req: Req<Search>,
) -> ApiResult<Json<Value>> {
    let search = req.msg.into_query(
        search::parse_model_version_filter,
        search::parse_model_version_order_by,
        SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
        SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    )?;
    let page = registry(&state, move |r| r.search_model_versions(&search)).await?;
    Ok(page_json("model_versions", page))
}

async fn set_version_tag(
    State(state): State<AppState>,
    req: Req<SetTag>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let sent_version = req.msg.version.clone().unwrap_or_default();
    let version = version_of(req.msg.version)?;
    let tag = Tag {
        key: required(req.msg.key, "key")?,
        value: req.msg.value.unwrap_or_default(),
    };
    let user = req.user;
    let (hook_name, hook_tag) = (name.clone(), tag.clone());
    registry(&state, move |r| {
        r.set_model_version_tag(&user, &name, version, tag)
    })
    .await?;
    webhook_events::version_tag_set(
        &state,
        &hook_name,
        &sent_version,
        &hook_tag.key,
        &hook_tag.value,
    );
    Ok(Json(json!({})))
}

async fn delete_version_tag(
    State(state): State<AppState>,
    req: Req<SetTag>,
) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let sent_version = req.msg.version.clone().unwrap_or_default();
    let version = version_of(req.msg.version)?;
    let key = required(req.msg.key, "key")?;
    let user = req.user;
    let (hook_name, hook_key) = (name.clone(), key.clone());
    registry(&state, move |r| {
        r.delete_model_version_tag(&user, &name, version, &key)
    })
    .await?;
    webhook_events::version_tag_deleted(&state, &hook_name, &sent_version, &hook_key);
    Ok(Json(json!({})))
}

// ---- wasmflow endpoints ----

async fn events(State(state): State<AppState>, req: Req<VersionRef>) -> ApiResult<Json<Value>> {
    let name = required(req.msg.name, "name")?;
    let version = match req.msg.version.filter(|v| !v.is_empty()) {
        Some(v) => Some(reg::parse_version(&v)?),
        None => None,
    };
    let events = registry(&state, move |r| r.registry_events(&name, version)).await?;
    Ok(Json(json!({ "events": events })))
}

#[derive(Deserialize)]
struct Resolve {
    uri: Option<String>,
}

async fn resolve(State(state): State<AppState>, req: Req<Resolve>) -> ApiResult<Json<Value>> {
    let uri = required(req.msg.uri, "uri")?;
    let resolved = registry(&state, move |r| r.resolve_model_uri(&uri)).await?;
    Ok(Json(json!(resolved)))
}
