//! The federation channel: how parties of a Fedra job talk to each other.
//!
//! A job has a fixed set of named parties ([`PartyId`]). Protocols exchange
//! opaque byte payloads point to point, each addressed by a [`Tag`] that is
//! namespaced by task, round and message name, so that two tasks (or two rounds
//! of one task) can never consume each other's messages. The job id is part of
//! every channel: a message from another job is refused, not delivered.
//!
//! Protocols are written against the [`Channel`] trait only, so one test can run
//! them in memory ([`mem::MemNetwork`]) and the real deployment runs them over
//! mutually authenticated gRPC (the `fedra-transport` crate). Both
//! implementations share [`inbox::Inbox`] (ordering, de-duplication, failure
//! propagation) and pass the same suite in [`testkit`].
//!
//! ```
//! use bytes::Bytes;
//! use fedra_federation::{Channel, PartyId, Tag, mem::MemNetwork};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let guest = PartyId::new("guest")?;
//! let host = PartyId::new("host")?;
//! let mut net = MemNetwork::new("job-1", &[guest.clone(), host.clone()]);
//! let (g, h) = (net.take(&guest)?, net.take(&host)?);
//! let tag = Tag::new("stats", 0, "rows");
//! g.send(&host, &tag, Bytes::from_static(b"569")).await?;
//! assert_eq!(h.recv(&guest, &tag).await?, Bytes::from_static(b"569"));
//! # Ok::<(), fedra_federation::FedError>(())
//! # }).unwrap();
//! ```

pub mod codec;
pub mod error;
pub mod inbox;
pub mod mem;
pub mod party;
pub mod stats;
pub mod testkit;

use async_trait::async_trait;
use bytes::Bytes;

pub use codec::{CodecError, Reader, Wire, Writer, decode_from};
pub use error::{Failure, FedError};
pub use party::{PartyId, Tag};
pub use stats::PeerStats;

/// Tagged point-to-point messaging between the parties of one job.
///
/// Delivery is reliable and exactly-once per `send` call (retries are de-duplicated by
/// message id), and messages with the same `(sender, tag)` are received in send order.
/// A `recv` fails instead of hanging when the peer failed, vanished, or finished the job.
/// Failures are job-wide, except for peers declared droppable
/// ([`Channel::set_droppable`]), whose failures concern them alone.
#[async_trait]
pub trait Channel: Send + Sync {
    /// This party.
    fn me(&self) -> &PartyId;
    /// The job this channel belongs to.
    fn job(&self) -> &str;
    /// The other parties of the job.
    fn peers(&self) -> &[PartyId];
    /// Sends `payload` to `to` under `tag`; returns once the receiver has stored it.
    async fn send(&self, to: &PartyId, tag: &Tag, payload: Bytes) -> Result<(), FedError>;
    /// Waits for the next message from `from` under `tag`.
    async fn recv(&self, from: &PartyId, tag: &Tag) -> Result<Bytes, FedError>;
    /// Tells every peer that this party failed, so that they stop instead of waiting.
    /// Best effort: it never fails, and it returns within a bounded time.
    async fn abort(&self, failure: &Failure);
    /// Tells every peer that this party finished the job normally.
    async fn finish(&self);
    /// Bytes and messages exchanged with each peer so far.
    fn stats(&self) -> Vec<PeerStats>;
    /// Declares which peers may drop out (crash, vanish, abort) without failing the
    /// job, replacing the previous set (empty at start). A droppable peer's failure
    /// only fails sends to and receives from it, with [`FedError::PeerDropped`]; any
    /// other peer's failure still fails every `recv`. A peer that already dropped out
    /// and is removed from the set fails the job with its recorded failure.
    ///
    /// The default does nothing (every failure stays job-wide); channels and
    /// wrappers around channels must implement or forward it.
    fn set_droppable(&self, peers: &[PartyId]) {
        let _ = peers;
    }
    /// Names the job's tasks: from now on a peer's message for any other task is
    /// refused and fails the job naming the peer (bounded memory per peer; see
    /// [`inbox`]). The default does nothing; channels must implement or forward it.
    fn expect_tasks(&self, tasks: &[&str]) {
        let _ = tasks;
    }
    /// The droppable peers that dropped out so far, with why.
    fn dropped(&self) -> Vec<(PartyId, FedError)> {
        Vec::new()
    }
}

/// Sends the same payload to several parties concurrently.
pub async fn broadcast(
    ch: &dyn Channel,
    to: &[PartyId],
    tag: &Tag,
    payload: Bytes,
) -> Result<(), FedError> {
    let sends = to.iter().map(|p| ch.send(p, tag, payload.clone()));
    futures_util::future::try_join_all(sends).await?;
    Ok(())
}
