//! stockhub's use-cases over channels and the loops that run them: webhook intake (verify,
//! archive, apply in one transaction), the push engine (claim, compute at send time, batch,
//! classify failures), catalog discovery and order backfill. Depends on the store and the
//! connectors through their interfaces only; the binary wires concrete ones.
#![forbid(unsafe_code)]

pub mod arrivals;
pub mod backfill;
pub mod discovery;
pub mod metrics;
pub mod push;
pub mod registry;
pub mod webhooks;

pub use metrics::Metrics;
pub use registry::Connectors;

/// What a use-case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] stockhub_store::StoreError),
    #[error(transparent)]
    Channel(#[from] stockhub_channels::ChannelError),
    #[error("channel {0} is not connected (it has no connector settings)")]
    NotConnected(String),
    #[error("{0}")]
    Invalid(String),
}

/// Whether a worker's pass found work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Worked(usize),
    Idle,
}
