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
use crate::cache::{CompileCache, Outcome};
use crate::sandbox::PluginState;

/// How often a compile still running says how long it has taken.
const COMPILE_PROGRESS: Duration = Duration::from_secs(5);

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The interface a flavor plugin must export and the imports the host provides.
const FLAVOR_EXPORT: &str = "wasmflow:plugin/flavor@0.1.0";
const HOST_IMPORTS: &[&str] = &[
    "wasmflow:plugin/host@0.1.0",
    "wasmflow:plugin/types@0.1.0",
    "wasmflow:plugin/tensor@0.1.0",
];

/// A component's wasm as a compile takes it.
#[derive(Clone, Copy)]
pub enum Wasm<'a> {
    Bytes(&'a [u8]),
    /// A built-in component, inflated only when the compile cache does not have it: a start
    /// that finds it cached reads none of it.
    Builtin(&'static wasmflow_builtin_plugins::Component),
}

impl<'a> From<&'a [u8]> for Wasm<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Wasm::Bytes(bytes)
    }
}

impl<'a> From<&'a Vec<u8>> for Wasm<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Wasm::Bytes(bytes)
    }
}

impl<'a> Wasm<'a> {
    pub fn len(&self) -> usize {
        match self {
            Wasm::Bytes(bytes) => bytes.len(),
            Wasm::Builtin(component) => component.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wasm itself.
    pub fn bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        match *self {
            Wasm::Bytes(bytes) => bytes.into(),
            Wasm::Builtin(component) => {
                let wasm = component.wasm();
                crate::trim::release_embedded(component.deflated);
                wasm.into()
            }
        }
    }
}

/// Limits for every plugin call.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled plugins are kept; `None` compiles in memory every time.
    pub cache_dir: Option<PathBuf>,
    /// The most linear memory one instance may have.
    pub memory_limit: usize,
    /// How long one call (load or predict) may run.
    pub call_timeout: Duration,
    /// Called before a component is compiled (not when it comes from the cache) with its
    /// name, size and the cache directory: the CLI, whose log is quiet, says so on stderr.
    pub on_compile: Option<fn(&str, usize, Option<&Path>)>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            memory_limit: 1 << 30,
            call_timeout: Duration::from_secs(30),
            on_compile: None,
        }
    }
}

/// The wasmtime host for flavor plugins.
pub struct Runtime {
    engine: Engine,
    /// The engine's settings, for the short-lived engines that compile (see `compiler`).
    wasm_config: Config,
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
        // WASI with the calls that may wait made safe on an async thread (a short predict runs
        // on the tokio worker that received it).
        crate::wasi_calls::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        FlavorPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let cache = match &config.cache_dir {
            Some(dir) => {
                let cache = CompileCache::new(dir.clone(), &engine)?;
                tracing::info!("compiled plugins are cached in '{}'", cache.dir().display());
                Some(cache)
            }
            None => None,
        };
        start_epoch_ticker(&engine);
        Ok(Arc::new(Self {
            engine,
            wasm_config: wasm,
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
        self.compile_hashed(wasm, &sha256_hex(wasm), "(unnamed)")
    }

    /// `compile` of a component whose sha256 is already known (the built-in ones); `name`
    /// names it in the log.
    pub fn compile_hashed<'w>(
        &self,
        wasm: impl Into<Wasm<'w>>,
        sha256: &str,
        name: &str,
    ) -> Result<CompiledPlugin> {
        let started = Instant::now();
        let (component, sha256, was_cached) = self.compile_component(wasm, sha256, name)?;
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
    /// (component, sha256, cached). `name` names it in the log.
    pub(crate) fn compile_component<'w>(
        &self,
        wasm: impl Into<Wasm<'w>>,
        sha256: &str,
        name: &str,
    ) -> Result<(Component, String, bool)> {
        let started = Instant::now();
        let wasm = wasm.into();
        if let Wasm::Bytes(bytes) = wasm {
            // A built-in one is a component: host/runtime's tests compile each of them.
            check_component_header(bytes)?;
        }
        let sha256 = sha256.to_string();
        // Set only when this call compiles: it announces the compile and says every few
        // seconds how long it has taken, until it is dropped.
        let mut progress = None;
        let mut announce = || {
            if let Some(notice) = self.config.on_compile {
                notice(name, wasm.len(), self.config.cache_dir.as_deref());
            }
            progress = Some(Progress::start(name, wasm.len()));
        };
        let (component, outcome) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &sha256, || {
                announce();
                let compiler = self.compiler()?;
                let bytes = wasm.bytes();
                crate::trim::compile_pool(|| compiler.precompile_component(&bytes))
                    .map_err(anyhow::Error::from)
                    .context("cannot compile the component")
            })?,
            None => {
                announce();
                let bytes = wasm.bytes();
                let component = crate::trim::compile_pool(|| Component::new(&self.engine, &*bytes))
                    .map_err(anyhow::Error::from)
                    .context("cannot compile the component")?;
                (component, Outcome::Compiled)
            }
        };
        drop(progress);
        let was_cached = outcome == Outcome::Cached;
        let counter = if was_cached {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !was_cached {
            crate::trim::release_free_memory();
            tracing::info!(
                sha256 = &sha256[..12],
                "compiled plugin '{name}' ({} KiB) in {:.1?}",
                wasm.len() >> 10,
                started.elapsed()
            );
        }
        Ok((component, sha256, was_cached))
    }

    /// An engine of the same settings that only compiles, dropped after the compile: an
    /// engine keeps its Cranelift contexts, sized for the largest function it compiled, for as
    /// long as it lives (tens of MiB after the ONNX plugin); the cached code it writes loads
    /// into `self.engine`, whose compatibility hash is the same.
    fn compiler(&self) -> Result<Engine> {
        Engine::new(&self.wasm_config).map_err(anyhow::Error::from)
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
        // Host functions that do work on the guest's behalf (the tensor kernels) run outside
        // the epoch's reach: they stop themselves at this instant.
        store.data_mut().deadline = Instant::now() + self.config.call_timeout;
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

/// A compile in progress, in the log: one line when it starts, then one every few seconds
/// until it is dropped. The largest plugins take tens of seconds on a small machine, and a
/// silent wait looks like a hang.
struct Progress {
    done: Option<std::sync::mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(name: &str, bytes: usize) -> Self {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let label = format!("compiling plugin '{name}' ({:.1} MB)", bytes as f64 / 1e6);
        tracing::info!("{label} for this machine; later starts load it from the cache");
        let started = Instant::now();
        let ticker = std::thread::Builder::new()
            .name("compile-progress".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(COMPILE_PROGRESS)
                {
                    tracing::info!("{label}… {} s", started.elapsed().as_secs());
                }
            })
            .ok();
        Self {
            done: Some(done),
            ticker,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
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

/// Tells a core module (what `wasm32-wasip1` and `wasm32-unknown-unknown` builds produce) and
/// a file that is no WebAssembly at all from a component, before wasmtime's parser says only
/// that it is the wrong kind.
fn check_component_header(wasm: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if !wasm.starts_with(MAGIC) {
        let start: String = wasm.iter().take(4).map(|b| format!("{b:02x}")).collect();
        bail!("not a WebAssembly file: it starts with bytes '{start}', not '0061736d' ('\\0asm')");
    }
    if is_core_module(wasm) {
        bail!(
            "this is a core wasm module; build a component for wasm32-wasip2 (cargo build \
             --target wasm32-wasip2, componentize-py, jco componentize…), or wrap a wasip1 \
             module with `wasm-tools component new`"
        );
    }
    Ok(())
}

/// Whether `wasm` is a core WebAssembly module (preamble version 1), not a component.
pub fn is_core_module(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[4..8] == [1, 0, 0, 0]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_gets_the_wasip2_hint() {
        let error = check_component_header(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(error.to_string().contains("core wasm module"), "{error}");
        assert!(error.to_string().contains("wasm32-wasip2"), "{error}");
        let error = check_component_header(b"PK\x03\x04zip").unwrap_err();
        assert!(error.to_string().contains("'504b0304'"), "{error}");
        // A component's layer and version.
        check_component_header(b"\0asm\x0d\0\x01\0").unwrap();
    }
}
