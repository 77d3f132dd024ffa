//! Sending one webhook request as MLflow does: its URL checks (scheme, host, and no private
//! addresses unless allowed, checked again on the addresses actually dialled), its headers, a
//! timeout per attempt, and urllib3's retry policy (3 retries on connection errors, timeouts and
//! 429/500/502/503/504, backoff 0 s, 2 s, 4 s… capped at 60 s plus up to 1 s of jitter,
//! `Retry-After` honoured).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use wasmflow_core::Error;
use wasmflow_store::webhooks::py_repr;

/// What `MLFLOW_WEBHOOK_*` set (MLflow's variables and defaults).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MLFLOW_WEBHOOK_ALLOWED_SCHEMES`: `https` unless configured.
    pub allowed_schemes: Vec<String>,
    /// `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`: loopback and private targets (for development).
    pub allow_private_ips: bool,
    /// `MLFLOW_WEBHOOK_REQUEST_TIMEOUT`, seconds.
    pub timeout: Duration,
    /// `MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES`.
    pub max_retries: u32,
    /// `MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS`: deliveries under way at once.
    pub max_workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allowed_schemes: vec!["https".into()],
            allow_private_ips: false,
            timeout: Duration::from_secs(30),
            max_retries: 3,
            max_workers: 10,
        }
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let mut s = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("MLFLOW_WEBHOOK_ALLOWED_SCHEMES") {
            s.allowed_schemes = v
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect();
        }
        if let Some(v) = var("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS") {
            s.allow_private_ips = match v.trim().to_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => anyhow::bail!(
                    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS should be 'true', 'false', '1' or '0', \
                     got '{other}'"
                ),
            };
        }
        let number = |name: &str| -> anyhow::Result<Option<u64>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got '{v}'"))
                })
                .transpose()
        };
        if let Some(n) = number("MLFLOW_WEBHOOK_REQUEST_TIMEOUT")? {
            s.timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES")? {
            s.max_retries = n.min(100) as u32;
        }
        if let Some(n) = number("MLFLOW_WEBHOOK_DELIVERY_MAX_WORKERS")? {
            s.max_workers = n.max(1) as usize;
        }
        Ok(s)
    }
}

/// A URL split as Python's `urlparse` splits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub scheme: String,
    /// Lower case, without brackets.
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

fn invalid(message: String) -> Error {
    Error::invalid(message)
}

/// `urlparse`'s scheme: letters, digits, `+-.`, starting with a letter, before the first `:`.
fn split_scheme(url: &str) -> (String, &str) {
    if let Some((scheme, rest)) = url.split_once(':') {
        let mut chars = scheme.chars();
        if chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return (scheme.to_ascii_lowercase(), rest);
        }
    }
    (String::new(), url)
}

/// `_validate_webhook_url` without the DNS part: the scheme is allowed and there is a host.
pub fn parse_url(url: &str, settings: &Settings) -> Result<Target, Error> {
    if url.trim().is_empty() {
        return Err(invalid(format!(
            "Webhook URL cannot be empty or just whitespace: {}",
            py_repr(url)
        )));
    }
    let (scheme, rest) = split_scheme(url);
    if !settings.allowed_schemes.contains(&scheme) {
        return Err(invalid(format!(
            "Invalid webhook URL scheme: {}. Allowed schemes are: {}.",
            py_repr(&scheme),
            settings.allowed_schemes.join(", ")
        )));
    }
    let no_host = || {
        invalid(format!(
            "Webhook URL must include a hostname: {}",
            py_repr(url)
        ))
    };
    let after = rest.strip_prefix("//").ok_or_else(no_host)?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (netloc, tail) = after.split_at(end);
    let hostport = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| {
            invalid(format!(
                "Invalid webhook URL {}: ValueError('Invalid IPv6 URL')",
                py_repr(url)
            ))
        })?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(no_host());
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => {
            if scheme == "http" {
                80
            } else {
                443
            }
        }
        Some(p) => p.parse::<u16>().map_err(|_| {
            invalid(format!(
                "Invalid webhook URL {}: port could not be cast to integer value as {}",
                py_repr(url),
                py_repr(p)
            ))
        })?,
    };
    let tail = tail.split('#').next().unwrap_or("");
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok(Target {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path_and_query,
    })
}

/// Python's `ip_address(...).is_global`, looking through IPv4-mapped, 6to4 and NAT64 addresses
/// as MLflow does.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            if s[0] == 0x2002 {
                return is_public_v4(Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                ));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    let private = ip.is_unspecified()
        || o[0] == 0
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0 && !matches!(o[3], 9 | 10))
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240;
    !private
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let private = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x200 && !matches!(s[1], 1 | 3 | 4 | 0x1ff)); // IETF
    !private
}

/// The addresses of `target`, each checked unless private addresses are allowed.
pub async fn resolve(target: &Target, settings: &Settings) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| {
            invalid(format!(
                "Cannot resolve Webhook URL hostname {}: {e}",
                py_repr(&target.host)
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(invalid(format!(
            "Cannot resolve Webhook URL hostname {}: no address",
            py_repr(&target.host)
        )));
    }
    if !settings.allow_private_ips
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(invalid(format!(
            "Webhook URL must not resolve to a non-public IP address. {} resolves to {}.",
            py_repr(&target.host),
            bad.ip()
        )));
    }
    Ok(addrs)
}

/// `_validate_webhook_url`, as create and update check it.
pub async fn validate_url(url: &str, settings: &Settings) -> Result<(), Error> {
    let target = parse_url(url, settings)?;
    if !settings.allow_private_ips {
        resolve(&target, settings).await?;
    }
    Ok(())
}

/// One request to send, the same bytes and headers on every attempt (as urllib3 retries).
pub struct Outgoing {
    pub url: String,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
}

/// What a delivery ended with.
#[derive(Debug)]
pub struct Outcome {
    pub attempts: u32,
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s < 400)
    }
}

const RETRY_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// urllib3 honours `Retry-After` on these.
const RETRY_AFTER_STATUSES: [u16; 3] = [413, 429, 503];
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// Sends with retries; never fails, the outcome says what happened.
pub async fn send(out: &Outgoing, settings: &Settings) -> Outcome {
    let mut attempts = 0;
    let mut consecutive_errors = 0u32;
    loop {
        attempts += 1;
        let result = tokio::time::timeout(settings.timeout, send_once(out, settings)).await;
        let (retry, outcome, retry_after) = match result {
            Err(_) => (
                true,
                Outcome {
                    attempts,
                    status: None,
                    body: None,
                    error: Some(format!(
                        "no answer within {} s",
                        settings.timeout.as_secs_f64()
                    )),
                },
                None,
            ),
            Ok(Err(Attempt::Refused(e))) => (
                false,
                Outcome {
                    attempts,
                    status: None,
                    body: None,
                    error: Some(e),
                },
                None,
            ),
            Ok(Err(Attempt::Failed(e))) => (
                true,
                Outcome {
                    attempts,
                    status: None,
                    body: None,
                    error: Some(e),
                },
                None,
            ),
            Ok(Ok((status, body, retry_after))) => (
                RETRY_STATUSES.contains(&status),
                Outcome {
                    attempts,
                    status: Some(status),
                    body: Some(body),
                    error: None,
                },
                retry_after.filter(|_| RETRY_AFTER_STATUSES.contains(&status)),
            ),
        };
        if !retry || attempts > settings.max_retries {
            return outcome;
        }
        consecutive_errors += 1;
        let wait = match retry_after {
            Some(secs) => Duration::from_secs(secs.min(3600)),
            None => backoff(consecutive_errors),
        };
        tracing::warn!(
            url = %out.url,
            attempt = attempts,
            status = ?outcome.status,
            error = ?outcome.error,
            "webhook delivery failed; retrying in {:.1} s",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
}

/// urllib3's `Retry.get_backoff_time` with `backoff_factor=1`, `backoff_max=60`,
/// `backoff_jitter=1`: nothing after the first failure, then 2 s, 4 s, 8 s…
fn backoff(consecutive_errors: u32) -> Duration {
    if consecutive_errors <= 1 {
        return Duration::ZERO;
    }
    let base = 2f64.powi(consecutive_errors as i32 - 1).min(60.0);
    let mut b = [0u8; 2];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u16::from_le_bytes(b)) / 65_536.0,
        Err(_) => 0.5,
    };
    Duration::from_secs_f64((base + jitter).min(60.0))
}

enum Attempt {
    /// Not sent and not worth retrying (a refused address, a malformed URL).
    Refused(String),
    /// A connection or protocol error: retried.
    Failed(String),
}

async fn send_once(
    out: &Outgoing,
    settings: &Settings,
) -> Result<(u16, String, Option<u64>), Attempt> {
    let target = parse_url(&out.url, settings).map_err(|e| Attempt::Refused(e.message))?;
    let addrs = resolve(&target, settings)
        .await
        .map_err(|e| Attempt::Refused(e.message))?;
    let mut last = String::new();
    let mut stream = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(Attempt::Failed(last))?;
    let host_header = match (target.scheme.as_str(), target.port) {
        ("http", 80) | ("https", 443) => target.host.clone(),
        _ if target.host.contains(':') => format!("[{}]:{}", target.host, target.port),
        _ => format!("{}:{}", target.host, target.port),
    };
    let mut req = Request::builder()
        .method(hyper::Method::POST)
        .uri(&target.path_and_query)
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::USER_AGENT,
            concat!("wasmflow/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONTENT_LENGTH, out.body.len());
    for (name, value) in &out.headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Full::new(out.body.clone()))
        .map_err(|e| Attempt::Refused(format!("cannot build the request: {e}")))?;
    if target.scheme == "https" {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| Attempt::Refused(format!("invalid TLS server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, stream)
            .await
            .map_err(|e| Attempt::Failed(format!("TLS handshake failed: {e}")))?;
        exchange(TokioIo::new(tls), req).await
    } else {
        exchange(TokioIo::new(stream), req).await
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
) -> Result<(u16, String, Option<u64>), Attempt>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| Attempt::Failed(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(failed)?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(failed)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut body = Vec::new();
    let mut incoming = resp.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(failed)?;
        if let Ok(data) = frame.into_data() {
            let room = MAX_RESPONSE_BODY.saturating_sub(body.len());
            body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((
        status,
        String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    ))
}

/// rustls with Mozilla's roots, built once.
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Settings {
        Settings {
            allowed_schemes: vec!["http".into(), "https".into()],
            ..Settings::default()
        }
    }

    #[test]
    fn urls_split_as_urlparse_does() {
        let t = parse_url("https://User:pw@Example.COM:8443/hook?a=1#frag", &open()).unwrap();
        assert_eq!(
            t,
            Target {
                scheme: "https".into(),
                host: "example.com".into(),
                port: 8443,
                path_and_query: "/hook?a=1".into()
            }
        );
        let t = parse_url("http://[::1]/x", &open()).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = parse_url("HTTPS://h", &open()).unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.path_and_query.as_str()),
            ("https", "/")
        );
    }

    #[test]
    fn url_errors_are_mlflows() {
        let s = Settings::default();
        assert_eq!(
            parse_url("http://example.com", &s).unwrap_err().message,
            "Invalid webhook URL scheme: 'http'. Allowed schemes are: https."
        );
        assert_eq!(
            parse_url("not a url", &s).unwrap_err().message,
            "Invalid webhook URL scheme: ''. Allowed schemes are: https."
        );
        assert_eq!(
            parse_url("https://", &s).unwrap_err().message,
            "Webhook URL must include a hostname: 'https://'"
        );
        assert_eq!(
            parse_url("  ", &s).unwrap_err().message,
            "Webhook URL cannot be empty or just whitespace: '  '"
        );
    }

    #[test]
    fn private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn backoff_follows_urllib3() {
        assert_eq!(backoff(1), Duration::ZERO);
        let second = backoff(2).as_secs_f64();
        assert!((2.0..3.0).contains(&second), "{second}");
        assert!(backoff(10).as_secs_f64() <= 60.0);
    }
}
