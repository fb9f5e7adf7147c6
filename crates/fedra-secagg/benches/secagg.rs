//! Criterion benchmarks for `fedra-secagg`: PRG expansion throughput, client
//! masking and server unmasking for 10^6-element vectors over `Z_{2^32}`.
//!
//! Run: `cargo bench -p fedra-secagg --bench secagg`
//!
//! The server benchmark needs `n` clients in the unmasking phase. Producing
//! real 10^6-element masked inputs for 100 clients would take 100 x 100 mask
//! expansions just for setup, so the clients run the protocol on a
//! 1-element vector while the server (same round, same keys, `dim` = 10^6)
//! receives placeholder 10^6-element vectors. The server's work in `finish`
//! (reconstructing every seed and key, expanding and removing every mask) is
//! exactly that of a real round; only the resulting sum is meaningless.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedra_secagg::prg::{self, MaskSeed};
use fedra_secagg::{
    AdvertiseKeys, Client, ClientId, ForwardedShares, KeyList, MaskedInput, Params, Ring, RingVec,
    RoundId, Server, ShareKeys,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const DIM: usize = 1 << 20;

fn prg_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("prg");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let seed = MaskSeed::new([1; 32]);
    let bytes = DIM * 4;
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut buf = vec![0u8; bytes];
    g.bench_function("chacha20_keystream_4MiB_all_cores", |b| {
        b.iter(|| prg::keystream(black_box(&seed), &mut buf))
    });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("chacha20_keystream_4MiB_one_core", |b| {
        b.iter(|| one.install(|| prg::keystream(black_box(&seed), &mut buf)))
    });
    let mut v = RingVec::zeros(Ring::U32, DIM);
    g.bench_function("apply_mask_u32_1M_all_cores", |b| {
        b.iter(|| prg::apply_masks(&mut v, &[(black_box(&seed), prg::Sign::Add)]))
    });
    g.finish();
}

fn params(n: u32, dim: usize) -> Params {
    Params::new(RoundId(1), n, n * 2 / 3, dim, Ring::U32).unwrap()
}

/// Client 1 after round 0, rebuilt deterministically so that every
/// benchmark iteration gets a fresh client in the same state (and the
/// ciphertexts forwarded to it stay valid).
fn client_one(p: Params) -> (Client, AdvertiseKeys, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (c, adv) = Client::new(p, ClientId(1), &mut rng).unwrap();
    (c, adv, rng)
}

/// Client 1 after round 1.
fn client_one_shared(p: Params, keys: &KeyList) -> (Client, ShareKeys) {
    let (mut c, _, mut rng) = client_one(p);
    let msg = c.share_keys(keys, &mut rng).unwrap();
    (c, msg)
}

/// Rounds 0-1 for `n` clients; returns the key list and the shares
/// forwarded to client 1.
fn share_round(p: Params) -> (KeyList, ForwardedShares) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut server = Server::new(p).unwrap();
    server.receive_advertise(&client_one(p).1).unwrap();
    let mut others = Vec::new();
    for i in 2..=p.n {
        let (c, adv) = Client::new(p, ClientId(i), &mut rng).unwrap();
        server.receive_advertise(&adv).unwrap();
        others.push(c);
    }
    let keys = server.close_advertise().unwrap();
    server
        .receive_shares(client_one_shared(p, &keys).1)
        .unwrap();
    for c in &mut others {
        server
            .receive_shares(c.share_keys(&keys, &mut rng).unwrap())
            .unwrap();
    }
    let fwd = server.close_shares().unwrap().into_iter().next().unwrap();
    (keys, fwd)
}

fn client_masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_mask_input_u32_1M");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for n in [10u32, 100] {
        let p = params(n, DIM);
        let (keys, fwd) = share_round(p);
        let input = RingVec::U32((0..DIM as u32).collect());
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || client_one_shared(p, &keys).0,
                |mut client| client.mask_input(&fwd, &input).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// A server at the unmasking phase, all responses in, `dropped` clients
/// having dropped after sharing keys.
fn server_ready(n: u32, dropped: u32) -> Server {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let big = params(n, DIM);
    let small = params(n, 1);
    let mut server = Server::new(big).unwrap();
    let mut clients = Vec::new();
    for i in 1..=n {
        let (c, adv) = Client::new(small, ClientId(i), &mut rng).unwrap();
        server.receive_advertise(&adv).unwrap();
        clients.push(c);
    }
    let keys = server.close_advertise().unwrap();
    for c in &mut clients {
        server
            .receive_shares(c.share_keys(&keys, &mut rng).unwrap())
            .unwrap();
    }
    for fwd in server.close_shares().unwrap() {
        let i = fwd.recipient.0;
        if i > n - dropped {
            continue;
        }
        clients[(i - 1) as usize]
            .mask_input(&fwd, &RingVec::U32(vec![0]))
            .unwrap();
        let placeholder = MaskedInput {
            round: big.round,
            sender: fwd.recipient,
            masked: RingVec::U32(vec![i; DIM]),
        };
        server.receive_masked_input(&placeholder).unwrap();
    }
    let req = server.close_masked_inputs().unwrap();
    for c in &mut clients[..(n - dropped) as usize] {
        server
            .receive_unmask_response(c.unmask(&req).unwrap())
            .unwrap();
    }
    server
}

fn server_unmasking(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_finish_u32_1M");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (n, dropped) in [(10u32, 0u32), (10, 1), (100, 0), (100, 5)] {
        let server = server_ready(n, dropped);
        g.bench_function(
            BenchmarkId::new(format!("n{n}"), format!("dropped{dropped}")),
            |b| {
                b.iter_batched(
                    || server.clone(),
                    |mut s| s.finish().unwrap(),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, prg_throughput, client_masking, server_unmasking);
criterion_main!(benches);
