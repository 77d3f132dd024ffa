//! `wasmflow run --storage-dir`: `path` parameters given as URIs are downloaded before the run,
//! as `mlflow run` downloads them (its `_compute_path_value`): each into `param_<N>` (N the
//! parameter's place in the MLproject file) of a fresh directory made inside the storage
//! directory, under the URI's last path segment; the command gets that local path. Web files
//! (`http(s)://`) are fetched directly, `runs:/` and `mlflow-artifacts:` URIs through the
//! tracking server the run uses.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use wasmflow_core::mlproject::RemotePath;

use super::model_source::{self, Backend};
use super::remote::Remote;

/// How many redirects a web download follows (the `requests` library MLflow uses allows 30;
/// a chain longer than a few is a loop in practice).
const MAX_REDIRECTS: usize = 10;

/// The directory downloads go to, made when the first one is needed.
pub struct Storage {
    /// `--storage-dir`: a fresh directory is made inside it and kept after the run.
    given: Option<PathBuf>,
    dir: Option<PathBuf>,
    /// Without `--storage-dir`: a temporary directory, removed when the run ends.
    temp: Option<tempfile::TempDir>,
}

impl Storage {
    pub fn new(given: Option<PathBuf>) -> Self {
        Self {
            given,
            dir: None,
            temp: None,
        }
    }

    fn dir(&mut self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        let dir = match &self.given {
            Some(root) => {
                std::fs::create_dir_all(root).with_context(|| {
                    format!("cannot create the storage directory '{}'", root.display())
                })?;
                // Absolute: the command runs in the project's directory, not here. Named as
                // Python's mkdtemp names it (`tmp...`), not hidden.
                tempfile::Builder::new()
                    .prefix("tmp")
                    .tempdir_in(std::path::absolute(root)?)
                    .with_context(|| format!("cannot create a directory in '{}'", root.display()))?
                    .keep()
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("wasmflow-storage-")
                    .tempdir()
                    .context("cannot create a storage directory")?;
                let dir = temp.path().to_path_buf();
                self.temp = Some(temp);
                dir
            }
        };
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    /// Brings `param`'s URI here; `tracking_uri` is the server that `runs:/` and
    /// `mlflow-artifacts:` URIs are read from.
    pub fn download(&mut self, tracking_uri: &str, param: &RemotePath) -> anyhow::Result<PathBuf> {
        let target_dir = self.dir()?.join(format!("param_{}", param.position));
        std::fs::create_dir(&target_dir)
            .with_context(|| format!("cannot create '{}'", target_dir.display()))?;
        let uri = param.uri.as_str();
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let bytes = http_get(uri)?;
            let target = target_dir.join(file_name(uri));
            std::fs::write(&target, &bytes)
                .with_context(|| format!("cannot write '{}'", target.display()))?;
            return Ok(target);
        }
        let backend = Backend::Remote(Remote::new(tracking_uri)?);
        let Backend::Remote(remote) = &backend else {
            unreachable!("made remote above")
        };
        let artifact_uri = model_source::artifact_uri(uri, &backend)?;
        let Some(path) = wasmflow_artifacts::proxied_path_of(&artifact_uri) else {
            // A server without the artifact proxy: its artifact root is a path on this machine.
            let local = PathBuf::from(
                artifact_uri
                    .strip_prefix("file://")
                    .unwrap_or(&artifact_uri),
            );
            if artifact_uri.contains("://") && !artifact_uri.starts_with("file://")
                || !local.exists()
            {
                bail!("cannot read the files at '{artifact_uri}' from here");
            }
            return Ok(local);
        };
        let target = target_dir.join(file_name(&path));
        // A directory is downloaded file by file; a path that lists nothing is one file.
        std::fs::create_dir(&target)?;
        if model_source::download_tree(remote, &path, &target)? > 0 {
            return Ok(target);
        }
        std::fs::remove_dir(&target)?;
        let bytes = remote.download(&model_source::artifact_url(&path))?;
        std::fs::write(&target, &bytes)
            .with_context(|| format!("cannot write '{}'", target.display()))?;
        Ok(target)
    }
}

/// The last segment of a URI's or an artifact's path, decoded; `download` if it has none that
/// can name a file.
fn file_name(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path,
    };
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(last)
        .decode_utf8_lossy()
        .into_owned();
    let plain = matches!(
        Path::new(&decoded)
            .components()
            .collect::<Vec<_>>()
            .as_slice(),
        [Component::Normal(_)]
    );
    if plain && !decoded.contains(':') {
        decoded
    } else {
        "download".into()
    }
}

/// GET of a web URL (http or https with Mozilla's roots), following redirects.
fn http_get(url: &str) -> anyhow::Result<Bytes> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL '{url}'"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .with_context(|| format!("no host in '{url}'"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map(|a| a.as_str().to_string());
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let (status, location, body) = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .with_context(|| format!("cannot connect to {host}:{port}"))?;
            let request = hyper::Request::get(&path)
                .header(hyper::header::HOST, authority.unwrap_or_default())
                .header(
                    hyper::header::USER_AGENT,
                    concat!("wasmflow/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::<Bytes>::new())?;
            if https {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .with_context(|| format!("invalid TLS server name '{host}'"))?;
                let tls = tokio_rustls::TlsConnector::from(crate::webhooks::tls_config())
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with '{host}' failed"))?;
                exchange(TokioIo::new(tls), request).await
            } else {
                exchange(TokioIo::new(stream), request).await
            }
        })?;
        if status.is_redirection()
            && let Some(location) = location
        {
            url = if location.contains("://") {
                location
            } else {
                let scheme = if https { "https" } else { "http" };
                let authority = uri.authority().map_or("", |a| a.as_str());
                format!(
                    "{scheme}://{authority}/{}",
                    location.trim_start_matches('/')
                )
            };
            continue;
        }
        if !status.is_success() {
            // The body of a web server's error is a page, not a message.
            bail!("GET '{url}' answered {status}");
        }
        return Ok(body);
    }
    bail!("GET '{url}': more than {MAX_REDIRECTS} redirects")
}

async fn exchange<T>(
    io: TokioIo<T>,
    request: hyper::Request<Empty<Bytes>>,
) -> anyhow::Result<(hyper::StatusCode, Option<String>, Bytes)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, location, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_the_uris_last_segment() {
        assert_eq!(file_name("https://example.com/d/data.csv?x=1"), "data.csv");
        assert_eq!(file_name("1/abc/artifacts/my%20file.txt"), "my file.txt");
        assert_eq!(file_name("1/abc/artifacts/dir/"), "dir");
        assert_eq!(file_name("https://example.com/"), "download");
        assert_eq!(file_name("https://example.com/.."), "download");
        assert_eq!(file_name("x/%2e%2e"), "download");
    }
}
