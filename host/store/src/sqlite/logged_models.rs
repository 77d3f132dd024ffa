//! MLflow 3's logged models: what `mlflow.<flavor>.log_model` creates before uploading files.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::entities::{
    LifecycleStage, LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelStatus, Param, Tag,
};
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::search::{Comparison, Entity};
use wasmflow_core::{Error, Result};

use super::search_sql::{SqlQuery, compare};
use super::tracking::{append_to_uri, json_list, key_values, load_experiment, metric_from_row};
use super::{now_ms, sql_err};
use crate::{DatasetFilter, LoggedModelSearch, NewLoggedModel};

fn not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found."))
}

/// Fails unless an active logged model `model_id` exists.
pub(super) fn require_model(conn: &Connection, model_id: &str) -> Result<()> {
    let stage: Option<String> = conn
        .prepare_cached("SELECT lifecycle_stage FROM logged_models WHERE model_id = ?1")
        .map_err(sql_err)?
        .query_row([model_id], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    match stage.as_deref() {
        Some("active") => Ok(()),
        _ => Err(not_found(model_id)),
    }
}

pub(super) fn create(conn: &Connection, model: NewLoggedModel) -> Result<LoggedModel> {
    let experiment_id = wasmflow_core::validation::parse_experiment_id(&model.experiment_id)?;
    let experiment = load_experiment(conn, experiment_id)?.ok_or_else(|| {
        Error::not_found(format!(
            "No Experiment with id={} exists",
            model.experiment_id
        ))
    })?;
    if experiment.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
        )));
    }
    let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let artifact_location = append_to_uri(
        &append_to_uri(
            &append_to_uri(&experiment.artifact_location, "models"),
            &model_id,
        ),
        "artifacts",
    );
    let name = model
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("model-{}", &model_id[2..10]));
    let now = now_ms();
    conn.execute(
        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location,
             creation_timestamp_ms, last_updated_timestamp_ms, status, model_type, source_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
        params![
            model_id,
            experiment_id,
            name,
            artifact_location,
            now,
            LoggedModelStatus::Pending.as_str(),
            model.model_type.filter(|t| !t.is_empty()),
            model.source_run_id.filter(|r| !r.is_empty()),
        ],
    )
    .map_err(sql_err)?;
    set_tags(conn, &model_id, &model.tags)?;
    log_params(conn, &model_id, &model.params)?;
    load(conn, &model_id)
}

pub(super) fn load(conn: &Connection, model_id: &str) -> Result<LoggedModel> {
    load_many(conn, &[model_id.to_string()])?
        .pop()
        .ok_or_else(|| not_found(model_id))
}

/// Loads active models in the order of `ids`.
fn load_many(conn: &Connection, ids: &[String]) -> Result<Vec<LoggedModel>> {
    let list = json_list(ids);
    let mut models: Vec<LoggedModel> = Vec::with_capacity(ids.len());
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT model_id, experiment_id, name, creation_timestamp_ms,
                        last_updated_timestamp_ms, artifact_location, status, model_type,
                        source_run_id, status_message
                 FROM logged_models
                 WHERE model_id IN (SELECT value FROM json_each(?1)) AND lifecycle_stage = 'active'",
            )
            .map_err(sql_err)?;
        let mut rows = stmt.query([&list]).map_err(sql_err)?;
        while let Some(r) = rows.next().map_err(sql_err)? {
            let status: String = r.get(6).map_err(sql_err)?;
            models.push(LoggedModel {
                info: LoggedModelInfo {
                    model_id: r.get(0).map_err(sql_err)?,
                    experiment_id: r.get::<_, i64>(1).map_err(sql_err)?.to_string(),
                    name: r.get(2).map_err(sql_err)?,
                    creation_timestamp_ms: r.get(3).map_err(sql_err)?,
                    last_updated_timestamp_ms: r.get(4).map_err(sql_err)?,
                    artifact_uri: r.get(5).map_err(sql_err)?,
                    status: LoggedModelStatus::parse(&status)?,
                    creator_id: None,
                    model_type: r.get(7).map_err(sql_err)?,
                    source_run_id: r.get(8).map_err(sql_err)?,
                    status_message: r.get(9).map_err(sql_err)?,
                    tags: Vec::new(),
                },
                data: LoggedModelData::default(),
            });
        }
    }
    for model in &mut models {
        let id = model.info.model_id.clone();
        model.info.tags = key_values(
            conn,
            "SELECT key, value FROM logged_model_tags WHERE model_id = ?1 ORDER BY key",
            &id,
        )?
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
        model.data.params = key_values(
            conn,
            "SELECT key, value FROM logged_model_params WHERE model_id = ?1 ORDER BY key",
            &id,
        )?
        .into_iter()
        .map(|(key, value)| Param { key, value })
        .collect();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, step, timestamp, value, is_nan, run_uuid, dataset_name, dataset_digest
                 FROM metrics WHERE model_id = ?1 ORDER BY key, step, timestamp",
            )
            .map_err(sql_err)?;
        model.data.metrics = stmt
            .query_map([&id], |r| {
                let mut m = metric_from_row(r, 0)?;
                m.run_id = r.get(5)?;
                m.dataset_name = r.get(6)?;
                m.dataset_digest = r.get(7)?;
                m.model_id = Some(id.clone());
                Ok(m)
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
    }
    let mut ordered = Vec::with_capacity(models.len());
    for id in ids {
        if let Some(pos) = models.iter().position(|m| &m.info.model_id == id) {
            ordered.push(models.swap_remove(pos));
        }
    }
    Ok(ordered)
}

fn touch(conn: &Connection, model_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE logged_models SET last_updated_timestamp_ms = ?2 WHERE model_id = ?1",
        params![model_id, now_ms()],
    )
    .map_err(sql_err)?;
    Ok(())
}

pub(super) fn set_status(
    conn: &Connection,
    model_id: &str,
    status: LoggedModelStatus,
) -> Result<LoggedModel> {
    require_model(conn, model_id)?;
    conn.execute(
        "UPDATE logged_models SET status = ?2 WHERE model_id = ?1",
        params![model_id, status.as_str()],
    )
    .map_err(sql_err)?;
    touch(conn, model_id)?;
    load(conn, model_id)
}

pub(super) fn delete(conn: &Connection, model_id: &str) -> Result<()> {
    require_model(conn, model_id)?;
    conn.execute(
        "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ?2
         WHERE model_id = ?1",
        params![model_id, now_ms()],
    )
    .map_err(sql_err)?;
    Ok(())
}

pub(super) fn set_tags(conn: &Connection, model_id: &str, tags: &[Tag]) -> Result<()> {
    require_model(conn, model_id)?;
    for tag in tags {
        conn.prepare_cached(
            "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
        )
        .map_err(sql_err)?
        .execute(params![model_id, tag.key, tag.value])
        .map_err(sql_err)?;
    }
    touch(conn, model_id)
}

pub(super) fn delete_tag(conn: &Connection, model_id: &str, key: &str) -> Result<()> {
    require_model(conn, model_id)?;
    let n = conn
        .execute(
            "DELETE FROM logged_model_tags WHERE model_id = ?1 AND key = ?2",
            params![model_id, key],
        )
        .map_err(sql_err)?;
    if n == 0 {
        return Err(Error::not_found(format!(
            "No tag with key '{key}' found for model with ID '{model_id}'."
        )));
    }
    touch(conn, model_id)
}

pub(super) fn log_params(conn: &Connection, model_id: &str, params: &[Param]) -> Result<()> {
    require_model(conn, model_id)?;
    for p in params {
        conn.prepare_cached(
            "INSERT INTO logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
        )
        .map_err(sql_err)?
        .execute(params![model_id, p.key, p.value])
        .map_err(sql_err)?;
    }
    Ok(())
}

/// The `logged_models` column an attribute filter or order names.
fn attribute_column(key: &str) -> Result<&'static str> {
    Ok(match key {
        "model_id" => "lm.model_id",
        "name" => "lm.name",
        "status" => "lm.status",
        "model_type" => "lm.model_type",
        "source_run_id" => "lm.source_run_id",
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => {
            "lm.creation_timestamp_ms"
        }
        "last_updated_timestamp" | "last_updated_timestamp_ms" => "lm.last_updated_timestamp_ms",
        other => {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{other}' for logged models"
            )));
        }
    })
}

/// `(x.dataset_name = ? AND x.dataset_digest IS ?) OR ...` for the metric rows `x` on one of
/// `datasets`; `None` when there are none (every metric counts).
fn dataset_condition(datasets: &[DatasetFilter], params: &mut Vec<SqlValue>) -> Option<String> {
    if datasets.is_empty() {
        return None;
    }
    let parts: Vec<String> = datasets
        .iter()
        .map(|d| {
            params.push(SqlValue::Text(d.name.clone()));
            params.push(d.digest.clone().map_or(SqlValue::Null, SqlValue::Text));
            "(x.dataset_name = ? AND x.dataset_digest IS ?)".to_string()
        })
        .collect();
    Some(format!("({})", parts.join(" OR ")))
}

fn compile_filter(
    c: &Comparison,
    datasets: &[DatasetFilter],
    params: &mut Vec<SqlValue>,
) -> Result<String> {
    let exists = |table: &str, params: &mut Vec<SqlValue>| -> Result<String> {
        params.push(SqlValue::Text(c.key.clone()));
        let cond = compare("x.value", c.op, &c.value, params)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM {table} x WHERE x.model_id = lm.model_id AND x.key = ? AND {cond})"
        ))
    };
    match c.entity {
        Entity::Attribute => compare(attribute_column(&c.key)?, c.op, &c.value, params),
        Entity::Param => exists("logged_model_params", params),
        Entity::Tag => exists("logged_model_tags", params),
        Entity::Metric => {
            params.push(SqlValue::Text(c.key.clone()));
            let cond = compare("x.value", c.op, &c.value, params)?;
            let on_datasets = dataset_condition(datasets, params)
                .map(|d| format!(" AND {d}"))
                .unwrap_or_default();
            Ok(format!(
                "EXISTS (SELECT 1 FROM metrics x WHERE x.model_id = lm.model_id AND x.key = ? \
                 AND x.is_nan = 0 AND {cond}{on_datasets})"
            ))
        }
        Entity::Dataset => Err(Error::invalid(
            "dataset filters are not supported for logged models; use `datasets`",
        )),
    }
}

pub(super) fn search(conn: &Connection, search: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let experiment_ids = search
        .experiment_ids
        .iter()
        .map(|id| wasmflow_core::validation::parse_experiment_id(id))
        .collect::<Result<Vec<_>>>()?;
    let mut params = vec![json_list(&experiment_ids)];
    let mut sql = String::from(
        "SELECT lm.model_id FROM logged_models lm
         WHERE lm.lifecycle_stage = 'active'
           AND lm.experiment_id IN (SELECT value FROM json_each(?))",
    );
    if search.datasets.iter().any(|d| d.name.is_empty()) {
        return Err(Error::invalid(
            "`dataset_name` in the `datasets` clause must be specified.",
        ));
    }
    for c in &search.filter {
        sql.push_str(" AND ");
        sql.push_str(&compile_filter(c, &search.datasets, &mut params)?);
    }
    // Without a metric filter, the datasets alone select models with any metric on them.
    if !search.filter.iter().any(|c| c.entity == Entity::Metric)
        && let Some(on_datasets) = dataset_condition(&search.datasets, &mut params)
    {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM metrics x WHERE x.model_id = lm.model_id AND {on_datasets})"
        ));
    }
    let mut order = Vec::new();
    for o in &search.order_by {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match o.entity {
            Entity::Attribute => order.push(format!("{} {dir}", attribute_column(&o.key)?)),
            Entity::Metric => {
                params.push(SqlValue::Text(o.key.clone()));
                let sub = "(SELECT x.value FROM metrics x WHERE x.model_id = lm.model_id \
                           AND x.key = ? AND x.is_nan = 0 ORDER BY x.step DESC, x.timestamp DESC \
                           LIMIT 1)";
                // Models without the metric sort last either way.
                order.push(format!("{sub} IS NULL, {sub} {dir}"));
                params.push(SqlValue::Text(o.key.clone()));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid order_by entity for logged models: '{}'",
                    o.key
                )));
            }
        }
    }
    order.push("lm.creation_timestamp_ms DESC".into());
    order.push("lm.model_id ASC".into());
    sql.push_str(&format!(" ORDER BY {} LIMIT ? OFFSET ?", order.join(", ")));
    params.push(SqlValue::Integer(search.max_results as i64 + 1));
    params.push(SqlValue::Integer(offset as i64));
    let ids: Vec<String> = SqlQuery { sql, params }.first_column(conn)?;
    let models = load_many(conn, &ids)?;
    Ok(Page::from_overfetched(models, offset, search.max_results))
}
