//! `--trace-retention DAYS`: traces older than the window are deleted in the background, at
//! start and then every hour, in batches so that no one write holds the database for long.

use std::sync::Arc;
use std::time::Duration;

use wasmflow_store::TraceStore;

/// How many traces one delete takes: one transaction of the group-commit writer.
pub const BATCH: usize = 5_000;

/// Deletes every trace that started before `cutoff_ms`, batch by batch; returns how many.
pub fn delete_before(store: &dyn TraceStore, cutoff_ms: i64) -> wasmflow_core::Result<usize> {
    let mut total = 0;
    loop {
        let n = store.delete_traces_before(cutoff_ms, BATCH)?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn spawn(store: Arc<dyn TraceStore>, days: f64) {
    let window_ms = (days * 86_400_000.0) as i64;
    tracing::info!("deleting traces older than {days} days, hourly");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let store = store.clone();
            let cutoff = now_ms() - window_ms;
            match tokio::task::spawn_blocking(move || delete_before(store.as_ref(), cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("trace retention deleted {n} traces"),
                Ok(Err(e)) => tracing::warn!("trace retention failed: {}", e.message),
                Err(e) => tracing::warn!("trace retention failed: {e}"),
            }
        }
    });
}
