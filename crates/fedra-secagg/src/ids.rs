//! Identifiers and the per-round parameters every party agrees on.

use std::fmt;

use crate::error::{Error, Result};
use crate::ring::Ring;

/// A client's id within one round: `1..=n`. It doubles as the client's Shamir
/// evaluation point, so it must never be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies one aggregation round. It is bound into every key derivation,
/// every ciphertext's associated data and every message, so messages of one
/// round are never accepted in another. Use a fresh value per round (e.g. a
/// counter, or a hash of job id and round number folded to 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoundId(pub u64);

impl fmt::Display for RoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Largest number of clients per round. Bounds decoder allocations and keeps
/// client ids far below the Shamir field modulus.
pub const MAX_CLIENTS: u32 = 1 << 20;

/// Largest vector dimension: the ChaCha20 keystream of one seed covers
/// 2^38 bytes, and 2^32 - 1 64-bit words stay inside it.
pub const MAX_DIM: usize = u32::MAX as usize;

/// Parameters of one round, known to the server and all clients beforehand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The round.
    pub round: RoundId,
    /// Number of registered clients; ids are `1..=n`.
    pub n: u32,
    /// Shamir threshold `t`: the round completes only while at least `t`
    /// clients remain in every phase, and any `t` clients (with the server)
    /// could reconstruct the secrets of others. Use `t > n/2`.
    pub threshold: u32,
    /// Length of the input vector.
    pub dim: usize,
    /// Ring of the input vector, `Z_{2^32}` or `Z_{2^64}`.
    pub ring: Ring,
}

impl Params {
    /// Checks and builds parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParams`] unless `2 <= threshold <= n <= MAX_CLIENTS`
    /// and `1 <= dim <= MAX_DIM`.
    pub fn new(round: RoundId, n: u32, threshold: u32, dim: usize, ring: Ring) -> Result<Self> {
        let p = Self {
            round,
            n,
            threshold,
            dim,
            ring,
        };
        p.validate()?;
        Ok(p)
    }

    /// Re-checks the invariants of [`Params::new`] (the fields are public).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] as for [`Params::new`].
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidParams { reason });
        if self.n < 2 || self.n > MAX_CLIENTS {
            return bad(format!("n = {} outside 2..={MAX_CLIENTS}", self.n));
        }
        if self.threshold < 2 || self.threshold > self.n {
            return bad(format!(
                "threshold {} outside 2..=n ({}); a threshold of 1 would hand every secret to every client",
                self.threshold, self.n
            ));
        }
        if self.dim == 0 || self.dim > MAX_DIM {
            return bad(format!("dimension {} outside 1..={MAX_DIM}", self.dim));
        }
        Ok(())
    }

    /// Whether `id` is a valid client id (`1..=n`).
    pub fn contains(&self, id: ClientId) -> bool {
        id.0 >= 1 && id.0 <= self.n
    }

    pub(crate) fn t(&self) -> usize {
        self.threshold as usize
    }
}
