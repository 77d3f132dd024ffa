//! Schema tests, one suite for every backend: SQLite always, PostgreSQL when
//! WASMFLOW_TEST_POSTGRES_URI names a server (scripts/test.sh starts a throwaway one), each test
//! on a fresh database of its own.

use crate::testing as test_postgres;
use crate::{SchemaUpgrade, upgrade};

/// A fresh, empty database of each backend, as a `--backend-store-uri`.
struct Fresh {
    uri: String,
    _dir: Option<tempfile::TempDir>,
}

fn backends() -> Vec<Fresh> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Fresh {
        uri: format!("sqlite:///{}", dir.path().join("store.db").display()),
        _dir: Some(dir),
    }];
    if let Some(uri) = test_postgres::fresh_database() {
        out.push(Fresh { uri, _dir: None });
    }
    out
}

/// Runs one SQL statement on the database `uri` names (either backend).
fn execute(uri: &str, sql: &str) {
    if uri.starts_with("sqlite:") {
        let conn = rusqlite::Connection::open(crate::store_path(uri).unwrap()).unwrap();
        conn.execute_batch(sql).unwrap();
    } else {
        test_postgres::execute(uri, sql);
    }
}

#[test]
fn upgrade_creates_the_schema_then_has_nothing_left_to_do() {
    for db in backends() {
        let first = upgrade(&db.uri).unwrap();
        assert_eq!(first.from, 0, "{}", db.uri);
        assert!(first.to >= 4, "{}", db.uri);
        let again = upgrade(&db.uri).unwrap();
        assert_eq!(
            again,
            SchemaUpgrade {
                from: first.to,
                to: first.to
            },
            "{}",
            db.uri
        );
    }
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_in_one_line() {
    for db in backends() {
        upgrade(&db.uri).unwrap();
        if db.uri.starts_with("sqlite:") {
            execute(&db.uri, "PRAGMA user_version = 999");
        } else {
            execute(
                &db.uri,
                "INSERT INTO wasmflow_schema_version (version, applied_at) VALUES (999, 0)",
            );
        }
        let err = upgrade(&db.uri).unwrap_err();
        assert!(
            err.message
                .contains("schema is at version 999, newer than this wasmflow"),
            "{}: {}",
            db.uri,
            err.message
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
    }
}

#[test]
fn replicas_upgrading_together_never_race() {
    let Some(uri) = test_postgres::fresh_database() else {
        eprintln!("skipped: WASMFLOW_TEST_POSTGRES_URI is not set");
        return;
    };
    // Eight processes' worth of upgrades at once on an empty database: the advisory lock lets
    // one migrate; the others wait, then find the schema current.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| upgrade(&uri))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let results: Vec<SchemaUpgrade> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        results.iter().filter(|u| u.from == 0).count(),
        1,
        "{results:?}"
    );
    let to = results[0].to;
    assert!(results.iter().all(|u| u.to == to), "{results:?}");
    assert_eq!(
        test_postgres::query_i64(&uri, "SELECT count(*) FROM wasmflow_schema_version"),
        to as i64
    );
}

#[test]
fn an_mlflow_postgres_database_is_refused() {
    let Some(uri) = test_postgres::fresh_database() else {
        eprintln!("skipped: WASMFLOW_TEST_POSTGRES_URI is not set");
        return;
    };
    execute(
        &uri,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
    );
    let err = upgrade(&uri).unwrap_err();
    assert!(
        err.message
            .contains("is an MLflow database, not a wasmflow one"),
        "{}",
        err.message
    );
}

#[test]
fn an_unreachable_postgres_server_is_named_without_its_password() {
    // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    let err = upgrade("postgresql+psycopg2://me:s3cret@127.0.0.1:1/db").unwrap_err();
    assert!(
        err.message.contains(
            "cannot connect to PostgreSQL at 'postgresql+psycopg2://me:***@127.0.0.1:1/db'"
        ),
        "{}",
        err.message
    );
    assert!(!err.message.contains("s3cret"), "{}", err.message);
}

#[test]
fn postgres_uris_in_mlflow_and_sqlalchemy_forms() {
    for uri in [
        "postgresql://u:p@h:5432/db",
        "postgres://u:p@h/db",
        "postgresql+psycopg2://u:p@h:5432/db",
        "POSTGRESQL://u@h/db?connect_timeout=5",
    ] {
        let config = crate::postgres::parse_uri(uri).unwrap().unwrap();
        assert_eq!(config.get_dbname(), Some("db"), "{uri}");
    }
    for not_pg in [
        "sqlite:///x.db",
        "x.db",
        "mysql://u@h/db",
        "file:///tmp/mlruns",
    ] {
        assert!(crate::postgres::parse_uri(not_pg).is_none(), "{not_pg}");
    }
    let err = crate::postgres::parse_uri("postgresql://u:p@h:notaport/db")
        .unwrap()
        .unwrap_err();
    assert!(
        err.message
            .contains("invalid PostgreSQL uri 'postgresql://u:***@h:notaport/db'"),
        "{}",
        err.message
    );
    assert_eq!(
        crate::redact_password("postgresql://user:pa:ss@host:1/db?x=y"),
        "postgresql://user:***@host:1/db?x=y"
    );
    assert_eq!(
        crate::redact_password("postgresql://host/db"),
        "postgresql://host/db"
    );
}

#[test]
fn what_needs_a_sqlite_file_refuses_a_postgres_uri_without_its_password() {
    let err = crate::store_path("postgresql://u:secret@h/db").unwrap_err();
    assert!(
        err.message.contains("is a PostgreSQL database"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("secret"), "{}", err.message);
}

#[test]
fn a_postgres_store_opens_on_an_empty_database_and_again_on_its_own_schema() {
    let Some(uri) = test_postgres::fresh_database() else {
        eprintln!("skipped: WASMFLOW_TEST_POSTGRES_URI is not set");
        return;
    };
    let config = || crate::StoreConfig {
        default_artifact_root: "mlflow-artifacts:/".into(),
    };
    drop(crate::PgStore::open(&uri, config()).unwrap());
    drop(crate::PgStore::open(&uri, config()).unwrap());
    test_postgres::drop_database(&uri);
}
