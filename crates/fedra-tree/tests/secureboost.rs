//! SecureBoost over in-memory channels: secure == plaintext twin (binary,
//! multi-class, regression; OU, Paillier, insecure plaintext; one and two hosts),
//! complete-secure mode, early stopping, host thresholds absent from the
//! transcript, malformed peers, real data against the XGBoost reference.
//! Private prediction: equal to `predict_plaintext` up to fixed-point rounding
//! (binary, 3-class, regression; one and two hosts), the guest receives only
//! ciphertexts and the hosts no leaf weight, malformed messages in every
//! direction (guest → host, host → host, host → guest) are errors naming the peer.

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
    let run = run_predict(gm, hms, guest, hosts, vec![]);
    for h in run.hosts {
        h.unwrap();
    }
    let (p, stats) = run.guest.unwrap();
    assert!(stats.encryptions > 0 && stats.decryptions > 0, "{stats:?}");
    p
}

/// Secure predictions agree with the plaintext oracle up to the fixed-point
/// rounding of the leaf weights (2^-precision_bits per tree).
fn assert_close(secure: &[f64], plain: &[f64]) {
    assert_eq!(secure.len(), plain.len());
    for (i, (a, b)) in secure.iter().zip(plain).enumerate() {
        assert!(
            (a - b).abs() <= 1e-7,
            "row value {i}: secure {a}, plaintext {b}"
        );
    }
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
    assert_close(&secure, &plain);
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
    // At prediction the first tree never leaves the guest either: only the trees
    // with host splits are encrypted and masked.
    let hm: Vec<HostModel> = t.hosts.iter().map(|h| h.0.clone()).collect();
    let run = run_predict(&t.guest, &hm, &g, &h, vec![]);
    let (_, stats) = run.guest.unwrap();
    let shared: usize = shared_leaf_counts(&t.guest).iter().sum();
    let all: usize = leaf_counts(&t.guest).iter().sum();
    assert!(shared < all);
    assert_eq!(stats.encryptions, shared as u64);
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

/// Rewrites an outgoing payload (by tag) before it leaves: a malformed peer.
type Tamper = Arc<dyn Fn(&Tag, Bytes) -> Bytes + Send + Sync>;
/// Every payload a party sent: (recipient, tag name, payload as sent).
type Sent = Vec<(PartyId, String, Bytes)>;
type Log = Arc<Mutex<Sent>>;

/// A channel that records every payload it sends (and may tamper with it first).
struct Recording {
    inner: Box<dyn Channel>,
    sent: Log,
    tamper: Option<Tamper>,
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
        let payload = match &self.tamper {
            Some(f) => f(tag, payload),
            None => payload,
        };
        self.sent
            .lock()
            .unwrap()
            .push((to.clone(), tag.name().to_string(), payload.clone()));
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
            tamper: None,
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
        .flat_map(|(_, _, b)| b.to_vec())
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
    let mut r1 = ChaCha20Rng::seed_from_u64(3);
    let mut r2 = ChaCha20Rng::seed_from_u64(4);
    let (p, r) = tokio::join!(
        predict_guest(gch, "p", gm, g, &mut r1),
        predict_host(hch, "p", hm, h, &mut r2)
    );
    r.unwrap();
    assert_eq!(p.unwrap().0.len(), g.n_rows());
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

// ---------------------------------------------------------------------------
// Private prediction: each party walks its own splits, the guest learns only
// the scores.

/// The outcome of one prediction job over in-memory channels.
struct PredictRun {
    guest: Result<(Vec<f64>, PredictStats)>,
    hosts: Vec<Result<HostCounters>>,
    /// What each party sent, by party name.
    logs: Vec<(PartyId, Sent)>,
}

/// Runs `predict_guest` and every `predict_host` as concurrent parties; the
/// parties named in `tamper` rewrite their outgoing messages. A failing party
/// aborts the job, as the runtime does.
fn run_predict(
    gm: &GuestModel,
    hms: &[HostModel],
    guest: &Dataset,
    hosts: &[Dataset],
    tamper: Vec<(&str, Tamper)>,
) -> PredictRun {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let g = pid("guest");
        let mut parties = vec![g.clone()];
        parties.extend(gm.hosts.iter().cloned());
        let mut net = MemNetwork::new("job", &parties);
        let mut chans = Vec::new();
        for p in &parties {
            chans.push(Recording {
                inner: Box::new(net.take(p).unwrap()),
                sent: Arc::new(Mutex::new(Vec::new())),
                tamper: tamper
                    .iter()
                    .find(|(n, _)| *n == p.as_str())
                    .map(|(_, f)| f.clone()),
            });
        }
        let gch = &chans[0];
        let gfut = async {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            let r = predict_guest(gch, "p", gm, guest, &mut rng).await;
            if let Err(e) = &r {
                gch.abort(&failure(gch.me(), e)).await;
            }
            r
        };
        let hfuts =
            futures_util::future::join_all(chans[1..].iter().zip(hms).zip(hosts).enumerate().map(
                |(i, ((ch, m), d))| async move {
                    let mut rng = ChaCha20Rng::seed_from_u64(20 + i as u64);
                    let r = predict_host(ch, "p", m, d, &mut rng).await;
                    if let Err(e) = &r {
                        ch.abort(&failure(ch.me(), e)).await;
                    }
                    r
                },
            ));
        let (guest, hosts) = tokio::join!(gfut, hfuts);
        let logs = chans
            .iter()
            .map(|c| (c.me().clone(), c.sent.lock().unwrap().clone()))
            .collect();
        PredictRun { guest, hosts, logs }
    })
}

/// Leaves per tree, in node-id order (the numbering of the masks).
fn leaf_counts(gm: &GuestModel) -> Vec<usize> {
    gm.trees
        .iter()
        .map(|t| {
            t.iter()
                .filter(|n| matches!(n, GuestNode::Leaf { .. }))
                .count()
        })
        .collect()
}

/// Leaves per tree of the trees with host splits (the ones the protocol carries;
/// the guest adds the others itself).
fn shared_leaf_counts(gm: &GuestModel) -> Vec<usize> {
    gm.trees
        .iter()
        .filter(|t| t.iter().any(|n| matches!(n, GuestNode::Host { .. })))
        .map(|t| {
            t.iter()
                .filter(|n| matches!(n, GuestNode::Leaf { .. }))
                .count()
        })
        .collect()
}

/// The leaf (numbered in node-id order) that row `r` reaches in tree `t`, walked
/// with every party's model and data (test-side knowledge no party has).
fn true_leaf(
    gm: &GuestModel,
    hms: &[HostModel],
    g: &Dataset,
    hs: &[Dataset],
    t: usize,
    r: usize,
) -> usize {
    let left = |v: f64, th: f64, dl: bool| if v.is_nan() { dl } else { v < th };
    let tree = &gm.trees[t];
    let mut i = 0;
    loop {
        i = match &tree[i] {
            GuestNode::Leaf { .. } => {
                return tree[..i]
                    .iter()
                    .filter(|n| matches!(n, GuestNode::Leaf { .. }))
                    .count();
            }
            GuestNode::Guest {
                feature,
                threshold,
                default_left,
                left: l,
                right,
            } => {
                let nf = g.feature_names().len();
                let v = g.features()[r * nf + feature];
                if left(v, *threshold, *default_left) {
                    *l
                } else {
                    *right
                }
            }
            GuestNode::Host {
                party,
                left: l,
                right,
                ..
            } => {
                let HostNode::Own {
                    feature,
                    threshold,
                    default_left,
                    ..
                } = &hms[*party].trees[t][i]
                else {
                    panic!("host {party} does not own node {i} of tree {t}");
                };
                let nf = hs[*party].feature_names().len();
                let v = hs[*party].features()[r * nf + feature];
                if left(v, *threshold, *default_left) {
                    *l
                } else {
                    *right
                }
            }
        } as usize;
    }
}

/// Host splits per host index.
fn host_split_counts(gm: &GuestModel) -> Vec<usize> {
    let mut c = vec![0; gm.hosts.len()];
    for t in &gm.trees {
        for n in t {
            if let GuestNode::Host { party, .. } = n {
                c[*party] += 1;
            }
        }
    }
    c
}

fn secure_matches_oracle(objective: Objective, hosts: usize, scheme: Scheme, seed: u64) {
    let (g, h) = synthetic(240, hosts, objective, seed);
    let mut c = cfg(hosts, objective, scheme);
    c.trees = 4;
    c.max_depth = 4;
    let refs: Vec<&Dataset> = h.iter().collect();
    let (gm, hms) = train_plaintext(&c, &g, &refs).unwrap();
    assert_eq!(gm.scheme, scheme);
    // Every party owns splits (otherwise the intersection proves little).
    assert!(gm.rounds.iter().map(|r| r.guest_splits).sum::<u32>() > 0);
    let per_host = host_split_counts(&gm);
    assert!(per_host.iter().all(|&n| n > 0), "host splits {per_host:?}");
    let run = run_predict(&gm, &hms, &g, &h, vec![]);
    let counters: Vec<HostCounters> = run.hosts.into_iter().map(|r| r.unwrap()).collect();
    let (secure, stats) = run.guest.unwrap();
    let plain = predict_plaintext(&gm, &hms, &g, &refs).unwrap();
    assert_close(&secure, &plain);
    // One ciphertext per leaf (all classes fit one plaintext here); the last host
    // packs several rows' sums into each ciphertext it returns.
    let leaves: usize = shared_leaf_counts(&gm).iter().sum();
    assert_eq!(stats.encryptions, leaves as u64, "{stats:?}");
    assert!(
        stats.decryptions > 0 && stats.decryptions < 240 / 4,
        "{stats:?}"
    );
    let last = counters.last().unwrap();
    assert_eq!(last.rerandomized, stats.decryptions);
    assert!(last.additions >= 240 * 3, "{last:?}");
    // Earlier hosts only intersect and forward.
    assert!(
        counters[..hosts - 1]
            .iter()
            .all(|c| *c == HostCounters::default())
    );
    if let Objective::MultiClass { classes } = objective {
        assert!(
            secure
                .chunks(classes as usize)
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-9)
        );
    }
}

#[test]
fn secure_prediction_matches_oracle_binary_one_and_two_hosts() {
    secure_matches_oracle(Objective::Binary, 1, Scheme::Ou, 21);
    secure_matches_oracle(Objective::Binary, 2, Scheme::Ou, 22);
}

#[test]
fn secure_prediction_matches_oracle_multiclass_one_and_two_hosts() {
    let obj = Objective::MultiClass { classes: 3 };
    secure_matches_oracle(obj, 1, Scheme::Paillier, 23);
    secure_matches_oracle(obj, 2, Scheme::Ou, 24);
}

#[test]
fn secure_prediction_matches_oracle_regression_one_and_two_hosts() {
    secure_matches_oracle(Objective::Regression, 1, Scheme::Ou, 25);
    secure_matches_oracle(Objective::Regression, 2, Scheme::Paillier, 26);
}

#[test]
fn insecure_plaintext_prediction_matches_oracle() {
    secure_matches_oracle(Objective::Binary, 2, Scheme::InsecurePlaintext, 27);
    secure_matches_oracle(
        Objective::MultiClass { classes: 4 },
        1,
        Scheme::InsecurePlaintext,
        28,
    );
}

/// Fixed-point and float encodings of every leaf weight (the plaintexts the
/// hosts must never see). Small values are skipped: their short encodings could
/// match by chance.
fn weight_encodings(gm: &GuestModel) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for t in &gm.trees {
        for n in t {
            if let GuestNode::Leaf { weights } = n {
                for w in weights {
                    let v = (w * 2f64.powi(gm.precision_bits as i32)).round() as i64;
                    if v.unsigned_abs() < 1 << 24 {
                        continue;
                    }
                    out.push(v.to_be_bytes().to_vec());
                    out.push(v.to_le_bytes().to_vec());
                    out.push(v.unsigned_abs().to_be_bytes().to_vec());
                    out.push(w.to_be_bytes().to_vec());
                    out.push(w.to_le_bytes().to_vec());
                }
            }
        }
    }
    out
}

#[test]
fn prediction_transcript_guest_sees_only_ciphertexts_hosts_see_no_weights() {
    let rows = 200;
    let (g, h) = synthetic(rows, 1, Objective::Binary, 7);
    let mut c = cfg(1, Objective::Binary, Scheme::Ou);
    c.trees = 4;
    c.max_depth = 4;
    let (gm, hms) = train_plaintext(&c, &g, &[&h[0]]).unwrap();
    assert!(host_split_counts(&gm)[0] > 0);
    let run = run_predict(&gm, &hms, &g, &h, vec![]);
    for r in run.hosts {
        r.unwrap();
    }
    run.guest.unwrap();
    let (host_log, guest_log) = (&run.logs[1].1, &run.logs[0].1);

    // 1. Everything the guest receives: one message of re-randomised ciphertexts.
    assert_eq!(host_log.len(), 1);
    let (to, name, msg) = &host_log[0];
    assert_eq!((to.as_str(), name.as_str()), ("guest", "predict-sums"));
    let count = u64::from_be_bytes(msg[..8].try_into().unwrap()) as usize;
    assert!(
        count > 0 && count < rows / 4,
        "{count} ciphertexts for {rows} rows"
    );
    assert_eq!((msg.len() - 8) % count, 0);
    assert!((msg.len() - 8) / count >= 256, "2048-bit ciphertexts only");
    // ... holding no host threshold or feature value ...
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for tree in &hms[0].trees {
        for n in tree {
            if let HostNode::Own { threshold, .. } = n {
                secrets.push(threshold.to_be_bytes().to_vec());
                secrets.push(threshold.to_le_bytes().to_vec());
            }
        }
    }
    assert!(!secrets.is_empty());
    for v in h[0].features().iter().filter(|v| v.is_finite()) {
        secrets.push(v.to_be_bytes().to_vec());
        secrets.push(v.to_le_bytes().to_vec());
    }
    // ... no bit pattern of host split outcomes (the old protocol's per-split row
    // bitmaps) ...
    let nf = h[0].feature_names().len();
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for tree in &hms[0].trees {
        for n in tree {
            if let HostNode::Own {
                feature,
                threshold,
                default_left,
                ..
            } = n
            {
                let mut b = vec![0u8; rows.div_ceil(8)];
                for r in 0..rows {
                    let v = h[0].features()[r * nf + feature];
                    if if v.is_nan() {
                        *default_left
                    } else {
                        v < *threshold
                    } {
                        b[r / 8] |= 1 << (r % 8);
                    }
                }
                patterns.push(b);
            }
        }
    }
    // ... and no leaf masks: neither the rows' true leaves nor any tree's mask block.
    for (t, &l) in leaf_counts(&gm).iter().enumerate() {
        let w = l.div_ceil(8);
        let mut block = vec![0u8; rows * w];
        for r in 0..rows {
            let leaf = true_leaf(&gm, &hms, &g, &h, t, r);
            block[r * w + leaf / 8] |= 1 << (leaf % 8);
        }
        patterns.push(block);
    }
    for p in secrets.iter().chain(&patterns) {
        assert!(
            !contains(msg, p),
            "the guest received a plaintext pattern {p:?}"
        );
    }

    // 2. The host receives the guest's masks and leaf-weight ciphertexts, but no
    //    leaf weight in the clear.
    assert_eq!(guest_log.len(), 2);
    let to_host: Vec<u8> = guest_log.iter().flat_map(|(_, _, b)| b.to_vec()).collect();
    let weights = weight_encodings(&gm);
    assert!(!weights.is_empty());
    for w in &weights {
        assert!(
            !contains(&to_host, w),
            "a leaf weight reached the host: {w:?}"
        );
    }
    // The same check catches them in the loudly named insecure mode.
    let mut gp = gm.clone();
    gp.scheme = Scheme::InsecurePlaintext;
    let hp: Vec<HostModel> = hms
        .iter()
        .map(|m| HostModel {
            scheme: Scheme::InsecurePlaintext,
            ..m.clone()
        })
        .collect();
    let run = run_predict(&gp, &hp, &g, &h, vec![]);
    let (p, _) = run.guest.unwrap();
    assert_close(&p, &predict_plaintext(&gm, &hms, &g, &[&h[0]]).unwrap());
    let to_host: Vec<u8> = run.logs[0]
        .1
        .iter()
        .flat_map(|(_, _, b)| b.to_vec())
        .collect();
    assert!(
        weight_encodings(&gp).iter().any(|w| contains(&to_host, w)),
        "the detector finds plaintext weights"
    );
}

/// Offsets in a `predict-masks` message: (start of the packing parameters,
/// start of the ciphertexts, start of the masks) and the leaf counts it states.
fn masks_layout(msg: &[u8], rows: usize) -> (usize, usize, usize, Vec<usize>) {
    let kl = u32::from_be_bytes(msg[1..5].try_into().unwrap()) as usize;
    let trees_at = 5 + kl + 8;
    let trees = u32::from_be_bytes(msg[trees_at..trees_at + 4].try_into().unwrap()) as usize;
    let leaves: Vec<usize> = (0..trees)
        .map(|t| {
            let at = trees_at + 4 + 8 * t + 4;
            u32::from_be_bytes(msg[at..at + 4].try_into().unwrap()) as usize
        })
        .collect();
    let params = trees_at + 4 + 8 * trees;
    let cts = params + 20;
    let masks = msg.len() - rows * leaves.iter().map(|l| l.div_ceil(8)).sum::<usize>();
    (params, cts, masks, leaves)
}

fn tampered(name: &'static str, f: impl Fn(&mut Vec<u8>) + Send + Sync + 'static) -> Tamper {
    Arc::new(move |tag: &Tag, b: Bytes| {
        if tag.name() == name {
            let mut v = b.to_vec();
            f(&mut v);
            Bytes::from(v)
        } else {
            b
        }
    })
}

/// The error of `victim` when `culprit` tampers with its messages; it must be a
/// decode error naming the culprit and containing `want`.
fn expect_blame(
    models: &(GuestModel, Vec<HostModel>),
    data: &(Dataset, Vec<Dataset>),
    culprit: &'static str,
    victim: &str,
    f: Tamper,
    want: &str,
) {
    let run = run_predict(&models.0, &models.1, &data.0, &data.1, vec![(culprit, f)]);
    let e = if victim == "guest" {
        run.guest.expect_err("the guest should fail")
    } else {
        let i = models
            .0
            .hosts
            .iter()
            .position(|h| h.as_str() == victim)
            .unwrap();
        run.hosts
            .into_iter()
            .nth(i)
            .unwrap()
            .expect_err("the host should fail")
    };
    assert_eq!(e.code(), "fed.decode", "{e}");
    assert_eq!(e.party(), Some(culprit), "{e}");
    assert!(e.to_string().contains(want), "{e} (expected '{want}')");
}

#[test]
fn host_rejects_malformed_prediction_messages() {
    let rows = 60;
    let data = synthetic(rows, 1, Objective::Binary, 30);
    let mut c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    c.max_depth = 4;
    let refs: Vec<&Dataset> = data.1.iter().collect();
    let models = train_plaintext(&c, &data.0, &refs).unwrap();
    let last_l = *shared_leaf_counts(&models.0).last().unwrap();
    assert!(host_split_counts(&models.0)[0] > 0);
    let lay = move |m: &[u8]| masks_layout(m, rows);
    let cases: Vec<(Tamper, &str)> = vec![
        (tampered("predict", |m| m[7] ^= 1), "rows"),
        (
            tampered("predict", |m| {
                // The chain names another party instead of this host.
                let n = m.len();
                m[n - 1] = b'9';
            }),
            "not in the host chain",
        ),
        (
            tampered("predict-masks", |m| {
                m.pop();
            }),
            "more bytes expected",
        ),
        (tampered("predict-masks", |m| m.push(0)), "trailing"),
        (tampered("predict-masks", |m| m[0] = 0), "scheme"),
        (
            tampered("predict-masks", move |m| {
                let (params, ..) = lay(m);
                m[params - 1] ^= 1; // the last tree's leaf count
            }),
            "leaves, this host's",
        ),
        (
            tampered("predict-masks", move |m| {
                let (params, ..) = lay(m);
                m[params + 8..params + 12].copy_from_slice(&u32::MAX.to_be_bytes());
            }),
            "exceeds the plaintext capacity",
        ),
        (
            tampered("predict-masks", move |m| {
                let (_, cts, ..) = lay(m);
                m[cts - 1] ^= 1; // the ciphertext count
            }),
            "leaf ciphertexts, expected",
        ),
        (
            tampered("predict-masks", move |m| {
                let (_, cts, ..) = lay(m);
                m[cts] = 7; // not a sign byte
            }),
            "leaf ciphertext 0",
        ),
        (
            tampered("predict-masks", move |m| {
                let (_, _, masks, _) = lay(m);
                m[masks..].fill(0);
            }),
            "no leaf is consistent",
        ),
        (
            tampered("predict-masks", move |m| {
                // Every leaf open for every row: the guest's splits are not applied.
                let (_, _, masks, leaves) = lay(m);
                let mut at = masks;
                for &l in &leaves {
                    for _ in 0..rows {
                        for j in 0..l {
                            m[at + j / 8] |= 1 << (j % 8);
                        }
                        at += l.div_ceil(8);
                    }
                }
            }),
            "exactly one expected",
        ),
    ];
    for (f, want) in cases {
        expect_blame(&models, &data, "guest", "host0", f, want);
    }
    // A bit for a leaf that does not exist (the last tree's last row).
    assert_ne!(last_l % 8, 0, "the last byte of the masks has padding bits");
    let f = tampered("predict-masks", |m| {
        let n = m.len();
        m[n - 1] |= 0x80;
    });
    expect_blame(&models, &data, "guest", "host0", f, "beyond the tree's");
    // With OU: an invalid ciphertext and a garbage key.
    let ou = {
        let mut gm = models.0.clone();
        gm.scheme = Scheme::Ou;
        let hm: Vec<HostModel> = models
            .1
            .iter()
            .map(|m| HostModel {
                scheme: Scheme::Ou,
                ..m.clone()
            })
            .collect();
        (gm, hm)
    };
    let f = tampered("predict-masks", move |m| {
        let (_, cts, ..) = masks_layout(m, rows);
        m[cts..cts + 256].fill(0xff);
    });
    expect_blame(&ou, &data, "guest", "host0", f, "leaf ciphertext 0");
    let f = tampered("predict-masks", |m| m[5..9].fill(0xee));
    expect_blame(&ou, &data, "guest", "host0", f, "predict-masks");
}

#[test]
fn guest_rejects_malformed_prediction_sums() {
    let data = synthetic(60, 1, Objective::Binary, 31);
    let c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    let refs: Vec<&Dataset> = data.1.iter().collect();
    let models = train_plaintext(&c, &data.0, &refs).unwrap();
    let width = 256; // the insecure mode's item: a sign byte and 255 magnitude bytes
    // The bound the guest derives: Σ over trees of the largest fixed-point weight.
    let bound: u128 = models
        .0
        .trees
        .iter()
        .map(|t| {
            t.iter()
                .filter_map(|n| match n {
                    GuestNode::Leaf { weights } => {
                        Some((weights[0] * 2f64.powi(32)).round().abs() as u128)
                    }
                    _ => None,
                })
                .max()
                .unwrap()
        })
        .sum();
    let cases: Vec<(Tamper, &str)> = vec![
        (
            tampered("predict-sums", |m| {
                m.pop();
            }),
            "more bytes expected",
        ),
        (tampered("predict-sums", |m| m.push(1)), "trailing"),
        (
            tampered("predict-sums", |m| m[7] += 1),
            "ciphertexts, expected",
        ),
        (tampered("predict-sums", |m| m[8] = 9), "ciphertext 0"),
        (
            tampered("predict-sums", move |m| {
                // A value far beyond the packing layout.
                m[8..8 + width].fill(0);
                m[9] = 1;
            }),
            "does not fit its layout",
        ),
        (
            tampered("predict-sums", move |m| {
                // Fits the layout but exceeds any sum of leaf weights.
                m[9..8 + width].fill(0);
                m[8 + width - 16..8 + width].copy_from_slice(&(bound + 1).to_be_bytes());
            }),
            "is not a sum of leaf weights",
        ),
    ];
    for (f, want) in cases {
        expect_blame(&models, &data, "host0", "guest", f, want);
    }
}

#[test]
fn next_host_rejects_malformed_forwarded_masks() {
    let rows = 80;
    let data = synthetic(rows, 2, Objective::Binary, 32);
    let mut c = cfg(2, Objective::Binary, Scheme::InsecurePlaintext);
    c.trees = 4;
    c.max_depth = 4;
    let refs: Vec<&Dataset> = data.1.iter().collect();
    let models = train_plaintext(&c, &data.0, &refs).unwrap();
    let f = tampered("predict-masks", move |m| {
        let (_, _, masks, _) = masks_layout(m, rows);
        m[masks..].fill(0);
    });
    expect_blame(&models, &data, "host0", "host1", f, "no leaf is consistent");
    let f = tampered("predict-masks", |m| m.truncate(m.len() / 2));
    expect_blame(&models, &data, "host0", "host1", f, "predict-masks");
}

#[test]
fn old_models_without_a_scheme_predict_with_ou() {
    let (g, h) = synthetic(50, 1, Objective::Binary, 33);
    let c = cfg(1, Objective::Binary, Scheme::InsecurePlaintext);
    let (gm, hms) = train_plaintext(&c, &g, &[&h[0]]).unwrap();
    let strip = |json: String, keys: &[&str]| {
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for k in keys {
            v.as_object_mut().unwrap().remove(*k);
        }
        v.to_string()
    };
    let old_g = strip(
        gm.to_json().unwrap(),
        &["scheme", "key_bits", "precision_bits"],
    );
    let old_h = strip(hms[0].to_json().unwrap(), &["scheme"]);
    let gm2 = GuestModel::from_json(&old_g).unwrap();
    let hm2 = HostModel::from_json(&old_h).unwrap();
    assert_eq!(
        (gm2.scheme, gm2.key_bits, gm2.precision_bits),
        (Scheme::Ou, 2048, 32)
    );
    assert_eq!(hm2.scheme, Scheme::Ou);
    let p = predict(&gm2, &[hm2], &g, &h);
    assert_close(&p, &predict_plaintext(&gm, &hms, &g, &[&h[0]]).unwrap());
}
