//! What a run produces: each party's report and the merged `report.json`.

use std::collections::BTreeMap;

use fedra_federation::PeerStats;
use serde::{Deserialize, Serialize};

/// Outcome of a task or a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Completed.
    Succeeded,
    /// Job level only: every party succeeded except droppable ones
    /// ([`crate::job::Job::droppable_parties`], e.g. horizontal clients) that
    /// failed or died; the job's results (from the survivors) stand. They are
    /// listed in [`JobReport::dropped`].
    SucceededWithDropouts,
    /// Failed (see `error`).
    Failed,
    /// Not started because an earlier task failed.
    Skipped,
}

/// One task as seen by one party (or merged over parties).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Task kind.
    pub kind: String,
    /// Outcome.
    pub status: Status,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// Flat metrics with lower-case keys (`auc`, `rmse`, `intersection_size`, ...).
    pub metrics: BTreeMap<String, serde_json::Value>,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Traffic totals of a party, and per peer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Payload bytes sent to all peers.
    pub bytes_sent: u64,
    /// Payload bytes received from all peers.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Socket bytes written (TLS, HTTP/2, heartbeats included).
    pub wire_bytes_sent: u64,
    /// Socket bytes read.
    pub wire_bytes_received: u64,
    /// The same per peer.
    pub peers: Vec<PeerTraffic>,
}

/// Serialisable per-peer traffic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerTraffic {
    /// The peer.
    pub peer: String,
    /// Messages sent to it.
    pub messages_sent: u64,
    /// Messages received from it.
    pub messages_received: u64,
    /// Payload bytes sent to it.
    pub bytes_sent: u64,
    /// Payload bytes received from it.
    pub bytes_received: u64,
    /// Socket bytes written towards it.
    pub wire_bytes_sent: u64,
    /// Socket bytes read from it.
    pub wire_bytes_received: u64,
}

impl Traffic {
    /// Totals over the channel's per-peer counters.
    pub fn from_stats(stats: &[PeerStats]) -> Self {
        let peers: Vec<PeerTraffic> = stats
            .iter()
            .map(|s| PeerTraffic {
                peer: s.peer.clone(),
                messages_sent: s.messages_sent,
                messages_received: s.messages_received,
                bytes_sent: s.payload_bytes_sent,
                bytes_received: s.payload_bytes_received,
                wire_bytes_sent: s.wire_bytes_sent,
                wire_bytes_received: s.wire_bytes_received,
            })
            .collect();
        let sum = |f: fn(&PeerTraffic) -> u64| peers.iter().map(f).sum();
        Self {
            bytes_sent: sum(|p| p.bytes_sent),
            bytes_received: sum(|p| p.bytes_received),
            messages_sent: sum(|p| p.messages_sent),
            messages_received: sum(|p| p.messages_received),
            wire_bytes_sent: sum(|p| p.wire_bytes_sent),
            wire_bytes_received: sum(|p| p.wire_bytes_received),
            peers,
        }
    }
}

/// One party's view of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartyReport {
    /// Job id.
    pub job: String,
    /// This party.
    pub party: String,
    /// Overall outcome for this party.
    pub status: Status,
    /// Wall time of the whole run in seconds.
    pub wall_s: f64,
    /// Tasks in job order.
    pub tasks: Vec<TaskReport>,
    /// Traffic with the other parties.
    pub traffic: Traffic,
    /// Peak resident memory of the party's process in MiB, if the platform tells.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_rss_mb: Option<f64>,
    /// The error that stopped this party, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Droppable peers that dropped out while this party ran, as its channel saw it.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dropped_peers: Vec<DroppedParty>,
}

/// A party that dropped out of a job, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedParty {
    /// The party.
    pub party: String,
    /// Its own error (or how the others saw it go).
    pub error: String,
}

impl TaskReport {
    /// A task that has not run (yet).
    pub fn skipped(spec: &crate::job::TaskSpec) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind.name().to_owned(),
            status: Status::Skipped,
            wall_s: 0.0,
            metrics: Default::default(),
            error: None,
        }
    }
}

impl PartyReport {
    /// The report of a party that ran none of the job, e.g. a process that died
    /// before writing its own report.
    pub fn not_run(job: &crate::job::Job, party: &str, error: String) -> Self {
        Self {
            job: job.id.clone(),
            party: party.to_owned(),
            status: Status::Failed,
            wall_s: 0.0,
            tasks: job.tasks.iter().map(TaskReport::skipped).collect(),
            traffic: Traffic::default(),
            peak_rss_mb: None,
            error: Some(error),
            dropped_peers: Vec::new(),
        }
    }
}

/// Per-party section of the merged report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartySummary {
    /// The party's outcome.
    pub status: Status,
    /// Its error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Peak resident memory of its process in MiB.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_rss_mb: Option<f64>,
    /// Its traffic.
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// The merged `report.json` of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReport {
    /// Job id.
    pub job: String,
    /// `succeeded` if every party succeeded; `succeeded_with_dropouts` if only
    /// droppable parties failed (see [`JobReport::merge_job`]); else `failed`.
    pub status: Status,
    /// Wall time in seconds (the slowest party).
    pub wall_s: f64,
    /// Tasks in job order, merged over parties.
    pub tasks: Vec<TaskReport>,
    /// Per party.
    pub parties: BTreeMap<String, PartySummary>,
    /// Droppable parties that failed or died (status `succeeded_with_dropouts`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dropped: Vec<DroppedParty>,
}

impl JobReport {
    /// Merges the parties' reports of `job`, tolerating droppable parties
    /// ([`crate::job::Job::droppable_parties`]): if every failed party is
    /// droppable and every other party succeeded, the status is
    /// [`Status::SucceededWithDropouts`], the tasks are merged over the survivors
    /// only (a dead client's failed task does not fail the task), and
    /// [`JobReport::dropped`] lists the failed parties with their own error — or,
    /// if a process died without a report, how its peers saw it go. Otherwise as
    /// [`JobReport::merge`].
    pub fn merge_job(job: &crate::job::Job, reports: &[PartyReport]) -> Self {
        let droppable: Vec<String> = job
            .droppable_parties()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let (dropped, kept): (Vec<&PartyReport>, Vec<&PartyReport>) = reports
            .iter()
            .partition(|r| r.status != Status::Succeeded && droppable.contains(&r.party));
        if dropped.is_empty() || kept.iter().any(|r| r.status != Status::Succeeded) {
            return Self::merge(&job.id, reports);
        }
        let kept: Vec<PartyReport> = kept.into_iter().cloned().collect();
        let mut merged = Self::merge(&job.id, &kept);
        merged.status = if kept.is_empty() {
            Status::Failed
        } else {
            Status::SucceededWithDropouts
        };
        for r in &dropped {
            // A process that died has only the placeholder error; its peers know more.
            let seen = kept
                .iter()
                .flat_map(|k| &k.dropped_peers)
                .find(|d| d.party == r.party)
                .map(|d| format!(" (seen by its peers: {})", d.error))
                .unwrap_or_default();
            merged.dropped.push(DroppedParty {
                party: r.party.clone(),
                error: format!(
                    "{}{seen}",
                    r.error.as_deref().unwrap_or("failed without an error")
                ),
            });
        }
        for r in dropped {
            merged.parties.insert(
                r.party.clone(),
                PartySummary {
                    status: r.status,
                    error: r.error.clone(),
                    peak_rss_mb: r.peak_rss_mb,
                    traffic: r.traffic.clone(),
                },
            );
        }
        merged
    }

    /// Merges the parties' reports. A task fails if it failed anywhere; its wall time
    /// is the slowest party's; metrics are the union, earlier parties first (parties
    /// are given guest-first by the caller, so the label holder's numbers win).
    pub fn merge(job: &str, reports: &[PartyReport]) -> Self {
        let mut tasks: Vec<TaskReport> = Vec::new();
        for r in reports {
            for t in &r.tasks {
                match tasks.iter_mut().find(|m| m.name == t.name) {
                    None => tasks.push(t.clone()),
                    Some(m) => {
                        m.wall_s = m.wall_s.max(t.wall_s);
                        if t.status == Status::Failed && m.status != Status::Failed {
                            m.status = Status::Failed;
                            m.error = t.error.clone();
                        } else if m.status == Status::Succeeded && t.status == Status::Skipped {
                            m.status = Status::Skipped;
                        }
                        for (k, v) in &t.metrics {
                            m.metrics.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
        }
        let status = if reports.iter().all(|r| r.status == Status::Succeeded) && !reports.is_empty()
        {
            Status::Succeeded
        } else {
            Status::Failed
        };
        Self {
            job: job.to_owned(),
            status,
            wall_s: reports.iter().map(|r| r.wall_s).fold(0.0, f64::max),
            tasks,
            parties: reports
                .iter()
                .map(|r| {
                    let s = PartySummary {
                        status: r.status,
                        error: r.error.clone(),
                        peak_rss_mb: r.peak_rss_mb,
                        traffic: r.traffic.clone(),
                    };
                    (r.party.clone(), s)
                })
                .collect(),
            dropped: Vec::new(),
        }
    }
}
