//! [`PsiError`]: everything that can go wrong in a PSI run, with stable codes.
//!
//! Malformed peer payloads are reported as [`FedError::Decode`] (wrapped in
//! [`PsiError::Fed`]), built with [`FedError::malformed`] or
//! `CodecError::from_peer`, naming the peer and the message tag, so the operator
//! sees *who* sent *what* without digging through the other party's logs.

use std::path::PathBuf;

use fedra_federation::FedError;

/// Errors of the PSI protocols, the RSA signature cache and [`align`](crate::align()).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PsiError {
    /// The channel failed, or a peer sent a payload that cannot be decoded
    /// ([`FedError::Decode`]: wrong length, invalid point encoding, ...).
    #[error(transparent)]
    Fed(#[from] FedError),
    /// This party's own configuration is invalid (e.g. zero buckets).
    #[error("invalid PSI configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// The two parties were configured differently (mode, buckets, version, roles).
    #[error("PSI configuration differs from party '{party}': {detail}")]
    ConfigMismatch {
        /// The peer.
        party: String,
        /// Which setting differs, with both values.
        detail: String,
    },
    /// The peer declared (or sent) more ids than this party accepts.
    #[error("party '{party}' declared {declared} ids, more than the limit of {max}")]
    TooManyIds {
        /// The peer.
        party: String,
        /// What it declared or sent.
        declared: u64,
        /// The configured limit.
        max: u64,
    },
    /// The two parties computed different intersections for a bucket.
    #[error(
        "intersection checksum of bucket {bucket} differs from party '{party}': the parties disagree about the intersection (different job/task, ids or protocol version)"
    )]
    ChecksumMismatch {
        /// The peer.
        party: String,
        /// The bucket index (also the message round).
        bucket: u32,
    },
    /// A peer's cryptographic value failed a check (e.g. an RSA signature that does
    /// not verify).
    #[error("invalid cryptographic value from party '{party}': {detail}")]
    BadPeerValue {
        /// The peer.
        party: String,
        /// What failed.
        detail: String,
    },
    /// A local cryptographic library call failed (OpenSSL).
    #[error("cryptography error: {detail}")]
    Crypto {
        /// The library's message.
        detail: String,
    },
    /// The RSA signature cache was made with another key.
    #[error(
        "RSA signature cache was made with key {found}, but this run uses key {expected}: delete the cache or use the matching key"
    )]
    CacheKeyMismatch {
        /// Fingerprint of the key in use (hex).
        expected: String,
        /// Fingerprint stored in the cache (hex).
        found: String,
    },
    /// The bytes of an RSA signature cache are not in its format (truncated,
    /// corrupt, another version).
    #[error("RSA signature cache is invalid: {detail}")]
    CacheFormat {
        /// What is wrong (never the cache's ids).
        detail: String,
    },
    /// Reading or writing the file that stores the RSA signature cache failed.
    /// This crate does no file I/O: the caller that stores the cache reports this.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset could not be aligned to an intersection.
    #[error("cannot align dataset to the intersection: {detail}")]
    Align {
        /// What is wrong.
        detail: String,
    },
    /// A bug: a worker panicked or an invariant broke.
    #[error("internal error in PSI: {detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

impl PsiError {
    /// A stable, machine-readable code. Channel errors keep their own `fed.*` code.
    pub fn code(&self) -> &'static str {
        match self {
            PsiError::Fed(e) => e.code(),
            PsiError::Config { .. } => "psi.config",
            PsiError::ConfigMismatch { .. } => "psi.config_mismatch",
            PsiError::TooManyIds { .. } => "psi.too_many_ids",
            PsiError::ChecksumMismatch { .. } => "psi.checksum_mismatch",
            PsiError::BadPeerValue { .. } => "psi.bad_peer_value",
            PsiError::Crypto { .. } => "psi.crypto",
            PsiError::CacheKeyMismatch { .. } => "psi.cache_key_mismatch",
            PsiError::CacheFormat { .. } => "psi.cache_format",
            PsiError::Io { .. } => "psi.io",
            PsiError::Align { .. } => "psi.align",
            PsiError::Internal { .. } => "psi.internal",
        }
    }
}

impl From<openssl::error::ErrorStack> for PsiError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        PsiError::Crypto {
            detail: e.to_string(),
        }
    }
}
