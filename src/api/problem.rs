//! The one place where errors become HTTP answers: RFC 9457 problem documents
//! (`application/problem+json`) with `type`, `title`, `status`, `detail` and,
//! for bad input, an `errors` list naming each field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::services::ServiceError;
use crate::validation::{FieldError, Invalid};

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/invalid-input`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Every field that was wrong, for input errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error as the HTTP layer answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// 422: the request was well-formed but its values are not acceptable.
    pub fn invalid(invalid: Invalid) -> Self {
        let detail = invalid
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors: invalid.0,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
                detail,
            )
        }
    }

    /// 400: the request could not be read at all (bad JSON syntax, bad multipart, bad id).
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail.clone(),
        )
        .with_field(field, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::invalid(e)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(inv) => Self::invalid(inv),
            ServiceError::NotFound { what, field, id } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("no {what} with id {id}"),
            )
            .with_field(field, format!("no {what} with id {id}")),
            ServiceError::Conflict { field, detail } => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail.clone())
                    .with_field(field, detail)
            }
            ServiceError::TooLarge { field, limit } => {
                let detail = format!("the upload exceeds the limit of {limit} bytes");
                Self::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "Payload too large",
                    detail.clone(),
                )
                .with_field(field, detail)
            }
            ServiceError::Unavailable(detail) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                detail,
            ),
            ServiceError::Internal(err) => {
                // The cause chain goes to the log; the client gets a generic title.
                tracing::error!(error = ?err, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal server error",
                    "the server failed to complete the request; see its log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("/problems/{}", self.slug),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}
