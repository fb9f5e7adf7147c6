//! # fedra-horizontal — horizontal federated learning, server strategies
//!
//! Aggregation strategies and client selection for horizontal FL (every
//! client holds the same model over different rows), as a pure library
//! over flat parameter vectors (`&[f32]` / `Vec<f32>`), plus the networked
//! protocol that drives them ([`protocol`]: server and clients over a
//! `fedra_federation::Channel`, local training with `fedra-nn`). The shape follows Flower: a
//! [`Strategy`] configures a round ([`RoundPlan`]: which clients, plus
//! typed [`ClientInstructions`]) and aggregates the round's
//! [`ClientResult`]s and [`ClientFailure`]s into new global parameters.
//!
//! A client's result carries its **delta** `local − global`
//! ([`client::model_delta`]) and its `num_examples`.
//!
//! * [`FedAvg`] — FedAvg and FedProx ([`FedAvg::fedprox`]; client side:
//!   [`client::fedprox_correct_gradient`]);
//! * [`FedOpt`] — FedAdam / FedYogi / FedAdagrad ([`ServerOptimizer`],
//!   Reddi et al. 2021);
//! * [`Scaffold`] — SCAFFOLD (client side: [`client::scaffold_correct_gradient`],
//!   [`client::scaffold_update_control`]);
//! * [`Aggregator`] / [`AggregationRule`] — weighted mean, median, trimmed
//!   mean, Krum, Multi-Krum, plus L2 norm bounding; usable inside FedAvg
//!   and FedOpt (module [`aggregate`] has the rules as functions);
//! * [`ClientScheduler`] — uniform sampling with `fraction`,
//!   `min_clients`, `min_available`; [`round_rng`] makes it reproducible
//!   per `(seed, round)`, [`client_round_rng`] gives each client's public
//!   per-round stream `(seed, client, round)` (its mini-batch order);
//! * [`StrategyState`] — serde-serialisable server state for checkpoints;
//! * [`HorizontalConfig`] — typed TOML configuration, `validate`, `build`;
//! * [`protocol`] — the networked protocol: [`protocol::run_server`] and
//!   [`protocol::run_client`] over a `fedra_federation::Channel`, with round
//!   deadlines, secure aggregation, DP, checkpoints and resume.
//!
//! **Randomness.** Non-secret random choices — client sampling, each
//! client's mini-batch order, the initial model — derive from the job's
//! `seed` (plus client id and round), so the same job run twice, or killed
//! and resumed, gives the same model bit for bit when DP is off. Secret
//! randomness — secure-aggregation keys and masks, DP noise, and the batch
//! order under local DP-SGD — comes only from the CSPRNG the caller passes
//! to [`protocol::run_server`] / [`protocol::run_client`] (seeded by the OS
//! in production). Details: [`protocol`], "Randomness: public and secret".
//!
//! ```
//! use fedra_horizontal::{ClientId, ClientResult, HorizontalConfig};
//!
//! let cfg: HorizontalConfig = toml::from_str(r#"
//!     seed = 7
//!     strategy = { kind = "fed_avg" }
//! "#).unwrap();
//! let mut strategy = cfg.build(3).unwrap();
//! let available: Vec<ClientId> = ["a", "b"].map(ClientId::from).to_vec();
//! let mut global = vec![0.0f32; 3];
//! for round in 1..=2 {
//!     let plan = strategy.configure_round(round, &available, &mut cfg.round_rng(round)).unwrap();
//!     // ... send `global` and `plan.instructions` to `plan.clients`, train, collect:
//!     let results = vec![
//!         ClientResult::new("a", 1, vec![1.0, 0.0, 0.0]),
//!         ClientResult::new("b", 3, vec![0.0, 4.0, 0.0]),
//!     ];
//!     global = strategy.aggregate(round, &global, results, vec![]).unwrap();
//! }
//! assert_eq!(global, vec![0.5, 6.0, 0.0]);
//! let checkpoint = serde_json::to_string(&strategy.state()).unwrap();
//! # let _ = checkpoint;
//! ```

pub mod aggregate;
pub mod client;
mod config;
mod error;
mod fedavg;
mod fedopt;
pub mod protocol;
mod scaffold;
mod scheduler;
mod strategy;
mod types;

pub use aggregate::{AggregationRule, Aggregator};
pub use config::{HorizontalConfig, StrategyConfig};
pub use error::{HorizontalError, Result};
pub use fedavg::FedAvg;
pub use fedopt::{FedOpt, ServerOptimizer};
pub use scaffold::Scaffold;
pub use scheduler::{ClientScheduler, SamplingConfig, client_round_rng, round_rng};
pub use strategy::{ServerState, Strategy, StrategyKind, StrategyState};
pub use types::{
    ClientFailure, ClientId, ClientInstructions, ClientResult, RoundPlan, partition_valid,
};
