//! Errors of the federation layer, and the public description of a party's failure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a failed party tells its peers: enough to act on, nothing private.
///
/// The full story (file paths, stack of causes) stays in the failed party's own log;
/// `message` is the public one-line summary chosen by the failing code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The party that failed.
    pub party: String,
    /// The task it was running (empty before the first task).
    pub task: String,
    /// The round within the task, if the task has rounds.
    pub round: Option<u64>,
    /// Stable error code, e.g. `data.ragged_row`.
    pub code: String,
    /// Public one-line message.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "party '{}' failed", self.party)?;
        if !self.task.is_empty() {
            write!(f, " in task '{}'", self.task)?;
        }
        if let Some(r) = self.round {
            write!(f, " round {r}")?;
        }
        write!(f, ": {} [{}]", self.message, self.code)
    }
}

/// Errors of a [`Channel`](crate::Channel).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FedError {
    /// A name that cannot be a party id.
    #[error(
        "invalid party id {name:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-' (the id is also the TLS name in the party's certificate)"
    )]
    InvalidPartyId {
        /// The rejected name.
        name: String,
    },
    /// A party that is not in this job.
    #[error("party '{party}' is not a peer in job '{job}'")]
    UnknownParty {
        /// The job.
        job: String,
        /// The unknown party.
        party: String,
    },
    /// A peer reported that it failed; this party stops too.
    #[error("{0}")]
    PeerFailed(Failure),
    /// A peer declared *droppable* ([`Channel::set_droppable`](crate::Channel::set_droppable))
    /// failed or vanished: only messages to and from it fail; the job goes on.
    #[error("party '{party}' dropped out of the job: {cause}")]
    PeerDropped {
        /// The party that dropped out.
        party: String,
        /// Why: [`FedError::PeerLost`], [`FedError::PeerFailed`], a refusal, ...
        cause: Box<FedError>,
    },
    /// A peer stopped answering (crashed, killed, network gone).
    #[error(
        "party '{party}' has been unreachable for {silent_s:.1} s (peer timeout); it probably crashed{}",
        doing_suffix(doing)
    )]
    PeerLost {
        /// The silent party.
        party: String,
        /// Seconds since it was last heard from.
        silent_s: f64,
        /// What this party was doing, e.g. `waiting for task 'stats' round 0 message 'rows'`.
        doing: String,
    },
    /// A peer finished the job without sending what this party waits for.
    #[error(
        "party '{party}' finished the job without sending message '{tag}' — the parties disagree about the protocol"
    )]
    PeerFinished {
        /// The finished party.
        party: String,
        /// The tag that will never arrive.
        tag: String,
    },
    /// A receive deadline passed.
    #[error("timed out after {after_s:.1} s waiting for message '{tag}' from party '{party}'")]
    Timeout {
        /// The peer.
        party: String,
        /// The awaited tag.
        tag: String,
        /// The deadline that passed.
        after_s: f64,
    },
    /// The peer refused us, or we refused the peer (certificates, identity, job id).
    #[error("connection with party '{party}' refused: {reason}")]
    Refused {
        /// The peer.
        party: String,
        /// Why, e.g. `its certificate has expired`.
        reason: String,
    },
    /// The peer could not be reached before the deadline.
    #[error(
        "could not deliver to party '{party}' at {endpoint} after {attempts} attempts over {elapsed_s:.1} s: {cause}"
    )]
    Unreachable {
        /// The peer.
        party: String,
        /// Where we tried.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed_s: f64,
        /// Last error.
        cause: String,
    },
    /// A message exceeded the configured maximum size.
    #[error(
        "message '{tag}' from party '{party}' is {size} bytes, more than the maximum of {max} bytes"
    )]
    TooLarge {
        /// Sender.
        party: String,
        /// The message tag.
        tag: String,
        /// Its (declared or actual) size.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A peer delivered more bytes than this party has asked for so far, over the
    /// per-peer limit: refused, and the job stops.
    #[error(
        "party '{party}' sent {incoming} more bytes while {queued} bytes it sent are still waiting to be used, more than the limit of {max} bytes per peer (runtime.max_queued_mb); the message was refused"
    )]
    QueueFull {
        /// The sender.
        party: String,
        /// Its bytes already queued.
        queued: u64,
        /// The size of the refused message.
        incoming: u64,
        /// The per-peer limit.
        max: u64,
    },
    /// A peer sent a message for a task the job does not have.
    #[error("party '{party}' sent message '{tag}' for a task this job does not have; refused")]
    UnexpectedTag {
        /// The sender.
        party: String,
        /// The tag.
        tag: String,
    },
    /// A peer sent something that violates the wire protocol.
    #[error("malformed message from party '{party}': {detail}")]
    Malformed {
        /// Sender (as far as known).
        party: String,
        /// What was wrong.
        detail: String,
    },
    /// A payload could not be decoded by the protocol that received it.
    #[error("cannot decode message '{tag}' from party '{party}': {detail}")]
    Decode {
        /// Sender.
        party: String,
        /// The tag.
        tag: String,
        /// What was wrong.
        detail: String,
    },
    /// This channel was closed locally.
    #[error("the channel is closed")]
    Closed,
    /// A local transport problem (bind, certificates on disk, ...).
    #[error("transport: {0}")]
    Transport(String),
}

fn doing_suffix(doing: &str) -> String {
    if doing.is_empty() {
        String::new()
    } else {
        format!(" (this party was {doing})")
    }
}

impl FedError {
    /// Adds what this party was doing to a [`FedError::PeerLost`] that lacks it.
    pub fn while_doing(self, doing: impl FnOnce() -> String) -> Self {
        match self {
            FedError::PeerLost {
                party,
                silent_s,
                doing: d,
            } if d.is_empty() => FedError::PeerLost {
                party,
                silent_s,
                doing: doing(),
            },
            other => other,
        }
    }

    /// Whether this error is a droppable peer's dropout (the job goes on).
    pub fn is_dropout(&self) -> bool {
        matches!(self, FedError::PeerDropped { .. })
    }

    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            FedError::InvalidPartyId { .. } => "fed.invalid_party_id",
            FedError::UnknownParty { .. } => "fed.unknown_party",
            FedError::PeerFailed(_) => "fed.peer_failed",
            FedError::PeerLost { .. } => "fed.peer_lost",
            FedError::PeerDropped { .. } => "fed.peer_dropped",
            FedError::PeerFinished { .. } => "fed.peer_finished",
            FedError::Timeout { .. } => "fed.timeout",
            FedError::Refused { .. } => "fed.refused",
            FedError::Unreachable { .. } => "fed.unreachable",
            FedError::TooLarge { .. } => "fed.too_large",
            FedError::QueueFull { .. } => "fed.queue_full",
            FedError::UnexpectedTag { .. } => "fed.unexpected_tag",
            FedError::Malformed { .. } => "fed.malformed",
            FedError::Decode { .. } => "fed.decode",
            FedError::Closed => "fed.closed",
            FedError::Transport(_) => "fed.transport",
        }
    }

    /// The peer this error is about, if it names one.
    pub fn party(&self) -> Option<&str> {
        match self {
            FedError::PeerFailed(f) => Some(&f.party),
            FedError::UnknownParty { party, .. }
            | FedError::PeerLost { party, .. }
            | FedError::PeerDropped { party, .. }
            | FedError::PeerFinished { party, .. }
            | FedError::Timeout { party, .. }
            | FedError::Refused { party, .. }
            | FedError::Unreachable { party, .. }
            | FedError::TooLarge { party, .. }
            | FedError::QueueFull { party, .. }
            | FedError::UnexpectedTag { party, .. }
            | FedError::Malformed { party, .. }
            | FedError::Decode { party, .. } => Some(party),
            _ => None,
        }
    }
}
