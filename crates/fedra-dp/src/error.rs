//! The crate's error type, [`DpError`].
//!
//! Every variant carries structured fields (the parameter name, the offending value and
//! the allowed range; the file involved; the row and column of a bad input value) so
//! callers can act on them without parsing messages, and [`DpError::code`] returns a
//! stable machine-readable code per variant.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = DpError> = std::result::Result<T, E>;

/// Everything that can go wrong in `fedra-dp`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// A parameter is outside its allowed range (or not finite).
    #[error("invalid parameter `{name}` = {value}: must be {allowed}")]
    InvalidParameter {
        /// The parameter's name as it appears in the API (e.g. `sampling_rate`).
        name: &'static str,
        /// The rejected value, formatted with `{:?}` (so `NaN`, `inf` and exact
        /// decimal values are visible).
        value: String,
        /// The allowed range, in words or interval notation (e.g. `in (0, 1]`).
        allowed: &'static str,
    },

    /// A planning query has no answer within the searched range, e.g. no noise
    /// multiplier up to [`crate::MAX_NOISE_MULTIPLIER`] reaches the target ε.
    #[error("target epsilon {target_epsilon} is unreachable: {reason}")]
    Unreachable {
        /// The requested ε.
        target_epsilon: f64,
        /// Why, with the bound that was searched.
        reason: String,
    },

    /// An input vector or matrix holds a NaN or infinite value. Such a value would
    /// propagate into the released (noised) output and break the privacy guarantee, so
    /// it is rejected; drop or zero the offending example before aggregating.
    #[error("non-finite value {value} at row {row}, column {column}")]
    NonFiniteInput {
        /// 0-based row (example) index; 0 for a single vector.
        row: usize,
        /// 0-based column (coordinate) index.
        column: usize,
        /// The value, formatted with `{:?}`.
        value: String,
    },

    /// A row-major matrix's length is not a multiple of its row width.
    #[error("shape mismatch: {len} values do not form rows of width {dim}")]
    ShapeMismatch {
        /// Number of values in the flat slice.
        len: usize,
        /// The declared row width (number of columns).
        dim: usize,
    },

    /// A file could not be read, written or renamed.
    #[error("{}: I/O error while {op}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done (`reading`, `writing`, `renaming into place`, ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A saved accountant state is not valid JSON of the expected shape, or its content
    /// is inconsistent (unknown format or version, invalid event, invalid order). The
    /// file is left untouched.
    #[error("{}: malformed accountant state{}: {reason}", path.display(), at.map(|(l, c)| format!(" at line {l}, column {c}")).unwrap_or_default())]
    MalformedState {
        /// The file involved.
        path: PathBuf,
        /// 1-based line and column of a JSON syntax or type error, when known.
        at: Option<(usize, usize)>,
        /// What is wrong.
        reason: String,
    },
}

impl DpError {
    /// A stable, machine-readable code for the variant (never changes between releases).
    pub fn code(&self) -> &'static str {
        match self {
            DpError::InvalidParameter { .. } => "dp.invalid_parameter",
            DpError::Unreachable { .. } => "dp.unreachable",
            DpError::NonFiniteInput { .. } => "dp.non_finite_input",
            DpError::ShapeMismatch { .. } => "dp.shape_mismatch",
            DpError::Io { .. } => "dp.io",
            DpError::MalformedState { .. } => "dp.malformed_state",
        }
    }

    pub(crate) fn invalid(
        name: &'static str,
        value: impl std::fmt::Debug,
        allowed: &'static str,
    ) -> Self {
        DpError::InvalidParameter {
            name,
            value: format!("{value:?}"),
            allowed,
        }
    }
}

/// Checks that a noise multiplier is finite and `>= 0`.
pub(crate) fn check_noise_multiplier(name: &'static str, sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(DpError::invalid(name, sigma, "finite and >= 0"))
    }
}

/// Checks that a sampling rate is in `(0, 1]`.
pub(crate) fn check_sampling_rate(q: f64) -> Result<()> {
    if q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(DpError::invalid("sampling_rate", q, "in (0, 1]"))
    }
}

/// Checks that a step count is `>= 1`.
pub(crate) fn check_steps(steps: u64) -> Result<()> {
    if steps >= 1 {
        Ok(())
    } else {
        Err(DpError::invalid("steps", steps, ">= 1"))
    }
}

/// Checks that δ is in `(0, 1)`.
pub(crate) fn check_delta(delta: f64) -> Result<()> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(DpError::invalid("delta", delta, "in (0, 1)"))
    }
}

/// Checks that ε is finite and `> 0`.
pub(crate) fn check_epsilon(name: &'static str, epsilon: f64) -> Result<()> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(())
    } else {
        Err(DpError::invalid(name, epsilon, "finite and > 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_and_range() {
        let e = check_sampling_rate(1.5).unwrap_err();
        assert_eq!(e.code(), "dp.invalid_parameter");
        assert_eq!(
            e.to_string(),
            "invalid parameter `sampling_rate` = 1.5: must be in (0, 1]"
        );
        let e = check_noise_multiplier("noise_multiplier", f64::NAN).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
        assert!(check_delta(0.0).is_err());
        assert!(check_delta(1.0).is_err());
        assert!(check_delta(1e-5).is_ok());
        assert!(check_epsilon("epsilon", 0.0).is_err());
        assert!(check_epsilon("epsilon", f64::INFINITY).is_err());
        assert!(check_steps(0).is_err());
        assert!(check_sampling_rate(0.0).is_err());
        assert!(check_sampling_rate(1.0).is_ok());
        assert!(check_sampling_rate(f64::NAN).is_err());
    }

    #[test]
    fn malformed_state_message_has_location() {
        let e = DpError::MalformedState {
            path: PathBuf::from("/tmp/x.json"),
            at: Some((3, 7)),
            reason: "bad".into(),
        };
        assert_eq!(
            e.to_string(),
            "/tmp/x.json: malformed accountant state at line 3, column 7: bad"
        );
        assert_eq!(e.code(), "dp.malformed_state");
    }
}
