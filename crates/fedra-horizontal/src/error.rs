//! The crate's error type: one enum with structured fields and a stable
//! machine-readable [`HorizontalError::code`].

use crate::types::ClientId;

/// Errors of configuration, client selection and aggregation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HorizontalError {
    /// An invalid configuration value.
    #[error("invalid config: {field}: {reason}")]
    Config {
        /// The offending field, e.g. `strategy.beta1`.
        field: &'static str,
        /// What is allowed (and what was given).
        reason: String,
    },
    /// Fewer clients are available than the configuration requires.
    #[error("not enough clients available: {available} available, at least {required} required")]
    NotEnoughClients {
        /// Distinct clients offered to the scheduler.
        available: usize,
        /// `min_available` (or the sample size).
        required: usize,
    },
    /// Too few clients are left for the next round because others dropped out
    /// (their process died, they aborted, or they never said hello).
    #[error(
        "round {round}: {available} clients left, at least {required} required; dropped out or absent: [{}]",
        gone.join("; ")
    )]
    TooManyDropouts {
        /// The round that could not start.
        round: u32,
        /// Clients still available.
        available: usize,
        /// `max(min_available, min_results)`.
        required: usize,
        /// Each missing client with why, e.g. `c3: party 'c3' dropped out of the job: ...`.
        gone: Vec<String>,
    },
    /// The same client id appears twice where ids must be distinct.
    #[error("client {client} appears more than once in {within}")]
    DuplicateClient {
        /// The repeated id.
        client: ClientId,
        /// `"available"` or `"results"`/`"failures"`.
        within: &'static str,
    },
    /// Fewer results than `min_results` arrived for a round.
    #[error(
        "round {round}: {received} results, at least {required} required; failed: [{}]; missing: [{}]",
        join(failed),
        join(missing)
    )]
    TooFewResults {
        /// The round.
        round: u32,
        /// Results received.
        received: usize,
        /// `min_results`.
        required: usize,
        /// Selected clients that reported a failure.
        failed: Vec<ClientId>,
        /// Selected clients that sent neither a result nor a failure.
        missing: Vec<ClientId>,
    },
    /// A result or failure came from a client not selected for the round.
    #[error("round {round}: client {client} was not selected for this round")]
    UnexpectedClient {
        /// The round.
        round: u32,
        /// The client.
        client: ClientId,
    },
    /// `aggregate` was called for a round that was not configured (or the
    /// plan was for another round).
    #[error("round {round} was not configured (pending plan: {pending:?})")]
    RoundNotConfigured {
        /// The round passed to `aggregate`.
        round: u32,
        /// The round of the pending plan, if any.
        pending: Option<u32>,
    },
    /// A round number not after the last aggregated round.
    #[error("round {round} is not after the last aggregated round {last}")]
    StaleRound {
        /// The round requested.
        round: u32,
        /// The last round that was aggregated.
        last: u32,
    },
    /// A vector has the wrong length.
    #[error(
        "{what}{}: expected length {expected}, got {got}",
        client_suffix(client)
    )]
    DimensionMismatch {
        /// Which vector, e.g. `"update"`, `"global parameters"`.
        what: &'static str,
        /// The client it came from, if any.
        client: Option<ClientId>,
        /// The expected length.
        expected: usize,
        /// The actual length.
        got: usize,
    },
    /// A result claims zero training examples.
    #[error("client {client} reported num_examples = 0")]
    ZeroExamples {
        /// The client.
        client: ClientId,
    },
    /// A vector contains NaN or an infinity.
    #[error("{what}{}: non-finite value at index {index}", client_suffix(client))]
    NonFinite {
        /// Which vector.
        what: &'static str,
        /// The client it came from, if any.
        client: Option<ClientId>,
        /// The first offending coordinate.
        index: usize,
    },
    /// A SCAFFOLD result without the control-variate delta `Δc`.
    #[error("client {client} sent no control_delta (SCAFFOLD requires Δc)")]
    MissingControlDelta {
        /// The client.
        client: ClientId,
    },
    /// An aggregation rule was given no updates.
    #[error("{rule}: no updates to aggregate")]
    NoUpdates {
        /// The rule.
        rule: &'static str,
    },
    /// Krum / Multi-Krum needs `n >= 2f + 3` updates.
    #[error("{rule} needs n >= 2f + 3 updates: n = {n}, f = {f} (need at least {})", 2 * f + 3)]
    KrumTooFewUpdates {
        /// `"krum"` or `"multi_krum"`.
        rule: &'static str,
        /// Updates given.
        n: usize,
        /// Tolerated Byzantine updates.
        f: usize,
    },
    /// Multi-Krum's `m` must be in `1..=n − f`.
    #[error("multi_krum selects m in 1..=n-f updates: n = {n}, f = {f}, m = {m}")]
    MultiKrumSelection {
        /// Updates given.
        n: usize,
        /// Tolerated Byzantine updates.
        f: usize,
        /// Updates to select.
        m: usize,
    },
    /// Trimmed mean needs `2 * trim < n`.
    #[error("trimmed mean needs 2 * trim < n: n = {n}, trim = {trim}")]
    TrimTooLarge {
        /// Updates given.
        n: usize,
        /// Values trimmed per side.
        trim: usize,
    },
    /// A weight is negative or non-finite, or all weights are zero.
    #[error("invalid weights: {reason}")]
    InvalidWeights {
        /// What is wrong.
        reason: String,
    },
    /// A checkpointed state does not fit this strategy.
    #[error("state does not fit this strategy: {field}: {reason}")]
    StateMismatch {
        /// The mismatching part of the state.
        field: &'static str,
        /// Expected vs. found.
        reason: String,
    },
    /// The channel failed while talking to a party (protocol runs only).
    #[error("transport error with party {party} while {doing}: {detail} [{code}]")]
    Transport {
        /// The peer.
        party: String,
        /// What this party was doing, e.g. `receiving round 3 plan`.
        doing: String,
        /// The channel's error code (`fed.*`).
        code: &'static str,
        /// The channel's message.
        detail: String,
    },
    /// A peer sent a message that does not parse or violates the protocol.
    #[error("malformed message '{message}' from party {party}: {detail}")]
    Malformed {
        /// The sender.
        party: String,
        /// The message name.
        message: String,
        /// What is wrong.
        detail: String,
    },
    /// The model or local training failed (`fedra-nn`).
    #[error("model: {detail} [{code}]")]
    Model {
        /// The `nn.*` code.
        code: &'static str,
        /// Its message.
        detail: String,
    },
    /// The local dataset does not fit the model.
    #[error("dataset: {detail}")]
    Data {
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing a checkpoint failed, or it does not fit the run.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Secure aggregation failed for a round.
    #[error("round {round}: secure aggregation failed: {detail} [{code}]")]
    SecAgg {
        /// The round.
        round: u32,
        /// The `secagg` error code.
        code: &'static str,
        /// Its message.
        detail: String,
    },
    /// Differential privacy (clipping, noise, accounting) failed.
    #[error("differential privacy: {detail} [{code}]")]
    Dp {
        /// The `dp.*` code.
        code: &'static str,
        /// Its message.
        detail: String,
    },
}

fn join(ids: &[ClientId]) -> String {
    ids.iter()
        .map(ClientId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn client_suffix(client: &Option<ClientId>) -> String {
    match client {
        Some(c) => format!(" from client {c}"),
        None => String::new(),
    }
}

impl HorizontalError {
    /// A stable, machine-readable code (`horizontal.*`).
    pub fn code(&self) -> &'static str {
        match self {
            HorizontalError::Config { .. } => "horizontal.config",
            HorizontalError::NotEnoughClients { .. } => "horizontal.not_enough_clients",
            HorizontalError::DuplicateClient { .. } => "horizontal.duplicate_client",
            HorizontalError::TooFewResults { .. } => "horizontal.too_few_results",
            HorizontalError::TooManyDropouts { .. } => "horizontal.too_many_dropouts",
            HorizontalError::UnexpectedClient { .. } => "horizontal.unexpected_client",
            HorizontalError::RoundNotConfigured { .. } => "horizontal.round_not_configured",
            HorizontalError::StaleRound { .. } => "horizontal.stale_round",
            HorizontalError::DimensionMismatch { .. } => "horizontal.dimension_mismatch",
            HorizontalError::ZeroExamples { .. } => "horizontal.zero_examples",
            HorizontalError::NonFinite { .. } => "horizontal.non_finite",
            HorizontalError::MissingControlDelta { .. } => "horizontal.missing_control_delta",
            HorizontalError::NoUpdates { .. } => "horizontal.no_updates",
            HorizontalError::KrumTooFewUpdates { .. } => "horizontal.krum_too_few_updates",
            HorizontalError::MultiKrumSelection { .. } => "horizontal.multi_krum_selection",
            HorizontalError::TrimTooLarge { .. } => "horizontal.trim_too_large",
            HorizontalError::InvalidWeights { .. } => "horizontal.invalid_weights",
            HorizontalError::StateMismatch { .. } => "horizontal.state_mismatch",
            HorizontalError::Transport { .. } => "horizontal.transport",
            HorizontalError::Malformed { .. } => "horizontal.malformed",
            HorizontalError::Model { .. } => "horizontal.model",
            HorizontalError::Data { .. } => "horizontal.data",
            HorizontalError::Checkpoint { .. } => "horizontal.checkpoint",
            HorizontalError::SecAgg { .. } => "horizontal.secagg",
            HorizontalError::Dp { .. } => "horizontal.dp",
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, HorizontalError>;

pub(crate) fn config_err(field: &'static str, reason: impl Into<String>) -> HorizontalError {
    HorizontalError::Config {
        field,
        reason: reason.into(),
    }
}
