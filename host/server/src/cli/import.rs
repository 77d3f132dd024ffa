//! `wasmflow import mlflow`: copies an MLflow tracking store (its SQL schema in SQLite or
//! PostgreSQL, or an `mlruns` file store) into a wasmflow store (SQLite or PostgreSQL), keeping
//! every id, name, timestamp, lifecycle stage and artifact URI, so that `runs:/` and `models:/`
//! URIs keep working.
//!
//! The source is only read. The target is written one transaction per entity (and per batch of
//! metric points), each row with `ON CONFLICT DO NOTHING` on its key: a second import adds
//! nothing and an import killed halfway continues where it stopped when started again.

mod mlflow_files;
mod mlflow_sql;

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use wasmflow_artifacts::{ArtifactRepository, Location};
use wasmflow_store::{
    ImportExperiment, ImportLoggedModel, ImportMetric, ImportRegisteredModel, ImportRun,
    ImportTallies, Tally,
};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: ImportSource,
}

#[derive(clap::Subcommand)]
enum ImportSource {
    /// Copy an MLflow tracking store (SQLite database or mlruns directory) into wasmflow's store.
    Mlflow(MlflowArgs),
}

#[derive(clap::Args)]
struct MlflowArgs {
    /// The MLflow store: `sqlite:///path/mlflow.db`, `postgresql://user:pass@host/db` (also
    /// `postgresql+psycopg2://`), `file:///path/mlruns` or a path to a file or mlruns directory.
    #[arg(long)]
    from: String,
    /// Where the source's `mlflow-artifacts:/` URIs point (the `--artifacts-destination` the
    /// MLflow server ran with: a directory or an object store's URI); needed to copy such
    /// artifacts.
    #[arg(long)]
    artifacts_from: Option<String>,
    /// wasmflow's store to write into (as `wasmflow server --backend-store-uri`: a SQLite file
    /// or a PostgreSQL database).
    #[arg(long, default_value = "sqlite:///mlflow.db")]
    to: String,
    /// Copy every run's and logged model's artifacts into --artifacts-destination and point their
    /// URIs there (`mlflow-artifacts:/...`), instead of referring to the files where they are.
    #[arg(long)]
    copy_artifacts: bool,
    /// Where --copy-artifacts puts the files: the `--artifacts-destination` of `wasmflow server`
    /// (a directory or an object store's URI, e.g. `s3://bucket/prefix`).
    #[arg(long, default_value = "./mlartifacts")]
    artifacts_destination: String,
    /// Metric points per transaction.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

/// What a reader of an MLflow store gives the import, one entity at a time.
trait Source {
    fn describe(&self) -> String;
    fn experiments(&mut self) -> anyhow::Result<Vec<ImportExperiment>>;
    fn run_count(&mut self) -> anyhow::Result<u64>;
    fn runs(&mut self, experiment: &ImportExperiment) -> anyhow::Result<Vec<ImportRun>>;
    /// Hands the run's whole metric history to `sink` in batches of about `batch` points;
    /// each point once.
    fn metrics(
        &mut self,
        run: &ImportRun,
        batch: usize,
        sink: &mut dyn FnMut(&[ImportMetric]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;
    fn logged_models(
        &mut self,
        experiment: &ImportExperiment,
    ) -> anyhow::Result<Vec<ImportLoggedModel>>;
    fn registered_models(&mut self) -> anyhow::Result<Vec<ImportRegisteredModel>>;
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    match args.source {
        ImportSource::Mlflow(args) => import_mlflow(args),
    }
}

fn open_source(from: &str) -> anyhow::Result<Box<dyn Source>> {
    if wasmflow_store::is_postgres(from) {
        return Ok(Box::new(mlflow_sql::SqlSource::open_postgres(from)?));
    }
    if from.starts_with("mysql") || from.starts_with("mssql") {
        bail!(
            "cannot import from '{}': MLflow's SQLite and PostgreSQL databases and mlruns \
             directories are read",
            wasmflow_store::redact_password(from)
        );
    }
    let path = if let Some(rest) = from.strip_prefix("sqlite:///") {
        PathBuf::from(rest)
    } else if let Some(rest) = from.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if from.contains("://") {
        bail!("unsupported source '{from}': expected sqlite:///PATH, file:///PATH or a path");
    } else {
        PathBuf::from(from)
    };
    if path.is_dir() {
        return Ok(Box::new(mlflow_files::FileSource::open(&path)?));
    }
    if !path.is_file() {
        bail!("no MLflow store at '{}'", path.display());
    }
    Ok(Box::new(mlflow_sql::SqlSource::open_sqlite(&path)?))
}

fn import_mlflow(args: MlflowArgs) -> anyhow::Result<()> {
    let mut source = open_source(&args.from)?;
    let mut target = wasmflow_store::open_import_target(&args.to).with_context(|| {
        format!(
            "cannot open the target store '{}'",
            wasmflow_store::redact_password(&args.to)
        )
    })?;
    let artifacts = Artifacts::new(&args)?;
    let mut report = Report::default();
    let mut progress = Progress::new(source.run_count()?);
    eprintln!(
        "importing {} into {}",
        source.describe(),
        wasmflow_store::redact_password(&args.to)
    );

    let experiments = source.experiments()?;
    let mut run_ids = Vec::new();
    let mut model_ids = Vec::new();
    // Old → new location of every run's and logged model's files, for the model versions.
    let mut moved: Vec<(String, String)> = Vec::new();
    for e in &experiments {
        let mut e = e.clone();
        if artifacts.copy {
            e.artifact_location = format!("mlflow-artifacts:/{}", e.experiment_id);
        }
        let t = target
            .experiment(&e)
            .with_context(|| format!("cannot import experiment {}", e.experiment_id))?;
        report.add("experiments", 1, t.entities);
        report.add("experiment tags", e.tags.len() as u64, t.tags);
        progress.experiments += 1;
    }
    for e in &experiments {
        for mut r in source.runs(e)? {
            if artifacts.copy {
                let to = format!("{}/{}/artifacts", e.experiment_id, r.run_uuid);
                let new = artifacts.copy_tree(&r.artifact_uri, &to)?;
                moved.push((r.artifact_uri.clone(), new.clone()));
                r.artifact_uri = new;
            }
            let t = target
                .run(&r)
                .with_context(|| format!("cannot import run {}", r.run_uuid))?;
            report.add_run(&r, &t);
            let mut points = 0u64;
            let mut tally = Tally::default();
            source.metrics(&r, args.batch_size as usize, &mut |batch| {
                let t = target.metrics(&r.run_uuid, batch)?;
                points += batch.len() as u64;
                tally.add(t);
                progress.points += batch.len() as u64;
                progress.tick(false);
                Ok(())
            })?;
            target.finish_run(&r.run_uuid)?;
            report.add("metric points", points, tally);
            run_ids.push(r.run_uuid.clone());
            progress.runs += 1;
            progress.tick(false);
        }
        for mut m in source.logged_models(e)? {
            if artifacts.copy {
                let to = format!("{}/models/{}/artifacts", e.experiment_id, m.model_id);
                let new = artifacts.copy_tree(&m.artifact_location, &to)?;
                moved.push((m.artifact_location.clone(), new.clone()));
                m.artifact_location = new;
            }
            let t = target
                .logged_model(&m)
                .with_context(|| format!("cannot import logged model {}", m.model_id))?;
            report.add("logged models", 1, t.entities);
            report.add("logged model params", m.params.len() as u64, t.params);
            report.add("logged model tags", m.tags.len() as u64, t.tags);
            report.add("logged model metrics", m.metrics.len() as u64, t.metrics);
            model_ids.push(m.model_id.clone());
            progress.models += 1;
            progress.tick(false);
        }
    }
    let mut registered = Vec::new();
    for mut m in source.registered_models()? {
        if artifacts.copy {
            for v in &mut m.versions {
                v.storage_location = relocate(&moved, &v.storage_location);
                v.source = relocate(&moved, &v.source);
            }
        }
        let t = target
            .registered_model(&m)
            .with_context(|| format!("cannot import registered model '{}'", m.name))?;
        report.add("registered models", 1, t.entities);
        report.add("registered model tags", m.tags.len() as u64, t.tags);
        report.add("model versions", m.versions.len() as u64, t.versions);
        let version_tags = m.versions.iter().map(|v| v.tags.len() as u64).sum();
        report.add("model version tags", version_tags, t.version_tags);
        report.add(
            "registered model aliases",
            m.aliases.len() as u64,
            t.aliases,
        );
        registered.push(m.name.clone());
    }
    progress.tick(true);

    let experiment_ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.to_string())
        .collect();
    let checks = [
        (
            "experiments",
            "experiments",
            "experiment_id",
            &experiment_ids,
        ),
        ("runs", "runs", "run_uuid", &run_ids),
        ("params", "params", "run_uuid", &run_ids),
        ("run tags", "tags", "run_uuid", &run_ids),
        ("metric points", "metrics", "run_uuid", &run_ids),
        ("logged models", "logged_models", "model_id", &model_ids),
        (
            "registered models",
            "registered_models",
            "name",
            &registered,
        ),
        ("model versions", "model_versions", "name", &registered),
    ];
    for (kind, table, column, keys) in checks {
        let n = target.count_present(table, column, keys)?;
        report.in_target.insert(kind, n);
    }
    let complete = report.print();
    if !artifacts.copy {
        artifacts.hint(&experiments);
    }
    if !complete {
        bail!("the target holds less than the source for some kinds (see the table)");
    }
    Ok(())
}

/// A source URI under one of the moved locations, pointed at the new one.
fn relocate(moved: &[(String, String)], uri: &str) -> String {
    moved
        .iter()
        .filter(|(old, _)| {
            uri == old
                || uri
                    .strip_prefix(old.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(old, _)| old.len())
        .map(|(old, new)| format!("{new}{}", &uri[old.len()..]))
        .unwrap_or_else(|| uri.to_string())
}

/// Where artifacts are read from and, with --copy-artifacts, copied to: directories or object
/// stores, through the repositories the server reads them with.
struct Artifacts {
    copy: bool,
    /// The root of the source's `mlflow-artifacts:/` URIs.
    proxied_root: Option<(String, Location)>,
    /// `--artifacts-destination`, opened when --copy-artifacts is given.
    destination: Option<Arc<dyn ArtifactRepository>>,
}

impl Artifacts {
    fn new(args: &MlflowArgs) -> anyhow::Result<Self> {
        let proxied_root = match &args.artifacts_from {
            Some(uri) => {
                let location = wasmflow_artifacts::parse_location(uri)
                    .map_err(|e| anyhow::anyhow!("invalid --artifacts-from: {e}"))?;
                if let Location::Local(dir) = &location
                    && !dir.is_dir()
                {
                    bail!("--artifacts-from '{uri}' is not a directory");
                }
                Some((uri.clone(), location))
            }
            None => None,
        };
        let destination = if args.copy_artifacts {
            Some(
                wasmflow_artifacts::open_repository(&args.artifacts_destination)
                    .map_err(|e| anyhow::anyhow!("invalid --artifacts-destination: {e}"))?,
            )
        } else {
            None
        };
        Ok(Self {
            copy: args.copy_artifacts,
            proxied_root,
            destination,
        })
    }

    /// Where the files of an artifact URI of the source are; `None` for a directory that does
    /// not exist (nothing was logged there).
    fn source(&self, uri: &str) -> anyhow::Result<Option<Arc<dyn ArtifactRepository>>> {
        let location = if let Some(rel) = wasmflow_artifacts::proxied_path_of(uri) {
            let Some((_, root)) = &self.proxied_root else {
                bail!(
                    "'{uri}' is on an MLflow server's artifact store: name it (a directory or an \
                     object store's URI) with --artifacts-from"
                );
            };
            let rel = wasmflow_artifacts::sanitize_relative_path(&rel)
                .with_context(|| format!("cannot copy artifacts from '{uri}'"))?;
            root.join(&rel)
        } else {
            wasmflow_artifacts::parse_location(uri)
                .map_err(|e| anyhow::anyhow!("cannot copy artifacts from '{uri}': {e}"))?
        };
        Ok(match location {
            // Opening a local repository creates its directory: the source is only read.
            Location::Local(dir) if !dir.is_dir() => None,
            Location::Local(dir) => Some(Arc::new(
                wasmflow_artifacts::LocalArtifactRepository::new(&dir)
                    .with_context(|| format!("cannot read '{}'", dir.display()))?,
            )),
            Location::Object(o) => Some(Arc::new(
                wasmflow_artifacts::open_object(&o).map_err(anyhow::Error::msg)?,
            )),
        })
    }

    /// Copies the files under `from` to `<destination>/<to>`, skipping files already there with
    /// the same size (a rerun), and answers the new URI. Each file is streamed and appears
    /// whole or not at all (the repositories' `put`), so a killed copy never leaves a short
    /// file that a rerun would take as done.
    fn copy_tree(&self, from: &str, to: &str) -> anyhow::Result<String> {
        let destination = self
            .destination
            .as_ref()
            .context("--copy-artifacts opens the destination")?;
        if let Some(source) = self.source(from)? {
            super::block_on(async {
                let present: HashMap<String, u64> = destination
                    .tree(to)
                    .await?
                    .into_iter()
                    .map(|f| (f.path, f.size))
                    .collect();
                for file in source.tree("").await? {
                    if present.get(&file.path) == Some(&file.size) {
                        continue;
                    }
                    let (_, body) = source.get(&file.path).await?;
                    destination
                        .put(&format!("{to}/{}", file.path), body)
                        .await?;
                }
                wasmflow_core::Result::Ok(())
            })?
            .map_err(|e: wasmflow_core::Error| {
                anyhow::anyhow!("cannot copy '{from}' to '{to}': {}", e.message)
            })?;
        }
        Ok(format!("mlflow-artifacts:/{to}"))
    }

    /// Tells how the server finds artifacts referred to in place.
    fn hint(&self, experiments: &[ImportExperiment]) {
        let proxied = experiments
            .iter()
            .any(|e| e.artifact_location.starts_with("mlflow-artifacts:"));
        if proxied {
            match &self.proxied_root {
                Some((root, _)) => eprintln!(
                    "artifacts stay where they are: start the server with \
                     --artifacts-destination {root}"
                ),
                None => eprintln!(
                    "some artifacts are on an MLflow server's artifact store \
                     (mlflow-artifacts:/): start the server with --artifacts-destination \
                     pointing at that store, or import again with --artifacts-from DIR|URI \
                     --copy-artifacts"
                ),
            }
        }
    }
}

/// Counts per kind of entity: in the source, written now, there already, and (for the kinds with
/// ids) what the target holds for the source's ids after the import.
#[derive(Default)]
struct Report {
    rows: Vec<(&'static str, u64, Tally)>,
    in_target: HashMap<&'static str, u64>,
}

impl Report {
    fn add(&mut self, kind: &'static str, source: u64, tally: Tally) {
        match self.rows.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, s, t)) => {
                *s += source;
                t.add(tally);
            }
            None => self.rows.push((kind, source, tally)),
        }
    }

    fn add_run(&mut self, r: &ImportRun, t: &ImportTallies) {
        self.add("runs", 1, t.entities);
        self.add("params", r.params.len() as u64, t.params);
        self.add("run tags", r.tags.len() as u64, t.tags);
        let inputs = r.datasets.len() + r.model_inputs.len() + r.model_outputs.len();
        self.add("run inputs and outputs", inputs as u64, t.inputs);
    }

    /// Prints the table on stdout; false when the target misses something of the source.
    fn print(&self) -> bool {
        let mut complete = true;
        println!(
            "{:<26} {:>10} {:>10} {:>14} {:>12}",
            "kind", "source", "imported", "already there", "in wasmflow"
        );
        for (kind, source, t) in &self.rows {
            let present = self.in_target.get(kind).copied();
            let accounted = t.inserted + t.present == *source;
            let held = present.is_none_or(|n| n >= *source);
            complete &= accounted && held;
            println!(
                "{:<26} {:>10} {:>10} {:>14} {:>12}{}",
                kind,
                source,
                t.inserted,
                t.present,
                present.map_or("-".to_string(), |n| n.to_string()),
                if accounted && held { "" } else { "  MISSING" }
            );
        }
        complete
    }
}

/// The progress line on stderr: rewritten in place on a terminal, a new line every second
/// otherwise.
struct Progress {
    total_runs: u64,
    experiments: u64,
    runs: u64,
    points: u64,
    models: u64,
    last: Instant,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total_runs: u64) -> Self {
        let now = Instant::now();
        Self {
            total_runs,
            experiments: 0,
            runs: 0,
            points: 0,
            models: 0,
            last: now,
            started: now,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self, last: bool) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        if !last && self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let line = format!(
            "progress: {} experiments, runs {}/{}, {} metric points, {} logged models ({:.1}s)",
            self.experiments,
            self.runs,
            self.total_runs,
            self.points,
            self.models,
            self.started.elapsed().as_secs_f64()
        );
        if self.terminal {
            eprint!("\r{line}");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}
