//! A model URI made into a local directory for `models predict` and `models serve`, as MLflow
//! downloads a model before loading it: `models:/name/3`, `models:/name@alias`,
//! `models:/name/Production`, `models:/name/latest`, `models:/<model id>`, `runs:/<run id>/path`,
//! `mlflow-artifacts:/...`, `file://...` or a plain path.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use wasmflow_store::StoreConfig;
use wasmflow_store::{RegistryStore as _, TrackingStore as _};

use super::remote::{Remote, query};

/// Where the registry is.
pub enum Backend {
    Remote(Remote),
    Local(wasmflow_store::SqliteStore),
}

impl Backend {
    /// A server's REST API when MLFLOW_TRACKING_URI is an http:// URL and no store is given,
    /// else the local store.
    pub fn open(explicit: Option<&str>, tracking_uri: &str) -> anyhow::Result<Self> {
        if explicit.is_none() {
            if tracking_uri.starts_with("http://") {
                return Ok(Self::Remote(Remote::new(tracking_uri)?));
            }
            if tracking_uri.starts_with("https://") {
                bail!(
                    "https tracking URIs are not supported by `wasmflow models` yet: '{tracking_uri}'"
                );
            }
        }
        let uri = match explicit {
            Some(uri) => uri,
            None if tracking_uri.starts_with("sqlite:") => tracking_uri,
            None => "sqlite:///mlflow.db",
        };
        let store = wasmflow_store::open(
            uri,
            StoreConfig {
                default_artifact_root: "./mlruns".into(),
            },
        )
        .with_context(|| format!("cannot open the backend store '{uri}'"))?;
        Ok(Self::Local(store))
    }
}

/// A model's files on this machine.
pub struct LocalModel {
    pub dir: PathBuf,
    /// The registered model and version the URI named, if it named one.
    pub name: Option<String>,
    pub version: Option<String>,
    /// Files downloaded from a server live as long as the model is used.
    _downloaded: Option<tempfile::TempDir>,
}

/// Resolves `uri` against the registry and tracking store and brings the files here if they
/// are on a server. `artifacts_destination` is where `mlflow-artifacts:` URIs point when the
/// store is local.
pub fn fetch(
    uri: &str,
    open_backend: impl FnOnce() -> anyhow::Result<Backend>,
    artifacts_destination: &Path,
) -> anyhow::Result<LocalModel> {
    // A directory needs no store.
    if !uri.contains(':') || uri.starts_with("file://") {
        return Ok(LocalModel {
            dir: on_disk(uri)?,
            name: None,
            version: None,
            _downloaded: None,
        });
    }
    let backend = &open_backend()?;
    let (artifact_uri, name, version) = resolve(uri, backend)?;
    let local = |dir: PathBuf| LocalModel {
        dir,
        name: name.clone(),
        version: version.clone(),
        _downloaded: None,
    };
    if let Some(path) = wasmflow_artifacts::proxied_path_of(&artifact_uri) {
        return match backend {
            Backend::Remote(remote) => {
                let temp = tempfile::Builder::new()
                    .prefix("wasmflow-model-")
                    .tempdir()
                    .context("cannot create a directory for the model's files")?;
                let files = download_tree(remote, &path, temp.path())
                    .with_context(|| format!("cannot download the model at '{artifact_uri}'"))?;
                if files == 0 {
                    bail!("the server has no files at '{artifact_uri}'");
                }
                Ok(LocalModel {
                    dir: temp.path().to_path_buf(),
                    name,
                    version,
                    _downloaded: Some(temp),
                })
            }
            Backend::Local(_) => Ok(local(artifacts_destination.join(relative(&path)?))),
        };
    }
    Ok(local(on_disk(&artifact_uri)?))
}

/// The directory a `file://` URI or a plain path names.
fn on_disk(uri: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if uri.contains("://") {
        bail!("cannot read a model stored at '{uri}'");
    }
    Ok(PathBuf::from(uri))
}

/// (artifact URI, registered model name, version) for any URI the CLI accepts.
fn resolve(
    uri: &str,
    backend: &Backend,
) -> anyhow::Result<(String, Option<String>, Option<String>)> {
    if uri.starts_with("models:") {
        return match backend {
            Backend::Remote(remote) => {
                let resolved = remote.request(
                    hyper::Method::GET,
                    &format!(
                        "/api/2.0/wasmflow/models/resolve?{}",
                        query(&[("uri", uri)])
                    ),
                    "application/json",
                    Default::default(),
                )?;
                let field = |key: &str| resolved[key].as_str().map(str::to_string);
                let artifact_uri = field("artifact_uri")
                    .context("the server's answer to models/resolve has no artifact_uri")?;
                Ok((artifact_uri, field("name"), field("version")))
            }
            Backend::Local(store) => {
                let resolved = store.resolve_model_uri(uri)?;
                Ok((resolved.artifact_uri, resolved.name, resolved.version))
            }
        };
    }
    if let Some(rest) = uri.strip_prefix("runs:/") {
        let rest = rest.trim_start_matches('/');
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        if run_id.is_empty() {
            bail!("not a proper runs:/ URI: '{uri}'; it must be runs:/<run_id>/<path>");
        }
        let root = match backend {
            Backend::Remote(remote) => {
                let run = remote.call(
                    hyper::Method::GET,
                    &format!("runs/get?{}", query(&[("run_id", run_id)])),
                    None,
                )?;
                run["run"]["info"]["artifact_uri"]
                    .as_str()
                    .with_context(|| format!("run '{run_id}' has no artifact_uri"))?
                    .to_string()
            }
            Backend::Local(store) => store.get_run(run_id)?.info.artifact_uri,
        };
        let path = path.trim_matches('/');
        let uri = if path.is_empty() {
            root
        } else {
            format!("{}/{path}", root.trim_end_matches('/'))
        };
        return Ok((uri, None, None));
    }
    Ok((uri.to_string(), None, None))
}

/// Copies the proxied directory `path` into `dest`, file by file; returns how many files.
fn download_tree(remote: &Remote, path: &str, dest: &Path) -> anyhow::Result<usize> {
    let listing = remote.request(
        hyper::Method::GET,
        &format!(
            "/api/2.0/mlflow-artifacts/artifacts?{}",
            query(&[("path", path)])
        ),
        "application/json",
        Default::default(),
    )?;
    let mut count = 0;
    for file in listing["files"].as_array().map_or(&[][..], Vec::as_slice) {
        let name = file["path"].as_str().unwrap_or_default();
        // Names come from the server: one plain component each, never a way out of `dest`.
        let name = relative(name)?;
        let child = format!("{}/{}", path.trim_end_matches('/'), name.display());
        let target = dest.join(&name);
        if file["is_dir"].as_bool() == Some(true) {
            std::fs::create_dir_all(&target)?;
            count += download_tree(remote, &child, &target)?;
        } else {
            let url = format!(
                "/api/2.0/mlflow-artifacts/artifacts/{}",
                child
                    .split('/')
                    .map(|part| percent_encoding::utf8_percent_encode(
                        part,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                    .to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let bytes = remote.download(&url)?;
            std::fs::write(&target, &bytes)
                .with_context(|| format!("cannot write '{}'", target.display()))?;
            count += 1;
        }
    }
    Ok(count)
}

/// A relative path with only plain components.
fn relative(path: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(path.trim_start_matches('/'));
    if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_)))
    {
        bail!("refusing the artifact path '{}'", path.display());
    }
    Ok(path.to_path_buf())
}
