//! FedAvg (McMahan et al. 2017) and FedProx (Li et al. 2020).
//!
//! Server step: `x ← x + A(Δ_1, …, Δ_k)` where `A` is the configured
//! [`Aggregator`] (default: the mean of the deltas weighted by
//! `num_examples`, accumulated in `f64`). FedProx's server is FedAvg; the
//! difference is the client's proximal term `μ/2·‖w − w_global‖²`, whose
//! gradient [`crate::client::fedprox_correct_gradient`] adds.

use rand_core::RngCore;

use crate::aggregate::Aggregator;
use crate::error::{Result, config_err};
use crate::scheduler::ClientScheduler;
use crate::strategy::{
    Rounds, ServerState, Strategy, StrategyKind, StrategyState, apply_delta, check_state,
};
use crate::types::{ClientFailure, ClientId, ClientInstructions, ClientResult, RoundPlan};

/// FedAvg, or FedProx when built with [`FedAvg::fedprox`].
#[derive(Debug, Clone)]
pub struct FedAvg {
    num_params: usize,
    scheduler: ClientScheduler,
    aggregator: Aggregator,
    proximal_mu: Option<f64>,
    rounds: Rounds,
}

impl FedAvg {
    /// FedAvg over parameter vectors of length `num_params`.
    pub fn new(
        num_params: usize,
        scheduler: ClientScheduler,
        aggregator: Aggregator,
    ) -> Result<Self> {
        aggregator.validate()?;
        aggregator.check_min_results(scheduler.config().min_results)?;
        Ok(FedAvg {
            num_params,
            scheduler,
            aggregator,
            proximal_mu: None,
            rounds: Rounds::new(),
        })
    }

    /// FedProx with proximal coefficient `mu ∈ [0, 100]` (sent to the
    /// clients in every [`RoundPlan`]).
    pub fn fedprox(
        num_params: usize,
        scheduler: ClientScheduler,
        aggregator: Aggregator,
        mu: f64,
    ) -> Result<Self> {
        check_mu(mu)?;
        let mut s = FedAvg::new(num_params, scheduler, aggregator)?;
        s.proximal_mu = Some(mu);
        Ok(s)
    }

    /// The aggregator.
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }
}

pub(crate) fn check_mu(mu: f64) -> Result<()> {
    if !(0.0..=100.0).contains(&mu) {
        return Err(config_err(
            "strategy.mu",
            format!("must be in [0, 100] (got {mu})"),
        ));
    }
    Ok(())
}

impl Strategy for FedAvg {
    fn kind(&self) -> StrategyKind {
        match self.proximal_mu {
            Some(_) => StrategyKind::FedProx,
            None => StrategyKind::FedAvg,
        }
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
        let instructions = match self.proximal_mu {
            Some(mu) => ClientInstructions::FedProx { mu },
            None => ClientInstructions::Plain,
        };
        Ok(RoundPlan {
            round,
            clients,
            instructions,
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
        let next = apply_delta(global, &delta, 1.0);
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
        let next = apply_delta(global, &mean, 1.0);
        self.rounds.finish(round);
        Ok(next)
    }

    fn state(&self) -> StrategyState {
        StrategyState {
            kind: self.kind(),
            num_params: self.num_params,
            last_round: self.rounds.last,
            server: ServerState::Stateless,
        }
    }

    fn restore(&mut self, state: StrategyState) -> Result<()> {
        check_state(&state, self.kind(), self.num_params)?;
        if state.server != ServerState::Stateless {
            return Err(crate::HorizontalError::StateMismatch {
                field: "server",
                reason: "FedAvg/FedProx state carries no vectors".to_owned(),
            });
        }
        self.rounds.restore(state.last_round);
        Ok(())
    }
}
