//! Central DP on the server: the round's Gaussian noise, drawn from the
//! server's secret start-up key on stream `round`, added to the clipped sum.

use fedra_dp::add_gaussian_noise;

use crate::error::Result;
use crate::protocol::{dp_err, round_stream};

/// `(sum + N(0, std²)) / n` with the round's noise generator.
pub(super) fn noisy_mean(
    round: u32,
    key: &[u8; 32],
    mut sum: Vec<f64>,
    std: f64,
    n: usize,
) -> Result<Vec<f32>> {
    let mut rng = round_stream(key, round);
    add_gaussian_noise(&mut sum, std, &mut rng).map_err(dp_err)?;
    let n = n.max(1) as f64;
    Ok(sum.into_iter().map(|s| (s / n) as f32).collect())
}
