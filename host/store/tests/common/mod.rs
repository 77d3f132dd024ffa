//! What the store's integration tests share: a fresh store of each backend.
//!
//! `each_backend!(|store| { ... })` runs the body against a new SQLite store, then, when
//! WASMFLOW_TEST_POSTGRES_URI names a PostgreSQL server (scripts/test.sh starts one), against a
//! new PostgreSQL store in a database of its own: one suite for every backend.

#![allow(dead_code)]

use wasmflow_store::{PgStore, SqliteStore, StoreConfig, testing};

fn config() -> StoreConfig {
    StoreConfig {
        default_artifact_root: "mlflow-artifacts:/".into(),
    }
}

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite"), config()).unwrap();
    (dir, store)
}

/// A fresh PostgreSQL store in a new database of the test server; `None` when no server is
/// configured (the test then runs against SQLite alone).
pub fn pg_store() -> Option<(PgDatabase, PgStore)> {
    let uri = testing::fresh_database()?;
    let store = PgStore::open(&uri, config()).unwrap();
    Some((PgDatabase(uri), store))
}

/// Drops its database when the test ends. Bind it before the store (`let (_db, store) = ...`):
/// a tuple's fields drop in order, and the drop closes the store's connections.
pub struct PgDatabase(String);

impl PgDatabase {
    /// The database's uri, for a second store on it (another replica).
    pub fn uri(&self) -> &str {
        &self.0
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        testing::drop_database(&self.0);
    }
}

/// Runs the body against each backend in turn, `$store` naming the store (a concrete type, so
/// the body type-checks once per backend).
#[macro_export]
macro_rules! each_backend {
    (|$store:ident| $body:block) => {{
        {
            let (_dir, $store) = $crate::common::store();
            $body
        }
        if let Some((_db, $store)) = $crate::common::pg_store() {
            $body
        }
    }};
}
