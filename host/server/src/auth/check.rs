//! The middleware in front of every route when auth is on: authenticate, look the request up in
//! [`rules::RULES`], check the user's permission on the resource it names, and after a
//! successful answer do what the rule says (grant the creator MANAGE, move or drop grants,
//! take unreadable entries out of search results). Admins pass every check.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use wasmflow_core::{Error, ErrorCode, Result};
use wasmflow_store::auth::User;
use wasmflow_store::registry::{ModelUri, parse_model_uri};

use super::Auth;
use super::permission::{self, Access};
use super::rules::{self, After, Filtered, Need};
use crate::error::ApiError;
use crate::request::query_to_json;

/// MLflow's answers, word for word: the 401 makes browsers show their login prompt.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"mlflow\"")],
        "You are not authenticated. Please see \
         https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow \
         on how to authenticate.",
    )
        .into_response()
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "Permission denied").into_response()
}

pub(super) async fn blocking<T: Send + 'static>(
    auth: &Arc<Auth>,
    f: impl FnOnce(&Auth) -> Result<T> + Send + 'static,
) -> Result<T> {
    let auth = auth.clone();
    tokio::task::spawn_blocking(move || f(&auth))
        .await
        .map_err(|e| Error::internal(format!("auth task failed: {e}")))?
}

pub async fn check(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let rule = rules::find(req.method(), req.uri().path());
    let need = rule.map(|r| r.need);
    if need == Some(Need::Public) {
        return next.run(req).await;
    }
    let after = rule.map_or(After::Nothing, |r| r.after);
    let (mut parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let user = match blocking(&auth, move |a| a.authenticate(&headers)).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthorized(),
        Err(e) => return ApiError(e).into_response(),
    };
    // The registry's history records who signed in, never a name the client chose.
    parts.headers.remove("x-wasmflow-user");

    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let needs_params = !user.is_admin || after != After::Nothing;
    let (body, mut params) = if needs_params && reads_params(need, after) {
        match read_params(&method, parts.uri.query(), body).await {
            Ok(read) => read,
            Err(e) => return ApiError(e).into_response(),
        }
    } else {
        (body, Value::Object(Map::new()))
    };
    let mut body = body;
    // OTLP names its experiment in a header, which the rule reads as `experiment_id`.
    if path == "/v1/traces" {
        let header = parts
            .headers
            .get(crate::traces::EXPERIMENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        params = serde_json::json!({ "experiment_id": header });
    }

    if !user.is_admin {
        let Some(need) = need else {
            return forbidden();
        };
        let (u, p, pa) = (user.clone(), params.clone(), path.clone());
        match blocking(&auth, move |a| authorize(a, &u, need, &p, &pa)).await {
            Ok(true) => {}
            Ok(false) => return forbidden(),
            Err(e) => return ApiError(e).into_response(),
        }
        if need == Need::SearchRuns {
            let (u, p) = (user.clone(), params.clone());
            let readable = match blocking(&auth, move |a| readable_experiments(a, &u, &p)).await {
                Ok(ids) => ids,
                Err(e) => return ApiError(e).into_response(),
            };
            if readable.is_empty() {
                // Nothing the user may read: MLflow's answer to a search that found nothing.
                return axum::Json(Value::Object(Map::new())).into_response();
            }
            params["experiment_ids"] = Value::from(readable);
            if method == Method::GET {
                parts.uri = match with_query_ids(&parts.uri, &params["experiment_ids"]) {
                    Ok(uri) => uri,
                    Err(e) => return ApiError(e).into_response(),
                };
            } else {
                body = Body::from(params.to_string());
                parts.headers.remove(header::CONTENT_LENGTH);
            }
        }
    }

    // The auth API's handlers answer for the sender.
    parts.extensions.insert(user.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    if !response.status().is_success() || after == After::Nothing {
        return response;
    }
    match finish(&auth, user, after, params, response).await {
        Ok(response) => response,
        Err(e) => ApiError(e).into_response(),
    }
}

/// Whether the rule looks at the request's fields (the rest need only the path or the user).
fn reads_params(need: Option<Need>, after: After) -> bool {
    let need_reads = !matches!(
        need,
        None | Some(
            Need::Public
                | Need::Authenticated
                | Need::Admin
                | Need::LoggedModel(_)
                | Need::EvalDataset(_)
                | Need::ServedModel
        )
    );
    need_reads || matches!(after, After::RenameModelGrants | After::DeleteModelGrants)
}

/// The request's fields: the query string, with a JSON body's fields over it. The body is read
/// (up to the API's limit) and handed on unchanged.
pub(super) async fn read_params(
    method: &Method,
    query: Option<&str>,
    body: Body,
) -> Result<(Body, Value)> {
    let mut params = query_to_json(query.unwrap_or(""));
    // The artifact proxy's uploads stream; only the JSON endpoints' bodies are read.
    if *method == Method::GET || *method == Method::PUT {
        return Ok((body, params));
    }
    let bytes: Bytes = axum::body::to_bytes(body, crate::app::MAX_JSON_BODY)
        .await
        .map_err(|e| Error::invalid(format!("cannot read the request body: {e}")))?;
    // Decoded exactly as the handlers decode it (a double-encoded string body included): a
    // check that read other fields than the handler could be passed on one experiment and act
    // on another.
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    let fields = match crate::request::body_to_json(&bytes) {
        Ok(Value::Object(fields)) if !empty => Some(fields),
        _ => None,
    };
    match fields {
        // As MLflow's auth app: a POST or PATCH with a JSON body is judged by that body alone,
        // which is all its handler reads; a query string beside it must not vouch for it. An
        // empty or raw body (`upload-artifact`) leaves the query string, which its handler reads.
        Some(fields) if *method == Method::POST || *method == Method::PATCH => {
            params = Value::Object(fields);
        }
        Some(fields) => {
            let map = params
                .as_object_mut()
                .expect("query_to_json answers an object");
            map.extend(fields);
        }
        None => {}
    }
    Ok((Body::from(bytes), params))
}

fn text<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// MLflow's answer when a validator misses the field it needs.
fn required<'a>(params: &'a Value, name: &str) -> Result<&'a str> {
    text(params, name).ok_or_else(|| {
        Error::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more \
             information about request parameters."
        ))
    })
}

/// A list field that a query string carries as one value when it has one item.
fn list(params: &Value, name: &str) -> Vec<String> {
    match params.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a user who is not an admin may make the request.
fn authorize(auth: &Auth, user: &User, need: Need, params: &Value, path: &str) -> Result<bool> {
    let experiment = |id: &str| auth.permission(user, "experiment", id);
    let model = |name: &str| auth.permission(user, "registered_model", name);
    // A run or logged model that does not exist is refused, as MLflow refuses it: the answer
    // must not tell which ids exist.
    let run = |id: &str, access: Access| -> Result<bool> {
        match auth.tracking.get_run(id) {
            Ok(run) => Ok(experiment(&run.info.experiment_id)?.allows(access)),
            Err(e) if e.code == ErrorCode::ResourceDoesNotExist => Ok(false),
            Err(e) => Err(e),
        }
    };
    let logged_model = |id: &str, access: Access| -> Result<bool> {
        match auth.tracking.get_logged_model(id) {
            Ok(m) => Ok(experiment(&m.info.experiment_id)?.allows(access)),
            Err(e) if e.code == ErrorCode::ResourceDoesNotExist => Ok(false),
            Err(e) => Err(e),
        }
    };
    // A dataset is reached through the experiments it belongs to; one in none (or unknown)
    // is refused, as MLflow refuses it.
    let eval_dataset = |access: Access| -> Result<bool> {
        let Some(id) = rules::segment_after(path, "datasets") else {
            return Ok(false);
        };
        let ids = auth.datasets.eval_dataset_experiment_ids(&id)?;
        let mut ok = !ids.is_empty();
        for id in &ids {
            ok = ok && experiment(id)?.allows(access);
        }
        Ok(ok)
    };
    // A trace that does not exist is refused, as a run is.
    let trace = |id: &str, access: Access| -> Result<bool> {
        match auth.traces.get_trace_info(id) {
            Ok(t) => Ok(experiment(&t.experiment_id)?.allows(access)),
            Err(e) if e.code == ErrorCode::ResourceDoesNotExist => Ok(false),
            Err(e) => Err(e),
        }
    };
    let traces = |access: Access| -> Result<bool> {
        let mut ok = true;
        for id in list(params, "trace_ids") {
            ok = ok && trace(&id, access)?;
        }
        Ok(ok)
    };
    Ok(match need {
        Need::Trace(access) => {
            match rules::trace_in_path(path) {
                Some(id) => trace(&id, access)?,
                // Handlers read one or the other (`get-trace-artifact` reads `request_id`):
                // every one given must pass, so one trace cannot vouch for another.
                None => {
                    let ids: Vec<&str> = ["trace_id", "request_id"]
                        .into_iter()
                        .filter_map(|name| text(params, name))
                        .collect();
                    if ids.is_empty() {
                        required(params, "trace_id")?;
                    }
                    let mut ok = true;
                    for id in ids {
                        ok = ok && trace(id, access)?;
                    }
                    ok
                }
            }
        }
        Need::Traces(access) => traces(access)?,
        Need::LinkTraces => {
            run(required(params, "run_id")?, Access::Update)? && traces(Access::Read)?
        }
        Need::StartTrace => {
            let id = params
                .pointer("/trace/trace_info/trace_location/mlflow_experiment/experiment_id")
                .and_then(Value::as_str)
                .ok_or_else(|| required(params, "trace").unwrap_err())?;
            experiment(id)?.allows(Access::Update)
        }
        Need::TraceLocations => {
            let mut ok = true;
            if let Some(Value::Array(locations)) = params.get("locations") {
                for loc in locations {
                    match loc
                        .pointer("/mlflow_experiment/experiment_id")
                        .and_then(Value::as_str)
                    {
                        Some(id) => ok = ok && experiment(id)?.allows(Access::Read),
                        None => ok = false,
                    }
                }
            }
            ok
        }
        Need::Public | Need::Authenticated | Need::SearchRuns => true,
        Need::Admin => false,
        Need::SelfOrAdmin => required(params, "username")? == user.username,
        Need::Experiment(access) => experiment(required(params, "experiment_id")?)?.allows(access),
        Need::ExperimentByName(access) => {
            let name = required(params, "experiment_name")?;
            let found = auth.tracking.get_experiment_by_name(name).map_err(|e| {
                if e.code == ErrorCode::ResourceDoesNotExist {
                    Error::not_found(format!("Could not find experiment with name {name}"))
                } else {
                    e
                }
            })?;
            experiment(&found.experiment_id)?.allows(access)
        }
        Need::Run(access) => {
            let id = text(params, "run_id")
                .or_else(|| text(params, "run_uuid"))
                .ok_or_else(|| required(params, "run_id").unwrap_err())?;
            run(id, access)? && {
                // Metrics logged to a logged model write to that model's experiment too.
                let mut ok = true;
                for id in model_ids(params) {
                    ok = ok && logged_model(&id, access)?;
                }
                ok
            }
        }
        Need::Runs(access) => {
            let mut ids = list(params, "run_ids");
            ids.extend(list(params, "run_id"));
            let mut ok = true;
            for id in &ids {
                ok = ok && run(id, access)?;
            }
            ok
        }
        Need::Experiments(access) => {
            let mut ok = true;
            for id in list(params, "experiment_ids") {
                ok = ok && experiment(&id)?.allows(access);
            }
            ok
        }
        Need::ScopedExperiments(access) => {
            let ids = list(params, "experiment_ids");
            let mut ok = !ids.is_empty();
            for id in &ids {
                ok = ok && experiment(id)?.allows(access);
            }
            ok
        }
        Need::EvalDataset(access) => eval_dataset(access)?,
        Need::AddEvalDatasetToExperiments => {
            let added = list(params, "experiment_ids");
            let mut ok = eval_dataset(Access::Update)? && !added.is_empty();
            for id in &added {
                ok = ok && experiment(id)?.allows(Access::Update);
            }
            ok
        }
        Need::LoggedModel(access) => match rules::segment_after(path, "logged-models") {
            Some(id) => logged_model(&id, access)?,
            None => false,
        },
        Need::RegisteredModel(access) => model(required(params, "name")?)?.allows(access),
        Need::CreateModelVersion => {
            model(required(params, "name")?)?.allows(Access::Update)
                && match text(params, "run_id") {
                    Some(id) => run(id, Access::Read)?,
                    None => true,
                }
                && match text(params, "model_id") {
                    Some(id) => logged_model(id, Access::Read)?,
                    None => true,
                }
        }
        Need::ModelUri => match parse_model_uri(required(params, "uri")?) {
            Ok(ModelUri::LoggedModel { model_id }) => logged_model(&model_id, Access::Read)?,
            Ok(
                ModelUri::Version { name, .. }
                | ModelUri::Stage { name, .. }
                | ModelUri::Latest { name }
                | ModelUri::Alias { name, .. },
            ) => model(&name)?.allows(Access::Read),
            // The handler answers a malformed URI with MLflow's 400.
            Err(_) => true,
        },
        Need::ServedModel => match rules::segment_after(path, "models") {
            // `/serving/models/<name>@<alias>/invocations`: the model is the part before the
            // last `@`, as the handler splits it (else the grant of a model named
            // "name@alias", i.e. the default, would decide).
            Some(segment) if path.matches('/').count() == 4 => match segment.rsplit_once('@') {
                Some((name, _)) => model(name)?.allows(Access::Read),
                None => false,
            },
            Some(name) => model(&name)?.allows(Access::Read),
            None => false,
        },
        Need::ArtifactProxy(access) => {
            let artifact_path = match path.split_once("/mlflow-artifacts/artifacts/") {
                Some((_, rest)) => percent_encoding::percent_decode_str(rest)
                    .decode_utf8_lossy()
                    .into_owned(),
                None => text(params, "path").unwrap_or("").to_string(),
            };
            match proxied_experiment(&artifact_path) {
                Err(()) => false,
                Ok(Some(id)) => experiment(&id)?.allows(access),
                // Outside any experiment (the root listing): the default permission decides.
                Ok(None) => auth.default_permission.allows(access),
            }
        }
        Need::ManageResource => {
            let resource_type = required(params, "resource_type")?;
            permission::validate_resource_type(resource_type)?;
            let resource_id = required(params, "resource_id")?;
            // A grant on every resource of a type is an admin's to give.
            resource_id != "*"
                && auth
                    .permission(user, resource_type, resource_id)?
                    .allows(Access::Manage)
        }
    })
}

/// The logged models a logging request writes to.
fn model_ids(params: &Value) -> Vec<String> {
    let mut ids: Vec<String> = text(params, "model_id")
        .map(str::to_string)
        .into_iter()
        .collect();
    for field in ["metrics", "models"] {
        if let Some(Value::Array(items)) = params.get(field) {
            ids.extend(
                items
                    .iter()
                    .filter_map(|m| m.get("model_id").and_then(Value::as_str))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// The experiment a proxied artifact path (`<experiment_id>/<run_id>/artifacts/...`) lies in;
/// `Err` for a path that is not plainly relative (`..`, `.`, backslashes), which is refused
/// rather than judged by a first segment it might climb out of.
fn proxied_experiment(artifact_path: &str) -> std::result::Result<Option<String>, ()> {
    if artifact_path.contains('\\') {
        return Err(());
    }
    let segments: Vec<&str> = artifact_path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(());
    }
    Ok(segments
        .first()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .map(|s| s.to_string()))
}

/// The request's experiment ids that the user may read.
fn readable_experiments(auth: &Auth, user: &User, params: &Value) -> Result<Vec<String>> {
    let can_read = auth.readable(user, "experiment")?;
    Ok(list(params, "experiment_ids")
        .into_iter()
        .filter(|id| can_read(id))
        .collect())
}

/// The URI with its `experiment_ids` replaced.
fn with_query_ids(uri: &axum::http::Uri, ids: &Value) -> Result<axum::http::Uri> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "experiment_ids" {
            query.append_pair(&k, &v);
        }
    }
    for id in ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        query.append_pair("experiment_ids", id);
    }
    format!("{}?{}", uri.path(), query.finish())
        .parse()
        .map_err(|e| Error::internal(format!("cannot rebuild the search query: {e}")))
}

/// What follows a successful answer.
async fn finish(
    auth: &Arc<Auth>,
    user: User,
    after: After,
    params: Value,
    response: Response,
) -> Result<Response> {
    match after {
        After::Nothing => Ok(response),
        After::RenameModelGrants => {
            let (old, new) = (
                required(&params, "name")?.to_string(),
                required(&params, "new_name")?.to_string(),
            );
            blocking(auth, move |a| {
                a.users.rename_grants("registered_model", &old, &new)
            })
            .await?;
            Ok(response)
        }
        After::DeleteModelGrants => {
            let name = required(&params, "name")?.to_string();
            blocking(auth, move |a| {
                a.users.delete_grants("registered_model", &name)
            })
            .await?;
            Ok(response)
        }
        After::GrantExperimentCreator | After::GrantModelCreator => {
            let (parts, json) = read_json(response).await?;
            let (resource_type, id) = if after == After::GrantExperimentCreator {
                ("experiment", json.get("experiment_id"))
            } else {
                ("registered_model", json.pointer("/registered_model/name"))
            };
            if let Some(id) = id.and_then(Value::as_str).map(str::to_string) {
                blocking(auth, move |a| a.grant_creator(&user, resource_type, &id)).await?;
            }
            Ok(json_response(parts, &json))
        }
        After::Filter(_) if user.is_admin => Ok(response),
        After::Filter(filtered) => {
            let (parts, mut json) = read_json(response).await?;
            let json = blocking(auth, move |a| {
                filter(a, &user, filtered, &mut json)?;
                Ok(json)
            })
            .await?;
            Ok(json_response(parts, &json))
        }
    }
}

/// Takes the unreadable entries out of a search answer. Pages may come back shorter than
/// `max_results`; the page token still leads on.
fn filter(auth: &Auth, user: &User, filtered: Filtered, json: &mut Value) -> Result<()> {
    let (resource_type, list, id_at) = match filtered {
        Filtered::Experiments => ("experiment", "experiments", "/experiment_id"),
        Filtered::LoggedModels => ("experiment", "models", "/info/experiment_id"),
        Filtered::RegisteredModels => ("registered_model", "registered_models", "/name"),
        Filtered::ModelVersions => ("registered_model", "model_versions", "/name"),
        Filtered::RunCounts => {
            let can_read = auth.readable(user, "experiment")?;
            if let Some(Value::Object(counts)) = json.get_mut("run_counts") {
                counts.retain(|id, _| can_read(id));
            }
            return Ok(());
        }
    };
    let can_read = auth.readable(user, resource_type)?;
    if let Some(Value::Array(items)) = json.get_mut(list) {
        items.retain(|item| {
            item.pointer(id_at)
                .and_then(Value::as_str)
                .is_some_and(&can_read)
        });
    }
    Ok(())
}

async fn read_json(response: Response) -> Result<(axum::http::response::Parts, Value)> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Error::internal(format!("cannot read an answer: {e}")))?;
    let json = serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("an answer is not JSON: {e}")))?;
    Ok((parts, json))
}

fn json_response(mut parts: axum::http::response::Parts, json: &Value) -> Response {
    let body = json.to_string();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths_name_their_experiment() {
        assert_eq!(
            proxied_experiment("1/abc/artifacts/model.pkl"),
            Ok(Some("1".into()))
        );
        assert_eq!(proxied_experiment("/12/"), Ok(Some("12".into())));
        assert_eq!(proxied_experiment(""), Ok(None));
        assert_eq!(proxied_experiment("models/x"), Ok(None));
        assert_eq!(proxied_experiment("1/../2/abc"), Err(()));
        assert_eq!(proxied_experiment("1/./x"), Err(()));
        assert_eq!(proxied_experiment("1\\..\\2"), Err(()));
    }

    #[test]
    fn logging_requests_name_their_models() {
        let params = serde_json::json!({
            "run_id": "r",
            "metrics": [{"key": "a", "model_id": "m-2"}, {"key": "b"}, {"model_id": "m-1"}],
            "model_id": "m-2",
        });
        assert_eq!(
            model_ids(&params),
            vec!["m-1".to_string(), "m-2".to_string()]
        );
    }

    #[test]
    fn query_ids_are_replaced() {
        let uri: axum::http::Uri =
            "/api/2.0/mlflow/runs/search?experiment_ids=1&experiment_ids=2&max_results=5"
                .parse()
                .unwrap();
        let uri = with_query_ids(&uri, &serde_json::json!(["2"])).unwrap();
        assert_eq!(uri.query(), Some("max_results=5&experiment_ids=2"));
    }
}
