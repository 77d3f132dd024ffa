//! The rules for a new model version's source, shared by every backend: what MLflow's server
//! checks (`_validate_source_run`, `_validate_source_model`, no path traversal) and where the
//! version's files are. The store supplies only the lookups ([`SourceLookup`]).

use wasmflow_core::{Error, Result};

use super::{
    ModelUri, ModelVersion, NewModelVersion, parse_model_uri, validate_model_name,
    validate_registry_tag,
};
use crate::append_to_uri;

/// What the source rules need to read from the store. Async, for the backends whose driver
/// is; a synchronous backend's lookups are ready at once.
pub(crate) trait SourceLookup {
    /// The artifact URI of a run of this store, if there is one.
    async fn run_artifact_uri(&self, run_id: &str) -> Result<Option<String>>;
    /// A live logged model's artifact location and source run.
    async fn live_logged_model(&self, model_id: &str) -> Result<Option<(String, Option<String>)>>;
    /// The registered version a `models:/NAME/...` source names (`text` is the uri as given).
    async fn registered_version(&self, uri: &ModelUri, text: &str) -> Result<ModelVersion>;
}

/// The checks on a new version that need no stored state: its model's name, a source, its tags.
pub(crate) fn validate_new_version(new: &NewModelVersion) -> Result<()> {
    validate_model_name(&new.name)?;
    if new.source.is_empty() {
        return Err(Error::invalid(
            "Missing value for required parameter 'source'.",
        ));
    }
    for tag in &new.tags {
        validate_registry_tag(tag)?;
    }
    Ok(())
}

fn invalid_source(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must \
         identify the resource that contains the source."
    ))
}

/// Repeatedly percent-decodes, as MLflow does before looking for `..`.
fn fully_unquoted(source: &str) -> String {
    let mut current = source.to_string();
    loop {
        let decoded = percent_decode(&current);
        if decoded == current {
            return current;
        }
        current = decoded;
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// MLflow refuses sources with relative path references (a way out of the artifact root).
fn check_no_traversal(source: &str) -> Result<()> {
    let unquoted = fully_unquoted(source);
    if unquoted.contains('\0') || unquoted.split(['/', '\\']).any(|p| p == "..") {
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, \
             local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must \
             be provided without relative path references present. Please provide an absolute \
             path."
        )));
    }
    Ok(())
}

fn is_local(source: &str) -> bool {
    source.starts_with("file:") || !source.contains(':')
}

/// A new version's (source, storage location, run id, model id).
pub(crate) type VersionSource = (String, String, String, Option<String>);

/// Checks a new version's source against its run and logged model as MLflow's server does
/// (`_validate_source_run`, `_validate_source_model`), and works out where its files are.
/// Returns (source, storage location, run id, model id).
///
/// As in MLflow, the checks are that the source and the ids agree, not that the run is in this
/// store: `runs:/<id>/model` with `run_id=<id>` is accepted for a run of another server. Only
/// sources that this server's own artifacts must contain (local paths and proxied artifact
/// URIs) are checked against the run or model the request names.
pub(crate) async fn resolve_source(
    lookup: &impl SourceLookup,
    new: &NewModelVersion,
) -> Result<VersionSource> {
    let source = new.source.clone();
    let mut run_id = new.run_id.clone().filter(|r| !r.is_empty());
    let mut model_id = new.model_id.clone().filter(|m| !m.is_empty());
    if !is_local(&source) {
        check_no_traversal(&source)?;
    }
    let mut storage = source.clone();
    let mut source_out = source.clone();
    if let Some(rest) = source.strip_prefix("runs:") {
        if model_id.is_some() {
            return Err(invalid_source(&source, "model_id"));
        }
        // `runs:/<run>/<path>`; `runs://host/...` names another server's run.
        let rest = rest.strip_prefix('/').filter(|r| !r.starts_with('/'));
        let (uri_run, path) = rest
            .map(|r| r.split_once('/').unwrap_or((r, "")))
            .ok_or_else(|| invalid_source(&source, "run_id"))?;
        if uri_run.is_empty() || run_id.as_deref() != Some(uri_run) {
            return Err(invalid_source(&source, "run_id"));
        }
        // A run of this store: keep where its files are, so this server can serve the version.
        if let Some(root) = lookup.run_artifact_uri(uri_run).await? {
            storage = if path.is_empty() {
                root
            } else {
                append_to_uri(&root, path.trim_start_matches('/'))
            };
        }
    } else if source.starts_with("models:") {
        match parse_model_uri(&source)? {
            ModelUri::LoggedModel { model_id: id } => {
                if model_id.as_ref().is_some_and(|m| m != &id) {
                    return Err(invalid_source(&source, "model_id"));
                }
                let (location, source_run) = lookup
                    .live_logged_model(&id)
                    .await?
                    .ok_or_else(|| invalid_source(&source, "model_id"))?;
                storage = location;
                run_id = run_id.or(source_run);
                model_id = Some(id);
            }
            other => {
                // A version registered from another registered version.
                let version = lookup.registered_version(&other, &source).await?;
                source_out = format!("models:/{}/{}", version.name, version.version);
                storage = version.storage_location.clone();
                if run_id.is_none() && !version.run_id.is_empty() {
                    run_id = Some(version.run_id.clone());
                }
                model_id = model_id.or(version.model_id.clone());
            }
        }
    } else if is_local(&source) {
        // A local path must lie inside the local artifact directory of the named model or run.
        let (root, id_name) = match (&model_id, &run_id) {
            (Some(id), _) => (
                lookup.live_logged_model(id).await?.map(|(l, _)| l),
                "model_id",
            ),
            (None, Some(r)) => (lookup.run_artifact_uri(r).await?, "run_id"),
            (None, None) => return Err(local_source(&source, "run_id")),
        };
        let root = root.ok_or_else(|| invalid_source(&source, id_name))?;
        if !is_local(&root)
            || !local_path(&root).is_some_and(|root| {
                local_path(&source).is_some_and(|source| source.starts_with(&root))
            })
        {
            return Err(local_source(&source, id_name));
        }
        if run_id.is_none()
            && let Some(id) = &model_id
        {
            run_id = lookup.live_logged_model(id).await?.and_then(|(_, r)| r);
        }
    } else if is_proxied_artifact(&source) {
        // A source on this server's artifact proxy must lie inside the named model's or run's
        // artifacts.
        if let Some(id) = &model_id {
            let (location, source_run) = lookup
                .live_logged_model(id)
                .await?
                .ok_or_else(|| invalid_source(&source, "model_id"))?;
            if !uri_within(&source, &location) {
                return Err(invalid_source(&source, "model_id"));
            }
            run_id = run_id.or(source_run);
        } else {
            let root = match &run_id {
                Some(r) => lookup.run_artifact_uri(r).await?,
                None => None,
            };
            if !root.is_some_and(|root| uri_within(&source, &root)) {
                return Err(invalid_source(&source, "run_id"));
            }
        }
    } else if let Some(id) = &model_id {
        // Another store's URI (`s3://...`): nothing here contains it; take the model's run.
        let (_, source_run) = lookup
            .live_logged_model(id)
            .await?
            .ok_or_else(|| invalid_source(&source, "model_id"))?;
        run_id = run_id.or(source_run);
    }
    Ok((source_out, storage, run_id.unwrap_or_default(), model_id))
}

/// The absolute, normalised file system path of a local URI (a path or `file:`), as MLflow's
/// `pathlib.Path(local_file_uri_to_path(uri)).resolve()`: relative to the current directory,
/// symlinks resolved where the path exists.
fn local_path(uri: &str) -> Option<std::path::PathBuf> {
    use std::path::{Component, PathBuf};
    let raw = match uri.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let path = match rest.strip_prefix("//") {
                Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
                None => rest,
            };
            percent_decode(path)
        }
        _ => uri.to_string(),
    };
    let absolute = std::env::current_dir().ok()?.join(raw);
    if let Ok(canonical) = absolute.canonicalize() {
        return Some(canonical);
    }
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// `mlflow-artifacts:` URIs and http(s) URLs of an artifact proxy.
fn is_proxied_artifact(source: &str) -> bool {
    let (scheme, _, parts) = uri_parts(source);
    scheme == "mlflow-artifacts"
        || (matches!(scheme.as_str(), "http" | "https")
            && parts
                .windows(4)
                .any(|w| w == ["api", "2.0", "mlflow-artifacts", "artifacts"]))
}

/// Scheme and authority (lower-cased) and the decoded, non-empty path segments of a URI.
fn uri_parts(uri: &str) -> (String, String, Vec<String>) {
    let (scheme, rest) = match uri.split_once(':') {
        Some((s, r)) if !s.contains('/') => (s.to_ascii_lowercase(), r),
        _ => (String::new(), uri),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => {
            let (a, p) = r.split_once('/').unwrap_or((r, ""));
            (a.to_ascii_lowercase(), p)
        }
        None => (String::new(), rest),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let parts = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(fully_unquoted)
        .collect();
    (scheme, authority, parts)
}

/// MLflow's `_is_uri_within_root`.
fn uri_within(source: &str, root: &str) -> bool {
    let (s_scheme, s_auth, s_parts) = uri_parts(source);
    let (r_scheme, r_auth, r_parts) = uri_parts(root);
    s_scheme == r_scheme
        && s_auth == r_auth
        && !r_parts.is_empty()
        && s_parts.len() >= r_parts.len()
        && s_parts[..r_parts.len()] == r_parts[..]
}

fn local_source(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. To use a local path as a model version \
         source, the {id_name} request parameter has to be specified and the local path has to \
         be contained within the artifact directory of the run specified by the {id_name}."
    ))
}
