//! Split learning: row-wise embedding updates, gradient injection against
//! the one-graph centralized model, the two-party protocol over in-memory
//! channels (equality with the centralized run, default_credit AUC),
//! prediction, and malformed peers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use fedra_data::{Dataset, DatasetSpec, load};
use fedra_federation::{Channel, Failure, PartyId, Tag, mem::MemNetwork};
use fedra_nn::{Activation, OptimizerConfig};
use fedra_splitnn::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn pid(s: &str) -> PartyId {
    PartyId::new(s).unwrap()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn uniform(r: &mut ChaCha20Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (r.next_u32() as f32 / u32::MAX as f32) * 2.0 - 1.0)
        .collect()
}

/// A bottom tower with `fields` sparse fields over two tables (fields
/// alternate between them) and `dense` dense features.
fn sparse_spec(dense: usize, fields: usize, rows: usize, output: usize) -> BottomSpec {
    BottomSpec {
        dense,
        tables: vec![
            TableSpec::new(rows, 4, 0.1),
            TableSpec::new(rows / 2 + 1, 3, 0.1),
        ],
        fields: (0..fields).map(|f| f % 2).collect(),
        hidden: vec![8],
        output,
        activation: Activation::Relu,
        cut_activation: Some(Activation::Relu),
        optimizer: OptimizerConfig::sgd(0.1),
        pooling: Pooling::Mean,
    }
}

fn synthetic(rows: usize, dense: usize, fields: usize, ids: u64, seed: u64) -> Features {
    let mut r = rng(seed);
    let x = uniform(&mut r, rows * dense);
    let s = (0..rows * fields).map(|_| r.next_u64() % ids).collect();
    Features::new(rows, dense, x, fields, s).unwrap()
}

#[test]
fn an_embedding_step_touches_only_the_batch_rows() {
    let spec = sparse_spec(2, 3, 200_000, 5);
    let mut tower = BottomTower::new(spec, &mut rng(1)).unwrap();
    let f = synthetic(64, 2, 3, 1_000_000, 2);
    let before = tower.clone();
    let batch: Vec<usize> = (0..16).collect();
    let pass = tower.forward(&f, &batch).unwrap();
    let touched: Vec<Vec<usize>> = tower
        .gather(&f, &batch)
        .unwrap()
        .unique_rows()
        .iter()
        .map(|u| u.to_vec())
        .collect();
    let grad = uniform(&mut rng(3), 16 * 5);
    tower.backward(pass, &grad).unwrap();
    for (t, (new, old)) in tower.tables().iter().zip(before.tables()).enumerate() {
        let d = new.dim();
        let mut changed = 0;
        for r in 0..new.rows() {
            let (a, b) = (new.row(r).unwrap(), old.row(r).unwrap());
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
                && new.state()[r].to_bits() == old.state()[r].to_bits();
            if touched[t].contains(&r) {
                changed += usize::from(!same);
            } else {
                assert!(
                    same,
                    "table {t} row {r} changed but the batch does not touch it"
                );
            }
        }
        assert!(
            changed > 0 && changed <= touched[t].len(),
            "table {t}: {changed}"
        );
        assert_eq!(new.bytes_per_row(), 4 * d + 4);
        assert_eq!(new.memory_bytes(), new.rows() * new.bytes_per_row());
    }
    assert_eq!(tower.embedding_bytes(), 200_000 * 20 + 100_001 * 16);
}

/// The leader's model: a bottom tower over `leader` features plus the top.
fn leader_model(
    bottom: BottomSpec,
    follower_widths: usize,
    top: TopSpec,
    seed: u64,
) -> LeaderModel {
    let mut r = rng(seed);
    let bottom = BottomTower::new(bottom, &mut r).unwrap();
    let inputs = bottom.output_width() + follower_widths;
    LeaderModel {
        top: TopTower::new(top, inputs, &mut r).unwrap(),
        bottom: Some(bottom),
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().chain(b).fold(1e-12f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
}

#[test]
fn injected_gradients_equal_the_one_graph_model() {
    let lf = synthetic(32, 3, 2, 50, 10);
    let ff = synthetic(32, 2, 3, 50, 11);
    let y: Vec<f32> = (0..32).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect();
    let mut leader = leader_model(
        sparse_spec(3, 2, 100, 4),
        5,
        TopSpec::binary(vec![6], 0.1),
        20,
    );
    let mut follower = BottomTower::new(sparse_spec(2, 3, 100, 5), &mut rng(21)).unwrap();
    let batch: Vec<usize> = (0..32).step_by(2).collect();
    let yb: Vec<f32> = batch.iter().map(|&i| y[i]).collect();

    // Split: the follower's pass, the leader's top with a leaf input.
    let fpass = follower.forward(&ff, &batch).unwrap();
    let lb = leader.bottom.as_ref().unwrap();
    let lpass = lb.forward(&lf, &batch).unwrap();
    let mut cut = Vec::new();
    for r in 0..16 {
        cut.extend_from_slice(&lpass.output()[r * 4..r * 4 + 4]);
        cut.extend_from_slice(&fpass.output()[r * 5..r * 5 + 5]);
    }
    let (loss, g) = leader.top.gradient(&cut, &yb, 16).unwrap();
    let fgrad: Vec<f32> = (0..16)
        .flat_map(|r| g.input[r * 9 + 4..r * 9 + 9].to_vec())
        .collect();

    // Reference: one graph over every tower.
    let fx = follower.gather(&ff, &batch).unwrap();
    let lx = lb.gather(&lf, &batch).unwrap();
    let joint = fedra_nn::joint_gradient(
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
        16,
    )
    .unwrap();
    assert_eq!(loss, joint.loss);
    assert!(max_rel(&g.input, &joint.top.input) < 1e-6);
    // The follower's backward from the injected gradient.
    let fwd = follower.mlp().forward_tape(&fx.x, 16).unwrap();
    let fg = fwd.backward(&fgrad).unwrap();
    let rel_p = max_rel(&fg.params, &joint.bottoms[1].params);
    let rel_x = max_rel(&fg.input, &joint.bottoms[1].input);
    eprintln!("follower gradient vs one graph: params {rel_p:.2e}, embedding inputs {rel_x:.2e}");
    assert!(rel_p < 1e-5 && rel_x < 1e-5);

    // After a step both ways (SGD everywhere: no amplification), every
    // weight and embedding row agrees.
    let mut f2 = follower.clone();
    let mut l2 = leader.clone();
    follower.backward(fpass, &fgrad).unwrap();
    leader.top.apply(&g.params).unwrap();
    let lgrad: Vec<f32> = (0..16)
        .flat_map(|r| g.input[r * 9..r * 9 + 4].to_vec())
        .collect();
    leader
        .bottom
        .as_mut()
        .unwrap()
        .backward(lpass, &lgrad)
        .unwrap();
    central_step(
        &mut l2,
        std::slice::from_mut(&mut f2),
        CentralData {
            leader: &lf,
            followers: &[&ff],
        },
        &yb,
        &batch,
    )
    .unwrap();
    assert!(max_rel(follower.mlp().params(), f2.mlp().params()) < 1e-6);
    for (a, b) in follower.tables().iter().zip(f2.tables()) {
        assert!(max_rel(a.weights(), b.weights()) < 1e-6);
    }
    assert!(max_rel(leader.top.mlp().params(), l2.top.mlp().params()) < 1e-6);
}

fn failure(me: &PartyId, e: &SplitError) -> Failure {
    Failure {
        party: me.to_string(),
        task: "split".into(),
        round: None,
        code: e.code().into(),
        message: e.to_string(),
    }
}

struct Run {
    leader: LeaderModel,
    follower: BottomTower,
    report: TrainReport,
    wall_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_two_party(
    cfg: &SplitConfig,
    leader: LeaderModel,
    follower: BottomTower,
    lf: Features,
    lv: Option<Features>,
    y: Vec<f32>,
    yv: Option<Vec<f32>>,
    ff: Features,
    fv: Option<Features>,
) -> Result<Run, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = std::time::Instant::now();
        let mut net = MemNetwork::new("job", &[cfg.leader.clone(), cfg.followers[0].party.clone()]);
        let lch = net.take(&cfg.leader).unwrap();
        let fch = net.take(&cfg.followers[0].party).unwrap();
        let cfg = Arc::new(cfg.clone());
        let c = cfg.clone();
        let l = tokio::spawn(async move {
            let mut leader = leader;
            let r = train_leader(
                &lch,
                &c,
                &mut leader,
                PartyData {
                    train: &lf,
                    valid: lv.as_ref(),
                },
                Labels {
                    train: &y,
                    valid: yv.as_deref(),
                },
                &mut rng(99),
                None,
            )
            .await;
            if let Err(e) = &r {
                lch.abort(&failure(lch.me(), e)).await;
            }
            r.map(|rep| (leader, rep))
        });
        let c = cfg.clone();
        let f = tokio::spawn(async move {
            let mut follower = follower;
            let r = train_follower(
                &fch,
                &c,
                &mut follower,
                PartyData {
                    train: &ff,
                    valid: fv.as_ref(),
                },
                None,
            )
            .await;
            if let Err(e) = &r {
                fch.abort(&failure(fch.me(), e)).await;
            }
            r.map(|_| follower)
        });
        match (l.await.unwrap(), f.await.unwrap()) {
            (Ok((leader, report)), Ok(follower)) => Ok(Run {
                leader,
                follower,
                report,
                wall_s: start.elapsed().as_secs_f64(),
            }),
            (a, b) => Err(format!("leader: {:?}; follower: {:?}", a.err(), b.err())),
        }
    })
}

fn config(width: usize, batch: usize, epochs: usize) -> SplitConfig {
    SplitConfig::new(
        "split",
        pid("guest"),
        vec![FollowerCut {
            party: pid("host"),
            width,
        }],
        batch,
        epochs,
        42,
    )
}

#[test]
fn protocol_equals_the_centralized_model_and_predicts() {
    let (lf, ff) = (synthetic(300, 3, 2, 40, 30), synthetic(300, 2, 3, 40, 31));
    let y: Vec<f32> = (0..300).map(|i| (i % 3 == 0) as u8 as f32).collect();
    let leader = leader_model(
        sparse_spec(3, 2, 64, 4),
        5,
        TopSpec::binary(vec![6], 0.05),
        40,
    );
    let follower = BottomTower::new(sparse_spec(2, 3, 64, 5), &mut rng(41)).unwrap();
    let mut cfg = config(5, 32, 3);
    cfg.eval_every = 5;
    cfg.chunk_rows = 70;
    let idx_v: Vec<usize> = (200..300).collect();
    let idx_t: Vec<usize> = (0..200).collect();
    let (lt, lv, ft, fv) = (
        lf.select(&idx_t).unwrap(),
        lf.select(&idx_v).unwrap(),
        ff.select(&idx_t).unwrap(),
        ff.select(&idx_v).unwrap(),
    );
    let (yt, yv) = (y[..200].to_vec(), y[200..].to_vec());
    let run = run_two_party(
        &cfg,
        leader.clone(),
        follower.clone(),
        lt.clone(),
        Some(lv.clone()),
        yt.clone(),
        Some(yv.clone()),
        ft.clone(),
        Some(fv.clone()),
    )
    .unwrap();
    assert_eq!(run.report.steps, 7 * 3);
    let steps: Vec<u64> = run.report.history.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![5, 10, 15, 20, 21]);

    let (mut cl, mut cf) = (leader, vec![follower]);
    let central = train_centralized(
        &cfg,
        &mut cl,
        &mut cf,
        CentralData {
            leader: &lt,
            followers: &[&ft],
        },
        &yt,
        Some((
            CentralData {
                leader: &lv,
                followers: &[&fv],
            },
            &yv,
        )),
    )
    .unwrap();
    for (a, b) in run.report.history.iter().zip(&central.history) {
        assert_eq!(a.step, b.step);
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} {b:?}");
        assert!(
            (a.val_auc.unwrap() - b.val_auc.unwrap()).abs() < 1e-4,
            "{a:?} {b:?}"
        );
    }
    assert!(max_rel(run.follower.mlp().params(), cf[0].mlp().params()) < 1e-4);
    for (a, b) in run.follower.tables().iter().zip(cf[0].tables()) {
        assert!(max_rel(a.weights(), b.weights()) < 1e-4);
    }

    // Prediction: only the leader learns it; it equals the local model's.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let preds = rt.block_on(async {
        let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
        let (lch, fch) = (
            net.take(&pid("guest")).unwrap(),
            net.take(&pid("host")).unwrap(),
        );
        let (l, f) = tokio::join!(
            predict_leader(&lch, &cfg, &run.leader, &lv),
            predict_follower(&fch, &cfg, &run.follower, &fv)
        );
        f.unwrap();
        l.unwrap()
    });
    let local = central_predict(
        &run.leader,
        std::slice::from_ref(&run.follower),
        CentralData {
            leader: &lv,
            followers: &[&fv],
        },
        33,
    )
    .unwrap();
    assert_eq!(preds, local);
    assert_eq!(preds.len(), 100);
}

// ---------------------------------------------------------------- real data

fn fate_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fate");
    // The data ships with the repository (data/): its absence is a broken checkout,
    // never a reason to pass.
    assert!(
        dir.is_dir(),
        "{} is missing: run the tests from a full clone",
        dir.display()
    );
    Some(dir)
}

/// Stratified 80/20 split (the project convention, as in fedra-linear's
/// tests): within each class, rows sorted by `(id · 2654435761 + 42) mod
/// 2^32` (then id); the first 20 % are the test set.
fn split(d: &Dataset) -> (Vec<usize>, Vec<usize>) {
    let ids: Vec<u64> = d.ids().iter().map(|s| s.parse().unwrap()).collect();
    let y = d.labels().unwrap();
    let key = |i: usize| (ids[i].wrapping_mul(2654435761).wrapping_add(42)) % (1 << 32);
    let mut test = vec![false; ids.len()];
    for class in [0.0, 1.0] {
        let mut idx: Vec<usize> = (0..ids.len()).filter(|&i| y[i] == class).collect();
        idx.sort_by_key(|&i| (key(i), ids[i]));
        let k = (idx.len() as f64 * 0.2).round() as usize;
        idx[..k].iter().for_each(|&i| test[i] = true);
    }
    let tr = (0..ids.len()).filter(|&i| !test[i]).collect();
    let te = (0..ids.len()).filter(|&i| test[i]).collect();
    (tr, te)
}

fn dense_features(d: &Dataset, idx: &[usize]) -> Features {
    let w = d.n_features();
    let mut x = Vec::with_capacity(idx.len() * w);
    for &i in idx {
        x.extend(d.row(i).iter().map(|v| *v as f32));
    }
    Features::dense(idx.len(), w, x).unwrap()
}

struct DefaultCredit {
    lt: Features,
    lv: Features,
    ft: Features,
    fv: Features,
    yt: Vec<f32>,
    yv: Vec<f32>,
    train_rows: usize,
}

/// default_credit, stratified 80/20 (seed 42): guest = leader (13
/// features + labels), host = follower (10 features).
fn default_credit() -> Option<DefaultCredit> {
    let dir = fate_dir()?;
    let g = load(&DatasetSpec::new(dir.join("default_credit_hetero_guest.csv")).with_label("y"))
        .unwrap();
    let h = load(&DatasetSpec::new(
        dir.join("default_credit_hetero_host.csv"),
    ))
    .unwrap();
    assert_eq!(g.ids(), h.ids());
    let (tr, te) = split(&g);
    let labels = g.labels().unwrap();
    Some(DefaultCredit {
        yt: tr.iter().map(|&i| labels[i] as f32).collect(),
        yv: te.iter().map(|&i| labels[i] as f32).collect(),
        lt: dense_features(&g, &tr),
        lv: dense_features(&g, &te),
        ft: dense_features(&h, &tr),
        fv: dense_features(&h, &te),
        train_rows: tr.len(),
    })
}

#[test]
fn default_credit_label_leak_and_defences() {
    let Some(d) = default_credit() else { return };
    let lr = 1e-3;
    let leader = leader_model(
        BottomSpec::dense(13, vec![128], 64, lr),
        64,
        TopSpec::binary(vec![128], lr),
        7,
    );
    let follower = BottomTower::new(BottomSpec::dense(10, vec![128], 64, lr), &mut rng(8)).unwrap();
    let mut results = Vec::new();
    for protection in [
        GradientProtection::None,
        GradientProtection::MaxNorm,
        GradientProtection::Gaussian {
            clip_norm: 1.0,
            noise_multiplier: 1.0,
            delta: 1e-5,
        },
    ] {
        let mut cfg = config(64, 256, 3);
        cfg.protection = protection;
        let run = run_two_party(
            &cfg,
            leader.clone(),
            follower.clone(),
            d.lt.clone(),
            Some(d.lv.clone()),
            d.yt.clone(),
            Some(d.yv.clone()),
            d.ft.clone(),
            Some(d.fv.clone()),
        )
        .unwrap();
        let leak = run.report.leak_auc[0].unwrap();
        let auc = run.report.history.last().unwrap().val_auc.unwrap();
        eprintln!(
            "protection {protection:?}: leak AUC {leak:.4}, held-out AUC {auc:.4}, epsilon {:?} ({} steps)",
            run.report.epsilon, run.report.steps
        );
        results.push((leak, auc, run.report.epsilon));
    }
    assert!(results[0].0 >= 0.9, "no defence: leak AUC {}", results[0].0);
    assert!(results[1].0 <= 0.6, "max-norm: leak AUC {}", results[1].0);
    assert!(results[0].2.is_none() && results[1].2.is_none());
    assert!(results[2].2.unwrap().is_finite());
}

#[test]
fn default_credit_two_parties_reach_the_auc_bar_and_match_centralized() {
    let Some(DefaultCredit {
        lt,
        lv,
        ft,
        fv,
        yt,
        yv,
        train_rows,
    }) = default_credit()
    else {
        return;
    };

    // "MLP 128×3" split: each bottom 128 → cut 64 (ReLU), concatenated 128,
    // top 128 → 1.
    let lr = 1e-3;
    let leader = leader_model(
        BottomSpec::dense(13, vec![128], 64, lr),
        64,
        TopSpec::binary(vec![128], lr),
        7,
    );
    let follower = BottomTower::new(BottomSpec::dense(10, vec![128], 64, lr), &mut rng(8)).unwrap();
    let mut cfg = config(64, 256, 8);
    cfg.eval_every = cfg.steps_per_epoch(train_rows) as u64;
    let run = run_two_party(
        &cfg,
        leader.clone(),
        follower.clone(),
        lt.clone(),
        Some(lv.clone()),
        yt.clone(),
        Some(yv.clone()),
        ft.clone(),
        Some(fv.clone()),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let (mut cl, mut cf) = (leader, vec![follower]);
    let central = train_centralized(
        &cfg,
        &mut cl,
        &mut cf,
        CentralData {
            leader: &lt,
            followers: &[&ft],
        },
        &yt,
        Some((
            CentralData {
                leader: &lv,
                followers: &[&fv],
            },
            &yv,
        )),
    )
    .unwrap();
    let central_s = t0.elapsed().as_secs_f64();
    for (a, b) in run.report.history.iter().zip(&central.history) {
        eprintln!(
            "step {:5}: split train loss {:.5} held-out AUC {:.5} | centralized {:.5} {:.5}",
            a.step,
            a.train_loss,
            a.val_auc.unwrap(),
            b.train_loss,
            b.val_auc.unwrap()
        );
    }
    let (s, c) = (
        run.report.history.last().unwrap().val_auc.unwrap(),
        central.history.last().unwrap().val_auc.unwrap(),
    );
    eprintln!(
        "default_credit split AUC {s:.4} (two parties, in memory, {:.1} s incl. evaluations) vs centralized {c:.4} ({central_s:.1} s), |Δ| = {:.2e}",
        run.wall_s,
        (s - c).abs()
    );
    assert!(s >= 0.765, "held-out AUC {s}");
    assert!((s - c).abs() <= 0.002, "split {s} vs centralized {c}");
}

// ------------------------------------------------------------ bad peers

/// Runs the real leader against a scripted follower that sends `emb` as its
/// first cut output; returns the leader's error.
fn leader_error(emb: bytes::Bytes) -> SplitError {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = config(3, 4, 1);
        let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
        let (lch, fch) = (
            net.take(&pid("guest")).unwrap(),
            net.take(&pid("host")).unwrap(),
        );
        let mut leader = leader_model(
            BottomSpec::dense(2, vec![], 2, 0.01),
            3,
            TopSpec::binary(vec![], 0.01),
            1,
        );
        let lf = synthetic(8, 2, 0, 1, 1);
        let y = vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let mut noise = rng(99);
        let c = cfg.clone();
        let follower = async move {
            // A well-formed hello, then the scripted cut output.
            let hello: Vec<u8> = [1u64, 8, 0, 3, 4, 1, 42, 0, 0, 0, 0]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect();
            fch.send(&c.leader, &Tag::new("split", 0, "hello"), hello.into())
                .await
                .unwrap();
            fch.send(&c.leader, &Tag::new("split", 0, "emb"), emb)
                .await
                .unwrap();
            fch
        };
        let (r, _f) = tokio::join!(
            train_leader(
                &lch,
                &cfg,
                &mut leader,
                PartyData {
                    train: &lf,
                    valid: None
                },
                Labels {
                    train: &y,
                    valid: None
                },
                &mut noise,
                None
            ),
            follower
        );
        r.unwrap_err()
    })
}

#[test]
fn malformed_cut_outputs_are_refused_naming_the_peer() {
    let good = vec![0.5f32; 12];
    let mut nan = good.clone();
    nan[4] = f32::NAN;
    let mut huge = good.clone();
    huge[11] = 1e9;
    for (bytes, needle) in [
        (wire::encode_matrix(4, 2, &good[..8]), "expected 72"),
        (wire::encode_matrix(3, 4, &good), "shape 3 × 4"),
        (wire::encode_matrix(4, 3, &nan), "not finite"),
        (wire::encode_matrix(4, 3, &huge), "beyond the bound"),
        (bytes::Bytes::from(vec![0u8; 1 << 20]), "1048576 bytes"),
    ] {
        let e = leader_error(bytes);
        let s = e.to_string();
        assert_eq!(e.code(), "fed.decode", "{s}");
        assert_eq!(e.party(), Some("host"));
        assert!(s.contains(needle) && s.contains("split/0/emb"), "{s}");
    }
}

#[test]
fn malformed_gradients_are_refused_by_the_follower() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for (grad, needle) in [
        (
            wire::encode_matrix(4, 3, &[f32::INFINITY; 12]),
            "not finite",
        ),
        (wire::encode_matrix(4, 2, &[0.0; 8]), "expected 72"),
        (wire::encode_matrix(4, 3, &[-2e4; 12]), "beyond the bound"),
    ] {
        let e = rt.block_on(async {
            let cfg = config(3, 4, 1);
            let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
            let (lch, fch) = (
                net.take(&pid("guest")).unwrap(),
                net.take(&pid("host")).unwrap(),
            );
            let mut follower =
                BottomTower::new(BottomSpec::dense(2, vec![], 3, 0.01), &mut rng(2)).unwrap();
            let before = follower.mlp().params().to_vec();
            let ff = synthetic(8, 2, 0, 1, 1);
            let c = cfg.clone();
            let leader = async move {
                let _ = lch
                    .recv(&pid("host"), &Tag::new("split", 0, "hello"))
                    .await
                    .unwrap();
                let _ = lch
                    .recv(&pid("host"), &Tag::new("split", 0, "emb"))
                    .await
                    .unwrap();
                lch.send(&pid("host"), &Tag::new("split", 0, "grad"), grad)
                    .await
                    .unwrap();
                let _ = c;
                lch
            };
            let (r, _l) = tokio::join!(
                train_follower(
                    &fch,
                    &cfg,
                    &mut follower,
                    PartyData {
                        train: &ff,
                        valid: None
                    },
                    None
                ),
                leader
            );
            assert_eq!(
                follower.mlp().params(),
                before.as_slice(),
                "no update from a bad gradient"
            );
            r.unwrap_err()
        });
        let s = e.to_string();
        assert_eq!(e.party(), Some("guest"), "{s}");
        assert!(s.contains(needle) && s.contains("split/0/grad"), "{s}");
    }
}

#[test]
fn a_follower_with_another_schedule_is_named() {
    let mut other = config(3, 4, 1);
    other.shuffle_seed = 7;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (l, _f) = rt.block_on(async {
        let cfg = config(3, 4, 1);
        let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
        let (lch, fch) = (
            net.take(&pid("guest")).unwrap(),
            net.take(&pid("host")).unwrap(),
        );
        let mut leader = leader_model(
            BottomSpec::dense(2, vec![], 2, 0.01),
            3,
            TopSpec::binary(vec![], 0.01),
            1,
        );
        let mut follower =
            BottomTower::new(BottomSpec::dense(2, vec![], 3, 0.01), &mut rng(2)).unwrap();
        let (lf, ff) = (synthetic(8, 2, 0, 1, 1), synthetic(8, 2, 0, 1, 2));
        let y = vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let leader_side = async {
            let r = train_leader(
                &lch,
                &cfg,
                &mut leader,
                PartyData {
                    train: &lf,
                    valid: None,
                },
                Labels {
                    train: &y,
                    valid: None,
                },
                &mut rng(99),
                None,
            )
            .await;
            if let Err(e) = &r {
                lch.abort(&failure(lch.me(), e)).await;
            }
            r
        };
        tokio::join!(
            leader_side,
            train_follower(
                &fch,
                &other,
                &mut follower,
                PartyData {
                    train: &ff,
                    valid: None
                },
                None
            )
        )
    });
    let e = l.unwrap_err();
    assert_eq!((e.code(), e.party()), ("splitnn.mismatch", Some("host")));
    let s = e.to_string();
    assert!(
        s.contains("'host'") && s.contains("shuffle_seed: it has 7, the leader 42"),
        "{s}"
    );
}

#[test]
fn bad_labels_are_refused_before_training() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cfg = config(3, 4, 1);
    let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
    let lch = net.take(&pid("guest")).unwrap();
    let mut leader = leader_model(
        BottomSpec::dense(2, vec![], 2, 0.01),
        3,
        TopSpec::binary(vec![], 0.01),
        1,
    );
    let lf = synthetic(4, 2, 0, 1, 1);
    let y = vec![0.0, 1.0, 2.0, 1.0];
    let e = rt
        .block_on(train_leader(
            &lch,
            &cfg,
            &mut leader,
            PartyData {
                train: &lf,
                valid: None,
            },
            Labels {
                train: &y,
                valid: None,
            },
            &mut rng(1),
            None,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("target 2 = 2"), "{e}");
}

#[test]
fn configs_are_validated() {
    let mut c = config(3, 4, 1);
    c.staleness = 2;
    assert_eq!(c.validate().unwrap_err().code(), "splitnn.config");
    let mut c = config(0, 4, 1);
    assert!(c.validate().is_err());
    c = config(3, 0, 1);
    assert!(c.validate().is_err());
    c = config(3, 4, 1);
    c.followers.push(FollowerCut {
        party: pid("guest"),
        width: 2,
    });
    assert!(c.validate().is_err());
    let mut t = TableSpec::new(1 << 30, 16, 0.1);
    assert!(t.validate().is_err(), "2^34 values is too many");
    t = TableSpec::new(10, 4, f32::NAN);
    assert!(t.validate().is_err());
    let spec = BottomSpec {
        fields: vec![3],
        ..sparse_spec(1, 1, 10, 2)
    };
    assert!(BottomTower::new(spec, &mut rng(1)).is_err());
}

#[test]
fn batch_order_is_a_shared_permutation() {
    let a = batch_order(1000, 42, 0);
    assert_eq!(a, batch_order(1000, 42, 0));
    assert_ne!(a, batch_order(1000, 42, 1));
    assert_ne!(a, batch_order(1000, 43, 0));
    let mut s = a.clone();
    s.sort_unstable();
    assert_eq!(s, (0..1000).collect::<Vec<_>>());
}

#[test]
fn default_credit_with_a_pipelined_follower() {
    let Some(d) = default_credit() else { return };
    let lr = 1e-3;
    let leader = leader_model(
        BottomSpec::dense(13, vec![128], 64, lr),
        64,
        TopSpec::binary(vec![128], lr),
        7,
    );
    let follower = BottomTower::new(BottomSpec::dense(10, vec![128], 64, lr), &mut rng(8)).unwrap();
    let mut cfg = config(64, 256, 8);
    cfg.eval_every = cfg.steps_per_epoch(d.train_rows) as u64;
    cfg.staleness = 1;
    let run = run_two_party(
        &cfg,
        leader,
        follower,
        d.lt,
        Some(d.lv),
        d.yt,
        Some(d.yv),
        d.ft,
        Some(d.fv),
    )
    .unwrap();
    let aucs: Vec<String> = run
        .report
        .history
        .iter()
        .map(|p| format!("{:.4}", p.val_auc.unwrap()))
        .collect();
    eprintln!(
        "staleness 1: held-out AUC per epoch {} ({:.1} s)",
        aucs.join(" "),
        run.wall_s
    );
    assert_eq!(run.report.history.len(), 8);
    let auc = run.report.history.last().unwrap().val_auc.unwrap();
    assert!(auc >= 0.765, "staleness 1: held-out AUC {auc}");
}

#[test]
fn two_followers_match_the_centralized_model() {
    let rows = 240;
    let lf = synthetic(rows, 3, 1, 30, 50);
    let f1 = synthetic(rows, 2, 2, 30, 51);
    let f2 = synthetic(rows, 4, 0, 1, 52);
    let y: Vec<f32> = (0..rows).map(|i| ((i * 5) % 7 < 3) as u8 as f32).collect();
    let leader = leader_model(
        sparse_spec(3, 1, 40, 4),
        5 + 3,
        TopSpec::binary(vec![6], 0.05),
        60,
    );
    let b1 = BottomTower::new(sparse_spec(2, 2, 40, 5), &mut rng(61)).unwrap();
    let b2 = BottomTower::new(BottomSpec::dense(4, vec![6], 3, 0.01), &mut rng(62)).unwrap();
    let mut cfg = SplitConfig::new(
        "split",
        pid("guest"),
        vec![
            FollowerCut {
                party: pid("host-a"),
                width: 5,
            },
            FollowerCut {
                party: pid("host-b"),
                width: 3,
            },
        ],
        32,
        2,
        9,
    );
    cfg.eval_every = 4;
    let idx_t: Vec<usize> = (0..180).collect();
    let idx_v: Vec<usize> = (180..rows).collect();
    let sel = |f: &Features, i: &[usize]| f.select(i).unwrap();
    let (lt, lv, t1, v1, t2, v2) = (
        sel(&lf, &idx_t),
        sel(&lf, &idx_v),
        sel(&f1, &idx_t),
        sel(&f1, &idx_v),
        sel(&f2, &idx_t),
        sel(&f2, &idx_v),
    );
    let (yt, yv) = (y[..180].to_vec(), y[180..].to_vec());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (report, m1, m2) = rt.block_on(async {
        let parties = [pid("guest"), pid("host-a"), pid("host-b")];
        let mut net = MemNetwork::new("job", &parties);
        let (lch, c1, c2) = (
            net.take(&parties[0]).unwrap(),
            net.take(&parties[1]).unwrap(),
            net.take(&parties[2]).unwrap(),
        );
        let (mut l, mut m1, mut m2) = (leader.clone(), b1.clone(), b2.clone());
        let mut noise = rng(1);
        let (r, a, b) = tokio::join!(
            train_leader(
                &lch,
                &cfg,
                &mut l,
                PartyData {
                    train: &lt,
                    valid: Some(&lv)
                },
                Labels {
                    train: &yt,
                    valid: Some(&yv)
                },
                &mut noise,
                None
            ),
            train_follower(
                &c1,
                &cfg,
                &mut m1,
                PartyData {
                    train: &t1,
                    valid: Some(&v1)
                },
                None
            ),
            train_follower(
                &c2,
                &cfg,
                &mut m2,
                PartyData {
                    train: &t2,
                    valid: Some(&v2)
                },
                None
            ),
        );
        a.unwrap();
        b.unwrap();
        (r.unwrap(), m1, m2)
    });
    assert_eq!(report.leak_auc.len(), 2);

    let (mut cl, mut cf) = (leader, vec![b1, b2]);
    let central = train_centralized(
        &cfg,
        &mut cl,
        &mut cf,
        CentralData {
            leader: &lt,
            followers: &[&t1, &t2],
        },
        &yt,
        Some((
            CentralData {
                leader: &lv,
                followers: &[&v1, &v2],
            },
            &yv,
        )),
    )
    .unwrap();
    assert_eq!(report.history.len(), central.history.len());
    for (a, b) in report.history.iter().zip(&central.history) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-5, "{a:?} {b:?}");
        assert!(
            (a.val_auc.unwrap() - b.val_auc.unwrap()).abs() < 1e-4,
            "{a:?} {b:?}"
        );
    }
    assert!(max_rel(m1.mlp().params(), cf[0].mlp().params()) < 1e-4);
    assert!(max_rel(m2.mlp().params(), cf[1].mlp().params()) < 1e-4);
}

/// The 200-row Criteo sample: the leader holds the label and I1..I13
/// (`ln(1 + max(x, 0))`, blank = 0), the follower C1..C26 hashed with
/// [`hash_str`] into one table (blank = the empty string's id).
#[test]
fn criteo_sample_sparse_follower_trains_and_matches_centralized() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/ctr/criteo_sample.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the data ships with the repository)",
            path.display()
        )
    });
    let (mut y, mut dense, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 40, "{line}");
        y.push(cols[0].parse::<f32>().unwrap());
        for c in &cols[1..14] {
            let v: f32 = if c.is_empty() {
                0.0
            } else {
                c.parse().unwrap()
            };
            dense.push(v.max(0.0).ln_1p());
        }
        ids.extend(cols[14..].iter().map(|c| hash_str(c)));
    }
    let n = y.len();
    let lf = Features::dense(n, 13, dense).unwrap();
    let ff = Features::new(n, 0, Vec::new(), 26, ids).unwrap();
    let follower_spec = BottomSpec {
        dense: 0,
        tables: vec![TableSpec::new(10_000, 8, 0.05)],
        fields: vec![0; 26],
        hidden: vec![32],
        output: 16,
        activation: Activation::Relu,
        cut_activation: Some(Activation::Relu),
        optimizer: OptimizerConfig::adam(1e-3),
        pooling: Pooling::Mean,
    };
    let leader = leader_model(
        BottomSpec::dense(13, vec![], 8, 1e-3),
        16,
        TopSpec::binary(vec![32], 1e-3),
        70,
    );
    let follower = BottomTower::new(follower_spec, &mut rng(71)).unwrap();
    let mut cfg = config(16, 32, 20);
    cfg.eval_every = 7 * 5;
    let run = run_two_party(
        &cfg,
        leader.clone(),
        follower.clone(),
        lf.clone(),
        Some(lf.clone()),
        y.clone(),
        Some(y.clone()),
        ff.clone(),
        Some(ff.clone()),
    )
    .unwrap();
    let (mut cl, mut cf) = (leader, vec![follower]);
    let central = train_centralized(
        &cfg,
        &mut cl,
        &mut cf,
        CentralData {
            leader: &lf,
            followers: &[&ff],
        },
        &y,
        Some((
            CentralData {
                leader: &lf,
                followers: &[&ff],
            },
            &y,
        )),
    )
    .unwrap();
    let h = &run.report.history;
    eprintln!(
        "criteo sample (train = eval, 200 rows): loss {:.4} → {:.4}, train AUC {:.4} → {:.4}",
        h[0].val_loss.unwrap(),
        h.last().unwrap().val_loss.unwrap(),
        h[0].val_auc.unwrap(),
        h.last().unwrap().val_auc.unwrap()
    );
    assert!(h.last().unwrap().val_loss.unwrap() < h[0].val_loss.unwrap());
    for (a, b) in h.iter().zip(&central.history) {
        assert!(
            (a.val_auc.unwrap() - b.val_auc.unwrap()).abs() < 1e-4,
            "{a:?} {b:?}"
        );
    }
    for (a, b) in run.follower.tables().iter().zip(cf[0].tables()) {
        assert!(max_rel(a.weights(), b.weights()) < 1e-4);
    }
}

/// Keeps checkpoints in memory; fails the save of `fail_at`.
#[derive(Default)]
struct MemSink {
    pending: Vec<(u64, PartyState)>,
    committed: Option<(u64, PartyState)>,
    fail_at: Option<u64>,
    commits: Vec<u64>,
}

impl CheckpointSink for MemSink {
    fn save(&mut self, step: u64, state: PartyState) -> Result<(), SplitError> {
        if self.fail_at == Some(step) {
            return Err(SplitError::Data(format!("disk full at step {step}")));
        }
        self.pending.push((step, state));
        Ok(())
    }

    fn commit(&mut self, step: u64) -> Result<(), SplitError> {
        let i = self.pending.iter().position(|(s, _)| *s == step).unwrap();
        self.committed = Some(self.pending.remove(i));
        self.commits.push(step);
        Ok(())
    }
}

struct CkptRun {
    leader: Result<(LeaderModel, TrainReport), SplitError>,
    follower: Result<BottomTower, SplitError>,
}

#[allow(clippy::too_many_arguments)]
fn run_with_sinks(
    cfg: &SplitConfig,
    leader: LeaderModel,
    follower: BottomTower,
    (lt, lv, ft, fv): (&Features, &Features, &Features, &Features),
    (yt, yv): (&[f32], &[f32]),
    lsink: &mut MemSink,
    fsink: &mut MemSink,
) -> CkptRun {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut net = MemNetwork::new("job", &[pid("guest"), pid("host")]);
        let (lch, fch) = (
            net.take(&pid("guest")).unwrap(),
            net.take(&pid("host")).unwrap(),
        );
        let (mut l, mut f) = (leader, follower);
        let mut noise = rng(5);
        let lead = async {
            let r = train_leader(
                &lch,
                cfg,
                &mut l,
                PartyData {
                    train: lt,
                    valid: Some(lv),
                },
                Labels {
                    train: yt,
                    valid: Some(yv),
                },
                &mut noise,
                Some(lsink),
            )
            .await;
            if let Err(e) = &r {
                lch.abort(&failure(lch.me(), e)).await;
            }
            r
        };
        let follow = async {
            let r = train_follower(
                &fch,
                cfg,
                &mut f,
                PartyData {
                    train: ft,
                    valid: Some(fv),
                },
                Some(fsink),
            )
            .await;
            if let Err(e) = &r {
                fch.abort(&failure(fch.me(), e)).await;
            }
            r
        };
        let (a, b) = tokio::join!(lead, follow);
        CkptRun {
            leader: a.map(|rep| (l, rep)),
            follower: b.map(|_| f),
        }
    })
}

#[test]
fn a_run_resumed_from_the_committed_checkpoint_equals_an_uninterrupted_one() {
    let (lf, ff) = (synthetic(260, 3, 2, 40, 80), synthetic(260, 2, 3, 40, 81));
    let y: Vec<f32> = (0..260).map(|i| ((i * 3) % 5 < 2) as u8 as f32).collect();
    let split = |f: &Features| {
        (
            f.select(&(0..200).collect::<Vec<_>>()).unwrap(),
            f.select(&(200..260).collect::<Vec<_>>()).unwrap(),
        )
    };
    let ((lt, lv), (ft, fv)) = (split(&lf), split(&ff));
    let (yt, yv) = (&y[..200], &y[200..]);
    let leader = leader_model(
        sparse_spec(3, 2, 64, 4),
        5,
        TopSpec::binary(vec![6], 0.05),
        90,
    );
    let mut follower_spec = sparse_spec(2, 3, 64, 5);
    follower_spec.optimizer = OptimizerConfig::adam(0.01);
    let follower = BottomTower::new(follower_spec, &mut rng(91)).unwrap();
    let mut cfg = config(5, 32, 3);
    cfg.eval_every = 7;
    cfg.checkpoint_every = 7;
    let data = (&lt, &lv, &ft, &fv);

    // Uninterrupted.
    let (mut ls, mut fs) = (MemSink::default(), MemSink::default());
    let full = run_with_sinks(
        &cfg,
        leader.clone(),
        follower.clone(),
        data,
        (yt, yv),
        &mut ls,
        &mut fs,
    );
    let (full_leader, full_report) = full.leader.unwrap();
    let full_follower = full.follower.unwrap();
    assert_eq!(
        (ls.commits.clone(), fs.commits.clone()),
        (vec![7, 14], vec![7, 14])
    );

    // The follower's disk fails at step 14: both stop, step 7 stays committed.
    let (mut ls, mut fs) = (
        MemSink::default(),
        MemSink {
            fail_at: Some(14),
            ..MemSink::default()
        },
    );
    let crashed = run_with_sinks(&cfg, leader, follower, data, (yt, yv), &mut ls, &mut fs);
    let fe = crashed.follower.unwrap_err();
    assert!(fe.to_string().contains("disk full at step 14"), "{fe}");
    let le = crashed.leader.unwrap_err();
    assert_eq!(le.party(), Some("host"), "{le}");
    assert_eq!((ls.commits.clone(), fs.commits.clone()), (vec![7], vec![7]));

    // Resume both from the committed step-7 states.
    let Some((7, PartyState::Leader { bottom, top })) = ls.committed.take() else {
        panic!("leader checkpoint")
    };
    let Some((7, PartyState::Follower(fstate))) = fs.committed.take() else {
        panic!("follower checkpoint")
    };
    // States survive a serde round trip.
    let fstate: BottomState =
        serde_json::from_str(&serde_json::to_string(&fstate).unwrap()).unwrap();
    let leader = LeaderModel {
        bottom: Some(BottomTower::from_state(bottom.unwrap()).unwrap()),
        top: TopTower::from_state(top).unwrap(),
    };
    let follower = BottomTower::from_state(fstate).unwrap();
    cfg.resume_from = 7;
    let (mut ls, mut fs) = (MemSink::default(), MemSink::default());
    let resumed = run_with_sinks(&cfg, leader, follower, data, (yt, yv), &mut ls, &mut fs);
    let (res_leader, res_report) = resumed.leader.unwrap();
    let res_follower = resumed.follower.unwrap();
    assert_eq!(ls.commits, vec![14]);
    assert_eq!(res_report.steps, 21);
    assert_eq!(res_report.history, full_report.history[1..].to_vec());
    assert_eq!(res_follower.mlp().params(), full_follower.mlp().params());
    for (a, b) in res_follower.tables().iter().zip(full_follower.tables()) {
        assert_eq!(a.weights(), b.weights());
        assert_eq!(a.state(), b.state());
    }
    assert_eq!(
        res_leader.top.mlp().params(),
        full_leader.top.mlp().params()
    );
}

#[test]
fn multi_valued_fields_are_pooled_and_update_their_rows() {
    // Row 0: field 0 = {11, 12, 13}, field 1 = {}; row 1: {14}, {15, 15}.
    let f = Features::with_bags(
        2,
        1,
        vec![0.5, -0.5],
        2,
        vec![0, 3, 3, 4, 6],
        vec![11, 12, 13, 14, 15, 15],
    )
    .unwrap();
    assert_eq!(f.bag(0, 0), &[11, 12, 13]);
    assert!(f.bag(0, 1).is_empty());
    assert_eq!(f.select(&[1]).unwrap().bag(0, 1), &[15, 15]);
    for pooling in [Pooling::Mean, Pooling::Sum] {
        let spec = BottomSpec {
            pooling,
            fields: vec![0, 0],
            tables: vec![TableSpec::new(1000, 4, 0.1)],
            ..sparse_spec(1, 2, 1000, 3)
        };
        let mut tower = BottomTower::new(spec, &mut rng(5)).unwrap();
        let g = tower.gather(&f, &[0, 1]).unwrap();
        let width = 4 + 4 + 1;
        // Row 0, field 0 is the pooled rows of its three ids.
        let rows0: Vec<usize> = g.unique_rows()[0][..3].to_vec();
        let t = &tower.tables()[0];
        let w = if pooling == Pooling::Mean {
            1.0 / 3.0
        } else {
            1.0
        };
        for j in 0..4 {
            let want: f32 = rows0.iter().map(|&r| w * t.row(r).unwrap()[j]).sum();
            assert!((g.x[j] - want).abs() < 1e-6, "{pooling:?}");
            assert_eq!(g.x[4 + j], 0.0, "an empty bag embeds as zeros");
        }
        assert_eq!(g.x[8], 0.5);
        // Row 1, field 1 holds id 15 twice: mean = the row, sum = twice it.
        let r15 = *g.unique_rows()[0].last().unwrap();
        let k = if pooling == Pooling::Mean { 1.0 } else { 2.0 };
        assert!((g.x[width + 4] - k * t.row(r15).unwrap()[0]).abs() < 1e-6);
        // A step touches exactly the bags' rows.
        let before = tower.clone();
        let touched: Vec<usize> = g.unique_rows()[0].to_vec();
        assert_eq!(touched.len(), 5);
        let pass = tower.forward(&f, &[0, 1]).unwrap();
        tower
            .backward(pass, &[0.3, -0.2, 0.1, 0.05, 0.4, -0.1])
            .unwrap();
        let mut changed = 0;
        for r in 0..1000 {
            let same = tower.tables()[0].row(r) == before.tables()[0].row(r);
            if touched.contains(&r) {
                changed += usize::from(!same);
            } else {
                assert!(same, "{pooling:?} row {r} is not in the batch but changed");
            }
        }
        // (A touched row keeps its values if its gradient is zero, e.g.
        // behind a dead ReLU.)
        assert!(changed > 0, "{pooling:?}");
    }
    assert!(Features::with_bags(1, 0, vec![], 2, vec![0, 2, 1], vec![1, 2]).is_err());
    assert!(Features::with_bags(1, 0, vec![], 2, vec![0, 1, 3], vec![1, 2]).is_err());
}

#[test]
fn pooled_gradients_equal_the_one_graph_model_through_the_protocol() {
    // Bags of 0–3 ids per field, mean pooling, against the centralized twin.
    let mut r = rng(100);
    let (rows, fields) = (120, 2);
    let mut offsets = vec![0];
    let mut ids = Vec::new();
    for _ in 0..rows * fields {
        for _ in 0..(r.next_u32() % 4) {
            ids.push(r.next_u64() % 50);
        }
        offsets.push(ids.len());
    }
    let dense = uniform(&mut r, rows * 2);
    let ff = Features::with_bags(rows, 2, dense, fields, offsets, ids).unwrap();
    let lf = synthetic(rows, 3, 0, 1, 101);
    let y: Vec<f32> = (0..rows).map(|i| (i % 4 == 0) as u8 as f32).collect();
    let leader = leader_model(
        BottomSpec::dense(3, vec![4], 3, 0.01),
        5,
        TopSpec::binary(vec![6], 0.05),
        102,
    );
    let follower = BottomTower::new(sparse_spec(2, 2, 64, 5), &mut rng(103)).unwrap();
    let cfg = config(5, 16, 2);
    let run = run_two_party(
        &cfg,
        leader.clone(),
        follower.clone(),
        lf.clone(),
        None,
        y.clone(),
        None,
        ff.clone(),
        None,
    )
    .unwrap();
    let (mut cl, mut cf) = (leader, vec![follower]);
    train_centralized(
        &cfg,
        &mut cl,
        &mut cf,
        CentralData {
            leader: &lf,
            followers: &[&ff],
        },
        &y,
        None,
    )
    .unwrap();
    assert!(max_rel(run.follower.mlp().params(), cf[0].mlp().params()) < 1e-5);
    for (a, b) in run.follower.tables().iter().zip(cf[0].tables()) {
        assert!(max_rel(a.weights(), b.weights()) < 1e-5);
    }
}
