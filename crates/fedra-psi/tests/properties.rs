//! Property tests: for random id lists (with repeated ids) and for the special cases
//! (empty/empty, empty/non-empty, disjoint, identical), both PSI protocols return
//! exactly the plaintext intersection of the *distinct* ids, in every output mode
//! and with one or several ECDH buckets.
//!
//! Each proptest case builds its own tokio runtime and runs both parties over an
//! in-memory network. Case counts are modest (the protocols are exercised in full,
//! including the curve and RSA work) so the suite stays fast in debug builds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use fedra_federation::PartyId;
use fedra_federation::mem::{MemNetwork, MemOptions};
use fedra_psi::{
    EcdhConfig, Intersection, OutputMode, PsiStats, Role, RsaConfig, RsaOutput, RsaPsiKey,
    ecdh_psi, rsa_psi_client, rsa_psi_key_holder,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

type Run = (Intersection, PsiStats);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn parties() -> (
    fedra_federation::mem::MemChannel,
    fedra_federation::mem::MemChannel,
    PartyId,
    PartyId,
) {
    let (a, b) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    // A receive deadline turns a protocol bug that leaves one party waiting (its peer
    // failed) into a test failure instead of a hang.
    let opts = MemOptions {
        recv_timeout: Some(Duration::from_secs(20)),
        ..MemOptions::default()
    };
    let mut net = MemNetwork::with_options("job-prop", &[a.clone(), b.clone()], opts);
    (net.take(&a).unwrap(), net.take(&b).unwrap(), a, b)
}

/// Runs ECDH-PSI (leader holds `xs`, follower `ys`) to completion on a fresh runtime.
fn ecdh(cfg: &EcdhConfig, xs: &[String], ys: &[String], seed: u64) -> (Run, Run) {
    let (ca, cb, a, b) = parties();
    let mut ra = ChaCha20Rng::seed_from_u64(seed);
    let mut rb = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let (l, f) = runtime().block_on(async {
        tokio::join!(
            ecdh_psi(&ca, &b, Role::Leader, cfg, xs, &mut ra),
            ecdh_psi(&cb, &a, Role::Follower, cfg, ys, &mut rb),
        )
    });
    (l.unwrap(), f.unwrap())
}

/// One 2048-bit RSA key per test binary (key generation is slow).
fn key() -> &'static RsaPsiKey {
    static KEY: OnceLock<RsaPsiKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPsiKey::generate(2048).unwrap())
}

/// Runs RSA-PSI (key holder holds `xs`, client `ys`) to completion.
fn rsa(cfg: &RsaConfig, xs: &[String], ys: &[String], seed: u64) -> (Run, Run) {
    let (ca, cb, a, b) = parties();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (h, c) = runtime().block_on(async {
        tokio::join!(
            rsa_psi_key_holder(&ca, &b, cfg, key(), xs, None),
            rsa_psi_client(&cb, &a, cfg, ys, &mut rng),
        )
    });
    (h.unwrap(), c.unwrap())
}

fn distinct(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

/// The plaintext intersection of the distinct ids.
fn plain(xs: &[String], ys: &[String]) -> BTreeSet<String> {
    distinct(xs).intersection(&distinct(ys)).cloned().collect()
}

/// The set of `ids`, asserting that no id is listed twice.
fn as_set(ids: &[String]) -> BTreeSet<String> {
    let s = distinct(ids);
    assert_eq!(s.len(), ids.len(), "an id is listed twice: {ids:?}");
    s
}

/// Checks both ECDH outputs against the plaintext intersection.
fn check_ecdh(mode: OutputMode, xs: &[String], ys: &[String], leader: &Run, follower: &Run) {
    let want = plain(xs, ys);
    let ((li, ls), (fi, fs)) = (leader, follower);
    assert_eq!(as_set(&li.ids), want, "leader ids");
    assert_eq!((li.size, li.ids_revealed), (want.len(), true));
    assert_eq!(fi.size, want.len(), "follower size");
    match mode {
        OutputMode::Both => {
            assert!(fi.ids_revealed);
            assert_eq!(fi.ids, li.ids, "same ids in the same (canonical) order");
        }
        OutputMode::LeaderOnly => {
            assert!(!fi.ids_revealed);
            assert!(fi.ids.is_empty(), "the follower learns only the size");
        }
    }
    // Repeats are collapsed before the protocol: each distinct id enters once.
    assert_eq!(ls.ids_in, distinct(xs).len() as u64);
    assert_eq!(fs.ids_in, distinct(ys).len() as u64);
}

/// Checks both RSA outputs against the plaintext intersection.
fn check_rsa(mode: RsaOutput, xs: &[String], ys: &[String], holder: &Run, client: &Run) {
    let want = plain(xs, ys);
    let ((hi, hs), (ci, cs)) = (holder, client);
    assert_eq!(as_set(&ci.ids), want, "client ids");
    assert_eq!((ci.size, ci.ids_revealed), (want.len(), true));
    assert_eq!(hi.size, want.len(), "key holder size");
    match mode {
        RsaOutput::Both => assert_eq!(hi.ids, ci.ids, "same ids in the same order"),
        RsaOutput::ClientOnly => assert!(!hi.ids_revealed && hi.ids.is_empty()),
    }
    assert_eq!(hs.ids_in, distinct(xs).len() as u64);
    assert_eq!(cs.ids_in, distinct(ys).len() as u64);
}

/// How the second party's list relates to the first's.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Independent draws from a shared universe (partial overlap, repeats).
    Random,
    /// No id in common (the second list uses another universe).
    Disjoint,
    /// The same ids, reordered and with other repeats.
    Identical,
    /// The first party has no ids.
    EmptyFirst,
    /// The second party has no ids.
    EmptySecond,
    /// Neither has any ids.
    BothEmpty,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        4 => Just(Shape::Random),
        1 => Just(Shape::Disjoint),
        1 => Just(Shape::Identical),
        1 => Just(Shape::EmptyFirst),
        1 => Just(Shape::EmptySecond),
        1 => Just(Shape::BothEmpty),
    ]
}

/// Two id lists of the given shape. Ids are drawn from a universe of `universe`
/// values so that lists of up to `max_len` entries repeat ids and overlap.
fn id_lists(
    max_len: usize,
    universe: u32,
) -> impl Strategy<Value = (Shape, Vec<String>, Vec<String>)> {
    let list = move || proptest::collection::vec(0..universe, 0..=max_len);
    (shape(), list(), list()).prop_map(|(shape, a, b)| {
        let ids = |v: &[u32], prefix: &str| -> Vec<String> {
            v.iter().map(|n| format!("{prefix}{n}")).collect()
        };
        let xs = ids(&a, "id-");
        let ys = match shape {
            Shape::Random => ids(&b, "id-"),
            Shape::Disjoint => ids(&b, "other-"),
            Shape::Identical => {
                // The same distinct ids, reversed, each once more if b says so.
                let mut v: Vec<String> = xs.iter().rev().cloned().collect();
                v.extend(
                    xs.iter()
                        .zip(&b)
                        .filter(|(_, n)| *n % 2 == 0)
                        .map(|(x, _)| x.clone()),
                );
                v
            }
            Shape::EmptyFirst | Shape::EmptySecond | Shape::BothEmpty => ids(&b, "id-"),
        };
        match shape {
            Shape::EmptyFirst => (shape, Vec::new(), ys),
            Shape::EmptySecond => (shape, xs, Vec::new()),
            Shape::BothEmpty => (shape, Vec::new(), Vec::new()),
            _ => (shape, xs, ys),
        }
    })
}

fn mode() -> impl Strategy<Value = OutputMode> {
    prop_oneof![Just(OutputMode::Both), Just(OutputMode::LeaderOnly)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    /// ECDH-PSI with one bucket equals the plaintext intersection of distinct ids.
    #[test]
    fn ecdh_one_bucket_equals_plaintext_intersection(
        (shape, xs, ys) in id_lists(200, 300),
        mode in mode(),
        batch in prop_oneof![Just(1u32 << 16), 1u32..=40],
        seed in any::<u64>(),
    ) {
        let _ = shape;
        let cfg = EcdhConfig::new("prop").with_mode(mode).with_batch_points(batch);
        let (l, f) = ecdh(&cfg, &xs, &ys, seed);
        check_ecdh(mode, &xs, &ys, &l, &f);
        prop_assert_eq!(l.1.buckets, 1);
    }

    /// ECDH-PSI with several buckets (including empty ones) equals the plaintext
    /// intersection of distinct ids.
    #[test]
    fn ecdh_several_buckets_equal_plaintext_intersection(
        (shape, xs, ys) in id_lists(200, 300),
        mode in mode(),
        buckets in 2u32..=16,
        batch in prop_oneof![Just(1u32 << 16), 1u32..=40],
        seed in any::<u64>(),
    ) {
        let _ = shape;
        let cfg = EcdhConfig::new("prop")
            .with_mode(mode)
            .with_buckets(buckets)
            .with_batch_points(batch);
        let (l, f) = ecdh(&cfg, &xs, &ys, seed);
        check_ecdh(mode, &xs, &ys, &l, &f);
        prop_assert_eq!(l.1.buckets, buckets);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    })]

    /// RSA blind-signature PSI equals the plaintext intersection of distinct ids
    /// (fewer, smaller cases: every client id costs an RSA private-key operation).
    #[test]
    fn rsa_equals_plaintext_intersection(
        (shape, xs, ys) in id_lists(60, 90),
        both in any::<bool>(),
        batch in prop_oneof![Just(4096u32), 1u32..=16],
        seed in any::<u64>(),
    ) {
        let _ = shape;
        let mode = if both { RsaOutput::Both } else { RsaOutput::ClientOnly };
        let cfg = RsaConfig::new("prop-rsa").with_mode(mode).with_batch(batch);
        let (h, c) = rsa(&cfg, &xs, &ys, seed);
        check_rsa(mode, &xs, &ys, &h, &c);
    }
}

/// The special cases, each run deterministically (the property tests reach them only
/// by chance): empty/empty, empty/non-empty both ways, disjoint, identical (with
/// repeats), a single common id, for both output modes and 1 and 7 buckets; and the
/// same cases for RSA-PSI in both of its modes.
#[test]
fn special_cases_in_every_mode_and_bucket_count() {
    let ids = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{}", i % 37)).collect()
    };
    let some = ids("id-", 50); // 37 distinct ids, 13 repeated
    let mut same = some.clone();
    same.reverse();
    same.extend(some[..5].iter().cloned());
    let cases: [(&str, Vec<String>, Vec<String>); 6] = [
        ("empty/empty", vec![], vec![]),
        ("empty/non-empty", vec![], some.clone()),
        ("non-empty/empty", some.clone(), vec![]),
        ("disjoint", some.clone(), ids("other-", 40)),
        ("identical", some.clone(), same),
        (
            "one common",
            some.clone(),
            vec!["id-3".into(), "x".into(), "id-3".into()],
        ),
    ];
    for (name, xs, ys) in &cases {
        for mode in [OutputMode::Both, OutputMode::LeaderOnly] {
            for buckets in [1, 7] {
                let cfg = EcdhConfig::new("special")
                    .with_mode(mode)
                    .with_buckets(buckets)
                    .with_batch_points(8);
                let (l, f) = ecdh(&cfg, xs, ys, 1);
                check_ecdh(mode, xs, ys, &l, &f);
                let want = match *name {
                    "identical" => 37,
                    "one common" => 1,
                    _ => 0,
                };
                assert_eq!(l.0.size, want, "{name}, {mode:?}, {buckets} buckets");
            }
        }
        for mode in [RsaOutput::Both, RsaOutput::ClientOnly] {
            let cfg = RsaConfig::new("special-rsa").with_mode(mode).with_batch(16);
            let (h, c) = rsa(&cfg, xs, ys, 2);
            check_rsa(mode, xs, ys, &h, &c);
        }
    }
}
