//! The endpoints MLflow's server keeps for its own UI, under `/ajax-api/2.0/mlflow` only:
//! `metrics/get-history-bulk`, `experiments/search-datasets`, `runs/create-promptlab-run` and
//! `gateway-proxy`; and under `/ajax-api/3.0/mlflow` what every page of the UI asks for: its
//! telemetry settings (`ui-telemetry`) and the assistant's config and providers.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use wasmflow_core::entities::{Param, RunStatus, Tag};
use wasmflow_store::{NewRun, RunUpdate};

use crate::error::{ApiError, ApiResult};
use crate::request::{body_to_json, query_to_json};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics/get-history-bulk", get(history_bulk))
        .route("/experiments/search-datasets", post(search_datasets))
        .route("/runs/create-promptlab-run", post(create_promptlab_run))
        .route("/gateway-proxy", get(gateway_proxy).post(gateway_proxy))
}

/// MLflow's server without a deployments target (`MLFLOW_DEPLOYMENTS_TARGET`) answers its UI's
/// gateway proxy as an AI gateway with no endpoints, whatever is asked; wasmflow has no AI
/// gateway, so it always answers that. The runs table asks for it on every load.
async fn gateway_proxy() -> Json<Value> {
    Json(json!({ "endpoints": [] }))
}

/// `/ajax-api/3.0/mlflow/assistant`: MLflow's UI asks every page for the assistant's
/// configuration and providers. MLflow's assistant runs coding agents (CLIs or an AI gateway) on
/// the server's host; wasmflow has none, so it answers as MLflow does with nothing configured and
/// no provider to offer. Every other assistant path stays unknown (`ENDPOINT_NOT_FOUND`).
pub fn assistant_router() -> Router<AppState> {
    Router::new()
        .route("/config", get(assistant_config))
        .route("/providers", get(assistant_providers))
}

async fn assistant_config() -> Json<Value> {
    Json(json!({ "providers": {}, "projects": {}, "remote_access_allowed": false }))
}

async fn assistant_providers() -> Json<Value> {
    Json(json!({ "providers": [], "resolved": null, "gateway_vendor_options": {} }))
}

/// `GET /ajax-api/3.0/mlflow/ui-telemetry`: wasmflow collects no telemetry, so it answers as
/// MLflow's server does with telemetry disabled, with the UI's disabled settings (MLflow's
/// `FALLBACK_UI_CONFIG`).
pub async fn ui_telemetry_settings() -> Json<Value> {
    Json(json!({
        "disable_ui_telemetry": true,
        "disable_ui_events": [],
        "ui_rollout_percentage": 0,
    }))
}

/// `POST /ajax-api/3.0/mlflow/ui-telemetry`: records are dropped, as MLflow with telemetry
/// disabled drops them.
pub async fn ui_telemetry_records() -> Json<Value> {
    Json(json!({ "status": "disabled" }))
}

/// MLflow's limits for `get-history-bulk`.
const MAX_HISTORY_RESULTS: i64 = 25_000;
const MAX_RUN_IDS_PER_REQUEST: usize = 100;

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Every point of one metric for up to 100 runs: runs in id order, each run's points by
/// (timestamp, step, value), at most `max_results` in all.
async fn history_bulk(
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let q = query_to_json(uri.query().unwrap_or(""));
    let mut run_ids = strings(q.get("run_id"));
    if run_ids.is_empty() {
        return Err(ApiError::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if run_ids.len() > MAX_RUN_IDS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_RUN_IDS_PER_REQUEST} \
             run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    let Some(key) = strings(q.get("metric_key")).into_iter().next() else {
        return Err(ApiError::invalid(
            "GetMetricHistoryBulk request must specify a metric_key.",
        ));
    };
    let max_results = match strings(q.get("max_results")).first() {
        None => MAX_HISTORY_RESULTS,
        Some(s) => s.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid(format!(
                "Invalid value '{s}' for parameter 'max_results' supplied."
            ))
        })?,
    }
    .clamp(0, MAX_HISTORY_RESULTS) as usize;
    run_ids.sort();
    let metrics = state
        .store(move |s| {
            let mut out = Vec::new();
            for run_id in &run_ids {
                let mut points = s
                    .metric_history(run_id, &key, Some(max_results.max(1)), None)?
                    .items;
                points.truncate(max_results);
                points.sort_by(|a, b| {
                    (a.timestamp, a.step)
                        .cmp(&(b.timestamp, b.step))
                        .then(a.value.total_cmp(&b.value))
                });
                for mut m in points {
                    m.run_id = Some(run_id.clone());
                    m.model_id = None;
                    m.dataset_name = None;
                    m.dataset_digest = None;
                    out.push(m);
                }
            }
            out.truncate(max_results);
            Ok(out)
        })
        .await?;
    Ok(Json(json!({ "metrics": metrics })))
}

/// MLflow's `_validate_content_type` for the UI's POST endpoints.
fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return Err(ApiError::invalid(format!(
            "Bad Request. Content-Type must be one of ['application/json']. Got '{content_type}'."
        )));
    }
    Ok(())
}

const MAX_EXPERIMENT_IDS_PER_REQUEST: usize = 20;

async fn search_datasets(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_json(&headers)?;
    let req = body_to_json(&body)?;
    let ids = strings(req.get("experiment_ids"));
    if ids.is_empty() {
        return Err(ApiError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if ids.len() > MAX_EXPERIMENT_IDS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_EXPERIMENT_IDS_PER_REQUEST} \
             experiment_ids. Received {} experiment_ids.",
            ids.len()
        )));
    }
    let summaries = state
        .store(move |s| s.search_dataset_summaries(&ids))
        .await?;
    Ok(Json(if summaries.is_empty() {
        json!({})
    } else {
        json!({ "dataset_summaries": summaries })
    }))
}

/// `str(value)` in Python, as MLflow turns prompt-lab parameter values into params.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn key_values(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|p| {
                    (
                        p.get("key").map(py_str).unwrap_or_default(),
                        p.get("value").map(py_str).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// MLflow's prompt-lab run: a finished run with the model parameters, route and template as
/// params, its source type tag, and the evaluation table (`eval_results_table.json`) the UI
/// shows. MLflow also saves a `promptlab` flavor model, which needs its AI gateway; wasmflow
/// does not write one (it has no gateway).
async fn create_promptlab_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    require_json(&headers)?;
    let args = body_to_json(&body)?;
    let given = |name: &str| -> ApiResult<Value> {
        match args.get(name) {
            None | Some(Value::Null) => Err(ApiError::invalid(format!(
                "CreatePromptlabRun request must specify {name}."
            ))),
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::invalid(format!(
                "CreatePromptlabRun request must specify {name}."
            ))),
            Some(Value::Array(a)) if a.is_empty() => Err(ApiError::invalid(format!(
                "CreatePromptlabRun request must specify {name}."
            ))),
            Some(v) => Ok(v.clone()),
        }
    };
    let experiment_id = py_str(&given("experiment_id")?);
    let prompt_template = py_str(&given("prompt_template")?);
    let prompt_parameters = key_values(Some(&given("prompt_parameters")?));
    let model_route = py_str(&given("model_route")?);
    let model_parameters = key_values(args.get("model_parameters"));
    let model_input = py_str(&given("model_input")?);
    given("mlflow_version")?;
    let model_output = args.get("model_output").cloned().unwrap_or(Value::Null);
    let output_parameters = key_values(args.get("model_output_parameters"));
    let run_name = args
        .get("run_name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let user_id = args
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let start_time = args
        .get("start_time")
        .and_then(Value::as_i64)
        .unwrap_or_else(now_ms);
    let tags: Vec<Tag> = key_values(args.get("tags"))
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();

    let run = state
        .store(move |s| {
            s.create_run(NewRun {
                experiment_id,
                user_id,
                run_name,
                start_time: Some(start_time),
                tags,
            })
        })
        .await?;
    let run_id = run.info.run_id.clone();

    let mut params: Vec<Param> = model_parameters
        .into_iter()
        .map(|(key, value)| Param { key, value })
        .collect();
    params.push(Param {
        key: "model_route".into(),
        value: model_route,
    });
    params.push(Param {
        key: "prompt_template".into(),
        value: prompt_template,
    });
    let run_tags = vec![
        Tag {
            key: "mlflow.loggedArtifacts".into(),
            value: r#"[{"path": "eval_results_table.json", "type": "table"}]"#.into(),
        },
        Tag {
            key: "mlflow.runSourceType".into(),
            value: "PROMPT_ENGINEERING".into(),
        },
    ];
    // MLflow's `create_eval_results_json`: one row of the prompt's parameters, the prompt, the
    // output and the output's parameters.
    let mut columns: Vec<Value> = prompt_parameters.iter().map(|(k, _)| json!(k)).collect();
    columns.extend([json!("prompt"), json!("output")]);
    columns.extend(output_parameters.iter().map(|(k, _)| json!(k)));
    let mut row: Vec<Value> = prompt_parameters.iter().map(|(_, v)| json!(v)).collect();
    row.extend([json!(model_input), model_output]);
    row.extend(output_parameters.iter().map(|(_, v)| json!(v)));
    let table = crate::webhooks::python_dumps(&json!({ "columns": columns, "data": [row] }));

    let id = run_id.clone();
    let logged = state
        .store(move |s| s.log_batch(&id, Vec::new(), params, run_tags))
        .await;
    let written = match logged {
        Ok(()) => write_table(&state, &run.info.artifact_uri, table).await,
        Err(e) => Err(e),
    };
    let status = if written.is_ok() {
        RunStatus::Finished
    } else {
        RunStatus::Failed
    };
    if let Err(e) = &written {
        tracing::error!("prompt-lab run {run_id} failed: {}", e.0.message);
    }
    let id = run_id.clone();
    state
        .store(move |s| {
            s.update_run(
                &id,
                RunUpdate {
                    status: Some(status),
                    end_time: Some(now_ms()),
                    run_name: None,
                },
            )
        })
        .await?;
    let run = state.store(move |s| s.get_run(&run_id)).await?;
    Ok(Json(json!({ "run": run })))
}

async fn write_table(state: &AppState, artifact_uri: &str, table: String) -> ApiResult<()> {
    let root = wasmflow_artifacts::proxied_path_of(artifact_uri).ok_or_else(|| {
        ApiError::invalid(format!(
            "artifact uri '{artifact_uri}' is not served by this server's artifact proxy"
        ))
    })?;
    let path = format!("{}/eval_results_table.json", root.trim_end_matches('/'));
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(table)) });
    state.artifacts()?.put(&path, Box::pin(body)).await?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
