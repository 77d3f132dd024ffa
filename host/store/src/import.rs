//! Writing another tracking store's entities into a wasmflow database (SQLite or PostgreSQL) with
//! their own ids (`wasmflow import mlflow`). Every call is one transaction, so an import killed
//! halfway keeps what it committed; every row goes in with `ON CONFLICT DO NOTHING` on its key,
//! so running the import again adds only what is missing and counts the rest as already there.

use std::path::Path;

use wasmflow_core::entities::Metric;
use wasmflow_core::{Error, Result};

use crate::args;
use crate::sql_conn::{Arg, Dialect, PgConn, SqlConn, in_transaction, metric_key_ids};

/// How many rows of one kind a call wrote, and how many were there already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub inserted: u64,
    pub present: u64,
}

impl Tally {
    fn count(&mut self, changed: u64) {
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

/// A point's value as stored: NaN as 0 with its flag, ±inf as ±max float.
fn stored(m: &ImportMetric) -> (f64, i64) {
    if m.is_nan {
        (0.0, 1)
    } else {
        (Metric::stored_value(m.value), 0)
    }
}

/// Metric points per INSERT statement: 6 parameters each, well under both databases' limits
/// (SQLite 32,766, PostgreSQL 65,535).
const POINTS_PER_STATEMENT: usize = 500;

/// A wasmflow database (SQLite or PostgreSQL) opened for an import: migrated, written directly
/// (not through a server), one transaction per call. The statements are the same for both
/// backends ([`SqlConn`]); only the experiment id sequence is PostgreSQL's own.
pub struct ImportTarget {
    conn: Box<dyn SqlConn>,
}

/// Inserts the `(owner, key, value)` rows of one key-value table (tags, params), keeping rows
/// already there; `into` names the table and its columns. Each row counts in `tally`.
fn insert_pairs(
    c: &dyn SqlConn,
    into: &str,
    owner: Arg<'_>,
    pairs: &[(String, String)],
    tally: &mut Tally,
) -> Result<()> {
    let sql = format!("INSERT INTO {into} VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
    for (k, v) in pairs {
        tally.count(c.execute(&sql, &[owner, Arg::from(k), Arg::from(v)])?);
    }
    Ok(())
}

impl ImportTarget {
    /// A SQLite file, created and migrated if needed; an MLflow database is refused.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: Box::new(crate::sqlite::open_migrated(path)?),
        })
    }

    /// A PostgreSQL database, migrated if needed; an MLflow database is refused.
    pub fn open_postgres(uri: &str) -> Result<Self> {
        let conn = PgConn::connect(uri)?;
        crate::postgres::upgrade(&conn.pool)?;
        Ok(Self {
            conn: Box::new(conn),
        })
    }

    fn tx<T>(&mut self, f: impl FnOnce(&dyn SqlConn) -> Result<T>) -> Result<T> {
        in_transaction(self.conn.as_ref(), f)
    }

    /// Inserts the experiment under its own id. An experiment that wasmflow created by itself
    /// (the Default experiment 0 of a new database, nothing in it yet) takes the source's
    /// fields; any other clash of id or name is an error, never a silent merge.
    pub fn experiment(&mut self, e: &ImportExperiment) -> Result<ImportTallies> {
        self.tx(|c| {
            let mut t = ImportTallies::default();
            let existing = c.query_opt(
                "SELECT name, artifact_location, creation_time FROM experiments
                 WHERE experiment_id = $1",
                args![e.experiment_id],
            )?;
            match existing {
                Some(row) => {
                    let name = row.text(0)?;
                    let same = name == e.name
                        && row.text(1)? == e.artifact_location
                        && row.int(2)? == e.creation_time;
                    if same {
                        t.entities.present += 1;
                    } else if e.experiment_id == 0 && is_empty_experiment(c, 0)? {
                        c.execute(
                            "UPDATE experiments SET name = $1, artifact_location = $2,
                                 lifecycle_stage = $3, creation_time = $4, last_update_time = $5
                             WHERE experiment_id = 0",
                            args![
                                &e.name,
                                &e.artifact_location,
                                &e.lifecycle_stage,
                                e.creation_time,
                                e.last_update_time
                            ],
                        )?;
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
                    let taken = c.query_opt(
                        "SELECT experiment_id FROM experiments WHERE name = $1",
                        args![&e.name],
                    )?;
                    if let Some(row) = taken {
                        return Err(Error::invalid(format!(
                            "experiment '{}' (id {} in the source) exists in the target with id {}",
                            e.name,
                            e.experiment_id,
                            row.int(0)?
                        )));
                    }
                    c.execute(
                        "INSERT INTO experiments (experiment_id, name, artifact_location,
                             lifecycle_stage, creation_time, last_update_time)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        args![
                            e.experiment_id,
                            &e.name,
                            &e.artifact_location,
                            &e.lifecycle_stage,
                            e.creation_time,
                            e.last_update_time
                        ],
                    )?;
                    if c.dialect() == Dialect::Postgres {
                        // An id given explicitly does not move the identity sequence: the next
                        // experiment the server creates must come after the imported ones.
                        c.execute(
                            "SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'),
                                 max(experiment_id))
                             FROM experiments HAVING max(experiment_id) > 0",
                            &[],
                        )?;
                    }
                    t.entities.inserted += 1;
                }
            }
            insert_pairs(
                c,
                "experiment_tags (experiment_id, key, value)",
                Arg::from(e.experiment_id),
                &e.tags,
                &mut t.tags,
            )?;
            Ok(t)
        })
    }

    /// The run with its params, tags and inputs; its metrics come in [`Self::metrics`].
    pub fn run(&mut self, r: &ImportRun) -> Result<ImportTallies> {
        self.tx(|c| {
            let mut t = ImportTallies::default();
            let n = c.execute(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status,
                     start_time, end_time, deleted_time, artifact_uri, lifecycle_stage)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING",
                args![
                    &r.run_uuid,
                    r.experiment_id,
                    &r.name,
                    &r.user_id,
                    &r.status,
                    r.start_time,
                    r.end_time,
                    r.deleted_time,
                    &r.artifact_uri,
                    &r.lifecycle_stage
                ],
            )?;
            t.entities.count(n);
            insert_pairs(
                c,
                "params (run_uuid, key, value)",
                Arg::from(&r.run_uuid),
                &r.params,
                &mut t.params,
            )?;
            insert_pairs(
                c,
                "tags (run_uuid, key, value)",
                Arg::from(&r.run_uuid),
                &r.tags,
                &mut t.tags,
            )?;
            for d in &r.datasets {
                // wasmflow keeps one row per (experiment, name, digest), as MLflow does; a
                // dataset already there under another uuid is the same dataset.
                let found = c.query_opt(
                    "SELECT dataset_uuid FROM datasets
                     WHERE experiment_id = $1 AND name = $2 AND digest = $3",
                    args![r.experiment_id, &d.name, &d.digest],
                )?;
                let uuid = match found {
                    Some(row) => row.text(0)?,
                    None => {
                        c.execute(
                            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest,
                                 source_type, source, schema, profile)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            args![
                                &d.dataset_uuid,
                                r.experiment_id,
                                &d.name,
                                &d.digest,
                                &d.source_type,
                                &d.source,
                                &d.schema,
                                &d.profile
                            ],
                        )?;
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
                let n = c.execute(
                    "INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, tags)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    args![&r.run_uuid, &uuid, &tags],
                )?;
                t.inputs.count(n);
            }
            for m in &r.model_inputs {
                let n = c.execute(
                    "INSERT INTO run_model_inputs (run_uuid, model_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    args![&r.run_uuid, m],
                )?;
                t.inputs.count(n);
            }
            for (m, step) in &r.model_outputs {
                let n = c.execute(
                    "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    args![&r.run_uuid, m, *step],
                )?;
                t.inputs.count(n);
            }
            Ok(t)
        })
    }

    /// A batch of a run's metric points, in one transaction, several hundred points per
    /// statement (one round trip each on PostgreSQL).
    pub fn metrics(&mut self, run_id: &str, points: &[ImportMetric]) -> Result<Tally> {
        self.tx(|c| {
            let mut t = Tally::default();
            let ids = metric_key_ids(c, points.iter().map(|m| m.key.as_str()))?;
            for chunk in points.chunks(POINTS_PER_STATEMENT) {
                let values: Vec<(f64, i64)> = chunk.iter().map(stored).collect();
                let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 6);
                let mut rows = Vec::with_capacity(chunk.len());
                for (i, (m, (value, is_nan))) in chunk.iter().zip(&values).enumerate() {
                    let p = i * 6;
                    rows.push(format!(
                        "((SELECT run_key FROM runs WHERE run_uuid = ${}), ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6
                    ));
                    args.extend([
                        Arg::from(run_id),
                        Arg::from(ids.get(&m.key)?),
                        Arg::from(m.step),
                        Arg::from(m.timestamp),
                        Arg::from(*value),
                        Arg::from(*is_nan),
                    ]);
                }
                let n = c.execute(
                    &format!(
                        "INSERT INTO metrics (run_key, metric_key_id, step, timestamp, value,
                                              is_nan)
                         VALUES {} ON CONFLICT DO NOTHING",
                        rows.join(", ")
                    ),
                    &args,
                )?;
                t.inserted += n;
                t.present += chunk.len() as u64 - n;
            }
            Ok(t)
        })
    }

    /// Sets the run's latest value of every metric from its whole history.
    pub fn finish_run(&mut self, run_id: &str) -> Result<()> {
        self.tx(|c| {
            c.execute(
                "INSERT INTO latest_metrics
                     (run_key, metric_key_id, experiment_id, step, timestamp, value, is_nan)
                 SELECT ranked.run_key, ranked.metric_key_id, r.experiment_id, ranked.step,
                     ranked.timestamp, ranked.value, ranked.is_nan FROM (
                     SELECT run_key, metric_key_id, step, timestamp, value, is_nan,
                         row_number() OVER (PARTITION BY metric_key_id
                             ORDER BY step DESC, timestamp DESC, value DESC) AS rank
                     FROM metrics
                     WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $1)) AS ranked
                 JOIN runs r ON r.run_key = ranked.run_key
                 WHERE ranked.rank = 1
                 ON CONFLICT (run_key, metric_key_id) DO UPDATE SET
                     step = excluded.step, timestamp = excluded.timestamp,
                     value = excluded.value, is_nan = excluded.is_nan",
                args![run_id],
            )?;
            Ok(())
        })
    }

    pub fn logged_model(&mut self, m: &ImportLoggedModel) -> Result<ImportTallies> {
        self.tx(|c| {
            let mut t = ImportTallies::default();
            let n = c.execute(
                "INSERT INTO logged_models (model_id, experiment_id, name,
                     artifact_location, creation_timestamp_ms, last_updated_timestamp_ms,
                     status, lifecycle_stage, model_type, source_run_id, status_message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT DO NOTHING",
                args![
                    &m.model_id,
                    m.experiment_id,
                    &m.name,
                    &m.artifact_location,
                    m.creation_timestamp_ms,
                    m.last_updated_timestamp_ms,
                    &m.status,
                    &m.lifecycle_stage,
                    &m.model_type,
                    &m.source_run_id,
                    &m.status_message
                ],
            )?;
            t.entities.count(n);
            insert_pairs(
                c,
                "logged_model_params (model_id, key, value)",
                Arg::from(&m.model_id),
                &m.params,
                &mut t.params,
            )?;
            insert_pairs(
                c,
                "logged_model_tags (model_id, key, value)",
                Arg::from(&m.model_id),
                &m.tags,
                &mut t.tags,
            )?;
            let ids = metric_key_ids(c, m.metrics.iter().map(|mm| mm.metric.key.as_str()))?;
            for mm in &m.metrics {
                let p = &mm.metric;
                let key_id = ids.get(&p.key)?;
                let (value, is_nan) = stored(p);
                // The run's own copy of the point (same key, step and time) is marked with the
                // model; a point only the model has is added to the run.
                let marked = c.execute(
                    "UPDATE metrics SET model_id = $1, dataset_name = $2, dataset_digest = $3
                     WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $4)
                       AND metric_key_id = $5 AND step = $6 AND timestamp = $7
                       AND model_id IS NULL",
                    args![
                        &m.model_id,
                        &mm.dataset_name,
                        &mm.dataset_digest,
                        &mm.run_id,
                        key_id,
                        p.step,
                        p.timestamp
                    ],
                )?;
                let n = if marked > 0 {
                    marked
                } else {
                    let missing = c
                        .query_opt(
                            "SELECT 1 FROM runs r WHERE r.run_uuid = $1
                               AND NOT EXISTS (SELECT 1 FROM metrics m
                                   WHERE m.run_key = r.run_key
                                   AND m.metric_key_id = $2 AND m.step = $3
                                   AND m.timestamp = $4 AND m.model_id = $5)",
                            args![&mm.run_id, key_id, p.step, p.timestamp, &m.model_id],
                        )?
                        .is_some();
                    if missing {
                        c.execute(
                            "INSERT INTO metrics (run_key, metric_key_id, step, timestamp, value,
                                 is_nan, model_id, dataset_name, dataset_digest)
                             VALUES ((SELECT run_key FROM runs WHERE run_uuid = $1),
                                 $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                            args![
                                &mm.run_id,
                                key_id,
                                p.step,
                                p.timestamp,
                                value,
                                is_nan,
                                &m.model_id,
                                &mm.dataset_name,
                                &mm.dataset_digest
                            ],
                        )?
                    } else {
                        0
                    }
                };
                t.metrics.count(n);
            }
            Ok(t)
        })
    }

    pub fn registered_model(&mut self, m: &ImportRegisteredModel) -> Result<ImportTallies> {
        self.tx(|c| {
            let mut t = ImportTallies::default();
            let n = c.execute(
                "INSERT INTO registered_models (name, creation_time, last_updated_time, description)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                args![&m.name, m.creation_time, m.last_updated_time, &m.description],
            )?;
            t.entities.count(n);
            insert_pairs(
                c,
                "registered_model_tags (name, key, value)",
                Arg::from(&m.name),
                &m.tags,
                &mut t.tags,
            )?;
            for v in &m.versions {
                let n = c.execute(
                    "INSERT INTO model_versions (name, version, creation_time,
                         last_updated_time, description, user_id, current_stage, source,
                         storage_location, run_id, run_link, model_id, status, status_message)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT DO NOTHING",
                    args![
                        &m.name,
                        v.version,
                        v.creation_time,
                        v.last_updated_time,
                        &v.description,
                        &v.user_id,
                        &v.current_stage,
                        &v.source,
                        &v.storage_location,
                        &v.run_id,
                        &v.run_link,
                        &v.model_id,
                        &v.status,
                        &v.status_message
                    ],
                )?;
                t.versions.count(n);
                for (k, val) in &v.tags {
                    let n = c.execute(
                        "INSERT INTO model_version_tags (name, version, key, value)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        args![&m.name, v.version, k, val],
                    )?;
                    t.version_tags.count(n);
                }
            }
            for (alias, version) in &m.aliases {
                let n = c.execute(
                    "INSERT INTO registered_model_aliases (name, alias, version)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    args![&m.name, alias, *version],
                )?;
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
        // Experiment ids are numbers in the schema; the others text. The metric tables name a
        // run by its run_key.
        let sql = if table == "metrics" {
            "SELECT count(*) FROM metrics
             WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $1)"
                .to_string()
        } else {
            format!("SELECT count(*) FROM {table} WHERE {column} = $1")
        };
        let mut total = 0u64;
        for k in keys {
            let arg = match (table, k.parse::<i64>()) {
                ("experiments", Ok(id)) => Arg::from(id),
                _ => Arg::from(k),
            };
            let row = self.conn.query_opt(&sql, &[arg])?;
            total += row.map_or(Ok(0), |r| r.int(0))? as u64;
        }
        Ok(total)
    }
}

fn is_empty_experiment(c: &dyn SqlConn, id: i64) -> Result<bool> {
    c.query_opt(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM runs WHERE experiment_id = $1)
            AND NOT EXISTS (SELECT 1 FROM logged_models WHERE experiment_id = $1)
            AND NOT EXISTS (SELECT 1 FROM experiment_tags WHERE experiment_id = $1)",
        args![id],
    )
    .map(|row| row.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing as test_postgres;

    /// A fresh import target of each backend: SQLite always, PostgreSQL when the tests have a
    /// server (WASMFLOW_TEST_POSTGRES_URI).
    fn targets(dir: &Path) -> Vec<(ImportTarget, Option<String>)> {
        let mut out = vec![(ImportTarget::open(&dir.join("db.sqlite")).unwrap(), None)];
        if let Some(uri) = test_postgres::fresh_database() {
            out.push((ImportTarget::open_postgres(&uri).unwrap(), Some(uri)));
        }
        out
    }

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
            datasets: vec![ImportDataset {
                dataset_uuid: "d-1".into(),
                name: "train".into(),
                digest: "abc".into(),
                source_type: "code".into(),
                source: "{}".into(),
                schema: None,
                profile: Some("{}".into()),
                tags: vec![("mlflow.data.context".into(), "training".into())],
            }],
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

    fn tally(inserted: u64, present: u64) -> Tally {
        Tally { inserted, present }
    }

    #[test]
    fn a_second_import_finds_everything_there() {
        let dir = tempfile::tempdir().unwrap();
        for (mut target, uri) in targets(dir.path()) {
            let backend = uri.as_deref().unwrap_or("sqlite");
            // More points than one statement holds, a NaN and an infinity among them.
            let mut points: Vec<ImportMetric> = (0..1200).map(|s| point(s, s as f64)).collect();
            points[3] = point(3, f64::NAN);
            points[4] = point(4, f64::INFINITY);
            points.push(point(1200, 0.5));
            let model = ImportLoggedModel {
                model_id: "m-1".into(),
                experiment_id: 7,
                name: "model".into(),
                artifact_location: "/old/models/m-1".into(),
                creation_timestamp_ms: 5,
                last_updated_timestamp_ms: 6,
                status: "READY".into(),
                lifecycle_stage: "active".into(),
                model_type: None,
                source_run_id: Some("abc".into()),
                status_message: None,
                params: vec![("p".into(), "1".into())],
                tags: Vec::new(),
                metrics: vec![ImportModelMetric {
                    run_id: "abc".into(),
                    metric: point(1200, 0.5),
                    dataset_name: None,
                    dataset_digest: None,
                }],
            };
            let registered = ImportRegisteredModel {
                name: "reg".into(),
                creation_time: 1,
                last_updated_time: 2,
                description: None,
                tags: vec![("o".into(), "x".into())],
                versions: vec![ImportModelVersion {
                    version: 1,
                    creation_time: 1,
                    last_updated_time: 2,
                    description: None,
                    user_id: None,
                    current_stage: "Staging".into(),
                    source: "models:/m-1".into(),
                    storage_location: "/old/models/m-1".into(),
                    run_id: "abc".into(),
                    run_link: String::new(),
                    model_id: Some("m-1".into()),
                    status: "READY".into(),
                    status_message: None,
                    tags: vec![("v".into(), "y".into())],
                }],
                aliases: vec![("champion".into(), 1)],
            };
            for round in 0..2u64 {
                let (new, old) = if round == 0 { (1, 0) } else { (0, 1) };
                let e = target.experiment(&experiment(7, "seven")).unwrap();
                let r = target.run(&run("abc", 7)).unwrap();
                let m = target.metrics("abc", &points).unwrap();
                target.finish_run("abc").unwrap();
                let lm = target.logged_model(&model).unwrap();
                let rm = target.registered_model(&registered).unwrap();
                assert_eq!(e.entities, tally(new, old), "{backend}");
                assert_eq!(e.tags, tally(new, old), "{backend}");
                assert_eq!(r.entities, tally(new, old), "{backend}");
                assert_eq!(r.params, tally(new, old), "{backend}");
                assert_eq!(r.inputs, tally(2 * new, 2 * old), "{backend}");
                assert_eq!(m, tally(1201 * new, 1201 * old), "{backend}");
                // The model's point is the run's last one: marked on the first round, found
                // marked on the second.
                assert_eq!(lm.entities, tally(new, old), "{backend}");
                assert_eq!(lm.metrics, tally(new, old), "{backend}");
                assert_eq!(rm.versions, tally(new, old), "{backend}");
                assert_eq!(rm.version_tags, tally(new, old), "{backend}");
                assert_eq!(rm.aliases, tally(new, old), "{backend}");
            }
            let latest = target
                .conn
                .query_opt(
                    "SELECT l.step, l.value FROM latest_metrics l
                     JOIN runs r ON r.run_key = l.run_key
                     JOIN metric_keys k ON k.metric_key_id = l.metric_key_id
                     WHERE r.run_uuid = 'abc' AND k.key = 'loss'",
                    &[],
                )
                .unwrap()
                .unwrap();
            assert_eq!(latest.int(0).unwrap(), 1200, "{backend}");
            assert_eq!(latest.opt_real(1).unwrap(), Some(0.5), "{backend}");
            let marked = target
                .conn
                .query_opt("SELECT count(*) FROM metrics WHERE model_id = 'm-1'", &[])
                .unwrap()
                .unwrap();
            assert_eq!(marked.int(0).unwrap(), 1, "{backend}");
            for (table, n) in [("runs", 1), ("metrics", 1201), ("params", 1)] {
                let col = "run_uuid";
                let have = target
                    .count_present(table, col, &["abc".to_string()])
                    .unwrap();
                assert_eq!(have, n, "{backend} {table}");
            }
            let have = target
                .count_present("experiments", "experiment_id", &["7".to_string()])
                .unwrap();
            assert_eq!(have, 1, "{backend}");
            if let Some(uri) = uri {
                drop(target);
                // The server's next experiment gets an id after the imported ones.
                let store = crate::open(
                    &uri,
                    crate::StoreConfig {
                        default_artifact_root: "/tmp/a".into(),
                    },
                )
                .unwrap();
                let id = store.create_experiment("new", None, &[]).unwrap();
                assert_eq!(id, "8");
                drop(store);
                test_postgres::drop_database(&uri);
            }
        }
    }

    #[test]
    fn a_clashing_experiment_is_refused_and_the_fresh_default_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        for (mut target, uri) in targets(dir.path()) {
            target
                .conn
                .execute(
                    "INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 5, 5)",
                    &[],
                )
                .unwrap();
            let t = target.experiment(&experiment(0, "Default")).unwrap();
            assert_eq!(t.entities.inserted, 1);
            let location = target
                .conn
                .query_opt(
                    "SELECT artifact_location FROM experiments WHERE experiment_id = 0",
                    &[],
                )
                .unwrap()
                .unwrap()
                .text(0)
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
            if let Some(uri) = uri {
                drop(target);
                test_postgres::drop_database(&uri);
            }
        }
    }

    #[test]
    fn an_mlflow_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlflow.db");
        rusqlite::Connection::open(&path)
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
        if let Some(uri) = test_postgres::fresh_database() {
            test_postgres::execute(
                &uri,
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
            );
            let err = ImportTarget::open_postgres(&uri).err().unwrap();
            assert!(err.to_string().contains("is an MLflow database"), "{err}");
            test_postgres::drop_database(&uri);
        }
    }
}
