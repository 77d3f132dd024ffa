//! Experiments and runs in PostgreSQL, and the [`TrackingStore`] implementation.
//!
//! Unlike SQLite's single writer, many connections (and replicas) write at once, so each write
//! is one transaction whose rows are claimed with `INSERT ... ON CONFLICT`: a name taken by a
//! concurrent writer is RESOURCE_ALREADY_EXISTS, a param logged concurrently is compared with the
//! value that won, and a metric's latest row only moves forward. A batch touches its rows in key
//! order, so two batches of one run never wait on each other in a cycle.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use wasmflow_core::entities::{
    Dataset, DatasetInput, Experiment, LifecycleStage, LoggedModel, LoggedModelStatus, Metric,
    ModelInput, ModelOutput, Param, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, Tag,
    Workspace,
};
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::{PgStore, logged_models, pg_err};
use crate::search_sql::{self, Dialect, Query};
use crate::sqlite::now_ms;
use crate::tracking_rules::{
    self as rules, RUN_NAME_TAG, experiment_name_taken, experiment_not_found, run_not_found,
};
use crate::{
    ExperimentSearch, LoggedModelSearch, NewLoggedModel, NewRun, RunSearch, RunUpdate, StoreConfig,
    TrackingStore, append_to_uri,
};

pub(super) type Tx<'a> = deadpool_postgres::Transaction<'a>;
pub(super) type P<'a> = &'a (dyn ToSql + Sync);

pub(super) async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[P<'_>],
) -> Result<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(pg_err)?;
    c.query(&stmt, params).await.map_err(pg_err)
}

pub(super) async fn query_opt(tx: &Tx<'_>, sql: &str, params: &[P<'_>]) -> Result<Option<Row>> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg_err)?;
    tx.query_opt(&stmt, params).await.map_err(pg_err)
}

pub(super) async fn execute(tx: &Tx<'_>, sql: &str, params: &[P<'_>]) -> Result<u64> {
    execute_raw(tx, sql, params).await.map_err(pg_err)
}

async fn execute_raw(
    tx: &Tx<'_>,
    sql: &str,
    params: &[P<'_>],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, params).await
}

/// Runs a compiled search and collects its first column. Its text changes with every filter, so
/// it is not kept prepared; typed parameters send it in one round trip instead of two.
pub(super) async fn first_column<T, C>(c: &C, q: &Query) -> Result<Vec<T>>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
    C: tokio_postgres::GenericClient + Sync,
{
    let rows = c
        .query_typed(&q.sql, &q.pg_typed_params())
        .await
        .map_err(pg_err)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The Default experiment (id 0), as MLflow's store creates it.
pub(super) fn ensure_default_experiment(store: &PgStore, config: &StoreConfig) -> Result<()> {
    let location = append_to_uri(&config.default_artifact_root, "0");
    store.write(async |tx| {
        let now = now_ms();
        execute(
            tx,
            "INSERT INTO experiments
                 (experiment_id, name, artifact_location, lifecycle_stage, creation_time,
                  last_update_time)
             VALUES (0, 'Default', $1, 'active', $2, $2) ON CONFLICT DO NOTHING",
            &[&location, &now],
        )
        .await
        .map(drop)
    })
}

fn parse_experiment_id(id: &str) -> Result<i64> {
    wasmflow_core::validation::parse_experiment_id(id)
}

pub(super) async fn load_experiment(tx: &Tx<'_>, id: i64) -> Result<Option<Experiment>> {
    let Some(row) = query_opt(
        tx,
        "SELECT name, artifact_location, lifecycle_stage, creation_time, last_update_time
         FROM experiments WHERE experiment_id = $1",
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let tags = key_values(
        tx,
        "SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key",
        &id,
    )
    .await?
    .into_iter()
    .map(|(key, value)| Tag { key, value })
    .collect();
    Ok(Some(Experiment {
        experiment_id: id.to_string(),
        name: row.get(0),
        artifact_location: row.get(1),
        lifecycle_stage: LifecycleStage::parse(row.get(2))?,
        creation_time: row.get(3),
        last_update_time: row.get(4),
        tags,
        workspace: Workspace,
    }))
}

pub(super) async fn key_values(tx: &Tx<'_>, sql: &str, id: P<'_>) -> Result<Vec<(String, String)>> {
    Ok(query(tx, sql, &[id])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn require_experiment(tx: &Tx<'_>, id: &str) -> Result<Experiment> {
    load_experiment(tx, parse_experiment_id(id)?)
        .await?
        .ok_or_else(|| experiment_not_found(id))
}

async fn require_active_experiment(tx: &Tx<'_>, id: &str) -> Result<Experiment> {
    rules::require_active_experiment(require_experiment(tx, id).await?)
}

/// The lifecycle stage and experiment of a run, or not-found.
async fn run_stage(tx: &Tx<'_>, run_id: &str) -> Result<(LifecycleStage, i64)> {
    let row = query_opt(
        tx,
        "SELECT lifecycle_stage, experiment_id FROM runs WHERE run_uuid = $1",
        &[&run_id],
    )
    .await?
    .ok_or_else(|| run_not_found(run_id))?;
    Ok((LifecycleStage::parse(row.get(0))?, row.get(1)))
}

async fn require_active_run(tx: &Tx<'_>, run_id: &str) -> Result<i64> {
    let (stage, exp) = run_stage(tx, run_id).await?;
    rules::require_active_run(run_id, stage)?;
    Ok(exp)
}

async fn set_run_tag(tx: &Tx<'_>, run_id: &str, tag: &Tag) -> Result<()> {
    execute(
        tx,
        "INSERT INTO tags (run_uuid, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
        &[&run_id, &tag.key, &tag.value],
    )
    .await?;
    if tag.key == RUN_NAME_TAG {
        execute(
            tx,
            "UPDATE runs SET name = $2 WHERE run_uuid = $1",
            &[&run_id, &tag.value],
        )
        .await?;
    }
    Ok(())
}

async fn set_run_name(tx: &Tx<'_>, run_id: &str, name: String) -> Result<()> {
    let tag = Tag {
        key: RUN_NAME_TAG.into(),
        value: name,
    };
    set_run_tag(tx, run_id, &tag).await
}

/// A param is claimed with `ON CONFLICT DO NOTHING`: when another writer got there first, its
/// value is the one this one must equal.
async fn log_param(tx: &Tx<'_>, run_id: &str, param: &Param) -> Result<()> {
    let inserted = execute(
        tx,
        "INSERT INTO params (run_uuid, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&run_id, &param.key, &param.value],
    )
    .await?;
    if inserted == 1 {
        return Ok(());
    }
    let old: String = query_opt(
        tx,
        "SELECT value FROM params WHERE run_uuid = $1 AND key = $2",
        &[&run_id, &param.key],
    )
    .await?
    .map(|r| r.get(0))
    .unwrap_or_default();
    rules::check_param_unchanged(run_id, &param.key, &old, &param.value)
}

/// The columns both metric tables take of a list of points, as `UNNEST` arrays.
struct PointColumns<'a> {
    keys: Vec<&'a str>,
    steps: Vec<i64>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    nans: Vec<i64>,
}

impl<'a> PointColumns<'a> {
    fn of(points: &[&'a Metric]) -> Self {
        let mut c = Self {
            keys: Vec::with_capacity(points.len()),
            steps: Vec::with_capacity(points.len()),
            timestamps: Vec::with_capacity(points.len()),
            values: Vec::with_capacity(points.len()),
            nans: Vec::with_capacity(points.len()),
        };
        for m in points {
            let (value, is_nan) = rules::stored_metric_value(m.value);
            c.keys.push(m.key.as_str());
            c.steps.push(m.step);
            c.timestamps.push(m.timestamp);
            c.values.push(value);
            c.nans.push(i64::from(is_nan));
        }
        c
    }
}

/// Logs a run's points in one statement that also checks the run: the run's row is read, and
/// both inserts take their rows from it only when it is active — every point (identical points
/// are one) and each key's latest point, which only moves forward (the row lock of
/// `ON CONFLICT DO UPDATE` orders concurrent writers). A missing run returns no row and an
/// inactive one its stage; either way nothing was written.
///
/// The metric tables name the run by its run_key and each key by its id in metric_keys, which
/// the same statement resolves: the ids the snapshot holds, plus keys it lacks inserted. A key
/// another replica added after the snapshot conflicts; `DO UPDATE` (a no-op) then returns that
/// committed row all the same (READ COMMITTED's rule for ON CONFLICT), so every key gets its id
/// and none is remembered between statements. This is what `sql_conn::metric_key_ids` does for
/// the SQLite store and the importers, kept inside the statement here: calling it would add its
/// two statements' round trips to every batch (and it runs on the importers' synchronous
/// connection, not this async client). One statement is atomic on its own,
/// so a batch of points alone is one round trip in autocommit instead of five (BEGIN, the run,
/// the points, the latest values, COMMIT); inside a batch's transaction it is one of them.
async fn insert_metrics<C: GenericClient + Sync>(
    client: &C,
    run_id: &str,
    metrics: &[Metric],
) -> Result<()> {
    let mut sorted: Vec<&Metric> = metrics.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let points = PointColumns::of(&sorted);
    let models: Vec<Option<&str>> = sorted.iter().map(|m| m.model_id.as_deref()).collect();
    let names: Vec<Option<&str>> = sorted.iter().map(|m| m.dataset_name.as_deref()).collect();
    let digests: Vec<Option<&str>> = sorted.iter().map(|m| m.dataset_digest.as_deref()).collect();
    // Each key's newest point, in key order (the order rows are claimed in).
    let mut latest = rules::latest_per_key(metrics);
    latest.sort_by(|a, b| a.key.cmp(&b.key));
    let latest = PointColumns::of(&latest);
    let stmt = client
        .prepare_cached(
            "WITH run AS (
                 SELECT run_key, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = $1
             ), known AS (
                 SELECT k.metric_key_id, k.key FROM metric_keys k WHERE k.key = ANY($10::text[])
             ), added AS (
                 INSERT INTO metric_keys (key)
                 SELECT u.key FROM run, UNNEST($10::text[]) AS u (key)
                 WHERE run.lifecycle_stage = 'active'
                   AND NOT EXISTS (SELECT 1 FROM known WHERE known.key = u.key)
                 ON CONFLICT (key) DO UPDATE SET key = excluded.key
                 RETURNING metric_key_id, key
             ), ids AS (
                 SELECT * FROM known UNION ALL SELECT * FROM added
             ), points AS (
                 INSERT INTO metrics (run_key, metric_key_id, step, timestamp, value, is_nan,
                                      model_id, dataset_name, dataset_digest)
                 SELECT run.run_key, ids.metric_key_id, p.step, p.timestamp, p.value, p.is_nan,
                        p.model_id, p.dataset_name, p.dataset_digest
                 FROM run, UNNEST($2::text[], $3::bigint[], $4::bigint[], $5::float8[],
                                  $6::bigint[], $7::text[], $8::text[], $9::text[])
                          AS p (key, step, timestamp, value, is_nan, model_id, dataset_name,
                                dataset_digest)
                 JOIN ids ON ids.key = p.key
                 WHERE run.lifecycle_stage = 'active'
                 ON CONFLICT DO NOTHING
             ), latest AS (
                 INSERT INTO latest_metrics
                     (run_key, metric_key_id, experiment_id, step, timestamp, value, is_nan)
                 SELECT run.run_key, ids.metric_key_id, run.experiment_id, l.step, l.timestamp,
                        l.value, l.is_nan
                 FROM run, UNNEST($10::text[], $11::bigint[], $12::bigint[], $13::float8[],
                                  $14::bigint[]) AS l (key, step, timestamp, value, is_nan)
                 JOIN ids ON ids.key = l.key
                 WHERE run.lifecycle_stage = 'active'
                 ON CONFLICT (run_key, metric_key_id) DO UPDATE SET
                     step = excluded.step, timestamp = excluded.timestamp,
                     value = excluded.value, is_nan = excluded.is_nan
                 WHERE (excluded.step, excluded.timestamp, excluded.value)
                     > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)
             )
             SELECT lifecycle_stage FROM run",
        )
        .await
        .map_err(pg_err)?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &run_id,
                &points.keys,
                &points.steps,
                &points.timestamps,
                &points.values,
                &points.nans,
                &models,
                &names,
                &digests,
                &latest.keys,
                &latest.steps,
                &latest.timestamps,
                &latest.values,
                &latest.nans,
            ],
        )
        .await
        .map_err(pg_err)?
        .ok_or_else(|| run_not_found(run_id))?;
    rules::require_active_run(run_id, LifecycleStage::parse(row.get(0))?)
}

/// Logs a run's points inside a batch's transaction, and marks with their model the points a
/// run already has: MLflow's client links a run's metrics to a model it logs by logging them
/// again with the model's id.
async fn log_metrics(tx: &Tx<'_>, run_id: &str, metrics: &[Metric]) -> Result<()> {
    if metrics.is_empty() {
        return Ok(());
    }
    insert_metrics(tx, run_id, metrics).await?;
    let mut linked: Vec<&Metric> = metrics.iter().filter(|m| m.model_id.is_some()).collect();
    linked.sort_by(|a, b| a.key.cmp(&b.key));
    for m in linked {
        let (value, is_nan) = rules::stored_metric_value(m.value);
        execute(
            tx,
            "UPDATE metrics SET model_id = $1, dataset_name = $2, dataset_digest = $3
             WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $4)
               AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = $5)
               AND timestamp = $6 AND step = $7 AND value = $8 AND is_nan = $9
               AND model_id IS NULL",
            &[
                &m.model_id,
                &m.dataset_name,
                &m.dataset_digest,
                &run_id,
                &m.key,
                &m.timestamp,
                &m.step,
                &value,
                &i64::from(is_nan),
            ],
        )
        .await?;
    }
    Ok(())
}

fn metric_from_row(r: &Row, offset: usize) -> Metric {
    Metric {
        key: r.get(offset),
        step: r.get(offset + 1),
        timestamp: r.get(offset + 2),
        value: rules::loaded_metric_value(r.get(offset + 3), r.get::<_, i64>(offset + 4) != 0),
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
        run_id: None,
    }
}

pub(super) fn model_metric_from_row(r: &Row, model_id: &str) -> Metric {
    let mut m = metric_from_row(r, 0);
    m.run_id = r.get(5);
    m.dataset_name = r.get(6);
    m.dataset_digest = r.get(7);
    m.model_id = Some(model_id.to_string());
    m
}

/// The loading queries of [`load_runs`], one per table, for one shape of run condition.
struct LoadSql {
    runs: &'static str,
    metrics: &'static str,
    params: &'static str,
    tags: &'static str,
    datasets: &'static str,
    models: &'static str,
}

/// Writes [`LoadSql`] for one condition on `run_uuid` (its text follows `run_uuid` in each query).
macro_rules! load_sql {
    ($cond:literal) => {
        LoadSql {
            runs: concat!(
                "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time,
                        artifact_uri, lifecycle_stage
                 FROM runs WHERE run_uuid ",
                $cond
            ),
            metrics: concat!(
                "SELECT r.run_uuid, k.key, l.step, l.timestamp, l.value, l.is_nan
                 FROM runs r JOIN latest_metrics l ON l.run_key = r.run_key
                 JOIN metric_keys k ON k.metric_key_id = l.metric_key_id
                 WHERE r.run_uuid ",
                $cond,
                " ORDER BY k.key"
            ),
            params: concat!(
                "SELECT run_uuid, key, value FROM params WHERE run_uuid ",
                $cond,
                " ORDER BY key"
            ),
            tags: concat!(
                "SELECT run_uuid, key, value FROM tags WHERE run_uuid ",
                $cond,
                " ORDER BY key"
            ),
            datasets: concat!(
                "SELECT i.run_uuid, i.tags, d.name, d.digest, d.source_type, d.source, d.schema,
                        d.profile
                 FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid
                 WHERE i.run_uuid ",
                $cond,
                " ORDER BY d.name"
            ),
            models: concat!(
                "SELECT run_uuid, model_id, NULL::bigint FROM run_model_inputs WHERE run_uuid ",
                $cond,
                " UNION ALL
                 SELECT run_uuid, model_id, step FROM run_model_outputs WHERE run_uuid ",
                $cond
            ),
        }
    };
}

/// A search page's loads, the page's ids behind an init plan: the planner then sizes the array as
/// it does an unknown one (ten ids) and takes each table's index on the run, the plan a connection
/// only reaches after five page loads (its generic plan). With the page's 100 ids in sight, as
/// custom plans have them, it scanned whole tables at 10,000 runs (`random_page_cost` 4 prices
/// 100 index probes above a scan of 20,000 rows; all of it is in memory): 6-7 ms a page on the
/// connections that had served an ingest, which ran these statements for single runs (cheap
/// custom plans) and so never moved to the generic plan. Single runs have [`ONE_RUN`]'s statements
/// now, so they no longer weigh in this plan cache either.
const PAGE_OF_RUNS: LoadSql = load_sql!("= ANY(ARRAY(SELECT unnest($1::text[])))");
/// One run's loads (get-run, and the run that create-run and update-run answer with).
const ONE_RUN: LoadSql = load_sql!("= $1");

/// Loads whole runs, in the order of `ids`; ids that do not exist are skipped. One query per
/// table for the whole page, all sent at once: tokio-postgres pipelines queries polled together
/// on one connection, so a page costs one round trip to the database instead of six.
async fn load_runs<C: GenericClient>(c: &C, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    load_runs_by(c, &PAGE_OF_RUNS, &ids, ids).await
}

async fn load_run(tx: &Tx<'_>, run_id: &str) -> Result<Run> {
    load_runs_by(tx, &ONE_RUN, &run_id, &[run_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| run_not_found(run_id))
}

/// [`load_runs`] with the statements of `sql` and their one parameter `by`, which selects `ids`.
async fn load_runs_by<C: GenericClient>(
    c: &C,
    sql: &LoadSql,
    by: P<'_>,
    ids: &[String],
) -> Result<Vec<Run>> {
    let by: &[P<'_>] = &[by];
    let (run_rows, metric_rows, param_rows, tag_rows, dataset_rows, model_rows) = tokio::try_join!(
        query(c, sql.runs, by),
        query(c, sql.metrics, by),
        query(c, sql.params, by),
        query(c, sql.tags, by),
        query(c, sql.datasets, by),
        query(c, sql.models, by),
    )?;
    let mut runs: HashMap<String, Run> = HashMap::with_capacity(ids.len());
    for r in run_rows {
        let run_id: String = r.get(0);
        let info = RunInfo {
            run_uuid: run_id.clone(),
            run_id: run_id.clone(),
            run_name: r.get(1),
            experiment_id: r.get::<_, i64>(2).to_string(),
            user_id: r.get(3),
            status: RunStatus::parse(r.get(4))?,
            start_time: r.get(5),
            end_time: r.get(6),
            artifact_uri: r.get(7),
            lifecycle_stage: LifecycleStage::parse(r.get(8))?,
        };
        let run = Run {
            info,
            data: RunData::default(),
            inputs: RunInputs::default(),
            outputs: RunOutputs::default(),
        };
        runs.insert(run_id, run);
    }
    for r in metric_rows {
        if let Some(run) = runs.get_mut(r.get::<_, &str>(0)) {
            run.data.metrics.push(metric_from_row(&r, 1));
        }
    }
    for r in param_rows {
        if let Some(run) = runs.get_mut(r.get::<_, &str>(0)) {
            run.data.params.push(Param {
                key: r.get(1),
                value: r.get(2),
            });
        }
    }
    for r in tag_rows {
        if let Some(run) = runs.get_mut(r.get::<_, &str>(0)) {
            run.data.tags.push(Tag {
                key: r.get(1),
                value: r.get(2),
            });
        }
    }
    for r in dataset_rows {
        let input = DatasetInput {
            tags: serde_json::from_str(r.get(1)).unwrap_or_default(),
            dataset: Dataset {
                name: r.get(2),
                digest: r.get(3),
                source_type: r.get(4),
                source: r.get(5),
                schema: r.get(6),
                profile: r.get(7),
            },
        };
        if let Some(run) = runs.get_mut(r.get::<_, &str>(0)) {
            run.inputs.dataset_inputs.push(input);
        }
    }
    for r in model_rows {
        let model_id: String = r.get(1);
        if let Some(run) = runs.get_mut(r.get::<_, &str>(0)) {
            match r.get::<_, Option<i64>>(2) {
                None => run.inputs.model_inputs.push(ModelInput { model_id }),
                Some(step) => run
                    .outputs
                    .model_outputs
                    .push(ModelOutput { model_id, step }),
            }
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

async fn set_experiment_stage(tx: &Tx<'_>, id: &str, stage: LifecycleStage) -> Result<()> {
    let exp = require_experiment(tx, id).await?;
    rules::check_experiment_stage_change(&exp, stage)?;
    let key = parse_experiment_id(&exp.experiment_id)?;
    let now = now_ms();
    execute(
        tx,
        "UPDATE experiments SET lifecycle_stage = $2, last_update_time = $3
         WHERE experiment_id = $1",
        &[&key, &stage.as_str(), &now],
    )
    .await?;
    // MLflow deletes and restores an experiment's runs with it.
    let (deleted_time, from) = match stage {
        LifecycleStage::Deleted => (Some(now), "active"),
        LifecycleStage::Active => (None, "deleted"),
    };
    execute(
        tx,
        "UPDATE runs SET lifecycle_stage = $2, deleted_time = $3
         WHERE experiment_id = $1 AND lifecycle_stage = $4",
        &[&key, &stage.as_str(), &deleted_time, &from],
    )
    .await?;
    Ok(())
}

impl TrackingStore for PgStore {
    fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<String> {
        let artifact_location = artifact_location
            .filter(|l| !l.is_empty())
            .map(crate::resolve_uri_if_local);
        let root = &self.config.default_artifact_root;
        self.write(async |tx| {
            let now = now_ms();
            let inserted = tx
                .query_one(
                    "INSERT INTO experiments
                         (name, artifact_location, lifecycle_stage, creation_time,
                          last_update_time)
                     VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
                    &[&name, &artifact_location.clone().unwrap_or_default(), &now],
                )
                .await;
            let id: i64 = match inserted {
                Err(e) if is_unique_violation(&e) => return Err(experiment_name_taken(name)),
                other => other.map_err(pg_err)?.get(0),
            };
            if artifact_location.is_none() {
                execute(
                    tx,
                    "UPDATE experiments SET artifact_location = $2 WHERE experiment_id = $1",
                    &[&id, &append_to_uri(root, &id.to_string())],
                )
                .await?;
            }
            for tag in tags {
                execute(
                    tx,
                    "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                    &[&id, &tag.key, &tag.value],
                )
                .await?;
            }
            Ok(id.to_string())
        })
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.write(async |tx| require_experiment(tx, experiment_id).await)
    }

    fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.write(async |tx| {
            let not_found = || rules::experiment_name_not_found(name);
            let id: i64 = query_opt(
                tx,
                "SELECT experiment_id FROM experiments WHERE name = $1",
                &[&name],
            )
            .await?
            .ok_or_else(not_found)?
            .get(0);
            load_experiment(tx, id).await?.ok_or_else(not_found)
        })
    }

    fn search_experiments(&self, search: &ExperimentSearch) -> Result<Page<Experiment>> {
        let offset = decode_token(search.page_token.as_deref())?;
        let q = search_sql::experiment_search_sql(
            Dialect::Postgres,
            search.view.stages(),
            &search.filter,
            &search.order_by,
            search.max_results + 1,
            offset,
        )?;
        self.write(async |tx| {
            let ids: Vec<i64> = first_column(&**tx, &q).await?;
            let mut experiments = Vec::with_capacity(ids.len());
            for id in ids {
                experiments.extend(load_experiment(tx, id).await?);
            }
            Ok(Page::from_overfetched(
                experiments,
                offset,
                search.max_results,
            ))
        })
    }

    fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        self.write(async |tx| {
            let exp = require_experiment(tx, experiment_id).await?;
            if exp.lifecycle_stage != LifecycleStage::Active {
                return Err(Error::invalid("Cannot rename a non-active experiment."));
            }
            let updated = execute_raw(
                tx,
                "UPDATE experiments SET name = $2, last_update_time = $3 WHERE experiment_id = $1",
                &[&parse_experiment_id(experiment_id)?, &new_name, &now_ms()],
            )
            .await;
            match updated {
                Err(e) if is_unique_violation(&e) => Err(experiment_name_taken(new_name)),
                other => other.map(drop).map_err(pg_err),
            }
        })
    }

    fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.write(async |tx| {
            set_experiment_stage(tx, experiment_id, LifecycleStage::Deleted).await
        })
    }

    fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.write(async |tx| set_experiment_stage(tx, experiment_id, LifecycleStage::Active).await)
    }

    fn set_experiment_tag(&self, experiment_id: &str, tag: &Tag) -> Result<()> {
        self.write(async |tx| {
            let exp = require_active_experiment(tx, experiment_id).await?;
            execute(
                tx,
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
                &[
                    &parse_experiment_id(&exp.experiment_id)?,
                    &tag.key,
                    &tag.value,
                ],
            )
            .await
            .map(drop)
        })
    }

    fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        self.write(async |tx| {
            let exp = require_active_experiment(tx, experiment_id).await?;
            let n = execute(
                tx,
                "DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2",
                &[&parse_experiment_id(&exp.experiment_id)?, &key],
            )
            .await?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in experiment with id {experiment_id}"
                )));
            }
            Ok(())
        })
    }

    fn create_run(&self, run: NewRun) -> Result<Run> {
        self.write(async |tx| {
            let exp = require_active_experiment(tx, &run.experiment_id).await?;
            let name = rules::new_run_name(run.run_name.clone(), &run.tags)?;
            let run_id = uuid::Uuid::new_v4().simple().to_string();
            let artifact_uri =
                append_to_uri(&append_to_uri(&exp.artifact_location, &run_id), "artifacts");
            execute(
                tx,
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time,
                                   artifact_uri, lifecycle_stage)
                 VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, 'active')",
                &[
                    &run_id,
                    &parse_experiment_id(&exp.experiment_id)?,
                    &name,
                    &run.user_id,
                    &run.start_time.unwrap_or_else(now_ms),
                    &artifact_uri,
                ],
            )
            .await?;
            for tag in &run.tags {
                set_run_tag(tx, &run_id, tag).await?;
            }
            set_run_name(tx, &run_id, name).await?;
            load_run(tx, &run_id).await
        })
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        self.write(async |tx| load_run(tx, run_id).await)
    }

    fn update_run(&self, run_id: &str, update: RunUpdate) -> Result<RunInfo> {
        self.write(async |tx| {
            require_active_run(tx, run_id).await?;
            if let Some(status) = update.status {
                execute(
                    tx,
                    "UPDATE runs SET status = $2 WHERE run_uuid = $1",
                    &[&run_id, &status.as_str()],
                )
                .await?;
            }
            if let Some(end_time) = update.end_time {
                execute(
                    tx,
                    "UPDATE runs SET end_time = $2 WHERE run_uuid = $1",
                    &[&run_id, &end_time],
                )
                .await?;
            }
            if let Some(name) = update.run_name.filter(|n| !n.is_empty()) {
                set_run_name(tx, run_id, name).await?;
            }
            Ok(load_run(tx, run_id).await?.info)
        })
    }

    fn delete_run(&self, run_id: &str) -> Result<()> {
        self.write(async |tx| {
            run_stage(tx, run_id).await?;
            execute(
                tx,
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $2 WHERE run_uuid = $1",
                &[&run_id, &now_ms()],
            )
            .await
            .map(drop)
        })
    }

    fn restore_run(&self, run_id: &str) -> Result<()> {
        self.write(async |tx| {
            run_stage(tx, run_id).await?;
            execute(
                tx,
                "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE run_uuid = $1",
                &[&run_id],
            )
            .await
            .map(drop)
        })
    }

    fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        mut params: Vec<Param>,
        mut tags: Vec<Tag>,
    ) -> Result<()> {
        // Rows are claimed in key order (a stable sort keeps a batch's repeated keys in order).
        params.sort_by(|a, b| a.key.cmp(&b.key));
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        if params.is_empty() && tags.is_empty() && metrics.iter().all(|m| m.model_id.is_none()) {
            // Points alone: one statement, in autocommit (see insert_metrics).
            return self.pool.run(|conn| async move {
                let client = conn.client().await?;
                insert_metrics(&client, run_id, &metrics).await
            });
        }
        self.write(async |tx| {
            require_active_run(tx, run_id).await?;
            for param in &params {
                log_param(tx, run_id, param).await?;
            }
            log_metrics(tx, run_id, &metrics).await?;
            for tag in &tags {
                set_run_tag(tx, run_id, tag).await?;
            }
            Ok(())
        })
    }

    fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.write(async |tx| {
            require_active_run(tx, run_id).await?;
            let n = execute(
                tx,
                "DELETE FROM tags WHERE run_uuid = $1 AND key = $2",
                &[&run_id, &key],
            )
            .await?;
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
        self.write(async |tx| {
            let experiment_id = require_active_run(tx, run_id).await?;
            for input in &datasets {
                let d = &input.dataset;
                // A dataset another writer adds at the same time is the same dataset.
                let new_id = uuid::Uuid::new_v4().simple().to_string();
                execute(
                    tx,
                    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest,
                                           source_type, source, schema, profile)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (experiment_id, name, digest) DO NOTHING",
                    &[
                        &new_id,
                        &experiment_id,
                        &d.name,
                        &d.digest,
                        &d.source_type,
                        &d.source,
                        &d.schema,
                        &d.profile,
                    ],
                )
                .await?;
                let dataset_uuid: String = query_opt(
                    tx,
                    "SELECT dataset_uuid FROM datasets
                     WHERE experiment_id = $1 AND name = $2 AND digest = $3",
                    &[&experiment_id, &d.name, &d.digest],
                )
                .await?
                .ok_or_else(|| Error::internal("a dataset just stored is missing"))?
                .get(0);
                let tags = serde_json::to_string(&input.tags)
                    .map_err(|e| Error::internal(e.to_string()))?;
                execute(
                    tx,
                    "INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, tags)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&run_id, &dataset_uuid, &tags],
                )
                .await?;
            }
            for model in &models {
                execute(
                    tx,
                    "INSERT INTO run_model_inputs (run_uuid, model_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&run_id, &model.model_id],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.write(async |tx| {
            require_active_run(tx, run_id).await?;
            for model in &models {
                logged_models::require_model(tx, &model.model_id).await?;
                execute(
                    tx,
                    "INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&run_id, &model.model_id, &model.step],
                )
                .await?;
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
        let q = search_sql::run_search_sql(
            Dialect::Postgres,
            &experiment_ids,
            search.view.stages(),
            &search.filter,
            &search.order_by,
            search.max_results + 1,
            offset,
        )?;
        // Outside a transaction, each statement sees the database as a read-committed
        // transaction's statement would, without BEGIN's and COMMIT's round trips.
        self.autocommit(async |client| {
            let mut ids: Vec<String> = Vec::new();
            for segment in &q.segments {
                if !q.wants_more(ids.len()) {
                    break;
                }
                ids.extend(first_column::<String, tokio_postgres::Client>(client, segment).await?);
            }
            let runs = load_runs(client, &q.page(ids)).await?;
            Ok(Page::from_overfetched(runs, offset, search.max_results))
        })
    }

    fn count_active_runs(&self, experiment_ids: &[String]) -> Result<Vec<(String, u64)>> {
        let ids = experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        self.write(async |tx| {
            let counts: HashMap<i64, i64> = query(
                tx,
                "SELECT experiment_id, COUNT(*) FROM runs
                 WHERE experiment_id = ANY($1) AND lifecycle_stage = 'active'
                 GROUP BY experiment_id",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
            Ok(ids
                .iter()
                .map(|id| {
                    let n = counts.get(id).copied().unwrap_or(0);
                    (id.to_string(), n as u64)
                })
                .collect())
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
        // NULL is PostgreSQL's "no limit".
        let limit = max_results.map(|m| m as i64 + 1);
        // Like MLflow's SQL store, an unknown run has an empty history rather than an error.
        // One statement: no transaction around it, so one round trip to the database.
        let rows: Vec<Metric> = self.autocommit(async |client| {
            Ok(query(
                client,
                "SELECT $2::text, step, timestamp, value, is_nan, model_id, dataset_name,
                        dataset_digest
                 FROM metrics WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $1)
                   AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = $2)
                 ORDER BY timestamp, step, value LIMIT $3 OFFSET $4",
                &[&run_id, &key, &limit, &(offset as i64)],
            )
            .await?
            .iter()
            .map(|r| {
                let mut m = metric_from_row(r, 0);
                m.model_id = r.get(5);
                m.dataset_name = r.get(6);
                m.dataset_digest = r.get(7);
                m
            })
            .collect())
        })?;
        Ok(match max_results {
            Some(max) => Page::from_overfetched(rows, offset, max),
            None => Page {
                items: rows,
                next_page_token: None,
            },
        })
    }

    fn metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        key: &str,
        steps: Option<(i64, i64)>,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        let (start, end) = steps.unwrap_or((i64::MIN, i64::MAX));
        self.write(async |tx| {
            let mut out = Vec::new();
            for run_id in run_ids {
                let points = query(
                    tx,
                    "SELECT step, timestamp, value, is_nan FROM metrics
                     WHERE run_key = (SELECT run_key FROM runs WHERE run_uuid = $1)
                       AND metric_key_id = (SELECT metric_key_id FROM metric_keys WHERE key = $2)
                       AND step BETWEEN $3 AND $4",
                    &[run_id, &key, &start, &end],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) != 0))
                .collect();
                out.extend(rules::sample_history(run_id, key, points, max_results));
            }
            Ok(out)
        })
    }

    fn create_logged_model(&self, model: NewLoggedModel) -> Result<LoggedModel> {
        self.write(async |tx| logged_models::create(tx, model).await)
    }

    fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        self.write(async |tx| logged_models::load(tx, model_id).await)
    }

    fn set_logged_model_status(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.write(async |tx| logged_models::set_status(tx, model_id, status).await)
    }

    fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.write(async |tx| logged_models::delete(tx, model_id).await)
    }

    fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        self.write(async |tx| logged_models::set_tags(tx, model_id, &tags).await)
    }

    fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.write(async |tx| logged_models::delete_tag(tx, model_id, key).await)
    }

    fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        self.write(async |tx| logged_models::log_params(tx, model_id, &params).await)
    }

    fn search_logged_models(&self, search: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
        let offset = decode_token(search.page_token.as_deref())?;
        let experiment_ids = search
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        let q = search_sql::logged_model_search_sql(
            Dialect::Postgres,
            &experiment_ids,
            search,
            search.max_results + 1,
            offset,
        )?;
        self.write(async |tx| {
            let ids: Vec<String> = first_column(&**tx, &q).await?;
            let models = logged_models::load_many(tx, &ids).await?;
            Ok(Page::from_overfetched(models, offset, search.max_results))
        })
    }

    fn deleted_run_ids(&self, older_than_ms: i64) -> Result<Vec<String>> {
        let before = now_ms() - older_than_ms;
        self.write(async |tx| {
            Ok(query(
                tx,
                "SELECT run_uuid FROM runs WHERE lifecycle_stage = 'deleted'
                 AND COALESCE(deleted_time, 0) <= $1 ORDER BY run_uuid",
                &[&before],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn deleted_experiment_ids(&self, older_than_ms: i64) -> Result<Vec<String>> {
        let before = now_ms() - older_than_ms;
        self.write(async |tx| {
            Ok(query(
                tx,
                "SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'deleted'
                 AND last_update_time <= $1 ORDER BY experiment_id",
                &[&before],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0).to_string())
            .collect())
        })
    }

    fn purge_run(&self, run_id: &str) -> Result<String> {
        self.write(async |tx| {
            let found = query_opt(
                tx,
                "SELECT lifecycle_stage, artifact_uri FROM runs WHERE run_uuid = $1",
                &[&run_id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
            let uri = rules::purgeable_run_uri(run_id, found)?;
            // Metrics, params, tags and inputs go with it (ON DELETE CASCADE).
            execute(tx, "DELETE FROM runs WHERE run_uuid = $1", &[&run_id]).await?;
            Ok(uri)
        })
    }

    fn purge_experiment(&self, experiment_id: &str) -> Result<Vec<String>> {
        self.write(async |tx| {
            let exp = require_experiment(tx, experiment_id).await?;
            rules::check_experiment_purgeable(&exp)?;
            let key = parse_experiment_id(&exp.experiment_id)?;
            let mut uris = Vec::new();
            for sql in [
                "SELECT artifact_uri FROM runs WHERE experiment_id = $1",
                "SELECT artifact_location FROM logged_models WHERE experiment_id = $1",
            ] {
                uris.extend(query(tx, sql, &[&key]).await?.iter().map(|r| r.get(0)));
            }
            uris.push(exp.artifact_location.clone());
            for sql in [
                "DELETE FROM runs WHERE experiment_id = $1",
                "DELETE FROM logged_models WHERE experiment_id = $1",
                "DELETE FROM datasets WHERE experiment_id = $1",
                "DELETE FROM experiments WHERE experiment_id = $1",
            ] {
                execute(tx, sql, &[&key]).await?;
            }
            Ok(uris)
        })
    }

    fn search_dataset_summaries(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<crate::DatasetSummary>> {
        self.write(async |tx| super::datasets::search_summaries(tx, experiment_ids).await)
    }
}
