//! The two-phase checkpoint: each party saves its state after the same
//! step, the followers report "saved", the leader commits and tells them
//! to commit ([`CheckpointSink`] is where a party keeps them).

use fedra_federation::Channel;
use serde::{Deserialize, Serialize};

use super::config::SplitConfig;
use super::types::LeaderModel;
use crate::error::{Result, SplitError};
use crate::tower::{BottomState, BottomTower, TopState};
use crate::wire;

/// A party's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PartyState {
    /// The leader's towers.
    Leader {
        /// Its bottom tower, if any.
        bottom: Option<BottomState>,
        /// The top tower.
        top: TopState,
    },
    /// A follower's bottom tower.
    Follower(BottomState),
}

/// Where a party keeps its checkpoints (e.g. files, written atomically).
///
/// Two phases: [`CheckpointSink::save`] stores the state after a step
/// without making it current; [`CheckpointSink::commit`] is called once
/// *every* party has saved that step, and makes it the one to resume from
/// (keep the previous committed one until then).
pub trait CheckpointSink: Send {
    /// Stores this party's state after `step` steps (not yet committed).
    fn save(&mut self, step: u64, state: PartyState) -> Result<()>;
    /// Every party saved the checkpoint of `step`: it is now current.
    fn commit(&mut self, step: u64) -> Result<()>;
}

pub(super) fn no_sink() -> SplitError {
    SplitError::config(
        "checkpoint_every",
        "checkpoints are configured but no checkpoint sink was given",
    )
}

/// The leader's side of a checkpoint: save, collect every follower's
/// "saved", commit, tell the followers.
pub(super) async fn leader_checkpoint(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    step: u64,
    sink: &mut Option<&mut dyn CheckpointSink>,
) -> Result<()> {
    let Some(sink) = sink else {
        return Err(no_sink());
    };
    sink.save(
        step,
        PartyState::Leader {
            bottom: model.bottom.as_ref().map(BottomTower::to_state),
            top: model.top.to_state(),
        },
    )?;
    let saved = cfg.tag(step, "ckpt-saved");
    for f in &cfg.followers {
        let b = ch.recv(&f.party, &saved).await?;
        wire::decode_ack(&f.party, &saved, &b)?;
    }
    sink.commit(step)?;
    let commit = cfg.tag(step, "ckpt-commit");
    for f in &cfg.followers {
        ch.send(&f.party, &commit, wire::encode_ack()).await?;
    }
    Ok(())
}

/// A follower's side of a checkpoint.
pub(super) async fn follower_checkpoint(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &BottomTower,
    step: u64,
    sink: &mut Option<&mut dyn CheckpointSink>,
) -> Result<()> {
    let Some(sink) = sink else {
        return Err(no_sink());
    };
    sink.save(step, PartyState::Follower(bottom.to_state()))?;
    ch.send(
        &cfg.leader,
        &cfg.tag(step, "ckpt-saved"),
        wire::encode_ack(),
    )
    .await?;
    let commit = cfg.tag(step, "ckpt-commit");
    let b = ch.recv(&cfg.leader, &commit).await?;
    wire::decode_ack(&cfg.leader, &commit, &b)?;
    sink.commit(step)
}
