//! Schema tests, one suite for every backend: SQLite always, PostgreSQL when
//! WASMFLOW_TEST_POSTGRES_URI names a server (scripts/test.sh starts a throwaway one), each test
//! on a fresh database of its own.

use crate::testing as test_postgres;
use crate::testing::{at_version, execute, query_i64 as count};
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

/// Runs, points and latest values as schema 0009 kept them (run ids and key text in the metric
/// tables), in SQL both backends take. Experiment 1: r1 and r2 active, r3 deleted; r1's last
/// loss is NaN (stored as 0 with the flag), and its acc point is linked to logged model m-1.
const SCHEMA_9_DATA: &str = "
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                         last_update_time) VALUES (1, 'old', '/a/1', 'active', 1, 1);
INSERT INTO runs (run_uuid, experiment_id, name, status, start_time, artifact_uri,
                  lifecycle_stage, deleted_time) VALUES
    ('r1', 1, 'one', 'FINISHED', 1000, '/a/1/r1/artifacts', 'active', NULL),
    ('r2', 1, 'two', 'FINISHED', 2000, '/a/1/r2/artifacts', 'active', NULL),
    ('r3', 1, 'three', 'FINISHED', 3000, '/a/1/r3/artifacts', 'deleted', 5);
INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan, model_id) VALUES
    ('r1', 'loss', 0, 10, 0.5, 0, NULL),
    ('r1', 'loss', 1, 20, 0.4, 0, NULL),
    ('r1', 'loss', 2, 30, 0, 1, NULL),
    ('r1', 'acc', 0, 10, 0.9, 0, 'm-1'),
    ('r2', 'loss', 0, 10, 0.3, 0, NULL),
    ('r2', 'acc', 0, 10, 0.7, 0, NULL),
    ('r3', 'loss', 0, 10, 0.1, 0, NULL);
INSERT INTO latest_metrics (run_uuid, key, experiment_id, step, timestamp, value, is_nan) VALUES
    ('r1', 'loss', 1, 2, 30, 0, 1),
    ('r1', 'acc', 1, 0, 10, 0.9, 0),
    ('r2', 'loss', 1, 0, 10, 0.3, 0),
    ('r2', 'acc', 1, 0, 10, 0.7, 0),
    ('r3', 'loss', 1, 0, 10, 0.1, 0);
INSERT INTO logged_models (model_id, experiment_id, name, artifact_location,
                           creation_timestamp_ms, last_updated_timestamp_ms, status)
    VALUES ('m-1', 1, 'model', '/a/1/models/m-1', 1, 1, 'LOGGED_MODEL_READY');
";

/// The store at `uri`, opened: which brings it to the newest schema (checked).
fn open_migrated(uri: &str) -> std::sync::Arc<dyn crate::Store> {
    let store = crate::open(
        uri,
        crate::StoreConfig {
            default_artifact_root: "mlflow-artifacts:/".into(),
        },
    )
    .unwrap();
    assert_eq!(
        upgrade(uri).unwrap().from,
        crate::sqlite::MIGRATIONS.len(),
        "{uri}"
    );
    store
}

#[test]
fn migration_10_moves_every_metric_to_integer_keys() {
    use wasmflow_core::entities::{Metric, ViewType};
    use wasmflow_core::search::{parse_run_filter, parse_run_order_by};

    use crate::{NewRun, RunSearch};

    let point = |key: &str, step: i64, timestamp: i64, value: f64| Metric {
        key: key.into(),
        step,
        timestamp,
        value,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    };
    // (key, step, value) of each point; NaN as a string so that the comparison is exact.
    let shown = |points: &[Metric]| -> Vec<(String, i64, String)> {
        points
            .iter()
            .map(|m| (m.key.clone(), m.step, m.value.to_string()))
            .collect()
    };
    let owned = |v: &[(&str, i64, &str)]| -> Vec<(String, i64, String)> {
        v.iter()
            .map(|(k, s, v)| (k.to_string(), *s, v.to_string()))
            .collect()
    };
    for db in backends() {
        let uri = db.uri.as_str();
        at_version(uri, 9);
        execute(uri, SCHEMA_9_DATA);
        let store = open_migrated(uri);
        assert_eq!(count(uri, "SELECT count(*) FROM metrics"), 7, "{uri}");
        assert_eq!(
            count(uri, "SELECT count(*) FROM latest_metrics"),
            5,
            "{uri}"
        );
        assert_eq!(count(uri, "SELECT count(*) FROM metric_keys"), 2, "{uri}");
        assert_eq!(
            count(
                uri,
                "SELECT count(DISTINCT run_key) FROM runs WHERE run_key IS NOT NULL"
            ),
            3,
            "{uri}"
        );

        // Latest values in run reads, and every point of the history in MLflow's order.
        let r1 = store.get_run("r1").unwrap();
        assert_eq!(
            shown(&r1.data.metrics),
            owned(&[("acc", 0, "0.9"), ("loss", 2, "NaN")]),
            "{uri}"
        );
        let history = store.metric_history("r1", "loss", None, None).unwrap();
        assert_eq!(
            shown(&history.items),
            owned(&[("loss", 0, "0.5"), ("loss", 1, "0.4"), ("loss", 2, "NaN")]),
            "{uri}"
        );
        let acc = store.metric_history("r1", "acc", None, None).unwrap().items;
        assert_eq!(acc[0].model_id.as_deref(), Some("m-1"), "{uri}");
        let bulk = store
            .metric_history_bulk_interval(&["r1".into(), "r2".into()], "loss", None, 10)
            .unwrap();
        assert_eq!(bulk.len(), 4, "{uri}");
        let model = store.get_logged_model("m-1").unwrap();
        assert_eq!(shown(&model.data.metrics), owned(&[("acc", 0, "0.9")]));
        assert_eq!(model.data.metrics[0].run_id.as_deref(), Some("r1"));

        // Search: filter and order by metrics, numbers before NaN, deleted runs on request.
        let search = |filter: &str, order: &str, view: ViewType| -> Vec<String> {
            store
                .search_runs(&RunSearch {
                    experiment_ids: vec!["1".into()],
                    filter: parse_run_filter(filter).unwrap(),
                    order_by: vec![parse_run_order_by(order).unwrap()],
                    view,
                    max_results: 10,
                    page_token: None,
                })
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.info.run_id)
                .collect()
        };
        let active = ViewType::ActiveOnly;
        assert_eq!(
            search("metrics.acc > 0.5", "metrics.acc DESC", active),
            ["r1", "r2"],
            "{uri}"
        );
        assert_eq!(search("", "metrics.loss ASC", active), ["r2", "r1"]);
        assert_eq!(
            search("", "metrics.loss ASC", ViewType::All),
            ["r3", "r2", "r1"]
        );
        assert!(search("metrics.never > 0", "start_time", active).is_empty());

        // Writes after the upgrade: an old run and a new key, and a new run of its own key.
        store
            .log_batch(
                "r2",
                vec![point("loss", 1, 20, 0.2), point("f1", 0, 20, 0.6)],
                vec![],
                vec![],
            )
            .unwrap();
        let r2 = store.get_run("r2").unwrap();
        assert_eq!(
            shown(&r2.data.metrics),
            owned(&[("acc", 0, "0.7"), ("f1", 0, "0.6"), ("loss", 1, "0.2")]),
            "{uri}"
        );
        assert_eq!(search("metrics.f1 > 0.5", "start_time", active), ["r2"]);
        let new = store
            .create_run(NewRun {
                experiment_id: "1".into(),
                start_time: Some(4000),
                ..Default::default()
            })
            .unwrap()
            .info
            .run_id;
        store
            .log_batch(&new, vec![point("loss", 0, 40, 0.05)], vec![], vec![])
            .unwrap();
        assert_eq!(
            shown(&store.get_run(&new).unwrap().data.metrics),
            owned(&[("loss", 0, "0.05")])
        );
        assert_eq!(
            search("", "metrics.loss ASC", active),
            [new.as_str(), "r2", "r1"]
        );

        // Purging a run takes its points and latest values with it.
        store.purge_run("r3").unwrap();
        assert!(
            store
                .metric_history("r3", "loss", None, None)
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(count(uri, "SELECT count(*) FROM metrics"), 9, "{uri}");
        assert_eq!(
            count(uri, "SELECT count(*) FROM latest_metrics"),
            6,
            "{uri}"
        );
        drop(store);
        if !uri.starts_with("sqlite:") {
            test_postgres::drop_database(uri);
        }
    }
}

/// Rows as a wasmflow before migration 12 left them: traces 1 and 2 of session `S` and trace 3
/// of none; a feedback on trace 1 that names a session in its metadata (then kept as any
/// other), and feedback without a value on traces 2 and 3 (then kept as SQL NULL).
const SCHEMA_11_ASSESSMENTS: &str = r#"
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                         last_update_time)
    VALUES (7, 'old', '/a/7', 'active', 1, 1);
INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, state)
    VALUES ('tr-1', 7, 1000, 1, 'OK'), ('tr-2', 7, 2000, 1, 'OK'), ('tr-3', 7, 3000, 1, 'OK');
INSERT INTO trace_metadata (trace_id, key, value)
    VALUES ('tr-1', 'mlflow.trace.session', 'S'), ('tr-2', 'mlflow.trace.session', 'S');
INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid, created, body)
    VALUES ('a-1', 'tr-1', 'coherent', 'feedback', '"good"', 1, 1,
            '{"assessment_id":"a-1","trace_id":"tr-1","assessment_name":"coherent","feedback":{"value":"good"},"metadata":{"mlflow.trace.session":"S"},"valid":true}'),
           ('a-2', 'tr-2', 'judged', 'feedback', NULL, 1, 1,
            '{"assessment_id":"a-2","trace_id":"tr-2","assessment_name":"judged","feedback":{"error":{"error_code":"E"}},"valid":true}'),
           ('a-3', 'tr-3', 'judged', 'feedback', NULL, 1, 1,
            '{"assessment_id":"a-3","trace_id":"tr-3","assessment_name":"judged","feedback":{"value":null},"valid":true}');
"#;

#[test]
fn migration_12_marks_session_assessments_and_keeps_null_feedback_as_mlflow() {
    use crate::assessment_columns::MIGRATION;
    use crate::testing::query_texts;
    use crate::traces::{TraceSearch, parse_trace_filter};

    for db in backends() {
        let uri = db.uri.as_str();
        at_version(uri, MIGRATION - 1);
        execute(uri, SCHEMA_11_ASSESSMENTS);
        let store = open_migrated(uri);
        let columns = query_texts(
            uri,
            "SELECT value || ' ' || session_level FROM assessments ORDER BY assessment_id",
        );
        assert_eq!(
            columns,
            [Some("\"good\" 1"), Some("null 0"), Some("null 0")].map(|c| c.map(str::to_string)),
            "{uri}"
        );
        let search = |filter: &str| -> Vec<String> {
            let page = store
                .search_traces(&TraceSearch {
                    experiment_ids: vec!["7".into()],
                    filter: parse_trace_filter(filter).unwrap(),
                    order_by: vec![],
                    max_results: 10,
                    page_token: None,
                })
                .unwrap();
            let mut ids: Vec<String> = page.items.into_iter().map(|t| t.trace_id).collect();
            ids.sort();
            ids
        };
        // The session's feedback covers its other trace; the valueless ones are `null`.
        assert_eq!(
            search("feedback.coherent = 'good'"),
            ["tr-1", "tr-2"],
            "{uri}"
        );
        assert_eq!(search("feedback.coherent IS NULL"), ["tr-3"], "{uri}");
        assert_eq!(
            search("feedback.judged = 'null'"),
            ["tr-2", "tr-3"],
            "{uri}"
        );
        assert_eq!(search("feedback.judged != 'x'"), ["tr-2", "tr-3"], "{uri}");
        drop(store);
        if !uri.starts_with("sqlite:") {
            test_postgres::drop_database(uri);
        }
    }
}
