//! The [`Strategy`] trait (Flower's shape: configure a round, then aggregate
//! its results and failures), checkpointable [`StrategyState`], and the
//! round bookkeeping shared by the strategies.

use std::collections::BTreeSet;

use rand_core::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregator;
use crate::error::{HorizontalError, Result};
use crate::scheduler::ClientScheduler;
use crate::types::{ClientFailure, ClientId, ClientResult, RoundPlan, check_vector};

/// A horizontal-FL server strategy over flat `f32` parameter vectors.
///
/// One round: the driver calls [`Strategy::configure_round`] with the
/// clients currently available, sends the global parameters and the plan's
/// instructions to the selected clients, collects their
/// [`ClientResult`]s (deltas `local − global`) and [`ClientFailure`]s, and
/// calls [`Strategy::aggregate`] with the same round number and global
/// parameters to get the next global parameters.
///
/// Rounds must increase; `aggregate` needs the pending plan of the same
/// round. On error the strategy's state is unchanged (the round can be
/// configured again). To checkpoint after a round, save the new global
/// parameters, the round number and [`Strategy::state`]; to resume, build
/// the strategy from the same configuration, [`Strategy::restore`] the
/// state and continue with the next round (with
/// [`crate::round_rng`]`(seed, round)` the selections are identical too).
pub trait Strategy: Send {
    /// Which algorithm this is.
    fn kind(&self) -> StrategyKind;

    /// The length of the parameter vectors.
    fn num_params(&self) -> usize;

    /// Selects the round's clients among `available` (with `rng`, e.g.
    /// [`crate::round_rng`]`(seed, round)`) and says what they must do.
    fn configure_round(
        &mut self,
        round: u32,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<RoundPlan>;

    /// Aggregates the round's results into new global parameters. Fails
    /// (naming the failed and missing clients) with fewer than
    /// `min_results` results, and on results from unselected clients,
    /// duplicates, wrong lengths, non-finite values or `num_examples = 0`
    /// (see [`crate::partition_valid`] to turn such results into failures
    /// first).
    fn aggregate(
        &mut self,
        round: u32,
        global: &[f32],
        results: Vec<ClientResult>,
        failures: Vec<ClientFailure>,
    ) -> Result<Vec<f32>>;

    /// If this strategy aggregates with a mean rule (weighted or not), its
    /// aggregator: a driver may then average the updates itself as they
    /// arrive ([`crate::aggregate::MeanAccumulator`], after
    /// [`Aggregator::bound`]) — or securely — and call
    /// [`Strategy::aggregate_mean`] instead of holding every update for
    /// [`Strategy::aggregate`]. `None` (the default): only `aggregate`.
    fn streaming_aggregator(&self) -> Option<Aggregator> {
        None
    }

    /// [`Strategy::aggregate`] for a round whose updates the driver has
    /// already averaged as [`Strategy::streaming_aggregator`] defines:
    /// `contributors` are `(client, num_examples)` of the updates in `mean`.
    /// Same checks and errors as `aggregate`. The default hands `mean` to
    /// `aggregate` once per contributor.
    fn aggregate_mean(
        &mut self,
        round: u32,
        global: &[f32],
        contributors: &[(ClientId, u64)],
        mean: Vec<f32>,
        failures: Vec<ClientFailure>,
    ) -> Result<Vec<f32>> {
        let results = contributors
            .iter()
            .map(|(c, n)| ClientResult::new(c.clone(), *n, mean.clone()))
            .collect();
        self.aggregate(round, global, results, failures)
    }

    /// The server-side state to checkpoint (after `aggregate`).
    fn state(&self) -> StrategyState;

    /// Replaces the state with a checkpointed one (same kind and length).
    fn restore(&mut self, state: StrategyState) -> Result<()>;
}

/// The algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Federated averaging (McMahan et al. 2017).
    FedAvg,
    /// FedProx (Li et al. 2020): FedAvg with a proximal term on clients.
    FedProx,
    /// FedAdam (Reddi et al. 2021).
    FedAdam,
    /// FedYogi (Reddi et al. 2021).
    FedYogi,
    /// FedAdagrad (Reddi et al. 2021).
    FedAdagrad,
    /// SCAFFOLD (Karimireddy et al. 2020).
    Scaffold,
}

/// A strategy's checkpointable state (serde; e.g. JSON round-trips `f32`
/// exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyState {
    /// The algorithm the state belongs to.
    pub kind: StrategyKind,
    /// Length of the parameter vectors.
    pub num_params: usize,
    /// The last aggregated round, if any.
    pub last_round: Option<u32>,
    /// Algorithm-specific vectors.
    pub server: ServerState,
}

/// Algorithm-specific server state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// FedAvg / FedProx keep nothing but the round counter.
    Stateless,
    /// FedAdam / FedYogi / FedAdagrad moments.
    Adaptive {
        /// First moment `m`.
        m: Vec<f32>,
        /// Second moment `v`.
        v: Vec<f32>,
    },
    /// SCAFFOLD's server control variate `c`.
    Scaffold {
        /// `c`.
        control: Vec<f32>,
    },
}

/// The round selected but not yet aggregated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub round: u32,
    /// Sorted.
    pub selected: Vec<ClientId>,
    /// Distinct clients available when the round was configured.
    pub available: usize,
}

/// Round ordering and result checks shared by the strategies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rounds {
    pub last: Option<u32>,
    pub pending: Option<Pending>,
}

impl Rounds {
    pub fn new() -> Self {
        Rounds {
            last: None,
            pending: None,
        }
    }

    /// Checks the round order and selects the clients.
    pub fn begin(
        &mut self,
        round: u32,
        scheduler: &ClientScheduler,
        available: &[ClientId],
        rng: &mut dyn RngCore,
    ) -> Result<Vec<ClientId>> {
        if let Some(last) = self.last
            && round <= last
        {
            return Err(HorizontalError::StaleRound { round, last });
        }
        let selected = scheduler.select(available, rng)?;
        self.pending = Some(Pending {
            round,
            selected: selected.clone(),
            available: available.len(),
        });
        Ok(selected)
    }

    /// Validates a round's inputs; returns the pending plan.
    pub fn check(
        &self,
        round: u32,
        num_params: usize,
        min_results: usize,
        global: &[f32],
        results: &[ClientResult],
        failures: &[ClientFailure],
    ) -> Result<&Pending> {
        let ids: Vec<&ClientId> = results.iter().map(|r| &r.client).collect();
        let pending = self.check_ids(round, num_params, min_results, global, &ids, failures)?;
        results.iter().try_for_each(|r| r.validate(num_params))?;
        Ok(pending)
    }

    /// [`Rounds::check`] for a round averaged by the driver: who
    /// contributed (selected, no duplicates, enough of them), not what.
    pub fn check_ids(
        &self,
        round: u32,
        num_params: usize,
        min_results: usize,
        global: &[f32],
        results: &[&ClientId],
        failures: &[ClientFailure],
    ) -> Result<&Pending> {
        let pending = match &self.pending {
            Some(p) if p.round == round => p,
            other => {
                return Err(HorizontalError::RoundNotConfigured {
                    round,
                    pending: other.as_ref().map(|p| p.round),
                });
            }
        };
        check_vector("global parameters", None, global, num_params)?;
        let mut seen = BTreeSet::new();
        let ids = results
            .iter()
            .map(|c| (*c, "results"))
            .chain(failures.iter().map(|f| (&f.client, "failures")));
        for (client, within) in ids {
            if pending.selected.binary_search(client).is_err() {
                return Err(HorizontalError::UnexpectedClient {
                    round,
                    client: client.clone(),
                });
            }
            if !seen.insert(client) {
                return Err(HorizontalError::DuplicateClient {
                    client: client.clone(),
                    within,
                });
            }
        }
        if results.len() < min_results {
            let mut failed: Vec<ClientId> = failures.iter().map(|f| f.client.clone()).collect();
            failed.sort_unstable();
            let missing = pending
                .selected
                .iter()
                .filter(|c| !seen.contains(c))
                .cloned()
                .collect();
            return Err(HorizontalError::TooFewResults {
                round,
                received: results.len(),
                required: min_results,
                failed,
                missing,
            });
        }
        Ok(pending)
    }

    /// The checks of [`Strategy::aggregate_mean`] for a strategy whose rule
    /// is `agg`: a mean rule, the round's contributors as
    /// [`Rounds::check_ids`] wants them, and a finite mean of the right
    /// length. `(round, num_params, min_results)`.
    pub fn check_mean(
        &self,
        agg: &Aggregator,
        (round, num_params, min_results): (u32, usize, usize),
        global: &[f32],
        contributors: &[(ClientId, u64)],
        mean: &[f32],
        failures: &[ClientFailure],
    ) -> Result<()> {
        if agg.streaming_weight(1).is_none() {
            return Err(HorizontalError::Config {
                field: "aggregation.rule",
                reason: format!(
                    "{} needs every update; it cannot take a pre-averaged one",
                    agg.rule.name()
                ),
            });
        }
        let ids: Vec<&ClientId> = contributors.iter().map(|(c, _)| c).collect();
        self.check_ids(round, num_params, min_results, global, &ids, failures)?;
        check_vector("mean update", None, mean, num_params)
    }

    /// Marks `round` as aggregated.
    pub fn finish(&mut self, round: u32) {
        self.last = Some(round);
        self.pending = None;
    }

    /// Restores the counter from a checkpoint.
    pub fn restore(&mut self, last: Option<u32>) {
        self.last = last;
        self.pending = None;
    }
}

/// Checks a state's kind and length against a strategy's.
pub(crate) fn check_state(
    state: &StrategyState,
    kind: StrategyKind,
    num_params: usize,
) -> Result<()> {
    if state.kind != kind {
        return Err(HorizontalError::StateMismatch {
            field: "kind",
            reason: format!("expected {kind:?}, found {:?}", state.kind),
        });
    }
    if state.num_params != num_params {
        return Err(HorizontalError::StateMismatch {
            field: "num_params",
            reason: format!("expected {num_params}, found {}", state.num_params),
        });
    }
    Ok(())
}

/// Checks one checkpointed vector (length, finiteness).
pub(crate) fn check_state_vector(field: &'static str, v: &[f32], num_params: usize) -> Result<()> {
    check_vector("state vector", None, v, num_params).map_err(|e| HorizontalError::StateMismatch {
        field,
        reason: e.to_string(),
    })
}

/// `global + scale·delta`, in parallel.
pub(crate) fn apply_delta(global: &[f32], delta: &[f32], scale: f64) -> Vec<f32> {
    let mut out = global.to_vec();
    out.par_chunks_mut(8192)
        .zip(delta.par_chunks(8192))
        .for_each(|(o, d)| {
            for (o, &d) in o.iter_mut().zip(d) {
                *o = (f64::from(*o) + scale * f64::from(d)) as f32;
            }
        });
    out
}
