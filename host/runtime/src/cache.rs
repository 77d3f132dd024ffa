//! Compiled plugins on disk, keyed by the component's sha256 and the engine's configuration,
//! and loaded by mmap: a 15–20 MB component takes seconds to compile and about a millisecond
//! to load from here.
//!
//! One cache serves every wasmflow process of a user (`~/.cache/wasmflow/compiled` by
//! default), so two processes may want the same plugin at once. A file is written under a
//! name of its own, flushed and renamed into place, so a reader maps either nothing or a whole
//! file; and a writer holds an advisory lock on the plugin's lock file while it compiles, so a
//! second process waits for the first one's result instead of compiling the same code again.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

const EXTENSION: &str = "cwasm";

/// Compiled code is written this much at a time. The page cache keeps a file in folios as
/// large as the writes that made it (ext4 on Linux 6.x), and a process mapping the file maps a
/// whole folio on its first touch of any byte in it: written in one call, the ONNX plugin's
/// 53 MB lay in 2 MiB folios and an idle `models serve` had 32 MiB of its code resident, against
/// 15 MiB written 64 KiB at a time, for the same code run (and no measurable CPU cost a
/// request; README, "Footprint").
const WRITE_CHUNK: usize = 64 << 10;

/// A temporary file older than this belongs to a writer that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);

pub struct CompileCache {
    dir: PathBuf,
    /// Engine settings and wasmtime version: code compiled under other settings is not reused.
    engine_key: String,
}

/// What `CompileCache::load_or_compile` had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The compiled code was on disk (perhaps written by another process meanwhile).
    Cached,
    /// This call compiled it.
    Compiled,
}

impl CompileCache {
    /// Opens (creating it) the cache in `dir`, and removes what other engine versions compiled
    /// there: their code can never load in this one.
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the compile cache '{}'", dir.display()))?;
        // SipHash with fixed keys: stable from run to run of the same build.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let cache = Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        };
        cache.prune();
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stem(&self, sha256: &str) -> String {
        format!("{sha256}-{}", self.engine_key)
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", self.stem(sha256)))
    }

    /// The cached compilation of the component with this hash, if there is a usable one.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        match load(engine, &path) {
            Ok(component) => Some(component),
            Err(e) => {
                // A foreign or damaged file: recompile and replace it.
                tracing::warn!("ignoring cached plugin '{}': {e:#}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// The cached compilation of the component whose sha256 is `sha256`, compiling and storing
    /// it first when there is none. `compile` gives the compiled code (`precompile_component`
    /// by an engine of `engine`'s settings); it is called only when this call is the one that
    /// compiles, so a built-in component is inflated only then.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        compile: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<(Component, Outcome)> {
        if let Some(component) = self.get(engine, sha256) {
            return Ok((component, Outcome::Cached));
        }
        let _lock = self.lock(sha256);
        // Another process may have stored it while this one waited for the lock.
        if let Some(component) = self.get(engine, sha256) {
            return Ok((component, Outcome::Cached));
        }
        let compiled = compile()?;
        let path = self.path(sha256);
        self.store(&path, &compiled)
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        drop(compiled);
        Ok((load(engine, &path)?, Outcome::Compiled))
    }

    /// Writes `bytes` whole under a name no other writer uses, flushes them to disk and renames
    /// the file into place: a reader never sees a partial file, even after a crash.
    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.temp_path(path);
        let written = File::create(&tmp).and_then(|mut file| {
            for chunk in bytes.chunks(WRITE_CHUNK) {
                file.write_all(chunk)?;
            }
            file.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed
    }

    /// `.<name>.<pid>.<n>.tmp`: unique among the threads of this process and among processes.
    fn temp_path(&self, path: &Path) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!(".{name}.{}.{n}.tmp", std::process::id()))
    }

    /// Holds the plugin's advisory lock until dropped, waiting while another process (or
    /// thread) compiles the same plugin. Without a lock (a file system that has none, a
    /// read-only directory) both compile, which is slower but still correct.
    fn lock(&self, sha256: &str) -> Option<File> {
        let path = self.dir.join(format!(".{}.lock", self.stem(sha256)));
        let file = match File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!("cannot open the lock '{}': {e}", path.display());
                return None;
            }
        };
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::debug!("cannot lock '{}': {e}", path.display());
                return None;
            }
        }
        tracing::info!(
            sha256 = &sha256[..sha256.len().min(12)],
            "another process is compiling this plugin; waiting for it"
        );
        match file.lock() {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::debug!("cannot lock '{}': {e}", path.display());
                None
            }
        }
    }

    /// Removes the compiled code, lock files and leftovers of other engine versions, and
    /// temporary files of writers that died. Only names this cache writes are touched.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut removed = 0usize;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(file) = parse_name(name) else {
                continue;
            };
            let foreign = file.engine_key != self.engine_key;
            let stale = file.kind == Kind::Temp
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP);
            if (foreign || stale) && std::fs::remove_file(entry.path()).is_ok() {
                removed += usize::from(file.kind == Kind::Code);
            }
        }
        if removed > 0 {
            tracing::info!(
                "removed {removed} plugin(s) compiled by other wasmflow versions from '{}'",
                self.dir.display()
            );
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Code,
    Lock,
    Temp,
}

#[derive(Debug)]
struct CacheFile<'a> {
    kind: Kind,
    engine_key: &'a str,
}

/// Recognises the names this cache writes: `<sha256>-<key>.cwasm`, `.<sha256>-<key>.lock`
/// and `.<sha256>-<key>.cwasm.<pid>.<n>.tmp`.
fn parse_name(name: &str) -> Option<CacheFile<'_>> {
    let (kind, stem) = if let Some(stem) = name.strip_suffix(".cwasm") {
        (Kind::Code, stem)
    } else if let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".lock")) {
        (Kind::Lock, stem)
    } else {
        let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
        let (stem, tail) = rest.split_once(".cwasm.")?;
        let (pid, n) = tail.split_once('.')?;
        if !is_digits(pid) || !is_digits(n) {
            return None;
        }
        (Kind::Temp, stem)
    };
    let (sha256, engine_key) = stem.split_once('-')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(sha256, 64) && hex(engine_key, 16)).then_some(CacheFile { kind, engine_key })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: wasmtime requires that the file holds code this engine configuration produced
    // and that it is not modified while mapped. The cache directory is the runtime's own, its
    // files are written whole under a temporary name and renamed into place (a rename never
    // changes a file another process has mapped), never modified, and named by the engine's
    // compatibility hash; wasmtime also checks the header and version on load.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load '{}'", path.display()))
}

/// The user's cache directory for wasmflow: `$XDG_CACHE_HOME/wasmflow`, else
/// `$HOME/.cache/wasmflow`; without either, a directory of this user's in the temporary
/// directory (said in the log), or `None` when that one is not safely this user's.
pub fn user_cache_dir() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    // The XDG spec: a relative XDG_CACHE_HOME is invalid and ignored.
    if let Some(dir) = absolute("XDG_CACHE_HOME") {
        return Some(dir.join("wasmflow"));
    }
    if let Some(home) = absolute("HOME") {
        return Some(home.join(".cache").join("wasmflow"));
    }
    let uid = rustix::process::getuid().as_raw();
    let dir = std::env::temp_dir().join(format!("wasmflow-{uid}"));
    match private_dir(&dir, uid) {
        Ok(()) => {
            tracing::warn!(
                "neither HOME nor XDG_CACHE_HOME is set: caching in '{}', which the system may \
                 clear; set --plugin-cache-dir to keep compiled plugins elsewhere",
                dir.display()
            );
            Some(dir)
        }
        Err(e) => {
            tracing::warn!(
                "neither HOME nor XDG_CACHE_HOME is set, and '{}' cannot be used ({e}): plugins \
                 are compiled on every start; set --plugin-cache-dir to cache them",
                dir.display()
            );
            None
        }
    }
}

/// The directory where compiled plugins are kept when no `--plugin-cache-dir` is given.
pub fn default_compile_cache_dir() -> Option<PathBuf> {
    user_cache_dir().map(|dir| dir.join("compiled"))
}

/// Creates `dir` as this user's alone, or checks that the existing one is: in a shared
/// temporary directory another user could otherwise plant code that this process would map
/// and run.
fn private_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "it is not a directory of this user's that only this user can write",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn small_component() -> Vec<u8> {
        wasmflow_builtin_plugins::EXECUTORS
            .iter()
            .min_by_key(|c| c.size)
            .expect("the executors are built in")
            .wasm()
    }

    fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>> {
        Ok(engine.precompile_component(wasm)?)
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn two_writers_at_once_compile_once_and_leave_one_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let wasm = small_component();
        let start = Arc::new(Barrier::new(2));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                // Each thread opens the cache itself, as a second process would.
                let (dir, engine, start, wasm) = (
                    dir.path().to_path_buf(),
                    engine.clone(),
                    start.clone(),
                    wasm.clone(),
                );
                std::thread::spawn(move || {
                    let cache = CompileCache::new(dir, &engine).unwrap();
                    start.wait();
                    let (component, outcome) = cache
                        .load_or_compile(&engine, SHA, || precompile(&engine, &wasm))
                        .unwrap();
                    assert!(component.component_type().exports(&engine).count() > 0);
                    outcome
                })
            })
            .collect();
        let mut outcomes: Vec<Outcome> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        outcomes.sort_by_key(|o| *o == Outcome::Compiled);
        assert_eq!(outcomes, [Outcome::Cached, Outcome::Compiled]);

        let cache = CompileCache::new(dir.path().to_path_buf(), &engine).unwrap();
        let code = format!("{SHA}-{}.cwasm", cache.engine_key);
        let lock = format!(".{SHA}-{}.lock", cache.engine_key);
        // No temporary file is left behind, and the one file loads.
        assert_eq!(names(dir.path()), [lock, code]);
        assert!(cache.get(&engine, SHA).is_some());
    }

    #[test]
    fn a_damaged_file_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::new(dir.path().to_path_buf(), &engine).unwrap();
        std::fs::write(cache.path(SHA), b"not compiled code").unwrap();
        let mut compiled = false;
        let (_, outcome) = cache
            .load_or_compile(&engine, SHA, || {
                compiled = true;
                precompile(&Engine::default(), &small_component())
            })
            .unwrap();
        assert_eq!(outcome, Outcome::Compiled);
        assert!(compiled);
        let (_, again) = cache
            .load_or_compile(&engine, SHA, || panic!("compiled twice"))
            .unwrap();
        assert_eq!(again, Outcome::Cached);
    }

    #[test]
    fn opening_prunes_other_engines_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let key = CompileCache::new(dir.path().to_path_buf(), &engine)
            .unwrap()
            .engine_key;
        let other = "fedcba9876543210";
        assert_ne!(key, other);
        let keep = [
            format!("{SHA}-{key}.cwasm"),
            format!(".{SHA}-{key}.lock"),
            format!(".{SHA}-{key}.cwasm.7.0.tmp"),
            // Not names this cache writes.
            "notes.txt".to_string(),
            "model.cwasm".to_string(),
            format!("{SHA}-{other}.cwasm.bak"),
        ];
        let gone = [
            format!("{SHA}-{other}.cwasm"),
            format!(".{SHA}-{other}.lock"),
            format!(".{SHA}-{other}.cwasm.7.0.tmp"),
        ];
        for name in keep.iter().chain(&gone) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("virtualenv")).unwrap();
        CompileCache::new(dir.path().to_path_buf(), &engine).unwrap();
        let mut expected: Vec<String> = keep.to_vec();
        expected.push("virtualenv".into());
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn stale_temporary_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let key = CompileCache::new(dir.path().to_path_buf(), &engine)
            .unwrap()
            .engine_key;
        let old = dir.path().join(format!(".{SHA}-{key}.cwasm.7.0.tmp"));
        let file = File::create(&old).unwrap();
        file.set_modified(std::time::SystemTime::now() - 2 * STALE_TEMP)
            .unwrap();
        drop(file);
        CompileCache::new(dir.path().to_path_buf(), &engine).unwrap();
        assert!(!old.exists());
    }

    #[test]
    fn names_are_recognised_strictly() {
        let key = "0011223344556677";
        assert_eq!(
            parse_name(&format!("{SHA}-{key}.cwasm")).map(|f| f.kind),
            Some(Kind::Code)
        );
        assert_eq!(
            parse_name(&format!(".{SHA}-{key}.cwasm.12.3.tmp")).map(|f| f.kind),
            Some(Kind::Temp)
        );
        for name in [
            format!("{SHA}-{key}x.cwasm"),
            format!("{}-{key}.cwasm", &SHA[1..]),
            format!(".{SHA}-{key}.cwasm.12.tmp"),
            format!(".{SHA}-{key}.cwasm.a.3.tmp"),
            format!("{SHA}.cwasm"),
        ] {
            assert!(parse_name(&name).is_none(), "{name}");
        }
    }
}
