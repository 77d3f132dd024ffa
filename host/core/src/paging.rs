//! Opaque page tokens: base64 of `{"offset": N}`, the shape MLflow's SQL store uses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, Result};

/// Encodes the offset of the next page.
pub fn encode_token(offset: u64) -> String {
    STANDARD.encode(serde_json::json!({ "offset": offset }).to_string())
}

/// Decodes a page token; an empty or missing token is the first page. A bad token is refused
/// in the words of MLflow's `SearchUtils.parse_start_offset_from_page_token` (with Python's
/// `repr` of what it decoded), which every MLflow search with offset tokens uses.
pub fn decode_token(token: Option<&str>) -> Result<u64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    // Python's `b64decode` drops characters outside the alphabet before decoding.
    let kept: String = token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let bytes = STANDARD
        .decode(kept)
        .map_err(|_| Error::invalid("Invalid page token, could not base64-decode"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        Error::invalid(format!(
            "Invalid page token, decoded value={}",
            py_bytes(&bytes)
        ))
    })?;
    let parsed = || {
        Error::invalid(format!(
            "Invalid page token, parsed value={}",
            crate::pyjson::repr(&value)
        ))
    };
    let offset = value.get("offset").ok_or_else(parsed)?;
    // Python's `int()` of the offset; a falsy one (0, "", null) is refused as MLflow does.
    let n = match offset {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        serde_json::Value::Bool(b) => Some(i64::from(*b)),
        serde_json::Value::String(s) if !s.is_empty() => Some(
            s.trim()
                .parse::<i64>()
                .map_err(|_| Error::invalid(format!("Invalid page token, not stringable {s}")))?,
        ),
        _ => None,
    };
    match n {
        Some(0) | None => Err(parsed()),
        // A negative offset is no offset in SQL, as MLflow's SQL store passes it on.
        Some(n) => Ok(u64::try_from(n).unwrap_or(0)),
    }
}

/// Python's `repr` of bytes: `b'...'`.
fn py_bytes(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

/// Items of one page and the token of the next one, if there is more.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `LIMIT max_results + 1`, so that a full page with nothing
    /// after it carries no token.
    pub fn from_overfetched(mut rows: Vec<T>, offset: u64, max_results: usize) -> Self {
        let more = rows.len() > max_results;
        rows.truncate(max_results);
        let next_page_token = more.then(|| encode_token(offset + max_results as u64));
        Self {
            items: rows,
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        assert_eq!(decode_token(Some(&encode_token(42))).unwrap(), 42);
        assert_eq!(decode_token(None).unwrap(), 0);
        assert_eq!(decode_token(Some("")).unwrap(), 0);
    }

    #[test]
    fn garbage_token_is_invalid() {
        let err = decode_token(Some("not-base64!")).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::InvalidParameterValue);
        assert_eq!(err.message, "Invalid page token, could not base64-decode");
        // MLflow's words for each way a token is bad, with Python's reprs of what it read.
        let message = |token: &str| decode_token(Some(token)).unwrap_err().message;
        assert_eq!(
            message("bm90IGpzb24="),
            "Invalid page token, decoded value=b'not json'"
        );
        assert_eq!(
            message("eyJmb28iOiAxfQ=="),
            "Invalid page token, parsed value={'foo': 1}"
        );
        assert_eq!(
            message("eyJvZmZzZXQiOiAiYSJ9"),
            "Invalid page token, not stringable a"
        );
        assert_eq!(
            message(&STANDARD.encode(r#"{"offset": 0, "x": [true, null, "it's"]}"#)),
            r#"Invalid page token, parsed value={'offset': 0, 'x': [True, None, "it's"]}"#
        );
        // A negative offset is the first page, as on MLflow's SQLite store.
        assert_eq!(
            decode_token(Some(&STANDARD.encode(r#"{"offset": -1}"#))).unwrap(),
            0
        );
    }

    #[test]
    fn overfetched_page_has_token_only_when_more() {
        let page = Page::from_overfetched(vec![1, 2, 3], 0, 2);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(decode_token(page.next_page_token.as_deref()).unwrap(), 2);
        let last = Page::from_overfetched(vec![1, 2], 0, 2);
        assert!(last.next_page_token.is_none());
    }
}
