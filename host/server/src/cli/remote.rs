//! A minimal HTTP/1.1 client for a running server's REST API (hyper, already in the tree for
//! axum), shared by the CLI subcommands.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use wasmflow_store::StoreConfig;

pub struct Remote {
    host: String,
    port: u16,
    base_path: String,
    auth: Option<String>,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// A client for `MLFLOW_TRACKING_URI` (`http://host:port[/base]`), with basic auth from
    /// `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
    pub fn new(uri: &str) -> anyhow::Result<Self> {
        let rest = uri.trim_start_matches("http://");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().context("bad port in MLFLOW_TRACKING_URI")?,
            ),
            None => (authority.to_string(), 80),
        };
        let auth = std::env::var("MLFLOW_TRACKING_USERNAME").ok().map(|user| {
            use base64::Engine as _;
            let password = std::env::var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        Ok(Self {
            host,
            port,
            base_path: path.trim_end_matches('/').to_string(),
            auth,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// Calls `/api/2.0/mlflow/<endpoint>` with a JSON body; an MLflow error answer becomes an
    /// error.
    pub fn call(
        &self,
        method: hyper::Method,
        endpoint: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        self.request(
            method,
            &format!("/api/2.0/mlflow/{endpoint}"),
            "application/json",
            body,
        )
    }

    /// Sends `body` to `path` (below the tracking URI's base path) and reads a JSON answer.
    pub fn request(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self.send(method, path, content_type, body)?;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "message": String::from_utf8_lossy(&bytes).into_owned() }));
        if !status.is_success() {
            bail!(
                "{} ({status}): {}",
                value["error_code"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }

    /// The bytes at `path` (an artifact download).
    pub fn download(&self, path: &str) -> anyhow::Result<Bytes> {
        let (status, bytes) =
            self.send(hyper::Method::GET, path, "application/json", Bytes::new())?;
        if !status.is_success() {
            bail!(
                "cannot download '{path}' ({status}): {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }

    fn send(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        let prefix = if self.base_path.is_empty() {
            String::new()
        } else {
            format!("/{}", self.base_path)
        };
        let path = format!("{prefix}{path}");
        self.runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .with_context(|| format!("cannot connect to {}:{}", self.host, self.port))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(&path)
                .header(HOST, format!("{}:{}", self.host, self.port))
                .header(CONTENT_TYPE, content_type)
                .header("x-wasmflow-user", std::env::var("USER").unwrap_or_default());
            if let Some(auth) = &self.auth {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = sender.send_request(req.body(Full::new(body))?).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        })
    }
}

/// A URL query string.
pub fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A tracking server over the local store on a loopback port, for a command
/// that speaks REST to it (`run`, `experiments`, `runs`) when no server is named.
pub struct LocalServer {
    pub url: String,
    _runtime: tokio::runtime::Runtime,
}

impl LocalServer {
    /// `artifacts` is the proxy's store, as `wasmflow server --artifacts-destination` takes it:
    /// a directory or an object store's URI.
    pub fn start(store_uri: &str, artifacts: &str) -> anyhow::Result<Self> {
        // Checked first: a refused destination leaves no store behind.
        let repo = wasmflow_artifacts::open_repository(artifacts)
            .map_err(|e| anyhow::anyhow!("invalid --artifacts-destination: {e}"))?;
        let store = wasmflow_store::open(
            store_uri,
            StoreConfig {
                default_artifact_root: "mlflow-artifacts:/".into(),
            },
        )
        .with_context(|| format!("cannot open the backend store '{store_uri}'"))?;
        let app = crate::app::build(crate::state::AppState::ephemeral(store, Some(repo)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .context("cannot listen on a loopback port")?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the local tracking server stopped: {e:#}");
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            _runtime: runtime,
        })
    }
}

/// The server at MLFLOW_TRACKING_URI when it is an http:// URL and no store is named, else one
/// of our own over the local store (`--backend-store-uri`, or a `sqlite:` tracking URI, or
/// `sqlite:///mlflow.db`), kept alive by the returned guard.
pub fn connect(
    backend_store_uri: Option<&str>,
    artifacts_destination: &str,
) -> anyhow::Result<(Remote, Option<LocalServer>)> {
    let tracking_uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default();
    if backend_store_uri.is_none() {
        if tracking_uri.starts_with("http://") {
            return Ok((Remote::new(&tracking_uri)?, None));
        }
        if tracking_uri.starts_with("https://") {
            bail!(
                "https tracking URIs are not supported by the wasmflow CLI yet: '{tracking_uri}'"
            );
        }
    }
    let store_uri = match backend_store_uri {
        Some(uri) => uri.to_string(),
        None if tracking_uri.starts_with("sqlite:") => tracking_uri,
        None => "sqlite:///mlflow.db".into(),
    };
    let server = LocalServer::start(&store_uri, artifacts_destination)?;
    Ok((Remote::new(&server.url)?, Some(server)))
}
