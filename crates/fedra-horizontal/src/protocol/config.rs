//! Typed, validated configuration of a horizontal federation run:
//! [`ServerConfig`] (everything the server decides and ships to the clients
//! each round) and [`ClientConfig`] (client-local limits).

use std::time::Duration;

use fedra_federation::PartyId;
use fedra_nn::{MlpSpec, OptimizerConfig};
use serde::{Deserialize, Serialize};

use crate::aggregate::AggregationRule;
use crate::config::{HorizontalConfig, StrategyConfig};
use crate::error::{HorizontalError, Result, config_err};

/// Most rounds of one run.
pub const MAX_ROUNDS: u32 = 1_000_000;
/// Default size of one message chunk (4 MiB, far below every transport's
/// limit; the gRPC transport's default limit is 1 GiB, `MemOptions`' 4 GiB).
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// Local training, decided by the server and sent with every round's plan
/// (so every client trains the same way).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTraining {
    /// Passes over the local data per round, `1..=1000`.
    pub local_epochs: u32,
    /// Mini-batch rows, `1..=1_000_000`.
    pub batch_size: usize,
    /// Local optimiser, including the learning rate; fresh (zero moments)
    /// at the start of every round.
    pub optimizer: OptimizerConfig,
}

impl LocalTraining {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1000).contains(&self.local_epochs) {
            return Err(config_err(
                "local.local_epochs",
                format!("must be in 1..=1000 (got {})", self.local_epochs),
            ));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(config_err(
                "local.batch_size",
                format!("must be in 1..=1000000 (got {})", self.batch_size),
            ));
        }
        self.optimizer
            .validate()
            .map_err(|e| config_err("local.optimizer", e.to_string()))
    }
}

/// Secure aggregation (Bonawitz et al., `fedra-secagg`): the server learns
/// only the (weighted) sum of the surviving clients' updates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecAggConfig {
    /// Shamir threshold `t`: at least `t` selected clients must survive
    /// every phase; `t` colluding clients (with the server) could unmask
    /// others. `>= 2`, and at most the number of selected clients (checked
    /// per round). Use `t > n/2`.
    pub threshold: u32,
    /// Coordinates of each update are clamped to `[-clip, clip]` before
    /// quantisation; finite, `> 0`. Pick it above the largest update
    /// coordinate expected, or the model will differ from plaintext FedAvg
    /// by more than the quantisation error.
    pub clip: f32,
    /// Ring `Z_{2^bits}`: 32 or 64. The scale is the largest power of two
    /// for which the round's total weight cannot wrap, so the error of the
    /// averaged update per coordinate is at most `1/(2·scale)`.
    #[serde(default = "default_ring_bits")]
    pub ring_bits: u32,
    /// SecAgg+ (Bell et al. 2020): each client shares secrets and masks only
    /// with this many neighbours on a random graph drawn per round from the
    /// job's public seed (`horizontal.seed`), so its work and traffic grow
    /// with the degree instead of the number of clients. Even, `>= 2`, and
    /// `threshold <= neighbors + 1` (the threshold then applies within each
    /// neighbourhood; take `threshold > (neighbors + 1) / 2`). Rounds with at
    /// most `neighbors + 1` selected clients use the complete graph. Default:
    /// none (every pair of clients, Bonawitz et al.).
    #[serde(default)]
    pub neighbors: Option<u32>,
}

fn default_ring_bits() -> u32 {
    32
}

impl SecAggConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.threshold < 2 {
            return Err(config_err(
                "secure_aggregation.threshold",
                format!("must be >= 2 (got {})", self.threshold),
            ));
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(config_err(
                "secure_aggregation.clip",
                format!("must be finite and > 0 (got {})", self.clip),
            ));
        }
        if self.ring_bits != 32 && self.ring_bits != 64 {
            return Err(config_err(
                "secure_aggregation.ring_bits",
                format!("must be 32 or 64 (got {})", self.ring_bits),
            ));
        }
        if let Some(k) = self.neighbors {
            if k < 2 || k % 2 != 0 {
                return Err(config_err(
                    "secure_aggregation.neighbors",
                    format!("must be even and >= 2 (got {k})"),
                ));
            }
            if self.threshold > k.saturating_add(1) {
                return Err(config_err(
                    "secure_aggregation.threshold",
                    format!(
                        "must be <= neighbors + 1 = {} under SecAgg+ (got {})",
                        u64::from(k) + 1,
                        self.threshold
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where differential-privacy noise is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpMode {
    /// Client-level DP (DP-FedAvg, McMahan et al. 2018): every update is
    /// clipped to L2 norm `clip` (by the server, or by the client under
    /// secure aggregation), the sum gets `N(0, σ²·clip²)` noise and is
    /// divided by the number of selected clients (unweighted). The server's
    /// accountant records one event per round with sampling rate
    /// `selected / available`.
    Central,
    /// Example-level DP on each client: DP-SGD with micro-batch clipping
    /// ([`fedra_nn::Mlp::dp_gradient`]); each client's accountant records
    /// every step with `q = batch_size / local rows`.
    Local,
}

/// Differential privacy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Central or local.
    pub mode: DpMode,
    /// L2 clipping norm (per update, or per micro-batch gradient); finite, `> 0`.
    pub clip: f64,
    /// Noise multiplier σ; finite, `>= 0`.
    pub noise_multiplier: f64,
    /// δ at which ε is reported, in `(0, 1)`.
    pub delta: f64,
    /// Local mode: rows per micro-batch. 1 = exact per-example clipping by
    /// ghost norms ([`fedra_nn::Mlp::dp_gradient_per_example`], about the
    /// cost of a plain step); `m > 1` clips each micro-batch's mean gradient
    /// (one backward pass per micro-batch). Ignored in central mode.
    #[serde(default = "default_microbatch")]
    pub microbatch_size: usize,
}

fn default_microbatch() -> usize {
    1
}

impl DpConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err(config_err(
                "dp.clip",
                format!("must be finite and > 0 (got {})", self.clip),
            ));
        }
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier >= 0.0) {
            return Err(config_err(
                "dp.noise_multiplier",
                format!("must be finite and >= 0 (got {})", self.noise_multiplier),
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(config_err(
                "dp.delta",
                format!("must be in (0, 1) (got {})", self.delta),
            ));
        }
        if self.microbatch_size == 0 {
            return Err(config_err("dp.microbatch_size", "must be >= 1 (got 0)"));
        }
        Ok(())
    }
}

/// The server's configuration of a run.
///
/// ```toml
/// rounds = 20
/// round_timeout_s = 300.0          # per round (and per secure-aggregation phase)
/// # clients = ["guest", "host-1"]  # default: every peer of the channel
/// # chunk_bytes = 4194304          # vectors are streamed in chunks of this size
///
/// [model]                          # fedra_nn::MlpSpec
/// inputs = 30
/// hidden = [128, 128, 128]
/// outputs = 1
/// activation = "relu"
///
/// [local]
/// local_epochs = 1
/// batch_size = 32
/// optimizer = { kind = "adam", lr = 0.001 }   # or { kind = "sgd", lr = 0.05, momentum = 0.9 }
///
/// [horizontal]                     # crate::HorizontalConfig
/// seed = 42
/// strategy = { kind = "fed_avg" }
/// sampling = { fraction = 1.0, min_clients = 2, min_available = 2, min_results = 2 }
///
/// [secure_aggregation]             # optional
/// threshold = 2
/// clip = 1.0
/// ring_bits = 32
/// # neighbors = 16                 # SecAgg+: sparse random graph
///
/// [dp]                             # optional
/// mode = "central"                 # or "local"
/// clip = 1.0
/// noise_multiplier = 1.0
/// delta = 1e-5
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Total rounds, `1..=1_000_000` (may be raised when resuming).
    pub rounds: u32,
    /// Deadline of each round's training (and of each secure-aggregation
    /// phase), seconds; finite, `> 0`.
    pub round_timeout_s: f64,
    /// The clients; `None` = every peer of the channel.
    #[serde(default)]
    pub clients: Option<Vec<PartyId>>,
    /// The model every client trains.
    pub model: MlpSpec,
    /// Local training.
    pub local: LocalTraining,
    /// Strategy, sampling and aggregation rule.
    pub horizontal: HorizontalConfig,
    /// Secure aggregation, if any.
    #[serde(default)]
    pub secure_aggregation: Option<SecAggConfig>,
    /// Differential privacy, if any.
    #[serde(default)]
    pub dp: Option<DpConfig>,
    /// Largest chunk of a streamed vector, bytes (`4096..=64 MiB`).
    #[serde(default = "default_chunk")]
    pub chunk_bytes: usize,
}

fn default_chunk() -> usize {
    DEFAULT_CHUNK_BYTES
}

impl ServerConfig {
    /// Checks every field and the combinations.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ROUNDS).contains(&self.rounds) {
            return Err(config_err(
                "rounds",
                format!("must be in 1..={MAX_ROUNDS} (got {})", self.rounds),
            ));
        }
        if !(self.round_timeout_s.is_finite()
            && self.round_timeout_s > 0.0
            && self.round_timeout_s <= 1e7)
        {
            return Err(config_err(
                "round_timeout_s",
                format!("must be in (0, 1e7] (got {})", self.round_timeout_s),
            ));
        }
        if let Some(c) = &self.clients {
            let mut v = c.clone();
            v.sort();
            v.dedup();
            if v.len() != c.len() || c.is_empty() {
                return Err(config_err(
                    "clients",
                    "must be non-empty and without duplicates",
                ));
            }
        }
        self.model
            .validate()
            .map_err(|e| config_err("model", e.to_string()))?;
        self.local.validate()?;
        self.horizontal.validate()?;
        if !(4096..=64 << 20).contains(&self.chunk_bytes) {
            return Err(config_err(
                "chunk_bytes",
                format!("must be in 4096..=67108864 (got {})", self.chunk_bytes),
            ));
        }
        let scaffold = matches!(self.horizontal.strategy, StrategyConfig::Scaffold { .. });
        if scaffold
            && !matches!(
                self.local.optimizer,
                OptimizerConfig::Sgd { momentum, .. } if momentum == 0.0
            )
        {
            return Err(config_err(
                "local.optimizer",
                "scaffold's control-variate update assumes plain SGD (momentum = 0)",
            ));
        }
        if let Some(sa) = &self.secure_aggregation {
            sa.validate()?;
            if scaffold {
                return Err(config_err(
                    "secure_aggregation",
                    "not supported with scaffold (it needs every client's control delta)",
                ));
            }
            if self.horizontal.sampling.min_clients < sa.threshold as usize {
                return Err(config_err(
                    "secure_aggregation.threshold",
                    format!(
                        "must be <= horizontal.sampling.min_clients = {} (got {})",
                        self.horizontal.sampling.min_clients, sa.threshold
                    ),
                ));
            }
            if let Some(agg) = &self.horizontal.aggregation
                && !matches!(
                    agg.rule,
                    AggregationRule::WeightedMean | AggregationRule::Mean
                )
            {
                return Err(config_err(
                    "horizontal.aggregation.rule",
                    "robust rules need individual updates; secure aggregation reveals only the sum",
                ));
            }
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
            if scaffold && dp.mode == DpMode::Central {
                return Err(config_err(
                    "dp.mode",
                    "central DP is not supported with scaffold",
                ));
            }
        }
        Ok(())
    }

    /// The round deadline.
    pub fn round_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.round_timeout_s)
    }
}

/// A client's own limits.
///
/// ```toml
/// server_timeout_s = 3600.0   # how long to wait for the server's next message
/// max_params = 268435456      # refuse larger models
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// How long to wait for the server's next message, seconds; finite,
    /// `> 0`.
    pub server_timeout_s: f64,
    /// Largest model accepted (parameters).
    pub max_params: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server_timeout_s: 3600.0,
            max_params: fedra_nn::MAX_PARAMS,
        }
    }
}

impl ClientConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.server_timeout_s.is_finite()
            && self.server_timeout_s > 0.0
            && self.server_timeout_s <= 1e7)
        {
            return Err(config_err(
                "server_timeout_s",
                format!("must be in (0, 1e7] (got {})", self.server_timeout_s),
            ));
        }
        if self.max_params == 0 {
            return Err(HorizontalError::Config {
                field: "max_params",
                reason: "must be >= 1 (got 0)".into(),
            });
        }
        Ok(())
    }

    /// The server deadline.
    pub fn server_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.server_timeout_s)
    }
}
