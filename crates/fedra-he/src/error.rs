//! Error type of the crate.

/// Everything that can go wrong in `fedra-he`.
///
/// Every variant has a stable machine-readable [`HeError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeError {
    /// The requested or received modulus is below the security minimum.
    #[error("modulus of {bits} bits is below the minimum of {min_bits} bits")]
    KeyTooSmall {
        /// Bit length that was requested/received.
        bits: u32,
        /// Minimum accepted bit length.
        min_bits: u32,
    },
    /// The key size is not supported for structural reasons.
    #[error("unsupported key size of {bits} bits: {reason}")]
    UnsupportedKeySize {
        /// Bit length that was requested.
        bits: u32,
        /// Why it is unsupported.
        reason: &'static str,
    },
    /// A plaintext's magnitude does not fit in the scheme's plaintext space.
    #[error("plaintext of {bits} bits exceeds the capacity of {capacity_bits} bits")]
    PlaintextOutOfRange {
        /// Bit length of the plaintext magnitude.
        bits: u32,
        /// Maximum accepted bit length of the magnitude.
        capacity_bits: u32,
    },
    /// A ciphertext failed validation.
    #[error("invalid ciphertext: {reason}")]
    InvalidCiphertext {
        /// Which check failed.
        reason: &'static str,
    },
    /// A byte string has the wrong length.
    #[error("invalid length for {what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being parsed.
        what: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Actual length in bytes.
        actual: usize,
    },
    /// A public key failed validation.
    #[error("invalid public key: {reason}")]
    InvalidPublicKey {
        /// Which check failed.
        reason: &'static str,
    },
    /// Secret-key material is inconsistent.
    #[error("invalid secret key: {reason}")]
    InvalidSecretKey {
        /// Which check failed.
        reason: &'static str,
    },
    /// A parameter is outside its allowed range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Attempt to encode NaN or an infinity.
    #[error("cannot encode a non-finite value")]
    NonFinite,
    /// A value is too large for the configured fixed-point encoder.
    #[error("encoding overflow: scaled value needs {bits} bits, maximum is {max_bits}")]
    EncodeOverflow {
        /// Bits needed by the scaled magnitude.
        bits: u32,
        /// Configured maximum.
        max_bits: u32,
    },
    /// A decrypted value exceeds the safe bound: the homomorphic computation
    /// overflowed (or the ciphertext was not produced as expected).
    #[error("decoding overflow: magnitude has {bits} bits, safe bound is {max_bits} bits")]
    DecodeOverflow {
        /// Bits of the decoded magnitude.
        bits: u32,
        /// Configured safe bound.
        max_bits: u32,
    },
    /// Two encoded values with different scales were combined.
    #[error("scale mismatch: {left} vs {right} fractional bits")]
    ScaleMismatch {
        /// Fractional bits of the left operand.
        left: u32,
        /// Fractional bits of the right operand.
        right: u32,
    },
    /// A value does not fit in its packing slot.
    #[error("packing overflow in slot {slot}: value needs {bits} bits, slot allows {max_bits}")]
    PackOverflow {
        /// Slot index.
        slot: usize,
        /// Bits needed by the value.
        bits: u32,
        /// Maximum value bits.
        max_bits: u32,
    },
    /// More values than slots.
    #[error("too many values to pack: {count} > {slots} slots")]
    TooManyValues {
        /// Number of values given.
        count: usize,
        /// Number of slots.
        slots: u32,
    },
    /// The packing layout does not fit the scheme's plaintext space.
    #[error("packed layout needs {needed_bits} bits but the plaintext capacity is {capacity_bits}")]
    PackCapacity {
        /// Bits needed by the layout.
        needed_bits: u32,
        /// Plaintext capacity.
        capacity_bits: u32,
    },
    /// A packed plaintext decodes to out-of-range slots (overflow).
    #[error("unpacking overflow: {reason}")]
    UnpackOverflow {
        /// Offending slot, if a single slot is at fault.
        slot: Option<usize>,
        /// What was detected.
        reason: &'static str,
    },
    /// Prime search gave up.
    #[error("prime generation failed after {attempts} attempts")]
    PrimeGeneration {
        /// Attempts made.
        attempts: u32,
    },
    /// An operation needs at least one input.
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: &'static str,
    },
    /// Two batches of different lengths.
    #[error("batch length mismatch: {left} vs {right}")]
    LengthMismatch {
        /// Length of the first batch.
        left: usize,
        /// Length of the second batch.
        right: usize,
    },
    /// Error reported by the big-integer backend (allocation failure etc.).
    #[error("big-integer backend error in {op}: {message}")]
    Backend {
        /// Backend operation.
        op: &'static str,
        /// Backend message.
        message: String,
    },
}

impl HeError {
    /// Stable, machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            HeError::KeyTooSmall { .. } => "he.key_too_small",
            HeError::UnsupportedKeySize { .. } => "he.unsupported_key_size",
            HeError::PlaintextOutOfRange { .. } => "he.plaintext_out_of_range",
            HeError::InvalidCiphertext { .. } => "he.invalid_ciphertext",
            HeError::InvalidLength { .. } => "he.invalid_length",
            HeError::InvalidPublicKey { .. } => "he.invalid_public_key",
            HeError::InvalidSecretKey { .. } => "he.invalid_secret_key",
            HeError::InvalidParameter { .. } => "he.invalid_parameter",
            HeError::NonFinite => "he.non_finite",
            HeError::EncodeOverflow { .. } => "he.encode_overflow",
            HeError::DecodeOverflow { .. } => "he.decode_overflow",
            HeError::ScaleMismatch { .. } => "he.scale_mismatch",
            HeError::PackOverflow { .. } => "he.pack_overflow",
            HeError::TooManyValues { .. } => "he.too_many_values",
            HeError::PackCapacity { .. } => "he.pack_capacity",
            HeError::UnpackOverflow { .. } => "he.unpack_overflow",
            HeError::PrimeGeneration { .. } => "he.prime_generation",
            HeError::EmptyInput { .. } => "he.empty_input",
            HeError::LengthMismatch { .. } => "he.length_mismatch",
            HeError::Backend { .. } => "he.backend",
        }
    }
}
