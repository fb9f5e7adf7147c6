//! Criterion benchmarks for `fedra-he` at 2048-bit moduli.
//!
//! Run: `cargo bench -p fedra-he --bench he -- --warm-up-time 1 --measurement-time 3`
//! (add a filter such as `'ou-2048/(encrypt|acc)'` to run a subset).
//!
//! With `FEDRA_BENCH_CPU_TIME=1` the single-threaded benches measure the
//! calling thread's CPU time (`/proc/thread-self/schedstat`, Linux only,
//! scheduler-tick granularity, so use `--measurement-time 3` or more)
//! instead of wall time, which is less distorted by other processes on a
//! shared machine. Batch (rayon) benches are only meaningful in wall time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, criterion_main};
use fedra_he::{AdditiveScheme, HePublicKey, HeSecretKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;

/// CPU time of the calling thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

static WALL: WallTime = WallTime;

/// A benchmark group; in CPU-time mode every sample runs the same number
/// of iterations (flat sampling), so no sample is shorter than a few
/// scheduler ticks.
fn group<'a, M: Measurement>(c: &'a mut Criterion<M>, name: &str) -> BenchmarkGroup<'a, M> {
    let mut g = c.benchmark_group(name);
    if std::env::var_os("FEDRA_BENCH_CPU_TIME").is_some() {
        g.sampling_mode(SamplingMode::Flat);
    }
    g
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn paillier<M: Measurement>(c: &mut Criterion<M>) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut g = group(c, "paillier-2048");
    g.sample_size(10);
    g.bench_function("keygen", |b| {
        b.iter(|| Paillier::generate_keypair(2048, &mut rng).unwrap())
    });
    let (pk, sk) = Paillier::generate_keypair(2048, &mut rng).unwrap();
    pk.precompute().unwrap();
    let m = Plaintext::from_i64(-123_456_789);
    g.sample_size(20);
    g.bench_function("encrypt_plain_rn", |b| {
        b.iter(|| pk.encrypt_full_randomness(black_box(&m), &mut rng).unwrap())
    });
    g.sample_size(50);
    g.bench_function("encrypt_fixed_base", |b| {
        b.iter(|| pk.encrypt(black_box(&m), &mut rng).unwrap())
    });
    sk.precompute_crt().unwrap();
    g.bench_function("encrypt_crt", |b| {
        b.iter(|| sk.encrypt_crt(black_box(&m), &mut rng).unwrap())
    });
    let c1 = pk.encrypt(&m, &mut rng).unwrap();
    let c2 = pk.encrypt(&Plaintext::from_i64(7), &mut rng).unwrap();
    g.bench_function("decrypt_crt", |b| {
        b.iter(|| sk.decrypt(black_box(&c1)).unwrap())
    });
    g.sample_size(100);
    g.bench_function("add", |b| b.iter(|| pk.add(black_box(&c1), &c2).unwrap()));
    let mut acc = pk.acc_prepare(&c1);
    let x = pk.acc_prepare(&c2);
    g.bench_function("acc_add", |b| {
        b.iter(|| pk.acc_add(&mut acc, black_box(&x)))
    });
    g.bench_function("acc_prepare", |b| b.iter(|| pk.acc_prepare(black_box(&c2))));
    g.bench_function("acc_finish", |b| b.iter(|| pk.acc_finish(black_box(&x))));
    let k = Plaintext::from_u64(0xdead_beef_cafe_f00d);
    g.bench_function("mul_scalar_64bit", |b| {
        b.iter(|| pk.mul_plain(black_box(&c1), &k).unwrap())
    });
    g.bench_function("rerandomize", |b| {
        b.iter(|| pk.rerandomize(black_box(&c1), &mut rng).unwrap())
    });
    g.sample_size(10);
    let ms: Vec<Plaintext> = (0..1000).map(Plaintext::from_i64).collect();
    g.bench_function("encrypt_batch_1000_rayon", |b| {
        b.iter_batched(
            || ChaCha20Rng::seed_from_u64(7),
            |mut r| pk.encrypt_batch(&ms, &mut r).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("encrypt_batch_crt_1000_rayon", |b| {
        b.iter_batched(
            || ChaCha20Rng::seed_from_u64(7),
            |mut r| sk.encrypt_batch_crt(&ms, &mut r).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn ou<M: Measurement>(c: &mut Criterion<M>) {
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let mut g = group(c, "ou-2048");
    let (pk, sk) = OkamotoUchiyama::generate_keypair(2048, &mut rng).unwrap();
    pk.precompute().unwrap();
    let m = Plaintext::from_i64(123_456_789);
    let neg = Plaintext::from_i64(-123_456_789);
    // SecureBoost packs (g, h) into one ~140-bit plaintext per row.
    let m140 = Plaintext::from_sign_magnitude_be(false, &[0x0b; 18]);
    assert_eq!(m140.bits(), 140);
    g.sample_size(100);
    g.bench_function("encrypt_fixed_base", |b| {
        b.iter(|| pk.encrypt(black_box(&m), &mut rng).unwrap())
    });
    g.bench_function("encrypt_fixed_base_140bit", |b| {
        b.iter(|| pk.encrypt(black_box(&m140), &mut rng).unwrap())
    });
    sk.precompute_crt().unwrap();
    g.bench_function("encrypt_crt", |b| {
        b.iter(|| sk.encrypt_crt(black_box(&m), &mut rng).unwrap())
    });
    g.bench_function("encrypt_crt_140bit", |b| {
        b.iter(|| sk.encrypt_crt(black_box(&m140), &mut rng).unwrap())
    });
    // Builds the G^-1 table on first use (outside measurement via warm-up).
    pk.encrypt(&neg, &mut rng).unwrap();
    g.bench_function("encrypt_fixed_base_negative", |b| {
        b.iter(|| pk.encrypt(black_box(&neg), &mut rng).unwrap())
    });
    let c1 = pk.encrypt(&m, &mut rng).unwrap();
    let c2 = pk.encrypt(&Plaintext::from_i64(7), &mut rng).unwrap();
    g.bench_function("decrypt", |b| {
        b.iter(|| sk.decrypt(black_box(&c1)).unwrap())
    });
    g.bench_function("add", |b| b.iter(|| pk.add(black_box(&c1), &c2).unwrap()));
    let mut acc = pk.acc_prepare(&c1);
    let x = pk.acc_prepare(&c2);
    g.bench_function("acc_add", |b| {
        b.iter(|| pk.acc_add(&mut acc, black_box(&x)))
    });
    g.bench_function("acc_prepare", |b| b.iter(|| pk.acc_prepare(black_box(&c2))));
    g.bench_function("acc_finish", |b| b.iter(|| pk.acc_finish(black_box(&x))));
    let k = Plaintext::from_u64(0xdead_beef_cafe_f00d);
    g.bench_function("mul_scalar_64bit", |b| {
        b.iter(|| pk.mul_plain(black_box(&c1), &k).unwrap())
    });
    g.bench_function("rerandomize", |b| {
        b.iter(|| pk.rerandomize(black_box(&c1), &mut rng).unwrap())
    });
    g.sample_size(10);
    let ms: Vec<Plaintext> = (0..1000).map(Plaintext::from_i64).collect();
    g.bench_function("encrypt_batch_1000_rayon", |b| {
        b.iter_batched(
            || ChaCha20Rng::seed_from_u64(7),
            |mut r| pk.encrypt_batch(&ms, &mut r).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("encrypt_batch_crt_1000_rayon", |b| {
        b.iter_batched(
            || ChaCha20Rng::seed_from_u64(7),
            |mut r| sk.encrypt_batch_crt(&ms, &mut r).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Encrypted inner products: bucket multi-exponentiation vs `Σ mul_plain`.
fn dot<M: Measurement>(c: &mut Criterion<M>) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (pk, _sk) = Paillier::generate_keypair(2048, &mut rng).unwrap();
    let n = 1000;
    let ms: Vec<Plaintext> = (0..n).map(|i| Plaintext::from_i64(i - 500)).collect();
    let cts = pk.encrypt_batch(&ms, &mut rng).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as i64
    };
    let s64: Vec<i64> = (0..n).map(|_| next()).collect();
    // Fixed-point features: 2^-16 precision, |x| < 64 => 22-bit magnitudes.
    let s22: Vec<i64> = (0..n * 10).map(|_| next() >> 42).collect();
    let mut g = group(c, "dot-paillier-2048");
    g.sample_size(10);
    g.bench_function("dot_1000x64bit_pippenger", |b| {
        b.iter(|| pk.dot(black_box(&cts), &s64).unwrap())
    });
    g.bench_function("dot_1000x64bit_naive", |b| {
        b.iter(|| {
            let k: Vec<Plaintext> = s64.iter().map(|&s| Plaintext::from_i64(s)).collect();
            pk.sum(&pk.mul_plain_batch(black_box(&cts), &k).unwrap())
                .unwrap()
        })
    });
    g.bench_function("dot_columns_1000x10x22bit_pippenger", |b| {
        b.iter(|| pk.dot_columns(black_box(&cts), &s22, 10).unwrap())
    });
    g.finish();
}

/// One modular multiplication: pure-Rust Montgomery vs OpenSSL.
fn modmul<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = group(c, "modmul");
    for bits in [683u32, 1024, 1366, 2048, 4096] {
        let mut mb = fedra_he::bench_support::MulBench::new(bits, 1).unwrap();
        g.bench_function(format!("montgomery_{bits}"), |b| {
            b.iter(|| black_box(mb.montgomery()))
        });
        g.bench_function(format!("montgomery_in_place_{bits}"), |b| {
            b.iter(|| black_box(mb.montgomery_in_place()))
        });
        g.bench_function(format!("openssl_mod_mul_{bits}"), |b| {
            b.iter(|| black_box(mb.openssl_mod_mul().unwrap()))
        });
        g.bench_function(format!("openssl_barrett_{bits}"), |b| {
            b.iter(|| black_box(mb.openssl_barrett().unwrap()))
        });
    }
    g.finish();
}

/// Fixed-base exponentiation by a random 448-bit exponent (OU's `H^r`)
/// modulo 2048 bits with different window widths.
fn windows<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = group(c, "fixed-base-window");
    for w in [6u32, 8, 10, 12] {
        let mut fb = fedra_he::bench_support::FixedBaseBench::new(2048, 448, w, 3).unwrap();
        eprintln!("window {w}: table {} bytes", fb.table_bytes());
        g.bench_function(format!("h_pow_2048_448bit_w{w}"), |b| {
            b.iter(|| black_box(fb.pow_random().unwrap()))
        });
    }
    g.finish();
}

fn benches() {
    if std::env::var_os("FEDRA_BENCH_CPU_TIME").is_some() {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        modmul(&mut c);
        windows(&mut c);
        paillier(&mut c);
        ou(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        modmul(&mut c);
        windows(&mut c);
        paillier(&mut c);
        ou(&mut c);
        dot(&mut c);
        c.final_summary();
    }
}

criterion_main!(benches);
