//! ESE errors as HTTP answers: every failure is a JSON body naming the ESE error, with a status
//! that says what a client can do about it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ese_actors::Error;

/// A failed request: the ESE error, the HTTP status it maps to, and a message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The ESE error (its `name()` and `code()` go into the body).
    pub error: Error,
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a human.
    pub message: String,
}

impl ApiError {
    /// An engine error with its usual status and message.
    pub fn engine(error: Error) -> ApiError {
        ApiError {
            status: status_of(&error),
            message: error.to_string(),
            error,
        }
    }

    /// The `{name, code, message}` object of the body (also a push's failed outcome).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.error.name(),
            "code": self.error.code(),
            "message": self.message,
        })
    }

    /// An error the router itself decided, with a status and message of its own.
    pub fn new(error: Error, status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::engine(e)
    }
}

/// The HTTP status of an engine error. 409 when the backup's state forbids the call (the client
/// should end or restart the sequence), 410 when the backup is gone, 503 when the instance is
/// stopping, 400 for a bad request, 500 for a fault on the server's side.
pub fn status_of(e: &Error) -> StatusCode {
    match e.code() {
        // InvalidParameter, InvalidGrbit, InvalidPath
        -1003 | -900 | -1023 => StatusCode::BAD_REQUEST,
        // BackupInProgress, BackupNotAllowedYet, InvalidBackupSequence, BackupAbortByServer
        // (the backup is stopped but still in progress until ended), BackupAbortByCaller,
        // LogFileNotCopied, OutOfMemory (another file is open), MissingFullBackup, InvalidBackup
        -505 | -523 | -521 | -801 | -800 | -616 | -1011 | -560 | -526 => StatusCode::CONFLICT,
        // NoBackup: the backup ended.
        -520 => StatusCode::GONE,
        // InvalidInstance: the instance is gone (or was never served here).
        -1115 => StatusCode::NOT_FOUND,
        // FileNotFound: a file id that is not in the backup's list.
        -1811 => StatusCode::NOT_FOUND,
        // ClientRequestToStopJetService, TermInProgress, NotInitialized, the unavailable family.
        -1329 | -1000 | -1029 | -1090 | -1092 | -510 => StatusCode::SERVICE_UNAVAILABLE,
        // AccessDenied (no or unknown token), PermissionDenied (wrong scope, or a push target
        // the host does not allow).
        -1907 => StatusCode::UNAUTHORIZED,
        -1809 => StatusCode::FORBIDDEN,
        // Everything else is the server's fault, the client can only retry or report it:
        // ReadVerifyFailure and LogReadVerifyFailure (a damaged page or log on the server),
        // MissingFileToBackup, DiskIO, DiskFull, InternalError, ...
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.body() });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_the_backup_errors() {
        assert_eq!(status_of(&Error::BackupInProgress), StatusCode::CONFLICT);
        assert_eq!(status_of(&Error::BackupAbortByServer), StatusCode::CONFLICT);
        assert_eq!(status_of(&Error::NoBackup), StatusCode::GONE);
        assert_eq!(
            status_of(&Error::ClientRequestToStopJetService),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status_of(&Error::InvalidParameter), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_body_names_the_error() {
        let res = ApiError::engine(Error::NoBackup).into_response();
        assert_eq!(res.status(), StatusCode::GONE);
    }
}
