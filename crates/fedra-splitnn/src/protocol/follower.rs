//! Training as a follower: each step's cut output sent, the returned
//! gradient checked and applied (staleness 0 or 1), held-out cut outputs
//! for the leader's evaluations, checkpoints.

use std::collections::VecDeque;

use fedra_federation::{Channel, PartyId};

use super::checkpoint::{CheckpointSink, follower_checkpoint, no_sink};
use super::config::{SplitConfig, batch_order, check_resume};
use super::cuts::send_cuts;
use super::types::{PartyData, TrainReport};
use crate::error::{Result, SplitError};
use crate::tower::{BottomPass, BottomTower, Features};
use crate::wire;

pub(super) fn my_width(cfg: &SplitConfig, me: &PartyId, bottom: &BottomTower) -> Result<usize> {
    let f = cfg
        .followers
        .iter()
        .find(|f| &f.party == me)
        .ok_or_else(|| {
            SplitError::config("followers", format!("this party '{me}' is not a follower"))
        })?;
    if f.width != bottom.output_width() {
        return Err(SplitError::config(
            "followers.width",
            format!(
                "the config says {} for '{me}', its bottom tower outputs {}",
                f.width,
                bottom.output_width()
            ),
        ));
    }
    Ok(f.width)
}

/// Trains as a follower: its bottom tower is updated in place.
pub async fn train_follower(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &mut BottomTower,
    data: PartyData<'_>,
    mut sink: Option<&mut dyn CheckpointSink>,
) -> Result<TrainReport> {
    cfg.validate()?;
    let me = ch.me().clone();
    let k = my_width(cfg, &me, bottom)?;
    if cfg.checkpoint_every > 0 && sink.is_none() {
        return Err(no_sink());
    }
    let n = data.train.rows();
    if n == 0 {
        return Err(SplitError::Data("no training rows".into()));
    }
    let n_val = data.valid.map_or(0, Features::rows);
    ch.send(
        &cfg.leader,
        &cfg.tag(0, "hello"),
        wire::encode_u64s(&cfg.hello(n, n_val, k)),
    )
    .await?;
    let total = (cfg.steps_per_epoch(n) * cfg.epochs) as u64;
    check_resume(cfg, total)?;
    // Passes whose gradient has not arrived yet: at most `staleness` after
    // the one just sent.
    let mut inflight: VecDeque<(u64, BottomPass)> = VecDeque::new();
    let mut sent = 0u64;
    for epoch in 0..cfg.epochs {
        let order = batch_order(n, cfg.shuffle_seed, epoch as u64);
        for batch in order.chunks(cfg.batch_size) {
            if sent < cfg.resume_from {
                sent += 1;
                continue;
            }
            let pass: BottomPass = bottom.forward(data.train, batch)?;
            ch.send(
                &cfg.leader,
                &cfg.tag(sent, "emb"),
                wire::encode_matrix(batch.len(), k, pass.output()),
            )
            .await?;
            inflight.push_back((sent, pass));
            sent += 1;
            while inflight.len() > cfg.staleness as usize {
                if let Some((step, pass)) = inflight.pop_front() {
                    follower_complete(ch, cfg, bottom, data, k, step, pass, total).await?;
                    if cfg.checkpoints_after(step + 1, total) {
                        follower_checkpoint(ch, cfg, bottom, step + 1, &mut sink).await?;
                    }
                }
            }
        }
    }
    while let Some((step, pass)) = inflight.pop_front() {
        follower_complete(ch, cfg, bottom, data, k, step, pass, total).await?;
        if cfg.checkpoints_after(step + 1, total) {
            follower_checkpoint(ch, cfg, bottom, step + 1, &mut sink).await?;
        }
    }
    Ok(TrainReport {
        steps: sent,
        ..TrainReport::default()
    })
}

/// Receives and applies the gradient of step `step`, then evaluates if due.
#[allow(clippy::too_many_arguments)]
async fn follower_complete(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &mut BottomTower,
    data: PartyData<'_>,
    k: usize,
    step: u64,
    pass: BottomPass,
    total: u64,
) -> Result<()> {
    let grad_tag = cfg.tag(step, "grad");
    let b = ch.recv(&cfg.leader, &grad_tag).await?;
    let g = wire::decode_matrix(
        &cfg.leader,
        &grad_tag,
        &b,
        pass.rows(),
        k,
        cfg.max_abs_value,
    )?;
    bottom.backward(pass, &g)?;
    if let Some(v) = data.valid
        && cfg.evaluates_after(step + 1, total)
    {
        send_cuts(ch, cfg, bottom, v, &cfg.tag(step + 1, "eval-emb")).await?;
    }
    Ok(())
}
