//! Losses: base score, gradients `g`, hessians `h`, output transforms and the
//! evaluation loss used for early stopping (the same formulas as XGBoost's
//! `binary:logistic`, `multi:softprob` and `reg:squarederror`).

use crate::config::Objective;
use crate::error::{Result, TreeError};

/// Checks labels and returns them as class indices / values.
pub(crate) fn check_labels(obj: Objective, y: &[f64]) -> Result<Vec<f64>> {
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            if !v.is_finite() {
                return Err(TreeError::Data(format!("label of row {i} is {v}")));
            }
            match obj {
                Objective::Binary => match v {
                    1.0 => Ok(1.0),
                    0.0 | -1.0 => Ok(0.0),
                    _ => Err(TreeError::Data(format!(
                        "label of row {i} is {v}; binary labels are 0/1 (or -1/1)"
                    ))),
                },
                Objective::MultiClass { classes } => {
                    if v.fract() == 0.0 && v >= 0.0 && v < f64::from(classes) {
                        Ok(v)
                    } else {
                        Err(TreeError::Data(format!(
                            "label of row {i} is {v}; expected a class in 0..{classes}"
                        )))
                    }
                }
                Objective::Regression => Ok(v),
            }
        })
        .collect()
}

/// Initial margin per output.
pub(crate) fn base_margin(obj: Objective, y: &[f64]) -> Vec<f64> {
    let n = y.len().max(1) as f64;
    match obj {
        Objective::Binary => {
            let p = (y.iter().sum::<f64>() / n).clamp(1e-6, 1.0 - 1e-6);
            vec![(p / (1.0 - p)).ln()]
        }
        Objective::Regression => vec![y.iter().sum::<f64>() / n],
        Objective::MultiClass { classes } => vec![0.0; classes as usize],
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax(m: &[f64], out: &mut [f64]) {
    let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for (o, &v) in out.iter_mut().zip(m) {
        *o = (v - max).exp();
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}

/// Writes `g` and `h` (row-major, `k` per row) for margins `m` (row-major).
pub(crate) fn gradients(obj: Objective, y: &[f64], m: &[f64], g: &mut [f64], h: &mut [f64]) {
    let k = obj.outputs();
    match obj {
        Objective::Binary => {
            for i in 0..y.len() {
                let p = sigmoid(m[i]);
                g[i] = p - y[i];
                h[i] = (p * (1.0 - p)).max(1e-16);
            }
        }
        Objective::Regression => {
            for i in 0..y.len() {
                g[i] = m[i] - y[i];
                h[i] = 1.0;
            }
        }
        Objective::MultiClass { .. } => {
            let mut p = vec![0.0; k];
            for i in 0..y.len() {
                softmax(&m[i * k..(i + 1) * k], &mut p);
                for j in 0..k {
                    let t = if y[i] as usize == j { 1.0 } else { 0.0 };
                    g[i * k + j] = p[j] - t;
                    h[i * k + j] = (2.0 * p[j] * (1.0 - p[j])).max(1e-16);
                }
            }
        }
    }
}

/// Turns margins into predictions: P(y=1), class probabilities (row-major) or values.
pub fn transform(obj: Objective, m: &[f64]) -> Vec<f64> {
    match obj {
        Objective::Binary => m.iter().map(|&x| sigmoid(x)).collect(),
        Objective::Regression => m.to_vec(),
        Objective::MultiClass { classes } => {
            let k = classes as usize;
            let mut out = vec![0.0; m.len()];
            for (o, mm) in out.chunks_mut(k).zip(m.chunks(k)) {
                softmax(mm, o);
            }
            out
        }
    }
}

/// Mean evaluation loss of margins on rows `rows`: log loss, multi-class log loss, or RMSE.
pub(crate) fn eval_loss(obj: Objective, y: &[f64], m: &[f64], rows: &[u32]) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let k = obj.outputs();
    let n = rows.len() as f64;
    match obj {
        Objective::Binary => {
            rows.iter()
                .map(|&r| {
                    let p = sigmoid(m[r as usize]).clamp(1e-15, 1.0 - 1e-15);
                    let t = y[r as usize];
                    -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                })
                .sum::<f64>()
                / n
        }
        Objective::Regression => (rows
            .iter()
            .map(|&r| (m[r as usize] - y[r as usize]).powi(2))
            .sum::<f64>()
            / n)
            .sqrt(),
        Objective::MultiClass { .. } => {
            let mut p = vec![0.0; k];
            rows.iter()
                .map(|&r| {
                    let r = r as usize;
                    softmax(&m[r * k..(r + 1) * k], &mut p);
                    -p[y[r] as usize].clamp(1e-15, 1.0).ln()
                })
                .sum::<f64>()
                / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_gradients() {
        let y = [1.0, 0.0];
        let m = [0.0, 0.0];
        let (mut g, mut h) = ([0.0; 2], [0.0; 2]);
        gradients(Objective::Binary, &y, &m, &mut g, &mut h);
        assert_eq!(g, [-0.5, 0.5]);
        assert_eq!(h, [0.25, 0.25]);
        assert!(
            (base_margin(Objective::Binary, &[1.0, 0.0, 0.0, 0.0])[0] - (1.0f64 / 3.0).ln()).abs()
                < 1e-12
        );
    }

    #[test]
    fn softmax_gradients_sum_to_zero() {
        let obj = Objective::MultiClass { classes: 3 };
        let (mut g, mut h) = ([0.0; 3], [0.0; 3]);
        gradients(obj, &[2.0], &[0.1, 0.2, 0.3], &mut g, &mut h);
        assert!(g.iter().sum::<f64>().abs() < 1e-12);
        assert!(g[2] < 0.0 && h.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_labels(Objective::Binary, &[0.0, 1.0, -1.0]).is_ok());
        assert!(check_labels(Objective::Binary, &[2.0]).is_err());
        assert!(check_labels(Objective::MultiClass { classes: 3 }, &[3.0]).is_err());
        assert!(check_labels(Objective::Regression, &[f64::NAN]).is_err());
    }
}
