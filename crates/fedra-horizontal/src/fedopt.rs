//! Adaptive federated optimisation (Reddi et al. 2021, "Adaptive Federated
//! Optimization", Algorithm 2): FedAdam, FedYogi, FedAdagrad.
//!
//! The aggregated client delta `Δ_t = A(Δ_1, …, Δ_k)` (by default the
//! `num_examples`-weighted mean; any robust [`Aggregator`] works) is used
//! as a pseudo-gradient by a server optimiser, coordinate-wise:
//!
//! ```text
//! m_t = β1·m_{t−1} + (1 − β1)·Δ_t
//! v_t = v_{t−1} + Δ_t²                                   (FedAdagrad)
//! v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²)      (FedYogi)
//! v_t = β2·v_{t−1} + (1 − β2)·Δ_t²                        (FedAdam)
//! x_{t+1} = x_t + η·m_t / (√v_t + τ)
//! ```
//!
//! with `m_{−1} = 0` and `v_{−1} = τ²` (the paper's `v_{−1} ≥ τ²`), and no
//! bias correction (as in the paper; Flower's FedAdam adds one). Updates
//! are computed in `f64`; `m` and `v` are stored as `f32` and are part of
//! the checkpointable [`StrategyState`].

use rand_core::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregator;
use crate::error::{Result, config_err};
use crate::scheduler::ClientScheduler;
use crate::strategy::{
    Rounds, ServerState, Strategy, StrategyKind, StrategyState, check_state, check_state_vector,
};
use crate::types::{ClientFailure, ClientId, ClientInstructions, ClientResult, RoundPlan};

/// The server optimiser and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerOptimizer {
    /// Adam.
    Adam {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// First-moment decay β1, in `[0, 1)`.
        beta1: f64,
        /// Second-moment decay β2, in `[0, 1)`.
        beta2: f64,
        /// Adaptivity τ, in `(0, 1]`.
        tau: f64,
    },
    /// Yogi.
    Yogi {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// First-moment decay β1, in `[0, 1)`.
        beta1: f64,
        /// Second-moment decay β2, in `[0, 1)`.
        beta2: f64,
        /// Adaptivity τ, in `(0, 1]`.
        tau: f64,
    },
    /// Adagrad.
    Adagrad {
        /// Server learning rate η, in `(0, 100]`.
        eta: f64,
        /// First-moment decay β1, in `[0, 1)` (0 = no momentum).
        beta1: f64,
        /// Adaptivity τ, in `(0, 1]`.
        tau: f64,
    },
}

impl ServerOptimizer {
    /// Checks every hyper-parameter's range (errors name `strategy.<field>`).
    pub fn validate(&self) -> Result<()> {
        let (eta, beta1, beta2, tau) = self.params();
        if !(eta > 0.0 && eta <= 100.0) {
            return Err(config_err(
                "strategy.eta",
                format!("must be in (0, 100] (got {eta})"),
            ));
        }
        if !(0.0..1.0).contains(&beta1) {
            return Err(config_err(
                "strategy.beta1",
                format!("must be in [0, 1) (got {beta1})"),
            ));
        }
        if let Some(b2) = beta2
            && !(0.0..1.0).contains(&b2)
        {
            return Err(config_err(
                "strategy.beta2",
                format!("must be in [0, 1) (got {b2})"),
            ));
        }
        if !(tau > 0.0 && tau <= 1.0) {
            return Err(config_err(
                "strategy.tau",
                format!("must be in (0, 1] (got {tau})"),
            ));
        }
        Ok(())
    }

    /// `(eta, beta1, beta2, tau)`.
    fn params(&self) -> (f64, f64, Option<f64>, f64) {
        match *self {
            ServerOptimizer::Adam {
                eta,
                beta1,
                beta2,
                tau,
            }
            | ServerOptimizer::Yogi {
                eta,
                beta1,
                beta2,
                tau,
            } => (eta, beta1, Some(beta2), tau),
            ServerOptimizer::Adagrad { eta, beta1, tau } => (eta, beta1, None, tau),
        }
    }

    fn kind(&self) -> StrategyKind {
        match self {
            ServerOptimizer::Adam { .. } => StrategyKind::FedAdam,
            ServerOptimizer::Yogi { .. } => StrategyKind::FedYogi,
            ServerOptimizer::Adagrad { .. } => StrategyKind::FedAdagrad,
        }
    }
}

/// FedAdam / FedYogi / FedAdagrad.
#[derive(Debug, Clone)]
pub struct FedOpt {
    num_params: usize,
    scheduler: ClientScheduler,
    aggregator: Aggregator,
    optimizer: ServerOptimizer,
    m: Vec<f32>,
    v: Vec<f32>,
    rounds: Rounds,
}

impl FedOpt {
    /// A server-optimiser strategy over vectors of length `num_params`
    /// (`m = 0`, `v = τ²`).
    pub fn new(
        num_params: usize,
        scheduler: ClientScheduler,
        aggregator: Aggregator,
        optimizer: ServerOptimizer,
    ) -> Result<Self> {
        optimizer.validate()?;
        aggregator.validate()?;
        aggregator.check_min_results(scheduler.config().min_results)?;
        let tau = optimizer.params().3;
        Ok(FedOpt {
            num_params,
            scheduler,
            aggregator,
            optimizer,
            m: vec![0.0; num_params],
            v: vec![(tau * tau) as f32; num_params],
            rounds: Rounds::new(),
        })
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &ServerOptimizer {
        &self.optimizer
    }

    /// The moments `(m, v)`.
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// One optimiser step on `global` with pseudo-gradient `delta`,
    /// updating the moments.
    fn step(&mut self, global: &[f32], delta: &[f32]) -> Vec<f32> {
        const CHUNK: usize = 8192;
        let (eta, beta1, beta2, tau) = self.optimizer.params();
        let beta2 = beta2.unwrap_or(0.0);
        let opt = self.optimizer;
        let mut out = global.to_vec();
        out.par_chunks_mut(CHUNK)
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .zip(delta.par_chunks(CHUNK))
            .for_each(|(((x, m), v), d)| {
                for (((x, m), v), &d) in x.iter_mut().zip(m).zip(v).zip(d) {
                    let d = f64::from(d);
                    let d2 = d * d;
                    let m_new = beta1 * f64::from(*m) + (1.0 - beta1) * d;
                    let v_old = f64::from(*v);
                    let v_new = match opt {
                        ServerOptimizer::Adagrad { .. } => v_old + d2,
                        ServerOptimizer::Yogi { .. } => {
                            let diff = v_old - d2;
                            let sign = if diff > 0.0 {
                                1.0
                            } else if diff < 0.0 {
                                -1.0
                            } else {
                                0.0
                            };
                            v_old - (1.0 - beta2) * d2 * sign
                        }
                        ServerOptimizer::Adam { .. } => beta2 * v_old + (1.0 - beta2) * d2,
                    };
                    *x = (f64::from(*x) + eta * m_new / (v_new.sqrt() + tau)) as f32;
                    *m = m_new as f32;
                    *v = v_new as f32;
                }
            });
        out
    }
}

impl Strategy for FedOpt {
    fn kind(&self) -> StrategyKind {
        self.optimizer.kind()
    }

    fn num_params(&self) -> usize {
        self.num_params
    }

    fn configure_round(
        &mut self,
        round: u32,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<RoundPlan> {
        let clients = self.rounds.begin(round, &self.scheduler, available, rng)?;
        Ok(RoundPlan {
            round,
            clients,
            instructions: ClientInstructions::Plain,
        })
    }

    fn aggregate(
        &mut self,
        round: u32,
        global: &[f32],
        mut results: Vec<ClientResult>,
        failures: Vec<ClientFailure>,
    ) -> Result<Vec<f32>> {
        let min = self.scheduler.config().min_results;
        self.rounds
            .check(round, self.num_params, min, global, &results, &failures)?;
        let delta = self.aggregator.aggregate_results(&mut results)?;
        let next = self.step(global, &delta);
        self.rounds.finish(round);
        Ok(next)
    }

    fn streaming_aggregator(&self) -> Option<Aggregator> {
        self.aggregator.streaming_weight(1).map(|_| self.aggregator)
    }

    fn aggregate_mean(
        &mut self,
        round: u32,
        global: &[f32],
        contributors: &[(ClientId, u64)],
        mean: Vec<f32>,
        failures: Vec<ClientFailure>,
    ) -> Result<Vec<f32>> {
        let min = self.scheduler.config().min_results;
        self.rounds.check_mean(
            &self.aggregator,
            (round, self.num_params, min),
            global,
            contributors,
            &mean,
            &failures,
        )?;
        let next = self.step(global, &mean);
        self.rounds.finish(round);
        Ok(next)
    }

    fn state(&self) -> StrategyState {
        StrategyState {
            kind: self.kind(),
            num_params: self.num_params,
            last_round: self.rounds.last,
            server: ServerState::Adaptive {
                m: self.m.clone(),
                v: self.v.clone(),
            },
        }
    }

    fn restore(&mut self, state: StrategyState) -> Result<()> {
        check_state(&state, self.kind(), self.num_params)?;
        match state.server {
            ServerState::Adaptive { m, v } => {
                check_state_vector("server.m", &m, self.num_params)?;
                check_state_vector("server.v", &v, self.num_params)?;
                if let Some(i) = v.iter().position(|&x| x < 0.0) {
                    return Err(crate::HorizontalError::StateMismatch {
                        field: "server.v",
                        reason: format!("negative second moment at index {i}"),
                    });
                }
                self.m = m;
                self.v = v;
            }
            other => {
                return Err(crate::HorizontalError::StateMismatch {
                    field: "server",
                    reason: format!("expected adaptive moments, found {}", variant(&other)),
                });
            }
        }
        self.rounds.restore(state.last_round);
        Ok(())
    }
}

pub(crate) fn variant(s: &ServerState) -> &'static str {
    match s {
        ServerState::Stateless => "stateless",
        ServerState::Adaptive { .. } => "adaptive",
        ServerState::Scaffold { .. } => "scaffold",
    }
}
