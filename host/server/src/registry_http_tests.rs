//! The model registry's HTTP surface inside the process: routes, message parsing (JSON bodies,
//! query strings, DELETE with a body), MLflow's JSON shapes and error codes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmflow_store::{SqliteStore, StoreConfig};

use crate::{app, state::AppState};

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

fn test_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("db.sqlite"),
            StoreConfig {
                default_artifact_root: "mlflow-artifacts:/".into(),
            },
        )
        .unwrap(),
    );
    let router = app::build(AppState::ephemeral(store, None));
    TestApp { router, _dir: dir }
}

impl TestApp {
    async fn raw(
        &self,
        method: Method,
        uri: &str,
        body: Value,
        user: Option<&str>,
    ) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(user) = user {
            req = req.header("x-wasmflow-user", user);
        }
        let body = if method == Method::GET || body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        self.raw(method, &format!("/api/2.0/mlflow/{path}"), body, None)
            .await
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }
}

fn assert_error(resp: (u16, Value), status: u16, code: &str) {
    assert_eq!(resp.0, status, "{:?}", resp.1);
    assert_eq!(resp.1["error_code"], code, "{:?}", resp.1);
    assert!(resp.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn registry_round_trip_in_mlflow_shapes() {
    let app = test_app();
    let created = app
        .ok(
            Method::POST,
            "registered-models/create",
            json!({"name": "m", "tags": [{"key": "k", "value": "v"}]}),
        )
        .await;
    let rm = &created["registered_model"];
    assert_eq!(rm["name"], "m");
    assert!(rm["creation_timestamp"].is_i64());
    assert!(rm.get("description").is_none() && rm.get("latest_versions").is_none());

    let mv = app
        .ok(
            Method::POST,
            "model-versions/create",
            json!({"name": "m", "source": "s3://bucket/abc/model"}),
        )
        .await;
    let mv = &mv["model_version"];
    assert_eq!(mv["version"], "1");
    assert_eq!(mv["current_stage"], "None");
    assert_eq!(mv["status"], "READY");
    assert_eq!(mv["description"], "");
    assert_eq!(mv["run_id"], "");
    assert_eq!(mv["run_link"], "");

    // Versions arrive as strings or numbers; GET reads the query string.
    app.ok(
        Method::POST,
        "registered-models/alias",
        json!({"name": "m", "alias": "champ", "version": 1}),
    )
    .await;
    let by_alias = app
        .ok(
            Method::GET,
            "registered-models/alias?name=m&alias=champ",
            Value::Null,
        )
        .await;
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champ"]));
    let got = app
        .ok(Method::GET, "registered-models/get?name=m", Value::Null)
        .await;
    assert_eq!(
        got["registered_model"]["aliases"],
        json!([{"alias": "champ", "version": "1"}])
    );
    assert_eq!(
        got["registered_model"]["latest_versions"][0]["version"],
        "1"
    );

    let moved = app
        .ok(
            Method::POST,
            "model-versions/transition-stage",
            json!({"name": "m", "version": "1", "stage": "staging",
                   "archive_existing_versions": true}),
        )
        .await;
    assert_eq!(moved["model_version"]["current_stage"], "Staging");
    let latest = app
        .ok(
            Method::GET,
            "registered-models/get-latest-versions?name=m&stages=Staging",
            Value::Null,
        )
        .await;
    assert_eq!(latest["model_versions"][0]["version"], "1");
    let latest = app
        .ok(
            Method::POST,
            "registered-models/get-latest-versions",
            json!({"name": "m", "stages": ["Production"]}),
        )
        .await;
    assert_eq!(latest, json!({}));

    let uri = app
        .ok(
            Method::GET,
            "model-versions/get-download-uri?name=m&version=1",
            Value::Null,
        )
        .await;
    assert_eq!(uri["artifact_uri"], "s3://bucket/abc/model");

    let updated = app
        .ok(
            Method::PATCH,
            "model-versions/update",
            json!({"name": "m", "version": "1", "description": "first"}),
        )
        .await;
    assert_eq!(updated["model_version"]["description"], "first");
    let updated = app
        .ok(
            Method::PATCH,
            "registered-models/update",
            json!({"name": "m", "description": "model"}),
        )
        .await;
    assert_eq!(updated["registered_model"]["description"], "model");

    app.ok(
        Method::POST,
        "model-versions/set-tag",
        json!({"name": "m", "version": "1", "key": "t", "value": "x"}),
    )
    .await;
    let found = app
        .ok(
            Method::GET,
            "model-versions/search?filter=tags.t%3D%27x%27&max_results=5",
            Value::Null,
        )
        .await;
    assert_eq!(found["model_versions"].as_array().unwrap().len(), 1);
    // The client sends DELETE messages as JSON bodies.
    app.ok(
        Method::DELETE,
        "model-versions/delete-tag",
        json!({"name": "m", "version": "1", "key": "t"}),
    )
    .await;
    let found = app
        .ok(
            Method::GET,
            "model-versions/search?filter=tags.t%3D%27x%27",
            Value::Null,
        )
        .await;
    assert_eq!(found, json!({}));
    app.ok(
        Method::DELETE,
        "registered-models/delete-tag",
        json!({"name": "m", "key": "k"}),
    )
    .await;
    app.ok(
        Method::DELETE,
        "registered-models/alias",
        json!({"name": "m", "alias": "champ"}),
    )
    .await;

    let renamed = app
        .ok(
            Method::POST,
            "registered-models/rename",
            json!({"name": "m", "new_name": "m2"}),
        )
        .await;
    assert_eq!(
        renamed["registered_model"]["latest_versions"][0]["name"],
        "m2"
    );
    let searched = app
        .ok(
            Method::GET,
            "registered-models/search?filter=name+LIKE+%27m%25%27&order_by=name+DESC",
            Value::Null,
        )
        .await;
    assert_eq!(searched["registered_models"][0]["name"], "m2");
    // The ajax prefix serves the same API.
    let (status, _) = app
        .raw(
            Method::GET,
            "/ajax-api/2.0/mlflow/registered-models/get?name=m2",
            Value::Null,
            None,
        )
        .await;
    assert_eq!(status, 200);
    app.ok(
        Method::DELETE,
        "model-versions/delete",
        json!({"name": "m2", "version": "1"}),
    )
    .await;
    app.ok(
        Method::DELETE,
        "registered-models/delete",
        json!({"name": "m2"}),
    )
    .await;
    assert_error(
        app.call(Method::GET, "registered-models/get?name=m2", Value::Null)
            .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
}

#[tokio::test]
async fn registry_errors_have_mlflow_codes() {
    let app = test_app();
    app.ok(
        Method::POST,
        "registered-models/create",
        json!({"name": "m"}),
    )
    .await;
    app.ok(
        Method::POST,
        "model-versions/create",
        json!({"name": "m", "source": "s3://bucket/x"}),
    )
    .await;
    let cases = [
        (
            Method::POST,
            "registered-models/create",
            json!({"name": "m"}),
            400,
            "RESOURCE_ALREADY_EXISTS",
        ),
        (
            Method::POST,
            "registered-models/create",
            json!({}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/create",
            json!({"name": "a/b"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/create",
            json!({"name": 5}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "registered-models/get?name=nope",
            Value::Null,
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            Method::GET,
            "model-versions/get?name=m&version=9",
            Value::Null,
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            Method::GET,
            "model-versions/get?name=m&version=x",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/alias",
            json!({"name": "m", "alias": "latest", "version": "1"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/alias",
            json!({"name": "m", "alias": "v1", "version": "1"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/alias",
            json!({"name": "m", "alias": "a b", "version": "1"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/alias",
            json!({"name": "m", "alias": "ok", "version": "7"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            Method::GET,
            "registered-models/alias?name=m&alias=none",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/transition-stage",
            json!({"name": "m", "version": "1", "stage": "bogus"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/transition-stage",
            json!({"name": "m", "version": "1", "stage": "None", "archive_existing_versions": true}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/create",
            json!({"name": "m"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/create",
            json!({"name": "nope", "source": "s3://bucket/x"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            Method::POST,
            "model-versions/create",
            // No run_id to agree with the runs:/ source (MLflow's rule).
            json!({"name": "m", "source": "runs:/0123456789abcdef0123456789abcdef/model"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/create",
            json!({"name": "m", "source": "mlflow-artifacts:/0/../../x"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "model-versions/create",
            json!({"name": "m", "source": "mlflow-artifacts:/0/abc/model"}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "model-versions/search?filter=version_number+%3D+1.5",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "model-versions/search?filter=foo+%3D+%27x%27",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "registered-models/search?filter=run_id+%3D+%27x%27",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "registered-models/search?max_results=1001",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::GET,
            "registered-models/search?page_token=garbage",
            Value::Null,
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::POST,
            "registered-models/rename",
            json!({"name": "m", "new_name": ""}),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            Method::PATCH,
            "registered-models/update",
            json!({"name": "zzz"}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let resp = app.call(method, path, body.clone()).await;
        assert_eq!(resp.0, status, "{path} {body}: {:?}", resp.1);
        assert_error(resp, status, code);
    }
}

#[tokio::test]
async fn events_and_uri_resolution() {
    let app = test_app();
    app.raw(
        Method::POST,
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "m"}),
        Some("carol"),
    )
    .await;
    app.ok(
        Method::POST,
        "model-versions/create",
        json!({"name": "m", "source": "s3://bucket/x"}),
    )
    .await;
    app.ok(
        Method::POST,
        "registered-models/alias",
        json!({"name": "m", "alias": "prod", "version": "1"}),
    )
    .await;
    let (status, events) = app
        .raw(
            Method::GET,
            "/api/2.0/wasmflow/registry/events?name=m",
            Value::Null,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let events = events["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "registered_model_created",
            "model_version_created",
            "alias_set"
        ]
    );
    assert_eq!(events[0]["user_id"], "carol");
    assert_eq!(events[2]["details"]["alias"], "prod");
    let (_, one) = app
        .raw(
            Method::GET,
            "/api/2.0/wasmflow/registry/events?name=m&version=1",
            Value::Null,
            None,
        )
        .await;
    assert_eq!(one["events"].as_array().unwrap().len(), 2);

    let (status, resolved) = app
        .raw(
            Method::GET,
            "/api/2.0/wasmflow/models/resolve?uri=models%3A%2Fm%40prod",
            Value::Null,
            None,
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(
        resolved,
        json!({"name": "m", "version": "1", "source": "s3://bucket/x",
               "artifact_uri": "s3://bucket/x"})
    );
    assert_error(
        app.raw(
            Method::GET,
            "/api/2.0/wasmflow/models/resolve?uri=runs%3A%2Fx",
            Value::Null,
            None,
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}
