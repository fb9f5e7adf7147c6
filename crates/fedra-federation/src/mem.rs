//! In-memory channels: every party of a job in one process (unit tests, simulations).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::inbox::Inbox;
use crate::stats::Traffic;
use crate::{Channel, Failure, FedError, PartyId, PeerStats, Tag};

/// Options shared by all channels of a [`MemNetwork`].
#[derive(Debug, Clone)]
pub struct MemOptions {
    /// Largest payload accepted, in bytes.
    pub max_message_bytes: u64,
    /// Deadline of each `recv`; `None` waits forever.
    pub recv_timeout: Option<Duration>,
}

impl Default for MemOptions {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 32,
            recv_timeout: None,
        }
    }
}

/// A set of connected in-memory channels, one per party.
pub struct MemNetwork {
    channels: HashMap<PartyId, MemChannel>,
}

impl MemNetwork {
    /// Connects `parties` (all distinct) for `job`, with default options.
    pub fn new(job: &str, parties: &[PartyId]) -> Self {
        Self::with_options(job, parties, MemOptions::default())
    }

    /// Connects `parties` for `job`.
    pub fn with_options(job: &str, parties: &[PartyId], opts: MemOptions) -> Self {
        let mut inboxes = HashMap::new();
        let mut traffic = HashMap::new();
        for p in parties {
            let peers: Vec<PartyId> = parties.iter().filter(|q| *q != p).cloned().collect();
            let t = Traffic::new(&peers);
            inboxes.insert(p.clone(), Arc::new(Inbox::new(job, &peers, t.clone())));
            traffic.insert(p.clone(), (peers, t));
        }
        let inboxes = Arc::new(inboxes);
        let channels = traffic
            .into_iter()
            .map(|(p, (peers, traffic))| {
                let ch = MemChannel {
                    me: p.clone(),
                    job: job.to_owned(),
                    peers,
                    inboxes: inboxes.clone(),
                    traffic,
                    next_seq: AtomicU64::new(0),
                    opts: opts.clone(),
                };
                (p, ch)
            })
            .collect();
        Self { channels }
    }

    /// Takes the channel of party `p` out of the network.
    pub fn take(&mut self, p: &PartyId) -> Result<MemChannel, FedError> {
        self.channels
            .remove(p)
            .ok_or_else(|| FedError::UnknownParty {
                job: String::new(),
                party: p.to_string(),
            })
    }
}

/// One party's end of a [`MemNetwork`].
pub struct MemChannel {
    me: PartyId,
    job: String,
    peers: Vec<PartyId>,
    inboxes: Arc<HashMap<PartyId, Arc<Inbox>>>,
    traffic: Traffic,
    next_seq: AtomicU64,
    opts: MemOptions,
}

impl MemChannel {
    fn own(&self) -> Result<&Arc<Inbox>, FedError> {
        self.inboxes.get(&self.me).ok_or(FedError::Closed)
    }

    /// Simulates this party's process dying (tests): every peer sees it as lost at
    /// once, as the gRPC transport's heartbeats would after the peer timeout, and
    /// this party's own pending and future receives fail.
    pub fn crash(&self) {
        for p in &self.peers {
            if let Ok(i) = self.inbox_of(p) {
                i.fail_peer(
                    &self.me,
                    FedError::PeerLost {
                        party: self.me.to_string(),
                        silent_s: 0.0,
                        doing: String::new(),
                    },
                );
            }
        }
        if let Ok(i) = self.own() {
            i.fail(FedError::Closed);
        }
    }

    fn inbox_of(&self, p: &PartyId) -> Result<&Arc<Inbox>, FedError> {
        match self.inboxes.get(p) {
            Some(i) if *p != self.me => Ok(i),
            _ => Err(FedError::UnknownParty {
                job: self.job.clone(),
                party: p.to_string(),
            }),
        }
    }
}

#[async_trait]
impl Channel for MemChannel {
    fn me(&self) -> &PartyId {
        &self.me
    }

    fn job(&self) -> &str {
        &self.job
    }

    fn peers(&self) -> &[PartyId] {
        &self.peers
    }

    async fn send(&self, to: &PartyId, tag: &Tag, payload: Bytes) -> Result<(), FedError> {
        let inbox = self.inbox_of(to)?;
        if let Some(e) = self.own()?.dropout(to) {
            return Err(e);
        }
        let len = payload.len();
        if len as u64 > self.opts.max_message_bytes {
            return Err(FedError::TooLarge {
                party: self.me.to_string(),
                tag: tag.to_string(),
                size: len as u64,
                max: self.opts.max_message_bytes,
            });
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        inbox.deliver(&self.me, seq, tag.clone(), payload)?;
        if let Some(c) = self.traffic.peer(to) {
            c.sent(len);
        }
        Ok(())
    }

    async fn recv(&self, from: &PartyId, tag: &Tag) -> Result<Bytes, FedError> {
        self.own()?.recv(from, tag, self.opts.recv_timeout).await
    }

    async fn abort(&self, failure: &Failure) {
        for p in &self.peers {
            if let Ok(i) = self.inbox_of(p) {
                i.fail_peer(&self.me, FedError::PeerFailed(failure.clone()));
            }
        }
    }

    async fn finish(&self) {
        for p in &self.peers {
            if let Ok(i) = self.inbox_of(p) {
                i.mark_finished(&self.me);
            }
        }
    }

    fn stats(&self) -> Vec<PeerStats> {
        self.traffic.snapshot()
    }

    fn set_droppable(&self, peers: &[PartyId]) {
        if let Ok(i) = self.own() {
            i.set_droppable(peers);
        }
    }

    fn expect_tasks(&self, tasks: &[&str]) {
        if let Ok(i) = self.own() {
            i.expect_tasks(tasks.iter().copied());
        }
    }

    fn dropped(&self) -> Vec<(PartyId, FedError)> {
        self.own().map(|i| i.dropped()).unwrap_or_default()
    }
}
