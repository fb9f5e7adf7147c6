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
    /// Succeeded only if every party succeeded.
    pub status: Status,
    /// Wall time in seconds (the slowest party).
    pub wall_s: f64,
    /// Tasks in job order, merged over parties.
    pub tasks: Vec<TaskReport>,
    /// Per party.
    pub parties: BTreeMap<String, PartySummary>,
}

impl JobReport {
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
        }
    }
}
