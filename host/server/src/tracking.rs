//! MLflow's tracking API: experiments, runs, metrics (`service.proto`).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wasmflow_core::entities::{
    DatasetInput, Metric, ModelInput, ModelOutput, Param, RunStatus, Tag, ViewType, de_f64,
    de_opt_i64,
};
use wasmflow_core::search;
use wasmflow_core::validation::{self as v, SEARCH_MAX_RESULTS_DEFAULT};
use wasmflow_store::{ExperimentSearch, NewRun, RunSearch, RunUpdate};

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::response::{One, Paged};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route(
            "/experiments/search",
            get(search_experiments).post(search_experiments),
        )
        .route("/experiments/update", post(update_experiment))
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/search", post(search_runs).get(search_runs))
        .route("/metrics/get-history", get(get_metric_history))
        .route(
            "/metrics/get-history-bulk-interval",
            get(get_metric_history_bulk_interval),
        )
}

#[derive(Deserialize)]
pub(crate) struct RunCounts {
    #[serde(default)]
    experiment_ids: StringList,
}

/// Active runs per experiment, for the UI's experiments page: MLflow's REST API has no count,
/// and paging through `runs/search` would read every run of a 100,000-run experiment.
pub(crate) async fn run_counts(
    State(state): State<AppState>,
    Message(req): Message<RunCounts>,
) -> ApiResult<Json<Value>> {
    let ids = req.experiment_ids.into_vec();
    if ids.len() > 1000 {
        return Err(ApiError::invalid(format!(
            "at most 1000 experiment_ids per request, not {}",
            ids.len()
        )));
    }
    let counts = state.store(move |s| s.count_active_runs(&ids)).await?;
    let counts: serde_json::Map<String, Value> =
        counts.into_iter().map(|(id, n)| (id, json!(n))).collect();
    Ok(Json(json!({ "run_counts": counts })))
}

/// A repeated field that a query string carries as one value when it has one item.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum StringList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StringList {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> ApiResult<&'a str> {
    value
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| crate::request::missing_param(name))
}

/// Runs are named by `run_id`, or by the deprecated `run_uuid`.
#[derive(Deserialize, Default)]
struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn get(&self) -> ApiResult<String> {
        let id = self
            .run_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.run_uuid.as_deref().filter(|s| !s.is_empty()))
            .ok_or_else(|| crate::request::missing_param("run_id"))?;
        v::validate_run_id(id, "run_id")?;
        Ok(id.to_string())
    }
}

fn view_type(value: Option<Value>) -> ApiResult<ViewType> {
    match value {
        None | Some(Value::Null) => Ok(ViewType::ActiveOnly),
        Some(Value::String(s)) => Ok(ViewType::parse(&s)?),
        Some(Value::Number(n)) => Ok(ViewType::parse(&n.to_string())?),
        Some(other) => Err(ApiError::invalid(format!("invalid view type '{other}'"))),
    }
}

fn max_results(value: Option<i64>, default: usize) -> ApiResult<usize> {
    match value {
        None => Ok(default),
        Some(n) => Ok(v::validate_max_results(n, v::SEARCH_MAX_RESULTS_THRESHOLD)?),
    }
}

/// `search_runs`' `max_results`: MLflow's request schema refuses one past the threshold
/// before its store sees it, in the words of a wrongly typed parameter.
fn run_max_results(value: Option<i64>) -> ApiResult<usize> {
    match value {
        Some(n) if n as u64 > v::SEARCH_MAX_RESULTS_THRESHOLD as u64 && n > 0 => Err(
            crate::request::invalid_param_type("max_results", &Value::from(n)),
        ),
        other => max_results(other, SEARCH_MAX_RESULTS_DEFAULT),
    }
}

// ---- experiments ----

#[derive(Deserialize)]
struct CreateExperiment {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create_experiment(
    State(state): State<AppState>,
    Message(req): Message<CreateExperiment>,
) -> ApiResult<Json<Value>> {
    let name = required(&req.name, "name")?.to_string();
    v::validate_experiment_name(&name)?;
    for tag in &req.tags {
        v::validate_experiment_tag(tag)?;
    }
    let id = state
        .store(move |s| s.create_experiment(&name, req.artifact_location.as_deref(), &req.tags))
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Deserialize)]
struct ExperimentRef {
    experiment_id: Option<String>,
}

impl ExperimentRef {
    fn get(&self) -> ApiResult<String> {
        let id = required(&self.experiment_id, "experiment_id")?;
        v::parse_experiment_id(id)?;
        Ok(id.to_string())
    }
}

async fn get_experiment(
    State(state): State<AppState>,
    Message(req): Message<ExperimentRef>,
) -> ApiResult<impl IntoResponse> {
    let id = req.get()?;
    let exp = state.store(move |s| s.get_experiment(&id)).await?;
    Ok(Json(One("experiment", exp)))
}

#[derive(Deserialize)]
struct ExperimentByName {
    experiment_name: Option<String>,
}

async fn get_experiment_by_name(
    State(state): State<AppState>,
    Message(req): Message<ExperimentByName>,
) -> ApiResult<impl IntoResponse> {
    let name = required(&req.experiment_name, "experiment_name")?.to_string();
    let exp = state
        .store(move |s| s.get_experiment_by_name(&name))
        .await?;
    Ok(Json(One("experiment", exp)))
}

#[derive(Deserialize)]
struct SearchExperiments {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: StringList,
    view_type: Option<Value>,
}

async fn search_experiments(
    State(state): State<AppState>,
    Message(req): Message<SearchExperiments>,
) -> ApiResult<impl IntoResponse> {
    let search = ExperimentSearch {
        filter: search::parse_experiment_filter(req.filter.as_deref().unwrap_or(""))?,
        order_by: req
            .order_by
            .into_vec()
            .iter()
            .map(|o| search::parse_experiment_order_by(o))
            .collect::<Result<_, _>>()?,
        view: view_type(req.view_type)?,
        max_results: max_results(req.max_results, SEARCH_MAX_RESULTS_DEFAULT)?,
        page_token: req.page_token,
    };
    let page = state.store(move |s| s.search_experiments(&search)).await?;
    Ok(Json(Paged("experiments", page)))
}

#[derive(Deserialize)]
struct UpdateExperiment {
    #[serde(flatten)]
    experiment: ExperimentRef,
    new_name: Option<String>,
}

async fn update_experiment(
    State(state): State<AppState>,
    Message(req): Message<UpdateExperiment>,
) -> ApiResult<Json<Value>> {
    let id = req.experiment.get()?;
    let new_name = required(&req.new_name, "new_name")?.to_string();
    v::validate_experiment_name(&new_name)?;
    state
        .store(move |s| s.rename_experiment(&id, &new_name))
        .await?;
    Ok(Json(json!({})))
}

async fn delete_experiment(
    State(state): State<AppState>,
    Message(req): Message<ExperimentRef>,
) -> ApiResult<Json<Value>> {
    let id = req.get()?;
    state.store(move |s| s.delete_experiment(&id)).await?;
    Ok(Json(json!({})))
}

async fn restore_experiment(
    State(state): State<AppState>,
    Message(req): Message<ExperimentRef>,
) -> ApiResult<Json<Value>> {
    let id = req.get()?;
    state.store(move |s| s.restore_experiment(&id)).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ExperimentTagReq {
    #[serde(flatten)]
    experiment: ExperimentRef,
    key: Option<String>,
    #[serde(default)]
    value: String,
}

async fn set_experiment_tag(
    State(state): State<AppState>,
    Message(req): Message<ExperimentTagReq>,
) -> ApiResult<Json<Value>> {
    let id = req.experiment.get()?;
    let tag = Tag {
        key: required(&req.key, "key")?.to_string(),
        value: req.value,
    };
    v::validate_experiment_tag(&tag)?;
    state
        .store(move |s| s.set_experiment_tag(&id, &tag))
        .await?;
    Ok(Json(json!({})))
}

async fn delete_experiment_tag(
    State(state): State<AppState>,
    Message(req): Message<ExperimentTagReq>,
) -> ApiResult<Json<Value>> {
    let id = req.experiment.get()?;
    let key = required(&req.key, "key")?.to_string();
    state
        .store(move |s| s.delete_experiment_tag(&id, &key))
        .await?;
    Ok(Json(json!({})))
}

// ---- runs ----

#[derive(Deserialize)]
struct CreateRun {
    experiment_id: Option<String>,
    #[serde(default)]
    user_id: String,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn create_run(
    State(state): State<AppState>,
    Message(req): Message<CreateRun>,
) -> ApiResult<impl IntoResponse> {
    let experiment_id = req
        .experiment_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "0".into());
    v::parse_experiment_id(&experiment_id)?;
    for (i, tag) in req.tags.iter().enumerate() {
        v::validate_tag(tag, &format!("tags[{i}]"))?;
    }
    let new_run = NewRun {
        experiment_id,
        user_id: req.user_id,
        run_name: req.run_name,
        start_time: req.start_time,
        tags: req.tags,
    };
    let run = state.store(move |s| s.create_run(new_run)).await?;
    Ok(Json(One("run", run)))
}

async fn get_run(
    State(state): State<AppState>,
    Message(req): Message<RunRef>,
) -> ApiResult<impl IntoResponse> {
    let run_id = req.get()?;
    let run = state.store(move |s| s.get_run(&run_id)).await?;
    Ok(Json(One("run", run)))
}

#[derive(Deserialize)]
struct UpdateRun {
    #[serde(flatten)]
    run: RunRef,
    status: Option<Value>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

async fn update_run(
    State(state): State<AppState>,
    Message(req): Message<UpdateRun>,
) -> ApiResult<impl IntoResponse> {
    let run_id = req.run.get()?;
    let status = match req.status {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(RunStatus::parse(&s)?),
        Some(Value::Number(n)) => Some(RunStatus::parse(&n.to_string())?),
        Some(other) => return Err(ApiError::invalid(format!("invalid run status '{other}'"))),
    };
    let update = RunUpdate {
        status,
        end_time: req.end_time,
        run_name: req.run_name,
    };
    let info = state.store(move |s| s.update_run(&run_id, update)).await?;
    Ok(Json(One("run_info", info)))
}

async fn delete_run(
    State(state): State<AppState>,
    Message(req): Message<RunRef>,
) -> ApiResult<Json<Value>> {
    let run_id = req.get()?;
    state.store(move |s| s.delete_run(&run_id)).await?;
    Ok(Json(json!({})))
}

async fn restore_run(
    State(state): State<AppState>,
    Message(req): Message<RunRef>,
) -> ApiResult<Json<Value>> {
    let run_id = req.get()?;
    state.store(move |s| s.restore_run(&run_id)).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogMetric {
    #[serde(flatten)]
    run: RunRef,
    key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

fn de_opt_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_f64")] f64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

async fn log_metric(
    State(state): State<AppState>,
    Message(req): Message<LogMetric>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    let metric = Metric {
        key: required(&req.key, "key")?.to_string(),
        value: req
            .value
            .ok_or_else(|| crate::request::missing_param("value"))?,
        timestamp: req
            .timestamp
            .ok_or_else(|| crate::request::missing_param("timestamp"))?,
        step: req.step.unwrap_or(0),
        model_id: req.model_id.filter(|s| !s.is_empty()),
        dataset_name: req.dataset_name.filter(|s| !s.is_empty()),
        dataset_digest: req.dataset_digest.filter(|s| !s.is_empty()),
        run_id: None,
    };
    v::validate_metric(&metric, "")?;
    state
        .store(move |s| s.log_batch(&run_id, vec![metric], Vec::new(), Vec::new()))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(flatten)]
    run: RunRef,
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

async fn log_param(
    State(state): State<AppState>,
    Message(req): Message<KeyValue>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    let param = Param {
        key: required(&req.key, "key")?.to_string(),
        value: req
            .value
            .ok_or_else(|| crate::request::missing_param("value"))?,
    };
    v::validate_param(&param, "")?;
    state
        .store(move |s| s.log_batch(&run_id, Vec::new(), vec![param], Vec::new()))
        .await?;
    Ok(Json(json!({})))
}

async fn set_tag(
    State(state): State<AppState>,
    Message(req): Message<KeyValue>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    let tag = Tag {
        key: required(&req.key, "key")?.to_string(),
        value: req.value.unwrap_or_default(),
    };
    v::validate_tag(&tag, "")?;
    state
        .store(move |s| s.log_batch(&run_id, Vec::new(), Vec::new(), vec![tag]))
        .await?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(state): State<AppState>,
    Message(req): Message<KeyValue>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    let key = required(&req.key, "key")?.to_string();
    state.store(move |s| s.delete_tag(&run_id, &key)).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogBatch {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    metrics: Vec<Metric>,
    #[serde(default)]
    params: Vec<Param>,
    #[serde(default)]
    tags: Vec<Tag>,
}

async fn log_batch(
    State(state): State<AppState>,
    Message(req): Message<LogBatch>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    v::validate_batch(&req.metrics, &req.params, &req.tags)?;
    state
        .store(move |s| s.log_batch(&run_id, req.metrics, req.params, req.tags))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogInputs {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    datasets: Vec<DatasetInput>,
    #[serde(default)]
    models: Vec<ModelInput>,
}

async fn log_inputs(
    State(state): State<AppState>,
    Message(req): Message<LogInputs>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    for input in &req.datasets {
        let d = &input.dataset;
        v::validate_length("Dataset name", v::MAX_DATASET_NAME_SIZE, &d.name)?;
        v::validate_length("Dataset digest", v::MAX_DATASET_DIGEST_SIZE, &d.digest)?;
        v::validate_length("Dataset source", v::MAX_DATASET_SOURCE_SIZE, &d.source)?;
        if let Some(schema) = &d.schema {
            v::validate_length("Dataset schema", v::MAX_DATASET_SCHEMA_SIZE, schema)?;
        }
        if let Some(profile) = &d.profile {
            v::validate_length("Dataset profile", v::MAX_DATASET_PROFILE_SIZE, profile)?;
        }
        for tag in &input.tags {
            v::validate_length("Input tag key", v::MAX_INPUT_TAG_KEY_SIZE, &tag.key)?;
            v::validate_length("Input tag value", v::MAX_INPUT_TAG_VALUE_SIZE, &tag.value)?;
        }
    }
    state
        .store(move |s| s.log_inputs(&run_id, req.datasets, req.models))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct LogOutputs {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    models: Vec<ModelOutput>,
}

async fn log_outputs(
    State(state): State<AppState>,
    Message(req): Message<LogOutputs>,
) -> ApiResult<Json<Value>> {
    let run_id = req.run.get()?;
    state
        .store(move |s| s.log_outputs(&run_id, req.models))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct SearchRuns {
    #[serde(default)]
    experiment_ids: StringList,
    filter: Option<String>,
    run_view_type: Option<Value>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: StringList,
    page_token: Option<String>,
}

async fn search_runs(
    State(state): State<AppState>,
    Message(req): Message<SearchRuns>,
) -> ApiResult<impl IntoResponse> {
    let experiment_ids = req.experiment_ids.into_vec();
    for id in &experiment_ids {
        v::parse_experiment_id(id)?;
    }
    let search = RunSearch {
        experiment_ids,
        filter: search::parse_run_filter(req.filter.as_deref().unwrap_or(""))?,
        order_by: req
            .order_by
            .into_vec()
            .iter()
            .map(|o| search::parse_run_order_by(o))
            .collect::<Result<_, _>>()?,
        view: view_type(req.run_view_type)?,
        max_results: run_max_results(req.max_results)?,
        page_token: req.page_token,
    };
    let page = state.store(move |s| s.search_runs(&search)).await?;
    Ok(Json(Paged("runs", page)))
}

#[derive(Deserialize)]
struct GetMetricHistory {
    #[serde(flatten)]
    run: RunRef,
    metric_key: Option<String>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

async fn get_metric_history(
    State(state): State<AppState>,
    Message(req): Message<GetMetricHistory>,
) -> ApiResult<impl IntoResponse> {
    let run_id = req.run.get()?;
    let key = required(&req.metric_key, "metric_key")?.to_string();
    let max_results = match req.max_results {
        None => None,
        Some(n) if n > 0 => Some(n as usize),
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
                 integer."
            )));
        }
    };
    let page = state
        .store(move |s| s.metric_history(&run_id, &key, max_results, req.page_token.as_deref()))
        .await?;
    Ok(Json(Paged("metrics", page)))
}

/// MLflow's limits for the bulk-interval endpoint.
const MAX_RUNS_GET_METRIC_HISTORY_BULK: usize = 100;
const MAX_RESULTS_PER_RUN: i64 = 2500;

#[derive(Deserialize)]
struct GetMetricHistoryBulkInterval {
    #[serde(default)]
    run_ids: StringList,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

async fn get_metric_history_bulk_interval(
    State(state): State<AppState>,
    Message(req): Message<GetMetricHistoryBulkInterval>,
) -> ApiResult<impl IntoResponse> {
    let run_ids = req.run_ids.into_vec();
    if run_ids.is_empty() {
        return Err(crate::request::missing_param("run_ids"));
    }
    if run_ids.len() > MAX_RUNS_GET_METRIC_HISTORY_BULK {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most \
             {MAX_RUNS_GET_METRIC_HISTORY_BULK} run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    for id in &run_ids {
        v::validate_run_id(id, "run_ids")?;
    }
    let key = required(&req.metric_key, "metric_key")?.to_string();
    let max_results = req.max_results.unwrap_or(MAX_RESULTS_PER_RUN);
    if !(1..=MAX_RESULTS_PER_RUN).contains(&max_results) {
        return Err(ApiError::invalid(format!(
            "max_results must be between 1 and {MAX_RESULTS_PER_RUN}."
        )));
    }
    let steps = match (req.start_step, req.end_step) {
        (Some(start), Some(end)) if start > end => {
            return Err(ApiError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={start} and \
                 end_step={end}."
            )));
        }
        (Some(start), Some(end)) => Some((start, end)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let metrics = state
        .store(move |s| s.metric_history_bulk_interval(&run_ids, &key, steps, max_results as usize))
        .await?;
    Ok(Json(One("metrics", metrics)))
}
