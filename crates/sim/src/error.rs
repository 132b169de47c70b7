//! The errors a simulator's handle returns to its caller (a test, the CLI, the control API).
//! Errors a channel's own API returns never use this type: they are built in that channel's
//! own error shape by its module.

/// What went wrong when driving a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("not enough stock for {what}: {available} available, {wanted} wanted")]
    OutOfStock {
        what: String,
        available: i64,
        wanted: i64,
    },
    #[error("{0}")]
    Invalid(String),
}

impl SimError {
    pub(crate) fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}
