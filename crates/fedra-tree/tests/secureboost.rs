//! SecureBoost over in-memory channels: secure == plaintext twin (binary,
//! multi-class, regression; OU, Paillier, insecure plaintext; one and two hosts),
//! complete-secure mode, early stopping, host thresholds absent from the
//! transcript, malformed peers, real data against the XGBoost reference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use fedra_data::{Dataset, DatasetSpec, load};
use fedra_federation::{Channel, Failure, FedError, PartyId, PeerStats, Tag, mem::MemNetwork};
use fedra_tree::*;
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rand_core::{RngCore, SeedableRng};

fn pid(s: &str) -> PartyId {
    PartyId::new(s).unwrap()
}

fn failure(me: &PartyId, e: &TreeError) -> Failure {
    Failure {
        party: me.to_string(),
        task: "secureboost".into(),
        round: None,
        code: e.code().into(),
        message: e.to_string(),
    }
}

/// Synthetic vertical data: the guest has 2 features and the label, each host 3;
/// the label depends on features of every party; one host column has NaNs.
fn synthetic(
    rows: usize,
    hosts: usize,
    objective: Objective,
    seed: u64,
) -> (Dataset, Vec<Dataset>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let ids: Vec<String> = (0..rows).map(|i| format!("r{i}")).collect();
    let mut gx = Vec::new();
    let mut hx: Vec<Vec<f64>> = vec![Vec::new(); hosts];
    let mut y = Vec::new();
    for _ in 0..rows {
        let a = u();
        let b = (u() * 5.0).floor();
        gx.extend([a, b]);
        let mut s = 2.0 * a + 0.3 * b;
        for (h, x) in hx.iter_mut().enumerate() {
            let c = u();
            let d = u() * 10.0;
            let e = if u() < 0.1 { f64::NAN } else { u() };
            x.extend([c, d, e]);
            s += if h == 0 {
                3.0 * c - 0.2 * d
            } else {
                1.5 * e.max(0.0)
            };
        }
        s += 0.5 * u();
        y.push(match objective {
            Objective::Binary => f64::from(s > 1.8),
            Objective::Regression => s,
            Objective::MultiClass { classes } => {
                ((s.max(0.0) * 1.3) as u32).min(classes - 1).into()
            }
        });
    }
    let guest = Dataset::new(
        "id",
        ids.clone(),
        Some(("y".into(), y)),
        vec!["g0".into(), "g1".into()],
        gx,
    )
    .unwrap();
    let hs = hx
        .into_iter()
        .enumerate()
        .map(|(h, x)| {
            Dataset::new(
                "id",
                ids.clone(),
                None,
                (0..3).map(|j| format!("h{h}x{j}")).collect(),
                x,
            )
            .unwrap()
        })
        .collect();
    (guest, hs)
}

fn cfg(hosts: usize, objective: Objective, scheme: Scheme) -> Config {
    let mut c = Config::new(
        pid("guest"),
        (0..hosts).map(|h| pid(&format!("host{h}"))).collect(),
        objective,
    );
    c.trees = 3;
    c.max_depth = 3;
    c.max_bins = 8;
    c.learning_rate = 0.3;
    c.scheme = scheme;
    c
}

struct Trained {
    guest: GuestModel,
    hosts: Vec<(HostModel, HostCounters)>,
}

fn train(cfg: &Config, guest: &Dataset, hosts: &[Dataset]) -> Trained {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let parties: Vec<PartyId> = cfg.parties().cloned().collect();
        let mut net = MemNetwork::new("job", &parties);
        let gch = net.take(&cfg.guest).unwrap();
        let (c, d) = (cfg.clone(), guest.clone());
        let g = tokio::spawn(async move {
            let r = train_guest(
                &gch,
                "sb",
                &c,
                &d,
                &mut ChaCha20Rng::seed_from_u64(1),
                |_, _| {},
            )
            .await;
            if let Err(e) = &r {
                gch.abort(&failure(gch.me(), e)).await;
            }
            r
        });
        let mut hs = Vec::new();
        for (k, (h, data)) in cfg.hosts.iter().zip(hosts).enumerate() {
            let ch = net.take(h).unwrap();
            let (c, d) = (cfg.clone(), data.clone());
            hs.push(tokio::spawn(async move {
                let r = train_host(
                    &ch,
                    "sb",
                    &c,
                    &d,
                    &mut ChaCha20Rng::seed_from_u64(10 + k as u64),
                )
                .await;
                if let Err(e) = &r {
                    ch.abort(&failure(ch.me(), e)).await;
                }
                r
            }));
        }
        let guest = g.await.unwrap().unwrap();
        let mut hosts = Vec::new();
        for h in hs {
            hosts.push(h.await.unwrap().unwrap());
        }
        Trained { guest, hosts }
    })
}

fn predict(gm: &GuestModel, hms: &[HostModel], guest: &Dataset, hosts: &[Dataset]) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut parties = vec![pid("guest")];
        parties.extend(gm.hosts.iter().cloned());
        let mut net = MemNetwork::new("job", &parties);
        let gch = net.take(&pid("guest")).unwrap();
        let hchs: Vec<_> = gm.hosts.iter().map(|h| net.take(h).unwrap()).collect();
        let hosts_fut = futures_util::future::try_join_all(
            hchs.iter()
                .zip(hms)
                .zip(hosts)
                .map(|((ch, m), d)| predict_host(ch, "p", m, d)),
        );
        let (p, h) = tokio::join!(predict_guest(&gch, "p", gm, guest), hosts_fut);
        h.unwrap();
        p.unwrap()
    })
}

fn check_twin(cfg: &Config, guest: &Dataset, hosts: &[Dataset]) -> Trained {
    let refs: Vec<&Dataset> = hosts.iter().collect();
    let (pg, ph) = train_plaintext(cfg, guest, &refs).unwrap();
    let t = train(cfg, guest, hosts);
    assert_eq!(
        t.guest.trees, pg.trees,
        "guest trees differ from the plaintext twin"
    );
    assert_eq!(t.guest.base_margin, pg.base_margin);
    for ((hm, _), p) in t.hosts.iter().zip(&ph) {
        assert_eq!(
            hm.trees, p.trees,
            "host trees differ from the plaintext twin"
        );
    }
    let hm: Vec<HostModel> = t.hosts.iter().map(|h| h.0.clone()).collect();
    let secure = predict(&t.guest, &hm, guest, hosts);
    let plain = predict_plaintext(&pg, &ph, guest, &refs).unwrap();
    assert_eq!(secure, plain);
    // Both parties contributed splits (otherwise the test proves little).
    let host_splits: u32 = t.guest.rounds.iter().map(|r| r.host_splits).sum();
    let guest_splits: u32 = t.guest.rounds.iter().map(|r| r.guest_splits).sum();
    assert!(
        host_splits > 0 && guest_splits > 0,
        "{host_splits} {guest_splits}"
    );
    t
}

#[test]
fn binary_ou_equals_plaintext_twin() {
    let (g, h) = synthetic(300, 1, Objective::Binary, 1);
    let t = check_twin(&cfg(1, Objective::Binary, Scheme::Ou), &g, &h);
    let r = &t.guest.rounds[0];
    assert_eq!(r.encryptions, 300, "one packed ciphertext per row per tree");
    assert!(r.decryptions > 0 && t.hosts[0].1.additions > 0);
}

#[test]
fn multiclass_paillier_equals_plaintext_twin() {
    let obj = Objective::MultiClass { classes: 3 };
    let (g, h) = synthetic(200, 1, obj, 2);
    let mut c = cfg(1, obj, Scheme::Paillier);
    c.trees = 2;
    let t = check_twin(&c, &g, &h);
    // Three classes' (g, h) share one Paillier plaintext.
    assert_eq!(t.guest.rounds[0].encryptions, 200);
    let p = predict_plaintext(&t.guest, &[t.hosts[0].0.clone()], &g, &[&h[0]]).unwrap();
    assert_eq!(p.len(), 600);
    assert!(
        p.chunks(3)
            .all(|c| (c.iter().sum::<f64>() - 1.0).abs() < 1e-9)
    );
}

#[test]
fn regression_two_hosts_equals_plaintext_twin() {
    let (g, h) = synthetic(250, 2, Objective::Regression, 3);
    let mut c = cfg(2, Objective::Regression, Scheme::Ou);
    c.colsample_bytree = 0.7;
    c.subsample = 0.8;
    c.alpha = 0.1;
    check_twin(&c, &g, &h);
}

#[test]
fn insecure_plaintext_mode_and_goss_equal_the_twin() {
    let (g, h) = synthetic(400, 1, Objective::Binary, 4);
    let mut c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    c.trees = 4;
    c.goss = Some(Goss {
        top_rate: 0.3,
        other_rate: 0.2,
    });
    check_twin(&c, &g, &h);
}

#[test]
fn complete_secure_first_tree_uses_guest_features_only() {
    let (g, h) = synthetic(300, 1, Objective::Binary, 5);
    let mut c = cfg(1, Objective::Binary, Scheme::Ou);
    c.privacy = Privacy::CompleteSecure;
    let t = check_twin(&c, &g, &h);
    assert!(
        t.guest.trees[0]
            .iter()
            .all(|n| !matches!(n, GuestNode::Host { .. }))
    );
    assert_eq!(t.guest.rounds[0].encryptions, 0);
    assert_eq!(t.hosts[0].0.trees[0], vec![HostNode::Leaf]);
}

#[test]
fn early_stopping_keeps_the_best_round() {
    let (g, h) = synthetic(300, 1, Objective::Binary, 6);
    let mut c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    c.trees = 40;
    c.learning_rate = 1.0;
    c.max_depth = 6;
    c.min_child_weight = 0.0;
    c.early_stopping = Some(EarlyStopping {
        rounds: 2,
        validation_fraction: 0.3,
    });
    let t = check_twin(&c, &g, &h);
    let rounds = &t.guest.rounds;
    assert!(rounds.len() < 40, "should stop early, ran {}", rounds.len());
    let best = rounds
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.valid_loss.unwrap().total_cmp(&b.1.valid_loss.unwrap()))
        .unwrap()
        .0;
    assert_eq!(t.guest.trees.len(), best + 1);
    assert_eq!(t.hosts[0].0.trees.len(), best + 1);
}

/// A channel that records every payload it sends.
struct Recording {
    inner: Box<dyn Channel>,
    sent: Arc<Mutex<Vec<Bytes>>>,
}

#[async_trait]
impl Channel for Recording {
    fn me(&self) -> &PartyId {
        self.inner.me()
    }
    fn job(&self) -> &str {
        self.inner.job()
    }
    fn peers(&self) -> &[PartyId] {
        self.inner.peers()
    }
    async fn send(
        &self,
        to: &PartyId,
        tag: &Tag,
        payload: Bytes,
    ) -> std::result::Result<(), FedError> {
        self.sent.lock().unwrap().push(payload.clone());
        self.inner.send(to, tag, payload).await
    }
    async fn recv(&self, from: &PartyId, tag: &Tag) -> std::result::Result<Bytes, FedError> {
        self.inner.recv(from, tag).await
    }
    async fn abort(&self, f: &Failure) {
        self.inner.abort(f).await
    }
    async fn finish(&self) {
        self.inner.finish().await
    }
    fn stats(&self) -> Vec<PeerStats> {
        self.inner.stats()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn host_thresholds_and_values_never_reach_the_guest() {
    let (g, h) = synthetic(200, 1, Objective::Binary, 7);
    let c = cfg(1, Objective::Binary, Scheme::Ou);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (gm, hm) = rt.block_on(async {
        let parties: Vec<PartyId> = c.parties().cloned().collect();
        let mut net = MemNetwork::new("job", &parties);
        let gch = net.take(&c.guest).unwrap();
        let hch = Recording {
            inner: Box::new(net.take(&c.hosts[0]).unwrap()),
            sent: sent.clone(),
        };
        let mut r1 = ChaCha20Rng::seed_from_u64(1);
        let mut r2 = ChaCha20Rng::seed_from_u64(2);
        let (a, b) = tokio::join!(
            train_guest(&gch, "sb", &c, &g, &mut r1, |_, _| {}),
            train_host(&hch, "sb", &c, &h[0], &mut r2)
        );
        let gm = a.unwrap();
        let (hm, _) = b.unwrap();
        predict_guest_and_host(&gch, &hch, &gm, &hm, &g, &h[0]).await;
        (gm, hm)
    });
    assert!(gm.rounds.iter().map(|r| r.host_splits).sum::<u32>() > 0);
    let transcript: Vec<u8> = sent
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.to_vec())
        .collect();
    let mut thresholds = Vec::new();
    for tree in &hm.trees {
        for n in tree {
            if let HostNode::Own { threshold, .. } = n {
                thresholds.push(*threshold);
            }
        }
    }
    assert!(!thresholds.is_empty());
    for t in thresholds
        .iter()
        .chain(h[0].features().iter().filter(|v| v.is_finite()))
    {
        for enc in [t.to_be_bytes(), t.to_le_bytes()] {
            assert!(
                !contains(&transcript, &enc),
                "{t} found in the host's messages"
            );
        }
        for enc in [(*t as f32).to_be_bytes(), (*t as f32).to_le_bytes()] {
            assert!(
                !contains(&transcript, &enc),
                "{t} (f32) found in the host's messages"
            );
        }
    }
}

async fn predict_guest_and_host(
    gch: &dyn Channel,
    hch: &dyn Channel,
    gm: &GuestModel,
    hm: &HostModel,
    g: &Dataset,
    h: &Dataset,
) {
    let (p, r) = tokio::join!(
        predict_guest(gch, "p", gm, g),
        predict_host(hch, "p", hm, h)
    );
    r.unwrap();
    assert_eq!(p.unwrap().len(), g.n_rows());
}

/// A fake guest that sends `msgs` (tag name, round, payload) to the host in order.
fn host_against(c: &Config, h: &Dataset, msgs: Vec<(&'static str, u64, Vec<u8>)>) -> TreeError {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let parties: Vec<PartyId> = c.parties().cloned().collect();
        let mut net = MemNetwork::new("job", &parties);
        let gch = net.take(&c.guest).unwrap();
        let hch = net.take(&c.hosts[0]).unwrap();
        let fake = async {
            for (name, round, m) in msgs {
                let _ = gch
                    .send(&c.hosts[0], &Tag::new("sb", round, name), Bytes::from(m))
                    .await;
            }
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (r, ()) = tokio::join!(train_host(&hch, "sb", c, h, &mut rng), fake);
        r.unwrap_err()
    })
}

fn clear_key() -> Vec<u8> {
    vec![2, 0, 0, 0, 0]
}

#[test]
fn host_rejects_malformed_guest_messages() {
    let (_, h) = synthetic(20, 1, Objective::Binary, 8);
    let c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    // Wrong scheme, truncated key, garbage key.
    let e = host_against(&c, &h[0], vec![("key", 0, vec![0, 0, 0, 0, 0])]);
    assert!(e.to_string().contains("scheme"), "{e}");
    let e = host_against(&c, &h[0], vec![("key", 0, vec![2, 0])]);
    assert_eq!(e.code(), "fed.decode", "{e}");
    let mut oc = c.clone();
    oc.scheme = Scheme::Ou;
    let e = host_against(&oc, &h[0], vec![("key", 0, vec![0, 0, 0, 0, 3, 1, 2, 3])]);
    assert_eq!(e.code(), "fed.decode", "{e}");
    // A tree with the wrong ciphertext count.
    let mut start = vec![0u8, 0];
    start.extend(1u32.to_be_bytes()); // ciphertexts per row
    start.extend(1u32.to_be_bytes()); // bins per packed ciphertext
    start.extend(0u32.to_be_bytes()); // bits per bin
    start.extend([0xff, 0xff, 0x0f]); // 20 rows sampled
    start.extend(5u64.to_be_bytes());
    let e = host_against(
        &c,
        &h[0],
        vec![("key", 0, clear_key()), ("start", 0, start.clone())],
    );
    assert!(e.to_string().contains("ciphertexts, expected 20"), "{e}");
    // A bit set beyond the row count is just ignored by position; a huge count is refused.
    let mut huge = vec![0u8, 0];
    huge.extend(1u32.to_be_bytes()); // ciphertexts per row
    huge.extend(1u32.to_be_bytes()); // bins per packed ciphertext
    huge.extend(0u32.to_be_bytes()); // bits per bin
    huge.extend([0xff, 0xff, 0x0f]);
    huge.extend(u64::MAX.to_be_bytes());
    let e = host_against(&c, &h[0], vec![("key", 0, clear_key()), ("start", 0, huge)]);
    assert_eq!(e.code(), "fed.decode", "{e}");
    // A valid tree start, then a partition for a node that was never split.
    let mut ok = vec![0u8, 0];
    ok.extend(1u32.to_be_bytes()); // ciphertexts per row
    ok.extend(1u32.to_be_bytes()); // bins per packed ciphertext
    ok.extend(0u32.to_be_bytes()); // bits per bin
    ok.extend([0xff, 0xff, 0x0f]);
    ok.extend(20u64.to_be_bytes());
    for _ in 0..20 {
        let mut item = vec![0u8; 256];
        item[255] = 1;
        ok.extend(item);
    }
    let mut level = vec![0u8];
    level.extend(1u32.to_be_bytes());
    level.extend(0u32.to_be_bytes());
    level.extend(3u32.to_be_bytes());
    level.extend([1, 2, 3]);
    level.extend(0u32.to_be_bytes());
    let e = host_against(
        &c,
        &h[0],
        vec![
            ("key", 0, clear_key()),
            ("start", 0, ok.clone()),
            ("level", 0, level),
        ],
    );
    assert!(e.to_string().contains("not split"), "{e}");
    // A decision with children out of order, and a split id that does not exist.
    let mut level = vec![0u8];
    level.extend(0u32.to_be_bytes());
    level.extend(1u32.to_be_bytes());
    level.extend(0u32.to_be_bytes());
    for (l, r, split) in [(5u32, 6u32, 0u32), (1, 2, 99 << 8)] {
        let mut decide = Vec::new();
        decide.extend(1u32.to_be_bytes());
        decide.extend(0u32.to_be_bytes());
        decide.push(2);
        decide.extend(l.to_be_bytes());
        decide.extend(r.to_be_bytes());
        decide.extend(0u32.to_be_bytes());
        decide.extend(split.to_be_bytes());
        decide.push(0);
        let e = host_against(
            &c,
            &h[0],
            vec![
                ("key", 0, clear_key()),
                ("start", 0, ok.clone()),
                ("level", 0, level.clone()),
                ("decide", 0, decide),
            ],
        );
        assert_eq!(e.code(), "tree.model", "{e}");
    }
}

#[test]
fn guest_rejects_a_host_with_other_rows_or_bad_slots() {
    let (g, _) = synthetic(20, 1, Objective::Binary, 9);
    let c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    for meta in [
        {
            let mut m = 21u64.to_be_bytes().to_vec();
            m.extend(0u32.to_be_bytes());
            m
        },
        {
            let mut m = 20u64.to_be_bytes().to_vec();
            m.extend(1u32.to_be_bytes());
            m.extend(9999u32.to_be_bytes());
            m
        },
        vec![1, 2, 3],
    ] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(async {
            let parties: Vec<PartyId> = c.parties().cloned().collect();
            let mut net = MemNetwork::new("job", &parties);
            let gch = net.take(&c.guest).unwrap();
            let hch = net.take(&c.hosts[0]).unwrap();
            let fake = async {
                let _ = hch
                    .send(&c.guest, &Tag::new("sb", 0, "meta"), Bytes::from(meta))
                    .await;
            };
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (r, ()) = tokio::join!(train_guest(&gch, "sb", &c, &g, &mut rng, |_, _| {}), fake);
            r.unwrap_err()
        });
        assert_eq!(e.code(), "fed.decode", "{e}");
        assert_eq!(e.party(), Some("host0"));
    }
}

#[test]
fn config_is_validated_with_field_names() {
    let mut c = cfg(1, Objective::Binary, Scheme::Ou);
    c.max_depth = 0;
    assert!(c.validate().unwrap_err().to_string().contains("max_depth"));
    let mut c = cfg(1, Objective::Binary, Scheme::Ou);
    c.key_bits = 1024;
    assert!(c.validate().unwrap_err().to_string().contains("key_bits"));
    let t: Config = toml::from_str(
        r#"guest = "guest"
hosts = ["host"]
objective = { multi_class = { classes = 4 } }
goss = { top_rate = 0.2, other_rate = 0.1 }
scheme = "paillier"
"#,
    )
    .unwrap();
    t.validate().unwrap();
    assert_eq!(t.trees, 64);
    assert!(
        toml::from_str::<Config>("guest = \"g\"\nhosts = []\nobjective = \"binary\"\nbogus = 1")
            .is_err()
    );
}

#[test]
fn models_round_trip_and_corrupt_models_are_refused() {
    let (g, h) = synthetic(100, 1, Objective::Binary, 10);
    let c = cfg(1, Objective::Binary, Scheme::Ou);
    let (gm, hm) = train_plaintext(&c, &g, &[&h[0]]).unwrap();
    assert_eq!(GuestModel::from_json(&gm.to_json().unwrap()).unwrap(), gm);
    assert_eq!(
        HostModel::from_json(&hm[0].to_json().unwrap()).unwrap(),
        hm[0]
    );
    let mut bad = gm.clone();
    if let Some(GuestNode::Guest { left, .. } | GuestNode::Host { left, .. }) =
        bad.trees[0].get_mut(0)
    {
        *left = 0; // a cycle
    }
    assert!(GuestModel::from_json(&bad.to_json().unwrap()).is_err());
}

fn fate() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/fate");
    dir.is_dir().then_some(dir)
}

/// Breast (569 rows, 10 + 20 features): held-out AUC of the twin (== the secure
/// protocol, see the tests above) on a stratified 80/20 split.
#[test]
fn breast_heldout_auc() {
    let Some(dir) = fate() else { return };
    let g = load(&DatasetSpec::new(dir.join("breast_hetero_guest.csv")).with_label("y")).unwrap();
    let h = load(&DatasetSpec::new(dir.join("breast_hetero_host.csv"))).unwrap();
    let y = g.labels().unwrap().to_vec();
    let mut test = vec![false; y.len()];
    for class in [0.0, 1.0] {
        let idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        for &i in idx.iter().step_by(5) {
            test[i] = true;
        }
    }
    let tr: Vec<usize> = (0..y.len()).filter(|&i| !test[i]).collect();
    let te: Vec<usize> = (0..y.len()).filter(|&i| test[i]).collect();
    let mut c = Config::new(pid("guest"), vec![pid("host")], Objective::Binary);
    c.trees = 30;
    let (gtr, htr) = (g.select_rows(&tr).unwrap(), h.select_rows(&tr).unwrap());
    let (gte, hte) = (g.select_rows(&te).unwrap(), h.select_rows(&te).unwrap());
    let (gm, hm) = train_plaintext(&c, &gtr, &[&htr]).unwrap();
    let p = predict_plaintext(&gm, &hm, &gte, &[&hte]).unwrap();
    let yte: Vec<f64> = te.iter().map(|&i| y[i]).collect();
    let auc = fedra_metrics::roc_auc(&yte, &p).unwrap();
    assert!(auc >= 0.98, "held-out AUC {auc}");
}
