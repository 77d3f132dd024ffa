//! The models a server keeps loaded: by registered name and version, each loaded on its first
//! request and kept warm, the least recently used unloaded when the pools together hold more
//! memory than the budget. Which version a request means, and where its files are, is the
//! caller's business (the registry), asked through [`ModelLocator`] on every request so that a
//! moved alias takes effect at once.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OnceCell;
use wasmflow_core::{Error, ErrorCode};
use wasmflow_runtime::PluginManager;

use crate::metrics::{ModelLabels, ServingMetrics};
use crate::model::{self, PluginOrigin, Refused, SharedModel};

/// What a request's model reference resolves to.
pub struct Located {
    /// The registered version: the key the loaded model is kept under.
    pub version: String,
    /// Where the version's files are, in the locator's terms (an artifact URI).
    pub source: String,
}

/// Resolves model references for [`ServedModels`].
pub trait ModelLocator: Send + Sync {
    /// The version that `reference` (a version, alias, stage or `latest`) of `name` means now.
    fn locate(
        &self,
        name: &str,
        reference: &str,
    ) -> impl Future<Output = Result<Located, Error>> + Send;

    /// The local directory of a located version's files; asked only when it is loaded.
    fn model_dir(&self, source: &str) -> impl Future<Output = Result<PathBuf, Error>> + Send;
}

pub struct ServedModels {
    plugins: Option<Arc<PluginManager>>,
    slots: Mutex<HashMap<VersionKey, Arc<Slot>>>,
    memory_budget: usize,
    pub metrics: ServingMetrics,
    /// Orders uses for the least-recently-used choice without reading the clock.
    uses: AtomicU64,
}

#[derive(Default)]
struct Slot {
    model: OnceCell<SharedModel>,
    last_use: AtomicU64,
    /// The plugin manager's generation when this model's plugin was last known to be the one
    /// that would be chosen for it.
    checked: AtomicU64,
}

/// A registered model's name and version.
type VersionKey = (String, String);

/// No plugins (every request is refused) and no budget: for servers that serve no models.
impl Default for ServedModels {
    fn default() -> Self {
        Self::new(None, usize::MAX)
    }
}

impl ServedModels {
    /// Serves with `plugins` (none: every request is refused) and unloads versions beyond
    /// `memory_budget` bytes of instance memory.
    pub fn new(plugins: Option<Arc<PluginManager>>, memory_budget: usize) -> Self {
        Self {
            plugins,
            slots: Mutex::default(),
            memory_budget,
            metrics: ServingMetrics::default(),
            uses: AtomicU64::new(0),
        }
    }

    /// Scores one request on `reference` of model `name`, loading it first if need be.
    pub async fn invoke(
        &self,
        locator: &impl ModelLocator,
        name: &str,
        reference: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Vec<u8>, Refused> {
        let located = locator.locate(name, reference).await?;
        let key = (name.to_string(), located.version);
        let model = self.get_or_load(locator, &key, &located.source).await?;
        let answer = score(model, &self.metrics, &labels(&key), content_type, body).await;
        self.enforce_budget(&key);
        answer
    }

    /// The plugin runtime and installed plugins, when this server serves models.
    pub fn plugins(&self) -> Option<&Arc<PluginManager>> {
        self.plugins.as_ref()
    }

    /// The metrics' text, with the pools' gauges and the compile cache's counters as of now.
    pub fn render_metrics(&self) -> String {
        for (key, slot) in self.lock().iter() {
            if let Some(model) = slot.model.get() {
                self.metrics
                    .set_pool(&labels(key), model.pool.instances(), model.pool.memory());
            }
        }
        let runtime = self.plugins.as_ref().map(|p| p.runtime().as_ref());
        self.metrics.render(runtime)
    }

    async fn get_or_load(
        &self,
        locator: &impl ModelLocator,
        key: &VersionKey,
        source: &str,
    ) -> Result<SharedModel, Error> {
        let slot = self.lock().entry(key.clone()).or_default().clone();
        let slot = match slot
            .model
            .get()
            .and_then(|model| self.outdated(&slot, model))
        {
            Some(why) => {
                self.unload(key, &slot, &why);
                self.lock().entry(key.clone()).or_default().clone()
            }
            None => slot,
        };
        slot.last_use
            .store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let model = slot
            .model
            .get_or_try_init(|| async {
                let dir = locator.model_dir(source).await?;
                let manager = self.plugins.clone().ok_or_else(|| {
                    Error::new(
                        ErrorCode::EndpointNotFound,
                        "plugins are not enabled on this server",
                    )
                })?;
                let started = Instant::now();
                // Read before loading: a change during the load is seen by the next request.
                slot.checked.store(manager.generation(), Ordering::Relaxed);
                let loaded = tokio::task::spawn_blocking(move || {
                    model::load(&manager, &dir, model::default_instances())
                })
                .await
                .map_err(|e| Error::internal(format!("the loading task failed: {e}")))??;
                let (name, version) = key;
                tracing::info!(
                    "loaded model '{name}' version {version} (flavor '{}') with plugin {} in {:.1?}",
                    loaded.flavor,
                    loaded.plugin,
                    started.elapsed()
                );
                let loaded = Arc::new(loaded);
                // The rest of the pool is made in the background: this request need not wait
                // for it, and the next concurrent ones find instances ready.
                let (filling, model_name) = (loaded.clone(), name.clone());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = filling.pool.fill() {
                        tracing::warn!("cannot make more instances of '{model_name}': {e}");
                    }
                });
                Ok::<_, Error>(loaded)
            })
            .await;
        if model.is_err() {
            // Don't keep an empty slot for every bad reference a client sends.
            let mut slots = self.lock();
            if slots.get(key).is_some_and(|s| s.model.get().is_none()) {
                slots.remove(key);
            }
        }
        Ok(model?.clone())
    }

    /// Why `model`, loaded in `slot`, must not answer any more: its plugin was removed, or
    /// another one would be chosen for it now (a replacement, a later version). A carried
    /// plugin comes with the model and never changes. One `stat` of the plugin index when no
    /// plugin changed since the last check.
    fn outdated(&self, slot: &Slot, model: &SharedModel) -> Option<String> {
        let manager = self.plugins.as_ref()?;
        if model.plugin.origin == PluginOrigin::Carried {
            return None;
        }
        let generation = manager.generation();
        if slot.checked.load(Ordering::Relaxed) == generation {
            return None;
        }
        let chosen = match manager.for_flavors(model.flavors.iter().map(String::as_str)) {
            Ok(chosen) => chosen,
            Err(e) => {
                tracing::warn!("cannot list the plugins: {e:#}");
                return None;
            }
        };
        match chosen {
            Some((_, plugin)) if plugin.record.sha256 == model.plugin.sha256 => {
                slot.checked.store(generation, Ordering::Relaxed);
                None
            }
            Some((_, plugin)) => Some(format!(
                "plugin '{}@{}' ({}) now loads its flavor",
                plugin.record.name,
                plugin.record.version,
                &plugin.record.sha256[..12]
            )),
            None => Some("its plugin is no longer installed".into()),
        }
    }

    /// Forgets `slot` (if it is still `key`'s): the next request loads the model again.
    /// Requests in flight keep the old model until they finish.
    fn unload(&self, key: &VersionKey, slot: &Arc<Slot>, why: &str) {
        let mut slots = self.lock();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
            self.metrics.unloaded(&labels(key), false);
            if let Some(model) = slot.model.get() {
                tracing::info!(
                    "unloaded model '{}' version {} (plugin {}): {why}",
                    key.0,
                    key.1,
                    model.plugin
                );
            }
        }
    }

    /// Unloads the least recently used versions, other than `keep`, while the loaded pools
    /// hold more than the budget. Requests in flight keep their model until they finish.
    fn enforce_budget(&self, keep: &VersionKey) {
        let mut slots = self.lock();
        let mut used: usize = slots
            .values()
            .filter_map(|s| s.model.get())
            .map(|m| m.pool.memory())
            .sum();
        while used > self.memory_budget {
            let victim = slots
                .iter()
                .filter(|(key, slot)| *key != keep && slot.model.get().is_some())
                .min_by_key(|(_, slot)| slot.last_use.load(Ordering::Relaxed))
                .map(|(key, _)| key.clone());
            let Some(victim) = victim else { break };
            let Some(slot) = slots.remove(&victim) else {
                break;
            };
            let freed = slot.model.get().map_or(0, |m| m.pool.memory());
            used -= freed;
            self.metrics.unloaded(&labels(&victim), true);
            tracing::info!(
                "unloaded model '{}' version {} ({} MiB) to stay under the serving memory \
                 budget of {} MiB",
                victim.0,
                victim.1,
                freed >> 20,
                self.memory_budget >> 20
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VersionKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn labels((model, version): &VersionKey) -> ModelLabels {
    ModelLabels {
        model: model.clone(),
        version: version.clone(),
    }
}

/// Bodies up to this size are parsed and scored on the async thread that received them, when an
/// instance is idle and the model's last call was short: such a call takes tens of microseconds,
/// about what handing it to tokio's blocking pool and back costs. Larger bodies (a
/// 1,000-row frame is 200 KiB and a millisecond or more) and slow models go to the blocking pool,
/// so that they never hold up the other connections this thread serves.
const INLINE_BODY_LIMIT: usize = 16 << 10;
const INLINE_CALL_LIMIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Scores one request on a loaded model (off the async runtime unless the call is short), and
/// records it in `metrics`.
pub async fn score(
    model: SharedModel,
    metrics: &ServingMetrics,
    labels: &ModelLabels,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Vec<u8>, Refused> {
    let started = Instant::now();
    // A plain call on the async thread: the plugin runtime's WASI calls that may wait (a file
    // read, a sleep) hand this thread's other tasks to another worker themselves
    // (`block_in_place`, which needs the multi-threaded runtime both servers use), and the
    // commonest, a write to stdout or stderr, never waits (wasmflow_runtime's `wasi_calls`).
    let inline = body.len() <= INLINE_BODY_LIMIT
        && model.pool.last_call() <= INLINE_CALL_LIMIT
        && tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
    let answer = if inline {
        // Parsed here once: when no instance is idle the parsed request, not the body, goes on.
        let attempt = model
            .parse(content_type, &body)
            .map(|r| model.score_if_idle(r));
        match attempt {
            Err(refused) => Err(refused),
            Ok(Ok(answer)) => answer,
            // Every instance busy: wait for one on a blocking thread.
            Ok(Err(request)) => on_blocking_thread(move || model.score_parsed(&request)).await,
        }
    } else {
        // A large body or a slow model: parse and score on a blocking thread.
        let content_type = content_type.map(str::to_string);
        let large = body.len() >= TRIM_BODY_SIZE;
        let answer = on_blocking_thread(move || {
            let answer = model.score(content_type.as_deref(), &body);
            drop(body);
            answer
        })
        .await;
        if large {
            give_memory_back();
        }
        answer
    };
    metrics.record(labels, started.elapsed(), answer.is_err());
    answer
}

/// Bodies from this size on leave their parse's memory to the system when they are answered.
const TRIM_BODY_SIZE: usize = 1 << 20;

/// Hands the allocator's free pages back to the system, in the background: parsing a large
/// request allocates many times its size on a blocking thread, and glibc keeps what that
/// thread's arena frees (six 8 MB requests at once left 2.2 GB held). One trim runs at a time;
/// requests answered meanwhile get one more after it.
fn give_memory_back() {
    use std::sync::atomic::AtomicBool;
    static REQUESTED: AtomicBool = AtomicBool::new(false);
    static RUNNING: AtomicBool = AtomicBool::new(false);
    REQUESTED.store(true, Ordering::Release);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::task::spawn_blocking(|| {
        loop {
            while REQUESTED.swap(false, Ordering::AcqRel) {
                wasmflow_runtime::release_free_memory();
            }
            RUNNING.store(false, Ordering::Release);
            // A request made between the last swap and the store would be missed: look again.
            if !REQUESTED.load(Ordering::Acquire) || RUNNING.swap(true, Ordering::AcqRel) {
                break;
            }
        }
    });
}

async fn on_blocking_thread(
    f: impl FnOnce() -> Result<Vec<u8>, Refused> + Send + 'static,
) -> Result<Vec<u8>, Refused> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Refused::Error(Error::internal(format!(
            "the scoring task failed: {e}"
        ))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry of one model, `m`, whose version 1 is at a directory that does not exist.
    struct OneModel;

    impl ModelLocator for OneModel {
        async fn locate(&self, name: &str, reference: &str) -> Result<Located, Error> {
            if name != "m" {
                return Err(Error::not_found(format!(
                    "registered model '{name}' not found"
                )));
            }
            Ok(Located {
                version: reference.to_string(),
                source: "file:///nowhere".into(),
            })
        }

        async fn model_dir(&self, source: &str) -> Result<PathBuf, Error> {
            Ok(PathBuf::from(source.trim_start_matches("file://")))
        }
    }

    fn refusal(answer: Result<Vec<u8>, Refused>) -> Error {
        match answer {
            Err(Refused::Error(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_locators_refusal_reaches_the_caller() {
        let served = ServedModels::default();
        let e = refusal(served.invoke(&OneModel, "x", "1", None, Bytes::new()).await);
        assert_eq!(e.code, ErrorCode::ResourceDoesNotExist);
        assert_eq!(e.message, "registered model 'x' not found");
    }

    #[tokio::test]
    async fn without_plugins_nothing_loads_and_no_slot_is_kept() {
        let served = ServedModels::default();
        for _ in 0..2 {
            let e = refusal(served.invoke(&OneModel, "m", "1", None, Bytes::new()).await);
            assert_eq!(e.code, ErrorCode::EndpointNotFound);
        }
        // A failed load leaves nothing behind: bad references cannot grow the map.
        assert!(served.lock().is_empty());
        // Nothing was scored, so nothing was counted.
        assert!(!served.render_metrics().contains("model=\"m\""));
    }

    /// A registry whose every version is the model in one directory.
    struct AtDir(PathBuf);

    impl ModelLocator for AtDir {
        async fn locate(&self, _name: &str, reference: &str) -> Result<Located, Error> {
            Ok(Located {
                version: reference.to_string(),
                source: String::new(),
            })
        }

        async fn model_dir(&self, _source: &str) -> Result<PathBuf, Error> {
            Ok(self.0.clone())
        }
    }

    const ECHO: &[u8] = br#"{"dataframe_split": {"columns": ["x"], "data": [[1.5]]}}"#;

    #[tokio::test(flavor = "multi_thread")]
    async fn removing_the_plugin_unloads_the_versions_it_serves() {
        let scratch = tempfile::tempdir().unwrap();
        let model_dir = scratch.path().join("model");
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(
            model_dir.join("MLmodel"),
            "flavors:\n  hostile: {behavior: echo}\n",
        )
        .unwrap();
        // A shared compile cache: the built-in plugins compile once, not on every test run.
        let runtime = wasmflow_runtime::Runtime::new(wasmflow_runtime::RuntimeConfig {
            cache_dir: Some(std::env::temp_dir().join("wasmflow-serving-tests-cache")),
            ..Default::default()
        })
        .unwrap();
        let plugins_dir = scratch.path().join("plugins");
        let manager = Arc::new(PluginManager::open(runtime.clone(), &plugins_dir).unwrap());
        let hostile = std::fs::read(wasmflow_builtin_plugins::testing::HOSTILE).unwrap();
        manager.install(&hostile).unwrap();
        let served = ServedModels::new(Some(manager.clone()), usize::MAX);
        let locator = AtDir(model_dir);
        let ask = || served.invoke(&locator, "m", "1", Some("application/json"), ECHO.into());

        let answer = ask().await.unwrap();
        assert!(String::from_utf8(answer).unwrap().contains("1.5"));
        let loaded = served.lock()[&("m".to_string(), "1".to_string())]
            .model
            .get()
            .unwrap()
            .clone();
        assert_eq!(loaded.plugin.origin, PluginOrigin::Installed);
        assert_eq!(loaded.plugin.name, "hostile");
        // Nothing changed: the same model answers again.
        ask().await.unwrap();
        let again = served.lock()[&("m".to_string(), "1".to_string())]
            .model
            .get()
            .unwrap()
            .clone();
        assert!(Arc::ptr_eq(&loaded, &again));

        // Removed here: the version is unloaded and the next request cannot load it.
        manager.remove("hostile", None).unwrap();
        let e = refusal(ask().await);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert!(
            e.message
                .starts_with("no plugin loads any of this model's flavors [\"hostile\"]; searched"),
            "{}",
            e.message
        );
        assert!(served.lock().is_empty());

        // Installed again by another process (a second manager on the same directory, as the
        // CLI is): the next request loads with it.
        let cli = PluginManager::open(runtime, &plugins_dir).unwrap();
        cli.install(&hostile).unwrap();
        ask().await.unwrap();
        // And removed by it: seen through the index, without the server's manager being told.
        cli.remove("hostile", None).unwrap();
        let e = refusal(ask().await);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
    }
}
