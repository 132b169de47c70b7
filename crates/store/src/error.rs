//! The store's errors. Business refusals carry what the operator needs to fix the request; the
//! database's own failures keep their source and are logged once by the HTTP layer.

/// Where in a batch a refusal applies, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemError {
    pub index: usize,
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {key:?} does not exist")]
    NotFound { what: &'static str, key: String },
    #[error("{0}")]
    Invalid(String),
    #[error("only {available} of {requested} units of {sku} are available on channel {channel}")]
    InsufficientStock {
        sku: String,
        channel: String,
        requested: i64,
        available: i64,
    },
    #[error("{0}")]
    StockConflict(String),
    #[error(
        "reservation {id} expired at {expires_at_ms} (database clock); it cannot be confirmed"
    )]
    ReservationExpired { id: String, expires_at_ms: i64 },
    #[error("reservation {id} is {status}; only an active reservation can be {action}")]
    ReservationNotActive {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error("this idempotency key was used before with a different request body")]
    IdempotencyConflict,
    #[error("{} item(s) of the batch were refused; nothing was applied", .0.len())]
    Batch(Vec<ItemError>),
    #[error("database error: {context}")]
    Database {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the store is shutting down")]
    Unavailable,
}

impl StoreError {
    pub fn not_found(what: &'static str, key: impl Into<String>) -> Self {
        Self::NotFound {
            what,
            key: key.into(),
        }
    }

    pub fn database(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Database {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// The stable, short name of the refusal, used as the tail of a problem `type` and as the
    /// `kind` of a batch item.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { what, .. } => match *what {
                "sku" => "unknown-sku",
                "location" => "unknown-location",
                "channel" => "unknown-channel",
                "order" => "unknown-order",
                "order line" => "unknown-order-line",
                "reservation" => "unknown-reservation",
                "unmapped line" => "unknown-unmapped-line",
                "product" => "unknown-product",
                "inbound event" => "unknown-event",
                _ => "not-found",
            },
            Self::Invalid(_) => "invalid-request",
            Self::InsufficientStock { .. } => "insufficient-stock",
            Self::StockConflict(_) => "stock-conflict",
            Self::ReservationExpired { .. } => "reservation-expired",
            Self::ReservationNotActive { .. } => "reservation-not-active",
            Self::IdempotencyConflict => "idempotency-conflict",
            Self::Batch(_) => "invalid-batch",
            Self::Database { .. } => "internal",
            Self::Unavailable => "unavailable",
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
