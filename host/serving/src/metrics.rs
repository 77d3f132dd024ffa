//! Serving metrics in Prometheus's text format at `GET /metrics`: requests, errors and latency
//! per model version, the instances and memory each keeps warm, and the plugin compile cache.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use wasmflow_runtime::Runtime;

/// Which model version a series is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
    pub version: String,
}

type LatencyFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;

pub struct ServingMetrics {
    registry: Registry,
    requests: Family<ModelLabels, Counter>,
    errors: Family<ModelLabels, Counter>,
    latency: LatencyFamily,
    instances: Family<ModelLabels, Gauge>,
    memory: Family<ModelLabels, Gauge>,
    evictions: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
}

/// 100 µs to about 26 s: a one-row call of a small model up to a large batch near its deadline.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Default for ServingMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasmflow");
        let requests = Family::<ModelLabels, Counter>::default();
        let errors = Family::<ModelLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        let instances = Family::<ModelLabels, Gauge>::default();
        let memory = Family::<ModelLabels, Gauge>::default();
        let evictions = Counter::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        registry.register(
            "serving_requests",
            "Scoring requests received, per model version",
            requests.clone(),
        );
        registry.register(
            "serving_errors",
            "Scoring requests answered with an error, per model version",
            errors.clone(),
        );
        registry.register(
            "serving_request_duration_seconds",
            "Time to answer a scoring request, per model version",
            latency.clone(),
        );
        registry.register(
            "serving_pool_instances",
            "Plugin instances a served model version keeps, idle or busy",
            instances.clone(),
        );
        registry.register(
            "serving_memory_bytes",
            "Linear memory held by a served model version's instances",
            memory.clone(),
        );
        registry.register(
            "serving_evictions",
            "Model versions unloaded to stay under the serving memory budget",
            evictions.clone(),
        );
        registry.register(
            "plugin_cache_hits",
            "Plugins loaded from the compile cache",
            cache_hits.clone(),
        );
        registry.register(
            "plugin_cache_misses",
            "Plugins compiled because the compile cache had no usable entry",
            cache_misses.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            instances,
            memory,
            evictions,
            cache_hits,
            cache_misses,
        }
    }
}

impl ServingMetrics {
    pub fn record(&self, labels: &ModelLabels, elapsed: Duration, failed: bool) {
        self.requests.get_or_create(labels).inc();
        if failed {
            self.errors.get_or_create(labels).inc();
        }
        self.latency
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The pool of a loaded model version, as of now.
    pub fn set_pool(&self, labels: &ModelLabels, instances: usize, memory: usize) {
        self.instances.get_or_create(labels).set(instances as i64);
        self.memory.get_or_create(labels).set(memory as i64);
    }

    /// A version that is no longer loaded keeps its request counts but has no pool.
    pub fn unloaded(&self, labels: &ModelLabels, evicted: bool) {
        self.instances.remove(labels);
        self.memory.remove(labels);
        if evicted {
            self.evictions.inc();
        }
    }

    /// The text exposition, with the runtime's cache counters brought up to date.
    pub fn render(&self, runtime: Option<&Runtime>) -> String {
        if let Some(runtime) = runtime {
            let stats = runtime.cache_stats();
            catch_up(&self.cache_hits, stats.hits);
            catch_up(&self.cache_misses, stats.misses);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Counters only go up: add what the runtime counted since the last scrape.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

/// The content type of [`ServingMetrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
