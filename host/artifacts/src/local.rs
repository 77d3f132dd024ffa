//! The artifact repository on the local file system (MLflow's `LocalArtifactRepository`).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::fs;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;
use wasmflow_core::{Error, Result};

use crate::path::{invalid, sanitize_relative_path};
use crate::{ArtifactRepository, ByteStream, FileInfo};

/// Names of in-progress uploads start with this (MLflow's `_TEMP_ARTIFACT_PREFIX`, so that a
/// directory shared with MLflow hides the same files). They are left out of listings, and uploads
/// to such a name are refused.
pub const TEMP_PREFIX: &str = ".artifact.uploading.";

/// Read chunk size of downloads.
const READ_CHUNK: usize = 64 * 1024;
/// Write buffer of uploads (fewer, larger writes than the network's chunks).
const WRITE_BUFFER: usize = 256 * 1024;

/// Artifacts as files under a root directory.
///
/// Every operation first validates the path with [`sanitize_relative_path`], then walks it from
/// the root one component at a time with `symlink_metadata` and refuses any symlink it meets
/// (`INVALID_PARAMETER_VALUE`), whether it points inside or outside the root. The root itself is
/// canonicalised when the repository is created, so it may be (or lie under) a symlink.
///
/// Limitation: the walk and the following open/rename/delete are not atomic, so a process with
/// write access to the artifact directory could swap a component for a symlink in between; such a
/// process can already read and write the artifacts directly (MLflow accepts the same gap).
#[derive(Debug, Clone)]
pub struct LocalArtifactRepository {
    root: PathBuf,
}

impl LocalArtifactRepository {
    /// Opens (creating it and its parents if missing) the directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                ErrorKind::NotADirectory,
                format!("artifact root {} is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    /// The root directory, canonical (absolute, without symlinks).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary files of uploads that a killed server left behind (a failed upload
    /// removes its own), last modified before `before` (the server's start: uploads begun since
    /// are in progress). Walks the whole tree without following symlinks; returns how many it
    /// removed. Blocking.
    pub fn remove_stale_uploads(&self, before: std::time::SystemTime) -> io::Result<usize> {
        let mut removed = 0;
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file()
                    && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|modified| modified < before)
                {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Walks `rel` (sanitised, non-empty components) from the root without following symlinks.
    async fn walk(&self, display: &str, rel: &str) -> Result<(PathBuf, Found)> {
        let mut full = self.root.clone();
        if rel.is_empty() {
            return Ok((full, Found::Dir));
        }
        let mut components = rel.split('/').peekable();
        while let Some(component) = components.next() {
            full.push(component);
            let last = components.peek().is_none();
            let meta = match fs::symlink_metadata(&full).await {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok((full, Found::Missing)),
                Err(e) => return Err(io_error("inspect", display, e)),
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                return Err(symlink_error(display));
            }
            if last {
                let found = if kind.is_dir() {
                    Found::Dir
                } else if kind.is_file() {
                    Found::File
                } else {
                    Found::Special
                };
                return Ok((full, found));
            }
            if !kind.is_dir() {
                // `a/b` where `a` is a file: nothing exists there.
                return Ok((full, Found::Missing));
            }
        }
        unreachable!("a non-empty path has a last component")
    }

    async fn list_impl(&self, path: String) -> Result<Vec<FileInfo>> {
        let rel = sanitize_relative_path(&path)?;
        let (dir, found) = self.walk(&path, &rel).await?;
        if !matches!(found, Found::Dir) {
            // MLflow lists nothing for a missing path or a file.
            return Ok(Vec::new());
        }
        let mut entries = match fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &path, e)),
        };
        let mut files = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list", &path, e))?
        {
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(dir = %rel, "skipping an artifact whose name is not UTF-8");
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            // `DirEntry::metadata` does not follow symlinks.
            let meta = match entry.metadata().await {
                Ok(meta) => meta,
                // Deleted since read_dir saw it.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("list", &path, e)),
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                files.push(FileInfo {
                    path: name,
                    is_dir: true,
                    file_size: None,
                });
            } else if kind.is_file() {
                files.push(FileInfo {
                    path: name,
                    is_dir: false,
                    file_size: Some(meta.len()),
                });
            } else {
                // Symlinks, sockets, FIFOs, devices: not artifacts, and could not be downloaded.
                tracing::debug!(dir = %rel, name = %name, "listing skips a non-regular entry");
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn put_impl(&self, path: String, mut body: ByteStream) -> Result<()> {
        let rel = sanitize_relative_path(&path)?;
        let Some((parent_rel, name)) = split_last(&rel) else {
            return Err(invalid(&path, "an upload must name a file, not the root"));
        };
        if name.starts_with(TEMP_PREFIX) {
            return Err(invalid(
                &path,
                &format!("names starting with '{TEMP_PREFIX}' are reserved"),
            ));
        }

        // Everything created from here on is undone unless the upload completes (also when this
        // future is dropped midway, e.g. because the client went away).
        let mut cleanup = Cleanup::default();

        // Walk the parent directories, creating the missing ones; no symlinks, no files.
        let mut dir = self.root.clone();
        for component in parent_rel.split('/').filter(|c| !c.is_empty()) {
            dir.push(component);
            loop {
                match fs::symlink_metadata(&dir).await {
                    Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(&path)),
                    Ok(meta) if meta.is_dir() => break,
                    Ok(_) => {
                        return Err(invalid(
                            &path,
                            &format!("'{}' is not a directory", component.escape_debug()),
                        ));
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        match fs::create_dir(&dir).await {
                            Ok(()) => {
                                cleanup.dirs.push(dir.clone());
                                break;
                            }
                            // Created concurrently: inspect it again.
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                            Err(e) => return Err(io_error("create a directory for", &path, e)),
                        }
                    }
                    Err(e) => return Err(io_error("inspect", &path, e)),
                }
            }
        }

        let target = dir.join(name);
        match fs::symlink_metadata(&target).await {
            Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(&path)),
            Ok(meta) if meta.is_dir() => return Err(invalid(&path, "is a directory")),
            Ok(meta) if !meta.is_file() => return Err(invalid(&path, "is not a regular file")),
            Ok(_) => {} // replaced atomically below
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("inspect", &path, e)),
        }

        let temp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| io_error("create", &path, e))?;
        cleanup.temp = Some(temp.clone());

        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::debug!(path = %rel, error = %e, "artifact upload body failed");
                Error::invalid(format!(
                    "upload of artifact '{}' failed while reading the request body: {e}",
                    path.escape_debug()
                ))
            })?;
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| io_error("write", &path, e))?;
        }
        writer
            .flush()
            .await
            .map_err(|e| io_error("write", &path, e))?;
        let file = writer.into_inner();
        // Durable before it becomes visible: an acknowledged upload survives a crash.
        file.sync_all()
            .await
            .map_err(|e| io_error("write", &path, e))?;
        drop(file);

        fs::rename(&temp, &target)
            .await
            .map_err(|e| io_error("store", &path, e))?;
        cleanup.disarm();
        sync_dir(&dir).await;
        Ok(())
    }

    async fn get_impl(&self, path: String) -> Result<(u64, ByteStream)> {
        let rel = sanitize_relative_path(&path)?;
        let (full, found) = self.walk(&path, &rel).await?;
        match found {
            Found::File => {}
            Found::Missing => return Err(not_found(&path)),
            Found::Dir => return Err(invalid(&path, "is a directory")),
            Found::Special => return Err(invalid(&path, "is not a regular file")),
        }
        let file = match fs::File::open(&full).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found(&path)),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        // The size of what was opened (a concurrent upload replaces the file, not this inode).
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error("open", &path, e))?;
        if !meta.is_file() {
            return Err(invalid(&path, "is not a regular file"));
        }
        let stream = ReaderStream::with_capacity(file, READ_CHUNK).boxed();
        Ok((meta.len(), stream))
    }

    async fn delete_impl(&self, path: String) -> Result<()> {
        let rel = sanitize_relative_path(&path)?;
        if rel.is_empty() {
            return Err(invalid(&path, "refusing to delete the artifact root"));
        }
        let (full, found) = self.walk(&path, &rel).await?;
        let result = match found {
            Found::Missing => return Err(not_found(&path)),
            // `remove_dir_all` removes symlinks inside the tree without following them.
            Found::Dir => fs::remove_dir_all(&full).await,
            Found::File | Found::Special => fs::remove_file(&full).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(not_found(&path)),
            Err(e) => Err(io_error("delete", &path, e)),
        }
    }

    async fn local_dir_impl(&self, path: String) -> Result<Option<PathBuf>> {
        let rel = sanitize_relative_path(&path)?;
        match self.walk(&path, &rel).await? {
            (full, Found::Dir) => Ok(Some(full)),
            (_, Found::Missing) => Err(not_found(&path)),
            _ => Err(invalid(&path, "not a directory")),
        }
    }
}

impl ArtifactRepository for LocalArtifactRepository {
    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<FileInfo>>> {
        Box::pin(self.list_impl(path.to_owned()))
    }

    fn put(&self, path: &str, body: ByteStream) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.put_impl(path.to_owned(), body))
    }

    fn get(&self, path: &str) -> BoxFuture<'_, Result<(u64, ByteStream)>> {
        Box::pin(self.get_impl(path.to_owned()))
    }

    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.delete_impl(path.to_owned()))
    }

    fn local_dir(&self, path: &str) -> BoxFuture<'_, Result<Option<PathBuf>>> {
        Box::pin(self.local_dir_impl(path.to_owned()))
    }
}

/// What a walk found at the end of the path.
enum Found {
    Missing,
    Dir,
    File,
    /// A socket, FIFO or device.
    Special,
}

/// Removes, on drop, the temporary file and the directories an unfinished upload created
/// (directories only while still empty, so concurrent uploads into them are unaffected).
#[derive(Default)]
struct Cleanup {
    temp: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.temp = None;
        self.dirs.clear();
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Synchronous on purpose: this may run while the future is being dropped, and unlinking
        // a file or an empty directory is quick.
        if let Some(temp) = self.temp.take()
            && let Err(e) = std::fs::remove_file(&temp)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %temp.display(), error = %e, "could not remove a failed upload");
        }
        for dir in self.dirs.drain(..).rev() {
            if std::fs::remove_dir(&dir).is_err() {
                break; // not empty (another upload uses it) or gone; so are its parents
            }
        }
    }
}

/// Makes a rename into `dir` durable; best effort (the upload is already visible).
async fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    {
        let result = match fs::File::open(dir).await {
            Ok(handle) => handle.sync_all().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "could not fsync an artifact directory");
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `("a/b", "c")` for `"a/b/c"`, `("", "c")` for `"c"`, `None` for the root.
fn split_last(rel: &str) -> Option<(&str, &str)> {
    if rel.is_empty() {
        return None;
    }
    Some(rel.rsplit_once('/').unwrap_or(("", rel)))
}

fn symlink_error(path: &str) -> Error {
    invalid(
        path,
        "resolves through a symbolic link, which artifact paths may not",
    )
}

fn not_found(path: &str) -> Error {
    Error::not_found(format!("no such artifact: '{}'", path.escape_debug()))
}

/// An I/O failure; the message names the artifact path, never the file system location.
fn io_error(action: &str, path: &str, e: io::Error) -> Error {
    let path = path.escape_debug();
    match e.kind() {
        ErrorKind::InvalidFilename | ErrorKind::NotADirectory => {
            Error::invalid(format!("invalid artifact path '{path}': {e}"))
        }
        _ => Error::internal(format!("could not {action} artifact '{path}': {e}")),
    }
}
