//! Errors of the linear-model protocols.

use fedra_federation::FedError;
use fedra_he::HeError;

/// Errors of training and prediction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinearError {
    /// An invalid configuration value.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The offending field, e.g. `batch_size`.
        field: &'static str,
        /// What is allowed.
        reason: String,
    },
    /// The channel failed, or a peer sent something malformed
    /// ([`FedError::Decode`] names the peer and the message).
    #[error(transparent)]
    Fed(#[from] FedError),
    /// A local cryptographic operation failed.
    #[error("{op}: {source}")]
    He {
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: HeError,
    },
    /// This party's dataset cannot be used (missing labels, bad values, shape).
    #[error("dataset: {0}")]
    Data(String),
    /// A model does not fit the dataset it is applied to.
    #[error("model: {0}")]
    Model(String),
}

impl LinearError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LinearError::Config { .. } => "linear.config",
            LinearError::Fed(e) => e.code(),
            LinearError::He { .. } => "linear.crypto",
            LinearError::Data(_) => "linear.data",
            LinearError::Model(_) => "linear.model",
        }
    }

    /// The peer this error is about, if any.
    pub fn party(&self) -> Option<&str> {
        match self {
            LinearError::Fed(e) => e.party(),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, LinearError>;

pub(crate) fn he(op: &'static str) -> impl FnOnce(HeError) -> LinearError {
    move |source| LinearError::He { op, source }
}
