//! Criterion benchmarks for `fedra-he` at 2048-bit moduli.
//!
//! Run: `cargo bench -p fedra-he --bench he -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fedra_he::{AdditiveScheme, HePublicKey, HeSecretKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;

fn paillier(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut g = c.benchmark_group("paillier-2048");
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
    let c1 = pk.encrypt(&m, &mut rng).unwrap();
    let c2 = pk.encrypt(&Plaintext::from_i64(7), &mut rng).unwrap();
    g.bench_function("decrypt_crt", |b| {
        b.iter(|| sk.decrypt(black_box(&c1)).unwrap())
    });
    g.sample_size(100);
    g.bench_function("add", |b| b.iter(|| pk.add(black_box(&c1), &c2).unwrap()));
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
    g.finish();
}

fn ou(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let mut g = c.benchmark_group("ou-2048");
    let (pk, sk) = OkamotoUchiyama::generate_keypair(2048, &mut rng).unwrap();
    pk.precompute().unwrap();
    let m = Plaintext::from_i64(123_456_789);
    let neg = Plaintext::from_i64(-123_456_789);
    g.sample_size(100);
    g.bench_function("encrypt_fixed_base", |b| {
        b.iter(|| pk.encrypt(black_box(&m), &mut rng).unwrap())
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
    let k = Plaintext::from_u64(0xdead_beef_cafe_f00d);
    g.bench_function("mul_scalar_64bit", |b| {
        b.iter(|| pk.mul_plain(black_box(&c1), &k).unwrap())
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
    g.finish();
}

/// Encrypted inner products: bucket multi-exponentiation vs `Σ mul_plain`.
fn dot(c: &mut Criterion) {
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
    let mut g = c.benchmark_group("dot-paillier-2048");
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
fn modmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("modmul");
    for bits in [1024u32, 1366, 2048, 4096] {
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

criterion_group!(benches, modmul, paillier, ou, dot);
criterion_main!(benches);
