//! Plaintext reference trainer: the same mini-batch algorithm, fixed-point
//! encoding and Taylor loss as the secure protocols, on all parties' data in
//! one place. For tests and for checking what the protocols compute; it
//! offers no privacy.

use fedra_data::Dataset;

use crate::config::Config;
use crate::core::{self, Loss, Stopper, scale};
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
    let loss = Loss {
        objective: cfg.objective,
        f,
    };
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
            let mut d = Vec::with_capacity(bl);
            for (&i, &u) in rows.iter().zip(&u_g) {
                d.push(i128::from(core::encode(u, f)?) + i128::from(loss.offset(y[i])?));
            }
            let mut us = Vec::new();
            for (h, w) in hs.iter().zip(&wh) {
                let u = h
                    .scores(&rows, w, f)
                    .iter()
                    .map(|&u| core::encode(u, f).map(i128::from))
                    .collect::<Result<Vec<i128>>>()?;
                d.iter_mut().zip(&u).for_each(|(d, u)| *d += u);
                us.push(u);
            }
            let gg = g.xt_dot(&rows, &d);
            let contribution = core::step(cfg, epoch, &mut wg, &gg, bl, intercept);
            let mut local = 0.0;
            for (&i, &u) in rows.iter().zip(&u_g) {
                local += loss.beta(y[i])? as f64 / scale(f) * u + loss.gamma(y[i]);
            }
            let mut l = fixed2(local + contribution, f)?;
            for ((h, w), u) in hs.iter().zip(wh.iter_mut()).zip(&us) {
                let gh = h.xt_dot(&rows, &d);
                let c = core::step(cfg, epoch, w, &gh, bl, None);
                let mut hl = 0i128;
                for (&i, &u) in rows.iter().zip(u) {
                    hl += i128::from(loss.beta(y[i])?) * u;
                }
                l += hl + fixed2(c, f)?;
            }
            epoch_loss += l as f64 / scale(2 * f);
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

fn fixed2(v: f64, f: u32) -> Result<i128> {
    let s = (v * scale(2 * f)).round();
    if !s.is_finite() || s.abs() >= 2f64.powi(100) {
        return Err(LinearError::Data(format!("loss term {v} overflows")));
    }
    Ok(s as i128)
}
