//! Typed configuration of a horizontal federation (serde: TOML/JSON), its
//! validation, and building a [`Strategy`] from it (TOML form: see
//! [`HorizontalConfig`]).

use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregator;
use crate::error::{Result, config_err};
use crate::fedavg::{FedAvg, check_mu};
use crate::fedopt::{FedOpt, ServerOptimizer};
use crate::scaffold::{Scaffold, check_params};
use crate::scheduler::{ClientScheduler, SamplingConfig, round_rng};
use crate::strategy::{Strategy, StrategyKind};

/// The server algorithm and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StrategyConfig {
    /// FedAvg.
    #[serde(alias = "fedavg")]
    FedAvg,
    /// FedProx (server = FedAvg; clients get `mu`).
    #[serde(alias = "fedprox")]
    FedProx {
        /// Proximal coefficient μ, in `[0, 100]`.
        mu: f64,
    },
    /// FedAdam.
    #[serde(alias = "fedadam")]
    FedAdam {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// In `[0, 1)`.
        beta1: f64,
        /// In `[0, 1)`.
        beta2: f64,
        /// In `(0, 1]`.
        tau: f64,
    },
    /// FedYogi.
    #[serde(alias = "fedyogi")]
    FedYogi {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// In `[0, 1)`.
        beta1: f64,
        /// In `[0, 1)`.
        beta2: f64,
        /// In `(0, 1]`.
        tau: f64,
    },
    /// FedAdagrad.
    #[serde(alias = "fedadagrad")]
    FedAdagrad {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// In `[0, 1)`.
        beta1: f64,
        /// In `(0, 1]`.
        tau: f64,
    },
    /// SCAFFOLD.
    Scaffold {
        /// Global step size η_g, in `(0, 100]`.
        eta_g: f64,
        /// Federation size `N` (`>= 1`); default: clients available in the
        /// round.
        #[serde(default)]
        num_clients: Option<u32>,
    },
}

impl StrategyConfig {
    /// The algorithm.
    pub fn kind(&self) -> StrategyKind {
        match self {
            StrategyConfig::FedAvg => StrategyKind::FedAvg,
            StrategyConfig::FedProx { .. } => StrategyKind::FedProx,
            StrategyConfig::FedAdam { .. } => StrategyKind::FedAdam,
            StrategyConfig::FedYogi { .. } => StrategyKind::FedYogi,
            StrategyConfig::FedAdagrad { .. } => StrategyKind::FedAdagrad,
            StrategyConfig::Scaffold { .. } => StrategyKind::Scaffold,
        }
    }

    /// The server optimiser of FedAdam / FedYogi / FedAdagrad.
    pub fn server_optimizer(&self) -> Option<ServerOptimizer> {
        match *self {
            StrategyConfig::FedAdam {
                eta,
                beta1,
                beta2,
                tau,
            } => Some(ServerOptimizer::Adam {
                eta,
                beta1,
                beta2,
                tau,
            }),
            StrategyConfig::FedYogi {
                eta,
                beta1,
                beta2,
                tau,
            } => Some(ServerOptimizer::Yogi {
                eta,
                beta1,
                beta2,
                tau,
            }),
            StrategyConfig::FedAdagrad { eta, beta1, tau } => {
                Some(ServerOptimizer::Adagrad { eta, beta1, tau })
            }
            _ => None,
        }
    }

    /// Checks the hyper-parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        match *self {
            StrategyConfig::FedAvg => Ok(()),
            StrategyConfig::FedProx { mu } => check_mu(mu),
            StrategyConfig::Scaffold { eta_g, num_clients } => check_params(eta_g, num_clients),
            _ => self.server_optimizer().map_or(Ok(()), |o| o.validate()),
        }
    }
}

/// A horizontal federation's server configuration.
///
/// ```toml
/// seed = 42                      # per-round sampling randomness: round_rng(seed, round)
///
/// [sampling]                     # optional; defaults 1.0, 2, 2, 2
/// fraction = 0.5
/// min_clients = 8
/// min_available = 10
/// min_results = 8                # must feed the rule: multi_krum needs max(2f + 3, m + f)
///
/// [strategy]                     # one of:
/// kind = "fed_avg"
/// # kind = "fed_prox",    mu = 0.01
/// # kind = "fed_adam",    eta = 0.1, beta1 = 0.9, beta2 = 0.99, tau = 1e-3
/// # kind = "fed_yogi",    eta = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3
/// # kind = "fed_adagrad", eta = 0.1, beta1 = 0.0, tau = 1e-3
/// # kind = "scaffold",    eta_g = 1.0, num_clients = 100   (num_clients optional)
///
/// [aggregation]                  # optional (not with scaffold); default weighted mean
/// rule = { kind = "multi_krum", f = 2, m = 6 }
/// # rule = { kind = "krum", f = 2 } | { kind = "median" } | { kind = "mean" }
/// #      | { kind = "trimmed_mean", trim = 2 } | { kind = "weighted_mean" }
/// norm_bound = 10.0              # optional: clip every update's L2 norm first
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HorizontalConfig {
    /// Seed of the per-round sampling randomness ([`round_rng`]).
    pub seed: u64,
    /// Client selection.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// The algorithm.
    pub strategy: StrategyConfig,
    /// Aggregation rule and norm bounding; `None` = weighted mean.
    #[serde(default)]
    pub aggregation: Option<Aggregator>,
}

impl HorizontalConfig {
    /// Checks every field and the combinations (robust rules need enough
    /// results per round; SCAFFOLD takes no aggregation section).
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        self.strategy.validate()?;
        if let Some(agg) = &self.aggregation {
            if let StrategyConfig::Scaffold { .. } = self.strategy {
                return Err(config_err(
                    "aggregation",
                    "scaffold averages Δy and Δc itself (unweighted mean); remove [aggregation]",
                ));
            }
            agg.validate()?;
            agg.check_min_results(self.sampling.min_results)?;
        }
        Ok(())
    }

    /// The validated strategy over parameter vectors of length
    /// `num_params`.
    pub fn build(&self, num_params: usize) -> Result<Box<dyn Strategy>> {
        self.validate()?;
        let scheduler = ClientScheduler::new(self.sampling)?;
        let aggregator = self.aggregation.unwrap_or_default();
        Ok(match self.strategy {
            StrategyConfig::FedAvg => Box::new(FedAvg::new(num_params, scheduler, aggregator)?),
            StrategyConfig::FedProx { mu } => {
                Box::new(FedAvg::fedprox(num_params, scheduler, aggregator, mu)?)
            }
            StrategyConfig::Scaffold { eta_g, num_clients } => {
                Box::new(Scaffold::new(num_params, scheduler, eta_g, num_clients)?)
            }
            StrategyConfig::FedAdam { .. }
            | StrategyConfig::FedYogi { .. }
            | StrategyConfig::FedAdagrad { .. } => {
                let opt = self.strategy.server_optimizer().ok_or_else(|| {
                    config_err("strategy.kind", "not a server-optimiser strategy")
                })?;
                Box::new(FedOpt::new(num_params, scheduler, aggregator, opt)?)
            }
        })
    }

    /// The randomness to pass to [`Strategy::configure_round`] in `round`.
    pub fn round_rng(&self, round: u32) -> ChaCha20Rng {
        round_rng(self.seed, round)
    }
}
