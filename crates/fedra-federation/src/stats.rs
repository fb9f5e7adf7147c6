//! Per-peer traffic counters (every job reports them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::PartyId;

/// Traffic exchanged with one peer.
///
/// `payload_*` count application payload bytes of delivered messages (each message
/// once, however often it was retried); `wire_*` count bytes on the socket,
/// including TLS, HTTP/2, retries and heartbeats (zero for in-memory channels).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// The peer.
    pub peer: String,
    /// Messages sent to the peer.
    pub messages_sent: u64,
    /// Messages received from the peer.
    pub messages_received: u64,
    /// Payload bytes sent to the peer.
    pub payload_bytes_sent: u64,
    /// Payload bytes received from the peer.
    pub payload_bytes_received: u64,
    /// Bytes written to sockets towards the peer.
    pub wire_bytes_sent: u64,
    /// Bytes read from sockets from the peer.
    pub wire_bytes_received: u64,
}

/// Lock-free counters for one peer.
#[derive(Debug, Default)]
pub struct PeerCounters {
    /// Messages sent.
    pub messages_sent: AtomicU64,
    /// Messages received.
    pub messages_received: AtomicU64,
    /// Payload bytes sent.
    pub payload_bytes_sent: AtomicU64,
    /// Payload bytes received.
    pub payload_bytes_received: AtomicU64,
    /// Socket bytes written.
    pub wire_bytes_sent: AtomicU64,
    /// Socket bytes read.
    pub wire_bytes_received: AtomicU64,
}

impl PeerCounters {
    /// Records one delivered outgoing message.
    pub fn sent(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Relaxed);
        self.payload_bytes_sent.fetch_add(bytes as u64, Relaxed);
    }

    /// Records one delivered incoming message.
    pub fn received(&self, bytes: usize) {
        self.messages_received.fetch_add(1, Relaxed);
        self.payload_bytes_received.fetch_add(bytes as u64, Relaxed);
    }

    fn snapshot(&self, peer: &PartyId) -> PeerStats {
        PeerStats {
            peer: peer.to_string(),
            messages_sent: self.messages_sent.load(Relaxed),
            messages_received: self.messages_received.load(Relaxed),
            payload_bytes_sent: self.payload_bytes_sent.load(Relaxed),
            payload_bytes_received: self.payload_bytes_received.load(Relaxed),
            wire_bytes_sent: self.wire_bytes_sent.load(Relaxed),
            wire_bytes_received: self.wire_bytes_received.load(Relaxed),
        }
    }
}

/// Counters for every peer of a channel.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    peers: Arc<BTreeMap<PartyId, Arc<PeerCounters>>>,
}

impl Traffic {
    /// Counters for the given peers, all zero.
    pub fn new(peers: &[PartyId]) -> Self {
        let peers = peers.iter().map(|p| (p.clone(), Arc::default())).collect();
        Self {
            peers: Arc::new(peers),
        }
    }

    /// The counters of one peer.
    pub fn peer(&self, p: &PartyId) -> Option<&Arc<PeerCounters>> {
        self.peers.get(p)
    }

    /// A snapshot for every peer, ordered by name.
    pub fn snapshot(&self) -> Vec<PeerStats> {
        self.peers.iter().map(|(p, c)| c.snapshot(p)).collect()
    }
}
