//! Strategies (FedAvg/FedProx, FedAdam/FedYogi/FedAdagrad, SCAFFOLD), round
//! bookkeeping, client helpers, checkpoints, the scheduler and the config.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use fedra_horizontal::client::{
    fedprox_correct_gradient, model_delta, scaffold_correct_gradient, scaffold_update_control,
};
use fedra_horizontal::{
    AggregationRule, Aggregator, ClientFailure, ClientId, ClientInstructions, ClientResult,
    ClientScheduler, FedAvg, FedOpt, HorizontalConfig, HorizontalError, SamplingConfig, Scaffold,
    ServerOptimizer, Strategy, StrategyKind, StrategyState, partition_valid, round_rng,
};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fn ids(names: &[&str]) -> Vec<ClientId> {
    names.iter().map(|&n| ClientId::from(n)).collect()
}

fn sampling(min: usize) -> SamplingConfig {
    SamplingConfig {
        fraction: 1.0,
        min_clients: min,
        min_available: min,
        min_results: min,
    }
}

fn scheduler(min: usize) -> ClientScheduler {
    ClientScheduler::new(sampling(min)).unwrap()
}

fn assert_close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-6 * (1.0 + w.abs()),
            "got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn fedavg_weighted_mean_exact() {
    let mut s = FedAvg::new(3, scheduler(2), Aggregator::default()).unwrap();
    let plan = s
        .configure_round(1, &ids(&["b", "a"]), &mut round_rng(1, 1))
        .unwrap();
    assert_eq!(plan.clients, ids(&["a", "b"]));
    assert_eq!(plan.instructions, ClientInstructions::Plain);
    let results = vec![
        ClientResult::new("a", 10, vec![1.0, 2.0, -4.0]),
        ClientResult::new("b", 30, vec![5.0, 2.0, 0.0]),
    ];
    let g = s.aggregate(1, &[1.0, 1.0, 1.0], results, vec![]).unwrap();
    // (10·u_a + 30·u_b) / 40 = (4, 2, −1), plus the global.
    assert_eq!(g, vec![5.0, 3.0, 0.0]);
    assert_eq!(s.state().last_round, Some(1));
}

#[test]
fn constructors_check_rule_against_min_results() {
    let krum = Aggregator::new(AggregationRule::Krum { f: 2 }, None).unwrap();
    let e = FedAvg::new(3, scheduler(6), krum).unwrap_err();
    match e {
        HorizontalError::Config { field, reason } => {
            assert_eq!(field, "sampling.min_results");
            assert!(
                reason.contains("at least 7") && reason.contains("got 6"),
                "{reason}"
            );
        }
        e => panic!("{e}"),
    }
    assert!(FedAvg::new(3, scheduler(7), krum).is_ok());
    let adagrad = ServerOptimizer::Adagrad {
        eta: 0.1,
        beta1: 0.0,
        tau: 1e-3,
    };
    let trimmed = Aggregator::new(AggregationRule::TrimmedMean { trim: 2 }, None).unwrap();
    assert!(FedOpt::new(3, scheduler(4), trimmed, adagrad).is_err());
    assert!(FedOpt::new(3, scheduler(5), trimmed, adagrad).is_ok());
}

#[test]
fn fedprox_sends_mu_and_client_term() {
    let mut s = FedAvg::fedprox(2, scheduler(1), Aggregator::default(), 0.5).unwrap();
    assert_eq!(s.kind(), StrategyKind::FedProx);
    let plan = s
        .configure_round(1, &ids(&["a"]), &mut round_rng(0, 1))
        .unwrap();
    assert_eq!(plan.instructions, ClientInstructions::FedProx { mu: 0.5 });
    let mut grad = vec![1.0f32, -1.0];
    fedprox_correct_gradient(&mut grad, &[3.0, 0.0], &[1.0, 2.0], 0.5).unwrap();
    assert_eq!(grad, vec![2.0, -2.0]);
    assert!(FedAvg::fedprox(2, scheduler(1), Aggregator::default(), -1.0).is_err());
    assert_eq!(
        model_delta(&[3.0, 0.5], &[1.0, 2.0]).unwrap(),
        vec![2.0, -1.5]
    );
}

fn one_step(opt: ServerOptimizer, deltas: &[[f32; 2]]) -> (Vec<f32>, FedOpt) {
    let mut s = FedOpt::new(2, scheduler(2), Aggregator::default(), opt).unwrap();
    let mut global = vec![1.0f32, -2.0];
    for (r, d) in deltas.iter().enumerate() {
        let round = r as u32 + 1;
        s.configure_round(round, &ids(&["a", "b"]), &mut round_rng(0, round))
            .unwrap();
        // Two clients, same delta: the mean is `d`.
        let results = vec![
            ClientResult::new("a", 5, d.to_vec()),
            ClientResult::new("b", 7, d.to_vec()),
        ];
        global = s.aggregate(round, &global, results, vec![]).unwrap();
    }
    (global, s)
}

#[test]
fn fedadam_one_step_hand_computed() {
    let opt = ServerOptimizer::Adam {
        eta: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };
    let (g, s) = one_step(opt, &[[0.5, -1.0]]);
    // m = 0.1·Δ = (0.05, −0.1); v = 0.99·τ² + 0.01·Δ² = (0.00250099, 0.01000099)
    // x = x0 + 0.1·m / (√v + 1e-3)
    assert_close(&g, &[1.098_020_190_1, -2.099_005_048_9]);
    let (m, v) = s.moments();
    assert_close(m, &[0.05, -0.1]);
    assert_close(v, &[0.002_500_99, 0.010_000_99]);
}

#[test]
fn fedyogi_two_steps_hand_computed() {
    let opt = ServerOptimizer::Yogi {
        eta: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };
    // Step 1: v0 = τ² < Δ² so v grows: v = τ² + 0.01·Δ².
    let (g, s) = one_step(opt, &[[0.5, -1.0]]);
    assert_close(&g, &[1.098_019_998_0, -2.099_004_999_9]);
    assert_close(s.moments().1, &[0.002_501, 0.010_001]);
    // Step 2 with a small Δ: v > Δ² so v shrinks: v = v − 0.01·Δ².
    let (g, s) = one_step(opt, &[[0.5, -1.0], [0.01, -0.02]]);
    assert_close(&g, &[1.188_216_038_1, -2.190_107_625_2]);
    assert_close(s.moments().1, &[0.002_500, 0.009_997]);
}

#[test]
fn fedadagrad_one_step_hand_computed() {
    let opt = ServerOptimizer::Adagrad {
        eta: 0.1,
        beta1: 0.0,
        tau: 1e-3,
    };
    // m = Δ; v = τ² + Δ²; x = x0 + 0.1·Δ / (√v + 1e-3).
    let (g, _) = one_step(opt, &[[0.5, -1.0]]);
    assert_close(&g, &[1.099_800_2, -2.099_900_05]);
}

#[test]
fn scaffold_update_formula() {
    // 4 available, 2 selected per round, N = available = 4.
    let cfg = SamplingConfig {
        fraction: 0.5,
        min_clients: 2,
        min_available: 4,
        min_results: 2,
    };
    let sched = ClientScheduler::new(cfg).unwrap();
    let mut s = Scaffold::new(2, sched, 2.0, None).unwrap();
    let avail = ids(&["a", "b", "c", "d"]);
    let plan = s.configure_round(1, &avail, &mut round_rng(3, 1)).unwrap();
    assert_eq!(plan.clients.len(), 2);
    assert_eq!(
        plan.instructions,
        ClientInstructions::Scaffold {
            server_control: vec![0.0, 0.0]
        }
    );
    let (p, q) = (plan.clients[0].clone(), plan.clients[1].clone());
    let results = vec![
        ClientResult::new(p.clone(), 1, vec![1.0, 2.0]).with_control_delta(vec![4.0, 0.0]),
        // num_examples does not weigh in SCAFFOLD.
        ClientResult::new(q.clone(), 100, vec![3.0, -2.0]).with_control_delta(vec![0.0, -8.0]),
    ];
    let g = s.aggregate(1, &[10.0, 10.0], results, vec![]).unwrap();
    // x + 2·mean(Δy) = (10 + 2·2, 10 + 2·0)
    assert_eq!(g, vec![14.0, 10.0]);
    // c + (2/4)·mean(Δc) = (0.5·2, 0.5·(−4))
    assert_eq!(s.control(), &[1.0, -2.0]);
    let plan = s.configure_round(2, &avail, &mut round_rng(3, 2)).unwrap();
    assert_eq!(
        plan.instructions,
        ClientInstructions::Scaffold {
            server_control: vec![1.0, -2.0]
        }
    );
    // Missing Δc is an error.
    let sel = plan.clients.clone();
    let results = vec![
        ClientResult::new(sel[0].clone(), 1, vec![0.0, 0.0]).with_control_delta(vec![0.0, 0.0]),
        ClientResult::new(sel[1].clone(), 1, vec![0.0, 0.0]),
    ];
    let e = s.aggregate(2, &g, results, vec![]).unwrap_err();
    assert_eq!(
        e,
        HorizontalError::MissingControlDelta {
            client: sel[1].clone()
        }
    );
    assert_eq!(s.control(), &[1.0, -2.0], "state unchanged on error");
}

#[test]
fn scaffold_client_helpers() {
    // g − c_i + c
    let mut g = vec![1.0f32, 1.0];
    scaffold_correct_gradient(&mut g, &[0.5, -1.0], &[2.0, 0.0]).unwrap();
    assert_eq!(g, vec![2.5, 2.0]);
    // Option II: c_i⁺ = c_i − c + (x − y)/(K·η_l), K = 4, η_l = 0.5.
    let mut ci = vec![0.5f32, -1.0];
    let dc =
        scaffold_update_control(&mut ci, &[2.0, 0.0], &[1.0, 1.0], &[-1.0, 3.0], 4, 0.5).unwrap();
    assert_eq!(ci, vec![0.5 - 2.0 + 1.0, -1.0 - 0.0 - 1.0]);
    assert_eq!(dc, vec![-1.0, -1.0]);
    assert!(scaffold_update_control(&mut ci, &[0.0; 2], &[0.0; 2], &[0.0; 2], 0, 0.5).is_err());
    assert!(scaffold_correct_gradient(&mut g, &[0.0], &[0.0, 0.0]).is_err());
}

#[test]
fn min_results_names_failed_and_missing() {
    let cfg = SamplingConfig {
        fraction: 1.0,
        min_clients: 3,
        min_available: 3,
        min_results: 2,
    };
    let mut s = FedAvg::new(1, ClientScheduler::new(cfg).unwrap(), Aggregator::default()).unwrap();
    s.configure_round(1, &ids(&["a", "b", "c"]), &mut round_rng(0, 1))
        .unwrap();
    let e = s
        .aggregate(
            1,
            &[0.0],
            vec![ClientResult::new("a", 1, vec![1.0])],
            vec![ClientFailure::new("b", "timeout")],
        )
        .unwrap_err();
    assert_eq!(
        e,
        HorizontalError::TooFewResults {
            round: 1,
            received: 1,
            required: 2,
            failed: ids(&["b"]),
            missing: ids(&["c"]),
        }
    );
    assert_eq!(e.code(), "horizontal.too_few_results");
    assert!(e.to_string().contains("failed: [b]; missing: [c]"), "{e}");
    // Enough results with a failure is fine.
    let g = s
        .aggregate(
            1,
            &[0.0],
            vec![
                ClientResult::new("a", 1, vec![1.0]),
                ClientResult::new("c", 1, vec![3.0]),
            ],
            vec![ClientFailure::new("b", "timeout")],
        )
        .unwrap();
    assert_eq!(g, vec![2.0]);
}

#[test]
fn round_and_result_checks() {
    let mut s = FedAvg::new(2, scheduler(2), Aggregator::default()).unwrap();
    let ok = |c: &str| ClientResult::new(c, 1, vec![0.0, 0.0]);
    let e = s.aggregate(1, &[0.0; 2], vec![ok("a"), ok("b")], vec![]);
    assert_eq!(e.unwrap_err().code(), "horizontal.round_not_configured");
    s.configure_round(1, &ids(&["a", "b"]), &mut round_rng(0, 1))
        .unwrap();
    let cases: Vec<(Vec<ClientResult>, &[f32], &str)> = vec![
        (
            vec![ok("a"), ok("x")],
            &[0.0; 2],
            "horizontal.unexpected_client",
        ),
        (
            vec![ok("a"), ok("a")],
            &[0.0; 2],
            "horizontal.duplicate_client",
        ),
        (
            vec![ok("a"), ok("b")],
            &[0.0; 3],
            "horizontal.dimension_mismatch",
        ),
        (
            vec![ok("a"), ClientResult::new("b", 1, vec![0.0])],
            &[0.0; 2],
            "horizontal.dimension_mismatch",
        ),
        (
            vec![ok("a"), ClientResult::new("b", 1, vec![f32::NAN, 0.0])],
            &[0.0; 2],
            "horizontal.non_finite",
        ),
        (
            vec![ok("a"), ClientResult::new("b", 0, vec![0.0, 0.0])],
            &[0.0; 2],
            "horizontal.zero_examples",
        ),
    ];
    for (results, global, code) in cases {
        assert_eq!(
            s.aggregate(1, global, results, vec![]).unwrap_err().code(),
            code
        );
    }
    s.aggregate(1, &[0.0; 2], vec![ok("a"), ok("b")], vec![])
        .unwrap();
    let e = s
        .configure_round(1, &ids(&["a", "b"]), &mut round_rng(0, 1))
        .unwrap_err();
    assert_eq!(e, HorizontalError::StaleRound { round: 1, last: 1 });

    // partition_valid turns bad results into failures.
    let (good, bad) = partition_valid(
        vec![ok("a"), ClientResult::new("b", 1, vec![f32::INFINITY, 0.0])],
        2,
    );
    assert_eq!(good.len(), 1);
    assert_eq!(bad[0].client, ClientId::from("b"));
    assert!(bad[0].reason.contains("non-finite"), "{}", bad[0].reason);
}

/// Deterministic pseudo-updates for round `r`, client `k`.
fn fake_delta(r: u32, k: usize, d: usize) -> Vec<f32> {
    (0..d)
        .map(|j| ((r as f32 * 0.37 + k as f32 * 1.3 + j as f32 * 0.11).sin()) * 0.1)
        .collect()
}

/// Runs rounds `from..=to` of `strategy` with `seed` over 6 clients.
fn run(
    strategy: &mut dyn Strategy,
    seed: u64,
    from: u32,
    to: u32,
    mut global: Vec<f32>,
) -> Vec<f32> {
    let avail = ids(&["c0", "c1", "c2", "c3", "c4", "c5"]);
    for r in from..=to {
        let plan = strategy
            .configure_round(r, &avail, &mut round_rng(seed, r))
            .unwrap();
        let results = plan
            .clients
            .iter()
            .map(|c| {
                let k: usize = c.as_str()[1..].parse().unwrap();
                let mut res =
                    ClientResult::new(c.clone(), 10 + k as u64, fake_delta(r, k, global.len()));
                if let ClientInstructions::Scaffold { .. } = plan.instructions {
                    res = res.with_control_delta(fake_delta(r + 100, k, global.len()));
                }
                res
            })
            .collect();
        global = strategy.aggregate(r, &global, results, vec![]).unwrap();
    }
    global
}

#[test]
fn checkpoint_resume_gives_identical_model() {
    let configs = [
        r#"strategy = { kind = "fed_adam", eta = 0.1, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 }"#,
        r#"strategy = { kind = "fed_yogi", eta = 0.05, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 }"#,
        r#"strategy = { kind = "fed_adagrad", eta = 0.1, beta1 = 0.5, tau = 1e-3 }"#,
        r#"strategy = { kind = "scaffold", eta_g = 1.0 }"#,
        r#"strategy = { kind = "fed_prox", mu = 0.1 }
           aggregation = { rule = { kind = "trimmed_mean", trim = 1 } }"#,
    ];
    for body in configs {
        let toml_src = format!(
            "seed = 11\nsampling = {{ fraction = 0.6, min_clients = 3, min_available = 4, min_results = 3 }}\n{body}"
        );
        let cfg: HorizontalConfig = toml::from_str(&toml_src).unwrap();
        let d = 257;
        let mut whole = cfg.build(d).unwrap();
        let expect = run(whole.as_mut(), cfg.seed, 1, 8, vec![0.5; d]);

        let mut first = cfg.build(d).unwrap();
        let mid = run(first.as_mut(), cfg.seed, 1, 4, vec![0.5; d]);
        let saved = serde_json::to_string(&first.state()).unwrap();
        drop(first); // the server dies

        let mut resumed = cfg.build(d).unwrap();
        let state: StrategyState = serde_json::from_str(&saved).unwrap();
        resumed.restore(state).unwrap();
        let got = run(resumed.as_mut(), cfg.seed, 5, 8, mid);
        assert_eq!(got, expect, "{body}");
        assert_eq!(resumed.state(), whole.state(), "{body}");
        // Resuming must not go back in time.
        let e = resumed
            .configure_round(8, &ids(&["c0", "c1", "c2", "c3"]), &mut round_rng(11, 8))
            .unwrap_err();
        assert_eq!(e.code(), "horizontal.stale_round");
    }
}

#[test]
fn restore_rejects_foreign_state() {
    let adam = ServerOptimizer::Adam {
        eta: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };
    let s = FedOpt::new(3, scheduler(2), Aggregator::default(), adam).unwrap();
    let mut avg = FedAvg::new(3, scheduler(2), Aggregator::default()).unwrap();
    let e = avg.restore(s.state()).unwrap_err();
    assert_eq!(e.code(), "horizontal.state_mismatch");
    let mut other = FedOpt::new(4, scheduler(2), Aggregator::default(), adam).unwrap();
    assert!(other.restore(s.state()).is_err());
    let mut st = s.state();
    if let fedra_horizontal::ServerState::Adaptive { v, .. } = &mut st.server {
        v[1] = -1.0;
    }
    let mut same = FedOpt::new(3, scheduler(2), Aggregator::default(), adam).unwrap();
    assert!(same.restore(st).is_err());
}

#[test]
fn scheduler_fraction_and_minimums() {
    let s = ClientScheduler::new(SamplingConfig {
        fraction: 0.3,
        min_clients: 2,
        min_available: 3,
        min_results: 2,
    })
    .unwrap();
    assert_eq!(s.sample_size(10), 3); // 0.3·10 is 3, not 4
    assert_eq!(s.sample_size(11), 4); // ⌈3.3⌉
    assert_eq!(s.sample_size(4), 2); // ⌈1.2⌉ = 2 ≥ min
    assert_eq!(s.sample_size(3), 2); // ⌈0.9⌉ = 1 → min_clients
    let avail: Vec<ClientId> = (0..10).map(|i| ClientId::new(format!("c{i}"))).collect();
    let sel = s.select(&avail, &mut round_rng(1, 1)).unwrap();
    assert_eq!(sel.len(), 3);
    assert!(sel.windows(2).all(|w| w[0] < w[1]));
    let e = s.select(&avail[..2], &mut round_rng(1, 1)).unwrap_err();
    assert_eq!(
        e,
        HorizontalError::NotEnoughClients {
            available: 2,
            required: 3
        }
    );
    let mut dup = avail.clone();
    dup.push(ClientId::from("c4"));
    assert_eq!(
        s.select(&dup, &mut round_rng(1, 1)).unwrap_err().code(),
        "horizontal.duplicate_client"
    );
}

#[test]
fn scheduler_is_reproducible_and_uniform() {
    let s = ClientScheduler::new(SamplingConfig {
        fraction: 0.2,
        min_clients: 1,
        min_available: 1,
        min_results: 1,
    })
    .unwrap();
    let avail: Vec<ClientId> = (0..20).map(|i| ClientId::new(format!("c{i:02}"))).collect();
    let mut reversed = avail.clone();
    reversed.reverse();
    let mut counts = [0u32; 20];
    let rounds = 2000;
    let mut distinct_rounds = std::collections::BTreeSet::new();
    for r in 1..=rounds {
        let a = s.select(&avail, &mut round_rng(99, r)).unwrap();
        // Same (seed, round) → same choice, whatever the order of arrival.
        assert_eq!(a, s.select(&reversed, &mut round_rng(99, r)).unwrap());
        assert_eq!(a.len(), 4);
        for c in &a {
            counts[c.as_str()[1..].parse::<usize>().unwrap()] += 1;
        }
        distinct_rounds.insert(a);
    }
    assert!(distinct_rounds.len() > 1000, "rounds differ");
    // Expected 2000·4/20 = 400 per client; 6 sigma ≈ 108.
    for (i, &c) in counts.iter().enumerate() {
        assert!((300..=500).contains(&c), "client {i}: {c}");
    }
    // Another seed chooses differently.
    let other: Vec<_> = (1..=20)
        .map(|r| s.select(&avail, &mut round_rng(100, r)).unwrap())
        .collect();
    let same: Vec<_> = (1..=20)
        .map(|r| s.select(&avail, &mut round_rng(99, r)).unwrap())
        .collect();
    assert_ne!(other, same);
    // Randomness is whatever the caller passes.
    let x = s.select(&avail, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    assert_eq!(
        x,
        s.select(&avail, &mut ChaCha8Rng::seed_from_u64(1)).unwrap()
    );
}

#[test]
fn config_toml_forms() {
    let full = r#"
        seed = 42

        [sampling]
        fraction = 0.5
        min_clients = 7
        min_available = 10
        min_results = 7

        [strategy]
        kind = "fed_adam"
        eta = 0.1
        beta1 = 0.9
        beta2 = 0.99
        tau = 1e-3

        [aggregation]
        rule = { kind = "multi_krum", f = 2, m = 5 }
        norm_bound = 10.0
    "#;
    let cfg: HorizontalConfig = toml::from_str(full).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.strategy.kind(), StrategyKind::FedAdam);
    let agg = cfg.aggregation.unwrap();
    assert_eq!(agg.rule, AggregationRule::MultiKrum { f: 2, m: Some(5) });
    assert_eq!(agg.norm_bound, Some(10.0));
    assert_eq!(cfg.build(5).unwrap().kind(), StrategyKind::FedAdam);

    let forms = [
        (r#"strategy = { kind = "fed_avg" }"#, StrategyKind::FedAvg),
        (r#"strategy = { kind = "fedavg" }"#, StrategyKind::FedAvg),
        (
            r#"strategy = { kind = "fed_prox", mu = 0.01 }"#,
            StrategyKind::FedProx,
        ),
        (
            r#"strategy = { kind = "fed_yogi", eta = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 }"#,
            StrategyKind::FedYogi,
        ),
        (
            r#"strategy = { kind = "fed_adagrad", eta = 0.1, beta1 = 0.0, tau = 1e-9 }"#,
            StrategyKind::FedAdagrad,
        ),
        (
            r#"strategy = { kind = "scaffold", eta_g = 1.0, num_clients = 100 }"#,
            StrategyKind::Scaffold,
        ),
    ];
    for (body, kind) in forms {
        let cfg: HorizontalConfig = toml::from_str(&format!("seed = 1\n{body}")).unwrap();
        assert_eq!(cfg.sampling, SamplingConfig::default());
        assert_eq!(cfg.build(3).unwrap().kind(), kind, "{body}");
    }
    for rule in [
        r#"{ kind = "weighted_mean" }"#,
        r#"{ kind = "mean" }"#,
        r#"{ kind = "median" }"#,
        r#"{ kind = "trimmed_mean", trim = 1 }"#,
        r#"{ kind = "krum", f = 1 }"#,
        r#"{ kind = "multi_krum", f = 1 }"#,
    ] {
        let src = format!(
            "seed = 1\nstrategy = {{ kind = \"fed_avg\" }}\nsampling = {{ min_clients = 5, min_available = 5, min_results = 5 }}\naggregation = {{ rule = {rule} }}"
        );
        let cfg: HorizontalConfig = toml::from_str(&src).unwrap();
        cfg.validate().unwrap();
    }
}

fn config_error(src: &str) -> (String, String) {
    let cfg: HorizontalConfig = toml::from_str(src).unwrap();
    match cfg.validate().unwrap_err() {
        HorizontalError::Config { field, reason } => (field.to_owned(), reason),
        e => panic!("not a config error: {e}"),
    }
}

#[test]
fn config_validation_errors_name_field_and_range() {
    let adam = |b1: f64, tau: f64| {
        format!(
            "seed = 1\nstrategy = {{ kind = \"fed_adam\", eta = 0.1, beta1 = {b1:?}, beta2 = 0.99, tau = {tau:?} }}"
        )
    };
    let (f, r) = config_error(&adam(1.0, 1e-3));
    assert_eq!(f, "strategy.beta1");
    assert!(r.contains("[0, 1)") && r.contains("got 1"), "{r}");
    let (f, r) = config_error(&adam(0.9, 0.0));
    assert_eq!(f, "strategy.tau");
    assert!(r.contains("(0, 1]"), "{r}");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_yogi\", eta = 0.1, beta1 = 0.9, beta2 = 1.5, tau = 1e-3 }",
    );
    assert_eq!(f, "strategy.beta2");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_adagrad\", eta = 0.0, beta1 = 0.9, tau = 1e-3 }",
    );
    assert_eq!(f, "strategy.eta");
    let (f, r) = config_error("seed = 1\nstrategy = { kind = \"fed_prox\", mu = -0.1 }");
    assert_eq!(f, "strategy.mu");
    assert!(r.contains("[0, 100]"), "{r}");
    let (f, _) = config_error("seed = 1\nstrategy = { kind = \"scaffold\", eta_g = 0.0 }");
    assert_eq!(f, "strategy.eta_g");
    let (f, r) =
        config_error("seed = 1\nstrategy = { kind = \"fed_avg\" }\nsampling = { fraction = 0.0 }");
    assert_eq!(f, "sampling.fraction");
    assert!(r.contains("(0, 1]"), "{r}");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\nsampling = { min_clients = 3, min_available = 2 }",
    );
    assert_eq!(f, "sampling.min_available");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\nsampling = { min_clients = 2, min_available = 2, min_results = 3 }",
    );
    assert_eq!(f, "sampling.min_results");
    // Krum f = 2 needs 7 results per round.
    let (f, r) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\nsampling = { min_clients = 6, min_available = 6, min_results = 6 }\naggregation = { rule = { kind = \"krum\", f = 2 } }",
    );
    assert_eq!(f, "sampling.min_results");
    assert!(r.contains("2f + 3") && r.contains("at least 7"), "{r}");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\naggregation = { rule = { kind = \"trimmed_mean\", trim = 1 } }",
    );
    assert_eq!(f, "sampling.min_results");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"scaffold\", eta_g = 1.0 }\naggregation = { rule = { kind = \"median\" } }",
    );
    assert_eq!(f, "aggregation");
    let (f, _) = config_error(
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\naggregation = { norm_bound = -1.0 }",
    );
    assert_eq!(f, "aggregation.norm_bound");
    // Unknown fields and kinds are parse errors.
    for src in [
        "seed = 1\nstrategy = { kind = \"fed_adam\", eta = 0.1, beta1 = 0.9, beta2 = 0.99, tau = 1e-3, rho = 1 }",
        "seed = 1\nstrategy = { kind = \"fed_sgd\" }",
        "seed = 1\nstrategy = { kind = \"fed_avg\" }\nsampling = { fraction = 0.5, minimum = 2 }",
        "seed = 1\nstrategy = { kind = \"fed_adam\", eta = 0.1 }",
    ] {
        assert!(toml::from_str::<HorizontalConfig>(src).is_err(), "{src}");
    }
}

/// The public per-client generator depends on exactly (seed, client, round).
#[test]
fn client_round_rng_depends_on_seed_client_and_round_only() {
    use fedra_horizontal::client_round_rng;
    use rand_core::RngCore;
    let draw = |seed, client: &str, round| {
        let mut r = client_round_rng(seed, client, round);
        [r.next_u64(), r.next_u64()]
    };
    let base = draw(42, "hospital-a", 3);
    assert_eq!(draw(42, "hospital-a", 3), base);
    for other in [
        draw(43, "hospital-a", 3),
        draw(42, "hospital-b", 3),
        draw(42, "hospital-a", 4),
        draw(42, "hospital-", 3),
    ] {
        assert_ne!(other, base);
    }
    // Not the sampling stream of the same seed and round.
    let mut s = round_rng(42, 3);
    assert_ne!([s.next_u64(), s.next_u64()], base);
}

#[test]
fn aggregate_mean_equals_aggregate_of_the_same_updates() {
    use fedra_horizontal::aggregate::MeanAccumulator;
    let clients = ids(&["a", "b", "c"]);
    let global = vec![0.5f32, -1.0, 2.0, 0.0];
    let updates = [
        vec![0.1f32, 0.2, -0.3, 1.0],
        vec![-0.4f32, 0.0, 0.9, 0.5],
        vec![2.0f32, -3.0, 0.25, -0.5],
    ];
    let n = [10u64, 30, 60];
    for agg in [
        Aggregator::default(),
        Aggregator::new(AggregationRule::Mean, Some(1.0)).unwrap(),
    ] {
        let mut batch = FedAvg::new(4, scheduler(3), agg).unwrap();
        let mut stream = FedAvg::new(4, scheduler(3), agg).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        batch.configure_round(1, &clients, &mut rng).unwrap();
        stream.configure_round(1, &clients, &mut rng).unwrap();
        let results = clients
            .iter()
            .zip(&updates)
            .zip(n)
            .map(|((c, u), k)| ClientResult::new(c.clone(), k, u.clone()))
            .collect();
        let want = batch.aggregate(1, &global, results, vec![]).unwrap();
        let a = stream.streaming_aggregator().unwrap();
        let mut acc = MeanAccumulator::new(4);
        let mut contributors = Vec::new();
        for ((c, u), k) in clients.iter().zip(&updates).zip(n) {
            let mut u = u.clone();
            a.bound(&mut u).unwrap();
            acc.fold(&u, a.streaming_weight(k).unwrap()).unwrap();
            contributors.push((c.clone(), k));
        }
        let got = stream
            .aggregate_mean(1, &global, &contributors, acc.finish().unwrap(), vec![])
            .unwrap();
        assert_eq!(got, want, "{agg:?}");
        // Same round checks as `aggregate`: too few contributors.
        stream.configure_round(2, &clients, &mut rng).unwrap();
        let err = stream
            .aggregate_mean(2, &global, &contributors[..1], vec![0.0; 4], vec![])
            .unwrap_err();
        assert!(
            matches!(err, HorizontalError::TooFewResults { .. }),
            "{err}"
        );
    }
    // Robust rules cannot take a mean.
    let krum = FedAvg::new(
        4,
        scheduler(5),
        Aggregator::new(AggregationRule::Krum { f: 1 }, None).unwrap(),
    )
    .unwrap();
    assert!(krum.streaming_aggregator().is_none());
}
