//! The one place errors become HTTP: every refusal is an RFC 9457 `application/problem+json`
//! document with a stable `type` (`urn:stockhub:problem:<kind>`) and a detail that says what to
//! fix. Internal failures are logged once here and never echoed.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stockhub_store::{ItemError, StoreError};

pub const PROBLEM_TYPE_PREFIX: &str = "urn:stockhub:problem:";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:stockhub:problem:<kind>`, stable across versions.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For a refused batch: each refused item, by index.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Vec<ItemError>>,
    /// For insufficient stock: how many units are available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    errors: Option<Vec<ItemError>>,
    available: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            errors: None,
            available: None,
        }
    }

    pub fn invalid(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, detail)
    }

    /// A batch refused at the edge: every bad item, by index.
    pub fn batch(errors: Vec<ItemError>) -> Self {
        let detail = format!(
            "{} item(s) of the batch are invalid; nothing was applied: {}",
            errors.len(),
            summarize(&errors)
        );
        Self {
            errors: Some(errors),
            ..Self::invalid("invalid-batch", detail)
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

fn summarize(errors: &[ItemError]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| format!("[{}] {}", e.index, e.detail))
        .collect();
    let more = errors.len().saturating_sub(5);
    if more > 0 {
        format!("{} … and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let kind = e.kind();
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, kind, e.to_string()),
            StoreError::Invalid(_) => Self::invalid(kind, e.to_string()),
            StoreError::InsufficientStock { available, .. } => Self {
                available: Some(available),
                ..Self::new(StatusCode::CONFLICT, kind, e.to_string())
            },
            StoreError::StockConflict(_)
            | StoreError::ReservationExpired { .. }
            | StoreError::ReservationNotActive { .. }
            | StoreError::IdempotencyConflict => {
                Self::new(StatusCode::CONFLICT, kind, e.to_string())
            }
            StoreError::Batch(errors) => Self::batch(errors),
            StoreError::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, kind, e.to_string())
            }
            StoreError::Database { .. } => {
                tracing::error!(error = ?e, "database failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    kind,
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            available: self.available,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
