//! What every party of a split-learning task must agree on ([`SplitConfig`],
//! checked by the hello), and the public batch order derived from it.

use fedra_federation::{PartyId, Tag};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SplitError};
use crate::privacy::GradientProtection;

/// Protocol version in the hello.
pub(super) const VERSION: u64 = 1;
/// Values in the hello.
pub(super) const HELLO_LEN: usize = 11;

/// One follower of the leader, with the width of its cut output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerCut {
    /// The follower.
    pub party: PartyId,
    /// Width `k` of its bottom tower's output.
    pub width: usize,
}

/// What every party of a split-learning task must agree on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Task name (the tags' namespace).
    pub task: String,
    /// The label holder.
    pub leader: PartyId,
    /// The other parties, in cut order.
    pub followers: Vec<FollowerCut>,
    /// Rows per batch, `>= 1` (the last batch of an epoch may be shorter).
    pub batch_size: usize,
    /// Passes over the training rows, `>= 1`.
    pub epochs: usize,
    /// Public seed of the batch order (not secret: every party derives
    /// the same permutation from it).
    pub shuffle_seed: u64,
    /// Evaluate on the held-out rows every this many steps (0 = only after
    /// the last step).
    #[serde(default)]
    pub eval_every: u64,
    /// Rows per evaluation / prediction message.
    #[serde(default = "default_chunk")]
    pub chunk_rows: usize,
    /// Bound on the magnitude of every received value (cut outputs and
    /// gradients); anything larger is refused.
    #[serde(default = "default_max_abs")]
    pub max_abs_value: f32,
    /// Pipelining: how many steps a follower may run ahead with stale
    /// weights, 0 or 1. With 1, a follower sends the cut output of step
    /// `t + 1` (computed before the gradient of step `t` is applied) and
    /// only then waits for the gradient of step `t`, so its forward pass
    /// overlaps the leader's work; the gradient of step `t` is applied to
    /// the weights as they are then (one step stale on the follower's side).
    #[serde(default)]
    pub staleness: u32,
    /// What the leader does to the gradients it returns ([`crate::privacy`]).
    #[serde(default)]
    pub protection: GradientProtection,
    /// Checkpoint every this many steps (0 = never): every party saves its
    /// state after the same step, and the checkpoint is committed once all
    /// have saved ([`CheckpointSink`](super::CheckpointSink)).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Steps already done: resume after the committed checkpoint of this
    /// step (the models passed in must be restored from it; 0 = fresh).
    /// With `staleness = 0` the resumed run equals an uninterrupted one bit
    /// for bit; with 1 it differs slightly (the follower's first resumed
    /// step is computed with fresh instead of one-step-stale weights).
    #[serde(default)]
    pub resume_from: u64,
}

fn default_chunk() -> usize {
    4096
}
fn default_max_abs() -> f32 {
    1e4
}

impl SplitConfig {
    /// A config with the defaults for the optional fields.
    pub fn new(
        task: &str,
        leader: PartyId,
        followers: Vec<FollowerCut>,
        batch_size: usize,
        epochs: usize,
        shuffle_seed: u64,
    ) -> Self {
        SplitConfig {
            task: task.to_owned(),
            leader,
            followers,
            batch_size,
            epochs,
            shuffle_seed,
            eval_every: 0,
            chunk_rows: default_chunk(),
            max_abs_value: default_max_abs(),
            staleness: 0,
            protection: GradientProtection::None,
            checkpoint_every: 0,
            resume_from: 0,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.task.is_empty() {
            return Err(SplitError::config("task", "must not be empty"));
        }
        if self.followers.is_empty() {
            return Err(SplitError::config("followers", "at least one follower"));
        }
        for (i, f) in self.followers.iter().enumerate() {
            if f.party == self.leader || self.followers[..i].iter().any(|g| g.party == f.party) {
                return Err(SplitError::config(
                    "followers",
                    format!("party '{}' listed twice (or is the leader)", f.party),
                ));
            }
            if f.width == 0 || f.width > 1 << 16 {
                return Err(SplitError::config(
                    "followers.width",
                    format!("must be in 1..=65536 (got {})", f.width),
                ));
            }
        }
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(SplitError::config(
                "batch_size",
                format!("must be in 1..=1048576 (got {})", self.batch_size),
            ));
        }
        if self.epochs == 0 || self.epochs > 1_000_000 {
            return Err(SplitError::config(
                "epochs",
                format!("must be in 1..=1000000 (got {})", self.epochs),
            ));
        }
        if self.chunk_rows == 0 || self.chunk_rows > 1 << 20 {
            return Err(SplitError::config(
                "chunk_rows",
                format!("must be in 1..=1048576 (got {})", self.chunk_rows),
            ));
        }
        if !(self.max_abs_value.is_finite() && self.max_abs_value > 0.0) {
            return Err(SplitError::config(
                "max_abs_value",
                format!("must be finite and > 0 (got {})", self.max_abs_value),
            ));
        }
        self.protection.validate()?;
        if self.staleness > 1 {
            return Err(SplitError::config(
                "staleness",
                format!("must be 0 or 1 (got {})", self.staleness),
            ));
        }
        Ok(())
    }

    /// Steps per epoch for `rows` training rows.
    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        rows.div_ceil(self.batch_size)
    }

    /// Whether a checkpoint is taken after step `step` (1-based) of `total`.
    pub fn checkpoints_after(&self, step: u64, total: u64) -> bool {
        self.checkpoint_every > 0 && step < total && step.is_multiple_of(self.checkpoint_every)
    }

    /// Whether the evaluation runs after step `step` (1-based count of
    /// steps done) of `total`.
    pub fn evaluates_after(&self, step: u64, total: u64) -> bool {
        step == total || (self.eval_every > 0 && step.is_multiple_of(self.eval_every))
    }

    pub(super) fn tag(&self, round: u64, name: &str) -> Tag {
        Tag::new(&self.task, round, name)
    }

    pub(super) fn hello(&self, n_train: usize, n_val: usize, width: usize) -> Vec<u64> {
        vec![
            VERSION,
            n_train as u64,
            n_val as u64,
            width as u64,
            self.batch_size as u64,
            self.epochs as u64,
            self.shuffle_seed,
            self.eval_every,
            u64::from(self.staleness),
            self.checkpoint_every,
            self.resume_from,
        ]
    }
}

/// The order of the training rows in epoch `epoch`: a Fisher–Yates
/// permutation of `0..rows` from ChaCha20 seeded by `(seed, epoch)`.
/// Every party computes the same order.
pub fn batch_order(rows: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..].copy_from_slice(b"fedra-splitnn-ep");
    let mut rng = ChaCha20Rng::from_seed(key);
    let mut v: Vec<usize> = (0..rows).collect();
    for i in (1..rows).rev() {
        let j = (rand_core::RngCore::next_u64(&mut rng) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

pub(super) fn check_resume(cfg: &SplitConfig, total: u64) -> Result<()> {
    if cfg.resume_from > total {
        return Err(SplitError::config(
            "resume_from",
            format!("{} is beyond the last step {total}", cfg.resume_from),
        ));
    }
    Ok(())
}
