//! MLflow 3's logged models in PostgreSQL.

use wasmflow_core::entities::{
    LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelStatus, Param, Tag,
};
use wasmflow_core::{Error, Result};

use super::tracking::{
    Tx, execute, key_values, load_experiment, model_metric_from_row, query, query_opt,
};
use crate::NewLoggedModel;
use crate::sqlite::now_ms;
use crate::tracking_rules::{self as rules, logged_model_not_found as not_found};

/// Fails unless an active logged model `model_id` exists.
pub(super) async fn require_model(tx: &Tx<'_>, model_id: &str) -> Result<()> {
    let stage: Option<String> = query_opt(
        tx,
        "SELECT lifecycle_stage FROM logged_models WHERE model_id = $1",
        &[&model_id],
    )
    .await?
    .map(|r| r.get(0));
    match stage.as_deref() {
        Some("active") => Ok(()),
        _ => Err(not_found(model_id)),
    }
}

pub(super) async fn create(tx: &Tx<'_>, model: NewLoggedModel) -> Result<LoggedModel> {
    let experiment_id = wasmflow_core::validation::parse_experiment_id(&model.experiment_id)?;
    let experiment = load_experiment(tx, experiment_id)
        .await?
        .ok_or_else(|| rules::experiment_not_found(&model.experiment_id))?;
    let experiment = rules::require_active_experiment(experiment)?;
    let (model_id, artifact_location, name) =
        rules::new_logged_model_identity(&experiment.artifact_location, model.name);
    execute(
        tx,
        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location,
             creation_timestamp_ms, last_updated_timestamp_ms, status, model_type, source_run_id)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
        &[
            &model_id,
            &experiment_id,
            &name,
            &artifact_location,
            &now_ms(),
            &LoggedModelStatus::Pending.as_str(),
            &model.model_type.filter(|t| !t.is_empty()),
            &model.source_run_id.filter(|r| !r.is_empty()),
        ],
    )
    .await?;
    set_tags(tx, &model_id, &model.tags).await?;
    log_params(tx, &model_id, &model.params).await?;
    load(tx, &model_id).await
}

pub(super) async fn load(tx: &Tx<'_>, model_id: &str) -> Result<LoggedModel> {
    load_many(tx, &[model_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| not_found(model_id))
}

/// Loads active models in the order of `ids`.
pub(super) async fn load_many(tx: &Tx<'_>, ids: &[String]) -> Result<Vec<LoggedModel>> {
    let mut models: Vec<LoggedModel> = Vec::with_capacity(ids.len());
    for r in query(
        tx,
        "SELECT model_id, experiment_id, name, creation_timestamp_ms, last_updated_timestamp_ms,
                artifact_location, status, model_type, source_run_id, status_message
         FROM logged_models WHERE model_id = ANY($1) AND lifecycle_stage = 'active'",
        &[&ids],
    )
    .await?
    {
        models.push(LoggedModel {
            info: LoggedModelInfo {
                model_id: r.get(0),
                experiment_id: r.get::<_, i64>(1).to_string(),
                name: r.get(2),
                creation_timestamp_ms: r.get(3),
                last_updated_timestamp_ms: r.get(4),
                artifact_uri: r.get(5),
                status: LoggedModelStatus::parse(r.get(6))?,
                creator_id: None,
                model_type: r.get(7),
                source_run_id: r.get(8),
                status_message: r.get(9),
                tags: Vec::new(),
            },
            data: LoggedModelData::default(),
        });
    }
    for model in &mut models {
        let id = model.info.model_id.clone();
        model.info.tags = key_values(
            tx,
            "SELECT key, value FROM logged_model_tags WHERE model_id = $1 ORDER BY key",
            &id,
        )
        .await?
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
        model.data.params = key_values(
            tx,
            "SELECT key, value FROM logged_model_params WHERE model_id = $1 ORDER BY key",
            &id,
        )
        .await?
        .into_iter()
        .map(|(key, value)| Param { key, value })
        .collect();
        model.data.metrics = query(
            tx,
            "SELECT k.key, m.step, m.timestamp, m.value, m.is_nan, r.run_uuid, m.dataset_name,
                    m.dataset_digest
             FROM metrics m JOIN metric_keys k ON k.metric_key_id = m.metric_key_id
             JOIN runs r ON r.run_key = m.run_key
             WHERE m.model_id = $1 ORDER BY k.key, m.step, m.timestamp",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| model_metric_from_row(r, &id))
        .collect();
    }
    let mut ordered = Vec::with_capacity(models.len());
    for id in ids {
        if let Some(pos) = models.iter().position(|m| &m.info.model_id == id) {
            ordered.push(models.swap_remove(pos));
        }
    }
    Ok(ordered)
}

async fn touch(tx: &Tx<'_>, model_id: &str) -> Result<()> {
    execute(
        tx,
        "UPDATE logged_models SET last_updated_timestamp_ms = $2 WHERE model_id = $1",
        &[&model_id, &now_ms()],
    )
    .await
    .map(drop)
}

pub(super) async fn set_status(
    tx: &Tx<'_>,
    model_id: &str,
    status: LoggedModelStatus,
) -> Result<LoggedModel> {
    require_model(tx, model_id).await?;
    execute(
        tx,
        "UPDATE logged_models SET status = $2 WHERE model_id = $1",
        &[&model_id, &status.as_str()],
    )
    .await?;
    touch(tx, model_id).await?;
    load(tx, model_id).await
}

pub(super) async fn delete(tx: &Tx<'_>, model_id: &str) -> Result<()> {
    require_model(tx, model_id).await?;
    execute(
        tx,
        "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $2
         WHERE model_id = $1",
        &[&model_id, &now_ms()],
    )
    .await
    .map(drop)
}

pub(super) async fn set_tags(tx: &Tx<'_>, model_id: &str, tags: &[Tag]) -> Result<()> {
    require_model(tx, model_id).await?;
    for tag in tags {
        execute(
            tx,
            "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            &[&model_id, &tag.key, &tag.value],
        )
        .await?;
    }
    touch(tx, model_id).await
}

pub(super) async fn delete_tag(tx: &Tx<'_>, model_id: &str, key: &str) -> Result<()> {
    require_model(tx, model_id).await?;
    let n = execute(
        tx,
        "DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2",
        &[&model_id, &key],
    )
    .await?;
    if n == 0 {
        return Err(Error::not_found(format!(
            "No tag with key '{key}' found for model with ID '{model_id}'."
        )));
    }
    touch(tx, model_id).await
}

pub(super) async fn log_params(tx: &Tx<'_>, model_id: &str, params: &[Param]) -> Result<()> {
    require_model(tx, model_id).await?;
    for p in params {
        execute(
            tx,
            "INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            &[&model_id, &p.key, &p.value],
        )
        .await?;
    }
    Ok(())
}
