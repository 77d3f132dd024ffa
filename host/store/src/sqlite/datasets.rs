//! Dataset summaries for the UI (MLflow's `_search_datasets`).

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use wasmflow_core::Result;

use super::sql_err;
use crate::DatasetSummary;

/// MLflow's `MAX_DATASET_SUMMARIES_RESULTS`.
const MAX_SUMMARIES: i64 = 1000;

pub(super) fn search_summaries(
    conn: &Connection,
    experiment_ids: &[String],
) -> Result<Vec<DatasetSummary>> {
    // Ids that are not integers name no experiment.
    let ids: Vec<SqlValue> = experiment_ids
        .iter()
        .filter_map(|id| id.trim().parse::<i64>().ok())
        .map(SqlValue::Integer)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    // One row per dataset and context: the context is the input's `mlflow.data.context` tag
    // (null when the input has none), as MLflow's left join on the input tags gives.
    let sql = format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest,
                (SELECT json_extract(t.value, '$.value') FROM json_each(i.tags) AS t
                 WHERE json_extract(t.value, '$.key') = 'mlflow.data.context' LIMIT 1)
         FROM datasets d JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid
         WHERE d.experiment_id IN ({marks})
         LIMIT {MAX_SUMMARIES}"
    );
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(ids), |r| {
            Ok(DatasetSummary {
                experiment_id: r.get::<_, i64>(0)?.to_string(),
                name: r.get(1)?,
                digest: r.get(2)?,
                context: r.get(3)?,
            })
        })
        .map_err(sql_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_err)
}
