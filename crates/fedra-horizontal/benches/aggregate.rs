//! Criterion benchmarks of the aggregation rules over 10 and 100 client
//! updates of 1M parameters each. Also prints the best of 2 runs per rule
//! in ns/param.
//!
//! Run: `cargo bench -p fedra-horizontal --bench aggregate`
//! (about two minutes on 2 cores; needs ~0.5 GB of memory).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fedra_horizontal::aggregate::{coordinate_median, multi_krum, trimmed_mean, weighted_mean};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const PARAMS: usize = 1_000_000;

fn updates(n: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..n)
        .map(|_| {
            (0..PARAMS)
                .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
                .collect()
        })
        .collect()
}

fn report(name: &str, n: usize, mut f: impl FnMut() -> Vec<f32>) {
    let best = (0..2)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap_or_default();
    eprintln!(
        "{name:>13} n={n:<3}: {:>8.2} ms, {:>6.3} ns/param",
        best.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e9 / PARAMS as f64
    );
}

fn aggregate(c: &mut Criterion) {
    let all = updates(100);
    for n in [10usize, 100] {
        let u: Vec<&[f32]> = all[..n].iter().map(Vec::as_slice).collect();
        let weights: Vec<f64> = (0..n).map(|k| (100 + k) as f64).collect();
        let trim = n / 10;
        let f = if n == 10 { 2 } else { 20 };
        let m = n - f;

        report("fedavg", n, || weighted_mean(&u, &weights).unwrap());
        report("median", n, || coordinate_median(&u).unwrap());
        report("trimmed_mean", n, || trimmed_mean(&u, trim).unwrap());
        report("multi_krum", n, || multi_krum(&u, f, m).unwrap());

        let mut g = c.benchmark_group(format!("aggregate-{n}x1M"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .throughput(Throughput::Elements(PARAMS as u64));
        g.bench_function("fedavg", |b| {
            b.iter(|| weighted_mean(black_box(&u), &weights).unwrap())
        });
        g.bench_function("median", |b| {
            b.iter(|| coordinate_median(black_box(&u)).unwrap())
        });
        g.bench_function(format!("trimmed_mean_trim{trim}"), |b| {
            b.iter(|| trimmed_mean(black_box(&u), trim).unwrap())
        });
        g.bench_function(format!("multi_krum_f{f}_m{m}"), |b| {
            b.iter(|| multi_krum(black_box(&u), f, m).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
