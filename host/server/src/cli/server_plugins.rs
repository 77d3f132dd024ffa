//! The plugins a tracking server has installed, for `wasmflow models predict` and `models serve`
//! against it (`MLFLOW_TRACKING_URI=http://...`): when no local plugin loads a model, the server's
//! plugin for it is downloaded by sha256 through `GET /api/2.0/wasmflow/plugins/<sha256>`, kept
//! in the user's cache directory, checked against its hash and loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use wasmflow_runtime::{PluginManager, PluginRecord, choose};
use wasmflow_serving::OtherPlugins;

use super::remote::Remote;

const PLUGINS_API: &str = "/api/2.0/wasmflow/plugins";

/// The server's plugin for the model in `dir` when none of `manager`'s loads it (nothing
/// otherwise: local plugins come first, and a server is not asked needlessly). `server` is the
/// tracking URI when it is a server's.
pub fn for_model(
    manager: &PluginManager,
    dir: &Path,
    server: Option<&str>,
) -> anyhow::Result<OtherPlugins> {
    let Some(server) = server else {
        return Ok(OtherPlugins::default());
    };
    // A model that cannot be read, or that carries its plugin, is load's business.
    let Ok(mlmodel) = wasmflow_serving::model::read_mlmodel(dir) else {
        return Ok(OtherPlugins::default());
    };
    if !matches!(mlmodel.carried_plugin(), Ok(None)) {
        return Ok(OtherPlugins::default());
    }
    let flavors: Vec<&str> = mlmodel.flavor_names().collect();
    if manager.for_flavors(flavors.iter().copied())?.is_some() {
        return Ok(OtherPlugins::default());
    }
    let remote = Remote::new(server)?;
    let records: Vec<PluginRecord> = match remote.request(
        hyper::Method::GET,
        PLUGINS_API,
        "application/json",
        Bytes::new(),
    ) {
        Ok(answer) => serde_json::from_value(answer["plugins"].clone())
            .context("the server's plugin list is not what wasmflow writes")?,
        Err(e) => {
            return Ok(OtherPlugins {
                plugins: Vec::new(),
                searched: vec![format!(
                    "the plugins of the server at {server} (MLFLOW_TRACKING_URI), which could \
                     not be listed: {e:#}"
                )],
            });
        }
    };
    let refs: Vec<&PluginRecord> = records.iter().collect();
    let Some((flavor, i)) = choose(&refs, flavors.iter().copied()) else {
        let mut loads: Vec<&str> = records
            .iter()
            .flat_map(|r| r.loads.iter().map(String::as_str))
            .collect();
        loads.sort_unstable();
        loads.dedup();
        return Ok(OtherPlugins {
            plugins: Vec::new(),
            searched: vec![format!(
                "the plugins installed on the server at {server} (MLFLOW_TRACKING_URI), which \
                 load {loads:?}"
            )],
        });
    };
    let record = &records[i];
    let what = format!("the server's plugin '{}@{}'", record.name, record.version);
    let wasm = fetch(&remote, &record.sha256).with_context(|| format!("cannot use {what}"))?;
    let plugin = manager
        .compile_carried(&wasm, &record.sha256)
        .map_err(|e| anyhow::anyhow!("cannot use {what}: {e}"))?;
    tracing::info!(
        "loading flavor '{flavor}' with {what} ({})",
        &record.sha256[..12]
    );
    Ok(OtherPlugins {
        plugins: vec![Arc::new(plugin)],
        searched: vec![format!(
            "the plugins installed on the server at {server} (MLFLOW_TRACKING_URI)"
        )],
    })
}

/// The component with this sha256: from the download cache, else from the server (and then
/// cached). Its hash is checked either way.
fn fetch(remote: &Remote, sha256: &str) -> anyhow::Result<Vec<u8>> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the server lists a plugin with an invalid sha256 '{sha256}'");
    }
    let cached = downloaded_plugins_dir().map(|d| d.join(format!("{sha256}.wasm")));
    if let Some(path) = &cached
        && let Ok(wasm) = std::fs::read(path)
    {
        if hex_sha256(&wasm) == sha256 {
            return Ok(wasm);
        }
        // Truncated or altered: fetch it again.
        tracing::warn!("ignoring '{}': its sha256 is not its name", path.display());
        let _ = std::fs::remove_file(path);
    }
    let wasm = remote.download(&format!("{PLUGINS_API}/{sha256}"))?;
    let actual = hex_sha256(&wasm);
    if actual != sha256 {
        bail!("the server sent a component with sha256 {actual} for '{sha256}'");
    }
    if let Some(path) = &cached
        && let Err(e) = write_atomically(path, &wasm)
    {
        // A cache that cannot be written costs a download next time, not this prediction.
        tracing::warn!("cannot cache the plugin: {e:#}");
    }
    Ok(wasm.to_vec())
}

/// Where plugins downloaded from servers are kept: `plugins/` in the user's wasmflow cache
/// directory (the compile cache's base), beside the compiled plugins.
pub fn downloaded_plugins_dir() -> Option<PathBuf> {
    wasmflow_runtime::user_cache_dir().map(|base| base.join("plugins"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a cache file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write '{}'", path.display()))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
