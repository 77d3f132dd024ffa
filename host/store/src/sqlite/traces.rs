//! Traces in SQLite, and the [`TraceStore`] implementation.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::search_sql::SqlQuery;
use super::tracking::json_list;
use super::{SqliteStore, now_ms, sql_err};
use crate::search_sql::Dialect;
use crate::trace_metrics::{MetricQuery, MetricRow, metric_row, metric_rows_query};
use crate::trace_rules::{
    AssessmentRow, DERIVED_METADATA_KEYS, FINALIZED_METADATA, InfoRows, SessionScoped, SpanBatch,
    SpanRecord, TRACE_INFO_COLUMNS, apply_update, assessment_not_found, client_tags, count_query,
    experiment_id_number, held_by_all_queries, link_prompts_trace_not_found, other_experiment,
    overridden, parse_assessment, search_query, session_queries, set_valid, span_artifact_location,
    span_batches, span_node, trace_info_from_row,
};
use crate::traces::{
    ARTIFACT_LOCATION_TAG, AssessmentUpdate, DeletedTrace, NewSpan, SPANS_IN_STORE,
    SPANS_LOCATION_TAG, StoredSpan, TraceClause, TraceDeletion, TraceEnd, TraceInfo, TraceSearch,
    TraceStore, trace_not_found,
};

fn load_info(conn: &Connection, trace_id: &str) -> Result<Option<TraceInfo>> {
    Ok(load_infos(conn, &[trace_id.to_string()])?.pop())
}

/// The infos of `ids` (those that exist), in their order: one query per table for the whole
/// page rather than four per trace.
fn load_infos(conn: &Connection, ids: &[String]) -> Result<Vec<TraceInfo>> {
    let list = json_list(ids);
    let mut rows = InfoRows::default();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TRACE_INFO_COLUMNS} FROM trace_info
             WHERE trace_id IN (SELECT value FROM json_each(?1))"
        ))
        .map_err(sql_err)?;
    rows.infos = stmt
        .query_map([&list], |r| trace_info_from_row(r))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    for table in ["trace_tags", "trace_metadata"] {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT t.trace_id, k.key, k.value FROM trace_info t
                 JOIN {table} k ON k.trace_key = t.trace_key
                 WHERE t.trace_id IN (SELECT value FROM json_each(?1))"
            ))
            .map_err(sql_err)?;
        let found = stmt
            .query_map([&list], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
        if table == "trace_tags" {
            rows.tags = found;
        } else {
            rows.metadata = found;
        }
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT trace_id, body FROM assessments
             WHERE trace_id IN (SELECT value FROM json_each(?1))
             ORDER BY created, assessment_id",
        )
        .map_err(sql_err)?;
    rows.assessments = stmt
        .query_map([&list], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    rows.assemble(ids)
}

/// Sets a key of `trace_tags` or `trace_metadata` of the trace whose key is `trace_key`.
fn put_key_value(
    conn: &Connection,
    table: &str,
    trace_key: i64,
    key: &str,
    value: &str,
) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO {table} (trace_key, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (trace_key, key) DO UPDATE SET value = excluded.value"
    ))
    .map_err(sql_err)?
    .execute(params![trace_key, key, value])
    .map_err(sql_err)?;
    Ok(())
}

/// The integer key of the trace (see migration 0014), if it exists.
fn trace_key(conn: &Connection, trace_id: &str) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT trace_key FROM trace_info WHERE trace_id = ?1")
        .map_err(sql_err)?
        .query_row([trace_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)
}

fn exists(conn: &Connection, trace_id: &str) -> Result<bool> {
    Ok(trace_key(conn, trace_id)?.is_some())
}

/// The trace's key, if it exists; one that exists in another experiment is refused: a write
/// must not move or add to a trace of an experiment the caller was not checked against.
fn key_in(conn: &Connection, trace_id: &str, experiment: i64) -> Result<Option<i64>> {
    let stored: Option<(i64, i64)> = conn
        .prepare_cached("SELECT trace_key, experiment_id FROM trace_info WHERE trace_id = ?1")
        .map_err(sql_err)?
        .query_row([trace_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sql_err)?;
    match stored {
        Some((_, stored)) if stored != experiment => {
            Err(other_experiment(trace_id, stored, experiment))
        }
        stored => Ok(stored.map(|(key, _)| key)),
    }
}

/// `finalize`: the client's record is final (`StartTraceV3`), later spans no longer change its
/// fields; a v2 trace (`StartTrace`) stays open to its spans and `EndTrace`.
fn start_trace(
    conn: &Connection,
    info: &TraceInfo,
    artifact_location: &str,
    finalize: bool,
) -> Result<TraceInfo> {
    let experiment = experiment_id_number(&info.experiment_id)?;
    let key = if let Some(key) = key_in(conn, &info.trace_id, experiment)? {
        // Spans came first (`log_spans`): the client's record is the final word on its fields.
        conn.prepare_cached(
            "UPDATE trace_info SET experiment_id = ?2, request_time = ?3, execution_duration = ?4,
                 state = ?5, client_request_id = ?6,
                 request_preview = COALESCE(?7, request_preview),
                 response_preview = COALESCE(?8, response_preview)
             WHERE trace_key = ?1",
        )
        .map_err(sql_err)?
        .execute(params![
            key,
            experiment,
            info.request_time,
            info.execution_duration,
            info.state,
            info.client_request_id,
            info.request_preview,
            info.response_preview
        ])
        .map_err(sql_err)?;
        key
    } else {
        let key = conn
            .prepare_cached(
                "INSERT INTO trace_info (trace_id, experiment_id, request_time,
                     execution_duration, state, client_request_id, request_preview,
                     response_preview)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING trace_key",
            )
            .map_err(sql_err)?
            .query_row(
                params![
                    info.trace_id,
                    experiment,
                    info.request_time,
                    info.execution_duration,
                    info.state,
                    info.client_request_id,
                    info.request_preview,
                    info.response_preview
                ],
                |r| r.get(0),
            )
            .map_err(sql_err)?;
        put_key_value(
            conn,
            "trace_tags",
            key,
            ARTIFACT_LOCATION_TAG,
            artifact_location,
        )?;
        key
    };
    for (k, v) in client_tags(&info.tags) {
        put_key_value(conn, "trace_tags", key, k, v)?;
    }
    for (k, v) in &info.trace_metadata {
        put_key_value(conn, "trace_metadata", key, k, v)?;
    }
    if finalize {
        put_key_value(conn, "trace_metadata", key, FINALIZED_METADATA, "true")?;
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
    for batch in span_batches(spans) {
        let trace_id = batch.trace_id;
        let stored = stored_span_record(conn, trace_id, experiment)?;
        let finalized = stored.as_ref().is_some_and(|(_, _, f)| *f);
        let new = stored.is_none();
        let key = match stored {
            None => {
                let record = batch.new_record();
                let key = conn
                    .prepare_cached(
                        "INSERT INTO trace_info (trace_id, experiment_id, request_time,
                             execution_duration, state, request_preview, response_preview)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING trace_key",
                    )
                    .map_err(sql_err)?
                    .query_row(
                        params![
                            trace_id,
                            experiment,
                            record.request_time,
                            record.execution_duration,
                            record.state,
                            record.request_preview,
                            record.response_preview,
                        ],
                        |r| r.get(0),
                    )
                    .map_err(sql_err)?;
                put_key_value(
                    conn,
                    "trace_tags",
                    key,
                    ARTIFACT_LOCATION_TAG,
                    &span_artifact_location(artifact_root, trace_id),
                )?;
                key
            }
            Some((key, stored, finalized)) => {
                if let Some(record) = batch.merged(&stored, finalized) {
                    conn.prepare_cached(
                        "UPDATE trace_info SET request_time = ?2, execution_duration = ?3,
                             state = ?4, request_preview = ?5, response_preview = ?6
                         WHERE trace_key = ?1",
                    )
                    .map_err(sql_err)?
                    .execute(params![
                        key,
                        record.request_time,
                        record.execution_duration,
                        record.state,
                        record.request_preview,
                        record.response_preview,
                    ])
                    .map_err(sql_err)?;
                }
                key
            }
        };
        put_key_value(conn, "trace_tags", key, SPANS_LOCATION_TAG, SPANS_IN_STORE)?;
        insert_spans(conn, key, &batch)?;
        derive_from_spans(conn, key, &batch, finalized, new)?;
    }
    Ok(())
}

/// Writes the tags and metadata MLflow derives from a batch of spans (see
/// [`SpanBatch::derived_tags`] and [`SpanBatch::derived_metadata`]), after the batch is stored.
/// `new`: the batch made the trace (whose key is `key`), which so has no metadata yet.
fn derive_from_spans(
    conn: &Connection,
    key: i64,
    batch: &SpanBatch<'_>,
    finalized: bool,
    new: bool,
) -> Result<()> {
    for (k, v) in batch.derived_tags() {
        put_key_value(conn, "trace_tags", key, &k, &v)?;
    }
    let existing: HashSet<String> = if new {
        HashSet::new()
    } else {
        conn.prepare_cached(
            "SELECT key FROM trace_metadata WHERE trace_key = ?1 AND key IN (?2, ?3, ?4, ?5)",
        )
        .map_err(sql_err)?
        .query_map(
            params![
                key,
                DERIVED_METADATA_KEYS[0],
                DERIVED_METADATA_KEYS[1],
                DERIVED_METADATA_KEYS[2],
                DERIVED_METADATA_KEYS[3]
            ],
            |r| r.get(0),
        )
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?
    };
    let tree = if batch.needs_span_tree() {
        conn.prepare_cached(
            "SELECT span_id, parent_span_id, content FROM spans WHERE trace_key = ?1",
        )
        .map_err(sql_err)?
        .query_map([key], |r| {
            Ok(span_node(
                &r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.as_deref(),
                &r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?
    } else {
        Vec::new()
    };
    for (k, v) in batch.derived_metadata(&existing, finalized, &tree) {
        put_key_value(conn, "trace_metadata", key, k, &v)?;
    }
    Ok(())
}

/// The trace's key, the fields of its record that spans set, and whether the client finalized
/// it; none for a trace not stored yet. A trace of another experiment than `experiment` is
/// refused, as in [`key_in`].
fn stored_span_record(
    conn: &Connection,
    trace_id: &str,
    experiment: i64,
) -> Result<Option<(i64, SpanRecord, bool)>> {
    let found = conn
        .prepare_cached(
            "SELECT t.request_time, t.execution_duration, t.state, t.request_preview,
                    t.response_preview, m.value IS NOT NULL, t.experiment_id, t.trace_key
             FROM trace_info t LEFT JOIN trace_metadata m
                 ON m.trace_key = t.trace_key AND m.key = ?2
             WHERE t.trace_id = ?1",
        )
        .map_err(sql_err)?
        .query_row(params![trace_id, FINALIZED_METADATA], |r| {
            Ok((
                SpanRecord {
                    request_time: r.get(0)?,
                    execution_duration: r.get(1)?,
                    state: r.get(2)?,
                    request_preview: r.get(3)?,
                    response_preview: r.get(4)?,
                },
                r.get(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .optional()
        .map_err(sql_err)?;
    match found {
        Some((_, _, stored, _)) if stored != experiment => {
            Err(other_experiment(trace_id, stored, experiment))
        }
        found => Ok(found.map(|(record, finalized, _, key)| (key, record, finalized))),
    }
}

/// The batch's spans, of the trace whose key is `key`, each replacing a copy logged before.
fn insert_spans(conn: &Connection, key: i64, batch: &SpanBatch<'_>) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO spans (trace_key, span_id, parent_span_id, name, span_type, status,
                 start_time_ns, end_time_ns, content, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (trace_key, span_id) DO UPDATE SET
                 parent_span_id = excluded.parent_span_id, name = excluded.name,
                 span_type = excluded.span_type, status = excluded.status,
                 start_time_ns = excluded.start_time_ns, end_time_ns = excluded.end_time_ns,
                 content = excluded.content, body = excluded.body",
        )
        .map_err(sql_err)?;
    for s in &batch.spans {
        insert
            .execute(params![
                key,
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
    Ok(())
}

fn search(conn: &Connection, search: &TraceSearch) -> Result<Page<TraceInfo>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let Some(scoped) = prepare(conn, &search.experiment_ids, &search.filter)? else {
        return Ok(Page::from_overfetched(
            Vec::new(),
            offset,
            search.max_results,
        ));
    };
    let query = SqlQuery::from(search_query(search, offset, &scoped, Dialect::Sqlite)?);
    let found: Vec<String> = query.rows(conn, |r| r.get(0))?;
    let infos = load_infos(conn, &found)?;
    Ok(Page::from_overfetched(infos, offset, search.max_results))
}

/// What [`SessionScoped`] a search or count over `experiment_ids` with `filter` compiles with
/// (one query for each assessment clause of `filter`), or none when a clause is known to match
/// no trace ([`held_by_all_queries`]).
fn prepare(
    conn: &Connection,
    experiment_ids: &[String],
    filter: &[TraceClause],
) -> Result<Option<SessionScoped>> {
    for query in held_by_all_queries(experiment_ids, filter, Dialect::Sqlite)? {
        let held: Vec<i64> = SqlQuery::from(query).first_column(conn)?;
        if held.first() == Some(&1) {
            return Ok(None);
        }
    }
    let mut scoped = SessionScoped::default();
    for (clause, query) in session_queries(experiment_ids, filter, Dialect::Sqlite)? {
        scoped.insert(clause, SqlQuery::from(query).rows(conn, |r| r.get(0))?);
    }
    Ok(Some(scoped))
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
            "DELETE FROM trace_info WHERE trace_key IN (
                 SELECT trace_key FROM trace_info WHERE experiment_id = ?1 AND request_time <= ?2
                 ORDER BY request_time ASC, trace_id ASC LIMIT ?3)
             RETURNING trace_id, experiment_id",
        )
        .map_err(sql_err)?;
    deleted_rows(&mut stmt, params![experiment, cutoff, limit])
}

/// `EndTrace` (v2): the duration runs from the trace's start to `end`'s time.
fn end_trace(conn: &Connection, trace_id: &str, end: &TraceEnd) -> Result<TraceInfo> {
    let key: i64 = conn
        .prepare_cached(
            "UPDATE trace_info SET execution_duration = ?2 - request_time, state = ?3
             WHERE trace_id = ?1 RETURNING trace_key",
        )
        .map_err(sql_err)?
        .query_row(params![trace_id, end.timestamp_ms, end.state], |r| r.get(0))
        .optional()
        .map_err(sql_err)?
        .ok_or_else(|| trace_not_found(trace_id))?;
    for (k, v) in &end.trace_metadata {
        put_key_value(conn, "trace_metadata", key, k, v)?;
    }
    for (k, v) in client_tags(&end.tags) {
        put_key_value(conn, "trace_tags", key, k, v)?;
    }
    load_info(conn, trace_id)?.ok_or_else(|| trace_not_found(trace_id))
}

fn insert_assessment(conn: &Connection, a: &Value) -> Result<()> {
    let row = AssessmentRow::of(a);
    let changed = conn.prepare_cached(
        "INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid, created, body,
             session_level, experiment_id, trace_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
             (SELECT experiment_id FROM trace_info WHERE trace_id = ?2),
             (SELECT trace_key FROM trace_info WHERE trace_id = ?2))
         ON CONFLICT (assessment_id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
             value = excluded.value, valid = excluded.valid, body = excluded.body,
             session_level = excluded.session_level
         WHERE assessments.trace_id = excluded.trace_id",
    )
    .map_err(sql_err)?
    .execute(params![
        row.assessment_id,
        row.trace_id,
        row.name,
        row.kind,
        row.value,
        row.valid,
        now_ms(),
        row.body,
        row.session_level
    ])
    .map_err(sql_err)?;
    // No row written: the id is another trace's assessment, which this write must not replace.
    if changed == 0 {
        return Err(row.other_trace());
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
    parse_assessment(&body)
}

fn mark_valid(conn: &Connection, trace_id: &str, assessment_id: &str, valid: bool) -> Result<()> {
    if let Ok(mut a) = load_assessment(conn, trace_id, assessment_id) {
        set_valid(&mut a, valid);
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
                    "SELECT s.body FROM trace_info t JOIN spans s ON s.trace_key = t.trace_key
                     WHERE t.trace_id = ?1 ORDER BY s.start_time_ns, s.span_id",
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
                    "DELETE FROM trace_info WHERE trace_key IN (
                         SELECT trace_key FROM trace_info WHERE request_time < ?1 LIMIT ?2)
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
                return Err(link_prompts_trace_not_found(&trace_id));
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
            let trace = trace_key(conn, &trace_id)?.ok_or_else(|| trace_not_found(&trace_id))?;
            put_key_value(conn, "trace_tags", trace, &key, &value)
        })
    }

    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        let (trace_id, key) = (trace_id.to_string(), key.to_string());
        self.write(move |conn| {
            let trace = trace_key(conn, &trace_id)?.ok_or_else(|| trace_not_found(&trace_id))?;
            let n = conn
                .prepare_cached("DELETE FROM trace_tags WHERE trace_key = ?1 AND key = ?2")
                .map_err(sql_err)?
                .execute(params![trace, key])
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
            if let Some(old) = overridden(&assessment) {
                load_assessment(conn, &trace_id, old)?;
                mark_valid(conn, &trace_id, old, false)?;
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
            apply_update(&mut a, update)?;
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
            if let Some(old) = overridden(&a) {
                mark_valid(conn, &trace_id, old, true)?;
            }
            conn.prepare_cached("DELETE FROM assessments WHERE assessment_id = ?1")
                .map_err(sql_err)?
                .execute([&assessment_id])
                .map_err(sql_err)?;
            Ok(())
        })
    }

    fn count_traces(&self, experiment_ids: &[String], filter: &[TraceClause]) -> Result<u64> {
        self.read(|conn| {
            let Some(scoped) = prepare(conn, experiment_ids, filter)? else {
                return Ok(0);
            };
            let query = SqlQuery::from(count_query(
                experiment_ids,
                filter,
                &scoped,
                Dialect::Sqlite,
            )?);
            let counts: Vec<i64> = query.first_column(conn)?;
            Ok(counts.first().copied().unwrap_or(0) as u64)
        })
    }

    fn trace_metric_rows(&self, q: &MetricQuery) -> Result<Vec<MetricRow>> {
        let query = SqlQuery::from(metric_rows_query(q, Dialect::Sqlite)?);
        let dims = q.dimensions.len();
        self.read(|conn| query.rows(conn, |r| metric_row(r, dims)))
    }
}
