//! `--trace-retention DAYS`: traces older than the window are deleted in the background, at
//! start and then every hour, in batches so that no one write holds the database for long.
//! Each deleted trace's files (the `traces.json` a client uploaded, attachments) go with it:
//! its folder under its experiment's artifact root.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmflow_artifacts::Location;
use wasmflow_store::traces::DeletedTrace;
use wasmflow_store::{Store, TraceStore, TrackingStore};

/// How many traces one delete takes: one transaction of the group-commit writer.
pub const BATCH: usize = 5_000;

/// Deletes every trace that started before `cutoff_ms`, batch by batch, with its files;
/// returns how many. `destination` is where `mlflow-artifacts:` URIs point.
pub fn delete_before(
    traces: &dyn TraceStore,
    tracking: &dyn TrackingStore,
    destination: Option<&Location>,
    cutoff_ms: i64,
) -> wasmflow_core::Result<usize> {
    let mut total = 0;
    let mut roots = HashMap::new();
    loop {
        let deleted = traces.delete_traces_before(cutoff_ms, BATCH)?;
        total += deleted.len();
        for trace in &deleted {
            remove_files(tracking, destination, &mut roots, trace);
        }
        if deleted.len() < BATCH {
            return Ok(total);
        }
    }
}

/// Removes a deleted trace's folder (`<experiment root>/traces/<trace id>`), worked out from its
/// experiment as the server assigns it; a trace id that cannot be a folder name owns no files.
fn remove_files(
    tracking: &dyn TrackingStore,
    destination: Option<&Location>,
    roots: &mut HashMap<String, Option<String>>,
    trace: &DeletedTrace,
) {
    if wasmflow_store::traces::validate_trace_id(&trace.trace_id).is_err() {
        return;
    }
    let root = roots.entry(trace.experiment_id.clone()).or_insert_with(|| {
        tracking
            .get_experiment(&trace.experiment_id)
            .ok()
            .map(|e| e.artifact_location)
    });
    if let Some(root) = root {
        let uri = format!("{}/traces/{}", root.trim_end_matches('/'), trace.trace_id);
        crate::cli::gc::remove_artifacts(&uri, destination);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn spawn(store: Arc<dyn Store>, days: f64, destination: Option<Location>) {
    let window_ms = (days * 86_400_000.0) as i64;
    tracing::info!("deleting traces older than {days} days, hourly");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let (store, destination) = (store.clone(), destination.clone());
            let cutoff = now_ms() - window_ms;
            let run = move || delete_before(&*store, &*store, destination.as_ref(), cutoff);
            match tokio::task::spawn_blocking(run).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("trace retention deleted {n} traces"),
                Ok(Err(e)) => tracing::warn!("trace retention failed: {}", e.message),
                Err(e) => tracing::warn!("trace retention failed: {e}"),
            }
        }
    });
}
