//! Errors of SecureBoost training and prediction.

use fedra_federation::FedError;
use fedra_he::HeError;

/// Errors of training and prediction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// An invalid configuration value.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The offending field, e.g. `max_depth`.
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
    /// A model does not fit the dataset it is applied to, or a model file is invalid.
    #[error("model: {0}")]
    Model(String),
}

impl TreeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TreeError::Config { .. } => "tree.config",
            TreeError::Fed(e) => e.code(),
            TreeError::He { .. } => "tree.crypto",
            TreeError::Data(_) => "tree.data",
            TreeError::Model(_) => "tree.model",
        }
    }

    /// The peer this error is about, if any.
    pub fn party(&self) -> Option<&str> {
        match self {
            TreeError::Fed(e) => e.party(),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, TreeError>;

pub(crate) fn he(op: &'static str) -> impl FnOnce(HeError) -> TreeError {
    move |source| TreeError::He { op, source }
}

pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> TreeError {
    TreeError::Config {
        field,
        reason: reason.into(),
    }
}
