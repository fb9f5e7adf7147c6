//! The receiving side shared by every channel implementation.
//!
//! An [`Inbox`] stores delivered messages in one FIFO queue per `(sender, tag)`,
//! drops re-deliveries of a message id it has already stored (so a sender may retry
//! freely), and turns a job-wide failure (a peer aborted or vanished) into an error
//! for every pending and future `recv`.
//!
//! **Droppable peers.** A peer listed with [`Inbox::set_droppable`] may fail without
//! failing the job: its failure ([`Inbox::fail_peer`]) is recorded for that peer
//! only, so a `recv` from it returns what it delivered before and then
//! [`FedError::PeerDropped`], while receives from every other peer go on. A failure
//! of any other peer stays job-wide. If a peer that already dropped out stops being
//! droppable (the next task needs it), its failure becomes the job-wide failure.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::stats::Traffic;
use crate::{FedError, PartyId, Tag};

/// Whether a delivery was new or a retry of a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored for a future `recv`.
    New,
    /// Already stored earlier under the same message id; dropped.
    Duplicate,
}

/// Message ids seen from one sender: everything below `floor`, plus `above`.
///
/// Senders number messages 0, 1, 2, ... so the set stays tiny in practice.
#[derive(Default, Debug)]
struct SeqSet {
    floor: u64,
    above: BTreeSet<u64>,
}

impl SeqSet {
    /// Inserts `seq`; false if it was already present.
    fn insert(&mut self, seq: u64) -> bool {
        if seq < self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&self.floor) {
            self.floor += 1;
        }
        true
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<(PartyId, Tag), VecDeque<Bytes>>,
    seen: HashMap<PartyId, SeqSet>,
    failure: Option<FedError>,
    finished: HashSet<PartyId>,
    droppable: HashSet<PartyId>,
    dropped: BTreeMap<PartyId, FedError>,
}

/// Delivered-but-not-yet-received messages of one party.
pub struct Inbox {
    job: String,
    peers: Vec<PartyId>,
    state: Mutex<State>,
    wake: watch::Sender<u64>,
    traffic: Traffic,
}

impl Inbox {
    /// An empty inbox for `job` accepting messages from `peers`.
    pub fn new(job: &str, peers: &[PartyId], traffic: Traffic) -> Self {
        Self {
            job: job.to_owned(),
            peers: peers.to_vec(),
            state: Mutex::new(State::default()),
            wake: watch::channel(0).0,
            traffic,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain
        // collections; the data is still structurally valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_peer(&self, p: &PartyId) -> Result<(), FedError> {
        if self.peers.contains(p) {
            Ok(())
        } else {
            Err(FedError::UnknownParty {
                job: self.job.clone(),
                party: p.to_string(),
            })
        }
    }

    /// Stores a message from `from` with sender-assigned id `seq`.
    pub fn deliver(
        &self,
        from: &PartyId,
        seq: u64,
        tag: Tag,
        payload: Bytes,
    ) -> Result<Delivery, FedError> {
        self.check_peer(from)?;
        let len = payload.len();
        {
            let mut st = self.lock();
            if !st.seen.entry(from.clone()).or_default().insert(seq) {
                return Ok(Delivery::Duplicate);
            }
            st.queues
                .entry((from.clone(), tag))
                .or_default()
                .push_back(payload);
        }
        if let Some(c) = self.traffic.peer(from) {
            c.received(len);
        }
        self.wake.send_modify(|g| *g += 1);
        Ok(Delivery::New)
    }

    /// Marks the whole job as failed; the first failure wins.
    pub fn fail(&self, err: FedError) {
        {
            let mut st = self.lock();
            if st.failure.is_some() {
                return;
            }
            tracing::warn!(code = err.code(), "job failed: {err}");
            st.failure = Some(err);
        }
        self.wake.send_modify(|g| *g += 1);
    }

    /// The job-wide failure, if any.
    pub fn failure(&self) -> Option<FedError> {
        self.lock().failure.clone()
    }

    /// Records that peer `p` failed or vanished with `err`: a dropout of `p` alone if
    /// `p` is droppable, else the job-wide failure. The first failure of a peer wins.
    pub fn fail_peer(&self, p: &PartyId, err: FedError) {
        {
            let mut st = self.lock();
            if !st.droppable.contains(p) {
                drop(st);
                return self.fail(err);
            }
            if st.dropped.contains_key(p) {
                return;
            }
            tracing::warn!(code = err.code(), party = %p, "droppable party dropped out: {err}");
            st.dropped.insert(p.clone(), err);
        }
        self.wake.send_modify(|g| *g += 1);
    }

    /// Declares which peers may drop out without failing the job (replacing the
    /// previous set). A peer that already dropped out and is no longer droppable
    /// fails the job with its recorded failure.
    pub fn set_droppable(&self, peers: &[PartyId]) {
        let promoted = {
            let mut st = self.lock();
            st.droppable = peers.iter().cloned().collect();
            let st = &*st;
            st.dropped
                .iter()
                .find(|(p, _)| !st.droppable.contains(*p))
                .map(|(_, e)| e.clone())
        };
        if let Some(e) = promoted {
            self.fail(e);
        }
    }

    /// The peers that dropped out so far, with their failures, by name.
    pub fn dropped(&self) -> Vec<(PartyId, FedError)> {
        self.lock()
            .dropped
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }

    /// Whether `p` dropped out: the error a send to or receive from it returns.
    pub fn dropout(&self, p: &PartyId) -> Option<FedError> {
        self.lock()
            .dropped
            .get(p)
            .map(|cause| FedError::PeerDropped {
                party: p.to_string(),
                cause: Box::new(cause.clone()),
            })
    }

    /// Records that `from` finished the job normally.
    pub fn mark_finished(&self, from: &PartyId) {
        self.lock().finished.insert(from.clone());
        self.wake.send_modify(|g| *g += 1);
    }

    /// Whether `p` has finished the job normally.
    pub fn is_finished(&self, p: &PartyId) -> bool {
        self.lock().finished.contains(p)
    }

    /// Waits for the next message from `from` under `tag`, failing on a job-wide
    /// failure, when `from` finished or dropped out without sending it, or after
    /// `timeout`.
    pub async fn recv(
        &self,
        from: &PartyId,
        tag: &Tag,
        timeout: Option<Duration>,
    ) -> Result<Bytes, FedError> {
        self.check_peer(from)?;
        let wait = async {
            let mut wake = self.wake.subscribe();
            let key = (from.clone(), tag.clone());
            loop {
                {
                    let mut st = self.lock();
                    if let Some(err) = &st.failure {
                        return Err(err.clone().while_doing(|| {
                            format!("waiting for message '{tag}' from party '{from}'")
                        }));
                    }
                    if let Some(q) = st.queues.get_mut(&key)
                        && let Some(msg) = q.pop_front()
                    {
                        if q.is_empty() {
                            st.queues.remove(&key);
                        }
                        return Ok(msg);
                    }
                    if let Some(cause) = st.dropped.get(from) {
                        return Err(FedError::PeerDropped {
                            party: from.to_string(),
                            cause: Box::new(cause.clone().while_doing(|| {
                                format!("waiting for message '{tag}' from party '{from}'")
                            })),
                        });
                    }
                    if st.finished.contains(from) {
                        return Err(FedError::PeerFinished {
                            party: from.to_string(),
                            tag: tag.to_string(),
                        });
                    }
                }
                if wake.changed().await.is_err() {
                    return Err(FedError::Closed);
                }
            }
        };
        match timeout {
            None => wait.await,
            Some(t) => tokio::time::timeout(t, wait).await.unwrap_or_else(|_| {
                Err(FedError::Timeout {
                    party: from.to_string(),
                    tag: tag.to_string(),
                    after_s: t.as_secs_f64(),
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_set_detects_duplicates_in_any_order() {
        let mut s = SeqSet::default();
        assert!(s.insert(2));
        assert!(s.insert(0));
        assert!(!s.insert(2));
        assert!(s.insert(1));
        assert_eq!(s.floor, 3);
        assert!(s.above.is_empty());
        assert!(!s.insert(0));
        assert!(!s.insert(1));
        assert!(s.insert(3));
    }
}
