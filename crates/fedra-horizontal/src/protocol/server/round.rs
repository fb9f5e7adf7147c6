//! One round of the server, start to end: who is eligible, the strategy's
//! selection and instructions, the plans and parameters sent, the updates
//! collected (plain, streamed into a mean, or securely aggregated) and the
//! strategy's aggregation into the next global model.

use std::collections::BTreeMap;

use bytes::Bytes;
use fedra_dp::clip_l2;
use fedra_federation::{Channel, PartyId, Tag};
use futures_util::future::join_all;
use tokio::time::Instant;

use super::noise::noisy_mean;
use super::secagg::secagg_quant;
use super::{RoundRecord, sid};
use crate::error::{HorizontalError, Result};
use crate::protocol::config::{DpMode, ServerConfig};
use crate::protocol::stream::StreamingMean;
use crate::protocol::wire::{broadcast_blob, f32_bytes, send_blob, to_json};
use crate::protocol::{Instr, PlanMsg, SecAggPlan, TrainPlan, dp_err, secagg_err};
use crate::strategy::Strategy;
use crate::types::{ClientFailure, ClientId, ClientInstructions, ClientResult, partition_valid};

/// A round's inputs to the strategy: individual updates, or their mean
/// (secure aggregation; plain rounds with a mean rule, folded on arrival).
pub(super) enum Collected {
    Results(Vec<ClientResult>),
    Averaged {
        contributors: Vec<(ClientId, u64)>,
        mean: Vec<f32>,
    },
}

fn tag(task: &str, round: u32, name: &str) -> Tag {
    Tag::new(task, u64::from(round), name)
}

/// What every round needs.
pub(super) struct RoundCtx<'a> {
    pub(super) ch: &'a dyn Channel,
    pub(super) task: &'a str,
    pub(super) cfg: &'a ServerConfig,
    pub(super) num_params: usize,
    pub(super) clients: &'a [PartyId],
    pub(super) present: &'a [PartyId],
    pub(super) absent: &'a [ClientFailure],
    pub(super) weights: &'a BTreeMap<PartyId, u64>,
    pub(super) key: [u8; 32],
    /// Memory kept from round to round by the streaming mean (so that a
    /// round does not fault in fresh pages for every update).
    pub(super) reuse: std::sync::Mutex<Option<StreamingMean>>,
}

/// The round's failures so far, by party.
pub(super) type Failures = BTreeMap<PartyId, String>;

impl RoundCtx<'_> {
    pub(super) fn party(&self, c: &ClientId) -> Result<PartyId> {
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
    pub(super) fn gone(&self) -> BTreeMap<PartyId, String> {
        self.ch
            .dropped()
            .into_iter()
            .filter(|(p, _)| self.present.contains(p))
            .map(|(p, e)| (p, e.to_string()))
            .collect()
    }

    pub(super) async fn round(
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
}
