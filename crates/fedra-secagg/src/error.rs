//! The crate's single error type, with structured fields and stable codes.

use fedra_federation::codec::CodecError;

use crate::ids::{ClientId, RoundId};
use crate::ring::Ring;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an honest client refused to answer an unmasking request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The same peer is listed both as a survivor and as dropped: revealing
    /// both its self-mask share and its key share would unmask its input.
    BothShares,
    /// The survivor set is smaller than the threshold.
    TooFewSurvivors,
    /// A listed peer is not one of the clients this client exchanged shares with.
    NotAPeer,
    /// A peer this client exchanged shares with is in neither set.
    Unaccounted,
    /// The client itself is not listed as a survivor.
    SelfNotSurvivor,
    /// A peer is listed twice in the same set.
    Duplicate,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::BothShares => "peer listed as both survivor and dropped",
            Self::TooFewSurvivors => "fewer survivors than the threshold",
            Self::NotAPeer => "peer did not take part in the share exchange",
            Self::Unaccounted => "peer is neither survivor nor dropped",
            Self::SelfNotSurvivor => "this client is not listed as a survivor",
            Self::Duplicate => "peer listed twice",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of this crate. See [`Error::code`] for stable identifiers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Protocol or quantization parameters are unusable.
    #[error("invalid parameters: {reason}")]
    InvalidParams {
        /// What is wrong.
        reason: String,
    },
    /// A method was called in the wrong phase of the state machine.
    #[error("{operation} needs phase {expected}, but the state machine is in phase {actual}")]
    WrongPhase {
        /// The method that was called.
        operation: &'static str,
        /// The phase that method needs.
        expected: &'static str,
        /// The phase the state machine is in.
        actual: &'static str,
    },
    /// The state machine aborted earlier and accepts nothing more.
    #[error("the state machine aborted earlier; {operation} refused")]
    Aborted {
        /// The method that was called.
        operation: &'static str,
    },
    /// A message belongs to a different aggregation round.
    #[error("message for round {got} but this session is round {expected}")]
    WrongRound {
        /// This session's round.
        expected: RoundId,
        /// The round named in the message.
        got: RoundId,
    },
    /// A client id outside `1..=n`, or not part of the relevant client set.
    #[error("unknown client {client} in {context}")]
    UnknownClient {
        /// The offending id.
        client: ClientId,
        /// Where it appeared.
        context: &'static str,
    },
    /// A client appears twice where it may appear once.
    #[error("duplicate client {client} in {context}")]
    DuplicateClient {
        /// The offending id.
        client: ClientId,
        /// Where it appeared.
        context: &'static str,
    },
    /// A message lacks an entry it must carry (e.g. a ciphertext for one of
    /// the clients in `U1`).
    #[error("{message} lacks the entry for client {missing}")]
    Incomplete {
        /// Which message.
        message: &'static str,
        /// The client whose entry is missing.
        missing: ClientId,
    },
    /// A message arrived after its phase was closed (e.g. a masked input from
    /// a client already declared dropped). It is rejected, never folded in.
    #[error("late {message} from client {client}: the server is already in phase {phase}")]
    LateMessage {
        /// The sender.
        client: ClientId,
        /// Which message.
        message: &'static str,
        /// The phase the server is in.
        phase: &'static str,
    },
    /// Fewer than `threshold` clients are left; the round aborts.
    #[error(
        "only {got} clients left in phase {phase}, at least {needed} are needed (present: {present:?})"
    )]
    TooFewClients {
        /// The phase that could not be closed.
        phase: &'static str,
        /// How many clients were left.
        got: usize,
        /// The threshold.
        needed: usize,
        /// Which clients were left.
        present: Vec<ClientId>,
    },
    /// A vector has the wrong length.
    #[error("vector has dimension {got}, expected {expected}")]
    DimensionMismatch {
        /// The configured dimension.
        expected: usize,
        /// The dimension received.
        got: usize,
    },
    /// A vector is over the wrong ring.
    #[error("vector is over {got}, expected {expected}")]
    RingMismatch {
        /// The configured ring.
        expected: Ring,
        /// The ring received.
        got: Ring,
    },
    /// A public key is unusable (low order, duplicated, or does not match).
    #[error("bad public key of client {client}: {reason}")]
    BadPublicKey {
        /// Whose key.
        client: ClientId,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An X25519 agreement produced the all-zero secret.
    #[error("key agreement with client {peer} is not contributory (all-zero shared secret)")]
    NonContributory {
        /// The peer.
        peer: ClientId,
    },
    /// An encrypted share failed authentication or has the wrong form.
    #[error("encrypted shares from client {from} do not decrypt: {reason}")]
    Decryption {
        /// The sender of the ciphertext.
        from: ClientId,
        /// What failed.
        reason: &'static str,
    },
    /// An honest client refuses an unmasking request.
    #[error("unmasking refused ({reason}) for peer {peer:?}")]
    UnmaskRefused {
        /// Why.
        reason: Refusal,
        /// The peer concerned, if one.
        peer: Option<ClientId>,
    },
    /// A Shamir share is malformed.
    #[error("invalid share (x = {x}): {reason}")]
    InvalidShare {
        /// The share's evaluation point.
        x: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer shares than the threshold.
    #[error("{got} shares given, {needed} needed")]
    NotEnoughShares {
        /// Shares given.
        got: usize,
        /// Threshold.
        needed: usize,
    },
    /// Reconstruction produced a value that is not a valid secret.
    #[error("reconstruction failed for {what} of client {client}: {reason}")]
    Reconstruction {
        /// Which secret ("self-mask seed", "mask key").
        what: &'static str,
        /// Whose secret (0 for a bare Shamir call).
        client: ClientId,
        /// What check failed.
        reason: &'static str,
    },
    /// Bytes do not decode as the expected message.
    #[error("cannot decode {message}: {source}")]
    Decode {
        /// Which message type.
        message: &'static str,
        /// What is wrong and where decoding stopped (`source.offset`), from the
        /// shared codec (`fedra_federation::codec`).
        source: CodecError,
    },
    /// Encoded message larger than the caller's limit.
    #[error("encoded {message} has {len} bytes, limit is {max}")]
    TooLarge {
        /// Which message type.
        message: &'static str,
        /// The length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The sum of `n` clipped, quantized inputs could wrap around the ring.
    #[error(
        "quantized sum could wrap: {n_clients} clients (total weight {total_weight}) x max |q| {max_abs_quantized} = {max_abs_sum} > {limit} (ring Z_2^{ring_bits}, clip {clip}, scale {scale})"
    )]
    QuantOverflow {
        /// Number of clients.
        n_clients: u64,
        /// Sum of integer weights (= `n_clients` unweighted).
        total_weight: u64,
        /// Largest |quantized value| of one client before weighting.
        max_abs_quantized: u64,
        /// Largest |sum| that could occur.
        max_abs_sum: u128,
        /// Largest |sum| the ring represents without wrapping: `2^(k-1) - 1`.
        limit: u128,
        /// `k`.
        ring_bits: u32,
        /// The clip bound.
        clip: f32,
        /// The scale.
        scale: f64,
    },
    /// An input value cannot be quantized (NaN or infinite).
    #[error("input value at index {index} is not finite")]
    NonFiniteInput {
        /// Index of the value.
        index: usize,
    },
}

impl Error {
    /// A stable, machine-readable identifier (`secagg.*`), unaffected by
    /// changes to the human-readable message.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParams { .. } => "secagg.invalid_params",
            Self::WrongPhase { .. } => "secagg.wrong_phase",
            Self::Aborted { .. } => "secagg.aborted",
            Self::WrongRound { .. } => "secagg.wrong_round",
            Self::UnknownClient { .. } => "secagg.unknown_client",
            Self::DuplicateClient { .. } => "secagg.duplicate_client",
            Self::LateMessage { .. } => "secagg.late_message",
            Self::Incomplete { .. } => "secagg.incomplete",
            Self::TooFewClients { .. } => "secagg.too_few_clients",
            Self::DimensionMismatch { .. } => "secagg.dimension_mismatch",
            Self::RingMismatch { .. } => "secagg.ring_mismatch",
            Self::BadPublicKey { .. } => "secagg.bad_public_key",
            Self::NonContributory { .. } => "secagg.non_contributory",
            Self::Decryption { .. } => "secagg.decryption",
            Self::UnmaskRefused { .. } => "secagg.unmask_refused",
            Self::InvalidShare { .. } => "secagg.shamir.invalid_share",
            Self::NotEnoughShares { .. } => "secagg.shamir.not_enough_shares",
            Self::Reconstruction { .. } => "secagg.shamir.reconstruction",
            Self::Decode { .. } => "secagg.decode",
            Self::TooLarge { .. } => "secagg.decode.too_large",
            Self::QuantOverflow { .. } => "secagg.quant.overflow",
            Self::NonFiniteInput { .. } => "secagg.quant.non_finite",
        }
    }
}
