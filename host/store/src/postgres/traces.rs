//! Traces in PostgreSQL, and the [`TraceStore`] implementation.
//!
//! Unlike SQLite's single writer, several replicas and connections write at once: the spans of
//! one trace may arrive in concurrent OTLP requests. A writer therefore takes the trace's row
//! lock (`INSERT ... ON CONFLICT DO NOTHING`, else `SELECT ... FOR UPDATE`) before it reads and
//! merges the trace's record, so each merge sees the one before it; writers that touch several
//! traces lock them in trace id order, so two of them never wait on each other in a cycle.
//! The merging rules themselves are SQLite's, in [`crate::trace_rules`].

use std::collections::HashSet;

use serde_json::Value;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::{PgStore, pg_err};
use crate::search_sql::Dialect;
use crate::sqlite::now_ms;
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

type Tx<'a> = Transaction<'a>;

async fn load_infos(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<TraceInfo>> {
    let ids_param: &(dyn ToSql + Sync) = &ids;
    let infos = tx
        .query(
            &format!("SELECT {TRACE_INFO_COLUMNS} FROM trace_info WHERE trace_id = ANY($1)"),
            &[ids_param],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(trace_info_from_row)
        .collect::<std::result::Result<_, _>>()
        .map_err(pg_err)?;
    let mut rows = InfoRows {
        infos,
        ..InfoRows::default()
    };
    for table in ["trace_tags", "trace_metadata"] {
        let found = tx
            .query(
                &format!(
                    "SELECT t.trace_id, k.key, k.value FROM trace_info t
                     JOIN {table} k ON k.trace_key = t.trace_key WHERE t.trace_id = ANY($1)"
                ),
                &[ids_param],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if table == "trace_tags" {
            rows.tags = found;
        } else {
            rows.metadata = found;
        }
    }
    rows.assessments = tx
        .query(
            "SELECT trace_id, body FROM assessments WHERE trace_id = ANY($1)
             ORDER BY created, assessment_id",
            &[ids_param],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.assemble(ids)
}

async fn load_info(tx: &Tx<'_>, trace_id: &str) -> Result<TraceInfo> {
    load_infos(tx, &[trace_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| trace_not_found(trace_id))
}

/// Sets (adds or replaces) key/value pairs of `trace_tags` or `trace_metadata` of the trace
/// whose key is `trace_key`, in one statement.
async fn put_key_values<'k>(
    tx: &Tx<'_>,
    table: &str,
    trace_key: i64,
    pairs: impl IntoIterator<Item = (&'k str, &'k str)>,
) -> Result<()> {
    let (keys, values): (Vec<&str>, Vec<&str>) = pairs.into_iter().unzip();
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {table} (trace_key, key, value)
             SELECT $1::bigint, k, v FROM UNNEST($2::text[], $3::text[]) AS u(k, v)
             ON CONFLICT (trace_key, key) DO UPDATE SET value = excluded.value"
        ),
        &[&trace_key, &keys, &values],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The trace's integer key (see migration 0014) if it exists, holding a share lock on it until
/// the transaction ends (so that it is not deleted under the write that follows).
async fn lock_shared(tx: &Tx<'_>, trace_id: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT trace_key FROM trace_info WHERE trace_id = $1 FOR SHARE",
            &[&trace_id],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0)))
}

/// The trace's integer key if it exists, holding its row lock until the transaction ends:
/// writers of one trace (spans, its record, assessments) take turns.
async fn lock(tx: &Tx<'_>, trace_id: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT trace_key FROM trace_info WHERE trace_id = $1 FOR UPDATE",
            &[&trace_id],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0)))
}

/// How a writer came to hold a trace's row lock, with the trace's key.
enum Claim {
    /// It made the trace, with the record it gave.
    Inserted(i64),
    /// The trace was there: the fields spans set, and whether the client finalized them.
    Existing(i64, SpanRecord, bool),
}

/// Makes the trace with `record` unless it exists, and holds its row lock either way. A trace
/// of another experiment is refused: a write must not move or add to a trace of an experiment
/// the caller was not checked against.
async fn claim(
    tx: &Tx<'_>,
    trace_id: &str,
    experiment: i64,
    record: &SpanRecord,
    client_request_id: Option<&str>,
) -> Result<Claim> {
    // A concurrent delete may remove the row between the two statements: try again then.
    for _ in 0..3 {
        let inserted = tx
            .query_opt(
                "INSERT INTO trace_info (trace_id, experiment_id, request_time,
                     execution_duration, state, client_request_id, request_preview,
                     response_preview)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (trace_id) DO NOTHING RETURNING trace_key",
                &[
                    &trace_id,
                    &experiment,
                    &record.request_time,
                    &record.execution_duration,
                    &record.state,
                    &client_request_id,
                    &record.request_preview,
                    &record.response_preview,
                ],
            )
            .await
            .map_err(pg_err)?;
        if let Some(row) = inserted {
            return Ok(Claim::Inserted(row.get(0)));
        }
        let Some(row) = tx
            .query_opt(
                "SELECT t.experiment_id, t.request_time, t.execution_duration, t.state,
                        t.request_preview, t.response_preview,
                        EXISTS (SELECT 1 FROM trace_metadata m
                                WHERE m.trace_key = t.trace_key AND m.key = $2),
                        t.trace_key
                 FROM trace_info t WHERE t.trace_id = $1 FOR UPDATE OF t",
                &[&trace_id, &FINALIZED_METADATA],
            )
            .await
            .map_err(pg_err)?
        else {
            continue;
        };
        let stored: i64 = row.get(0);
        if stored != experiment {
            return Err(other_experiment(trace_id, stored, experiment));
        }
        return Ok(Claim::Existing(
            row.get(7),
            SpanRecord {
                request_time: row.get(1),
                execution_duration: row.get(2),
                state: row.get(3),
                request_preview: row.get(4),
                response_preview: row.get(5),
            },
            row.get(6),
        ));
    }
    Err(Error::internal(format!(
        "trace '{trace_id}' was deleted and made again while being written; try again"
    )))
}

/// `finalize`: the client's record is final (`StartTraceV3`), later spans no longer change its
/// fields; a v2 trace (`StartTrace`) stays open to its spans and `EndTrace`.
async fn start_trace(
    tx: &Tx<'_>,
    info: &TraceInfo,
    artifact_location: &str,
    finalize: bool,
) -> Result<TraceInfo> {
    let experiment = experiment_id_number(&info.experiment_id)?;
    let record = SpanRecord {
        request_time: info.request_time,
        execution_duration: info.execution_duration,
        state: info.state.clone(),
        request_preview: info.request_preview.clone(),
        response_preview: info.response_preview.clone(),
    };
    let trace_id = info.trace_id.as_str();
    let key = match claim(
        tx,
        trace_id,
        experiment,
        &record,
        info.client_request_id.as_deref(),
    )
    .await?
    {
        Claim::Inserted(key) => {
            put_key_values(
                tx,
                "trace_tags",
                key,
                [(ARTIFACT_LOCATION_TAG, artifact_location)],
            )
            .await?;
            key
        }
        Claim::Existing(key, ..) => {
            // Spans came first (`log_spans`): the client's record is the final word on its
            // fields.
            tx.execute(
                "UPDATE trace_info SET request_time = $2, execution_duration = $3, state = $4,
                     client_request_id = $5,
                     request_preview = COALESCE($6, request_preview),
                     response_preview = COALESCE($7, response_preview)
                 WHERE trace_key = $1",
                &[
                    &key,
                    &info.request_time,
                    &info.execution_duration,
                    &info.state,
                    &info.client_request_id,
                    &info.request_preview,
                    &info.response_preview,
                ],
            )
            .await
            .map_err(pg_err)?;
            key
        }
    };
    put_key_values(tx, "trace_tags", key, client_tags(&info.tags)).await?;
    let finalized = finalize.then_some((FINALIZED_METADATA, "true"));
    put_key_values(
        tx,
        "trace_metadata",
        key,
        info.trace_metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| !(finalize && *k == FINALIZED_METADATA))
            .chain(finalized),
    )
    .await?;
    for assessment in &info.assessments {
        let mut assessment = assessment.clone();
        assessment["trace_id"] = Value::String(info.trace_id.clone());
        insert_assessment(tx, &assessment).await?;
    }
    load_info(tx, trace_id).await
}

async fn log_spans(
    tx: &Tx<'_>,
    experiment_id: &str,
    spans: &[NewSpan],
    artifact_root: &str,
) -> Result<()> {
    let experiment = experiment_id_number(experiment_id)?;
    for batch in span_batches(spans) {
        let trace_id = batch.trace_id;
        let claimed = claim(tx, trace_id, experiment, &batch.new_record(), None).await?;
        let finalized = matches!(claimed, Claim::Existing(_, _, true));
        let key = match claimed {
            Claim::Inserted(key) => {
                let location = span_artifact_location(artifact_root, trace_id);
                put_key_values(
                    tx,
                    "trace_tags",
                    key,
                    [(ARTIFACT_LOCATION_TAG, location.as_str())],
                )
                .await?;
                key
            }
            Claim::Existing(key, stored, finalized) => {
                if let Some(record) = batch.merged(&stored, finalized) {
                    tx.execute(
                        "UPDATE trace_info SET request_time = $2, execution_duration = $3,
                             state = $4, request_preview = $5, response_preview = $6
                         WHERE trace_key = $1",
                        &[
                            &key,
                            &record.request_time,
                            &record.execution_duration,
                            &record.state,
                            &record.request_preview,
                            &record.response_preview,
                        ],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                key
            }
        };
        put_key_values(
            tx,
            "trace_tags",
            key,
            [(SPANS_LOCATION_TAG, SPANS_IN_STORE)],
        )
        .await?;
        upsert_spans(tx, key, &batch).await?;
        derive_from_spans(tx, key, &batch, finalized).await?;
    }
    Ok(())
}

/// Writes the tags and metadata MLflow derives from a batch of spans (see
/// [`SpanBatch::derived_tags`] and [`SpanBatch::derived_metadata`]), after the batch is stored
/// and while the row lock of the trace (whose key is `key`) is held.
async fn derive_from_spans(
    tx: &Tx<'_>,
    key: i64,
    batch: &SpanBatch<'_>,
    finalized: bool,
) -> Result<()> {
    let tags = batch.derived_tags();
    put_key_values(
        tx,
        "trace_tags",
        key,
        tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .await?;
    let keys: &[&str] = &DERIVED_METADATA_KEYS;
    let existing: HashSet<String> = tx
        .query(
            "SELECT key FROM trace_metadata WHERE trace_key = $1 AND key = ANY($2)",
            &[&key, &keys],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tree: Vec<_> = if batch.needs_span_tree() {
        tx.query(
            "SELECT span_id, parent_span_id, content FROM spans WHERE trace_key = $1",
            &[&key],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| span_node(r.get(0), r.get(1), r.get(2)))
        .collect()
    } else {
        Vec::new()
    };
    let metadata = batch.derived_metadata(&existing, finalized, &tree);
    put_key_values(
        tx,
        "trace_metadata",
        key,
        metadata.iter().map(|(k, v)| (*k, v.as_str())),
    )
    .await
}

/// A span's attributes as JSONB text (each value the attribute's JSON text, as in `content`),
/// which the span cost and model metrics read (`span.attributes.<key>` filters match `content`
/// with LIKE patterns, as MLflow does): JSONB cannot hold the NUL character, so one in a key or string becomes U+FFFD there (the span itself is unchanged).
pub(crate) fn attributes_json(content: &str) -> String {
    fn clean(v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{fffd}")),
            Value::Array(items) => Value::Array(items.into_iter().map(clean).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{fffd}"), clean(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    match serde_json::from_str::<Value>(content) {
        Ok(Value::Object(mut span)) => match span.remove("attributes") {
            Some(attrs @ Value::Object(_)) => clean(attrs).to_string(),
            _ => "{}".into(),
        },
        _ => "{}".into(),
    }
}

/// The batch's spans, of the trace whose key is `key`, in one statement, each replacing a copy
/// logged before.
async fn upsert_spans(tx: &Tx<'_>, key: i64, batch: &SpanBatch<'_>) -> Result<()> {
    let spans = &batch.spans;
    let span_ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let parents: Vec<Option<&str>> = spans.iter().map(|s| s.parent_span_id.as_deref()).collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let types: Vec<Option<&str>> = spans.iter().map(|s| s.span_type.as_deref()).collect();
    let statuses: Vec<&str> = spans.iter().map(|s| s.status.as_str()).collect();
    let starts: Vec<i64> = spans.iter().map(|s| s.start_time_ns).collect();
    let ends: Vec<Option<i64>> = spans.iter().map(|s| s.end_time_ns).collect();
    let contents: Vec<&str> = spans.iter().map(|s| s.content.as_str()).collect();
    let attributes: Vec<String> = spans.iter().map(|s| attributes_json(&s.content)).collect();
    let bodies: Vec<&[u8]> = spans.iter().map(|s| s.body.as_slice()).collect();
    tx.execute(
        "INSERT INTO spans (trace_key, span_id, parent_span_id, name, span_type, status,
             start_time_ns, end_time_ns, content, attributes, body)
         SELECT $1::bigint, u.span_id, u.parent, u.name, u.span_type, u.status, u.start_ns,
                u.end_ns,
                u.content, u.attributes::jsonb, u.body
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::bigint[], $9::text[], $10::text[], $11::bytea[])
             AS u(span_id, parent, name, span_type, status, start_ns, end_ns, content,
                  attributes, body)
         ON CONFLICT (trace_key, span_id) DO UPDATE SET
             parent_span_id = excluded.parent_span_id, name = excluded.name,
             span_type = excluded.span_type, status = excluded.status,
             start_time_ns = excluded.start_time_ns, end_time_ns = excluded.end_time_ns,
             content = excluded.content, attributes = excluded.attributes,
             body = excluded.body",
        &[
            &key,
            &span_ids,
            &parents,
            &names,
            &types,
            &statuses,
            &starts,
            &ends,
            &contents,
            &attributes,
            &bodies,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn search(tx: &Tx<'_>, search: &TraceSearch) -> Result<Page<TraceInfo>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let Some(scoped) = prepare(tx, &search.experiment_ids, &search.filter).await? else {
        return Ok(Page::from_overfetched(
            Vec::new(),
            offset,
            search.max_results,
        ));
    };
    let query = search_query(search, offset, &scoped, Dialect::Postgres)?;
    let found: Vec<String> = tx
        .query(&query.sql, &query.pg_params())
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let infos = load_infos(tx, &found).await?;
    Ok(Page::from_overfetched(infos, offset, search.max_results))
}

/// What [`SessionScoped`] a search or count over `experiment_ids` with `filter` compiles with
/// (one query for each assessment clause of `filter`), or none when a clause is known to match
/// no trace ([`held_by_all_queries`]).
async fn prepare(
    tx: &Tx<'_>,
    experiment_ids: &[String],
    filter: &[TraceClause],
) -> Result<Option<SessionScoped>> {
    for query in held_by_all_queries(experiment_ids, filter, Dialect::Postgres)? {
        let row = tx
            .query_one(&query.sql, &query.pg_params())
            .await
            .map_err(pg_err)?;
        if row.get::<_, i32>(0) == 1 {
            return Ok(None);
        }
    }
    let mut scoped = SessionScoped::default();
    for (clause, query) in session_queries(experiment_ids, filter, Dialect::Postgres)? {
        let rows = tx
            .query(&query.sql, &query.pg_params())
            .await
            .map_err(pg_err)?;
        scoped.insert(clause, rows.iter().map(|r| r.get(0)).collect());
    }
    Ok(Some(scoped))
}

/// Deletes these traces, locking them in id order first (as span writers lock them), so a
/// delete and a write of several traces never wait on each other in a cycle. With `skip_locked`
/// a trace being written is left for a later delete rather than waited for.
async fn delete_locked(
    tx: &Tx<'_>,
    ids: &[String],
    skip_locked: bool,
) -> Result<Vec<DeletedTrace>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let skip = if skip_locked { " SKIP LOCKED" } else { "" };
    let locked: Vec<String> = tx
        .query(
            &format!(
                "SELECT trace_id FROM trace_info WHERE trace_id = ANY($1)
                 ORDER BY trace_id FOR UPDATE{skip}"
            ),
            &[&ids],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Spans, tags, metadata, assessments and run links go by ON DELETE CASCADE.
    Ok(tx
        .query(
            "DELETE FROM trace_info WHERE trace_id = ANY($1) RETURNING trace_id, experiment_id",
            &[&locked],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| DeletedTrace {
            trace_id: r.get(0),
            experiment_id: r.get::<_, i64>(1).to_string(),
        })
        .collect())
}

async fn delete(tx: &Tx<'_>, d: &TraceDeletion) -> Result<Vec<DeletedTrace>> {
    let experiment = experiment_id_number(&d.experiment_id)?;
    let ids: Vec<String> = if d.trace_ids.is_empty() {
        let cutoff = d.max_timestamp_millis.unwrap_or(i64::MAX);
        // No count: every trace up to the cutoff (`LIMIT NULL` is no limit).
        let limit = d.max_traces.map(|n| n as i64);
        tx.query(
            "SELECT trace_id FROM trace_info WHERE experiment_id = $1 AND request_time <= $2
             ORDER BY request_time ASC, trace_id ASC LIMIT $3",
            &[&experiment, &cutoff, &limit],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    } else {
        tx.query(
            "SELECT trace_id FROM trace_info WHERE trace_id = ANY($1) AND experiment_id = $2",
            &[&d.trace_ids, &experiment],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    delete_locked(tx, &ids, false).await
}

/// `EndTrace` (v2): the duration runs from the trace's start to `end`'s time.
async fn end_trace(tx: &Tx<'_>, trace_id: &str, end: &TraceEnd) -> Result<TraceInfo> {
    // The trace's lock: spans of the same trace merge into its record one at a time.
    let key = lock(tx, trace_id)
        .await?
        .ok_or_else(|| trace_not_found(trace_id))?;
    tx.execute(
        "UPDATE trace_info SET execution_duration = $2 - request_time, state = $3
         WHERE trace_key = $1",
        &[&key, &end.timestamp_ms, &end.state],
    )
    .await
    .map_err(pg_err)?;
    put_key_values(
        tx,
        "trace_metadata",
        key,
        end.trace_metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .await?;
    put_key_values(tx, "trace_tags", key, client_tags(&end.tags)).await?;
    load_info(tx, trace_id).await
}

async fn insert_assessment(tx: &Tx<'_>, a: &Value) -> Result<()> {
    let row = AssessmentRow::of(a);
    let changed = tx
        .execute(
            "INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid,
                 created, body, session_level, experiment_id, trace_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 (SELECT experiment_id FROM trace_info WHERE trace_id = $2),
                 (SELECT trace_key FROM trace_info WHERE trace_id = $2))
             ON CONFLICT (assessment_id) DO UPDATE SET name = excluded.name,
                 kind = excluded.kind, value = excluded.value, valid = excluded.valid,
                 body = excluded.body, session_level = excluded.session_level
             WHERE assessments.trace_id = excluded.trace_id",
            &[
                &row.assessment_id,
                &row.trace_id,
                &row.name,
                &row.kind,
                &row.value,
                &i64::from(row.valid),
                &now_ms(),
                &row.body,
                &i64::from(row.session_level),
            ],
        )
        .await
        .map_err(pg_err)?;
    // No row written: the id is another trace's assessment, which this write must not replace.
    if changed == 0 {
        return Err(row.other_trace());
    }
    Ok(())
}

async fn load_assessment(tx: &Tx<'_>, trace_id: &str, assessment_id: &str) -> Result<Value> {
    let row = tx
        .query_opt(
            "SELECT body FROM assessments WHERE assessment_id = $1 AND trace_id = $2",
            &[&assessment_id, &trace_id],
        )
        .await
        .map_err(pg_err)?
        .ok_or_else(|| assessment_not_found(assessment_id))?;
    parse_assessment(row.get(0))
}

async fn mark_valid(tx: &Tx<'_>, trace_id: &str, assessment_id: &str, valid: bool) -> Result<()> {
    if let Ok(mut a) = load_assessment(tx, trace_id, assessment_id).await {
        set_valid(&mut a, valid);
        insert_assessment(tx, &a).await?;
    }
    Ok(())
}

impl TraceStore for PgStore {
    fn start_trace(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo> {
        self.write(async |tx| start_trace(tx, &info, &artifact_location, true).await)
    }

    fn start_trace_v2(&self, info: TraceInfo, artifact_location: String) -> Result<TraceInfo> {
        self.write(async |tx| start_trace(tx, &info, &artifact_location, false).await)
    }

    fn log_spans(
        &self,
        experiment_id: &str,
        spans: Vec<NewSpan>,
        artifact_root: String,
    ) -> Result<()> {
        self.write(async |tx| log_spans(tx, experiment_id, &spans, &artifact_root).await)
    }

    fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo> {
        self.read(async |tx| load_info(tx, trace_id).await)
    }

    fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        self.read(async |tx| load_infos(tx, trace_ids).await)
    }

    fn get_spans(&self, trace_ids: &[String]) -> Result<Vec<StoredSpan>> {
        self.read(async |tx| {
            Ok(tx
                .query(
                    "SELECT q.trace_id, s.body
                     FROM UNNEST($1::text[]) WITH ORDINALITY AS q(trace_id, n)
                     JOIN trace_info t ON t.trace_id = q.trace_id
                     JOIN spans s ON s.trace_key = t.trace_key
                     ORDER BY q.n, s.start_time_ns, s.span_id",
                    &[&trace_ids],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| StoredSpan {
                    trace_id: r.get(0),
                    body: r.get(1),
                })
                .collect())
        })
    }

    fn search_traces(&self, s: &TraceSearch) -> Result<Page<TraceInfo>> {
        self.read(async |tx| search(tx, s).await)
    }

    fn delete_traces(&self, deletion: &TraceDeletion) -> Result<Vec<DeletedTrace>> {
        self.write(async |tx| delete(tx, deletion).await)
    }

    fn delete_traces_before(&self, cutoff_ms: i64, limit: usize) -> Result<Vec<DeletedTrace>> {
        self.write(async |tx| {
            let ids: Vec<String> = tx
                .query(
                    "SELECT trace_id FROM trace_info WHERE request_time < $1 LIMIT $2",
                    &[&cutoff_ms, &(limit as i64)],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            // Retention runs on every replica: each deletes what the others are not deleting.
            delete_locked(tx, &ids, true).await
        })
    }

    fn end_trace(&self, trace_id: &str, end: TraceEnd) -> Result<TraceInfo> {
        self.write(async |tx| end_trace(tx, trace_id, &end).await)
    }

    fn link_prompts_to_trace(&self, trace_id: &str, prompt_versions: &[String]) -> Result<()> {
        self.write(async |tx| {
            if lock_shared(tx, trace_id).await?.is_none() {
                return Err(link_prompts_trace_not_found(trace_id));
            }
            tx.execute(
                "INSERT INTO trace_prompts (trace_id, prompt)
                 SELECT DISTINCT $1::text, p FROM UNNEST($2::text[]) AS u(p)
                 ON CONFLICT (trace_id, prompt) DO NOTHING",
                &[&trace_id, &prompt_versions],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        self.write(async |tx| {
            let trace = lock_shared(tx, trace_id)
                .await?
                .ok_or_else(|| trace_not_found(trace_id))?;
            put_key_values(tx, "trace_tags", trace, [(key, value)]).await
        })
    }

    fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        self.write(async |tx| {
            let trace = lock_shared(tx, trace_id)
                .await?
                .ok_or_else(|| trace_not_found(trace_id))?;
            let n = tx
                .execute(
                    "DELETE FROM trace_tags WHERE trace_key = $1 AND key = $2",
                    &[&trace, &key],
                )
                .await
                .map_err(pg_err)?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "No trace tag with key '{key}' for trace with ID '{trace_id}'"
                )));
            }
            Ok(())
        })
    }

    fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        self.write(async |tx| {
            let found: HashSet<String> = tx
                .query(
                    "SELECT trace_id FROM trace_info WHERE trace_id = ANY($1)
                     ORDER BY trace_id FOR SHARE",
                    &[&trace_ids],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if let Some(missing) = trace_ids.iter().find(|id| !found.contains(*id)) {
                return Err(trace_not_found(missing));
            }
            tx.execute(
                "INSERT INTO trace_runs (trace_id, run_id)
                 SELECT DISTINCT id, $2::text FROM UNNEST($1::text[]) AS u(id)
                 ON CONFLICT (trace_id, run_id) DO NOTHING",
                &[&trace_ids, &run_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn create_assessment(&self, assessment: Value) -> Result<Value> {
        self.write(async |tx| {
            let trace_id = assessment["trace_id"].as_str().unwrap_or_default();
            if lock(tx, trace_id).await?.is_none() {
                return Err(trace_not_found(trace_id));
            }
            if let Some(old) = overridden(&assessment) {
                load_assessment(tx, trace_id, old).await?;
                mark_valid(tx, trace_id, old, false).await?;
            }
            insert_assessment(tx, &assessment).await?;
            Ok(assessment)
        })
    }

    fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Value> {
        self.read(async |tx| load_assessment(tx, trace_id, assessment_id).await)
    }

    fn update_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
        update: AssessmentUpdate,
    ) -> Result<Value> {
        self.write(async |tx| {
            // The trace's lock makes this read-change-write one step among concurrent writers.
            lock(tx, trace_id).await?;
            let mut a = load_assessment(tx, trace_id, assessment_id).await?;
            apply_update(&mut a, update)?;
            insert_assessment(tx, &a).await?;
            Ok(a)
        })
    }

    fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        self.write(async |tx| {
            if lock(tx, trace_id).await?.is_none() {
                return Err(trace_not_found(trace_id));
            }
            let Ok(a) = load_assessment(tx, trace_id, assessment_id).await else {
                // MLflow answers a delete of a missing assessment with success.
                return Ok(());
            };
            if let Some(old) = overridden(&a) {
                mark_valid(tx, trace_id, old, true).await?;
            }
            tx.execute(
                "DELETE FROM assessments WHERE assessment_id = $1",
                &[&assessment_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn count_traces(&self, experiment_ids: &[String], filter: &[TraceClause]) -> Result<u64> {
        self.read(async |tx| {
            let Some(scoped) = prepare(tx, experiment_ids, filter).await? else {
                return Ok(0);
            };
            let query = count_query(experiment_ids, filter, &scoped, Dialect::Postgres)?;
            let row = tx
                .query_one(&query.sql, &query.pg_params())
                .await
                .map_err(pg_err)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn trace_metric_rows(&self, q: &MetricQuery) -> Result<Vec<MetricRow>> {
        let query = metric_rows_query(q, Dialect::Postgres)?;
        let dims = q.dimensions.len();
        self.read(async |tx| {
            tx.query(&query.sql, &query.pg_params())
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| metric_row(r, dims).map_err(pg_err))
                .collect()
        })
    }
}
