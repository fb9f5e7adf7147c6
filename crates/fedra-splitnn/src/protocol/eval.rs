//! Evaluation on the held-out rows (leader only): loss and ROC AUC
//! accumulated chunk by chunk over the concatenated cut outputs.

use fedra_federation::Channel;
use fedra_nn::LossKind;

use super::config::SplitConfig;
use super::cuts::collect_cuts;
use super::types::{EvalPoint, LeaderModel};
use crate::error::Result;
use crate::tower::{Features, TopTower};

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

pub(super) async fn evaluate_leader(
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
