//! SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled
//! Averaging for Federated Learning", Algorithm 1), server side.
//!
//! The server keeps a control variate `c` (initially 0) and sends it with
//! every round ([`ClientInstructions::Scaffold`]). Each selected client
//! trains with corrected gradients `g − c_i + c`, updates its own `c_i`
//! (option II, see [`crate::client`]) and returns `Δy_i = y_i − x` as its
//! delta and `Δc_i = c_i⁺ − c_i` as its `control_delta`. The server, with
//! `S` the clients whose results arrived and `N` the number of clients:
//!
//! ```text
//! x ← x + η_g · (1/|S|) Σ_{i∈S} Δy_i
//! c ← c + (|S|/N) · (1/|S|) Σ_{i∈S} Δc_i
//! ```
//!
//! Both means are unweighted, as in the paper. `N` is
//! `num_clients` if configured, else the number of clients available when
//! the round was configured. Robust aggregation rules and norm bounding
//! are not supported here.

use rand_core::RngCore;

use crate::aggregate::mean;
use crate::error::{HorizontalError, Result, config_err};
use crate::scheduler::ClientScheduler;
use crate::strategy::{
    Rounds, ServerState, Strategy, StrategyKind, StrategyState, apply_delta, check_state,
    check_state_vector,
};
use crate::types::{ClientFailure, ClientId, ClientInstructions, ClientResult, RoundPlan};

/// SCAFFOLD's server.
#[derive(Debug, Clone)]
pub struct Scaffold {
    num_params: usize,
    scheduler: ClientScheduler,
    eta_g: f64,
    num_clients: Option<u32>,
    control: Vec<f32>,
    rounds: Rounds,
}

impl Scaffold {
    /// SCAFFOLD with global step size `eta_g ∈ (0, 100]` and optionally a
    /// fixed federation size `N = num_clients` (`>= 1`).
    pub fn new(
        num_params: usize,
        scheduler: ClientScheduler,
        eta_g: f64,
        num_clients: Option<u32>,
    ) -> Result<Self> {
        check_params(eta_g, num_clients)?;
        Ok(Scaffold {
            num_params,
            scheduler,
            eta_g,
            num_clients,
            control: vec![0.0; num_params],
            rounds: Rounds::new(),
        })
    }

    /// The server control variate `c`.
    pub fn control(&self) -> &[f32] {
        &self.control
    }
}

pub(crate) fn check_params(eta_g: f64, num_clients: Option<u32>) -> Result<()> {
    if !(eta_g > 0.0 && eta_g <= 100.0) {
        return Err(config_err(
            "strategy.eta_g",
            format!("must be in (0, 100] (got {eta_g})"),
        ));
    }
    if num_clients == Some(0) {
        return Err(config_err("strategy.num_clients", "must be >= 1 (got 0)"));
    }
    Ok(())
}

impl Strategy for Scaffold {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Scaffold
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
            instructions: ClientInstructions::Scaffold {
                server_control: self.control.clone(),
            },
        })
    }

    fn aggregate(
        &mut self,
        round: u32,
        global: &[f32],
        results: Vec<ClientResult>,
        failures: Vec<ClientFailure>,
    ) -> Result<Vec<f32>> {
        let min = self.scheduler.config().min_results;
        let pending =
            self.rounds
                .check(round, self.num_params, min, global, &results, &failures)?;
        let s = results.len();
        let n = self.num_clients.map_or(pending.available, |n| n as usize);
        if n < s {
            return Err(config_err(
                "strategy.num_clients",
                format!("N = {n} is smaller than the {s} results of round {round}"),
            ));
        }
        let mut dys = Vec::with_capacity(s);
        let mut dcs = Vec::with_capacity(s);
        for r in &results {
            let dc =
                r.control_delta
                    .as_deref()
                    .ok_or_else(|| HorizontalError::MissingControlDelta {
                        client: r.client.clone(),
                    })?;
            dys.push(r.delta.as_slice());
            dcs.push(dc);
        }
        let dy = mean(&dys)?;
        let dc = mean(&dcs)?;
        let next = apply_delta(global, &dy, self.eta_g);
        self.control = apply_delta(&self.control, &dc, s as f64 / n as f64);
        self.rounds.finish(round);
        Ok(next)
    }

    fn state(&self) -> StrategyState {
        StrategyState {
            kind: StrategyKind::Scaffold,
            num_params: self.num_params,
            last_round: self.rounds.last,
            server: ServerState::Scaffold {
                control: self.control.clone(),
            },
        }
    }

    fn restore(&mut self, state: StrategyState) -> Result<()> {
        check_state(&state, StrategyKind::Scaffold, self.num_params)?;
        match state.server {
            ServerState::Scaffold { control } => {
                check_state_vector("server.control", &control, self.num_params)?;
                self.control = control;
            }
            other => {
                return Err(HorizontalError::StateMismatch {
                    field: "server",
                    reason: format!(
                        "expected a scaffold control variate, found {}",
                        crate::fedopt::variant(&other)
                    ),
                });
            }
        }
        self.rounds.restore(state.last_round);
        Ok(())
    }
}
