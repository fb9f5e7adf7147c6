//! Plaintext reference trainer: the same mini-batch algorithm, fixed-point
//! encoding and Taylor loss as the secure protocols, on all parties' data in
//! one place. For tests and for checking what the protocols compute; it
//! offers no privacy.

use fedra_data::Dataset;

use crate::config::Config;
use crate::core::{self, Stopper};
use crate::error::{LinearError, Result};
use crate::model::{GuestModel, HostModel};

/// Trains on the guest's dataset and the hosts' datasets (rows aligned, in
/// `cfg.hosts` order) exactly as the secure protocols do, returning the
/// per-party models they would produce (bit-for-bit equal up to float
/// summation order, which is the same here).
pub fn train_plaintext(
    cfg: &Config,
    guest: &Dataset,
    hosts: &[&Dataset],
) -> Result<(GuestModel, Vec<HostModel>)> {
    cfg.validate()?;
    if hosts.len() != cfg.hosts.len() {
        return Err(LinearError::Data(format!(
            "{} host datasets for {} hosts",
            hosts.len(),
            cfg.hosts.len()
        )));
    }
    let labels = guest
        .labels()
        .ok_or_else(|| LinearError::Data("the guest's dataset has no label column".into()))?;
    let y = core::prepare_labels(cfg.objective, labels)?;
    let f = cfg.precision_bits;
    let g = core::encode_dataset(
        guest,
        cfg.standardize.then(|| core::fit_scaling(guest)),
        cfg.fit_intercept,
        f,
    )?;
    let intercept = cfg.fit_intercept.then_some(g.cols - 1);
    let hs = hosts
        .iter()
        .map(|h| {
            if h.n_rows() != g.rows {
                return Err(LinearError::Data("host rows differ from guest rows".into()));
            }
            core::encode_dataset(h, cfg.standardize.then(|| core::fit_scaling(h)), false, f)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut wg = vec![0.0; g.cols];
    let mut wh: Vec<Vec<f64>> = hs.iter().map(|h| vec![0.0; h.cols]).collect();
    let mut history = Vec::new();
    let mut stopper = Stopper::new();
    let mut stopped = false;
    for epoch in 0..cfg.max_epochs {
        let mut epoch_loss = 0.0;
        for rows in core::batches(g.rows, cfg.batch_size, cfg.shuffle_seed, epoch) {
            let bl = rows.len();
            let u_g = g.scores(&rows, &wg, f);
            let co = core::coefficients(cfg, &rows, &y, &u_g)?;
            let mut u = vec![0i128; bl];
            for (h, w) in hs.iter().zip(&wh) {
                for (s, &x) in u.iter_mut().zip(&h.scores(&rows, w, f)) {
                    *s += i128::from(core::encode(x, f)?);
                }
            }
            let d = co.residuals(&u)?;
            let mut l = core::loss_fixed(co.ell + core::batch_penalty(cfg, &wg, bl, intercept), f)?
                + co.cross_loss(&u)?;
            core::step(cfg, epoch, &mut wg, &g.xt_dot(&rows, &d), bl, intercept);
            for (h, w) in hs.iter().zip(wh.iter_mut()) {
                l += core::loss_fixed(core::batch_penalty(cfg, w, bl, None), f)?;
                core::step(cfg, epoch, w, &h.xt_dot(&rows, &d), bl, None);
            }
            epoch_loss += l as f64 / core::loss_scale(f);
        }
        let l = epoch_loss / g.rows as f64;
        history.push(l);
        if stopper.update(cfg, l) {
            stopped = true;
            break;
        }
    }
    let mut weights = wg;
    let b = match intercept {
        Some(j) => weights.remove(j),
        None => 0.0,
    };
    let gm = GuestModel {
        objective: cfg.objective,
        feature_names: guest.feature_names().to_vec(),
        weights,
        intercept: b,
        scaling: g.scaling,
        hosts: cfg.hosts.clone(),
        loss_history: history,
        stopped_early: stopped,
    };
    let hms = hs
        .into_iter()
        .zip(wh)
        .zip(hosts)
        .map(|((h, w), d)| HostModel {
            feature_names: d.feature_names().to_vec(),
            weights: w,
            scaling: h.scaling,
            guest: cfg.guest.clone(),
        })
        .collect();
    Ok((gm, hms))
}
