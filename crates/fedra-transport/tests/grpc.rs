//! The gRPC channel between real sockets: the shared conformance suite, 200 MB
//! payloads, every certificate refusal, dropped connections and lost peers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedra_federation::{Channel, FedError, PartyId, Tag, testkit};
use fedra_pki::{DevCa, PartyCert, Validity};
use fedra_transport::{GrpcChannel, GrpcConfig, Timing, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn pid(s: &str) -> PartyId {
    PartyId::new(s).unwrap()
}

fn identity(ca: &DevCa, cert: &PartyCert) -> TlsIdentity {
    TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

fn fast_timing() -> Timing {
    Timing {
        send_timeout: Duration::from_secs(20),
        recv_timeout: Some(Duration::from_secs(60)),
        heartbeat_interval: Duration::from_millis(100),
        peer_timeout: Duration::from_secs(2),
        startup_grace: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
    }
}

struct Node {
    name: &'static str,
    job: &'static str,
    tls: TlsIdentity,
    listener: TcpListener,
    max: u64,
    queued: u64,
}

async fn node(name: &'static str, tls: TlsIdentity) -> Node {
    Node {
        name,
        job: "job-1",
        tls,
        listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        max: 1 << 30,
        queued: 2 << 30,
    }
}

/// Starts every node, each knowing the others' addresses (or `redirect` overrides).
async fn start(nodes: Vec<Node>, redirect: &[(&str, SocketAddr)]) -> Vec<GrpcChannel> {
    let addrs: BTreeMap<&str, SocketAddr> = nodes
        .iter()
        .map(|n| (n.name, n.listener.local_addr().unwrap()))
        .collect();
    let mut out = Vec::new();
    for n in nodes {
        let peers = addrs
            .iter()
            .filter(|(p, _)| **p != n.name)
            .map(|(p, a)| {
                let a = redirect
                    .iter()
                    .find(|(r, _)| r == p)
                    .map(|(_, a)| *a)
                    .unwrap_or(*a);
                (pid(p), a.to_string())
            })
            .collect();
        let mut cfg = GrpcConfig::new(n.job, pid(n.name), addrs[n.name], peers, n.tls);
        cfg.timing = fast_timing();
        cfg.max_message_bytes = n.max;
        cfg.max_queued_bytes = n.queued;
        out.push(GrpcChannel::start_on(cfg, n.listener).await.unwrap());
    }
    out
}

async fn pair() -> (GrpcChannel, GrpcChannel) {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    let mut v = start(vec![g, h], &[]).await;
    let h = v.pop().unwrap();
    (v.pop().unwrap(), h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let (a, b) = pair().await;
    testkit::ordering_and_isolation(&a, &b).await;
    testkit::concurrent_both_ways(&a, &b).await;
    testkit::unknown_party_is_an_error(&a).await;
    testkit::large_payload(&a, &b, 3 << 20).await;
    testkit::finish_releases_waiters(&a, &b).await;
    let (a, b) = pair().await;
    testkit::abort_reaches_peer(&a, &b).await;
    assert!(
        a.refusals().is_empty() && b.refusals().is_empty(),
        "{:?}",
        a.refusals()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_of_200_mb_round_trips_intact() {
    let (a, b) = pair().await;
    testkit::large_payload(&a, &b, 200 << 20).await;
    let s = a.stats();
    assert!(
        s[0].wire_bytes_sent > 200 << 20,
        "wire bytes must include the payload: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_parties_talk_pairwise() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let mut nodes = Vec::new();
    for n in ["guest", "host", "arbiter"] {
        nodes.push(node(n, identity(&ca, &ca.issue(n, Validity::days(1)).unwrap())).await);
    }
    let v = start(nodes, &[]).await;
    let tag = Tag::new("t", 0, "hello");
    for a in &v {
        fedra_federation::broadcast(a, a.peers(), &tag, Bytes::from(a.me().to_string()))
            .await
            .unwrap();
    }
    for a in &v {
        for p in a.peers() {
            assert_eq!(a.recv(p, &tag).await.unwrap(), Bytes::from(p.to_string()));
        }
    }
}

/// Runs a guest with a good certificate and a host with `host_tls`; returns the
/// host's send error and the guest's refusals.
async fn refused(
    host_tls: impl FnOnce(&DevCa) -> TlsIdentity,
) -> (FedError, Vec<String>, Vec<String>) {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    let h = node("host", host_tls(&ca)).await;
    let ga = g.listener.local_addr().unwrap();
    let ha = h.listener.local_addr().unwrap();
    let mk = |n: Node, peer: &str, addr: SocketAddr| {
        let mut cfg = GrpcConfig::new(
            n.job,
            pid(n.name),
            addr,
            [(pid(peer), addr.to_string())].into(),
            n.tls,
        );
        cfg.timing = fast_timing();
        (cfg, n.listener)
    };
    let (mut gcfg, gl) = mk(g, "host", ha);
    gcfg.peers = [(pid("host"), ha.to_string())].into();
    let (mut hcfg, hl) = mk(h, "guest", ga);
    hcfg.peers = [(pid("guest"), ga.to_string())].into();
    let guest = GrpcChannel::start_on(gcfg, gl).await.unwrap();
    let host = GrpcChannel::start_on(hcfg, hl).await.unwrap();
    let err = host
        .send(
            &pid("guest"),
            &Tag::new("t", 0, "m"),
            Bytes::from_static(b"hi"),
        )
        .await
        .unwrap_err();
    // Let the guest's own heartbeats to the host finish their handshakes too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (err, guest.refusals(), host.refusals())
}

fn assert_refused(err: &FedError, needle: &str) {
    match err {
        FedError::Refused { party, reason } => {
            assert_eq!(party, "guest");
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }
}

fn assert_logged(refusals: &[String], needle: &str) {
    assert!(
        refusals.iter().any(|r| r.contains(needle)),
        "no refusal mentions {needle:?}: {refusals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_without_certificate_is_refused_on_both_sides() {
    // The host trusts the guest's CA but presents no client certificate.
    let (err, guest_log, _) = refused(|ca| {
        identity(ca, &ca.issue("host", Validity::days(1)).unwrap())
            .for_tests_present_no_client_certificate()
    })
    .await;
    assert_refused(&err, "requires a client certificate");
    assert_logged(&guest_log, "presented no certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_refused_on_both_sides() {
    // Same CA as the guest is impossible to share through `refused`, so build it here.
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::expired()).unwrap()),
    )
    .await;
    let v = start(vec![g, h], &[]).await;
    let err = v[1]
        .send(
            &pid("guest"),
            &Tag::new("t", 0, "m"),
            Bytes::from_static(b"hi"),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "expired");
    // The guest, dialing the host, sees the host's expired certificate.
    let err = v[0]
        .send(&pid("host"), &Tag::new("t", 0, "m"), Bytes::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate has expired"), "{err}");
    assert_logged(&v[0].refusals(), "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused_on_both_sides() {
    let other = DevCa::new(Validity::days(1)).unwrap();
    let (err, guest_log, host_log) =
        refused(|_| identity(&other, &other.issue("host", Validity::days(1)).unwrap())).await;
    // The host does not trust the guest's CA either, so it refuses the guest's certificate first.
    assert!(matches!(err, FedError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("CA"), "{err}");
    assert_logged(&guest_log, "CA");
    assert!(!host_log.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_party_is_refused_on_both_sides() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    // "host" runs with a certificate of the same CA issued to "mallory".
    let h = node(
        "host",
        identity(&ca, &ca.issue("mallory", Validity::days(1)).unwrap()),
    )
    .await;
    let v = start(vec![g, h], &[]).await;
    let err = v[1]
        .send(
            &pid("guest"),
            &Tag::new("t", 0, "m"),
            Bytes::from_static(b"hi"),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "mallory");
    assert_logged(&v[0].refusals(), "which is no party of job");
    // And the guest, dialing "host", finds a certificate that is not host's.
    let err = v[0]
        .send(&pid("host"), &Tag::new("t", 0, "m"), Bytes::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another party"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_for_another_job_is_refused_on_both_sides() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    let mut h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    h.job = "job-2";
    let v = start(vec![g, h], &[]).await;
    let err = v[1]
        .send(
            &pid("guest"),
            &Tag::new("t", 0, "m"),
            Bytes::from_static(b"hi"),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "not job 'job-2'");
    assert_logged(&v[0].refusals(), "for job 'job-2'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_by_the_receiver() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let mut g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    g.max = 1 << 20;
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    let mut v = start(vec![g, h], &[]).await;
    let host = v.pop().unwrap();
    let guest = v.pop().unwrap();
    // The host allows 1 GiB, the guest only 1 MiB: the receiver's limit wins.
    let err = host
        .send(
            &pid("guest"),
            &Tag::new("t", 0, "big"),
            Bytes::from(vec![0u8; 2 << 20]),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "no room for message");
    assert_logged(&guest.refusals(), "more than the maximum");
    // The sender checks its own limit before sending anything.
    let err = guest
        .send(
            &pid("host"),
            &Tag::new("t", 0, "big"),
            Bytes::from(vec![0u8; 2 << 20]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FedError::TooLarge { .. }), "{err}");
    // Exactly the limit passes.
    host.send(
        &pid("guest"),
        &Tag::new("t", 0, "ok"),
        Bytes::from(vec![1u8; 1 << 20]),
    )
    .await
    .unwrap();
    assert_eq!(
        guest
            .recv(&pid("host"), &Tag::new("t", 0, "ok"))
            .await
            .unwrap()
            .len(),
        1 << 20
    );
}

/// A peer with a valid certificate cannot make a party hold what it will not ask for:
/// messages for a task the job lacks are refused, and so are bytes beyond the
/// per-peer queue limit; either fails the job naming the peer, and the refusal log
/// stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_refused_and_fails_the_job_naming_it() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let mut g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    g.queued = 4 << 20;
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    let mut v = start(vec![g, h], &[]).await;
    let host = v.pop().unwrap();
    let guest = v.pop().unwrap();
    guest.expect_tasks(&["psi"]);
    // Up to the limit, nothing happens: 4 x 1 MiB queued, unread.
    for i in 0..4 {
        host.send(
            &pid("guest"),
            &Tag::new("psi", i, "m"),
            Bytes::from(vec![0u8; 1 << 20]),
        )
        .await
        .unwrap();
    }
    assert!(guest.failure().is_none());
    // One byte more is refused before its body is buffered, and fails the job.
    let err = host
        .send(
            &pid("guest"),
            &Tag::new("psi", 4, "m"),
            Bytes::from(vec![0u8; 1]),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "no room for message");
    let f = guest.failure().unwrap();
    assert_eq!(
        (f.code(), f.party()),
        ("fed.queue_full", Some("host")),
        "{f}"
    );
    // The job failed: every receive now fails with that cause.
    let e = guest
        .recv(&pid("host"), &Tag::new("psi", 0, "m"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "fed.queue_full");

    // A task the job does not have.
    let (guest, host) = pair().await;
    guest.expect_tasks(&["psi"]);
    let err = host
        .send(
            &pid("guest"),
            &Tag::new("no-such-task", 9, "m"),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "for a task this job does not have");
    let f = guest.failure().unwrap();
    assert_eq!(
        (f.code(), f.party()),
        ("fed.unexpected_tag", Some("host")),
        "{f}"
    );
    for i in 0..200 {
        let _ = host
            .send(
                &pid("guest"),
                &Tag::new("no-such-task", i, "m"),
                Bytes::from_static(b"x"),
            )
            .await;
    }
    assert!(guest.refusal_count() >= 201);
    assert!(guest.refusals().len() <= 64);
}

/// A TCP proxy that cuts the first connection after `cut_after` bytes from client to
/// server and forwards later connections untouched.
async fn flaky_proxy(target: SocketAddr, cut_after: usize) -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = l.accept().await.unwrap();
            let mut server = TcpStream::connect(target).await.unwrap();
            let first = !cut2.swap(true, Ordering::SeqCst);
            tokio::spawn(async move {
                if !first {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut total = 0;
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || total + n > cut_after {
                            return; // drop the connection mid-transfer
                        }
                        total += n;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    (addr, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_mid_transfer_recovers_without_loss_or_duplication() {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let g = node(
        "guest",
        identity(&ca, &ca.issue("guest", Validity::days(1)).unwrap()),
    )
    .await;
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    let guest_addr = g.listener.local_addr().unwrap();
    let (proxy, cut) = flaky_proxy(guest_addr, 3 << 20).await;
    let v = start(vec![g, h], &[("guest", proxy)]).await;
    let (guest, host) = (&v[0], &v[1]);
    let tag = Tag::new("t", 0, "blob");
    let payloads: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 4 << 20])).collect();
    for p in &payloads {
        host.send(&pid("guest"), &tag, p.clone()).await.unwrap();
    }
    assert!(
        cut.load(Ordering::SeqCst),
        "the proxy never cut a connection"
    );
    for p in &payloads {
        assert!(guest.recv(&pid("host"), &tag).await.unwrap() == *p);
    }
    // Nothing more arrives: the host finishes and the guest's next receive says so.
    host.finish().await;
    let e = guest.recv(&pid("host"), &tag).await.unwrap_err();
    assert!(matches!(e, FedError::PeerFinished { .. }), "{e}");
    let s = guest.stats();
    assert_eq!(s[0].messages_received, 3, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_fails_the_waiting_party_within_the_peer_timeout() {
    let (a, b) = pair().await;
    let tag = Tag::new("train", 7, "grad");
    a.send(b.me(), &Tag::new("t", 0, "warmup"), Bytes::new())
        .await
        .unwrap();
    b.recv(a.me(), &Tag::new("t", 0, "warmup")).await.unwrap();
    let started = Instant::now();
    drop(b); // the host "crashes": its server and heartbeats stop
    let e = a.recv(&pid("host"), &tag).await.unwrap_err();
    let took = started.elapsed();
    match &e {
        FedError::PeerLost { party, doing, .. } => {
            assert_eq!(party, "host");
            assert!(doing.contains("train/7/grad"), "{doing}");
        }
        e => panic!("expected PeerLost, got {e}"),
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

async fn trio() -> Vec<GrpcChannel> {
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let mut nodes = Vec::new();
    for name in ["server", "c1", "c2"] {
        nodes.push(
            node(
                name,
                identity(&ca, &ca.issue(name, Validity::days(1)).unwrap()),
            )
            .await,
        );
    }
    start(nodes, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn droppable_peer_abort_is_per_peer_over_grpc() {
    let v = trio().await;
    testkit::droppable_peer_failure_is_per_peer(&v[0], &v[1], &v[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_droppable_peer_is_a_dropout_and_the_others_go_on() {
    let mut v = trio().await;
    let (server, c1, c2) = (pid("server"), pid("c1"), pid("c2"));
    v[0].set_droppable(&[c1.clone(), c2.clone()]);
    v[2].set_droppable(std::slice::from_ref(&c1));
    let warm = Tag::new("t", 0, "warmup");
    for i in [1, 2] {
        v[i].send(&server, &warm, Bytes::new()).await.unwrap();
    }
    for c in [&c1, &c2] {
        v[0].recv(c, &warm).await.unwrap();
    }
    let tag = Tag::new("train", 3, "update");
    let started = Instant::now();
    drop(v.remove(1)); // c1 "crashes": its server and heartbeats stop
    let e = v[0].recv(&c1, &tag).await.unwrap_err();
    let took = started.elapsed();
    match &e {
        FedError::PeerDropped { party, cause } => {
            assert_eq!(party, "c1");
            assert!(matches!(**cause, FedError::PeerLost { .. }), "{e}");
        }
        e => panic!("expected PeerDropped, got {e}"),
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(v[0].dropped().len(), 1);
    // A send to the dropped peer fails at once instead of retrying for 20 s.
    let t0 = Instant::now();
    let e = v[0].send(&c1, &tag, Bytes::new()).await.unwrap_err();
    assert!(
        e.is_dropout() && t0.elapsed() < Duration::from_secs(1),
        "{e}"
    );
    // Server and c2 still talk, long after c1's loss (heartbeats keep going).
    tokio::time::sleep(Duration::from_secs(3)).await;
    v[1].send(&server, &tag, Bytes::from_static(b"u2"))
        .await
        .unwrap();
    assert_eq!(
        v[0].recv(&c2, &tag).await.unwrap(),
        Bytes::from_static(b"u2")
    );
    v[0].send(&c2, &tag, Bytes::from_static(b"next"))
        .await
        .unwrap();
    assert_eq!(
        v[1].recv(&server, &tag).await.unwrap(),
        Bytes::from_static(b"next")
    );
    assert!(v[0].failure().is_none() && v[1].failure().is_none());
    // The server is not droppable for c2: when it vanishes, c2's job fails.
    drop(v.remove(0));
    let e = v[0].recv(&server, &tag).await.unwrap_err();
    assert!(matches!(e, FedError::PeerLost { .. }), "{e}");
}

/// Every refusal is one sentence a person understands — no `Debug` dumps of TLS or
/// tonic internals: a CA certificate used as a party's own, a party's own certificate
/// presented back to it, a TLS 1.2 client, and a peer that is not listening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_read_as_sentences() {
    fn plain(s: &str) {
        for dump in ["Error(", "Os {", "OtherError", "Extension", "Some("] {
            assert!(!s.contains(dump), "debug dump {dump:?} in {s:?}");
        }
    }
    let ca = DevCa::new(Validity::days(1)).unwrap();
    let dir = std::env::temp_dir().join(format!("fedra-ca-{}", std::process::id()));
    ca.write(&dir).unwrap();
    let ca_key = std::fs::read_to_string(dir.join("ca.key")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let guest_cert = ca.issue("guest", Validity::days(1)).unwrap();

    // The host presents the CA certificate (with the CA key) as its own.
    let g = node("guest", identity(&ca, &guest_cert)).await;
    let h = node(
        "host",
        TlsIdentity::from_pem(ca.cert_pem(), ca.cert_pem(), &ca_key).unwrap(),
    )
    .await;
    let v = start(vec![g, h], &[]).await;
    let err = v[1]
        .send(&pid("guest"), &Tag::new("t", 0, "m"), Bytes::new())
        .await
        .unwrap_err();
    plain(&err.to_string());
    let log = v[0].refusals();
    assert_logged(&log, "presented a CA certificate as its own");
    log.iter().for_each(|r| plain(r));

    // The host runs with the guest's own certificate and key.
    let g = node("guest", identity(&ca, &guest_cert)).await;
    let h = node("host", identity(&ca, &guest_cert)).await;
    let v = start(vec![g, h], &[]).await;
    let _ = v[1]
        .send(&pid("guest"), &Tag::new("t", 0, "m"), Bytes::new())
        .await;
    assert_logged(
        &v[0].refusals(),
        "presents this party's own certificate ('guest')",
    );

    // A TLS 1.2-only client.
    let g = node("guest", identity(&ca, &guest_cert)).await;
    let addr = g.listener.local_addr().unwrap();
    let h = node(
        "host",
        identity(&ca, &ca.issue("host", Validity::days(1)).unwrap()),
    )
    .await;
    let v = start(vec![g, h], &[]).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("guest").unwrap();
    assert!(
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = v[0].refusals();
    assert_logged(&log, "does not speak TLS 1.3");
    log.iter().for_each(|r| plain(r));

    // A peer that is not listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let g = node("guest", identity(&ca, &guest_cert)).await;
    let gaddr = g.listener.local_addr().unwrap();
    let mut cfg = GrpcConfig::new(
        g.job,
        pid("guest"),
        gaddr,
        [(pid("host"), closed_addr.to_string())].into(),
        g.tls,
    );
    cfg.timing = fast_timing();
    cfg.timing.send_timeout = Duration::from_secs(1);
    let guest = GrpcChannel::start_on(cfg, g.listener).await.unwrap();
    let err = guest
        .send(&pid("host"), &Tag::new("t", 0, "m"), Bytes::new())
        .await
        .unwrap_err();
    let s = err.to_string();
    assert_eq!(err.code(), "fed.unreachable", "{s}");
    assert!(
        s.contains("connection refused: nothing listens at that address"),
        "{s}"
    );
    plain(&s);
}

/// Accepts any server certificate: the TLS 1.2 probe above must reach the server's
/// version check, not fail on our side first.
#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
