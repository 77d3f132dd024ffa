//! Writing another tracking store's entities into a wasmflow database with their own ids
//! (`wasmflow import mlflow`). Every call is one transaction, so an import killed halfway keeps
//! what it committed; every row goes in with `INSERT OR IGNORE` on its key, so running the import
//! again adds only what is missing and counts the rest as already there.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use wasmflow_core::entities::Metric;
use wasmflow_core::{Error, Result};

use super::sql_err;

/// How many rows of one kind a call wrote, and how many were there already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub inserted: u64,
    pub present: u64,
}

impl Tally {
    fn count(&mut self, changed: usize) {
        if changed > 0 {
            self.inserted += 1;
        } else {
            self.present += 1;
        }
    }

    pub fn add(&mut self, other: Tally) {
        self.inserted += other.inserted;
        self.present += other.present;
    }
}

#[derive(Debug, Clone)]
pub struct ImportExperiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ImportDataset {
    pub dataset_uuid: String,
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    /// The input's tags (`mlflow.data.context`, ...).
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ImportRun {
    pub run_uuid: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub deleted_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub datasets: Vec<ImportDataset>,
    pub model_inputs: Vec<String>,
    /// (model id, step)
    pub model_outputs: Vec<(String, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportMetric {
    pub key: String,
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
    pub is_nan: bool,
}

/// A metric logged to a logged model: MLflow keeps it beside the run's copy; wasmflow marks the
/// run's point with the model.
#[derive(Debug, Clone)]
pub struct ImportModelMetric {
    pub run_id: String,
    pub metric: ImportMetric,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ImportLoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    /// wasmflow's name of the status (`LOGGED_MODEL_READY`, ...).
    pub status: String,
    pub lifecycle_stage: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status_message: Option<String>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub metrics: Vec<ImportModelMetric>,
}

#[derive(Debug, Clone)]
pub struct ImportModelVersion {
    pub version: i64,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub current_stage: String,
    pub source: String,
    pub storage_location: String,
    pub run_id: String,
    pub run_link: String,
    pub model_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ImportRegisteredModel {
    pub name: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    pub versions: Vec<ImportModelVersion>,
    /// (alias, version)
    pub aliases: Vec<(String, i64)>,
}

/// What one call wrote, per kind of row.
#[derive(Debug, Default, Clone)]
pub struct ImportTallies {
    pub entities: Tally,
    pub tags: Tally,
    pub params: Tally,
    pub inputs: Tally,
    pub metrics: Tally,
    pub versions: Tally,
    pub version_tags: Tally,
    pub aliases: Tally,
}

/// A wasmflow database opened for an import: migrated, written directly (not through the
/// server's writer thread), one transaction per call.
pub struct ImportTarget {
    conn: Connection,
}

impl ImportTarget {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: super::open_migrated(path)?,
        })
    }

    fn tx<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction().map_err(sql_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(sql_err)?;
        Ok(out)
    }

    /// Inserts the experiment under its own id. An experiment that wasmflow created by itself
    /// (the Default experiment 0 of a new database, nothing in it yet) takes the source's
    /// fields; any other clash of id or name is an error, never a silent merge.
    pub fn experiment(&mut self, e: &ImportExperiment) -> Result<ImportTallies> {
        self.tx(|tx| {
            let mut t = ImportTallies::default();
            let existing: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT name, artifact_location, creation_time FROM experiments
                     WHERE experiment_id = ?1",
                    [e.experiment_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(sql_err)?;
            match existing {
                Some((name, location, created)) => {
                    let same = name == e.name
                        && location == e.artifact_location
                        && created == e.creation_time;
                    if same {
                        t.entities.present += 1;
                    } else if e.experiment_id == 0 && is_empty_experiment(tx, 0)? {
                        tx.execute(
                            "UPDATE experiments SET name = ?1, artifact_location = ?2,
                                 lifecycle_stage = ?3, creation_time = ?4, last_update_time = ?5
                             WHERE experiment_id = 0",
                            params![
                                e.name,
                                e.artifact_location,
                                e.lifecycle_stage,
                                e.creation_time,
                                e.last_update_time
                            ],
                        )
                        .map_err(sql_err)?;
                        t.entities.inserted += 1;
                    } else if name != e.name {
                        return Err(Error::invalid(format!(
                            "experiment id {} is '{name}' in the target but '{}' in the source",
                            e.experiment_id, e.name
                        )));
                    } else {
                        // Same id and name, but moved or recreated since: keep the target's.
                        t.entities.present += 1;
                    }
                }
                None => {
                    let taken: Option<i64> = tx
                        .query_row(
                            "SELECT experiment_id FROM experiments WHERE name = ?1",
                            [&e.name],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(sql_err)?;
                    if let Some(id) = taken {
                        return Err(Error::invalid(format!(
                            "experiment '{}' (id {} in the source) exists in the target with id {id}",
                            e.name, e.experiment_id
                        )));
                    }
                    tx.execute(
                        "INSERT INTO experiments (experiment_id, name, artifact_location,
                             lifecycle_stage, creation_time, last_update_time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            e.experiment_id,
                            e.name,
                            e.artifact_location,
                            e.lifecycle_stage,
                            e.creation_time,
                            e.last_update_time
                        ],
                    )
                    .map_err(sql_err)?;
                    t.entities.inserted += 1;
                }
            }
            for (k, v) in &e.tags {
                let n = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO experiment_tags (experiment_id, key, value)
                         VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_err)?
                    .execute(params![e.experiment_id, k, v])
                    .map_err(sql_err)?;
                t.tags.count(n);
            }
            Ok(t)
        })
    }

    /// The run with its params, tags and inputs; its metrics come in [`Self::metrics`].
    pub fn run(&mut self, r: &ImportRun) -> Result<ImportTallies> {
        self.tx(|tx| {
            let mut t = ImportTallies::default();
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO runs (run_uuid, experiment_id, name, user_id, status,
                         start_time, end_time, deleted_time, artifact_uri, lifecycle_stage)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        r.run_uuid,
                        r.experiment_id,
                        r.name,
                        r.user_id,
                        r.status,
                        r.start_time,
                        r.end_time,
                        r.deleted_time,
                        r.artifact_uri,
                        r.lifecycle_stage
                    ],
                )
                .map_err(sql_err)?;
            t.entities.count(n);
            for (k, v) in &r.params {
                let n = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO params (run_uuid, key, value) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_err)?
                    .execute(params![r.run_uuid, k, v])
                    .map_err(sql_err)?;
                t.params.count(n);
            }
            for (k, v) in &r.tags {
                let n = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO tags (run_uuid, key, value) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(sql_err)?
                    .execute(params![r.run_uuid, k, v])
                    .map_err(sql_err)?;
                t.tags.count(n);
            }
            for d in &r.datasets {
                // wasmflow keeps one row per (experiment, name, digest), as MLflow does; a
                // dataset already there under another uuid is the same dataset.
                let uuid: String = match tx
                    .query_row(
                        "SELECT dataset_uuid FROM datasets
                         WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3",
                        params![r.experiment_id, d.name, d.digest],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?
                {
                    Some(uuid) => uuid,
                    None => {
                        tx.execute(
                            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest,
                                 source_type, source, schema, profile)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![
                                d.dataset_uuid,
                                r.experiment_id,
                                d.name,
                                d.digest,
                                d.source_type,
                                d.source,
                                d.schema,
                                d.profile
                            ],
                        )
                        .map_err(sql_err)?;
                        d.dataset_uuid.clone()
                    }
                };
                let tags = serde_json::Value::Array(
                    d.tags
                        .iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect(),
                )
                .to_string();
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO run_dataset_inputs (run_uuid, dataset_uuid, tags)
                         VALUES (?1, ?2, ?3)",
                        params![r.run_uuid, uuid, tags],
                    )
                    .map_err(sql_err)?;
                t.inputs.count(n);
            }
            for m in &r.model_inputs {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO run_model_inputs (run_uuid, model_id) VALUES (?1, ?2)",
                        params![r.run_uuid, m],
                    )
                    .map_err(sql_err)?;
                t.inputs.count(n);
            }
            for (m, step) in &r.model_outputs {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO run_model_outputs (run_uuid, model_id, step)
                         VALUES (?1, ?2, ?3)",
                        params![r.run_uuid, m, step],
                    )
                    .map_err(sql_err)?;
                t.inputs.count(n);
            }
            Ok(t)
        })
    }

    /// A batch of a run's metric points, in one transaction.
    pub fn metrics(&mut self, run_id: &str, points: &[ImportMetric]) -> Result<Tally> {
        self.tx(|tx| {
            let mut t = Tally::default();
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO metrics (run_uuid, key, step, timestamp, value, is_nan)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql_err)?;
            for m in points {
                let value = if m.is_nan {
                    0.0
                } else {
                    Metric::stored_value(m.value)
                };
                let n = stmt
                    .execute(params![run_id, m.key, m.step, m.timestamp, value, m.is_nan])
                    .map_err(sql_err)?;
                t.count(n);
            }
            Ok(t)
        })
    }

    /// Derives the run's latest points from its whole history, once all of it is in: the
    /// greatest (step, timestamp, value) of each key, as the store keeps them while logging.
    pub fn finish_run(&mut self, run_id: &str) -> Result<()> {
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO latest_metrics
                     (run_uuid, key, experiment_id, step, timestamp, value, is_nan)
                 SELECT m.run_uuid, m.key, r.experiment_id, m.step, m.timestamp, m.value, m.is_nan
                 FROM (
                     SELECT *, row_number() OVER (
                         PARTITION BY key ORDER BY step DESC, timestamp DESC, value DESC) AS rank
                     FROM metrics WHERE run_uuid = ?1) m
                 JOIN runs r ON r.run_uuid = m.run_uuid
                 WHERE m.rank = 1
                 ON CONFLICT (run_uuid, key) DO UPDATE SET
                     step = excluded.step, timestamp = excluded.timestamp,
                     value = excluded.value, is_nan = excluded.is_nan",
                [run_id],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    pub fn logged_model(&mut self, m: &ImportLoggedModel) -> Result<ImportTallies> {
        self.tx(|tx| {
            let mut t = ImportTallies::default();
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO logged_models (model_id, experiment_id, name,
                         artifact_location, creation_timestamp_ms, last_updated_timestamp_ms,
                         status, lifecycle_stage, model_type, source_run_id, status_message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        m.model_id,
                        m.experiment_id,
                        m.name,
                        m.artifact_location,
                        m.creation_timestamp_ms,
                        m.last_updated_timestamp_ms,
                        m.status,
                        m.lifecycle_stage,
                        m.model_type,
                        m.source_run_id,
                        m.status_message
                    ],
                )
                .map_err(sql_err)?;
            t.entities.count(n);
            for (k, v) in &m.params {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO logged_model_params (model_id, key, value)
                         VALUES (?1, ?2, ?3)",
                        params![m.model_id, k, v],
                    )
                    .map_err(sql_err)?;
                t.params.count(n);
            }
            for (k, v) in &m.tags {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO logged_model_tags (model_id, key, value)
                         VALUES (?1, ?2, ?3)",
                        params![m.model_id, k, v],
                    )
                    .map_err(sql_err)?;
                t.tags.count(n);
            }
            for mm in &m.metrics {
                let p = &mm.metric;
                let value = if p.is_nan {
                    0.0
                } else {
                    Metric::stored_value(p.value)
                };
                // The run's own copy of the point (same key, step and time) is marked with the
                // model; a point only the model has is added to the run.
                let marked = tx
                    .execute(
                        "UPDATE metrics SET model_id = ?1, dataset_name = ?2, dataset_digest = ?3
                         WHERE run_uuid = ?4 AND key = ?5 AND step = ?6 AND timestamp = ?7
                           AND model_id IS NULL",
                        params![
                            m.model_id,
                            mm.dataset_name,
                            mm.dataset_digest,
                            mm.run_id,
                            p.key,
                            p.step,
                            p.timestamp
                        ],
                    )
                    .map_err(sql_err)?;
                let n = if marked > 0 {
                    marked
                } else {
                    tx.execute(
                        "INSERT OR IGNORE INTO metrics (run_uuid, key, step, timestamp, value,
                             is_nan, model_id, dataset_name, dataset_digest)
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
                         WHERE EXISTS (SELECT 1 FROM runs WHERE run_uuid = ?1)
                           AND NOT EXISTS (SELECT 1 FROM metrics WHERE run_uuid = ?1
                               AND key = ?2 AND step = ?3 AND timestamp = ?4 AND model_id = ?7)",
                        params![
                            mm.run_id,
                            p.key,
                            p.step,
                            p.timestamp,
                            value,
                            p.is_nan,
                            m.model_id,
                            mm.dataset_name,
                            mm.dataset_digest
                        ],
                    )
                    .map_err(sql_err)?
                };
                t.metrics.count(n);
            }
            Ok(t)
        })
    }

    pub fn registered_model(&mut self, m: &ImportRegisteredModel) -> Result<ImportTallies> {
        self.tx(|tx| {
            let mut t = ImportTallies::default();
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO registered_models
                         (name, creation_time, last_updated_time, description)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![m.name, m.creation_time, m.last_updated_time, m.description],
                )
                .map_err(sql_err)?;
            t.entities.count(n);
            for (k, v) in &m.tags {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO registered_model_tags (name, key, value)
                         VALUES (?1, ?2, ?3)",
                        params![m.name, k, v],
                    )
                    .map_err(sql_err)?;
                t.tags.count(n);
            }
            for v in &m.versions {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO model_versions (name, version, creation_time,
                             last_updated_time, description, user_id, current_stage, source,
                             storage_location, run_id, run_link, model_id, status, status_message)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                        params![
                            m.name,
                            v.version,
                            v.creation_time,
                            v.last_updated_time,
                            v.description,
                            v.user_id,
                            v.current_stage,
                            v.source,
                            v.storage_location,
                            v.run_id,
                            v.run_link,
                            v.model_id,
                            v.status,
                            v.status_message
                        ],
                    )
                    .map_err(sql_err)?;
                t.versions.count(n);
                for (k, val) in &v.tags {
                    let n = tx
                        .execute(
                            "INSERT OR IGNORE INTO model_version_tags (name, version, key, value)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![m.name, v.version, k, val],
                        )
                        .map_err(sql_err)?;
                    t.version_tags.count(n);
                }
            }
            for (alias, version) in &m.aliases {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO registered_model_aliases (name, alias, version)
                         VALUES (?1, ?2, ?3)",
                        params![m.name, alias, version],
                    )
                    .map_err(sql_err)?;
                t.aliases.count(n);
            }
            Ok(t)
        })
    }

    /// Rows of `table` whose `column` is one of `keys`: the final check of an import counts
    /// what the target holds of what the source had.
    pub fn count_present(&self, table: &str, column: &str, keys: &[String]) -> Result<u64> {
        let known = [
            ("experiments", "experiment_id"),
            ("runs", "run_uuid"),
            ("metrics", "run_uuid"),
            ("params", "run_uuid"),
            ("tags", "run_uuid"),
            ("logged_models", "model_id"),
            ("registered_models", "name"),
            ("model_versions", "name"),
        ];
        if !known.contains(&(table, column)) {
            return Err(Error::internal(format!("cannot count '{table}.{column}'")));
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM {table} WHERE {column} = ?1"))
            .map_err(sql_err)?;
        let mut total = 0u64;
        for k in keys {
            let n: i64 = stmt.query_row([k], |r| r.get(0)).map_err(sql_err)?;
            total += n as u64;
        }
        Ok(total)
    }
}

fn is_empty_experiment(tx: &Transaction, id: i64) -> Result<bool> {
    tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM runs WHERE experiment_id = ?1)
            AND NOT EXISTS (SELECT 1 FROM logged_models WHERE experiment_id = ?1)
            AND NOT EXISTS (SELECT 1 FROM experiment_tags WHERE experiment_id = ?1)",
        [id],
        |r| r.get(0),
    )
    .map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(id: i64, name: &str) -> ImportExperiment {
        ImportExperiment {
            experiment_id: id,
            name: name.into(),
            artifact_location: format!("/old/mlruns/{id}"),
            lifecycle_stage: "active".into(),
            creation_time: 1,
            last_update_time: 2,
            tags: vec![("team".into(), "ml".into())],
        }
    }

    fn run(id: &str, experiment_id: i64) -> ImportRun {
        ImportRun {
            run_uuid: id.into(),
            experiment_id,
            name: "r".into(),
            user_id: "u".into(),
            status: "FINISHED".into(),
            start_time: 10,
            end_time: Some(20),
            deleted_time: None,
            artifact_uri: format!("/old/mlruns/{experiment_id}/{id}/artifacts"),
            lifecycle_stage: "active".into(),
            params: vec![("a".into(), "1".into())],
            tags: vec![("t".into(), "v".into())],
            datasets: Vec::new(),
            model_inputs: Vec::new(),
            model_outputs: vec![("m-1".into(), 0)],
        }
    }

    fn point(step: i64, value: f64) -> ImportMetric {
        ImportMetric {
            key: "loss".into(),
            step,
            timestamp: 100 + step,
            value,
            is_nan: value.is_nan(),
        }
    }

    #[test]
    fn a_second_import_finds_everything_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut target = ImportTarget::open(&dir.path().join("db.sqlite")).unwrap();
        let points = [point(0, 1.0), point(1, f64::NAN), point(2, 0.5)];
        for round in 0..2 {
            let e = target.experiment(&experiment(7, "seven")).unwrap();
            let r = target.run(&run("abc", 7)).unwrap();
            let m = target.metrics("abc", &points).unwrap();
            target.finish_run("abc").unwrap();
            let (new, old) = if round == 0 { (1, 0) } else { (0, 1) };
            assert_eq!(
                e.entities,
                Tally {
                    inserted: new,
                    present: old
                }
            );
            assert_eq!(
                e.tags,
                Tally {
                    inserted: new,
                    present: old
                }
            );
            assert_eq!(
                r.entities,
                Tally {
                    inserted: new,
                    present: old
                }
            );
            assert_eq!(
                r.params,
                Tally {
                    inserted: new,
                    present: old
                }
            );
            assert_eq!(
                r.inputs,
                Tally {
                    inserted: new,
                    present: old
                }
            );
            assert_eq!(
                m,
                Tally {
                    inserted: 3 * new,
                    present: 3 * old
                }
            );
        }
        let latest: (i64, f64) = target
            .conn
            .query_row(
                "SELECT step, value FROM latest_metrics WHERE run_uuid = 'abc' AND key = 'loss'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(latest, (2, 0.5));
    }

    #[test]
    fn a_clashing_experiment_is_refused_and_the_fresh_default_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut target = ImportTarget::open(&path).unwrap();
        target
            .conn
            .execute(
                "INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 5, 5)",
                [],
            )
            .unwrap();
        let t = target.experiment(&experiment(0, "Default")).unwrap();
        assert_eq!(t.entities.inserted, 1);
        let location: String = target
            .conn
            .query_row(
                "SELECT artifact_location FROM experiments WHERE experiment_id = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(location, "/old/mlruns/0");
        target.experiment(&experiment(3, "three")).unwrap();
        let err = target.experiment(&experiment(4, "three")).unwrap_err();
        assert!(
            err.to_string().contains("exists in the target with id 3"),
            "{err}"
        );
        let err = target.experiment(&experiment(3, "other")).unwrap_err();
        assert!(
            err.to_string().contains("is 'three' in the target"),
            "{err}"
        );
    }

    #[test]
    fn an_mlflow_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlflow.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            .unwrap();
        let err = ImportTarget::open(&path).err().unwrap();
        assert!(
            err.to_string()
                .contains("wasmflow import mlflow --from sqlite:///"),
            "{err}"
        );
        let err = ImportTarget::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
