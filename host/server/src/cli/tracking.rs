//! `wasmflow experiments` and `wasmflow runs`: MLflow's `mlflow experiments` and `mlflow runs`
//! commands. They speak MLflow's REST API, to the server at MLFLOW_TRACKING_URI or to one over
//! the local store (see `remote::connect`), so they behave the same against either.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::output::{pandas_time, table, text, time};
use super::remote::{Remote, connect, query};

/// Where the commands find the tracking store when MLFLOW_TRACKING_URI is not an http:// URL.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The local store (used when MLFLOW_TRACKING_URI is not an http:// URL, or always when given).
    #[arg(long, global = true)]
    backend_store_uri: Option<String>,
    /// Where the local store's proxied artifacts live (as `wasmflow server
    /// --artifacts-destination`: a directory or an object store's URI, e.g. `s3://bucket/prefix`).
    #[arg(long, global = true, default_value = "./mlartifacts")]
    artifacts_destination: String,
}

#[derive(clap::Args)]
pub struct ExperimentsArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: ExperimentsCommand,
}

#[derive(clap::Subcommand)]
enum ExperimentsCommand {
    /// Create an experiment.
    Create {
        #[arg(short = 'n', long)]
        experiment_name: String,
        /// Where the experiment's runs keep their artifacts.
        #[arg(short = 'l', long)]
        artifact_location: Option<String>,
    },
    /// List experiments.
    Search {
        #[arg(short = 'v', long, default_value = "active_only", value_parser = VIEWS)]
        view: String,
    },
    /// Mark an experiment deleted (with its runs); `wasmflow gc` removes it for good.
    Delete {
        #[arg(short = 'x', long)]
        experiment_id: String,
    },
    /// Restore a deleted experiment.
    Restore {
        #[arg(short = 'x', long)]
        experiment_id: String,
    },
    /// Rename an experiment.
    Rename {
        #[arg(short = 'x', long)]
        experiment_id: String,
        #[arg(long)]
        new_name: String,
    },
    /// Write the experiment's runs as CSV (run, metrics, params and tags columns).
    Csv {
        #[arg(short = 'x', long)]
        experiment_id: String,
        /// The file to write; stdout when absent.
        #[arg(short = 'o', long)]
        filename: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct RunsArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(clap::Subcommand)]
enum RunsCommand {
    /// List the runs of an experiment.
    List {
        #[arg(long)]
        experiment_id: String,
        #[arg(short = 'v', long, default_value = "active_only", value_parser = VIEWS)]
        view: String,
    },
    /// Print a run as JSON.
    Describe {
        #[arg(long)]
        run_id: String,
    },
    /// Mark a run deleted; `wasmflow gc` removes it for good.
    Delete {
        #[arg(long)]
        run_id: String,
    },
    /// Restore a deleted run.
    Restore {
        #[arg(long)]
        run_id: String,
    },
}

const VIEWS: [&str; 3] = ["active_only", "deleted_only", "all"];

fn view_type(view: &str) -> &'static str {
    match view {
        "deleted_only" => "DELETED_ONLY",
        "all" => "ALL",
        _ => "ACTIVE_ONLY",
    }
}

pub fn experiments(args: ExperimentsArgs) -> anyhow::Result<()> {
    let (remote, _server) = connect(
        args.store.backend_store_uri.as_deref(),
        &args.store.artifacts_destination,
    )?;
    let mut out = std::io::stdout().lock();
    match args.command {
        ExperimentsCommand::Create {
            experiment_name,
            artifact_location,
        } => {
            let mut body = json!({ "name": experiment_name });
            if let Some(location) = artifact_location {
                body["artifact_location"] = location.into();
            }
            let created = remote.call(hyper::Method::POST, "experiments/create", Some(body))?;
            writeln!(
                out,
                "Created experiment '{experiment_name}' with id {}",
                text(&created["experiment_id"])
            )?;
        }
        ExperimentsCommand::Search { view } => {
            let experiments = all_pages(
                &remote,
                "experiments/search",
                "experiments",
                |token| json!({ "view_type": view_type(&view), "max_results": 1000, "page_token": token }),
            )?;
            let rows = experiments
                .iter()
                .map(|e| {
                    vec![
                        text(&e["experiment_id"]),
                        text(&e["name"]),
                        text(&e["artifact_location"]),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["Experiment Id", "Name", "Artifact Location"],
                rows,
            )?;
        }
        ExperimentsCommand::Delete { experiment_id } => {
            set_stage(
                &remote,
                "experiments/delete",
                "experiment_id",
                &experiment_id,
            )?;
            writeln!(out, "Experiment with ID {experiment_id} has been deleted.")?;
        }
        ExperimentsCommand::Restore { experiment_id } => {
            set_stage(
                &remote,
                "experiments/restore",
                "experiment_id",
                &experiment_id,
            )?;
            writeln!(out, "Experiment with id {experiment_id} has been restored.")?;
        }
        ExperimentsCommand::Rename {
            experiment_id,
            new_name,
        } => {
            remote.call(
                hyper::Method::POST,
                "experiments/update",
                Some(json!({ "experiment_id": experiment_id, "new_name": new_name })),
            )?;
            writeln!(
                out,
                "Experiment with id {experiment_id} has been renamed to '{new_name}'."
            )?;
        }
        ExperimentsCommand::Csv {
            experiment_id,
            filename,
        } => {
            let runs = all_pages(&remote, "runs/search", "runs", |token| {
                json!({
                    "experiment_ids": [experiment_id],
                    "max_results": 1000,
                    "page_token": token,
                })
            })?;
            let csv = runs_csv(&runs);
            match filename {
                Some(path) => std::fs::write(&path, csv)
                    .with_context(|| format!("cannot write '{}'", path.display()))?,
                None => out.write_all(csv.as_bytes())?,
            }
        }
    }
    Ok(())
}

pub fn runs(args: RunsArgs) -> anyhow::Result<()> {
    let (remote, _server) = connect(
        args.store.backend_store_uri.as_deref(),
        &args.store.artifacts_destination,
    )?;
    let mut out = std::io::stdout().lock();
    match args.command {
        RunsCommand::List {
            experiment_id,
            view,
        } => {
            let runs = all_pages(&remote, "runs/search", "runs", |token| {
                json!({
                    "experiment_ids": [experiment_id],
                    "run_view_type": view_type(&view),
                    "max_results": 1000,
                    "page_token": token,
                })
            })?;
            let rows = runs
                .iter()
                .map(|r| {
                    let info = &r["info"];
                    vec![
                        time(&info["start_time"]),
                        text(&info["run_name"]),
                        text(&info["run_id"]),
                    ]
                })
                .collect();
            table(&mut out, &["Date", "Name", "ID"], rows)?;
        }
        RunsCommand::Describe { run_id } => {
            let run = remote.call(
                hyper::Method::GET,
                &format!("runs/get?{}", query(&[("run_id", &run_id)])),
                None,
            )?;
            writeln!(out, "{}", serde_json::to_string_pretty(&run["run"])?)?;
        }
        RunsCommand::Delete { run_id } => {
            set_stage(&remote, "runs/delete", "run_id", &run_id)?;
            writeln!(out, "Run with ID {run_id} has been deleted.")?;
        }
        RunsCommand::Restore { run_id } => {
            set_stage(&remote, "runs/restore", "run_id", &run_id)?;
            writeln!(out, "Run with id {run_id} has been restored.")?;
        }
    }
    Ok(())
}

/// Every item of a paged search: `body(token)` makes each page's request.
fn all_pages(
    remote: &Remote,
    endpoint: &str,
    key: &str,
    body: impl Fn(Option<&str>) -> Value,
) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = body(token.as_deref());
        if token.is_none()
            && let Some(fields) = request.as_object_mut()
        {
            fields.remove("page_token");
        }
        let page = remote.call(hyper::Method::POST, endpoint, Some(request))?;
        items.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(items),
        }
    }
}

/// The runs as the CSV `mlflow experiments csv` writes (pandas' `search_runs` frame): run
/// columns, then `metrics.*`, `params.*` and `tags.*` columns, each group sorted by key.
fn runs_csv(runs: &[Value]) -> String {
    use std::collections::BTreeSet;
    let keys = |group: &str| -> Vec<String> {
        runs.iter()
            .flat_map(|r| r["data"][group].as_array().cloned().unwrap_or_default())
            .filter_map(|kv| kv["key"].as_str().map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let (metrics, params, tags) = (keys("metrics"), keys("params"), keys("tags"));
    let mut header: Vec<String> = [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]
    .map(str::to_string)
    .to_vec();
    header.extend(metrics.iter().map(|k| format!("metrics.{k}")));
    header.extend(params.iter().map(|k| format!("params.{k}")));
    header.extend(tags.iter().map(|k| format!("tags.{k}")));
    let mut csv = csv_line(&header);
    for run in runs {
        let info = &run["info"];
        let value_of = |group: &str, key: &str| -> String {
            run["data"][group]
                .as_array()
                .and_then(|kvs| kvs.iter().find(|kv| kv["key"] == key))
                .map_or(String::new(), |kv| text(&kv["value"]))
        };
        let mut row = vec![
            text(&info["run_id"]),
            text(&info["experiment_id"]),
            text(&info["status"]),
            text(&info["artifact_uri"]),
            pandas_time(&info["start_time"]),
            pandas_time(&info["end_time"]),
        ];
        row.extend(metrics.iter().map(|k| value_of("metrics", k)));
        row.extend(params.iter().map(|k| value_of("params", k)));
        row.extend(tags.iter().map(|k| value_of("tags", k)));
        csv.push_str(&csv_line(&row));
    }
    csv
}

/// One CSV record, quoted where a field needs it (RFC 4180, as pandas writes).
fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// Deletes or restores one experiment or run (`endpoint`), named by its id in `field`.
fn set_stage(remote: &Remote, endpoint: &str, field: &str, id: &str) -> anyhow::Result<()> {
    remote.call(hyper::Method::POST, endpoint, Some(json!({ field: id })))?;
    Ok(())
}
