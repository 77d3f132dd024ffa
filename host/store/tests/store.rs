//! The SQLite store through its public trait, on a temporary database file.

use std::sync::Arc;

use wasmflow_core::ErrorCode;
use wasmflow_core::entities::{LifecycleStage, Metric, Param, RunStatus, Tag, ViewType};
use wasmflow_core::search::{parse_run_filter, parse_run_order_by};
use wasmflow_store::{NewRun, RunSearch, RunUpdate, SqliteStore, StoreConfig, TrackingStore};

mod common;
use common::store;

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

fn new_run(store: &SqliteStore, experiment_id: &str) -> String {
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
    let (_dir, store) = store();
    let exp = store.get_experiment("0").unwrap();
    assert_eq!(exp.name, "Default");
    assert_eq!(exp.artifact_location, "mlflow-artifacts:/0");
}

#[test]
fn experiments_are_unique_and_soft_deleted() {
    let (_dir, store) = store();
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
}

#[test]
fn params_are_immutable_and_batches_atomic() {
    let (_dir, store) = store();
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
}

#[test]
fn latest_metric_and_history() {
    let (_dir, store) = store();
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
}

#[test]
fn deleted_runs_refuse_writes() {
    let (_dir, store) = store();
    let run_id = new_run(&store, "0");
    store.delete_run(&run_id).unwrap();
    let err = store
        .log_batch(&run_id, vec![metric("m", 1.0, 0, 0)], vec![], vec![])
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterValue);
    store.restore_run(&run_id).unwrap();
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
}

#[test]
fn search_filters_orders_and_pages() {
    let (_dir, store) = store();
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
}

#[test]
fn concurrent_writes_all_commit() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    let run_id = new_run(&store, "0");
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
