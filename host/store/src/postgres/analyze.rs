//! Planner statistics that keep up with fast-growing tables.
//!
//! PostgreSQL's autovacuum analyzes a table once it changed by 50 rows + 10% since its last
//! statistics, but its launcher visits each database at most once a minute (`autovacuum_naptime`,
//! a setting of the whole cluster that a store cannot change). A sweep that logs thousands of runs
//! in that minute is searched with plans made for an empty table: measured on 1,000 runs, a
//! filter + metric-order search took 210 ms with a nested loop the planner chose for the one row
//! it expected, and 7 ms once the tables had statistics. So the store applies autovacuum's own rule
//! to its tables every few seconds and runs `ANALYZE` on the ones that crossed it; the rule is
//! the same, only checked sooner, so a table analyzed here is one autovacuum would analyze too.

use std::time::Duration;

use deadpool_postgres::Pool;

/// How often the tables' change counters are read.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Autovacuum's defaults (`autovacuum_analyze_threshold`, `autovacuum_analyze_scale_factor`).
const THRESHOLD_ROWS: i64 = 50;
const SCALE_FACTOR: f64 = 0.1;

/// The advisory lock around one round ("wsfl-anl" in ASCII), so that replicas do not analyze
/// the same tables at once.
const ANALYZE_LOCK: i64 = 0x7773_666c_2d61_6e6c;

/// Starts the check on `runtime`, for as long as the runtime lives (the store's: it is shut down
/// with the store).
pub(crate) fn spawn(runtime: &tokio::runtime::Handle, pool: Pool) {
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            // A database that is down, or a role that may not analyze, skips a round: the next
            // one tries again, and autovacuum still does its part meanwhile.
            if let Err(e) = analyze_changed(&pool).await {
                tracing::debug!("planner statistics not refreshed: {e}");
            }
        }
    });
}

/// Analyzes this schema's tables that changed enough since their statistics; returns them.
pub(crate) async fn analyze_changed(pool: &Pool) -> Result<Vec<String>, String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&ANALYZE_LOCK])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !locked {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE schemaname = current_schema()
               AND n_mod_since_analyze > $1::bigint + $2::float8 * GREATEST(n_live_tup, 0)",
            &[&THRESHOLD_ROWS, &SCALE_FACTOR],
        )
        .await
        .map_err(|e| e.to_string())?;
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for table in &tables {
        // The name comes from the catalog; quoting keeps it one identifier whatever it holds.
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        tx.batch_execute(&format!("ANALYZE {quoted}"))
            .await
            .map_err(|e| format!("ANALYZE {quoted}: {e}"))?;
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::postgres::PgPool;
    use crate::testing::{drop_database, execute, fresh_database, query_i64};

    /// A table that grew past autovacuum's rule gets statistics; one that did not, none.
    #[test]
    fn analyzes_tables_that_grew_past_the_rule() {
        let Some(uri) = fresh_database() else {
            eprintln!("skipped: WASMFLOW_TEST_POSTGRES_URI is not set");
            return;
        };
        execute(
            &uri,
            "CREATE TABLE grown (id INTEGER, v TEXT); CREATE TABLE small (id INTEGER);
             INSERT INTO grown SELECT i, 'v' || (i % 7) FROM generate_series(1, 1000) i;
             INSERT INTO small SELECT i FROM generate_series(1, 10) i;",
        );
        let pool = PgPool::connect(&uri).unwrap();
        let inner = pool.pool.clone();
        // The inserting session reports its counts to the statistics system when it ends, which
        // PostgreSQL may show a moment later: ask until the table shows up.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut analyzed = Vec::new();
        while Instant::now() < deadline {
            analyzed = pool
                .run(|_| async { Ok(super::analyze_changed(&inner).await.unwrap()) })
                .unwrap();
            if !analyzed.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if analyzed.is_empty() {
            // Autovacuum got there first (it visits a new database within its minute): the
            // rule is the same one, so that is the only other way to an empty answer.
            let by_autovacuum = query_i64(
                &uri,
                "SELECT count(*) FROM pg_stat_user_tables
                 WHERE relname = 'grown' AND last_autoanalyze IS NOT NULL",
            );
            assert_eq!(by_autovacuum, 1, "nothing analyzed the grown table");
        } else {
            assert_eq!(analyzed, vec!["grown".to_string()]);
        }
        let stats = |table: &str| {
            query_i64(
                &uri,
                &format!("SELECT count(*) FROM pg_stats WHERE tablename = '{table}'"),
            )
        };
        assert_eq!(
            stats("grown"),
            2,
            "both columns of the grown table have statistics"
        );
        assert_eq!(stats("small"), 0, "10 rows are under the rule's 50");
        drop(pool);
        drop_database(&uri);
    }
}
