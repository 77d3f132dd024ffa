//! Validation of client-supplied artifact paths: the first line of defence against traversal.
//!
//! A path is accepted only if it is a plain relative `/`-separated path that stays inside the
//! artifact root however many more times it is percent-decoded. The repositories add the second
//! line (no symlink components under the root, see `local.rs`).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use wasmflow_core::{Error, Result};

/// The URI scheme of artifacts behind the server's artifact proxy (`--serve-artifacts`).
pub const PROXY_SCHEME: &str = "mlflow-artifacts:";

/// Where an http(s) artifact root names the proxy: what `--default-artifact-root
/// http://host/api/2.0/mlflow-artifacts/artifacts/<path>` gives runs.
const PROXY_HTTP_ANCHOR: &str = "/api/2.0/mlflow-artifacts/artifacts/";

/// The path inside the proxied artifact root that a proxied artifact URI names, as MLflow's
/// server resolves it (`_get_proxied_run_artifact_destination_path`): `mlflow-artifacts:/1/x`
/// and `mlflow-artifacts://host/1/x` both name `1/x`, and so does
/// `http(s)://host/api/2.0/mlflow-artifacts/artifacts/1/x` (the path after the proxy's route).
/// `None` for a URI of another scheme, or an http(s) URL that is not the proxy's. The path is
/// not yet sanitized: it goes through a repository, which does.
pub fn proxied_path_of(uri: &str) -> Option<String> {
    if let Some(rest) = uri.strip_prefix(PROXY_SCHEME) {
        let rest = match rest.strip_prefix("//") {
            Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
            None => rest,
        };
        return Some(rest.trim_start_matches('/').to_string());
    }
    let (scheme, rest) = uri.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let (_, after) = path.split_once(PROXY_HTTP_ANCHOR)?;
    Some(after.trim_start_matches('/').to_string())
}

/// The local file system path a local artifact URI names (a plain path, `file:/p`,
/// `file:///p`, `file://localhost/p`), percent-decoded as MLflow's `local_file_uri_to_path`
/// does; `None` for any other URI.
pub fn local_path_of(uri: &str) -> Option<std::path::PathBuf> {
    let path = match uri.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let path = match rest.strip_prefix("//") {
                Some(with_host) => {
                    let (host, path) = with_host
                        .find('/')
                        .map_or((with_host, ""), |i| with_host.split_at(i));
                    if !host.is_empty() && host != "localhost" && host != "127.0.0.1" {
                        return None;
                    }
                    path
                }
                None => rest,
            };
            percent_decode_str(path).decode_utf8_lossy().into_owned()
        }
        // A scheme is a letter then letters, digits, `+`, `-` or `.`; anything else before
        // the colon is part of a path.
        Some((scheme, _))
            if scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            return None;
        }
        _ => uri.to_string(),
    };
    Some(std::path::PathBuf::from(path))
}

/// How many extra rounds of percent-decoding are inspected; a path still changing after that many
/// rounds is refused (MLflow's `_decode` gives up after 10 as well).
const MAX_DECODE_ROUNDS: usize = 10;

/// Validates a client-supplied artifact path and returns it normalised: relative, `/`-separated,
/// without empty or `.` components and without a trailing slash; `""` stands for the root.
///
/// The path is expected to be percent-decoded once already (by the HTTP layer). It is refused with
/// [`Error::invalid`] (`INVALID_PARAMETER_VALUE`) if it
/// - contains a NUL byte or a backslash,
/// - is absolute: starts with `/`, or with a Windows drive (`C:`, `C:\`, `C:/`); UNC paths
///   (`\\server`) contain backslashes and `//server` starts with `/`,
/// - contains a `..` component,
/// - would do any of the above after one or more further rounds of percent-decoding
///   (`%2e%2e/x`, `%252e%252e%252fetc`, `%2fetc`, `%5c`, `%00`), or is still changing after
///   ten such rounds.
///
/// The returned path is the once-decoded path (normalised), not a further-decoded one: a file
/// literally named `a%20b` stays `a%20b`.
pub fn sanitize_relative_path(path: &str) -> Result<String> {
    check_form(path, path, false)?;
    let mut current = Cow::Borrowed(path);
    let mut rounds = 0;
    loop {
        let decoded = percent_decode_str(&current).decode_utf8_lossy();
        if decoded == current {
            break;
        }
        rounds += 1;
        if rounds > MAX_DECODE_ROUNDS {
            return Err(invalid(path, "too many levels of percent-encoding"));
        }
        let decoded = Cow::Owned(decoded.into_owned());
        check_form(path, &decoded, true)?;
        current = decoded;
    }
    Ok(path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/"))
}

/// The error for a refused path, quoting it (escaped, so control characters cannot forge log lines).
pub(crate) fn invalid(path: &str, why: &str) -> Error {
    Error::invalid(format!(
        "invalid artifact path '{}': {why}",
        path.escape_debug()
    ))
}

/// Checks one form of the path (`form` is `original` or one of its further-decoded forms).
fn check_form(original: &str, form: &str, decoded: bool) -> Result<()> {
    let when = if decoded { " once percent-decoded" } else { "" };
    if form.contains('\0') {
        return Err(invalid(original, &format!("contains a NUL byte{when}")));
    }
    if form.contains('\\') {
        return Err(invalid(original, &format!("contains a backslash{when}")));
    }
    if form.starts_with('/') {
        return Err(invalid(original, &format!("is absolute{when}")));
    }
    if has_windows_drive(form) {
        return Err(invalid(
            original,
            &format!("starts with a Windows drive{when}"),
        ));
    }
    if form.split('/').any(|c| c == "..") {
        return Err(invalid(
            original,
            &format!("contains a '..' component{when}"),
        ));
    }
    Ok(())
}

/// `C:`, `c:foo`, `C:/x`: a drive letter and a colon at the start (absolute or drive-relative on
/// Windows; refused everywhere so that a store stays portable).
fn has_windows_drive(form: &str) -> bool {
    let bytes = form.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflow_core::ErrorCode;

    #[test]
    fn proxied_paths_drop_the_scheme_and_host() {
        assert_eq!(
            proxied_path_of("mlflow-artifacts:/1/abc").as_deref(),
            Some("1/abc")
        );
        assert_eq!(
            proxied_path_of("mlflow-artifacts://h:5000/1/x").as_deref(),
            Some("1/x")
        );
        assert_eq!(proxied_path_of("mlflow-artifacts:").as_deref(), Some(""));
        assert_eq!(proxied_path_of("s3://bucket/x"), None);
        assert_eq!(
            proxied_path_of("http://h:5000/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts")
                .as_deref(),
            Some("1/r/artifacts")
        );
        assert_eq!(
            proxied_path_of("HTTPS://h/prefix/api/2.0/mlflow-artifacts/artifacts/x?q=1").as_deref(),
            Some("x")
        );
        assert_eq!(proxied_path_of("http://h/other/1/x"), None);
    }

    #[test]
    fn local_paths() {
        let p = |u: &str| local_path_of(u).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(p("/tmp/a b").as_deref(), Some("/tmp/a b"));
        assert_eq!(p("mlruns/1").as_deref(), Some("mlruns/1"));
        assert_eq!(p("file:///tmp/a%20b").as_deref(), Some("/tmp/a b"));
        assert_eq!(p("file:/tmp/x").as_deref(), Some("/tmp/x"));
        assert_eq!(p("file://localhost/tmp/x").as_deref(), Some("/tmp/x"));
        assert_eq!(p("file://remote/tmp/x"), None);
        assert_eq!(p("mlflow-artifacts:/1"), None);
        assert_eq!(p("s3://b/k"), None);
    }

    fn rejected(path: &str) -> String {
        let err = sanitize_relative_path(path).expect_err(path);
        assert_eq!(err.code, ErrorCode::InvalidParameterValue, "{path}");
        assert!(
            err.message
                .starts_with(&format!("invalid artifact path '{}'", path.escape_debug())),
            "{path}: {}",
            err.message
        );
        err.message
    }

    #[test]
    fn normalises_plain_paths() {
        for (input, expected) in [
            ("", ""),
            (".", ""),
            ("./", ""),
            ("a", "a"),
            ("a/b/c.txt", "a/b/c.txt"),
            ("a//b///c", "a/b/c"),
            ("a/./b/.", "a/b"),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("...", "..."),
            ("..a/b..", "..a/b.."),
            ("a.b/.hidden", "a.b/.hidden"),
            ("100%.txt", "100%.txt"),
            ("a%20b", "a%20b"),
            ("a%2Fb", "a%2Fb"),
            ("model:v1/x", "model:v1/x"),
            ("ünïcødé/файл", "ünïcødé/файл"),
        ] {
            assert_eq!(sanitize_relative_path(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn rejects_parent_components() {
        for path in [
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "a/../b",
            "./..",
            "a//..//b",
        ] {
            assert!(rejected(path).contains("'..'"), "{path}");
        }
    }

    #[test]
    fn rejects_absolute_paths() {
        for path in ["/", "/etc/passwd", "//server/share", "///x"] {
            assert!(rejected(path).contains("absolute"), "{path}");
        }
        for path in ["C:", "C:/Windows", "c:foo", "Z:/x/y"] {
            assert!(rejected(path).contains("Windows drive"), "{path}");
        }
    }

    #[test]
    fn rejects_backslashes_and_nul() {
        for path in [
            "C:\\Windows",
            "\\\\server\\share",
            "a\\..\\b",
            "a\\b",
            "\\etc",
        ] {
            assert!(rejected(path).contains("backslash"), "{path}");
        }
        for path in ["a\0b", "\0", "a/b\0/../c"] {
            assert!(rejected(path).contains("NUL"), "{path}");
        }
    }

    #[test]
    fn rejects_encoded_traversal() {
        for path in [
            "%2e%2e/x",
            "%2E%2E/x",
            "%2e%2e%2fetc",
            "a/%2e%2e/%2e%2e/x",
            "..%2fetc",
            "%252e%252e%252fetc",
            "%25252e%25252e/x",
            "a%2f..%2f..%2fb",
        ] {
            assert!(rejected(path).contains("'..'"), "{path}");
        }
        for path in ["%2fetc/passwd", "%252fetc", "%2F"] {
            assert!(
                rejected(path).contains("absolute once percent-decoded"),
                "{path}"
            );
        }
        for path in ["a%5cb", "%5c%5cserver", "a%255c..%255cb"] {
            assert!(rejected(path).contains("backslash once"), "{path}");
        }
        assert!(rejected("a%00b").contains("NUL"));
        assert!(rejected("C%3a/x").contains("Windows drive"));
    }

    #[test]
    fn rejects_endless_encoding() {
        let mut path = String::from("a%20b");
        for _ in 0..MAX_DECODE_ROUNDS {
            path = path.replace('%', "%25");
        }
        assert!(rejected(&path).contains("percent-encoding"));
        // One level fewer is fine (and returned as given).
        let ok = path.replacen("%25", "%", 1);
        assert_eq!(sanitize_relative_path(&ok).unwrap(), ok);
    }
}
