//! One synchronous connection to a SQLite file or a PostgreSQL database, for the tools that copy
//! rows from one SQL store to another (`wasmflow import mlflow` reads MLflow's schema from either
//! and writes wasmflow's into either). The SQL is written once in the dialect both accept
//! (`$n` parameters, `ON CONFLICT ... DO NOTHING`, row values, window functions), parameters are
//! converted to the column types the server asks for, and rows come back as plain values.

use std::collections::HashSet;
use std::path::Path;

use bytes::BytesMut;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use wasmflow_core::{Error, Result};

use crate::postgres::{PgPool, pg_err};
use crate::sqlite::sql_err;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value read from a row. Booleans come as `Int` (0 or 1), as SQLite stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A row of a query's answer, read by column position.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::internal(format!("no column {i} in the row")))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(Error::internal(format!(
                "column {i} is {other:?}, not an integer"
            ))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| Error::internal(format!("column {i} is null, not an integer")))
    }

    pub fn bool(&self, i: usize) -> Result<bool> {
        Ok(self.int(i)? != 0)
    }

    pub fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            Value::Int(v) => Ok(Some(*v as f64)),
            other => Err(Error::internal(format!(
                "column {i} is {other:?}, not a number"
            ))),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(Error::internal(format!(
                "column {i} is {other:?}, not text"
            ))),
        }
    }

    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| Error::internal(format!("column {i} is null, not text")))
    }
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(Option<i64>),
    Real(f64),
    Text(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(Some(i64::from(v)))
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}

/// Parameters as `&[Arg]`: `args![a, b, c]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::sql_conn::Arg::from($v)),*][..] };
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(Some(v)) => ToSqlOutput::from(v),
            Arg::Real(v) => ToSqlOutput::from(v),
            Arg::Text(Some(v)) => ToSqlOutput::from(v),
            Arg::Int(None) | Arg::Text(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

/// The column types differ between the two schemas (MLflow's PostgreSQL schema has INTEGER ids
/// and BOOLEAN flags where wasmflow's has BIGINT), so a parameter takes the type the server
/// infers for it.
impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Arg::Int(None) | Arg::Text(None) => Ok(IsNull::Yes),
            Arg::Int(Some(v)) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                _ if <i64 as ToSql>::accepts(ty) => v.to_sql(ty, out),
                _ => Err(format!("cannot pass the integer {v} as {ty}").into()),
            },
            Arg::Real(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ if <f64 as ToSql>::accepts(ty) => v.to_sql(ty, out),
                _ => Err(format!("cannot pass the number {v} as {ty}").into()),
            },
            Arg::Text(Some(s)) if <&str as ToSql>::accepts(ty) => s.to_sql(ty, out),
            Arg::Text(Some(s)) => Err(format!("cannot pass the text '{s}' as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A connection either backend gives; every call is its own statement (autocommit) unless
/// inside [`in_transaction`].
pub trait SqlConn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; answers how many rows it changed.
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;
    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>>;
    /// Statements without parameters, one after another.
    fn batch(&self, sql: &str) -> Result<()>;
    /// The column names of `table` (none when there is no such table).
    fn columns(&self, table: &str) -> Result<HashSet<String>>;

    fn query_opt(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }
}

/// Runs `body` in one transaction: committed when it succeeds, rolled back when it fails.
pub fn in_transaction<T>(
    conn: &dyn SqlConn,
    body: impl FnOnce(&dyn SqlConn) -> Result<T>,
) -> Result<T> {
    conn.batch("BEGIN")?;
    match body(conn) {
        Ok(out) => {
            conn.batch("COMMIT")?;
            Ok(out)
        }
        Err(e) => {
            // The body's error is the one to report; a failed rollback leaves nothing behind
            // either (the connection is dropped with the process).
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Opens an existing SQLite database file without writing to it (the importer reads MLflow's
/// database with it).
pub fn open_sqlite_read_only(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::invalid(format!("cannot open '{}': {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_err)?;
    Ok(conn)
}

/// A cached statement with `args` bound to `$1`, `$2`, ... by name (SQLite numbers named
/// parameters in the order they first appear, which need not be theirs).
fn bound<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    for (i, arg) in args.iter().enumerate() {
        if let Some(at) = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(sql_err)?
        {
            stmt.raw_bind_parameter(at, arg).map_err(sql_err)?;
        }
    }
    Ok(stmt)
}

/// SQLite connections are SQL connections, so that what both stores write the same way (as
/// [`metric_key_ids`]) is written once.
impl SqlConn for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut stmt = bound(self, sql, args)?;
        Ok(stmt.raw_execute().map_err(sql_err)? as u64)
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let mut stmt = bound(self, sql, args)?;
        let width = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql_err)? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                row.push(match r.get_ref(i).map_err(sql_err)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.execute_batch(sql).map_err(sql_err)
    }

    fn columns(&self, table: &str) -> Result<HashSet<String>> {
        self.query("SELECT name FROM pragma_table_info($1)", args![table])?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }
}

/// A PostgreSQL connection: one pooled client, driven by the pool's runtime.
pub struct PgConn {
    pub(crate) pool: PgPool,
    client: deadpool_postgres::Client,
}

impl PgConn {
    pub fn connect(uri: &str) -> Result<Self> {
        let pool = PgPool::connect(uri)?;
        let client = pool.run(|conn| async move { conn.client().await })?;
        Ok(Self { pool, client })
    }

    /// Every transaction of this session read-only: a source is never written to.
    pub fn read_only(self) -> Result<Self> {
        self.batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
        Ok(self)
    }
}

impl SqlConn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let client = &self.client;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.pool.run(|_| async move {
            let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
            client.execute(&stmt, &params).await.map_err(pg_err)
        })
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let client = &self.client;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let rows = self.pool.run(|_| async move {
            let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
            client.query(&stmt, &params).await.map_err(pg_err)
        })?;
        rows.iter().map(pg_row).collect()
    }

    fn batch(&self, sql: &str) -> Result<()> {
        let client = &self.client;
        self.pool
            .run(|_| async move { client.batch_execute(sql).await.map_err(pg_err) })
    }

    fn columns(&self, table: &str) -> Result<HashSet<String>> {
        self.query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            args![table],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect()
    }
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(pg_err)?
                .map(|v| Value::Int(v.into())),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(pg_err)?
                .map(|v| Value::Int(v.into())),
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map_err(pg_err)?
                .map(Value::Int),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(pg_err)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)
                .map_err(pg_err)?
                .map(|v| Value::Real(v.into())),
            Type::FLOAT8 => row
                .try_get::<_, Option<f64>>(i)
                .map_err(pg_err)?
                .map(Value::Real),
            _ if <String as tokio_postgres::types::FromSql>::accepts(ty) => row
                .try_get::<_, Option<String>>(i)
                .map_err(pg_err)?
                .map(Value::Text),
            _ => {
                return Err(Error::internal(format!(
                    "cannot read column '{}' of type {ty}",
                    column.name()
                )));
            }
        };
        out.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// The ids of the metric keys `keys` in `metric_keys` (the metric tables name keys by their id),
/// adding the keys it lacks: two statements for a whole batch, whatever its number of keys. The
/// SQLite tracking store and the importers of both backends call this; the PostgreSQL tracking
/// store does the same inside its one-statement batch write (`postgres::tracking`).
///
/// Ids are read from the table every time, never remembered across calls: another process may
/// have added keys, and a key added by a batch that then failed is rolled back with it. Only
/// the missing keys are inserted, so PostgreSQL's sequence is not spent on keys already there;
/// keys are inserted in sorted order, so that concurrent batches take row locks in one order.
pub(crate) fn metric_key_ids<'a>(
    c: &dyn SqlConn,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<MetricKeyIds> {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let list = serde_json::to_string(&keys).map_err(|e| Error::internal(e.to_string()))?;
    // The keys are one parameter, a JSON array, read as rows by each backend's JSON function.
    let rows = match c.dialect() {
        Dialect::Sqlite => "json_each($1) AS j",
        Dialect::Postgres => "json_array_elements_text($1::text::json) AS j (value)",
    };
    c.execute(
        &format!(
            "INSERT INTO metric_keys (key)
             SELECT j.value FROM {rows}
             WHERE NOT EXISTS (SELECT 1 FROM metric_keys k WHERE k.key = j.value)
             ON CONFLICT DO NOTHING"
        ),
        args![list.as_str()],
    )?;
    c.query(
        &format!(
            "SELECT key, metric_key_id FROM metric_keys
             WHERE key IN (SELECT j.value FROM {rows})"
        ),
        args![list.as_str()],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?)))
    .collect::<Result<_>>()
    .map(MetricKeyIds)
}

/// The ids of a batch's metric keys, as [`metric_key_ids`] read them.
pub(crate) struct MetricKeyIds(std::collections::HashMap<String, i64>);

impl MetricKeyIds {
    /// The id of `key`, one of the keys the batch was read for.
    pub(crate) fn get(&self, key: &str) -> Result<i64> {
        self.0
            .get(key)
            .copied()
            .ok_or_else(|| Error::internal(format!("metric key '{key}' has no id")))
    }
}
