//! A model's files brought from a remote repository (an object store) into a local directory:
//! the plugins that serve a model read its files from a directory.
//!
//! Each download lands in a directory named after a hash of the source and of its files'
//! paths, sizes and versions (ETags), so a model whose files changed is downloaded again rather
//! than served stale, and an unchanged one is read from the cache. The cache keeps at most a
//! budget of bytes: the directories used least recently are removed beyond it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use wasmflow_core::{Error, Result};

use crate::{ArtifactRepository, TreeEntry, sanitize_relative_path};

/// Downloaded models under one directory, within a budget of bytes.
#[derive(Debug)]
pub struct ModelCache {
    root: PathBuf,
    budget: u64,
    /// One download at a time: two requests for the same model download it once.
    busy: tokio::sync::Mutex<()>,
}

impl ModelCache {
    pub fn new(root: impl Into<PathBuf>, budget: u64) -> Self {
        Self {
            root: root.into(),
            budget,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// The local directory holding the files under `path` of `repo`, downloading them unless
    /// the cache has them as they are now. `source` names the repository and path (a URI), so
    /// that two models with equal file lists are told apart.
    pub async fn fetch(
        &self,
        repo: &dyn ArtifactRepository,
        source: &str,
        path: &str,
    ) -> Result<PathBuf> {
        let files = repo.tree(path).await?;
        if files.is_empty() {
            return Err(Error::not_found(format!("no files at '{source}'")));
        }
        let dir = self.root.join(key(source, &files));
        let _busy = self.busy.lock().await;
        if tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
            touch(&dir);
            return Ok(dir);
        }
        let io = |what: &str, p: &Path, e: std::io::Error| {
            Error::internal(format!("cannot {what} '{}': {e}", p.display()))
        };
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| io("create", &self.root, e))?;
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&self.root)
            .map_err(|e| io("create a directory in", &self.root, e))?;
        download_files(repo, path, &files, partial.path()).await?;
        let partial = partial.keep();
        if let Err(e) = std::fs::rename(&partial, &dir) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(io("move a download to", &dir, e));
        }
        let (root, budget, keep) = (self.root.clone(), self.budget, dir.clone());
        // Eviction walks the cache: off the async threads.
        let _ = tokio::task::spawn_blocking(move || evict(&root, budget, &keep)).await;
        Ok(dir)
    }
}

/// Downloads every file under `path` of `repo` into the directory `dest` (which must exist);
/// returns how many files it wrote.
pub async fn download_tree(
    repo: &dyn ArtifactRepository,
    path: &str,
    dest: &Path,
) -> Result<usize> {
    let files = repo.tree(path).await?;
    download_files(repo, path, &files, dest).await?;
    Ok(files.len())
}

async fn download_files(
    repo: &dyn ArtifactRepository,
    path: &str,
    files: &[TreeEntry],
    dest: &Path,
) -> Result<()> {
    for file in files {
        // Keys come from the store, which anyone with write access to it controls: each must
        // stay inside the destination as a client's path must stay inside the root.
        let rel = sanitize_relative_path(&file.path)?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                Error::internal(format!("cannot create '{}': {e}", parent.display()))
            })?;
        }
        let full = if path.is_empty() {
            rel.clone()
        } else {
            format!("{}/{rel}", path.trim_end_matches('/'))
        };
        let (_, mut stream) = repo.get(&full).await?;
        let write_error = |e: std::io::Error| {
            Error::internal(format!("cannot write '{}': {e}", target.display()))
        };
        let mut out = tokio::fs::File::create(&target)
            .await
            .map_err(write_error)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::internal(format!(
                    "cannot download '{}': {e}",
                    file.path.escape_debug()
                ))
            })?;
            out.write_all(&chunk).await.map_err(write_error)?;
        }
        out.flush().await.map_err(write_error)?;
    }
    Ok(())
}

/// The cache directory's name for these files of `source`.
fn key(source: &str, files: &[TreeEntry]) -> String {
    let mut hash = Sha256::new();
    hash.update(source.as_bytes());
    for file in files {
        hash.update(b"\n");
        hash.update(file.path.as_bytes());
        hash.update(b"\0");
        hash.update(file.size.to_le_bytes());
        hash.update(b"\0");
        hash.update(file.version.as_deref().unwrap_or_default().as_bytes());
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Marks a directory used now (its modification time orders eviction).
fn touch(dir: &Path) {
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Removes the least recently used downloads until the cache holds at most `budget` bytes;
/// `keep` (the download just made) stays whatever its size.
fn evict(root: &Path, budget: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut dirs: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            let path = e.path();
            let used = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (used, size_of(&path), path)
        })
        .collect();
    let mut total: u64 = dirs.iter().map(|(_, size, _)| size).sum();
    dirs.sort();
    for (_, size, path) in dirs {
        if total <= budget {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => total -= size,
            Err(e) => tracing::warn!("cannot remove the cached model '{}': {e}", path.display()),
        }
    }
}

fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalArtifactRepository;

    #[tokio::test]
    async fn a_changed_model_is_downloaded_again_and_old_ones_evicted() {
        let scratch = tempfile::tempdir().unwrap();
        let repo = LocalArtifactRepository::new(scratch.path().join("store")).unwrap();
        let model = repo.root().join("m");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("MLmodel"), "flavors: {}\n").unwrap();
        std::fs::write(model.join("sub/w.bin"), vec![1u8; 100]).unwrap();
        let cache = ModelCache::new(scratch.path().join("cache"), 150);
        let first = cache.fetch(&repo, "store/m", "m").await.unwrap();
        assert_eq!(
            std::fs::read(first.join("sub/w.bin")).unwrap(),
            vec![1u8; 100]
        );
        assert_eq!(cache.fetch(&repo, "store/m", "m").await.unwrap(), first);
        // Another size: another key, and the first download is evicted (over 150 bytes).
        std::fs::write(model.join("sub/w.bin"), vec![2u8; 120]).unwrap();
        let second = cache.fetch(&repo, "store/m", "m").await.unwrap();
        assert_ne!(second, first);
        assert_eq!(
            std::fs::read(second.join("sub/w.bin")).unwrap(),
            vec![2u8; 120]
        );
        assert!(!first.exists());
        let missing = cache.fetch(&repo, "store/x", "x").await.unwrap_err();
        assert!(
            missing.message.contains("no files at 'store/x'"),
            "{}",
            missing.message
        );
    }
}
