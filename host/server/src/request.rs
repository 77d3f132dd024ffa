//! Reading MLflow requests: JSON bodies for POST/PATCH, query strings for GET, one extractor for
//! both, so every malformed request gets MLflow's error shape instead of the framework's.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The request message, from the query string (GET, DELETE) or the JSON body.
pub struct Message<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Message<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET || req.method() == Method::DELETE {
            return from_json(query_to_json(req.uri().query().unwrap_or(""))).map(Message);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("cannot read the request body: {e}")))?;
        // The usual body is a JSON object: read the message straight from it rather than through
        // a `Value`, which would copy every metric of a 1,000-metric log-batch once more.
        if bytes.trim_ascii_start().starts_with(b"{") {
            return serde_json::from_slice(&bytes)
                .map(Message)
                .map_err(|e| match e.classify() {
                    serde_json::error::Category::Data => message_error(e),
                    _ => ApiError::invalid(format!("malformed JSON in the request body: {e}")),
                });
        }
        from_json(body_to_json(&bytes)?).map(Message)
    }
}

/// Parses a JSON body; an empty body is an empty message, as in MLflow.
pub fn body_to_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("malformed JSON in the request body: {e}")))?;
    // Older clients post their JSON double-encoded as a string; MLflow decodes it again.
    match value {
        Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| ApiError::invalid(format!("malformed JSON in the request body: {e}"))),
        Value::Object(_) => Ok(value),
        other => Err(ApiError::invalid(format!(
            "the request body must be a JSON object, not '{other}'"
        ))),
    }
}

/// Query pairs as a JSON object; a repeated key becomes a list.
pub fn query_to_json(query: &str) -> Value {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        match map.get_mut(&key) {
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
            None => {
                map.insert(key, Value::String(value));
            }
        }
    }
    Value::Object(map)
}

/// Deserializes a message, turning serde's complaints into MLflow-style messages.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(message_error)
}

/// A message that is valid JSON but not the message the endpoint takes.
fn message_error(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        ApiError::invalid(format!("Missing value for required parameter '{field}'."))
    } else {
        ApiError::invalid(format!("Invalid request: {msg}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_repeats_become_lists() {
        let v = query_to_json("run_ids=a&run_ids=b&metric_key=loss%2Ftrain&x=a+b");
        assert_eq!(v["run_ids"], serde_json::json!(["a", "b"]));
        assert_eq!(v["metric_key"], "loss/train");
        assert_eq!(v["x"], "a b");
    }

    #[test]
    fn bodies() {
        assert_eq!(body_to_json(b"").unwrap(), serde_json::json!({}));
        assert_eq!(
            body_to_json(br#""{\"a\": 1}""#).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert!(body_to_json(b"{nope").is_err());
        assert!(body_to_json(b"[1]").is_err());
    }
}
