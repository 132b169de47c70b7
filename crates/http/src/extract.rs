//! Request bodies: read with a size limit, parsed as JSON, then shaped into a wire type, each
//! failure a precise problem. The parsed document is kept in canonical form (keys sorted,
//! no insignificant whitespace) for idempotency.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::problem::ApiError;
use crate::AppState;

/// A JSON body shaped as `T`, with its canonical form.
pub struct JsonBody<T> {
    pub value: T,
    pub canonical: Json,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.settings.body_limit_bytes;
        let bytes = read_limited(req.into_body(), limit).await?;
        let canonical = parse_json(&bytes)?;
        let value = shape(canonical.clone())?;
        Ok(Self { value, canonical })
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the request body is over the limit of {limit} bytes; split it into smaller batches"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable-body", format!("the request body could not be read: {e}"))
        }
    })
}

pub fn parse_json(bytes: &[u8]) -> Result<Json, ApiError> {
    // An empty body is an empty object: calls whose fields are all optional need not send one.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Shapes a parsed document into a wire type; the message names the field at fault.
pub fn shape<T: DeserializeOwned>(value: Json) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid(
            "invalid-request",
            format!("the request does not have the expected shape: {e}"),
        )
    })
}

/// A body's raw bytes, read with the size limit (webhooks: the signature covers these bytes).
pub struct RawBody(pub axum::body::Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_limited(req.into_body(), state.settings.body_limit_bytes)
            .await
            .map(Self)
    }
}

/// `axum::extract::Query` whose refusal is a problem document.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    format!("the query string is not valid: {}", e.body_text()),
                )
            })
    }
}

/// `axum::extract::Path` whose refusal is a problem document.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-path",
                    format!("a path parameter is not valid: {}", e.body_text()),
                )
            })
    }
}
