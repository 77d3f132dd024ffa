//! The artifact repository in an object store (S3 and S3-compatible servers, Google Cloud
//! Storage, Azure Blob Storage), through the `object_store` crate: MLflow's
//! `S3ArtifactRepository`, `GCSArtifactRepository` and `AzureBlobArtifactRepository`.
//!
//! Directories do not exist in an object store: a directory is a key prefix ending at a `/`,
//! listed as MLflow lists it (`Delimiter='/'`: common prefixes are directories, objects files).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use wasmflow_core::{Error, Result};

use crate::location::one_line;
use crate::path::{invalid, sanitize_relative_path};
use crate::{ArtifactRepository, ByteStream, FileInfo, TreeEntry};

/// Uploads larger than this go up as a multipart upload in parts of this size (S3's smallest
/// part is 5 MiB); smaller ones in one request. At most [`UPLOAD_CONCURRENCY`] parts of one
/// upload are in memory at once.
pub const MULTIPART_PART_SIZE: usize = 5 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 4;

/// Artifacts under a key prefix of an object store's bucket.
#[derive(Debug, Clone)]
pub struct ObjectStoreArtifactRepository {
    store: Arc<dyn ObjectStore>,
    /// The key prefix of the root, without leading or trailing `/`.
    prefix: String,
    /// The root's URI, for messages.
    uri: String,
}

impl ObjectStoreArtifactRepository {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, uri: String) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            uri,
        }
    }

    /// The key of the sanitised relative path `rel`.
    fn key(&self, display: &str, rel: &str) -> Result<Path> {
        let key = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        Path::parse(&key).map_err(|e| invalid(display, &one_line(&e)))
    }

    fn store_error(&self, what: &str, path: &str, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => {
                Error::not_found(format!("no artifact at '{}'", path.escape_debug()))
            }
            e => Error::internal(format!(
                "cannot {what} '{}' in the artifact store '{}': {}",
                path.escape_debug(),
                self.uri,
                one_line(&e)
            )),
        }
    }

    /// Whether any object lies under the directory `key`.
    async fn has_children(&self, key: &Path) -> Result<bool> {
        let mut objects = self.store.list(Some(key));
        match objects.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.store_error("list", key.as_ref(), e)),
        }
    }

    async fn list_impl(&self, path: String) -> Result<Vec<FileInfo>> {
        let rel = sanitize_relative_path(&path)?;
        let key = self.key(&path, &rel)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.store_error("list", &path, e))?;
        let name_of = |p: &Path| p.filename().map(str::to_string);
        let mut files: Vec<FileInfo> = listed
            .common_prefixes
            .iter()
            .filter_map(name_of)
            .map(|name| FileInfo {
                path: name,
                is_dir: true,
                file_size: None,
            })
            .collect();
        for object in &listed.objects {
            // A "directory marker" object (some tools write `dir/` as an empty object) is the
            // listed directory itself, not a child.
            if object.location == key {
                continue;
            }
            if let Some(name) = name_of(&object.location) {
                files.push(FileInfo {
                    path: name,
                    is_dir: false,
                    file_size: Some(object.size),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn put_impl(&self, path: String, mut body: ByteStream) -> Result<()> {
        let rel = sanitize_relative_path(&path)?;
        if rel.is_empty() {
            return Err(invalid(&path, "an upload must name a file, not the root"));
        }
        let key = self.key(&path, &rel)?;
        // Small files are sent in one PUT when the body ends; larger ones become a multipart
        // upload as soon as a part's worth has arrived, so memory stays bounded whatever the size.
        let mut writer = BufWriter::with_capacity(self.store.clone(), key, MULTIPART_PART_SIZE)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        while let Some(chunk) = body.next().await {
            let failed = match chunk {
                Ok(bytes) => match writer.put(bytes).await {
                    Ok(()) => continue,
                    Err(e) => self.store_error("upload", &path, e),
                },
                Err(e) => invalid(&path, &format!("the upload failed: {e}")),
            };
            // Abandons a multipart upload begun; nothing was written otherwise.
            if let Err(e) = writer.abort().await {
                tracing::warn!(path = %rel, "cannot abort an unfinished multipart upload: {e}");
            }
            return Err(failed);
        }
        writer.shutdown().await.map_err(|e| {
            Error::internal(format!(
                "cannot upload '{}' to the artifact store '{}': {e}",
                path.escape_debug(),
                self.uri
            ))
        })
    }

    async fn get_impl(&self, path: String) -> Result<(u64, ByteStream)> {
        let rel = sanitize_relative_path(&path)?;
        if rel.is_empty() {
            return Err(invalid(&path, "it is a directory"));
        }
        let key = self.key(&path, &rel)?;
        match self.store.get(&key).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(std::io::Error::other);
                Ok((size, Box::pin(stream)))
            }
            Err(e @ object_store::Error::NotFound { .. }) => {
                if self.has_children(&key).await? {
                    Err(invalid(&path, "it is a directory"))
                } else {
                    Err(self.store_error("download", &path, e))
                }
            }
            Err(e) => Err(self.store_error("download", &path, e)),
        }
    }

    async fn delete_impl(&self, path: String) -> Result<()> {
        let rel = sanitize_relative_path(&path)?;
        if rel.is_empty() {
            return Err(invalid(&path, "the artifact root cannot be deleted"));
        }
        let key = self.key(&path, &rel)?;
        // A file, or else every object under the directory.
        match self.store.head(&key).await {
            Ok(_) => {
                return self
                    .store
                    .delete(&key)
                    .await
                    .map_err(|e| self.store_error("delete", &path, e));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.store_error("delete", &path, e)),
        }
        let objects = self
            .store
            .list(Some(&key))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<Path> = self
            .store
            .delete_stream(objects)
            .try_collect()
            .await
            .map_err(|e| self.store_error("delete", &path, e))?;
        if deleted.is_empty() {
            return Err(Error::not_found(format!(
                "no artifact at '{}'",
                path.escape_debug()
            )));
        }
        Ok(())
    }

    async fn tree_impl(&self, path: String) -> Result<Vec<TreeEntry>> {
        let rel = sanitize_relative_path(&path)?;
        let key = self.key(&path, &rel)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let objects: Vec<_> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| self.store_error("list", &path, e))?;
        let base = key.as_ref();
        let mut entries: Vec<TreeEntry> = objects
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let inside = if base.is_empty() {
                    full
                } else {
                    full.strip_prefix(base)?.strip_prefix('/')?
                };
                (!inside.is_empty()).then(|| TreeEntry {
                    path: inside.to_string(),
                    size: meta.size,
                    version: meta
                        .e_tag
                        .clone()
                        .or_else(|| Some(meta.last_modified.to_rfc3339())),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }
}

impl ArtifactRepository for ObjectStoreArtifactRepository {
    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<FileInfo>>> {
        Box::pin(self.list_impl(path.to_string()))
    }

    fn put(&self, path: &str, body: ByteStream) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.put_impl(path.to_string(), body))
    }

    fn get(&self, path: &str) -> BoxFuture<'_, Result<(u64, ByteStream)>> {
        Box::pin(self.get_impl(path.to_string()))
    }

    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.delete_impl(path.to_string()))
    }

    fn tree(&self, path: &str) -> BoxFuture<'_, Result<Vec<TreeEntry>>> {
        Box::pin(self.tree_impl(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use object_store::memory::InMemory;

    use super::*;

    fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from(c))),
        ))
    }

    async fn read(repo: &ObjectStoreArtifactRepository, path: &str) -> Vec<u8> {
        let (size, stream) = repo.get(path).await.unwrap();
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        let bytes = chunks.concat();
        assert_eq!(size, bytes.len() as u64);
        bytes
    }

    fn repo() -> (Arc<InMemory>, ObjectStoreArtifactRepository) {
        let store = Arc::new(InMemory::new());
        let repo = ObjectStoreArtifactRepository::new(store.clone(), "/root/", "mem://root".into());
        (store, repo)
    }

    #[tokio::test]
    async fn files_go_under_the_prefix_and_list_as_direct_children() {
        let (store, repo) = repo();
        repo.put("a.txt", body(vec![b"al".to_vec(), b"pha".to_vec()]))
            .await
            .unwrap();
        repo.put("dir/sub/b.txt", body(vec![b"b".to_vec()]))
            .await
            .unwrap();
        repo.put("dir/c.txt", body(vec![])).await.unwrap();
        let keys: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, ["root/a.txt", "root/dir/c.txt", "root/dir/sub/b.txt"]);
        let entry = |path: &str, size: Option<u64>| FileInfo {
            path: path.into(),
            is_dir: size.is_none(),
            file_size: size,
        };
        assert_eq!(
            repo.list("").await.unwrap(),
            [entry("a.txt", Some(5)), entry("dir", None)]
        );
        assert_eq!(
            repo.list("dir").await.unwrap(),
            [entry("c.txt", Some(0)), entry("sub", None)]
        );
        assert!(repo.list("a.txt").await.unwrap().is_empty());
        assert!(repo.list("missing").await.unwrap().is_empty());
        assert_eq!(read(&repo, "a.txt").await, b"alpha");
        let tree = repo.tree("dir").await.unwrap();
        let paths: Vec<_> = tree.iter().map(|e| (e.path.as_str(), e.size)).collect();
        assert_eq!(paths, [("c.txt", 0), ("sub/b.txt", 1)]);
        assert!(tree.iter().all(|e| e.version.is_some()));
    }

    #[tokio::test]
    async fn a_large_upload_is_multipart_and_reads_back_whole() {
        let (_, repo) = repo();
        let data: Vec<u8> = (0..MULTIPART_PART_SIZE + 1234)
            .map(|i| (i % 251) as u8)
            .collect();
        let chunks = data.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
        repo.put("big.bin", body(chunks)).await.unwrap();
        assert_eq!(read(&repo, "big.bin").await, data);
    }

    #[tokio::test]
    async fn a_failed_upload_leaves_nothing() {
        let (store, repo) = repo();
        let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from(vec![0u8; MULTIPART_PART_SIZE + 1])),
            Err(std::io::Error::other("connection reset")),
        ]));
        let e = repo.put("x.bin", failing).await.unwrap_err();
        assert!(e.message.contains("connection reset"), "{}", e.message);
        assert_eq!(store.list(None).count().await, 0);
    }

    #[tokio::test]
    async fn missing_directories_and_unsafe_paths_are_refused() {
        let (_, repo) = repo();
        repo.put("dir/f", body(vec![b"f".to_vec()])).await.unwrap();
        let code = |e: Error| e.code;
        use wasmflow_core::ErrorCode::{InvalidParameterValue, ResourceDoesNotExist};
        assert_eq!(
            code(repo.get("nope").await.err().unwrap()),
            ResourceDoesNotExist
        );
        assert_eq!(
            code(repo.get("dir").await.err().unwrap()),
            InvalidParameterValue
        );
        assert_eq!(
            code(repo.get("").await.err().unwrap()),
            InvalidParameterValue
        );
        for bad in ["../x", "%2e%2e/x", "/etc/passwd", "a\\b"] {
            assert_eq!(
                code(repo.get(bad).await.err().unwrap()),
                InvalidParameterValue,
                "{bad}"
            );
            assert_eq!(
                code(repo.put(bad, body(vec![])).await.unwrap_err()),
                InvalidParameterValue,
                "{bad}"
            );
            assert_eq!(
                code(repo.list(bad).await.unwrap_err()),
                InvalidParameterValue,
                "{bad}"
            );
        }
        assert_eq!(
            code(repo.delete("").await.unwrap_err()),
            InvalidParameterValue
        );
        assert_eq!(
            code(repo.delete("nope").await.unwrap_err()),
            ResourceDoesNotExist
        );
    }

    #[tokio::test]
    async fn delete_removes_a_file_or_a_whole_prefix() {
        let (_, repo) = repo();
        for path in ["d/a", "d/e/b", "dd", "keep"] {
            repo.put(path, body(vec![b"x".to_vec()])).await.unwrap();
        }
        repo.delete("dd").await.unwrap();
        repo.delete("d").await.unwrap();
        let names: Vec<_> = repo
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(names, ["keep"]);
    }
}
