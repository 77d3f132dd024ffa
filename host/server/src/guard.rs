//! Protection from hostile web pages, as MLflow 3's security middleware gives it, with or without
//! authentication: any page a user visits can make their browser send requests to a server on
//! their machine or network.
//!
//! - **DNS rebinding**: a page on `attacker.example` whose name is re-pointed at 127.0.0.1 sends
//!   `Host: attacker.example`. Requests whose `Host` is not allowed (`--allowed-hosts`; by default
//!   localhost names, private-network addresses and the bind address, with any port) are answered
//!   403, except `/health` and `/version`.
//! - **Cross-site writes**: a page can POST a `text/plain` "simple" request without a preflight.
//!   State-changing requests (POST, PUT, PATCH, DELETE) whose `Origin` is another site are answered
//!   403 unless the origin is a localhost one, the server's own (the UI), or allowed with
//!   `--cors-allowed-origins`. Allowed origins get CORS headers and answered preflights.
//! - **Framing and sniffing**: every answer carries `X-Content-Type-Options: nosniff` and
//!   `X-Frame-Options` (`--x-frame-options`, `SAMEORIGIN` by default, `NONE` to leave it out).
//!
//! The texts and statuses of the refusals are MLflow's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// MLflow's answer to a request whose `Host` is not allowed.
pub const INVALID_HOST_MSG: &str = "Invalid Host header - possible DNS rebinding attack detected";
/// MLflow's answer to a state-changing request from an origin that is not allowed.
pub const CORS_BLOCKED_MSG: &str = "Cross-origin request blocked";
/// Paths every `Host` may ask (load balancers' health checks use addresses of their own).
const HEALTH_ENDPOINTS: [&str; 2] = ["/health", "/version"];
const ALLOWED_METHODS: &str = "DELETE, GET, OPTIONS, PATCH, POST, PUT";

/// The flags, with MLflow's names and environment variables.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GuardArgs {
    /// `Host` headers the server answers, comma-separated; `*` is a wildcard (`*.corp.example`,
    /// `mlflow.corp.example:*`), and `*` alone allows every host. Default: localhost, 127.0.0.1,
    /// [::1], 0.0.0.0, private-network addresses (10.*, 172.16-31.*, 192.168.*) and the
    /// `--host` address, each with any port.
    #[arg(long, env = "MLFLOW_SERVER_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins (`https://app.corp.example`) allowed to make cross-origin requests, comma-separated;
    /// `*` is a wildcard, and `*` alone allows every origin. Localhost origins and the server's
    /// own are always allowed.
    #[arg(
        long,
        env = "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// The X-Frame-Options header of every answer: SAMEORIGIN, DENY, or NONE to send none.
    #[arg(
        long,
        env = "MLFLOW_SERVER_X_FRAME_OPTIONS",
        default_value = "SAMEORIGIN"
    )]
    pub x_frame_options: String,
    /// Turn the Host and Origin checks and the security headers off (behind a proxy that does
    /// them).
    #[arg(long, env = "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE")]
    pub disable_security_middleware: bool,
}

/// The checks, built once from the flags.
#[derive(Debug)]
pub struct Guard {
    /// `None`: every host is allowed.
    hosts: Option<Vec<String>>,
    /// `None`: every origin is allowed.
    origins: Option<Vec<String>>,
    frame_options: Option<HeaderValue>,
    /// Whether the Host and Origin checks run (the headers are always added).
    checks: bool,
    enabled: bool,
}

impl Guard {
    /// The checks of `args` for a server bound to `bind_host` (the `--host` value).
    pub fn new(args: &GuardArgs, bind_host: &str) -> anyhow::Result<Arc<Self>> {
        let frame_options = match args.x_frame_options.trim().to_ascii_uppercase() {
            none if none == "NONE" || none.is_empty() => None,
            value => Some(HeaderValue::from_str(&value).map_err(|_| {
                anyhow::anyhow!("invalid --x-frame-options '{}'", args.x_frame_options)
            })?),
        };
        let list = |given: &Option<Vec<String>>| -> Option<Vec<String>> {
            given.as_ref().map(|items| {
                items
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        let hosts = match list(&args.allowed_hosts) {
            Some(hosts) if hosts.iter().any(|h| h == "*") => None,
            Some(hosts) if !hosts.is_empty() => Some(hosts),
            _ => Some(default_hosts(bind_host)),
        };
        let origins = match list(&args.cors_allowed_origins) {
            Some(origins) if origins.iter().any(|o| o == "*") => None,
            Some(origins) => Some(origins),
            None => Some(Vec::new()),
        };
        Ok(Arc::new(Self {
            hosts,
            origins,
            frame_options,
            checks: true,
            enabled: !args.disable_security_middleware,
        }))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match &self.hosts {
            None => true,
            Some(patterns) => !host.is_empty() && patterns.iter().any(|p| wildcard(p, &host)),
        }
    }

    /// Whether `origin` may read answers and change state: localhost, the server's own (the
    /// `Host` the request was sent to, already checked), or an allowed one.
    fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let Some(authority) = authority(&origin) else {
            // `null` (sandboxed frames, file: pages) and anything unparsable.
            return self.origins.is_none();
        };
        let localhost = matches!(host_part(authority), "localhost" | "127.0.0.1" | "[::1]");
        localhost
            || authority == host.to_ascii_lowercase()
            || match &self.origins {
                None => true,
                Some(allowed) => allowed.iter().any(|p| wildcard(p, &origin)),
            }
    }
}

/// MLflow's default hosts, with the bind address added.
fn default_hosts(bind_host: &str) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]
        .map(String::from)
        .into();
    let bind = bind_host.trim().to_ascii_lowercase();
    let bind = match bind.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => bind,
    };
    if !bind.is_empty() && bind != "[::]" && !names.contains(&bind) {
        names.push(bind);
    }
    let mut hosts: Vec<String> = names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}:*")])
        .collect();
    // RFC 1918 and RFC 4193 private networks: a rebinding page sends its own name, never these.
    hosts.extend(["192.168.*".into(), "10.*".into()]);
    hosts.extend((16..32).map(|i| format!("172.{i}.*")));
    hosts.extend(["[fc*".into(), "[fd*".into()]);
    hosts
}

/// `scheme://authority` of an origin; `None` if it is not one.
fn authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some(rest)
}

/// The host of `host[:port]`, brackets kept for IPv6.
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Shell-style matching as MLflow's fnmatch does it, with `*` (any run) and `?` (any one
/// character); a pattern without them must equal the text.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match backtrack {
                Some((star, at)) => {
                    pi = star + 1;
                    ti = at + 1;
                    backtrack = Some((star, at + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

fn forbidden(message: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain")],
        message,
    )
        .into_response()
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, guard::check)`.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if !guard.enabled {
        return next.run(request).await;
    }
    if !guard.checks {
        let mut response = next.run(request).await;
        guard.add_headers(&mut response);
        return response;
    }
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string)
        .filter(|o| !o.is_empty());
    let allowed = origin.as_deref().map(|o| guard.origin_allowed(o, &host));

    let mut response =
        if !HEALTH_ENDPOINTS.contains(&request.uri().path()) && !guard.host_allowed(&host) {
            tracing::warn!("rejected a request with the Host header '{host}' (--allowed-hosts)");
            forbidden(INVALID_HOST_MSG)
        } else {
            match allowed {
                Some(false) if state_changing(request.method()) => {
                    tracing::warn!(
                        "blocked a cross-origin {} from '{}' (--cors-allowed-origins)",
                        request.method(),
                        origin.as_deref().unwrap_or_default()
                    );
                    forbidden(CORS_BLOCKED_MSG)
                }
                Some(allowed) if is_preflight(&request) => preflight(allowed, request.headers()),
                _ => next.run(request).await,
            }
        };
    if let (Some(origin), Some(true)) = (&origin, allowed) {
        guard.add_cors_headers(&mut response, origin);
    }
    guard.add_headers(&mut response);
    response
}

impl Guard {
    /// The same checks' headers only, for `models serve`: MLflow's scoring server has no Host
    /// or Origin checks (it is reached by service names in clusters).
    pub fn headers_only(args: &GuardArgs) -> anyhow::Result<Arc<Self>> {
        let full = Self::new(args, "")?;
        Ok(Arc::new(Self {
            checks: false,
            hosts: None,
            origins: None,
            frame_options: full.frame_options.clone(),
            enabled: full.enabled,
        }))
    }

    fn add_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(frame) = &self.frame_options {
            headers.insert(header::X_FRAME_OPTIONS, frame.clone());
        }
    }

    /// An allowed origin's CORS headers: the origin itself, with credentials, or `*` without
    /// them when every origin is allowed (wildcard origins with credentials break the spec).
    fn add_cors_headers(&self, response: &mut Response, origin: &str) {
        let Ok(value) = HeaderValue::from_str(origin) else {
            return;
        };
        let headers = response.headers_mut();
        if self.origins.is_none() {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("*"),
        );
    }
}

fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// A preflight's answer, as MLflow's (Starlette's) CORS middleware gives it: 204 with the
/// methods and the requested headers for an allowed origin (its Allow-Origin header is added
/// with every allowed origin's answer), 400 for another.
fn preflight(allowed: bool, headers: &HeaderMap) -> Response {
    if !allowed {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            "Disallowed CORS origin",
        )
            .into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// Logs, loudly, that a server without authentication can be reached from other machines.
pub fn warn_if_exposed(addr: SocketAddr, authenticated: bool) {
    if !addr.ip().is_loopback() && !authenticated {
        tracing::warn!(
            "listening on {addr}, which other machines can reach, WITHOUT authentication: anyone \
             who can connect can read, change and delete every experiment, run, model and \
             plugin. Listen on 127.0.0.1 (the default) or put an authenticating proxy in front"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(hosts: Option<&str>, origins: Option<&str>, bind: &str) -> Arc<Guard> {
        let split = |s: &str| s.split(',').map(String::from).collect();
        Guard::new(
            &GuardArgs {
                allowed_hosts: hosts.map(split),
                cors_allowed_origins: origins.map(split),
                x_frame_options: "SAMEORIGIN".into(),
                disable_security_middleware: false,
            },
            bind,
        )
        .unwrap()
    }

    #[test]
    fn wildcards_match_as_fnmatch_does() {
        assert!(wildcard("localhost", "localhost"));
        assert!(!wildcard("localhost", "localhost:5000"));
        assert!(wildcard("localhost:*", "localhost:5000"));
        assert!(wildcard("*.corp.example", "mlflow.corp.example"));
        assert!(!wildcard("*.corp.example", "corp.example.evil.net"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
        assert!(wildcard("10.*", "10.1.2.3:5000"));
        assert!(wildcard("h?st", "host"));
        assert!(wildcard("*", ""));
    }

    #[test]
    fn default_hosts_are_localhost_private_networks_and_the_bind_address() {
        let g = guard(None, None, "mlflow.corp.example");
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "192.168.1.20:5000",
            "172.20.0.5",
            "mlflow.corp.example:5000",
            "LOCALHOST:5000",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "rebind.attacker.net",
            "rebind.attacker.net:5000",
            "172.32.0.1",
            "",
            "localhost.attacker.net",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        assert!(guard(None, None, "::").host_allowed("[::1]:1"));
        assert!(guard(None, None, "2001:db8::5").host_allowed("[2001:db8::5]:5000"));
    }

    #[test]
    fn given_hosts_replace_the_defaults_and_star_allows_all() {
        let g = guard(Some("mlflow.corp.example, *.internal"), None, "127.0.0.1");
        assert!(g.host_allowed("mlflow.corp.example"));
        assert!(g.host_allowed("a.internal"));
        assert!(!g.host_allowed("localhost:5000"));
        assert!(guard(Some("*"), None, "127.0.0.1").host_allowed("anything"));
    }

    #[test]
    fn origins_localhost_same_origin_and_allowed_pass_others_do_not() {
        let g = guard(
            None,
            Some("https://app.corp.example,https://*.tools.example"),
            "0.0.0.0",
        );
        let host = "192.168.1.20:5000";
        assert!(g.origin_allowed("http://localhost:3000", host));
        assert!(g.origin_allowed("http://127.0.0.1", host));
        assert!(g.origin_allowed("http://[::1]:8080", host));
        assert!(g.origin_allowed("http://192.168.1.20:5000", host));
        assert!(g.origin_allowed("https://app.corp.example", host));
        assert!(g.origin_allowed("https://x.tools.example", host));
        assert!(!g.origin_allowed("http://evil.example.com", host));
        assert!(!g.origin_allowed("http://localhost.evil.example.com", host));
        assert!(!g.origin_allowed("null", host));
        assert!(!g.origin_allowed("http://192.168.1.20:5001", host));
        let any = guard(None, Some("*"), "127.0.0.1");
        assert!(any.origin_allowed("http://evil.example.com", host));
    }

    /// A POST route and a GET route behind the guard of `guard(None, origins, "127.0.0.1")`.
    async fn ask(
        origins: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route("/api/2.0/x", axum::routing::post(|| async { "changed" }))
            .route("/health", axum::routing::get(|| async { "OK" }))
            .layer(axum::middleware::from_fn_with_state(
                guard(None, origins, "127.0.0.1"),
                check,
            ));
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn hostile_requests_get_mlflows_refusals_with_the_headers() {
        let host = ("host", "rebind.attacker.net");
        let r = ask(None, "POST", "/api/2.0/x", &[host]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(text(r).await, INVALID_HOST_MSG);
        let r = ask(None, "GET", "/health", &[host]).await;
        assert_eq!(r.status(), StatusCode::OK);

        let local = ("host", "127.0.0.1:5000");
        let evil = ("origin", "http://evil.example.com");
        let r = ask(None, "POST", "/api/2.0/x", &[local, evil]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(text(r).await, CORS_BLOCKED_MSG);
        // Reads are answered, without CORS headers: the browser keeps them from the page.
        let r = ask(None, "GET", "/health", &[local, evil]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.headers().contains_key("access-control-allow-origin"));
        // Clients that send no Origin (the official client, curl) are not browsers' pages.
        let r = ask(None, "POST", "/api/2.0/x", &[local]).await;
        assert_eq!(text(r).await, "changed");
    }

    #[tokio::test]
    async fn allowed_origins_get_cors_headers_and_preflights() {
        let local = ("host", "127.0.0.1:5000");
        let app = ("origin", "https://app.example.com");
        let origins = Some("https://app.example.com");
        let r = ask(origins, "POST", "/api/2.0/x", &[local, app]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        let preflight = [
            local,
            app,
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ];
        let r = ask(origins, "OPTIONS", "/api/2.0/x", &preflight).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["access-control-allow-headers"], "content-type");
        assert!(
            r.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        let mut foreign = preflight;
        foreign[1] = ("origin", "http://evil.example.com");
        let r = ask(origins, "OPTIONS", "/api/2.0/x", &foreign).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        // `*`: every origin, without credentials.
        let evil = ("origin", "http://evil.example.com");
        let r = ask(Some("*"), "POST", "/api/2.0/x", &[local, evil]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(!r.headers().contains_key("access-control-allow-credentials"));
    }

    #[test]
    fn frame_options_none_sends_none_and_bad_values_are_refused() {
        let mut args = GuardArgs {
            x_frame_options: "none".into(),
            ..Default::default()
        };
        assert!(
            Guard::new(&args, "127.0.0.1")
                .unwrap()
                .frame_options
                .is_none()
        );
        args.x_frame_options = "deny".into();
        assert_eq!(
            Guard::new(&args, "127.0.0.1").unwrap().frame_options,
            Some(HeaderValue::from_static("DENY"))
        );
        args.x_frame_options = "a\nb".into();
        assert!(Guard::new(&args, "127.0.0.1").is_err());
    }
}
