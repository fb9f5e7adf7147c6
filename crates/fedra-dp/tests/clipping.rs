//! L2 clipping exactness and the DP-SGD aggregation step.

use fedra_dp::{
    DpError, NoisyAggregation, clip_and_aggregate, clip_l2, l2_norm, microbatch_clip_and_aggregate,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn no_noise(clip_norm: f64, denominator: f64) -> NoisyAggregation {
    NoisyAggregation {
        clip_norm,
        noise_multiplier: 0.0,
        denominator,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn clipped_f32_norm_never_exceeds_the_bound(
        v in prop::collection::vec(-1e6f32..1e6, 1..200),
        c in 1e-3f64..1e3,
    ) {
        let original = v.clone();
        let mut w = v;
        let norm = clip_l2(&mut w, c).unwrap();
        prop_assert_eq!(norm, l2_norm(&original));
        let after = l2_norm(&w);
        prop_assert!(after <= c, "{} > {}", after, c);
        if norm <= c {
            prop_assert_eq!(&w, &original);
        } else {
            // Tight: at most a few f32 ulps below the bound, and the direction kept.
            prop_assert!(after >= c * (1.0 - 1e-6), "{} << {}", after, c);
            let factor = c / norm;
            for (a, b) in w.iter().zip(&original) {
                let want = f64::from(*b) * factor;
                prop_assert!((f64::from(*a) - want).abs() <= 1e-6 * want.abs().max(1e-30) + 1e-30);
            }
        }
    }

    #[test]
    fn clipped_f64_norm_never_exceeds_the_bound(
        v in prop::collection::vec(-1e12f64..1e12, 1..200),
        c in 1e-6f64..1e6,
    ) {
        let mut w = v.clone();
        let norm = clip_l2(&mut w, c).unwrap();
        let after = l2_norm(&w);
        prop_assert!(after <= c);
        if norm > c {
            prop_assert!(after >= c * (1.0 - 1e-12));
        } else {
            prop_assert_eq!(&w, &v);
        }
    }

    #[test]
    fn one_example_moves_the_noiseless_sum_by_at_most_c(
        rows in prop::collection::vec(prop::collection::vec(-100.0f64..100.0, 8), 0..20),
        extra in prop::collection::vec(-1e4f64..1e4, 8),
        c in 0.01f64..10.0,
    ) {
        // Add-or-remove sensitivity of the clipped sum is C.
        let flat: Vec<f64> = rows.concat();
        let mut with: Vec<f64> = flat.clone();
        with.extend_from_slice(&extra);
        let p = no_noise(c, 1.0);
        let a = clip_and_aggregate(&flat, 8, &p, &mut rng(0)).unwrap();
        let b = clip_and_aggregate(&with, 8, &p, &mut rng(0)).unwrap();
        let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        prop_assert!(l2_norm(&diff) <= c * (1.0 + 1e-12));
    }
}

#[test]
fn clip_examples_are_exact() {
    let mut v = vec![3.0f64, 4.0];
    assert_eq!(clip_l2(&mut v, 10.0).unwrap(), 5.0);
    assert_eq!(v, vec![3.0, 4.0]); // within the bound: untouched
    assert_eq!(clip_l2(&mut v, 5.0).unwrap(), 5.0);
    assert_eq!(v, vec![3.0, 4.0]); // exactly on the bound: untouched
    assert_eq!(clip_l2(&mut v, 2.5).unwrap(), 5.0);
    assert_eq!(v, vec![1.5, 2.0]);
    let mut empty: Vec<f32> = vec![];
    assert_eq!(clip_l2(&mut empty, 1.0).unwrap(), 0.0);
    // Huge f64 values do not overflow the norm.
    let mut big = vec![3e200f64, 4e200];
    let norm = clip_l2(&mut big, 1.0).unwrap();
    assert!((norm - 5e200).abs() <= 5e200 * 1e-15, "{norm}");
    assert!(l2_norm(&big) <= 1.0 && l2_norm(&big) > 1.0 - 1e-15);
}

#[test]
fn aggregation_without_noise_is_clip_sum_divide() {
    // Rows: norm 5 (clipped to 1), norm 0.5 (kept), norm 13 (clipped to 1).
    let grads = [3.0f64, 4.0, 0.3, 0.4, -5.0, 12.0];
    let out = clip_and_aggregate(&grads, 2, &no_noise(1.0, 4.0), &mut rng(1)).unwrap();
    let want = [
        (0.6 + 0.3 - 5.0 / 13.0) / 4.0,
        (0.8 + 0.4 + 12.0 / 13.0) / 4.0,
    ];
    for (o, w) in out.iter().zip(want) {
        assert!((o - w).abs() < 1e-15, "{out:?} vs {want:?}");
    }
}

#[test]
fn empty_batch_is_pure_noise() {
    let p = NoisyAggregation {
        clip_norm: 2.0,
        noise_multiplier: 1.5,
        denominator: 1.0,
    };
    let out: Vec<f64> = clip_and_aggregate(&[], 200_000, &p, &mut rng(2)).unwrap();
    assert_eq!(out.len(), 200_000);
    let n = out.len() as f64;
    let var = out.iter().map(|v| v * v).sum::<f64>() / n;
    // Noise std σ·C = 3, variance 9; sd of the estimate 9·sqrt(2/n) ≈ 0.028; bound 5.5 sd.
    assert!((var - 9.0).abs() < 5.5 * 9.0 * (2.0 / n).sqrt(), "{var}");
}

#[test]
fn noise_is_added_to_the_sum_before_dividing() {
    // One row, σ = 1, C = 1, denominator 10: output std must be 1/10 per coordinate.
    let p = NoisyAggregation {
        clip_norm: 1.0,
        noise_multiplier: 1.0,
        denominator: 10.0,
    };
    let out: Vec<f32> =
        clip_and_aggregate(&vec![0.0f32; 100_000], 100_000, &p, &mut rng(3)).unwrap();
    let n = out.len() as f64;
    let var = out.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n;
    assert!((var - 0.01).abs() < 5.5 * 0.01 * (2.0 / n).sqrt(), "{var}");
}

#[test]
fn microbatches_clip_their_means() {
    // Two micro-batches of 2 rows: means (3, 4) -> clipped to (0.6, 0.8), and (0.1, 0).
    let grads = [2.0f64, 4.0, 4.0, 4.0, 0.1, 0.0, 0.1, 0.0];
    let out =
        microbatch_clip_and_aggregate(&grads, 2, 2, &no_noise(1.0, 2.0), &mut rng(4)).unwrap();
    assert!(
        (out[0] - 0.35).abs() < 1e-15 && (out[1] - 0.4).abs() < 1e-15,
        "{out:?}"
    );
    // A short last micro-batch is averaged over its own rows.
    let grads = [1.0f64, 0.0, 1.0, 0.0, 0.5, 0.0];
    let out =
        microbatch_clip_and_aggregate(&grads, 2, 2, &no_noise(10.0, 1.0), &mut rng(4)).unwrap();
    assert_eq!(out, vec![1.5, 0.0]);
}

#[test]
fn microbatch_size_one_is_per_example_clipping() {
    let grads: Vec<f32> = (0..60).map(|i| (i as f32 - 30.0) * 0.37).collect();
    let p = NoisyAggregation {
        clip_norm: 2.0,
        noise_multiplier: 1.1,
        denominator: 6.0,
    };
    let a = clip_and_aggregate(&grads, 10, &p, &mut rng(5)).unwrap();
    let b = microbatch_clip_and_aggregate(&grads, 10, 1, &p, &mut rng(5)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_inputs_are_rejected_with_details() {
    let p = no_noise(1.0, 1.0);
    let e = clip_and_aggregate(&[1.0f64, 2.0, 3.0], 2, &p, &mut rng(0)).unwrap_err();
    assert!(
        matches!(e, DpError::ShapeMismatch { len: 3, dim: 2 }),
        "{e}"
    );
    assert_eq!(e.code(), "dp.shape_mismatch");
    let e = clip_and_aggregate(&[1.0f64, 2.0], 0, &p, &mut rng(0)).unwrap_err();
    assert!(
        matches!(e, DpError::InvalidParameter { name: "dim", .. }),
        "{e}"
    );
    let e = clip_and_aggregate(&[1.0f64, 2.0, 3.0, f64::NAN], 2, &p, &mut rng(0)).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::NonFiniteInput {
                row: 1,
                column: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "dp.non_finite_input");
    let e = clip_l2(&mut [1.0f32, f32::INFINITY], 1.0).unwrap_err();
    assert!(
        matches!(
            e,
            DpError::NonFiniteInput {
                row: 0,
                column: 1,
                ..
            }
        ),
        "{e}"
    );
    for (bad, field) in [
        (
            NoisyAggregation {
                clip_norm: 0.0,
                ..p
            },
            "clip_norm",
        ),
        (
            NoisyAggregation {
                clip_norm: f64::NAN,
                ..p
            },
            "clip_norm",
        ),
        (
            NoisyAggregation {
                noise_multiplier: -1.0,
                ..p
            },
            "noise_multiplier",
        ),
        (
            NoisyAggregation {
                denominator: 0.0,
                ..p
            },
            "denominator",
        ),
    ] {
        let e = clip_and_aggregate(&[1.0f64], 1, &bad, &mut rng(0)).unwrap_err();
        assert!(
            matches!(e, DpError::InvalidParameter { name, .. } if name == field),
            "{e}"
        );
    }
    let e = microbatch_clip_and_aggregate(&[1.0f64], 1, 0, &p, &mut rng(0)).unwrap_err();
    assert!(matches!(
        e,
        DpError::InvalidParameter {
            name: "microbatch_size",
            ..
        }
    ));
    assert!(clip_l2(&mut [1.0f64], -1.0).is_err());
}
