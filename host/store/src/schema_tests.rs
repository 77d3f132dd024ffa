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

/// Rows as a wasmflow before migration 14 left them, keyed by the text trace id: traces `tr-b`,
/// `tr-a`, `tr-c` stored in that order (not their time order), with tags, metadata, spans,
/// an assessment, a run link and a prompt link. `{BODY}` is a span body (a dialect's literal).
const SCHEMA_13_TRACES: &str = r#"
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                         last_update_time)
    VALUES (7, 'old', '/a/7', 'active', 1, 1);
INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, state,
                        client_request_id, request_preview, response_preview)
    VALUES ('tr-b', 7, 2000, 5, 'OK', NULL, '"q-b"', NULL);
INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, state,
                        client_request_id, request_preview, response_preview)
    VALUES ('tr-a', 7, 1000, 7, 'ERROR', 'c-1', '"q-a"', '"r-a"');
INSERT INTO trace_info (trace_id, experiment_id, request_time, execution_duration, state)
    VALUES ('tr-c', 7, 3000, NULL, 'IN_PROGRESS');
INSERT INTO trace_tags (trace_id, key, value)
    VALUES ('tr-a', 'mlflow.traceName', 'alpha'), ('tr-a', 'k', '1'),
           ('tr-b', 'mlflow.traceName', 'beta');
INSERT INTO trace_metadata (trace_id, key, value)
    VALUES ('tr-a', 'mlflow.sourceRun', 'r-9'), ('tr-b', 'mlflow.trace.session', 'S');
INSERT INTO spans (trace_id, span_id, parent_span_id, name, span_type, status, start_time_ns,
                   end_time_ns, content, body)
    VALUES ('tr-a', 's2', 's1', 'child', 'LLM', 'OK', 20, 30, '{"name": "child"}', {BODY2}),
           ('tr-a', 's1', NULL, 'root', 'CHAIN', 'OK', 10, 40, '{"name": "root"}', {BODY1}),
           ('tr-b', 's3', NULL, 'root', NULL, 'ERROR', 5, NULL, '{"name": "root"}', {BODY3});
INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid, created, body,
                         session_level)
    VALUES ('a-1', 'tr-a', 'good', 'feedback', '"yes"', 1, 1,
            '{"assessment_id":"a-1","trace_id":"tr-a","assessment_name":"good","feedback":{"value":"yes"},"valid":true}',
            0);
INSERT INTO trace_runs (trace_id, run_id) VALUES ('tr-c', 'r-1');
INSERT INTO trace_prompts (trace_id, prompt) VALUES ('tr-b', 'p/1');
"#;

/// The ids of the first 10 traces of `experiments` that `filter` finds, in `order`.
fn trace_ids(
    store: &dyn crate::Store,
    experiments: &[&str],
    filter: &str,
    order: &[&str],
) -> Vec<String> {
    use crate::traces::{TraceSearch, parse_trace_filter, parse_trace_order_by};

    store
        .search_traces(&TraceSearch {
            experiment_ids: experiments.iter().map(|e| e.to_string()).collect(),
            filter: parse_trace_filter(filter).unwrap(),
            order_by: order
                .iter()
                .map(|o| parse_trace_order_by(o).unwrap())
                .collect(),
            max_results: 10,
            page_token: None,
        })
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.trace_id)
        .collect()
}

#[test]
fn migration_14_keys_trace_rows_by_integer_and_keeps_them() {
    use std::collections::BTreeMap;

    use crate::testing::query_texts;
    use crate::traces::{NewSpan, TraceDeletion};

    let pairs = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    for db in backends() {
        let uri = db.uri.as_str();
        let sqlite = uri.starts_with("sqlite:");
        at_version(uri, 13);
        let body = |hex: &str| {
            if sqlite {
                format!("x'{hex}'")
            } else {
                format!("'\\x{hex}'::bytea")
            }
        };
        execute(
            uri,
            &SCHEMA_13_TRACES
                .replace("{BODY1}", &body("0102"))
                .replace("{BODY2}", &body("03"))
                .replace("{BODY3}", &body("04")),
        );
        let store = open_migrated(uri);

        // Keys in arrival order on SQLite (its rowids), in (request_time, id) order on
        // PostgreSQL (whose tables have no arrival order to keep).
        let by_key = query_texts(uri, "SELECT trace_id FROM trace_info ORDER BY trace_key");
        let expected = if sqlite {
            ["tr-b", "tr-a", "tr-c"]
        } else {
            ["tr-a", "tr-b", "tr-c"]
        };
        assert_eq!(by_key, expected.map(|t| Some(t.to_string())), "{uri}");

        // Every field, tag, metadata and assessment read back as it was.
        let a = store.get_trace_info("tr-a").unwrap();
        assert_eq!(
            (
                a.experiment_id.as_str(),
                a.request_time,
                a.execution_duration,
                a.state.as_str(),
                a.client_request_id.as_deref(),
                a.request_preview.as_deref(),
                a.response_preview.as_deref()
            ),
            (
                "7",
                1000,
                Some(7),
                "ERROR",
                Some("c-1"),
                Some("\"q-a\""),
                Some("\"r-a\"")
            ),
            "{uri}"
        );
        assert_eq!(
            a.tags,
            pairs(&[("k", "1"), ("mlflow.traceName", "alpha")]),
            "{uri}"
        );
        assert_eq!(a.trace_metadata, pairs(&[("mlflow.sourceRun", "r-9")]));
        assert_eq!(a.assessments.len(), 1, "{uri}");
        assert_eq!(a.assessments[0]["assessment_id"], "a-1", "{uri}");
        let infos = store
            .get_trace_infos(&["tr-c".into(), "tr-b".into()])
            .unwrap();
        let shown: Vec<_> = infos
            .iter()
            .map(|i| (i.trace_id.as_str(), i.state.as_str(), i.tags.len()))
            .collect();
        assert_eq!(
            shown,
            [("tr-c", "IN_PROGRESS", 0), ("tr-b", "OK", 1)],
            "{uri}"
        );
        assert_eq!(
            infos[1].trace_metadata,
            pairs(&[("mlflow.trace.session", "S")])
        );

        // Spans by trace, in start order, with their bytes.
        let spans: Vec<(String, Vec<u8>)> = store
            .get_spans(&["tr-b".into(), "tr-a".into()])
            .unwrap()
            .into_iter()
            .map(|s| (s.trace_id, s.body))
            .collect();
        assert_eq!(
            spans,
            [
                ("tr-b".to_string(), vec![4]),
                ("tr-a".to_string(), vec![1, 2]),
                ("tr-a".to_string(), vec![3])
            ],
            "{uri}"
        );

        // Searches over each child table.
        let search = |filter: &str, order: &[&str]| trace_ids(&*store, &["7"], filter, order);
        assert_eq!(search("", &[]), ["tr-c", "tr-b", "tr-a"], "{uri}");
        assert_eq!(search("tags.k = '1'", &[]), ["tr-a"], "{uri}");
        assert_eq!(search("span.name = 'root'", &[]), ["tr-b", "tr-a"], "{uri}");
        assert_eq!(search("span.type = 'LLM'", &[]), ["tr-a"], "{uri}");
        assert_eq!(search("run_id = 'r-9'", &[]), ["tr-a"], "{uri}");
        assert_eq!(search("run_id = 'r-1'", &[]), ["tr-c"], "{uri}");
        assert_eq!(search("prompt = 'p/1'", &[]), ["tr-b"], "{uri}");
        assert_eq!(search("feedback.good = 'yes'", &[]), ["tr-a"], "{uri}");
        assert_eq!(
            search("metadata.`mlflow.trace.session` = 'S'", &[]),
            ["tr-b"],
            "{uri}"
        );
        assert_eq!(search("", &["name ASC"]), ["tr-c", "tr-a", "tr-b"], "{uri}");

        // Writes after the upgrade: a span and a tag on an old trace, a new trace (the next
        // key), and a delete that takes the trace's rows with it.
        store
            .log_spans(
                "7",
                vec![NewSpan {
                    trace_id: "tr-c".into(),
                    span_id: "s4".into(),
                    parent_span_id: Some("s0".into()),
                    name: "late".into(),
                    status: "OK".into(),
                    start_time_ns: 3_000_000_000,
                    content: r#"{"name": "late"}"#.into(),
                    body: vec![5],
                    ..Default::default()
                }],
                "mlflow-artifacts:/".into(),
            )
            .unwrap();
        store.set_trace_tag("tr-c", "x", "y").unwrap();
        assert_eq!(search("span.name = 'late'", &[]), ["tr-c"], "{uri}");
        assert_eq!(
            store.get_trace_info("tr-c").unwrap().tags["x"],
            "y",
            "{uri}"
        );
        store
            .start_trace(
                crate::traces::TraceInfo {
                    trace_id: "tr-d".into(),
                    experiment_id: "7".into(),
                    request_time: 500,
                    state: "OK".into(),
                    ..Default::default()
                },
                "/a/7/traces/tr-d/artifacts".into(),
            )
            .unwrap();
        // The newest key (PostgreSQL's sequence may skip some: an insert that found its trace
        // there took one).
        assert_eq!(
            count(
                uri,
                "SELECT count(*) FROM trace_info WHERE trace_key >= \
                 (SELECT trace_key FROM trace_info WHERE trace_id = 'tr-d')"
            ),
            1,
            "{uri}"
        );
        let tables = [
            (
                "spans",
                "trace_key = (SELECT trace_key FROM trace_info WHERE trace_id = 'tr-a')",
            ),
            (
                "trace_tags",
                "trace_key = (SELECT trace_key FROM trace_info WHERE trace_id = 'tr-a')",
            ),
            (
                "trace_metadata",
                "trace_key = (SELECT trace_key FROM trace_info WHERE trace_id = 'tr-a')",
            ),
            ("assessments", "trace_id = 'tr-a'"),
            ("trace_runs", "trace_id = 'tr-a'"),
            ("trace_prompts", "trace_id = 'tr-a'"),
        ];
        let rows = |uri: &str| -> Vec<(i64, i64)> {
            tables
                .iter()
                .map(|(table, of_a)| {
                    (
                        count(uri, &format!("SELECT count(*) FROM {table}")),
                        count(uri, &format!("SELECT count(*) FROM {table} WHERE {of_a}")),
                    )
                })
                .collect()
        };
        let before = rows(uri);
        let of_a: Vec<i64> = before.iter().map(|(_, a)| *a).collect();
        assert_eq!(of_a, [2, 2, 1, 1, 0, 0], "{uri}");
        let deleted = store
            .delete_traces(&TraceDeletion {
                experiment_id: "7".into(),
                trace_ids: vec!["tr-a".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(deleted.len(), 1, "{uri}");
        // Only tr-a's rows went, by ON DELETE CASCADE.
        let after: Vec<i64> = rows(uri).iter().map(|(all, _)| *all).collect();
        let expected: Vec<i64> = before.iter().map(|(all, a)| all - a).collect();
        assert_eq!(after, expected, "{uri}");
        drop(store);
        if !sqlite {
            test_postgres::drop_database(uri);
        }
    }
}

/// Migration 15 gives each assessment its trace's experiment and key, which the counts before
/// an `IS NULL` search read (`held_by_all_queries`); rows are kept, and writes after it fill
/// both.
#[test]
fn migration_15_keeps_assessments_with_their_traces_experiment_and_key() {
    for db in backends() {
        let uri = db.uri.as_str();
        at_version(uri, 14);
        let assessment = |id: &str, trace: &str, kind: &str, valid: u8| {
            format!(
                "('{id}', '{trace}', 'q', '{kind}', '\"yes\"', {valid}, 1, \
                 '{{\"assessment_id\":\"{id}\",\"trace_id\":\"{trace}\",\
                 \"assessment_name\":\"q\",\"{kind}\":{{\"value\":\"yes\"}},\"valid\":{}}}', 0)",
                valid == 1
            )
        };
        execute(
            uri,
            &format!(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage,
                                          creation_time, last_update_time)
                     VALUES (7, 'seven', '/a/7', 'active', 1, 1),
                            (8, 'eight', '/a/8', 'active', 1, 1);
                 INSERT INTO trace_info (trace_id, experiment_id, request_time, state)
                     VALUES ('tr-a', 7, 1000, 'OK'), ('tr-b', 7, 2000, 'OK'),
                            ('tr-c', 8, 3000, 'OK');
                 INSERT INTO assessments (assessment_id, trace_id, name, kind, value, valid,
                                          created, body, session_level)
                     VALUES {}, {}, {}, {}, {};",
                assessment("a-1", "tr-a", "feedback", 1),
                assessment("a-2", "tr-a", "feedback", 1),
                assessment("a-3", "tr-b", "feedback", 0),
                assessment("a-4", "tr-b", "feedback", 1),
                assessment("a-5", "tr-c", "expectation", 1),
            ),
        );
        let store = open_migrated(uri);
        let kept = "SELECT count(*) FROM assessments a JOIN trace_info t \
                    ON t.trace_id = a.trace_id AND t.experiment_id = a.experiment_id \
                    AND t.trace_key = a.trace_key";
        assert_eq!(count(uri, kept), 5, "{uri}");
        if !uri.starts_with("sqlite:") {
            // Vacuumed after the upgrade, so the counts' index-only scans skip the heap.
            let visible =
                "SELECT relallvisible::bigint FROM pg_class WHERE relname = 'assessments'";
            assert_eq!(count(uri, visible), 1, "{uri}");
        }
        let search =
            |experiments: &[&str], filter: &str| trace_ids(&*store, experiments, filter, &[]);
        assert!(search(&["7"], "feedback.q IS NULL").is_empty(), "{uri}");
        assert_eq!(search(&["7", "8"], "feedback.q IS NULL"), ["tr-c"], "{uri}");
        assert_eq!(
            search(&["7", "8"], "expectation.q IS NULL"),
            ["tr-b", "tr-a"],
            "{uri}"
        );
        // A write after the upgrade fills both.
        store
            .create_assessment(serde_json::json!({
                "assessment_id": "a-6", "trace_id": "tr-c", "assessment_name": "q",
                "feedback": {"value": "no"}, "valid": true,
            }))
            .unwrap();
        assert_eq!(count(uri, kept), 6, "{uri}");
        assert!(
            search(&["7", "8"], "feedback.q IS NULL").is_empty(),
            "{uri}"
        );
    }
}
