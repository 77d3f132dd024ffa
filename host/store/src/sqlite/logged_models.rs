//! MLflow 3's logged models: what `mlflow.<flavor>.log_model` creates before uploading files.

use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::entities::{
    LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelStatus, Param, Tag,
};
use wasmflow_core::paging::{Page, decode_token};
use wasmflow_core::{Error, Result};

use super::search_sql::SqlQuery;
use super::tracking::{json_list, key_values, load_experiment, metric_from_row};
use super::{now_ms, sql_err};
use crate::search_sql::Dialect;
use crate::{LoggedModelSearch, NewLoggedModel};

use crate::tracking_rules::logged_model_not_found as not_found;

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
    let experiment = load_experiment(conn, experiment_id)?
        .ok_or_else(|| crate::tracking_rules::experiment_not_found(&model.experiment_id))?;
    let experiment = crate::tracking_rules::require_active_experiment(experiment)?;
    let (model_id, artifact_location, name) =
        crate::tracking_rules::new_logged_model_identity(&experiment.artifact_location, model.name);
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
                "SELECT k.key, m.step, m.timestamp, m.value, m.is_nan, r.run_uuid, m.dataset_name,
                        m.dataset_digest
                 FROM metrics m JOIN metric_keys k ON k.metric_key_id = m.metric_key_id
                 JOIN runs r ON r.run_key = m.run_key
                 WHERE m.model_id = ?1 ORDER BY k.key, m.step, m.timestamp",
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

pub(super) fn search(conn: &Connection, search: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
    let offset = decode_token(search.page_token.as_deref())?;
    let experiment_ids = search
        .experiment_ids
        .iter()
        .map(|id| wasmflow_core::validation::parse_experiment_id(id))
        .collect::<Result<Vec<_>>>()?;
    let query: SqlQuery = crate::search_sql::logged_model_search_sql(
        Dialect::Sqlite,
        &experiment_ids,
        search,
        search.max_results + 1,
        offset,
    )?
    .into();
    let ids: Vec<String> = query.first_column(conn)?;
    let models = load_many(conn, &ids)?;
    Ok(Page::from_overfetched(models, offset, search.max_results))
}
