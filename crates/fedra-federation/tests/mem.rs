//! The conformance suite on in-memory channels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fedra_federation::mem::{MemChannel, MemNetwork};
use fedra_federation::{PartyId, testkit};

fn pair() -> (MemChannel, MemChannel) {
    let (a, b) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    let mut net = MemNetwork::new("job", &[a.clone(), b.clone()]);
    (net.take(&a).unwrap(), net.take(&b).unwrap())
}

#[tokio::test]
async fn ordering_and_isolation() {
    let (a, b) = pair();
    testkit::ordering_and_isolation(&a, &b).await;
}

#[tokio::test]
async fn large_payload() {
    let (a, b) = pair();
    testkit::large_payload(&a, &b, 16 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_both_ways() {
    let (a, b) = pair();
    testkit::concurrent_both_ways(&a, &b).await;
}

#[tokio::test]
async fn unknown_party() {
    let (a, _b) = pair();
    testkit::unknown_party_is_an_error(&a).await;
}

#[tokio::test]
async fn abort_reaches_peer() {
    let (a, b) = pair();
    testkit::abort_reaches_peer(&a, &b).await;
}

#[tokio::test]
async fn finish_releases_waiters() {
    let (a, b) = pair();
    testkit::finish_releases_waiters(&a, &b).await;
}

#[tokio::test]
async fn droppable_peer_failure_is_per_peer() {
    let ids: Vec<PartyId> = ["server", "c1", "c2"]
        .iter()
        .map(|s| PartyId::new(s).unwrap())
        .collect();
    let mut net = MemNetwork::new("job", &ids);
    let (a, b, c) = (
        net.take(&ids[0]).unwrap(),
        net.take(&ids[1]).unwrap(),
        net.take(&ids[2]).unwrap(),
    );
    testkit::droppable_peer_failure_is_per_peer(&a, &b, &c).await;
}

#[tokio::test]
async fn crashed_droppable_peer_is_a_dropout_and_a_crashed_server_fails_the_job() {
    use bytes::Bytes;
    use fedra_federation::{Channel, FedError, Tag};
    let ids: Vec<PartyId> = ["server", "c1", "c2"]
        .iter()
        .map(|s| PartyId::new(s).unwrap())
        .collect();
    let mut net = MemNetwork::new("job", &ids);
    let (s, c1, c2) = (
        net.take(&ids[0]).unwrap(),
        net.take(&ids[1]).unwrap(),
        net.take(&ids[2]).unwrap(),
    );
    s.set_droppable(&ids[1..]);
    c2.set_droppable(&ids[1..2]);
    let tag = Tag::new("t", 1, "m");
    let waiting = s.recv(&ids[1], &tag);
    c1.crash();
    let e = waiting.await.unwrap_err();
    assert!(
        matches!(&e, FedError::PeerDropped { party, cause }
        if party == "c1" && matches!(**cause, FedError::PeerLost { .. })),
        "{e}"
    );
    c2.send(&ids[0], &tag, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(
        s.recv(&ids[2], &tag).await.unwrap(),
        Bytes::from_static(b"ok")
    );
    // The server is nobody's droppable peer: its crash fails c2's job.
    s.crash();
    let e = c2.recv(&ids[0], &tag).await.unwrap_err();
    assert!(matches!(e, FedError::PeerLost { .. }), "{e}");
}
