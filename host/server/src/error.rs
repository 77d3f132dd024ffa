//! The one API error type, answered in MLflow's shape: `{"error_code": ..., "message": ...,
//! "sqlstate": ..., "error_class": ...}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wasmflow_core::{Error, ErrorCode};

#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(Error::invalid(message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Error { code, message } = self.0;
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Internal details (SQL, paths, I/O) go to the log, not to the client.
        let message = if code == ErrorCode::InternalError {
            tracing::error!("internal error: {message}");
            "internal server error; see the server log".to_string()
        } else {
            message
        };
        (status, Json(error_body(code, message))).into_response()
    }
}

/// An error's JSON as MLflow's `MlflowException.serialize_as_json` writes it: the code, the
/// message, and MLflow 3's classification of the code where it has one.
pub fn error_body(code: ErrorCode, message: impl Into<String>) -> serde_json::Value {
    let mut body = json!({ "error_code": code.as_str(), "message": message.into() });
    if let Some(sqlstate) = code.sqlstate() {
        body["sqlstate"] = json!(sqlstate);
    }
    if let Some(class) = code.error_class() {
        body["error_class"] = json!(class);
    }
    body
}

/// Answers paths that no route matches, in MLflow's shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::new(
        ErrorCode::EndpointNotFound,
        format!("no endpoint at '{}'", uri.path()),
    ))
}
