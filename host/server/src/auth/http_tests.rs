//! The auth middleware inside the process: logins, the rules, creators' grants, filtered
//! searches and the registry history's user.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use base64::Engine as _;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmflow_artifacts::LocalArtifactRepository;
use wasmflow_store::{SqliteStore, StoreConfig};

use super::{Auth, AuthArgs};
use crate::{app, state::AppState};

const ADMIN: (&str, &str) = ("admin", "admin-password-1");
const PW: &str = "user-password-1";

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

fn args(default_permission: &str) -> AuthArgs {
    AuthArgs {
        app_name: Some("basic-auth".into()),
        auth: false,
        admin_username: ADMIN.0.into(),
        auth_default_permission: default_permission.into(),
    }
}

fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            StoreConfig {
                default_artifact_root: "mlflow-artifacts:/".into(),
            },
        )
        .unwrap(),
    )
}

fn test_app(default_permission: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let auth = Auth::start_with(
        &args(default_permission),
        store.clone(),
        Some(ADMIN.1.into()),
    )
    .unwrap();
    let artifacts = LocalArtifactRepository::new(dir.path().join("artifacts")).unwrap();
    let router = app::build_with_auth(
        AppState::ephemeral(store, Some(Arc::new(artifacts))),
        Some(auth),
    );
    TestApp { router, _dir: dir }
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).unwrap()
}

impl TestApp {
    async fn call(
        &self,
        as_user: Option<(&str, &str)>,
        method: Method,
        uri: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some((user, password)) = as_user {
            req = req.header(header::AUTHORIZATION, basic(user, password));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, json)
    }

    async fn ok(
        &self,
        user: (&str, &str),
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, _, json) = self.call(Some(user), method, uri, body, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {json}");
        json
    }

    async fn status(
        &self,
        user: (&str, &str),
        method: Method,
        uri: &str,
        body: Value,
    ) -> StatusCode {
        self.call(Some(user), method, uri, Some(body), &[]).await.0
    }

    async fn add_user(&self, name: &str) {
        self.ok(
            ADMIN,
            Method::POST,
            "/api/2.0/mlflow/users/create",
            Some(json!({"username": name, "password": PW})),
        )
        .await;
    }
}

#[tokio::test]
async fn logins_are_required_and_checked() {
    let app = test_app("READ");
    let search = "/api/2.0/mlflow/experiments/search?max_results=10";
    let (status, headers, _) = app.call(None, Method::GET, search, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"mlflow\"");
    let wrong = app
        .call(
            Some(("admin", "not-the-password")),
            Method::GET,
            search,
            None,
            &[],
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    // Twice: the second answer comes from the cache of verified passwords.
    app.ok(ADMIN, Method::GET, search, None).await;
    app.ok(ADMIN, Method::GET, search, None).await;
    let (status, _, _) = app.call(None, Method::GET, "/health", None, &[]).await;
    assert_eq!(status, StatusCode::OK);

    // A changed password takes effect at once, despite the cache.
    app.add_user("bob").await;
    app.ok(("bob", PW), Method::GET, search, None).await;
    app.ok(
        ADMIN,
        Method::PATCH,
        "/api/2.0/mlflow/users/update-password",
        Some(json!({"username": "bob", "password": "another-password"})),
    )
    .await;
    let (status, _, _) = app
        .call(Some(("bob", PW)), Method::GET, search, None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.ok(("bob", "another-password"), Method::GET, search, None)
        .await;
}

#[tokio::test]
async fn no_admin_password_no_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = Auth::start_with(&args("READ"), store(&dir), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("WASMFLOW_ADMIN_PASSWORD"), "{err}");
    let err = Auth::start_with(&args("READ"), store(&dir), Some("short".into()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("12 characters"), "{err}");
    let err = Auth::start_with(&args("WRITE"), store(&dir), Some(ADMIN.1.into()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("WRITE"), "{err}");
    // Once the admin exists, later starts need no password.
    Auth::start_with(&args("READ"), store(&dir), Some(ADMIN.1.into())).unwrap();
    Auth::start_with(&args("READ"), store(&dir), None).unwrap();
}

#[tokio::test]
async fn creators_manage_others_read_by_default() {
    let app = test_app("READ");
    app.add_user("alice").await;
    app.add_user("bob").await;
    let alice = ("alice", PW);
    let bob = ("bob", PW);
    let created = app
        .ok(
            alice,
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "alices"})),
        )
        .await;
    let exp = created["experiment_id"].as_str().unwrap().to_string();
    let get = format!("/api/2.0/mlflow/experiments/get?experiment_id={exp}");
    app.ok(bob, Method::GET, &get, None).await;
    let rename = json!({"experiment_id": exp, "new_name": "bobs"});
    let update = "/api/2.0/mlflow/experiments/update";
    assert_eq!(
        app.status(bob, Method::POST, update, rename.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.status(
            bob,
            Method::POST,
            "/ajax-api/2.0/mlflow/experiments/update",
            rename.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.status(alice, Method::POST, update, rename).await,
        StatusCode::OK
    );
    let delete = json!({"experiment_id": exp});
    let url = "/api/2.0/mlflow/experiments/delete";
    assert_eq!(
        app.status(bob, Method::POST, url, delete.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.status(alice, Method::POST, url, delete).await,
        StatusCode::OK
    );

    // Runs are judged by their experiment; an unknown run is refused, not reported missing.
    let other = app
        .ok(
            alice,
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "alices runs"})),
        )
        .await;
    let run = app
        .ok(
            alice,
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": other["experiment_id"]})),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let metric = json!({"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 0});
    let log = "/api/2.0/mlflow/runs/log-metric";
    assert_eq!(
        app.status(bob, Method::POST, log, metric.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.status(ADMIN, Method::POST, log, metric).await,
        StatusCode::OK
    );
    let (status, _, _) = app
        .call(
            Some(bob),
            Method::GET,
            "/api/2.0/mlflow/runs/get?run_id=nope",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Plugins are the admin's; unknown routes are refused to users, answered 404 to admins.
    let plugins = "/api/2.0/wasmflow/plugins";
    let (status, _, body) = app.call(Some(bob), Method::POST, plugins, None, &[]).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, json!("Permission denied"))
    );
    let (status, _, _) = app
        .call(Some(bob), Method::GET, "/api/2.0/mlflow/nope", None, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(Some(ADMIN), Method::GET, "/api/2.0/mlflow/nope", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn searches_leave_out_what_the_user_may_not_read() {
    let app = test_app("NO_PERMISSIONS");
    app.add_user("bob").await;
    let bob = ("bob", PW);
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let created = app
            .ok(
                ADMIN,
                Method::POST,
                "/api/2.0/mlflow/experiments/create",
                Some(json!({"name": name})),
            )
            .await;
        ids.push(created["experiment_id"].as_str().unwrap().to_string());
    }
    app.ok(
        ADMIN,
        Method::POST,
        "/api/3.0/mlflow/users/permissions/grant",
        Some(json!({"username": "bob", "resource_type": "experiment", "resource_id": ids[1], "permission": "READ"})),
    )
    .await;
    let found = app
        .ok(
            bob,
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            Some(json!({"max_results": 100})),
        )
        .await;
    let names: Vec<&str> = found["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    let all = app
        .ok(
            ADMIN,
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            Some(json!({"max_results": 100})),
        )
        .await;
    assert_eq!(all["experiments"].as_array().unwrap().len(), 4);

    // Run search keeps the readable experiments of the request, in the body and the query.
    for exp in &ids {
        app.ok(
            ADMIN,
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": exp})),
        )
        .await;
    }
    let runs = app
        .ok(
            bob,
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": ids})),
        )
        .await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["info"]["experiment_id"], ids[1].as_str());
    let query = format!(
        "/api/2.0/mlflow/runs/search?experiment_ids={}&experiment_ids={}",
        ids[0], ids[1]
    );
    let runs = app.ok(bob, Method::GET, &query, None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let none = app
        .ok(
            bob,
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": [ids[0]]})),
        )
        .await;
    assert_eq!(none, json!({}));
}

#[tokio::test]
async fn the_registry_history_names_the_signed_in_user() {
    let app = test_app("READ");
    app.add_user("alice").await;
    let alice = ("alice", PW);
    let (status, _, _) = app
        .call(
            Some(alice),
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "m"})),
            &[("x-wasmflow-user", "mallory")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = app
        .ok(
            ADMIN,
            Method::GET,
            "/api/2.0/wasmflow/registry/events?name=m",
            None,
        )
        .await;
    assert_eq!(events["events"][0]["user_id"], "alice");
    // The creator manages the model: renaming it moves the grant along.
    app.ok(
        alice,
        Method::POST,
        "/api/2.0/mlflow/registered-models/rename",
        Some(json!({"name": "m", "new_name": "m2"})),
    )
    .await;
    let got = app
        .ok(
            ADMIN,
            Method::GET,
            "/api/3.0/mlflow/users/permissions/get?username=alice&resource_type=registered_model&resource_id=m2",
            None,
        )
        .await;
    assert_eq!(got, json!({"allowed": true, "permission": "MANAGE"}));
}

#[tokio::test]
async fn evaluation_datasets_follow_their_experiments() {
    let app = test_app("NO_PERMISSIONS");
    app.add_user("ann").await;
    app.add_user("bob").await;
    let (ann, bob) = (("ann", PW), ("bob", PW));
    let created = app
        .ok(
            ann,
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "ann's"})),
        )
        .await;
    let exp = created["experiment_id"].as_str().unwrap().to_string();
    let create = "/api/3.0/mlflow/datasets/create";
    // Unscoped, a dataset would be no one's: MLflow refuses it to non-admins.
    assert_eq!(
        app.status(ann, Method::POST, create, json!({"name": "d"}))
            .await,
        StatusCode::FORBIDDEN
    );
    let made = app
        .ok(
            ann,
            Method::POST,
            create,
            Some(json!({"name": "d", "experiment_ids": [exp]})),
        )
        .await;
    let id = made["dataset"]["dataset_id"].as_str().unwrap().to_string();
    let dataset = format!("/api/3.0/mlflow/datasets/{id}");
    let records = format!("{dataset}/records");
    let upsert = json!({"records": "[{\"inputs\": {\"q\": 1}}]"});
    app.ok(ann, Method::GET, &dataset, None).await;
    app.ok(ann, Method::POST, &records, Some(upsert.clone()))
        .await;
    let search = json!({"experiment_ids": [exp], "max_results": 5});
    let found = app
        .ok(
            ann,
            Method::POST,
            "/api/3.0/mlflow/datasets/search",
            Some(search.clone()),
        )
        .await;
    assert_eq!(found["datasets"][0]["dataset_id"], id.as_str());

    // Bob holds nothing on Ann's experiment, so nothing of her dataset.
    for (method, uri, body) in [
        (Method::GET, dataset.as_str(), json!({})),
        (Method::POST, records.as_str(), upsert),
        (Method::DELETE, dataset.as_str(), json!({})),
        (Method::POST, "/api/3.0/mlflow/datasets/search", search),
    ] {
        assert_eq!(
            app.status(bob, method.clone(), uri, body).await,
            StatusCode::FORBIDDEN,
            "{method} {uri}"
        );
    }
    app.ok(ADMIN, Method::GET, &dataset, None).await;
}
