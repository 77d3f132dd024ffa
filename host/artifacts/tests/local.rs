//! The local artifact repository end to end, on real directories.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use wasmflow_artifacts::{
    ArtifactRepository, ByteStream, FileInfo, LocalArtifactRepository, TEMP_PREFIX,
    sanitize_relative_path,
};
use wasmflow_core::ErrorCode;

/// A repository at `<tempdir>/root`, with a secret next to the root that must stay untouched.
struct Fixture {
    outer: tempfile::TempDir,
    repo: LocalArtifactRepository,
}

const SECRET: &[u8] = b"top secret";

impl Fixture {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret.txt"), SECRET).unwrap();
        let repo = LocalArtifactRepository::new(outer.path().join("root")).unwrap();
        Self { outer, repo }
    }

    fn outer(&self) -> &Path {
        self.outer.path()
    }

    fn root(&self) -> &Path {
        self.repo.root()
    }

    /// Everything under the outer directory except the root's content: only the secret, intact.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = std::fs::read_dir(self.outer())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["root", "secret.txt"]);
        assert_eq!(
            std::fs::read(self.outer().join("secret.txt")).unwrap(),
            SECRET
        );
    }
}

/// Every entry under `dir` (relative path → file content, `None` for directories, `Some(target)`
/// marked with `->` for symlinks), without following symlinks.
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(
                    format!("{rel} ->"),
                    Some(target.to_str().unwrap().as_bytes().to_vec()),
                );
            } else if kind.is_dir() {
                out.insert(rel, None);
                walk(base, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn body(chunks: &[&[u8]]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

async fn read_all(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn get(repo: &LocalArtifactRepository, path: &str) -> Vec<u8> {
    let (size, stream) = repo.get(path).await.unwrap();
    let data = read_all(stream).await;
    assert_eq!(size, data.len() as u64, "{path}");
    data
}

fn file(path: &str, size: u64) -> FileInfo {
    FileInfo {
        path: path.into(),
        is_dir: false,
        file_size: Some(size),
    }
}

fn dir(path: &str) -> FileInfo {
    FileInfo {
        path: path.into(),
        is_dir: true,
        file_size: None,
    }
}

#[track_caller]
fn assert_code<T>(result: wasmflow_artifacts::Result<T>, code: ErrorCode) -> String {
    match result {
        Ok(_) => panic!("expected {code}, got success"),
        Err(err) => {
            assert_eq!(err.code, code, "{err}");
            err.message
        }
    }
}

#[tokio::test]
async fn round_trip_with_nested_directories() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    assert!(repo.root().is_absolute());
    assert_eq!(repo.list("").await.unwrap(), []);

    repo.put("model/data/weights.bin", body(&[b"wei", b"ghts"]))
        .await
        .unwrap();
    repo.put("model/MLmodel", body(&[b"flavors: {}\n"]))
        .await
        .unwrap();
    repo.put("metrics.json", body(&[b"{}"])).await.unwrap();
    repo.put("empty.txt", body(&[])).await.unwrap();
    // Dot components and duplicate slashes are normalised away.
    repo.put("./model//data/./more.txt", body(&[b"more"]))
        .await
        .unwrap();

    assert_eq!(
        repo.list("").await.unwrap(),
        [file("empty.txt", 0), file("metrics.json", 2), dir("model")]
    );
    // Names relative to the listed directory, as MLflow's proxy answers.
    assert_eq!(
        repo.list("model").await.unwrap(),
        [file("MLmodel", 12), dir("data")]
    );
    assert_eq!(
        repo.list("model/data/").await.unwrap(),
        [file("more.txt", 4), file("weights.bin", 7)]
    );
    assert_eq!(repo.list("./model//data").await.unwrap().len(), 2);
    // Missing directories and files list as empty.
    assert_eq!(repo.list("nope").await.unwrap(), []);
    assert_eq!(repo.list("nope/deeper").await.unwrap(), []);
    assert_eq!(repo.list("metrics.json").await.unwrap(), []);
    assert_eq!(repo.list("metrics.json/x").await.unwrap(), []);

    assert_eq!(get(repo, "model/data/weights.bin").await, b"weights");
    assert_eq!(get(repo, "model/MLmodel").await, b"flavors: {}\n");
    assert_eq!(get(repo, "empty.txt").await, b"");
    assert_eq!(get(repo, "model//data/./more.txt").await, b"more");

    // Overwriting replaces the file.
    repo.put("metrics.json", body(&[b"{\"a\":", b" 1}"]))
        .await
        .unwrap();
    assert_eq!(get(repo, "metrics.json").await, b"{\"a\": 1}");

    // get: missing → not found, directories → invalid.
    assert_code(repo.get("nope").await, ErrorCode::ResourceDoesNotExist);
    assert_code(repo.get("nope/x").await, ErrorCode::ResourceDoesNotExist);
    assert_code(
        repo.get("metrics.json/x").await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_code(repo.get("model").await, ErrorCode::InvalidParameterValue);
    assert_code(repo.get("").await, ErrorCode::InvalidParameterValue);

    // put: onto a directory, under a file, or the root → invalid, nothing changed.
    let before = tree(fx.root());
    assert_code(
        repo.put("model", body(&[b"x"])).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_code(
        repo.put("metrics.json/x", body(&[b"x"])).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_code(
        repo.put("", body(&[b"x"])).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_code(
        repo.put(".", body(&[b"x"])).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_eq!(tree(fx.root()), before);

    // delete: a file, then a tree; missing → not found.
    repo.delete("model/data/more.txt").await.unwrap();
    assert_eq!(
        repo.list("model/data").await.unwrap(),
        [file("weights.bin", 7)]
    );
    repo.delete("model").await.unwrap();
    assert!(!fx.root().join("model").exists());
    assert_code(repo.delete("model").await, ErrorCode::ResourceDoesNotExist);
    assert_code(
        repo.delete("model/MLmodel").await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_code(
        repo.get("model/MLmodel").await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_eq!(
        repo.list("").await.unwrap(),
        [file("empty.txt", 0), file("metrics.json", 8)]
    );

    // The root itself is never deleted.
    for root in ["", ".", "./", "/"] {
        assert_code(repo.delete(root).await, ErrorCode::InvalidParameterValue);
    }
    assert_eq!(repo.list("").await.unwrap().len(), 2);
    fx.assert_outside_untouched();
}

#[test]
fn file_info_serialises_like_mlflow() {
    let json = serde_json::to_string(&[file("a.txt", 3), dir("sub")]).unwrap();
    assert_eq!(
        json,
        r#"[{"path":"a.txt","is_dir":false,"file_size":3},{"path":"sub","is_dir":true}]"#
    );
}

#[test]
fn new_creates_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("a/b/c");
    let repo = LocalArtifactRepository::new(&root).unwrap();
    assert!(root.is_dir());
    assert_eq!(repo.root(), root.canonicalize().unwrap());
    // A file is not a root.
    std::fs::write(outer.path().join("f"), b"").unwrap();
    assert!(LocalArtifactRepository::new(outer.path().join("f")).is_err());
}

#[tokio::test]
async fn big_streamed_upload_and_download() {
    let fx = Fixture::new();
    const SIZE: usize = 20 * 1024 * 1024 + 12_345;
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 + i / 4093) as u8).collect();
    // Uneven chunks, as a network delivers them.
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(65_521)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let count = chunks.len();
    assert!(count > 300);
    fx.repo
        .put("big/blob.bin", stream::iter(chunks).boxed())
        .await
        .unwrap();

    assert_eq!(
        fx.repo.list("big").await.unwrap(),
        [file("blob.bin", SIZE as u64)]
    );
    let (size, mut stream) = fx.repo.get("big/blob.bin").await.unwrap();
    assert_eq!(size, SIZE as u64);
    let mut received = Vec::with_capacity(SIZE);
    let mut pieces = 0;
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
        pieces += 1;
    }
    assert!(pieces > 1, "the download is streamed in pieces");
    assert!(received == data, "the download equals the upload");
}

#[tokio::test]
async fn traversal_is_refused_everywhere() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    repo.put("sub/ok.txt", body(&[b"ok"])).await.unwrap();
    let before = tree(fx.root());

    let outer_abs = fx.outer().join("evil.txt");
    let secret_abs = fx.outer().join("secret.txt");
    let bad: Vec<String> = vec![
        "..".into(),
        "../secret.txt".into(),
        "../evil.txt".into(),
        "../root/sub/ok.txt".into(),
        "sub/../../secret.txt".into(),
        "sub/../ok.txt".into(),
        "/".into(),
        "/etc/passwd".into(),
        outer_abs.to_str().unwrap().into(),
        secret_abs.to_str().unwrap().into(),
        "//server/share/x".into(),
        "C:\\Windows\\evil.txt".into(),
        "C:/Windows/evil.txt".into(),
        "c:evil.txt".into(),
        "\\\\server\\share\\evil.txt".into(),
        "sub\\..\\..\\evil.txt".into(),
        "sub\\ok.txt".into(),
        "evil\0.txt".into(),
        "%2e%2e/secret.txt".into(),
        "%2E%2E/evil.txt".into(),
        "%2e%2e%2fevil.txt".into(),
        "..%2fevil.txt".into(),
        "sub/%2e%2e/%2e%2e/evil.txt".into(),
        "%252e%252e%252fevil.txt".into(),
        "%252e%252e%252fetc".into(),
        "%25252e%25252e%25252fevil.txt".into(),
        "%2fetc%2fpasswd".into(),
        "%5c%5cserver%5cshare".into(),
        "sub%5c..%5c..%5cevil.txt".into(),
        "evil%00.txt".into(),
    ];

    for path in &bad {
        let quoted = format!("invalid artifact path '{}'", path.escape_debug());
        for (op, result) in [
            ("put", repo.put(path, body(&[b"pwned"])).await.map(|_| ())),
            ("get", repo.get(path).await.map(|_| ())),
            ("list", repo.list(path).await.map(|_| ())),
            ("delete", repo.delete(path).await),
        ] {
            let message = assert_code(result, ErrorCode::InvalidParameterValue);
            assert!(message.starts_with(&quoted), "{op} {path:?}: {message}");
        }
        // The server can run the same check itself.
        assert!(sanitize_relative_path(path).is_err(), "{path:?}");
    }

    assert_eq!(tree(fx.root()), before, "nothing changed under the root");
    fx.assert_outside_untouched();
    assert!(!Path::new("/etc/evil.txt").exists());
}

/// A root with symlinks: to a directory outside, to a file outside, and to a directory inside.
#[cfg(unix)]
fn symlink_fixture() -> Fixture {
    let fx = Fixture::new();
    let root = fx.root().to_path_buf();
    std::fs::create_dir_all(root.join("real/inner")).unwrap();
    std::fs::write(root.join("real/inner/file.txt"), b"inside").unwrap();
    symlink(fx.outer(), &root.join("out_dir"));
    symlink(&fx.outer().join("secret.txt"), &root.join("out_file"));
    symlink(&root.join("real"), &root.join("in_dir"));
    symlink(Path::new("../.."), &root.join("real/up"));
    symlink(Path::new("/nonexistent/target"), &root.join("dangling"));
    fx
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_are_refused_for_every_operation() {
    let fx = symlink_fixture();
    let repo = &fx.repo;
    let before = tree(fx.root());

    let reads = [
        "out_dir/secret.txt",
        "out_dir",
        "out_file",
        "in_dir/inner/file.txt",
        "in_dir",
        "real/up/secret.txt",
        "real/up",
        "dangling",
        "dangling/x",
    ];
    for path in reads {
        let quoted = format!("invalid artifact path '{path}'");
        for (op, result) in [
            ("get", repo.get(path).await.map(|_| ())),
            ("list", repo.list(path).await.map(|_| ())),
            ("delete", repo.delete(path).await),
        ] {
            let message = assert_code(result, ErrorCode::InvalidParameterValue);
            assert!(message.starts_with(&quoted), "{op} {path}: {message}");
            assert!(message.contains("symbolic link"), "{op} {path}: {message}");
        }
    }
    let writes = [
        "out_dir/evil.txt",
        "out_dir/new/evil.txt",
        "out_dir/secret.txt",
        "out_file",
        "in_dir/evil.txt",
        "real/up/evil.txt",
        "real/up/root/evil.txt",
        "dangling",
        "dangling/evil.txt",
    ];
    for path in writes {
        let message = assert_code(
            repo.put(path, body(&[b"pwned"])).await,
            ErrorCode::InvalidParameterValue,
        );
        assert!(message.contains("symbolic link"), "put {path}: {message}");
    }

    assert_eq!(tree(fx.root()), before, "nothing changed under the root");
    fx.assert_outside_untouched();
    assert!(!Path::new("/nonexistent/target").exists());

    // Listings leave symlinks out; real entries still work.
    assert_eq!(repo.list("").await.unwrap(), [dir("real")]);
    assert_eq!(repo.list("real").await.unwrap(), [dir("inner")]);
    assert_eq!(get(repo, "real/inner/file.txt").await, b"inside");

    // Deleting a real directory that contains symlinks removes the links, not their targets.
    repo.delete("real").await.unwrap();
    assert!(!fx.root().join("real").exists());
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn failed_upload_leaves_nothing_behind() {
    let fx = Fixture::new();
    let repo = &fx.repo;

    let failing = || {
        stream::iter(vec![
            Ok(Bytes::from_static(b"first chunk")),
            Ok(Bytes::from(vec![7u8; 1024 * 1024])),
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            )),
            Ok(Bytes::from_static(b"never written")),
        ])
        .boxed()
    };

    // Into new directories: neither the file, its temporary, nor the directories remain.
    let message = assert_code(
        repo.put("new/nested/dir/file.bin", failing()).await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("client went away"), "{message}");
    assert_eq!(tree(fx.root()), BTreeMap::new());

    // Into an existing directory, over an existing file: the old content stays.
    repo.put("keep/file.bin", body(&[b"old"])).await.unwrap();
    let before = tree(fx.root());
    assert_code(
        repo.put("keep/file.bin", failing()).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_code(
        repo.put("keep/other.bin", failing()).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_code(
        repo.put("keep/deeper/x.bin", failing()).await,
        ErrorCode::InvalidParameterValue,
    );
    assert_eq!(tree(fx.root()), before);
    assert_eq!(get(repo, "keep/file.bin").await, b"old");
    fx.assert_outside_untouched();
}

#[tokio::test]
async fn dropped_upload_leaves_nothing_behind() {
    let fx = Fixture::new();
    // One chunk, then the client stalls; the server gives up and drops the upload future.
    let stalled = stream::iter(vec![Ok(Bytes::from(vec![1u8; 300_000]))])
        .chain(stream::pending())
        .boxed();
    let upload = fx.repo.put("a/b/stalled.bin", stalled);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), upload)
            .await
            .is_err()
    );
    assert_eq!(tree(fx.root()), BTreeMap::new());
}

#[tokio::test]
async fn uploads_in_progress_are_hidden_and_reserved() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    repo.put("d/visible.txt", body(&[b"v"])).await.unwrap();
    std::fs::write(fx.root().join(format!("d/{TEMP_PREFIX}1234")), b"partial").unwrap();
    assert_eq!(repo.list("d").await.unwrap(), [file("visible.txt", 1)]);

    let reserved = format!("d/{TEMP_PREFIX}1234");
    let message = assert_code(
        repo.put(&reserved, body(&[b"x"])).await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("reserved"), "{message}");
    assert_eq!(
        std::fs::read(fx.root().join(&reserved)).unwrap(),
        b"partial"
    );
}

#[tokio::test]
async fn an_open_download_survives_an_overwrite() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    let old = vec![b'o'; 200_000];
    repo.put("f.bin", body(&[&old])).await.unwrap();
    let (size, stream) = repo.get("f.bin").await.unwrap();
    repo.put("f.bin", body(&[b"new"])).await.unwrap();
    assert_eq!(size, old.len() as u64);
    assert_eq!(read_all(stream).await, old);
    assert_eq!(get(repo, "f.bin").await, b"new");
}

#[tokio::test]
async fn percent_signs_in_names_are_kept_literally() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    repo.put("100%/a%20b.txt", body(&[b"x"])).await.unwrap();
    assert!(fx.root().join("100%/a%20b.txt").is_file());
    assert_eq!(repo.list("100%").await.unwrap(), [file("a%20b.txt", 1)]);
    assert_eq!(get(repo, "100%/a%20b.txt").await, b"x");
}

#[tokio::test]
async fn stale_upload_temporaries_are_removed_and_fresh_ones_kept() {
    let fx = Fixture::new();
    let repo = &fx.repo;
    repo.put("a/b/kept.txt", body(&[b"k"])).await.unwrap();
    let stale = [
        format!("{TEMP_PREFIX}old1"),
        format!("a/b/{TEMP_PREFIX}old2"),
    ];
    for path in &stale {
        std::fs::write(fx.root().join(path), b"partial").unwrap();
    }
    std::fs::write(fx.root().join("a/not-an-upload.txt"), b"n").unwrap();
    // A symlink to a directory outside: not followed, so the secret's neighbours stay.
    std::fs::write(fx.outer().join(format!("{TEMP_PREFIX}outside")), b"o").unwrap();
    std::os::unix::fs::symlink(fx.outer(), fx.root().join("link")).unwrap();
    let cutoff = std::time::SystemTime::now() + Duration::from_secs(1);

    // Started after the cutoff: an upload in progress, which stays.
    assert_eq!(
        repo.remove_stale_uploads(std::time::SystemTime::UNIX_EPOCH)
            .unwrap(),
        0
    );
    assert_eq!(repo.remove_stale_uploads(cutoff).unwrap(), 2);
    for path in &stale {
        assert!(!fx.root().join(path).exists(), "{path}");
    }
    assert!(fx.root().join("a/b/kept.txt").exists());
    assert!(fx.root().join("a/not-an-upload.txt").exists());
    assert!(fx.outer().join(format!("{TEMP_PREFIX}outside")).exists());
}
