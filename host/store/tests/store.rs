//! The tracking store through its public trait, on every backend (`each_backend!`): a temporary
//! SQLite file, and a fresh PostgreSQL database when WASMFLOW_TEST_POSTGRES_URI is set.

use std::sync::Arc;

use wasmflow_core::ErrorCode;
use wasmflow_core::entities::{
    Dataset, DatasetInput, LifecycleStage, LoggedModelStatus, Metric, ModelInput, ModelOutput,
    Param, RunStatus, Tag, ViewType,
};
use wasmflow_core::search::{
    parse_experiment_filter, parse_experiment_order_by, parse_logged_model_filter,
    parse_run_filter, parse_run_order_by,
};
use wasmflow_store::{
    ExperimentSearch, LoggedModelSearch, NewLoggedModel, NewRun, RunSearch, RunUpdate, SqliteStore,
    StoreConfig, TrackingStore,
};

mod common;

fn metric(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    }
}

fn new_run(store: &impl TrackingStore, experiment_id: &str) -> String {
    store
        .create_run(NewRun {
            experiment_id: experiment_id.into(),
            user_id: "tester".into(),
            run_name: Some("r".into()),
            start_time: Some(1000),
            tags: vec![],
        })
        .unwrap()
        .info
        .run_id
}

#[test]
fn default_experiment_exists() {
    each_backend!(|store| {
        let exp = store.get_experiment("0").unwrap();
        assert_eq!(exp.name, "Default");
        assert_eq!(exp.artifact_location, "mlflow-artifacts:/0");
    });
}

#[test]
fn experiments_are_unique_and_soft_deleted() {
    each_backend!(|store| {
        let id = store.create_experiment("exp", None, &[]).unwrap();
        assert_eq!(
            store.get_experiment(&id).unwrap().artifact_location,
            format!("mlflow-artifacts:/{id}")
        );
        let dup = store.create_experiment("exp", None, &[]).unwrap_err();
        assert_eq!(dup.code, ErrorCode::ResourceAlreadyExists);
        let run_id = new_run(&store, &id);
        store.delete_experiment(&id).unwrap();
        assert_eq!(
            store.get_experiment(&id).unwrap().lifecycle_stage,
            LifecycleStage::Deleted
        );
        assert_eq!(
            store.get_run(&run_id).unwrap().info.lifecycle_stage,
            LifecycleStage::Deleted
        );
        store.restore_experiment(&id).unwrap();
        assert_eq!(
            store.get_run(&run_id).unwrap().info.lifecycle_stage,
            LifecycleStage::Active
        );
        assert_eq!(
            store.get_experiment("12345").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
    });
}

#[test]
fn params_are_immutable_and_batches_atomic() {
    each_backend!(|store| {
        let run_id = new_run(&store, "0");
        let p = |v: &str| Param {
            key: "lr".into(),
            value: v.into(),
        };
        store
            .log_batch(&run_id, vec![], vec![p("0.1")], vec![])
            .unwrap();
        // Same value again is fine; a different one is refused, and nothing of that batch lands.
        store
            .log_batch(&run_id, vec![], vec![p("0.1")], vec![])
            .unwrap();
        let err = store
            .log_batch(
                &run_id,
                vec![metric("m", 1.0, 0, 1)],
                vec![p("0.2")],
                vec![],
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        assert!(err.message.contains("Changing param values is not allowed"));
        let run = store.get_run(&run_id).unwrap();
        assert!(
            run.data.metrics.is_empty(),
            "the failed batch was rolled back"
        );
        assert_eq!(run.data.params, vec![p("0.1")]);
    });
}

#[test]
fn latest_metric_and_history() {
    each_backend!(|store| {
        let run_id = new_run(&store, "0");
        let points = vec![
            metric("loss", 3.0, 2, 10),
            metric("loss", 1.0, 5, 5),
            metric("loss", 2.0, 4, 20),
            metric("loss", f64::NAN, 1, 1),
            metric("up", f64::INFINITY, 0, 1),
        ];
        store.log_batch(&run_id, points, vec![], vec![]).unwrap();
        let run = store.get_run(&run_id).unwrap();
        let latest = |k: &str| {
            run.data
                .metrics
                .iter()
                .find(|m| m.key == k)
                .unwrap()
                .clone()
        };
        assert_eq!(latest("loss").value, 1.0, "greatest step wins");
        assert_eq!(
            latest("up").value,
            f64::MAX,
            "infinity is stored as the largest double"
        );

        // MLflow orders a history by timestamp, then step.
        let all = store.metric_history(&run_id, "loss", None, None).unwrap();
        let steps: Vec<i64> = all.items.iter().map(|m| m.step).collect();
        assert_eq!(steps, vec![1, 5, 2, 4]);
        assert!(all.items[0].value.is_nan());
        assert!(all.next_page_token.is_none());

        let first = store
            .metric_history(&run_id, "loss", Some(3), None)
            .unwrap();
        assert_eq!(first.items.len(), 3);
        let rest = store
            .metric_history(&run_id, "loss", Some(3), first.next_page_token.as_deref())
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].step, 4);
        assert!(rest.next_page_token.is_none());
    });
}

#[test]
fn deleted_runs_refuse_writes() {
    each_backend!(|store| {
        let run_id = new_run(&store, "0");
        store.delete_run(&run_id).unwrap();
        let err = store
            .log_batch(&run_id, vec![metric("m", 1.0, 0, 0)], vec![], vec![])
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameterValue);
        // A refused batch of points alone (PostgreSQL: one statement) wrote none of them.
        let err = store
            .log_batch(&run_id, vec![metric("gone", 1.0, 0, 0)], vec![], vec![])
            .unwrap_err();
        assert!(
            err.message.contains("must be in the 'active' state"),
            "{}",
            err.message
        );
        let missing = "0".repeat(32);
        let err = store
            .log_batch(&missing, vec![metric("m", 1.0, 0, 0)], vec![], vec![])
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceDoesNotExist);
        store.restore_run(&run_id).unwrap();
        assert!(store.get_run(&run_id).unwrap().data.metrics.is_empty());
        let history = store.metric_history(&run_id, "gone", None, None).unwrap();
        assert!(history.items.is_empty());
        store
            .log_batch(&run_id, vec![metric("m", 1.0, 0, 0)], vec![], vec![])
            .unwrap();
        let info = store
            .update_run(
                &run_id,
                RunUpdate {
                    status: Some(RunStatus::Finished),
                    end_time: Some(2000),
                    run_name: Some("renamed".into()),
                },
            )
            .unwrap();
        assert_eq!(info.status, RunStatus::Finished);
        assert_eq!(info.run_name, "renamed");
        let tags = store.get_run(&run_id).unwrap().data.tags;
        assert!(tags.contains(&Tag {
            key: "mlflow.runName".into(),
            value: "renamed".into()
        }));
    });
}

#[test]
fn search_filters_orders_and_pages() {
    each_backend!(|store| {
        let exp = store.create_experiment("search", None, &[]).unwrap();
        let mut ids = Vec::new();
        for i in 0..25 {
            let id = new_run(&store, &exp);
            store
                .log_batch(
                    &id,
                    vec![metric("acc", i as f64 / 25.0, 0, 0)],
                    vec![Param {
                        key: "parity".into(),
                        value: if i % 2 == 0 { "even" } else { "odd" }.into(),
                    }],
                    vec![],
                )
                .unwrap();
            ids.push(id);
        }
        let search = |token: Option<String>| RunSearch {
            experiment_ids: vec![exp.clone()],
            filter: parse_run_filter("metrics.acc >= 0.2 and params.parity = 'even'").unwrap(),
            order_by: vec![parse_run_order_by("metrics.acc DESC").unwrap()],
            view: ViewType::ActiveOnly,
            max_results: 3,
            page_token: token,
        };
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = store.search_runs(&search(token)).unwrap();
            seen.extend(page.items.iter().map(|r| {
                r.data
                    .metrics
                    .iter()
                    .find(|m| m.key == "acc")
                    .unwrap()
                    .value
            }));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        // i in {6, 8, ..., 24}: 10 runs, highest accuracy first.
        let want: Vec<f64> = (6..25)
            .rev()
            .filter(|i| i % 2 == 0)
            .map(|i| i as f64 / 25.0)
            .collect();
        assert_eq!(seen, want);
    });
}

#[test]
fn concurrent_writes_all_commit() {
    each_backend!(|store| {
        let store = Arc::new(store);
        let run_id = new_run(&*store, "0");
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (store, run_id) = (store.clone(), run_id.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store
                            .log_batch(
                                &run_id,
                                vec![metric("m", 1.0, t * 100 + i, 0)],
                                vec![],
                                vec![],
                            )
                            .unwrap();
                    }
                    // One failing write in each thread must not take others down with it.
                    let bad = store.log_batch(
                        &run_id,
                        vec![],
                        vec![Param {
                            key: "fixed".into(),
                            value: t.to_string(),
                        }],
                        vec![],
                    );
                    bad.is_ok()
                })
            })
            .collect();
        let successes = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(successes, 1, "exactly one thread sets the param first");
        let history = store.metric_history(&run_id, "m", None, None).unwrap();
        assert_eq!(history.items.len(), 400);
    });
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let config = StoreConfig {
        default_artifact_root: "mlflow-artifacts:/".into(),
    };
    let run_id = {
        let store = SqliteStore::open(&path, config.clone()).unwrap();
        let id = new_run(&store, "0");
        store
            .log_batch(&id, vec![metric("m", 7.0, 0, 0)], vec![], vec![])
            .unwrap();
        id
    };
    let store = SqliteStore::open(&path, config).unwrap();
    assert_eq!(store.get_run(&run_id).unwrap().data.metrics[0].value, 7.0);
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn param(key: &str, value: &str) -> Param {
    Param {
        key: key.into(),
        value: value.into(),
    }
}

/// The names of the active runs of `exp` matching `filter`, in `order_by` order.
fn run_names(
    store: &impl TrackingStore,
    exp: &str,
    filter: &str,
    order_by: &[&str],
) -> Vec<String> {
    let search = RunSearch {
        experiment_ids: vec![exp.into()],
        filter: parse_run_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}")),
        order_by: order_by
            .iter()
            .map(|o| parse_run_order_by(o).unwrap())
            .collect(),
        view: ViewType::ActiveOnly,
        max_results: 100,
        page_token: None,
    };
    store
        .search_runs(&search)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .items
        .into_iter()
        .map(|r| r.info.run_name)
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// `\` in LIKE and ILIKE patterns, per backend as MLflow's SQL store has it (SQLAlchemy's
/// `like` / `ilike` with no ESCAPE clause): SQLite's takes it as itself, PostgreSQL's as the
/// escape of the next character. Checked against a real `mlflow server` (SQLite) in
/// tests/e2e/test_search_patterns.py.
#[test]
fn backslashes_in_like_patterns_as_mlflow_per_backend() {
    fn check(store: &impl TrackingStore, sqlite: bool) {
        let exp = store.create_experiment("backslash", None, &[]).unwrap();
        for value in [
            "C:\\dir",
            "50%off",
            "50Xoff",
            "a_b",
            "aXb",
            "back\\\\slash",
            "end\\",
        ] {
            let id = store
                .create_run(NewRun {
                    experiment_id: exp.clone(),
                    user_id: "u".into(),
                    run_name: Some(value.into()),
                    start_time: Some(1),
                    tags: vec![],
                })
                .unwrap()
                .info
                .run_id;
            store
                .log_batch(&id, vec![], vec![param("p", value)], vec![])
                .unwrap();
        }
        let names = |filter: &str| sorted(run_names(store, &exp, filter, &[]));
        let none = Vec::<String>::new();
        assert_eq!(names("params.p LIKE 'C:%'"), ["C:\\dir"]);
        if sqlite {
            assert_eq!(names("params.p LIKE 'C:\\dir'"), ["C:\\dir"]);
            assert_eq!(names("params.p ILIKE 'c:\\DIR'"), ["C:\\dir"]);
            assert_eq!(names("params.p LIKE 'C:\\\\dir'"), none);
            assert_eq!(names("params.p LIKE '50\\%off'"), none);
            assert_eq!(names("run_name LIKE 'a\\_b'"), none);
            assert_eq!(names("params.p ILIKE 'A\\_B'"), none);
            assert_eq!(
                names("params.p LIKE '%\\%'"),
                ["C:\\dir", "back\\\\slash", "end\\"]
            );
            assert_eq!(names("params.p LIKE 'back\\\\slash'"), ["back\\\\slash"]);
        } else {
            assert_eq!(names("params.p LIKE 'C:\\dir'"), none);
            assert_eq!(names("params.p LIKE 'C:\\\\dir'"), ["C:\\dir"]);
            assert_eq!(names("params.p ILIKE 'c:\\\\DIR'"), ["C:\\dir"]);
            assert_eq!(names("params.p LIKE '50\\%off'"), ["50%off"]);
            assert_eq!(names("run_name LIKE 'a\\_b'"), ["a_b"]);
            assert_eq!(names("params.p ILIKE 'A\\_B'"), ["a_b"]);
            assert_eq!(names("params.p LIKE '%\\%'"), none);
            assert_eq!(names("params.p LIKE '%\\%%'"), ["50%off"]);
            assert_eq!(names("params.p LIKE 'back\\\\slash'"), none);
            assert_eq!(
                names("params.p LIKE 'back\\\\\\\\slash'"),
                ["back\\\\slash"]
            );
        }
        // A trailing lone `\` stands for itself on both (PostgreSQL would refuse the pattern).
        assert_eq!(names("params.p LIKE '%\\'"), ["end\\"]);
        assert_eq!(names("params.p ILIKE 'END\\'"), ["end\\"]);
    }
    let (_dir, store) = common::store();
    check(&store, true);
    if let Some((_db, store)) = common::pg_store() {
        check(&store, false);
    }
}

#[test]
fn search_grammar_is_the_same_on_every_backend() {
    each_backend!(|store| {
        let exp = store.create_experiment("grammar", None, &[]).unwrap();
        // name, start time, acc (None: not logged), team tag, lr param
        let runs = [
            ("a", 1000, Some(0.9), Some("Alpha"), Some("0.01")),
            ("b", 2000, Some(0.5), Some("alpha"), Some("0.1")),
            ("c", 3000, Some(f64::NAN), None, None),
            ("d", 500, None, Some("äö"), Some("1e-3")),
        ];
        let mut ids = std::collections::HashMap::new();
        for (name, start, acc, team, lr) in runs {
            let id = store
                .create_run(NewRun {
                    experiment_id: exp.clone(),
                    user_id: "u".into(),
                    run_name: Some(name.into()),
                    start_time: Some(start),
                    tags: vec![],
                })
                .unwrap()
                .info
                .run_id;
            store
                .log_batch(
                    &id,
                    acc.map(|v| metric("acc", v, 0, 0)).into_iter().collect(),
                    lr.map(|v| param("lr", v)).into_iter().collect(),
                    team.map(|v| tag("team", v)).into_iter().collect(),
                )
                .unwrap();
            ids.insert(name, id);
        }
        let names = |filter: &str| sorted(run_names(&store, &exp, filter, &[]));
        // `=`, LIKE are case-sensitive; ILIKE is not (ASCII folding).
        assert_eq!(names("tags.team = 'alpha'"), ["b"]);
        assert_eq!(names("tags.team LIKE 'A%'"), ["a"]);
        assert_eq!(names("tags.team ILIKE 'ALPHA'"), ["a", "b"]);
        assert_eq!(names("tags.team LIKE '__'"), ["d"]);
        assert_eq!(names("tags.team != 'alpha'"), ["a", "d"]);
        assert_eq!(names("tags.team IS NULL"), ["c"]);
        assert_eq!(names("params.lr LIKE '0.%'"), ["a", "b"]);
        assert_eq!(names("params.lr LIKE '0\\_1'"), Vec::<String>::new());
        assert_eq!(names("params.lr ILIKE '%\\'"), Vec::<String>::new());
        let (a, c) = (&ids["a"], &ids["c"]);
        assert_eq!(
            names(&format!("run_id IN ('{a}', '{c}', 'zz')")),
            ["a", "c"]
        );
        assert_eq!(names(&format!("run_id NOT IN ('{a}', '{c}')")), ["b", "d"]);
        // Numbers: a float against a BIGINT column, NaN matching only `!=`.
        assert_eq!(names("start_time > 1500.5"), ["b", "c"]);
        assert_eq!(names("start_time <= 1000"), ["a", "d"]);
        assert_eq!(names("metrics.acc >= 0.5"), ["a", "b"]);
        assert_eq!(names("metrics.acc < 0.9"), ["b"]);
        assert_eq!(names("metrics.acc != 0.9"), ["b", "c"]);
        assert_eq!(names("metrics.acc > 0.4 AND tags.team = 'Alpha'"), ["a"]);
        // Orders: missing values last either way; NaN after numbers; byte order for text.
        let ordered = |order: &[&str]| run_names(&store, &exp, "", order);
        assert_eq!(ordered(&[]), ["c", "b", "a", "d"]);
        assert_eq!(ordered(&["metrics.acc"]), ["b", "a", "c", "d"]);
        assert_eq!(ordered(&["metrics.acc DESC"]), ["a", "b", "c", "d"]);
        assert_eq!(ordered(&["tags.team"]), ["a", "b", "d", "c"]);
        assert_eq!(ordered(&["tags.team DESC"]), ["d", "b", "a", "c"]);
        assert_eq!(ordered(&["params.lr DESC"]), ["d", "b", "a", "c"]);
        assert_eq!(ordered(&["start_time"]), ["d", "a", "b", "c"]);
        assert_eq!(ordered(&["run_name DESC"]), ["d", "c", "b", "a"]);
        // Pages of 3 cover every run once, in order.
        let mut token = None;
        let mut paged = Vec::new();
        loop {
            let page = store
                .search_runs(&RunSearch {
                    experiment_ids: vec![exp.clone()],
                    filter: vec![],
                    order_by: vec![parse_run_order_by("metrics.acc DESC").unwrap()],
                    view: ViewType::ActiveOnly,
                    max_results: 3,
                    page_token: token,
                })
                .unwrap();
            paged.extend(page.items.into_iter().map(|r| r.info.run_name));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(paged, ["a", "b", "c", "d"]);
        // Injection attempts are values like any other.
        assert!(names("params.lr = 'a'' OR 1=1 --'").is_empty());
        assert!(names("params.`lr' OR '1'='1` = 'x'").is_empty());
    });
}

#[test]
fn experiment_search_filters_orders_and_pages() {
    each_backend!(|store| {
        for (name, team) in [
            ("exp-one", "alpha"),
            ("Exp-Two", "Beta"),
            ("third", "gamma"),
        ] {
            store
                .create_experiment(name, None, &[tag("team", team)])
                .unwrap();
        }
        let search = |filter: &str, order: &[&str], max: usize, token: Option<String>| {
            store
                .search_experiments(&ExperimentSearch {
                    filter: parse_experiment_filter(filter).unwrap(),
                    order_by: order
                        .iter()
                        .map(|o| parse_experiment_order_by(o).unwrap())
                        .collect(),
                    view: ViewType::ActiveOnly,
                    max_results: max,
                    page_token: token,
                })
                .unwrap()
        };
        let names = |filter: &str, order: &[&str]| -> Vec<String> {
            search(filter, order, 100, None)
                .items
                .into_iter()
                .map(|e| e.name)
                .collect()
        };
        assert_eq!(names("name LIKE 'exp%'", &[]), ["exp-one"]);
        assert_eq!(
            names("name ILIKE 'EXP%'", &["name"]),
            ["Exp-Two", "exp-one"]
        );
        assert_eq!(names("tags.team ILIKE 'beta'", &[]), ["Exp-Two"]);
        assert_eq!(names("tags.team = 'beta'", &[]), Vec::<String>::new());
        assert_eq!(
            names("", &["name DESC"]),
            ["third", "exp-one", "Exp-Two", "Default"]
        );
        let first = search("name != 'Default'", &["name"], 2, None);
        assert_eq!(first.items.len(), 2);
        let rest = search("name != 'Default'", &["name"], 2, first.next_page_token);
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].name, "third");
        assert!(rest.next_page_token.is_none());
        // Any experiment but the Default one (which of them sorts first depends on creation
        // times, often the same millisecond here).
        let other = search("name = 'third'", &[], 100, None).items[0]
            .experiment_id
            .clone();
        assert_ne!(other, "0");
        let wanted = format!("experiment_id IN ('{other}', '0')");
        assert_eq!(search(&wanted, &[], 100, None).items.len(), 2);
    });
}

#[test]
fn concurrent_batches_lose_nothing() {
    each_backend!(|store| {
        let store = Arc::new(store);
        let run_id = new_run(&*store, "0");
        let threads: Vec<_> = (0..8i64)
            .map(|t| {
                let (store, run_id) = (store.clone(), run_id.clone());
                std::thread::spawn(move || {
                    for i in 0..20i64 {
                        let step = t * 100 + i;
                        // Every thread writes the same keys, in different orders.
                        let mut metrics: Vec<Metric> = ["a", "b", "c"]
                            .iter()
                            .map(|k| metric(k, step as f64, step, 1000 + step))
                            .collect();
                        if t % 2 == 1 {
                            metrics.reverse();
                        }
                        store
                            .log_batch(
                                &run_id,
                                metrics,
                                vec![param(&format!("p{t}_{i}"), "v"), param("shared", "same")],
                                vec![tag("last", &t.to_string()), tag(&format!("t{t}"), "x")],
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let run = store.get_run(&run_id).unwrap();
        assert_eq!(run.data.params.len(), 8 * 20 + 1);
        assert_eq!(
            run.data
                .tags
                .iter()
                .filter(|t| t.key.starts_with('t'))
                .count(),
            8
        );
        for key in ["a", "b", "c"] {
            let history = store.metric_history(&run_id, key, None, None).unwrap();
            assert_eq!(history.items.len(), 160, "{key}");
            let latest = run.data.metrics.iter().find(|m| m.key == key).unwrap();
            assert_eq!(latest.step, 719, "the greatest step is the latest");
            assert_eq!(latest.value, 719.0);
        }
    });
}

#[test]
fn concurrent_experiment_creation_names_one_winner() {
    each_backend!(|store| {
        let store = Arc::new(store);
        let results: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || store.create_experiment("race", None, &[]))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.code, ErrorCode::ResourceAlreadyExists, "{}", r.message);
        }
        let id = store.create_experiment("other", None, &[]).unwrap();
        let e = store.rename_experiment(&id, "race").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceAlreadyExists);
    });
}

#[test]
fn history_bulk_interval_and_model_linking() {
    each_backend!(|store| {
        let run_id = new_run(&store, "0");
        let points: Vec<Metric> = (0..100).map(|s| metric("m", s as f64, s, s)).collect();
        store.log_batch(&run_id, points, vec![], vec![]).unwrap();
        let sampled = store
            .metric_history_bulk_interval(std::slice::from_ref(&run_id), "m", None, 5)
            .unwrap();
        let steps: Vec<i64> = sampled.iter().map(|m| m.step).collect();
        assert_eq!(steps, [0, 20, 40, 60, 99]);
        assert!(
            sampled
                .iter()
                .all(|m| m.run_id.as_deref() == Some(&*run_id))
        );
        let windowed = store
            .metric_history_bulk_interval(std::slice::from_ref(&run_id), "m", Some((10, 12)), 10)
            .unwrap();
        assert_eq!(
            windowed.iter().map(|m| m.step).collect::<Vec<_>>(),
            [10, 11, 12]
        );

        // A logged model, its params and tags, and a run's metric linked to it.
        let model = store
            .create_logged_model(NewLoggedModel {
                experiment_id: "0".into(),
                name: Some("clf".into()),
                model_type: None,
                source_run_id: Some(run_id.clone()),
                params: vec![param("depth", "3")],
                tags: vec![tag("stage", "dev")],
            })
            .unwrap();
        let model_id = model.info.model_id.clone();
        assert_eq!(model.info.status, LoggedModelStatus::Pending);
        let mut linked = metric("m", 99.0, 99, 99);
        linked.model_id = Some(model_id.clone());
        store
            .log_batch(&run_id, vec![linked], vec![], vec![])
            .unwrap();
        let mut acc = metric("acc", 0.75, 0, 5);
        acc.model_id = Some(model_id.clone());
        store.log_batch(&run_id, vec![acc], vec![], vec![]).unwrap();
        store
            .set_logged_model_tags(&model_id, vec![tag("stage", "prod")])
            .unwrap();
        store
            .set_logged_model_status(&model_id, LoggedModelStatus::Ready)
            .unwrap();
        let got = store.get_logged_model(&model_id).unwrap();
        assert_eq!(got.info.tags, [tag("stage", "prod")]);
        assert_eq!(got.data.params, [param("depth", "3")]);
        assert_eq!(got.info.status, LoggedModelStatus::Ready);
        let keys: Vec<&str> = got.data.metrics.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["acc", "m"]);
        assert_eq!(
            store
                .metric_history(&run_id, "m", None, None)
                .unwrap()
                .items
                .len(),
            100,
            "the linked point is the run's point, not a new one"
        );
        let search = |filter: &str, order: &[&str]| {
            store
                .search_logged_models(&LoggedModelSearch {
                    experiment_ids: vec!["0".into()],
                    filter: parse_logged_model_filter(filter).unwrap(),
                    datasets: vec![],
                    order_by: order
                        .iter()
                        .map(|o| parse_run_order_by(o).unwrap())
                        .collect(),
                    max_results: 10,
                    page_token: None,
                })
                .unwrap()
                .items
                .len()
        };
        assert_eq!(search("metrics.acc > 0.5", &["metrics.acc DESC"]), 1);
        assert_eq!(search("metrics.acc > 0.8", &[]), 0);
        assert_eq!(
            search("params.depth = '3' AND tags.stage LIKE 'pr%'", &[]),
            1
        );
        assert_eq!(search("name ILIKE 'CLF'", &[]), 1);
        assert_eq!(search("name LIKE 'CLF'", &[]), 0);
        store.delete_logged_model_tag(&model_id, "stage").unwrap();
        assert_eq!(
            store
                .delete_logged_model_tag(&model_id, "stage")
                .unwrap_err()
                .code,
            ErrorCode::ResourceDoesNotExist
        );
        store
            .log_outputs(
                &run_id,
                vec![ModelOutput {
                    model_id: model_id.clone(),
                    step: 3,
                }],
            )
            .unwrap();
        assert_eq!(
            store.get_run(&run_id).unwrap().outputs.model_outputs.len(),
            1
        );
        store.delete_logged_model(&model_id).unwrap();
        assert_eq!(
            store.get_logged_model(&model_id).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
    });
}

#[test]
fn dataset_inputs_search_and_summaries() {
    each_backend!(|store| {
        let exp = store.create_experiment("data", None, &[]).unwrap();
        let dataset = |name: &str| Dataset {
            name: name.into(),
            digest: "abc".into(),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        };
        let train = new_run(&store, &exp);
        let eval = new_run(&store, &exp);
        store
            .update_run(
                &eval,
                RunUpdate {
                    run_name: Some("eval".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        store
            .update_run(
                &train,
                RunUpdate {
                    run_name: Some("train".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        for (run, context) in [(&train, "training"), (&eval, "eval")] {
            store
                .log_inputs(
                    run,
                    vec![DatasetInput {
                        tags: vec![tag("mlflow.data.context", context)],
                        dataset: dataset("ds"),
                    }],
                    vec![ModelInput {
                        model_id: "m-x".into(),
                    }],
                )
                .unwrap();
        }
        // The same dataset again is the same dataset.
        store
            .log_inputs(
                &train,
                vec![DatasetInput {
                    tags: vec![],
                    dataset: dataset("ds"),
                }],
                vec![],
            )
            .unwrap();
        let run = store.get_run(&train).unwrap();
        assert_eq!(run.inputs.dataset_inputs.len(), 1);
        assert_eq!(run.inputs.model_inputs.len(), 1);
        assert_eq!(
            sorted(run_names(&store, &exp, "dataset.name = 'ds'", &[])),
            ["eval", "train"]
        );
        assert_eq!(
            run_names(&store, &exp, "dataset.context = 'training'", &[]),
            ["train"]
        );
        assert_eq!(
            run_names(&store, &exp, "dataset.context ILIKE 'EV%'", &[]),
            ["eval"]
        );
        assert_eq!(
            run_names(&store, &exp, "dataset.context LIKE 'EV%'", &[]),
            Vec::<String>::new()
        );
        let mut summaries = store
            .search_dataset_summaries(std::slice::from_ref(&exp))
            .unwrap();
        summaries.sort_by(|a, b| a.context.cmp(&b.context));
        let contexts: Vec<_> = summaries.iter().map(|s| s.context.as_deref()).collect();
        assert_eq!(contexts, [Some("eval"), Some("training")]);
        assert_eq!(
            store.count_active_runs(&[exp.clone(), "0".into()]).unwrap(),
            [(exp.clone(), 2), ("0".into(), 0)]
        );
    });
}

#[test]
fn purge_removes_deleted_runs_and_experiments() {
    each_backend!(|store| {
        let exp = store.create_experiment("gone", None, &[]).unwrap();
        let run_id = new_run(&store, &exp);
        assert_eq!(
            store.purge_run(&run_id).unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
        store.delete_run(&run_id).unwrap();
        assert_eq!(
            store.deleted_run_ids(0).unwrap(),
            std::slice::from_ref(&run_id)
        );
        assert!(store.purge_run(&run_id).unwrap().ends_with("/artifacts"));
        assert_eq!(
            store.get_run(&run_id).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        new_run(&store, &exp);
        store.delete_experiment(&exp).unwrap();
        assert_eq!(
            store.deleted_experiment_ids(0).unwrap(),
            std::slice::from_ref(&exp)
        );
        let uris = store.purge_experiment(&exp).unwrap();
        assert_eq!(uris.len(), 2);
        assert_eq!(
            store.get_experiment(&exp).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
    });
}
