//! The crate's error type, [`NnError`], with stable codes (`nn.*`).

/// Errors of `fedra-nn`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A configuration value is out of range.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The offending field, e.g. `hidden[1]`.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// An input has the wrong length or shape.
    #[error("{what}: expected {expected} values, got {got}")]
    Shape {
        /// Which input, e.g. `features (rows × inputs)`.
        what: &'static str,
        /// The expected length.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// An input holds NaN or an infinity.
    #[error("{what} holds a non-finite value at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// The first bad index.
        index: usize,
    },
    /// A target is not valid for the loss (e.g. a class index out of range).
    #[error("target {index} = {value} is invalid: {reason}")]
    Target {
        /// Row of the target.
        index: usize,
        /// Its value.
        value: f32,
        /// What the loss accepts.
        reason: &'static str,
    },
    /// The tensor library failed (should not happen for validated inputs).
    #[error("tensor backend failed in {op}: {detail}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The library's message.
        detail: String,
    },
    /// Clipping or noise for DP-SGD failed.
    #[error("DP-SGD: {0}")]
    Dp(#[from] fedra_dp::DpError),
}

impl NnError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NnError::Config { .. } => "nn.config",
            NnError::Shape { .. } => "nn.shape",
            NnError::NonFinite { .. } => "nn.non_finite",
            NnError::Target { .. } => "nn.target",
            NnError::Backend { .. } => "nn.backend",
            NnError::Dp(_) => "nn.dp",
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        NnError::Config {
            field,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`NnError`].
pub type Result<T, E = NnError> = std::result::Result<T, E>;

/// Maps a candle error to [`NnError::Backend`].
pub(crate) fn backend(op: &'static str) -> impl FnOnce(candle_core::Error) -> NnError {
    move |e| NnError::Backend {
        op,
        detail: e.to_string(),
    }
}

/// The first non-finite index of `v`, as an error.
pub(crate) fn check_finite(what: &'static str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(NnError::NonFinite { what, index }),
        None => Ok(()),
    }
}
