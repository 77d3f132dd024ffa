//! The SQLite store: WAL, one writer thread that commits in groups, a pool of read connections.

mod auth;
mod checkpoint;
mod datasets;
mod eval_datasets;
mod logged_models;
mod registry;
pub(crate) mod search_sql;
mod traces;
mod tracking;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use rusqlite::{Connection, OpenFlags};
use wasmflow_core::{Error, Result};

use crate::StoreConfig;

pub(crate) use tracking::append_to_uri;

/// Numbered migrations; `PRAGMA user_version` records how many have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_tracking.sql"),
    include_str!("../../migrations/0002_registry.sql"),
    include_str!("../../migrations/0003_webhooks.sql"),
    include_str!("../../migrations/0004_auth.sql"),
    include_str!("../../migrations/0005_traces.sql"),
    include_str!("../../migrations/0006_eval_datasets.sql"),
    include_str!("../../migrations/0007_trace_prompts.sql"),
    include_str!("../../migrations/0008_plugins.sql"),
    include_str!("../../migrations/0009_latest_metrics_experiment.sql"),
    include_str!("../../migrations/0010_surrogate_keys.sql"),
    include_str!("../../migrations/0011_span_text.sql"),
    include_str!("../../migrations/0012_session_assessments.sql"),
    include_str!("../../migrations/0013_session_traces.sql"),
    include_str!("../../migrations/0014_trace_keys.sql"),
    include_str!("../../migrations/0015_assessment_holders.sql"),
];

/// How many queued writes one transaction may take; bounds the latency a write waits behind others.
const MAX_GROUP: usize = 512;

/// Called after the group's commit with its outcome.
type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: runs inside the group's transaction (under its own savepoint) and says whether it
/// succeeded, so that a failed write is rolled back alone.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

pub struct SqliteStore {
    config: StoreConfig,
    jobs: SyncSender<Job>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self> {
        let conn = open_migrated(path)?;
        tracking::ensure_default_experiment(&conn, &config)?;
        // Each queued write runs under a savepoint, and SQLite copies every page a savepoint
        // changes to a statement journal first, spilling it to a temporary file past 64 KiB:
        // under OTLP ingest that was a third of the writer's bytes through the kernel (strace:
        // 0.6 pages a span). In memory, the copies cost a memcpy and hold one write's pages at
        // most. Set after the migrations, so their sorts and temporary indexes may still spill.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql_err)?;
        // The writer's page cache is 8 MiB, not `configure`'s 64. While the database is under
        // 1 GiB, a B-tree split can leave SQLite's lock-byte page (number 262,145) as the
        // cache's highest key for a moment, and each commit after it then walks the whole
        // cache's hash table to drop pages past the file's end (`pcache1TruncateUnsafe`: 5.6% of
        // the writer's samples under OTLP ingest). Writes touch the right edges of their trees
        // and a few index leaves, which 8 MiB holds: measured 2026-12-05, 100,000 OTLP traces,
        // writer 5.8-7.1 -> 5.0-5.7 us a span (97-128k -> 124-146k spans/s), and log-batch of
        // 1,000 metrics 681k -> 679k metrics/s (scripts/bench_scale.py, 10,000 runs).
        conn.pragma_update(None, "cache_size", -8192)
            .map_err(sql_err)?;

        let checkpoints =
            checkpoint::Checkpoints::start(&conn, path, checkpoint::Thresholds::STORE)?;

        let (jobs, queue) = mpsc::sync_channel::<Job>(4096);
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, queue, checkpoints))
            .map_err(|e| Error::internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            config,
            jobs,
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Runs `f` in the writer's current transaction and returns once that transaction committed.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |conn| {
            let outcome = f(conn);
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let _ = tx.send(committed.and(outcome));
            });
            (ok, reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        rx.recv()
            .map_err(|_| Error::internal("the database write was abandoned"))?
    }

    /// Runs `f` on a pooled read-only connection inside one read transaction, so it sees a
    /// single consistent snapshot.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().map_err(poisoned)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => self.open_reader()?,
        };
        conn.execute_batch("BEGIN").map_err(sql_err)?;
        let out = f(&conn);
        let end = conn.execute_batch("COMMIT").map_err(sql_err);
        self.readers.lock().map_err(poisoned)?.push(conn);
        let out = out?;
        end?;
        Ok(out)
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql_err)?;
        // Readers map the file instead of copying each page into their own cache: a chart of
        // 100 long runs reads 70 MB of metric rows, and pread's copies were a fifth of its time.
        // The mapping shares the OS page cache, so it costs address space, not memory.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)
            .map_err(sql_err)?;
        register_regexp(&conn)?;
        Ok(conn)
    }
}

/// SQLite's `X REGEXP Y` (MLflow's `RLIKE` in trace filters) calls a function `regexp(Y, X)`
/// that SQLite leaves to the application. MLflow's SQLite store registers one on Python's
/// `re.search`: a match anywhere in the text, and NULL or a pattern that does not compile
/// matching nothing. This is the same on the regex crate, whose syntax is Python's for the
/// common forms (it has no look-around or back-references: such a pattern matches nothing).
/// A pattern is compiled once per statement (SQLite's auxiliary data of argument 0).
fn register_regexp(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let regex = ctx.get_or_create_aux(0, |pattern| -> rusqlite::Result<_> {
                Ok(match pattern {
                    ValueRef::Text(p) => std::str::from_utf8(p)
                        .ok()
                        .and_then(|p| regex::Regex::new(p).ok()),
                    _ => None,
                })
            })?;
            Ok(match (regex.as_ref(), ctx.get_raw(1)) {
                (Some(re), ValueRef::Text(text)) => {
                    std::str::from_utf8(text).is_ok_and(|t| re.is_match(t))
                }
                _ => false,
            })
        },
    )
    .map_err(sql_err)
}

/// The writer's connection to the database at `path` (created with its folder if missing),
/// configured and migrated; an MLflow database is refused.
pub(crate) fn open_migrated(path: &Path) -> Result<Connection> {
    refuse_mlflow_database(path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::internal(format!("cannot create '{}': {e}", parent.display())))?;
    }
    let mut conn = Connection::open(path)
        .map_err(|e| Error::internal(format!("cannot open database '{}': {e}", path.display())))?;
    configure(&conn)?;
    register_regexp(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// MLflow's own SQL schema (alembic keeps its revision in `alembic_version`) is not wasmflow's:
/// opening it as a store would try to create tables that exist. Its data comes over with
/// `wasmflow import mlflow`. Read-only, so the file is left as it is.
pub(crate) fn refuse_mlflow_database(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::invalid(format!(
            "'{}' is a directory, not a database; if it is an MLflow file store (mlruns), copy it \
             into wasmflow with `wasmflow import mlflow --from {}`",
            path.display(),
            path.display()
        )));
    }
    if !path.is_file() {
        return Ok(());
    }
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Ok(());
    };
    let mlflow: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table'
                 AND name = 'alembic_version')",
            [],
            |r| r.get(0),
        )
        .unwrap_or(false);
    if mlflow {
        return Err(Error::invalid(format!(
            "'{}' is an MLflow database, not a wasmflow one; copy it into wasmflow with \
             `wasmflow import mlflow --from sqlite:///{}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    // WAL with synchronous=NORMAL: a commit reaches the OS before we acknowledge it, so it
    // survives the server being killed; only a power loss can drop the last commits.
    // A 64 MiB page cache (allocated as used) and checkpoints every 64 MiB of WAL keep large
    // log-batch calls from paying for a checkpoint, with its fsync, on nearly every commit.
    // (The store's writer replaces the automatic checkpoint with its checkpointer thread, see
    // `checkpoint`; this one stays for migrations and `wasmflow db upgrade`.)
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = 16384;",
    )
    .map_err(sql_err)
}

/// Brings the database at `path` (created if missing) to this binary's schema, for
/// `wasmflow db upgrade`; returns the schema version before and after.
pub(crate) fn upgrade(path: &Path) -> Result<(usize, usize)> {
    let before = if path.is_file() {
        refuse_mlflow_database(path)?;
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .map_err(sql_err)?
    } else {
        0
    };
    open_migrated(path)?;
    Ok((before, MIGRATIONS.len().max(before)))
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err)?;
    crate::check_schema_not_newer(version, MIGRATIONS.len())?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(sql).map_err(sql_err)?;
        if i + 1 == crate::span_text::MIGRATION {
            crate::span_text::rewrite_sqlite(&tx)?;
        }
        if i + 1 == crate::assessment_columns::MIGRATION {
            crate::assessment_columns::rewrite_sqlite(&tx)?;
        }
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        tracing::info!(migration = i + 1, "applied database migration");
    }
    if version < MIGRATIONS.len() {
        // A migration that rebuilt tables (0010, 0014) leaves them in the WAL, where every read
        // finds each page through the WAL's index until a checkpoint, and none comes while
        // nothing is written: `feedback.x IS NULL` over 100,000 traces, which reads every
        // trace, took 69-103 ms right after 0014 against 53 ms before it.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql_err)?;
    }
    Ok(())
}

/// The writer: takes whatever writes are queued, runs them in one transaction (each under a
/// savepoint), commits once, then answers them all. Under load this turns many small commits
/// into a few large ones. After each commit, `checkpoints` decides who copies the WAL.
fn write_loop(conn: Connection, queue: Receiver<Job>, checkpoints: checkpoint::Checkpoints) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs unblocks their callers with an error.
            tracing::error!("cannot begin a write transaction: {e}");
            continue;
        }
        for job in group {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            if let Err(e) = savepoint {
                tracing::error!("cannot open a savepoint: {e}");
                continue;
            }
            let (ok, reply) = job(&conn);
            let end = if ok {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            };
            if let Err(e) = end {
                tracing::error!("cannot close a savepoint: {e}");
            }
            replies.push(reply);
        }
        let committed = conn.execute_batch("COMMIT").map_err(sql_err);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(committed.clone());
        }
        // After the replies: a checkpoint the writer runs itself delays the next group only.
        checkpoints.after_commit(&conn);
    }
}

pub(crate) fn sql_err(e: rusqlite::Error) -> Error {
    Error::internal(format!("database error: {e}"))
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("a database lock was poisoned")
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed write is rolled back whether it has its transaction alone or shares it, and its
    /// caller gets its own error; the others commit.
    #[test]
    fn a_failed_write_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            SqliteStore::open(
                &dir.path().join("db.sqlite"),
                StoreConfig {
                    default_artifact_root: "./mlruns".into(),
                },
            )
            .unwrap(),
        );
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE t (x INTEGER)")
                    .map_err(sql_err)
            })
            .unwrap();
        let insert = |x: i64, fail: bool| {
            let store = store.clone();
            move || {
                store.write(move |c| {
                    c.execute("INSERT INTO t (x) VALUES (?1)", [x])
                        .map_err(sql_err)?;
                    if fail {
                        return Err(Error::invalid(format!("refused {x}")));
                    }
                    Ok(())
                })
            }
        };
        // Alone: one at a time.
        assert_eq!(insert(1, true)().unwrap_err().message, "refused 1");
        insert(2, false)().unwrap();
        // Together: many at once, so that groups form.
        let threads: Vec<_> = (10..74)
            .map(|x| std::thread::spawn(insert(x, x % 2 == 1)))
            .collect();
        for (x, t) in (10..74).zip(threads) {
            let outcome = t.join().unwrap();
            assert_eq!(outcome.is_err(), x % 2 == 1, "write {x}: {outcome:?}");
        }
        let stored: Vec<i64> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT x FROM t ORDER BY x").map_err(sql_err)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(sql_err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(sql_err)
            })
            .unwrap();
        let expected: Vec<i64> = std::iter::once(2).chain((10..74).step_by(2)).collect();
        assert_eq!(stored, expected);
    }
}
