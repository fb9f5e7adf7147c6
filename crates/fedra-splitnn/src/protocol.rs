//! The training and prediction protocols over [`Channel`], one async
//! function per role.
//!
//! **Roles.** The *leader* holds the labels, the top model and optionally
//! a bottom tower of its own; each *follower* holds a bottom tower. The
//! top model's input is the concatenation of the cut outputs in the order
//! leader (if it has a bottom tower), then `followers` as listed.
//!
//! **One step (staleness 0).** Both sides derive the same batch from the
//! public shuffle seed ([`batch_order`]). Each follower computes its cut
//! output and sends it (`emb`); the leader checks it (shape, finite,
//! `|v| <= max_abs_value`), runs the top model and the loss, sends each
//! follower the gradient with respect to its part of the cut (`grad`),
//! and updates its own models; the follower checks the gradient and
//! back-propagates it through its bottom tower (embedding rows updated
//! row-wise). With `staleness = 0` the next step starts only after the
//! gradient arrived; with `staleness = 1` a follower computes and sends
//! step `t + 1` before waiting for the gradient of step `t` (the leader is
//! unchanged: it processes steps in order).
//!
//! **Evaluation** every `eval_every` steps and after the last one: the
//! followers send the cut outputs of their held-out rows in chunks
//! (`eval-emb`) and the leader computes loss and AUC; only the leader
//! learns them. **Prediction** works the same way ([`predict_leader`],
//! [`predict_follower`]): only the leader learns the predictions.
//!
//! **What each side learns.** The leader sees the followers' cut outputs
//! (not their features or models); a follower sees the gradients with
//! respect to its cut output, which leak label information (the norm
//! attack of Li et al. 2021); defences on that channel come in a later
//! step.
//!
//! **Checkpoints** every `checkpoint_every` steps, after the same step on
//! every party, in two phases ([`CheckpointSink`]): each party saves, the
//! followers report "saved", the leader commits and tells them to commit.
//! A run with `resume_from = s` and the models of the committed checkpoint
//! `s` continues with step `s + 1` of the same batch order.
//!
//! Message tags: `(task, step, "emb" | "grad" | "eval-emb" | "ckpt-saved"
//! | "ckpt-commit")`,
//! `(task, 0, "hello")`, `(task, 0, "predict-hello" | "predict-emb")`.

use std::collections::VecDeque;

use fedra_federation::{Channel, PartyId, Tag};
use fedra_nn::LossKind;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SplitError};
use crate::privacy::{GradientProtection, LeakMeter};
use crate::tower::{BottomPass, BottomState, BottomTower, Features, TopState, TopTower};
use crate::wire;

/// Protocol version in the hello.
const VERSION: u64 = 1;
/// Values in the hello.
const HELLO_LEN: usize = 11;

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
    /// have saved ([`CheckpointSink`]).
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

    fn tag(&self, round: u64, name: &str) -> Tag {
        Tag::new(&self.task, round, name)
    }

    fn hello(&self, n_train: usize, n_val: usize, width: usize) -> Vec<u64> {
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

/// The leader's models.
#[derive(Debug, Clone)]
pub struct LeaderModel {
    /// The leader's own bottom tower, if it has features.
    pub bottom: Option<BottomTower>,
    /// The top model over the concatenated cut outputs.
    pub top: TopTower,
}

impl LeaderModel {
    fn check(&self, cfg: &SplitConfig) -> Result<()> {
        let own = self.bottom.as_ref().map_or(0, BottomTower::output_width);
        let total = own + cfg.followers.iter().map(|f| f.width).sum::<usize>();
        if total != self.top.inputs() {
            return Err(SplitError::config(
                "top",
                format!(
                    "the top model takes {} inputs, but the cut outputs add up to {total}",
                    self.top.inputs()
                ),
            ));
        }
        Ok(())
    }
}

/// One evaluation on the held-out rows (leader only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Steps done.
    pub step: u64,
    /// Mean training loss of the steps since the previous evaluation.
    pub train_loss: f64,
    /// Mean held-out loss.
    pub val_loss: Option<f64>,
    /// Held-out ROC AUC (binary cross-entropy only).
    pub val_auc: Option<f64>,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainReport {
    /// Steps done.
    pub steps: u64,
    /// Evaluations (the leader's; empty for a follower).
    pub history: Vec<EvalPoint>,
    /// Leader only, binary cross-entropy only: per follower (config
    /// order), the norm-attack leak AUC of the gradients it received
    /// ([`LeakMeter`], mean over batches).
    pub leak_auc: Vec<Option<f64>>,
    /// Leader only, `gaussian` protection: ε of the returned gradients at
    /// the configured δ (see [`crate::privacy`] for what it covers).
    pub epsilon: Option<f64>,
}

/// A party's training rows and optional held-out rows.
#[derive(Debug, Clone, Copy)]
pub struct PartyData<'a> {
    /// Training rows (aligned with every other party's).
    pub train: &'a Features,
    /// Held-out rows (aligned too), for evaluation.
    pub valid: Option<&'a Features>,
}

/// The labels of the leader's training and held-out rows.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// One target per training row (row-major `rows × outputs` for MSE).
    pub train: &'a [f32],
    /// Targets of the held-out rows.
    pub valid: Option<&'a [f32]>,
}

/// Concatenates row-major parts column-wise.
pub(crate) fn concat(parts: &[(&[f32], usize)], rows: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = Vec::with_capacity(rows * total);
    for r in 0..rows {
        for (v, w) in parts {
            out.extend_from_slice(&v[r * w..(r + 1) * w]);
        }
    }
    out
}

/// Splits a row-major matrix column-wise into parts of the given widths.
pub(crate) fn split_cols(v: &[f32], widths: &[usize], rows: usize) -> Vec<Vec<f32>> {
    let total: usize = widths.iter().sum();
    let mut out: Vec<Vec<f32>> = widths
        .iter()
        .map(|w| Vec::with_capacity(rows * w))
        .collect();
    for r in 0..rows {
        let mut c = r * total;
        for (o, w) in out.iter_mut().zip(widths) {
            o.extend_from_slice(&v[c..c + w]);
            c += w;
        }
    }
    out
}

/// Loss and AUC of predictions against targets, accumulated over chunks.
#[derive(Default)]
pub(crate) struct EvalAcc {
    loss_sum: f64,
    rows: usize,
    scores: Vec<f64>,
    labels: Vec<f64>,
}

impl EvalAcc {
    pub(crate) fn add(
        &mut self,
        top: &TopTower,
        cut: &[f32],
        y: &[f32],
        rows: usize,
    ) -> Result<()> {
        let loss = top.loss(cut, y, rows)?;
        self.loss_sum += f64::from(loss) * rows as f64;
        self.rows += rows;
        if top.spec().loss == LossKind::BinaryCrossEntropy {
            let p = top.predict(cut, rows)?;
            self.scores.extend(p.iter().map(|v| f64::from(*v)));
            self.labels.extend(y.iter().map(|v| f64::from(*v)));
        }
        Ok(())
    }

    pub(crate) fn finish(self, step: u64, train_loss: f64) -> Result<EvalPoint> {
        let val_auc = if self.scores.is_empty() {
            None
        } else {
            Some(fedra_metrics::roc_auc(&self.labels, &self.scores)?)
        };
        Ok(EvalPoint {
            step,
            train_loss,
            val_loss: (self.rows > 0).then(|| self.loss_sum / self.rows as f64),
            val_auc,
        })
    }
}

/// Checks the number and the values of the targets up front (not only
/// when a batch reaches them).
fn check_labels(top: &TopTower, y: &[f32], rows: usize, what: &str) -> Result<()> {
    let spec = top.spec();
    let w = if spec.loss == LossKind::Mse {
        spec.outputs
    } else {
        1
    };
    if y.len() != rows * w {
        return Err(SplitError::Data(format!(
            "{what}: {} targets for {rows} rows",
            y.len()
        )));
    }
    let classes = spec.outputs as f32;
    let bad = y.iter().position(|&v| match spec.loss {
        LossKind::BinaryCrossEntropy => !(0.0..=1.0).contains(&v),
        LossKind::SoftmaxCrossEntropy => !(v.fract() == 0.0 && (0.0..classes).contains(&v)),
        _ => !v.is_finite(),
    });
    if let Some(i) = bad {
        return Err(SplitError::Data(format!(
            "{what}: target {i} = {} is not valid for {:?}",
            y[i], spec.loss
        )));
    }
    Ok(())
}

fn mismatch(party: &PartyId, detail: String) -> SplitError {
    SplitError::Mismatch {
        party: party.to_string(),
        detail,
    }
}

/// Trains as the leader (label holder): its bottom tower (if any) and the
/// top model are updated in place; returns the evaluation history, the
/// leak meter and the privacy spent. `rng` (a CSPRNG) draws the noise of
/// [`SplitConfig::protection`].
pub async fn train_leader<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &mut LeaderModel,
    data: PartyData<'_>,
    labels: Labels<'_>,
    rng: &mut R,
    sink: Option<&mut dyn CheckpointSink>,
) -> Result<TrainReport> {
    train_leader_observed(ch, cfg, model, data, labels, rng, sink, None).await
}

/// Called by the leader with every evaluation as soon as it is computed
/// (e.g. to drive a progress bar).
pub type EvalObserver<'a> = &'a (dyn Fn(&EvalPoint) + Send + Sync);

/// [`train_leader`] that also reports each evaluation to `on_eval`.
#[allow(clippy::too_many_arguments)]
pub async fn train_leader_observed<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &mut LeaderModel,
    data: PartyData<'_>,
    labels: Labels<'_>,
    rng: &mut R,
    mut sink: Option<&mut dyn CheckpointSink>,
    on_eval: Option<EvalObserver<'_>>,
) -> Result<TrainReport> {
    cfg.validate()?;
    model.check(cfg)?;
    if ch.me() != &cfg.leader {
        return Err(SplitError::config(
            "leader",
            format!("this party is '{}', not the leader", ch.me()),
        ));
    }
    if cfg.checkpoint_every > 0 && sink.is_none() {
        return Err(no_sink());
    }
    let n = data.train.rows();
    if n == 0 {
        return Err(SplitError::Data("no training rows".into()));
    }
    check_labels(&model.top, labels.train, n, "training labels")?;
    let n_val = match (data.valid, labels.valid) {
        (Some(v), Some(y)) => {
            check_labels(&model.top, y, v.rows(), "held-out labels")?;
            v.rows()
        }
        (None, None) => 0,
        _ => {
            return Err(SplitError::Data(
                "held-out features and labels must come together".into(),
            ));
        }
    };
    // Hello: every follower must agree on rows, widths and the schedule.
    let hello_tag = cfg.tag(0, "hello");
    for f in &cfg.followers {
        let b = ch.recv(&f.party, &hello_tag).await?;
        let got = wire::decode_u64s(&f.party, &hello_tag, &b, HELLO_LEN)?;
        let want = cfg.hello(n, n_val, f.width);
        let names = [
            "protocol version",
            "training rows",
            "held-out rows",
            "cut width",
            "batch_size",
            "epochs",
            "shuffle_seed",
            "eval_every",
            "staleness",
            "checkpoint_every",
            "resume_from",
        ];
        for ((g, w), name) in got.iter().zip(&want).zip(names) {
            if g != w {
                return Err(mismatch(
                    &f.party,
                    format!("{name}: it has {g}, the leader {w}"),
                ));
            }
        }
    }
    let widths: Vec<usize> = model
        .bottom
        .as_ref()
        .map(BottomTower::output_width)
        .into_iter()
        .chain(cfg.followers.iter().map(|f| f.width))
        .collect();
    let steps_per_epoch = cfg.steps_per_epoch(n);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    check_resume(cfg, total)?;
    let mut report = TrainReport::default();
    let binary = model.top.spec().loss == LossKind::BinaryCrossEntropy;
    let mut meters = vec![LeakMeter::default(); cfg.followers.len()];
    let (mut loss_sum, mut loss_rows) = (0f64, 0usize);
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        let order = batch_order(n, cfg.shuffle_seed, epoch as u64);
        for batch in order.chunks(cfg.batch_size) {
            if step < cfg.resume_from {
                step += 1;
                continue;
            }
            let rows = batch.len();
            let own = match &model.bottom {
                Some(b) => Some(b.forward(data.train, batch)?),
                None => None,
            };
            let emb_tag = cfg.tag(step, "emb");
            let mut received = Vec::with_capacity(cfg.followers.len());
            for f in &cfg.followers {
                let b = ch.recv(&f.party, &emb_tag).await?;
                received.push(wire::decode_matrix(
                    &f.party,
                    &emb_tag,
                    &b,
                    rows,
                    f.width,
                    cfg.max_abs_value,
                )?);
            }
            let mut parts: Vec<(&[f32], usize)> = Vec::new();
            if let Some(p) = &own {
                parts.push((p.output(), widths[0]));
            }
            for (v, f) in received.iter().zip(&cfg.followers) {
                parts.push((v, f.width));
            }
            let cut = concat(&parts, rows);
            let y: Vec<f32> = gather_labels(labels.train, batch, labels.train.len() / n);
            let (loss, g) = model.top.gradient(&cut, &y, rows)?;
            let mut grads = split_cols(&g.input, &widths, rows).into_iter();
            let own_grad = if own.is_some() { grads.next() } else { None };
            let grad_tag = cfg.tag(step, "grad");
            for ((f, mut gf), meter) in cfg.followers.iter().zip(grads).zip(&mut meters) {
                cfg.protection.apply(&mut gf, rows, f.width, &mut *rng)?;
                if binary {
                    meter.add(&gf, f.width, &y);
                }
                ch.send(&f.party, &grad_tag, wire::encode_matrix(rows, f.width, &gf))
                    .await?;
            }
            model.top.apply(&g.params)?;
            if let (Some(b), Some(p), Some(gr)) = (model.bottom.as_mut(), own, own_grad) {
                b.backward(p, &gr)?;
            }
            loss_sum += f64::from(loss) * rows as f64;
            loss_rows += rows;
            step += 1;
            if cfg.evaluates_after(step, total) {
                let train_loss = loss_sum / loss_rows.max(1) as f64;
                let point = match (data.valid, labels.valid) {
                    (Some(v), Some(y)) => {
                        evaluate_leader(ch, cfg, model, v, y, step, train_loss).await?
                    }
                    _ => EvalPoint {
                        step,
                        train_loss,
                        val_loss: None,
                        val_auc: None,
                    },
                };
                if let Some(f) = on_eval {
                    f(&point);
                }
                report.history.push(point);
                (loss_sum, loss_rows) = (0.0, 0);
            }
            if cfg.checkpoints_after(step, total) {
                leader_checkpoint(ch, cfg, model, step, &mut sink).await?;
            }
        }
    }
    report.steps = step;
    report.leak_auc = meters.iter().map(LeakMeter::auc).collect();
    report.epsilon = cfg
        .protection
        .epsilon(cfg.batch_size.min(n) as f64 / n as f64, step)?;
    Ok(report)
}

fn check_resume(cfg: &SplitConfig, total: u64) -> Result<()> {
    if cfg.resume_from > total {
        return Err(SplitError::config(
            "resume_from",
            format!("{} is beyond the last step {total}", cfg.resume_from),
        ));
    }
    Ok(())
}

fn no_sink() -> SplitError {
    SplitError::config(
        "checkpoint_every",
        "checkpoints are configured but no checkpoint sink was given",
    )
}

/// The leader's side of a checkpoint: save, collect every follower's
/// "saved", commit, tell the followers.
async fn leader_checkpoint(
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
        if b.as_ref() != [1u8] {
            return Err(wire::decode_err(&f.party, &saved, "expected the byte 1"));
        }
    }
    sink.commit(step)?;
    let commit = cfg.tag(step, "ckpt-commit");
    for f in &cfg.followers {
        ch.send(&f.party, &commit, bytes::Bytes::from_static(&[1]))
            .await?;
    }
    Ok(())
}

/// A follower's side of a checkpoint.
async fn follower_checkpoint(
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
        bytes::Bytes::from_static(&[1]),
    )
    .await?;
    let commit = cfg.tag(step, "ckpt-commit");
    let b = ch.recv(&cfg.leader, &commit).await?;
    if b.as_ref() != [1u8] {
        return Err(wire::decode_err(
            &cfg.leader,
            &commit,
            "expected the byte 1",
        ));
    }
    sink.commit(step)
}

pub(crate) fn gather_labels(y: &[f32], batch: &[usize], w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch.len() * w);
    for &i in batch {
        out.extend_from_slice(&y[i * w..(i + 1) * w]);
    }
    out
}

async fn evaluate_leader(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    valid: &Features,
    y: &[f32],
    step: u64,
    train_loss: f64,
) -> Result<EvalPoint> {
    let tag = cfg.tag(step, "eval-emb");
    let cut_rows = collect_cuts(ch, cfg, model, valid, &tag).await?;
    let w = y.len() / valid.rows().max(1);
    let mut acc = EvalAcc::default();
    for (start, cut) in cut_rows {
        let rows = cut.len() / model.top.inputs();
        acc.add(&model.top, &cut, &y[start * w..(start + rows) * w], rows)?;
    }
    acc.finish(step, train_loss)
}

/// The concatenated cut outputs of all rows of `f`, chunk by chunk
/// (`(first row, cut)`), receiving the followers' parts under `tag`.
async fn collect_cuts(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    f: &Features,
    tag: &Tag,
) -> Result<Vec<(usize, Vec<f32>)>> {
    let idx: Vec<usize> = (0..f.rows()).collect();
    let mut out = Vec::new();
    for (c, chunk) in idx.chunks(cfg.chunk_rows).enumerate() {
        let rows = chunk.len();
        let own = match &model.bottom {
            Some(b) => Some((b.infer(f, chunk)?, b.output_width())),
            None => None,
        };
        let mut received = Vec::with_capacity(cfg.followers.len());
        for fl in &cfg.followers {
            let b = ch.recv(&fl.party, tag).await?;
            received.push(wire::decode_matrix(
                &fl.party,
                tag,
                &b,
                rows,
                fl.width,
                cfg.max_abs_value,
            )?);
        }
        let mut parts: Vec<(&[f32], usize)> = Vec::new();
        if let Some((v, w)) = &own {
            parts.push((v, *w));
        }
        for (v, fl) in received.iter().zip(&cfg.followers) {
            parts.push((v, fl.width));
        }
        out.push((c * cfg.chunk_rows, concat(&parts, rows)));
    }
    Ok(out)
}

fn my_width(cfg: &SplitConfig, me: &PartyId, bottom: &BottomTower) -> Result<usize> {
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

/// Sends the cut outputs of all rows of `f` in chunks under `tag`.
async fn send_cuts(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &BottomTower,
    f: &Features,
    tag: &Tag,
) -> Result<()> {
    let idx: Vec<usize> = (0..f.rows()).collect();
    let k = bottom.output_width();
    for chunk in idx.chunks(cfg.chunk_rows) {
        let v = bottom.infer(f, chunk)?;
        ch.send(&cfg.leader, tag, wire::encode_matrix(chunk.len(), k, &v))
            .await?;
    }
    Ok(())
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

/// Predicts as the leader: the followers send the cut outputs of their
/// (aligned) rows; returns the predictions, row-major `rows × outputs`
/// (probabilities for the classification losses). Only the leader learns
/// them.
pub async fn predict_leader(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    model: &LeaderModel,
    features: &Features,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    model.check(cfg)?;
    let hello = cfg.tag(0, "predict-hello");
    for f in &cfg.followers {
        let b = ch.recv(&f.party, &hello).await?;
        let got = wire::decode_u64s(&f.party, &hello, &b, 2)?;
        if got != [features.rows() as u64, f.width as u64] {
            return Err(mismatch(
                &f.party,
                format!(
                    "it predicts {} rows with a cut of {}, the leader {} rows with {}",
                    got[0],
                    got[1],
                    features.rows(),
                    f.width
                ),
            ));
        }
    }
    let cuts = collect_cuts(ch, cfg, model, features, &cfg.tag(0, "predict-emb")).await?;
    let mut out = Vec::with_capacity(features.rows() * model.top.spec().outputs);
    for (_, cut) in cuts {
        let rows = cut.len() / model.top.inputs();
        out.extend(model.top.predict(&cut, rows)?);
    }
    Ok(out)
}

/// Predicts as a follower: sends the cut outputs of its rows; learns
/// nothing.
pub async fn predict_follower(
    ch: &dyn Channel,
    cfg: &SplitConfig,
    bottom: &BottomTower,
    features: &Features,
) -> Result<()> {
    cfg.validate()?;
    let me = ch.me().clone();
    let k = my_width(cfg, &me, bottom)?;
    ch.send(
        &cfg.leader,
        &cfg.tag(0, "predict-hello"),
        wire::encode_u64s(&[features.rows() as u64, k as u64]),
    )
    .await?;
    send_cuts(ch, cfg, bottom, features, &cfg.tag(0, "predict-emb")).await
}
