//! MLflow 3's logged-models API, which `mlflow.<flavor>.log_model` calls.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wasmflow_core::entities::{LoggedModelStatus, Param, Tag};
use wasmflow_core::search::{self, Entity, OrderBy};
use wasmflow_core::validation as v;
use wasmflow_store::{DatasetFilter, LoggedModelSearch, NewLoggedModel};

use crate::error::ApiResult;
use crate::request::Message;
use crate::response::{One, Paged};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search_models))
        .route(
            "/logged-models/{model_id}",
            get(get_model).patch(finalize).delete(delete_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            axum::routing::patch(set_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(delete_tag),
        )
        .route("/logged-models/{model_id}/params", post(log_params))
}

#[derive(Deserialize)]
struct Create {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<Param>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create(
    State(state): State<AppState>,
    Message(req): Message<Create>,
) -> ApiResult<impl IntoResponse> {
    let experiment_id = req
        .experiment_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::request::missing_param("experiment_id"))?;
    v::parse_experiment_id(&experiment_id)?;
    if let Some(name) = &req.name {
        v::validate_key("name", name)?;
    }
    for (i, p) in req.params.iter().enumerate() {
        v::validate_param(p, &format!("params[{i}]"))?;
    }
    for (i, t) in req.tags.iter().enumerate() {
        v::validate_tag(t, &format!("tags[{i}]"))?;
    }
    if let Some(run_id) = req.source_run_id.as_deref().filter(|s| !s.is_empty()) {
        v::validate_run_id(run_id, "source_run_id")?;
    }
    let new = NewLoggedModel {
        experiment_id,
        name: req.name,
        model_type: req.model_type,
        source_run_id: req.source_run_id,
        params: req.params,
        tags: req.tags,
    };
    let model = state.store(move |s| s.create_logged_model(new)).await?;
    Ok(Json(One("model", model)))
}

async fn get_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let model = state.store(move |s| s.get_logged_model(&model_id)).await?;
    Ok(Json(One("model", model)))
}

#[derive(Deserialize)]
struct Finalize {
    status: Option<Value>,
}

async fn finalize(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Message(req): Message<Finalize>,
) -> ApiResult<impl IntoResponse> {
    let status = match req.status {
        Some(Value::String(s)) => LoggedModelStatus::parse(&s)?,
        Some(Value::Number(n)) => LoggedModelStatus::parse(&n.to_string())?,
        _ => {
            return Err(crate::request::missing_param("status"));
        }
    };
    let model = state
        .store(move |s| s.set_logged_model_status(&model_id, status))
        .await?;
    Ok(Json(One("model", model)))
}

async fn delete_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .store(move |s| s.delete_logged_model(&model_id))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn set_tags(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Message(req): Message<Tags>,
) -> ApiResult<Json<Value>> {
    for (i, t) in req.tags.iter().enumerate() {
        v::validate_tag(t, &format!("tags[{i}]"))?;
    }
    state
        .store(move |s| s.set_logged_model_tags(&model_id, req.tags))
        .await?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(state): State<AppState>,
    Path((model_id, tag_key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state
        .store(move |s| s.delete_logged_model_tag(&model_id, &tag_key))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    params: Vec<Param>,
}

async fn log_params(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Message(req): Message<Params>,
) -> ApiResult<Json<Value>> {
    for (i, p) in req.params.iter().enumerate() {
        v::validate_param(p, &format!("params[{i}]"))?;
    }
    state
        .store(move |s| s.log_logged_model_params(&model_id, req.params))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct OrderField {
    field_name: String,
    #[serde(default = "yes")]
    ascending: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderField>,
    page_token: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetRef>,
}

#[derive(Deserialize)]
struct DatasetRef {
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

async fn search_models(
    State(state): State<AppState>,
    Message(req): Message<Search>,
) -> ApiResult<impl IntoResponse> {
    if req.experiment_ids.is_empty() {
        return Err(crate::request::missing_param("experiment_ids"));
    }
    let order_by = req
        .order_by
        .into_iter()
        .map(|o| match o.field_name.split_once('.') {
            Some(("metrics", key)) => OrderBy {
                entity: Entity::Metric,
                key: key.to_string(),
                ascending: o.ascending,
            },
            _ => OrderBy {
                entity: Entity::Attribute,
                key: o.field_name,
                ascending: o.ascending,
            },
        })
        .collect();
    let search = LoggedModelSearch {
        experiment_ids: req.experiment_ids,
        filter: search::parse_logged_model_filter(req.filter.as_deref().unwrap_or(""))?,
        order_by,
        max_results: match req.max_results {
            None => 100,
            Some(n) => v::validate_max_results(n, v::SEARCH_MAX_RESULTS_THRESHOLD)?,
        },
        page_token: req.page_token,
        // As MLflow's handler: an empty digest is no digest.
        datasets: req
            .datasets
            .into_iter()
            .map(|d| DatasetFilter {
                name: d.dataset_name.unwrap_or_default(),
                digest: d.dataset_digest.filter(|s| !s.is_empty()),
            })
            .collect(),
    };
    let page = state
        .store(move |s| s.search_logged_models(&search))
        .await?;
    Ok(Json(Paged("models", page)))
}
