//! The conformance suite every [`Channel`] implementation must pass.
//!
//! Each check takes freshly connected channels of two (or three) parties of one
//! job and panics on a violation, so implementation crates call them from their
//! own `#[test]`s: `fedra_federation::testkit::ordering_and_isolation(&a, &b).await`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;

use crate::{Channel, Failure, FedError, Tag};

/// Messages under one tag arrive in send order; tags never see each other's messages.
pub async fn ordering_and_isolation(a: &dyn Channel, b: &dyn Channel) {
    let t1 = Tag::new("task-a", 0, "x");
    let t2 = Tag::new("task-a", 1, "x");
    let t3 = Tag::new("task-b", 0, "x");
    for i in 0..5u8 {
        a.send(b.me(), &t1, Bytes::from(vec![i; 3])).await.unwrap();
    }
    a.send(b.me(), &t3, Bytes::from_static(b"other task"))
        .await
        .unwrap();
    a.send(b.me(), &t2, Bytes::from_static(b"round 1"))
        .await
        .unwrap();
    assert_eq!(
        b.recv(a.me(), &t2).await.unwrap(),
        Bytes::from_static(b"round 1")
    );
    assert_eq!(
        b.recv(a.me(), &t3).await.unwrap(),
        Bytes::from_static(b"other task")
    );
    for i in 0..5u8 {
        assert_eq!(b.recv(a.me(), &t1).await.unwrap(), Bytes::from(vec![i; 3]));
    }
    // Empty payloads are messages too.
    b.send(a.me(), &t1, Bytes::new()).await.unwrap();
    assert_eq!(a.recv(b.me(), &t1).await.unwrap(), Bytes::new());
}

/// A payload of `len` bytes arrives intact, and traffic is counted once.
pub async fn large_payload(a: &dyn Channel, b: &dyn Channel, len: usize) {
    let payload: Bytes = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let before = a.stats();
    let tag = Tag::new("big", 0, "blob");
    let (sent, got) = tokio::join!(a.send(b.me(), &tag, payload.clone()), b.recv(a.me(), &tag));
    sent.unwrap();
    let got = got.unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "payload corrupted");
    let after = a.stats();
    let peer = |s: &[crate::PeerStats]| {
        s.iter()
            .find(|p| p.peer == b.me().as_str())
            .cloned()
            .unwrap()
    };
    assert_eq!(
        peer(&after).payload_bytes_sent - peer(&before).payload_bytes_sent,
        len as u64
    );
    assert_eq!(peer(&after).messages_sent - peer(&before).messages_sent, 1);
}

async fn send_many(from: &dyn Channel, to: &crate::PartyId, n: u32) {
    let tags: Vec<Tag> = (0..n)
        .map(|i| Tag::new("conc", u64::from(i), "m"))
        .collect();
    let sends = (0..n)
        .zip(&tags)
        .map(|(i, tag)| from.send(to, tag, Bytes::from(i.to_le_bytes().to_vec())));
    futures_util::future::try_join_all(sends).await.unwrap();
}

async fn recv_many(at: &dyn Channel, from: &crate::PartyId, n: u32) {
    for i in (0..n).rev() {
        let m = at
            .recv(from, &Tag::new("conc", u64::from(i), "m"))
            .await
            .unwrap();
        assert_eq!(&m[..], &i.to_le_bytes());
    }
}

/// Both directions at once, many messages in flight.
pub async fn concurrent_both_ways(a: &dyn Channel, b: &dyn Channel) {
    let n = 64;
    tokio::join!(
        send_many(a, b.me(), n),
        send_many(b, a.me(), n),
        recv_many(a, b.me(), n),
        recv_many(b, a.me(), n)
    );
}

/// Addressing a party outside the job is an error, not a hang.
pub async fn unknown_party_is_an_error(a: &dyn Channel) {
    let stranger = crate::PartyId::new("stranger").unwrap();
    let tag = Tag::new("t", 0, "m");
    let e = a.send(&stranger, &tag, Bytes::new()).await.unwrap_err();
    assert!(matches!(e, FedError::UnknownParty { .. }), "{e}");
    let e = a.recv(&stranger, &tag).await.unwrap_err();
    assert!(matches!(e, FedError::UnknownParty { .. }), "{e}");
}

/// When `a` aborts, `b`'s pending receive fails promptly, naming `a`, its task and round.
pub async fn abort_reaches_peer(a: &dyn Channel, b: &dyn Channel) {
    let tag = Tag::new("train", 3, "grad");
    let failure = Failure {
        party: a.me().to_string(),
        task: "train".into(),
        round: Some(3),
        code: "data.ragged_row".into(),
        message: "guest.csv line 7 column 3: expected 12 fields, found 11".into(),
    };
    let waiting = b.recv(a.me(), &tag);
    let aborting = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.abort(&failure).await;
    };
    let (got, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(waiting, aborting)
    })
    .await
    .expect("abort did not reach the peer within 20 s");
    match got.unwrap_err() {
        FedError::PeerFailed(f) => assert_eq!(f, failure),
        e => panic!("expected PeerFailed, got {e}"),
    }
}

/// When `a` finishes, `b` waiting for a message `a` never sent fails instead of hanging.
pub async fn finish_releases_waiters(a: &dyn Channel, b: &dyn Channel) {
    let tag = Tag::new("t", 0, "never-sent");
    let sent = Tag::new("t", 0, "sent");
    a.send(b.me(), &sent, Bytes::from_static(b"last words"))
        .await
        .unwrap();
    a.finish().await;
    // Messages sent before finishing are still delivered.
    assert_eq!(
        b.recv(a.me(), &sent).await.unwrap(),
        Bytes::from_static(b"last words")
    );
    let e = tokio::time::timeout(Duration::from_secs(20), b.recv(a.me(), &tag))
        .await
        .expect("finish did not release the waiter")
        .unwrap_err();
    assert!(matches!(e, FedError::PeerFinished { .. }), "{e}");
}

/// Per-peer failure: `a` declares `b` and `c` droppable (and `c` declares `b`). When `b` aborts, `a`'s
/// receives from `b` fail with [`FedError::PeerDropped`] naming `b` (after what `b`
/// sent before), sends to `b` fail at once, and `a` keeps talking to `c`. When `b`
/// stops being droppable, its failure becomes job-wide. A non-droppable peer's
/// abort is job-wide as before (see [`abort_reaches_peer`]).
pub async fn droppable_peer_failure_is_per_peer(a: &dyn Channel, b: &dyn Channel, c: &dyn Channel) {
    a.set_droppable(&[b.me().clone(), c.me().clone()]);
    // `c` (another client) must not stop either when `b` fails.
    c.set_droppable(&[b.me().clone()]);
    let tag = Tag::new("train", 2, "update");
    b.send(a.me(), &tag, Bytes::from_static(b"before"))
        .await
        .unwrap();
    let failure = Failure {
        party: b.me().to_string(),
        task: "train".into(),
        round: Some(2),
        code: "data.ragged_row".into(),
        message: "bad row".into(),
    };
    b.abort(&failure).await;
    // What b delivered before it failed is still received.
    assert_eq!(
        a.recv(b.me(), &tag).await.unwrap(),
        Bytes::from_static(b"before")
    );
    let e = tokio::time::timeout(Duration::from_secs(20), a.recv(b.me(), &tag))
        .await
        .expect("the dropout did not release the waiter")
        .unwrap_err();
    match &e {
        FedError::PeerDropped { party, cause } => {
            assert_eq!(party, b.me().as_str());
            assert!(
                matches!(&**cause, FedError::PeerFailed(f) if *f == failure),
                "{e}"
            );
        }
        e => panic!("expected PeerDropped, got {e}"),
    }
    assert_eq!(e.code(), "fed.peer_dropped");
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        a.send(b.me(), &tag, Bytes::from_static(b"x")),
    )
    .await
    .expect("a send to a dropped peer must fail promptly")
    .unwrap_err();
    assert!(e.is_dropout(), "{e}");
    // The others go on, both ways.
    c.send(a.me(), &tag, Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert_eq!(
        a.recv(c.me(), &tag).await.unwrap(),
        Bytes::from_static(b"still here")
    );
    a.send(c.me(), &tag, Bytes::from_static(b"ack"))
        .await
        .unwrap();
    assert_eq!(
        c.recv(a.me(), &tag).await.unwrap(),
        Bytes::from_static(b"ack")
    );
    let dropped = a.dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(&dropped[0].0, b.me());
    // The next task needs b: its dropout now fails the job.
    a.set_droppable(&[c.me().clone()]);
    c.send(a.me(), &tag, Bytes::from_static(b"late"))
        .await
        .unwrap();
    match a.recv(c.me(), &tag).await.unwrap_err() {
        FedError::PeerFailed(f) => assert_eq!(f, failure),
        e => panic!("expected the job-wide PeerFailed, got {e}"),
    }
}
