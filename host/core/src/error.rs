//! The one error type of the tracking domain, carrying MLflow's error codes.

use std::fmt;

/// MLflow's `ErrorCode` values (databricks.proto) that wasmflow answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InternalError,
    TemporarilyUnavailable,
    BadRequest,
    InvalidParameterValue,
    EndpointNotFound,
    MalformedRequest,
    InvalidState,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    NotImplemented,
    PermissionDenied,
}

impl ErrorCode {
    /// The code as MLflow spells it on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternalError => "INTERNAL_ERROR",
            Self::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            Self::BadRequest => "BAD_REQUEST",
            Self::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Self::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::InvalidState => "INVALID_STATE",
            Self::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Self::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::PermissionDenied => "PERMISSION_DENIED",
        }
    }

    /// The HTTP status MLflow's server answers this code with (`mlflow/exceptions.py`).
    pub fn http_status(self) -> u16 {
        match self {
            // MLflow answers INVALID_STATE with 500, odd as that is; clients key on the code.
            Self::InternalError | Self::InvalidState => 500,
            Self::TemporarilyUnavailable => 503,
            Self::BadRequest
            | Self::InvalidParameterValue
            | Self::MalformedRequest
            | Self::ResourceAlreadyExists => 400,
            Self::EndpointNotFound | Self::ResourceDoesNotExist => 404,
            Self::NotImplemented => 501,
            Self::PermissionDenied => 403,
        }
    }
}

impl ErrorCode {
    /// The `error_class` MLflow 3.17's server adds to an error it answers with, derived from
    /// the code as `MlflowException` derives it (`mlflow/error_classification.py`, its
    /// client-side table); `None` where MLflow adds none. A client that gets no class derives
    /// another one (the control plane's, `CP_...`), so leaving it out is not the same answer.
    pub fn error_class(self) -> Option<&'static str> {
        Some(match self {
            Self::BadRequest | Self::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Self::EndpointNotFound | Self::ResourceDoesNotExist => "RESOURCE_NOT_FOUND",
            Self::InternalError | Self::InvalidState | Self::TemporarilyUnavailable => {
                "CLIENT_INTERNAL_ERROR"
            }
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Self::MalformedRequest | Self::NotImplemented => return None,
        })
    }

    /// The `sqlstate` MLflow 3.17's server adds next to [`ErrorCode::error_class`]: `XXM00` for
    /// its internal errors, `KAM00` for the rest of the codes it classifies.
    pub fn sqlstate(self) -> Option<&'static str> {
        Some(match self.error_class()? {
            "CLIENT_INTERNAL_ERROR" => "XXM00",
            _ => "KAM00",
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a client can act on, or an internal one whose details stay in the server log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}
