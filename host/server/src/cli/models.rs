//! `wasmflow models`: the model registry from the command line. Against a running server when
//! `MLFLOW_TRACKING_URI` is an `http://` URL (over its REST API), else directly against the local
//! SQLite store (`--backend-store-uri`, default `sqlite:///mlflow.db`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::Digest as _;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::model_source::{self, Backend};
use super::output::{table, text, time};
use super::remote::{Remote, query};
use super::server_plugins;
use crate::scoring_server::ServeOptions;
use wasmflow_core::mlmodel::{CarriedPlugin, MlModel, attach_carried_plugin};
use wasmflow_core::search;
use wasmflow_serving::ModelLabels;
use wasmflow_store::registry::{RegistrySearch, parse_version};

#[derive(clap::Args)]
pub struct ModelsArgs {
    /// The local store to use when MLFLOW_TRACKING_URI is not an http:// URL (giving it always
    /// uses the local store).
    #[arg(long, global = true)]
    backend_store_uri: Option<String>,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(clap::Subcommand)]
enum ModelsCommand {
    /// List registered models.
    List {
        /// An MLflow filter, e.g. "name LIKE 'fraud%'".
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// List the versions of a registered model.
    Versions { name: String },
    /// Point an alias of a model at one of its versions.
    Alias {
        name: String,
        alias: String,
        version: String,
    },
    /// Predict with a model on a file of inputs, as `mlflow models predict`; prints
    /// `{"predictions": ...}`.
    Predict {
        #[command(flatten)]
        model: ModelArgs,
        /// The input: a JSON scoring request (dataframe_split, dataframe_records, instances or
        /// inputs) or a CSV file; stdin when absent or `-`.
        #[arg(short, long)]
        input_path: Option<PathBuf>,
        /// Where to write the predictions; stdout when absent.
        #[arg(short, long)]
        output_path: Option<PathBuf>,
        /// The input's format: json or csv (or their MIME types, application/json and text/csv).
        #[arg(short = 't', long, default_value = "json", value_parser = content_type)]
        content_type: String,
        /// MLflow's way to make the model's Python environment (local, virtualenv, conda, uv);
        /// accepted and ignored, as plugins need no environment.
        #[arg(long, hide = true)]
        env_manager: Option<String>,
    },
    /// Serve a model with MLflow's scoring protocol, as `mlflow models serve`: POST
    /// /invocations, GET /ping, /health, /version and /metrics.
    // `-h` is the host, as in `mlflow models serve`; help stays at `--help`.
    #[command(disable_help_flag = true)]
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        /// The address to listen on; 0.0.0.0 listens on every interface.
        #[arg(short = 'h', long, env = "MLFLOW_HOST", default_value = "127.0.0.1")]
        host: String,
        /// The port to listen on.
        #[arg(short, long, env = "MLFLOW_PORT", default_value_t = 5000)]
        port: u16,
        /// Requests answered at the same time (instances of the model); one per core by default.
        #[arg(short, long, env = "MLFLOW_MODELS_WORKERS")]
        workers: Option<usize>,
        /// How long one prediction may run, in seconds (replaces --plugin-timeout).
        #[arg(short = 't', long, env = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT")]
        timeout: Option<f64>,
        /// MLflow's way to make the model's Python environment; accepted and ignored, as plugins
        /// need no environment.
        #[arg(long, hide = true)]
        env_manager: Option<String>,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        limits: crate::connections::LimitArgs,
    },
    /// Make a model carry its plugin: copy the component into the model directory and name it,
    /// with its sha256, in the MLmodel's `wasmflow` flavor section. The plugin must load
    /// `--flavor`, one of the model's flavors, whose section its `load` then receives.
    AttachPlugin {
        /// A model directory (holding an MLmodel file).
        model_dir: PathBuf,
        /// The plugin's component (.wasm).
        file: PathBuf,
        /// The flavor the plugin loads the model as.
        #[arg(long)]
        flavor: String,
        #[command(flatten)]
        plugins: crate::PluginArgs,
    },
}

/// The model to load and the plugins that load it.
#[derive(clap::Args)]
struct ModelArgs {
    /// models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/latest,
    /// models:/MODEL_ID, runs:/RUN_ID/PATH, or a directory holding an MLmodel file.
    #[arg(short, long)]
    model_uri: String,
    /// Where `mlflow-artifacts:` URIs point when the store is local (the server's
    /// --artifacts-destination: a directory or an object store's URI).
    #[arg(long, default_value = "./mlartifacts")]
    artifacts_destination: String,
    #[command(flatten)]
    plugins: crate::PluginArgs,
}

/// `--content-type` of `models predict`: MLflow's short names, or the MIME types they stand for.
fn content_type(value: &str) -> Result<String, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "json" | "application/json" => Ok("json".into()),
        "csv" | "text/csv" => Ok("csv".into()),
        other => Err(format!(
            "unsupported content type '{other}': use json (application/json) or csv (text/csv)"
        )),
    }
}

impl ModelsArgs {
    /// Whether the command runs a server, whose log is its output.
    pub fn serves(&self) -> bool {
        matches!(self.command, ModelsCommand::Serve { .. })
    }
}

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let tracking_uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default();
    let open_backend = || Backend::open(args.backend_store_uri.as_deref(), &tracking_uri);
    // The server whose installed plugins are tried after the local ones.
    let server = (args.backend_store_uri.is_none() && tracking_uri.starts_with("http://"))
        .then_some(tracking_uri.as_str());
    let user = std::env::var("MLFLOW_TRACKING_USERNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    // Not locked for the whole command: a server's log is written to it from other threads.
    let mut out = std::io::stdout();
    match args.command {
        ModelsCommand::List { filter } => {
            let models = open_backend()?.models(&filter)?;
            let rows = models
                .iter()
                .map(|m| {
                    vec![
                        text(&m["name"]),
                        m["latest_versions"]
                            .as_array()
                            .and_then(|vs| vs.iter().map(|v| version_num(&v["version"])).max())
                            .map_or("-".into(), |v| v.to_string()),
                        m["aliases"].as_array().map_or(String::new(), |a| {
                            a.iter()
                                .map(|a| format!("{}={}", text(&a["alias"]), text(&a["version"])))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }),
                        time(&m["last_updated_timestamp"]),
                        text(&m["description"]),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["NAME", "LATEST", "ALIASES", "UPDATED (UTC)", "DESCRIPTION"],
                rows,
            )?;
        }
        ModelsCommand::Versions { name } => {
            let versions = open_backend()?.versions(&name)?;
            let rows = versions
                .iter()
                .map(|v| {
                    vec![
                        text(&v["version"]),
                        text(&v["current_stage"]),
                        v["aliases"].as_array().map_or(String::new(), |a| {
                            a.iter().map(text).collect::<Vec<_>>().join(", ")
                        }),
                        text(&v["status"]),
                        text(&v["run_id"]),
                        text(&v["source"]),
                        time(&v["creation_timestamp"]),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "VERSION",
                    "STAGE",
                    "ALIASES",
                    "STATUS",
                    "RUN ID",
                    "SOURCE",
                    "CREATED (UTC)",
                ],
                rows,
            )?;
        }
        ModelsCommand::Predict {
            model,
            input_path,
            output_path,
            content_type,
            env_manager: _,
        } => {
            // The user's own file: the servers' row limit guards memory from other people.
            wasmflow_serving::set_max_rows(usize::MAX);
            let input = match input_path.as_deref() {
                None => read_stdin()?,
                Some(p) if p.as_os_str() == "-" => read_stdin()?,
                Some(p) => std::fs::read(p)
                    .with_context(|| format!("cannot read the input '{}'", p.display()))?,
            };
            // The CLI's log is quiet; a compile of tens of seconds must not look like a hang.
            let plugins = model.plugins.open_announcing(Some(announce_compile))?;
            let local =
                model_source::fetch(&model.model_uri, open_backend, &model.artifacts_destination)?;
            let other = server_plugins::for_model(&plugins, &local.dir, server)?;
            // The bytes `mlflow models predict` writes (no newline after them), plus a newline
            // when a terminal shows them.
            let mut predictions = predict(&plugins, &local.dir, &other, &content_type, &input)?;
            match output_path {
                Some(path) => std::fs::write(&path, predictions)
                    .with_context(|| format!("cannot write '{}'", path.display()))?,
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        predictions.push(b'\n');
                    }
                    out.write_all(&predictions)?;
                }
            }
        }
        ModelsCommand::Serve {
            mut model,
            host,
            port,
            workers,
            timeout,
            env_manager: _,
            help: _,
            limits,
        } => {
            let started = Instant::now();
            let limits = limits.limits()?;
            if let Some(timeout) = timeout {
                model.plugins.plugin_timeout = timeout;
            }
            // `fetch` drops the REST client, whose runtime must not be dropped inside the
            // server's.
            let local =
                model_source::fetch(&model.model_uri, open_backend, &model.artifacts_destination)?;
            let plugins = model.plugins.open()?;
            // Before the server's runtime starts: the REST client has a runtime of its own.
            let other_plugins = server_plugins::for_model(&plugins, &local.dir, server)?;
            let labels = ModelLabels {
                model: local
                    .name
                    .clone()
                    .unwrap_or_else(|| model.model_uri.clone()),
                version: local.version.clone().unwrap_or_default(),
            };
            let options = ServeOptions {
                model_dir: local.dir.clone(),
                labels,
                host,
                port,
                workers: workers
                    .unwrap_or_else(wasmflow_serving::default_instances)
                    .max(1),
                other_plugins,
                limits,
            };
            // One runtime a core, each connection kept on one of them (`ConnectionRuntimes`).
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let runtimes = crate::connections::ConnectionRuntimes::new(cores)
                .context("cannot start the async runtime")?;
            runtimes.first().block_on(crate::scoring_server::run(
                options, plugins, started, &runtimes,
            ))?;
            drop(local);
        }
        ModelsCommand::AttachPlugin {
            model_dir,
            file,
            flavor,
            plugins,
        } => {
            let attached = attach_plugin(&model_dir, &file, &flavor, &plugins)?;
            writeln!(out, "{attached}")?;
        }
        ModelsCommand::Alias {
            name,
            alias,
            version,
        } => {
            let number = parse_version(&version)?;
            open_backend()?.set_alias(&user, &name, &alias, number)?;
            writeln!(
                out,
                "alias '{alias}' of model '{name}' now points to version {number}"
            )?;
        }
    }
    Ok(())
}

impl Backend {
    fn models(&self, filter: &str) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::Remote(r) => r.all_pages("registered-models/search", filter, "registered_models"),
            Self::Local(store) => {
                let mut all = Vec::new();
                let mut token = None;
                loop {
                    let page = store.search_registered_models(&RegistrySearch {
                        filter: search::parse_registered_model_filter(filter)?,
                        order_by: vec![],
                        max_results: 1000,
                        page_token: token,
                    })?;
                    all.extend(
                        page.items
                            .iter()
                            .map(serde_json::to_value)
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                    token = page.next_page_token;
                    if token.is_none() {
                        return Ok(all);
                    }
                }
            }
        }
    }

    fn versions(&self, name: &str) -> anyhow::Result<Vec<Value>> {
        let filter = format!("name = '{}'", name.replace('\'', "''"));
        let mut versions = match self {
            Self::Remote(r) => {
                // The model must exist: an empty list would hide a typo.
                r.call(
                    hyper::Method::GET,
                    &format!("registered-models/get?{}", query(&[("name", name)])),
                    None,
                )?;
                r.all_pages("model-versions/search", &filter, "model_versions")?
            }
            Self::Local(store) => {
                store.get_registered_model(name)?;
                let page = store.search_model_versions(&RegistrySearch {
                    filter: search::parse_model_version_filter(&filter)?,
                    order_by: vec![],
                    max_results: 200_000,
                    page_token: None,
                })?;
                page.items
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
        };
        versions.sort_by_key(|v| std::cmp::Reverse(version_num(&v["version"])));
        Ok(versions)
    }

    fn set_alias(&self, user: &str, name: &str, alias: &str, version: i64) -> anyhow::Result<()> {
        match self {
            Self::Remote(r) => {
                r.call(
                    hyper::Method::POST,
                    "registered-models/alias",
                    Some(json!({"name": name, "alias": alias, "version": version.to_string()})),
                )?;
            }
            Self::Local(store) => store.set_registered_model_alias(user, name, alias, version)?,
        }
        Ok(())
    }
}

/// Paged registry searches over the REST API.
trait AllPages {
    fn all_pages(&self, endpoint: &str, filter: &str, key: &str) -> anyhow::Result<Vec<Value>>;
}

impl AllPages for Remote {
    fn all_pages(&self, endpoint: &str, filter: &str, key: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let mut params = vec![("filter", filter), ("max_results", "1000")];
            if !token.is_empty() {
                params.push(("page_token", &token));
            }
            let page = self.call(
                hyper::Method::GET,
                &format!("{endpoint}?{}", query(&params)),
                None,
            )?;
            if let Some(items) = page[key].as_array() {
                all.extend(items.iter().cloned());
            }
            match page["next_page_token"].as_str() {
                Some(next) if !next.is_empty() => token = next.to_string(),
                _ => return Ok(all),
            }
        }
    }
}

fn version_num(v: &Value) -> i64 {
    text(v).parse().unwrap_or(0)
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("cannot read the input from stdin")?;
    Ok(input)
}

/// The one line `models predict` prints when the plugin it needs is not in the compile cache.
fn announce_compile(name: &str, bytes: usize, cache: Option<&Path>) {
    let cached = cache.map_or("not cached".to_string(), |dir| {
        format!("once; cached in {}", dir.display())
    });
    eprintln!(
        "compiling plugin '{name}' ({:.1} MB) for this machine ({cached})…",
        bytes as f64 / 1e6
    );
}

/// Copies the component `file` into `model_dir` and names it in the MLmodel's `wasmflow`
/// section; the line to print.
fn attach_plugin(
    model_dir: &Path,
    file: &Path,
    flavor: &str,
    plugins: &crate::PluginArgs,
) -> anyhow::Result<String> {
    let mlmodel_path = model_dir.join("MLmodel");
    let text = std::fs::read_to_string(&mlmodel_path)
        .with_context(|| format!("cannot read '{}'", mlmodel_path.display()))?;
    let wasm = std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
    let previous = MlModel::parse(&text)
        .ok()
        .and_then(|m| m.carried_plugin().ok().flatten());
    let sha256: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The component's name is its plugin's, known once it is compiled; the MLmodel is checked
    // (the flavor is one of the model's) before that and before anything is written.
    let carried = |component: String| CarriedPlugin {
        component,
        sha256: sha256.clone(),
        flavor: Some(flavor.to_string()),
    };
    attach_carried_plugin(&text, &carried(String::new()))
        .map_err(|e| anyhow::anyhow!("{}: {}", mlmodel_path.display(), e.message))?;
    let runtime = plugins.runtime()?;
    let compiled = runtime
        .compile(&wasm)
        .with_context(|| format!("'{}' is not a plugin wasmflow can run", file.display()))?;
    let info = runtime
        .info(&compiled)
        .with_context(|| format!("cannot read the info of '{}'", file.display()))?;
    if !info.loads.iter().any(|l| l == flavor) {
        anyhow::bail!(
            "plugin '{}@{}' does not load flavor '{flavor}' (it loads {:?})",
            info.name,
            info.version,
            info.loads
        );
    }
    let component = format!("wasmflow/{}.wasm", info.name);
    let text = attach_carried_plugin(&text, &carried(component.clone()))
        .map_err(|e| anyhow::anyhow!("{}: {}", mlmodel_path.display(), e.message))?;
    let target = model_dir.join(&component);
    std::fs::create_dir_all(model_dir.join("wasmflow"))
        .and_then(|()| std::fs::write(&target, &wasm))
        .with_context(|| format!("cannot write '{}'", target.display()))?;
    let tmp = model_dir.join(format!(".MLmodel.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &mlmodel_path))
        .with_context(|| format!("cannot write '{}'", mlmodel_path.display()))?;
    // A component attached before under another name is no longer used.
    if let Some(previous) = previous
        && previous.component != component
        && previous.component.starts_with("wasmflow/")
        && !previous.component.contains("..")
    {
        let _ = std::fs::remove_file(model_dir.join(&previous.component));
    }
    Ok(format!(
        "attached plugin '{}@{}' (sha256 {}) to '{}' as {component}, loading flavor '{flavor}'",
        info.name,
        info.version,
        &sha256[..12],
        model_dir.display()
    ))
}

/// One prediction with the scoring server's parsing and answer shapes.
fn predict(
    plugins: &wasmflow_runtime::PluginManager,
    dir: &Path,
    other: &wasmflow_serving::OtherPlugins,
    content_type: &str,
    input: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let model = wasmflow_serving::load_with(plugins, dir, 1, other).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the model in '{}': {}",
            dir.display(),
            e.message
        )
    })?;
    let mime = if content_type == "csv" {
        "text/csv"
    } else {
        "application/json"
    };
    model
        .score(Some(mime), input)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(&json!(0)), "1970-01-01 00:00:00");
        assert_eq!(time(&json!(1_700_000_000_123_i64)), "2023-11-14 22:13:20");
        assert_eq!(time(&json!(951_782_400_000_i64)), "2000-02-29 00:00:00");
        assert_eq!(time(&Value::Null), "");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "BB"],
            vec![vec!["long".into(), "x".into()], vec!["s".into(), "".into()]],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A     BB\nlong  x\ns\n");
    }
}
