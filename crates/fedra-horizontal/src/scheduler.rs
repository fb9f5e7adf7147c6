//! Client selection per round (PaddleFL's FL-Scheduler, Flower's
//! `fraction_fit` / `min_fit_clients` / `min_available_clients`): uniform
//! sampling without replacement of `max(⌈fraction·n⌉, min_clients)` of the
//! `n` available clients.
//!
//! Reproducibility: the available ids are sorted (and must be distinct)
//! before sampling, so the connection order does not matter, and the
//! randomness is passed in. Pass [`round_rng`]`(seed, round)` — a ChaCha20
//! stream derived from `(seed, round)` only — and a server resumed at round
//! `r` selects exactly what an uninterrupted run would have selected.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{HorizontalError, Result, config_err};
use crate::types::ClientId;

/// Domain separation for [`round_rng`]'s key.
const DOMAIN: &[u8; 24] = b"fedra-horizontal/sample\0";

/// The selection policy of a federation.
///
/// TOML (`[sampling]`, defaults shown):
/// ```toml
/// fraction = 1.0      # (0, 1]: share of the available clients per round
/// min_clients = 2     # >= 1: never select fewer (if available)
/// min_available = 2   # >= min_clients: refuse the round with fewer available
/// min_results = 2     # 1..=min_clients: refuse to aggregate fewer results
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Share of the available clients selected per round, in `(0, 1]`.
    pub fraction: f64,
    /// Minimum clients selected per round, `>= 1`.
    pub min_clients: usize,
    /// A round is refused when fewer clients are available,
    /// `>= min_clients`.
    pub min_available: usize,
    /// Aggregation is refused with fewer results, `1..=min_clients`.
    pub min_results: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            fraction: 1.0,
            min_clients: 2,
            min_available: 2,
            min_results: 2,
        }
    }
}

impl SamplingConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(config_err(
                "sampling.fraction",
                format!("must be in (0, 1] (got {})", self.fraction),
            ));
        }
        if self.min_clients == 0 {
            return Err(config_err("sampling.min_clients", "must be >= 1 (got 0)"));
        }
        if self.min_available < self.min_clients {
            return Err(config_err(
                "sampling.min_available",
                format!(
                    "must be >= sampling.min_clients = {} (got {})",
                    self.min_clients, self.min_available
                ),
            ));
        }
        if self.min_results == 0 || self.min_results > self.min_clients {
            return Err(config_err(
                "sampling.min_results",
                format!(
                    "must be in 1..=sampling.min_clients = {} (got {})",
                    self.min_clients, self.min_results
                ),
            ));
        }
        Ok(())
    }
}

/// Selects the clients of a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientScheduler {
    cfg: SamplingConfig,
}

impl ClientScheduler {
    /// A scheduler with a validated policy.
    pub fn new(cfg: SamplingConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(ClientScheduler { cfg })
    }

    /// The policy.
    pub fn config(&self) -> &SamplingConfig {
        &self.cfg
    }

    /// How many of `available` clients a round selects:
    /// `min(n, max(⌈fraction·n⌉, min_clients))`.
    pub fn sample_size(&self, available: usize) -> usize {
        let x = self.cfg.fraction * available as f64;
        // 0.3 · 10 = 3.0000000000000004 must give 3, not 4.
        let k = if (x - x.round()).abs() < 1e-9 {
            x.round()
        } else {
            x.ceil()
        } as usize;
        k.max(self.cfg.min_clients).min(available)
    }

    /// Uniformly samples the round's clients (without replacement) from
    /// `available` (any order; ids must be distinct). Returns them sorted.
    pub fn select(&self, available: &[ClientId], rng: &mut dyn RngCore) -> Result<Vec<ClientId>> {
        let mut pool = sorted_distinct(available)?;
        let n = pool.len();
        if n < self.cfg.min_available {
            return Err(HorizontalError::NotEnoughClients {
                available: n,
                required: self.cfg.min_available,
            });
        }
        let k = self.sample_size(n);
        // Partial Fisher–Yates.
        for i in 0..k {
            let j = i + below(rng, (n - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool.sort_unstable();
        Ok(pool)
    }
}

/// The ids sorted, or an error naming a duplicate.
fn sorted_distinct(ids: &[ClientId]) -> Result<Vec<ClientId>> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    if let Some(w) = v.windows(2).find(|w| w[0] == w[1]) {
        return Err(HorizontalError::DuplicateClient {
            client: w[0].clone(),
            within: "available",
        });
    }
    Ok(v)
}

/// Uniform in `0..n` (`n > 0`), unbiased (rejection of the short zone).
fn below(rng: &mut dyn RngCore, n: u64) -> u64 {
    // 2^64 mod n: values below it would bias `v % n`.
    let threshold = n.wrapping_neg() % n;
    loop {
        let v = rng.next_u64();
        if v >= threshold {
            return v % n;
        }
    }
}

/// The randomness of round `round` for a federation seeded with `seed`: a
/// ChaCha20 generator keyed by `seed` (plus a fixed domain-separation
/// string) on stream `round`. Depends on nothing else, so resuming at any
/// round reproduces an uninterrupted run.
pub fn round_rng(seed: u64, round: u32) -> ChaCha20Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..].copy_from_slice(DOMAIN);
    let mut rng = ChaCha20Rng::from_seed(key);
    rng.set_stream(u64::from(round));
    rng
}

/// Domain separation for [`client_round_rng`]'s key.
const CLIENT_DOMAIN: &[u8] = b"fedra-horizontal/client-public\0";

/// The **public** (non-secret) randomness of client `client` in round
/// `round` of a federation seeded with `seed`: a ChaCha20 generator keyed by
/// `SHA-256(domain ‖ seed ‖ len(client) ‖ client)` on stream `round`.
///
/// The protocol draws the client's mini-batch order from it (when local
/// DP-SGD is off), so two runs of the same job — and a run killed and
/// resumed at any round — train on the same batches and reach bit-identical
/// models. It is derived from the job's seed, which every party can read:
/// never use it for anything that must stay secret (secure-aggregation keys
/// and masks, DP noise, DP-SGD batch sampling), which come from the
/// caller's CSPRNG instead (see the [`crate::protocol`] docs).
pub fn client_round_rng(seed: u64, client: &str, round: u32) -> ChaCha20Rng {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(CLIENT_DOMAIN);
    h.update(seed.to_le_bytes());
    h.update((client.len() as u64).to_le_bytes());
    h.update(client.as_bytes());
    let key: [u8; 32] = h.finalize().into();
    let mut rng = ChaCha20Rng::from_seed(key);
    rng.set_stream(u64::from(round));
    rng
}
