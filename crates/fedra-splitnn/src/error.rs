//! The crate's error type, [`SplitError`], with stable codes (`splitnn.*`,
//! or the channel's `fed.*` codes for a peer's malformed message).

use fedra_federation::FedError;
use fedra_nn::NnError;

/// Errors of split learning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// An invalid configuration value.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The offending field, e.g. `batch_size`.
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// An invalid value of a declared model or job field (the path of the
    /// field, e.g. `towers.host.cut`).
    #[error("{field}: {reason}")]
    Field {
        /// The offending field's path.
        field: String,
        /// What is allowed.
        reason: String,
    },
    /// A peer runs the task with other parameters (rows, widths, schedule).
    #[error("party '{party}' disagrees about the task: {detail}")]
    Mismatch {
        /// The peer.
        party: String,
        /// What differs.
        detail: String,
    },
    /// This party's own data cannot be used (shape, non-finite values).
    #[error("data: {0}")]
    Data(String),
    /// The channel failed, or a peer sent something malformed
    /// ([`FedError::Decode`] names the peer and the message).
    #[error(transparent)]
    Fed(#[from] FedError),
    /// The neural-network layer failed.
    #[error("model: {0}")]
    Nn(#[from] NnError),
    /// A differential-privacy mechanism or the accountant failed.
    #[error("privacy: {0}")]
    Dp(#[from] fedra_dp::DpError),
    /// A metric could not be computed (e.g. a single-class held-out set).
    #[error("metric: {0}")]
    Metric(#[from] fedra_metrics::MetricError),
}

impl SplitError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SplitError::Config { .. } | SplitError::Field { .. } => "splitnn.config",
            SplitError::Data(_) => "splitnn.data",
            SplitError::Mismatch { .. } => "splitnn.mismatch",
            SplitError::Fed(e) => e.code(),
            SplitError::Nn(_) => "splitnn.model",
            SplitError::Metric(_) => "splitnn.metric",
            SplitError::Dp(_) => "splitnn.dp",
        }
    }

    /// The peer this error is about, if any.
    pub fn party(&self) -> Option<&str> {
        match self {
            SplitError::Fed(e) => e.party(),
            SplitError::Mismatch { party, .. } => Some(party),
            _ => None,
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        SplitError::Config {
            field,
            reason: reason.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = SplitError> = std::result::Result<T, E>;
