//! Reads MLflow's SQL schema, read-only, from SQLite or PostgreSQL (the same statements on both,
//! through [`SqlConn`]). Columns and tables that older alembic revisions lack are looked up first
//! and read as their defaults, so MLflow 2.x databases read as well as 3.x ones.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context as _, bail};
use wasmflow_core::entities::{LoggedModelStatus, RunStatus};
use wasmflow_store::args;
use wasmflow_store::sql_conn::{Arg, PgConn, Row, SqlConn, open_sqlite_read_only};
use wasmflow_store::{
    ImportDataset, ImportExperiment, ImportLoggedModel, ImportMetric, ImportModelMetric,
    ImportModelVersion, ImportRegisteredModel, ImportRun,
};

use super::Source;

pub struct SqlSource {
    conn: Box<dyn SqlConn>,
    /// The file or the uri without its password, for messages.
    name: String,
    revision: String,
    /// Column names per table, looked up once.
    columns: HashMap<String, HashSet<String>>,
}

impl SqlSource {
    pub fn open_sqlite(path: &Path) -> anyhow::Result<Self> {
        let conn = open_sqlite_read_only(path)?;
        Self::new(Box::new(conn), path.display().to_string())
    }

    /// `postgresql://...` (or SQLAlchemy's `postgresql+psycopg2://...`, as MLflow is configured).
    pub fn open_postgres(uri: &str) -> anyhow::Result<Self> {
        let name = wasmflow_store::redact_password(uri);
        let conn = PgConn::connect(uri)
            .and_then(PgConn::read_only)
            .with_context(|| format!("cannot open '{name}'"))?;
        Self::new(Box::new(conn), name)
    }

    fn new(conn: Box<dyn SqlConn>, name: String) -> anyhow::Result<Self> {
        let mut source = Self {
            conn,
            name,
            revision: String::new(),
            columns: HashMap::new(),
        };
        if !source.has_table("alembic_version")? {
            bail!(
                "'{}' is not an MLflow database (it has no alembic_version table)",
                source.name
            );
        }
        source.revision = source
            .conn
            .query_opt("SELECT version_num FROM alembic_version", &[])?
            .map(|r| r.text(0))
            .transpose()?
            .unwrap_or_default();
        Ok(source)
    }

    fn columns(&mut self, table: &str) -> anyhow::Result<&HashSet<String>> {
        if !self.columns.contains_key(table) {
            let found = self.conn.columns(table)?;
            self.columns.insert(table.to_string(), found);
        }
        Ok(&self.columns[table])
    }

    fn has_table(&mut self, table: &str) -> anyhow::Result<bool> {
        Ok(!self.columns(table)?.is_empty())
    }

    /// `column` when `table` has it, else `default` (an SQL expression).
    fn col(&mut self, table: &str, column: &str, default: &str) -> anyhow::Result<String> {
        Ok(if self.columns(table)?.contains(column) {
            column.to_string()
        } else {
            default.to_string()
        })
    }

    /// MLflow 3.x's workspaces: wasmflow has one, MLflow's `default`.
    fn workspace(&mut self, table: &str) -> anyhow::Result<&'static str> {
        Ok(if self.columns(table)?.contains("workspace") {
            " AND workspace = 'default'"
        } else {
            ""
        })
    }

    fn rows(&self, sql: &str, args: &[Arg<'_>]) -> anyhow::Result<Vec<Row>> {
        Ok(self.conn.query(sql, args)?)
    }

    fn pairs(&self, sql: &str, args: &[Arg<'_>]) -> anyhow::Result<Vec<(String, String)>> {
        self.rows(sql, args)?
            .iter()
            .map(|r| Ok((r.text(0)?, r.opt_text(1)?.unwrap_or_default())))
            .collect()
    }

    fn run_inputs(&mut self, run: &mut ImportRun) -> anyhow::Result<()> {
        if !self.has_table("inputs")? {
            return Ok(());
        }
        let step = self.col("inputs", "step", "0")?;
        let rows = self.rows(
            &format!(
                "SELECT input_uuid, source_type, source_id, destination_type, destination_id,
                     {step}
                 FROM inputs
                 WHERE (destination_type = 'RUN' AND destination_id = $1)
                    OR (source_type IN ('RUN_INPUT', 'RUN_OUTPUT') AND source_id = $1)"
            ),
            args![&run.run_uuid],
        )?;
        for r in rows {
            let input_uuid = r.text(0)?;
            let destination_id = r.text(4)?;
            match (r.text(1)?.as_str(), r.text(3)?.as_str()) {
                ("DATASET", "RUN") => {
                    let dataset = self.conn.query_opt(
                        "SELECT dataset_uuid, name, digest, dataset_source_type,
                             dataset_source, dataset_schema, dataset_profile
                         FROM datasets WHERE dataset_uuid = $1",
                        args![&r.text(2)?],
                    )?;
                    if let Some(d) = dataset {
                        run.datasets.push(ImportDataset {
                            dataset_uuid: d.text(0)?,
                            name: d.text(1)?,
                            digest: d.text(2)?,
                            source_type: d.text(3)?,
                            source: d.text(4)?,
                            schema: d.opt_text(5)?,
                            profile: d.opt_text(6)?,
                            tags: self.pairs(
                                "SELECT name, value FROM input_tags WHERE input_uuid = $1",
                                args![&input_uuid],
                            )?,
                        });
                    }
                }
                ("RUN_INPUT", "MODEL_INPUT") => run.model_inputs.push(destination_id),
                ("RUN_OUTPUT", "MODEL_OUTPUT") => run
                    .model_outputs
                    .push((destination_id, r.opt_int(5)?.unwrap_or(0))),
                _ => {}
            }
        }
        Ok(())
    }

    /// Where an old version's files are, for revisions before `storage_location`: what its
    /// source resolves to.
    fn storage_of(&mut self, source: &str) -> anyhow::Result<String> {
        if let Some(rest) = source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let uri = self
                .conn
                .query_opt(
                    "SELECT artifact_uri FROM runs WHERE run_uuid = $1",
                    args![run_id],
                )?
                .map(|r| r.opt_text(0))
                .transpose()?
                .flatten();
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
            let location = self
                .conn
                .query_opt(
                    "SELECT artifact_location FROM logged_models WHERE model_id = $1",
                    args![&id],
                )?
                .map(|r| r.opt_text(0))
                .transpose()?
                .flatten();
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
            self.name, self.revision
        )
    }

    fn experiments(&mut self) -> anyhow::Result<Vec<ImportExperiment>> {
        let created = self.col("experiments", "creation_time", "NULL")?;
        let updated = self.col("experiments", "last_update_time", "NULL")?;
        let ws = self.workspace("experiments")?;
        let rows = self.rows(
            &format!(
                "SELECT experiment_id, name, COALESCE(artifact_location, ''),
                     COALESCE(lifecycle_stage, 'active'), COALESCE({created}, 0),
                     COALESCE({updated}, {created}, 0)
                 FROM experiments WHERE 1 = 1 {ws} ORDER BY experiment_id"
            ),
            &[],
        )?;
        let mut experiments = Vec::with_capacity(rows.len());
        for r in rows {
            let experiment_id = r.int(0)?;
            experiments.push(ImportExperiment {
                experiment_id,
                name: r.text(1)?,
                artifact_location: r.text(2)?,
                lifecycle_stage: r.text(3)?,
                creation_time: r.int(4)?,
                last_update_time: r.int(5)?,
                tags: self.pairs(
                    "SELECT key, value FROM experiment_tags WHERE experiment_id = $1",
                    args![experiment_id],
                )?,
            });
        }
        Ok(experiments)
    }

    fn run_count(&mut self) -> anyhow::Result<u64> {
        let n = self
            .conn
            .query_opt("SELECT count(*) FROM runs", &[])?
            .map_or(Ok(0), |r| r.int(0))?;
        Ok(n as u64)
    }

    fn runs(&mut self, experiment: &ImportExperiment) -> anyhow::Result<Vec<ImportRun>> {
        let deleted_time = self.col("runs", "deleted_time", "NULL")?;
        let name = self.col("runs", "name", "NULL")?;
        let rows = self.rows(
            &format!(
                "SELECT run_uuid, COALESCE({name}, ''), COALESCE(user_id, ''),
                     COALESCE(status, 'FINISHED'), COALESCE(start_time, 0), end_time,
                     {deleted_time}, COALESCE(artifact_uri, ''),
                     COALESCE(lifecycle_stage, 'active')
                 FROM runs WHERE experiment_id = $1 ORDER BY start_time, run_uuid"
            ),
            args![experiment.experiment_id],
        )?;
        let mut runs = Vec::with_capacity(rows.len());
        for r in rows {
            let mut run = ImportRun {
                run_uuid: r.text(0)?,
                experiment_id: experiment.experiment_id,
                name: r.text(1)?,
                user_id: r.text(2)?,
                status: r.text(3)?,
                start_time: r.int(4)?,
                end_time: r.opt_int(5)?,
                deleted_time: r.opt_int(6)?,
                artifact_uri: r.text(7)?,
                lifecycle_stage: r.text(8)?,
                params: Vec::new(),
                tags: Vec::new(),
                datasets: Vec::new(),
                model_inputs: Vec::new(),
                model_outputs: Vec::new(),
            };
            RunStatus::parse(&run.status)
                .with_context(|| format!("run {} has status '{}'", run.run_uuid, run.status))?;
            run.params = self.pairs(
                "SELECT key, value FROM params WHERE run_uuid = $1",
                args![&run.run_uuid],
            )?;
            run.tags = self.pairs(
                "SELECT key, value FROM tags WHERE run_uuid = $1",
                args![&run.run_uuid],
            )?;
            if run.name.is_empty()
                && let Some((_, v)) = run.tags.iter().find(|(k, _)| k == "mlflow.runName")
            {
                run.name = v.clone();
            }
            self.run_inputs(&mut run)?;
            runs.push(run);
        }
        Ok(runs)
    }

    /// Pages through the run's history in the order of MLflow's key (each page starts after the
    /// last point of the one before), so neither database holds a cursor open across the
    /// writes and a history of any length is read in pages of `batch`.
    fn metrics(
        &mut self,
        run: &ImportRun,
        batch: usize,
        sink: &mut dyn FnMut(&[ImportMetric]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let step = self.col("metrics", "step", "0")?;
        let is_nan = self.col("metrics", "is_nan", "0")?;
        let order = format!("key, timestamp, {step}, value, {is_nan}");
        let first = format!(
            "SELECT key, value, timestamp, {step}, {is_nan} FROM metrics
             WHERE run_uuid = $1 ORDER BY {order} LIMIT $2"
        );
        let next = format!(
            "SELECT key, value, timestamp, {step}, {is_nan} FROM metrics
             WHERE run_uuid = $1 AND ({order}) > ($3, $4, $5, $6, $7)
             ORDER BY {order} LIMIT $2"
        );
        let limit = batch as i64;
        let mut last: Option<ImportMetric> = None;
        loop {
            let rows = match &last {
                None => self.rows(&first, args![&run.run_uuid, limit])?,
                Some(m) => self.rows(
                    &next,
                    args![
                        &run.run_uuid,
                        limit,
                        &m.key,
                        m.timestamp,
                        m.step,
                        // The stored value: MLflow keeps a NaN as 0 with its flag.
                        if m.is_nan { 0.0 } else { m.value },
                        m.is_nan
                    ],
                )?,
            };
            let page = rows
                .iter()
                .map(|r| {
                    let is_nan = r.bool(4)?;
                    Ok(ImportMetric {
                        key: r.text(0)?,
                        value: if is_nan {
                            f64::NAN
                        } else {
                            r.opt_real(1)?.unwrap_or(f64::NAN)
                        },
                        timestamp: r.int(2)?,
                        step: r.int(3)?,
                        is_nan,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if page.is_empty() {
                return Ok(());
            }
            sink(&page)?;
            if page.len() < batch {
                return Ok(());
            }
            last = page.into_iter().last();
        }
    }

    fn logged_models(
        &mut self,
        experiment: &ImportExperiment,
    ) -> anyhow::Result<Vec<ImportLoggedModel>> {
        if !self.has_table("logged_models")? {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "SELECT model_id, name, artifact_location, creation_timestamp_ms,
                 last_updated_timestamp_ms, status, COALESCE(lifecycle_stage, 'active'),
                 model_type, source_run_id, status_message
             FROM logged_models WHERE experiment_id = $1 ORDER BY creation_timestamp_ms",
            args![experiment.experiment_id],
        )?;
        let mut models = Vec::with_capacity(rows.len());
        for r in rows {
            let model_id = r.text(0)?;
            let status = LoggedModelStatus::parse(&r.int(5)?.to_string())
                .with_context(|| format!("logged model {model_id}"))?
                .as_str()
                .to_string();
            let metrics = self
                .rows(
                    "SELECT metric_name, metric_timestamp_ms, metric_step, metric_value, run_id,
                         dataset_name, dataset_digest
                     FROM logged_model_metrics WHERE model_id = $1",
                    args![&model_id],
                )?
                .iter()
                .map(|m| {
                    let value = m.opt_real(3)?;
                    Ok(ImportModelMetric {
                        metric: ImportMetric {
                            key: m.text(0)?,
                            timestamp: m.int(1)?,
                            step: m.int(2)?,
                            value: value.unwrap_or(f64::NAN),
                            is_nan: value.is_none(),
                        },
                        run_id: m.text(4)?,
                        dataset_name: m.opt_text(5)?,
                        dataset_digest: m.opt_text(6)?,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            models.push(ImportLoggedModel {
                experiment_id: experiment.experiment_id,
                name: r.text(1)?,
                artifact_location: r.text(2)?,
                creation_timestamp_ms: r.int(3)?,
                last_updated_timestamp_ms: r.int(4)?,
                status,
                lifecycle_stage: r.text(6)?,
                model_type: r.opt_text(7)?,
                source_run_id: r.opt_text(8)?,
                status_message: r.opt_text(9)?,
                params: self.pairs(
                    "SELECT param_key, param_value FROM logged_model_params WHERE model_id = $1",
                    args![&model_id],
                )?,
                tags: self.pairs(
                    "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = $1",
                    args![&model_id],
                )?,
                metrics,
                model_id,
            });
        }
        Ok(models)
    }

    fn registered_models(&mut self) -> anyhow::Result<Vec<ImportRegisteredModel>> {
        if !self.has_table("registered_models")? {
            return Ok(Vec::new());
        }
        let ws = self.workspace("registered_models")?;
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
        let rows = self.rows(
            &format!(
                "SELECT name, COALESCE(creation_time, 0),
                     COALESCE(last_updated_time, creation_time, 0), description
                 FROM registered_models WHERE 1 = 1 {ws} ORDER BY name"
            ),
            &[],
        )?;
        let mut models = Vec::with_capacity(rows.len());
        for r in rows {
            let mut m = ImportRegisteredModel {
                name: r.text(0)?,
                creation_time: r.int(1)?,
                last_updated_time: r.int(2)?,
                description: r.opt_text(3)?,
                tags: Vec::new(),
                versions: Vec::new(),
                aliases: Vec::new(),
            };
            m.tags = self.pairs(
                &format!("SELECT key, value FROM registered_model_tags WHERE name = $1 {tag_ws}"),
                args![&m.name],
            )?;
            let versions = self.rows(
                &format!(
                    "SELECT version, COALESCE(creation_time, 0),
                         COALESCE(last_updated_time, creation_time, 0), description, user_id,
                         COALESCE(current_stage, 'None'), COALESCE(source, ''), {storage},
                         COALESCE(run_id, ''), COALESCE({run_link}, ''),
                         COALESCE(status, 'READY'), status_message
                     FROM model_versions WHERE name = $1 {version_ws} ORDER BY version"
                ),
                args![&m.name],
            )?;
            for v in versions {
                let version = v.int(0)?;
                let source = v.text(6)?;
                let storage_location = match v.opt_text(7)?.filter(|s| !s.is_empty()) {
                    Some(s) => s,
                    None => self.storage_of(&source)?,
                };
                m.versions.push(ImportModelVersion {
                    version,
                    creation_time: v.int(1)?,
                    last_updated_time: v.int(2)?,
                    description: v.opt_text(3)?,
                    user_id: v.opt_text(4)?,
                    current_stage: v.text(5)?,
                    model_id: model_id_of(&source),
                    storage_location,
                    source,
                    run_id: v.text(8)?,
                    run_link: v.text(9)?,
                    status: v.text(10)?,
                    status_message: v.opt_text(11)?,
                    tags: self.pairs(
                        &format!(
                            "SELECT key, value FROM model_version_tags
                             WHERE name = $1 AND version = $2 {version_tag_ws}"
                        ),
                        args![&m.name, version],
                    )?,
                });
            }
            if let Some(ws) = alias_ws {
                m.aliases = self
                    .rows(
                        &format!(
                            "SELECT alias, version FROM registered_model_aliases
                             WHERE name = $1 {ws}"
                        ),
                        args![&m.name],
                    )?
                    .iter()
                    .map(|a| Ok((a.text(0)?, a.int(1)?)))
                    .collect::<anyhow::Result<_>>()?;
            }
            models.push(m);
        }
        Ok(models)
    }
}
