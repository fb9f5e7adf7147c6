//! Integration tests of fedra-psi: both protocols over an in-memory network.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use fedra_data::{DatasetSpec, load};
use fedra_federation::mem::{MemChannel, MemNetwork, MemOptions};
use fedra_federation::{Channel, PartyId, Tag};
use fedra_psi::hash::hash_to_group;
use fedra_psi::{
    Duplicates, EcdhConfig, Intersection, OutputMode, PsiError, PsiStats, Role, RsaConfig,
    RsaOutput, RsaPsiKey, SignCache, align, align_with, ecdh_psi, rsa_psi_client,
    rsa_psi_key_holder,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

type Out = Result<(Intersection, PsiStats), PsiError>;

fn net() -> (MemChannel, MemChannel, PartyId, PartyId) {
    let (a, b) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    // A receive deadline turns "one party failed, the other waits forever" into a
    // test failure instead of a hang.
    let opts = MemOptions {
        recv_timeout: Some(std::time::Duration::from_secs(60)),
        ..MemOptions::default()
    };
    let mut n = MemNetwork::with_options("job-psi", &[a.clone(), b.clone()], opts);
    (n.take(&a).unwrap(), n.take(&b).unwrap(), a, b)
}

/// Two random id sets of `n` each with exactly `overlap` common ids.
fn sets(n: usize, overlap: usize, seed: u64) -> (Vec<String>, Vec<String>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut id = || format!("u{:016x}", rng.next_u64());
    let common: Vec<String> = (0..overlap).map(|_| id()).collect();
    let mut xs = common.clone();
    xs.extend((overlap..n).map(|_| id()));
    let mut ys: Vec<String> = (overlap..n).map(|_| id()).collect();
    ys.extend(common);
    (xs, ys)
}

fn plain(xs: &[String], ys: &[String]) -> BTreeSet<String> {
    let y: HashSet<&String> = ys.iter().collect();
    xs.iter().filter(|x| y.contains(x)).cloned().collect()
}

async fn run_ecdh(cfg: &EcdhConfig, xs: &[String], ys: &[String]) -> (Out, Out) {
    let (ca, cb, a, b) = net();
    let (mut ra, mut rb) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
    tokio::join!(
        ecdh_psi(&ca, &b, Role::Leader, cfg, xs, &mut ra),
        ecdh_psi(&cb, &a, Role::Follower, cfg, ys, &mut rb),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdh_both_mode_equals_plaintext_and_orders_agree() {
    let (xs, ys) = sets(400, 150, 7);
    let cfg = EcdhConfig::new("psi").with_batch_points(64);
    let (ra, rb) = run_ecdh(&cfg, &xs, &ys).await;
    let ((ia, sa), (ib, sb)) = (ra.unwrap(), rb.unwrap());
    let want = plain(&xs, &ys);
    assert_eq!(ia.size, 150);
    assert_eq!(ia.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(ia, ib, "both sides get the same ids in the same order");
    assert!(ia.ids_revealed);
    // 400 own points out + 400 double-blinded back, in batches of 64.
    assert_eq!((sa.points_sent, sb.points_sent), (800, 800));
    assert_eq!(sa.curve_ops, 400 * 2 + 400);
    assert!(sa.bytes_sent >= 800 * 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdh_leader_only_follower_learns_only_the_size() {
    let (xs, ys) = sets(300, 111, 8);
    let cfg = EcdhConfig::new("psi")
        .with_mode(OutputMode::LeaderOnly)
        .with_buckets(4);
    let (ra, rb) = run_ecdh(&cfg, &xs, &ys).await;
    let ((ia, _), (ib, _)) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ia.ids.iter().cloned().collect::<BTreeSet<_>>(),
        plain(&xs, &ys)
    );
    assert!(ia.ids_revealed);
    assert_eq!(ib.size, 111);
    assert!(!ib.ids_revealed);
    assert!(ib.ids.is_empty());
    assert_eq!(
        align(&fake_dataset(&ys), &ib).unwrap_err().code(),
        "psi.align"
    );
}

fn fake_dataset(ids: &[String]) -> fedra_data::Dataset {
    fedra_data::Dataset::new(
        "id",
        ids.to_vec(),
        None,
        vec!["x".into()],
        (0..ids.len()).map(|i| i as f64).collect(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_buckets_give_the_same_intersection_as_one() {
    let (mut xs, ys) = sets(500, 200, 9);
    xs.push(xs[0].clone()); // repeats are collapsed
    let one = EcdhConfig::new("psi").with_batch_points(50);
    let eight = one.clone().with_buckets(8);
    let (r1, _) = run_ecdh(&one, &xs, &ys).await;
    let (r8, r8b) = run_ecdh(&eight, &xs, &ys).await;
    let (i1, s1) = r1.unwrap();
    let (i8, s8) = r8.unwrap();
    assert_eq!(s1.ids_in, 500);
    assert_eq!(s8.buckets, 8);
    let set = |i: &Intersection| i.ids.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(set(&i1), set(&i8));
    assert_eq!(set(&i1), plain(&xs, &ys));
    assert_eq!(i8, r8b.unwrap().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_sets_and_empty_buckets() {
    let ys: Vec<String> = (0..5).map(|i| format!("y{i}")).collect();
    let cfg = EcdhConfig::new("psi").with_buckets(16);
    let (ra, rb) = run_ecdh(&cfg, &[], &ys).await;
    assert_eq!((ra.unwrap().0.size, rb.unwrap().0.size), (0, 0));
    let (ra, rb) = run_ecdh(&cfg, &ys, &ys).await;
    assert_eq!((ra.unwrap().0.size, rb.unwrap().0.size), (5, 5));
    let (rh, rc) = run_rsa(&RsaConfig::new("rsa"), key(), &ys, &[], None).await;
    assert_eq!((rh.unwrap().0.size, rc.unwrap().0.size), (0, 0));
}

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fate")
}

/// The raw values of column `col` of a CSV file (header skipped, CRLF tolerated).
fn raw_column(file: &str, col: usize) -> Vec<String> {
    let text = std::fs::read_to_string(datasets().join(file)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim_end_matches('\r')
                .split(',')
                .nth(col)
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breast_sample_id_files() {
    let guest_file = "breast_hetero_guest_sample_id.csv";
    let host_file = "breast_hetero_host_sample_id.csv";
    // The sample-id columns (mock_id / sample_id), loaded through fedra-data.
    let guest =
        load(&DatasetSpec::new(datasets().join(guest_file)).with_id_column("mock_id")).unwrap();
    let host =
        load(&DatasetSpec::new(datasets().join(host_file)).with_id_column("sample_id")).unwrap();
    assert_eq!((guest.n_rows(), host.n_rows()), (2139, 299));
    let want = plain(&raw_column(guest_file, 0), &raw_column(host_file, 0));
    let cfg = EcdhConfig::new("psi").with_buckets(4);
    let (ra, rb) = run_ecdh(&cfg, guest.ids(), host.ids()).await;
    let (ia, ib) = (ra.unwrap().0, rb.unwrap().0);
    assert_eq!(ia.size, want.len());
    assert_eq!(ib.size, want.len());

    // The shared `id` column (repeated on the guest side): 299 common values.
    let (gid, hid) = (raw_column(guest_file, 1), raw_column(host_file, 1));
    let want = plain(&gid, &hid);
    assert_eq!(want.len(), 299);
    let (ra, rb) = run_ecdh(&cfg, &gid, &hid).await;
    let (ia, ib) = (ra.unwrap().0, rb.unwrap().0);
    assert_eq!(ia.size, want.len());
    assert_eq!(ia.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(ia, ib);
    // Align the host's rows (keyed by `id`) to the agreed order.
    let host_by_id = load(
        &DatasetSpec::new(datasets().join(host_file))
            .with_features((0..20).map(|j| format!("x{j}")).collect::<Vec<_>>()),
    )
    .unwrap();
    let aligned = align(&host_by_id, &ib).unwrap();
    assert_eq!(aligned.ids(), &ib.ids[..]);
    assert_eq!(aligned.n_features(), 20);
    // On the guest side the `id` column repeats: alignment refuses to guess.
    let guest_by_id = load(
        &DatasetSpec::new(datasets().join(guest_file))
            .with_allow_duplicate_ids(true)
            .with_features(["x0"]),
    )
    .unwrap();
    assert_eq!(align(&guest_by_id, &ia).unwrap_err().code(), "psi.align");
}

/// The first row (in file order) of each id of column `id_col`, as the raw line
/// without the id columns (`skip` leading columns), keyed by id.
fn first_rows(file: &str, id_col: usize, skip: usize) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(datasets().join(file)).unwrap();
    let mut out = std::collections::HashMap::new();
    for l in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = l.trim_end_matches('\r').split(',').collect();
        out.entry(cols[id_col].to_string())
            .or_insert_with(|| cols[skip..].join(","));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breast_guest_files_with_repeated_ids_intersect_on_distinct_ids() {
    // FATE's breast sample-id files: both guest files (mock_id,id,y,x0..x9; 2139
    // rows) repeat the `id` column (569 distinct ids on 2139 rows, the copies of an
    // id have identical y and features); the host file (sample_id,id,x0..x19; 299
    // rows) has distinct ids.
    //
    // Duplicate ids: PSI works on the *distinct* ids (each protocol collapses
    // repeats before sending anything), so the intersection is the plaintext
    // intersection of the two sets of distinct ids, each common id listed once.
    // `align` refuses to map an id that is on several rows (it cannot know which
    // row the peer's row pairs with); `align_with(.., Duplicates::KeepFirst)` takes
    // the first row of each such id, which is right here because the copies are
    // identical.
    let host_file = "breast_hetero_host_sample_id.csv";
    let guests = [
        "breast_hetero_guest_sample_id.csv",
        "breast_hetero_guest_repeated_id.csv",
    ];
    let hid = raw_column(host_file, 1);
    assert_eq!(hid.len(), 299);
    let host = load(
        &DatasetSpec::new(datasets().join(host_file))
            .with_features((0..20).map(|j| format!("x{j}")).collect::<Vec<_>>()),
    )
    .unwrap();
    for guest_file in guests {
        let gid = raw_column(guest_file, 1);
        let distinct: BTreeSet<&String> = gid.iter().collect();
        assert_eq!((gid.len(), distinct.len()), (2139, 569), "{guest_file}");
        let want = plain(&gid, &hid);
        assert_eq!(want.len(), 299, "{guest_file}");

        for (mode, buckets) in [
            (OutputMode::Both, 1),
            (OutputMode::Both, 8),
            (OutputMode::LeaderOnly, 3),
        ] {
            let cfg = EcdhConfig::new("psi").with_mode(mode).with_buckets(buckets);
            let (ra, rb) = run_ecdh(&cfg, &gid, &hid).await;
            let ((ia, sa), (ib, _)) = (ra.unwrap(), rb.unwrap());
            assert_eq!(sa.ids_in, 569, "repeats enter the protocol once");
            assert_eq!(ia.ids.len(), ia.size, "each common id listed once");
            assert_eq!(ia.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
            assert_eq!(ib.size, want.len());
            if mode == OutputMode::Both {
                assert_eq!(ia, ib);
            }
        }

        // RSA-PSI, the guest as client: the same distinct-id intersection.
        let (rh, rc) = run_rsa(&RsaConfig::new("rsa"), key(), &hid, &gid, None).await;
        let ((ih, _), (ic, sc)) = (rh.unwrap(), rc.unwrap());
        assert_eq!(sc.ids_in, 569);
        assert_eq!(ic.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
        assert_eq!(ih, ic);

        // Alignment on both sides, in the agreed order.
        let (ra, rb) = run_ecdh(&EcdhConfig::new("psi").with_buckets(4), &gid, &hid).await;
        let (ia, ib) = (ra.unwrap().0, rb.unwrap().0);
        let guest = load(
            &DatasetSpec::new(datasets().join(guest_file))
                .with_allow_duplicate_ids(true)
                .with_label("y")
                .with_features((0..10).map(|j| format!("x{j}")).collect::<Vec<_>>()),
        )
        .unwrap();
        assert_eq!(guest.n_rows(), 2139);
        let e = align(&guest, &ia).unwrap_err();
        assert_eq!(e.code(), "psi.align");
        assert!(e.to_string().contains("several rows"), "{e}");
        assert_eq!(
            align_with(&guest, &ia, Duplicates::Error)
                .unwrap_err()
                .code(),
            "psi.align"
        );
        let g = align_with(&guest, &ia, Duplicates::KeepFirst).unwrap();
        let h = align(&host, &ib).unwrap();
        assert_eq!(g.n_rows(), 299);
        assert_eq!(
            g.ids(),
            h.ids(),
            "same rows in the same order on both sides"
        );
        assert_eq!(g.ids(), &ia.ids[..]);
        // KeepFirst kept each id's first row: compare with the raw file (y, x0..x9).
        let first = first_rows(guest_file, 1, 2);
        for (r, id) in g.ids().iter().enumerate() {
            let raw: Vec<f64> = first[id].split(',').map(|v| v.parse().unwrap()).collect();
            assert_eq!(g.labels().unwrap()[r], raw[0], "label of {id}");
            assert_eq!(g.row(r), &raw[1..], "features of {id}");
        }
    }
}

#[test]
fn hash_to_group_known_answer_and_domain_separation() {
    // Frozen output of this implementation (SHA-512 over the length-prefixed input,
    // RFC 9496 one-way map), computed once when the encoding was fixed. If this
    // changes, blinded values of old and new builds no longer match: bump the
    // "fedra-psi-v1" domain instead of editing the constant.
    let p = hash_to_group("job-kat", "psi", b"id-42")
        .compress()
        .to_bytes();
    assert_eq!(hex(&p), KAT);
    let other = |job: &str, task: &str, id: &[u8]| hash_to_group(job, task, id).compress();
    assert_ne!(other("job-kat2", "psi", b"id-42").to_bytes(), p);
    assert_ne!(other("job-kat", "psi2", b"id-42").to_bytes(), p);
    assert_ne!(other("job-kat", "psi", b"id-43").to_bytes(), p);
    // Length prefixes: moving bytes between fields changes the point.
    assert_ne!(other("ab", "c", b"x"), other("a", "bc", b"x"));
    assert_ne!(other("a", "b", b"cx"), other("a", "bc", b"x"));
}

const KAT: &str = "684b17b41f5ba29c6b28f51db13f5ef20528fe468f923bca29dbae2969d53846";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- malformed peers

/// A hand-made follower hello: version 2, ECDH, follower, mode Both, 1 bucket,
/// batch 4, `count` ids.
fn fake_hello(count: u64, mode: u8) -> Bytes {
    let mut v = b"FPSI".to_vec();
    v.extend_from_slice(&[2, 1, 2, mode]);
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(&[0u8; 32]);
    Bytes::from(v)
}

/// Runs a real leader against a fake follower that sends `msgs` (tag name, payload)
/// in round 0 after its hello, and returns the leader's error.
async fn leader_vs_fake(hello: Bytes, msgs: Vec<(&'static str, Vec<u8>)>) -> PsiError {
    let (ca, cb, _a, b) = net();
    let xs: Vec<String> = (0..5).map(|i| format!("x{i}")).collect();
    let cfg = EcdhConfig::new("psi").with_max_peer_ids(1000);
    let fake = async {
        let leader = cb.peers()[0].clone();
        cb.send(&leader, &Tag::new("psi", 0, "hello"), hello)
            .await
            .unwrap();
        for (name, payload) in msgs {
            cb.send(&leader, &Tag::new("psi", 0, name), Bytes::from(payload))
                .await
                .unwrap();
        }
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (r, ()) = tokio::join!(ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut rng), fake);
    let e = r.unwrap_err();
    eprintln!("{e}");
    e
}

fn valid_point(i: u64) -> [u8; 32] {
    hash_to_group("j", "t", &i.to_be_bytes())
        .compress()
        .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_on_the_big_endian_wire_version_1_is_refused_in_the_hello() {
    let mut old = fake_hello(3, 1).to_vec();
    old[4] = 1;
    let e = leader_vs_fake(Bytes::from(old), vec![]).await;
    assert_eq!(e.code(), "psi.config_mismatch");
    assert!(
        e.to_string().contains("protocol version 2 here, 1 there"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_peer_messages_give_clean_errors() {
    let count = |n: u64| n.to_le_bytes().to_vec();
    // Wrong length: 33 bytes for one point.
    let e = leader_vs_fake(
        fake_hello(1, 1),
        vec![("count", count(1)), ("blinded-0", vec![1u8; 33])],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("host") && e.to_string().contains("multiple of"));

    // Invalid point encoding (the second of two points).
    let mut two = valid_point(1).to_vec();
    two.extend_from_slice(&[0xffu8; 32]);
    let e = leader_vs_fake(
        fake_hello(2, 1),
        vec![("count", count(2)), ("blinded-0", two)],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("point 1"), "{e}");

    // The identity is refused too.
    let e = leader_vs_fake(
        fake_hello(1, 1),
        vec![("count", count(1)), ("blinded-0", vec![0u8; 32])],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");

    // More points in the bucket than declared in hello.
    let e = leader_vs_fake(fake_hello(3, 1), vec![("count", count(4))]).await;
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("declared"), "{e}");

    // A batch with more points than the batch size allows.
    let many: Vec<u8> = (0..5).flat_map(valid_point).collect();
    let e = leader_vs_fake(
        fake_hello(5, 1),
        vec![("count", count(5)), ("blinded-0", many)],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");

    // Too many ids declared, mode mismatch, garbage hello.
    let e = leader_vs_fake(fake_hello(1_000_000, 1), vec![]).await;
    assert_eq!(e.code(), "psi.too_many_ids");
    let e = leader_vs_fake(fake_hello(1, 2), vec![]).await;
    assert_eq!(e.code(), "psi.config_mismatch");
    let e = leader_vs_fake(Bytes::from_static(b"hello"), vec![]).await;
    assert_eq!(e.code(), "fed.decode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_checksum_names_the_bucket() {
    // A fake follower that does the crypto right but reports a wrong checksum.
    use fedra_psi::ecdh::{blind, reblind};
    let (ca, cb, _a, b) = net();
    let xs: Vec<String> = (0..3).map(|i| format!("x{i}")).collect();
    let cfg = EcdhConfig::new("psi");
    let fake = async {
        let leader = cb.peers()[0].clone();
        let tag = |n: &str| Tag::new("psi", 0, n);
        let s = curve25519_dalek::scalar::Scalar::from(12345u64);
        let mut hello = fake_hello(1, 1).to_vec();
        hello[12..16].copy_from_slice(&65536u32.to_le_bytes());
        cb.send(&leader, &tag("hello"), Bytes::from(hello))
            .await
            .unwrap();
        cb.recv(&leader, &tag("hello")).await.unwrap();
        cb.send(
            &leader,
            &tag("count"),
            Bytes::from(1u64.to_le_bytes().to_vec()),
        )
        .await
        .unwrap();
        let mine = blind("job-psi", "psi", b"x1", &s);
        cb.send(&leader, &tag("blinded-0"), Bytes::from(mine.to_vec()))
            .await
            .unwrap();
        cb.recv(&leader, &tag("count")).await.unwrap();
        let theirs = cb.recv(&leader, &tag("blinded-0")).await.unwrap();
        let back: Vec<u8> = theirs
            .chunks(32)
            .flat_map(|c| reblind(c.try_into().unwrap(), &s).unwrap())
            .collect();
        cb.send(&leader, &tag("double-0"), Bytes::from(back))
            .await
            .unwrap();
        cb.send(&leader, &tag("checksum"), Bytes::from(vec![9u8; 32]))
            .await
            .unwrap();
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (r, ()) = tokio::join!(ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut rng), fake);
    let e = r.unwrap_err();
    assert_eq!(e.code(), "psi.checksum_mismatch");
    assert!(e.to_string().contains("bucket 0"), "{e}");
}

// ---------------------------------------------------------------- RSA

fn key() -> &'static RsaPsiKey {
    static KEY: OnceLock<RsaPsiKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPsiKey::generate(2048).unwrap())
}

async fn run_rsa(
    cfg: &RsaConfig,
    key: &RsaPsiKey,
    holder: &[String],
    client: &[String],
    cache: Option<&mut SignCache>,
) -> (Out, Out) {
    let (ca, cb, a, b) = net();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    tokio::join!(
        rsa_psi_key_holder(&ca, &b, cfg, key, holder, cache),
        rsa_psi_client(&cb, &a, cfg, client, &mut rng),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_psi_equals_plaintext_in_both_modes() {
    let (xs, ys) = sets(150, 60, 11);
    let want = plain(&xs, &ys);
    let cfg = RsaConfig::new("rsa-psi").with_batch(32);
    let (rh, rc) = run_rsa(&cfg, key(), &xs, &ys, None).await;
    let ((ih, sh), (ic, _)) = (rh.unwrap(), rc.unwrap());
    assert_eq!(ic.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(ih, ic, "same ids, same order on both sides");
    assert_eq!(sh.rsa_private_ops, 150 + 150);

    let cfg = cfg.with_mode(RsaOutput::ClientOnly);
    let (rh, rc) = run_rsa(&cfg, key(), &xs, &ys, None).await;
    let ((ih, _), (ic, _)) = (rh.unwrap(), rc.unwrap());
    assert_eq!(ic.ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!((ih.size, ih.ids_revealed, ih.ids.len()), (60, false, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_offline_cache_signs_only_new_ids() {
    // The cache travels as bytes (the runtime stores them in a file).
    let (mut xs, ys) = sets(120, 40, 12);
    let cfg = RsaConfig::new("rsa-psi");

    // Offline phase: sign the whole set once.
    let mut cache = SignCache::new(key());
    assert_eq!(cache.sign_offline(key(), &xs).unwrap(), 120);
    let stored = cache.to_bytes();

    // Online run with 10 new ids (5 of them also on the client side).
    let new: Vec<String> = (0..10).map(|i| format!("new-{i}")).collect();
    xs.extend(new.iter().cloned());
    let mut ys2 = ys.clone();
    ys2.extend(new[..5].iter().cloned());
    let mut cache = SignCache::from_bytes(&stored, key()).unwrap();
    let (rh, rc) = run_rsa(&cfg, key(), &xs, &ys2, Some(&mut cache)).await;
    let ((ih, sh), (ic, _)) = (rh.unwrap(), rc.unwrap());
    assert_eq!((sh.own_ids_signed, sh.own_ids_cached), (10, 120));
    assert_eq!(
        ic.ids.iter().cloned().collect::<BTreeSet<_>>(),
        plain(&xs, &ys2)
    );
    assert_eq!(ih, ic);
    let stored = cache.to_bytes();

    // Third run: everything cached.
    let mut cache = SignCache::from_bytes(&stored, key()).unwrap();
    assert_eq!(cache.len(), 130);
    let (rh, _) = run_rsa(&cfg, key(), &xs, &ys2, Some(&mut cache)).await;
    assert_eq!(rh.unwrap().1.own_ids_signed, 0);

    // Another key: refused with a clear error.
    let other = RsaPsiKey::generate(2048).unwrap();
    let e = SignCache::from_bytes(&stored, &other).unwrap_err();
    assert_eq!(e.code(), "psi.cache_key_mismatch");
    assert!(e.to_string().contains(&other.fingerprint_hex()), "{e}");
    assert!(e.to_string().contains(&key().fingerprint_hex()), "{e}");
    // ... also when a cache made for one key is handed to a run with another.
    // (It fails before sending anything, so no client is needed.)
    let (ca, _cb, _a, b) = net();
    let r = rsa_psi_key_holder(&ca, &b, &cfg, &other, &xs, Some(&mut cache)).await;
    assert_eq!(r.unwrap_err().code(), "psi.cache_key_mismatch");
    // A truncated cache is a clear error, not a panic.
    let e = SignCache::from_bytes(&stored[..stored.len() - 3], key()).unwrap_err();
    assert_eq!(e.code(), "psi.cache_format");
    assert!(e.to_string().contains("truncated"), "{e}");
}

fn rsa_head(kind: u8, batch: u32, count: u64) -> Vec<u8> {
    let mut v = b"FPSI".to_vec();
    v.extend_from_slice(&[2, kind, 1]);
    v.extend_from_slice(&batch.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_malformed_peers_give_clean_errors() {
    let xs: Vec<String> = (0..4).map(|i| format!("x{i}")).collect();
    let cfg = RsaConfig::new("rsa");
    let tag = |n: &str| Tag::new("rsa", 0, n);

    // A client sending a value that is not below the modulus.
    let (ca, cb, a, b) = net();
    let fake_client = async {
        cb.send(&a, &tag("hello"), Bytes::from(rsa_head(3, 1, 1)))
            .await
            .unwrap();
        cb.send(&a, &tag("blinded-0"), Bytes::from(vec![0xffu8; 256]))
            .await
            .unwrap();
    };
    let (r, ()) = tokio::join!(
        rsa_psi_key_holder(&ca, &b, &cfg, key(), &xs, None),
        fake_client
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("modulus"), "{e}");

    // A key holder returning something that is not a signature.
    let (ca, cb, a, b) = net();
    let fake_holder = async {
        let mut hello = rsa_head(2, 4096, 0);
        let n = key().modulus();
        hello.extend_from_slice(&(n.len() as u32).to_le_bytes());
        hello.extend_from_slice(&n);
        cb.send(&a, &tag("hello"), Bytes::from(hello))
            .await
            .unwrap();
        let blinded = cb.recv(&a, &tag("blinded-0")).await.unwrap();
        cb.send(&a, &tag("signed-0"), blinded).await.unwrap();
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (r, ()) = tokio::join!(rsa_psi_client(&ca, &b, &cfg, &xs, &mut rng), fake_holder);
    let e = r.unwrap_err();
    assert_eq!(e.code(), "psi.bad_peer_value");
    assert!(e.to_string().contains("does not verify"), "{e}");

    // A key holder announcing a small modulus.
    let (ca, cb, a, b) = net();
    let fake_holder = async {
        let mut hello = rsa_head(2, 4096, 0);
        hello.extend_from_slice(&128u32.to_le_bytes());
        hello.extend_from_slice(&[0xabu8; 128]);
        cb.send(&a, &tag("hello"), Bytes::from(hello))
            .await
            .unwrap();
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (r, ()) = tokio::join!(rsa_psi_client(&ca, &b, &cfg, &xs, &mut rng), fake_holder);
    assert_eq!(r.unwrap_err().code(), "fed.decode");
}

// ---------------------------------------------------------------- count mismatches

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdh_peer_sending_fewer_points_than_announced_is_refused() {
    let count = |n: u64| n.to_le_bytes().to_vec();
    // The bucket's `count` says 3, the batch carries 2 points.
    let two: Vec<u8> = (0..2).flat_map(valid_point).collect();
    let e = leader_vs_fake(
        fake_hello(3, 1),
        vec![("count", count(3)), ("blinded-0", two)],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");
    let msg = e.to_string();
    assert!(msg.contains("host") && msg.contains("blinded-0"), "{msg}");
    assert!(msg.contains("expected 3 items, got 2"), "{msg}");

    // `count` says 2, the batch carries 3 points (within the batch size of 4).
    let three: Vec<u8> = (0..3).flat_map(valid_point).collect();
    let e = leader_vs_fake(
        fake_hello(3, 1),
        vec![("count", count(2)), ("blinded-0", three)],
    )
    .await;
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("expected 2 items, got 3"), "{e}");

    // A `count` message that is not 8 bytes long.
    let e = leader_vs_fake(fake_hello(3, 1), vec![("count", vec![0, 3])]).await;
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("expected 8 bytes"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdh_buckets_holding_fewer_ids_than_declared_in_hello_are_refused() {
    // A follower that declares 3 ids in hello but puts only 2 in its (single) bucket,
    // and otherwise follows the protocol correctly (double-blinds the leader's points,
    // sends the right checksum for an empty intersection). The leader must notice
    // the shortfall after the last bucket.
    use fedra_psi::ecdh::{blind, reblind};
    use sha2::{Digest, Sha256};
    let (ca, cb, _a, b) = net();
    let xs: Vec<String> = (0..3).map(|i| format!("x{i}")).collect();
    let cfg = EcdhConfig::new("psi");
    let fake = async {
        let leader = cb.peers()[0].clone();
        let tag = |n: &str| Tag::new("psi", 0, n);
        let s = curve25519_dalek::scalar::Scalar::from(777u64);
        let mut hello = fake_hello(3, 1).to_vec();
        hello[12..16].copy_from_slice(&65536u32.to_le_bytes());
        cb.send(&leader, &tag("hello"), Bytes::from(hello))
            .await
            .unwrap();
        cb.recv(&leader, &tag("hello")).await.unwrap();
        cb.send(
            &leader,
            &tag("count"),
            Bytes::from(2u64.to_le_bytes().to_vec()),
        )
        .await
        .unwrap();
        let mine: Vec<u8> = [&b"y1"[..], b"y2"]
            .iter()
            .flat_map(|y| blind("job-psi", "psi", y, &s))
            .collect();
        cb.send(&leader, &tag("blinded-0"), Bytes::from(mine))
            .await
            .unwrap();
        cb.recv(&leader, &tag("count")).await.unwrap();
        let theirs = cb.recv(&leader, &tag("blinded-0")).await.unwrap();
        let back: Vec<u8> = theirs
            .chunks(32)
            .flat_map(|c| reblind(c.try_into().unwrap(), &s).unwrap())
            .collect();
        cb.send(&leader, &tag("double-0"), Bytes::from(back))
            .await
            .unwrap();
        // The checksum of bucket 0 with no common ids.
        let mut h = Sha256::new();
        h.update(b"fedra-psi-checksum-v1");
        h.update(0u32.to_be_bytes());
        h.update(0u64.to_be_bytes());
        let sum: [u8; 32] = h.finalize().into();
        cb.send(&leader, &tag("checksum"), Bytes::from(sum.to_vec()))
            .await
            .unwrap();
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (r, ()) = tokio::join!(ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut rng), fake);
    let e = r.unwrap_err();
    assert_eq!(e.code(), "fed.decode");
    let msg = e.to_string();
    assert!(msg.contains("host"), "{msg}");
    assert!(
        msg.contains("1 points fewer than the 3 ids declared in hello"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_peer_sending_a_different_number_of_items_than_announced_is_refused() {
    let xs: Vec<String> = (0..4).map(|i| format!("x{i}")).collect();
    let cfg = RsaConfig::new("rsa").with_batch(16);
    let tag = |n: &str| Tag::new("rsa", 0, n);

    // A client announcing 3 ids that sends 2 blinded values.
    let (ca, cb, a, b) = net();
    let fake_client = async {
        cb.send(&a, &tag("hello"), Bytes::from(rsa_head(3, 16, 3)))
            .await
            .unwrap();
        cb.send(&a, &tag("blinded-0"), Bytes::from(vec![1u8; 2 * 256]))
            .await
            .unwrap();
    };
    let (r, ()) = tokio::join!(
        rsa_psi_key_holder(&ca, &b, &cfg, key(), &xs, None),
        fake_client
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("expected 3 items, got 2"), "{e}");

    // A client announcing 0 ids that then claims a common id.
    let (ca, cb, a, b) = net();
    let fake_client = async {
        cb.send(&a, &tag("hello"), Bytes::from(rsa_head(3, 16, 0)))
            .await
            .unwrap();
        cb.send(
            &a,
            &tag("result-count"),
            Bytes::from(1u64.to_le_bytes().to_vec()),
        )
        .await
        .unwrap();
    };
    let (r, ()) = tokio::join!(
        rsa_psi_key_holder(&ca, &b, &cfg, key(), &xs, None),
        fake_client
    );
    let e = r.unwrap_err();
    assert_eq!(e.code(), "fed.decode");
    assert!(e.to_string().contains("exceeds a set size"), "{e}");

    // A key holder announcing 5 ids that sends 4 digests (to a client with no ids,
    // so no signing round comes first).
    let (ca, cb, a, b) = net();
    let fake_holder = async {
        let mut hello = rsa_head(2, 4096, 5);
        let n = key().modulus();
        hello.extend_from_slice(&(n.len() as u32).to_le_bytes());
        hello.extend_from_slice(&n);
        cb.send(&a, &tag("hello"), Bytes::from(hello))
            .await
            .unwrap();
        cb.send(&a, &tag("own-0"), Bytes::from(vec![7u8; 4 * 32]))
            .await
            .unwrap();
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (r, ()) = tokio::join!(rsa_psi_client(&ca, &b, &cfg, &[], &mut rng), fake_holder);
    let e = r.unwrap_err();
    assert_eq!(e.code(), "fed.decode");
    let msg = e.to_string();
    assert!(
        msg.contains("own-0") && msg.contains("expected 5 items, got 4"),
        "{msg}"
    );
}
