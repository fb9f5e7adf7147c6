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
    /// SecAgg+ (Bell et al. 2020): each client shares its secrets and masks
    /// its input only with its neighbours on a public random `degree`-regular
    /// graph; `None` = the complete graph (Bonawitz et al. 2017).
    pub graph: Option<Graph>,
}

/// The public neighbour graph of SecAgg+: a Harary graph `H(degree, n)` —
/// clients on a ring, each joined to the `degree/2` nearest on either side —
/// over a random order of the clients drawn from `seed` and the round id
/// (SHA-256 in counter mode; everyone computes the same graph). The
/// threshold then applies per neighbourhood: every client's `degree + 1`
/// neighbourhood (itself included) must keep `t` members through the
/// round, and `t` colluding neighbours of a client (with the server) could
/// unmask it. Bell et al. take `degree = O(log n)` and `t` a constant
/// fraction of it; pick `t > (degree + 1) / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Graph {
    /// Neighbours per client: even, `2..=n-1` (`n - 1` or more = complete).
    pub degree: u32,
    /// Public seed (e.g. the job's), mixed with the round id.
    pub seed: u64,
}

/// Who is whose neighbour in one round (see [`Graph`]).
#[derive(Debug, Clone)]
pub struct Neighbours {
    /// Position of client `i` on the ring at index `i - 1`; empty = complete.
    pos: Vec<u32>,
    half: u32,
}

impl Neighbours {
    /// Whether `u` and `v` (distinct) share secrets and masks.
    pub fn adjacent(&self, u: ClientId, v: ClientId) -> bool {
        if u == v {
            return false;
        }
        if self.pos.is_empty() {
            return true;
        }
        let at = |c: ClientId| (c.0 as usize).checked_sub(1).and_then(|i| self.pos.get(i));
        match (at(u), at(v)) {
            (Some(&a), Some(&b)) => {
                let n = self.pos.len() as u32;
                let d = a.abs_diff(b);
                d.min(n - d) <= self.half
            }
            _ => false,
        }
    }

    /// `u` itself or one of its neighbours.
    pub fn near(&self, u: ClientId, v: ClientId) -> bool {
        u == v || self.adjacent(u, v)
    }
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
            graph: None,
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
        if let Some(g) = self.graph {
            if g.degree < 2 || g.degree % 2 != 0 {
                return bad(format!("graph degree {} must be even and >= 2", g.degree));
            }
            if self.threshold > g.degree.saturating_add(1) {
                return bad(format!(
                    "threshold {} above the neighbourhood size degree + 1 = {}",
                    self.threshold,
                    u64::from(g.degree) + 1
                ));
            }
        }
        Ok(())
    }

    /// The same parameters with the SecAgg+ neighbour graph (see [`Graph`]).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] for an odd degree or one below 2, or a
    /// threshold above `degree + 1`.
    pub fn with_graph(self, degree: u32, seed: u64) -> Result<Self> {
        let p = Self {
            graph: Some(Graph { degree, seed }),
            ..self
        };
        p.validate()?;
        Ok(p)
    }

    /// The round's neighbour relation (complete without a graph, or when
    /// `degree >= n - 1`).
    pub fn neighbours(&self) -> Neighbours {
        let Some(g) = self.graph.filter(|g| g.degree < self.n - 1) else {
            return Neighbours {
                pos: Vec::new(),
                half: 0,
            };
        };
        use sha2::{Digest, Sha256};
        let mut counter = 0u64;
        let mut next = || {
            let h = Sha256::new()
                .chain_update(b"fedra-secagg/graph/v1")
                .chain_update(g.seed.to_le_bytes())
                .chain_update(self.round.0.to_le_bytes())
                .chain_update(counter.to_le_bytes())
                .finalize();
            counter += 1;
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[..8]);
            u64::from_le_bytes(a)
        };
        // Fisher–Yates over the ids, unbiased (rejection of the short zone).
        let n = self.n as usize;
        let mut order: Vec<u32> = (1..=self.n).collect();
        for i in (1..n).rev() {
            let m = i as u64 + 1;
            let zone = m.wrapping_neg() % m;
            let j = loop {
                let x = next();
                if x >= zone {
                    break (x % m) as usize;
                }
            };
            order.swap(i, j);
        }
        let mut pos = vec![0u32; n];
        for (p, &id) in order.iter().enumerate() {
            pos[id as usize - 1] = p as u32;
        }
        Neighbours {
            pos,
            half: g.degree / 2,
        }
    }

    /// Whether `id` is a valid client id (`1..=n`).
    pub fn contains(&self, id: ClientId) -> bool {
        id.0 >= 1 && id.0 <= self.n
    }

    pub(crate) fn t(&self) -> usize {
        self.threshold as usize
    }
}
