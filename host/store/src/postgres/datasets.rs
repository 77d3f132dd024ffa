//! Dataset summaries for the UI (MLflow's `_search_datasets`) in PostgreSQL.

use wasmflow_core::Result;

use super::tracking::{Tx, query};
use crate::DatasetSummary;

/// MLflow's `MAX_DATASET_SUMMARIES_RESULTS`.
const MAX_SUMMARIES: i64 = 1000;

pub(super) async fn search_summaries(
    tx: &Tx<'_>,
    experiment_ids: &[String],
) -> Result<Vec<DatasetSummary>> {
    // Ids that are not integers name no experiment.
    let ids: Vec<i64> = experiment_ids
        .iter()
        .filter_map(|id| id.trim().parse::<i64>().ok())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One row per dataset and context: the context is the input's `mlflow.data.context` tag
    // (null when the input has none), as MLflow's left join on the input tags gives.
    let rows = query(
        tx,
        "SELECT DISTINCT d.experiment_id, d.name, d.digest,
                (SELECT t.value ->> 'value' FROM jsonb_array_elements(i.tags::jsonb) AS t(value)
                 WHERE t.value ->> 'key' = 'mlflow.data.context' LIMIT 1)
         FROM datasets d JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid
         WHERE d.experiment_id = ANY($1)
         LIMIT $2",
        &[&ids, &MAX_SUMMARIES],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| DatasetSummary {
            experiment_id: r.get::<_, i64>(0).to_string(),
            name: r.get(1),
            digest: r.get(2),
            context: r.get(3),
        })
        .collect())
}
