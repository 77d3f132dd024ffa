//! wasmflow's artifact repositories: what serves MLflow's artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/<path>`, `mlflow server --serve-artifacts`).
//!
//! - [`ArtifactRepository`]: list, streamed upload, streamed download and delete by a path relative
//!   to the repository's root.
//! - [`sanitize_relative_path`]: the path validation every operation starts with (also for the
//!   server's own use).
//! - [`LocalArtifactRepository`]: the repository on the local file system.
//!
//! No path a client sends can reach outside the root: `..`, absolute and Windows paths,
//! backslashes, NUL and their percent-encoded (once or more) forms are refused by
//! [`sanitize_relative_path`], and the local repository refuses any path through a symlink.

mod local;
mod path;

pub use futures_util::future::BoxFuture;
pub use local::{LocalArtifactRepository, TEMP_PREFIX};
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
    /// [`TEMP_PREFIX`] are refused.
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
    fn local_dir(&self, _path: &str) -> BoxFuture<'_, Result<Option<std::path::PathBuf>>> {
        Box::pin(async { Ok(None) })
    }
}
