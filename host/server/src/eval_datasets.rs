//! MLflow 3's GenAI evaluation datasets API (`/api/3.0/mlflow/datasets/*`, `datasets.proto`),
//! which `mlflow.genai.datasets` and `EvaluationDataset.merge_records`/`to_df` call. Tags,
//! records and schemas travel as JSON texts inside the JSON messages, as MLflow sends them.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use wasmflow_core::search;
use wasmflow_store::eval_datasets::{
    EvalDataset, EvalDatasetSearch, NewRecord, RECORDS_MAX_RESULTS_DEFAULT, RecordCursor,
    SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD, parse_tags, python_json,
};

use crate::error::{ApiError, ApiResult};
use crate::request::{body_to_json, from_json, query_to_json, required};
use crate::state::AppState;

/// Mounted at `/api/3.0/mlflow/datasets` and `/ajax-api/3.0/mlflow/datasets`.
pub fn router() -> Router<AppState> {
    let api = || {
        Router::new()
            .route("/create", post(create))
            .route("/search", post(search_datasets).get(search_datasets))
            .route("/{dataset_id}", get(get_dataset).delete(delete_dataset))
            .route("/{dataset_id}/tags", axum::routing::patch(set_tags))
            .route(
                "/{dataset_id}/tags/{key}",
                axum::routing::delete(delete_tag),
            )
            .route(
                "/{dataset_id}/records",
                get(get_records).post(upsert_records).delete(delete_records),
            )
            .route("/{dataset_id}/experiment-ids", get(experiment_ids))
            .route("/{dataset_id}/add-experiments", post(add_experiments))
            .route("/{dataset_id}/remove-experiments", post(remove_experiments))
    };
    Router::new()
        .nest("/api/3.0/mlflow/datasets", api())
        .nest("/ajax-api/3.0/mlflow/datasets", api())
}

/// The message: the query string of a GET (as the client sends GetDatasetRecords), the JSON
/// body otherwise (DELETE included: DeleteDatasetRecords carries its ids there).
fn message<T: DeserializeOwned>(method: &Method, uri: &Uri, body: &Bytes) -> ApiResult<T> {
    let query = uri.query().unwrap_or("");
    let value = if method == Method::GET || body.iter().all(u8::is_ascii_whitespace) {
        query_to_json(query)
    } else {
        body_to_json(body)?
    };
    from_json(value)
}

/// A proto int64 a query string or a JSON body may carry as text.
fn de_opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected an integer, got '{s}'")))?,
        ),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected an integer, got '{other}'"
            )));
        }
    })
}

/// A repeated string field: a list in JSON, one value or a repeated key in a query string.
fn de_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string, got '{other}'"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a list of strings, got '{other}'"
            )));
        }
    })
}

fn dataset_json(dataset: &EvalDataset) -> Json<Value> {
    Json(json!({ "dataset": dataset.to_json() }))
}

#[derive(Deserialize)]
struct Create {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_strings")]
    experiment_ids: Vec<String>,
    tags: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Create = message(&method, &uri, &body)?;
    let name = required(m.name, "name")?;
    let tags = match m.tags.filter(|t| !t.is_empty()) {
        Some(text) => parse_tags(&text)?,
        None => Vec::new(),
    };
    let experiments = m.experiment_ids;
    let dataset = state
        .eval_datasets_call(move |s| s.create_eval_dataset(&name, tags, experiments))
        .await?;
    Ok(dataset_json(&dataset))
}

async fn get_dataset(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let dataset = state
        .eval_datasets_call(move |s| s.get_eval_dataset(&dataset_id))
        .await?;
    Ok(dataset_json(&dataset))
}

async fn delete_dataset(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .eval_datasets_call(move |s| s.delete_eval_dataset(&dataset_id))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Search {
    #[serde(default, deserialize_with = "de_strings")]
    experiment_ids: Vec<String>,
    filter_string: Option<String>,
    #[serde(default, deserialize_with = "de_opt_int")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_strings")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

async fn search_datasets(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Search = message(&method, &uri, &body)?;
    let max_results = match m.max_results {
        None | Some(0) => SEARCH_MAX_RESULTS_DEFAULT,
        Some(n) if n < 0 => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
                 integer"
            )));
        }
        Some(n) if n as u64 > SEARCH_MAX_RESULTS_THRESHOLD as u64 => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be at most \
                 {SEARCH_MAX_RESULTS_THRESHOLD}"
            )));
        }
        Some(n) => n as usize,
    };
    let search = EvalDatasetSearch {
        experiment_ids: m.experiment_ids,
        filter: search::parse_evaluation_dataset_filter(m.filter_string.as_deref().unwrap_or(""))?,
        order_by: m
            .order_by
            .iter()
            .map(|o| search::parse_evaluation_dataset_order_by(o))
            .collect::<Result<_, _>>()?,
        max_results,
        page_token: m.page_token.filter(|t| !t.is_empty()),
    };
    let page = state
        .eval_datasets_call(move |s| s.search_eval_datasets(&search))
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        body["datasets"] = Value::Array(page.items.iter().map(EvalDataset::to_json).collect());
    }
    if let Some(token) = page.next_page_token {
        body["next_page_token"] = json!(token);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct Tags {
    tags: Option<String>,
}

async fn set_tags(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Tags = message(&method, &uri, &body)?;
    let tags = parse_tags(&required(m.tags, "tags")?)?;
    state
        .eval_datasets_call(move |s| s.set_eval_dataset_tags(&dataset_id, tags))
        .await?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(state): State<AppState>,
    Path((dataset_id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state
        .eval_datasets_call(move |s| s.delete_eval_dataset_tag(&dataset_id, &key))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct Upsert {
    records: Option<String>,
}

async fn upsert_records(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Upsert = message(&method, &uri, &body)?;
    let text = required(m.records, "records")?;
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::invalid(format!("'records' must be a JSON list of records: {e}")))?;
    let Value::Array(items) = parsed else {
        return Err(ApiError::invalid(format!(
            "'records' must be a JSON list of records, got '{parsed}'"
        )));
    };
    let records = items
        .into_iter()
        .map(NewRecord::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    let counts = state
        .eval_datasets_call(move |s| s.upsert_eval_dataset_records(&dataset_id, records))
        .await?;
    Ok(Json(json!({
        "inserted_count": counts.inserted,
        "updated_count": counts.updated,
    })))
}

#[derive(Deserialize)]
struct GetRecords {
    #[serde(default, deserialize_with = "de_opt_int")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// MLflow's records cursor: base64 of `created_time:dataset_record_id`.
fn decode_cursor(token: &str) -> ApiResult<RecordCursor> {
    let bad = || ApiError::invalid(format!("invalid page token '{token}'"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (time, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_string()))
}

fn encode_cursor((time, id): &RecordCursor) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{time}:{id}"))
}

async fn get_records(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: GetRecords = message(&method, &uri, &body)?;
    let max_results = match m.max_results {
        None | Some(0) => RECORDS_MAX_RESULTS_DEFAULT,
        Some(n) if n < 0 => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
                 integer"
            )));
        }
        Some(n) => n as usize,
    };
    let after = match m.page_token.filter(|t| !t.is_empty()) {
        Some(token) => Some(decode_cursor(&token)?),
        None => None,
    };
    let page = state
        .eval_datasets_call(move |s| s.eval_dataset_records(&dataset_id, max_results, after))
        .await?;
    let mut body = json!({ "records": python_json(&Value::Array(page.records)) });
    if let Some(cursor) = &page.next {
        body["next_page_token"] = json!(encode_cursor(cursor));
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct DeleteRecords {
    #[serde(default, deserialize_with = "de_strings")]
    dataset_record_ids: Vec<String>,
}

async fn delete_records(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: DeleteRecords = message(&method, &uri, &body)?;
    let ids = m.dataset_record_ids;
    let deleted = state
        .eval_datasets_call(move |s| s.delete_eval_dataset_records(&dataset_id, &ids))
        .await?;
    Ok(Json(json!({ "deleted_count": deleted })))
}

async fn experiment_ids(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let ids = state
        .eval_datasets_call(move |s| s.eval_dataset_experiment_ids(&dataset_id))
        .await?;
    Ok(Json(if ids.is_empty() {
        json!({})
    } else {
        json!({ "experiment_ids": ids })
    }))
}

#[derive(Deserialize)]
struct Experiments {
    #[serde(default, deserialize_with = "de_strings")]
    experiment_ids: Vec<String>,
}

async fn add_experiments(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Experiments = message(&method, &uri, &body)?;
    let ids = m.experiment_ids;
    let dataset = state
        .eval_datasets_call(move |s| s.add_eval_dataset_to_experiments(&dataset_id, &ids))
        .await?;
    Ok(dataset_json(&dataset))
}

async fn remove_experiments(
    State(state): State<AppState>,
    Path(dataset_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let m: Experiments = message(&method, &uri, &body)?;
    let ids = m.experiment_ids;
    let dataset = state
        .eval_datasets_call(move |s| s.remove_eval_dataset_from_experiments(&dataset_id, &ids))
        .await?;
    Ok(dataset_json(&dataset))
}
