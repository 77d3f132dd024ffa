//! The web UI: static files compiled into the binary (`host/server/ui/assets`), served at `/`.
//! The one query it needs that MLflow's REST API cannot answer, run counts, is
//! `tracking::run_counts`.
//!
//! The UI routes with the URL's fragment (`/#/experiments/1`), so the server only ever serves
//! `index.html` at `/` and files under `/ui/`; every other unknown path stays an API 404.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use crate::state::AppState;

static ASSETS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/ui/assets");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*path}", get(asset))
}

/// An embedded file with its content type and strong ETag (a digest of its bytes).
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
    immutable: bool,
}

fn assets() -> &'static HashMap<String, Asset> {
    static TABLE: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        collect(&ASSETS, &mut table);
        table
    })
}

fn collect(dir: &'static Dir<'static>, table: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        let digest = Sha256::digest(file.contents());
        let etag = format!("\"{}\"", hex(&digest[..16]));
        table.insert(
            path.clone(),
            Asset {
                body: file.contents(),
                content_type: content_type(&path),
                etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
                // Vendored libraries sit under a directory named by their version, so a URL
                // never changes its content; the UI's own files change with each build.
                immutable: path.starts_with("vendor/"),
            },
        );
    }
    for sub in dir.dirs() {
        collect(sub, table);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = assets().get(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI file at '/ui/{path}'"),
        )
            .into_response();
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        // Revalidate every time: a new binary may carry a new UI under the same names.
        "no-cache"
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().as_bytes() == asset.etag.as_bytes())
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type() {
        let table = assets();
        assert!(table.contains_key("index.html"));
        for (path, asset) in table {
            if path.ends_with(".js") || path.ends_with(".css") || path.ends_with(".html") {
                assert!(
                    !asset.content_type.starts_with("text/plain"),
                    "{path} is served as {}",
                    asset.content_type
                );
            }
        }
    }
}
