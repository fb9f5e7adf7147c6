//! The sending side: one lazily connected HTTP/2 channel per peer, chunked
//! delivery with retry, signals and heartbeats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedra_federation::{Failure, FedError, PartyId, Tag};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel as TonicChannel, Endpoint, Uri};
use tonic::{Code, Request, Status};

use crate::counting::{Counted, WireCount};
use crate::tls::{describe, find_rustls_error, is_refusal};
use crate::wire::federation_client::FederationClient;
use crate::wire::{self, Frame, Header, SignalRequest, signal_request};
use crate::{GrpcConfig, Shared, lock};

/// A signal to every peer.
pub(crate) enum SignalKind {
    Heartbeat,
    Abort(Failure),
    Done,
}

struct Link {
    endpoint: String,
    channel: TonicChannel,
}

/// The connections to every peer.
#[derive(Clone)]
pub(crate) struct Links {
    shared: Arc<Shared>,
    links: Arc<BTreeMap<PartyId, Link>>,
}

/// The outcome of one failed attempt.
enum Failed {
    /// Retrying cannot help (identity, job, size).
    Final(FedError),
    /// Network trouble: retry on a fresh connection.
    Retry(String),
}

impl Links {
    pub(crate) fn new(cfg: &GrpcConfig, shared: Arc<Shared>) -> Result<Self, FedError> {
        let tls = cfg.tls.client_config()?;
        let mut links = BTreeMap::new();
        for (peer, endpoint) in &cfg.peers {
            let channel = connect_lazy(endpoint, peer.clone(), tls.clone(), shared.clone())?;
            links.insert(
                peer.clone(),
                Link {
                    endpoint: endpoint.clone(),
                    channel,
                },
            );
        }
        Ok(Self {
            shared,
            links: Arc::new(links),
        })
    }

    fn link(&self, p: &PartyId) -> Result<&Link, FedError> {
        self.links.get(p).ok_or_else(|| FedError::UnknownParty {
            job: self.shared.job.clone(),
            party: p.to_string(),
        })
    }

    fn client(&self, link: &Link) -> FederationClient<TonicChannel> {
        FederationClient::new(link.channel.clone())
            .max_encoding_message_size(self.shared.chunk_bytes + (64 << 10))
    }

    /// Delivers one message, retrying on network failures until the send deadline.
    pub(crate) async fn send(
        &self,
        to: &PartyId,
        tag: &Tag,
        payload: Bytes,
    ) -> Result<(), FedError> {
        let link = self.link(to)?;
        let sh = &self.shared;
        if let Some(e) = sh.inbox.dropout(to) {
            return Err(e);
        }
        let len = payload.len();
        if len as u64 > sh.max_message_bytes {
            return Err(FedError::TooLarge {
                party: sh.me.to_string(),
                tag: tag.to_string(),
                size: len as u64,
                max: sh.max_message_bytes,
            });
        }
        let header = Header {
            job: sh.job.clone(),
            sender: sh.me.to_string(),
            seq: sh.next_seq.fetch_add(1, Ordering::Relaxed),
            task: tag.task().to_owned(),
            round: tag.round(),
            name: tag.name().to_owned(),
            length: len as u64,
        };
        let started = Instant::now();
        let deadline = started + sh.timing.send_timeout;
        let mut backoff = Duration::from_millis(50);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let frames = frames(header.clone(), payload.clone(), sh.chunk_bytes);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut client = self.client(link);
            let call = client.deliver(Request::new(tokio_stream::iter(frames)));
            let cause = match tokio::time::timeout(remaining, call).await {
                Ok(Ok(_ack)) => {
                    if let Some(c) = sh.traffic.peer(to) {
                        c.sent(len);
                    }
                    return Ok(());
                }
                Ok(Err(status)) => match classify(to, tag, &status) {
                    Failed::Final(e) => return Err(e),
                    Failed::Retry(cause) => cause,
                },
                Err(_) => "send deadline passed".to_owned(),
            };
            // Once the job has failed there is no point in delivering more.
            if let Some(e) = sh.inbox.failure() {
                return Err(e.while_doing(|| format!("sending message '{tag}' to party '{to}'")));
            }
            // Nor to a droppable peer that dropped out meanwhile.
            if let Some(e) = sh.inbox.dropout(to) {
                return Err(e);
            }
            if Instant::now() + backoff >= deadline {
                return Err(FedError::Unreachable {
                    party: to.to_string(),
                    endpoint: link.endpoint.clone(),
                    attempts,
                    elapsed_s: started.elapsed().as_secs_f64(),
                    cause,
                });
            }
            tracing::debug!(peer = %to, %tag, attempts, "delivery failed, retrying: {cause}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn signal(&self, to: &PartyId, kind: &SignalKind) -> Result<(), Failed> {
        let link = self.link(to).map_err(Failed::Final)?;
        let kind = match kind {
            SignalKind::Heartbeat => signal_request::Kind::Heartbeat(wire::Heartbeat {}),
            SignalKind::Done => signal_request::Kind::Done(wire::Done {}),
            SignalKind::Abort(f) => signal_request::Kind::Abort(wire::Abort {
                task: f.task.clone(),
                round: f.round,
                code: f.code.clone(),
                message: f.message.clone(),
            }),
        };
        let req = SignalRequest {
            job: self.shared.job.clone(),
            sender: self.shared.me.to_string(),
            kind: Some(kind),
        };
        let tag = Tag::new("_signal", 0, "signal");
        match tokio::time::timeout(Duration::from_secs(3), self.client(link).signal(req)).await {
            Ok(Ok(_)) => {
                self.shared.touch(to);
                Ok(())
            }
            Ok(Err(status)) => Err(classify(to, &tag, &status)),
            Err(_) => Err(Failed::Retry("signal timed out".into())),
        }
    }

    /// Sends a signal to every peer that has not finished, a few attempts each, within
    /// a bounded time; never fails.
    pub(crate) async fn signal_all(&self, kind: SignalKind) {
        let peers: Vec<&PartyId> = self
            .links
            .keys()
            .filter(|p| !self.shared.inbox.is_finished(p) && self.shared.inbox.dropout(p).is_none())
            .collect();
        futures_util::future::join_all(peers.into_iter().map(|p| self.signal_retrying(p, &kind)))
            .await;
    }

    async fn signal_retrying(&self, p: &PartyId, kind: &SignalKind) {
        for attempt in 0..3 {
            match self.signal(p, kind).await {
                Ok(()) | Err(Failed::Final(_)) => return,
                Err(Failed::Retry(e)) => {
                    tracing::debug!(peer = %p, attempt, "signal failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Splits a message into frames: the header rides on the first one.
fn frames(
    header: Header,
    payload: Bytes,
    chunk: usize,
) -> impl Iterator<Item = Frame> + Send + 'static {
    let len = payload.len();
    let n = len.div_ceil(chunk).max(1);
    let mut header = Some(header);
    (0..n).map(move |i| {
        let start = i * chunk;
        Frame {
            header: header.take(),
            data: payload.slice(start..(start + chunk).min(len)),
        }
    })
}

/// Sorts a failed call into final refusals and retryable network trouble.
fn classify(to: &PartyId, tag: &Tag, status: &Status) -> Failed {
    if let Some(r) = find_rustls_error(status)
        && is_refusal(r)
    {
        return Failed::Final(FedError::Refused {
            party: to.to_string(),
            reason: describe(r),
        });
    }
    let refused = |reason: String| {
        Failed::Final(FedError::Refused {
            party: to.to_string(),
            reason,
        })
    };
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated | Code::FailedPrecondition => {
            refused(status.message().to_owned())
        }
        Code::ResourceExhausted => refused(format!(
            "the peer has no room for message '{tag}': {}",
            status.message()
        )),
        Code::InvalidArgument => refused(format!(
            "the peer rejected the message as malformed: {}",
            status.message()
        )),
        _ => {
            let text = chain(status);
            // h2 keeps I/O errors as text, so a TLS alert that arrives after the
            // handshake (TLS 1.3 client-certificate refusals) is only visible as text.
            match crate::tls::describe_text(&text) {
                Some(reason) => refused(reason),
                None => Failed::Retry(network_cause(status)),
            }
        }
    }
}

/// One sentence for a retryable network failure: the innermost I/O error in plain
/// words where there is one (tonic's own `Display` of a status embeds `Debug` dumps).
fn network_cause(status: &Status) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    let mut innermost = None;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return describe_io(io);
        }
        innermost = Some(e);
        cur = e.source();
    }
    match innermost {
        Some(e) => e.to_string(),
        None if status.message().is_empty() => format!("the call failed ({:?})", status.code()),
        None => status.message().to_owned(),
    }
}

fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => {
            "connection refused: nothing listens at that address (is the party started, and is its address right?)".into()
        }
        K::TimedOut => "the connection timed out (a firewall, or a wrong address?)".into(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            "the connection was cut (the peer stopped or the network dropped it)".into()
        }
        K::HostUnreachable | K::NetworkUnreachable => {
            "the peer's host cannot be reached from here (routing or firewall)".into()
        }
        K::AddrNotAvailable => "the peer's address is not available on this network".into(),
        _ => format!("network error: {e}"),
    }
}

/// The full chain of causes of an error, for logs.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A channel that connects (and reconnects) on demand through our own TLS connector.
fn connect_lazy(
    endpoint: &str,
    peer: PartyId,
    tls: Arc<rustls::ClientConfig>,
    shared: Arc<Shared>,
) -> Result<TonicChannel, FedError> {
    let ep = Endpoint::from_shared(format!("http://{endpoint}"))
        .map_err(|e| {
            FedError::Transport(format!("bad endpoint '{endpoint}' for party '{peer}': {e}"))
        })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20));
    let server_name = ServerName::try_from(peer.as_str().to_owned()).map_err(|e| {
        FedError::Transport(format!("party id '{peer}' is not a TLS server name: {e}"))
    })?;
    let addr = endpoint.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let (addr, server_name, tls, shared, peer) = (
            addr.clone(),
            server_name.clone(),
            tls.clone(),
            shared.clone(),
            peer.clone(),
        );
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let count = Arc::new(WireCount::default());
            lock(&shared.wires).push((peer, count.clone()));
            let stream = TlsConnector::from(tls)
                .connect(server_name, Counted::new(tcp, count))
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(ep.connect_with_connector_lazy(connector))
}

/// Sends heartbeats and declares peers lost after `peer_timeout` of silence (a
/// droppable peer alone, any other peer for the whole job).
pub(crate) async fn heartbeat(shared: Arc<Shared>, links: Links) {
    let mut tick = tokio::time::interval(shared.timing.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live: Vec<PartyId> = shared
            .peers
            .iter()
            .filter(|p| !shared.inbox.is_finished(p) && shared.inbox.dropout(p).is_none())
            .cloned()
            .collect();
        let beats = live.iter().map(|p| {
            let links = &links;
            async move { (p, links.signal(p, &SignalKind::Heartbeat).await) }
        });
        for (p, r) in futures_util::future::join_all(beats).await {
            if let Err(Failed::Final(e)) = r {
                // A refusal is not going to heal: report it instead of "peer lost".
                shared.inbox.fail_peer(p, e);
                if shared.inbox.failure().is_some() {
                    return;
                }
                continue;
            }
            let silent = {
                let seen = lock(&shared.last_seen);
                seen.get(p)
                    .map(|t| Instant::now().saturating_duration_since(*t))
                    .unwrap_or_default()
            };
            if silent > shared.timing.peer_timeout && !shared.inbox.is_finished(p) {
                // Job-wide, unless `p` is droppable: then only `p` is given up
                // and the others are still watched.
                shared.inbox.fail_peer(
                    p,
                    FedError::PeerLost {
                        party: p.to_string(),
                        silent_s: silent.as_secs_f64(),
                        doing: String::new(),
                    },
                );
                if shared.inbox.failure().is_some() {
                    return;
                }
            }
        }
    }
}
