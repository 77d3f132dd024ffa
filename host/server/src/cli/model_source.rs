//! A model URI made into a local directory for `models predict` and `models serve`, as MLflow
//! downloads a model before loading it: `models:/name/3`, `models:/name@alias`,
//! `models:/name/Production`, `models:/name/latest`, `models:/<model id>`, `runs:/<run id>/path`,
//! `mlflow-artifacts:/...`, `file://...` or a plain path.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use wasmflow_artifacts::{Location, ObjectLocation};
use wasmflow_store::StoreConfig;

use super::remote::{Remote, query};

/// Where the registry is.
pub enum Backend {
    Remote(Remote),
    Local(std::sync::Arc<dyn wasmflow_store::Store>),
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
    artifacts_destination: &str,
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
            Backend::Local(_) => {
                match wasmflow_artifacts::parse_location(artifacts_destination)
                    .map_err(|e| anyhow::anyhow!("invalid --artifacts-destination: {e}"))?
                {
                    Location::Local(dir) => Ok(local(dir.join(relative(&path)?))),
                    Location::Object(destination) => {
                        let (dir, temp) =
                            download_object(&destination, &path).with_context(|| {
                                format!("cannot download the model at '{artifact_uri}'")
                            })?;
                        Ok(LocalModel {
                            dir,
                            name,
                            version,
                            _downloaded: Some(temp),
                        })
                    }
                }
            }
        };
    }
    // A model in an object store (`--default-artifact-root s3://...`) is read from it directly,
    // as the mlflow client does, with the same credentials.
    if let Ok(Location::Object(location)) = wasmflow_artifacts::parse_location(&artifact_uri) {
        let (dir, temp) = download_object(&location, "")
            .with_context(|| format!("cannot download the model at '{artifact_uri}'"))?;
        return Ok(LocalModel {
            dir,
            name,
            version,
            _downloaded: Some(temp),
        });
    }
    Ok(local(on_disk(&artifact_uri)?))
}

/// Downloads the files under `path` of an object store's prefix into a temporary directory.
fn download_object(
    location: &ObjectLocation,
    path: &str,
) -> anyhow::Result<(PathBuf, tempfile::TempDir)> {
    let repo = wasmflow_artifacts::open_object(location).map_err(anyhow::Error::msg)?;
    let temp = tempfile::Builder::new()
        .prefix("wasmflow-model-")
        .tempdir()
        .context("cannot create a directory for the model's files")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let files = runtime
        .block_on(wasmflow_artifacts::download_tree(&repo, path, temp.path()))
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if files == 0 {
        bail!("the store has no files there");
    }
    Ok((temp.path().to_path_buf(), temp))
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
        let (root, experiment_id) = match backend {
            Backend::Remote(remote) => {
                let run = remote.call(
                    hyper::Method::GET,
                    &format!("runs/get?{}", query(&[("run_id", run_id)])),
                    None,
                )?;
                let info = &run["run"]["info"];
                let field = |key: &str| {
                    info[key]
                        .as_str()
                        .map(str::to_string)
                        .with_context(|| format!("run '{run_id}' has no {key}"))
                };
                (field("artifact_uri")?, field("experiment_id")?)
            }
            Backend::Local(store) => {
                let info = store.get_run(run_id)?.info;
                (info.artifact_uri, info.experiment_id)
            }
        };
        let path = path.trim_matches('/');
        // As the mlflow client reads `runs:/RUN/NAME/...`: a model logged by that run under
        // NAME (MLflow 3's `log_model(name=...)`, whose files live with the logged model, not
        // the run) wins over the run's own artifacts.
        let (name, rest) = path.split_once('/').unwrap_or((path, ""));
        if !name.is_empty()
            && let Some(location) = logged_model_of_run(backend, &experiment_id, run_id, name)?
        {
            return Ok((join_uri(&location, rest), None, None));
        }
        return Ok((join_uri(&root, path), None, None));
    }
    Ok((uri.to_string(), None, None))
}

/// The artifact URI that `uri` (`runs:/`, `models:/`, `mlflow-artifacts:`, ...) names.
pub(super) fn artifact_uri(uri: &str, backend: &Backend) -> anyhow::Result<String> {
    Ok(resolve(uri, backend)?.0)
}

/// The proxy's download URL path of the artifact `path`.
pub(super) fn artifact_url(path: &str) -> String {
    let encoded: Vec<String> = path
        .split('/')
        .map(|part| {
            percent_encoding::utf8_percent_encode(part, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        })
        .collect();
    format!("/api/2.0/mlflow-artifacts/artifacts/{}", encoded.join("/"))
}

/// `uri` with the relative `path` appended.
fn join_uri(uri: &str, path: &str) -> String {
    if path.is_empty() {
        uri.to_string()
    } else {
        format!("{}/{path}", uri.trim_end_matches('/'))
    }
}

/// The artifact location of the model named `name` that run `run_id` logged, if it logged one.
fn logged_model_of_run(
    backend: &Backend,
    experiment_id: &str,
    run_id: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    // The filter grammar has no escapes: a name holding both quote characters cannot be
    // written as a literal, and such a name is searched for among all of the experiment's models.
    let filter = if !name.contains('\'') {
        format!("name = '{name}'")
    } else if !name.contains('"') {
        format!("name = \"{name}\"")
    } else {
        String::new()
    };
    let mut page_token: Option<String> = None;
    loop {
        let (models, next) = match backend {
            Backend::Remote(remote) => {
                let mut body = serde_json::json!({
                    "experiment_ids": [experiment_id],
                    "filter": filter,
                    "max_results": 100,
                });
                if let Some(token) = &page_token {
                    body["page_token"] = token.clone().into();
                }
                let page = remote.call(hyper::Method::POST, "logged-models/search", Some(body))?;
                let models = page["models"]
                    .as_array()
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(|m| {
                        let info = &m["info"];
                        let field = |k: &str| info[k].as_str().unwrap_or_default().to_string();
                        (field("name"), field("source_run_id"), field("artifact_uri"))
                    })
                    .collect::<Vec<_>>();
                let next = page["next_page_token"].as_str().map(str::to_string);
                (models, next)
            }
            Backend::Local(store) => {
                let page = store.search_logged_models(&wasmflow_store::LoggedModelSearch {
                    experiment_ids: vec![experiment_id.to_string()],
                    filter: wasmflow_core::search::parse_logged_model_filter(&filter)?,
                    datasets: Vec::new(),
                    order_by: Vec::new(),
                    max_results: 100,
                    page_token: page_token.clone(),
                })?;
                let models = page
                    .items
                    .into_iter()
                    .map(|m| {
                        let info = m.info;
                        (
                            info.name,
                            info.source_run_id.unwrap_or_default(),
                            info.artifact_uri,
                        )
                    })
                    .collect::<Vec<_>>();
                (models, page.next_page_token)
            }
        };
        if let Some((_, _, location)) = models
            .into_iter()
            .find(|(model_name, source_run, _)| model_name == name && source_run == run_id)
        {
            return Ok(Some(location));
        }
        match next {
            Some(token) if !token.is_empty() => page_token = Some(token),
            _ => return Ok(None),
        }
    }
}

/// Copies the proxied directory `path` into `dest`, file by file; returns how many files.
pub(super) fn download_tree(remote: &Remote, path: &str, dest: &Path) -> anyhow::Result<usize> {
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
            let bytes = remote.download(&artifact_url(&child))?;
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
