//! The installed plugins: the ones built into the binary and the ones installed at run time
//! (kept in a directory as `<sha256>.wasm` with a `plugins.json` index). A server notices
//! plugins that the CLI installs or removes in the same directory without a restart.
//!
//! Replicas on one shared database keep their installed plugins in it instead
//! ([`SharedPlugins`]): the directory then only caches the components this process has read,
//! and each replica re-reads the records when the store announces a change (PostgreSQL's
//! `LISTEN`/`NOTIFY`; at most every [`SHARED_RECHECK`] while it cannot), and at once when no
//! plugin it knows loads a model's flavors.
//!
//! Opening the manager compiles nothing: every plugin's record (name, version, the flavors it
//! loads) is known beforehand — recorded at build time for the built-in ones, in the index for
//! installed ones — and a plugin is compiled (or loaded from the compile cache) the first time
//! a model needs it, once however many requests need it at that moment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::lazy::Lazy;
use crate::runtime::{CompiledPlugin, Runtime, Wasm};

const INDEX: &str = "plugins.json";

/// How stale a replica's view of the shared plugins may be when the store cannot announce
/// changes (its listening connection is down): a plugin installed or removed through another
/// replica counts here within this long.
pub const SHARED_RECHECK: Duration = Duration::from_millis(500);

/// How often the shared plugins are re-read while the store announces changes
/// ([`SharedPlugins::changes`]): only a fallback, as announced changes are re-read at once.
pub const SHARED_RECHECK_ANNOUNCED: Duration = Duration::from_secs(10);

/// Installed plugins kept where every replica of a server reads them (the backend store);
/// checking a component stays the manager's work.
pub trait SharedPlugins: Send + Sync {
    /// Every installed plugin's record.
    fn records(&self) -> anyhow::Result<Vec<PluginRecord>>;
    /// The component whose sha256 is `sha256`, if an installed plugin has it.
    fn component(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Stores a checked plugin; `Some(sha256)` when its name and version are installed with
    /// another component (that one's sha256), and nothing was stored.
    fn insert(&self, record: &PluginRecord, wasm: &[u8]) -> anyhow::Result<Option<String>>;
    /// Removes every version of `name`, or only `version`; returns the removed records.
    fn remove(&self, name: &str, version: Option<&str>) -> anyhow::Result<Vec<PluginRecord>>;
    /// A count that moves whenever the installed plugins change, by any process (PostgreSQL:
    /// `LISTEN`/`NOTIFY`); `None` when the store cannot tell at the moment, and the records are
    /// re-read every [`SHARED_RECHECK`].
    fn changes(&self) -> Option<u64> {
        None
    }
}

/// A plugin the host can use; compiled by `PluginManager::compile` when first needed.
pub struct InstalledPlugin {
    pub record: PluginRecord,
    source: Source,
    compiled: Lazy<CompiledPlugin>,
}

/// A component compiled and checked as `install` checks it, but not installed.
pub struct CheckedPlugin {
    pub record: PluginRecord,
    pub compiled: CompiledPlugin,
}

/// Where a plugin's component is read from when it is compiled.
enum Source {
    Builtin(&'static wasmflow_builtin_plugins::Component),
    File(PathBuf),
    /// In the shared store, cached in the plugin directory once read.
    Shared,
}

impl InstalledPlugin {
    /// Whether this process has compiled (or loaded from the cache) the plugin already.
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }
}

/// What identifies and describes a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginRecord {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub loads: Vec<String>,
    pub description: String,
    #[serde(default)]
    pub builtin: bool,
}

/// Why a plugin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

pub struct PluginManager {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    builtin: Vec<Arc<InstalledPlugin>>,
    installed: RwLock<Installed>,
    /// Where installed plugins live when replicas share them; else the directory's index.
    shared: Option<Arc<dyn SharedPlugins>>,
    /// Counts changes to the installed plugins, so that users of a plugin can tell cheaply
    /// whether it may have been removed or replaced since they last looked.
    generation: AtomicU64,
}

#[derive(Default)]
struct Installed {
    plugins: Vec<Arc<InstalledPlugin>>,
    /// The index as last read.
    index_modified: Option<IndexStamp>,
}

impl PluginManager {
    /// Reads the built-in plugins' records and the directory of installed ones; compiles
    /// nothing.
    pub fn open(runtime: Arc<Runtime>, dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(runtime, dir, None)
    }

    /// [`open`](Self::open) for a replica: installed plugins live in `shared`, and `dir`
    /// caches the components read from it.
    pub fn open_shared(
        runtime: Arc<Runtime>,
        dir: &Path,
        shared: Arc<dyn SharedPlugins>,
    ) -> anyhow::Result<Self> {
        Self::open_with(runtime, dir, Some(shared))
    }

    fn open_with(
        runtime: Arc<Runtime>,
        dir: &Path,
        shared: Option<Arc<dyn SharedPlugins>>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the plugin directory '{}'", dir.display()))?;
        let builtin = wasmflow_builtin_plugins::BUILTIN
            .iter()
            .map(|component| {
                Arc::new(InstalledPlugin {
                    record: PluginRecord {
                        name: component.name.to_string(),
                        version: component.version.to_string(),
                        sha256: component.sha256.to_string(),
                        loads: component.loads.iter().map(|l| l.to_string()).collect(),
                        description: component.description.to_string(),
                        builtin: true,
                    },
                    source: Source::Builtin(component),
                    compiled: Lazy::new(),
                })
            })
            .collect();
        let manager = Self {
            runtime,
            dir: dir.to_path_buf(),
            builtin,
            installed: RwLock::default(),
            shared,
            generation: AtomicU64::new(0),
        };
        manager.refresh()?;
        Ok(manager)
    }

    /// The plugin's compiled code: compiled (or loaded from the compile cache) by the first
    /// caller; callers meanwhile wait for that compile. A failed compile is reported to each
    /// of them and tried again by the next caller.
    pub fn compile(&self, plugin: &InstalledPlugin) -> Result<CompiledPlugin, ManagerError> {
        let record = &plugin.record;
        plugin
            .compiled
            .get_or_make(|| {
                let file;
                let wasm = match &plugin.source {
                    Source::Builtin(component) => Wasm::Builtin(component),
                    Source::File(path) => {
                        file = std::fs::read(path)
                            .map_err(|e| format!("cannot read '{}': {e}", in_dir(path)))?;
                        let actual = crate::runtime::sha256_hex(&file);
                        if actual != record.sha256 {
                            return Err(format!(
                                "'{}' has sha256 {actual}, not the {} its index records",
                                in_dir(path),
                                record.sha256
                            ));
                        }
                        Wasm::Bytes(&file)
                    }
                    Source::Shared => {
                        file = self
                            .shared_component(&record.sha256)
                            .map_err(|e| format!("{e:#}"))?
                            .ok_or("it was removed from the shared store")?;
                        Wasm::Bytes(&file)
                    }
                };
                let compiled = self
                    .runtime
                    .compile_hashed(wasm, &record.sha256, &record.name)
                    .map_err(|e| format!("{e:#}"))?;
                if record.builtin && !compiled.cached {
                    // Once per machine: the record the build took from Cargo metadata must be
                    // what the component says, or plugins would be chosen by a wrong record.
                    let actual = describe_compiled(&self.runtime, &compiled, true)?;
                    if actual != *record {
                        return Err(format!(
                            "the build recorded {record:?}, but the component's info says \
                             {actual:?}"
                        ));
                    }
                }
                Ok(compiled)
            })
            .map_err(|e| {
                ManagerError::Io(anyhow::anyhow!(
                    "cannot compile plugin '{}@{}': {e}",
                    record.name,
                    record.version
                ))
            })
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The directory of installed plugins.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A number that changes whenever the installed plugins change (here or, seen through
    /// the index's modification time or the shared store, by another process). One `stat` (or,
    /// shared, at most one query per [`SHARED_RECHECK`]) when nothing changed.
    pub fn generation(&self) -> u64 {
        if let Err(e) = self.refresh() {
            tracing::warn!("cannot re-read the installed plugins: {e:#}");
        }
        self.generation.load(Ordering::Acquire)
    }

    /// The component whose sha256 is `sha256`, built in or installed.
    pub fn component(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(builtin) = wasmflow_builtin_plugins::BUILTIN
            .iter()
            .find(|c| c.sha256.eq_ignore_ascii_case(sha256))
        {
            return Ok(Some(builtin.wasm()));
        }
        let installed = self.list()?;
        let Some(plugin) = installed.iter().find(|p| p.record.sha256 == sha256) else {
            return Ok(None);
        };
        if self.shared.is_some() {
            return self.shared_component(sha256);
        }
        let path = self.dir.join(format!("{}.wasm", plugin.record.sha256));
        match std::fs::read(&path) {
            Ok(wasm) => Ok(Some(wasm)),
            // Removed since the list was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read '{}'", path.display())),
        }
    }

    /// Every plugin: built-in ones first, then installed ones by name and version.
    pub fn list(&self) -> anyhow::Result<Vec<Arc<InstalledPlugin>>> {
        self.refresh()?;
        let installed = self.installed.read().unwrap_or_else(|e| e.into_inner());
        Ok(self
            .builtin
            .iter()
            .chain(&installed.plugins)
            .cloned()
            .collect())
    }

    /// The plugin for the first of `flavors` that some plugin loads; installed plugins win
    /// over built-in ones, and a later version over an earlier one.
    pub fn for_flavors<'f>(
        &self,
        flavors: impl IntoIterator<Item = &'f str>,
    ) -> anyhow::Result<Option<(String, Arc<InstalledPlugin>)>> {
        let flavors: Vec<&str> = flavors.into_iter().collect();
        let plugins = self.list()?;
        let records: Vec<&PluginRecord> = plugins.iter().map(|p| &p.record).collect();
        let chosen = choose(&records, flavors.iter().copied());
        if chosen.is_none() && self.shared.is_some() {
            // Installed through another replica since the last look: seen at once, not after
            // the recheck interval.
            self.refresh_now()?;
            return self.for_flavors_known(flavors);
        }
        Ok(chosen.map(|(flavor, i)| (flavor, plugins[i].clone())))
    }

    fn for_flavors_known(
        &self,
        flavors: Vec<&str>,
    ) -> anyhow::Result<Option<(String, Arc<InstalledPlugin>)>> {
        let plugins = self.list()?;
        let records: Vec<&PluginRecord> = plugins.iter().map(|p| &p.record).collect();
        Ok(choose(&records, flavors).map(|(flavor, i)| (flavor, plugins[i].clone())))
    }

    /// Checks, compiles and stores a component; the same bytes installed twice is not an error.
    pub fn install(&self, wasm: &[u8]) -> Result<Arc<InstalledPlugin>, ManagerError> {
        self.install_hashed(wasm, crate::runtime::sha256_hex(wasm))
    }

    /// [`install`](Self::install) of a component whose sha256 (lowercase hex) the caller
    /// computed as its bytes arrived.
    pub fn install_hashed(
        &self,
        wasm: &[u8],
        sha256: String,
    ) -> Result<Arc<InstalledPlugin>, ManagerError> {
        let (record, compiled) =
            describe(&self.runtime, wasm, &sha256, false).map_err(ManagerError::Invalid)?;
        let path = self.dir.join(format!("{}.wasm", record.sha256));
        let plugin = InstalledPlugin {
            record,
            source: if self.shared.is_some() {
                Source::Shared
            } else {
                Source::File(path.clone())
            },
            compiled: Lazy::ready(compiled),
        };
        let record = &plugin.record;
        if let Some(shared) = &self.shared {
            return self.install_shared(shared.as_ref(), plugin, wasm);
        }
        let _ = self.refresh();
        let mut installed = self.installed.write().unwrap_or_else(|e| e.into_inner());
        let same_name = |p: &&Arc<InstalledPlugin>| {
            p.record.name == record.name && p.record.version == record.version
        };
        if let Some(existing) = self.builtin.iter().find(same_name) {
            return Err(ManagerError::AlreadyExists(format!(
                "plugin '{}@{}' is built in; give yours another name or version",
                existing.record.name, existing.record.version
            )));
        }
        if let Some(existing) = installed.plugins.iter().find(same_name) {
            if existing.record.sha256 == record.sha256 {
                return Ok(existing.clone());
            }
            return Err(ManagerError::AlreadyExists(format!(
                "plugin '{}@{}' is already installed with sha256 {}; remove it first",
                record.name, record.version, existing.record.sha256
            )));
        }
        write_atomically(&path, wasm)?;
        let plugin = Arc::new(plugin);
        installed.plugins.push(plugin.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        installed.plugins.sort_by(|a, b| {
            (&a.record.name, version_key(&a.record.version))
                .cmp(&(&b.record.name, version_key(&b.record.version)))
        });
        self.write_index(&mut installed)?;
        tracing::info!(
            "installed plugin '{}@{}' ({})",
            plugin.record.name,
            plugin.record.version,
            &plugin.record.sha256[..12]
        );
        Ok(plugin)
    }

    /// `install` into the shared store; the component is cached in the directory.
    fn install_shared(
        &self,
        shared: &dyn SharedPlugins,
        plugin: InstalledPlugin,
        wasm: &[u8],
    ) -> Result<Arc<InstalledPlugin>, ManagerError> {
        let record = &plugin.record;
        if let Some(existing) = self
            .builtin
            .iter()
            .find(|p| p.record.name == record.name && p.record.version == record.version)
        {
            return Err(ManagerError::AlreadyExists(format!(
                "plugin '{}@{}' is built in; give yours another name or version",
                existing.record.name, existing.record.version
            )));
        }
        if let Some(other) = shared.insert(record, wasm)? {
            return Err(ManagerError::AlreadyExists(format!(
                "plugin '{}@{}' is already installed with sha256 {other}; remove it first",
                record.name, record.version
            )));
        }
        self.cache_component(&record.sha256, wasm);
        tracing::info!(
            "installed plugin '{}@{}' ({})",
            record.name,
            record.version,
            &record.sha256[..12]
        );
        self.refresh_now()?;
        let installed = self.installed.read().unwrap_or_else(|e| e.into_inner());
        let found = installed.plugins.iter().find(|p| p.record == *record);
        // Removed again through another replica in between: still report what was installed.
        Ok(found.cloned().unwrap_or_else(|| Arc::new(plugin)))
    }

    /// An installed component read from the shared store, through the directory's cache.
    fn shared_component(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let cached = self.dir.join(format!("{sha256}.wasm"));
        if let Ok(wasm) = std::fs::read(&cached)
            && crate::runtime::sha256_hex(&wasm) == sha256
        {
            return Ok(Some(wasm));
        }
        let wasm = shared.component(sha256)?;
        if let Some(wasm) = &wasm {
            self.cache_component(sha256, wasm);
        }
        Ok(wasm)
    }

    /// Keeps a shared component in the directory; only a cache, so a failure is only logged.
    fn cache_component(&self, sha256: &str, wasm: &[u8]) {
        let path = self.dir.join(format!("{sha256}.wasm"));
        if let Err(e) = write_atomically(&path, wasm) {
            tracing::warn!(
                "cannot cache plugin {}: {e:#}",
                &sha256[..12.min(sha256.len())]
            );
        }
    }

    /// Removes every installed version of `name`, or only `version`.
    pub fn remove(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<PluginRecord>, ManagerError> {
        let _ = self.refresh();
        let matches = |p: &PluginRecord| p.name == name && version.is_none_or(|v| p.version == v);
        if self.builtin.iter().any(|p| matches(&p.record)) {
            return Err(ManagerError::Invalid(format!(
                "plugin '{name}' is built in and cannot be removed"
            )));
        }
        if let Some(shared) = &self.shared {
            let removed = shared.remove(name, version)?;
            if removed.is_empty() {
                let what = version.map_or(name.to_string(), |v| format!("{name}@{v}"));
                return Err(ManagerError::NotFound(format!(
                    "no installed plugin '{what}'"
                )));
            }
            self.refresh_now()?;
            return Ok(removed);
        }
        let mut installed = self.installed.write().unwrap_or_else(|e| e.into_inner());
        let (removed, kept): (Vec<_>, Vec<_>) = installed
            .plugins
            .drain(..)
            .partition(|p| matches(&p.record));
        installed.plugins = kept;
        self.generation.fetch_add(1, Ordering::AcqRel);
        if removed.is_empty() {
            let what = version.map_or(name.to_string(), |v| format!("{name}@{v}"));
            return Err(ManagerError::NotFound(format!(
                "no installed plugin '{what}'"
            )));
        }
        self.write_index(&mut installed)?;
        for plugin in &removed {
            let still_used = installed
                .plugins
                .iter()
                .any(|p| p.record.sha256 == plugin.record.sha256);
            if !still_used {
                let _ =
                    std::fs::remove_file(self.dir.join(format!("{}.wasm", plugin.record.sha256)));
            }
        }
        Ok(removed.iter().map(|p| p.record.clone()).collect())
    }

    /// Compiles a component that a model carries with it (or one downloaded from a server),
    /// after checking its hash.
    pub fn compile_carried(
        &self,
        wasm: &[u8],
        expected_sha256: &str,
    ) -> Result<CheckedPlugin, ManagerError> {
        let actual = crate::runtime::sha256_hex(wasm);
        if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(ManagerError::Invalid(format!(
                "the model's plugin has sha256 {actual}, but its MLmodel says '{expected_sha256}'"
            )));
        }
        let (record, compiled) =
            describe(&self.runtime, wasm, &actual, false).map_err(ManagerError::Invalid)?;
        Ok(CheckedPlugin { record, compiled })
    }

    /// What `install` checks (a component of the flavor world whose `info` names a valid
    /// name, version and flavors), without installing it: `wasmflow plugins check`.
    pub fn inspect(runtime: &Runtime, wasm: &[u8]) -> Result<CheckedPlugin, ManagerError> {
        let sha256 = crate::runtime::sha256_hex(wasm);
        let (record, compiled) =
            describe(runtime, wasm, &sha256, false).map_err(ManagerError::Invalid)?;
        Ok(CheckedPlugin { record, compiled })
    }

    /// Re-reads the index when another process (the CLI, another replica) changed it.
    fn refresh(&self) -> anyhow::Result<()> {
        self.refresh_if(false)
    }

    /// Re-reads the shared store now, however recently it was read.
    fn refresh_now(&self) -> anyhow::Result<()> {
        self.refresh_if(true)
    }

    fn refresh_if(&self, force: bool) -> anyhow::Result<()> {
        let last = self
            .installed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .index_modified;
        let (records, modified) = match &self.shared {
            Some(shared) => {
                // Taken before the records are read: a change announced meanwhile is read again.
                let changes = shared.changes();
                if let (false, Some(IndexStamp::Shared(read_at, seen))) = (force, last) {
                    let fresh = match (changes, seen) {
                        (Some(now), Some(then)) if now == then => {
                            read_at.elapsed() < SHARED_RECHECK_ANNOUNCED
                        }
                        (Some(_), _) => false,
                        (None, _) => read_at.elapsed() < SHARED_RECHECK,
                    };
                    if fresh {
                        return Ok(());
                    }
                }
                let now = Instant::now();
                let mut records = shared.records()?;
                records.sort_by(|a, b| {
                    (&a.name, version_key(&a.version)).cmp(&(&b.name, version_key(&b.version)))
                });
                (records, Some(IndexStamp::Shared(now, changes)))
            }
            None => {
                let index = self.dir.join(INDEX);
                let modified = stamp(&index);
                if last == modified {
                    return Ok(());
                }
                (read_index(&index)?, modified)
            }
        };
        let mut installed = self.installed.write().unwrap_or_else(|e| e.into_inner());
        let unchanged = installed.plugins.len() == records.len()
            && installed
                .plugins
                .iter()
                .zip(&records)
                .all(|(p, r)| p.record == *r);
        installed.index_modified = modified;
        if unchanged {
            return Ok(());
        }
        let mut plugins = Vec::with_capacity(records.len());
        for record in records {
            if let Some(known) = installed.plugins.iter().find(|p| p.record == record) {
                plugins.push(known.clone());
                continue;
            }
            // Compiled when a model needs it, not here: reading the index stays cheap.
            let source = if self.shared.is_some() {
                Source::Shared
            } else {
                Source::File(self.dir.join(format!("{}.wasm", record.sha256)))
            };
            plugins.push(Arc::new(InstalledPlugin {
                record,
                source,
                compiled: Lazy::new(),
            }));
        }
        installed.plugins = plugins;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn write_index(&self, installed: &mut Installed) -> anyhow::Result<()> {
        let records: Vec<&PluginRecord> = installed.plugins.iter().map(|p| &p.record).collect();
        let index = self.dir.join(INDEX);
        write_atomically(&index, &serde_json::to_vec_pretty(&records)?)?;
        installed.index_modified = stamp(&index);
        Ok(())
    }
}

/// The directory's index of installed plugins; none when absent.
fn read_index(index: &Path) -> anyhow::Result<Vec<PluginRecord>> {
    Ok(match std::fs::read(index) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("cannot read '{}'", index.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read '{}'", index.display())),
    })
}

/// What tells one version of the index from another. A file's modification time alone can
/// repeat for two writes within one tick of the kernel's coarse clock, its inode cannot (each
/// write renames a new file into place while the server holds no handle on the old one). The
/// shared store's is when it was last read, with the change count it announced then.
#[derive(Clone, Copy, PartialEq)]
enum IndexStamp {
    File(SystemTime, u64, u64),
    /// When the shared store was read, and the store's change count then (if it had one).
    Shared(Instant, Option<u64>),
}

fn stamp(index: &Path) -> Option<IndexStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(index).ok()?;
    Some(IndexStamp::File(
        meta.modified().ok()?,
        meta.ino(),
        meta.len(),
    ))
}

/// Compiles a component, checks it and reads its `info`.
fn describe(
    runtime: &Runtime,
    wasm: &[u8],
    sha256: &str,
    builtin: bool,
) -> Result<(PluginRecord, CompiledPlugin), String> {
    let compiled = runtime
        .compile_hashed(wasm, sha256, "(new plugin)")
        .map_err(|e| format!("{e:#}"))?;
    let record = describe_compiled(runtime, &compiled, builtin)?;
    Ok((record, compiled))
}

/// A compiled component's record, from its `info`, checked.
fn describe_compiled(
    runtime: &Runtime,
    compiled: &CompiledPlugin,
    builtin: bool,
) -> Result<PluginRecord, String> {
    let info = runtime.info(compiled).map_err(|e| format!("{e:#}"))?;
    validate_name(&info.name)?;
    if info.version.trim().is_empty() || info.version.len() > 64 {
        return Err(format!(
            "plugin '{}' has an invalid version '{}'",
            info.name, info.version
        ));
    }
    if info.loads.is_empty() {
        return Err(format!(
            "plugin '{}' loads no flavor (its info's `loads` is empty)",
            info.name
        ));
    }
    Ok(PluginRecord {
        name: info.name,
        version: info.version,
        sha256: compiled.sha256.clone(),
        loads: info.loads,
        description: info.description,
        builtin,
    })
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin name '{name}': use lowercase letters, digits, '-' and '_' (at most 64)"
        ))
    }
}

/// The plugin for the first of `flavors` that one of `plugins` loads: (that flavor, the
/// plugin's index). Installed plugins win over built-in ones, and a later version over an
/// earlier one. The one rule for every place that picks a plugin.
pub fn choose<'f>(
    plugins: &[&PluginRecord],
    flavors: impl IntoIterator<Item = &'f str>,
) -> Option<(String, usize)> {
    for flavor in flavors {
        let best = plugins
            .iter()
            .enumerate()
            .filter(|(_, p)| p.loads.iter().any(|l| l == flavor))
            .max_by(|(_, a), (_, b)| {
                (!a.builtin, version_key(&a.version)).cmp(&(!b.builtin, version_key(&b.version)))
            });
        if let Some((i, _)) = best {
            return Some((flavor.to_string(), i));
        }
    }
    None
}

/// Orders `1.10.0` after `1.9.0`: numeric parts compare as numbers.
fn version_key(version: &str) -> Vec<(u64, String)> {
    version
        .split(['.', '-', '+'])
        .map(|part| (part.parse().unwrap_or(0), part.to_string()))
        .collect()
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// An installed plugin's file as errors name it: relative to the plugin directory, since
/// they can reach a server's clients.
fn in_dir(path: &Path) -> String {
    format!(
        "<plugin directory>/{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeConfig;
    use std::sync::Barrier;

    fn open_in(dir: &Path) -> PluginManager {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.join("cache")),
            ..RuntimeConfig::default()
        })
        .unwrap();
        PluginManager::open(runtime, &dir.join("plugins")).unwrap()
    }

    fn builtin(manager: &PluginManager, name: &str) -> Arc<InstalledPlugin> {
        manager
            .list()
            .unwrap()
            .into_iter()
            .find(|p| p.record.name == name)
            .unwrap()
    }

    /// Calls `compile` from `threads` threads at once.
    fn compile_at_once(
        manager: &Arc<PluginManager>,
        plugin: &Arc<InstalledPlugin>,
        threads: usize,
    ) -> Vec<Result<CompiledPlugin, String>> {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (manager, plugin, barrier) = (manager.clone(), plugin.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    manager.compile(&plugin).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn opening_compiles_nothing_and_knows_every_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_in(dir.path());
        let plugins = manager.list().unwrap();
        let names: Vec<&str> = plugins.iter().map(|p| p.record.name.as_str()).collect();
        assert_eq!(names, ["linear", "lightgbm", "onnx", "sklearn", "xgboost"]);
        assert!(plugins.iter().all(|p| !p.is_compiled()));
        let (flavor, onnx) = manager
            .for_flavors(["python_function", "onnx"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (flavor.as_str(), onnx.record.name.as_str()),
            ("onnx", "onnx")
        );
        assert!(!onnx.is_compiled());
        let stats = manager.runtime().cache_stats();
        assert_eq!((stats.hits, stats.misses), (0, 0));
        assert_eq!(
            std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_build_records_what_each_builtin_info_says() {
        // Compiled without a cache, so that every record is checked against its component.
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let manager = PluginManager::open(runtime.clone(), dir.path()).unwrap();
        for plugin in manager.list().unwrap() {
            let compiled = manager.compile(&plugin).unwrap();
            let actual = describe_compiled(&runtime, &compiled, true).unwrap();
            assert_eq!(
                actual, plugin.record,
                "plugins/flavors/{}",
                plugin.record.name
            );
        }
    }

    #[test]
    fn each_builtin_inflates_to_the_wasm_its_cache_key_names() {
        let builtins = wasmflow_builtin_plugins::BUILTIN.iter();
        for component in builtins.chain(wasmflow_builtin_plugins::EXECUTORS) {
            let wasm = component.wasm();
            assert_eq!(wasm.len(), component.size, "{}", component.name);
            assert_eq!(
                crate::runtime::sha256_hex(&wasm),
                component.sha256,
                "{}",
                component.name
            );
            assert!(
                component.deflated.len() < wasm.len(),
                "{}: {} deflated bytes of {}",
                component.name,
                component.deflated.len(),
                wasm.len()
            );
        }
    }

    #[test]
    fn concurrent_requests_for_one_plugin_compile_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let manager = Arc::new(open_in(dir.path()));
        let linear = builtin(&manager, "linear");
        let results = compile_at_once(&manager, &linear, 8);
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results.iter().find_map(|r| r.as_ref().err())
        );
        let stats = manager.runtime().cache_stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (0, 1),
            "one compile for eight callers"
        );
        assert!(linear.is_compiled());
        // Later callers get the compiled plugin without touching the cache again.
        manager.compile(&linear).unwrap();
        assert_eq!(manager.runtime().cache_stats().misses, 1);
        assert_eq!(manager.runtime().cache_stats().hits, 0);
        // Another process (a new manager on the same cache) loads it instead of compiling.
        let again = open_in(dir.path());
        again.compile(&builtin(&again, "linear")).unwrap();
        let stats = again.runtime().cache_stats();
        assert_eq!((stats.hits, stats.misses), (1, 0));
    }

    #[test]
    fn a_failed_compile_reaches_every_waiter_and_is_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let manager = Arc::new(open_in(dir.path()));
        // An installed plugin whose file is missing (being copied in, or deleted by hand).
        let wasm = wasmflow_builtin_plugins::BUILTIN
            .iter()
            .find(|c| c.name == "linear")
            .unwrap()
            .wasm();
        let record = PluginRecord {
            name: "mine".into(),
            version: "1.0.0".into(),
            sha256: crate::runtime::sha256_hex(&wasm),
            loads: vec!["mine".into()],
            description: "linear under another name".into(),
            builtin: false,
        };
        let plugins = dir.path().join("plugins");
        std::fs::write(plugins.join(INDEX), serde_json::to_vec(&[&record]).unwrap()).unwrap();
        let (_, mine) = manager.for_flavors(["mine"]).unwrap().unwrap();
        let results = compile_at_once(&manager, &mine, 6);
        for result in &results {
            let error = result.as_ref().err().expect("the file is missing");
            assert!(
                error.contains("cannot compile plugin 'mine@1.0.0'") && error.contains(".wasm"),
                "{error}"
            );
        }
        assert!(!mine.is_compiled());
        // A wrong file is refused, not compiled under the record's name.
        let file = plugins.join(format!("{}.wasm", record.sha256));
        std::fs::write(&file, b"not this one").unwrap();
        let error = manager.compile(&mine).err().unwrap().to_string();
        assert!(
            error.contains("not the") && error.contains(&record.sha256),
            "{error}"
        );
        assert_eq!(manager.runtime().cache_stats().misses, 0);
        // The failure was not remembered: with the right file in place, the next call compiles.
        std::fs::write(&file, wasm).unwrap();
        let results = compile_at_once(&manager, &mine, 4);
        assert!(results.iter().all(Result::is_ok));
        assert!(mine.is_compiled());
        assert_eq!(manager.runtime().cache_stats().misses, 1);
    }
}
