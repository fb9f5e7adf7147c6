//! The server's four secure-aggregation phases (advertise keys, share
//! keys, masked inputs, unmasking) with their deadlines and sender checks,
//! the phase messaging they share, and the round's quantisation.

use std::collections::BTreeSet;

use fedra_federation::PartyId;
use fedra_secagg::{
    AdvertiseKeys, ClientId as SaId, QuantConfig, Server, ShareKeys, UnmaskResponse, WireMessage,
};
use futures_util::future::join_all;
use tokio::time::{Instant, timeout_at};

use super::noise::noisy_mean;
use super::round::{Failures, RoundCtx};
use super::sid;
use crate::error::{HorizontalError, Result};
use crate::protocol::config::{DpMode, SecAggConfig, ServerConfig};
use crate::protocol::wire::{RecvError, RecvResult, malformed, recv_blob, recv_chunks, send_blob};
use crate::protocol::{ring_of, secagg_err};

impl RoundCtx<'_> {
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
    pub(super) async fn secagg_round(
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
        let params = crate::protocol::secagg_params(
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
        let check_sender = |p: &PartyId, name: &str, sender: SaId| {
            if id_of(p) == Some(sender) {
                Ok(())
            } else {
                Err(malformed(
                    p,
                    self.task,
                    round,
                    name,
                    "claims a secure-aggregation id that is not its own",
                ))
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
                    .map_err(|e| malformed(p, self.task, round, "sa/adv", e))?;
                check_sender(p, "sa/adv", m.sender)?;
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
                    .map_err(|e| malformed(p, self.task, round, "sa/shares", e))?;
                check_sender(p, "sa/shares", m.sender)?;
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
                    .map_err(|e| malformed(p, self.task, round, "sa/resp", e))?;
                check_sender(p, "sa/resp", m.sender)?;
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
    pub(super) fn finish_sum(
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

/// The quantisation of a round: the largest power-of-two scale for which
/// the weighted sum cannot wrap.
pub(super) fn secagg_quant(
    sa: &SecAggConfig,
    n: u64,
    total_weight: u64,
) -> fedra_secagg::Result<QuantConfig> {
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
