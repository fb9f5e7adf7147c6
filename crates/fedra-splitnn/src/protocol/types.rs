//! What the protocol functions take and return: the leader's models, a
//! party's rows and labels, evaluations and the training report.

use serde::{Deserialize, Serialize};

use super::config::SplitConfig;
use crate::error::{Result, SplitError};
use crate::tower::{BottomTower, Features, TopTower};

/// The leader's models.
#[derive(Debug, Clone)]
pub struct LeaderModel {
    /// The leader's own bottom tower, if it has features.
    pub bottom: Option<BottomTower>,
    /// The top model over the concatenated cut outputs.
    pub top: TopTower,
}

impl LeaderModel {
    pub(super) fn check(&self, cfg: &SplitConfig) -> Result<()> {
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
    /// ([`LeakMeter`](crate::LeakMeter), mean over batches).
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
