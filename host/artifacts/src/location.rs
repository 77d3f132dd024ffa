//! Artifact store URIs: which store a `--artifacts-destination`, `--default-artifact-root` or a
//! run's artifact URI names, and the repository that reads it.
//!
//! Supported: local paths and `file:` URIs (the local file system), `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `azure://container/prefix` (account from `AZURE_STORAGE_ACCOUNT_NAME`),
//! `abfss://container@account.dfs.core.windows.net/prefix` and
//! `wasbs://container@account.blob.core.windows.net/prefix` (MLflow's two Azure forms). Any other
//! scheme is refused: a URI is never taken for a local directory named after it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;

use crate::object::ObjectStoreArtifactRepository;
use crate::{ArtifactRepository, LocalArtifactRepository, local_path_of};

/// The stores an artifact URI may name, for error messages.
pub const SUPPORTED_SCHEMES: &str =
    "s3://, gs://, azure://, abfss://, wasbs://, file:// or a local path";

/// The cloud an object-store URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    S3,
    Gcs,
    Azure,
}

/// Where an artifact URI points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory of this machine.
    Local(PathBuf),
    /// A prefix in an object store's bucket (container).
    Object(ObjectLocation),
}

impl Location {
    /// The location of `rel` (a sanitised relative path: `sanitize_relative_path`) under this
    /// one: where an `mlflow-artifacts:/` URI's files are under the proxy's destination.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Local(dir) => Location::Local(dir.join(rel)),
            Location::Object(location) => Location::Object(ObjectLocation {
                prefix: match (location.prefix.is_empty(), rel.is_empty()) {
                    (true, _) => rel.to_string(),
                    (false, true) => location.prefix.clone(),
                    (false, false) => format!("{}/{rel}", location.prefix),
                },
                ..location.clone()
            }),
        }
    }
}

/// A bucket of an object store and a prefix inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectLocation {
    pub cloud: Cloud,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The Azure storage account the URI names (`container@account.…`), if any.
    pub account: Option<String>,
    /// The key prefix inside the bucket, without leading or trailing `/` (`""` = the bucket).
    pub prefix: String,
}

/// Parses an artifact store URI, refusing schemes no repository here reads (the message lists
/// the supported ones). `mlflow-artifacts:` and http(s) URIs are not stores of their own (they
/// name the server's proxy) and are refused here too; callers that accept them check
/// [`crate::proxied_path_of`] first.
pub fn parse_location(uri: &str) -> Result<Location, String> {
    if let Some(path) = local_path_of(uri) {
        if uri
            .split_once(':')
            .is_some_and(|(s, _)| s.eq_ignore_ascii_case("file"))
            && path.as_os_str().is_empty()
        {
            return Err(format!(
                "invalid artifact URI '{uri}': it names no directory"
            ));
        }
        return Ok(Location::Local(path));
    }
    let unsupported = || {
        format!("unsupported artifact store URI '{uri}': supported schemes are {SUPPORTED_SCHEMES}")
    };
    let (scheme, rest) = uri.split_once("://").ok_or_else(unsupported)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let prefix = path
        .split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    if prefix.split('/').any(|p| p == "." || p == "..") {
        return Err(format!(
            "invalid artifact URI '{uri}': its path must not contain '.' or '..'"
        ));
    }
    let missing = |what: &str| format!("invalid artifact URI '{uri}': it names no {what}");
    let (cloud, bucket, account) = match scheme.to_ascii_lowercase().as_str() {
        "s3" | "gs" | "azure" => {
            let cloud = match scheme.to_ascii_lowercase().as_str() {
                "s3" => Cloud::S3,
                "gs" => Cloud::Gcs,
                _ => Cloud::Azure,
            };
            if authority.is_empty() {
                return Err(missing(if cloud == Cloud::Azure {
                    "container"
                } else {
                    "bucket"
                }));
            }
            (cloud, authority.to_string(), None)
        }
        // MLflow's forms: abfss://container@account.dfs.core.windows.net/path (ADLS Gen2) and
        // wasbs://container@account.blob.core.windows.net/path (Blob storage).
        "abfss" | "wasbs" => {
            let (container, host) = authority.split_once('@').ok_or_else(|| {
                format!(
                    "invalid artifact URI '{uri}': expected {scheme}://<container>@<account>.\
                     {}.core.windows.net/<path>",
                    if scheme.eq_ignore_ascii_case("abfss") {
                        "dfs"
                    } else {
                        "blob"
                    }
                )
            })?;
            let account = host.split('.').next().unwrap_or_default();
            if container.is_empty() {
                return Err(missing("container"));
            }
            if account.is_empty() {
                return Err(missing("storage account"));
            }
            (
                Cloud::Azure,
                container.to_string(),
                Some(account.to_string()),
            )
        }
        _ => return Err(unsupported()),
    };
    Ok(Location::Object(ObjectLocation {
        cloud,
        bucket,
        account,
        prefix,
    }))
}

/// Opens the repository `uri` names: a local directory (created if missing) or an object
/// store's prefix. Errors are one line, quoting the URI.
pub fn open_repository(uri: &str) -> Result<Arc<dyn ArtifactRepository>, String> {
    match parse_location(uri)? {
        Location::Local(dir) => LocalArtifactRepository::new(&dir)
            .map(|repo| Arc::new(repo) as Arc<dyn ArtifactRepository>)
            .map_err(|e| format!("cannot use the artifact directory '{}': {e}", dir.display())),
        Location::Object(location) => Ok(Arc::new(open_object(&location)?)),
    }
}

/// What one client serves: a bucket (container) of a cloud, in an account.
type StoreKey = (Cloud, String, Option<String>);

/// The repository of an object-store prefix. The client of each bucket is built once per process
/// (its connection pool and credentials are shared by every repository of the bucket).
pub fn open_object(location: &ObjectLocation) -> Result<ObjectStoreArtifactRepository, String> {
    static STORES: Mutex<Option<HashMap<StoreKey, Arc<dyn ObjectStore>>>> = Mutex::new(None);
    let key = (
        location.cloud,
        location.bucket.clone(),
        location.account.clone(),
    );
    let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    let stores = stores.get_or_insert_with(HashMap::new);
    let store = match stores.get(&key) {
        Some(store) => store.clone(),
        None => {
            let store = build_store(location)?;
            stores.insert(key, store.clone());
            store
        }
    };
    Ok(ObjectStoreArtifactRepository::new(
        store,
        &location.prefix,
        location.uri(),
    ))
}

impl ObjectLocation {
    /// The URI of the bucket and prefix, as given (for messages).
    pub fn uri(&self) -> String {
        let scheme = match self.cloud {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
            Cloud::Azure => "azure",
        };
        let bucket = match &self.account {
            Some(account) => format!("{}@{account}", self.bucket),
            None => self.bucket.clone(),
        };
        format!("{scheme}://{bucket}/{}", self.prefix)
    }
}

/// Whether an environment variable is set to a true value as MLflow reads booleans
/// (`MLFLOW_S3_IGNORE_TLS=true`).
fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn build_store(location: &ObjectLocation) -> Result<Arc<dyn ObjectStore>, String> {
    // reqwest's TLS runs on rustls with no crypto provider of its own: the ring one, already in
    // the binary for webhooks. Installing fails harmlessly when it is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut client = object_store::ClientOptions::new();
    let failed = |e: object_store::Error| {
        format!(
            "cannot use the artifact store '{}': {}",
            location.uri(),
            one_line(&e)
        )
    };
    let store: Arc<dyn ObjectStore> = match location.cloud {
        Cloud::S3 => {
            // As MLflow's S3 repository (boto3): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
            // AWS_SESSION_TOKEN, AWS_DEFAULT_REGION / AWS_REGION from the environment (read by
            // from_env), MLFLOW_S3_ENDPOINT_URL for S3-compatible servers, MLFLOW_S3_IGNORE_TLS
            // to skip certificate checks.
            let mut builder =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
            if let Ok(endpoint) = std::env::var("MLFLOW_S3_ENDPOINT_URL")
                && !endpoint.is_empty()
            {
                if endpoint.starts_with("http://") {
                    client = client.with_allow_http(true);
                }
                builder = builder.with_endpoint(endpoint);
            }
            if env_flag("MLFLOW_S3_IGNORE_TLS") {
                client = client.with_allow_invalid_certificates(true);
            }
            Arc::new(
                builder
                    .with_client_options(client)
                    .build()
                    .map_err(failed)?,
            )
        }
        Cloud::Gcs => Arc::new(
            // GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT (from_env), else the
            // instance's metadata credentials, as google-cloud-storage finds them.
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&location.bucket)
                .with_client_options(client)
                .build()
                .map_err(failed)?,
        ),
        Cloud::Azure => {
            // AZURE_STORAGE_ACCOUNT_NAME / AZURE_STORAGE_ACCOUNT_KEY (or ACCESS_KEY),
            // AZURE_STORAGE_USE_EMULATOR for Azurite (from_env); the account named in the URI
            // wins.
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&location.bucket);
            if let Some(account) = &location.account {
                builder = builder.with_account(account);
            }
            Arc::new(
                builder
                    .with_client_options(client)
                    .build()
                    .map_err(failed)?,
            )
        }
    };
    Ok(store)
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(uri: &str) -> ObjectLocation {
        match parse_location(uri) {
            Ok(Location::Object(location)) => location,
            other => panic!("{uri}: {other:?}"),
        }
    }

    #[test]
    fn a_relative_path_joins_under_a_location() {
        let under = |uri: &str, rel: &str| match parse_location(uri).unwrap().join(rel) {
            Location::Object(o) => o.uri(),
            Location::Local(dir) => dir.display().to_string(),
        };
        assert_eq!(
            under("s3://b/root", "1/abc/artifacts"),
            "s3://b/root/1/abc/artifacts"
        );
        assert_eq!(under("s3://b", "1/abc"), "s3://b/1/abc");
        assert_eq!(under("s3://b/root", ""), "s3://b/root");
        assert_eq!(under("/data/art", "1/abc"), "/data/art/1/abc");
    }

    #[test]
    fn object_store_uris_name_bucket_and_prefix() {
        let s3 = object("s3://my-bucket/mlflow/artifacts/");
        assert_eq!(
            (s3.cloud, s3.bucket.as_str(), s3.prefix.as_str(), s3.account),
            (Cloud::S3, "my-bucket", "mlflow/artifacts", None)
        );
        assert_eq!(object("s3://bucket").prefix, "");
        assert_eq!(object("S3://bucket//a//b").prefix, "a/b");
        let gs = object("gs://b/p");
        assert_eq!((gs.cloud, gs.bucket.as_str()), (Cloud::Gcs, "b"));
        let azure = object("azure://container/p");
        assert_eq!(
            (azure.cloud, azure.bucket.as_str(), azure.account),
            (Cloud::Azure, "container", None)
        );
        for uri in [
            "abfss://container@account.dfs.core.windows.net/p/q",
            "wasbs://container@account.blob.core.windows.net/p/q",
        ] {
            let azure = object(uri);
            assert_eq!(
                (
                    azure.cloud,
                    azure.bucket.as_str(),
                    azure.account.as_deref(),
                    azure.prefix.as_str()
                ),
                (Cloud::Azure, "container", Some("account"), "p/q"),
                "{uri}"
            );
        }
    }

    #[test]
    fn local_paths_and_file_uris_are_local() {
        for (uri, path) in [
            ("./mlartifacts", "./mlartifacts"),
            ("/srv/artifacts", "/srv/artifacts"),
            ("file:///srv/artifacts", "/srv/artifacts"),
            ("file:/srv/a", "/srv/a"),
            ("relative/dir", "relative/dir"),
        ] {
            assert_eq!(
                parse_location(uri),
                Ok(Location::Local(PathBuf::from(path))),
                "{uri}"
            );
        }
    }

    #[test]
    fn unsupported_schemes_are_refused_with_the_supported_list() {
        for uri in [
            "ftp://x",
            "hdfs://namenode/path",
            "dbfs:/databricks/mlflow",
            "mlflow-artifacts:/x",
            "http://host/x",
            "oss://bucket/x",
        ] {
            let e = parse_location(uri).unwrap_err();
            assert!(
                e.starts_with(&format!("unsupported artifact store URI '{uri}'"))
                    && e.contains(SUPPORTED_SCHEMES)
                    && !e.contains('\n'),
                "{uri}: {e}"
            );
        }
    }

    #[test]
    fn malformed_object_uris_are_refused() {
        for (uri, why) in [
            ("s3://", "names no bucket"),
            ("s3:///prefix", "names no bucket"),
            ("gs://", "names no bucket"),
            ("azure:///p", "names no container"),
            (
                "abfss://account.dfs.core.windows.net/p",
                "expected abfss://",
            ),
            (
                "wasbs://@account.blob.core.windows.net/p",
                "names no container",
            ),
            ("s3://bucket/a/../b", "must not contain"),
        ] {
            let e = parse_location(uri).unwrap_err();
            assert!(e.contains(why) && e.contains(uri), "{uri}: {e}");
        }
    }
}
