//! `wasmflow run`: runs an MLflow Project, as `mlflow run` does. It reads the project's MLproject
//! file, checks and converts the parameters before anything is created, creates the run with
//! MLflow's project tags, hands the entry point to an executor plugin (plugins/sdk/wit/executor.wit) and
//! sets the run's final status: FINISHED, FAILED (non-zero exit), or KILLED (Ctrl-C).
//!
//! Everything goes through MLflow's REST API: to the server at `MLFLOW_TRACKING_URI` when it is
//! an `http://` URL, otherwise to a server this command starts on a loopback port over the local
//! store for the length of the run, so that a project's own `mlflow` client can log into the
//! same run either way.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use wasmflow_core::mlproject::{Project, ProjectEnv};
use wasmflow_runtime::{Cancel, CompiledExecutor, ExecutorHost, Grants, Job, JobSetup, Tracking};

use super::remote::Remote;
use crate::PluginArgs;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The project: a local directory or a git repository (`https://host/repo.git`), with an
    /// optional `#sub/directory`.
    uri: String,
    /// The entry point: one of the MLproject's, or a `.py`, `.sh` or `.wasm` file of the project.
    #[arg(short = 'e', long, default_value = "main")]
    entry_point: String,
    /// A parameter, `-P alpha=0.5`; repeat for more.
    #[arg(short = 'P', long = "param-list", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The experiment to run in, by name (created when missing); MLFLOW_EXPERIMENT_NAME when
    /// neither this nor --experiment-id is given.
    #[arg(long, conflicts_with = "experiment_id")]
    experiment_name: Option<String>,
    /// The experiment to run in, by ID; MLFLOW_EXPERIMENT_ID when neither this nor
    /// --experiment-name is given.
    #[arg(long)]
    experiment_id: Option<String>,
    /// The run's name.
    #[arg(long)]
    run_name: Option<String>,
    /// `local` runs the command where `wasmflow run` runs; `virtualenv` (the default for
    /// projects with a python_env) in a virtual environment made from python_env.yaml.
    #[arg(long, value_parser = ["local", "virtualenv"])]
    env_manager: Option<String>,
    /// The executor: `local` (default; picks `virtualenv` or `wasi` as the project needs), a
    /// built-in executor's name, or an executor component file (`.wasm`).
    #[arg(short = 'b', long)]
    backend: Option<String>,
    /// A JSON object handed to the executor, or the path of a `.json` file holding one.
    #[arg(short = 'c', long)]
    backend_config: Option<String>,
    /// Run in this existing run instead of creating one (as `mlflow run --run-id`): its
    /// experiment is used, and it gets the entry point's parameters and final status.
    #[arg(long, conflicts_with_all = ["experiment_name", "experiment_id", "run_name"])]
    run_id: Option<String>,
    /// The git commit, branch or tag to check out of a git repository.
    #[arg(long = "version")]
    git_version: Option<String>,
    /// Grant the `process` capability to an executor loaded from a file (the built-in `local`
    /// and `virtualenv` executors have it; no other executor does unless granted).
    #[arg(long)]
    grant_process: bool,
    /// The local store when MLFLOW_TRACKING_URI is not an http:// URL.
    #[arg(long)]
    backend_store_uri: Option<String>,
    /// Where the local store's artifacts go when MLFLOW_TRACKING_URI is not an http:// URL (as
    /// `wasmflow server --artifacts-destination`: a directory or an object store's URI).
    #[arg(long, default_value = "./mlartifacts")]
    artifacts_destination: String,
    /// Where `path` parameters given as URIs (`https://...`, `runs:/...`, `mlflow-artifacts:/...`)
    /// are downloaded before the run, into `param_<N>` of a fresh directory made inside it (as
    /// `mlflow run --storage-dir`); kept after the run. By default a temporary directory,
    /// removed when the run ends.
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Where executors keep environments between runs; `~/.cache/wasmflow` by default.
    #[arg(long, env = "WASMFLOW_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    plugins: PluginArgs,
}

/// `--backend-config` as MLflow reads it: a path ending in `.json` names a file holding the
/// object, anything else is the object itself. Returns the object's JSON text.
fn backend_config(value: &str) -> anyhow::Result<String> {
    let text = if value.trim_end().ends_with(".json") {
        std::fs::read_to_string(value)
            .with_context(|| format!("cannot read the --backend-config file '{value}'"))?
    } else {
        value.to_string()
    };
    serde_json::from_str::<serde_json::Map<String, Value>>(&text)
        .with_context(|| format!("--backend-config is not a JSON object: '{value}'"))?;
    Ok(text)
}

pub fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let given = parse_params(&args.params)?;
    if let Some(config) = &args.backend_config {
        let config = backend_config(config)?;
        args.backend_config = Some(config);
    }
    // Everything that can be checked is checked before the run exists.
    let source = fetch(&args.uri, args.git_version.as_deref())?;
    let project = Project::load(&source.dir)?;
    let entry = project.entry_point(&args.entry_point)?;
    let cwd = std::env::current_dir()?;

    // The tracking server: the one named, or one of our own over the local store. Connected when
    // a `path` parameter's download needs it, else once all that can be checked without it has
    // been, so that a refused parameter or executor leaves no store behind.
    let tracking_uri = std::env::var("MLFLOW_TRACKING_URI").unwrap_or_default();
    // Here a server named by MLFLOW_TRACKING_URI wins over --backend-store-uri.
    let store = args
        .backend_store_uri
        .as_deref()
        .filter(|_| !tracking_uri.starts_with("http://"));
    let connect = || super::remote::connect(store, &args.artifacts_destination);
    let mut connection = None;
    // Lives until the run ends: the command reads the files downloaded into it.
    let mut storage = super::storage::Storage::new(args.storage_dir.clone());
    let resolved = entry.resolve(&given, &cwd, &source.dir, &mut |param| {
        let downloaded = (|| {
            let (_, server) = match &mut connection {
                Some(connected) => connected,
                none => none.insert(connect()?),
            };
            let url = server.as_ref().map_or(tracking_uri.as_str(), |s| &s.url);
            storage.download(url, param)
        })();
        downloaded.map_err(|e| {
            wasmflow_core::Error::invalid(format!(
                "cannot download '{}' for the parameter '{}': {e:#}",
                param.uri, param.key
            ))
        })
    })?;
    let wasm_entry = shlex::split(&resolved.command)
        .and_then(|words| words.into_iter().next())
        .is_some_and(|program| program.ends_with(".wasm"));
    // MLflow's default environment manager follows the project: virtualenv for a python_env,
    // conda or docker for theirs (which no executor here provides), none otherwise.
    let env_manager = match (&args.env_manager, &project.env) {
        (Some(manager), _) => manager.clone(),
        (None, ProjectEnv::Python(_)) => "virtualenv".into(),
        (None, ProjectEnv::Local) => "local".into(),
        (None, other) => other.kind().into(),
    };
    let (environment, environment_spec) = if wasm_entry {
        ("wasi", None)
    } else {
        match (env_manager.as_str(), &project.env) {
            ("local", _) => ("local", None),
            ("virtualenv", ProjectEnv::Python(file)) => {
                ("python", Some(python_env_json(&source.dir, file)?))
            }
            ("virtualenv", ProjectEnv::Local) => ("python", Some("{}".to_string())),
            (_, other) => ("other", Some(other.kind().to_string())),
        }
    };

    let host = ExecutorHost::new(args.plugins.runtime()?)?;
    let builtin = host.builtin()?;
    let executor = choose_executor(
        &host,
        &builtin,
        args.backend.as_deref(),
        environment,
        &project.env,
    )?;
    let grants = if executor.builtin {
        Grants::policy(&executor.info.name, true)
    } else {
        Grants {
            process: args.grant_process,
        }
    };

    let (remote, server) = match connection {
        Some(connected) => connected,
        None => connect()?,
    };
    let tracking_uri = server.as_ref().map_or(tracking_uri, |s| s.url.clone());
    let remote = Arc::new(remote);

    // `--run-id` names a run made elsewhere (MLflow's project APIs make it first); it must exist.
    let existing = match &args.run_id {
        Some(id) => Some(
            remote
                .call(
                    hyper::Method::GET,
                    &format!("runs/get?{}", super::remote::query(&[("run_id", id)])),
                    None,
                )
                .with_context(|| format!("cannot use the run '{id}'"))?,
        ),
        None => None,
    };
    let experiment_id = match &existing {
        Some(run) => run["run"]["info"]["experiment_id"]
            .as_str()
            .context("runs/get gave no experiment_id")?
            .to_string(),
        None => experiment(&remote, &args)?,
    };
    let user = user_name();
    let mut tags = vec![
        ("mlflow.source.type", "PROJECT".to_string()),
        ("mlflow.source.name", source.name.clone()),
        ("mlflow.project.entryPoint", entry.name.clone()),
        (
            "mlflow.project.env",
            env_manager_tag(environment, &env_manager),
        ),
        ("mlflow.project.backend", executor.info.name.clone()),
        ("mlflow.user", user.clone()),
    ];
    if let Some(commit) = &source.commit {
        tags.push(("mlflow.source.git.commit", commit.clone()));
    }
    if let Some(repo) = &source.repo_url {
        tags.push(("mlflow.source.git.repoURL", repo.clone()));
        tags.push(("mlflow.gitRepoURL", repo.clone()));
    }
    let tags: Vec<Value> = tags
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let mut create = json!({
        "experiment_id": experiment_id,
        "start_time": now_ms(),
        "user_id": user,
        "tags": tags,
    });
    if let Some(name) = &args.run_name {
        create["run_name"] = json!(name);
    }
    // What can fail without the run is done before it exists, so that no run is left RUNNING.
    let cache_dir = args
        .cache_dir
        .clone()
        .or_else(wasmflow_runtime::user_cache_dir)
        .context("no cache directory for the executor's environments: set --cache-dir")?;
    std::fs::create_dir_all(&cache_dir).with_context(|| {
        format!(
            "cannot create the cache directory '{}'",
            cache_dir.display()
        )
    })?;
    let cache_dir = cache_dir.canonicalize()?;
    let output = tempfile::tempdir().context("cannot create an output directory")?;
    let cancel = Cancel::default();
    watch_ctrl_c(cancel.clone());
    let created = match existing {
        Some(run) => run,
        None => remote.call(hyper::Method::POST, "runs/create", Some(create))?,
    };
    let info = &created["run"]["info"];
    let run_id = info["run_id"]
        .as_str()
        .context("runs/create gave no run_id")?
        .to_string();
    let tracking = Arc::new(RunTracking {
        remote: remote.clone(),
        run_id: run_id.clone(),
        artifact_uri: info["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    });
    let finish = |status: &str| {
        remote.call(
            hyper::Method::POST,
            "runs/update",
            Some(json!({"run_id": run_id, "status": status, "end_time": now_ms()})),
        )
    };
    let setup = (|| {
        let params: Vec<Value> = resolved
            .parameters
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        remote.call(
            hyper::Method::POST,
            "runs/log-batch",
            Some(json!({"run_id": run_id, "params": params})),
        )?;
        anyhow::Ok(())
    })();
    if let Err(e) = setup {
        let _ = finish("FAILED");
        return Err(e);
    }
    eprintln!(
        "=== Running entry point '{}' of '{}' with the '{}' executor (run '{run_id}'): {} ===",
        entry.name, source.name, executor.info.name, resolved.command
    );

    let job = Job {
        run_id: run_id.clone(),
        experiment_id: experiment_id.clone(),
        tracking_uri,
        project_dir: source.dir.display().to_string(),
        entry_point: entry.name.clone(),
        command: resolved.command.clone(),
        parameters: resolved.parameters.clone(),
        environment: environment.to_string(),
        environment_spec,
        cache_dir: cache_dir.display().to_string(),
        config: args.backend_config.clone(),
    };
    let result = host.run(
        &executor,
        &job,
        JobSetup {
            tracking,
            grants,
            output_dir: output.path().join("output"),
            cancel: cancel.clone(),
        },
    );
    let (status, problem) = match &result {
        _ if cancel.is_cancelled() => ("KILLED", Some("stopped by the user".to_string())),
        Ok(outcome) if outcome.exit_code == Some(0) => ("FINISHED", None),
        Ok(outcome) => (
            "FAILED",
            Some(
                outcome
                    .message
                    .clone()
                    .unwrap_or_else(|| "the entry point failed".into()),
            ),
        ),
        Err(e) => ("FAILED", Some(format!("{e:#}"))),
    };
    finish(status)?;
    std::io::stdout().flush()?;
    match problem {
        None => {
            eprintln!("=== Run (ID '{run_id}') succeeded ===");
            Ok(())
        }
        Some(problem) => bail!("run '{run_id}' {}: {problem}", status.to_lowercase()),
    }
}

fn parse_params(params: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid parameter '{p}': expected -P KEY=VALUE"),
        })
        .collect()
}

/// MLflow's `mlflow.project.env`: the environment manager.
fn env_manager_tag(environment: &str, env_manager: &str) -> String {
    match environment {
        "wasi" => "wasi".into(),
        "python" => "virtualenv".into(),
        _ => env_manager.into(),
    }
}

/// The executor for the project: the one named, else the built-in one for its environment.
fn choose_executor(
    host: &ExecutorHost,
    builtin: &[CompiledExecutor],
    backend: Option<&str>,
    environment: &str,
    project_env: &ProjectEnv,
) -> anyhow::Result<CompiledExecutor> {
    let available = || {
        builtin
            .iter()
            .map(|e| format!("{} ({})", e.info.name, e.info.environments.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if environment == "other" {
        bail!(
            "the project needs a {} environment, which no executor supports (executors: {}); \
             run it with --env-manager local to use the current environment",
            project_env.kind(),
            available()
        );
    }
    let executor = match backend {
        Some(file) if file.ends_with(".wasm") => {
            let wasm = std::fs::read(file).with_context(|| format!("cannot read '{file}'"))?;
            host.compile(&wasm, false)
                .with_context(|| format!("'{file}' is not an executor"))?
        }
        Some(name) if name != "local" => builtin
            .iter()
            .find(|e| e.info.name == name)
            .cloned()
            .with_context(|| format!("no executor '{name}' (executors: {})", available()))?,
        _ => builtin
            .iter()
            .find(|e| e.info.environments.iter().any(|env| env == environment))
            .cloned()
            .with_context(|| {
                format!(
                    "no executor runs '{environment}' environments (executors: {})",
                    available()
                )
            })?,
    };
    if !executor.info.environments.iter().any(|e| e == environment) {
        bail!(
            "the executor '{}' runs {} environments, and this entry point needs '{environment}' \
             (executors: {})",
            executor.info.name,
            executor.info.environments.join(", "),
            available()
        );
    }
    Ok(executor)
}

/// python_env.yaml as JSON, for the executor.
fn python_env_json(dir: &Path, file: &Path) -> anyhow::Result<String> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the project's '{}'", file.display()))?;
    let value: Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("bad '{}'", file.display()))?;
    Ok(value.to_string())
}

/// A project on disk, wherever it came from.
struct Source {
    dir: PathBuf,
    /// `mlflow.source.name`.
    name: String,
    commit: Option<String>,
    repo_url: Option<String>,
    /// Holds a cloned repository until the run ends.
    _clone: Option<tempfile::TempDir>,
}

fn fetch(uri: &str, version: Option<&str>) -> anyhow::Result<Source> {
    let (base, subdir) = match uri.split_once('#') {
        Some((base, sub)) => (base, Some(sub)),
        None => (uri, None),
    };
    let local = Path::new(base);
    let is_git = base.contains("://") || base.starts_with("git@") || base.ends_with(".git");
    let local_dir = local.is_dir() && !base.contains("://");
    if local_dir && version.is_some() && !local.join(".git").exists() {
        bail!("--version needs a git repository, and '{base}' is a plain directory");
    }
    // A version of a local repository is checked out in a clone, never in the user's own tree.
    let (root, clone, repo_url) = if local_dir && version.is_none() {
        (local.canonicalize()?, None, None)
    } else if is_git || local_dir {
        let tmp = tempfile::tempdir().context("cannot create a directory to clone into")?;
        let status = Process::new("git")
            .args(["clone", "--quiet", base])
            .arg(tmp.path())
            .status()
            .context("cannot run git")?;
        if !status.success() {
            bail!("git clone of '{base}' failed");
        }
        if let Some(version) = version {
            let status = Process::new("git")
                .args(["-C"])
                .arg(tmp.path())
                .args(["checkout", "--quiet", version])
                .status()?;
            if !status.success() {
                bail!("cannot check out version '{version}' of '{base}'");
            }
        }
        (
            tmp.path().canonicalize()?,
            Some(tmp),
            Some(base.to_string()),
        )
    } else {
        bail!("no project at '{uri}': not a directory nor a git repository URL");
    };
    let dir = match subdir {
        Some(sub) => {
            let dir = root
                .join(sub)
                .canonicalize()
                .with_context(|| format!("no subdirectory '{sub}' in '{base}'"))?;
            if !dir.starts_with(&root) {
                bail!("the subdirectory '{sub}' is outside '{base}'");
            }
            dir
        }
        None => root.clone(),
    };
    let commit = Process::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let name = match (&repo_url, subdir) {
        (Some(url), Some(sub)) => format!("{url}#{sub}"),
        (Some(url), None) => url.clone(),
        (None, _) => dir.display().to_string(),
    };
    Ok(Source {
        dir,
        name,
        commit,
        repo_url,
        _clone: clone,
    })
}

fn experiment(remote: &Remote, args: &RunArgs) -> anyhow::Result<String> {
    // A flag wins over the environment (clap's `env` would make an exported ID conflict with
    // an explicit --experiment-name).
    let from_env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let (id, name) = match (&args.experiment_id, &args.experiment_name) {
        (None, None) => (
            from_env("MLFLOW_EXPERIMENT_ID"),
            from_env("MLFLOW_EXPERIMENT_NAME"),
        ),
        (id, name) => (id.clone(), name.clone()),
    };
    if let Some(id) = &id {
        remote
            .call(
                hyper::Method::GET,
                &format!(
                    "experiments/get?{}",
                    super::remote::query(&[("experiment_id", id)])
                ),
                None,
            )
            .with_context(|| format!("no experiment with ID '{id}'"))?;
        return Ok(id.clone());
    }
    let Some(name) = &name else {
        return Ok("0".into());
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("experiment_name", name)
        .finish();
    match remote.call(
        hyper::Method::GET,
        &format!("experiments/get-by-name?{query}"),
        None,
    ) {
        Ok(found) => Ok(found["experiment"]["experiment_id"]
            .as_str()
            .context("experiments/get-by-name gave no experiment_id")?
            .to_string()),
        Err(e) if format!("{e}").contains("RESOURCE_DOES_NOT_EXIST") => {
            let created = remote.call(
                hyper::Method::POST,
                "experiments/create",
                Some(json!({"name": name})),
            )?;
            Ok(created["experiment_id"]
                .as_str()
                .context("experiments/create gave no experiment_id")?
                .to_string())
        }
        Err(e) => Err(e),
    }
}

/// `mlflow.user` as Python's `getpass.getuser()` finds it: the environment, else the account.
fn user_name() -> String {
    for var in ["LOGNAME", "USER", "LNAME", "USERNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return name;
        }
    }
    Process::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Ctrl-C (or SIGTERM) stops the job; the run then ends KILLED.
fn watch_ctrl_c(cancel: Cancel) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(term) => term.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term => {},
            }
        });
        eprintln!("=== stopping the run ===");
        cancel.cancel();
    });
}

/// The executor's `tracking` interface, over REST on the job's run.
struct RunTracking {
    remote: Arc<Remote>,
    run_id: String,
    artifact_uri: String,
}

impl Tracking for RunTracking {
    fn log_param(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.remote.call(
            hyper::Method::POST,
            "runs/log-parameter",
            Some(json!({"run_id": self.run_id, "key": key, "value": value})),
        )?;
        Ok(())
    }

    fn log_metric(&self, key: &str, value: f64, step: i64) -> anyhow::Result<()> {
        // JSON has no NaN or infinity; MLflow's client sends them as these strings.
        let value = if value.is_finite() {
            json!(value)
        } else if value.is_nan() {
            json!("NaN")
        } else if value > 0.0 {
            json!("Infinity")
        } else {
            json!("-Infinity")
        };
        self.remote.call(
            hyper::Method::POST,
            "runs/log-metric",
            Some(json!({
                "run_id": self.run_id, "key": key, "value": value,
                "timestamp": now_ms(), "step": step,
            })),
        )?;
        Ok(())
    }

    fn set_tag(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.remote.call(
            hyper::Method::POST,
            "runs/set-tag",
            Some(json!({"run_id": self.run_id, "key": key, "value": value})),
        )?;
        Ok(())
    }

    fn log_artifact_file(&self, file: &Path, artifact_path: &str) -> anyhow::Result<()> {
        // The path comes from a plugin: it may name a place inside the run's artifacts only.
        wasmflow_artifacts::sanitize_relative_path(artifact_path)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        if let Some(base) = wasmflow_artifacts::proxied_path_of(&self.artifact_uri) {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read '{}'", file.display()))?;
            let path: Vec<String> = base
                .split('/')
                .chain(artifact_path.split('/'))
                .filter(|s| !s.is_empty())
                .map(|s| {
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                })
                .collect();
            self.remote.request(
                hyper::Method::PUT,
                &format!("/api/2.0/mlflow-artifacts/artifacts/{}", path.join("/")),
                "application/octet-stream",
                Bytes::from(bytes),
            )?;
            return Ok(());
        }
        // The run's own artifact root (a server without the proxy, or an experiment created with
        // its own location): a directory or an object store, written as the server reads it.
        let repo = wasmflow_artifacts::open_repository(&self.artifact_uri)
            .map_err(|e| anyhow::anyhow!("cannot upload to the run's artifact location: {e}"))?;
        let upload = async {
            let opened = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("cannot read '{}'", file.display()))?;
            let body: wasmflow_artifacts::ByteStream =
                Box::pin(tokio_util::io::ReaderStream::new(opened));
            repo.put(artifact_path, body).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot upload '{}' to '{}': {}",
                    file.display(),
                    self.artifact_uri,
                    e.message
                )
            })
        };
        super::block_on(upload)??;
        Ok(())
    }
}
