//! The streaming join between two in-memory parties on out-of-order event streams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fedra_data::DatasetSpec;
use fedra_federation::mem::MemNetwork;
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_join::{JoinConfig, JoinError, follow, lead};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fedra-join-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg() -> JoinConfig {
    JoinConfig {
        task: "join".into(),
        time_column: "ts".into(),
        window_s: 10.0,
        batch: 7,
        keep_time_column: false,
    }
}

/// Writes `rows` of (id, time) as a stream; the leader's has a label and a feature.
fn write_stream(path: &Path, leader: bool, rows: &[(u32, f64)]) {
    let mut s = String::from(if leader { "id,y,ts,g0\n" } else { "id,ts,f0\n" });
    for (id, t) in rows {
        if leader {
            writeln!(s, "e{id},{},{t},{}", id % 2, f64::from(*id) * 0.5).unwrap();
        } else {
            writeln!(s, "e{id},{t},{}", f64::from(*id) * 2.0).unwrap();
        }
    }
    std::fs::write(path, s).unwrap();
}

async fn run(
    leader_rows: &[(u32, f64)],
    follower_rows: &[(u32, f64)],
    name: &str,
) -> (fedra_join::JoinResult, fedra_join::JoinResult) {
    let d = dir(name);
    write_stream(&d.join("l.csv"), true, leader_rows);
    write_stream(&d.join("f.csv"), false, follower_rows);
    let (l, f) = (
        PartyId::new("leader").unwrap(),
        PartyId::new("follower").unwrap(),
    );
    let mut net = MemNetwork::new("j", &[l.clone(), f.clone()]);
    let (lc, fc) = (net.take(&l).unwrap(), net.take(&f).unwrap());
    let lr = fedra_data::open(
        &DatasetSpec::new(d.join("l.csv"))
            .with_label("y")
            .with_batch_rows(4),
    )
    .unwrap();
    let fr = fedra_data::open(&DatasetSpec::new(d.join("f.csv")).with_batch_rows(4)).unwrap();
    let c = cfg();
    let (a, b) = tokio::join!(lead(&lc, &f, lr, &c), follow(&fc, &l, fr, &c));
    std::fs::remove_dir_all(&d).unwrap();
    (a.unwrap(), b.unwrap())
}

/// A deterministic shuffle within blocks of 5 positions (bounded disorder).
fn jumble<T: Clone>(v: &[T], seed: u32) -> Vec<T> {
    let mut out = Vec::new();
    for (k, block) in v.chunks(5).enumerate() {
        let mut b = block.to_vec();
        let r = (k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as usize;
        let n = b.len();
        b.rotate_left(r % n);
        if r.is_multiple_of(3) {
            b.reverse();
        }
        out.extend(b);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_streams_join_within_the_window_and_everything_is_counted() {
    // Leader: ids 0..400 at time i, arriving out of order.
    let leader: Vec<(u32, f64)> =
        jumble(&(0..400).map(|i| (i, f64::from(i))).collect::<Vec<_>>(), 1);
    // Follower: even ids within ±3 s; ids ≡ 1 mod 10 far outside the window; 50 ids only it has.
    let mut follower: Vec<(u32, f64)> = Vec::new();
    for i in 0..400u32 {
        if i % 2 == 0 {
            follower.push((i, f64::from(i) + f64::from(i % 7) - 3.0));
        } else if i % 10 == 1 {
            follower.push((i, f64::from(i) + 50.0));
        }
    }
    for i in 1000..1050u32 {
        follower.push((i, f64::from(i - 1000) * 8.0));
    }
    follower.sort_by(|a, b| a.1.total_cmp(&b.1));
    let follower = jumble(&follower, 7);

    let (l, f) = run(&leader, &follower, "ooo").await;
    let expected: Vec<String> = leader
        .iter()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, _)| format!("e{i}"))
        .collect();
    assert_eq!(
        l.joined.ids(),
        expected.as_slice(),
        "leader order, even ids only"
    );
    assert_eq!(
        f.joined.ids(),
        expected.as_slice(),
        "both sides emit the same order"
    );
    // Each side keeps its own columns (minus the time column) and the leader its labels.
    assert_eq!(l.joined.feature_names(), ["g0"]);
    assert_eq!(f.joined.feature_names(), ["f0"]);
    assert_eq!(
        f.joined.row(1)[0],
        f64::from(expected[1][1..].parse::<u32>().unwrap()) * 2.0
    );
    assert!(l.joined.labels().is_some() && f.joined.labels().is_none());

    assert_eq!(l.stats.leader_records, 400);
    assert_eq!(l.stats.joined, 200);
    assert_eq!(l.stats.leader_unmatched, 200);
    assert_eq!(f.stats.joined, 200);
    assert_eq!(f.stats.follower_records, follower.len() as u64);
    // Nothing vanishes: every follower record is joined, unmatched or late.
    assert_eq!(
        f.stats.joined + f.stats.follower_unmatched + f.stats.late,
        f.stats.follower_records
    );
    assert_eq!(f.stats.follower_unmatched, 40 + 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_arriving_after_its_partner_was_declared_unmatched_is_counted_late() {
    let leader: Vec<(u32, f64)> = (0..100).map(|i| (i, f64::from(i))).collect();
    // The follower logs id 50 (time 50) only after records up to time 66 — too late
    // for the read-ahead that decided id 50, but inside the window of the watermark.
    let mut follower: Vec<(u32, f64)> = (0..100)
        .filter(|i| *i != 50)
        .map(|i| (i, f64::from(i)))
        .collect();
    let pos = follower.iter().position(|(_, t)| *t > 66.0).unwrap();
    follower.insert(pos, (50, 50.0));
    let (l, f) = run(&leader, &follower, "late").await;
    assert_eq!(l.stats.joined, 99);
    assert_eq!(l.stats.leader_unmatched, 1);
    assert_eq!(f.stats.late, 1);
    assert_eq!(f.stats.follower_unmatched, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_streams_join_to_nothing() {
    let (l, f) = run(&[], &[(1, 1.0)], "empty").await;
    assert_eq!(l.joined.n_rows(), 0);
    assert_eq!(f.stats.follower_unmatched, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_from_the_leader_is_a_clean_error() {
    let d = dir("bad");
    write_stream(&d.join("f.csv"), false, &[(1, 1.0)]);
    let (l, f) = (
        PartyId::new("leader").unwrap(),
        PartyId::new("follower").unwrap(),
    );
    let mut net = MemNetwork::new("j", &[l.clone(), f.clone()]);
    let (lc, fc) = (net.take(&l).unwrap(), net.take(&f).unwrap());
    // Announces a million records in a few bytes.
    let mut msg = vec![1u8];
    msg.extend_from_slice(&1_000_000u32.to_le_bytes());
    lc.send(&f, &Tag::new("join", 0, "ids"), Bytes::from(msg))
        .await
        .unwrap();
    let fr = fedra_data::open(&DatasetSpec::new(d.join("f.csv"))).unwrap();
    let e = follow(&fc, &l, fr, &cfg()).await.unwrap_err();
    match e {
        JoinError::Fed(FedError::Decode { party, detail, .. }) => {
            assert_eq!(party, "leader");
            assert!(detail.contains("record count 1000000 "), "{detail}");
        }
        e => panic!("{e}"),
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn a_missing_time_column_is_a_config_error() {
    let d = dir("cfg");
    write_stream(&d.join("f.csv"), false, &[(1, 1.0)]);
    let (l, f) = (
        PartyId::new("leader").unwrap(),
        PartyId::new("follower").unwrap(),
    );
    let mut net = MemNetwork::new("j", &[l.clone(), f.clone()]);
    let fc = net.take(&f).unwrap();
    let fr = fedra_data::open(&DatasetSpec::new(d.join("f.csv"))).unwrap();
    let mut c = cfg();
    c.time_column = "when".into();
    let e = follow(&fc, &l, fr, &c).await.unwrap_err();
    assert!(e.to_string().contains("time column 'when'"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
