//! The declarative job file: parties, their roles and data, runtime limits, and an
//! ordered list of typed tasks. Parsing validates everything before any work starts,
//! and every error names the offending field and what is allowed. This module knows
//! the job-level structure only: each task kind's parameters, their parsing and
//! validation live with the kind in [`crate::tasks`].
//!
//! ```toml
//! [job]
//! id = "quickstart"
//!
//! [parties.guest]
//! role = "guest"
//! data = { path = "guest.csv", id_column = "id", label = "y" }
//!
//! [parties.host]
//! role = "host"
//! data = { path = "host.csv" }
//!
//! [[tasks]]
//! name = "stats"
//! kind = "dataset_stats"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fedra_data::DatasetSpec;
use fedra_federation::PartyId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::JobError;
use crate::tasks::TaskKind;
use crate::tasks::params::{FieldError, ParseCtx, range};

/// What a party does in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds the labels (and usually some features); learns the results.
    Guest,
    /// Holds features only.
    Host,
    /// A third party that holds keys or coordinates, and no data.
    Arbiter,
    /// The aggregation server of horizontal learning (its dataset, if any, is the
    /// evaluation set).
    Server,
    /// A client of horizontal learning (holds its own labelled rows).
    Client,
}

/// One party of the job.
#[derive(Debug, Clone)]
pub struct PartySpec {
    /// Its role.
    pub role: Role,
    /// Its dataset (paths resolved against the job file's folder); a party's own
    /// config file may replace it.
    pub data: Option<DatasetSpec>,
}

/// Limits and deadlines of the federation channel, per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// A peer silent this long fails the job (seconds, 1–3600).
    pub peer_timeout_s: f64,
    /// How long a send keeps retrying (seconds, 1–86400).
    pub send_timeout_s: f64,
    /// Deadline of each receive (seconds, 1–604800); none by default, because
    /// liveness is detected by heartbeats and crypto steps may take long.
    pub recv_timeout_s: Option<f64>,
    /// How long parties wait for each other at start (seconds, 1–3600).
    pub startup_timeout_s: f64,
    /// Largest message a party accepts (MiB, 1–4096).
    pub max_message_mb: u64,
    /// Bytes one peer may have delivered that this party has not yet used (MiB,
    /// 1–65536; default 2048, and at least `max_message_mb`): over it the peer's
    /// message is refused and the job fails naming the peer. Not part of the digest
    /// when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_mb: Option<u64>,
    /// Acknowledges that a task of this job runs a mode without protection (today:
    /// SecureBoost's `scheme = "insecure_plaintext"`); such a task is refused without
    /// it. Every party then logs a warning and the report says `insecure: true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure: bool,
}

impl RuntimeSettings {
    /// The per-peer queue cap in bytes ([`RuntimeSettings::max_queued_mb`]).
    pub fn max_queued_bytes(&self) -> u64 {
        self.max_queued_mb.map_or(
            fedra_federation::inbox::InboxLimits::DEFAULT_MAX_QUEUED_BYTES,
            |mb| mb << 20,
        )
    }
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            peer_timeout_s: 10.0,
            send_timeout_s: 120.0,
            recv_timeout_s: None,
            startup_timeout_s: 60.0,
            max_message_mb: 1024,
            max_queued_mb: None,
            allow_insecure: false,
        }
    }
}

/// One task of the job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    /// Unique within the job; namespaces the task's messages.
    pub name: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: TaskKind,
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job id; peers refuse messages of other jobs.
    pub id: String,
    /// Free text.
    pub description: String,
    /// The parties by name.
    pub parties: BTreeMap<PartyId, PartySpec>,
    /// Tasks, run in order.
    pub tasks: Vec<TaskSpec>,
    /// Channel limits and deadlines.
    pub runtime: RuntimeSettings,
    /// The file it came from.
    pub path: PathBuf,
    /// Digest of everything the parties must agree on (ids, roles, tasks, runtime;
    /// not local data paths), compared at start-up.
    pub digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    job: RawMeta,
    #[serde(default)]
    runtime: RuntimeSettings,
    parties: BTreeMap<String, RawParty>,
    #[serde(default)]
    tasks: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    id: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    role: Role,
    #[serde(default)]
    data: Option<DatasetSpec>,
}

impl Job {
    /// Reads and validates a job file.
    pub fn load(path: &Path) -> Result<Self, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates job text; relative data paths resolve against `path`'s folder.
    pub fn parse(text: &str, path: &Path) -> Result<Self, JobError> {
        let raw: RawJob = toml::from_str(text).map_err(|e| JobError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |field: String, message: String| JobError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));

        let id = raw.job.id;
        if !valid_name(&id) {
            return Err(invalid(
                "job.id".into(),
                format!("{id:?} must be 1-64 characters of a-z, 0-9, '-' and '_'"),
            ));
        }
        check_settings(&raw.runtime).map_err(|(f, m)| invalid(format!("runtime.{f}"), m))?;

        if raw.parties.len() < 2 {
            return Err(invalid(
                "parties".into(),
                format!(
                    "a job needs at least 2 parties, found {}",
                    raw.parties.len()
                ),
            ));
        }
        let mut parties = BTreeMap::new();
        for (name, p) in raw.parties {
            let field = format!("parties.{name}");
            let id = PartyId::new(&name).map_err(|e| invalid(field.clone(), e.to_string()))?;
            let data = match p.data {
                None => None,
                Some(mut d) => {
                    if d.path.is_relative() {
                        d.path = base.join(&d.path);
                    }
                    d.validate()
                        .map_err(|e| invalid(format!("{field}.data"), e.to_string()))?;
                    Some(d)
                }
            };
            parties.insert(id, PartySpec { role: p.role, data });
        }

        let mut tasks = Vec::new();
        let mut names = BTreeSet::new();
        for (i, table) in raw.tasks.into_iter().enumerate() {
            let task =
                parse_task(i, table, &parties, &raw.runtime).map_err(|(f, m)| invalid(f, m))?;
            if !names.insert(task.name.clone()) {
                return Err(invalid(
                    format!("tasks[{i}].name"),
                    format!("duplicate task name {:?}", task.name),
                ));
            }
            tasks.push(task);
        }
        if tasks.is_empty() {
            return Err(invalid(
                "tasks".into(),
                "a job needs at least one [[tasks]] entry".into(),
            ));
        }

        let agreed = serde_json::json!({
            "id": id,
            "parties": parties.iter().map(|(p, s)| (p.to_string(), s.role)).collect::<BTreeMap<_, _>>(),
            // Task paths are kept as written (resolved only when used, by
            // `Job::local_path`), so two organizations running the same job file from
            // different folders agree on the digest.
            "tasks": tasks,
            "runtime": raw.runtime,
        });
        let digest = Sha256::digest(agreed.to_string().as_bytes());
        let digest = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Job {
            id,
            description: raw.job.description,
            parties,
            tasks,
            runtime: raw.runtime,
            path: path.to_owned(),
            digest,
        })
    }

    /// A path a task names (RSA key and cache, model files), as this party opens it:
    /// relative paths are relative to the job file's folder. Task parameters keep
    /// paths as written, so that they (and the job digest) are the same for every
    /// organization.
    pub fn local_path(&self, p: &Path) -> PathBuf {
        if p.is_relative() {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        } else {
            p.to_path_buf()
        }
    }

    /// The parties' names in order.
    pub fn party_ids(&self) -> Vec<PartyId> {
        self.parties.keys().cloned().collect()
    }

    /// The parties that some task of the job may lose
    /// ([`TaskKind::droppable`]). If only such parties fail and every other
    /// party succeeds, the job succeeded "with dropouts": a failure of theirs
    /// in a task that needs them fails every other party anyway (job-wide
    /// failure), so the others can only all succeed if it happened where the
    /// party was droppable (or after the others were done).
    pub fn droppable_parties(&self) -> Vec<PartyId> {
        let all = self.party_ids();
        let per_task: Vec<Vec<PartyId>> =
            self.tasks.iter().map(|t| t.kind.droppable(&all)).collect();
        all.iter()
            .filter(|p| per_task.iter().any(|d| d.contains(p)))
            .cloned()
            .collect()
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_settings(s: &RuntimeSettings) -> Result<(), FieldError> {
    range("peer_timeout_s", s.peer_timeout_s, 1.0, 3600.0)?;
    range("send_timeout_s", s.send_timeout_s, 1.0, 86_400.0)?;
    if let Some(r) = s.recv_timeout_s {
        range("recv_timeout_s", r, 1.0, 604_800.0)?;
    }
    range("startup_timeout_s", s.startup_timeout_s, 1.0, 3600.0)?;
    range("max_message_mb", s.max_message_mb, 1, 4096)?;
    if let Some(q) = s.max_queued_mb {
        range("max_queued_mb", q, s.max_message_mb.max(1), 65_536)?;
    }
    Ok(())
}

/// Parses one `[[tasks]]` table: its `name` and `kind`, then the kind's own
/// parameters ([`TaskKind::parse`]).
fn parse_task(
    index: usize,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
    runtime: &RuntimeSettings,
) -> Result<TaskSpec, FieldError> {
    let at = |f: &str| format!("tasks[{index}].{f}");
    let take_str = |table: &mut toml::Table, key: &str| -> Result<String, FieldError> {
        match table.remove(key) {
            Some(toml::Value::String(s)) => Ok(s),
            Some(other) => Err((
                at(key),
                format!("must be a string, got {}", other.type_str()),
            )),
            None => Err((at(key), "is required".into())),
        }
    };
    let name = take_str(&mut table, "name")?;
    if !valid_name(&name) {
        return Err((
            at("name"),
            format!("{name:?} must be 1-64 characters of a-z, 0-9, '-' and '_'"),
        ));
    }
    let kind = take_str(&mut table, "kind")?;
    let cx = ParseCtx {
        index,
        name: &name,
        parties,
        runtime,
    };
    let kind = TaskKind::parse(&kind, &cx, table).unwrap_or_else(|| {
        let mut known = TaskKind::ALL.to_vec();
        known.sort_unstable();
        Err((
            at("kind"),
            format!(
                "unknown task kind {kind:?}; known kinds: {}",
                known.join(", ")
            ),
        ))
    })?;
    Ok(TaskSpec { name, kind })
}
