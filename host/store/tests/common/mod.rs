//! What the store's integration tests share.

use wasmflow_store::{SqliteStore, StoreConfig};

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("db.sqlite"),
        StoreConfig {
            default_artifact_root: "mlflow-artifacts:/".into(),
        },
    )
    .unwrap();
    (dir, store)
}
