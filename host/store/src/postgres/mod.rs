//! The PostgreSQL store: its connection pool, and its numbered migrations run under an advisory
//! lock so that replicas starting together never race on them.
//!
//! The store traits are synchronous (the server calls them inside `spawn_blocking`), while the
//! driver is async (`tokio-postgres`, so that the same connections can LISTEN/NOTIFY for
//! replicas). The store owns a small runtime of its own that drives the connections, and each
//! call blocks its (blocking-pool or CLI) thread on that runtime's handle. Owning the runtime,
//! rather than borrowing the server's, lets the CLI commands that open the store without a server
//! use it the same way, and keeps the connections alive however the caller's runtime is built.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use wasmflow_core::{Error, ErrorCode, Result};

use crate::{SchemaUpgrade, StoreConfig};

mod analyze;
mod auth;
mod datasets;
mod eval_datasets;
mod listen;
mod logged_models;
mod plugins;
mod registry;
mod tls;
mod traces;
mod tracking;
mod tx;
mod webhooks;

pub(crate) use traces::attributes_json;

/// Numbered migrations, the same numbers as SQLite's; `wasmflow_schema_version` records the ones
/// that ran.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_tracking.sql"),
    include_str!("../../migrations/postgres/0002_registry.sql"),
    include_str!("../../migrations/postgres/0003_webhooks.sql"),
    include_str!("../../migrations/postgres/0004_auth.sql"),
    include_str!("../../migrations/postgres/0005_traces.sql"),
    include_str!("../../migrations/postgres/0006_eval_datasets.sql"),
    include_str!("../../migrations/postgres/0007_trace_prompts.sql"),
    include_str!("../../migrations/postgres/0008_plugins.sql"),
    include_str!("../../migrations/postgres/0009_latest_metrics_experiment.sql"),
    include_str!("../../migrations/postgres/0010_surrogate_keys.sql"),
    include_str!("../../migrations/postgres/0011_span_text.sql"),
    include_str!("../../migrations/postgres/0012_session_assessments.sql"),
    include_str!("../../migrations/postgres/0013_session_traces.sql"),
    include_str!("../../migrations/postgres/0014_trace_keys.sql"),
    include_str!("../../migrations/postgres/0015_assessment_holders.sql"),
];

/// The advisory lock every wasmflow process takes around its migrations ("wasmflow" in ASCII):
/// a second replica waits for the first to finish, then finds nothing left to do.
const MIGRATION_LOCK: i64 = 0x7761_736d_666c_6f77;

/// How many connections one process keeps open at most.
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection (a free one from the pool, or a new one) before it
/// is answered 503: a replica whose database is gone answers at once rather than hanging.
const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// `postgresql://`, `postgres://` and SQLAlchemy's `postgresql+DRIVER://` (as MLflow users write
/// `postgresql+psycopg2://...` in their configs) name a PostgreSQL database; anything else is not
/// one (`None`).
pub fn parse_uri(uri: &str) -> Option<Result<tokio_postgres::Config>> {
    parse_uri_tls(uri).map(|parsed| parsed.map(|(config, _)| config))
}

/// [`parse_uri`], and what the uri's `sslmode` and `sslrootcert` ask of TLS.
fn parse_uri_tls(uri: &str) -> Option<Result<(tokio_postgres::Config, tls::Tls)>> {
    let (scheme, rest) = uri.split_once("://")?;
    let dialect = scheme.split('+').next().unwrap_or_default();
    if !dialect.eq_ignore_ascii_case("postgresql") && !dialect.eq_ignore_ascii_case("postgres") {
        return None;
    }
    let invalid = |e: &dyn std::fmt::Display| {
        Error::invalid(format!(
            "invalid PostgreSQL uri '{}': {e}",
            redact_password(uri)
        ))
    };
    Some(
        tls::split(&format!("postgresql://{rest}"))
            .map_err(|e| invalid(&e.message))
            .and_then(|(rest, tls)| {
                let mut config =
                    tokio_postgres::Config::from_str(&rest).map_err(|e| invalid(&e))?;
                config.ssl_mode(tls.ssl_mode());
                Ok((config, tls))
            }),
    )
}

/// The uri with its password replaced by `***`, for messages and logs: the one in the user
/// information (which may hold unescaped `/`, `?` or `@`, so it runs to the last `@`) and a
/// `password=` query parameter.
pub fn redact_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let rest = match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{user}:***{}", &rest[at..]),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let rest = match rest.split_once('?') {
        Some((head, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{head}?{}", query.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// The PostgreSQL store: the same traits as [`crate::SqliteStore`], on a pool of connections.
/// Each capability's impl lives in its own module, as SQLite's do.
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) config: StoreConfig,
    /// The connection listening for plugin changes, started when first asked for.
    pub(crate) plugin_listener: std::sync::OnceLock<std::sync::Arc<listen::Listener>>,
}

impl PgStore {
    /// Connects to the database `uri` names and brings its schema up to date (under the
    /// migration lock, so replicas starting together do not race).
    pub fn open(uri: &str, config: StoreConfig) -> Result<Self> {
        let pool = PgPool::connect(uri)?;
        upgrade(&pool)?;
        pool.keep_statistics_fresh();
        let store = Self {
            pool,
            config,
            plugin_listener: std::sync::OnceLock::new(),
        };
        tracking::ensure_default_experiment(&store, &store.config)?;
        Ok(store)
    }
}

/// A connection pool to one database, and the runtime that drives its connections.
pub struct PgPool {
    pool: Pool,
    runtime: Runtime,
    /// What the pool connects with, for connections of their own (the listener's).
    connect_config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The uri without its password, for messages.
    display_uri: std::sync::Arc<str>,
}

/// The store's runtime, shut down without waiting when the store is dropped (dropping a runtime
/// the ordinary way panics inside the server's async context).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl PgPool {
    /// Connects to the database `uri` names (a PostgreSQL uri, see [`parse_uri`]) and checks
    /// that a connection can be made, so that a wrong address or password fails at start.
    pub fn connect(uri: &str) -> Result<Self> {
        let (config, tls) = parse_uri_tls(uri).ok_or_else(|| {
            Error::invalid(format!(
                "'{}' is not a PostgreSQL uri",
                redact_password(uri)
            ))
        })??;
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_WAIT);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let connector = tls::connector(&tls)
            .map_err(|e| Error::invalid(format!("{}: {}", redact_password(uri), e.message)))?;
        let connect_config = config.clone();
        let manager = match connector.clone() {
            Some(connector) => Manager::from_config(config, connector, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = {
            // The pool's timers need the runtime that drives the connections.
            let _guard = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECTION_WAIT))
                .create_timeout(Some(CONNECTION_WAIT))
                .recycle_timeout(Some(CONNECTION_WAIT))
                .build()
                .map_err(|e| Error::internal(format!("cannot build the PostgreSQL pool: {e}")))?
        };
        let pool = Self {
            pool,
            runtime: Runtime(Some(runtime)),
            connect_config,
            tls: connector,
            display_uri: redact_password(uri).into(),
        };
        pool.run(|pool| async move { pool.client().await.map(drop) })?;
        Ok(pool)
    }

    /// Runs `f` with a pooled connection on the store's runtime, blocking this thread until it
    /// finishes. Meant for blocking threads (the server calls the store inside `spawn_blocking`);
    /// on a worker of a multi-threaded runtime (the server's start, which opens the store and
    /// creates the admin user) it first hands the worker's tasks to another thread, as blocking
    /// there on a second runtime is refused.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let rt = self
            .runtime
            .0
            .as_ref()
            .expect("the runtime lives as long as the pool");
        let conn = Conn {
            pool: self.pool.clone(),
            display_uri: self.display_uri.clone(),
        };
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(|| rt.block_on(f(conn)))
        } else {
            rt.block_on(f(conn))
        }
    }
}

impl PgPool {
    /// Refreshes the planner's statistics of tables that grew fast, in the background (see
    /// [`analyze`]).
    fn keep_statistics_fresh(&self) {
        let rt = self
            .runtime
            .0
            .as_ref()
            .expect("the runtime lives as long as the pool")
            .handle();
        analyze::spawn(rt, self.pool.clone());
    }

    /// A connection of its own that listens on `channel` and counts its notifications,
    /// reconnecting whenever it is lost, for as long as the pool lives.
    pub(crate) fn listen(&self, channel: &'static str) -> std::sync::Arc<listen::Listener> {
        let rt = self
            .runtime
            .0
            .as_ref()
            .expect("the runtime lives as long as the pool")
            .handle();
        let config = self.connect_config.clone();
        match &self.tls {
            Some(tls) => listen::spawn(rt, config, tls.clone(), channel, self.display_uri.clone()),
            None => listen::spawn(rt, config, NoTls, channel, self.display_uri.clone()),
        }
    }
}

/// What a store call gets: a way to take a connection from the pool.
pub(crate) struct Conn {
    pool: Pool,
    display_uri: std::sync::Arc<str>,
}

impl Conn {
    /// A pooled connection; when none can be had within [`CONNECTION_WAIT`] (the database is
    /// down or unreachable), a 503 the client may retry. The pool drops connections the
    /// database closed and opens new ones, so a replica recovers by itself once it is back.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client> {
        use deadpool_postgres::PoolError;
        self.pool.get().await.map_err(|e| {
            let why = match e {
                PoolError::Backend(e) => describe(&e),
                PoolError::Timeout(_) => {
                    format!("no connection within {} seconds", CONNECTION_WAIT.as_secs())
                }
                other => {
                    return Error::internal(format!(
                        "cannot connect to PostgreSQL at '{}': {other}",
                        self.display_uri
                    ));
                }
            };
            Error::new(
                ErrorCode::TemporarilyUnavailable,
                format!(
                    "the database is unavailable: cannot connect to PostgreSQL at '{}': {why}",
                    self.display_uri
                ),
            )
        })
    }
}

/// A driver error as one line: the server's own message when it sent one, else the error with
/// its cause (tokio-postgres puts the useful part, such as "connection refused", in the cause).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> Error {
    if lost_connection(&e) {
        return Error::new(
            ErrorCode::TemporarilyUnavailable,
            format!("the database is unavailable: {}", describe(&e)),
        );
    }
    // A filter's RLIKE pattern that PostgreSQL cannot compile: MLflow's PostgreSQL store answers
    // 400 BAD_REQUEST with the database's words (SQLite's `regexp` matches nothing instead).
    if let Some(db) = e.as_db_error()
        && *db.code() == SqlState::INVALID_REGULAR_EXPRESSION
    {
        return Error::new(ErrorCode::BadRequest, db.message().to_string());
    }
    Error::internal(format!("database error: {}", describe(&e)))
}

/// Whether the statement failed because the connection did (closed, reset, the server shutting
/// down), not because of what it asked: the same call can succeed once the database is back.
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        // Class 08: connection exception; 57P: operator intervention (shutdown, crash).
        return state.code().starts_with("08") || state.code().starts_with("57P");
    }
    std::error::Error::source(e).is_some_and(|cause| cause.is::<std::io::Error>())
}

/// The tables each migration (by number) rebuilt. Fresh tables have no visibility map, so every
/// index-only scan over them reads the heap as well (and the planner, knowing it, scans the
/// table instead) until autovacuum comes around: the counts before a `feedback.<name> IS NULL`
/// search (migration 15) read 100,000 rows of `assessments` that way, not its index.
const REBUILT: &[(usize, &str)] = &[
    (14, "trace_info, trace_tags, trace_metadata, spans"),
    (15, "assessments"),
];

/// `VACUUM (ANALYZE)` of the tables the migrations after `from` rebuilt, once they are
/// committed (VACUUM runs outside a transaction). A new database (`from` 0) has no rows to
/// vacuum. Only a speed-up: a failure is logged.
async fn vacuum_rebuilt(client: &tokio_postgres::Client, from: usize) {
    if from == 0 {
        return;
    }
    let tables: Vec<&str> = REBUILT
        .iter()
        .filter(|(migration, _)| *migration > from && *migration <= MIGRATIONS.len())
        .map(|(_, tables)| *tables)
        .collect();
    if tables.is_empty() {
        return;
    }
    let sql = format!("VACUUM (ANALYZE) {}", tables.join(", "));
    if let Err(e) = client.batch_execute(&sql).await {
        tracing::warn!("{sql} after the upgrade failed: {}", describe(&e));
    }
}

/// Runs the migrations the database lacks, all in one transaction under the migration lock: a
/// replica that starts at the same time waits, then finds the schema current. A schema newer
/// than this binary is refused, as is MLflow's own schema.
pub fn upgrade(pool: &PgPool) -> Result<SchemaUpgrade> {
    pool.run(|conn| async move {
        let mut client = conn.client().await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        let mlflow: bool = tx
            .query_one(
                "SELECT to_regclass('alembic_version') IS NOT NULL
                    AND to_regclass('wasmflow_schema_version') IS NULL",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if mlflow {
            return Err(Error::invalid(format!(
                "'{uri}' is an MLflow database, not a wasmflow one; copy it into a database of \
                 wasmflow's own with `wasmflow import mlflow --from {uri} --to \
                 postgresql://.../NEW_DATABASE`",
                uri = conn.display_uri
            )));
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS wasmflow_schema_version (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(pg_err)?;
        let from: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM wasmflow_schema_version",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        let from = usize::try_from(from).unwrap_or(0);
        crate::check_schema_not_newer(from, MIGRATIONS.len())?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
            tx.batch_execute(sql).await.map_err(|e| {
                Error::internal(format!("migration {} failed: {}", i + 1, describe(&e)))
            })?;
            if i + 1 == crate::span_text::MIGRATION {
                crate::span_text::rewrite_postgres(&tx).await?;
            }
            if i + 1 == crate::assessment_columns::MIGRATION {
                crate::assessment_columns::rewrite_postgres(&tx).await?;
            }
            tx.execute(
                "INSERT INTO wasmflow_schema_version (version, applied_at) VALUES ($1, $2)",
                &[&(i as i64 + 1), &crate::sqlite::now_ms()],
            )
            .await
            .map_err(pg_err)?;
            tracing::info!(migration = i + 1, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(pg_err)?;
        vacuum_rebuilt(&client, from).await;
        Ok(SchemaUpgrade {
            from,
            to: MIGRATIONS.len().max(from),
        })
    })
}

#[cfg(test)]
mod redact_tests {
    use super::redact_password;

    #[test]
    fn passwords_are_hidden_wherever_they_are_written() {
        for (uri, want) in [
            (
                "postgresql://u:secret@h:5432/db",
                "postgresql://u:***@h:5432/db",
            ),
            ("postgresql://u:se/cr?et@h/db", "postgresql://u:***@h/db"),
            ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
            (
                "postgresql://h/db?user=u&password=secret&sslmode=require",
                "postgresql://h/db?user=u&password=***&sslmode=require",
            ),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgresql://h/db", "postgresql://h/db"),
            ("not a uri", "not a uri"),
        ] {
            assert_eq!(redact_password(uri), want, "{uri}");
            assert!(!redact_password(uri).contains("secret"));
        }
    }
}
