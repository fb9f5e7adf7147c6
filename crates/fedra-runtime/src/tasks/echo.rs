//! `echo`: the leader sends a payload to every other party, which sends it back.
//! Checks integrity end to end and measures round trips and throughput.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fedra_federation::{FedError, PartyId};
use serde::{Deserialize, Serialize};

use super::params::{FieldError, ParseCtx, range};
use super::{Metrics, Outcome, Task};
use crate::error::TaskError;
use crate::runner::TaskCtx;

/// Parameters of the `echo` task: the leader sends a payload to every other party,
/// which sends it back; used to check the wire and to measure round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    /// Number of round trips (1–1,000,000).
    #[serde(default = "one")]
    pub rounds: u64,
    /// Payload size in bytes (0 up to the runtime's message limit).
    #[serde(default)]
    pub payload_bytes: u64,
    /// Pause between rounds in milliseconds (0–60,000).
    #[serde(default)]
    pub interval_ms: u64,
    /// The party that starts each round (default: the first party by name).
    #[serde(default)]
    pub leader: Option<PartyId>,
}

fn one() -> u64 {
    1
}

impl Task for Echo {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        let p: Echo = cx.decode(table)?;
        range(&cx.at("rounds"), p.rounds, 1, 1_000_000)?;
        range(
            &cx.at("payload_bytes"),
            p.payload_bytes,
            0,
            cx.runtime.max_message_mb << 20,
        )?;
        range(&cx.at("interval_ms"), p.interval_ms, 0, 60_000)?;
        if let Some(l) = &p.leader
            && !cx.parties.contains_key(l)
        {
            let known: Vec<String> = cx.parties.keys().map(|p| p.to_string()).collect();
            return Err((
                cx.at("leader"),
                format!(
                    "{l} is not a party of the job (parties: {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(p)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await.map(Outcome::from)
    }
}

/// A payload that differs per round, so a stale or crossed message is caught.
fn payload(round: u64, len: usize) -> Bytes {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64: cheap, deterministic filler.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn run(ctx: &TaskCtx<'_>, p: &Echo) -> Result<Metrics, TaskError> {
    let me = &ctx.party.me;
    let leader: PartyId = match &p.leader {
        Some(l) => l.clone(),
        None => ctx
            .party
            .job
            .party_ids()
            .into_iter()
            .next()
            .ok_or_else(|| TaskError::Setup("job has no parties".into()))?,
    };
    let len = usize::try_from(p.payload_bytes)
        .map_err(|_| TaskError::Setup("payload too large for this machine".into()))?;
    let started = Instant::now();
    let mut rtts = Vec::with_capacity(p.rounds.min(1 << 20) as usize);
    for r in 0..p.rounds {
        ctx.set_round(r);
        let (ping, pong) = (ctx.tag(r, "ping"), ctx.tag(r, "pong"));
        if *me == leader {
            let msg = payload(r, len);
            let t0 = Instant::now();
            fedra_federation::broadcast(ctx.ch, ctx.ch.peers(), &ping, msg.clone()).await?;
            for peer in ctx.ch.peers() {
                let back = ctx.ch.recv(peer, &pong).await?;
                if back != msg {
                    return Err(FedError::Decode {
                        party: peer.to_string(),
                        tag: pong.to_string(),
                        detail: format!(
                            "echo of {} bytes came back altered ({} bytes)",
                            msg.len(),
                            back.len()
                        ),
                    }
                    .into());
                }
            }
            rtts.push(t0.elapsed().as_secs_f64() * 1e3);
        } else {
            let msg = ctx.ch.recv(&leader, &ping).await?;
            ctx.ch.send(&leader, &pong, msg).await?;
        }
        ctx.progress(r + 1, p.rounds);
        if p.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.interval_ms)).await;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let mut m = Metrics::new();
    m.insert("rounds".into(), p.rounds.into());
    if !rtts.is_empty() {
        rtts.sort_by(f64::total_cmp);
        let mean = rtts.iter().sum::<f64>() / rtts.len() as f64;
        m.insert("rtt_ms_mean".into(), serde_json::json!(mean));
        m.insert("rtt_ms_p50".into(), serde_json::json!(rtts[rtts.len() / 2]));
        let moved = 2.0 * p.payload_bytes as f64 * p.rounds as f64 * ctx.ch.peers().len() as f64;
        m.insert(
            "throughput_mb_s".into(),
            serde_json::json!(moved / wall.max(1e-9) / 1e6),
        );
    }
    Ok(m)
}
