//! Reads MLflow's SQL schema from a SQLite file, read-only. Columns and tables that older alembic
//! revisions lack are looked up first and read as their defaults, so MLflow 2.x databases read
//! as well as 3.x ones.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use wasmflow_core::entities::{LoggedModelStatus, RunStatus};
use wasmflow_store::{
    ImportDataset, ImportExperiment, ImportLoggedModel, ImportMetric, ImportModelMetric,
    ImportModelVersion, ImportRegisteredModel, ImportRun,
};

use super::Source;

pub struct SqlSource {
    conn: Connection,
    path: String,
    revision: String,
}

impl SqlSource {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open '{}'", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let revision: Option<String> = conn
            .query_row("SELECT version_num FROM alembic_version", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten();
        let Some(revision) = revision else {
            bail!(
                "'{}' is not an MLflow database (it has no alembic_version table)",
                path.display()
            );
        };
        Ok(Self {
            conn,
            path: path.display().to_string(),
            revision,
        })
    }

    fn columns(&self, table: &str) -> anyhow::Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }

    fn has_table(&self, table: &str) -> anyhow::Result<bool> {
        Ok(!self.columns(table)?.is_empty())
    }

    /// `column` when `table` has it, else `default` (an SQL expression).
    fn col(&self, table: &str, column: &str, default: &str) -> anyhow::Result<String> {
        Ok(if self.columns(table)?.contains(column) {
            column.to_string()
        } else {
            default.to_string()
        })
    }

    /// MLflow 3.x's workspaces: wasmflow has one, MLflow's `default`.
    fn workspace(&self, table: &str) -> anyhow::Result<&'static str> {
        Ok(if self.columns(table)?.contains("workspace") {
            " AND workspace = 'default'"
        } else {
            ""
        })
    }

    fn pairs(
        &self,
        sql: &str,
        key: impl rusqlite::Params,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(key, |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn run_inputs(&self, run: &mut ImportRun) -> anyhow::Result<()> {
        if !self.has_table("inputs")? {
            return Ok(());
        }
        let step = self.col("inputs", "step", "0")?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT input_uuid, source_type, source_id, destination_type, destination_id, {step}
             FROM inputs
             WHERE (destination_type = 'RUN' AND destination_id = ?1)
                OR (source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND source_id = ?1)"
        ))?;
        let rows: Vec<(String, String, String, String, String, i64)> = stmt
            .query_map([&run.run_uuid], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (input_uuid, source_type, source_id, destination_type, destination_id, step) in rows {
            match (source_type.as_str(), destination_type.as_str()) {
                ("DATASET", "RUN") => {
                    let dataset = self
                        .conn
                        .query_row(
                            "SELECT dataset_uuid, name, digest, dataset_source_type,
                                 dataset_source, dataset_schema, dataset_profile
                             FROM datasets WHERE dataset_uuid = ?1",
                            [&source_id],
                            |r| {
                                Ok(ImportDataset {
                                    dataset_uuid: r.get(0)?,
                                    name: r.get(1)?,
                                    digest: r.get(2)?,
                                    source_type: r.get(3)?,
                                    source: r.get(4)?,
                                    schema: r.get(5)?,
                                    profile: r.get(6)?,
                                    tags: Vec::new(),
                                })
                            },
                        )
                        .optional()?;
                    if let Some(mut d) = dataset {
                        d.tags = self.pairs(
                            "SELECT name, value FROM input_tags WHERE input_uuid = ?1",
                            [&input_uuid],
                        )?;
                        run.datasets.push(d);
                    }
                }
                ("RUN_INPUT", "MODEL_INPUT") => run.model_inputs.push(destination_id),
                ("RUN_OUTPUT", "MODEL_OUTPUT") => run.model_outputs.push((destination_id, step)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Where an old version's files are, for revisions before `storage_location`: what its
    /// source resolves to.
    fn storage_of(&self, source: &str) -> anyhow::Result<String> {
        if let Some(rest) = source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let uri: Option<String> = self
                .conn
                .query_row(
                    "SELECT artifact_uri FROM runs WHERE run_uuid = ?1",
                    [run_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(uri) = uri {
                return Ok(if path.is_empty() {
                    uri
                } else {
                    format!("{}/{path}", uri.trim_end_matches('/'))
                });
            }
        }
        if let Some(id) = model_id_of(source)
            && self.has_table("logged_models")?
        {
            let location: Option<String> = self
                .conn
                .query_row(
                    "SELECT artifact_location FROM logged_models WHERE model_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(location) = location {
                return Ok(location);
            }
        }
        Ok(source.to_string())
    }
}

/// The logged model a `models:/m-...` source names.
pub fn model_id_of(source: &str) -> Option<String> {
    let rest = source.strip_prefix("models:/")?;
    let id = rest.split('/').next()?;
    id.starts_with("m-").then(|| id.to_string())
}

impl Source for SqlSource {
    fn describe(&self) -> String {
        format!(
            "the MLflow database '{}' (alembic revision {})",
            self.path, self.revision
        )
    }

    fn experiments(&mut self) -> anyhow::Result<Vec<ImportExperiment>> {
        let created = self.col("experiments", "creation_time", "NULL")?;
        let updated = self.col("experiments", "last_update_time", "NULL")?;
        let ws = self.workspace("experiments")?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT experiment_id, name, COALESCE(artifact_location, ''),
                 COALESCE(lifecycle_stage, 'active'), COALESCE({created}, 0),
                 COALESCE({updated}, {created}, 0)
             FROM experiments WHERE 1 = 1 {ws} ORDER BY experiment_id"
        ))?;
        let mut experiments: Vec<ImportExperiment> = stmt
            .query_map([], |r| {
                Ok(ImportExperiment {
                    experiment_id: r.get(0)?,
                    name: r.get(1)?,
                    artifact_location: r.get(2)?,
                    lifecycle_stage: r.get(3)?,
                    creation_time: r.get(4)?,
                    last_update_time: r.get(5)?,
                    tags: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for e in &mut experiments {
            e.tags = self.pairs(
                "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1",
                [e.experiment_id],
            )?;
        }
        Ok(experiments)
    }

    fn run_count(&mut self) -> anyhow::Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn runs(&mut self, experiment: &ImportExperiment) -> anyhow::Result<Vec<ImportRun>> {
        let deleted_time = self.col("runs", "deleted_time", "NULL")?;
        let name = self.col("runs", "name", "NULL")?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT run_uuid, COALESCE({name}, ''), COALESCE(user_id, ''),
                 COALESCE(status, 'FINISHED'), COALESCE(start_time, 0), end_time, {deleted_time},
                 COALESCE(artifact_uri, ''), COALESCE(lifecycle_stage, 'active')
             FROM runs WHERE experiment_id = ?1 ORDER BY start_time, run_uuid"
        ))?;
        let mut runs: Vec<ImportRun> = stmt
            .query_map([experiment.experiment_id], |r| {
                Ok(ImportRun {
                    run_uuid: r.get(0)?,
                    experiment_id: experiment.experiment_id,
                    name: r.get(1)?,
                    user_id: r.get(2)?,
                    status: r.get(3)?,
                    start_time: r.get(4)?,
                    end_time: r.get(5)?,
                    deleted_time: r.get(6)?,
                    artifact_uri: r.get(7)?,
                    lifecycle_stage: r.get(8)?,
                    params: Vec::new(),
                    tags: Vec::new(),
                    datasets: Vec::new(),
                    model_inputs: Vec::new(),
                    model_outputs: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for run in &mut runs {
            RunStatus::parse(&run.status)
                .with_context(|| format!("run {} has status '{}'", run.run_uuid, run.status))?;
            run.params = self.pairs(
                "SELECT key, value FROM params WHERE run_uuid = ?1",
                [&run.run_uuid],
            )?;
            run.tags = self.pairs(
                "SELECT key, value FROM tags WHERE run_uuid = ?1",
                [&run.run_uuid],
            )?;
            if run.name.is_empty()
                && let Some((_, v)) = run.tags.iter().find(|(k, _)| k == "mlflow.runName")
            {
                run.name = v.clone();
            }
            self.run_inputs(run)?;
        }
        Ok(runs)
    }

    fn metrics(
        &mut self,
        run: &ImportRun,
        batch: usize,
        sink: &mut dyn FnMut(&[ImportMetric]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let step = self.col("metrics", "step", "0")?;
        let is_nan = self.col("metrics", "is_nan", "0")?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT key, value, timestamp, {step}, {is_nan} FROM metrics WHERE run_uuid = ?1"
        ))?;
        let mut rows = stmt.query([&run.run_uuid])?;
        let mut buf = Vec::with_capacity(batch);
        while let Some(r) = rows.next()? {
            let is_nan: bool = r.get(4)?;
            buf.push(ImportMetric {
                key: r.get(0)?,
                value: if is_nan { f64::NAN } else { r.get(1)? },
                timestamp: r.get(2)?,
                step: r.get(3)?,
                is_nan,
            });
            if buf.len() >= batch {
                sink(&buf)?;
                buf.clear();
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
        if !self.has_table("logged_models")? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT model_id, name, artifact_location, creation_timestamp_ms,
                 last_updated_timestamp_ms, status, COALESCE(lifecycle_stage, 'active'),
                 model_type, source_run_id, status_message
             FROM logged_models WHERE experiment_id = ?1 ORDER BY creation_timestamp_ms",
        )?;
        let mut models: Vec<ImportLoggedModel> = stmt
            .query_map([experiment.experiment_id], |r| {
                Ok(ImportLoggedModel {
                    model_id: r.get(0)?,
                    experiment_id: experiment.experiment_id,
                    name: r.get(1)?,
                    artifact_location: r.get(2)?,
                    creation_timestamp_ms: r.get(3)?,
                    last_updated_timestamp_ms: r.get(4)?,
                    status: r.get::<_, i64>(5)?.to_string(),
                    lifecycle_stage: r.get(6)?,
                    model_type: r.get(7)?,
                    source_run_id: r.get(8)?,
                    status_message: r.get(9)?,
                    params: Vec::new(),
                    tags: Vec::new(),
                    metrics: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        for m in &mut models {
            m.status = LoggedModelStatus::parse(&m.status)
                .with_context(|| format!("logged model {}", m.model_id))?
                .as_str()
                .to_string();
            m.params = self.pairs(
                "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ?1",
                [&m.model_id],
            )?;
            m.tags = self.pairs(
                "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?1",
                [&m.model_id],
            )?;
            let mut stmt = self.conn.prepare_cached(
                "SELECT metric_name, metric_timestamp_ms, metric_step, metric_value, run_id,
                     dataset_name, dataset_digest
                 FROM logged_model_metrics WHERE model_id = ?1",
            )?;
            m.metrics = stmt
                .query_map([&m.model_id], |r| {
                    let value: Option<f64> = r.get(3)?;
                    Ok(ImportModelMetric {
                        metric: ImportMetric {
                            key: r.get(0)?,
                            timestamp: r.get(1)?,
                            step: r.get(2)?,
                            value: value.unwrap_or(f64::NAN),
                            is_nan: value.is_none(),
                        },
                        run_id: r.get(4)?,
                        dataset_name: r.get(5)?,
                        dataset_digest: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(models)
    }

    fn registered_models(&mut self) -> anyhow::Result<Vec<ImportRegisteredModel>> {
        if !self.has_table("registered_models")? {
            return Ok(Vec::new());
        }
        let ws = self.workspace("registered_models")?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT name, COALESCE(creation_time, 0),
                 COALESCE(last_updated_time, creation_time, 0), description
             FROM registered_models WHERE 1 = 1 {ws} ORDER BY name"
        ))?;
        let mut models: Vec<ImportRegisteredModel> = stmt
            .query_map([], |r| {
                Ok(ImportRegisteredModel {
                    name: r.get(0)?,
                    creation_time: r.get(1)?,
                    last_updated_time: r.get(2)?,
                    description: r.get(3)?,
                    tags: Vec::new(),
                    versions: Vec::new(),
                    aliases: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let tag_ws = self.workspace("registered_model_tags")?;
        let version_ws = self.workspace("model_versions")?;
        let version_tag_ws = self.workspace("model_version_tags")?;
        let alias_ws = if self.has_table("registered_model_aliases")? {
            Some(self.workspace("registered_model_aliases")?)
        } else {
            None
        };
        let storage = self.col("model_versions", "storage_location", "NULL")?;
        let run_link = self.col("model_versions", "run_link", "NULL")?;
        for m in &mut models {
            m.tags = self.pairs(
                &format!("SELECT key, value FROM registered_model_tags WHERE name = ?1 {tag_ws}"),
                [&m.name],
            )?;
            let mut stmt = self.conn.prepare(&format!(
                "SELECT version, COALESCE(creation_time, 0),
                     COALESCE(last_updated_time, creation_time, 0), description, user_id,
                     COALESCE(current_stage, 'None'), COALESCE(source, ''), {storage},
                     COALESCE(run_id, ''), COALESCE({run_link}, ''), COALESCE(status, 'READY'),
                     status_message
                 FROM model_versions WHERE name = ?1 {version_ws} ORDER BY version"
            ))?;
            let versions: Vec<(ImportModelVersion, Option<String>)> = stmt
                .query_map([&m.name], |r| {
                    Ok((
                        ImportModelVersion {
                            version: r.get(0)?,
                            creation_time: r.get(1)?,
                            last_updated_time: r.get(2)?,
                            description: r.get(3)?,
                            user_id: r.get(4)?,
                            current_stage: r.get(5)?,
                            source: r.get(6)?,
                            storage_location: String::new(),
                            run_id: r.get(8)?,
                            run_link: r.get(9)?,
                            model_id: None,
                            status: r.get(10)?,
                            status_message: r.get(11)?,
                            tags: Vec::new(),
                        },
                        r.get(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            drop(stmt);
            for (mut v, storage) in versions {
                v.model_id = model_id_of(&v.source);
                v.storage_location = match storage.filter(|s| !s.is_empty()) {
                    Some(s) => s,
                    None => self.storage_of(&v.source)?,
                };
                v.tags = self.pairs(
                    &format!(
                        "SELECT key, value FROM model_version_tags
                         WHERE name = ?1 AND version = ?2 {version_tag_ws}"
                    ),
                    params![m.name, v.version],
                )?;
                m.versions.push(v);
            }
            if let Some(ws) = alias_ws {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT alias, version FROM registered_model_aliases WHERE name = ?1 {ws}"
                ))?;
                m.aliases = stmt
                    .query_map([&m.name], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
            }
        }
        Ok(models)
    }
}
