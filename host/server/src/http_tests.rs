//! The HTTP surface end to end inside the process: routing, request parsing, error shapes.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmflow_artifacts::LocalArtifactRepository;
use wasmflow_store::{SqliteStore, StoreConfig};

use crate::{app, state::AppState};

struct TestApp {
    router: Router,
    dir: tempfile::TempDir,
}

fn test_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("db.sqlite"),
        StoreConfig {
            default_artifact_root: "mlflow-artifacts:/".into(),
        },
    )
    .unwrap();
    let artifacts = LocalArtifactRepository::new(dir.path().join("artifacts")).unwrap();
    let store = Arc::new(store);
    let router = app::build(AppState::ephemeral(store, Some(Arc::new(artifacts))));
    TestApp { router, dir }
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: Body) -> (StatusCode, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        (
            status,
            to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
    }

    async fn json(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        let body = if method == Method::GET {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        let (status, bytes) = self.call(method, uri, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json(Method::POST, &format!("/api/2.0/mlflow/{path}"), body)
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.json(Method::GET, &format!("/api/2.0/mlflow/{path}"), Value::Null)
            .await
    }
}

fn assert_error(resp: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(resp.0.as_u16(), status, "{:?}", resp.1);
    assert_eq!(resp.1["error_code"], code, "{:?}", resp.1);
    assert!(resp.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn experiment_and_run_round_trip() {
    let app = test_app();
    let (status, created) = app.post("experiments/create", json!({"name": "e1"})).await;
    assert_eq!(status, StatusCode::OK);
    let exp_id = created["experiment_id"].as_str().unwrap().to_string();
    let (_, got) = app
        .get(&format!("experiments/get?experiment_id={exp_id}"))
        .await;
    assert_eq!(got["experiment"]["name"], "e1");
    assert_eq!(
        got["experiment"]["artifact_location"],
        format!("mlflow-artifacts:/{exp_id}")
    );

    let (_, run) = app
        .post(
            "runs/create",
            json!({"experiment_id": exp_id, "start_time": "1700000000000", "run_name": "r1"}),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(run["run"]["info"]["status"], "RUNNING");
    for step in 0..3 {
        let (status, _) = app
            .post(
                "runs/log-metric",
                json!({"run_id": run_id, "key": "loss", "value": 1.0 / (step + 1) as f64,
                       "timestamp": 5, "step": step}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.post(
        "runs/log-metric",
        json!({"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 5}),
    )
    .await;
    let (_, history) = app
        .get(&format!(
            "metrics/get-history?run_id={run_id}&metric_key=loss"
        ))
        .await;
    assert_eq!(history["metrics"].as_array().unwrap().len(), 3);
    let (_, got) = app.get(&format!("runs/get?run_id={run_id}")).await;
    let metrics = got["run"]["data"]["metrics"].as_array().unwrap();
    let nan = metrics.iter().find(|m| m["key"] == "nan").unwrap();
    assert_eq!(nan["value"], "NaN");
    // The ajax prefix serves the same API.
    let (status, _) = app
        .json(
            Method::GET,
            &format!("/ajax-api/2.0/mlflow/runs/get?run_id={run_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_get_mlflow_error_shapes() {
    let app = test_app();
    let (status, body) = app
        .call(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Body::from("{not json"),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_error(&(status, body), 400, "INVALID_PARAMETER_VALUE");

    assert_error(
        &app.post("experiments/create", json!({"name": ["x"]})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &app.post("experiments/create", json!({})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    app.post("experiments/create", json!({"name": "dup"})).await;
    assert_error(
        &app.post("experiments/create", json!({"name": "dup"})).await,
        400,
        "RESOURCE_ALREADY_EXISTS",
    );
    assert_error(
        &app.get("runs/get?run_id=0123456789abcdef").await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        &app.get("runs/get?run_id=../../etc").await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &app.post(
            "runs/search",
            json!({"experiment_ids": ["0"], "filter": "metrics.acc >"}),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &app.json(Method::GET, "/api/2.0/mlflow/no/such/endpoint", Value::Null)
            .await,
        404,
        "ENDPOINT_NOT_FOUND",
    );
    let (_, run) = app.post("runs/create", json!({"experiment_id": "0"})).await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    assert_error(
        &app.post(
            "runs/set-tag",
            json!({"run_id": run_id, "key": "k".repeat(251), "value": "v"}),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": format!("m{i}"), "value": 1, "timestamp": 0, "step": 0}))
        .collect();
    assert_error(
        &app.post(
            "runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics}),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}

#[tokio::test]
async fn artifact_proxy_round_trip_and_traversal() {
    let app = test_app();
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/dir/hello.txt",
            Body::from("hello"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, bytes) = app
        .call(
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/dir/hello.txt",
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"hello");
    let (_, listing) = app
        .json(
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts?path=0/run/artifacts/dir",
            Value::Null,
        )
        .await;
    assert_eq!(listing["files"][0]["file_size"], 5);

    for path in [
        "..%2Fescape.txt",
        "%2E%2E/escape.txt",
        "a/%252e%252e%252f..%252fescape.txt",
    ] {
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                Body::from("x"),
            )
            .await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_error(&(status, body), 400, "INVALID_PARAMETER_VALUE");
    }
    assert!(!app.dir.path().join("escape.txt").exists());
}

#[tokio::test]
async fn ui_is_served_with_types_and_etags_and_api_404s_stay_json() {
    let app = test_app();
    let get = |uri: &str, etag: Option<&str>| {
        let mut req = Request::builder().uri(uri);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        app.router.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let index = get("/", None).await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    let again = get("/", Some(&etag)).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(to_bytes(again.into_body(), 1).await.unwrap().is_empty());

    let js = get("/ui/app.js", None).await.unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let chart = get("/ui/vendor/uplot-1.6.32/uPlot.iife.min.js", None)
        .await
        .unwrap();
    assert_eq!(chart.status(), StatusCode::OK);
    assert_eq!(
        chart.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        get("/ui/missing.js", None).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let missing = app
        .json(Method::GET, "/api/2.0/mlflow/no-such-thing", Value::Null)
        .await;
    assert_error(&missing, 404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn run_counts_count_active_runs_per_experiment() {
    let app = test_app();
    let (_, exp) = app
        .post("experiments/create", json!({"name": "counted"}))
        .await;
    let id = exp["experiment_id"].as_str().unwrap().to_string();
    let mut run_ids = Vec::new();
    for _ in 0..3 {
        let (_, run) = app.post("runs/create", json!({"experiment_id": id})).await;
        run_ids.push(run["run"]["info"]["run_id"].as_str().unwrap().to_string());
    }
    app.post("runs/delete", json!({"run_id": run_ids[0]})).await;
    let (status, body) = app
        .json(
            Method::GET,
            &format!(
                "/ajax-api/2.0/wasmflow/experiments/run-counts?experiment_ids={id}&experiment_ids=0"
            ),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["run_counts"], json!({ id.clone(): 2, "0": 0 }));
    let bad = app
        .json(
            Method::GET,
            "/api/2.0/wasmflow/experiments/run-counts?experiment_ids=abc",
            Value::Null,
        )
        .await;
    assert_error(&bad, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn a_static_prefix_serves_everything_under_it_and_nothing_outside() {
    let app = test_app();
    let router = app::under_prefix(app.router.clone(), "/mlflow");
    let get = |uri: &str| {
        router
            .clone()
            .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
    };
    let health = get("/mlflow/health").await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(to_bytes(health.into_body(), 64).await.unwrap(), "OK");
    let search = get("/mlflow/api/2.0/mlflow/experiments/search?max_results=5")
        .await
        .unwrap();
    assert_eq!(search.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&to_bytes(search.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["experiments"][0]["name"], "Default");
    assert_eq!(get("/mlflow/").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/mlflow/ui/app.js").await.unwrap().status(),
        StatusCode::OK
    );
    let bare = get("/mlflow?x=1").await.unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers()["location"], "/mlflow/?x=1");
    for outside in [
        "/health",
        "/",
        "/api/2.0/mlflow/experiments/search",
        "/mlflowx/health",
    ] {
        assert_eq!(
            get(outside).await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{outside}"
        );
    }
    assert!(app::check_static_prefix("/mlflow").is_ok());
    for (bad, says) in [
        ("mlflow", "must begin with a '/'"),
        ("/mlflow/", "should not end with a '/'"),
        ("/", "should not end with a '/'"),
    ] {
        let err = app::check_static_prefix(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
