//! wasmflow's artifact repositories: what serves MLflow's artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/<path>`, `mlflow server --serve-artifacts`).
//!
//! - [`ArtifactRepository`]: list, streamed upload, streamed download and delete by a path relative
//!   to the repository's root.
//! - [`sanitize_relative_path`]: the path validation every operation starts with (also for the
//!   server's own use).
//! - [`LocalArtifactRepository`]: the repository on the local file system.
//! - [`ObjectStoreArtifactRepository`]: the repository in S3, Google Cloud Storage or Azure
//!   Blob Storage; [`parse_location`] and [`open_repository`] say which store a URI names and
//!   refuse the schemes none reads.
//! - [`ModelCache`]: a model's files downloaded from a remote repository into a local directory
//!   for the plugins, which read files.
//!
//! No path a client sends can reach outside the root: `..`, absolute and Windows paths,
//! backslashes, NUL and their percent-encoded (once or more) forms are refused by
//! [`sanitize_relative_path`], and the local repository refuses any path through a symlink.

mod cache;
mod local;
mod location;
mod object;
mod path;

pub use cache::{ModelCache, download_tree};
pub use futures_util::future::BoxFuture;
pub use local::{LocalArtifactRepository, TEMP_PREFIX};
pub use location::{
    Cloud, Location, ObjectLocation, SUPPORTED_SCHEMES, open_object, open_repository,
    parse_location,
};
pub use object::{MULTIPART_PART_SIZE, ObjectStoreArtifactRepository};
pub use path::{PROXY_SCHEME, local_path_of, proxied_path_of, sanitize_relative_path};
pub use wasmflow_core::{Error, Result};

/// One entry of a listing, as the artifact proxy puts it on the wire (MLflow's `FileInfo`
/// message in `ListArtifacts.Response.files`): `{"path": "model.pkl", "is_dir": false,
/// "file_size": 1234}`, `file_size` left out for directories.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    /// The entry's name: its path relative to the listed directory (see [`ArtifactRepository::list`]).
    pub path: String,
    pub is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// One file of a tree (see [`ArtifactRepository::tree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The file's path relative to the listed directory, `/`-separated.
    pub path: String,
    pub size: u64,
    /// What changes when the file's content does, when the store says (an object's ETag).
    pub version: Option<String>,
}

/// A streamed body: an upload's request body, or a download.
pub type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// A store of artifacts addressed by `/`-separated paths relative to its root.
///
/// Paths are as the HTTP layer decoded them (once); every method validates its path with
/// [`sanitize_relative_path`] and answers a refused one with [`Error::invalid`]
/// (`INVALID_PARAMETER_VALUE`).
pub trait ArtifactRepository: Send + Sync + 'static {
    /// Lists the direct children of the directory `path` (`""` = the root), sorted by path.
    ///
    /// Each [`FileInfo::path`] is the child's **name**, i.e. relative to the requested directory,
    /// not to the root: exactly what MLflow's proxy answers `GET
    /// /api/2.0/mlflow-artifacts/artifacts?path=<path>` with (`_list_artifacts_mlflow_artifacts`
    /// in `mlflow/server/handlers.py` replaces each path by its `posixpath.basename`), and what
    /// its client expects (`HttpArtifactRepository.list_artifacts` joins the requested path
    /// with each returned `path`). The results can be serialised as the response's `files`
    /// as they are.
    ///
    /// A missing `path`, or one naming a file, lists as empty (like MLflow's
    /// `LocalArtifactRepository.list_artifacts`). Uploads in progress are not listed.
    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<FileInfo>>>;

    /// Stores `body` as the file `path`, creating missing parent directories and replacing an
    /// existing file.
    ///
    /// The body is written to a temporary file in the target's directory, flushed to disk and
    /// renamed into place: readers never see half a file, and a failed upload (the stream yields
    /// an error, a write fails, or the future is dropped) leaves nothing behind, neither the
    /// temporary file nor the directories it created. A body error is answered with
    /// [`Error::invalid`]. The root itself, an existing directory and names starting with
    /// [`TEMP_PREFIX`] are refused. (In an object store the object appears whole when the upload
    /// completes, as S3 makes it; a failed one is aborted.)
    fn put(&self, path: &str, body: ByteStream) -> BoxFuture<'_, Result<()>>;

    /// Opens the file `path` for a streamed download: its size and its content.
    ///
    /// A missing file is [`Error::not_found`] (`RESOURCE_DOES_NOT_EXIST`); a directory (the root
    /// included) is [`Error::invalid`].
    fn get(&self, path: &str) -> BoxFuture<'_, Result<(u64, ByteStream)>>;

    /// Deletes the file or the directory tree `path`.
    ///
    /// A missing path is [`Error::not_found`]; the root (`""`, `"."`) is refused with
    /// [`Error::invalid`].
    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>>;

    /// The directory `path` on this machine's file system, when the repository keeps its files
    /// there (plugins read a model's files from a directory). `None` means the files must be
    /// downloaded first. A missing path is [`Error::not_found`]; a file is [`Error::invalid`].
    /// Every file under the directory `path`, at any depth, sorted by path (empty for a missing
    /// directory). The default walks [`ArtifactRepository::list`].
    fn tree(&self, path: &str) -> BoxFuture<'_, Result<Vec<TreeEntry>>> {
        let path = path.to_string();
        Box::pin(async move {
            let mut files = Vec::new();
            let mut dirs = vec![String::new()];
            while let Some(dir) = dirs.pop() {
                let full = match (path.is_empty(), dir.is_empty()) {
                    (_, true) => path.clone(),
                    (true, false) => dir.clone(),
                    (false, false) => format!("{path}/{dir}"),
                };
                for entry in self.list(&full).await? {
                    let rel = if dir.is_empty() {
                        entry.path
                    } else {
                        format!("{dir}/{}", entry.path)
                    };
                    if entry.is_dir {
                        dirs.push(rel);
                    } else {
                        files.push(TreeEntry {
                            path: rel,
                            size: entry.file_size.unwrap_or_default(),
                            version: None,
                        });
                    }
                }
            }
            files.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(files)
        })
    }

    fn local_dir(&self, _path: &str) -> BoxFuture<'_, Result<Option<std::path::PathBuf>>> {
        Box::pin(async { Ok(None) })
    }
}
