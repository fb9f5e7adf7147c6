//! The horizontal-FL protocol over in-memory channels: accuracy on FATE's
//! breast data, secure aggregation = plaintext up to quantisation, client
//! dropouts, kill-and-resume, robust rules under attack, malformed
//! messages.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fedra_data::{Dataset, DatasetSpec, load};
use fedra_federation::mem::{MemChannel, MemNetwork};
use fedra_federation::{Channel, Failure, FedError, PartyId, PeerStats, Tag};
use fedra_horizontal::protocol::*;
use fedra_horizontal::{
    AggregationRule, Aggregator, HorizontalConfig, SamplingConfig, StrategyConfig,
};
use fedra_metrics::roc_auc;
use fedra_nn::{Mlp, MlpSpec, OptimizerConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn pid(s: &str) -> PartyId {
    PartyId::new(s).unwrap()
}

fn fate() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fate")
}

/// Checks that the FATE files are there (they ship with the repository, in data/):
/// their absence is a broken checkout, never a reason to pass.
fn have_data() -> bool {
    let f = fate().join("breast_homo_guest.csv");
    assert!(
        f.is_file(),
        "{} is missing: run the tests from a full clone",
        f.display()
    );
    true
}

fn breast(part: &str) -> Dataset {
    load(&DatasetSpec::new(fate().join(format!("breast_homo_{part}.csv"))).with_label("y")).unwrap()
}

/// What a client's channel does to its outgoing messages.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Honest,
    /// Multiplies every update by `-k` (sign flip, boosted).
    SignFlip(f32),
    /// Sends a result header that is not JSON.
    Garbage,
    /// Puts a NaN into the update.
    NanDelta,
    /// Sends nothing from this round on (round 0 = the hello).
    SilentFrom(u64),
    /// Drops every message with this name from round 2 on.
    DropFrom2(&'static str),
    /// The client's process dies when it is about to send message `name`
    /// of round `r` (`MemChannel::crash`: every peer sees it lost).
    CrashAt(u64, &'static str),
}

struct Tamper {
    inner: MemChannel,
    mode: Mode,
}

#[async_trait]
impl Channel for Tamper {
    fn me(&self) -> &PartyId {
        self.inner.me()
    }
    fn job(&self) -> &str {
        self.inner.job()
    }
    fn peers(&self) -> &[PartyId] {
        self.inner.peers()
    }
    async fn send(&self, to: &PartyId, tag: &Tag, payload: Bytes) -> Result<(), FedError> {
        let payload = match self.mode {
            Mode::Honest => payload,
            Mode::SilentFrom(r) if tag.round() >= r => return Ok(()),
            Mode::SilentFrom(_) => payload,
            Mode::DropFrom2(name) if tag.round() >= 2 && tag.name() == name => return Ok(()),
            Mode::CrashAt(r, name) if tag.round() == r && tag.name() == name => {
                self.inner.crash();
                return Err(FedError::Closed);
            }
            Mode::SignFlip(k) if tag.name() == "delta" => {
                // [u64 length][f32 LE ...] (small models: one chunk).
                let mut v = payload.to_vec();
                for c in v[8..].chunks_exact_mut(4) {
                    let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * -k;
                    c.copy_from_slice(&x.to_le_bytes());
                }
                Bytes::from(v)
            }
            Mode::NanDelta if tag.name() == "delta" => {
                let mut v = payload.to_vec();
                v[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
                Bytes::from(v)
            }
            Mode::Garbage if tag.name() == "result" => {
                let mut v = 5u64.to_le_bytes().to_vec();
                v.extend_from_slice(b"{{{{{");
                Bytes::from(v)
            }
            _ => payload,
        };
        self.inner.send(to, tag, payload).await
    }
    async fn recv(&self, from: &PartyId, tag: &Tag) -> Result<Bytes, FedError> {
        self.inner.recv(from, tag).await
    }
    async fn abort(&self, failure: &Failure) {
        self.inner.abort(failure).await
    }
    async fn finish(&self) {
        self.inner.finish().await
    }
    fn stats(&self) -> Vec<PeerStats> {
        self.inner.stats()
    }
    fn set_droppable(&self, peers: &[PartyId]) {
        self.inner.set_droppable(peers)
    }
    fn dropped(&self) -> Vec<(PartyId, FedError)> {
        self.inner.dropped()
    }
}

fn f32s(d: &Dataset) -> (Vec<f32>, Vec<f64>) {
    (
        d.features().iter().map(|&v| v as f32).collect(),
        d.labels().unwrap().to_vec(),
    )
}

fn auc(spec: &MlpSpec, params: &[f32], test: &Dataset) -> f64 {
    let (x, y) = f32s(test);
    let m = Mlp::from_params(spec.clone(), params).unwrap();
    let p: Vec<f64> = m
        .predict(&x, test.n_rows())
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    roc_auc(&y, &p).unwrap()
}

fn config(spec: MlpSpec, n_clients: usize, rounds: u32) -> ServerConfig {
    ServerConfig {
        rounds,
        round_timeout_s: 60.0,
        clients: None,
        model: spec,
        local: LocalTraining {
            local_epochs: 1,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(0.01),
        },
        horizontal: HorizontalConfig {
            seed: 42,
            sampling: SamplingConfig {
                fraction: 1.0,
                min_clients: n_clients,
                min_available: n_clients,
                min_results: n_clients,
            },
            strategy: StrategyConfig::FedAvg,
            aggregation: None,
        },
        secure_aggregation: None,
        dp: None,
        chunk_bytes: DEFAULT_CHUNK_BYTES,
    }
}

struct Run {
    server: fedra_horizontal::Result<ServerOutcome>,
    clients: Vec<Option<fedra_horizontal::Result<ClientOutcome>>>,
}

/// Runs a federation: server `server`, clients `c1..`; aborts the clients
/// if the server fails.
async fn federate(
    cfg: &ServerConfig,
    clients: Vec<(Dataset, Mode)>,
    checkpoint: Option<&Path>,
    kill_after: Option<u32>,
) -> Run {
    federate_eval(cfg, clients, checkpoint, kill_after, None).await
}

async fn federate_eval(
    cfg: &ServerConfig,
    clients: Vec<(Dataset, Mode)>,
    checkpoint: Option<&Path>,
    kill_after: Option<u32>,
    eval: Option<Arc<Evaluate<'static>>>,
) -> Run {
    federate_secret(cfg, clients, checkpoint, kill_after, eval, 0).await
}

/// As [`federate_eval`], with the parties' CSPRNGs (the secret randomness)
/// seeded from `secret` — production seeds them from the OS.
async fn federate_secret(
    cfg: &ServerConfig,
    clients: Vec<(Dataset, Mode)>,
    checkpoint: Option<&Path>,
    kill_after: Option<u32>,
    eval: Option<Arc<Evaluate<'static>>>,
    secret: u64,
) -> Run {
    let init = Mlp::new(cfg.model.clone(), &mut ChaCha20Rng::seed_from_u64(7))
        .unwrap()
        .params_flat();
    let opts = Opts {
        init,
        ..Opts::default()
    };
    federate_init(cfg, clients, checkpoint, kill_after, eval, secret, opts).await
}

/// Less common knobs of a federation.
#[derive(Default)]
struct Opts {
    /// The initial model.
    init: Vec<f32>,
    /// Client names (default `c1`, `c2`, ...): each client's batch order
    /// derives from its name.
    names: Option<Vec<&'static str>>,
    /// Where client `i` keeps its state file (`c{i}.state`), if anywhere.
    state_dir: Option<PathBuf>,
}

/// As [`federate_secret`], with [`Opts`].
async fn federate_init(
    cfg: &ServerConfig,
    clients: Vec<(Dataset, Mode)>,
    checkpoint: Option<&Path>,
    kill_after: Option<u32>,
    eval: Option<Arc<Evaluate<'static>>>,
    secret: u64,
    opts: Opts,
) -> Run {
    let server = pid("server");
    let init = opts.init;
    let names: Vec<PartyId> = match &opts.names {
        Some(n) => n.iter().map(|s| pid(s)).collect(),
        None => (1..=clients.len()).map(|i| pid(&format!("c{i}"))).collect(),
    };
    let mut parties = vec![server.clone()];
    parties.extend(names.iter().cloned());
    let mut net = MemNetwork::new("job", &parties);
    let spec = cfg.model.clone();
    let mut handles = Vec::new();
    for (i, ((data, mode), name)) in clients.into_iter().zip(&names).enumerate() {
        let ch = Tamper {
            inner: net.take(name).unwrap(),
            mode,
        };
        // As the runtime does: the other clients may drop out.
        let others: Vec<PartyId> = names.iter().filter(|n| *n != name).cloned().collect();
        ch.set_droppable(&others);
        let server = server.clone();
        let spec = spec.clone();
        let state = opts
            .state_dir
            .as_ref()
            .map(|d| d.join(format!("c{}.state", i + 1)));
        handles.push(tokio::spawn(async move {
            let mut model = Mlp::new(spec, &mut ChaCha20Rng::seed_from_u64(99)).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(1000 + i as u64 + 100 * secret);
            let cfg = ClientConfig {
                server_timeout_s: 120.0,
                ..ClientConfig::default()
            };
            run_client_with_state(
                &ch,
                "hfl",
                &server,
                &cfg,
                &data,
                &mut model,
                state.as_deref(),
                &mut rng,
            )
            .await
        }));
    }
    let ch = net.take(&server).unwrap();
    ch.set_droppable(&names);
    let cfg2 = cfg.clone();
    let ck = checkpoint.map(Path::to_path_buf);
    let srv = tokio::spawn(async move {
        let mut rng = ChaCha20Rng::seed_from_u64(5 + secret);
        run_server(
            &ch,
            "hfl",
            &cfg2,
            init,
            ck.as_deref(),
            eval.as_deref(),
            &mut rng,
        )
        .await
    });
    if let (Some(k), Some(path)) = (kill_after, checkpoint) {
        // Kill everything once the checkpoint holds round k (the server
        // may be anywhere in the next round by then). The watcher runs on
        // its own thread: local training runs inline on the runtime's
        // workers, which could starve a watcher task under load and let
        // the server run to the end before the kill.
        let server_task = srv.abort_handle();
        let path2 = path.to_path_buf();
        let watcher = tokio::task::spawn_blocking(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(1));
                if let Ok(Some(c)) = Checkpoint::load(&path2)
                    && c.round >= k
                {
                    server_task.abort();
                    return true;
                }
                if server_task.is_finished() {
                    return false;
                }
            }
        });
        assert!(watcher.await.unwrap(), "the server ended before round {k}");
        // Wait until the tasks have really stopped: an aborted task runs on until its
        // next await point and may write one more checkpoint.
        srv.abort();
        let _ = srv.await;
        for h in handles {
            h.abort();
            let _ = h.await;
        }
        return Run {
            server: Err(fedra_horizontal::HorizontalError::Data {
                detail: "killed".into(),
            }),
            clients: Vec::new(),
        };
    }
    let server_result = srv.await.unwrap();
    let mut clients = Vec::new();
    for h in handles {
        if server_result.is_err() {
            h.abort();
            clients.push(None);
        } else {
            clients.push(Some(h.await.unwrap()));
        }
    }
    Run {
        server: server_result,
        clients,
    }
}

/// Guest + host rows split round-robin into `k` clients.
fn split_breast(k: usize) -> Vec<Dataset> {
    let (g, h) = (breast("guest"), breast("host"));
    let mut out = Vec::new();
    for part in 0..k {
        let gi: Vec<usize> = (0..g.n_rows()).filter(|i| i % k == part).collect();
        let hi: Vec<usize> = (0..h.n_rows()).filter(|i| i % k == part).collect();
        // Alternate the source file between clients.
        let (d, idx) = if part % 2 == 0 { (&g, gi) } else { (&h, hi) };
        out.push(d.select_rows(&idx).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn breast_fedavg_mlp_128x3_reaches_auc_098() {
    if !have_data() {
        return;
    }
    let test = breast("test");
    let spec = MlpSpec::binary(30, vec![128, 128, 128]);
    let mut cfg = config(spec.clone(), 2, 5);
    cfg.local.optimizer = OptimizerConfig::adam(1e-3);
    let run = federate(
        &cfg,
        vec![
            (breast("guest"), Mode::Honest),
            (breast("host"), Mode::Honest),
        ],
        None,
        None,
    )
    .await;
    let out = run.server.unwrap();
    let a = auc(&spec, &out.params, &test);
    eprintln!("breast FedAvg 30-128x3-1, 5 rounds: AUC = {a:.4}");
    assert!(a >= 0.98, "AUC {a}");
    assert_eq!(out.history.len(), 5);
    for c in run.clients {
        let c = c.unwrap().unwrap();
        assert_eq!((c.rounds_trained, c.rounds_completed), (5, 5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secure_aggregation_matches_plaintext_up_to_quantisation() {
    if !have_data() {
        return;
    }
    let test = breast("test");
    let spec = MlpSpec::binary(30, vec![32, 32]);
    let mut plain_cfg = config(spec.clone(), 2, 3);
    // 2,113 parameters = 8,452 bytes: every vector travels in 3 chunks.
    plain_cfg.chunk_bytes = 4096;
    let mut sa_cfg = plain_cfg.clone();
    sa_cfg.secure_aggregation = Some(SecAggConfig {
        threshold: 2,
        clip: 1.0,
        ring_bits: 32,
        neighbors: None,
    });
    let data = || {
        vec![
            (breast("guest"), Mode::Honest),
            (breast("host"), Mode::Honest),
        ]
    };
    let plain = federate(&plain_cfg, data(), None, None)
        .await
        .server
        .unwrap();
    let sa = federate(&sa_cfg, data(), None, None).await.server.unwrap();
    let bound = sa.history[0].quantization_error.unwrap();
    assert!(bound <= 1.2e-7, "{bound}");
    let diff = plain
        .params
        .iter()
        .zip(&sa.params)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("secagg vs plaintext: max |Δparam| = {diff:e} (per-round bound {bound:e})");
    assert!(diff > 0.0 || bound > 0.0);
    assert!(diff < 1e-4, "{diff}");
    let (a, b) = (
        auc(&spec, &plain.params, &test),
        auc(&spec, &sa.params, &test),
    );
    assert_eq!(format!("{a:.3}"), format!("{b:.3}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_client_is_a_round_failure_or_a_clean_error() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![8]);
    let parts = split_breast(3);
    for secure in [false, true] {
        let mut cfg = config(spec.clone(), 3, 3);
        cfg.round_timeout_s = 1.5;
        cfg.horizontal.sampling.min_results = 2;
        if secure {
            cfg.secure_aggregation = Some(SecAggConfig {
                threshold: 2,
                clip: 1.0,
                ring_bits: 32,
                neighbors: None,
            });
        }
        let clients = vec![
            (parts[0].clone(), Mode::Honest),
            (parts[1].clone(), Mode::Honest),
            (parts[2].clone(), Mode::SilentFrom(2)),
        ];
        let run = federate(&cfg, clients, None, None).await;
        let out = run.server.unwrap();
        assert!(out.history[0].failures.is_empty());
        for r in &out.history[1..] {
            assert_eq!(r.contributed, ["c1", "c2"], "secure = {secure}");
            assert_eq!(r.failures.len(), 1);
            assert_eq!(r.failures[0].client.as_str(), "c3");
        }
    }
    // Secure aggregation with a client vanishing in a later phase: after
    // advertising its keys (not in U2: left out of the sum), or after
    // sending its masked input (its input is in the sum, it contributed).
    for (drop, contributes) in [
        ("sa/shares", false),
        ("sa/masked", false),
        ("sa/resp", true),
    ] {
        let mut cfg = config(spec.clone(), 3, 2);
        cfg.round_timeout_s = 1.5;
        cfg.horizontal.sampling.min_results = 2;
        cfg.secure_aggregation = Some(SecAggConfig {
            threshold: 2,
            clip: 1.0,
            ring_bits: 32,
            neighbors: None,
        });
        let clients = vec![
            (parts[0].clone(), Mode::Honest),
            (parts[1].clone(), Mode::Honest),
            (parts[2].clone(), Mode::DropFrom2(drop)),
        ];
        let out = federate(&cfg, clients, None, None).await.server.unwrap();
        let r = &out.history[1];
        let expected: &[&str] = if contributes {
            &["c1", "c2", "c3"]
        } else {
            &["c1", "c2"]
        };
        assert_eq!(r.contributed, expected, "dropping {drop}");
        assert_eq!(
            r.failures.len(),
            usize::from(!contributes),
            "dropping {drop}"
        );
    }
    // Two clients, both required: a clean error naming the silent one.
    let mut cfg = config(spec.clone(), 2, 2);
    cfg.round_timeout_s = 1.0;
    let run = federate(
        &cfg,
        vec![
            (parts[0].clone(), Mode::Honest),
            (parts[1].clone(), Mode::SilentFrom(1)),
        ],
        None,
        None,
    )
    .await;
    let err = run.server.unwrap_err();
    assert_eq!(err.code(), "horizontal.too_few_results");
    let msg = err.to_string();
    assert!(msg.contains("c2") && !msg.contains("c1"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashed_client_is_dropped_never_selected_again_and_secagg_recovers_the_sum() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![8]);
    let parts = split_breast(4);
    let cfg_for = |secure: bool| {
        let mut cfg = config(spec.clone(), 4, 4);
        // A crash is noticed at once: the deadline is never what ends a round.
        cfg.round_timeout_s = 60.0;
        cfg.horizontal.sampling.min_clients = 2;
        cfg.horizontal.sampling.min_available = 2;
        cfg.horizontal.sampling.min_results = 2;
        if secure {
            cfg.secure_aggregation = Some(SecAggConfig {
                threshold: 2,
                clip: 1.0,
                ring_bits: 32,
                neighbors: None,
            });
        }
        cfg
    };
    let clients = |crash: Mode| {
        vec![
            (parts[0].clone(), Mode::Honest),
            (parts[1].clone(), Mode::Honest),
            (parts[2].clone(), crash),
            (parts[3].clone(), Mode::Honest),
        ]
    };
    let started = std::time::Instant::now();
    // Plaintext: c3 dies in round 2 after its result header, before its delta.
    let plain = federate(
        &cfg_for(false),
        clients(Mode::CrashAt(2, "delta")),
        None,
        None,
    )
    .await;
    let plain_out = plain.server.unwrap();
    let check = |out: &ServerOutcome, contributed_in_2: &[&str], what: &str| {
        assert!(out.history[0].dropped_clients.is_empty(), "{what}");
        assert_eq!(
            out.history[0].contributed,
            ["c1", "c2", "c3", "c4"],
            "{what}"
        );
        assert_eq!(out.history[1].dropped_clients, ["c3"], "{what}");
        assert_eq!(out.history[1].contributed, contributed_in_2, "{what}");
        for r in &out.history[2..] {
            assert_eq!(r.selected, ["c1", "c2", "c4"], "{what}");
            assert_eq!(r.excluded, ["c3"], "{what}");
            assert!(
                r.failures.is_empty() && r.dropped_clients.is_empty(),
                "{what}"
            );
        }
        assert_eq!(out.dropped.len(), 1, "{what}");
        assert_eq!(out.dropped[0].client.as_str(), "c3", "{what}");
        assert!(
            out.dropped[0].reason.contains("fed.peer_lost")
                || out.dropped[0].reason.contains("unreachable"),
            "{what}: {}",
            out.dropped[0].reason
        );
    };
    check(&plain_out, &["c1", "c2", "c4"], "plaintext");
    // The survivors are not affected.
    for (i, c) in plain.clients.iter().enumerate() {
        let c = c.as_ref().unwrap();
        if i == 2 {
            assert!(c.is_err());
        } else {
            assert_eq!(c.as_ref().unwrap().rounds_completed, 4);
        }
    }
    // Secure aggregation, c3 dying in each later phase of round 2: before
    // its shares, before its masked input (the server recovers its pairwise
    // masks from the others' shares) — the sum of the three others, as in
    // plaintext; or after its masked input (the others reveal its self-mask
    // share: its input is in the sum).
    for (at, contributed) in [
        ("sa/shares", &["c1", "c2", "c4"][..]),
        ("sa/masked", &["c1", "c2", "c4"][..]),
        ("sa/resp", &["c1", "c2", "c3", "c4"][..]),
    ] {
        let run = federate(&cfg_for(true), clients(Mode::CrashAt(2, at)), None, None).await;
        let out = run.server.unwrap();
        check(&out, contributed, at);
        if at != "sa/resp" {
            let diff = plain_out
                .params
                .iter()
                .zip(&out.params)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{at}: max |secagg - plaintext| = {diff}");
        }
    }
    // Too few left: a clean error naming the dropped client.
    let mut cfg = cfg_for(false);
    cfg.horizontal.sampling.min_available = 4;
    cfg.horizontal.sampling.min_clients = 3;
    cfg.horizontal.sampling.min_results = 3;
    let err = federate(&cfg, clients(Mode::CrashAt(2, "delta")), None, None)
        .await
        .server
        .unwrap_err();
    assert_eq!(err.code(), "horizontal.too_many_dropouts", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("round 3") && msg.contains("c3: party 'c3' has been unreachable"),
        "{msg}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "{:?}",
        started.elapsed()
    );
}

/// SecAgg+ (`neighbors = 4`: each of 12 clients shares with 4 others on a
/// seeded random graph), two clients crashing before their masked input in
/// round 2: the same model as plaintext FedAvg with the same crashes, up to
/// quantisation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secagg_plus_with_crashed_clients_matches_plaintext() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![8]);
    let parts = split_breast(12);
    let cfg_for = |secure: bool| {
        let mut cfg = config(spec.clone(), 12, 3);
        cfg.horizontal.sampling = SamplingConfig {
            fraction: 1.0,
            min_clients: 6,
            min_available: 6,
            min_results: 6,
        };
        if secure {
            cfg.secure_aggregation = Some(SecAggConfig {
                threshold: 3,
                clip: 1.0,
                ring_bits: 32,
                neighbors: Some(4),
            });
        }
        cfg
    };
    let clients = |at: &'static str| {
        parts
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mode = if i == 2 || i == 8 {
                    Mode::CrashAt(2, at)
                } else {
                    Mode::Honest
                };
                (d.clone(), mode)
            })
            .collect::<Vec<_>>()
    };
    let plain = federate(&cfg_for(false), clients("delta"), None, None)
        .await
        .server
        .unwrap();
    let sa = federate(&cfg_for(true), clients("sa/masked"), None, None)
        .await
        .server
        .unwrap();
    for out in [&plain, &sa] {
        assert_eq!(out.history[1].dropped_clients, ["c3", "c9"]);
        assert_eq!(out.history[1].contributed.len(), 10);
        assert_eq!(out.history[2].selected.len(), 10);
    }
    let diff = plain
        .params
        .iter()
        .zip(&sa.params)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "SecAgg+ (k = 4) vs plaintext: max |Δparam| = {diff:e} (per-round bound {:e})",
        sa.history[0].quantization_error.unwrap()
    );
    assert!(diff < 1e-4, "{diff}");
    // Refused: an odd degree, or a threshold above the neighbourhood.
    let mut bad = cfg_for(true);
    if let Some(s) = bad.secure_aggregation.as_mut() {
        s.neighbors = Some(3);
    }
    assert_eq!(bad.validate().unwrap_err().code(), "horizontal.config");
    if let Some(s) = bad.secure_aggregation.as_mut() {
        s.neighbors = Some(2);
        s.threshold = 4;
    }
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("neighbors + 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_server_resumes_to_a_bit_identical_model() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![16]);
    let mut cfg = config(spec, 2, 5);
    cfg.chunk_bytes = 4096;
    cfg.horizontal.strategy = StrategyConfig::FedAdam {
        eta: 0.05,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };
    let dir = std::env::temp_dir().join(format!("fedra-hfl-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.ckpt"), dir.join("b.ckpt"));
    std::fs::remove_file(&a).ok();
    std::fs::remove_file(&b).ok();
    let data = || {
        vec![
            (breast("guest"), Mode::Honest),
            (breast("host"), Mode::Honest),
        ]
    };
    let full = federate(&cfg, data(), Some(&a), None).await.server.unwrap();
    assert_eq!(full.resumed_after, None);
    federate(&cfg, data(), Some(&b), Some(2)).await;
    let killed_at = Checkpoint::load(&b).unwrap().unwrap().round;
    assert!((2..5).contains(&killed_at), "{killed_at}");
    let resumed = federate(&cfg, data(), Some(&b), None).await.server.unwrap();
    assert_eq!(resumed.resumed_after, Some(killed_at));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed.params), bits(&full.params));
    assert_eq!(resumed.history.len(), 5);
    // A checkpoint of another configuration is refused.
    let mut other = cfg.clone();
    other.local.batch_size = 16;
    let err = federate(&other, data(), Some(&b), None)
        .await
        .server
        .unwrap_err();
    assert_eq!(err.code(), "horizontal.checkpoint");

    // SCAFFOLD: the server's c is in its checkpoint, each client's c_i in the
    // client's state file. Three clients, two sampled per round (seed 42), so
    // a client may resume with a c_i from before the server's last round.
    let spec = MlpSpec::binary(30, vec![16]);
    let mut cfg = config(spec.clone(), 3, 6);
    cfg.local.optimizer = OptimizerConfig::sgd(0.05);
    cfg.horizontal.strategy = StrategyConfig::Scaffold {
        eta_g: 1.0,
        num_clients: None,
    };
    cfg.horizontal.sampling = SamplingConfig {
        fraction: 0.5,
        min_clients: 2,
        min_available: 3,
        min_results: 2,
    };
    let parts = split_breast(3);
    let data = || {
        parts
            .iter()
            .map(|d| (d.clone(), Mode::Honest))
            .collect::<Vec<_>>()
    };
    let init = Mlp::new(spec, &mut ChaCha20Rng::seed_from_u64(7))
        .unwrap()
        .params_flat();
    let run = |ck: PathBuf, kill: Option<u32>, state: Option<PathBuf>, secret: u64| {
        let (cfg, data, init) = (cfg.clone(), data(), init.clone());
        async move {
            if let Some(d) = &state {
                std::fs::create_dir_all(d).unwrap();
            }
            let opts = Opts {
                init,
                names: None,
                state_dir: state,
            };
            federate_init(&cfg, data, Some(&ck), kill, None, secret, opts).await
        }
    };
    let full = run(dir.join("s-full.ckpt"), None, Some(dir.join("full")), 0)
        .await
        .server
        .unwrap();
    let selected: Vec<_> = full.history.iter().map(|r| r.selected.clone()).collect();
    assert!(
        selected.iter().any(|s| s.len() == 2) && selected.iter().all(|s| s.len() == 2),
        "{selected:?}"
    );
    for (ck, state) in [("s-b.ckpt", "b"), ("s-c.ckpt", "c")] {
        run(dir.join(ck), Some(2), Some(dir.join(state)), 1).await;
    }
    let killed_at = Checkpoint::load(&dir.join("s-b.ckpt"))
        .unwrap()
        .unwrap()
        .round;
    assert!((2..6).contains(&killed_at), "{killed_at}");
    // Resumed with the clients' state files (and fresh CSPRNGs): bit-identical.
    let resumed = run(dir.join("s-b.ckpt"), None, Some(dir.join("b")), 2)
        .await
        .server
        .unwrap();
    assert_eq!(resumed.resumed_after, Some(killed_at));
    assert_eq!(bits(&resumed.params), bits(&full.params), "SCAFFOLD resume");
    // Without them every c_i restarts from 0: another model.
    let lost = run(dir.join("s-c.ckpt"), None, None, 2)
        .await
        .server
        .unwrap();
    assert!(lost.resumed_after.is_some());
    assert_ne!(bits(&lost.params), bits(&full.params));
    std::fs::remove_dir_all(&dir).ok();
}

/// Every non-secret random choice (client sampling, each client's batch
/// order, the initial model) follows from the job's seed: two runs of the
/// same job whose parties' CSPRNGs differ — as they do in production, seeded
/// by the OS — reach bit-identical models, and so does a run killed and
/// resumed with fresh CSPRNGs. Another seed gives another model.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_job_twice_is_bit_identical_whatever_the_csprngs() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![32, 32]);
    // Three clients, two sampled per round: sampling, shuffling and local
    // Adam all take part.
    let mut cfg = config(spec, 3, 4);
    cfg.horizontal.sampling = SamplingConfig {
        fraction: 0.5,
        min_clients: 2,
        min_available: 3,
        min_results: 2,
    };
    cfg.local.batch_size = 16;
    let data = || {
        split_breast(3)
            .into_iter()
            .map(|d| (d, Mode::Honest))
            .collect::<Vec<_>>()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let run = |cfg: ServerConfig, secret: u64, ck: Option<PathBuf>, kill: Option<u32>| {
        let data = data();
        // When killing after round k, the hook holds round k + 1 back so that
        // the kill lands before round k + 2 however fast the rounds are.
        let eval: Option<Arc<Evaluate<'static>>> = kill.map(|k| {
            Arc::new(move |round: u32, _: &[f32]| {
                if round > k {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Vec::new()
            }) as Arc<Evaluate<'static>>
        });
        async move {
            federate_secret(&cfg, data, ck.as_deref(), kill, eval, secret)
                .await
                .server
        }
    };
    let a = run(cfg.clone(), 0, None, None).await.unwrap();
    let b = run(cfg.clone(), 1, None, None).await.unwrap();
    assert!(
        bits(&a.params) == bits(&b.params),
        "CSPRNG changed the model"
    );
    let selected = |o: &ServerOutcome| {
        o.history
            .iter()
            .map(|r| r.selected.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(selected(&a), selected(&b));
    // Killed after round 2 and resumed, each time with other CSPRNGs.
    let dir = std::env::temp_dir().join(format!("fedra-hfl-repro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("c.ckpt");
    std::fs::remove_file(&ck).ok();
    run(cfg.clone(), 2, Some(ck.clone()), Some(2)).await.ok();
    let killed_at = Checkpoint::load(&ck).unwrap().unwrap().round;
    assert!((2..4).contains(&killed_at), "{killed_at}");
    let c = run(cfg.clone(), 3, Some(ck.clone()), None).await.unwrap();
    assert_eq!(c.resumed_after, Some(killed_at));
    assert!(
        bits(&c.params) == bits(&a.params),
        "resume changed the model"
    );
    std::fs::remove_dir_all(&dir).ok();
    // Secure aggregation without DP: masks cancel exactly and quantisation
    // rounds deterministically, so it is reproducible too.
    let mut sa = cfg.clone();
    sa.secure_aggregation = Some(SecAggConfig {
        threshold: 2,
        clip: 1.0,
        ring_bits: 32,
        neighbors: None,
    });
    let d = run(sa.clone(), 4, None, None).await.unwrap();
    let e = run(sa, 5, None, None).await.unwrap();
    assert!(
        bits(&d.params) == bits(&e.params),
        "secagg run not reproducible"
    );
    // The seed matters.
    let mut other = cfg.clone();
    other.horizontal.seed = 43;
    let f = run(other, 0, None, None).await.unwrap();
    assert!(bits(&f.params) != bits(&a.params), "the seed had no effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn robust_rules_resist_a_sign_flip_attacker() {
    if !have_data() {
        return;
    }
    let test = breast("test");
    let spec = MlpSpec::binary(30, vec![16]);
    let parts = split_breast(5);
    let clients = |attack: bool| {
        parts
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mode = if attack && i == 4 {
                    Mode::SignFlip(10.0)
                } else {
                    Mode::Honest
                };
                (d.clone(), mode)
            })
            .collect::<Vec<_>>()
    };
    let run = |rule: Option<AggregationRule>, attack: bool| {
        let mut cfg = config(spec.clone(), 5, 4);
        cfg.horizontal.aggregation = rule.map(|rule| Aggregator {
            rule,
            norm_bound: None,
        });
        let clients = clients(attack);
        let test = &test;
        async move {
            let out = federate(&cfg, clients, None, None).await.server.unwrap();
            auc(&cfg.model, &out.params, test)
        }
    };
    let clean = run(None, false).await;
    let fedavg = run(None, true).await;
    let median = run(Some(AggregationRule::Median), true).await;
    let krum = run(Some(AggregationRule::Krum { f: 1 }), true).await;
    eprintln!(
        "AUC clean {clean:.4}, attacked: FedAvg {fedavg:.4}, median {median:.4}, Krum {krum:.4}"
    );
    assert!(clean >= 0.97, "{clean}");
    assert!(median >= clean - 0.02, "median {median} vs {clean}");
    assert!(krum >= clean - 0.02, "krum {krum} vs {clean}");
    assert!(fedavg < clean - 0.05, "FedAvg {fedavg} vs {clean}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_fail_their_client_only() {
    if !have_data() {
        return;
    }
    let spec = MlpSpec::binary(30, vec![8]);
    let parts = split_breast(3);
    let mut cfg = config(spec, 3, 2);
    cfg.round_timeout_s = 20.0;
    cfg.horizontal.sampling.min_results = 1;
    let clients = vec![
        (parts[0].clone(), Mode::Honest),
        (parts[1].clone(), Mode::Garbage),
        (parts[2].clone(), Mode::NanDelta),
    ];
    let out = federate(&cfg, clients, None, None).await.server.unwrap();
    for r in &out.history {
        assert_eq!(r.contributed, ["c1"]);
        let f: Vec<(&str, &str)> = r
            .failures
            .iter()
            .map(|f| (f.client.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].0 == "c2" && f[0].1.contains("malformed"), "{f:?}");
        assert!(f[1].0 == "c3" && f[1].1.contains("not finite"), "{f:?}");
    }
}

#[test]
fn server_config_reads_from_toml_and_validates() {
    let cfg: ServerConfig = toml::from_str(
        r#"
        rounds = 20
        round_timeout_s = 300.0
        [model]
        inputs = 30
        hidden = [128, 128, 128]
        outputs = 1
        activation = "relu"
        [local]
        local_epochs = 1
        batch_size = 32
        optimizer = { kind = "adam", lr = 0.001 }
        [horizontal]
        seed = 42
        strategy = { kind = "fed_avg" }
        sampling = { fraction = 1.0, min_clients = 2, min_available = 2, min_results = 2 }
        [secure_aggregation]
        threshold = 2
        clip = 1.0
        ring_bits = 32
        [dp]
        mode = "central"
        clip = 1.0
        noise_multiplier = 1.0
        delta = 1e-5
    "#,
    )
    .unwrap();
    cfg.validate().unwrap();
    let bad = |f: &dyn Fn(&mut ServerConfig)| {
        let mut c = cfg.clone();
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert!(bad(&|c| c.rounds = 0).contains("rounds"));
    assert!(bad(&|c| c.round_timeout_s = f64::NAN).contains("round_timeout_s"));
    assert!(bad(&|c| c.local.batch_size = 0).contains("local.batch_size"));
    assert!(bad(&|c| c.secure_aggregation.as_mut().unwrap().ring_bits = 16).contains("ring_bits"));
    assert!(bad(&|c| c.secure_aggregation.as_mut().unwrap().threshold = 3).contains("threshold"));
    assert!(bad(&|c| c.dp.as_mut().unwrap().delta = 1.0).contains("dp.delta"));
    assert!(bad(&|c| c.model.outputs = 0).contains("model"));
    assert!(
        bad(&|c| c.horizontal.aggregation = Some(Aggregator {
            rule: AggregationRule::Median,
            norm_bound: None
        }))
        .contains("robust")
    );
    assert!(toml::from_str::<ServerConfig>("rounds = 1\nbogus = 2").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fedprox_and_scaffold_train_through_the_protocol() {
    if !have_data() {
        return;
    }
    let test = breast("test");
    let spec = MlpSpec::binary(30, vec![16]);
    let data = || {
        vec![
            (breast("guest"), Mode::Honest),
            (breast("host"), Mode::Honest),
        ]
    };
    let mut cfg = config(spec.clone(), 2, 3);
    cfg.horizontal.strategy = StrategyConfig::FedProx { mu: 0.1 };
    let prox = federate(&cfg, data(), None, None).await.server.unwrap();
    let mut cfg = config(spec.clone(), 2, 3);
    cfg.local.optimizer = OptimizerConfig::sgd(0.05);
    cfg.horizontal.strategy = StrategyConfig::Scaffold {
        eta_g: 1.0,
        num_clients: None,
    };
    let scaffold = federate(&cfg, data(), None, None).await.server.unwrap();
    let (a, b) = (
        auc(&spec, &prox.params, &test),
        auc(&spec, &scaffold.params, &test),
    );
    eprintln!("AUC FedProx {a:.4}, SCAFFOLD {b:.4}");
    assert!(a >= 0.97 && b >= 0.97, "{a} {b}");
    // SCAFFOLD with momentum is refused.
    cfg.local.optimizer = OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
    };
    assert_eq!(cfg.validate().unwrap_err().code(), "horizontal.config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_privacy_central_local_and_under_secure_aggregation() {
    if !have_data() {
        return;
    }
    let test = breast("test");
    let spec = MlpSpec::binary(30, vec![8]);
    let data = || {
        vec![
            (breast("guest"), Mode::Honest),
            (breast("host"), Mode::Honest),
        ]
    };
    let dp = |mode| DpConfig {
        mode,
        clip: 1.0,
        noise_multiplier: 0.5,
        delta: 1e-5,
        microbatch_size: 8,
    };
    // Central: ε grows every round and is checkpoint-ready; noise changes the model.
    let plain = federate(&config(spec.clone(), 2, 3), data(), None, None)
        .await
        .server
        .unwrap();
    let mut cfg = config(spec.clone(), 2, 3);
    cfg.dp = Some(dp(DpMode::Central));
    let central = federate(&cfg, data(), None, None).await.server.unwrap();
    let eps: Vec<f64> = central.history.iter().map(|r| r.epsilon.unwrap()).collect();
    assert!(eps.windows(2).all(|w| w[1] > w[0]), "{eps:?}");
    assert_eq!(central.epsilon, Some(eps[2]));
    assert_eq!(central.accountant.as_ref().unwrap().events().len(), 3);
    assert_ne!(central.params, plain.params);
    // Central DP under secure aggregation: clients clip, the server adds the noise.
    cfg.secure_aggregation = Some(SecAggConfig {
        threshold: 2,
        clip: 1.0,
        ring_bits: 64,
        neighbors: None,
    });
    let both = federate(&cfg, data(), None, None).await.server.unwrap();
    assert_eq!(both.epsilon, central.epsilon);
    // Local DP-SGD (per-example ghost clipping, and micro-batches of 8):
    // each client reports its own ε.
    for microbatch in [1, 8] {
        let mut cfg = config(spec.clone(), 2, 2);
        cfg.dp = Some(DpConfig {
            microbatch_size: microbatch,
            ..dp(DpMode::Local)
        });
        let run = federate(&cfg, data(), None, None).await;
        let local = run.server.unwrap();
        for c in run.clients {
            let e = c.unwrap().unwrap().epsilon.unwrap();
            assert!(e.is_finite() && e > 0.0, "{e}");
        }
        let a = auc(&spec, &local.params, &test);
        eprintln!(
            "DP: central ε = {:.2} (σ = 0.5, 3 rounds, q = 1); local DP-SGD (micro-batch {microbatch}) AUC {a:.3}",
            eps[2]
        );
    }
}

/// Run once by hand (not in CI: ~15 s in the dev profile on 2 cores, 20 rounds):
/// `cargo test -p fedra-horizontal --test protocol -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: 24,000 training rows; run by hand to report the default_credit AUC"]
async fn default_credit_fedavg_mlp_128x3() {
    if !have_data() {
        return;
    }
    let dc = |part: &str| {
        load(
            &DatasetSpec::new(fate().join(format!("default_credit_homo_{part}.csv")))
                .with_label("y"),
        )
        .unwrap()
    };
    // The FATE files are already standardised (every column: mean ≈ 0, sd ≈ 1).
    let test = dc("test");
    // Exactly the settings of examples/fedavg-default-credit/job.toml (read
    // from it: model, local training, rounds, seed, sampling), and its
    // initial model (from `horizontal.seed`, as the runtime builds it) and
    // client names (each client's batch order derives from its name).
    let job: toml::Table = toml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/fedavg-default-credit/job.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut task = job["tasks"].as_array().unwrap()[0]
        .as_table()
        .unwrap()
        .clone();
    for k in ["name", "kind", "server", "client"] {
        task.remove(k);
    }
    let cfg: ServerConfig = toml::Value::Table(task).try_into().unwrap();
    cfg.validate().unwrap();
    let spec = cfg.model.clone();
    let init = Mlp::new(
        spec.clone(),
        &mut ChaCha20Rng::seed_from_u64(cfg.horizontal.seed),
    )
    .unwrap()
    .params_flat();
    let (tx, ty) = f32s(&test);
    let rows = test.n_rows();
    let spec2 = spec.clone();
    let eval: Arc<Evaluate<'static>> = Arc::new(move |round, params: &[f32]| {
        let m = Mlp::from_params(spec2.clone(), params).unwrap();
        let p: Vec<f64> = m
            .predict(&tx, rows)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let a = roc_auc(&ty, &p).unwrap();
        eprintln!("  round {round}: test AUC {a:.4}");
        vec![("auc".to_owned(), a)]
    });
    let t = std::time::Instant::now();
    let out = federate_init(
        &cfg,
        vec![
            (dc("guest"), Mode::Honest),
            (dc("host_1"), Mode::Honest),
            (dc("host_2"), Mode::Honest),
        ],
        None,
        None,
        Some(eval),
        0,
        Opts {
            init,
            names: Some(vec!["bank-a", "bank-b", "bank-c"]),
            state_dir: None,
        },
    )
    .await
    .server
    .unwrap();
    let a = auc(&spec, &out.params, &test);
    eprintln!(
        "default_credit FedAvg 23-128x3-1 (examples/fedavg-default-credit), 3 clients, {} rounds: AUC = {a:.4} ({:.0} s)",
        cfg.rounds,
        t.elapsed().as_secs_f64()
    );
    assert!(a >= 0.777, "AUC {a}");
}
