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
                    // Only a rejected message is read a second time, to name the bad field.
                    serde_json::error::Category::Data => {
                        message_error::<T>(e, serde_json::from_slice::<Value>(&bytes).ok().as_ref())
                    }
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
    match T::deserialize(&value) {
        Ok(message) => Ok(message),
        Err(e) => Err(message_error::<T>(e, Some(&value))),
    }
}

/// What MLflow's handlers append to every request-validation message
/// (`_validate_param_against_schema`).
const SEE_DOCS: &str = " See the API docs for more information about request parameters.";

/// A required request parameter that is absent or empty, in MLflow's words.
pub fn missing_param(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{name}'.{SEE_DOCS}"
    ))
}

/// The value of a required string parameter, or MLflow's error for its absence.
pub fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_param(name))
}

/// A parameter of the wrong JSON type, in MLflow's words: `Invalid value 31 for parameter
/// 'run_id' supplied:  Hint: Value was of type 'int'. See the API docs ...` (the value as
/// Python's `json.dumps(sort_keys=True)` writes it, the type by its Python name).
pub fn invalid_param_type(name: &str, value: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value {} for parameter '{name}' supplied:  Hint: Value was of type '{}'.{SEE_DOCS}",
        wasmflow_core::pyjson::dumps(value, wasmflow_core::pyjson::Style::CompactSorted),
        python_type(value)
    ))
}

/// A message that is valid JSON but not the message the endpoint takes. serde names neither
/// the field nor the value; when the message was a JSON object, the field is found by reading
/// each of its fields alone (this runs only for rejected requests).
fn message_error<T: DeserializeOwned>(e: serde_json::Error, value: Option<&Value>) -> ApiError {
    let msg = e.to_string();
    if let Some(field) = missing_field(&msg) {
        return missing_param(field);
    }
    if let Some(Value::Object(map)) = value {
        for (key, field_value) in map {
            let alone = Value::Object(Map::from_iter([(key.clone(), field_value.clone())]));
            if let Err(e) = T::deserialize(&alone)
                && missing_field(&e.to_string()).is_none()
            {
                return invalid_param_type(key, field_value);
            }
        }
    }
    ApiError::invalid(format!("Invalid request: {msg}"))
}

fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// Python's name for the type a JSON value decodes to.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
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

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Msg {
        run_id: Option<String>,
        key: String,
        #[serde(default)]
        tags: Vec<Value>,
    }

    fn error_of(v: Value) -> String {
        from_json::<Msg>(v).unwrap_err().0.message
    }

    #[test]
    fn type_errors_name_the_field_as_mlflow_does() {
        assert_eq!(
            error_of(serde_json::json!({"key": "k", "run_id": 31})),
            "Invalid value 31 for parameter 'run_id' supplied:  Hint: Value was of type 'int'. \
             See the API docs for more information about request parameters."
        );
        assert_eq!(
            error_of(serde_json::json!({"run_id": {"b": "é", "a": [1.5, null]}})),
            "Invalid value {\"a\":[1.5,null],\"b\":\"\\u00e9\"} for parameter 'run_id' supplied:  \
             Hint: Value was of type 'dict'. See the API docs for more information about request \
             parameters."
        );
        assert_eq!(
            error_of(serde_json::json!({"run_id": "r"})),
            "Missing value for required parameter 'key'. See the API docs for more information \
             about request parameters."
        );
    }
}
