//! Training as the leader (label holder): the hello check, each step's
//! top-model pass and returned gradients, evaluations and checkpoints.

use fedra_federation::Channel;
use fedra_nn::LossKind;
use rand_core::CryptoRng;

use super::checkpoint::{CheckpointSink, leader_checkpoint, no_sink};
use super::config::{HELLO_LEN, SplitConfig, batch_order, check_resume};
use super::eval::evaluate_leader;
use super::matrix::{concat, gather_labels, split_cols};
use super::mismatch;
use super::types::{EvalPoint, Labels, LeaderModel, PartyData, TrainReport};
use crate::error::{Result, SplitError};
use crate::privacy::LeakMeter;
use crate::tower::{BottomTower, TopTower};
use crate::wire;

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
