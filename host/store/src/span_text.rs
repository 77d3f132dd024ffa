//! Migration 0011's Rust step: every stored span's `content` text rewritten from its OTLP bytes
//! (`spans.body`) into the text the write path writes now (MLflow's `json.dumps` of
//! `Span.to_dict()`), and every assessment's `value` text from its JSON message, so that
//! `span.attributes.<key>`, `span.content` and `feedback.<name>` filters answer over rows an
//! older wasmflow wrote as they answer over new ones.
//!
//! The text of a span is built by the server, which decodes OTLP (this crate does not): the
//! server hands its function over with [`set_span_text`] before it opens a store, so the
//! migration writes byte for byte what a span logged now gets. The step runs inside the
//! migration's transaction: interrupted, it is rolled back with the schema version, and run
//! again in full at the next start; run twice, it writes the same text twice.

use std::sync::OnceLock;

use wasmflow_core::{Error, Result};

use crate::trace_rules::AssessmentRow;

/// The migration whose Rust step this is (it runs after that migration's SQL).
pub(crate) const MIGRATION: usize = 11;

/// How many rows one round reads and rewrites, so that a large table is never held in memory.
const BATCH: i64 = 1000;

/// A span's `content` text from its stored OTLP bytes.
pub type SpanText = fn(&[u8]) -> Result<String>;

static SPAN_TEXT: OnceLock<SpanText> = OnceLock::new();

/// Registers the function that writes a span's `content` from its OTLP bytes (the server's,
/// the one its write path uses). Call before opening a store; the first registration stands.
pub fn set_span_text(f: SpanText) {
    let _ = SPAN_TEXT.set(f);
}

fn span_text() -> Result<SpanText> {
    SPAN_TEXT.get().copied().ok_or_else(|| {
        Error::internal(format!(
            "migration {MIGRATION} rewrites the text of stored spans, but this program gave the \
             store no span decoder (wasmflow_store::traces::set_span_text)"
        ))
    })
}

/// An assessment's `value` column from its stored JSON message, as a write stores it now.
fn assessment_value(body: &str) -> Result<Option<String>> {
    let message = serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("a stored assessment is not JSON ('{body}'): {e}")))?;
    Ok(AssessmentRow::of(&message).value)
}

/// The step on SQLite, in the migration's transaction.
pub(crate) fn rewrite_sqlite(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    rewrite_sqlite_column(tx, "spans", "content", |body: &Vec<u8>| span_text()?(body))?;
    rewrite_sqlite_column(tx, "assessments", "value", |body: &String| {
        assessment_value(body)
    })
}

/// Sets `column` of every row of `table` to `text` of the row's `body`. Rows go by rowid
/// (`spans` and `assessments` are rowid tables), which an `UPDATE` of other columns leaves as
/// it is.
fn rewrite_sqlite_column<B: rusqlite::types::FromSql, T: rusqlite::ToSql>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    column: &str,
    text: impl Fn(&B) -> Result<T>,
) -> Result<()> {
    use crate::sqlite::sql_err;
    let mut last = 0i64;
    loop {
        let rows: Vec<(i64, B)> = tx
            .prepare(&format!(
                "SELECT rowid, body FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map([last, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(sql_err)?;
        let Some((end, _)) = rows.last() else {
            return Ok(());
        };
        last = *end;
        let mut update = tx
            .prepare_cached(&format!(
                "UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"
            ))
            .map_err(sql_err)?;
        for (rowid, body) in &rows {
            update
                .execute(rusqlite::params![text(body)?, rowid])
                .map_err(sql_err)?;
        }
    }
}

/// The step on PostgreSQL, in the migrations' transaction: rows go by primary key, each round
/// rewritten in one statement. A span's `attributes` JSONB is rewritten with its `content`,
/// from which the write path derives it.
pub(crate) async fn rewrite_postgres(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    use crate::postgres::{attributes_json, pg_err};
    let (mut trace, mut span) = (String::new(), String::new());
    loop {
        let rows = tx
            .query(
                "SELECT trace_id, span_id, body FROM spans WHERE (trace_id, span_id) > ($1, $2)
                 ORDER BY trace_id, span_id LIMIT $3",
                &[&trace, &span, &BATCH],
            )
            .await
            .map_err(pg_err)?;
        let Some(end) = rows.last() else { break };
        (trace, span) = (end.get(0), end.get(1));
        let text = span_text()?;
        let (mut traces, mut spans, mut contents, mut attributes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let content = text(r.get::<_, &[u8]>(2))?;
            attributes.push(attributes_json(&content));
            contents.push(content);
            traces.push(r.get::<_, String>(0));
            spans.push(r.get::<_, String>(1));
        }
        tx.execute(
            "UPDATE spans s SET content = u.content, attributes = u.attributes::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
                 AS u(trace_id, span_id, content, attributes)
             WHERE s.trace_id = u.trace_id AND s.span_id = u.span_id",
            &[&traces, &spans, &contents, &attributes],
        )
        .await
        .map_err(pg_err)?;
    }
    let mut last = String::new();
    loop {
        let rows = tx
            .query(
                "SELECT assessment_id, body FROM assessments WHERE assessment_id > $1
                 ORDER BY assessment_id LIMIT $2",
                &[&last, &BATCH],
            )
            .await
            .map_err(pg_err)?;
        let Some(end) = rows.last() else { break };
        last = end.get(0);
        let mut ids = Vec::new();
        let mut values = Vec::new();
        for r in &rows {
            ids.push(r.get::<_, String>(0));
            values.push(assessment_value(r.get(1))?);
        }
        tx.execute(
            "UPDATE assessments a SET value = u.value
             FROM UNNEST($1::text[], $2::text[]) AS u(assessment_id, value)
             WHERE a.assessment_id = u.assessment_id",
            &[&ids, &values],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}
