//! The centralized reference: the same towers, initialisation and batch
//! order in one process, differentiated end to end in **one** autodiff
//! graph ([`fedra_nn::joint_gradient`]) instead of by gradient injection
//! across parties. The split protocol must match it (tests compare the
//! gradients to ~1e-5 relative and the held-out AUC to 0.002).

use fedra_nn::BottomInput;

use crate::error::{Result, SplitError};
use crate::protocol::{
    EvalAcc, EvalPoint, LeaderModel, SplitConfig, TrainReport, batch_order, concat, gather_labels,
};
use crate::tower::{BottomTower, Features};

/// All parties' rows in one place: the leader's (if it has a bottom
/// tower) and each follower's, in cut order, all aligned.
#[derive(Debug, Clone, Copy)]
pub struct CentralData<'a> {
    /// The leader's features.
    pub leader: &'a Features,
    /// The followers' features, in `cfg.followers` order.
    pub followers: &'a [&'a Features],
}

/// One joint step on `batch`: gradients of every tower from one graph,
/// then the same updates the protocol applies. Returns the loss.
pub fn central_step(
    model: &mut LeaderModel,
    followers: &mut [BottomTower],
    data: CentralData<'_>,
    y: &[f32],
    batch: &[usize],
) -> Result<f32> {
    let mut gathered = Vec::new();
    if let Some(b) = &model.bottom {
        gathered.push(b.gather(data.leader, batch)?);
    }
    for (b, f) in followers.iter().zip(data.followers) {
        gathered.push(b.gather(f, batch)?);
    }
    let mlps: Vec<&fedra_nn::Mlp> = model
        .bottom
        .iter()
        .chain(followers.iter())
        .map(BottomTower::mlp)
        .collect();
    let inputs: Vec<BottomInput<'_>> = mlps
        .iter()
        .zip(&gathered)
        .map(|(m, g)| BottomInput { model: m, x: &g.x })
        .collect();
    let j = fedra_nn::joint_gradient(&inputs, model.top.mlp(), y, batch.len())?;
    model.top.apply(&j.top.params)?;
    let mut grads = j.bottoms.iter().zip(&gathered);
    if let Some(b) = model.bottom.as_mut() {
        let (g, x) = grads
            .next()
            .ok_or_else(|| SplitError::Data("missing leader gradient".into()))?;
        b.apply(x, g)?;
    }
    for (b, (g, x)) in followers.iter_mut().zip(grads) {
        b.apply(x, g)?;
    }
    Ok(j.loss)
}

fn cut_of(
    model: &LeaderModel,
    followers: &[BottomTower],
    data: CentralData<'_>,
    idx: &[usize],
) -> Result<Vec<f32>> {
    let mut outs = Vec::new();
    if let Some(b) = &model.bottom {
        outs.push((b.infer(data.leader, idx)?, b.output_width()));
    }
    for (b, f) in followers.iter().zip(data.followers) {
        outs.push((b.infer(f, idx)?, b.output_width()));
    }
    let parts: Vec<(&[f32], usize)> = outs.iter().map(|(v, w)| (v.as_slice(), *w)).collect();
    Ok(concat(&parts, idx.len()))
}

/// Predictions of the centralized model on aligned rows.
pub fn central_predict(
    model: &LeaderModel,
    followers: &[BottomTower],
    data: CentralData<'_>,
    chunk_rows: usize,
) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..data.leader.rows()).collect();
    let mut out = Vec::new();
    for chunk in idx.chunks(chunk_rows.max(1)) {
        let cut = cut_of(model, followers, data, chunk)?;
        out.extend(model.top.predict(&cut, chunk.len())?);
    }
    Ok(out)
}

/// Trains the centralized twin with the schedule of `cfg` (batch order,
/// epochs, evaluations); `valid` = held-out rows and labels.
pub fn train_centralized(
    cfg: &SplitConfig,
    model: &mut LeaderModel,
    followers: &mut [BottomTower],
    data: CentralData<'_>,
    y: &[f32],
    valid: Option<(CentralData<'_>, &[f32])>,
) -> Result<TrainReport> {
    cfg.validate()?;
    if followers.len() != cfg.followers.len() || data.followers.len() != followers.len() {
        return Err(SplitError::config(
            "followers",
            "one bottom tower and one feature set per follower",
        ));
    }
    let n = data.leader.rows();
    if n == 0 || !y.len().is_multiple_of(n) {
        return Err(SplitError::Data(format!("{} labels for {n} rows", y.len())));
    }
    let w = y.len() / n;
    let total = (cfg.steps_per_epoch(n) * cfg.epochs) as u64;
    let mut report = TrainReport::default();
    let (mut loss_sum, mut loss_rows, mut step) = (0f64, 0usize, 0u64);
    for epoch in 0..cfg.epochs {
        let order = batch_order(n, cfg.shuffle_seed, epoch as u64);
        for batch in order.chunks(cfg.batch_size) {
            let yb = gather_labels(y, batch, w);
            let loss = central_step(model, followers, data, &yb, batch)?;
            loss_sum += f64::from(loss) * batch.len() as f64;
            loss_rows += batch.len();
            step += 1;
            if cfg.evaluates_after(step, total) {
                let train_loss = loss_sum / loss_rows.max(1) as f64;
                let point = match valid {
                    Some((vd, vy)) => {
                        let idx: Vec<usize> = (0..vd.leader.rows()).collect();
                        let mut acc = EvalAcc::default();
                        for chunk in idx.chunks(cfg.chunk_rows) {
                            let cut = cut_of(model, followers, vd, chunk)?;
                            let start = chunk[0];
                            acc.add(
                                &model.top,
                                &cut,
                                &vy[start * w..(start + chunk.len()) * w],
                                chunk.len(),
                            )?;
                        }
                        acc.finish(step, train_loss)?
                    }
                    None => EvalPoint {
                        step,
                        train_loss,
                        val_loss: None,
                        val_auc: None,
                    },
                };
                report.history.push(point);
                (loss_sum, loss_rows) = (0.0, 0);
            }
        }
    }
    report.steps = step;
    Ok(report)
}
