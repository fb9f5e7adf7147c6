//! Streaming data join (Fedlearner's "data join"): two parties that both log the same
//! events — an ad impression or click with one `example_id` on each side, arriving out
//! of order — line their streams up into joined training samples.
//!
//! The **leader** reads its stream in arrival order and sends `(example_id, event
//! time)` in batches. The **follower** reads its own stream ahead, just far enough to
//! have seen every local record within `window_s` of the leader's time, and joins each
//! leader record with the local record of the same id closest in time, if that is
//! within the window. It answers each batch with one bit per record (joined or not), so
//! both sides emit the joined samples in the same order — the leader's. Nothing is
//! dropped silently: every record ends up counted as joined, unmatched (leader or
//! follower), or **late** (a follower record that would have matched a leader record
//! already declared unmatched because it arrived later than the read-ahead allowed).
//!
//! Memory is bounded by the window: follower records older than the leader's
//! watermark minus twice the window are evicted (and counted as unmatched).
//!
//! # Threat model
//! This is the join for ids that both parties already know (event ids logged on both
//! sides), as in Fedlearner: the follower learns the leader's example ids and event
//! times; the leader learns which of its records the follower holds. Neither learns
//! the other's features or labels. For ids that must stay private, align with PSI
//! (`fedra-psi`) instead.

mod buffer;
mod wire;

use std::time::Instant;

use bytes::Bytes;
use fedra_data::{BatchReader, DataError, Dataset};
use fedra_federation::{Channel, FedError, PartyId, Tag};

use crate::buffer::{Record, Window};
pub use crate::wire::MAX_BATCH;

/// Errors of the streaming join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// Reading the local stream failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The channel failed or a peer sent something malformed.
    #[error(transparent)]
    Fed(#[from] FedError),
    /// A setting or the local data does not fit the join.
    #[error("{0}")]
    Config(String),
}

impl JoinError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> String {
        match self {
            JoinError::Data(e) => format!("data.{}", e.code()),
            JoinError::Fed(e) => e.code().to_owned(),
            JoinError::Config(_) => "join.config".into(),
        }
    }
}

/// Join settings; both parties must use the same.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The task name (namespaces the messages).
    pub task: String,
    /// The feature column holding the event time, in seconds.
    pub time_column: String,
    /// Largest time difference between two records that join, in seconds.
    pub window_s: f64,
    /// Records per leader message (1..=[`MAX_BATCH`]).
    pub batch: usize,
    /// Keep the time column among the output features.
    pub keep_time_column: bool,
}

/// What happened to every record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinStats {
    /// Records in the leader's stream.
    pub leader_records: u64,
    /// Records in the follower's stream (as far as read; the follower reads all of it).
    pub follower_records: u64,
    /// Joined samples.
    pub joined: u64,
    /// Leader records with no follower record of the same id within the window.
    pub leader_unmatched: u64,
    /// Follower records never joined (and not late).
    pub follower_unmatched: u64,
    /// Follower records that arrived after their leader record had been declared unmatched.
    pub late: u64,
    /// Seconds spent.
    pub wall_s: u64,
}

/// The joined samples of this party (its own columns), in the leader's order.
#[derive(Debug)]
pub struct JoinResult {
    /// Own rows of the joined samples.
    pub joined: Dataset,
    /// Counters (the leader's view has leader counts; the follower's has all).
    pub stats: JoinStats,
}

fn time_index(reader: &BatchReader, cfg: &JoinConfig) -> Result<usize, JoinError> {
    if !(cfg.window_s.is_finite() && cfg.window_s >= 0.0) {
        return Err(JoinError::Config(format!(
            "window_s must be a finite number ≥ 0, got {}",
            cfg.window_s
        )));
    }
    if cfg.batch == 0 || cfg.batch > MAX_BATCH {
        return Err(JoinError::Config(format!(
            "batch must be in 1..={MAX_BATCH}, got {}",
            cfg.batch
        )));
    }
    reader
        .feature_names()
        .iter()
        .position(|f| *f == cfg.time_column)
        .ok_or_else(|| {
            JoinError::Config(format!(
                "{}: time column '{}' is not among the features ({})",
                reader.path().display(),
                cfg.time_column,
                reader.feature_names().join(", ")
            ))
        })
}

/// Collects joined rows into a dataset, optionally without the time column.
struct Output {
    id_column: String,
    label_name: Option<String>,
    names: Vec<String>,
    keep: Vec<usize>,
    ids: Vec<String>,
    labels: Vec<f64>,
    features: Vec<f64>,
}

impl Output {
    fn new(reader: &BatchReader, time: usize, keep_time: bool) -> Self {
        let keep: Vec<usize> = (0..reader.feature_names().len())
            .filter(|&j| keep_time || j != time)
            .collect();
        Self {
            id_column: reader.id_column().to_owned(),
            label_name: reader.label_name().map(str::to_owned),
            names: keep
                .iter()
                .map(|&j| reader.feature_names()[j].clone())
                .collect(),
            keep,
            ids: Vec::new(),
            labels: Vec::new(),
            features: Vec::new(),
        }
    }

    fn push(&mut self, r: Record) {
        self.ids.push(r.id);
        if let Some(l) = r.label {
            self.labels.push(l);
        }
        self.features
            .extend(self.keep.iter().map(|&j| r.features[j]));
    }

    fn finish(self) -> Result<Dataset, JoinError> {
        let label = self.label_name.map(|n| (n, self.labels));
        Ok(Dataset::new(
            self.id_column,
            self.ids,
            label,
            self.names,
            self.features,
        )?)
    }
}

/// Reads the next batch of a stream as records.
fn next_records(reader: &mut BatchReader, time: usize) -> Result<Option<Vec<Record>>, JoinError> {
    let Some(batch) = reader.next() else {
        return Ok(None);
    };
    let batch = batch?;
    let mut out = Vec::with_capacity(batch.n_rows());
    for i in 0..batch.n_rows() {
        let features = batch.row(i).to_vec();
        if !features[time].is_finite() {
            return Err(JoinError::Config(format!(
                "row {} (id {:?}): event time {} is not a finite number",
                batch.first_row_index + i + 1,
                batch.ids[i],
                features[time]
            )));
        }
        out.push(Record {
            id: batch.ids[i].clone(),
            time: features[time],
            label: batch.labels.as_ref().map(|l| l[i]),
            features,
        });
    }
    Ok(Some(out))
}

/// The leader's side: streams its ids and times, keeps the rows the follower joined.
pub async fn lead(
    ch: &dyn Channel,
    follower: &PartyId,
    mut reader: BatchReader,
    cfg: &JoinConfig,
) -> Result<JoinResult, JoinError> {
    let started = Instant::now();
    let time = time_index(&reader, cfg)?;
    let mut out = Output::new(&reader, time, cfg.keep_time_column);
    let mut stats = JoinStats::default();
    let mut pending: Vec<Record> = Vec::new();
    let mut eof = false;
    for round in 0u64.. {
        while !eof && pending.len() < cfg.batch {
            match next_records(&mut reader, time)? {
                Some(r) => pending.extend(r),
                None => eof = true,
            }
        }
        let take = pending.len().min(cfg.batch);
        let last = eof && pending.len() == take;
        let batch: Vec<Record> = pending.drain(..take).collect();
        let msg = wire::encode_batch(batch.iter().map(|r| (r.id.as_str(), r.time)), last);
        ch.send(
            follower,
            &Tag::new(&cfg.task, round, "ids"),
            Bytes::from(msg),
        )
        .await?;
        let reply_tag = Tag::new(&cfg.task, round, "joined");
        let reply = ch.recv(follower, &reply_tag).await?;
        let bits = wire::decode_bits(&reply, batch.len())
            .map_err(|detail| FedError::malformed(follower, &reply_tag, detail))?;
        stats.leader_records += batch.len() as u64;
        for (r, joined) in batch.into_iter().zip(bits) {
            if joined {
                stats.joined += 1;
                out.push(r);
            } else {
                stats.leader_unmatched += 1;
            }
        }
        if last {
            break;
        }
    }
    stats.wall_s = started.elapsed().as_secs();
    Ok(JoinResult {
        joined: out.finish()?,
        stats,
    })
}

/// The follower's side: joins the leader's records against its own stream.
pub async fn follow(
    ch: &dyn Channel,
    leader: &PartyId,
    mut reader: BatchReader,
    cfg: &JoinConfig,
) -> Result<JoinResult, JoinError> {
    let started = Instant::now();
    let time = time_index(&reader, cfg)?;
    let mut out = Output::new(&reader, time, cfg.keep_time_column);
    let mut window = Window::new(cfg.window_s);
    let mut stats = JoinStats::default();
    let mut local_eof = false;
    for round in 0u64.. {
        let tag = Tag::new(&cfg.task, round, "ids");
        let msg = ch.recv(leader, &tag).await?;
        let (items, last) = wire::decode_batch(&msg).map_err(|e| e.from_peer(leader, &tag))?;
        let mut bits = Vec::with_capacity(items.len());
        for (id, t) in items {
            // Read ahead until every local record within the window of `t` has been seen.
            while !local_eof && window.max_time() < t + cfg.window_s {
                match next_records(&mut reader, time)? {
                    Some(records) => {
                        for r in records {
                            stats.follower_records += 1;
                            window.insert(r);
                        }
                    }
                    None => local_eof = true,
                }
            }
            match window.take_match(&id, t) {
                Some(r) => {
                    out.push(r);
                    bits.push(true);
                    stats.joined += 1;
                }
                None => {
                    window.declare_unmatched(id, t);
                    bits.push(false);
                    stats.leader_unmatched += 1;
                }
            }
            stats.leader_records += 1;
            window.advance(t);
        }
        ch.send(
            leader,
            &Tag::new(&cfg.task, round, "joined"),
            Bytes::from(wire::encode_bits(&bits)),
        )
        .await?;
        if last {
            break;
        }
    }
    // Whatever is left of the local stream never met its leader record.
    while let Some(records) = next_records(&mut reader, time)? {
        for r in records {
            stats.follower_records += 1;
            window.insert(r);
        }
    }
    let (unmatched, late) = window.finish();
    stats.follower_unmatched = unmatched;
    stats.late = late;
    stats.wall_s = started.elapsed().as_secs();
    Ok(JoinResult {
        joined: out.finish()?,
        stats,
    })
}
