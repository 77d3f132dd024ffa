//! Loaded models: one instance is one store with the model loaded in it; a pool keeps several
//! so that requests run in parallel, and replaces any instance whose call trapped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{Data, FlavorPlugin};
use crate::data::check_output;
use crate::error::{PluginError, PluginErrorKind};
use crate::runtime::{CompiledPlugin, Runtime};
use crate::sandbox::PluginState;

/// Everything needed to make an instance of a model: the plugin, the model's directory and
/// the configuration `load` receives.
#[derive(Clone)]
pub struct ModelSource {
    pub plugin_name: String,
    pub plugin: CompiledPlugin,
    pub model_dir: PathBuf,
    /// `{"flavor": ..., "section": ...}`.
    pub load_config: String,
}

struct ModelInstance {
    store: Store<PluginState>,
    bindings: FlavorPlugin,
    model: ResourceAny,
}

impl ModelInstance {
    fn new(runtime: &Runtime, source: &ModelSource) -> Result<Self, PluginError> {
        let name = &source.plugin_name;
        let host =
            |e: anyhow::Error| PluginError::new(name, PluginErrorKind::Host, format!("{e:#}"));
        let mut store = runtime.store(name, Some(&source.model_dir)).map_err(host)?;
        let bindings = source
            .plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| call_error(name, &store, e))?;
        let loaded = bindings
            .wasmflow_plugin_flavor()
            .model()
            .call_load(&mut store, &source.load_config)
            .map_err(|e| call_error(name, &store, e))?;
        let model = loaded.map_err(|e| PluginError::from_guest(name, e))?;
        Ok(Self {
            store,
            bindings,
            model,
        })
    }

    fn predict(
        &mut self,
        runtime: &Runtime,
        name: &str,
        input: &Data,
        params: Option<&str>,
    ) -> Result<Data, PluginError> {
        runtime.arm_deadline(&mut self.store);
        let result = self
            .bindings
            .wasmflow_plugin_flavor()
            .model()
            .call_predict(&mut self.store, self.model, input, params)
            .map_err(|e| call_error(name, &self.store, e))?;
        let output = result.map_err(|e| PluginError::from_guest(name, e))?;
        check_output(&output)
            .map_err(|m| PluginError::new(name, PluginErrorKind::MalformedOutput, m))?;
        Ok(output)
    }

    /// Linear memory the instance holds, and what the host holds for it.
    fn memory(&self) -> usize {
        let memory = &self.store.data().memory;
        memory.used + memory.host_held
    }

    fn signature(&mut self, runtime: &Runtime, name: &str) -> Result<Option<String>, PluginError> {
        runtime.arm_deadline(&mut self.store);
        self.bindings
            .wasmflow_plugin_flavor()
            .model()
            .call_signature(&mut self.store, self.model)
            .map_err(|e| call_error(name, &self.store, e))
    }
}

/// Names what stopped a call: the deadline, the memory cap, or a trap inside the plugin.
fn call_error(plugin: &str, store: &Store<PluginState>, error: wasmtime::Error) -> PluginError {
    if let Some(desired) = store.data().memory.exceeded {
        let limit = store.data().memory.limit();
        return PluginError::new(
            plugin,
            PluginErrorKind::OutOfMemory,
            format!(
                "tried to grow its memory to {} MiB, beyond the limit of {} MiB",
                desired >> 20,
                limit >> 20
            ),
        );
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::new(
            plugin,
            PluginErrorKind::Timeout,
            "ran past its deadline and was stopped",
        ),
        Some(trap) => {
            PluginError::new(plugin, PluginErrorKind::Trapped, format!("trapped: {trap}"))
        }
        None => PluginError::new(
            plugin,
            PluginErrorKind::Trapped,
            format!("failed: {error:#}"),
        ),
    }
}

/// Up to `size` instances of one model, made on demand; a call waits for a free one.
pub struct ModelPool {
    runtime: Arc<Runtime>,
    source: ModelSource,
    size: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
    signature: Option<String>,
    /// How long the last predict call took, in nanoseconds.
    last_call: AtomicU64,
}

struct Slots {
    idle: Vec<ModelInstance>,
    /// Instances in existence, idle or busy.
    live: usize,
    /// Linear memory of the instances in existence, as of their last call.
    memory: usize,
    /// Callers blocked in `acquire`: the condition variable is signalled only when there are
    /// some, because std's `notify_one` is a futex system call even when nobody waits (one a
    /// predict call otherwise).
    waiting: usize,
}

impl ModelPool {
    /// Loads the model once (so that a broken model fails here, not on the first request) and
    /// keeps that instance as the pool's first.
    pub fn new(
        runtime: Arc<Runtime>,
        source: ModelSource,
        size: usize,
    ) -> Result<Self, PluginError> {
        let mut first = ModelInstance::new(&runtime, &source)?;
        let signature = first.signature(&runtime, &source.plugin_name)?;
        Ok(Self {
            runtime,
            source,
            size: size.max(1),
            slots: Mutex::new(Slots {
                memory: first.memory(),
                idle: vec![first],
                live: 1,
                waiting: 0,
            }),
            freed: Condvar::new(),
            signature,
            last_call: AtomicU64::new(0),
        })
    }

    pub fn plugin_name(&self) -> &str {
        &self.source.plugin_name
    }

    /// The signature the plugin reports, as MLflow's signature JSON.
    pub fn plugin_signature(&self) -> Option<&str> {
        self.signature.as_deref()
    }

    /// Instances in existence.
    pub fn instances(&self) -> usize {
        self.lock().live
    }

    /// Makes every instance the pool may hold now, so that the first concurrent requests do not
    /// wait for instantiation (`models serve` does this before it answers `/ping`).
    pub fn fill(&self) -> Result<(), PluginError> {
        loop {
            {
                let mut slots = self.lock();
                if slots.live >= self.size {
                    return Ok(());
                }
                slots.live += 1;
            }
            match ModelInstance::new(&self.runtime, &self.source) {
                Ok(instance) => {
                    let mut slots = self.lock();
                    slots.memory += instance.memory();
                    slots.idle.push(instance);
                    self.wake_one(&slots);
                }
                Err(e) => {
                    let mut slots = self.lock();
                    slots.live -= 1;
                    self.wake_one(&slots);
                    return Err(e);
                }
            }
        }
    }

    /// How long the last predict call took (zero before the first).
    pub fn last_call(&self) -> Duration {
        Duration::from_nanos(self.last_call.load(Ordering::Relaxed))
    }

    /// Bytes of linear memory held by the pool's instances.
    pub fn memory(&self) -> usize {
        self.lock().memory
    }

    /// Runs one prediction on a free instance. An instance whose call trapped, timed out or ran
    /// out of memory is dropped (freeing its memory) and a fresh one is made when next needed.
    pub fn predict(&self, input: &Data, params: Option<&str>) -> Result<Data, PluginError> {
        let instance = self.acquire()?;
        self.predict_on(instance, input, params)
    }

    /// [`predict`](Self::predict) if an instance is idle now; `None` (and nothing run) if the
    /// call would wait for one or make one, so that a caller on an async thread can hand it
    /// to a blocking one instead.
    pub fn try_predict(
        &self,
        input: &Data,
        params: Option<&str>,
    ) -> Option<Result<Data, PluginError>> {
        let instance = self.lock().idle.pop()?;
        Some(self.predict_on(instance, input, params))
    }

    fn predict_on(
        &self,
        mut instance: ModelInstance,
        input: &Data,
        params: Option<&str>,
    ) -> Result<Data, PluginError> {
        let before = instance.memory();
        let started = Instant::now();
        let result = instance.predict(&self.runtime, &self.source.plugin_name, input, params);
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_call.store(took, Ordering::Relaxed);
        match &result {
            Err(e) if e.kind.poisons_instance() => {
                tracing::warn!(
                    plugin = self.source.plugin_name,
                    "dropping an instance: {e}"
                );
                drop(instance);
                let mut slots = self.lock();
                slots.live -= 1;
                slots.memory -= before;
                self.wake_one(&slots);
            }
            _ => {
                let mut slots = self.lock();
                slots.memory = slots.memory - before + instance.memory();
                slots.idle.push(instance);
                self.wake_one(&slots);
            }
        }
        result
    }

    fn acquire(&self) -> Result<ModelInstance, PluginError> {
        let mut slots = self.lock();
        loop {
            if let Some(instance) = slots.idle.pop() {
                return Ok(instance);
            }
            if slots.live < self.size {
                slots.live += 1;
                drop(slots);
                let made = ModelInstance::new(&self.runtime, &self.source);
                match &made {
                    Ok(instance) => self.lock().memory += instance.memory(),
                    Err(_) => {
                        let mut slots = self.lock();
                        slots.live -= 1;
                        self.wake_one(&slots);
                    }
                }
                return made;
            }
            slots.waiting += 1;
            slots = self.freed.wait(slots).unwrap_or_else(|e| e.into_inner());
            slots.waiting -= 1;
        }
    }

    /// Wakes one caller waiting in `acquire`, if any; `slots` is held, so a caller that is
    /// about to wait has either counted itself already or will see this change first.
    fn wake_one(&self, slots: &Slots) {
        if slots.waiting > 0 {
            self.freed.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}
