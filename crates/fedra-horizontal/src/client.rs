//! Client-side helpers: the model delta a client returns, FedProx's
//! proximal gradient term, and SCAFFOLD's gradient correction and
//! control-variate update (option II).
//!
//! The local training loop itself belongs to the model code; these
//! functions are what it has to apply per step or at the end of a round.

use rayon::prelude::*;

use crate::error::{HorizontalError, Result, config_err};

const CHUNK: usize = 8192;

fn same_len(what: &'static str, v: &[f32], expected: usize) -> Result<()> {
    if v.len() != expected {
        return Err(HorizontalError::DimensionMismatch {
            what,
            client: None,
            expected,
            got: v.len(),
        });
    }
    Ok(())
}

/// The delta a client returns: `local − global`.
pub fn model_delta(local: &[f32], global: &[f32]) -> Result<Vec<f32>> {
    same_len("local parameters", local, global.len())?;
    let mut out = local.to_vec();
    out.par_chunks_mut(CHUNK)
        .zip(global.par_chunks(CHUNK))
        .for_each(|(o, g)| o.iter_mut().zip(g).for_each(|(o, g)| *o -= g));
    Ok(out)
}

/// FedProx: adds the gradient of `μ/2·‖w − w_global‖²`, i.e.
/// `grad += μ·(w − w_global)`, in place.
pub fn fedprox_correct_gradient(
    grad: &mut [f32],
    local: &[f32],
    global: &[f32],
    mu: f64,
) -> Result<()> {
    same_len("local parameters", local, grad.len())?;
    same_len("global parameters", global, grad.len())?;
    grad.par_chunks_mut(CHUNK)
        .zip(local.par_chunks(CHUNK))
        .zip(global.par_chunks(CHUNK))
        .for_each(|((g, w), w0)| {
            for ((g, &w), &w0) in g.iter_mut().zip(w).zip(w0) {
                *g = (f64::from(*g) + mu * (f64::from(w) - f64::from(w0))) as f32;
            }
        });
    Ok(())
}

/// SCAFFOLD: the corrected local gradient `g − c_i + c`, in place
/// (`client_control` = `c_i`, `server_control` = `c`).
pub fn scaffold_correct_gradient(
    grad: &mut [f32],
    client_control: &[f32],
    server_control: &[f32],
) -> Result<()> {
    same_len("client control variate", client_control, grad.len())?;
    same_len("server control variate", server_control, grad.len())?;
    grad.par_chunks_mut(CHUNK)
        .zip(client_control.par_chunks(CHUNK))
        .zip(server_control.par_chunks(CHUNK))
        .for_each(|((g, ci), c)| {
            for ((g, &ci), &c) in g.iter_mut().zip(ci).zip(c) {
                *g = (f64::from(*g) - f64::from(ci) + f64::from(c)) as f32;
            }
        });
    Ok(())
}

/// SCAFFOLD option II, after `local_steps` (K) local SGD steps with
/// learning rate `local_lr` (η_l) from the global `x` to `y_i`:
///
/// `c_i⁺ = c_i − c + (x − y_i) / (K·η_l)`
///
/// Overwrites `client_control` with `c_i⁺` and returns
/// `Δc_i = c_i⁺ − c_i`, to send as [`crate::ClientResult::control_delta`].
pub fn scaffold_update_control(
    client_control: &mut [f32],
    server_control: &[f32],
    global: &[f32],
    local: &[f32],
    local_steps: u64,
    local_lr: f64,
) -> Result<Vec<f32>> {
    let d = client_control.len();
    same_len("server control variate", server_control, d)?;
    same_len("global parameters", global, d)?;
    same_len("local parameters", local, d)?;
    if local_steps == 0 {
        return Err(config_err("local_steps", "must be >= 1 (got 0)"));
    }
    if !(local_lr.is_finite() && local_lr > 0.0) {
        return Err(config_err(
            "local_lr",
            format!("must be finite and > 0 (got {local_lr})"),
        ));
    }
    let inv = 1.0 / (local_steps as f64 * local_lr);
    let mut delta = vec![0f32; d];
    delta
        .par_chunks_mut(CHUNK)
        .zip(client_control.par_chunks_mut(CHUNK))
        .zip(server_control.par_chunks(CHUNK))
        .zip(global.par_chunks(CHUNK).zip(local.par_chunks(CHUNK)))
        .for_each(|(((dc, ci), c), (x, y))| {
            for ((((dc, ci), &c), &x), &y) in dc.iter_mut().zip(ci).zip(c).zip(x).zip(y) {
                let old = f64::from(*ci);
                let new = old - f64::from(c) + (f64::from(x) - f64::from(y)) * inv;
                let new32 = new as f32;
                *dc = (f64::from(new32) - old) as f32;
                *ci = new32;
            }
        });
    Ok(delta)
}
