//! [`run_server`]: the server side of the protocol (see the
//! [module docs](super)).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use fedra_dp::{Accountant, Event, add_gaussian_noise, clip_l2};
use fedra_federation::{Channel, PartyId, Tag};
use fedra_secagg::{
    AdvertiseKeys, ClientId as SaId, QuantConfig, Server, ShareKeys, UnmaskResponse, WireMessage,
};
use futures_util::future::join_all;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout_at};

use super::checkpoint::Checkpoint;
use super::config::{DpMode, SecAggConfig, ServerConfig};
use super::stream::StreamingMean;
use super::wire::{
    RecvError, RecvResult, broadcast_blob, f32_bytes, recv_blob, recv_chunks, recv_f32s, recv_json,
    send_blob, to_json,
};
use super::{
    FinalMsg, HelloMsg, Instr, PlanMsg, ResultMsg, SecAggPlan, StartMsg, TrainPlan, dp_err,
    ring_of, round_stream, secagg_err,
};
use crate::error::{HorizontalError, Result};
use crate::strategy::Strategy;
use crate::types::{ClientFailure, ClientId, ClientInstructions, ClientResult, partition_valid};

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

fn sid(p: &PartyId) -> ClientId {
    ClientId::from(p.as_str())
}

/// Updates folded into the running mean in one pass, at most (bounds the
/// extra memory to this many decoded updates).
const FOLD_BATCH: usize = 8;

/// A round's inputs to the strategy: individual updates, or their mean
/// (secure aggregation; plain rounds with a mean rule, folded on arrival).
enum Collected {
    Results(Vec<ClientResult>),
    Averaged {
        contributors: Vec<(ClientId, u64)>,
        mean: Vec<f32>,
    },
}

fn tag(task: &str, round: u32, name: &str) -> Tag {
    Tag::new(task, u64::from(round), name)
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
            return Err(format!(
                "hello: num_examples = {} outside 1..=2^48",
                h.num_examples
            ));
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

/// What every round needs.
struct RoundCtx<'a> {
    ch: &'a dyn Channel,
    task: &'a str,
    cfg: &'a ServerConfig,
    num_params: usize,
    clients: &'a [PartyId],
    present: &'a [PartyId],
    absent: &'a [ClientFailure],
    weights: &'a BTreeMap<PartyId, u64>,
    key: [u8; 32],
    /// Memory kept from round to round by the streaming mean (so that a
    /// round does not fault in fresh pages for every update).
    reuse: std::sync::Mutex<Option<StreamingMean>>,
}

/// The round's failures so far, by party.
type Failures = BTreeMap<PartyId, String>;

impl RoundCtx<'_> {
    fn party(&self, c: &ClientId) -> Result<PartyId> {
        self.present
            .iter()
            .find(|p| p.as_str() == c.as_str())
            .cloned()
            .ok_or_else(|| HorizontalError::UnexpectedClient {
                round: 0,
                client: c.clone(),
            })
    }

    /// The clients (among those that said hello) that dropped out so far,
    /// with the channel's reason.
    fn gone(&self) -> BTreeMap<PartyId, String> {
        self.ch
            .dropped()
            .into_iter()
            .filter(|(p, _)| self.present.contains(p))
            .map(|(p, e)| (p, e.to_string()))
            .collect()
    }

    async fn round(
        &self,
        round: u32,
        strategy: &mut dyn Strategy,
        global: &[f32],
    ) -> Result<(Vec<f32>, RoundRecord)> {
        let cfg = self.cfg;
        // A client that dropped out (its process died or vanished, or it
        // aborted) is not selected again in this run.
        let gone_before = self.gone();
        let eligible: Vec<&PartyId> = self
            .present
            .iter()
            .filter(|p| !gone_before.contains_key(*p))
            .collect();
        let sampling = &cfg.horizontal.sampling;
        let required = sampling.min_available.max(sampling.min_results);
        if eligible.len() < required {
            let mut gone: Vec<String> = gone_before
                .iter()
                .map(|(p, why)| format!("{p}: {why}"))
                .collect();
            gone.extend(
                self.absent
                    .iter()
                    .map(|f| format!("{}: {}", f.client, f.reason)),
            );
            return Err(HorizontalError::TooManyDropouts {
                round,
                available: eligible.len(),
                required,
                gone,
            });
        }
        let available: Vec<ClientId> = eligible.iter().map(|p| sid(p)).collect();
        let plan =
            strategy.configure_round(round, &available, &mut cfg.horizontal.round_rng(round))?;
        let selected: Vec<PartyId> = plan
            .clients
            .iter()
            .map(|c| self.party(c))
            .collect::<Result<_>>()?;
        let (instr, control) = match plan.instructions {
            ClientInstructions::Plain => (Instr::Plain, None),
            ClientInstructions::FedProx { mu } => (Instr::FedProx { mu }, None),
            ClientInstructions::Scaffold { server_control } => {
                (Instr::Scaffold, Some(server_control))
            }
        };
        let central_dp = cfg.dp.filter(|d| d.mode == DpMode::Central);
        let local_dp = cfg.dp.filter(|d| d.mode == DpMode::Local).map(|d| {
            (
                fedra_nn::DpSgd {
                    clip_norm: d.clip,
                    noise_multiplier: d.noise_multiplier,
                    microbatch_size: d.microbatch_size,
                },
                d.delta,
            )
        });
        // Under central DP every client weighs 1 (bounded sensitivity).
        let weight_of = |p: &PartyId| {
            if central_dp.is_some() {
                1
            } else {
                self.weights.get(p).copied().unwrap_or(1)
            }
        };
        let quant = match &cfg.secure_aggregation {
            Some(sa) => {
                let total: u64 = selected.iter().map(weight_of).sum();
                Some(secagg_quant(sa, selected.len() as u64, total).map_err(secagg_err(round))?)
            }
            None => None,
        };

        // Plans: `train` to the selected, `skip` to the others.
        let mut failures: Failures = BTreeMap::new();
        let deadline = cfg.round_timeout();
        let mut plans = Vec::with_capacity(self.clients.len());
        for p in self.present {
            let msg = match selected.iter().position(|s| s == p) {
                Some(i) => PlanMsg::Train(TrainPlan {
                    local: cfg.local,
                    instructions: instr,
                    clip_update_l2: match (&central_dp, &quant) {
                        (Some(dp), Some(_)) => Some(dp.clip),
                        _ => None,
                    },
                    dp_sgd: local_dp,
                    secagg: match (&cfg.secure_aggregation, &quant) {
                        (Some(sa), Some(q)) => Some(SecAggPlan {
                            id: i as u32 + 1,
                            n: selected.len() as u32,
                            threshold: sa.threshold,
                            ring_bits: sa.ring_bits,
                            clip: sa.clip,
                            scale: q.scale,
                            weight: weight_of(p),
                            neighbors: sa.neighbors,
                        }),
                        _ => None,
                    },
                }),
                None => PlanMsg::Skip,
            };
            plans.push((p, to_json(&msg)?));
        }
        let sends = join_all(plans.iter().map(|(p, msg)| async move {
            let r = tokio::time::timeout(
                deadline,
                send_blob(self.ch, p, self.task, round, "plan", msg, cfg.chunk_bytes),
            )
            .await;
            match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("sending the plan failed: {e}")),
                Err(_) => Err("sending the plan did not finish before the deadline".to_owned()),
            }
        }))
        .await;
        for ((p, _), r) in plans.iter().zip(sends) {
            if let Err(reason) = r
                && selected.contains(p)
            {
                failures.insert((*p).clone(), reason);
            }
        }
        let mut live: Vec<PartyId> = selected
            .iter()
            .filter(|p| !failures.contains_key(*p))
            .cloned()
            .collect();
        let mut vectors = vec![("params", f32_bytes(global))];
        if let Some(c) = &control {
            vectors.push(("control", f32_bytes(c)));
        }
        for (name, bytes) in &vectors {
            let sent = broadcast_blob(
                self.ch,
                &live,
                self.task,
                round,
                name,
                bytes,
                cfg.chunk_bytes,
                deadline,
            )
            .await;
            for (p, r) in live.iter().zip(sent) {
                if let Err(reason) = r {
                    failures.insert(p.clone(), reason);
                }
            }
            live.retain(|p| !failures.contains_key(p));
        }

        let until = Instant::now() + deadline;
        // Plain rounds under a mean rule are averaged on arrival.
        let streaming = strategy
            .streaming_aggregator()
            .filter(|_| central_dp.is_none());
        let (results, quantization_error) = match (&cfg.secure_aggregation, quant) {
            (Some(sa), Some(q)) => {
                let out = self
                    .secagg_round(round, sa, q, &selected, &live, &mut failures, until)
                    .await;
                // Release every selected client, whatever happened.
                let end = tag(self.task, round, "end");
                join_all(
                    selected.iter().map(|p| {
                        tokio::time::timeout(deadline, self.ch.send(p, &end, Bytes::new()))
                    }),
                )
                .await;
                let (sum, survivors) = out?;
                let mut mean = self.finish_sum(round, q, sum, &survivors, &selected, &weight_of)?;
                // Individual updates cannot be bounded under secure
                // aggregation (clients clip to ±clip); the norm bound, if
                // any, applies to the mean.
                if let Some(agg) = strategy.streaming_aggregator() {
                    agg.bound(&mut mean)?;
                }
                let contributors = survivors
                    .iter()
                    .map(|p| (sid(p), self.weights.get(p).copied().unwrap_or(1)))
                    .collect();
                (
                    Collected::Averaged { contributors, mean },
                    Some(0.5 / q.scale),
                )
            }
            _ if let Some(agg) = streaming => {
                let averaged = self
                    .collect_mean(round, &live, agg, &mut failures, until)
                    .await?;
                (averaged, None)
            }
            _ => {
                let results = self.collect(round, &live, &mut failures, until).await;
                let (ok, bad) = partition_valid(results, self.num_params);
                for f in bad {
                    failures.insert(self.party(&f.client)?, f.reason);
                }
                match &central_dp {
                    Some(dp) => {
                        let mut sum = vec![0f64; self.num_params];
                        for r in &ok {
                            let mut d = r.delta.clone();
                            clip_l2(&mut d, dp.clip).map_err(dp_err)?;
                            sum.iter_mut()
                                .zip(&d)
                                .for_each(|(s, v)| *s += f64::from(*v));
                        }
                        let mean = noisy_mean(
                            round,
                            &self.key,
                            sum,
                            dp.noise_multiplier * dp.clip,
                            selected.len(),
                        )?;
                        let results = ok
                            .iter()
                            .map(|r| {
                                ClientResult::new(r.client.clone(), r.num_examples, mean.clone())
                            })
                            .collect();
                        (Collected::Results(results), None)
                    }
                    None => (Collected::Results(ok), None),
                }
            }
        };
        let contributed: Vec<String> = match &results {
            Collected::Results(r) => r.iter().map(|r| r.client.to_string()).collect(),
            Collected::Averaged { contributors, .. } => {
                contributors.iter().map(|(c, _)| c.to_string()).collect()
            }
        };
        let failures: Vec<ClientFailure> = failures
            .into_iter()
            .filter(|(p, _)| !contributed.iter().any(|c| c == p.as_str()))
            .map(|(p, reason)| ClientFailure::new(sid(&p), reason))
            .collect();
        let next = match results {
            Collected::Results(r) => strategy.aggregate(round, global, r, failures.clone())?,
            Collected::Averaged { contributors, mean } => {
                strategy.aggregate_mean(round, global, &contributors, mean, failures.clone())?
            }
        };
        Ok((
            next,
            RoundRecord {
                round,
                selected: selected.iter().map(|p| p.to_string()).collect(),
                contributed,
                failures,
                metrics: Vec::new(),
                epsilon: None,
                quantization_error,
                // Filled in by the caller (each dropout reported once).
                dropped_clients: Vec::new(),
                excluded: gone_before.keys().map(|p| p.to_string()).collect(),
            },
        ))
    }

    /// Plain mode with a mean rule: receives every live client's update
    /// concurrently but folds them into one running mean **in client
    /// order** (a later client's update waits only until the earlier ones
    /// are folded or failed), so the result is bit-identical to averaging
    /// them all at once while at most the out-of-order updates are held in
    /// memory, never all `n`.
    async fn collect_mean(
        &self,
        round: u32,
        live: &[PartyId],
        agg: crate::aggregate::Aggregator,
        failures: &mut Failures,
        until: Instant,
    ) -> Result<Collected> {
        use futures_util::StreamExt;
        let n = self.num_params;
        let mut arriving: futures_util::stream::FuturesOrdered<_> = live
            .iter()
            .map(|p| async move {
                let one = async {
                    let h: ResultMsg = recv_json(self.ch, p, self.task, round, "result").await?;
                    let announced = self.weights.get(p).copied().unwrap_or(0);
                    if h.num_examples != announced || announced == 0 {
                        return Err(RecvError::Malformed(format!(
                            "'result': num_examples = {}, but the hello announced {announced}",
                            h.num_examples
                        )));
                    }
                    if h.has_control_delta {
                        return Err(RecvError::Malformed(
                            "'result': has_control_delta = true, expected false".into(),
                        ));
                    }
                    // Kept as the transport's chunks until its turn to be folded;
                    // the decoder checks the length then.
                    let delta =
                        recv_chunks(self.ch, p, self.task, round, "delta", n.saturating_mul(4))
                            .await?;
                    Ok::<_, RecvError>((h.num_examples, delta))
                };
                let r = timeout_at(until, one)
                    .await
                    .unwrap_or(Err(RecvError::Timeout));
                (p, r)
            })
            .collect();
        let reused = self.reuse.lock().ok().and_then(|mut r| r.take());
        let mut mean = match reused {
            Some(mut m) if m.len() == n => {
                m.reset();
                m
            }
            _ => StreamingMean::new(agg, n)?,
        };
        let mut contributors = Vec::new();
        while let Some(first) = arriving.next().await {
            // Fold every update that is already in, in order, in one pass.
            let mut ready = vec![first];
            while ready.len() < FOLD_BATCH {
                match futures_util::FutureExt::now_or_never(arriving.next()) {
                    Some(Some(next)) => ready.push(next),
                    _ => break,
                }
            }
            let mut batch = Vec::with_capacity(ready.len());
            for (p, r) in ready {
                match r {
                    Ok((k, chunks)) => batch.push((p, k, chunks)),
                    Err(e) => {
                        failures.insert(p.clone(), e.reason());
                    }
                }
            }
            let views: Vec<(u64, &[Bytes])> =
                batch.iter().map(|(_, k, c)| (*k, c.as_slice())).collect();
            let outcomes = mean.fold_batch(&views)?;
            for ((p, k, _), o) in batch.iter().zip(outcomes) {
                match o {
                    Ok(()) => contributors.push((sid(p), *k)),
                    Err(e) => {
                        failures.insert((*p).clone(), format!("'delta': {e}"));
                    }
                }
            }
        }
        let avg = if contributors.is_empty() {
            vec![0.0; n]
        } else {
            mean.mean()?
        };
        if let Ok(mut r) = self.reuse.lock() {
            *r = Some(mean);
        }
        // With no contributor the strategy reports the round's failures.
        Ok(Collected::Averaged {
            contributors,
            mean: avg,
        })
    }

    /// Plain mode: each live client's result header and vectors.
    async fn collect(
        &self,
        round: u32,
        live: &[PartyId],
        failures: &mut Failures,
        until: Instant,
    ) -> Vec<ClientResult> {
        let n = self.num_params;
        let scaffold = matches!(
            self.cfg.horizontal.strategy,
            crate::StrategyConfig::Scaffold { .. }
        );
        let got = join_all(live.iter().map(|p| async move {
            let one = async {
                let h: ResultMsg = recv_json(self.ch, p, self.task, round, "result").await?;
                // The FedAvg weight is the one announced in the hello, so a
                // client cannot inflate its influence round by round.
                let announced = self.weights.get(p).copied().unwrap_or(0);
                if h.num_examples != announced {
                    return Err(RecvError::Malformed(format!(
                        "'result': num_examples = {}, but the hello announced {announced}",
                        h.num_examples
                    )));
                }
                if h.has_control_delta != scaffold {
                    return Err(RecvError::Malformed(format!(
                        "'result': has_control_delta = {}, expected {scaffold}",
                        h.has_control_delta
                    )));
                }
                let delta = recv_f32s(self.ch, p, self.task, round, "delta", n).await?;
                let mut r = ClientResult::new(sid(p), h.num_examples, delta);
                if scaffold {
                    let dc = recv_f32s(self.ch, p, self.task, round, "dc", n).await?;
                    r = r.with_control_delta(dc);
                }
                Ok::<_, RecvError>(r)
            };
            timeout_at(until, one)
                .await
                .unwrap_or(Err(RecvError::Timeout))
        }))
        .await;
        let mut out = Vec::new();
        for (p, r) in live.iter().zip(got) {
            match r {
                Ok(r) => out.push(r),
                Err(e) => {
                    failures.insert(p.clone(), e.reason());
                }
            }
        }
        out
    }

    /// Receives one message from each of `from` before `until`; failures
    /// are recorded and dropped.
    #[allow(clippy::too_many_arguments)] // one phase: name, limit, parties, deadline, parser
    async fn gather<T>(
        &self,
        round: u32,
        name: &str,
        max: usize,
        from: &[PartyId],
        failures: &mut Failures,
        until: Instant,
        parse: impl Fn(&PartyId, Vec<u8>) -> RecvResult<T>,
    ) -> Vec<(PartyId, T)> {
        let got = join_all(from.iter().map(|p| async move {
            timeout_at(until, recv_blob(self.ch, p, self.task, round, name, max))
                .await
                .unwrap_or(Err(RecvError::Timeout))
        }))
        .await;
        let mut out = Vec::new();
        for (p, r) in from.iter().zip(got) {
            match r.and_then(|b| parse(p, b)) {
                Ok(v) => out.push((p.clone(), v)),
                Err(e) => {
                    failures.insert(
                        p.clone(),
                        format!("secure aggregation '{name}': {}", e.reason()),
                    );
                }
            }
        }
        out
    }

    /// Sends `msgs` (party, bytes) before the deadline; failures recorded.
    async fn scatter(
        &self,
        round: u32,
        name: &str,
        msgs: Vec<(PartyId, Vec<u8>)>,
        failures: &mut Failures,
    ) {
        let deadline = self.cfg.round_timeout();
        let chunk = self.cfg.chunk_bytes;
        let sent = join_all(msgs.iter().map(|(p, b)| async move {
            tokio::time::timeout(
                deadline,
                send_blob(self.ch, p, self.task, round, name, b, chunk),
            )
            .await
        }))
        .await;
        for ((p, _), r) in msgs.iter().zip(sent) {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failures.insert(p.clone(), format!("sending '{name}' failed: {e}"));
                }
                Err(_) => {
                    failures.insert(p.clone(), format!("sending '{name}' timed out"));
                }
            }
        }
    }

    /// The four phases of secure aggregation; returns the ring sum and the
    /// survivors whose inputs it holds.
    #[allow(clippy::too_many_arguments)]
    async fn secagg_round(
        &self,
        round: u32,
        sa: &SecAggConfig,
        q: QuantConfig,
        selected: &[PartyId],
        live: &[PartyId],
        failures: &mut Failures,
        until: Instant,
    ) -> Result<(fedra_secagg::RingVec, Vec<PartyId>)> {
        let n = selected.len();
        let t = sa.threshold as usize;
        let err = secagg_err(round);
        let params = super::secagg_params(
            round,
            n as u32,
            sa.threshold,
            self.num_params,
            sa.ring_bits,
            sa.neighbors.map(|k| (k, cfg_seed(self.cfg))),
        )
        .map_err(&err)?;
        let mut server = Server::new(params).map_err(&err)?;
        let id_of = |p: &PartyId| {
            selected
                .iter()
                .position(|s| s == p)
                .map(|i| SaId(i as u32 + 1))
        };
        let party_of = |id: SaId| selected.get((id.0 as usize).wrapping_sub(1)).cloned();
        let check_sender = |p: &PartyId, sender: SaId| {
            if id_of(p) == Some(sender) {
                Ok(())
            } else {
                Err(RecvError::Malformed(format!(
                    "claims secure-aggregation id {sender}"
                )))
            }
        };
        let small = 256 + 128 * n;
        // Every client that fell behind is in `failures` (timeouts too).
        let too_few = |have: usize, failures: &Failures| HorizontalError::TooFewResults {
            round,
            received: have,
            required: t,
            failed: failures.keys().map(sid).collect(),
            missing: Vec::new(),
        };

        // Phase 0: advertise keys (the deadline covers local training).
        let adv = self
            .gather(round, "sa/adv", small, live, failures, until, |p, b| {
                let m = AdvertiseKeys::decode(&b, small)
                    .map_err(|e| RecvError::Malformed(e.to_string()))?;
                check_sender(p, m.sender)?;
                Ok(m)
            })
            .await;
        let mut u1 = Vec::new();
        for (p, m) in adv {
            match server.receive_advertise(&m) {
                Ok(()) => u1.push(p),
                Err(e) => {
                    failures.insert(p, format!("secure aggregation: {e}"));
                }
            }
        }
        if u1.len() < t {
            return Err(too_few(u1.len(), failures));
        }
        let keys = server.close_advertise().map_err(&err)?.encode();
        self.scatter(
            round,
            "sa/keys",
            u1.iter().map(|p| (p.clone(), keys.clone())).collect(),
            failures,
        )
        .await;
        u1.retain(|p| !failures.contains_key(p));

        // Phase 1: share keys.
        let until = Instant::now() + self.cfg.round_timeout();
        let shares = self
            .gather(round, "sa/shares", small, &u1, failures, until, |p, b| {
                let m = ShareKeys::decode(&b, small)
                    .map_err(|e| RecvError::Malformed(e.to_string()))?;
                check_sender(p, m.sender)?;
                Ok(m)
            })
            .await;
        let mut u2 = 0;
        for (p, m) in shares {
            match server.receive_shares(m) {
                Ok(()) => u2 += 1,
                Err(e) => {
                    failures.insert(p, format!("secure aggregation: {e}"));
                }
            }
        }
        if u2 < t {
            return Err(too_few(u2, failures));
        }
        let fwd = server.close_shares().map_err(&err)?;
        let msgs: Vec<(PartyId, Vec<u8>)> = fwd
            .iter()
            .filter_map(|f| party_of(f.recipient).map(|p| (p, f.encode())))
            .collect();
        let u2: Vec<PartyId> = msgs.iter().map(|(p, _)| p.clone()).collect();
        self.scatter(round, "sa/fwd", msgs, failures).await;

        // Phase 2: masked inputs.
        let until = Instant::now() + self.cfg.round_timeout();
        let big = 64 + q.ring.word_bytes() * self.num_params;
        let live2: Vec<PartyId> = u2
            .iter()
            .filter(|p| !failures.contains_key(*p))
            .cloned()
            .collect();
        // Each masked input is added into the ring sum straight from the
        // transport's chunks as it arrives (ring addition is exact, so the
        // order does not matter): the server never holds, copies or decodes
        // a full-size vector.
        let mut arriving: futures_util::stream::FuturesUnordered<_> = live2
            .iter()
            .map(|p| async move {
                let r = timeout_at(
                    until,
                    recv_chunks(self.ch, p, self.task, round, "sa/masked", big),
                )
                .await
                .unwrap_or(Err(RecvError::Timeout));
                (p, r)
            })
            .collect();
        let mut u3 = 0;
        while let Some((p, r)) = futures_util::StreamExt::next(&mut arriving).await {
            let r = r
                .map_err(|e| format!("secure aggregation 'sa/masked': {}", e.reason()))
                .and_then(|chunks| {
                    let id = id_of(p).ok_or_else(|| "not selected".to_owned())?;
                    server
                        .receive_masked_chunks(id, &chunks, big)
                        .map_err(|e| format!("secure aggregation: {e}"))
                });
            match r {
                Ok(()) => u3 += 1,
                Err(reason) => {
                    failures.insert(p.clone(), reason);
                }
            }
        }
        drop(arriving);
        if u3 < t {
            return Err(too_few(u3, failures));
        }
        let req = server.close_masked_inputs().map_err(&err)?;
        let survivors: Vec<PartyId> = req
            .survivors
            .iter()
            .filter_map(|&id| party_of(id))
            .collect();
        let bytes = req.encode();
        self.scatter(
            round,
            "sa/req",
            survivors
                .iter()
                .map(|p| (p.clone(), bytes.clone()))
                .collect(),
            failures,
        )
        .await;

        // Phase 3: unmasking.
        let until = Instant::now() + self.cfg.round_timeout();
        let asked: Vec<PartyId> = survivors
            .iter()
            .filter(|p| !failures.contains_key(*p))
            .cloned()
            .collect();
        let resp = self
            .gather(round, "sa/resp", small, &asked, failures, until, |p, b| {
                let m = UnmaskResponse::decode(&b, small)
                    .map_err(|e| RecvError::Malformed(e.to_string()))?;
                check_sender(p, m.sender)?;
                Ok(m)
            })
            .await;
        let mut responded = 0;
        for (p, m) in resp {
            match server.receive_unmask_response(m) {
                Ok(()) => responded += 1,
                Err(e) => {
                    // Its input is in the sum; only its shares are missing.
                    failures.insert(p, format!("secure aggregation: {e}"));
                }
            }
        }
        if responded < t {
            return Err(too_few(responded, failures));
        }
        let agg = server.finish().map_err(&err)?;
        let contributors: Vec<PartyId> = agg
            .survivors
            .iter()
            .filter_map(|&id| party_of(id))
            .collect();
        // A survivor whose input is in the sum contributed, even if a later
        // message of it failed.
        let contributors_set: BTreeSet<&PartyId> = contributors.iter().collect();
        failures.retain(|p, _| !contributors_set.contains(p));
        Ok((agg.sum, contributors))
    }

    /// The averaged update from a secure-aggregation ring sum.
    fn finish_sum(
        &self,
        round: u32,
        q: QuantConfig,
        sum: fedra_secagg::RingVec,
        survivors: &[PartyId],
        selected: &[PartyId],
        weight_of: &dyn Fn(&PartyId) -> u64,
    ) -> Result<Vec<f32>> {
        let err = secagg_err(round);
        match self.cfg.dp.filter(|d| d.mode == DpMode::Central) {
            Some(dp) => {
                let s = q.dequantize_sum(&sum).map_err(&err)?;
                noisy_mean(
                    round,
                    &self.key,
                    s,
                    dp.noise_multiplier * dp.clip,
                    selected.len(),
                )
            }
            None => {
                let total: u64 = survivors.iter().map(weight_of).sum();
                let m = q.dequantize_weighted_mean(&sum, total).map_err(&err)?;
                Ok(m.into_iter().map(|v| v as f32).collect())
            }
        }
    }
}

/// The public seed of the SecAgg+ graph: the job's.
fn cfg_seed(cfg: &ServerConfig) -> u64 {
    cfg.horizontal.seed
}

/// `(sum + N(0, std²)) / n` with the round's noise generator.
fn noisy_mean(
    round: u32,
    key: &[u8; 32],
    mut sum: Vec<f64>,
    std: f64,
    n: usize,
) -> Result<Vec<f32>> {
    let mut rng = round_stream(key, round);
    add_gaussian_noise(&mut sum, std, &mut rng).map_err(dp_err)?;
    let n = n.max(1) as f64;
    Ok(sum.into_iter().map(|s| (s / n) as f32).collect())
}

/// The quantisation of a round: the largest power-of-two scale for which
/// the weighted sum cannot wrap.
fn secagg_quant(sa: &SecAggConfig, n: u64, total_weight: u64) -> fedra_secagg::Result<QuantConfig> {
    let ring = ring_of(sa.ring_bits);
    let limit = ((1u128 << (sa.ring_bits - 1)) - 1) as f64;
    let per = limit / total_weight.max(1) as f64;
    let mut exp = (per / f64::from(sa.clip)).log2().floor() as i32;
    loop {
        let scale = 2f64.powi(exp);
        if let Ok(q) = QuantConfig::new(sa.clip, scale, ring)
            && q.check_weighted(n, total_weight).is_ok()
        {
            return Ok(q);
        }
        exp -= 1;
        if exp < -1074 {
            // Let the library produce the precise error.
            let q = QuantConfig::new(sa.clip, 1.0, ring)?;
            q.check_weighted(n, total_weight)?;
            return Ok(q);
        }
    }
}
