//! MLflow 3's tracing API (`service.proto`'s trace messages, `assessments.proto`) and
//! OpenTelemetry's OTLP/HTTP trace ingestion at `/v1/traces`, over [`TraceStore`].
//!
//! The MLflow client sends each finished span over OTLP (`/v1/traces`, with the experiment in
//! `x-mlflow-experiment-id`), then the trace's record with `StartTraceV3`. Spans kept here mark
//! the trace `mlflow.trace.spansLocation = TRACKING_STORE`, so the client reads them back with
//! `GET /traces/get` and `batchGet` instead of downloading `traces.json` from the artifacts.

mod prices;
pub mod retention;
#[cfg(test)]
mod span_text_tests;
mod translate;
pub mod wire;

use std::io::Read as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Value, json};
use wasmflow_core::entities::LifecycleStage;
use wasmflow_core::{Error, ErrorCode};
use wasmflow_store::traces::{
    ARTIFACT_LOCATION_TAG, AssessmentUpdate, SERVER_TAGS, SPANS_IN_STORE, SPANS_LOCATION_TAG,
    TraceDeletion, TraceEnd, TraceInfo, TraceSearch, parse_trace_filter, parse_trace_order_by,
    trace_artifact_folder, validate_trace_id,
};

use crate::error::{ApiError, ApiResult};
use crate::request::{Message, missing_param, query_to_json};
use crate::state::AppState;

/// MLflow's `SEARCH_TRACES_DEFAULT_MAX_RESULTS`, and the most one page may hold.
const DEFAULT_MAX_RESULTS: usize = 100;
const MAX_RESULTS: usize = 500;

/// The v2 and v3 routes under `/api/{2.0,3.0}/mlflow` (mounted by `app.rs`).
pub fn router_v3() -> Router<AppState> {
    Router::new()
        .route("/traces", post(start_trace))
        .route("/traces/get", get(get_trace))
        .route("/traces/batchGet", get(batch_get))
        .route("/traces/batchGetInfos", post(batch_get_infos))
        .route("/traces/search", post(search_v3))
        .route("/traces/delete-traces", post(delete_traces))
        .route("/traces/metrics", post(query_metrics))
        .route(
            "/traces/calculate-filter-correlation",
            post(filter_correlation),
        )
        .route("/traces/{trace_id}", get(get_trace_info))
        .route("/traces/{trace_id}/tags", patch(set_tag).delete(delete_tag))
        .route("/traces/{trace_id}/assessments", post(create_assessment))
        .route(
            "/traces/{trace_id}/assessments/{assessment_id}",
            get(get_assessment)
                .patch(update_assessment)
                .delete(delete_assessment),
        )
}

pub fn router_v2() -> Router<AppState> {
    Router::new()
        .route("/traces", get(search_v2).post(start_trace_v2))
        .route("/traces/{trace_id}", patch(end_trace_v2))
        .route("/traces/link-prompts", post(link_prompts))
        .route("/traces/delete-traces", post(delete_traces))
        .route("/traces/link-to-run", post(link_to_run))
        .route("/traces/{trace_id}/info", get(get_trace_info_v2))
        .route("/traces/{trace_id}/tags", patch(set_tag).delete(delete_tag))
}

/// `/v1/traces` (OTLP/HTTP) and the UI's `/get-trace-artifact`.
pub fn root_router() -> Router<AppState> {
    Router::new()
        .route("/v1/traces", post(otlp_export))
        .route(
            "/api/2.0/mlflow/get-trace-artifact",
            get(get_trace_artifact),
        )
        .route(
            "/ajax-api/2.0/mlflow/get-trace-artifact",
            get(get_trace_artifact),
        )
        .route(
            "/ajax-api/3.0/mlflow/get-trace-artifact",
            get(get_trace_artifact),
        )
}

/// A trace's artifact folder under its experiment's artifact root (`mlflow.artifactLocation`).
fn artifact_location(experiment_root: &str, trace_id: &str) -> String {
    format!(
        "{}/{}",
        experiment_root.trim_end_matches('/'),
        trace_artifact_folder(trace_id)
    )
}

/// The experiment a trace goes to: it must exist and be active, as MLflow checks.
async fn active_experiment(state: &AppState, experiment_id: String) -> ApiResult<String> {
    let experiment = state
        .store(move |s| s.get_experiment(&experiment_id))
        .await?;
    if experiment.lifecycle_stage != LifecycleStage::Active {
        return Err(ApiError::invalid(format!(
            "The experiment {} must be in the 'active' state. Current state: deleted.",
            experiment.experiment_id
        )));
    }
    Ok(experiment.artifact_location)
}

#[derive(Deserialize)]
struct StartTrace {
    trace: Option<Value>,
}

async fn start_trace(
    State(state): State<AppState>,
    Message(req): Message<StartTrace>,
) -> ApiResult<Json<Value>> {
    let info = req
        .trace
        .as_ref()
        .and_then(|t| t.get("trace_info"))
        .ok_or_else(|| missing_param("trace"))?;
    let mut info = wire::trace_info_from_json(info)?;
    validate_trace_id(&info.trace_id)?;
    for key in info.tags.keys().chain(info.trace_metadata.keys()) {
        wasmflow_core::validation::validate_key("key", key)?;
    }
    // The server alone says where a trace's files are (it reads them from there).
    info.tags.remove(ARTIFACT_LOCATION_TAG);
    let root = active_experiment(&state, info.experiment_id.clone()).await?;
    let location = artifact_location(&root, &info.trace_id);
    info.assessments.retain(Value::is_object);
    for a in &mut info.assessments {
        prepare_assessment(a, &info.trace_id);
    }
    let saved = state
        .traces_call(move |traces| traces.start_trace(info, location))
        .await?;
    Ok(Json(
        json!({"trace": {"trace_info": wire::trace_info_json(&saved)}}),
    ))
}

async fn get_trace_info(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = state
        .traces_call(move |traces| traces.get_trace_info(&trace_id))
        .await?;
    Ok(Json(
        json!({"trace": {"trace_info": wire::trace_info_json(&info)}}),
    ))
}

async fn get_trace_info_v2(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = state
        .traces_call(move |traces| traces.get_trace_info(&trace_id))
        .await?;
    Ok(Json(json!({"trace_info": wire::trace_info_v2_json(&info)})))
}

/// Whole traces (info and spans) as MLflow's `Trace` messages, in the order of `infos`.
async fn full_traces(state: &AppState, infos: Vec<TraceInfo>) -> ApiResult<Vec<Value>> {
    let ids: Vec<String> = infos.iter().map(|i| i.trace_id.clone()).collect();
    let spans = state
        .traces_call(move |traces| traces.get_spans(&ids))
        .await?;
    let mut by_trace: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for s in spans {
        by_trace
            .entry(s.trace_id)
            .or_default()
            .push(wire::span_json(&s.body)?);
    }
    Ok(infos
        .into_iter()
        .map(|info| {
            let spans = by_trace.remove(&info.trace_id).unwrap_or_default();
            json!({"trace_info": wire::trace_info_json(&info), "spans": spans})
        })
        .collect())
}

async fn get_trace(State(state): State<AppState>, uri: axum::http::Uri) -> ApiResult<Json<Value>> {
    let q = query_to_json(uri.query().unwrap_or(""));
    let trace_id = q
        .get("trace_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_param("trace_id"))?
        .to_string();
    let info = state
        .traces_call(move |traces| traces.get_trace_info(&trace_id))
        .await?;
    let mut found = full_traces(&state, vec![info]).await?;
    Ok(Json(json!({"trace": found.remove(0)})))
}

/// A repeated query parameter (one value arrives as a string).
fn query_list(q: &Value, name: &str) -> Vec<String> {
    match q.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

async fn batch_get(State(state): State<AppState>, uri: axum::http::Uri) -> ApiResult<Json<Value>> {
    let q = query_to_json(uri.query().unwrap_or(""));
    let ids = query_list(&q, "trace_ids");
    let infos = state
        .traces_call(move |traces| traces.get_trace_infos(&ids))
        .await?;
    Ok(Json(json!({"traces": full_traces(&state, infos).await?})))
}

#[derive(Deserialize)]
struct BatchGetInfos {
    #[serde(default)]
    trace_ids: Vec<String>,
}

async fn batch_get_infos(
    State(state): State<AppState>,
    Message(req): Message<BatchGetInfos>,
) -> ApiResult<Json<Value>> {
    let infos = state
        .traces_call(move |traces| traces.get_trace_infos(&req.trace_ids))
        .await?;
    let infos: Vec<Value> = infos.iter().map(wire::trace_info_json).collect();
    Ok(Json(json!({"trace_infos": infos})))
}

fn build_search(
    experiment_ids: Vec<String>,
    filter: Option<&str>,
    order_by: &[String],
    max_results: Option<i64>,
    page_token: Option<String>,
) -> ApiResult<TraceSearch> {
    let max_results = match max_results {
        None => DEFAULT_MAX_RESULTS,
        Some(n) if n >= 1 && n as usize <= MAX_RESULTS => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be between 1 \
                 and {MAX_RESULTS}."
            )));
        }
    };
    Ok(TraceSearch {
        experiment_ids,
        filter: parse_trace_filter(filter.unwrap_or(""))?,
        order_by: order_by
            .iter()
            .map(|o| parse_trace_order_by(o))
            .collect::<wasmflow_core::Result<_>>()?,
        max_results,
        page_token,
    })
}

#[derive(Deserialize)]
struct SearchV3 {
    #[serde(default)]
    locations: Vec<Value>,
    filter: Option<String>,
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

async fn run_search(
    state: &AppState,
    search: TraceSearch,
) -> ApiResult<(Vec<TraceInfo>, Option<String>)> {
    let page = state
        .traces_call(move |traces| traces.search_traces(&search))
        .await?;
    Ok((page.items, page.next_page_token))
}

async fn search_v3(
    State(state): State<AppState>,
    Message(req): Message<SearchV3>,
) -> ApiResult<Response> {
    let mut ids = Vec::new();
    for loc in &req.locations {
        match loc
            .pointer("/mlflow_experiment/experiment_id")
            .and_then(Value::as_str)
        {
            Some(id) => ids.push(id.to_string()),
            None => {
                return Err(ApiError::invalid(format!(
                    "unsupported trace location {loc}: only MLflow experiments are"
                )));
            }
        }
    }
    let search = build_search(
        ids,
        req.filter.as_deref(),
        &req.order_by,
        req.max_results,
        req.page_token,
    )?;
    let (infos, token) = run_search(&state, search).await?;
    #[derive(serde::Serialize)]
    struct Page<'a> {
        traces: Vec<wire::TraceInfoJson<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    Ok(Json(Page {
        traces: infos.iter().map(wire::TraceInfoJson).collect(),
        next_page_token: token,
    })
    .into_response())
}

async fn search_v2(State(state): State<AppState>, uri: axum::http::Uri) -> ApiResult<Json<Value>> {
    let q = query_to_json(uri.query().unwrap_or(""));
    let max_results = match q.get("max_results").and_then(Value::as_str) {
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("Invalid value '{s}' for parameter 'max_results'"))
        })?),
        None => None,
    };
    let search = build_search(
        query_list(&q, "experiment_ids"),
        q.get("filter").and_then(Value::as_str),
        &query_list(&q, "order_by"),
        max_results,
        q.get("page_token")
            .and_then(Value::as_str)
            .map(str::to_string),
    )?;
    let (infos, token) = run_search(&state, search).await?;
    let mut body =
        json!({"traces": infos.iter().map(wire::trace_info_v2_json).collect::<Vec<_>>()});
    if let Some(t) = token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct DeleteTraces {
    experiment_id: Option<String>,
    max_timestamp_millis: Option<Value>,
    max_traces: Option<i64>,
    #[serde(default)]
    request_ids: Vec<String>,
}

async fn delete_traces(
    State(state): State<AppState>,
    Message(req): Message<DeleteTraces>,
) -> ApiResult<Json<Value>> {
    let experiment_id = crate::request::required(req.experiment_id, "experiment_id")?;
    let max_timestamp_millis = match &req.max_timestamp_millis {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => Some(s.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("Invalid value '{s}' for 'max_timestamp_millis'"))
        })?),
        Some(other) => {
            return Err(crate::request::invalid_param_type(
                "max_timestamp_millis",
                other,
            ));
        }
    };
    // MLflow's rule: either an age (with an optional count) or ids, never both or neither.
    if max_timestamp_millis.is_some() != req.request_ids.is_empty() {
        return Err(ApiError::invalid(
            "Exactly one of 'max_timestamp_millis' and 'request_ids' must be specified.",
        ));
    }
    if req.max_traces.is_some() && max_timestamp_millis.is_none() {
        return Err(ApiError::invalid(
            "'max_traces' can't be specified if 'max_timestamp_millis' is not specified.",
        ));
    }
    if let Some(n) = req.max_traces
        && n <= 0
    {
        return Err(ApiError::invalid(format!(
            "'max_traces' must be a positive integer, got {n}"
        )));
    }
    let deletion = TraceDeletion {
        experiment_id,
        trace_ids: req.request_ids,
        max_timestamp_millis,
        max_traces: req.max_traces.map(|n| n as usize),
    };
    let deleted = state
        .traces_call(move |traces| traces.delete_traces(&deletion))
        .await?;
    Ok(Json(json!({"traces_deleted": deleted.len()})))
}

/// Tags only the server writes (MLflow's `_validate_trace_tag_handler_mutation`).
fn refuse_server_tag(key: &str, operation: &str) -> ApiResult<()> {
    if SERVER_TAGS.contains(&key) {
        return Err(ApiError::invalid(format!(
            "Tag '{key}' is immutable and cannot be {operation} on a trace."
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct SetTag {
    key: Option<String>,
    value: Option<String>,
}

async fn set_tag(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Message(req): Message<SetTag>,
) -> ApiResult<Json<Value>> {
    let key = crate::request::required(req.key, "key")?;
    wasmflow_core::validation::validate_key("key", &key)?;
    refuse_server_tag(&key, "set")?;
    let value = req.value.unwrap_or_default();
    state
        .traces_call(move |traces| traces.set_trace_tag(&trace_id, &key, &value))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeleteTag {
    key: Option<String>,
}

/// MLflow's client sends a DELETE's message as a JSON body; other clients put it in the query.
async fn delete_tag(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let mut message = query_to_json(uri.query().unwrap_or(""));
    if let Value::Object(fields) = crate::request::body_to_json(&body)?
        && let Some(m) = message.as_object_mut()
    {
        m.extend(fields);
    }
    let req: DeleteTag = crate::request::from_json(message)?;
    let key = crate::request::required(req.key, "key")?;
    // MLflow lets a failed archival's marker be deleted, to retry; the others stay.
    if key != "mlflow.trace.archivalFailure" {
        refuse_server_tag(&key, "deleted")?;
    }
    state
        .traces_call(move |traces| traces.delete_trace_tag(&trace_id, &key))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LinkToRun {
    #[serde(default)]
    trace_ids: Vec<String>,
    run_id: Option<String>,
}

async fn link_to_run(
    State(state): State<AppState>,
    Message(req): Message<LinkToRun>,
) -> ApiResult<Json<Value>> {
    let run_id = crate::request::required(req.run_id, "run_id")?;
    // MLflow's `_MAX_TRACES_TO_LINK`.
    if req.trace_ids.len() > 100 {
        return Err(ApiError::invalid(format!(
            "Cannot link more than 100 traces to a run in a single request. Provided {} traces.",
            req.trace_ids.len()
        )));
    }
    let run = run_id.clone();
    state.store(move |s| s.get_run(&run)).await?;
    state
        .traces_call(move |traces| traces.link_traces_to_run(&req.trace_ids, &run_id))
        .await?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------------
// The v2 API's `StartTrace` / `EndTrace` (MLflow still serves them, deprecated) and
// `LinkPromptsToTrace`.

/// A repeated `{key, value}` message field as a map.
fn key_value_list(
    v: Option<&Value>,
    field: &str,
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let key = item
                    .get("key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| missing_param(&format!("{field}.key")))?;
                wasmflow_core::validation::validate_key("key", key)?;
                let value = match item.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => return Err(crate::request::invalid_param_type(field, other)),
                };
                out.insert(key.to_string(), value);
            }
        }
        Some(other) => return Err(crate::request::invalid_param_type(field, other)),
    }
    Ok(out)
}

/// An int64 message field (a number, or a string as protobuf's JSON mapping writes it).
fn int_field(v: Option<&Value>, field: &str) -> ApiResult<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| crate::request::invalid_param_type(field, &json!(n))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| crate::request::invalid_param_type(field, &json!(s))),
        Some(other) => Err(crate::request::invalid_param_type(field, other)),
    }
}

/// `POST /api/2.0/mlflow/traces` (`StartTrace`): a new in-progress trace with a server-made id.
async fn start_trace_v2(
    State(state): State<AppState>,
    Message(req): Message<Value>,
) -> ApiResult<Json<Value>> {
    let experiment_id = match req.get("experiment_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(missing_param("experiment_id")),
    };
    let request_time = int_field(req.get("timestamp_ms"), "timestamp_ms")?.unwrap_or(0);
    let mut tags = key_value_list(req.get("tags"), "tags")?;
    let trace_metadata = key_value_list(req.get("request_metadata"), "request_metadata")?;
    tags.remove(ARTIFACT_LOCATION_TAG);
    let root = active_experiment(&state, experiment_id.clone()).await?;
    // MLflow's v2 request ids are bare random UUIDs (`generate_request_id_v2`).
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let info = TraceInfo {
        trace_id: trace_id.clone(),
        experiment_id,
        request_time,
        execution_duration: None,
        state: "IN_PROGRESS".into(),
        trace_metadata,
        tags,
        ..TraceInfo::default()
    };
    let location = artifact_location(&root, &trace_id);
    let saved = state
        .traces_call(move |traces| traces.start_trace_v2(info, location))
        .await?;
    Ok(Json(
        json!({"trace_info": wire::trace_info_v2_json(&saved)}),
    ))
}

/// `PATCH /api/2.0/mlflow/traces/{request_id}` (`EndTrace`).
async fn end_trace_v2(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Message(req): Message<Value>,
) -> ApiResult<Json<Value>> {
    let timestamp_ms = int_field(req.get("timestamp_ms"), "timestamp_ms")?.unwrap_or(0);
    let state_name = match req.get("status").and_then(Value::as_str) {
        None | Some("TRACE_STATUS_UNSPECIFIED") => "STATE_UNSPECIFIED",
        Some(s @ ("OK" | "ERROR" | "IN_PROGRESS")) => s,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid value '{other}' for parameter 'status': expected one of OK, ERROR, \
                 IN_PROGRESS, TRACE_STATUS_UNSPECIFIED"
            )));
        }
    };
    let mut tags = key_value_list(req.get("tags"), "tags")?;
    for key in SERVER_TAGS {
        tags.remove(key);
    }
    let end = TraceEnd {
        timestamp_ms,
        state: state_name.to_string(),
        trace_metadata: key_value_list(req.get("request_metadata"), "request_metadata")?,
        tags,
    };
    let info = state
        .traces_call(move |traces| traces.end_trace(&trace_id, end))
        .await?;
    Ok(Json(json!({"trace_info": wire::trace_info_v2_json(&info)})))
}

/// `POST /api/2.0/mlflow/traces/link-prompts` (`LinkPromptsToTrace`).
async fn link_prompts(
    State(state): State<AppState>,
    Message(req): Message<Value>,
) -> ApiResult<Json<Value>> {
    let trace_id = req
        .get("trace_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_param("trace_id"))?
        .to_string();
    let versions = match req.get("prompt_versions") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(missing_param("prompt_versions"));
        }
        Some(other) => return Err(crate::request::invalid_param_type("prompt_versions", other)),
    };
    let mut ids = Vec::with_capacity(versions.len());
    for pv in &versions {
        let name = pv
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing_param("prompt_versions.name"))?;
        let version = match pv.get("version") {
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid version {} of prompt '{name}': a version is an integer",
                pv.get("version").unwrap_or(&Value::Null)
            ))
        })?;
        ids.push(format!("{name}/{version}"));
    }
    state
        .traces_call(move |traces| traces.link_prompts_to_trace(&trace_id, &ids))
        .await?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------------
// Assessments.

fn now_timestamp() -> String {
    wire::format_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

/// Gives a new assessment its id, trace and times, as MLflow's store does.
fn prepare_assessment(a: &mut Value, trace_id: &str) {
    if a.get("assessment_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        a["assessment_id"] = json!(format!("a-{}", uuid::Uuid::new_v4().simple()));
    }
    a["trace_id"] = json!(trace_id);
    let now = now_timestamp();
    if a.get("create_time").is_none() {
        a["create_time"] = json!(now);
    }
    if a.get("last_update_time").is_none() {
        a["last_update_time"] = json!(now);
    }
    if a.get("valid").is_none() {
        a["valid"] = json!(true);
    }
}

#[derive(Deserialize)]
struct CreateAssessment {
    assessment: Option<Value>,
}

async fn create_assessment(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Message(req): Message<CreateAssessment>,
) -> ApiResult<Json<Value>> {
    let mut a = req
        .assessment
        .filter(Value::is_object)
        .ok_or_else(|| missing_param("assessment"))?;
    if a.get("assessment_name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(missing_param("assessment_name"));
    }
    if a.get("feedback").is_some() == a.get("expectation").is_some() {
        return Err(ApiError::invalid(
            "Exactly one of 'feedback' or 'expectation' must be specified.",
        ));
    }
    prepare_assessment(&mut a, &trace_id);
    let saved = state
        .traces_call(move |traces| traces.create_assessment(a))
        .await?;
    Ok(Json(json!({"assessment": saved})))
}

async fn get_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let a = state
        .traces_call(move |traces| traces.get_assessment(&trace_id, &assessment_id))
        .await?;
    Ok(Json(json!({"assessment": a})))
}

#[derive(Deserialize)]
struct UpdateAssessment {
    assessment: Option<Value>,
    update_mask: Option<Value>,
}

async fn update_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    Message(req): Message<UpdateAssessment>,
) -> ApiResult<Json<Value>> {
    let given = req.assessment.unwrap_or_else(|| json!({}));
    // A FieldMask is `"a,b"` in protobuf's JSON mapping, `{"paths": [...]}` from some clients.
    let paths: Vec<String> = match &req.update_mask {
        Some(Value::String(s)) => s.split(',').map(str::trim).map(str::to_string).collect(),
        Some(Value::Object(m)) => m
            .get("paths")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut update = AssessmentUpdate::default();
    for path in paths.iter().filter(|p| !p.is_empty()) {
        let path = snake_case(path);
        match path.as_str() {
            "assessment_name" | "expectation" | "feedback" | "rationale" => {
                update.fields.insert(
                    path.clone(),
                    given.get(&path).cloned().unwrap_or(Value::Null),
                );
            }
            "metadata" => {
                let mut m = std::collections::BTreeMap::new();
                if let Some(Value::Object(o)) = given.get("metadata") {
                    for (k, v) in o {
                        m.insert(
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        );
                    }
                }
                update.metadata = Some(m);
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "the assessment field '{other}' cannot be updated"
                )));
            }
        }
    }
    update
        .fields
        .insert("last_update_time".into(), json!(now_timestamp()));
    let a = state
        .traces_call(move |traces| traces.update_assessment(&trace_id, &assessment_id, update))
        .await?;
    Ok(Json(json!({"assessment": a})))
}

fn snake_case(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

async fn delete_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state
        .traces_call(move |traces| traces.delete_assessment(&trace_id, &assessment_id))
        .await?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP.

/// The header that names the experiment OTLP spans go to (MLflow's `MLFLOW_EXPERIMENT_ID_HEADER`).
pub const EXPERIMENT_HEADER: &str = "x-mlflow-experiment-id";

fn otlp_error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = if status == StatusCode::NOT_FOUND {
        ErrorCode::ResourceDoesNotExist
    } else {
        ErrorCode::InvalidParameterValue
    };
    (status, Json(crate::error::error_body(code, message))).into_response()
}

/// Protobuf's JSON mapping lets enums be written by name (`"SPAN_KIND_SERVER"`, which
/// `MessageToJson` writes and MLflow's server reads); OTLP's JSON spells them as numbers, and so
/// does its serde model. Names are turned into their numbers.
fn enum_names_to_numbers(mut body: Value) -> Value {
    const KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    let number = |v: &mut Value, names: &[&str]| {
        if let Some(i) = v.as_str().and_then(|s| names.iter().position(|n| *n == s)) {
            *v = json!(i);
        }
    };
    let Some(resource_spans) = body.get_mut("resourceSpans").and_then(Value::as_array_mut) else {
        return body;
    };
    for rs in resource_spans {
        let Some(scopes) = rs.get_mut("scopeSpans").and_then(Value::as_array_mut) else {
            continue;
        };
        for ss in scopes {
            let Some(spans) = ss.get_mut("spans").and_then(Value::as_array_mut) else {
                continue;
            };
            for span in spans {
                if let Some(kind) = span.get_mut("kind") {
                    number(kind, &KINDS);
                }
                if let Some(code) = span.pointer_mut("/status/code") {
                    number(code, &CODES);
                }
            }
        }
    }
    body
}

/// `POST /v1/traces`: an OTLP `ExportTraceServiceRequest` in protobuf or JSON (optionally
/// gzip-compressed). All spans of the request are stored together or none are.
async fn otlp_export(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(experiment_id) = headers
        .get(EXPERIMENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        return otlp_error(
            StatusCode::BAD_REQUEST,
            format!("the '{EXPERIMENT_HEADER}' header must name the experiment of the spans"),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json_body = match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => false,
        "application/json" => true,
        _ => {
            return otlp_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Invalid Content-Type: '{content_type}'. Expected: application/x-protobuf or \
                     application/json"
                ),
            );
        }
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        // Decoded where it lies; only a compressed body is copied (inflated).
        None | Some("identity") => std::borrow::Cow::Borrowed(&body[..]),
        Some("gzip") => {
            let mut out = Vec::new();
            let limit = crate::app::MAX_JSON_BODY as u64;
            match flate2::read::GzDecoder::new(&body[..])
                .take(limit + 1)
                .read_to_end(&mut out)
            {
                Ok(n) if n as u64 <= limit => std::borrow::Cow::Owned(out),
                Ok(_) => {
                    return otlp_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the decompressed body is too large",
                    );
                }
                Err(e) => {
                    return otlp_error(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"));
                }
            }
        }
        Some(other) => {
            return otlp_error(
                StatusCode::BAD_REQUEST,
                format!("unsupported Content-Encoding '{other}': send gzip or none"),
            );
        }
    };
    let request = if json_body {
        serde_json::from_slice::<Value>(&body)
            .map(enum_names_to_numbers)
            .and_then(serde_json::from_value::<ExportTraceServiceRequest>)
            .map_err(|e| format!("Invalid OpenTelemetry format: {e}"))
    } else {
        ExportTraceServiceRequest::decode(&body[..])
            .map_err(|e| format!("Invalid OpenTelemetry format: {e}"))
    };
    let request = match request {
        Ok(r) => r,
        Err(msg) => return otlp_error(StatusCode::BAD_REQUEST, msg),
    };
    if request.resource_spans.is_empty() {
        return otlp_error(
            StatusCode::BAD_REQUEST,
            "Invalid OpenTelemetry format - no spans found",
        );
    }
    let mut spans = Vec::new();
    for rs in &request.resource_spans {
        let resource_tags = rs
            .resource
            .as_ref()
            .map(|r| wire::resource_tags(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                match wire::new_span(span, &resource_tags) {
                    Ok(s) => spans.push(s),
                    Err(e) => return otlp_error(StatusCode::BAD_REQUEST, e.message),
                }
            }
        }
    }
    if !spans.is_empty() {
        let root = match active_experiment(&state, experiment_id.clone()).await {
            Ok(root) => root,
            Err(e) => return e.into_response(),
        };
        if let Err(e) = state
            .traces_call(move |traces| traces.log_spans(&experiment_id, spans, root))
            .await
        {
            return e.into_response();
        }
    }
    if json_body {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    }
}

/// The UI's `get-trace-artifact?request_id=`: the trace's spans as `traces.json` (MLflow's
/// `get_trace_artifact_handler`). Spans kept in the store are answered from it, as MLflow's SQL
/// store does; otherwise the `traces.json` the client uploaded is read from the trace's folder
/// under its experiment's artifact root. That folder is worked out from the experiment and the
/// trace id, never read from the `mlflow.artifactLocation` tag, so no client-set value can make
/// the server read files anywhere else.
async fn get_trace_artifact(
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let q = query_to_json(uri.query().unwrap_or(""));
    let trace_id = q
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError(Error::new(
                ErrorCode::BadRequest,
                "Request must include the \"request_id\" query parameter.",
            ))
        })?
        .to_string();
    let id = trace_id.clone();
    let info = state
        .traces_call(move |traces| traces.get_trace_info(&id))
        .await?;
    if info.tags.get(SPANS_LOCATION_TAG).map(String::as_str) == Some(SPANS_IN_STORE) {
        let ids = vec![trace_id.clone()];
        let spans = state
            .traces_call(move |traces| traces.get_spans(&ids))
            .await?;
        if !spans.is_empty() {
            let mut dicts = Vec::with_capacity(spans.len());
            for s in &spans {
                dicts.push(wire::loaded_span_dict(&s.body)?);
            }
            let body = serde_json::to_vec(&json!({"spans": dicts}))
                .map_err(|e| Error::internal(e.to_string()))?;
            let size = body.len() as u64;
            let mut response = axum::body::Body::from(body).into_response();
            crate::mime::set_download_headers(response.headers_mut(), TRACE_DATA_FILE, size);
            return Ok(response);
        }
    }
    validate_trace_id(&trace_id)?;
    let experiment_id = info.experiment_id.clone();
    let experiment = state
        .store(move |s| s.get_experiment(&experiment_id))
        .await?;
    let rel = format!("{}/{TRACE_DATA_FILE}", trace_artifact_folder(&trace_id));
    crate::artifacts::send_under(&state, &experiment.artifact_location, &rel)
        .await
        .map_err(|e| match e.0.code {
            ErrorCode::ResourceDoesNotExist => ApiError(Error::not_found(format!(
                "Trace data for trace {trace_id} is not available"
            ))),
            _ => e,
        })
}

/// MLflow's `TRACE_DATA_FILE_NAME`.
const TRACE_DATA_FILE: &str = "traces.json";

// ---- analytics: `QueryTraceMetrics` and `CalculateTraceFilterCorrelation` ----

/// A proto int64 as the client may send it (a JSON number, or a string).
fn int_param(v: Option<&Value>, name: &str) -> ApiResult<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(crate::request::invalid_param_type(name, other)),
    }
}

/// A proto enum as JSON carries it: its name, or its number (`names[n - 1]`).
fn enum_param<'a>(v: Option<&'a Value>, names: &[&'a str], name: &str) -> ApiResult<&'a str> {
    match v {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| names.get((i as usize).wrapping_sub(1)))
            .copied()
            .ok_or_else(|| ApiError::invalid(format!("invalid value {n} for parameter '{name}'"))),
        _ => Err(missing_param(name)),
    }
}

fn string_list(req: &Value, name: &str) -> ApiResult<Vec<String>> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| crate::request::invalid_param_type(name, i))
            })
            .collect(),
        Some(other) => Err(crate::request::invalid_param_type(name, other)),
    }
}

async fn query_metrics(
    State(state): State<AppState>,
    Message(req): Message<Value>,
) -> ApiResult<Json<Value>> {
    use wasmflow_store::trace_metrics::{
        Aggregation, MAX_METRIC_RESULTS, MetricQuery, MetricView, parse_metric_filter,
        query_trace_metrics,
    };
    let experiment_ids = string_list(&req, "experiment_ids")?;
    if experiment_ids.is_empty() {
        return Err(missing_param("experiment_ids"));
    }
    let view = MetricView::parse(enum_param(
        req.get("view_type"),
        &["TRACES", "SPANS", "ASSESSMENTS"],
        "view_type",
    )?)?;
    let metric_name = req
        .get("metric_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_param("metric_name"))?
        .to_string();
    let aggregations = match req.get("aggregations") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|a| {
                let kind = enum_param(
                    a.get("aggregation_type"),
                    &["COUNT", "SUM", "AVG", "PERCENTILE", "MIN", "MAX"],
                    "aggregation_type",
                )?;
                Ok(Aggregation::parse(
                    kind,
                    a.get("percentile_value").and_then(Value::as_f64),
                )?)
            })
            .collect::<ApiResult<Vec<_>>>()?,
        _ => return Err(missing_param("aggregations")),
    };
    let filters = string_list(&req, "filters")?
        .iter()
        .map(|f| parse_metric_filter(f))
        .collect::<wasmflow_core::Result<Vec<_>>>()?;
    let max_results = match int_param(req.get("max_results"), "max_results")? {
        None | Some(0) => MAX_METRIC_RESULTS,
        Some(n) if n > 0 => (n as usize).min(MAX_METRIC_RESULTS),
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "invalid max_results {n}: it must be positive"
            )));
        }
    };
    let query = MetricQuery {
        experiment_ids,
        view,
        metric_name,
        aggregations,
        dimensions: string_list(&req, "dimensions")?,
        filters,
        time_interval_seconds: int_param(
            req.get("time_interval_seconds"),
            "time_interval_seconds",
        )?,
        start_time_ms: int_param(req.get("start_time_ms"), "start_time_ms")?,
        end_time_ms: int_param(req.get("end_time_ms"), "end_time_ms")?,
        max_results,
    };
    let points = state
        .traces_call(move |traces| query_trace_metrics(traces, &query))
        .await?;
    let points: Vec<Value> = points
        .into_iter()
        .map(|p| {
            let mut point = json!({"metric_name": p.metric_name});
            if !p.dimensions.is_empty() {
                point["dimensions"] = Value::Object(
                    p.dimensions
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                );
            }
            point["values"] =
                Value::Object(p.values.into_iter().map(|(k, v)| (k, json!(v))).collect());
            point
        })
        .collect();
    Ok(Json(json!({"data_points": points})))
}

async fn filter_correlation(
    State(state): State<AppState>,
    Message(req): Message<Value>,
) -> ApiResult<Json<Value>> {
    let experiment_ids = string_list(&req, "experiment_ids")?;
    if experiment_ids.is_empty() {
        return Err(missing_param("experiment_ids"));
    }
    let filter = |name: &str| -> ApiResult<Option<Vec<wasmflow_store::traces::TraceClause>>> {
        match req.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(parse_trace_filter(s)?)),
            Some(other) => Err(crate::request::invalid_param_type(name, other)),
        }
    };
    let filter1 = filter("filter_string1")?.ok_or_else(|| missing_param("filter_string1"))?;
    let filter2 = filter("filter_string2")?.ok_or_else(|| missing_param("filter_string2"))?;
    let base = filter("base_filter")?.unwrap_or_default();
    let r = state
        .traces_call(move |traces| {
            wasmflow_store::trace_metrics::filter_correlation(
                traces,
                &experiment_ids,
                &filter1,
                &filter2,
                &base,
            )
        })
        .await?;
    let mut body = json!({
        "filter1_count": r.filter1_count,
        "filter2_count": r.filter2_count,
        "joint_count": r.joint_count,
        "total_count": r.total_count,
    });
    // An undefined NPMI is left out, as MLflow leaves the proto field unset.
    if !r.npmi.is_nan() {
        body["npmi"] = json!(r.npmi);
    }
    if !r.npmi_smoothed.is_nan() {
        body["npmi_smoothed"] = json!(r.npmi_smoothed);
    }
    Ok(Json(body))
}
