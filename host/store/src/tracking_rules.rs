//! What both backends' tracking stores decide the same way, whatever their SQL: MLflow's error
//! messages, run names, the state checks that need a stored value, how a metric value is stored,
//! and how a history is sampled.

use wasmflow_core::entities::{Experiment, LifecycleStage, Metric, Tag};
use wasmflow_core::{Error, Result};

/// The tag holding a run's name (MLflow's `mlflow.runName`).
pub(crate) const RUN_NAME_TAG: &str = "mlflow.runName";

pub(crate) fn experiment_not_found(id: &str) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}

pub(crate) fn experiment_name_not_found(name: &str) -> Error {
    Error::not_found(format!("Could not find experiment with name '{name}'"))
}

pub(crate) fn run_not_found(id: &str) -> Error {
    Error::not_found(format!("Run with id={id} not found"))
}

pub(crate) fn experiment_name_taken(name: &str) -> Error {
    Error::already_exists(format!("Experiment(name={name}) already exists."))
}

/// MLflow refuses writes to an experiment that is not active.
pub(crate) fn require_active_experiment(exp: Experiment) -> Result<Experiment> {
    if exp.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The experiment {} must be in the 'active' state. Current state is deleted.",
            exp.experiment_id
        )));
    }
    Ok(exp)
}

/// MLflow refuses writes to deleted runs.
pub(crate) fn require_active_run(run_id: &str, stage: LifecycleStage) -> Result<()> {
    if stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {}.",
            stage.as_str()
        )));
    }
    Ok(())
}

/// Deleting needs an active experiment, restoring a deleted one.
pub(crate) fn check_experiment_stage_change(exp: &Experiment, to: LifecycleStage) -> Result<()> {
    let wanted_from = match to {
        LifecycleStage::Deleted => LifecycleStage::Active,
        LifecycleStage::Active => LifecycleStage::Deleted,
    };
    if exp.lifecycle_stage != wanted_from {
        return Err(Error::invalid(format!(
            "Cannot {} experiment '{}': it is {}",
            if to == LifecycleStage::Deleted {
                "delete"
            } else {
                "restore"
            },
            exp.experiment_id,
            exp.lifecycle_stage.as_str()
        )));
    }
    Ok(())
}

/// `mlflow gc` hard-deletes only experiments in the deleted stage.
pub(crate) fn check_experiment_purgeable(exp: &Experiment) -> Result<()> {
    if exp.lifecycle_stage != LifecycleStage::Deleted {
        return Err(Error::invalid(format!(
            "Experiment {} is not in the deleted lifecycle stage. Only experiments in the \
             deleted lifecycle stage can be hard-deleted.",
            exp.experiment_id
        )));
    }
    Ok(())
}

/// The artifact URI of a run that may be purged (given its stage and URI, if it exists): it must
/// exist and be deleted, as `mlflow gc` requires.
pub(crate) fn purgeable_run_uri(run_id: &str, found: Option<(String, String)>) -> Result<String> {
    match found {
        None => Err(run_not_found(run_id)),
        Some((stage, _)) if stage != "deleted" => Err(Error::invalid(format!(
            "Run {run_id} is not in `deleted` lifecycle stage. Only runs in `deleted` \
             lifecycle stage can be deleted."
        ))),
        Some((_, uri)) => Ok(uri),
    }
}

/// A param may be logged again only with the same value.
pub(crate) fn check_param_unchanged(run_id: &str, key: &str, old: &str, new: &str) -> Result<()> {
    if old == new {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Changing param values is not allowed. Param with key='{key}' was already logged with \
         value='{old}' for run ID='{run_id}'. Attempted logging new value '{new}'."
    )))
}

/// The name of a new run: its `run_name`, else its `mlflow.runName` tag (both given must agree),
/// else a generated one.
pub(crate) fn new_run_name(run_name: Option<String>, tags: &[Tag]) -> Result<String> {
    let tag_name = tags
        .iter()
        .find(|t| t.key == RUN_NAME_TAG)
        .map(|t| t.value.clone());
    Ok(match (run_name.filter(|n| !n.is_empty()), tag_name) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::invalid(format!(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
                 different values (run_name='{a}', mlflow.runName='{b}')."
            )));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => random_run_name(),
    })
}

/// A readable name for runs created without one, like MLflow's `_generate_random_name`.
fn random_run_name() -> String {
    const ADJECTIVES: &[&str] = &[
        "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "gentle", "keen",
        "lively", "lucid", "merry", "nimble", "quiet", "rapid", "serene", "sleek", "steady",
        "swift", "tidy", "vivid", "warm", "wise",
    ];
    const NOUNS: &[&str] = &[
        "ant", "bat", "bear", "crane", "deer", "dove", "eel", "finch", "fox", "frog", "hare",
        "hawk", "lark", "lynx", "mole", "newt", "otter", "owl", "seal", "snail", "swan", "toad",
        "wolf", "wren",
    ];
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let pick = |b: u8, list: &[&'static str]| list[b as usize % list.len()];
    format!(
        "{}-{}-{}",
        pick(bytes[0], ADJECTIVES),
        pick(bytes[1], NOUNS),
        u16::from_le_bytes([bytes[2], bytes[3]]) % 1000
    )
}

/// A metric value as stored: NaN as 0 with a flag (SQLite turns NaN into NULL, and MLflow's SQL
/// store does the same), infinities as ±f64::MAX (see [`Metric::stored_value`]).
pub(crate) fn stored_metric_value(value: f64) -> (f64, bool) {
    if value.is_nan() {
        (0.0, true)
    } else {
        (Metric::stored_value(value), false)
    }
}

/// The newest point of each key among `metrics`, as latest_metrics keeps it: the greatest
/// (step, timestamp, stored value), the first of equal ones. A batch then updates latest_metrics
/// once per key instead of once per point (whose upsert applies the same rule against the stored
/// row).
pub(crate) fn latest_per_key(metrics: &[Metric]) -> Vec<&Metric> {
    let mut latest: Vec<&Metric> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let rank = |m: &Metric| (m.step, m.timestamp, stored_metric_value(m.value).0);
    for m in metrics {
        match at.get(m.key.as_str()) {
            Some(&i) => {
                if rank(m).partial_cmp(&rank(latest[i])) == Some(std::cmp::Ordering::Greater) {
                    latest[i] = m;
                }
            }
            None => {
                at.insert(&m.key, latest.len());
                latest.push(m);
            }
        }
    }
    latest
}

/// The value a stored metric row stands for.
pub(crate) fn loaded_metric_value(value: f64, is_nan: bool) -> f64 {
    if is_nan { f64::NAN } else { value }
}

/// The positions of the rows kept out of `n` when at most `max` are wanted, in order, as MLflow
/// 3.17's SQL store samples a run's history for get-history-bulk-interval: the rows (ordered by
/// step, timestamp, value) are cut into `max` NTILE buckets (the first `n % max` one row
/// longer), the first row of each is kept, and the last row always ends the answer (replacing
/// the last sample when there are already `max`).
pub(crate) fn sample_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let (q, r) = (n / max, n % max);
    let mut wanted: Vec<usize> = (0..max).map(|b| b * q + b.min(r)).collect();
    if wanted.last() != Some(&(n - 1)) {
        *wanted.last_mut().expect("max >= 1") = n - 1;
    }
    wanted
}

/// A run's history points `(step, timestamp, value, is_nan)` sampled for
/// get-history-bulk-interval: sorted in MLflow's order (step, timestamp, value as SQL compares
/// REALs, is_nan), then [`sample_indices`].
pub(crate) fn sample_history(
    run_id: &str,
    key: &str,
    mut points: Vec<(i64, i64, f64, bool)>,
    max_results: usize,
) -> Vec<Metric> {
    // MLflow's order: step, timestamp, value (as SQL compares REALs), is_nan. Rows read in
    // time order are usually in it already: checking is one pass, sorting is more.
    let order = |a: &(i64, i64, f64, bool), b: &(i64, i64, f64, bool)| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then(a.2.partial_cmp(&b.2).unwrap_or(std::cmp::Ordering::Equal))
            .then(a.3.cmp(&b.3))
    };
    if !points.is_sorted_by(|a, b| order(a, b).is_le()) {
        points.sort_by(order);
    }
    sample_indices(points.len(), max_results)
        .into_iter()
        .map(|i| {
            let (step, timestamp, value, is_nan) = points[i];
            Metric {
                key: key.to_string(),
                step,
                timestamp,
                value: loaded_metric_value(value, is_nan),
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
                run_id: Some(run_id.to_string()),
            }
        })
        .collect()
}

/// A new logged model's id, its artifact location under its experiment's, and its name (given,
/// or made from the id as MLflow does).
pub(crate) fn new_logged_model_identity(
    experiment_artifact_location: &str,
    name: Option<String>,
) -> (String, String, String) {
    use crate::append_to_uri;
    let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
    let artifact_location = append_to_uri(
        &append_to_uri(
            &append_to_uri(experiment_artifact_location, "models"),
            &model_id,
        ),
        "artifacts",
    );
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("model-{}", &model_id[2..10]));
    (model_id, artifact_location, name)
}

pub(crate) fn logged_model_not_found(model_id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{model_id}' not found."))
}

#[cfg(test)]
mod tests {
    use super::sample_indices;

    #[test]
    fn sampling_keeps_ends() {
        // NTILE(5) over 100 rows: buckets start at 0, 20, 40, 60, 80; the last row replaces 80.
        assert_eq!(sample_indices(100, 5), vec![0, 20, 40, 60, 99]);
        // NTILE(3) over 7 rows: buckets of 3, 2, 2 rows start at 0, 3, 5.
        assert_eq!(sample_indices(7, 3), vec![0, 3, 6]);
        assert_eq!(sample_indices(100, 1), vec![99]);
        assert_eq!(sample_indices(2, 5), vec![0, 1]);
        assert_eq!(sample_indices(0, 5), Vec::<usize>::new());
    }
}
