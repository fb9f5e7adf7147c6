//! Fedra's federation channel over gRPC with mutually authenticated TLS 1.3.
//!
//! Every party runs a gRPC server (tonic) on its endpoint and opens one HTTP/2
//! connection to each peer. A message is one client-streaming `Deliver` call: a
//! header frame (job, sender, message id, tag, length) followed by chunks of at most
//! `chunk_bytes`, so payloads of hundreds of MB never meet gRPC's message limits;
//! the receiver enforces `max_message_bytes` from the declared length before
//! buffering anything. A failed call is retried on a fresh connection until the send
//! deadline; the receiver drops re-deliveries by message id, so a dropped connection
//! neither loses nor duplicates a message.
//!
//! Identity: TLS 1.3 only, client certificates required, both sides verified against
//! the job's CA; the server certificate must be valid for the peer's party id and
//! the client certificate must name a party of the job that matches the sender
//! field of every message. Refusals are explained on both sides (see [`tls`]).
//!
//! Liveness: parties exchange heartbeats; a peer silent for `peer_timeout` fails the
//! job for everyone waiting on it, a peer that reports a failure (`abort`) fails it
//! at once, and a peer that finished releases anyone still waiting for it. A peer
//! declared droppable (`Channel::set_droppable`) that vanishes or aborts fails only
//! the sends to and receives from it (`FedError::PeerDropped`); heartbeats to it
//! stop and the others are still watched.
//!
//! This is the only crate that knows the wire format (`proto/fedra.proto`).

mod client;
mod counting;
mod server;
pub mod tls;

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod wire {
    tonic::include_proto!("fedra.transport.v1");
}

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use fedra_federation::inbox::Inbox;
use fedra_federation::stats::Traffic;
use fedra_federation::{Channel, Failure, FedError, PartyId, PeerStats, Tag};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::counting::WireCount;
pub use crate::tls::TlsIdentity;

/// Deadlines and liveness settings.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a `send` keeps retrying before giving up.
    pub send_timeout: Duration,
    /// Deadline of each `recv`; `None` relies on liveness detection alone.
    pub recv_timeout: Option<Duration>,
    /// Interval between heartbeats to each peer.
    pub heartbeat_interval: Duration,
    /// A peer silent for this long is declared lost and the job fails.
    pub peer_timeout: Duration,
    /// Extra time allowed at start-up for peers to come up.
    pub startup_grace: Duration,
    /// Deadline of a TLS handshake on an accepted connection.
    pub handshake_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(120),
            recv_timeout: None,
            heartbeat_interval: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(10),
            startup_grace: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a party needs to join a job over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// The job id; messages for other jobs are refused.
    pub job: String,
    /// This party.
    pub me: PartyId,
    /// Where this party's server listens.
    pub listen: SocketAddr,
    /// Every peer and its endpoint (`host:port`).
    pub peers: BTreeMap<PartyId, String>,
    /// Certificates.
    pub tls: TlsIdentity,
    /// Largest message accepted from a peer (and sent to one), in bytes.
    pub max_message_bytes: u64,
    /// Size of the frames a message is streamed in.
    pub chunk_bytes: usize,
    /// Bytes one peer may have delivered that this party has not yet received;
    /// over it the peer's message is refused and the job fails naming the peer.
    pub max_queued_bytes: u64,
    /// Deadlines and liveness.
    pub timing: Timing,
}

impl GrpcConfig {
    /// A configuration with default limits (1 GiB messages, 1 MiB frames) and timing.
    pub fn new(
        job: &str,
        me: PartyId,
        listen: SocketAddr,
        peers: BTreeMap<PartyId, String>,
        tls: TlsIdentity,
    ) -> Self {
        Self {
            job: job.to_owned(),
            me,
            listen,
            peers,
            tls,
            max_message_bytes: 1 << 30,
            chunk_bytes: 1 << 20,
            max_queued_bytes: fedra_federation::inbox::InboxLimits::DEFAULT_MAX_QUEUED_BYTES,
            timing: Timing::default(),
        }
    }
}

/// Refused connections and messages: the newest few, and log rate limiting.
struct Refusals {
    recent: std::collections::VecDeque<String>,
    total: u64,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl Refusals {
    const KEEP: usize = 64;
    const WINDOW: Duration = Duration::from_secs(60);
    const LOG_PER_WINDOW: u32 = 10;

    fn new() -> Self {
        Self {
            recent: std::collections::VecDeque::with_capacity(Self::KEEP),
            total: 0,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }
}

/// State shared by the server, the client and the heartbeat task.
struct Shared {
    job: String,
    me: PartyId,
    peers: Vec<PartyId>,
    inbox: Inbox,
    traffic: Traffic,
    wires: Mutex<Vec<(PartyId, Arc<WireCount>)>>,
    last_seen: Mutex<HashMap<PartyId, Instant>>,
    refusals: Mutex<Refusals>,
    max_message_bytes: u64,
    chunk_bytes: usize,
    timing: Timing,
    next_seq: AtomicU64,
}

impl Shared {
    fn touch(&self, p: &PartyId) {
        lock(&self.last_seen).insert(p.clone(), Instant::now());
    }

    /// Records a refused connection or message. Logged at most
    /// [`Refusals::LOG_PER_WINDOW`] times per [`Refusals::WINDOW`] (then one line with
    /// the count), and only the last [`Refusals::KEEP`] are kept, so a flood of bad
    /// connections can neither fill the log nor grow memory.
    fn refuse(&self, what: String) {
        let mut r = lock(&self.refusals);
        let now = Instant::now();
        if now.duration_since(r.window_start) >= Refusals::WINDOW {
            if r.suppressed > 0 {
                tracing::warn!(
                    party = %self.me,
                    "{} more refusals in the last {} s were not logged",
                    r.suppressed,
                    Refusals::WINDOW.as_secs()
                );
            }
            r.window_start = now;
            r.logged = 0;
            r.suppressed = 0;
        }
        if r.logged < Refusals::LOG_PER_WINDOW {
            r.logged += 1;
            tracing::warn!(party = %self.me, "refused: {what}");
        } else {
            r.suppressed += 1;
        }
        r.total += 1;
        if r.recent.len() == Refusals::KEEP {
            r.recent.pop_front();
        }
        r.recent.push_back(what);
    }

    fn wire_totals(&self, p: &PartyId) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        lock(&self.wires)
            .iter()
            .filter(|(q, _)| q == p)
            .fold((0, 0), |(w, r), (_, c)| {
                (w + c.written.load(Relaxed), r + c.read.load(Relaxed))
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data are plain collections that stay valid if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A party's [`Channel`] over mutually authenticated gRPC.
pub struct GrpcChannel {
    shared: Arc<Shared>,
    links: client::Links,
    local_addr: SocketAddr,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    heartbeat: JoinHandle<()>,
}

impl GrpcChannel {
    /// Binds `config.listen` and starts serving and heartbeating.
    pub async fn start(config: GrpcConfig) -> Result<Self, FedError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| FedError::Transport(format!("cannot listen on {}: {e}", config.listen)))?;
        Self::start_on(config, listener).await
    }

    /// Starts on an already bound listener (`config.listen` is ignored).
    pub async fn start_on(
        config: GrpcConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, FedError> {
        if config.peers.contains_key(&config.me) {
            return Err(FedError::Transport(format!(
                "party '{}' lists itself as a peer",
                config.me
            )));
        }
        if config.chunk_bytes == 0 || config.chunk_bytes > 16 << 20 {
            return Err(FedError::Transport(format!(
                "chunk_bytes must be in 1..=16777216, got {}",
                config.chunk_bytes
            )));
        }
        let local_addr = listener
            .local_addr()
            .map_err(|e| FedError::Transport(e.to_string()))?;
        let peers: Vec<PartyId> = config.peers.keys().cloned().collect();
        let traffic = Traffic::new(&peers);
        let grace = Instant::now() + config.timing.startup_grace;
        let inbox = Inbox::new(&config.job, &peers, traffic.clone());
        inbox.set_limits(fedra_federation::inbox::InboxLimits {
            max_queued_bytes: config.max_queued_bytes,
        });
        let shared = Arc::new(Shared {
            job: config.job.clone(),
            me: config.me.clone(),
            inbox,
            traffic,
            wires: Mutex::new(Vec::new()),
            last_seen: Mutex::new(peers.iter().map(|p| (p.clone(), grace)).collect()),
            refusals: Mutex::new(Refusals::new()),
            max_message_bytes: config.max_message_bytes,
            chunk_bytes: config.chunk_bytes,
            timing: config.timing.clone(),
            next_seq: AtomicU64::new(0),
            peers,
        });
        let links = client::Links::new(&config, shared.clone())?;
        let (stop_server, stopped) = oneshot::channel();
        let server = server::spawn(
            listener,
            config.tls.server_config()?,
            shared.clone(),
            stopped,
        );
        let heartbeat = tokio::spawn(client::heartbeat(shared.clone(), links.clone()));
        tracing::info!(party = %config.me, job = %config.job, %local_addr, "federation channel up");
        Ok(Self {
            shared,
            links,
            local_addr,
            stop_server: Some(stop_server),
            server: Some(server),
            heartbeat,
        })
    }

    /// The address the server actually listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The last connections and messages this party refused (at most 64), with
    /// reasons (newest last).
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.shared.refusals).recent.iter().cloned().collect()
    }

    /// How many connections and messages this party refused in all.
    pub fn refusal_count(&self) -> u64 {
        lock(&self.shared.refusals).total
    }

    /// The job-wide failure, if a peer failed or vanished.
    pub fn failure(&self) -> Option<FedError> {
        self.shared.inbox.failure()
    }

    /// Stops heartbeats and the server (waiting at most two seconds for in-flight calls).
    pub async fn shutdown(mut self) {
        self.heartbeat.abort();
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
    }
}

impl Drop for GrpcChannel {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Some(h) = &self.server {
            h.abort();
        }
    }
}

#[async_trait]
impl Channel for GrpcChannel {
    fn me(&self) -> &PartyId {
        &self.shared.me
    }

    fn job(&self) -> &str {
        &self.shared.job
    }

    fn peers(&self) -> &[PartyId] {
        &self.shared.peers
    }

    async fn send(&self, to: &PartyId, tag: &Tag, payload: Bytes) -> Result<(), FedError> {
        self.links.send(to, tag, payload).await
    }

    async fn recv(&self, from: &PartyId, tag: &Tag) -> Result<Bytes, FedError> {
        self.shared
            .inbox
            .recv(from, tag, self.shared.timing.recv_timeout)
            .await
    }

    async fn abort(&self, failure: &Failure) {
        self.links
            .signal_all(client::SignalKind::Abort(failure.clone()))
            .await;
    }

    async fn finish(&self) {
        self.links.signal_all(client::SignalKind::Done).await;
    }

    fn set_droppable(&self, peers: &[PartyId]) {
        self.shared.inbox.set_droppable(peers);
    }

    fn expect_tasks(&self, tasks: &[&str]) {
        self.shared.inbox.expect_tasks(tasks.iter().copied());
    }

    fn dropped(&self) -> Vec<(PartyId, FedError)> {
        self.shared.inbox.dropped()
    }

    fn stats(&self) -> Vec<PeerStats> {
        let mut stats = self.shared.traffic.snapshot();
        for s in &mut stats {
            if let Ok(p) = PartyId::new(&s.peer) {
                (s.wire_bytes_sent, s.wire_bytes_received) = self.shared.wire_totals(&p);
            }
        }
        stats
    }
}
