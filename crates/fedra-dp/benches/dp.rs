//! Benchmarks: ε for a plan (the RDP series at all 156 default orders), the inverse
//! calibration, and Gaussian noise throughput on 1M floats.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fedra_dp::{Plan, add_gaussian_noise, epsilon, noise_multiplier_for};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn accounting(c: &mut Criterion) {
    let plan = Plan {
        noise_multiplier: 1.1,
        sampling_rate: 0.01,
        steps: 6000,
        delta: 1e-5,
    };
    c.bench_function("epsilon (σ=1.1, q=0.01, 6000 steps)", |b| {
        b.iter(|| epsilon(black_box(&plan)))
    });
    let mut group = c.benchmark_group("calibration");
    group.sample_size(10);
    group.bench_function("noise_multiplier_for (ε=1, q=0.01, 1000 steps)", |b| {
        b.iter(|| noise_multiplier_for(black_box(1.0), 0.01, 1000, 1e-5))
    });
    group.finish();
}

fn noise(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut group = c.benchmark_group("gaussian noise");
    group.throughput(Throughput::Elements(N as u64));
    let mut v32 = vec![0.0f32; N];
    group.bench_function("add_gaussian_noise 1M f32", |b| {
        b.iter(|| add_gaussian_noise(black_box(&mut v32), 0.5, &mut rng))
    });
    let mut v64 = vec![0.0f64; N];
    group.bench_function("add_gaussian_noise 1M f64", |b| {
        b.iter(|| add_gaussian_noise(black_box(&mut v64), 0.5, &mut rng))
    });
    group.finish();
}

criterion_group!(benches, accounting, noise);
criterion_main!(benches);
