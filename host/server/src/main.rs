//! `wasmflow`: an MLflow-compatible MLOps server in one binary.

mod app;
mod artifacts;
mod auth;
mod cli;
mod connections;
mod error;
mod eval_datasets;
mod graphql;
mod guard;
#[cfg(test)]
mod http_tests;
mod logged_models;
mod mime;
mod plugins;
mod registry;
#[cfg(test)]
mod registry_http_tests;
mod request;
mod response;
mod scoring_server;
mod serving;
mod state;
mod traces;
mod tracking;
mod ui;
mod ui_api;
mod webhooks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmflow_artifacts::LocalArtifactRepository;
use wasmflow_store::StoreConfig;

#[derive(Parser)]
#[command(
    name = "wasmflow",
    version,
    about = "An MLflow-compatible MLOps server in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server, which the official `mlflow` client talks to unchanged
    /// (MLFLOW_TRACKING_URI=http://HOST:PORT).
    Server(Box<ServerArgs>),
    /// The model registry: `list`, `versions NAME`, `alias NAME ALIAS VERSION`. Talks to the
    /// server at MLFLOW_TRACKING_URI when it is an http:// URL, else to the local store.
    Models(cli::models::ModelsArgs),
    /// Flavor plugins: `install FILE.wasm`, `list`, `remove NAME[@VERSION]`. Talks to the server
    /// at MLFLOW_TRACKING_URI when it is an http:// URL, else to the plugin directory.
    Plugins(cli::plugins::PluginsArgs),
    /// Run an MLflow Project (a directory or git repository with an MLproject file) with an
    /// executor plugin, as `mlflow run` does.
    Run(Box<cli::run::RunArgs>),
    /// Permanently delete runs and experiments in the `deleted` lifecycle stage, with their
    /// artifacts, as `mlflow gc` does.
    Gc(cli::gc::GcArgs),
    /// Experiments, as `mlflow experiments`: `create`, `search`, `delete`, `restore`, `rename`,
    /// `csv`. Talks to the server at MLFLOW_TRACKING_URI when it is an http:// URL, else to the
    /// local store.
    Experiments(cli::tracking::ExperimentsArgs),
    /// Runs, as `mlflow runs`: `list`, `describe`, `delete`, `restore`.
    Runs(cli::tracking::RunsArgs),
    /// Copy another tracking store (MLflow's) into wasmflow's.
    Import(cli::import::ImportArgs),
    /// The backend store's schema, as `mlflow db`: `upgrade URI`.
    Db(cli::db::DbArgs),
}

/// Where plugins live and how they may run; shared by `server` and `plugins`.
#[derive(clap::Args, Clone)]
pub struct PluginArgs {
    /// The directory of installed plugins.
    #[arg(
        long,
        env = "WASMFLOW_PLUGINS_DIR",
        default_value = "./wasmflow-plugins"
    )]
    pub plugins_dir: PathBuf,
    /// Where compiled plugins are cached, shared by every wasmflow process of the user;
    /// `$XDG_CACHE_HOME/wasmflow/compiled` (else `~/.cache/wasmflow/compiled`) by default.
    #[arg(long, env = "WASMFLOW_PLUGIN_CACHE_DIR")]
    pub plugin_cache_dir: Option<PathBuf>,
    /// The most memory one plugin instance may use, in MiB.
    #[arg(long, env = "WASMFLOW_PLUGIN_MEMORY_MIB", default_value_t = 1024)]
    pub plugin_memory_mib: usize,
    /// How long one plugin call may run, in seconds.
    #[arg(long, env = "WASMFLOW_PLUGIN_TIMEOUT", default_value_t = 30.0)]
    pub plugin_timeout: f64,
}

impl PluginArgs {
    /// The runtime with these limits and compile cache.
    pub fn runtime(&self) -> anyhow::Result<Arc<wasmflow_runtime::Runtime>> {
        self.runtime_announcing(None)
    }

    /// `runtime`, calling `on_compile` before each compile that the cache cannot spare.
    fn runtime_announcing(
        &self,
        on_compile: Option<fn(&str, usize, Option<&Path>)>,
    ) -> anyhow::Result<Arc<wasmflow_runtime::Runtime>> {
        anyhow::ensure!(
            self.plugin_timeout > 0.0 && self.plugin_timeout.is_finite(),
            "invalid --plugin-timeout '{}'",
            self.plugin_timeout
        );
        wasmflow_runtime::Runtime::new(wasmflow_runtime::RuntimeConfig {
            cache_dir: self
                .plugin_cache_dir
                .clone()
                .or_else(wasmflow_runtime::default_compile_cache_dir),
            memory_limit: self.plugin_memory_mib << 20,
            call_timeout: std::time::Duration::from_secs_f64(self.plugin_timeout),
            on_compile,
        })
    }

    /// The runtime and the plugins installed in the directory (nothing compiled yet).
    pub fn open(&self) -> anyhow::Result<Arc<wasmflow_runtime::PluginManager>> {
        self.open_announcing(None)
    }

    /// The runtime and the plugins installed in a store shared by replicas; the directory
    /// caches their components.
    pub fn open_shared(
        &self,
        shared: Arc<dyn wasmflow_runtime::SharedPlugins>,
    ) -> anyhow::Result<Arc<wasmflow_runtime::PluginManager>> {
        Ok(Arc::new(wasmflow_runtime::PluginManager::open_shared(
            self.runtime()?,
            &self.plugins_dir,
            shared,
        )?))
    }

    /// `open`, calling `on_compile` before each compile that the cache cannot spare.
    pub fn open_announcing(
        &self,
        on_compile: Option<fn(&str, usize, Option<&Path>)>,
    ) -> anyhow::Result<Arc<wasmflow_runtime::PluginManager>> {
        Ok(Arc::new(wasmflow_runtime::PluginManager::open(
            self.runtime_announcing(on_compile)?,
            &self.plugins_dir,
        )?))
    }
}

#[derive(clap::Args)]
// `-h` is the host, as in `mlflow server`; help stays at `--help`.
#[command(disable_help_flag = true)]
struct ServerArgs {
    /// The address to listen on; 0.0.0.0 listens on every interface.
    #[arg(short = 'h', long, env = "MLFLOW_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Threads that answer requests (MLflow's gunicorn/uvicorn worker processes); one per core
    /// by default. One process serves every request here, so this only bounds its threads.
    #[arg(short = 'w', long, env = "MLFLOW_WORKERS")]
    workers: Option<usize>,
    /// MLflow's options for its Python web servers; refused, as there is no such server here.
    #[arg(long, hide = true, value_name = "OPTS", allow_hyphen_values = true)]
    gunicorn_opts: Option<String>,
    #[arg(long, hide = true, value_name = "OPTS", allow_hyphen_values = true)]
    uvicorn_opts: Option<String>,
    #[arg(long, hide = true, value_name = "OPTS", allow_hyphen_values = true)]
    waitress_opts: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The port to listen on.
    #[arg(short, long, env = "MLFLOW_PORT", default_value_t = 5000)]
    port: u16,
    /// Serve everything (the API, the artifact proxy, /health, the UI) under this path, e.g.
    /// `/mlflow`, behind a proxy that forwards the path unchanged. It must begin with '/' and
    /// not end with one.
    #[arg(long, env = "MLFLOW_STATIC_PREFIX", value_name = "PREFIX")]
    static_prefix: Option<String>,
    /// Where runs, metrics and experiments are stored: `sqlite:///relative/path.db`,
    /// `sqlite:////absolute/path.db`, or a plain file path.
    #[arg(
        long,
        env = "MLFLOW_BACKEND_STORE_URI",
        default_value = "sqlite:///mlflow.db"
    )]
    backend_store_uri: String,
    /// The artifact location of new experiments. Defaults to `mlflow-artifacts:/` (the proxy
    /// below) when artifacts are served, `./mlruns` otherwise.
    #[arg(long, env = "MLFLOW_DEFAULT_ARTIFACT_ROOT")]
    default_artifact_root: Option<String>,
    /// Where the artifact proxy stores uploaded artifacts: a directory (or `file://` URI),
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `azure://container/prefix`,
    /// `abfss://container@account.dfs.core.windows.net/prefix` or
    /// `wasbs://container@account.blob.core.windows.net/prefix`.
    #[arg(
        long,
        env = "MLFLOW_ARTIFACTS_DESTINATION",
        default_value = "./mlartifacts"
    )]
    artifacts_destination: String,
    /// Proxy artifact uploads and downloads through this server (the default), so clients need
    /// no access to the artifact storage. Without either flag, MLflow's MLFLOW_SERVE_ARTIFACTS
    /// (`true`/`false`) decides.
    #[arg(long, overrides_with = "no_serve_artifacts")]
    serve_artifacts: bool,
    /// Do not serve artifacts: clients read and write the artifact root themselves.
    #[arg(long)]
    no_serve_artifacts: bool,
    /// How much plugin memory the models served at /serving/models/... may hold together, in
    /// MiB; the versions used least recently are unloaded beyond it.
    #[arg(long, env = "WASMFLOW_SERVING_MEMORY_MIB", default_value_t = 4096)]
    serving_memory_mib: usize,
    /// Delete traces (with their spans and assessments) that started more than DAYS days ago,
    /// at start and then hourly, in the background. Off when absent.
    #[arg(long, env = "WASMFLOW_TRACE_RETENTION", value_name = "DAYS")]
    trace_retention: Option<f64>,
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    guard: guard::GuardArgs,
    #[command(flatten)]
    limits: connections::LimitArgs,
    #[command(flatten)]
    auth: auth::AuthArgs,
}

/// glibc's malloc, or mimalloc for `wasmflow server`; `wasmflow_runtime::Allocator` says why.
#[global_allocator]
static ALLOCATOR: wasmflow_runtime::Allocator = wasmflow_runtime::Allocator;

fn main() -> std::process::ExitCode {
    // Before any thread (tokio's, the compiler's) makes an arena of its own.
    wasmflow_runtime::limit_malloc_arenas();
    // One line per error, its causes joined by ': ', as ripgrep prints them; returning the
    // error from main would print a multi-line report, and a backtrace under RUST_BACKTRACE=1.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Server(_)) {
        // Before its threads start: the tracking server's OTLP ingest is allocation-bound,
        // while `models serve` and the CLI keep glibc (wasmflow_runtime::Allocator says why).
        wasmflow_runtime::use_mimalloc();
    }
    // The CLI's output is its tables; only the server logs every request by default.
    let default_level = match &cli.command {
        Command::Models(args) if args.serves() => "info",
        Command::Plugins(args) if args.checks() => "error",
        Command::Models(_) | Command::Plugins(_) | Command::Run(_) | Command::Gc(_) => "warn",
        Command::Experiments(_) | Command::Runs(_) => "warn",
        Command::Import(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_target(false)
        // stdout is the CLI's output (tables, predictions); the log never mixes into it.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Before any store opens: migration 0011 rewrites older spans' text with the write path's
    // function, which lives here with the OTLP decoding.
    wasmflow_store::traces::set_span_text(traces::wire::span_content);
    match cli.command {
        Command::Server(args) => {
            for (flag, given) in [
                ("--gunicorn-opts", &args.gunicorn_opts),
                ("--uvicorn-opts", &args.uvicorn_opts),
                ("--waitress-opts", &args.waitress_opts),
            ] {
                if given.is_some() {
                    anyhow::bail!(
                        "{flag} is not supported: wasmflow is one process with no Python web \
                         server; use --workers for its threads and --host/--port to bind"
                    );
                }
            }
            if let Some(prefix) = &args.static_prefix {
                app::check_static_prefix(prefix)?;
            }
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(workers) = args.workers {
                anyhow::ensure!(
                    workers > 0,
                    "invalid --workers '{workers}': it must be at least 1"
                );
                runtime.worker_threads(workers);
            }
            let runtime = runtime
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(*args))
        }
        Command::Models(args) => cli::models::run(args),
        Command::Plugins(args) => cli::plugins::run(args),
        Command::Run(args) => cli::run::run(*args),
        Command::Gc(args) => cli::gc::run(args),
        Command::Experiments(args) => cli::tracking::experiments(args),
        Command::Runs(args) => cli::tracking::runs(args),
        Command::Import(args) => cli::import::run(args),
        Command::Db(args) => cli::db::run(args),
    }
}

/// The artifact proxy's repository; a URI of a scheme no repository reads is refused (never taken
/// for a local directory named after it).
fn open_artifacts_destination(
    uri: &str,
) -> anyhow::Result<Arc<dyn wasmflow_artifacts::ArtifactRepository>> {
    let invalid = |e: String| anyhow::anyhow!("invalid --artifacts-destination: {e}");
    if let wasmflow_artifacts::Location::Local(dir) =
        wasmflow_artifacts::parse_location(uri).map_err(invalid)?
    {
        let repo = LocalArtifactRepository::new(&dir)
            .with_context(|| format!("cannot use the artifacts destination '{}'", dir.display()))?;
        // In the background: a large artifact tree takes a while to walk, and the server need
        // not wait for it.
        let (sweep, started_at) = (repo.clone(), std::time::SystemTime::now());
        tokio::task::spawn_blocking(move || match sweep.remove_stale_uploads(started_at) {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} unfinished uploads left by an earlier server"),
            Err(e) => tracing::warn!("cannot remove unfinished uploads: {e}"),
        });
        return Ok(Arc::new(repo));
    }
    wasmflow_artifacts::open_repository(uri).map_err(anyhow::Error::msg)
}

/// `--serve-artifacts` / `--no-serve-artifacts` (the last given wins), else MLflow's
/// `MLFLOW_SERVE_ARTIFACTS` read as click reads a boolean, else serve. Two flags and a variable
/// are three states, which one clap argument with `env` cannot tell apart.
fn serve_artifacts(args: &ServerArgs) -> anyhow::Result<bool> {
    if args.no_serve_artifacts || args.serve_artifacts {
        return Ok(!args.no_serve_artifacts);
    }
    let Ok(value) = std::env::var("MLFLOW_SERVE_ARTIFACTS") else {
        return Ok(true);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
        _ => anyhow::bail!("invalid MLFLOW_SERVE_ARTIFACTS '{value}': expected true or false"),
    }
}

/// New experiments' artifact root must be one the server and clients can read: the proxy
/// (`mlflow-artifacts:`, an http(s) URL) or a store of a supported scheme.
fn check_default_artifact_root(uri: &str) -> anyhow::Result<()> {
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with(wasmflow_artifacts::PROXY_SCHEME)
        || lower.starts_with("http://")
        || lower.starts_with("https://")
    {
        return Ok(());
    }
    wasmflow_artifacts::parse_location(uri)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("invalid --default-artifact-root: {e}"))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let limits = args.limits.limits()?;
    let guard = guard::Guard::new(&args.guard, &args.host)?;
    let serve_artifacts = serve_artifacts(&args)?;
    let default_artifact_root = args.default_artifact_root.unwrap_or_else(|| {
        if serve_artifacts {
            "mlflow-artifacts:/".into()
        } else {
            "./mlruns".into()
        }
    });
    // Artifact URIs are checked before anything is created.
    check_default_artifact_root(&default_artifact_root)?;
    let artifacts: Option<Arc<dyn wasmflow_artifacts::ArtifactRepository>> = if serve_artifacts {
        Some(open_artifacts_destination(&args.artifacts_destination)?)
    } else {
        None
    };
    // An MLflow store is refused in one line that points to `wasmflow import`.
    wasmflow_store::refuse_foreign_store(&args.backend_store_uri)
        .map_err(|e| anyhow::Error::msg(e.message))?;
    let store = wasmflow_store::open(
        &args.backend_store_uri,
        StoreConfig {
            default_artifact_root,
        },
    )
    .with_context(|| {
        format!(
            "cannot open the backend store '{}'",
            wasmflow_store::redact_password(&args.backend_store_uri)
        )
    })?;
    // Webhook secrets' key lives beside a SQLite file; a PostgreSQL store's replicas share one
    // from the environment.
    let webhook_key = if wasmflow_store::is_postgres(&args.backend_store_uri) {
        None
    } else {
        Some(wasmflow_store::store_path(&args.backend_store_uri)?.with_extension("webhook-key"))
    };
    let webhooks = webhooks::Webhooks::new(
        store.clone(),
        webhooks::Settings::from_env()?,
        webhooks::Fernet::from_env_or_file(webhook_key.as_deref())?,
    );
    let auth = if args.auth.enabled()? {
        Some(auth::Auth::start(&args.auth, store.clone())?)
    } else {
        None
    };
    // Compiles nothing: a plugin is compiled (or loaded from the cache) when a model first
    // needs it, so the server listens at once even on a machine that has compiled nothing.
    // Replicas on one PostgreSQL database share their installed plugins through it; a SQLite
    // store's one server keeps them in --plugins-dir.
    let plugins = match store.plugins() {
        Some(_) => args
            .plugins
            .open_shared(Arc::new(plugins::StorePlugins(store.clone()))),
        None => args.plugins.open(),
    }
    .context("cannot start the plugin runtime")?;
    tracing::info!(
        "{} plugins available; each is compiled when a model first needs it",
        plugins.list()?.len()
    );
    if let Some(days) = args.trace_retention {
        anyhow::ensure!(
            days.is_finite() && days > 0.0,
            "--trace-retention must be a positive number of days, not '{days}'"
        );
        // Where the files of traces under `mlflow-artifacts:` roots are (none: not proxied).
        let destination = serve_artifacts
            .then(|| wasmflow_artifacts::parse_location(&args.artifacts_destination).ok())
            .flatten();
        traces::retention::spawn(store.clone(), days, destination);
    }
    let authenticated = auth.is_some();
    let app = app::build_with_auth(
        state::AppState::new(
            store,
            webhooks,
            artifacts,
            Arc::new(wasmflow_serving::ServedModels::new(
                Some(plugins),
                args.serving_memory_mib << 20,
            )),
        ),
        auth,
    )
    .layer(axum::middleware::from_fn_with_state(guard, guard::check));
    let app = match &args.static_prefix {
        Some(prefix) => app::under_prefix(app, prefix),
        None => app,
    };
    let (listener, addr) = listen(&args.host, args.port).await?;
    tracing::info!(
        "listening on http://{addr}{} (ready in {} ms)",
        args.static_prefix.as_deref().unwrap_or_default(),
        started.elapsed().as_millis()
    );
    guard::warn_if_exposed(addr, authenticated);
    connections::serve(
        listener,
        app,
        limits,
        connections::Placement::Shared,
        shutdown_signal(),
    )
    .await
    .context("the server stopped with an error")
}

/// A listener on `host:port`, and the address it resolved to.
async fn listen(host: &str, port: u16) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve host '{host}'"))?
        .next()
        .with_context(|| format!("host '{host}' has no address"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on '{addr}'"))?;
    Ok((listener, addr))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
