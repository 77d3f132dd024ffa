//! TLS to PostgreSQL as libpq reads the uri: `sslmode` (`disable`, `prefer` — the default —,
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file of trusted roots, or
//! `system` for Mozilla's roots compiled into the binary). As libpq does, `prefer` and `require`
//! encrypt without checking the certificate, except that `require` with an `sslrootcert` checks
//! it as `verify-ca`; `verify-ca` checks the chain, `verify-full` the chain and the host name;
//! the roots default to `~/.postgresql/root.crt`. On rustls with the ring provider.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use wasmflow_core::{Error, Result};

/// What the uri asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    Disable,
    /// Encrypted when the server offers it (`prefer`) or always (`require`), not verified.
    Unverified(SslMode),
    /// The certificate chains to these roots; with `host`, it also names the host.
    Verified {
        roots: Roots,
        host: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    File(PathBuf),
    /// `sslrootcert=system`: Mozilla's roots (webpki-roots).
    System,
}

impl Tls {
    /// The mode tokio-postgres negotiates with.
    pub(crate) fn ssl_mode(&self) -> SslMode {
        match self {
            Tls::Disable => SslMode::Disable,
            Tls::Unverified(mode) => *mode,
            Tls::Verified { .. } => SslMode::Require,
        }
    }
}

/// Takes `sslmode` and `sslrootcert` out of the uri's query (tokio-postgres knows neither
/// `verify-*` nor `sslrootcert`): the uri left for tokio-postgres, and what TLS must do.
pub(crate) fn split(uri: &str) -> Result<(String, Tls)> {
    let (head, query) = uri.split_once('?').unwrap_or((uri, ""));
    let (mut mode, mut root) = (None::<String>, None::<String>);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(decode(value)),
            "sslrootcert" => root = Some(decode(value)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(Error::invalid(format!(
                    "unsupported PostgreSQL uri parameter '{key}': client certificates and \
                     revocation lists are not supported; use a password"
                )));
            }
            _ => kept.push(pair),
        }
    }
    let roots = || match root.as_deref() {
        Some("system") => Ok(Roots::System),
        Some(path) => Ok(Roots::File(path.into())),
        None => default_root()
            .map(Roots::File)
            .ok_or_else(|| Error::invalid("sslmode verify-ca and verify-full need sslrootcert")),
    };
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" => Tls::Disable,
        "allow" | "prefer" => Tls::Unverified(SslMode::Prefer),
        "require" if root.is_none() => Tls::Unverified(SslMode::Require),
        "require" | "verify-ca" => Tls::Verified {
            roots: roots()?,
            host: false,
        },
        "verify-full" => Tls::Verified {
            roots: roots()?,
            host: true,
        },
        other => {
            return Err(Error::invalid(format!(
                "invalid sslmode '{other}': expected disable, allow, prefer, require, verify-ca \
                 or verify-full"
            )));
        }
    };
    let uri = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((uri, tls))
}

/// libpq's default root file.
fn default_root() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".postgresql/root.crt"))
}

/// `%XX` escapes decoded (a path in a query may carry them).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for `tls`: `None` when TLS is disabled.
pub(crate) fn connector(tls: &Tls) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("cannot set up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match tls {
        Tls::Disable => return Ok(None),
        Tls::Unverified(_) => Arc::new(Unverified(provider.signature_verification_algorithms)),
        Tls::Verified { roots, host } => {
            let mut store = RootCertStore::empty();
            match roots {
                Roots::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                Roots::File(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                        .map_err(|e| {
                            Error::invalid(format!(
                                "cannot read the root certificates '{}': {e}",
                                path.display()
                            ))
                        })?;
                    let (added, _) = store.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(Error::invalid(format!(
                            "'{}' holds no certificate",
                            path.display()
                        )));
                    }
                }
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider,
            )
            .build()
            .map_err(|e| Error::internal(format!("cannot set up TLS: {e}")))?;
            if *host {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// `prefer` and `require` without roots: any certificate, as libpq accepts (the handshake's
/// signatures are still checked, so the session is encrypted to whoever holds the key).
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name in the certificate is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_read_as_libpq_reads_them() {
        let file = |p: &str| Roots::File(p.into());
        for (uri, want_uri, want) in [
            (
                "postgresql://u@h/db",
                "postgresql://u@h/db",
                Tls::Unverified(SslMode::Prefer),
            ),
            (
                "postgresql://u@h/db?sslmode=disable&application_name=x",
                "postgresql://u@h/db?application_name=x",
                Tls::Disable,
            ),
            (
                "postgresql://u@h/db?sslmode=require",
                "postgresql://u@h/db",
                Tls::Unverified(SslMode::Require),
            ),
            (
                "postgresql://u@h/db?sslmode=require&sslrootcert=/ca.pem",
                "postgresql://u@h/db",
                Tls::Verified {
                    roots: file("/ca.pem"),
                    host: false,
                },
            ),
            (
                "postgresql://u@h/db?sslrootcert=%2Fetc%2Fca%20x.pem&sslmode=verify-ca",
                "postgresql://u@h/db",
                Tls::Verified {
                    roots: file("/etc/ca x.pem"),
                    host: false,
                },
            ),
            (
                "postgresql://u@h/db?connect_timeout=3&sslmode=verify-full&sslrootcert=system",
                "postgresql://u@h/db?connect_timeout=3",
                Tls::Verified {
                    roots: Roots::System,
                    host: true,
                },
            ),
        ] {
            let (rest, tls) = split(uri).unwrap();
            assert_eq!((rest.as_str(), &tls), (want_uri, &want), "{uri}");
        }
        let e = split("postgresql://h/db?sslmode=verify").unwrap_err();
        assert!(e.message.contains("invalid sslmode 'verify'"), "{e}");
        let e = split("postgresql://h/db?sslcert=/c.pem").unwrap_err();
        assert!(e.message.contains("'sslcert'"), "{e}");
    }

    #[test]
    fn a_missing_root_file_is_refused_in_one_line() {
        let tls = Tls::Verified {
            roots: Roots::File("/no/such/root.crt".into()),
            host: true,
        };
        let e = connector(&tls).err().unwrap();
        assert!(e.message.contains("/no/such/root.crt"), "{e}");
        assert!(connector(&Tls::Disable).unwrap().is_none());
        assert!(
            connector(&Tls::Unverified(SslMode::Require))
                .unwrap()
                .is_some()
        );
    }
}
