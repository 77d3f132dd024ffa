//! Opaque page tokens: base64 of `{"offset": N}`, the shape MLflow's SQL store uses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, Result};

/// Encodes the offset of the next page.
pub fn encode_token(offset: u64) -> String {
    STANDARD.encode(serde_json::json!({ "offset": offset }).to_string())
}

/// Decodes a page token; an empty or missing token is the first page.
pub fn decode_token(token: Option<&str>) -> Result<u64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || Error::invalid(format!("invalid page token '{token}'"));
    let bytes = STANDARD.decode(token).map_err(|_| bad())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value.get("offset").and_then(|v| v.as_u64()).ok_or_else(bad)
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
        assert!(err.message.contains("not-base64!"));
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
