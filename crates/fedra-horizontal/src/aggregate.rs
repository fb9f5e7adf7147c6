//! Aggregation rules over client updates (flat `f32` vectors of equal
//! length): weighted mean (FedAvg), and the Byzantine-robust coordinate-wise
//! median, trimmed mean, Krum / Multi-Krum, plus L2 norm bounding.
//!
//! All rules are parallel over coordinates with rayon and allocate per
//! chunk of coordinates, never per coordinate:
//!
//! * means accumulate in `f64` per chunk, streaming each update once;
//! * median / trimmed mean gather a chunk of every update into a
//!   coordinate-major scratch buffer (reused per worker), as integer keys
//!   ordered like `f32::total_cmp`, and run `select_nth_unstable` on each
//!   coordinate's `n` keys (`O(n)`, no sort);
//! * Krum's `n(n−1)/2` squared distances are accumulated block by block
//!   (each block of all `n` updates stays in cache), blocks in parallel.
//!
//! The robust rules are unweighted: `num_examples` is self-reported and
//! would let an attacker buy influence.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{HorizontalError, Result, config_err};
use crate::types::ClientResult;

/// Coordinates per parallel task for the means.
const MEAN_CHUNK: usize = 8192;
/// Coordinates per block for Krum's distances (`n` blocks stay in cache).
const KRUM_CHUNK: usize = 1024;
/// Scratch floats per worker for the order statistics (`n × chunk`).
const ORDER_SCRATCH: usize = 1 << 16;

/// How client updates are combined into one update.
///
/// TOML (`rule` inside `[aggregation]`):
/// `{ kind = "weighted_mean" }`, `{ kind = "mean" }`, `{ kind = "median" }`,
/// `{ kind = "trimmed_mean", trim = 2 }`, `{ kind = "krum", f = 2 }`,
/// `{ kind = "multi_krum", f = 2, m = 6 }` (`m` defaults to `n − f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AggregationRule {
    /// `Σ_k n_k·u_k / Σ_k n_k` with `n_k` = `num_examples` (FedAvg).
    #[default]
    WeightedMean,
    /// Unweighted mean `Σ_k u_k / n`.
    Mean,
    /// Coordinate-wise median (mean of the two middle values for even `n`).
    Median,
    /// Coordinate-wise trimmed mean: drop the `trim` smallest and `trim`
    /// largest values of every coordinate, average the rest. Needs
    /// `2·trim < n`.
    TrimmedMean {
        /// Values dropped per side (an absolute count, not a fraction).
        trim: usize,
    },
    /// Krum (Blanchard et al. 2017): the single update whose summed squared
    /// distance to its `n − f − 2` nearest neighbours is smallest. Needs
    /// `n ≥ 2f + 3`.
    Krum {
        /// Byzantine updates tolerated.
        f: usize,
    },
    /// Multi-Krum: the unweighted mean of the `m` updates with the lowest
    /// Krum scores. Needs `n ≥ 2f + 3` and `1 ≤ m ≤ n − f`.
    MultiKrum {
        /// Byzantine updates tolerated.
        f: usize,
        /// Updates averaged; `None` = `n − f`.
        #[serde(default)]
        m: Option<usize>,
    },
}

impl AggregationRule {
    /// A short name (`"median"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            AggregationRule::WeightedMean => "weighted_mean",
            AggregationRule::Mean => "mean",
            AggregationRule::Median => "median",
            AggregationRule::TrimmedMean { .. } => "trimmed_mean",
            AggregationRule::Krum { .. } => "krum",
            AggregationRule::MultiKrum { .. } => "multi_krum",
        }
    }

    /// The fewest updates the rule accepts.
    pub fn min_updates(&self) -> usize {
        match *self {
            AggregationRule::WeightedMean | AggregationRule::Mean | AggregationRule::Median => 1,
            AggregationRule::TrimmedMean { trim } => 2 * trim + 1,
            AggregationRule::Krum { f } => 2 * f + 3,
            AggregationRule::MultiKrum { f, m } => (2 * f + 3).max(m.unwrap_or(1) + f),
        }
    }

    /// Checks the rule's own parameters (`multi_krum.m ≥ 1`).
    pub fn validate(&self) -> Result<()> {
        if let AggregationRule::MultiKrum { m: Some(0), .. } = self {
            return Err(config_err("aggregation.rule.m", "must be >= 1 (got 0)"));
        }
        Ok(())
    }

    /// Combines `updates` (all the same length). `weights` (one per update,
    /// `≥ 0`, finite, not all zero) are used by
    /// [`AggregationRule::WeightedMean`] only.
    pub fn aggregate<U: AsRef<[f32]> + Sync>(
        &self,
        updates: &[U],
        weights: &[f64],
    ) -> Result<Vec<f32>> {
        match *self {
            AggregationRule::WeightedMean => weighted_mean(updates, weights),
            AggregationRule::Mean => mean(updates),
            AggregationRule::Median => coordinate_median(updates),
            AggregationRule::TrimmedMean { trim } => trimmed_mean(updates, trim),
            AggregationRule::Krum { f } => krum(updates, f),
            AggregationRule::MultiKrum { f, m } => {
                let m = m.unwrap_or(updates.len().saturating_sub(f));
                multi_krum(updates, f, m)
            }
        }
    }
}

/// An [`AggregationRule`] with optional L2 norm bounding of every update
/// (applied first).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregator {
    /// The rule.
    #[serde(default)]
    pub rule: AggregationRule,
    /// Clip every update to this L2 norm before aggregating (`> 0`).
    #[serde(default)]
    pub norm_bound: Option<f64>,
}

impl Aggregator {
    /// A validated aggregator.
    pub fn new(rule: AggregationRule, norm_bound: Option<f64>) -> Result<Self> {
        let a = Aggregator { rule, norm_bound };
        a.validate()?;
        Ok(a)
    }

    /// Checks the rule and `norm_bound ∈ (0, ∞)`.
    pub fn validate(&self) -> Result<()> {
        self.rule.validate()?;
        if let Some(m) = self.norm_bound
            && !(m.is_finite() && m > 0.0)
        {
            return Err(config_err(
                "aggregation.norm_bound",
                format!("must be finite and > 0 (got {m})"),
            ));
        }
        Ok(())
    }

    /// Checks that rounds with `min_results` results are enough for the
    /// rule (`2f + 3` for Krum, `2·trim + 1` for trimmed mean, ...), so
    /// that a round accepted by the min-results check is never refused by
    /// the rule.
    pub fn check_min_results(&self, min_results: usize) -> Result<()> {
        let need = self.rule.min_updates();
        if min_results < need {
            let why = match self.rule {
                AggregationRule::TrimmedMean { trim } => format!("2·trim + 1 with trim = {trim}"),
                AggregationRule::Krum { f } | AggregationRule::MultiKrum { f, m: None } => {
                    format!("2f + 3 with f = {f}")
                }
                AggregationRule::MultiKrum { f, m: Some(m) } => {
                    format!("max(2f + 3, m + f) with f = {f}, m = {m}")
                }
                _ => "at least one".to_owned(),
            };
            return Err(config_err(
                "sampling.min_results",
                format!(
                    "aggregation rule {} ({why}) needs at least {need} results per round (got {min_results})",
                    self.rule.name()
                ),
            ));
        }
        Ok(())
    }

    /// Clips (if configured) the deltas of `results` in place, then
    /// aggregates them with the rule, weights = `num_examples`.
    pub fn aggregate_results(&self, results: &mut [ClientResult]) -> Result<Vec<f32>> {
        if let Some(bound) = self.norm_bound {
            results
                .par_iter_mut()
                .try_for_each(|r| clip_l2_norm(&mut r.delta, bound).map(|_| ()))?;
        }
        let updates: Vec<&[f32]> = results.iter().map(|r| r.delta.as_slice()).collect();
        let weights: Vec<f64> = results.iter().map(|r| r.num_examples as f64).collect();
        self.rule.aggregate(&updates, &weights)
    }
}

impl Aggregator {
    /// For the mean rules, the weight of a result with `num_examples` when
    /// updates are averaged one at a time ([`MeanAccumulator`], or under
    /// secure aggregation); `None` for the rules that need every update at
    /// once (median, trimmed mean, Krum).
    pub fn streaming_weight(&self, num_examples: u64) -> Option<f64> {
        match self.rule {
            AggregationRule::WeightedMean => Some(num_examples as f64),
            AggregationRule::Mean => Some(1.0),
            _ => None,
        }
    }

    /// Applies the norm bound (if any) to one update, as
    /// [`Aggregator::aggregate_results`] does to each.
    pub fn bound(&self, delta: &mut [f32]) -> Result<()> {
        match self.norm_bound {
            Some(b) => clip_l2_norm(delta, b).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// `Σ_k w_k·u_k / Σ_k w_k` folded one update at a time, in `f64`.
///
/// Per coordinate it performs the same operations in the same order as
/// [`weighted_mean`], so folding updates in the order they would be passed
/// to it gives the same bits — without holding every update in memory (a
/// FedAvg server folds each client's update as it arrives and drops it).
///
/// ```
/// use fedra_horizontal::aggregate::{MeanAccumulator, weighted_mean};
/// let (a, b) = (vec![1.0f32, 2.0], vec![4.0f32, -1.0]);
/// let mut acc = MeanAccumulator::new(2);
/// acc.fold(&a, 3.0)?;
/// acc.fold(&b, 1.0)?;
/// assert_eq!(acc.finish()?, weighted_mean(&[a, b], &[3.0, 1.0])?);
/// # Ok::<(), fedra_horizontal::HorizontalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MeanAccumulator {
    acc: Vec<f64>,
    total: f64,
    folded: usize,
}

impl MeanAccumulator {
    /// An empty mean over vectors of length `len`.
    pub fn new(len: usize) -> Self {
        MeanAccumulator {
            acc: vec![0.0; len],
            total: 0.0,
            folded: 0,
        }
    }

    /// Adds `weight · update` (the weight must be finite and `≥ 0`).
    pub fn fold(&mut self, update: &[f32], weight: f64) -> Result<()> {
        self.fold_many(&[(update, weight)])
    }

    /// Adds several weighted updates in one pass over the accumulator (each
    /// chunk of it stays in cache while every update's chunk is added, in
    /// order) — the same result as folding them one by one, with a fraction
    /// of the memory traffic.
    pub fn fold_many(&mut self, updates: &[(&[f32], f64)]) -> Result<()> {
        for &(u, w) in updates {
            if u.len() != self.acc.len() {
                return Err(HorizontalError::DimensionMismatch {
                    what: "update",
                    client: None,
                    expected: self.acc.len(),
                    got: u.len(),
                });
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(HorizontalError::InvalidWeights {
                    reason: format!("every weight must be finite and >= 0 (got {w})"),
                });
            }
        }
        for &(_, w) in updates {
            self.total += w;
            self.folded += 1;
        }
        self.acc
            .par_chunks_mut(MEAN_CHUNK)
            .enumerate()
            .for_each(|(ci, a)| {
                let start = ci * MEAN_CHUNK;
                for &(u, w) in updates {
                    if w == 0.0 {
                        continue;
                    }
                    let src = &u[start..start + a.len()];
                    for (a, &x) in a.iter_mut().zip(src) {
                        *a += w * f64::from(x);
                    }
                }
            });
        Ok(())
    }

    /// The vector length.
    pub fn len(&self) -> usize {
        self.acc.len()
    }

    /// Whether the vectors are empty.
    pub fn is_empty(&self) -> bool {
        self.acc.is_empty()
    }

    /// Empties the mean, keeping its memory.
    pub fn reset(&mut self) {
        self.acc
            .par_chunks_mut(MEAN_CHUNK)
            .for_each(|a| a.fill(0.0));
        self.total = 0.0;
        self.folded = 0;
    }

    /// Updates folded so far.
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// The weighted mean (fails if nothing with a positive weight was folded).
    pub fn finish(self) -> Result<Vec<f32>> {
        self.mean()
    }

    /// [`MeanAccumulator::finish`] without giving up the accumulator (to
    /// [`reset`](MeanAccumulator::reset) and reuse it).
    pub fn mean(&self) -> Result<Vec<f32>> {
        let total = self.total;
        if !(total > 0.0 && total.is_finite()) {
            return Err(HorizontalError::InvalidWeights {
                reason: format!("the weights must sum to a finite value > 0 (got {total})"),
            });
        }
        let mut out = vec![0f32; self.acc.len()];
        out.par_chunks_mut(MEAN_CHUNK)
            .zip(self.acc.par_chunks(MEAN_CHUNK))
            .for_each(|(o, a)| {
                for (o, a) in o.iter_mut().zip(a) {
                    *o = (*a / total) as f32;
                }
            });
        Ok(out)
    }
}

/// The common length of `updates` (errors if empty or ragged).
fn common_len<U: AsRef<[f32]>>(rule: &'static str, updates: &[U]) -> Result<usize> {
    let first = updates.first().ok_or(HorizontalError::NoUpdates { rule })?;
    let d = first.as_ref().len();
    for u in updates {
        if u.as_ref().len() != d {
            return Err(HorizontalError::DimensionMismatch {
                what: "update",
                client: None,
                expected: d,
                got: u.as_ref().len(),
            });
        }
    }
    Ok(d)
}

/// `Σ_k w_k·u_k / Σ_k w_k`, accumulated in `f64`.
pub fn weighted_mean<U: AsRef<[f32]> + Sync>(updates: &[U], weights: &[f64]) -> Result<Vec<f32>> {
    let d = common_len("weighted_mean", updates)?;
    if weights.len() != updates.len() {
        return Err(HorizontalError::DimensionMismatch {
            what: "weights",
            client: None,
            expected: updates.len(),
            got: weights.len(),
        });
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(HorizontalError::InvalidWeights {
            reason: format!("every weight must be finite and >= 0 (got {w})"),
        });
    }
    let total: f64 = weights.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(HorizontalError::InvalidWeights {
            reason: format!("the weights must sum to a finite value > 0 (got {total})"),
        });
    }
    let mut out = vec![0f32; d];
    out.par_chunks_mut(MEAN_CHUNK).enumerate().for_each_init(
        || vec![0f64; MEAN_CHUNK],
        |acc, (ci, o)| {
            let start = ci * MEAN_CHUNK;
            let acc = &mut acc[..o.len()];
            acc.fill(0.0);
            for (u, &w) in updates.iter().zip(weights) {
                if w == 0.0 {
                    continue;
                }
                let src = &u.as_ref()[start..start + o.len()];
                for (a, &x) in acc.iter_mut().zip(src) {
                    *a += w * f64::from(x);
                }
            }
            for (o, a) in o.iter_mut().zip(acc.iter()) {
                *o = (*a / total) as f32;
            }
        },
    );
    Ok(out)
}

/// The unweighted mean, accumulated in `f64`.
pub fn mean<U: AsRef<[f32]> + Sync>(updates: &[U]) -> Result<Vec<f32>> {
    let weights = vec![1.0; updates.len()];
    weighted_mean(updates, &weights).map_err(|e| match e {
        HorizontalError::NoUpdates { .. } => HorizontalError::NoUpdates { rule: "mean" },
        e => e,
    })
}

/// An `i32` whose integer order is [`f32::total_cmp`]'s order (the same
/// transform `total_cmp` applies on every comparison; an involution).
#[inline]
fn order_key(bits: i32) -> i32 {
    bits ^ ((((bits >> 31) as u32) >> 1) as i32)
}

#[inline]
fn to_key(x: f32) -> i32 {
    order_key(x.to_bits() as i32)
}

#[inline]
fn from_key(k: i32) -> f32 {
    f32::from_bits(order_key(k) as u32)
}

/// Applies `stat` to every coordinate's `n` values (as [`to_key`] keys, in
/// a scratch slice it may reorder), in parallel over chunks of
/// coordinates. Selecting on integer keys is cheaper than on floats with
/// `total_cmp`.
fn per_coordinate<U, F>(rule: &'static str, updates: &[U], stat: F) -> Result<Vec<f32>>
where
    U: AsRef<[f32]> + Sync,
    F: Fn(&mut [i32]) -> f32 + Sync,
{
    let d = common_len(rule, updates)?;
    let n = updates.len();
    let chunk = (ORDER_SCRATCH / n).clamp(16, 4096);
    let mut out = vec![0f32; d];
    out.par_chunks_mut(chunk).enumerate().for_each_init(
        || vec![0i32; n * chunk],
        |buf, (ci, o)| {
            let start = ci * chunk;
            let len = o.len();
            // Gather: buf[j·n + k] = key(update_k[start + j]).
            for (k, u) in updates.iter().enumerate() {
                let src = &u.as_ref()[start..start + len];
                for (slot, &x) in buf[k..].iter_mut().step_by(n).zip(src) {
                    *slot = to_key(x);
                }
            }
            for (o, vals) in o.iter_mut().zip(buf.chunks_exact_mut(n)) {
                *o = stat(vals);
            }
        },
    );
    Ok(out)
}

/// The median of the keyed values (mean of the two middle values if
/// even), by selection. `keys` must be non-empty.
fn median_of(keys: &mut [i32]) -> f32 {
    let n = keys.len();
    let mid = n / 2;
    let (lower, m, _) = keys.select_nth_unstable(mid);
    let upper = from_key(*m);
    if n % 2 == 1 {
        upper
    } else {
        let below = lower.iter().copied().max().map_or(upper, from_key);
        ((f64::from(below) + f64::from(upper)) / 2.0) as f32
    }
}

/// Coordinate-wise median.
pub fn coordinate_median<U: AsRef<[f32]> + Sync>(updates: &[U]) -> Result<Vec<f32>> {
    per_coordinate("median", updates, median_of)
}

/// Coordinate-wise trimmed mean dropping `trim` values per side; refuses
/// when `2·trim ≥ n`.
pub fn trimmed_mean<U: AsRef<[f32]> + Sync>(updates: &[U], trim: usize) -> Result<Vec<f32>> {
    let n = updates.len();
    if n == 0 {
        return Err(HorizontalError::NoUpdates {
            rule: "trimmed_mean",
        });
    }
    if 2 * trim >= n {
        return Err(HorizontalError::TrimTooLarge { n, trim });
    }
    if trim == 0 {
        return mean(updates);
    }
    let kept = n - 2 * trim;
    per_coordinate("trimmed_mean", updates, move |keys| {
        // keys[..trim] = the `trim` smallest; then, in the rest, push the
        // `trim` largest behind index `kept`.
        let (_, _, rest) = keys.select_nth_unstable(trim - 1);
        rest.select_nth_unstable(kept);
        let sum: f64 = rest[..kept].iter().map(|&k| f64::from(from_key(k))).sum();
        (sum / kept as f64) as f32
    })
}

/// `Σ (a_i − b_i)²` in `f32` with 8 independent lanes (vectorises).
fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            let t = p - q;
            *s += t * t;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Squared Euclidean distances of all pairs, as a dense `n × n` matrix
/// (row-major, zero diagonal).
pub fn pairwise_sq_distances<U: AsRef<[f32]> + Sync>(updates: &[U]) -> Result<Vec<f64>> {
    let d = common_len("krum", updates)?;
    let n = updates.len();
    let npairs = n * (n - 1) / 2;
    let blocks = d.div_ceil(KRUM_CHUNK);
    let upper = (0..blocks)
        .into_par_iter()
        .fold(
            || vec![0f64; npairs],
            |mut acc, b| {
                let start = b * KRUM_CHUNK;
                let end = d.min(start + KRUM_CHUNK);
                let mut p = 0;
                for i in 0..n {
                    let a = &updates[i].as_ref()[start..end];
                    for u in &updates[i + 1..] {
                        acc[p] += f64::from(sq_dist(a, &u.as_ref()[start..end]));
                        p += 1;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; npairs],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    let mut full = vec![0f64; n * n];
    let mut p = 0;
    for i in 0..n {
        for j in i + 1..n {
            full[i * n + j] = upper[p];
            full[j * n + i] = upper[p];
            p += 1;
        }
    }
    Ok(full)
}

/// Krum scores: for every update, the sum of its squared distances to its
/// `n − f − 2` nearest other updates. Refuses when `n < 2f + 3`.
pub fn krum_scores<U: AsRef<[f32]> + Sync>(updates: &[U], f: usize) -> Result<Vec<f64>> {
    let n = updates.len();
    if n < 2 * f + 3 {
        return Err(HorizontalError::KrumTooFewUpdates { rule: "krum", n, f });
    }
    let dist = pairwise_sq_distances(updates)?;
    let k = n - f - 2;
    let mut row = Vec::with_capacity(n - 1);
    Ok((0..n)
        .map(|i| {
            row.clear();
            row.extend((0..n).filter(|&j| j != i).map(|j| dist[i * n + j]));
            row.select_nth_unstable_by(k - 1, f64::total_cmp);
            row[..k].iter().sum()
        })
        .collect())
}

/// Indices of the `m` updates with the lowest Krum scores (ties → lower
/// index), best first. Refuses when `n < 2f + 3` or `m ∉ 1..=n−f`.
pub fn krum_select<U: AsRef<[f32]> + Sync>(
    updates: &[U],
    f: usize,
    m: usize,
) -> Result<Vec<usize>> {
    let n = updates.len();
    if n < 2 * f + 3 {
        let rule = if m == 1 { "krum" } else { "multi_krum" };
        return Err(HorizontalError::KrumTooFewUpdates { rule, n, f });
    }
    if m == 0 || m > n - f {
        return Err(HorizontalError::MultiKrumSelection { n, f, m });
    }
    let scores = krum_scores(updates, f)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx.truncate(m);
    Ok(idx)
}

/// Krum: a copy of the selected update.
pub fn krum<U: AsRef<[f32]> + Sync>(updates: &[U], f: usize) -> Result<Vec<f32>> {
    let best = krum_select(updates, f, 1)?;
    Ok(best
        .first()
        .map(|&i| updates[i].as_ref().to_vec())
        .unwrap_or_default())
}

/// Multi-Krum: the unweighted mean of the `m` selected updates.
pub fn multi_krum<U: AsRef<[f32]> + Sync>(updates: &[U], f: usize, m: usize) -> Result<Vec<f32>> {
    let sel = krum_select(updates, f, m)?;
    let chosen: Vec<&[f32]> = sel.iter().map(|&i| updates[i].as_ref()).collect();
    mean(&chosen)
}

/// The L2 norm, accumulated in `f64` in parallel chunks.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.par_chunks(MEAN_CHUNK)
        .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// Scales `v` down to L2 norm `max_norm` if it is longer (norm bounding,
/// Sun et al. 2019). Returns the norm before clipping.
pub fn clip_l2_norm(v: &mut [f32], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(config_err(
            "aggregation.norm_bound",
            format!("must be finite and > 0 (got {max_norm})"),
        ));
    }
    let norm = l2_norm(v);
    if norm > max_norm {
        let s = max_norm / norm;
        v.par_chunks_mut(MEAN_CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x = (f64::from(*x) * s) as f32));
    }
    Ok(norm)
}
