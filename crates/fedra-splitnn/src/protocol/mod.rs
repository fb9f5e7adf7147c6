//! The training and prediction protocols over [`Channel`](fedra_federation::Channel), one async
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
//!
//! Layout: `config` (what every party agrees on, the batch order),
//! `types` (the functions' inputs and outputs), `leader`, `follower`,
//! `predict`, `checkpoint` (the two-phase checkpoint), `eval` (loss and
//! AUC on held-out rows), `cuts` (whole row sets' cut outputs in chunks)
//! and `matrix` (row-major column plumbing).

mod checkpoint;
mod config;
mod cuts;
mod eval;
mod follower;
mod leader;
mod matrix;
mod predict;
mod types;

use fedra_federation::PartyId;

use crate::error::SplitError;

pub use checkpoint::{CheckpointSink, PartyState};
pub use config::{FollowerCut, SplitConfig, batch_order};
pub(crate) use eval::EvalAcc;
pub use follower::train_follower;
pub use leader::{EvalObserver, train_leader, train_leader_observed};
pub(crate) use matrix::{concat, gather_labels};
pub use predict::{predict_follower, predict_leader};
pub use types::{EvalPoint, Labels, LeaderModel, PartyData, TrainReport};

pub(crate) fn mismatch(party: &PartyId, detail: String) -> SplitError {
    SplitError::Mismatch {
        party: party.to_string(),
        detail,
    }
}
