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
//!
//! **Bounded memory per peer.** A peer can only make this party hold what this party
//! will ask for: messages whose task the job does not have are refused
//! ([`FedError::UnexpectedTag`], once [`Inbox::expect_tasks`] named the job's tasks),
//! and the bytes a peer has delivered but this party has not yet received are capped
//! ([`InboxLimits::max_queued_bytes`]). A peer over either limit fails the job with an
//! error naming it; its message is not stored. Transports call [`Inbox::admit`] when a
//! message's header arrives, before buffering its body, and [`Inbox::deliver`]
//! checks again.

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
    /// Whether `seq` was inserted before.
    fn contains(&self, seq: u64) -> bool {
        seq < self.floor || self.above.contains(&seq)
    }

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

/// What one peer may make this party hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLimits {
    /// Bytes a peer may have delivered and this party not yet received.
    pub max_queued_bytes: u64,
}

impl InboxLimits {
    /// The default cap: 2 GiB per peer — twice the default largest message, so that a
    /// protocol may have one full-size message queued while the next arrives.
    pub const DEFAULT_MAX_QUEUED_BYTES: u64 = 2 << 30;
}

impl Default for InboxLimits {
    fn default() -> Self {
        Self {
            max_queued_bytes: Self::DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

/// The task of the runtime's own messages (the hello), always expected.
pub const RUNTIME_TASK: &str = "_fedra";

#[derive(Default)]
struct State {
    queues: HashMap<(PartyId, Tag), VecDeque<Bytes>>,
    /// Bytes queued per sender (delivered, not yet received).
    queued: HashMap<PartyId, u64>,
    limits: InboxLimits,
    /// The job's task names, once known; `None` accepts every task.
    tasks: Option<HashSet<String>>,
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

    /// Sets the per-peer limits (replacing the defaults).
    pub fn set_limits(&self, limits: InboxLimits) {
        self.lock().limits = limits;
    }

    /// Names the tasks of the job: from now on a message for any other task (except
    /// the runtime's own, [`RUNTIME_TASK`], and a task's sub-protocols `<task>.<sub>`)
    /// is refused and fails the job.
    pub fn expect_tasks<'a>(&self, tasks: impl IntoIterator<Item = &'a str>) {
        let mut set: HashSet<String> = tasks.into_iter().map(str::to_owned).collect();
        set.insert(RUNTIME_TASK.to_owned());
        self.lock().tasks = Some(set);
    }

    /// Checks, before its body is buffered, that a message of `len` bytes from `from`
    /// under `tag` may be stored. A refusal fails the job (naming `from`) and is
    /// returned so that the transport can refuse the message too.
    pub fn admit(&self, from: &PartyId, tag: &Tag, len: u64) -> Result<(), FedError> {
        self.check_peer(from)?;
        let refusal = {
            let st = self.lock();
            Self::refusal(&st, from, tag, len)
        };
        match refusal {
            Some(e) => {
                self.fail(e.clone());
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn refusal(st: &State, from: &PartyId, tag: &Tag, len: u64) -> Option<FedError> {
        // A task's sub-protocols namespace their messages `<task>.<sub>` (task names
        // have no '.').
        let task = tag.task();
        let base = task.split_once('.').map_or(task, |(b, _)| b);
        if let Some(tasks) = &st.tasks
            && !tasks.contains(base)
        {
            return Some(FedError::UnexpectedTag {
                party: from.to_string(),
                tag: tag.to_string(),
            });
        }
        let queued = st.queued.get(from).copied().unwrap_or(0);
        if queued.saturating_add(len) > st.limits.max_queued_bytes {
            return Some(FedError::QueueFull {
                party: from.to_string(),
                queued,
                incoming: len,
                max: st.limits.max_queued_bytes,
            });
        }
        None
    }

    /// Bytes delivered by `from` and not yet received.
    pub fn queued_bytes(&self, from: &PartyId) -> u64 {
        self.lock().queued.get(from).copied().unwrap_or(0)
    }

    /// Stores a message from `from` with sender-assigned id `seq`.
    ///
    /// A message over the limits ([`Inbox::admit`]) is not stored; it fails the job.
    pub fn deliver(
        &self,
        from: &PartyId,
        seq: u64,
        tag: Tag,
        payload: Bytes,
    ) -> Result<Delivery, FedError> {
        self.check_peer(from)?;
        let len = payload.len();
        let refusal = {
            let mut st = self.lock();
            if st.seen.get(from).is_some_and(|s| s.contains(seq)) {
                return Ok(Delivery::Duplicate);
            }
            match Self::refusal(&st, from, &tag, len as u64) {
                Some(e) => Some(e),
                None => {
                    st.seen.entry(from.clone()).or_default().insert(seq);
                    *st.queued.entry(from.clone()).or_default() += len as u64;
                    st.queues
                        .entry((from.clone(), tag))
                        .or_default()
                        .push_back(payload);
                    None
                }
            }
        };
        if let Some(e) = refusal {
            self.fail(e.clone());
            return Err(e);
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
                        if let Some(n) = st.queued.get_mut(from) {
                            *n = n.saturating_sub(msg.len() as u64);
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
        assert!(s.contains(3) && s.contains(0) && !s.contains(4));
    }

    fn inbox() -> (Inbox, PartyId) {
        let host = PartyId::new("host").unwrap();
        let traffic = Traffic::new(std::slice::from_ref(&host));
        (Inbox::new("j", std::slice::from_ref(&host), traffic), host)
    }

    #[tokio::test]
    async fn queued_bytes_are_capped_per_peer_and_freed_by_recv() {
        let (ib, host) = inbox();
        ib.set_limits(InboxLimits {
            max_queued_bytes: 100,
        });
        let t = Tag::new("psi", 0, "x");
        ib.deliver(&host, 0, t.clone(), Bytes::from(vec![0; 60]))
            .unwrap();
        assert_eq!(ib.queued_bytes(&host), 60);
        ib.recv(&host, &t, None).await.unwrap();
        assert_eq!(ib.queued_bytes(&host), 0);
        ib.deliver(&host, 1, t.clone(), Bytes::from(vec![0; 60]))
            .unwrap();
        assert!(ib.admit(&host, &t, 40).is_ok());
        let e = ib
            .deliver(&host, 2, t.clone(), Bytes::from(vec![0; 41]))
            .unwrap_err();
        assert_eq!(e.code(), "fed.queue_full");
        assert_eq!(e.party(), Some("host"));
        assert!(e.to_string().contains("100 bytes"), "{e}");
        // Not stored, and the job failed naming the peer.
        assert_eq!(ib.queued_bytes(&host), 60);
        assert_eq!(ib.failure().unwrap().code(), "fed.queue_full");
    }

    #[test]
    fn messages_for_tasks_the_job_lacks_are_refused() {
        let (ib, host) = inbox();
        let stray = Tag::new("nope", 7, "x");
        // Before the job's tasks are known, anything goes (the hello comes first).
        ib.deliver(&host, 0, Tag::new("psi", 0, "x"), Bytes::new())
            .unwrap();
        ib.expect_tasks(["psi", "stats"]);
        ib.deliver(&host, 1, Tag::new(RUNTIME_TASK, 0, "hello"), Bytes::new())
            .unwrap();
        ib.deliver(&host, 2, Tag::new("stats", 3, "x"), Bytes::new())
            .unwrap();
        let e = ib.admit(&host, &stray, 10).unwrap_err();
        assert_eq!(e.code(), "fed.unexpected_tag");
        assert!(
            e.to_string().contains("nope/7/x") && e.to_string().contains("host"),
            "{e}"
        );
        assert!(ib.deliver(&host, 3, stray, Bytes::new()).is_err());
    }
}
