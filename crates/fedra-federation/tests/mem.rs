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
