//! The model registry of the SQLite store, through its public trait.

use wasmflow_core::ErrorCode;
use wasmflow_core::entities::Tag;
use wasmflow_core::search::{
    parse_model_version_filter, parse_model_version_order_by, parse_registered_model_filter,
    parse_registered_model_order_by,
};
use wasmflow_store::registry::{NewModelVersion, RegistrySearch, Stage};
use wasmflow_store::{
    NewLoggedModel, NewRun, RegistryStore, SqliteStore, StoreConfig, TrackingStore,
};

mod common;
use common::store;

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn run(store: &SqliteStore) -> String {
    store
        .create_run(NewRun {
            experiment_id: "0".into(),
            ..Default::default()
        })
        .unwrap()
        .info
        .run_id
}

fn version(store: &impl RegistryStore, name: &str, source: &str) -> i64 {
    store
        .create_model_version(
            "",
            NewModelVersion {
                name: name.into(),
                source: source.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .version
}

fn search(filter: &str, order: &[&str], max: usize, token: Option<String>) -> RegistrySearch {
    RegistrySearch {
        filter: parse_model_version_filter(filter).unwrap(),
        order_by: order
            .iter()
            .map(|o| parse_model_version_order_by(o).unwrap())
            .collect(),
        max_results: max,
        page_token: token,
    }
}

fn code<T: std::fmt::Debug>(r: wasmflow_core::Result<T>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn registered_model_lifecycle() {
    each_backend!(|store| {
        let m = store
            .create_registered_model("alice", "m1", vec![tag("team", "risk")], Some("d".into()))
            .unwrap();
        assert_eq!(m.name, "m1");
        assert_eq!(m.description.as_deref(), Some("d"));
        assert_eq!(m.tags, vec![tag("team", "risk")]);
        assert_eq!(m.creation_timestamp, m.last_updated_timestamp);
        assert_eq!(
            code(store.create_registered_model("", "m1", vec![], None)),
            ErrorCode::ResourceAlreadyExists
        );
        assert_eq!(
            code(store.create_registered_model("", "a/b", vec![], None)),
            ErrorCode::InvalidParameterValue
        );
        assert_eq!(
            code(store.get_registered_model("nope")),
            ErrorCode::ResourceDoesNotExist
        );
        let m = store
            .update_registered_model("", "m1", Some("new".into()))
            .unwrap();
        assert_eq!(m.description.as_deref(), Some("new"));
        store
            .set_registered_model_tag("", "m1", tag("team", "ops"))
            .unwrap();
        store
            .delete_registered_model_tag("", "m1", "missing")
            .unwrap();
        assert_eq!(
            store.get_registered_model("m1").unwrap().tags,
            vec![tag("team", "ops")]
        );
        store.delete_registered_model_tag("", "m1", "team").unwrap();
        assert!(store.get_registered_model("m1").unwrap().tags.is_empty());
        let json = serde_json::to_value(store.get_registered_model("m1").unwrap()).unwrap();
        assert!(
            json.get("tags").is_none() && json.get("aliases").is_none(),
            "{json}"
        );
    });
}

#[test]
fn versions_are_numbered_per_model_and_never_reused() {
    each_backend!(|store| {
        store
            .create_registered_model("", "a", vec![], None)
            .unwrap();
        store
            .create_registered_model("", "b", vec![], None)
            .unwrap();
        assert_eq!(version(&store, "a", "s3://bucket/x"), 1);
        assert_eq!(version(&store, "a", "s3://bucket/y"), 2);
        assert_eq!(version(&store, "b", "s3://bucket/z"), 1);
        store.delete_model_version("", "a", 2).unwrap();
        assert_eq!(
            code(store.get_model_version("a", 2)),
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(version(&store, "a", "s3://bucket/w"), 3);
        let v = store.get_model_version("a", 3).unwrap();
        assert_eq!(
            (v.current_stage.as_str(), v.status.as_str()),
            ("None", "READY")
        );
        assert_eq!(v.description.as_deref(), Some(""));
        assert_eq!(
            code(store.create_model_version(
                "",
                NewModelVersion {
                    name: "nope".into(),
                    source: "s3://bucket/x".into(),
                    ..Default::default()
                }
            )),
            ErrorCode::ResourceDoesNotExist
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["version"], "3");
        assert!(json["creation_timestamp"].is_i64());
    });
}

/// Needs runs and logged models, which the PostgreSQL store does not serve yet: SQLite only
/// until it does, then `each_backend!`.
#[test]
fn sources_resolve_to_artifact_locations() {
    let (_dir, store) = store();
    store
        .create_registered_model("", "m", vec![], None)
        .unwrap();
    let run_id = run(&store);
    let v = store
        .create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: format!("runs:/{run_id}/model"),
                run_id: Some(run_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v.run_id, run_id);
    assert_eq!(
        store
            .get_model_version_download_uri("m", v.version)
            .unwrap(),
        format!("mlflow-artifacts:/0/{run_id}/artifacts/model")
    );
    let lm = store
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            source_run_id: Some(run_id.clone()),
            ..Default::default()
        })
        .unwrap();
    let id = lm.info.model_id.clone();
    let v = store
        .create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: format!("models:/{id}"),
                model_id: Some(id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v.model_id.as_deref(), Some(id.as_str()));
    assert_eq!(v.run_id, run_id, "the logged model's run");
    // The logged model lists the versions registered from it, as in MLflow.
    let tags = store.get_logged_model(&id).unwrap().info.tags;
    let linked = tags
        .iter()
        .find(|t| t.key == "mlflow.modelVersions")
        .unwrap();
    // Byte for byte MLflow's `json.dumps([{"name": "m", "version": 2}])`.
    assert_eq!(linked.value, r#"[{"name": "m", "version": 2}]"#);
    assert_eq!(
        store
            .get_model_version_download_uri("m", v.version)
            .unwrap(),
        lm.info.artifact_uri
    );
    // Registered from another version: the source names it, the files are the same.
    let v3 = store
        .create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: "models:/m/2".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v3.source, "models:/m/2");
    assert_eq!(
        store.get_model_version_download_uri("m", 3).unwrap(),
        lm.info.artifact_uri
    );

    let bad = |source: &str, run_id: Option<&str>, model_id: Option<&str>| {
        code(store.create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: source.into(),
                run_id: run_id.map(Into::into),
                model_id: model_id.map(Into::into),
                ..Default::default()
            },
        ))
    };
    let missing = "0123456789abcdef0123456789abcdef";
    // MLflow checks that a runs:/ source and the run_id agree, not that the run is local.
    assert_eq!(
        bad(&format!("runs:/{missing}/model"), None, None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("mlflow-artifacts:/0/x", Some(missing), None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad(&format!("runs:/{run_id}/model"), Some(missing), None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("models:/m-nope", None, None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("mlflow-artifacts:/0/../../etc", None, None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("mlflow-artifacts:/0/%252e%252e/x", None, None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("/tmp/model", None, None),
        ErrorCode::InvalidParameterValue
    );
    // Sources on the artifact proxy must lie inside the named run's or logged model's artifacts.
    assert_eq!(
        bad("mlflow-artifacts:/0/somewhere/model", None, None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("mlflow-artifacts:/0/somewhere/model", Some(&run_id), None),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        bad("mlflow-artifacts:/0/somewhere/model", None, Some(&id)),
        ErrorCode::InvalidParameterValue
    );
    let inside = store
        .create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: format!("mlflow-artifacts:/0/{run_id}/artifacts/model"),
                run_id: Some(run_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(inside.run_id, run_id);
    let inside = store
        .create_model_version(
            "",
            NewModelVersion {
                name: "m".into(),
                source: format!("{}/MLmodel", lm.info.artifact_uri),
                model_id: Some(id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(inside.run_id, run_id, "from the logged model");
    assert_eq!(
        bad("models:/m/9", None, None),
        ErrorCode::ResourceDoesNotExist
    );
}

#[test]
fn aliases_and_stages() {
    each_backend!(|store| {
        store
            .create_registered_model("", "m", vec![], None)
            .unwrap();
        for _ in 0..3 {
            version(&store, "m", "s3://bucket/x");
        }
        store
            .set_registered_model_alias("", "m", "champ", 1)
            .unwrap();
        store
            .set_registered_model_alias("", "m", "champ", 2)
            .unwrap();
        store
            .set_registered_model_alias("", "m", "other", 2)
            .unwrap();
        let v = store.get_model_version_by_alias("m", "champ").unwrap();
        assert_eq!(
            (v.version, v.aliases.clone()),
            (2, vec!["champ".to_string(), "other".into()])
        );
        assert_eq!(
            store
                .get_model_version_by_alias("m", "LATEST")
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            code(store.get_model_version_by_alias("m", "nope")),
            ErrorCode::InvalidParameterValue
        );
        for bad in ["latest", "v1", "V22", "bad alias", ""] {
            assert_eq!(
                code(store.set_registered_model_alias("", "m", bad, 1)),
                ErrorCode::InvalidParameterValue,
                "{bad}"
            );
        }
        assert_eq!(
            code(store.set_registered_model_alias("", "m", "x", 9)),
            ErrorCode::ResourceDoesNotExist
        );
        let m = store.get_registered_model("m").unwrap();
        assert_eq!(m.aliases.len(), 2);
        // Deleting the version clears its aliases.
        store.delete_model_version("", "m", 2).unwrap();
        assert!(store.get_registered_model("m").unwrap().aliases.is_empty());
        store
            .set_registered_model_alias("", "m", "champ", 3)
            .unwrap();
        store
            .delete_registered_model_alias("", "m", "champ")
            .unwrap();
        store
            .delete_registered_model_alias("", "m", "never")
            .unwrap();
        assert_eq!(
            code(store.get_model_version_by_alias("m", "champ")),
            ErrorCode::InvalidParameterValue
        );

        // Stages: archive_existing_versions moves the others in the target stage to Archived.
        version(&store, "m", "s3://bucket/x"); // 4
        store
            .transition_model_version_stage("", "m", 1, Stage::Production, false)
            .unwrap();
        store
            .transition_model_version_stage("", "m", 3, Stage::Production, false)
            .unwrap();
        let v = store
            .transition_model_version_stage("", "m", 4, Stage::Production, true)
            .unwrap();
        assert_eq!(v.current_stage, "Production");
        assert_eq!(
            store.get_model_version("m", 1).unwrap().current_stage,
            "Archived"
        );
        assert_eq!(
            store.get_model_version("m", 3).unwrap().current_stage,
            "Archived"
        );
        assert_eq!(
            code(store.transition_model_version_stage("", "m", 1, Stage::Archived, true)),
            ErrorCode::InvalidParameterValue
        );
        let latest = store.get_latest_versions("m", &[]).unwrap();
        let pairs: Vec<(i64, String)> = latest
            .iter()
            .map(|v| (v.version, v.current_stage.clone()))
            .collect();
        assert_eq!(
            pairs,
            vec![(3, "Archived".into()), (4, "Production".into())]
        );
        let prod = store
            .get_latest_versions("m", &[Stage::Production])
            .unwrap();
        assert_eq!(prod.len(), 1);
        assert!(
            store
                .get_latest_versions("m", &[Stage::Staging])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .get_registered_model("m")
                .unwrap()
                .latest_versions
                .len(),
            2
        );
    });
}

#[test]
fn rename_and_delete_carry_everything() {
    each_backend!(|store| {
        store
            .create_registered_model("bob", "old", vec![tag("k", "v")], None)
            .unwrap();
        version(&store, "old", "s3://bucket/x");
        store
            .set_model_version_tag("", "old", 1, tag("vk", "vv"))
            .unwrap();
        store
            .set_registered_model_alias("", "old", "champ", 1)
            .unwrap();
        store
            .create_registered_model("", "taken", vec![], None)
            .unwrap();
        assert_eq!(
            code(store.rename_registered_model("", "old", "taken")),
            ErrorCode::ResourceAlreadyExists
        );
        assert_eq!(
            code(store.rename_registered_model("", "old", "")),
            ErrorCode::InvalidParameterValue
        );
        let m = store.rename_registered_model("bob", "old", "new").unwrap();
        assert_eq!(m.name, "new");
        assert_eq!(m.tags, vec![tag("k", "v")]);
        assert_eq!(m.aliases[0].alias, "champ");
        let v = store.get_model_version_by_alias("new", "champ").unwrap();
        assert_eq!(v.name, "new");
        assert_eq!(v.tags, vec![tag("vk", "vv")]);
        assert_eq!(
            code(store.get_registered_model("old")),
            ErrorCode::ResourceDoesNotExist
        );
        // The history follows the model.
        let kinds: Vec<String> = store
            .registry_events("new", None)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "registered_model_created",
                "model_version_created",
                "model_version_tag_set",
                "alias_set",
                "registered_model_renamed"
            ]
        );
        let events = store.registry_events("new", None).unwrap();
        assert_eq!(events[0].user_id, "bob");
        assert_eq!(events[4].details["from"], "old");
        assert_eq!(store.registry_events("new", Some(1)).unwrap().len(), 3);

        store.delete_registered_model("", "new").unwrap();
        assert_eq!(
            code(store.get_model_version("new", 1)),
            ErrorCode::ResourceDoesNotExist
        );
        // A model of the same name starts afresh.
        store
            .create_registered_model("", "new", vec![], None)
            .unwrap();
        let m = store.get_registered_model("new").unwrap();
        assert!(m.tags.is_empty() && m.aliases.is_empty() && m.latest_versions.is_empty());
        assert_eq!(version(&store, "new", "s3://bucket/x"), 1);
        assert!(store.get_model_version("new", 1).unwrap().tags.is_empty());
        let kinds: Vec<String> = store
            .registry_events("new", None)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&"registered_model_deleted".to_string()));
    });
}

#[test]
fn search_filters_orders_and_pages() {
    each_backend!(|store| {
        // The run ids are only compared: the sources are another store's.
        let (run_a, run_b) = ("a".repeat(32), "b".repeat(32));
        for name in ["alpha", "beta", "Gamma"] {
            store
                .create_registered_model("", name, vec![tag("team", name)], None)
                .unwrap();
            for r in [&run_a, &run_b, &run_a] {
                store
                    .create_model_version(
                        "",
                        NewModelVersion {
                            name: name.into(),
                            source: format!("s3://bucket/{r}/model"),
                            run_id: Some(r.to_string()),
                            tags: vec![tag("parity", if r == &run_a { "a" } else { "b" })],
                            ..Default::default()
                        },
                    )
                    .unwrap();
            }
        }
        // A prompt is left out unless asked for.
        store
            .create_registered_model(
                "",
                "prompt",
                vec![tag("mlflow.prompt.is_prompt", "true")],
                None,
            )
            .unwrap();

        let models = |filter: &str, order: &[&str]| -> Vec<String> {
            store
                .search_registered_models(&RegistrySearch {
                    filter: parse_registered_model_filter(filter).unwrap(),
                    order_by: order
                        .iter()
                        .map(|o| parse_registered_model_order_by(o).unwrap())
                        .collect(),
                    max_results: 100,
                    page_token: None,
                })
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(models("", &[]), ["Gamma", "alpha", "beta"]);
        assert_eq!(models("name LIKE 'a%'", &[]), ["alpha"]);
        assert_eq!(models("name ILIKE 'g%'", &[]), ["Gamma"]);
        assert_eq!(models("name != 'alpha'", &["name DESC"]), ["beta", "Gamma"]);
        assert_eq!(models("name IN ('beta', 'alpha')", &[]), ["alpha", "beta"]);
        assert_eq!(models("tags.team = 'beta'", &[]), ["beta"]);
        assert_eq!(
            models("tag.`mlflow.prompt.is_prompt` != 'true'", &[]),
            ["Gamma", "alpha", "beta"]
        );
        assert_eq!(
            models("tags.`mlflow.prompt.is_prompt` = 'true'", &[]),
            ["prompt"]
        );
        let latest = &store
            .search_registered_models(&RegistrySearch {
                filter: parse_registered_model_filter("name = 'alpha'").unwrap(),
                order_by: vec![],
                max_results: 10,
                page_token: None,
            })
            .unwrap()
            .items[0];
        assert_eq!(latest.latest_versions[0].version, 3);

        let versions = |filter: &str| -> Vec<(String, i64)> {
            store
                .search_model_versions(&search(filter, &["name", "version_number"], 1000, None))
                .unwrap()
                .items
                .into_iter()
                .map(|v| (v.name, v.version))
                .collect()
        };
        assert_eq!(versions("name = 'beta'").len(), 3);
        assert_eq!(versions(&format!("run_id = '{run_b}'")).len(), 3);
        assert_eq!(
            versions(&format!("run_id IN ('{run_b}', 'zzz') AND name = 'alpha'")),
            [("alpha".to_string(), 2)]
        );
        assert_eq!(versions("version_number >= 3").len(), 3);
        assert_eq!(versions("version_number = 2 AND name = 'Gamma'").len(), 1);
        assert_eq!(versions("tags.parity = 'b'").len(), 3);
        assert_eq!(versions("source_path LIKE 's3://bucket/%'").len(), 9);
        assert_eq!(versions("source_path LIKE 'S3://%'").len(), 0);
        assert_eq!(versions("source_path ILIKE 'S3://BUCKET/%'").len(), 9);
        assert_eq!(
            code(store.search_model_versions(&search("version_number = 1.5", &[], 10, None))),
            ErrorCode::InvalidParameterValue
        );
        assert_eq!(
            code(store.search_model_versions(&search("", &["name", "name DESC"], 10, None))),
            ErrorCode::InvalidParameterValue
        );

        // Paging: every version exactly once, in order.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = store
                .search_model_versions(&search("", &["version_number ASC"], 2, token))
                .unwrap();
            seen.extend(page.items.into_iter().map(|v| (v.version, v.name)));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 9);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        assert_eq!(seen, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        // The default order: newest change first.
        store
            .update_model_version("", "alpha", 1, Some("touched".into()))
            .unwrap();
        let first = &store
            .search_model_versions(&search("", &[], 1, None))
            .unwrap()
            .items[0];
        assert_eq!((first.name.as_str(), first.version), ("alpha", 1));
    });
}

#[test]
fn model_uris_resolve() {
    each_backend!(|store| {
        store
            .create_registered_model("", "m", vec![], None)
            .unwrap();
        version(&store, "m", "s3://bucket/one");
        version(&store, "m", "s3://bucket/two");
        store
            .set_registered_model_alias("", "m", "champ", 1)
            .unwrap();
        store
            .transition_model_version_stage("", "m", 2, Stage::Staging, false)
            .unwrap();
        let uri = |u: &str| store.resolve_model_uri(u).unwrap();
        assert_eq!(uri("models:/m/1").artifact_uri, "s3://bucket/one");
        assert_eq!(uri("models:/m@champ").version.as_deref(), Some("1"));
        assert_eq!(uri("models:/m/latest").version.as_deref(), Some("2"));
        assert_eq!(uri("models:/m/staging").version.as_deref(), Some("2"));
        assert_eq!(uri("models:/m/2").name.as_deref(), Some("m"));
        assert_eq!(
            code(store.resolve_model_uri("models:/m/Production")),
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(
            code(store.resolve_model_uri("models:/m/7")),
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(
            code(store.resolve_model_uri("runs:/x/y")),
            ErrorCode::InvalidParameterValue
        );
    });
}

/// Needs logged models, which the PostgreSQL store does not serve yet: SQLite only until it
/// does, then `each_backend!`.
#[test]
fn logged_model_uris_resolve() {
    let (_dir, store) = store();
    let uri = |u: &str| store.resolve_model_uri(u).unwrap();
    let lm = store
        .create_logged_model(NewLoggedModel {
            experiment_id: "0".into(),
            ..Default::default()
        })
        .unwrap();
    let r = uri(&format!("models:/{}", lm.info.model_id));
    assert_eq!(r.artifact_uri, lm.info.artifact_uri);
    assert_eq!(r.name, None);
    assert_eq!(
        code(store.resolve_model_uri("models:/m-missing")),
        ErrorCode::ResourceDoesNotExist
    );
}

#[test]
fn registry_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let config = || StoreConfig {
        default_artifact_root: "mlflow-artifacts:/".into(),
    };
    {
        let store = SqliteStore::open(&path, config()).unwrap();
        store
            .create_registered_model("", "m", vec![], None)
            .unwrap();
        version(&store, "m", "s3://bucket/x");
    }
    let store = SqliteStore::open(&path, config()).unwrap();
    assert_eq!(store.get_model_version("m", 1).unwrap().version, 1);
}

/// Replicas create versions of one model at the same moment: each gets its own number.
#[test]
fn concurrent_versions_get_distinct_numbers() {
    each_backend!(|store| {
        store
            .create_registered_model("", "busy", vec![], None)
            .unwrap();
        let mut numbers: Vec<i64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|i| {
                    let store = &store;
                    scope.spawn(move || version(store, "busy", &format!("s3://bucket/{i}")))
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=8).collect::<Vec<i64>>());
        let created = store
            .registry_events("busy", None)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "model_version_created")
            .count();
        assert_eq!(created, 8);
        assert_eq!(
            store
                .get_model_version_by_alias("busy", "latest")
                .unwrap()
                .version,
            8
        );
    });
}

/// Replicas create a model of one name at the same moment: one wins, the others are told it
/// exists, in MLflow's words.
#[test]
fn concurrent_creates_of_one_name() {
    each_backend!(|store| {
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let store = &store;
                    scope.spawn(move || store.create_registered_model("", "same", vec![], None))
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        for err in outcomes.into_iter().filter_map(|o| o.err()) {
            assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
            assert_eq!(err.message, "Registered Model (name=same) already exists.");
        }
    });
}

/// Aliases moved by many writers at once end on one version, with one event per move.
#[test]
fn concurrent_alias_moves() {
    each_backend!(|store| {
        store
            .create_registered_model("", "m", vec![], None)
            .unwrap();
        for _ in 0..4 {
            version(&store, "m", "s3://bucket/x");
        }
        std::thread::scope(|scope| {
            for i in 0..8 {
                let store = &store;
                scope.spawn(move || {
                    store
                        .set_registered_model_alias("", "m", "champ", i % 4 + 1)
                        .unwrap()
                });
            }
        });
        let v = store.get_model_version_by_alias("m", "champ").unwrap();
        assert_eq!(v.aliases, vec!["champ".to_string()]);
        let moves = store.registry_events("m", None).unwrap();
        let moves: Vec<_> = moves.iter().filter(|e| e.kind == "alias_set").collect();
        assert_eq!(moves.len(), 8);
        // Each move names the version the alias left, as the previous move set it.
        for pair in moves.windows(2) {
            assert_eq!(
                pair[1].details["previous_version"],
                pair[0].version.unwrap()
            );
        }
        assert_eq!(moves.last().unwrap().version, Some(v.version));
    });
}
