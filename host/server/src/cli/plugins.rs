//! `wasmflow plugins`: install, list and remove flavor plugins. Against a running server when
//! `MLFLOW_TRACKING_URI` is an `http://` URL (which uses a new plugin at once); directly in a
//! PostgreSQL backend store that replicas share (`--backend-store-uri postgresql://...`, or such
//! a `MLFLOW_TRACKING_URI`), where every replica sees the change at once; else in the plugin
//! directory (a server using the same directory picks the change up). `check` (in check.rs)
//! tests a component on this machine without installing it.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::Value;

use super::remote::Remote;
use crate::PluginArgs;

#[derive(clap::Args)]
pub struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
    #[command(flatten)]
    plugins: PluginArgs,
    /// The backend store whose plugins `install`, `list` and `remove` manage, as a server on it
    /// would: a PostgreSQL store keeps them for every replica on it (a SQLite store's server
    /// keeps them in --plugins-dir). Given, it wins over MLFLOW_TRACKING_URI.
    #[arg(long, global = true)]
    backend_store_uri: Option<String>,
}

#[derive(clap::Subcommand)]
enum PluginsCommand {
    #[command(flatten)]
    Manage(ManageCommand),
    /// Check a component without installing it and, with `--model`, score every kind of
    /// request on the model through the serving code; exits non-zero when a check fails.
    Check(super::check::CheckArgs),
    /// Make a plugin project (Rust, Python, JavaScript or C) that builds as it is.
    New(super::plugin_new::NewArgs),
}

#[derive(clap::Subcommand)]
enum ManageCommand {
    /// Check a component, read its info and install it.
    Install { file: PathBuf },
    /// List the plugins: name, version, sha256, the flavors each loads.
    List,
    /// Remove every version of a plugin, or one (`NAME@VERSION`).
    Remove { plugin: String },
}

impl PluginsArgs {
    /// Whether the command is `check`, whose FAIL lines already say what the log would warn
    /// about (an instance dropped after a trap).
    pub fn checks(&self) -> bool {
        matches!(self.command, PluginsCommand::Check(_))
    }
}

pub fn run(args: PluginsArgs) -> anyhow::Result<()> {
    match args.command {
        // Local only: it checks a file, whatever server MLFLOW_TRACKING_URI names.
        PluginsCommand::Check(check) => {
            if !super::check::run(check, &args.plugins)? {
                std::process::exit(1);
            }
            Ok(())
        }
        PluginsCommand::New(new) => {
            let dir = super::plugin_new::run(new)?;
            println!(
                "created {}: see its README.md to build, check and install",
                dir.display()
            );
            Ok(())
        }
        PluginsCommand::Manage(command) => {
            manage(command, &args.plugins, args.backend_store_uri.as_deref())
        }
    }
}

/// Installs, lists or removes plugins, against a server, in a shared store or in the plugin
/// directory.
fn manage(
    command: ManageCommand,
    plugins: &PluginArgs,
    backend_store_uri: Option<&str>,
) -> anyhow::Result<()> {
    let tracking_uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default();
    // As the MLflow client accepts a database uri as its tracking uri, a PostgreSQL one names the
    // store itself.
    let store_uri = backend_store_uri
        .map(str::to_string)
        .or_else(|| wasmflow_store::is_postgres(&tracking_uri).then(|| tracking_uri.clone()));
    if store_uri.is_none() && tracking_uri.starts_with("https://") {
        bail!("https tracking URIs are not supported by `wasmflow plugins` yet: {tracking_uri}");
    }
    let remote = (store_uri.is_none() && tracking_uri.starts_with("http://"))
        .then(|| Remote::new(&tracking_uri))
        .transpose()?;
    let open = || open_local(plugins, store_uri.as_deref());
    let mut out = std::io::stdout().lock();
    match command {
        ManageCommand::Install { file } => {
            let wasm = std::fs::read(&file)
                .with_context(|| format!("cannot read '{}'", file.display()))?;
            let record = match &remote {
                Some(r) => r.request(
                    hyper::Method::POST,
                    PATH,
                    "application/wasm",
                    Bytes::from(wasm),
                )?["plugin"]
                    .clone(),
                None => {
                    let manager = open()?;
                    let plugin = manager.install(&wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
                    serde_json::to_value(&plugin.record)?
                }
            };
            writeln!(out, "installed {}", describe(&record))?;
        }
        ManageCommand::List => {
            let records: Vec<Value> =
                match &remote {
                    Some(r) => r.request(
                        hyper::Method::GET,
                        PATH,
                        "application/json",
                        Bytes::new(),
                    )?["plugins"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    None => open()?
                        .list()?
                        .iter()
                        .map(|p| serde_json::to_value(&p.record))
                        .collect::<Result<_, _>>()?,
                };
            for record in &records {
                writeln!(out, "{}", describe(record))?;
            }
        }
        ManageCommand::Remove { plugin } => {
            let (name, version) = match plugin.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (plugin.clone(), None),
            };
            let removed: Vec<Value> = match &remote {
                Some(r) => {
                    let mut query = form_urlencoded::Serializer::new(String::new());
                    query.append_pair("name", &name);
                    if let Some(v) = &version {
                        query.append_pair("version", v);
                    }
                    let path = format!("{PATH}?{}", query.finish());
                    r.request(
                        hyper::Method::DELETE,
                        &path,
                        "application/json",
                        Bytes::new(),
                    )?["removed"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                }
                None => open()?
                    .remove(&name, version.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?,
            };
            for record in &removed {
                writeln!(out, "removed {}", describe(record))?;
            }
        }
    }
    Ok(())
}

/// The plugins as a server on `store_uri` keeps them: a PostgreSQL store's in the store, shared
/// by its replicas (the plugin directory caching their components); otherwise in the directory.
fn open_local(
    plugins: &PluginArgs,
    store_uri: Option<&str>,
) -> anyhow::Result<Arc<wasmflow_runtime::PluginManager>> {
    let Some(uri) = store_uri.filter(|uri| wasmflow_store::is_postgres(uri)) else {
        return plugins.open();
    };
    let store = wasmflow_store::open(
        uri,
        wasmflow_store::StoreConfig {
            default_artifact_root: "./mlruns".into(),
        },
    )
    .with_context(|| {
        format!(
            "cannot open the backend store '{}'",
            wasmflow_store::redact_password(uri)
        )
    })?;
    plugins.open_shared(Arc::new(crate::plugins::StorePlugins(store)))
}

const PATH: &str = "/api/2.0/wasmflow/plugins";

fn describe(record: &Value) -> String {
    let text = |key: &str| record[key].as_str().unwrap_or("").to_string();
    let loads: Vec<&str> = record["loads"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let sha = text("sha256");
    format!(
        "{}@{}\tsha256:{}\tloads {}{}",
        text("name"),
        text("version"),
        &sha[..sha.len().min(12)],
        loads.join(","),
        if record["builtin"].as_bool() == Some(true) {
            "\t(built in)"
        } else {
            ""
        }
    )
}
