//! Compiled plugins on disk, keyed by the component's sha256 and the engine's configuration,
//! and loaded by mmap: a 15–20 MB component takes seconds to compile and about a millisecond
//! to load from here.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: PathBuf,
    /// Engine settings and wasmtime version: code compiled under other settings is not reused.
    engine_key: String,
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the compile cache '{}'", dir.display()))?;
        // SipHash with fixed keys: stable from run to run of the same build.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
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
                // A truncated or foreign file: recompile and overwrite it.
                tracing::warn!("ignoring cached plugin '{}': {e:#}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Compiles `wasm`, stores the result and loads it back by mmap.
    pub fn compile(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> Result<Component> {
        let compiled = engine
            .precompile_component(wasm)
            .map_err(anyhow::Error::from)
            .context("cannot compile the component")?;
        let path = self.path(sha256);
        let tmp = tempfile_in(&self.dir, &path);
        std::fs::write(&tmp, &compiled)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        load(engine, &path)
    }
}

fn tempfile_in(dir: &Path, path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    dir.join(format!(".{name}.{}.tmp", std::process::id()))
}

#[allow(unsafe_code)]
fn load(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: wasmtime requires that the file holds code this engine configuration produced
    // and that it is not modified while mapped. The cache directory is the runtime's own, its
    // files are written whole and renamed into place, never modified, and named by the
    // engine's compatibility hash; wasmtime also checks the header and version on load.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load '{}'", path.display()))
}
