//! Migration 0011's Rust step: every stored span's `content` text rewritten from its OTLP bytes
//! (`spans.body`) into the text the write path writes now (MLflow's `json.dumps` of
//! `Span.to_dict()`), so that `span.attributes.<key>` and `span.content` filters answer over
//! rows an older wasmflow wrote as they answer over new ones. (This step also rewrote each
//! assessment's `value`; migration 0012's step, [`crate::assessment_columns`], does that now,
//! with the columns 0012 adds: a database opened by this wasmflow runs both.)
//!
//! The text of a span is built by the server, which decodes OTLP (this crate does not): the
//! server hands its function over with [`set_span_text`] before it opens a store, so the
//! migration writes byte for byte what a span logged now gets. The step runs inside the
//! migration's transaction: interrupted, it is rolled back with the schema version, and run
//! again in full at the next start; run twice, it writes the same text twice.

use std::sync::OnceLock;

use wasmflow_core::{Error, Result};

/// The migration whose Rust step this is (it runs after that migration's SQL).
pub(crate) const MIGRATION: usize = 11;

/// How many rows one round reads and rewrites, so that a large table is never held in memory.
pub(crate) const BATCH: i64 = 1000;

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

/// The step on SQLite, in the migration's transaction.
pub(crate) fn rewrite_sqlite(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    rewrite_sqlite_rows(tx, "spans", &["content"], |body: &Vec<u8>| {
        Ok(vec![span_text()?(body)?.into()])
    })
}

/// Sets `columns` of every row of `table` to the values `of` gives for the row's `body`, in
/// their order. Rows go by rowid (`spans` and `assessments` are rowid tables), which an
/// `UPDATE` of other columns leaves as it is.
pub(crate) fn rewrite_sqlite_rows<B: rusqlite::types::FromSql>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &[&str],
    of: impl Fn(&B) -> Result<Vec<rusqlite::types::Value>>,
) -> Result<()> {
    use crate::sqlite::sql_err;
    let set: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 2))
        .collect();
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
                "UPDATE {table} SET {} WHERE rowid = ?1",
                set.join(", ")
            ))
            .map_err(sql_err)?;
        for (rowid, body) in &rows {
            let mut values = vec![rusqlite::types::Value::Integer(*rowid)];
            values.extend(of(body)?);
            update
                .execute(rusqlite::params_from_iter(values))
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
    Ok(())
}
