//! Migration 0012's Rust step: the columns a search reads of every stored assessment (`value`,
//! `session_level`) derived again from its JSON message (`assessments.body`) by
//! [`AssessmentRow::of`], the code the write path uses. So a feedback without a value that an
//! older wasmflow kept as SQL `NULL` gets MLflow's text `null`, and an assessment whose metadata
//! names a session (`mlflow.trace.session`) is marked session-level, as a write marks it now.
//! Assessments an older wasmflow wrote in its text of before 2026-12-04 get today's text too
//! (migration 0011's step did that before this one). The step runs inside the migration's
//! transaction; run twice, it writes the same values twice.

use wasmflow_core::{Error, Result};

use crate::span_text::BATCH;
use crate::trace_rules::AssessmentRow;

/// The migration whose Rust step this is (it runs after that migration's SQL): its number is
/// its place in the lists of migrations (the file is named for the number reserved for it; the
/// test below fails if the lists and this number part).
pub(crate) const MIGRATION: usize = 12;

/// An assessment's row as a write stores it now, from its stored JSON message.
fn row(body: &str) -> Result<AssessmentRow> {
    let message = serde_json::from_str(body)
        .map_err(|e| Error::internal(format!("a stored assessment is not JSON ('{body}'): {e}")))?;
    Ok(AssessmentRow::of(&message))
}

/// The step on SQLite, in the migration's transaction.
pub(crate) fn rewrite_sqlite(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    crate::span_text::rewrite_sqlite_rows(
        tx,
        "assessments",
        &["value", "session_level"],
        |body: &String| {
            let row = row(body)?;
            Ok(vec![row.value.into(), i64::from(row.session_level).into()])
        },
    )
}

/// The step on PostgreSQL, in the migrations' transaction: rows go by primary key, each round
/// rewritten in one statement.
pub(crate) async fn rewrite_postgres(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    use crate::postgres::pg_err;
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
        let (mut ids, mut values, mut session_level) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let row = row(r.get(1))?;
            ids.push(r.get::<_, String>(0));
            values.push(row.value);
            session_level.push(i64::from(row.session_level));
        }
        tx.execute(
            "UPDATE assessments a SET value = u.value, session_level = u.session_level
             FROM UNNEST($1::text[], $2::text[], $3::int8[])
                 AS u(assessment_id, value, session_level)
             WHERE a.assessment_id = u.assessment_id",
            &[&ids, &values, &session_level],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn the_step_follows_its_migration_on_both_backends() {
    for list in [crate::sqlite::MIGRATIONS, crate::postgres::MIGRATIONS] {
        assert!(list[MIGRATION - 1].contains("CREATE INDEX assessments_session"));
    }
}
