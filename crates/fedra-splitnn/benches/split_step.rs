//! One training step of the synthetic Criteo shape, split vs centralized.
//!
//! Model: the follower holds 26 sparse fields (ids uniform over 10^7
//! values, hashed into one 10^6-row × 16 table, row-wise Adagrad) →
//! 416 → cut 64 (ReLU); the leader holds 13 dense features → cut 16 (ReLU)
//! and the labels; top MLP 80 → 256 → 128 → 1 (sigmoid BCE), Adam.
//! Batch 512.
//!
//! * `split_serial`: the work of one staleness-0 step in one thread —
//!   follower forward, wire encoding and checked decoding of the cut
//!   output, leader forward/backward/updates, encoding/decoding of the
//!   gradient, follower backward with the row-wise embedding update.
//! * `split_protocol_mem`: `train_leader` + `train_follower` as two tasks
//!   on a 2-thread tokio runtime over `MemNetwork` (time per step).
//! * `centralized`: the same model, one autodiff graph, one process.
//! * `gradients_only_{split,centralized}`: the forward/backward passes of
//!   one fixed batch without gathering, updates or wire encoding.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fedra_federation::{PartyId, mem::MemNetwork};
use fedra_nn::{Activation, OptimizerConfig};
use fedra_splitnn::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const BATCH: usize = 512;
const FIELDS: usize = 26;
const DENSE: usize = 13;

fn follower_spec() -> BottomSpec {
    BottomSpec {
        dense: 0,
        tables: vec![TableSpec::new(1_000_000, 16, 0.05)],
        fields: vec![0; FIELDS],
        hidden: vec![],
        output: 64,
        activation: Activation::Relu,
        cut_activation: Some(Activation::Relu),
        optimizer: OptimizerConfig::adam(1e-3),
        pooling: Pooling::Mean,
    }
}

fn data(rows: usize, seed: u64) -> (Features, Features, Vec<f32>) {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let ids = (0..rows * FIELDS)
        .map(|_| r.next_u64() % 10_000_000)
        .collect();
    let sparse = Features::new(rows, 0, Vec::new(), FIELDS, ids).unwrap();
    let x = (0..rows * DENSE)
        .map(|_| (r.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect();
    let dense = Features::dense(rows, DENSE, x).unwrap();
    let y = (0..rows)
        .map(|_| (r.next_u32() % 4 == 0) as u8 as f32)
        .collect();
    (dense, sparse, y)
}

fn models() -> (LeaderModel, BottomTower) {
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let follower = BottomTower::new(follower_spec(), &mut r).unwrap();
    let bottom = BottomTower::new(BottomSpec::dense(DENSE, vec![], 16, 1e-3), &mut r).unwrap();
    let top = TopTower::new(TopSpec::binary(vec![256, 128], 1e-3), 80, &mut r).unwrap();
    (
        LeaderModel {
            bottom: Some(bottom),
            top,
        },
        follower,
    )
}

fn pid(s: &str) -> PartyId {
    PartyId::new(s).unwrap()
}

fn bench(c: &mut Criterion) {
    let (dense, sparse, y) = data(BATCH * 16, 2);
    let (leader0, follower0) = models();
    eprintln!(
        "follower table: {} rows × 16, {} bytes per row, {:.1} MiB",
        follower0.tables()[0].rows(),
        follower0.tables()[0].bytes_per_row(),
        follower0.embedding_bytes() as f64 / (1 << 20) as f64
    );
    let mut g = c.benchmark_group("criteo_shape_step_batch512");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));

    let (host, guest) = (pid("host"), pid("guest"));
    let tag = fedra_federation::Tag::new("bench", 0, "emb");
    {
        let (mut leader, mut follower) = (leader0.clone(), follower0.clone());
        let mut k = 0usize;
        g.bench_function("split_serial", |b| {
            b.iter(|| {
                let batch: Vec<usize> = (k * BATCH..(k + 1) * BATCH).collect();
                k = (k + 1) % 16;
                let yb: Vec<f32> = batch.iter().map(|&i| y[i]).collect();
                let fpass = follower.forward(&sparse, &batch).unwrap();
                let msg = wire::encode_matrix(BATCH, 64, fpass.output());
                let emb = wire::decode_matrix(&host, &tag, &msg, BATCH, 64, 1e4).unwrap();
                let lb = leader.bottom.as_mut().unwrap();
                let lpass = lb.forward(&dense, &batch).unwrap();
                let mut cut = Vec::with_capacity(BATCH * 80);
                for r in 0..BATCH {
                    cut.extend_from_slice(&lpass.output()[r * 16..r * 16 + 16]);
                    cut.extend_from_slice(&emb[r * 64..r * 64 + 64]);
                }
                let (_, gr) = leader.top.gradient(&cut, &yb, BATCH).unwrap();
                let mut own = Vec::with_capacity(BATCH * 16);
                let mut theirs = Vec::with_capacity(BATCH * 64);
                for r in 0..BATCH {
                    own.extend_from_slice(&gr.input[r * 80..r * 80 + 16]);
                    theirs.extend_from_slice(&gr.input[r * 80 + 16..r * 80 + 80]);
                }
                let msg = wire::encode_matrix(BATCH, 64, &theirs);
                leader.top.apply(&gr.params).unwrap();
                lb.backward(lpass, &own).unwrap();
                let back = wire::decode_matrix(&guest, &tag, &msg, BATCH, 64, 1e4).unwrap();
                follower.backward(fpass, &back).unwrap();
            })
        });
    }
    {
        let (mut leader, mut follower) = (leader0.clone(), follower0.clone());
        let mut k = 0usize;
        g.bench_function("centralized", |b| {
            b.iter(|| {
                let batch: Vec<usize> = (k * BATCH..(k + 1) * BATCH).collect();
                k = (k + 1) % 16;
                let yb: Vec<f32> = batch.iter().map(|&i| y[i]).collect();
                central_step(
                    &mut leader,
                    std::slice::from_mut(&mut follower),
                    CentralData {
                        leader: &dense,
                        followers: &[&sparse],
                    },
                    &yb,
                    &batch,
                )
                .unwrap();
            })
        });
    }
    {
        let (leader, follower) = (leader0.clone(), follower0.clone());
        let batch: Vec<usize> = (0..BATCH).collect();
        let yb: Vec<f32> = batch.iter().map(|&i| y[i]).collect();
        let fx = follower.gather(&sparse, &batch).unwrap();
        let lb = leader.bottom.as_ref().unwrap();
        let lx = lb.gather(&dense, &batch).unwrap();
        g.bench_function("gradients_only_centralized", |b| {
            b.iter(|| {
                fedra_nn::joint_gradient(
                    &[
                        fedra_nn::BottomInput {
                            model: lb.mlp(),
                            x: &lx.x,
                        },
                        fedra_nn::BottomInput {
                            model: follower.mlp(),
                            x: &fx.x,
                        },
                    ],
                    leader.top.mlp(),
                    &yb,
                    BATCH,
                )
                .unwrap()
            })
        });
        g.bench_function("gradients_only_split", |b| {
            b.iter(|| {
                let ft = follower.mlp().forward_tape(&fx.x, BATCH).unwrap();
                let lt = lb.mlp().forward_tape(&lx.x, BATCH).unwrap();
                let mut cut = Vec::with_capacity(BATCH * 80);
                for r in 0..BATCH {
                    cut.extend_from_slice(&lt.output()[r * 16..r * 16 + 16]);
                    cut.extend_from_slice(&ft.output()[r * 64..r * 64 + 64]);
                }
                let (_, gr) = leader.top.gradient(&cut, &yb, BATCH).unwrap();
                let mut own = Vec::with_capacity(BATCH * 16);
                let mut theirs = Vec::with_capacity(BATCH * 64);
                for r in 0..BATCH {
                    own.extend_from_slice(&gr.input[r * 80..r * 80 + 16]);
                    theirs.extend_from_slice(&gr.input[r * 80 + 16..r * 80 + 80]);
                }
                (ft.backward(&theirs).unwrap(), lt.backward(&own).unwrap())
            })
        });
    }
    g.bench_function("split_protocol_mem", |b| {
        b.iter_custom(|iters| {
            let rows = BATCH * iters as usize;
            let (dense, sparse, y) = data(rows, 3);
            let (mut leader, mut follower) = (leader0.clone(), follower0.clone());
            let cfg = SplitConfig::new(
                "bench",
                guest.clone(),
                vec![FollowerCut {
                    party: host.clone(),
                    width: 64,
                }],
                BATCH,
                1,
                42,
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            rt.block_on(async {
                let mut net = MemNetwork::new("bench", &[guest.clone(), host.clone()]);
                let (lch, fch) = (net.take(&guest).unwrap(), net.take(&host).unwrap());
                let mut noise = ChaCha20Rng::seed_from_u64(5);
                let start = Instant::now();
                let (l, f) = tokio::join!(
                    train_leader(
                        &lch,
                        &cfg,
                        &mut leader,
                        PartyData {
                            train: &dense,
                            valid: None
                        },
                        Labels {
                            train: &y,
                            valid: None
                        },
                        &mut noise,
                        None
                    ),
                    train_follower(
                        &fch,
                        &cfg,
                        &mut follower,
                        PartyData {
                            train: &sparse,
                            valid: None
                        },
                        None
                    )
                );
                l.unwrap();
                f.unwrap();
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
