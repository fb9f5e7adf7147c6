//! fwd + bwd + Adam step throughput (examples/s) of a 30→128→128→128→1
//! binary MLP at batch 64 and 256, plus DP-SGD steps with per-example
//! clipping at batch 64 (micro-batches of 1, and ghost norms) for the cost
//! ratio.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedra_nn::{DpSgd, Mlp, MlpSpec, Optimizer, OptimizerConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn data(rows: usize, rng: &mut ChaCha20Rng) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..rows * 30)
        .map(|_| (rng.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect();
    let y = (0..rows).map(|i| (x[i * 30] > 0.0) as u8 as f32).collect();
    (x, y)
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let spec = MlpSpec::binary(30, vec![128, 128, 128]);
    let mut g = c.benchmark_group("mlp_30x128x3_adam_step");
    for batch in [64usize, 256] {
        let (x, y) = data(batch, &mut rng);
        let mut model = Mlp::new(spec.clone(), &mut rng).unwrap();
        let mut opt = Optimizer::new(OptimizerConfig::adam(1e-3)).unwrap();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &rows| {
            b.iter(|| model.train_step(&mut opt, &x, &y, rows).unwrap())
        });
    }
    let batch = 64;
    let (x, y) = data(batch, &mut rng);
    let mut model = Mlp::new(spec, &mut rng).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::adam(1e-3)).unwrap();
    let dp = DpSgd {
        clip_norm: 1.0,
        noise_multiplier: 1.0,
        microbatch_size: 1,
    };
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("dp_microbatch1_64", |b| {
        b.iter(|| {
            let (_, grad) = model.dp_gradient(&x, &y, batch, &dp, &mut rng).unwrap();
            model.apply_gradient(&mut opt, &grad).unwrap();
        })
    });
    g.bench_function("dp_ghost_per_example_64", |b| {
        b.iter(|| {
            let (_, grad) = model
                .dp_gradient_per_example(&x, &y, batch, &dp, &mut rng)
                .unwrap();
            model.apply_gradient(&mut opt, &grad).unwrap();
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
