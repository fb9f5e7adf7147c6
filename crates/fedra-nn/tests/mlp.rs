//! Mlp: parameter round trip, training reduces the loss, determinism,
//! gradients against finite differences, shape errors, optimiser
//! checkpoints, DP-SGD micro-batch clipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fedra_nn::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Two Gaussian-ish blobs in 4 dimensions, separable on the first feature.
fn blobs(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let mut x = Vec::with_capacity(rows * 4);
    let mut y = Vec::with_capacity(rows);
    for i in 0..rows {
        let label = (i % 2) as f32;
        for j in 0..4 {
            let noise = (r.next_u32() as f32 / u32::MAX as f32) - 0.5;
            let centre = if j == 0 { 2.0 * label - 1.0 } else { 0.0 };
            x.push(centre + noise);
        }
        y.push(label);
    }
    (x, y)
}

#[test]
fn params_round_trip_exactly_in_name_order() {
    let m = Mlp::new(MlpSpec::binary(5, vec![7, 3]), &mut rng(1)).unwrap();
    let names: Vec<&str> = m.layout().iter().map(|p| p.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(m.num_params(), 5 * 7 + 7 + 7 * 3 + 3 + 3 + 1);
    let p = m.params_flat();
    let mut other = Mlp::new(MlpSpec::binary(5, vec![7, 3]), &mut rng(2)).unwrap();
    assert_ne!(other.params_flat(), p);
    other.set_params_flat(&p).unwrap();
    assert_eq!(
        other
            .params_flat()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        p.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let x: Vec<f32> = (0..10).map(|i| i as f32 * 0.1).collect();
    assert_eq!(m.predict(&x, 2).unwrap(), other.predict(&x, 2).unwrap());
    let rebuilt = Mlp::from_params(m.spec().clone(), &p).unwrap();
    assert_eq!(rebuilt.params(), m.params());
}

#[test]
fn same_seed_same_weights_and_training() {
    let spec = MlpSpec::binary(4, vec![16, 16]);
    let (x, y) = blobs(32, 3);
    let run = |seed| {
        let mut m = Mlp::new(spec.clone(), &mut rng(seed)).unwrap();
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01)).unwrap();
        for _ in 0..5 {
            m.train_step(&mut opt, &x, &y, 32).unwrap();
        }
        m.params_flat()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn training_reduces_the_loss_on_separable_data() {
    let (x, y) = blobs(64, 4);
    for (spec, opt) in [
        (MlpSpec::binary(4, vec![8]), OptimizerConfig::adam(0.05)),
        (
            MlpSpec::logistic_regression(4),
            OptimizerConfig::Sgd {
                lr: 0.5,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
        ),
    ] {
        let mut m = Mlp::new(spec, &mut rng(5)).unwrap();
        let mut opt = Optimizer::new(opt).unwrap();
        let before = m.loss(&x, &y, 64).unwrap();
        for _ in 0..60 {
            m.train_step(&mut opt, &x, &y, 64).unwrap();
        }
        let after = m.loss(&x, &y, 64).unwrap();
        assert!(after < 0.2 * before, "{before} -> {after}");
        let p = m.predict(&x, 64).unwrap();
        let correct = p
            .iter()
            .zip(&y)
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
            .count();
        assert_eq!(correct, 64);
    }
}

#[test]
fn softmax_and_mse_train_too() {
    let (x, y) = blobs(40, 6);
    let mut spec = MlpSpec::binary(4, vec![8]);
    spec.loss = LossKind::SoftmaxCrossEntropy;
    spec.outputs = 2;
    spec.activation = Activation::Tanh;
    let mut m = Mlp::new(spec, &mut rng(7)).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::adam(0.05)).unwrap();
    let before = m.loss(&x, &y, 40).unwrap();
    for _ in 0..40 {
        m.train_step(&mut opt, &x, &y, 40).unwrap();
    }
    assert!(m.loss(&x, &y, 40).unwrap() < 0.3 * before);
    let p = m.predict(&x, 40).unwrap();
    assert_eq!(p.len(), 80);
    for row in p.chunks(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-5);
    }

    let mut spec = MlpSpec::binary(4, vec![]);
    spec.loss = LossKind::Mse;
    let mut m = Mlp::new(spec, &mut rng(8)).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1)).unwrap();
    let target: Vec<f32> = x.chunks(4).map(|r| 2.0 * r[0] - r[1] + 0.5).collect();
    for _ in 0..300 {
        m.train_step(&mut opt, &x, &target, 40).unwrap();
    }
    assert!(m.loss(&x, &target, 40).unwrap() < 1e-3);
}

/// Central differences in f32 on a smooth (tanh) model.
#[test]
fn gradient_matches_finite_differences() {
    let (x, y) = blobs(6, 11);
    for loss in [
        LossKind::BinaryCrossEntropy,
        LossKind::SoftmaxCrossEntropy,
        LossKind::Mse,
    ] {
        let mut spec = MlpSpec::binary(4, vec![5, 3]);
        spec.activation = Activation::Tanh;
        spec.loss = loss;
        let y = match loss {
            LossKind::SoftmaxCrossEntropy => {
                spec.outputs = 3;
                vec![0.0, 1.0, 2.0, 1.0, 0.0, 2.0]
            }
            _ => y.clone(),
        };
        let mut m = Mlp::new(spec, &mut rng(12)).unwrap();
        let (_, g) = m.gradient(&x, &y, 6).unwrap();
        let p0 = m.params_flat();
        let h = 1e-2f32;
        let mut worst = 0f32;
        for i in 0..p0.len() {
            let mut p = p0.clone();
            p[i] = p0[i] + h;
            m.set_params_flat(&p).unwrap();
            let up = m.loss(&x, &y, 6).unwrap();
            p[i] = p0[i] - h;
            m.set_params_flat(&p).unwrap();
            let down = m.loss(&x, &y, 6).unwrap();
            let fd = (up - down) / (2.0 * h);
            worst = worst.max((fd - g[i]).abs() / (1e-2 + g[i].abs()));
        }
        assert!(worst < 2e-2, "{loss:?}: worst relative error {worst}");
    }
}

#[test]
fn bad_shapes_and_values_are_errors() {
    let mut m = Mlp::new(MlpSpec::binary(3, vec![4]), &mut rng(1)).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::adam(0.01)).unwrap();
    let x = vec![0.5f32; 6];
    assert_eq!(m.predict(&x, 3).unwrap_err().code(), "nn.shape");
    assert_eq!(m.predict(&x, 0).unwrap_err().code(), "nn.shape");
    assert_eq!(
        m.train_step(&mut opt, &x, &[1.0], 2).unwrap_err().code(),
        "nn.shape"
    );
    assert_eq!(
        m.train_step(&mut opt, &x, &[1.0, 2.0], 2)
            .unwrap_err()
            .code(),
        "nn.target"
    );
    let mut bad = x.clone();
    bad[3] = f32::NAN;
    assert_eq!(m.predict(&bad, 2).unwrap_err().code(), "nn.non_finite");
    assert_eq!(m.set_params_flat(&[0.0; 3]).unwrap_err().code(), "nn.shape");
    let mut p = m.params_flat();
    p[0] = f32::INFINITY;
    assert_eq!(m.set_params_flat(&p).unwrap_err().code(), "nn.non_finite");
    assert_eq!(
        opt.step(&mut [0.0; 2], &[0.0]).unwrap_err().code(),
        "nn.shape"
    );
    for spec in [
        MlpSpec::binary(0, vec![]),
        MlpSpec::binary(3, vec![0]),
        MlpSpec {
            outputs: 2,
            ..MlpSpec::binary(3, vec![])
        },
        MlpSpec::binary(1 << 16, vec![1 << 16, 1 << 16]),
    ] {
        assert_eq!(Mlp::new(spec, &mut rng(1)).unwrap_err().code(), "nn.config");
    }
    assert!(Optimizer::new(OptimizerConfig::sgd(-1.0)).is_err());
    assert!(
        Optimizer::new(OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 1.0,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0
        })
        .is_err()
    );
}

#[test]
fn optimizer_checkpoint_resumes_identically() {
    let (x, y) = blobs(16, 2);
    for cfg in [
        OptimizerConfig::adam(0.01),
        OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
        },
    ] {
        let mut a = Mlp::new(MlpSpec::binary(4, vec![6]), &mut rng(3)).unwrap();
        let mut opt = Optimizer::new(cfg).unwrap();
        for _ in 0..3 {
            a.train_step(&mut opt, &x, &y, 16).unwrap();
        }
        let saved = serde_json::to_string(&opt).unwrap();
        let mut b = a.clone();
        let mut opt_b: Optimizer = serde_json::from_str(&saved).unwrap();
        for _ in 0..3 {
            a.train_step(&mut opt, &x, &y, 16).unwrap();
            b.train_step(&mut opt_b, &x, &y, 16).unwrap();
        }
        assert_eq!(a.params(), b.params());
        let mut c = Optimizer::new(cfg).unwrap();
        c.restore(opt.state().clone()).unwrap();
        assert_eq!(c, opt);
    }
}

#[test]
fn dp_gradient_clips_each_microbatch_and_adds_noise() {
    let (x, y) = blobs(8, 5);
    let m = Mlp::new(MlpSpec::binary(4, vec![6]), &mut rng(3)).unwrap();
    // No noise, huge clip: the mean of the micro-batch gradients = the batch gradient.
    let dp = DpSgd {
        clip_norm: 1e6,
        noise_multiplier: 0.0,
        microbatch_size: 2,
    };
    let (_, g) = m.dp_gradient(&x, &y, 8, &dp, &mut rng(1)).unwrap();
    let (_, full) = m.gradient(&x, &y, 8).unwrap();
    for (a, b) in g.iter().zip(&full) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // Tiny clip, no noise: each per-example gradient has norm <= C, so the mean does.
    let dp = DpSgd {
        clip_norm: 1e-3,
        noise_multiplier: 0.0,
        microbatch_size: 1,
    };
    let (_, g) = m.dp_gradient(&x, &y, 8, &dp, &mut rng(1)).unwrap();
    let norm = g.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    assert!(norm <= 1e-3 * (1.0 + 1e-5), "{norm}");
    // With noise: deterministic for a given generator, different across seeds.
    let dp = DpSgd {
        noise_multiplier: 1.0,
        ..dp
    };
    let a = m.dp_gradient(&x, &y, 8, &dp, &mut rng(1)).unwrap().1;
    let b = m.dp_gradient(&x, &y, 8, &dp, &mut rng(1)).unwrap().1;
    let c = m.dp_gradient(&x, &y, 8, &dp, &mut rng(2)).unwrap().1;
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Noise std per coordinate = σC / #micro-batches = 1.25e-4.
    let std = (c.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
    assert!((0.8e-4..1.8e-4).contains(&std), "{std}");
    let bad = DpSgd {
        microbatch_size: 0,
        ..dp
    };
    assert_eq!(
        m.dp_gradient(&x, &y, 8, &bad, &mut rng(1))
            .unwrap_err()
            .code(),
        "nn.config"
    );
}

#[test]
fn spec_reads_from_toml_like_json() {
    let spec: MlpSpec = serde_json::from_str(
        r#"{"inputs": 30, "hidden": [128, 128, 128], "outputs": 1, "activation": "tanh"}"#,
    )
    .unwrap();
    assert_eq!(spec.loss, LossKind::BinaryCrossEntropy);
    assert_eq!(
        spec.count_params(),
        30 * 128 + 128 + 2 * (128 * 128 + 128) + 129
    );
    let opt: OptimizerConfig = serde_json::from_str(r#"{"kind": "adam", "lr": 0.01}"#).unwrap();
    assert_eq!(opt, OptimizerConfig::adam(0.01));
}

#[test]
fn ghost_clipping_equals_microbatches_of_one() {
    let (x, y) = blobs(12, 8);
    for (loss, act) in [
        (LossKind::BinaryCrossEntropy, Activation::Relu),
        (LossKind::SoftmaxCrossEntropy, Activation::Tanh),
        (LossKind::Mse, Activation::Tanh),
    ] {
        let mut spec = MlpSpec::binary(4, vec![6, 5]);
        spec.loss = loss;
        spec.activation = act;
        if loss == LossKind::SoftmaxCrossEntropy {
            spec.outputs = 3;
        }
        let y: Vec<f32> = match loss {
            LossKind::SoftmaxCrossEntropy => (0..12).map(|i| (i % 3) as f32).collect(),
            _ => y.clone(),
        };
        let m = Mlp::new(spec, &mut rng(4)).unwrap();
        for clip in [1e-2, 0.3, 1e6] {
            let dp = DpSgd {
                clip_norm: clip,
                noise_multiplier: 0.0,
                microbatch_size: 1,
            };
            let (la, a) = m.dp_gradient(&x, &y, 12, &dp, &mut rng(1)).unwrap();
            let (lb, b) = m
                .dp_gradient_per_example(&x, &y, 12, &dp, &mut rng(1))
                .unwrap();
            assert!((la - lb).abs() < 1e-5);
            let scale = a.iter().fold(0f32, |s, v| s.max(v.abs()));
            for (u, v) in a.iter().zip(&b) {
                assert!(
                    (u - v).abs() <= 1e-4 * scale + 1e-7,
                    "{loss:?} C={clip}: {u} vs {v}"
                );
            }
        }
    }
    // With noise: the same noise as the micro-batch path for the same generator.
    let m = Mlp::new(MlpSpec::binary(4, vec![6]), &mut rng(4)).unwrap();
    let dp = DpSgd {
        clip_norm: 0.5,
        noise_multiplier: 1.0,
        microbatch_size: 1,
    };
    let a = m.dp_gradient(&x, &y, 12, &dp, &mut rng(3)).unwrap().1;
    let b = m
        .dp_gradient_per_example(&x, &y, 12, &dp, &mut rng(3))
        .unwrap()
        .1;
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().chain(b).fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
}

fn bottom_spec(inputs: usize, out: usize) -> MlpSpec {
    MlpSpec {
        output_activation: Some(Activation::Relu),
        ..MlpSpec::binary(inputs, vec![8])
    }
    .with_outputs(out)
}

trait WithOutputs {
    fn with_outputs(self, out: usize) -> Self;
}
impl WithOutputs for MlpSpec {
    fn with_outputs(mut self, out: usize) -> Self {
        self.outputs = out;
        self.loss = LossKind::Mse;
        self
    }
}

#[test]
fn split_gradient_injection_equals_the_joint_graph() {
    let rows = 6;
    let a = Mlp::new(bottom_spec(3, 4), &mut rng(11)).unwrap();
    let b = Mlp::new(bottom_spec(2, 3), &mut rng(12)).unwrap();
    let top = Mlp::new(MlpSpec::binary(7, vec![5]), &mut rng(13)).unwrap();
    let mut r = rng(14);
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| (r.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
            .collect()
    };
    let (xa, xb) = (draw(rows * 3), draw(rows * 2));
    let y: Vec<f32> = (0..rows).map(|i| (i % 2) as f32).collect();

    let joint = joint_gradient(
        &[
            BottomInput { model: &a, x: &xa },
            BottomInput { model: &b, x: &xb },
        ],
        &top,
        &y,
        rows,
    )
    .unwrap();

    // The split way: each bottom keeps a tape, the top sees a leaf input.
    let ta = a.forward_tape(&xa, rows).unwrap();
    let tb = b.forward_tape(&xb, rows).unwrap();
    assert_eq!(ta.output(), a.forward(&xa, rows).unwrap().as_slice());
    let mut cut = Vec::new();
    for i in 0..rows {
        cut.extend_from_slice(&ta.output()[i * 4..i * 4 + 4]);
        cut.extend_from_slice(&tb.output()[i * 3..i * 3 + 3]);
    }
    let (loss, tg) = top.gradient_with_input(&cut, &y, rows).unwrap();
    assert_eq!(loss, joint.loss);
    assert_eq!(tg.params, top.gradient(&cut, &y, rows).unwrap().1);
    assert!(max_rel(&tg.params, &joint.top.params) < 1e-6);
    assert!(max_rel(&tg.input, &joint.top.input) < 1e-6);
    let (mut ga, mut gb) = (Vec::new(), Vec::new());
    for i in 0..rows {
        ga.extend_from_slice(&tg.input[i * 7..i * 7 + 4]);
        gb.extend_from_slice(&tg.input[i * 7 + 4..i * 7 + 7]);
    }
    let sa = ta.backward(&ga).unwrap();
    let sb = tb.backward(&gb).unwrap();
    for (split, joint) in [(&sa, &joint.bottoms[0]), (&sb, &joint.bottoms[1])] {
        assert!(max_rel(&split.params, &joint.params) < 1e-5);
        assert!(max_rel(&split.input, &joint.input) < 1e-5);
        assert!(split.params.iter().any(|v| *v != 0.0));
    }

    // Finite differences (f64 loss through f32 models: loose tolerance) on
    // a few parameters of bottom `a` and inputs of bottom `b`.
    let joint_loss = |a: &Mlp, xb: &[f32]| -> f64 {
        let (ca, cb) = (a.forward(&xa, rows).unwrap(), b.forward(xb, rows).unwrap());
        let mut cut = Vec::new();
        for i in 0..rows {
            cut.extend_from_slice(&ca[i * 4..i * 4 + 4]);
            cut.extend_from_slice(&cb[i * 3..i * 3 + 3]);
        }
        f64::from(top.loss(&cut, &y, rows).unwrap())
    };
    let h = 1e-2f32;
    for k in [0, 5, a.num_params() - 1] {
        let mut p = a.params_flat();
        p[k] += h;
        let up = joint_loss(&Mlp::from_params(a.spec().clone(), &p).unwrap(), &xb);
        p[k] -= 2.0 * h;
        let down = joint_loss(&Mlp::from_params(a.spec().clone(), &p).unwrap(), &xb);
        let fd = (up - down) / (2.0 * f64::from(h));
        assert!(
            (fd - f64::from(sa.params[k])).abs() < 2e-3,
            "param {k}: fd {fd} vs {}",
            sa.params[k]
        );
    }
    for k in [0, 7] {
        let mut x = xb.clone();
        x[k] += h;
        let up = joint_loss(&a, &x);
        x[k] -= 2.0 * h;
        let down = joint_loss(&a, &x);
        let fd = (up - down) / (2.0 * f64::from(h));
        assert!(
            (fd - f64::from(sb.input[k])).abs() < 2e-3,
            "input {k}: fd {fd} vs {}",
            sb.input[k]
        );
    }

    // Shape and finiteness of the injected gradient are checked.
    assert_eq!(ta.backward(&ga[1..]).unwrap_err().code(), "nn.shape");
    let mut bad = ga.clone();
    bad[2] = f32::NAN;
    assert_eq!(ta.backward(&bad).unwrap_err().code(), "nn.non_finite");
}

#[test]
fn output_activation_is_optional_in_configs() {
    let spec: MlpSpec = serde_json::from_str(r#"{"inputs": 2, "outputs": 1}"#).unwrap();
    assert_eq!(spec.output_activation, None);
    let json = serde_json::to_string(&spec).unwrap();
    assert!(!json.contains("output_activation"), "{json}");
    let relu: MlpSpec = serde_json::from_str(
        r#"{"inputs": 2, "outputs": 2, "output_activation": "relu", "loss": "mse"}"#,
    )
    .unwrap();
    let m = Mlp::new(relu, &mut rng(3)).unwrap();
    let out = m.forward(&[1.0, -2.0, -3.0, 0.5], 2).unwrap();
    assert!(out.iter().all(|v| *v >= 0.0));
}
