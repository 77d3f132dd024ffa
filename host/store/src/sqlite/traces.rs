//! Traces in SQLite, and the [`TraceStore`] implementation.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::search::Value as SearchValue;
use wasmflow_core::{Error, Result};

use super::search_sql::compare;
use super::{SqliteStore, now_ms, sql_err};
use crate::traces::{
    ARTIFACT_LOCATION_TAG, AssessmentUpdate, DeletedTrace, NewSpan, SOURCE_RUN_METADATA,
    SPANS_IN_STORE, SPANS_LOCATION_TAG, StoredSpan, TRACE_NAME_TAG, TraceClause, TraceDeletion,
    TraceEnd, TraceInfo, TraceKey, TraceOp, TraceSearch, TraceStore, TraceValue, derived,
    trace_not_found,
};

/// Set by `start_trace`: the trace's own fields are final, later spans no longer change them.
const FINALIZED_METADATA: &str = "mlflow.trace.infoFinalized";

fn load_info(conn: &Connection, trace_id: &str) -> Result<Option<TraceInfo>> {
    let info = conn
        .prepare_cached(
            "SELECT trace_id, experiment_id, request_time, execution_duration, state,
                    client_request_id, request_preview, response_preview
             FROM trace_info WHERE trace_id = ?1",
        )
        .map_err(sql_err)?
        .query_row([trace_id], |r| {
            Ok(TraceInfo {
                trace_id: r.get(0)?,
                experiment_id: r.get::<_, i64>(1)?.to_string(),
                request_time: r.get(2)?,
                execution_duration: r.get(3)?,
                state: r.get(4)?,
                client_request_id: r.get(5)?,
                request_preview: r.get(6)?,
                response_preview: r.get(7)?,
                ..TraceInfo::default()
            })
        })
        .optional()
        .map_err(sql_err)?;
    let Some(mut info) = info else {
        return Ok(None);
    };
    info.tags = key_values(conn, "trace_tags", trace_id)?;
    info.trace_metadata = key_values(conn, "trace_metadata", trace_id)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT body FROM assessments WHERE trace_id = ?1 ORDER BY created, assessment_id",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([trace_id], |r| r.get::<_, String>(0))
        .map_err(sql_err)?;
    for row in rows {
        let body = row.map_err(sql_err)?;
        info.assessments.push(
            serde_json::from_str(&body)
                .map_err(|e| Error::internal(format!("stored assessment is not JSON: {e}")))?,
        );
    }
    Ok(Some(info))
}

/// The infos of `ids` (those that exist), in their order: one query per table for the whole
/// page rather than four per trace.
fn load_infos(conn: &Connection, ids: &[String]) -> Result<Vec<TraceInfo>> {
    let list = serde_json::to_string(ids).map_err(|e| Error::internal(e.to_string()))?;
    let mut by_id: HashMap<String, TraceInfo> = HashMap::with_capacity(ids.len());
    let mut stmt = conn
        .prepare_cached(
            "SELECT trace_id, experiment_id, request_time, execution_duration, state,
                    client_request_id, request_preview, response_preview
             FROM trace_info WHERE trace_id IN (SELECT value FROM json_each(?1))",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([&list], |r| {
            Ok(TraceInfo {
                trace_id: r.get(0)?,
                experiment_id: r.get::<_, i64>(1)?.to_string(),
                request_time: r.get(2)?,
                execution_duration: r.get(3)?,
                state: r.get(4)?,
                client_request_id: r.get(5)?,
                request_preview: r.get(6)?,
                response_preview: r.get(7)?,
                ..TraceInfo::default()
            })
        })
        .map_err(sql_err)?;
    for row in rows {
        let info = row.map_err(sql_err)?;
        by_id.insert(info.trace_id.clone(), info);
    }
    for table in ["trace_tags", "trace_metadata"] {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT trace_id, key, value FROM {table}
                 WHERE trace_id IN (SELECT value FROM json_each(?1))"
            ))
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([&list], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(sql_err)?;
        for row in rows {
            let (id, k, v) = row.map_err(sql_err)?;
            if let Some(info) = by_id.get_mut(&id) {
                let map = if table == "trace_tags" {
                    &mut info.tags
                } else {
                    &mut info.trace_metadata
                };
                map.insert(k, v.unwrap_or_default());
            }
        }
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT trace_id, body FROM assessments
             WHERE trace_id IN (SELECT value FROM json_each(?1))
             ORDER BY created, assessment_id",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([&list], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (id, body) = row.map_err(sql_err)?;
        if let Some(info) = by_id.get_mut(&id) {
            info.assessments.push(
                serde_json::from_str(&body)
                    .map_err(|e| Error::internal(format!("stored assessment is not JSON: {e}")))?,
            );
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn key_values(conn: &Connection, table: &str, trace_id: &str) -> Result<BTreeMap<String, String>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT key, value FROM {table} WHERE trace_id = ?1"
        ))
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([trace_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(sql_err)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (k, v) = row.map_err(sql_err)?;
        out.insert(k, v.unwrap_or_default());
    }
    Ok(out)
}

fn put_key_value(
    conn: &Connection,
    table: &str,
    trace_id: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO {table} (trace_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value"
    ))
    .map_err(sql_err)?
    .execute(params![trace_id, key, value])
    .map_err(sql_err)?;
    Ok(())
}

fn exists(conn: &Connection, trace_id: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM trace_info WHERE trace_id = ?1")
        .map_err(sql_err)?
        .query_row([trace_id], |_| Ok(()))
        .optional()
        .map_err(sql_err)
        .map(|r| r.is_some())
}

/// Whether the trace exists; one that exists in another experiment is refused: a write must
/// not move or add to a trace of an experiment the caller was not checked against.
fn exists_in(conn: &Connection, trace_id: &str, experiment: i64) -> Result<bool> {
    let stored: Option<i64> = conn
        .prepare_cached("SELECT experiment_id FROM trace_info WHERE trace_id = ?1")
        .map_err(sql_err)?
        .query_row([trace_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    match stored {
        Some(stored) if stored != experiment => Err(Error::invalid(format!(
            "trace '{trace_id}' belongs to experiment '{stored}', not '{experiment}'"
        ))),
        stored => Ok(stored.is_some()),
    }
}

fn experiment_id_number(experiment_id: &str) -> Result<i64> {
    experiment_id
        .parse()
        .map_err(|_| Error::invalid(format!("invalid experiment id '{experiment_id}'")))
}

fn start_trace(
    conn: &Connection,
    info: &TraceInfo,
    artifact_location: &str,
    finalize: bool,
) -> Result<TraceInfo> {
    let experiment = experiment_id_number(&info.experiment_id)?;
    if exists_in(conn, &info.trace_id, experiment)? {
        // Spans came first (`log_spans`): the client's record is the final word on its fields.
        conn.prepare_cached(
            "UPDATE trace_info SET experiment_id = ?2, request_time = ?3, execution_duration = ?4,
                 state = ?5, client_request_id = ?6,
                 request_preview = COALESCE(?7, request_preview),
                 response_preview = COALESCE(?8, response_preview)
             WHERE trace_id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![
            info.trace_id,
            experiment,
            info.request_time,
            info.execution_duration,
            info.state,
            info.client_request_id,
            info.request_preview,
            info.response_preview
        ])
        .map_err(sql_err)?;
    } else {
        conn.prepare_cached(
            "INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration,
                 state, client_request_id, request_preview, response_preview)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql_err)?
        .execute(params![
            info.trace_id,
            experiment,
            info.request_time,
            info.execution_duration,
            info.state,
            info.client_request_id,
            info.request_preview,
            info.response_preview
        ])
        .map_err(sql_err)?;
        put_key_value(
            conn,
            "trace_tags",
            &info.trace_id,
            ARTIFACT_LOCATION_TAG,
            artifact_location,
        )?;
    }
    // The artifact location is the server's alone: the server reads the trace's files there.
    for (k, v) in info
        .tags
        .iter()
        .filter(|(k, _)| *k != ARTIFACT_LOCATION_TAG)
    {
        put_key_value(conn, "trace_tags", &info.trace_id, k, v)?;
    }
    for (k, v) in &info.trace_metadata {
        put_key_value(conn, "trace_metadata", &info.trace_id, k, v)?;
    }
    if finalize {
        put_key_value(
            conn,
            "trace_metadata",
            &info.trace_id,
            FINALIZED_METADATA,
            "true",
        )?;
    }
    for assessment in &info.assessments {
        let mut assessment = assessment.clone();
        assessment["trace_id"] = Value::String(info.trace_id.clone());
        insert_assessment(conn, &assessment)?;
    }
    load_info(conn, &info.trace_id)?.ok_or_else(|| trace_not_found(&info.trace_id))
}

fn log_spans(
    conn: &Connection,
    experiment_id: &str,
    spans: &[NewSpan],
    artifact_root: &str,
) -> Result<()> {
    let experiment = experiment_id_number(experiment_id)?;
    let mut by_trace: BTreeMap<&str, Vec<&NewSpan>> = BTreeMap::new();
    for span in spans {
        by_trace
            .entry(span.trace_id.as_str())
            .or_default()
            .push(span);
    }
    for (trace_id, group) in &by_trace {
        exists_in(conn, trace_id, experiment)?;
        let start_ms = group.iter().map(|s| s.start_time_ns).min().unwrap_or(0) / 1_000_000;
        let root = group.iter().find(|s| s.parent_span_id.is_none());
        let end_ms = root.and_then(|r| r.end_time_ns).map(|e| e / 1_000_000);
        let state = match root {
            Some(r) if r.status == "ERROR" => "ERROR",
            Some(_) => "OK",
            None => "IN_PROGRESS",
        };
        let root_attrs = root
            .map(|r| derived::attributes(&r.content))
            .unwrap_or_default();
        let request_preview = root_attrs
            .get(derived::SPAN_INPUTS)
            .map(|v| derived::preview(v, "user"));
        let response_preview = root_attrs
            .get(derived::SPAN_OUTPUTS)
            .map(|v| derived::preview(v, "assistant"));
        let finalized: Option<Option<String>> = conn
            .prepare_cached(
                "SELECT m.value FROM trace_info t LEFT JOIN trace_metadata m
                     ON m.trace_id = t.trace_id AND m.key = ?2
                 WHERE t.trace_id = ?1",
            )
            .map_err(sql_err)?
            .query_row(params![trace_id, FINALIZED_METADATA], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
        match finalized {
            None => {
                conn.prepare_cached(
                    "INSERT INTO trace_info (trace_id, experiment_id, request_time,
                         execution_duration, state, request_preview, response_preview)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql_err)?
                .execute(params![
                    trace_id,
                    experiment,
                    start_ms,
                    end_ms.map(|e| e - start_ms),
                    state,
                    request_preview,
                    response_preview,
                ])
                .map_err(sql_err)?;
                let location = format!(
                    "{}/{}",
                    artifact_root.trim_end_matches('/'),
                    crate::traces::trace_artifact_folder(trace_id)
                );
                put_key_value(
                    conn,
                    "trace_tags",
                    trace_id,
                    ARTIFACT_LOCATION_TAG,
                    &location,
                )?;
            }
            Some(None) if root.is_some() => {
                // Not finalized by the client: the root span says how the trace ended.
                conn.prepare_cached(
                    "UPDATE trace_info SET request_time = MIN(request_time, ?2),
                         execution_duration = ?3 - MIN(request_time, ?2), state = ?4,
                         request_preview = COALESCE(request_preview, ?5),
                         response_preview = COALESCE(response_preview, ?6)
                     WHERE trace_id = ?1",
                )
                .map_err(sql_err)?
                .execute(params![
                    trace_id,
                    start_ms,
                    end_ms.unwrap_or(start_ms),
                    state,
                    request_preview,
                    response_preview,
                ])
                .map_err(sql_err)?;
            }
            Some(_) if root.is_some() => {
                // Finalized: only what the client left empty is filled in.
                conn.prepare_cached(
                    "UPDATE trace_info SET
                         request_preview = COALESCE(request_preview, ?2),
                         response_preview = COALESCE(response_preview, ?3)
                     WHERE trace_id = ?1",
                )
                .map_err(sql_err)?
                .execute(params![trace_id, request_preview, response_preview])
                .map_err(sql_err)?;
            }
            Some(_) => {}
        }
        put_key_value(
            conn,
            "trace_tags",
            trace_id,
            SPANS_LOCATION_TAG,
            SPANS_IN_STORE,
        )?;
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, name, span_type, status,
                     start_time_ns, end_time_ns, content, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (trace_id, span_id) DO UPDATE SET
                     parent_span_id = excluded.parent_span_id, name = excluded.name,
                     span_type = excluded.span_type, status = excluded.status,
                     start_time_ns = excluded.start_time_ns, end_time_ns = excluded.end_time_ns,
                     content = excluded.content, body = excluded.body",
            )
            .map_err(sql_err)?;
        for s in group {
            insert
                .execute(params![
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.name,
                    s.span_type,
                    s.status,
                    s.start_time_ns,
                    s.end_time_ns,
                    s.content,
                    s.body
                ])
                .map_err(sql_err)?;
        }
        derive_from_spans(conn, trace_id, group, &root_attrs)?;
    }
    Ok(())
}

fn metadata_value(conn: &Connection, trace_id: &str, key: &str) -> Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM trace_metadata WHERE trace_id = ?1 AND key = ?2")
        .map_err(sql_err)?
        .query_row([trace_id, key], |r| r.get::<_, Option<String>>(0))
        .optional()
        .map_err(sql_err)
        .map(Option::flatten)
}

/// The trace's tags and metadata MLflow derives from its spans (see [`derived`]): the OTLP
/// resource's attributes and the root span's `mlflow.traceTag.*` as tags (the latter win),
/// the session and user where none is set, and token usage and cost summed over every span
/// stored for the trace unless the client's record (`StartTraceV3`) gave them.
fn derive_from_spans(
    conn: &Connection,
    trace_id: &str,
    group: &[&NewSpan],
    root_attrs: &serde_json::Map<String, Value>,
) -> Result<()> {
    if let Some(first) = group.iter().find(|s| !s.resource_tags.is_empty()) {
        for (k, v) in &first.resource_tags {
            put_key_value(conn, "trace_tags", trace_id, k, v)?;
        }
    }
    for (k, v) in derived::root_trace_tags(root_attrs) {
        if k != ARTIFACT_LOCATION_TAG && k != SPANS_LOCATION_TAG {
            put_key_value(conn, "trace_tags", trace_id, &k, &v)?;
        }
    }
    let attrs: Vec<serde_json::Map<String, Value>> = group
        .iter()
        .map(|s| derived::attributes(&s.content))
        .collect();
    for (key, find) in [
        (
            derived::SESSION_METADATA,
            derived::session_id as fn(&serde_json::Map<String, Value>) -> Option<String>,
        ),
        (derived::USER_METADATA, derived::user_id),
    ] {
        if let Some(value) = attrs.iter().find_map(find)
            && metadata_value(conn, trace_id, key)?.is_none()
        {
            put_key_value(conn, "trace_metadata", trace_id, key, &value)?;
        }
    }
    let has = |k: &str| attrs.iter().any(|a| a.get(k).is_some_and(Value::is_object));
    let (usage, cost) = (has(derived::CHAT_USAGE), has(derived::LLM_COST));
    if !usage && !cost {
        return Ok(());
    }
    let finalized = metadata_value(conn, trace_id, FINALIZED_METADATA)?.is_some();
    // Every span of the trace, not only this batch's: a parent that rolls up its children's
    // usage may arrive in another batch than they do.
    let mut stmt = conn
        .prepare_cached("SELECT span_id, parent_span_id, content FROM spans WHERE trace_id = ?1")
        .map_err(sql_err)?;
    let nodes: Vec<derived::Node> = stmt
        .query_map([trace_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?
        .map(|row| {
            row.map(|(id, parent, content)| {
                derived::Node::new(&id, parent.as_deref(), &derived::attributes(&content))
            })
        })
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    for (wanted, key, total) in [
        (
            usage,
            derived::TOKEN_USAGE_METADATA,
            derived::token_usage as fn(&[derived::Node]) -> Option<String>,
        ),
        (cost, derived::COST_METADATA, derived::cost),
    ] {
        if !wanted || (finalized && metadata_value(conn, trace_id, key)?.is_some()) {
            continue;
        }
        if let Some(value) = total(&nodes) {
            put_key_value(conn, "trace_metadata", trace_id, key, &value)?;
        }
    }
    Ok(())
}

fn to_value(value: &TraceValue) -> SearchValue {
    match value {
        TraceValue::Number(n) => SearchValue::Number(*n as f64),
        TraceValue::Str(s) => SearchValue::Str(s.clone()),
        TraceValue::List(l) => SearchValue::List(l.clone()),
        TraceValue::None => SearchValue::None,
    }
}

/// The SQL condition of one clause on `trace_info t`.
fn condition(clause: &TraceClause, params: &mut Vec<SqlValue>) -> Result<String> {
    let op = clause.op;
    let value = to_value(&clause.value);
    let keyed = |table: &str, key: &str, params: &mut Vec<SqlValue>| -> Result<String> {
        params.push(SqlValue::Text(key.to_string()));
        Ok(match clause.op {
            TraceOp::IsNull => format!(
                "NOT EXISTS (SELECT 1 FROM {table} k WHERE k.trace_id = t.trace_id AND k.key = ?)"
            ),
            TraceOp::IsNotNull => format!(
                "EXISTS (SELECT 1 FROM {table} k WHERE k.trace_id = t.trace_id AND k.key = ?)"
            ),
            _ => format!(
                "EXISTS (SELECT 1 FROM {table} k WHERE k.trace_id = t.trace_id AND k.key = ? AND {})",
                compare("k.value", op, &value, params)?
            ),
        })
    };
    match &clause.key {
        TraceKey::Numeric("end_time") => compare(
            "(t.request_time + t.execution_duration)",
            op,
            &value,
            params,
        ),
        TraceKey::Numeric(column) | TraceKey::Column(column) => {
            compare(&format!("t.{column}"), op, &value, params)
        }
        TraceKey::Tag(key) => keyed("trace_tags", key, params),
        TraceKey::Metadata(key) => keyed("trace_metadata", key, params),
        TraceKey::RunId => {
            let mut inner = Vec::new();
            let by_metadata = compare("k.value", op, &value, &mut inner)?;
            let by_link = compare("l.run_id", op, &value, &mut inner.clone())?;
            params.push(SqlValue::Text(SOURCE_RUN_METADATA.into()));
            params.extend(inner.clone());
            params.extend(inner);
            Ok(format!(
                "(EXISTS (SELECT 1 FROM trace_metadata k WHERE k.trace_id = t.trace_id \
                 AND k.key = ? AND {by_metadata}) OR EXISTS (SELECT 1 FROM trace_runs l \
                 WHERE l.trace_id = t.trace_id AND {by_link}))"
            ))
        }
        TraceKey::Span(column) => Ok(format!(
            "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {})",
            compare(&format!("s.{column}"), op, &value, params)?
        )),
        TraceKey::SpanAttribute(key) if key.is_empty() => Ok(format!(
            "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {})",
            compare("s.content", op, &value, params)?
        )),
        TraceKey::SpanAttribute(key) => {
            params.push(SqlValue::Text(format!(
                "$.attributes.\"{}\"",
                key.replace('"', "\\\"")
            )));
            Ok(format!(
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {})",
                compare(
                    "CAST(json_extract(s.content, ?) AS TEXT)",
                    op,
                    &value,
                    params
                )?
            ))
        }
        TraceKey::Prompt => Ok(format!(
            "EXISTS (SELECT 1 FROM trace_prompts p WHERE p.trace_id = t.trace_id AND {})",
            compare("p.prompt", op, &value, params)?
        )),
        TraceKey::Assessment { kind, name } => {
            params.push(SqlValue::Text((*kind).into()));
            params.push(SqlValue::Text(name.clone()));
            let test = match clause.op {
                TraceOp::IsNull | TraceOp::IsNotNull => String::new(),
                TraceOp::Lt | TraceOp::Le | TraceOp::Gt | TraceOp::Ge => {
                    let n: f64 = match &clause.value {
                        TraceValue::Str(s) => s.parse().map_err(|_| {
                            Error::invalid(format!(
                                "expected a number to compare with, found '{s}'"
                            ))
                        })?,
                        _ => 0.0,
                    };
                    format!(
                        " AND {}",
                        compare("CAST(a.value AS REAL)", op, &SearchValue::Number(n), params)?
                    )
                }
                _ => {
                    // The value is stored as JSON: a string in quotes, numbers and booleans bare.
                    let v = match &clause.value {
                        TraceValue::Str(s)
                            if s.parse::<f64>().is_ok() || s == "true" || s == "false" =>
                        {
                            SearchValue::Str(s.clone())
                        }
                        TraceValue::Str(s) => {
                            SearchValue::Str(serde_json::to_string(s).unwrap_or_default())
                        }
                        other => to_value(other),
                    };
                    format!(" AND {}", compare("a.value", op, &v, params)?)
                }
            };
            let exists = if clause.op == TraceOp::IsNull {
                "NOT EXISTS"
            } else {
                "EXISTS"
            };
            Ok(format!(
                "{exists} (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id \
                 AND a.valid = 1 AND a.kind = ? AND a.name = ?{test})"
            ))
        }
    }
}

fn search(conn: &Connection, search: &TraceSearch) -> Result<Page<TraceInfo>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let mut params: Vec<SqlValue> = Vec::new();
    let mut ids = Vec::new();
    for id in &search.experiment_ids {
        // An id that is not a number names no experiment.
        if let Ok(n) = id.parse::<i64>() {
            ids.push(n.to_string());
        }
    }
    let mut sql = format!(
        "SELECT t.trace_id FROM trace_info t WHERE t.experiment_id IN ({})",
        if ids.is_empty() {
            "NULL".to_string()
        } else {
            ids.join(",")
        }
    );
    for clause in &search.filter {
        sql.push_str(" AND ");
        sql.push_str(&condition(clause, &mut params)?);
    }
    let mut order = Vec::new();
    for o in &search.order_by {
        let expr = match o.column {
            "end_time" => "(t.request_time + t.execution_duration)".to_string(),
            "name" => format!(
                "(SELECT value FROM trace_tags n WHERE n.trace_id = t.trace_id AND n.key = '{TRACE_NAME_TAG}')"
            ),
            "run_id" => format!(
                "(SELECT value FROM trace_metadata n WHERE n.trace_id = t.trace_id AND n.key = '{SOURCE_RUN_METADATA}')"
            ),
            column => format!("t.{column}"),
        };
        order.push(format!(
            "{expr} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    // MLflow's default: newest first, then by id for a stable order across pages.
    if !search.order_by.iter().any(|o| o.column == "request_time") {
        order.push("t.request_time DESC".into());
    }
    order.push("t.trace_id ASC".into());
    sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
    params.push(SqlValue::Integer(search.max_results as i64 + 1));
    params.push(SqlValue::Integer(offset as i64));
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let found: Vec<String> = stmt
        .query_map(params_from_iter(params.iter()), |r| r.get(0))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    let infos = load_infos(conn, &found)?;
    Ok(Page::from_overfetched(infos, offset, search.max_results))
}

fn deleted_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<DeletedTrace>> {
    stmt.query_map(params, |r| {
        Ok(DeletedTrace {
            trace_id: r.get(0)?,
            experiment_id: r.get::<_, i64>(1)?.to_string(),
        })
    })
    .map_err(sql_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(sql_err)
}

fn delete(conn: &Connection, d: &TraceDeletion) -> Result<Vec<DeletedTrace>> {
    let experiment = experiment_id_number(&d.experiment_id)?;
    if !d.trace_ids.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "DELETE FROM trace_info WHERE trace_id = ?1 AND experiment_id = ?2
                 RETURNING trace_id, experiment_id",
            )
            .map_err(sql_err)?;
        let mut deleted = Vec::new();
        for id in &d.trace_ids {
            deleted.extend(deleted_rows(&mut stmt, params![id, experiment])?);
        }
        return Ok(deleted);
    }
    let cutoff = d.max_timestamp_millis.unwrap_or(i64::MAX);
    let limit = d.max_traces.map(|n| n as i64).unwrap_or(-1);
    let mut stmt = conn
        .prepare_cached(
            "DELETE FROM trace_info WHERE trace_id IN (
                 SELECT trace_id FROM trace_info WHERE experiment_id = ?1 AND request_time <= ?2
                 ORDER BY request_time ASC, trace_id ASC LIMIT ?3)
             RETURNING trace_id, experiment_id",
        )
        .map_err(sql_err)?;
    deleted_rows(&mut stmt, params![experiment, cutoff, limit])
}

/// `EndTrace` (v2): the duration runs from the trace's start to `end`'s time.
fn end_trace(conn: &Connection, trace_id: &str, end: &TraceEnd) -> Result<TraceInfo> {
    let n = conn
        .prepare_cached(
            "UPDATE trace_info SET execution_duration = ?2 - request_time, state = ?3
             WHERE trace_id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![trace_id, end.timestamp_ms, end.state])
        .map_err(sql_err)?;
    if n == 0 {
        return Err(trace_not_found(trace_id));
    }
    for (k, v) in &end.trace_metadata {
        put_key_value(conn, "trace_metadata", trace_id, k, v)?;
    }
    for (k, v) in end.tags.iter().filter(|(k, _)| *k != ARTIFACT_LOCATION_TAG) {
        put_key_value(conn, "trace_tags", trace_id, k, v)?;
    }
    load_info(conn, trace_id)?.ok_or_else(|| trace_not_found(trace_id))
}

fn assessment_not_found(assessment_id: &str) -> Error {
    Error::not_found(format!("Assessment with ID '{assessment_id}' not found"))
}

/// The JSON text of an assessment's value, for filters: a feedback's `value`, or an
/// expectation's `value` (or its serialized value's text).
fn assessment_value(a: &Value) -> (String, Option<String>) {
    if let Some(f) = a.get("feedback") {
        return (
            "feedback".into(),
            f.get("value")
                .filter(|v| !v.is_null())
                .map(Value::to_string),
        );
    }
    let e = a.get("expectation");
    let value = e
        .and_then(|e| e.get("value"))
        .map(Value::to_string)
        .or_else(|| {
            e.and_then(|e| e.pointer("/serialized_value/value"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    ("expectation".into(), value)
}

fn insert_assessment(conn: &Connection, a: &Value) -> Result<()> {
    let id = a["assessment_id"].as_str().unwrap_or_default();
    let trace_id = a["trace_id"].as_str().unwrap_or_default();
    let name = a["assessment_name"].as_str().unwrap_or_default();
    let (kind, value) = assessment_value(a);
    let valid = a.get("valid").and_then(Value::as_bool).unwrap_or(true);
    let changed = conn.prepare_cached(
        "INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid, created, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (assessment_id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
             value = excluded.value, valid = excluded.valid, body = excluded.body
         WHERE assessments.trace_id = excluded.trace_id",
    )
    .map_err(sql_err)?
    .execute(params![
        id,
        trace_id,
        name,
        kind,
        value,
        valid,
        now_ms(),
        a.to_string()
    ])
    .map_err(sql_err)?;
    // No row written: the id is another trace's assessment, which this write must not replace.
    if changed == 0 {
        return Err(Error::invalid(format!(
            "assessment '{id}' belongs to another trace than '{trace_id}'"
        )));
    }
    Ok(())
}

fn load_assessment(conn: &Connection, trace_id: &str, assessment_id: &str) -> Result<Value> {
    let body: String = conn
        .prepare_cached("SELECT body FROM assessments WHERE assessment_id = ?1 AND trace_id = ?2")
        .map_err(sql_err)?
        .query_row([assessment_id, trace_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)?
        .ok_or_else(|| assessment_not_found(assessment_id))?;
    serde_json::from_str(&body)
        .map_err(|e| Error::internal(format!("stored assessment is not JSON: {e}")))
}

fn set_valid(conn: &Connection, trace_id: &str, assessment_id: &str, valid: bool) -> Result<()> {
    if let Ok(mut a) = load_assessment(conn, trace_id, assessment_id) {
        a["valid"] = Value::Bool(valid);
        insert_assessment(conn, &a)?;
    }
    Ok(())
}

impl TraceStore for SqliteStore {
    fn start_trace(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo> {
        self.write(move |conn| start_trace(conn, &info, &artifact_location, true))
    }

    fn start_trace_v2(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo> {
        self.write(move |conn| start_trace(conn, &info, &artifact_location, false))
    }

    fn log_spans(
        &self,
        experiment_id: &str,
        spans: Vec<NewSpan>,
        artifact_root: String,
    ) -> Result<()> {
        let experiment_id = experiment_id.to_string();
        self.write(move |conn| log_spans(conn, &experiment_id, &spans, &artifact_root))
    }

    fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo> {
        self.read(|conn| load_info(conn, trace_id)?.ok_or_else(|| trace_not_found(trace_id)))
    }

    fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        self.read(|conn| load_infos(conn, trace_ids))
    }

    fn get_spans(&self, trace_ids: &[String]) -> Result<Vec<StoredSpan>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM spans WHERE trace_id = ?1 ORDER BY start_time_ns, span_id",
                )
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for id in trace_ids {
                let rows = stmt
                    .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(sql_err)?;
                for body in rows {
                    out.push(StoredSpan {
                        trace_id: id.clone(),
                        body: body.map_err(sql_err)?,
                    });
                }
            }
            Ok(out)
        })
    }

    fn search_traces(&self, s: &TraceSearch) -> Result<Page<TraceInfo>> {
        self.read(|conn| search(conn, s))
    }

    fn delete_traces(&self, deletion: &TraceDeletion) -> Result<Vec<DeletedTrace>> {
        let deletion = deletion.clone();
        self.write(move |conn| delete(conn, &deletion))
    }

    fn delete_traces_before(&self, cutoff_ms: i64, limit: usize) -> Result<Vec<DeletedTrace>> {
        self.write(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "DELETE FROM trace_info WHERE trace_id IN (
                         SELECT trace_id FROM trace_info WHERE request_time < ?1 LIMIT ?2)
                     RETURNING trace_id, experiment_id",
                )
                .map_err(sql_err)?;
            deleted_rows(&mut stmt, params![cutoff_ms, limit as i64])
        })
    }

    fn end_trace(&self, trace_id: &str, end: TraceEnd) -> Result<TraceInfo> {
        let trace_id = trace_id.to_string();
        self.write(move |conn| end_trace(conn, &trace_id, &end))
    }

    fn link_prompts_to_trace(&self, trace_id: &str, prompt_versions: &[String]) -> Result<()> {
        let (trace_id, prompts) = (trace_id.to_string(), prompt_versions.to_vec());
        self.write(move |conn| {
            if !exists(conn, &trace_id)? {
                return Err(Error::not_found(format!(
                    "Trace with ID '{trace_id}' not found."
                )));
            }
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO trace_prompts (trace_id, prompt) VALUES (?1, ?2)
                     ON CONFLICT (trace_id, prompt) DO NOTHING",
                )
                .map_err(sql_err)?;
            for p in &prompts {
                insert.execute([&trace_id, p]).map_err(sql_err)?;
            }
            Ok(())
        })
    }

    fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        let (trace_id, key, value) = (trace_id.to_string(), key.to_string(), value.to_string());
        self.write(move |conn| {
            if !exists(conn, &trace_id)? {
                return Err(trace_not_found(&trace_id));
            }
            put_key_value(conn, "trace_tags", &trace_id, &key, &value)
        })
    }

    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        let (trace_id, key) = (trace_id.to_string(), key.to_string());
        self.write(move |conn| {
            if !exists(conn, &trace_id)? {
                return Err(trace_not_found(&trace_id));
            }
            let n = conn
                .prepare_cached("DELETE FROM trace_tags WHERE trace_id = ?1 AND key = ?2")
                .map_err(sql_err)?
                .execute([&trace_id, &key])
                .map_err(sql_err)?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "No trace tag with key '{key}' for trace with ID '{trace_id}'"
                )));
            }
            Ok(())
        })
    }

    fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        let (trace_ids, run_id) = (trace_ids.to_vec(), run_id.to_string());
        self.write(move |conn| {
            for id in &trace_ids {
                if !exists(conn, id)? {
                    return Err(trace_not_found(id));
                }
                conn.prepare_cached(
                    "INSERT INTO trace_runs (trace_id, run_id) VALUES (?1, ?2)
                     ON CONFLICT (trace_id, run_id) DO NOTHING",
                )
                .map_err(sql_err)?
                .execute([id, &run_id])
                .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    fn create_assessment(&self, assessment: Value) -> Result<Value> {
        self.write(move |conn| {
            let trace_id = assessment["trace_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !exists(conn, &trace_id)? {
                return Err(trace_not_found(&trace_id));
            }
            if let Some(old) = assessment.get("overrides").and_then(Value::as_str) {
                load_assessment(conn, &trace_id, old)?;
                set_valid(conn, &trace_id, old, false)?;
            }
            insert_assessment(conn, &assessment)?;
            Ok(assessment)
        })
    }

    fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Value> {
        self.read(|conn| load_assessment(conn, trace_id, assessment_id))
    }

    fn update_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<Value> {
        let (trace_id, assessment_id) = (trace_id.to_string(), assessment_id.to_string());
        self.write(move |conn| {
            let mut a = load_assessment(conn, &trace_id, &assessment_id)?;
            let obj = a
                .as_object_mut()
                .ok_or_else(|| Error::internal("stored assessment is not an object"))?;
            for (k, v) in update.fields {
                if k == "feedback" {
                    obj.remove("expectation");
                } else if k == "expectation" {
                    obj.remove("feedback");
                }
                obj.insert(k, v);
            }
            if let Some(meta) = update.metadata {
                let entry = obj
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(m) = entry.as_object_mut() {
                    for (k, v) in meta {
                        m.insert(k, Value::String(v));
                    }
                }
            }
            insert_assessment(conn, &a)?;
            Ok(a)
        })
    }

    fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        let (trace_id, assessment_id) = (trace_id.to_string(), assessment_id.to_string());
        self.write(move |conn| {
            if !exists(conn, &trace_id)? {
                return Err(trace_not_found(&trace_id));
            }
            let Ok(a) = load_assessment(conn, &trace_id, &assessment_id) else {
                // MLflow answers a delete of a missing assessment with success.
                return Ok(());
            };
            if let Some(old) = a.get("overrides").and_then(Value::as_str) {
                set_valid(conn, &trace_id, old, true)?;
            }
            conn.prepare_cached("DELETE FROM assessments WHERE assessment_id = ?1")
                .map_err(sql_err)?
                .execute([&assessment_id])
                .map_err(sql_err)?;
            Ok(())
        })
    }
}
