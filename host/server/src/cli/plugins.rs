//! `wasmflow plugins`: install, list and remove flavor plugins. Against a running server when
//! `MLFLOW_TRACKING_URI` is an `http://` URL (which uses a new plugin at once), else directly in
//! the plugin directory (a server using the same directory picks the change up).

use std::io::Write as _;
use std::path::PathBuf;

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
}

#[derive(clap::Subcommand)]
enum PluginsCommand {
    /// Check a component, read its info and install it.
    Install { file: PathBuf },
    /// List the plugins: name, version, sha256, the flavors each loads.
    List,
    /// Remove every version of a plugin, or one (`NAME@VERSION`).
    Remove { plugin: String },
    /// Make a plugin project (Rust, Python, JavaScript or C) that builds as it is.
    New(super::plugin_new::NewArgs),
}

pub fn run(args: PluginsArgs) -> anyhow::Result<()> {
    if let PluginsCommand::New(new) = args.command {
        let dir = super::plugin_new::run(new)?;
        println!(
            "created {}: see its README.md to build, check and install",
            dir.display()
        );
        return Ok(());
    }
    let tracking_uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default();
    if tracking_uri.starts_with("https://") {
        bail!("https tracking URIs are not supported by `wasmflow plugins` yet: {tracking_uri}");
    }
    let remote = tracking_uri
        .starts_with("http://")
        .then(|| Remote::new(&tracking_uri))
        .transpose()?;
    let mut out = std::io::stdout().lock();
    match args.command {
        PluginsCommand::Install { file } => {
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
                    let manager = args.plugins.open()?;
                    let plugin = manager.install(&wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
                    serde_json::to_value(&plugin.record)?
                }
            };
            writeln!(out, "installed {}", describe(&record))?;
        }
        PluginsCommand::List => {
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
                    None => args
                        .plugins
                        .open()?
                        .list()?
                        .iter()
                        .map(|p| serde_json::to_value(&p.record))
                        .collect::<Result<_, _>>()?,
                };
            for record in &records {
                writeln!(out, "{}", describe(record))?;
            }
        }
        PluginsCommand::Remove { plugin } => {
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
                None => args
                    .plugins
                    .open()?
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
        PluginsCommand::New(_) => unreachable!("handled above"),
    }
    Ok(())
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
