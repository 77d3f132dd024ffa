//! The SQLite side of the shared search compiler ([`crate::search_sql`]): running a compiled
//! query on a connection.

use rusqlite::types::Value as SqlValue;
use wasmflow_core::Result;

use super::sql_err;
use crate::search_sql::Query;

pub(crate) struct SqlQuery {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl From<Query> for SqlQuery {
    fn from(q: Query) -> Self {
        Self {
            sql: q.sql,
            params: q.params.into_iter().map(|p| p.into_sqlite()).collect(),
        }
    }
}

impl From<&Query> for SqlQuery {
    fn from(q: &Query) -> Self {
        Self {
            sql: q.sql.clone(),
            params: q.params.iter().cloned().map(|p| p.into_sqlite()).collect(),
        }
    }
}

impl SqlQuery {
    /// Runs the query and maps each row.
    pub fn rows<T>(
        &self,
        conn: &rusqlite::Connection,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = conn.prepare_cached(&self.sql).map_err(sql_err)?;
        stmt.query_map(rusqlite::params_from_iter(self.params.iter()), map)
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)
    }

    /// Runs the query and collects its first column.
    pub fn first_column<T: rusqlite::types::FromSql>(
        &self,
        conn: &rusqlite::Connection,
    ) -> Result<Vec<T>> {
        self.rows(conn, |r| r.get(0))
    }
}
