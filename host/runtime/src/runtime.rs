//! One engine, one linker, one epoch ticker: everything plugin instances share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

use crate::bindings::{FlavorPlugin, FlavorPluginPre, PluginInfo};
use crate::cache::CompileCache;
use crate::sandbox::PluginState;

/// Components above this size take seconds to compile.
const LARGE_COMPONENT: usize = 4 << 20;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The interface a flavor plugin must export and the imports the host provides.
const FLAVOR_EXPORT: &str = "wasmflow:plugin/flavor@0.1.0";
const HOST_IMPORTS: &[&str] = &["wasmflow:plugin/host@0.1.0", "wasmflow:plugin/types@0.1.0"];

/// Limits for every plugin call.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled plugins are kept; `None` compiles in memory every time.
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory one instance may have.
    pub memory_limit: usize,
    /// How long one call (load or predict) may run.
    pub call_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            memory_limit: 1 << 30,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// The wasmtime host for flavor plugins.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Option<CompileCache>,
    config: RuntimeConfig,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// How often compiled code came from the disk cache, for the serving metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// A component compiled for this engine and checked to implement the flavor world.
#[derive(Clone)]
pub struct CompiledPlugin {
    pub(crate) pre: FlavorPluginPre<PluginState>,
    pub sha256: String,
    /// Whether the compiled code came from the disk cache.
    pub cached: bool,
    /// Time spent compiling or loading it.
    pub load_time: Duration,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Arc<Self>> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            // Traps carry a message, not a wasm backtrace: errors go to HTTP clients.
            .wasm_backtrace_max_frames(None)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&wasm).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        FlavorPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::new(dir.clone(), &engine)?),
            None => None,
        };
        start_epoch_ticker(&engine);
        Ok(Arc::new(Self {
            engine,
            linker,
            cache,
            config,
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.cache_hits.load(Ordering::Relaxed),
            misses: self.cache_misses.load(Ordering::Relaxed),
        }
    }

    /// Compiles a component (or loads it from the cache) and checks that it is a flavor
    /// plugin the host can run, saying what is missing when it is not.
    pub fn compile(&self, wasm: &[u8]) -> Result<CompiledPlugin> {
        self.compile_hashed(wasm, &sha256_hex(wasm))
    }

    /// `compile` of a component whose sha256 is already known (the built-in ones).
    pub fn compile_hashed(&self, wasm: &[u8], sha256: &str) -> Result<CompiledPlugin> {
        let started = Instant::now();
        let (component, sha256, was_cached) = self.compile_component(wasm, sha256)?;
        self.check_world(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the flavor-plugin world")?;
        let pre = FlavorPluginPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the flavor-plugin world")?;
        Ok(CompiledPlugin {
            pre,
            sha256,
            cached: was_cached,
            load_time: started.elapsed(),
        })
    }

    /// Compiles any component whose sha256 is `sha256` (or loads it from the cache):
    /// (component, sha256, cached).
    pub(crate) fn compile_component(
        &self,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<(Component, String, bool)> {
        let started = Instant::now();
        let sha256 = sha256.to_string();
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &sha256));
        let was_cached = cached.is_some();
        let counter = if was_cached {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let component = match cached {
            Some(component) => component,
            None => {
                // Large components take seconds: say so before the wait, not only after.
                if wasm.len() > LARGE_COMPONENT {
                    tracing::info!(
                        sha256 = &sha256[..12],
                        "compiling a {} MiB plugin for the first time on this machine; later \
                         starts load it from the cache",
                        wasm.len() >> 20
                    );
                }
                let component = match &self.cache {
                    Some(cache) => cache.compile(&self.engine, &sha256, wasm)?,
                    None => Component::new(&self.engine, wasm)
                        .map_err(anyhow::Error::from)
                        .context("cannot compile the component")?,
                };
                tracing::info!(
                    sha256 = &sha256[..12],
                    "compiled a plugin ({} KiB) in {:.1?}",
                    wasm.len() >> 10,
                    started.elapsed()
                );
                component
            }
        };
        Ok((component, sha256, was_cached))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    fn check_world(&self, component: &Component) -> Result<()> {
        let ty = component.component_type();
        let exports: Vec<&str> = ty.exports(&self.engine).map(|(name, _)| name).collect();
        if !exports.contains(&FLAVOR_EXPORT) {
            bail!(
                "the component does not export '{FLAVOR_EXPORT}' (it exports {}): it is not a \
                 flavor plugin; build it against plugins/sdk/wit/plugin.wit's `flavor-plugin` world",
                quoted_list(&exports)
            );
        }
        let unknown: Vec<&str> = ty
            .imports(&self.engine)
            .map(|(name, _)| name)
            .filter(|name| !name.starts_with("wasi:") && !HOST_IMPORTS.contains(name))
            .collect();
        if !unknown.is_empty() {
            bail!(
                "the component imports {}, which wasmflow does not provide",
                quoted_list(&unknown)
            );
        }
        Ok(())
    }

    /// A new store for one instance of `plugin`, with the model directory mounted.
    pub(crate) fn store(
        &self,
        plugin: &str,
        model_dir: Option<&Path>,
    ) -> Result<Store<PluginState>> {
        let state = PluginState::new(plugin.into(), model_dir, self.config.memory_limit)?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        self.arm_deadline(&mut store);
        Ok(store)
    }

    /// Gives the next call its full time budget.
    pub(crate) fn arm_deadline(&self, store: &mut Store<PluginState>) {
        let ticks = self.config.call_timeout.as_millis() / EPOCH_TICK.as_millis();
        store.set_epoch_deadline(ticks.max(1) as u64);
        store.epoch_deadline_trap();
    }

    /// Reads a compiled plugin's `info` in a fresh instance that sees no files.
    pub fn info(&self, plugin: &CompiledPlugin) -> Result<PluginInfo> {
        let mut store = self.store("(installing)", None)?;
        let bindings = plugin
            .pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("cannot instantiate the plugin")?;
        bindings
            .wasmflow_plugin_flavor()
            .call_info(&mut store)
            .map_err(anyhow::Error::from)
            .context("the plugin's info() failed")
    }
}

/// Advances the engine's epoch until the engine is dropped, so deadlines fire.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch thread");
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn quoted_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing".into();
    }
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
