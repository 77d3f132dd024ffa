//! `/api/2.0/wasmflow/plugins`: list, install (the component's bytes as the body) and remove
//! plugins on a running server; `/api/2.0/wasmflow/plugins/<sha256>`: a plugin's component, for
//! `wasmflow models predict`/`serve` to load a model with the server's plugins.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::{ApiError, ApiResult};
use crate::request::Message;
use crate::state::AppState;
use wasmflow_serving::model::{io_error, manager_error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/2.0/wasmflow/plugins",
            get(list).post(install).delete(remove),
        )
        .route("/api/2.0/wasmflow/plugins/{sha256}", get(component))
}

/// A built-in or installed plugin's component (`application/wasm`), by its sha256.
async fn component(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> ApiResult<impl IntoResponse> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!(
            "invalid plugin sha256 '{sha256}': it must be 64 hexadecimal digits"
        )));
    }
    let sha256 = sha256.to_ascii_lowercase();
    let manager = state.plugins()?.clone();
    let wasm = state
        .blocking(move || {
            manager
                .component(&sha256)
                .map_err(io_error)?
                .ok_or_else(|| {
                    wasmflow_core::Error::not_found(format!("no plugin with sha256 '{sha256}'"))
                })
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], wasm))
}

async fn list(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let manager = state.plugins()?.clone();
    let plugins = state
        .blocking(move || manager.list().map_err(io_error))
        .await?;
    let records: Vec<_> = plugins.iter().map(|p| &p.record).collect();
    Ok(axum::Json(json!({ "plugins": records })))
}

/// Components of Python and JavaScript plugins run to 40 MB.
const MAX_PLUGIN_SIZE: u64 = 256 * 1024 * 1024;
/// How long an upload may go without sending a byte, and how long it may take in all: the
/// install lock is held while it arrives.
const UPLOAD_STALL: Duration = Duration::from_secs(30);
const UPLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// One install at a time: compiling a component takes hundreds of MiB and every core, and an
/// upload waiting here is not read, so its bytes stay in the client's socket, not in memory.
static INSTALLS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Installs the component in the body: streamed to a temporary file in the plugin directory
/// (hashed on the way), then checked, compiled and stored by the manager.
async fn install(State(state): State<AppState>, body: Body) -> ApiResult<axum::Json<Value>> {
    let manager = state.plugins()?.clone();
    let _one_at_a_time = INSTALLS
        .acquire()
        .await
        .map_err(|e| ApiError(wasmflow_core::Error::internal(format!("{e}"))))?;
    let (file, sha256, size) =
        match tokio::time::timeout(UPLOAD_DEADLINE, receive(body, manager.dir())).await {
            Ok(received) => received?,
            Err(_) => {
                return Err(ApiError::invalid(format!(
                    "the plugin upload took longer than {} seconds",
                    UPLOAD_DEADLINE.as_secs()
                )));
            }
        };
    if size == 0 {
        return Err(ApiError::invalid(
            "the request body must be the plugin's component (.wasm)",
        ));
    }
    let plugin = state
        .blocking(move || {
            let wasm = std::fs::read(file.path()).map_err(|e| {
                wasmflow_core::Error::internal(format!("cannot read the upload: {e}"))
            })?;
            drop(file);
            manager.install_hashed(&wasm, sha256).map_err(manager_error)
        })
        .await?;
    Ok(axum::Json(json!({ "plugin": plugin.record })))
}

/// The body written to a temporary file (removed when dropped), its sha256 and its size.
async fn receive(
    body: Body,
    dir: &std::path::Path,
) -> ApiResult<(tempfile::NamedTempFile, String, u64)> {
    let io = |e: std::io::Error| {
        ApiError(wasmflow_core::Error::internal(format!(
            "cannot store the plugin upload: {e}"
        )))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let temp = tempfile::Builder::new()
        .prefix(".plugin.uploading.")
        .tempfile_in(dir)
        .map_err(io)?;
    let mut out = tokio::fs::File::from_std(temp.reopen().map_err(io)?);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(UPLOAD_STALL, stream.next()).await {
            Err(_) => {
                return Err(ApiError::invalid(format!(
                    "the plugin upload sent nothing for {} seconds",
                    UPLOAD_STALL.as_secs()
                )));
            }
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| {
                ApiError::invalid(format!("the plugin upload was interrupted: {e}"))
            })?,
        };
        size += chunk.len() as u64;
        if size > MAX_PLUGIN_SIZE {
            return Err(ApiError::invalid(format!(
                "the plugin is larger than {} MiB",
                MAX_PLUGIN_SIZE >> 20
            )));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((temp, sha256, size))
}

#[derive(Deserialize)]
struct Remove {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    req: Message<Remove>,
) -> ApiResult<axum::Json<Value>> {
    let Remove { name, version } = req.0;
    let manager = state.plugins()?.clone();
    let removed = state
        .blocking(move || {
            manager
                .remove(&name, version.as_deref())
                .map_err(manager_error)
        })
        .await?;
    Ok(axum::Json(json!({ "removed": removed })))
}

/// The backend store's installed plugins as the plugin manager reads them: replicas on one
/// PostgreSQL database share their plugins through it.
pub struct StorePlugins(pub std::sync::Arc<dyn wasmflow_store::Store>);

impl StorePlugins {
    fn store(&self) -> anyhow::Result<&dyn wasmflow_store::PluginStore> {
        self.0
            .plugins()
            .ok_or_else(|| anyhow::anyhow!("this backend store keeps no plugins"))
    }
}

fn to_record(p: wasmflow_store::StoredPlugin) -> wasmflow_runtime::PluginRecord {
    wasmflow_runtime::PluginRecord {
        name: p.name,
        version: p.version,
        sha256: p.sha256,
        loads: p.loads,
        description: p.description,
        builtin: false,
    }
}

/// The store's errors stay themselves, so that `io_error` gives the client their code (503
/// when the database is unreachable).
fn store_error(e: wasmflow_core::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

impl wasmflow_runtime::SharedPlugins for StorePlugins {
    fn records(&self) -> anyhow::Result<Vec<wasmflow_runtime::PluginRecord>> {
        let plugins = self.store()?.list_plugins().map_err(store_error)?;
        Ok(plugins.into_iter().map(to_record).collect())
    }

    fn component(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.store()?.plugin_component(sha256).map_err(store_error)
    }

    fn insert(
        &self,
        record: &wasmflow_runtime::PluginRecord,
        wasm: &[u8],
    ) -> anyhow::Result<Option<String>> {
        let stored = wasmflow_store::StoredPlugin {
            name: record.name.clone(),
            version: record.version.clone(),
            sha256: record.sha256.clone(),
            loads: record.loads.clone(),
            description: record.description.clone(),
        };
        match self
            .store()?
            .insert_plugin(&stored, wasm)
            .map_err(store_error)?
        {
            wasmflow_store::Inserted::Stored => Ok(None),
            wasmflow_store::Inserted::Conflict(sha256) => Ok(Some(sha256)),
        }
    }

    fn remove(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> anyhow::Result<Vec<wasmflow_runtime::PluginRecord>> {
        let removed = self
            .store()?
            .remove_plugins(name, version)
            .map_err(store_error)?;
        Ok(removed.into_iter().map(to_record).collect())
    }

    fn changes(&self) -> Option<u64> {
        self.0.plugins()?.plugin_changes()
    }
}
