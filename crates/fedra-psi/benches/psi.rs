//! Criterion benchmarks of the ECDH-PSI curve work and the RSA-PSI private-key
//! operation (one core each).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-psi cargo bench -p fedra-psi --bench psi -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use curve25519_dalek::scalar::Scalar;
use fedra_psi::ecdh::{blind, reblind};
use fedra_psi::hash::hash_to_group;

fn curve(c: &mut Criterion) {
    let mut g = c.benchmark_group("ristretto255");
    let s = Scalar::from_bytes_mod_order_wide(&[7u8; 64]);
    let mut i = 0u64;
    g.bench_function("hash_to_group", |b| {
        b.iter(|| {
            i += 1;
            hash_to_group("job", "psi", black_box(&i.to_be_bytes()))
        })
    });
    g.bench_function("hash_blind_encode", |b| {
        b.iter(|| {
            i += 1;
            blind("job", "psi", black_box(&i.to_be_bytes()), &s)
        })
    });
    let p = hash_to_group("job", "psi", b"x");
    g.bench_function("blind_mult_compress", |b| {
        b.iter(|| (black_box(p) * s).compress())
    });
    let enc = blind("job", "psi", b"x", &s);
    g.bench_function("decode_mult_encode", |b| {
        b.iter(|| reblind(black_box(&enc), &s).unwrap())
    });
    g.finish();
}

criterion_group!(benches, curve);
criterion_main!(benches);
