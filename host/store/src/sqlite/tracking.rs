//! Experiments and runs in SQLite, and the [`TrackingStore`] implementation.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::entities::{
    Dataset, DatasetInput, Experiment, LifecycleStage, LoggedModel, LoggedModelStatus, Metric,
    ModelInput, ModelOutput, Param, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Tag,
    Workspace,
};
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::search_sql::SqlQuery;
use super::{SqliteStore, logged_models, now_ms, sql_err};
use crate::search_sql::{self, Dialect};
use crate::sql_conn::metric_key_ids;
use crate::tracking_rules::{
    self as rules, RUN_NAME_TAG, experiment_name_taken, experiment_not_found, run_not_found,
};
use crate::{
    ExperimentSearch, LoggedModelSearch, NewLoggedModel, NewRun, RunSearch, RunUpdate, StoreConfig,
    TrackingStore,
};

/// Joins a path segment to an artifact URI the way MLflow's `append_to_uri_path` does.
pub(crate) fn append_to_uri(base: &str, segment: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{segment}")
    } else {
        format!("{base}/{segment}")
    }
}

pub(super) fn ensure_default_experiment(conn: &Connection, config: &StoreConfig) -> Result<()> {
    let now = now_ms();
    conn.execute(
        "INSERT OR IGNORE INTO experiments
             (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
         VALUES (0, 'Default', ?1, 'active', ?2, ?2)",
        params![append_to_uri(&config.default_artifact_root, "0"), now],
    )
    .map_err(sql_err)?;
    Ok(())
}

fn parse_experiment_id(id: &str) -> Result<i64> {
    wasmflow_core::validation::parse_experiment_id(id)
}

pub(crate) fn load_experiment(conn: &Connection, id: i64) -> Result<Option<Experiment>> {
    let row = conn
        .prepare_cached(
            "SELECT name, artifact_location, lifecycle_stage, creation_time, last_update_time
             FROM experiments WHERE experiment_id = ?1",
        )
        .map_err(sql_err)?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()
        .map_err(sql_err)?;
    let Some((name, artifact_location, stage, creation_time, last_update_time)) = row else {
        return Ok(None);
    };
    let tags = key_values(
        conn,
        "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key",
        id,
    )?
    .into_iter()
    .map(|(key, value)| Tag { key, value })
    .collect();
    Ok(Some(Experiment {
        experiment_id: id.to_string(),
        name,
        artifact_location,
        lifecycle_stage: LifecycleStage::parse(&stage)?,
        last_update_time,
        creation_time,
        tags,
        workspace: Workspace,
    }))
}

pub(crate) fn key_values(
    conn: &Connection,
    sql: &str,
    id: impl rusqlite::ToSql,
) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_err)
}

fn require_experiment(conn: &Connection, id: &str) -> Result<Experiment> {
    load_experiment(conn, parse_experiment_id(id)?)?.ok_or_else(|| experiment_not_found(id))
}

fn require_active_experiment(conn: &Connection, id: &str) -> Result<Experiment> {
    rules::require_active_experiment(require_experiment(conn, id)?)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// A run's experiment and its integer key (the metric tables' name for it).
#[derive(Debug, Clone, Copy)]
struct RunKeys {
    experiment_id: i64,
    run_key: i64,
}

/// The lifecycle stage of a run, or not-found.
fn run_stage(conn: &Connection, run_id: &str) -> Result<(LifecycleStage, RunKeys)> {
    let row = conn
        .prepare_cached(
            "SELECT lifecycle_stage, experiment_id, run_key FROM runs WHERE run_uuid = ?1",
        )
        .map_err(sql_err)?
        .query_row([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                RunKeys {
                    experiment_id: r.get(1)?,
                    run_key: r.get(2)?,
                },
            ))
        })
        .optional()
        .map_err(sql_err)?;
    let (stage, keys) = row.ok_or_else(|| run_not_found(run_id))?;
    Ok((LifecycleStage::parse(&stage)?, keys))
}

/// MLflow refuses writes to deleted runs.
fn require_active_run(conn: &Connection, run_id: &str) -> Result<RunKeys> {
    let (stage, keys) = run_stage(conn, run_id)?;
    rules::require_active_run(run_id, stage)?;
    Ok(keys)
}

fn set_run_tag(conn: &Connection, run_id: &str, tag: &Tag) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tags (run_uuid, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )
    .map_err(sql_err)?
    .execute(params![run_id, tag.key, tag.value])
    .map_err(sql_err)?;
    if tag.key == RUN_NAME_TAG {
        conn.prepare_cached("UPDATE runs SET name = ?2 WHERE run_uuid = ?1")
            .map_err(sql_err)?
            .execute(params![run_id, tag.value])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// A run's name lives in the `name` column and the `mlflow.runName` tag; the tag sets both.
fn set_run_name(conn: &Connection, run_id: &str, name: String) -> Result<()> {
    set_run_tag(
        conn,
        run_id,
        &Tag {
            key: RUN_NAME_TAG.into(),
            value: name,
        },
    )
}

fn log_param(conn: &Connection, run_id: &str, param: &Param) -> Result<()> {
    let existing: Option<String> = conn
        .prepare_cached("SELECT value FROM params WHERE run_uuid = ?1 AND key = ?2")
        .map_err(sql_err)?
        .query_row(params![run_id, param.key], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    match existing {
        Some(old) => rules::check_param_unchanged(run_id, &param.key, &old, &param.value),
        None => {
            conn.prepare_cached("INSERT INTO params (run_uuid, key, value) VALUES (?1, ?2, ?3)")
                .map_err(sql_err)?
                .execute(params![run_id, param.key, param.value])
                .map_err(sql_err)?;
            Ok(())
        }
    }
}

/// Logs one point into a run's history (`metrics`); [`update_latest`] then keeps its newest.
fn log_metric(conn: &Connection, run_key: i64, key_id: i64, m: &Metric) -> Result<()> {
    // SQLite turns NaN into NULL, so NaN is stored as 0 with a flag, as MLflow's SQL store does.
    let (value, is_nan) = rules::stored_metric_value(m.value);
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO metrics (run_key, metric_key_id, step, timestamp, value, is_nan,
                                            model_id, dataset_name, dataset_digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(sql_err)?
        .execute(params![
            run_key,
            key_id,
            m.step,
            m.timestamp,
            value,
            is_nan,
            m.model_id,
            m.dataset_name,
            m.dataset_digest
        ])
        .map_err(sql_err)?;
    // MLflow's client links a run's metrics to a model it logs by logging them again with the
    // model's id (`Model.log`'s `log_model_metrics_for_step`): the point the run already has is
    // marked with the model (as the import does), so the model's metrics show it.
    if inserted == 0 && m.model_id.is_some() {
        conn.prepare_cached(
            "UPDATE metrics SET model_id = ?1, dataset_name = ?2, dataset_digest = ?3
             WHERE run_key = ?4 AND metric_key_id = ?5 AND timestamp = ?6 AND step = ?7
               AND value = ?8 AND is_nan = ?9 AND model_id IS NULL",
        )
        .map_err(sql_err)?
        .execute(params![
            m.model_id,
            m.dataset_name,
            m.dataset_digest,
            run_key,
            key_id,
            m.timestamp,
            m.step,
            value,
            is_nan
        ])
        .map_err(sql_err)?;
    }
    Ok(())
}

/// How many points one multi-row INSERT takes: one statement execution per 64 points instead of
/// one per point spares SQLite most of its per-statement work (reset, bind, opening cursors).
const POINTS_PER_INSERT: usize = 64;

/// Logs a batch's points into a run's history, as [`log_metric`] does one by one, then each
/// key's newest point into latest_metrics. Points that name no model or dataset (nearly all) go
/// in key order, so that consecutive inserts land on the same B-tree pages, [`POINTS_PER_INSERT`]
/// to a statement.
fn log_metrics(conn: &Connection, run: RunKeys, metrics: &[Metric]) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    let ids = metric_key_ids(conn, metrics.iter().map(|m| m.key.as_str()))?;
    let (mut plain, linked): (Vec<&Metric>, Vec<&Metric>) = metrics.iter().partition(|m| {
        m.model_id.is_none() && m.dataset_name.is_none() && m.dataset_digest.is_none()
    });
    plain.sort_by_key(|m| (ids.get(&m.key).ok(), m.timestamp, m.step));
    let mut chunks = plain.chunks_exact(POINTS_PER_INSERT);
    if chunks.len() > 0 {
        let rows = vec!["(?1, ?, ?, ?, ?, ?)"; POINTS_PER_INSERT].join(", ");
        let mut insert = conn
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO metrics (run_key, metric_key_id, step, timestamp, value,
                                                is_nan)
                 VALUES {rows}"
            ))
            .map_err(sql_err)?;
        insert.raw_bind_parameter(1, run.run_key).map_err(sql_err)?;
        for chunk in &mut chunks {
            for (i, m) in chunk.iter().enumerate() {
                let (value, is_nan) = rules::stored_metric_value(m.value);
                let at = 2 + i * 5;
                insert
                    .raw_bind_parameter(at, ids.get(&m.key)?)
                    .map_err(sql_err)?;
                insert.raw_bind_parameter(at + 1, m.step).map_err(sql_err)?;
                insert
                    .raw_bind_parameter(at + 2, m.timestamp)
                    .map_err(sql_err)?;
                insert.raw_bind_parameter(at + 3, value).map_err(sql_err)?;
                insert.raw_bind_parameter(at + 4, is_nan).map_err(sql_err)?;
            }
            insert.raw_execute().map_err(sql_err)?;
        }
    }
    for m in chunks.remainder().iter().chain(&linked) {
        log_metric(conn, run.run_key, ids.get(&m.key)?, m)?;
    }
    for m in rules::latest_per_key(metrics) {
        update_latest(conn, run, ids.get(&m.key)?, m)?;
    }
    Ok(())
}

/// Makes `m` the run's latest point of its key if it is newer than the stored one (greatest
/// step, then timestamp, then value). latest_metrics carries the run's experiment for search's
/// per-experiment index.
fn update_latest(conn: &Connection, run: RunKeys, key_id: i64, m: &Metric) -> Result<()> {
    let (value, is_nan) = rules::stored_metric_value(m.value);
    conn.prepare_cached(
        "INSERT INTO latest_metrics
             (run_key, metric_key_id, experiment_id, step, timestamp, value, is_nan)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (run_key, metric_key_id) DO UPDATE SET
             step = excluded.step, timestamp = excluded.timestamp,
             value = excluded.value, is_nan = excluded.is_nan
         WHERE (excluded.step, excluded.timestamp, excluded.value)
             > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
    )
    .map_err(sql_err)?
    .execute(params![
        run.run_key,
        key_id,
        run.experiment_id,
        m.step,
        m.timestamp,
        value,
        is_nan
    ])
    .map_err(sql_err)?;
    Ok(())
}

pub(crate) fn metric_from_row(r: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<Metric> {
    let is_nan: bool = r.get(offset + 4)?;
    let value: f64 = r.get(offset + 3)?;
    Ok(Metric {
        key: r.get(offset)?,
        step: r.get(offset + 1)?,
        timestamp: r.get(offset + 2)?,
        value: rules::loaded_metric_value(value, is_nan),
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    })
}

/// A SQL parameter holding a list, used as `IN (SELECT value FROM json_each(?))`.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> SqlValue {
    SqlValue::Text(serde_json::to_string(items).unwrap_or_else(|_| "[]".into()))
}

/// Loads whole runs, in the order of `ids`; ids that do not exist are skipped.
fn load_runs(conn: &Connection, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = json_list(ids);
    let mut runs: HashMap<String, Run> = HashMap::with_capacity(ids.len());
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time,
                        artifact_uri, lifecycle_stage
                 FROM runs WHERE run_uuid IN (SELECT value FROM json_each(?1))",
            )
            .map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let run_id: String = r.get(0).map_err(sql_err)?;
            let status: String = r.get(4).map_err(sql_err)?;
            let stage: String = r.get(8).map_err(sql_err)?;
            let info = RunInfo {
                run_uuid: run_id.clone(),
                run_id: run_id.clone(),
                run_name: r.get(1).map_err(sql_err)?,
                experiment_id: r.get::<_, i64>(2).map_err(sql_err)?.to_string(),
                user_id: r.get(3).map_err(sql_err)?,
                status: RunStatus::parse(&status)?,
                start_time: r.get(5).map_err(sql_err)?,
                end_time: r.get(6).map_err(sql_err)?,
                artifact_uri: r.get(7).map_err(sql_err)?,
                lifecycle_stage: LifecycleStage::parse(&stage)?,
            };
            runs.insert(
                run_id,
                Run {
                    info,
                    data: RunData::default(),
                    inputs: RunInputs::default(),
                    outputs: RunOutputs::default(),
                },
            );
        }
    }
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT r.run_uuid, k.key, l.step, l.timestamp, l.value, l.is_nan
                 FROM runs r JOIN latest_metrics l ON l.run_key = r.run_key
                 JOIN metric_keys k ON k.metric_key_id = l.metric_key_id
                 WHERE r.run_uuid IN (SELECT value FROM json_each(?1)) ORDER BY k.key",
            )
            .map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let run_id: String = r.get(0).map_err(sql_err)?;
            let metric = metric_from_row(r, 1).map_err(sql_err)?;
            if let Some(run) = runs.get_mut(&run_id) {
                run.data.metrics.push(metric);
            }
        }
    }
    for (table, is_param) in [("params", true), ("tags", false)] {
        let sql = format!(
            "SELECT run_uuid, key, value FROM {table}
             WHERE run_uuid IN (SELECT value FROM json_each(?1)) ORDER BY key"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let run_id: String = r.get(0).map_err(sql_err)?;
            let (key, value) = (r.get(1).map_err(sql_err)?, r.get(2).map_err(sql_err)?);
            if let Some(run) = runs.get_mut(&run_id) {
                if is_param {
                    run.data.params.push(Param { key, value });
                } else {
                    run.data.tags.push(Tag { key, value });
                }
            }
        }
    }
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT i.run_uuid, i.tags, d.name, d.digest, d.source_type, d.source, d.schema,
                        d.profile
                 FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid
                 WHERE i.run_uuid IN (SELECT value FROM json_each(?1)) ORDER BY d.name",
            )
            .map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let run_id: String = r.get(0).map_err(sql_err)?;
            let tags: String = r.get(1).map_err(sql_err)?;
            let input = DatasetInput {
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                dataset: Dataset {
                    name: r.get(2).map_err(sql_err)?,
                    digest: r.get(3).map_err(sql_err)?,
                    source_type: r.get(4).map_err(sql_err)?,
                    source: r.get(5).map_err(sql_err)?,
                    schema: r.get(6).map_err(sql_err)?,
                    profile: r.get(7).map_err(sql_err)?,
                },
            };
            if let Some(run) = runs.get_mut(&run_id) {
                run.inputs.dataset_inputs.push(input);
            }
        }
    }
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT run_uuid, model_id, NULL FROM run_model_inputs
                     WHERE run_uuid IN (SELECT value FROM json_each(?1))
                 UNION ALL
                 SELECT run_uuid, model_id, step FROM run_model_outputs
                     WHERE run_uuid IN (SELECT value FROM json_each(?1))",
            )
            .map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let run_id: String = r.get(0).map_err(sql_err)?;
            let model_id: String = r.get(1).map_err(sql_err)?;
            let step: Option<i64> = r.get(2).map_err(sql_err)?;
            if let Some(run) = runs.get_mut(&run_id) {
                match step {
                    None => run.inputs.model_inputs.push(ModelInput { model_id }),
                    Some(step) => run
                        .outputs
                        .model_outputs
                        .push(ModelOutput { model_id, step }),
                }
            }
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

fn load_run(conn: &Connection, run_id: &str) -> Result<Run> {
    load_runs(conn, &[run_id.to_string()])?
        .pop()
        .ok_or_else(|| run_not_found(run_id))
}

impl TrackingStore for SqliteStore {
    fn search_dataset_summaries(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<crate::DatasetSummary>> {
        self.read(|conn| super::datasets::search_summaries(conn, experiment_ids))
    }

    fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        let name = name.to_string();
        let artifact_location = artifact_location
            .filter(|l| !l.is_empty())
            .map(crate::resolve_uri_if_local);
        let root = self.config().default_artifact_root.clone();
        let tags = tags.to_vec();
        self.write(move |conn| {
            let now = now_ms();
            let inserted = conn.execute(
                "INSERT INTO experiments
                     (name, artifact_location, lifecycle_stage, creation_time, last_update_time)
                 VALUES (?1, ?2, 'active', ?3, ?3)",
                params![name, artifact_location.clone().unwrap_or_default(), now],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => return Err(experiment_name_taken(&name)),
                other => other.map_err(sql_err)?,
            };
            let id = conn.last_insert_rowid();
            if artifact_location.is_none() {
                conn.execute(
                    "UPDATE experiments SET artifact_location = ?2 WHERE experiment_id = ?1",
                    params![id, append_to_uri(&root, &id.to_string())],
                )
                .map_err(sql_err)?;
            }
            for tag in &tags {
                conn.execute(
                    "INSERT OR REPLACE INTO experiment_tags (experiment_id, key, value)
                     VALUES (?1, ?2, ?3)",
                    params![id, tag.key, tag.value],
                )
                .map_err(sql_err)?;
            }
            Ok(id.to_string())
        })
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.read(|conn| require_experiment(conn, experiment_id))
    }

    fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.read(|conn| {
            let id: Option<i64> = conn
                .prepare_cached("SELECT experiment_id FROM experiments WHERE name = ?1")
                .map_err(sql_err)?
                .query_row([name], |r| r.get(0))
                .optional()
                .map_err(sql_err)?;
            let not_found = || rules::experiment_name_not_found(name);
            let id = id.ok_or_else(not_found)?;
            load_experiment(conn, id)?.ok_or_else(not_found)
        })
    }

    fn search_experiments(&self, search: &ExperimentSearch) -> Result<Page<Experiment>> {
        let offset = decode_token(search.page_token.as_deref())?;
        self.read(|conn| {
            let query: SqlQuery = search_sql::experiment_search_sql(
                Dialect::Sqlite,
                search.view.stages(),
                &search.filter,
                &search.order_by,
                search.max_results + 1,
                offset,
            )?
            .into();
            let ids: Vec<i64> = query.first_column(conn)?;
            let mut experiments = Vec::with_capacity(ids.len());
            for id in ids {
                experiments.extend(load_experiment(conn, id)?);
            }
            Ok(Page::from_overfetched(
                experiments,
                offset,
                search.max_results,
            ))
        })
    }

    fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        let (id, new_name) = (experiment_id.to_string(), new_name.to_string());
        self.write(move |conn| {
            let exp = require_experiment(conn, &id)?;
            if exp.lifecycle_stage != LifecycleStage::Active {
                return Err(Error::invalid("Cannot rename a non-active experiment."));
            }
            let updated = conn.execute(
                "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![
                    exp.experiment_id.parse::<i64>().unwrap_or_default(),
                    new_name,
                    now_ms()
                ],
            );
            match updated {
                Err(e) if is_unique_violation(&e) => Err(experiment_name_taken(&new_name)),
                other => other.map(drop).map_err(sql_err),
            }
        })
    }

    fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        set_experiment_stage(self, experiment_id, LifecycleStage::Deleted)
    }

    fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        set_experiment_stage(self, experiment_id, LifecycleStage::Active)
    }

    fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()> {
        let (id, tag) = (experiment_id.to_string(), tag.clone());
        self.write(move |conn| {
            let exp = require_active_experiment(conn, &id)?;
            conn.execute(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                params![exp.experiment_id, tag.key, tag.value],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let (id, key) = (experiment_id.to_string(), key.to_string());
        self.write(move |conn| {
            let exp = require_active_experiment(conn, &id)?;
            let n = conn
                .execute(
                    "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
                    params![exp.experiment_id, key],
                )
                .map_err(sql_err)?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in experiment with id {id}"
                )));
            }
            Ok(())
        })
    }

    fn create_run(&self, run: NewRun) -> Result<Run> {
        self.write(move |conn| {
            let exp = require_active_experiment(conn, &run.experiment_id)?;
            let name = rules::new_run_name(run.run_name, &run.tags)?;
            let run_id = uuid::Uuid::new_v4().simple().to_string();
            let artifact_uri =
                append_to_uri(&append_to_uri(&exp.artifact_location, &run_id), "artifacts");
            conn.execute(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time,
                                   artifact_uri, lifecycle_stage)
                 VALUES (?1, ?2, ?3, ?4, 'RUNNING', ?5, ?6, 'active')",
                params![
                    run_id,
                    exp.experiment_id,
                    name,
                    run.user_id,
                    run.start_time.unwrap_or_else(now_ms),
                    artifact_uri
                ],
            )
            .map_err(sql_err)?;
            for tag in &run.tags {
                set_run_tag(conn, &run_id, tag)?;
            }
            set_run_name(conn, &run_id, name)?;
            load_run(conn, &run_id)
        })
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        self.read(|conn| load_run(conn, run_id))
    }

    fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            require_active_run(conn, &run_id)?;
            if let Some(status) = update.status {
                conn.execute(
                    "UPDATE runs SET status = ?2 WHERE run_uuid = ?1",
                    params![run_id, status.as_str()],
                )
                .map_err(sql_err)?;
            }
            if let Some(end_time) = update.end_time {
                conn.execute(
                    "UPDATE runs SET end_time = ?2 WHERE run_uuid = ?1",
                    params![run_id, end_time],
                )
                .map_err(sql_err)?;
            }
            if let Some(name) = update.run_name.filter(|n| !n.is_empty()) {
                set_run_name(conn, &run_id, name)?;
            }
            Ok(load_run(conn, &run_id)?.info)
        })
    }

    fn delete_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            run_stage(conn, &run_id)?;
            conn.execute(
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ?2 WHERE run_uuid = ?1",
                params![run_id, now_ms()],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn restore_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            run_stage(conn, &run_id)?;
            conn.execute(
                "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = ?1",
                params![run_id],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            let run = require_active_run(conn, &run_id)?;
            for param in &params {
                log_param(conn, &run_id, param)?;
            }
            log_metrics(conn, run, &metrics)?;
            for tag in &tags {
                set_run_tag(conn, &run_id, tag)?;
            }
            Ok(())
        })
    }

    fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let (run_id, key) = (run_id.to_string(), key.to_string());
        self.write(move |conn| {
            require_active_run(conn, &run_id)?;
            let n = conn
                .execute(
                    "DELETE FROM tags WHERE run_uuid = ?1 AND key = ?2",
                    params![run_id, key],
                )
                .map_err(sql_err)?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in run with id {run_id}"
                )));
            }
            Ok(())
        })
    }

    fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            let experiment_id = require_active_run(conn, &run_id)?.experiment_id;
            for input in &datasets {
                let d = &input.dataset;
                let existing: Option<String> = conn
                    .query_row(
                        "SELECT dataset_uuid FROM datasets
                         WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3",
                        params![experiment_id, d.name, d.digest],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_err)?;
                let dataset_uuid = match existing {
                    Some(id) => id,
                    None => {
                        let id = uuid::Uuid::new_v4().simple().to_string();
                        conn.execute(
                            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest,
                                                   source_type, source, schema, profile)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![
                                id,
                                experiment_id,
                                d.name,
                                d.digest,
                                d.source_type,
                                d.source,
                                d.schema,
                                d.profile
                            ],
                        )
                        .map_err(sql_err)?;
                        id
                    }
                };
                let tags = serde_json::to_string(&input.tags)
                    .map_err(|e| Error::internal(e.to_string()))?;
                conn.execute(
                    "INSERT OR IGNORE INTO run_dataset_inputs (run_uuid, dataset_uuid, tags)
                     VALUES (?1, ?2, ?3)",
                    params![run_id, dataset_uuid, tags],
                )
                .map_err(sql_err)?;
            }
            for model in &models {
                conn.execute(
                    "INSERT OR IGNORE INTO run_model_inputs (run_uuid, model_id) VALUES (?1, ?2)",
                    params![run_id, model.model_id],
                )
                .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            require_active_run(conn, &run_id)?;
            for model in &models {
                logged_models::require_model(conn, &model.model_id)?;
                conn.execute(
                    "INSERT OR IGNORE INTO run_model_outputs (run_uuid, model_id, step)
                     VALUES (?1, ?2, ?3)",
                    params![run_id, model.model_id, model.step],
                )
                .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>> {
        let offset = decode_token(search.page_token.as_deref())?;
        let experiment_ids = search
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        self.read(|conn| {
            let plan = search_sql::run_search_sql(
                Dialect::Sqlite,
                &experiment_ids,
                search.view.stages(),
                &search.filter,
                &search.order_by,
                search.max_results + 1,
                offset,
            )?;
            let mut ids: Vec<String> = Vec::new();
            for query in &plan.segments {
                if !plan.wants_more(ids.len()) {
                    break;
                }
                ids.extend(SqlQuery::from(query).first_column::<String>(conn)?);
            }
            let runs = load_runs(conn, &plan.page(ids))?;
            Ok(Page::from_overfetched(runs, offset, search.max_results))
        })
    }

    fn count_active_runs(&self, experiment_ids: &[String]) -> Result<Vec<(String, u64)>> {
        let ids = experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        self.read(|conn| {
            // runs_experiment_start's leading column makes each count an index range scan.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM runs
                     WHERE experiment_id = ?1 AND lifecycle_stage = 'active'",
                )
                .map_err(sql_err)?;
            ids.iter()
                .map(|id| {
                    let n: i64 = stmt.query_row(params![id], |r| r.get(0)).map_err(sql_err)?;
                    Ok((id.to_string(), n as u64))
                })
                .collect()
        })
    }

    fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        let offset = decode_token(page_token)?;
        // Like MLflow's SQL store, an unknown run has an empty history rather than an error.
        self.read(|conn| {
            // -1 is SQLite's "no limit".
            let limit = max_results.map_or(-1, |m| m as i64 + 1);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT ?2, step, timestamp, value, is_nan, model_id, dataset_name,
                            dataset_digest
                     FROM metrics WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = ?1)
                       AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = ?2)
                     ORDER BY timestamp, step, value LIMIT ?3 OFFSET ?4",
                )
                .map_err(sql_err)?;
            let rows: Vec<Metric> = stmt
                .query_map(params![run_id, key, limit, offset as i64], |r| {
                    let mut m = metric_from_row(r, 0)?;
                    m.model_id = r.get(5)?;
                    m.dataset_name = r.get(6)?;
                    m.dataset_digest = r.get(7)?;
                    Ok(m)
                })
                .map_err(sql_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql_err)?;
            Ok(match max_results {
                Some(max) => Page::from_overfetched(rows, offset, max),
                None => Page {
                    items: rows,
                    next_page_token: None,
                },
            })
        })
    }

    fn metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        steps: Option<(i64, i64)>,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        let max_results = max_results.max(1);
        self.read(|conn| {
            let mut out = Vec::with_capacity(run_ids.len() * max_results);
            // In the primary key's order (run, key, timestamp, ...): SQLite reads the rows
            // without a sort, and they are already in MLflow's order (by step) when steps grow
            // with time, as they do. Reading every row is the whole cost (a chart of 100 runs of
            // 10,000 points reads a million), so the query has no step filter unless one was
            // asked for and the rows are sorted only when they are out of order.
            let sql = match steps {
                None => {
                    "SELECT step, timestamp, value, is_nan FROM metrics
                     WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = ?1)
                       AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = ?2)
                     ORDER BY timestamp, step, value, is_nan"
                }
                Some(_) => {
                    "SELECT step, timestamp, value, is_nan FROM metrics
                     WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = ?1)
                       AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = ?2)
                       AND step BETWEEN ?3 AND ?4
                     ORDER BY timestamp, step, value, is_nan"
                }
            };
            let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
            let point = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            for run_id in run_ids {
                let points: Vec<(i64, i64, f64, bool)> = match steps {
                    None => stmt.query_map(params![run_id, key], point),
                    Some((start, end)) => stmt.query_map(params![run_id, key, start, end], point),
                }
                .map_err(sql_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql_err)?;
                out.extend(rules::sample_history(run_id, key, points, max_results));
            }
            Ok(out)
        })
    }

    fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        self.write(move |conn| logged_models::create(conn, model))
    }

    fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.read(|conn| logged_models::load(conn, model_id))
    }

    fn set_logged_model_status(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let model_id = model_id.to_string();
        self.write(move |conn| logged_models::set_status(conn, &model_id, status))
    }

    fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let model_id = model_id.to_string();
        self.write(move |conn| logged_models::delete(conn, &model_id))
    }

    fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        let model_id = model_id.to_string();
        self.write(move |conn| logged_models::set_tags(conn, &model_id, &tags))
    }

    fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let (model_id, key) = (model_id.to_string(), key.to_string());
        self.write(move |conn| logged_models::delete_tag(conn, &model_id, &key))
    }

    fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        let model_id = model_id.to_string();
        self.write(move |conn| logged_models::log_params(conn, &model_id, &params))
    }

    fn search_logged_models(&self, search: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
        self.read(|conn| logged_models::search(conn, search))
    }

    fn deleted_run_ids(&self, older_than_ms: i64) -> Result<Vec<String>> {
        let before = now_ms() - older_than_ms;
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT run_uuid FROM runs WHERE lifecycle_stage = 'deleted'
                     AND COALESCE(deleted_time, 0) <= ?1 ORDER BY run_uuid",
                )
                .map_err(sql_err)?;
            let ids = stmt
                .query_map(params![before], |r| r.get(0))
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sql_err)?;
            Ok(ids)
        })
    }

    fn deleted_experiment_ids(&self, older_than_ms: i64) -> Result<Vec<String>> {
        let before = now_ms() - older_than_ms;
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'deleted'
                     AND last_update_time <= ?1 ORDER BY experiment_id",
                )
                .map_err(sql_err)?;
            let ids = stmt
                .query_map(params![before], |r| r.get::<_, i64>(0))
                .map_err(sql_err)?
                .map(|id| id.map(|id| id.to_string()))
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(sql_err)?;
            Ok(ids)
        })
    }

    fn purge_run(&self, run_id: &str) -> Result<String> {
        let run_id = run_id.to_string();
        self.write(move |conn| {
            let uri = deleted_run_artifact_uri(conn, &run_id)?;
            // Metrics, params, tags and inputs go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM runs WHERE run_uuid = ?1", params![run_id])
                .map_err(sql_err)?;
            Ok(uri)
        })
    }

    fn purge_experiment(&self, experiment_id: &str) -> Result<Vec<String>> {
        let id = experiment_id.to_string();
        self.write(move |conn| {
            let exp = require_experiment(conn, &id)?;
            rules::check_experiment_purgeable(&exp)?;
            let key = exp.experiment_id;
            let mut uris = Vec::new();
            for sql in [
                "SELECT artifact_uri FROM runs WHERE experiment_id = ?1",
                "SELECT artifact_location FROM logged_models WHERE experiment_id = ?1",
            ] {
                let mut stmt = conn.prepare(sql).map_err(sql_err)?;
                let found = stmt
                    .query_map(params![key], |r| r.get::<_, String>(0))
                    .map_err(sql_err)?
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(sql_err)?;
                uris.extend(found);
            }
            uris.push(exp.artifact_location.clone());
            for sql in [
                "DELETE FROM runs WHERE experiment_id = ?1",
                "DELETE FROM logged_models WHERE experiment_id = ?1",
                "DELETE FROM datasets WHERE experiment_id = ?1",
                "DELETE FROM experiments WHERE experiment_id = ?1",
            ] {
                conn.execute(sql, params![key]).map_err(sql_err)?;
            }
            Ok(uris)
        })
    }
}

/// The artifact URI of a run that may be purged: it must exist and be deleted, as `mlflow gc`
/// requires.
fn deleted_run_artifact_uri(conn: &Connection, run_id: &str) -> Result<String> {
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT lifecycle_stage, artifact_uri FROM runs WHERE run_uuid = ?1",
            params![run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql_err)?;
    rules::purgeable_run_uri(run_id, found)
}

fn set_experiment_stage(store: &SqliteStore, id: &str, stage: LifecycleStage) -> Result<()> {
    let id = id.to_string();
    store.write(move |conn| {
        let exp = require_experiment(conn, &id)?;
        rules::check_experiment_stage_change(&exp, stage)?;
        let now = now_ms();
        conn.execute(
            "UPDATE experiments SET lifecycle_stage = ?2, last_update_time = ?3
             WHERE experiment_id = ?1",
            params![exp.experiment_id, stage.as_str(), now],
        )
        .map_err(sql_err)?;
        // MLflow deletes and restores an experiment's runs with it.
        let (deleted_time, from) = match stage {
            LifecycleStage::Deleted => (Some(now), "active"),
            LifecycleStage::Active => (None, "deleted"),
        };
        conn.execute(
            "UPDATE runs SET lifecycle_stage = ?2, deleted_time = ?3
             WHERE experiment_id = ?1 AND lifecycle_stage = ?4",
            params![exp.experiment_id, stage.as_str(), deleted_time, from],
        )
        .map_err(sql_err)?;
        Ok(())
    })
}
