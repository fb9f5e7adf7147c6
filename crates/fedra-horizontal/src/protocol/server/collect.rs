//! Collecting a plain round's updates: each live client's result header
//! and vectors, either kept individually (robust rules, SCAFFOLD, central
//! DP) or folded on arrival into a running mean in client order.

use bytes::Bytes;
use fedra_federation::PartyId;
use futures_util::future::join_all;
use tokio::time::{Instant, timeout_at};

use super::round::{Collected, Failures, RoundCtx};
use super::sid;
use crate::error::Result;
use crate::protocol::ResultMsg;
use crate::protocol::stream::StreamingMean;
use crate::protocol::wire::{RecvError, malformed, recv_chunks, recv_f32s, recv_json};
use crate::types::ClientResult;

/// Updates folded into the running mean in one pass, at most (bounds the
/// extra memory to this many decoded updates).
const FOLD_BATCH: usize = 8;

impl RoundCtx<'_> {
    /// Plain mode with a mean rule: receives every live client's update
    /// concurrently but folds them into one running mean **in client
    /// order** (a later client's update waits only until the earlier ones
    /// are folded or failed), so the result is bit-identical to averaging
    /// them all at once while at most the out-of-order updates are held in
    /// memory, never all `n`.
    pub(super) async fn collect_mean(
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
                        return Err(malformed(
                            p,
                            self.task,
                            round,
                            "result",
                            "num_examples differs from the one its hello announced",
                        ));
                    }
                    if h.has_control_delta {
                        return Err(malformed(
                            p,
                            self.task,
                            round,
                            "result",
                            "has_control_delta = true, expected false",
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
    pub(super) async fn collect(
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
                    return Err(malformed(
                        p,
                        self.task,
                        round,
                        "result",
                        "num_examples differs from the one its hello announced",
                    ));
                }
                if h.has_control_delta != scaffold {
                    return Err(malformed(
                        p,
                        self.task,
                        round,
                        "result",
                        format!(
                            "has_control_delta = {}, expected {scaffold}",
                            h.has_control_delta
                        ),
                    ));
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
}
