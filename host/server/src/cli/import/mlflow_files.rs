//! Reads MLflow's file store (`mlruns`), as MLflow's `FileStore` lays it out:
//!
//! - `<experiment id>/meta.yaml`, `<experiment id>/tags/<key>`; deleted experiments move to
//!   `.trash/<experiment id>/`.
//! - `<experiment id>/<run id>/meta.yaml`, `params/<key>`, `tags/<key>` (the file holds the value;
//!   a key with `/` is a sub-directory), `metrics/<key>` (one point a line: `timestamp value
//!   [step]`), `inputs/<input id>/meta.yaml`, `outputs/<model id>/meta.yaml`, `artifacts/`.
//! - `<experiment id>/datasets/<dataset id>/meta.yaml`.
//! - `<experiment id>/models/<model id>/` for MLflow 3's logged models: `meta.yaml`, `params/`,
//!   `tags/`, `metrics/<key>` (`timestamp value step run_id [dataset_name dataset_digest]`).
//! - `models/<name>/` for the registry: `meta.yaml` (with `aliases`), `tags/`, `aliases/<alias>`,
//!   `version-<n>/meta.yaml`, `version-<n>/tags/`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_yaml_ng::Value;
use wasmflow_core::entities::{LoggedModelStatus, RunStatus};
use wasmflow_store::{
    ImportDataset, ImportExperiment, ImportLoggedModel, ImportMetric, ImportModelMetric,
    ImportModelVersion, ImportRegisteredModel, ImportRun,
};

use super::Source;
use super::mlflow_sql::model_id_of;

const META: &str = "meta.yaml";
const TRASH: &str = ".trash";
/// Folders of an experiment directory that are not runs.
const NOT_RUNS: &[&str] = &["tags", "datasets", "models", "traces"];

pub struct FileSource {
    root: PathBuf,
    /// The directory of each experiment, by id.
    dirs: Vec<(i64, PathBuf)>,
}

impl FileSource {
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let mut dirs = Vec::new();
        for parent in [root.to_path_buf(), root.join(TRASH)] {
            for dir in subdirs(&parent)? {
                let id = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse().ok());
                if let Some(id) = id
                    && dir.join(META).is_file()
                {
                    dirs.push((id, dir));
                }
            }
        }
        if dirs.is_empty() && !root.join("models").is_dir() {
            bail!(
                "'{}' is not an MLflow file store (no <experiment id>/meta.yaml in it)",
                root.display()
            );
        }
        dirs.sort();
        Ok(Self {
            root: root.to_path_buf(),
            dirs,
        })
    }

    fn dir_of(&self, id: i64) -> anyhow::Result<&Path> {
        self.dirs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.as_path())
            .with_context(|| format!("experiment {id} has no directory"))
    }

    fn run_dirs(&self, experiment_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        Ok(subdirs(experiment_dir)?
            .into_iter()
            .filter(|d| {
                let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !NOT_RUNS.contains(&name) && d.join(META).is_file()
            })
            .collect())
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("the MLflow file store '{}'", self.root.display())
    }

    fn experiments(&mut self) -> anyhow::Result<Vec<ImportExperiment>> {
        let mut out = Vec::new();
        for (id, dir) in &self.dirs {
            let meta = read_meta(&dir.join(META))?;
            let created = int(&meta, "creation_time").unwrap_or(0);
            out.push(ImportExperiment {
                experiment_id: *id,
                name: string(&meta, "name")
                    .with_context(|| format!("experiment {id} has no name"))?,
                artifact_location: string(&meta, "artifact_location").unwrap_or_default(),
                lifecycle_stage: string(&meta, "lifecycle_stage")
                    .unwrap_or_else(|| "active".into()),
                creation_time: created,
                last_update_time: int(&meta, "last_update_time").unwrap_or(created),
                tags: key_files(&dir.join("tags"))?,
            });
        }
        Ok(out)
    }

    fn run_count(&mut self) -> anyhow::Result<u64> {
        let mut n = 0;
        for (_, dir) in &self.dirs {
            n += self.run_dirs(dir)?.len() as u64;
        }
        Ok(n)
    }

    fn runs(&mut self, experiment: &ImportExperiment) -> anyhow::Result<Vec<ImportRun>> {
        let exp_dir = self.dir_of(experiment.experiment_id)?.to_path_buf();
        let mut runs = Vec::new();
        for dir in self.run_dirs(&exp_dir)? {
            let meta = read_meta(&dir.join(META))?;
            let run_uuid = string(&meta, "run_id")
                .or_else(|| string(&meta, "run_uuid"))
                .with_context(|| format!("'{}' names no run id", dir.join(META).display()))?;
            let status = string(&meta, "status").unwrap_or_else(|| "FINISHED".into());
            let status = RunStatus::parse(&status)
                .with_context(|| format!("run {run_uuid}"))?
                .as_str()
                .to_string();
            let tags = key_files(&dir.join("tags"))?;
            let name = string(&meta, "run_name")
                .filter(|n| !n.is_empty())
                .or_else(|| {
                    tags.iter()
                        .find(|(k, _)| k == "mlflow.runName")
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_default();
            let mut run = ImportRun {
                run_uuid,
                experiment_id: experiment.experiment_id,
                name,
                user_id: string(&meta, "user_id").unwrap_or_default(),
                status,
                start_time: int(&meta, "start_time").unwrap_or(0),
                end_time: int(&meta, "end_time"),
                deleted_time: int(&meta, "deleted_time"),
                artifact_uri: string(&meta, "artifact_uri").unwrap_or_default(),
                lifecycle_stage: string(&meta, "lifecycle_stage")
                    .unwrap_or_else(|| "active".into()),
                params: key_files(&dir.join("params"))?,
                tags,
                datasets: Vec::new(),
                model_inputs: Vec::new(),
                model_outputs: Vec::new(),
            };
            for input in subdirs(&dir.join("inputs"))? {
                let meta = read_meta(&input.join(META))?;
                let source_id = string(&meta, "source_id").unwrap_or_default();
                match string(&meta, "source_type").as_deref() {
                    Some("DATASET") => {
                        let d = read_meta(&exp_dir.join("datasets").join(&source_id).join(META))?;
                        run.datasets.push(ImportDataset {
                            dataset_uuid: source_id.clone(),
                            name: string(&d, "name").unwrap_or_default(),
                            digest: string(&d, "digest").unwrap_or_default(),
                            source_type: string(&d, "source_type").unwrap_or_default(),
                            source: string(&d, "source").unwrap_or_default(),
                            schema: string(&d, "schema"),
                            profile: string(&d, "profile"),
                            tags: map_pairs(&meta, "tags"),
                        });
                    }
                    _ if source_id.starts_with("m-") => run.model_inputs.push(source_id),
                    _ => {}
                }
            }
            for output in subdirs(&dir.join("outputs"))? {
                let meta = read_meta(&output.join(META))?;
                if let Some(model) = string(&meta, "destination_id") {
                    run.model_outputs
                        .push((model, int(&meta, "step").unwrap_or(0)));
                }
            }
            runs.push(run);
        }
        runs.sort_by(|a, b| (a.start_time, &a.run_uuid).cmp(&(b.start_time, &b.run_uuid)));
        Ok(runs)
    }

    fn metrics(
        &mut self,
        run: &ImportRun,
        batch: usize,
        sink: &mut dyn FnMut(&[ImportMetric]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let dir = self
            .dir_of(run.experiment_id)?
            .join(&run.run_uuid)
            .join("metrics");
        let mut buf = Vec::with_capacity(batch);
        for (key, path) in key_paths(&dir)? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read '{}'", path.display()))?;
            // The file store appends, so a point logged twice is there twice; the tracking store
            // keeps it once.
            let mut seen = HashSet::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let point = parse_point(&key, &parts)
                    .with_context(|| format!("bad metric line '{line}' in '{}'", path.display()))?;
                if seen.insert((point.timestamp, point.step, point.value.to_bits())) {
                    buf.push(point);
                }
                if buf.len() >= batch {
                    sink(&buf)?;
                    buf.clear();
                }
            }
        }
        if !buf.is_empty() {
            sink(&buf)?;
        }
        Ok(())
    }

    fn logged_models(
        &mut self,
        experiment: &ImportExperiment,
    ) -> anyhow::Result<Vec<ImportLoggedModel>> {
        let dir = self.dir_of(experiment.experiment_id)?.join("models");
        let mut models = Vec::new();
        for model_dir in subdirs(&dir)? {
            if !model_dir.join(META).is_file() {
                continue;
            }
            let meta = read_meta(&model_dir.join(META))?;
            let model_id = string(&meta, "model_id")
                .with_context(|| format!("'{}' names no model id", model_dir.display()))?;
            let status = string(&meta, "status").unwrap_or_else(|| "0".into());
            let created = int(&meta, "creation_timestamp").unwrap_or(0);
            let mut metrics = Vec::new();
            for (key, path) in key_paths(&model_dir.join("metrics"))? {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read '{}'", path.display()))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    if parts.len() != 4 && parts.len() != 6 {
                        bail!("bad metric line '{line}' in '{}'", path.display());
                    }
                    let metric = parse_point(&key, &parts[..3])
                        .with_context(|| format!("bad metric line '{line}'"))?;
                    metrics.push(ImportModelMetric {
                        metric,
                        run_id: parts[3].to_string(),
                        dataset_name: parts.get(4).map(|s| s.to_string()),
                        dataset_digest: parts.get(5).map(|s| s.to_string()),
                    });
                }
            }
            models.push(ImportLoggedModel {
                experiment_id: experiment.experiment_id,
                name: string(&meta, "name").unwrap_or_else(|| model_id.clone()),
                artifact_location: string(&meta, "artifact_location").unwrap_or_default(),
                creation_timestamp_ms: created,
                last_updated_timestamp_ms: int(&meta, "last_updated_timestamp").unwrap_or(created),
                status: LoggedModelStatus::parse(&status)
                    .with_context(|| format!("logged model {model_id}"))?
                    .as_str()
                    .to_string(),
                lifecycle_stage: string(&meta, "lifecycle_stage")
                    .unwrap_or_else(|| "active".into()),
                model_type: string(&meta, "model_type"),
                source_run_id: string(&meta, "source_run_id"),
                status_message: string(&meta, "status_message"),
                params: key_files(&model_dir.join("params"))?,
                tags: key_files(&model_dir.join("tags"))?,
                metrics,
                model_id,
            });
        }
        models.sort_by_key(|m| m.creation_timestamp_ms);
        Ok(models)
    }

    fn registered_models(&mut self) -> anyhow::Result<Vec<ImportRegisteredModel>> {
        let mut models = Vec::new();
        for dir in subdirs(&self.root.join("models"))? {
            if !dir.join(META).is_file() {
                continue;
            }
            let meta = read_meta(&dir.join(META))?;
            let created = int(&meta, "creation_timestamp").unwrap_or(0);
            let mut model = ImportRegisteredModel {
                name: string(&meta, "name")
                    .with_context(|| format!("'{}' names no model", dir.display()))?,
                creation_time: created,
                last_updated_time: int(&meta, "last_updated_timestamp").unwrap_or(created),
                description: string(&meta, "description"),
                tags: key_files(&dir.join("tags"))?,
                versions: Vec::new(),
                aliases: Vec::new(),
            };
            let mut aliases = map_pairs(&meta, "aliases");
            aliases.extend(key_files(&dir.join("aliases"))?);
            for (alias, version) in aliases {
                let version: i64 = version
                    .trim()
                    .parse()
                    .with_context(|| format!("alias '{alias}' names version '{version}'"))?;
                if !model.aliases.contains(&(alias.clone(), version)) {
                    model.aliases.push((alias, version));
                }
            }
            for vdir in subdirs(&dir)? {
                let is_version = vdir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("version-"));
                if !is_version || !vdir.join(META).is_file() {
                    continue;
                }
                let v = read_meta(&vdir.join(META))?;
                let source = string(&v, "source").unwrap_or_default();
                let created = int(&v, "creation_timestamp").unwrap_or(0);
                model.versions.push(ImportModelVersion {
                    version: int(&v, "version")
                        .with_context(|| format!("'{}' names no version", vdir.display()))?,
                    creation_time: created,
                    last_updated_time: int(&v, "last_updated_timestamp").unwrap_or(created),
                    description: string(&v, "description"),
                    user_id: string(&v, "user_id"),
                    current_stage: string(&v, "current_stage").unwrap_or_else(|| "None".into()),
                    storage_location: string(&v, "storage_location")
                        .unwrap_or_else(|| source.clone()),
                    run_id: string(&v, "run_id").unwrap_or_default(),
                    run_link: string(&v, "run_link").unwrap_or_default(),
                    model_id: string(&v, "model_id").or_else(|| model_id_of(&source)),
                    status: string(&v, "status").unwrap_or_else(|| "READY".into()),
                    status_message: string(&v, "status_message"),
                    tags: key_files(&vdir.join("tags"))?,
                    source,
                });
            }
            model.versions.sort_by_key(|v| v.version);
            models.push(model);
        }
        Ok(models)
    }
}

/// `timestamp value [step]` (the file store also writes `timestamp value step dataset digest`).
fn parse_point(key: &str, parts: &[&str]) -> anyhow::Result<ImportMetric> {
    if parts.len() < 2 {
        bail!("expected 'timestamp value [step]'");
    }
    let value: f64 = parts[1].parse()?;
    Ok(ImportMetric {
        key: key.to_string(),
        timestamp: parts[0].parse()?,
        value,
        step: parts.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0),
        is_nan: value.is_nan(),
    })
}

fn read_meta(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("cannot parse '{}'", path.display()))
}

fn string(meta: &Value, key: &str) -> Option<String> {
    scalar(meta.get(key)?)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int(meta: &Value, key: &str) -> Option<i64> {
    match meta.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A mapping field as (key, value) pairs.
fn map_pairs(meta: &Value, key: &str) -> Vec<(String, String)> {
    let Some(Value::Mapping(map)) = meta.get(key) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
        .collect()
}

/// The sub-directories of `dir` (none when it does not exist), sorted.
fn subdirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list '{}'", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The files under `dir`, each with its key: its path below `dir` with `/` separators.
fn key_paths(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot list '{}'", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type()?.is_dir() {
                walk(&entry.path(), &key, out)?;
            } else {
                out.push((key, entry.path()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Files holding one value each (params, tags, aliases), by key.
fn key_files(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    key_paths(dir)?
        .into_iter()
        .map(|(key, path)| {
            let value = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read '{}'", path.display()))?;
            Ok((key, value))
        })
        .collect()
}
