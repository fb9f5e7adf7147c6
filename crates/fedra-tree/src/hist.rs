//! Gradient histograms and split finding.
//!
//! `g` and `h` are fixed-point integers (`precision_bits` fractional bits), so
//! histograms are exact integer sums whether a party computed them in the clear
//! or the guest decrypted them: the secure protocol and the plaintext twin see
//! bit-identical histograms and therefore choose identical splits.
//!
//! A party's histogram of one node is a flat `Vec<i128>` laid out as
//! `[feature slot][output k][g, h]`, features one after the other.

use rayon::prelude::*;

/// Slot layout of one party's features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Slots (value bins + the missing slot) per feature.
    pub(crate) slots: Vec<usize>,
    /// First slot of each feature.
    pub(crate) offsets: Vec<usize>,
    /// Outputs (classes) per row.
    pub(crate) k: usize,
}

impl Layout {
    pub(crate) fn new(slots: Vec<usize>, k: usize) -> Layout {
        let mut offsets = Vec::with_capacity(slots.len());
        let mut acc = 0;
        for &s in &slots {
            offsets.push(acc);
            acc += s;
        }
        Layout { slots, offsets, k }
    }

    pub(crate) fn total_slots(&self) -> usize {
        self.slots.iter().sum()
    }

    /// Length of a histogram vector.
    pub(crate) fn len(&self) -> usize {
        self.total_slots() * self.k * 2
    }
}

/// Builds the plaintext histogram of `rows` (only rows with `gh` entries, i.e.
/// sampled rows, contribute) for the given features.
///
/// `gh[r]` is the row's `[g_0, h_0, g_1, h_1, …]` (or empty if not sampled).
pub(crate) fn build(
    layout: &Layout,
    columns: &[&[u8]],
    features: &[usize],
    rows: &[u32],
    gh: &[i128],
    sampled: &[bool],
) -> Vec<i128> {
    let w = layout.k * 2;
    let mut out = vec![0i128; layout.len()];
    // One chunk per feature; features are disjoint slices of `out`.
    let mut parts: Vec<(usize, &mut [i128])> = Vec::with_capacity(features.len());
    let mut rest: &mut [i128] = &mut out;
    let mut consumed = 0;
    let mut sorted = features.to_vec();
    sorted.sort_unstable();
    for &f in &sorted {
        let start = layout.offsets[f] * w;
        let len = layout.slots[f] * w;
        let (_, tail) = rest.split_at_mut(start - consumed);
        let (mine, tail) = tail.split_at_mut(len);
        parts.push((f, mine));
        rest = tail;
        consumed = start + len;
    }
    parts.par_iter_mut().for_each(|(f, hist)| {
        let col = columns[*f];
        for &r in rows {
            let r = r as usize;
            if !sampled[r] {
                continue;
            }
            let base = col[r] as usize * w;
            let src = &gh[r * w..(r + 1) * w];
            for (d, s) in hist[base..base + w].iter_mut().zip(src) {
                *d += *s;
            }
        }
    });
    out
}

/// `parent - child`, element-wise.
pub(crate) fn subtract(parent: &[i128], child: &[i128]) -> Vec<i128> {
    parent.iter().zip(child).map(|(p, c)| p - c).collect()
}

/// Regularisation and limits of split finding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) lambda: f64,
    pub(crate) alpha: f64,
    pub(crate) gamma: f64,
    pub(crate) min_child_weight: f64,
    /// `2^precision_bits`.
    pub(crate) scale: f64,
}

impl Rules {
    fn t_l1(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }

    /// `Σ_k T(G_k)² / (H_k + λ)` of integer sums.
    pub(crate) fn score(&self, sums: &[i128]) -> f64 {
        sums.chunks_exact(2)
            .map(|gh| {
                let g = self.t_l1(gh[0] as f64 / self.scale);
                let h = gh[1] as f64 / self.scale;
                g * g / (h + self.lambda)
            })
            .sum()
    }

    /// Hessian sum of output 0 (the min_child_weight test uses the smallest over outputs).
    fn weight_ok(&self, sums: &[i128]) -> bool {
        sums.chunks_exact(2)
            .all(|gh| gh[1] as f64 / self.scale >= self.min_child_weight)
    }

    /// Leaf weights `-T(G_k)/(H_k+λ)` (before the learning rate).
    pub(crate) fn leaf(&self, sums: &[i128]) -> Vec<f64> {
        sums.chunks_exact(2)
            .map(|gh| {
                let g = self.t_l1(gh[0] as f64 / self.scale);
                let h = gh[1] as f64 / self.scale;
                let w = -g / (h + self.lambda);
                if w.is_finite() { w } else { 0.0 }
            })
            .collect()
    }
}

/// The best split of one node on one party's features.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) gain: f64,
    pub(crate) feature: usize,
    /// Split after this value bin: bins `0..=bin` go left.
    pub(crate) bin: usize,
    pub(crate) default_left: bool,
    /// `[G_0, H_0, …]` of the left child.
    pub(crate) left: Vec<i128>,
}

/// Best split over `features` of a histogram, or `None` if no split gains more than `gamma`.
pub(crate) fn best_split(
    layout: &Layout,
    hist: &[i128],
    features: &[usize],
    total: &[i128],
    rules: &Rules,
) -> Option<Candidate> {
    let w = layout.k * 2;
    let parent = rules.score(total);
    let mut best: Option<Candidate> = None;
    let mut left = vec![0i128; w];
    let mut with_missing = vec![0i128; w];
    let mut right = vec![0i128; w];
    let mut sorted = features.to_vec();
    sorted.sort_unstable();
    for &f in &sorted {
        let slots = layout.slots[f];
        if slots < 3 {
            continue; // one value bin: nothing to split
        }
        let base = layout.offsets[f] * w;
        let miss = &hist[base + (slots - 1) * w..base + slots * w];
        left.iter_mut().for_each(|v| *v = 0);
        for b in 0..slots - 2 {
            for (l, s) in left.iter_mut().zip(&hist[base + b * w..base + (b + 1) * w]) {
                *l += *s;
            }
            for default_left in [false, true] {
                let l: &[i128] = if default_left {
                    for ((m, l), x) in with_missing.iter_mut().zip(&left).zip(miss) {
                        *m = l + x;
                    }
                    &with_missing
                } else {
                    &left
                };
                for ((r, t), x) in right.iter_mut().zip(total).zip(l) {
                    *r = t - x;
                }
                if !rules.weight_ok(l) || !rules.weight_ok(&right) {
                    continue;
                }
                let gain = rules.score(l) + rules.score(&right) - parent;
                if gain > rules.gamma.max(1e-6) && best.as_ref().is_none_or(|c| gain > c.gain) {
                    best = Some(Candidate {
                        gain,
                        feature: f,
                        bin: b,
                        default_left,
                        left: l.to_vec(),
                    });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            lambda: 1.0,
            alpha: 0.0,
            gamma: 0.0,
            min_child_weight: 0.0,
            scale: 1.0,
        }
    }

    #[test]
    fn build_and_split_a_separable_feature() {
        // One feature, 3 value bins + missing; rows 0,1 in bin 0 (g=-1), rows 2,3 in bin 2 (g=+1).
        let layout = Layout::new(vec![4], 1);
        let col = [0u8, 0, 2, 2];
        let gh: Vec<i128> = vec![-1, 1, -1, 1, 1, 1, 1, 1];
        let hist = build(&layout, &[&col], &[0], &[0, 1, 2, 3], &gh, &[true; 4]);
        assert_eq!(hist, vec![-2, 2, 0, 0, 2, 2, 0, 0]);
        let c = best_split(&layout, &hist, &[0], &[0, 4], &rules()).unwrap();
        assert_eq!((c.feature, c.bin, c.left.clone()), (0, 0, vec![-2, 2]));
        assert!((c.gain - (4.0 / 3.0 + 4.0 / 3.0)).abs() < 1e-12);
        // Unsampled rows do not count.
        let hist = build(
            &layout,
            &[&col],
            &[0],
            &[0, 1, 2, 3],
            &gh,
            &[true, false, true, true],
        );
        assert_eq!(hist, vec![-1, 1, 0, 0, 2, 2, 0, 0]);
    }

    #[test]
    fn min_child_weight_blocks_splits() {
        let layout = Layout::new(vec![3], 1);
        let hist = vec![-1, 1, 1, 1, 0, 0];
        let mut r = rules();
        r.min_child_weight = 1.5;
        assert!(best_split(&layout, &hist, &[0], &[0, 2], &r).is_none());
    }
}
