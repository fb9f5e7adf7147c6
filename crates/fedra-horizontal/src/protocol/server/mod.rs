//! [`run_server`]: the server side of the protocol (see the
//! [module docs](super)) — the run loop: hellos, one round after the other,
//! checkpoints, the final model.
//!
//! A round is [`round`]; collecting plain updates is [`collect`]; the four
//! secure-aggregation phases are [`secagg`]; central DP's noise is [`noise`].

mod collect;
mod noise;
mod round;
mod secagg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fedra_dp::{Accountant, Event};
use fedra_federation::{Channel, PartyId};
use futures_util::future::join_all;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout_at};

use super::checkpoint::Checkpoint;
use super::config::{DpMode, ServerConfig};
use super::wire::{RecvError, broadcast_blob, f32_bytes, recv_json, to_json};
use super::{FinalMsg, HelloMsg, StartMsg, dp_err};
use crate::error::{HorizontalError, Result};
use crate::types::{ClientFailure, ClientId};
use round::RoundCtx;

/// The evaluation hook: called with the round and the new global
/// parameters after every aggregation; returns named metrics (recorded in
/// [`RoundRecord::metrics`]).
pub type Evaluate<'a> = dyn Fn(u32, &[f32]) -> Vec<(String, f64)> + Send + Sync + 'a;

/// What happened in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The round.
    pub round: u32,
    /// Clients selected.
    pub selected: Vec<String>,
    /// Clients whose update went into the aggregate.
    pub contributed: Vec<String>,
    /// Selected clients that failed, with the reason.
    pub failures: Vec<ClientFailure>,
    /// Metrics from the evaluation hook.
    pub metrics: Vec<(String, f64)>,
    /// Central DP: ε spent so far (at the configured δ).
    pub epsilon: Option<f64>,
    /// Secure aggregation: the bound on the quantisation error of each
    /// coordinate of the averaged update, `1/(2·scale)`.
    pub quantization_error: Option<f64>,
    /// Clients that dropped out (their process died or vanished, or they
    /// aborted: the channel reported them as dropped) since the previous
    /// round's record — usually selected clients lost during this round,
    /// which are also in `failures` with the reason. Each dropout is
    /// reported in exactly one round.
    #[serde(default)]
    pub dropped_clients: Vec<String>,
    /// Clients not eligible this round because they dropped out earlier.
    #[serde(default)]
    pub excluded: Vec<String>,
}

/// The result of [`run_server`].
#[derive(Debug, Clone)]
pub struct ServerOutcome {
    /// The final global parameters.
    pub params: Vec<f32>,
    /// The last completed round.
    pub rounds_completed: u32,
    /// The round the run resumed after, if it started from a checkpoint.
    pub resumed_after: Option<u32>,
    /// Every completed round (including those before a resume).
    pub history: Vec<RoundRecord>,
    /// Central DP: the accountant and the total ε at the configured δ.
    pub accountant: Option<Accountant>,
    /// Central DP: total ε.
    pub epsilon: Option<f64>,
    /// Clients that did not say hello (never selected).
    pub absent: Vec<ClientFailure>,
    /// Clients that dropped out during the run (after their hello), with the
    /// channel's reason; they were not selected again.
    pub dropped: Vec<ClientFailure>,
}

pub(super) fn sid(p: &PartyId) -> ClientId {
    ClientId::from(p.as_str())
}

/// Runs the server of a horizontal federation to the end (see the
/// [module docs](super)).
///
/// * `ch`: this party's channel; the clients are `cfg.clients` or every
///   peer.
/// * `task`: the task name, namespacing every message.
/// * `initial_params`: the starting model (ignored when resuming), length
///   `cfg.model.count_params()`.
/// * `checkpoint`: where to write the checkpoint after every round, and to
///   resume from if the file exists.
/// * `evaluate`: optional hook called after each round.
/// * `rng`: a CSPRNG (seed it from the OS in production); a 32-byte key is
///   drawn from it once, from which the per-round DP noise is derived. The
///   server's only *public* random choice, client sampling, comes from
///   [`crate::round_rng`]`(cfg.horizontal.seed, round)` instead.
pub async fn run_server(
    ch: &dyn Channel,
    task: &str,
    cfg: &ServerConfig,
    initial_params: Vec<f32>,
    checkpoint: Option<&Path>,
    evaluate: Option<&Evaluate<'_>>,
    rng: &mut (impl CryptoRng + Send),
) -> Result<ServerOutcome> {
    cfg.validate()?;
    let num_params = cfg.model.count_params();
    crate::types::check_vector("initial parameters", None, &initial_params, num_params)?;
    let mut clients: Vec<PartyId> = cfg.clients.clone().unwrap_or_else(|| ch.peers().to_vec());
    clients.sort();
    if let Some(p) = clients.iter().find(|p| !ch.peers().contains(p)) {
        return Err(HorizontalError::Config {
            field: "clients",
            reason: format!("{p} is not a peer of this channel"),
        });
    }
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);

    let mut strategy = cfg.horizontal.build(num_params)?;
    let central_dp = cfg.dp.filter(|d| d.mode == DpMode::Central);
    let mut global = initial_params;
    let mut first = 1;
    let mut accountant = central_dp.map(|_| Accountant::new());
    let mut history = Vec::new();
    let mut resumed_after = None;
    if let Some(path) = checkpoint
        && let Some(ck) = Checkpoint::load(path)?
    {
        ck.check_compatible(cfg, path)?;
        strategy.restore(ck.strategy)?;
        global = ck.params;
        first = ck.round + 1;
        accountant = ck.accountant;
        history = ck.history;
        resumed_after = Some(ck.round);
    }

    let deadline = cfg.round_timeout();
    let start = StartMsg {
        first_round: first,
        last_round: cfg.rounds,
        model: cfg.model.clone(),
        num_params,
        chunk_bytes: cfg.chunk_bytes,
        seed: cfg.horizontal.seed,
    };
    let sent = broadcast_blob(
        ch,
        &clients,
        task,
        0,
        "start",
        &to_json(&start)?,
        cfg.chunk_bytes,
        deadline,
    )
    .await;
    let until = Instant::now() + deadline;
    let hellos = join_all(clients.iter().zip(sent).map(|(c, sent)| async move {
        sent?;
        let h = timeout_at(until, recv_json::<HelloMsg>(ch, c, task, 0, "hello"))
            .await
            .unwrap_or(Err(RecvError::Timeout))
            .map_err(|e| e.reason())?;
        if h.num_examples == 0 || h.num_examples > 1 << 48 {
            return Err("hello: num_examples outside 1..=2^48".to_owned());
        }
        Ok(h.num_examples)
    }))
    .await;
    let mut weights = BTreeMap::new();
    let mut absent = Vec::new();
    for (c, h) in clients.iter().zip(hellos) {
        match h {
            Ok(n) => {
                weights.insert(c.clone(), n);
            }
            Err(reason) => absent.push(ClientFailure::new(sid(c), reason)),
        }
    }
    let present: Vec<PartyId> = weights.keys().cloned().collect();

    let ctx = RoundCtx {
        ch,
        task,
        cfg,
        num_params,
        clients: &clients,
        present: &present,
        absent: &absent,
        weights: &weights,
        key,
        reuse: std::sync::Mutex::new(None),
    };
    let mut reported = BTreeSet::new();
    for round in first..=cfg.rounds {
        let (next, mut record) = ctx.round(round, strategy.as_mut(), &global).await?;
        // Every client that dropped out since the last record — during this
        // round (usually: the server notices while waiting for it), or
        // between rounds — is reported once.
        for p in ctx.gone().into_keys() {
            if reported.insert(p.clone()) {
                record.dropped_clients.push(p.to_string());
            }
        }
        if let (Some(dp), Some(acc)) = (&central_dp, accountant.as_mut()) {
            let q = record.selected.len() as f64 / present.len().max(1) as f64;
            let report = acc
                .record_round(
                    Event {
                        noise_multiplier: dp.noise_multiplier,
                        sampling_rate: q.min(1.0),
                        steps: 1,
                    },
                    dp.delta,
                )
                .map_err(dp_err)?;
            record.epsilon = Some(report.total.epsilon);
        }
        global = next;
        if let Some(eval) = evaluate {
            record.metrics = eval(round, &global);
        }
        history.push(record);
        if let Some(path) = checkpoint {
            Checkpoint {
                round,
                config: cfg.clone(),
                strategy: strategy.state(),
                accountant: accountant.clone(),
                history: history.clone(),
                params: global.clone(),
            }
            .save(path)?;
        }
    }

    // The final model, to everyone who said hello (best effort).
    let fin = to_json(&FinalMsg {
        rounds_completed: cfg.rounds,
    })?;
    broadcast_blob(
        ch,
        &present,
        task,
        0,
        "final",
        &fin,
        cfg.chunk_bytes,
        deadline,
    )
    .await;
    broadcast_blob(
        ch,
        &present,
        task,
        0,
        "final/params",
        &f32_bytes(&global),
        cfg.chunk_bytes,
        deadline,
    )
    .await;

    let epsilon = match (&accountant, &central_dp) {
        (Some(acc), Some(dp)) if !acc.events().is_empty() => {
            Some(acc.epsilon(dp.delta).map_err(dp_err)?.epsilon)
        }
        _ => None,
    };
    let dropped = ctx
        .gone()
        .into_iter()
        .map(|(p, reason)| ClientFailure::new(sid(&p), reason))
        .collect();
    Ok(ServerOutcome {
        params: global,
        rounds_completed: cfg.rounds,
        resumed_after,
        history,
        accountant,
        epsilon,
        absent,
        dropped,
    })
}
