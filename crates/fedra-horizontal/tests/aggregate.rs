//! Aggregation rules: exact small cases, refusals, chunk boundaries and
//! properties against naive reference implementations.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use fedra_horizontal::aggregate::{
    clip_l2_norm, coordinate_median, krum, krum_select, mean, multi_krum, pairwise_sq_distances,
    trimmed_mean, weighted_mean,
};
use fedra_horizontal::{AggregationRule, Aggregator, ClientResult, HorizontalError};
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

fn uniform(rng: &mut impl RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

fn random_updates(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..d).map(|_| uniform(&mut rng) * 2.0 - 1.0).collect())
        .collect()
}

#[test]
fn weighted_mean_is_exact() {
    let u = vec![vec![0.0f32, 1.0, -2.0], vec![4.0, 1.0, 2.0]];
    assert_eq!(weighted_mean(&u, &[1.0, 3.0]).unwrap(), vec![3.0, 1.0, 1.0]);
    assert_eq!(weighted_mean(&u, &[1.0, 0.0]).unwrap(), u[0]);
    assert_eq!(mean(&u).unwrap(), vec![2.0, 1.0, 0.0]);
    // f64 accumulation: 1e8 + 1 − 1e8 is exact.
    let v = vec![vec![1e8f32], vec![1.0], vec![-1e8]];
    assert_eq!(mean(&v).unwrap(), vec![1.0 / 3.0]);
}

#[test]
fn weighted_mean_rejects_bad_weights_and_shapes() {
    let u = vec![vec![1.0f32], vec![2.0]];
    let e = weighted_mean(&u, &[0.0, 0.0]).unwrap_err();
    assert_eq!(e.code(), "horizontal.invalid_weights");
    let e = weighted_mean(&u, &[1.0, -1.0]).unwrap_err();
    assert_eq!(e.code(), "horizontal.invalid_weights");
    let e = weighted_mean(&u, &[1.0]).unwrap_err();
    assert_eq!(e.code(), "horizontal.dimension_mismatch");
    let ragged = vec![vec![1.0f32], vec![2.0, 3.0]];
    assert_eq!(
        mean(&ragged).unwrap_err().code(),
        "horizontal.dimension_mismatch"
    );
    let none: Vec<Vec<f32>> = vec![];
    assert_eq!(
        coordinate_median(&none).unwrap_err().code(),
        "horizontal.no_updates"
    );
}

#[test]
fn median_exact_odd_and_even() {
    let u = vec![
        vec![1.0f32, 5.0, 3.0],
        vec![2.0, 2.0, 2.0],
        vec![9.0, -1.0, 0.0],
    ];
    assert_eq!(coordinate_median(&u).unwrap(), vec![2.0, 2.0, 2.0]);
    let u = vec![
        vec![1.0f32, 0.0],
        vec![2.0, 10.0],
        vec![4.0, -10.0],
        vec![100.0, 1.0],
    ];
    // Middle pairs: (2, 4) and (0, 1).
    assert_eq!(coordinate_median(&u).unwrap(), vec![3.0, 0.5]);
    assert_eq!(coordinate_median(&[vec![7.0f32]]).unwrap(), vec![7.0]);
}

#[test]
fn trimmed_mean_exact_and_refusal() {
    let u: Vec<Vec<f32>> = [1.0f32, 2.0, 3.0, 4.0, 100.0]
        .iter()
        .map(|&x| vec![x, -x])
        .collect();
    assert_eq!(trimmed_mean(&u, 1).unwrap(), vec![3.0, -3.0]);
    assert_eq!(trimmed_mean(&u, 2).unwrap(), vec![3.0, -3.0]);
    assert_eq!(trimmed_mean(&u, 0).unwrap(), vec![22.0, -22.0]);
    let e = trimmed_mean(&u[..4], 2).unwrap_err();
    assert_eq!(e, HorizontalError::TrimTooLarge { n: 4, trim: 2 });
    assert_eq!(e.code(), "horizontal.trim_too_large");
    assert!(e.to_string().contains("n = 4, trim = 2"), "{e}");
}

#[test]
fn krum_refuses_too_few_updates() {
    let u = random_updates(6, 4, 1);
    let e = krum(&u, 2).unwrap_err();
    assert_eq!(
        e,
        HorizontalError::KrumTooFewUpdates {
            rule: "krum",
            n: 6,
            f: 2
        }
    );
    assert_eq!(e.code(), "horizontal.krum_too_few_updates");
    let msg = e.to_string();
    assert!(
        msg.contains("n = 6, f = 2") && msg.contains("need at least 7"),
        "{msg}"
    );
    assert!(multi_krum(&u, 2, 3).is_err());
    // n = 2f + 3 is enough.
    assert!(krum(&random_updates(7, 4, 1), 2).is_ok());
    let e = multi_krum(&random_updates(7, 4, 1), 2, 6).unwrap_err();
    assert_eq!(e.code(), "horizontal.multi_krum_selection");
}

#[test]
fn krum_selects_honest_updates() {
    // 7 honest updates near (1, …, 1), 2 Byzantine ones far away (and
    // close to each other, so they support one another).
    let d = 50;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut u: Vec<Vec<f32>> = (0..7)
        .map(|_| {
            (0..d)
                .map(|_| 1.0 + 0.1 * (uniform(&mut rng) - 0.5))
                .collect()
        })
        .collect();
    u.insert(2, vec![-5.0; d]);
    u.insert(6, vec![-5.1; d]);
    let byzantine = [2usize, 6];
    let best = krum_select(&u, 2, 1).unwrap();
    assert!(!byzantine.contains(&best[0]));
    let k = krum(&u, 2).unwrap();
    assert_eq!(k, u[best[0]]);
    let sel = krum_select(&u, 2, 7).unwrap();
    let mut sorted = sel.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![0, 1, 3, 4, 5, 7, 8]);
    let honest: Vec<&Vec<f32>> = sorted.iter().map(|&i| &u[i]).collect();
    let mk = multi_krum(&u, 2, 7).unwrap();
    let expect = mean(&honest).unwrap();
    assert_eq!(mk, expect);
    // Through the rule with the default m = n − f.
    let r = AggregationRule::MultiKrum { f: 2, m: None };
    assert_eq!(r.aggregate(&u, &[1.0; 9]).unwrap(), expect);
}

#[test]
fn norm_bounding() {
    let mut v = vec![3.0f32, 4.0];
    assert_eq!(clip_l2_norm(&mut v, 1.0).unwrap(), 5.0);
    assert_eq!(v, vec![0.6, 0.8]);
    let mut w = vec![0.3f32, 0.4];
    clip_l2_norm(&mut w, 1.0).unwrap();
    assert_eq!(w, vec![0.3, 0.4]);
    assert_eq!(
        clip_l2_norm(&mut w, 0.0).unwrap_err().code(),
        "horizontal.config"
    );

    let agg = Aggregator::new(AggregationRule::WeightedMean, Some(1.0)).unwrap();
    let mut results = vec![
        ClientResult::new("a", 1, vec![30.0, 40.0]),
        ClientResult::new("b", 1, vec![0.2, 0.0]),
    ];
    let out = agg.aggregate_results(&mut results).unwrap();
    assert_eq!(results[0].delta, vec![0.6, 0.8]);
    assert_eq!(out, vec![0.4, 0.4]);
    assert!(Aggregator::new(AggregationRule::Median, Some(f64::NAN)).is_err());
}

fn naive_median(col: &mut [f32]) -> f32 {
    col.sort_by(f32::total_cmp);
    let n = col.len();
    if n % 2 == 1 {
        col[n / 2]
    } else {
        ((f64::from(col[n / 2 - 1]) + f64::from(col[n / 2])) / 2.0) as f32
    }
}

fn naive_trimmed(col: &mut [f32], trim: usize) -> f32 {
    col.sort_by(f32::total_cmp);
    let kept = &col[trim..col.len() - trim];
    (kept.iter().map(|&x| f64::from(x)).sum::<f64>() / kept.len() as f64) as f32
}

fn column(u: &[Vec<f32>], j: usize) -> Vec<f32> {
    u.iter().map(|v| v[j]).collect()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn chunk_boundaries_match_naive() {
    // Longer than every internal chunk size, odd length.
    for &(n, d) in &[(3usize, 9_001usize), (10, 20_011), (101, 1_500)] {
        let u = random_updates(n, d, (n * d) as u64);
        let med = coordinate_median(&u).unwrap();
        let tm = trimmed_mean(&u, n / 3).unwrap();
        let w: Vec<f64> = (0..n).map(|k| (k + 1) as f64).collect();
        let wm = weighted_mean(&u, &w).unwrap();
        let total: f64 = w.iter().sum();
        for j in 0..d {
            let mut c = column(&u, j);
            assert_eq!(med[j], naive_median(&mut c), "median n={n} j={j}");
            assert!(
                close(tm[j], naive_trimmed(&mut c, n / 3)),
                "trimmed n={n} j={j}"
            );
            let r: f64 = (0..n).map(|k| w[k] * f64::from(u[k][j])).sum::<f64>() / total;
            assert!(close(wm[j], r as f32), "wmean n={n} j={j}");
        }
    }
}

#[test]
fn pairwise_distances_match_naive() {
    let u = random_updates(6, 3_333, 9);
    let dist = pairwise_sq_distances(&u).unwrap();
    for i in 0..6 {
        for j in 0..6 {
            let r: f64 = u[i]
                .iter()
                .zip(&u[j])
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            assert!((dist[i * 6 + j] - r).abs() <= 1e-4 * (1.0 + r), "{i} {j}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_median_and_trimmed_match_naive(
        n in 1usize..12,
        d in 1usize..40,
        seed in any::<u64>(),
    ) {
        let u = random_updates(n, d, seed);
        let med = coordinate_median(&u).unwrap();
        let trim = (n - 1) / 2;
        let tm = trimmed_mean(&u, trim).unwrap();
        for j in 0..d {
            let mut c = column(&u, j);
            prop_assert_eq!(med[j], naive_median(&mut c));
            prop_assert!(close(tm[j], naive_trimmed(&mut c, trim)));
            // Both lie within the coordinate's range.
            prop_assert!(med[j] >= c[0] && med[j] <= c[n - 1]);
        }
    }

    #[test]
    fn prop_krum_is_permutation_invariant(seed in any::<u64>(), rot in 0usize..9) {
        let u = random_updates(9, 16, seed);
        let a = krum(&u, 2).unwrap();
        let mut v = u.clone();
        v.rotate_left(rot);
        let b = krum(&v, 2).unwrap();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn streaming_mean_is_bit_identical_to_weighted_mean() {
    use fedra_horizontal::aggregate::MeanAccumulator;
    // Across chunk boundaries, with a zero weight in the middle.
    let d = 3 * 8192 + 5;
    let u = random_updates(7, d, 11);
    let w = [3.0, 1.0, 0.0, 250.0, 1.0, 17.0, 2.0];
    let mut acc = MeanAccumulator::new(d);
    for (x, &wk) in u.iter().zip(&w) {
        acc.fold(x, wk).unwrap();
    }
    assert_eq!(acc.folded(), 7);
    let got = acc.finish().unwrap();
    let want = weighted_mean(&u, &w).unwrap();
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    // Refusals: wrong length, bad weight, nothing folded.
    let mut acc = MeanAccumulator::new(3);
    assert!(acc.fold(&[1.0, 2.0], 1.0).is_err());
    assert!(acc.fold(&[1.0, 2.0, 3.0], f64::NAN).is_err());
    assert!(acc.fold(&[1.0, 2.0, 3.0], -1.0).is_err());
    assert!(MeanAccumulator::new(3).finish().is_err());
}

#[test]
fn streaming_weights_follow_the_rule() {
    let a = Aggregator::new(AggregationRule::WeightedMean, Some(2.0)).unwrap();
    assert_eq!(a.streaming_weight(40), Some(40.0));
    let m = Aggregator::new(AggregationRule::Mean, None).unwrap();
    assert_eq!(m.streaming_weight(40), Some(1.0));
    let r = Aggregator::new(AggregationRule::Median, None).unwrap();
    assert_eq!(r.streaming_weight(40), None);
    let mut v = vec![3.0f32, 4.0];
    a.bound(&mut v).unwrap();
    assert!((v[0] - 1.2).abs() < 1e-6 && (v[1] - 1.6).abs() < 1e-6);
}
