//! The declarative job file: parties, their roles and data, and an ordered list of
//! typed tasks. Parsing validates everything before any work starts, and every
//! error names the offending field and what is allowed.
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
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            peer_timeout_s: 10.0,
            send_timeout_s: 120.0,
            recv_timeout_s: None,
            startup_timeout_s: 60.0,
            max_message_mb: 1024,
        }
    }
}

/// Parameters of the `dataset_stats` task: every party summarises its own dataset
/// (rows, and per feature count, missing, mean, standard deviation, min, max) and
/// sends the summary — never a row — to the other parties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetStats {
    /// Fail if the parties' row counts differ (true for row-aligned vertical data).
    #[serde(default)]
    pub require_equal_rows: bool,
}

/// Parameters of the `echo` task: the leader sends a payload to every other party,
/// which sends it back; used to check the wire and to measure round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    /// Number of round trips (1–1,000,000).
    #[serde(default = "one")]
    pub rounds: u64,
    /// Payload size in bytes (0 up to the runtime's message limit).
    #[serde(default)]
    pub payload_bytes: u64,
    /// Pause between rounds in milliseconds (0–60,000).
    #[serde(default)]
    pub interval_ms: u64,
    /// The party that starts each round (default: the first party by name).
    #[serde(default)]
    pub leader: Option<PartyId>,
}

fn one() -> u64 {
    1
}

/// File format of a dataset a task writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// CSV with a header.
    #[default]
    Csv,
    /// Parquet.
    Parquet,
}

/// Parameters of the `stream_join` task: join two event streams by example id within
/// a time window (see `fedra-join`). Both parties continue with the joined rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamJoin {
    /// The party whose stream order is kept.
    pub leader: PartyId,
    /// The other party.
    pub follower: PartyId,
    /// The feature column (on both sides) holding the event time, in seconds.
    pub time_column: String,
    /// Largest time difference of two joined records (seconds, 0–31,536,000).
    pub window_s: f64,
    /// Records per message (1–1,048,576).
    #[serde(default = "default_join_batch")]
    pub batch: usize,
    /// Keep the time column among the joined features.
    #[serde(default)]
    pub keep_time_column: bool,
    /// Format of the joined dataset written to the output folder.
    #[serde(default)]
    pub output: OutputFormat,
}

fn default_join_batch() -> usize {
    4096
}

/// What to do with ids that occur on several rows of a party's dataset when aligning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duplicates {
    /// Refuse to align (the dataset must have unique ids).
    #[default]
    Error,
    /// Keep the first row of each id.
    KeepFirst,
}

/// Who learns the intersection in ECDH-PSI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EcdhOutput {
    /// Both parties learn it (and align their data).
    #[default]
    Both,
    /// Only the leader learns it; the follower learns its size.
    LeaderOnly,
}

/// Who learns the intersection in RSA-PSI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RsaOutputMode {
    /// Both parties learn it.
    #[default]
    Both,
    /// Only the client learns it; the key holder learns its size.
    ClientOnly,
}

/// Parameters of the `psi` task: private set intersection of two parties' ids, then
/// each party that learns the intersection continues with its dataset restricted
/// to and ordered by the common ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "snake_case", deny_unknown_fields)]
pub enum Psi {
    /// ECDH-PSI over ristretto255 (no long-term keys; the default choice).
    Ecdh {
        /// Draws the bucket salt; always learns the intersection.
        leader: PartyId,
        /// The other party.
        follower: PartyId,
        /// Who learns the intersection.
        #[serde(default)]
        output: EcdhOutput,
        /// Hash buckets (1–65,536): memory is bounded by the largest bucket.
        #[serde(default = "one_u32")]
        buckets: u32,
        /// Repeated ids in a dataset.
        #[serde(default)]
        on_duplicate: Duplicates,
        /// Format of the aligned dataset.
        #[serde(default)]
        write: OutputFormat,
    },
    /// RSA blind-signature PSI (Fedlearner style), with an optional offline cache.
    Rsa {
        /// Holds the RSA key and signs.
        key_holder: PartyId,
        /// Blinds its ids; always learns the intersection.
        client: PartyId,
        /// Who learns the intersection.
        #[serde(default)]
        output: RsaOutputMode,
        /// Size of a fresh per-job key when `key` is not given (2048–4096).
        #[serde(default = "default_rsa_bits")]
        key_bits: u32,
        /// The key holder's persistent RSA key (PEM), relative to the job file.
        #[serde(default)]
        key: Option<PathBuf>,
        /// The key holder's signature cache (made on first use), relative to the job file.
        #[serde(default)]
        cache: Option<PathBuf>,
        /// Repeated ids in a dataset.
        #[serde(default)]
        on_duplicate: Duplicates,
        /// Format of the aligned dataset.
        #[serde(default)]
        write: OutputFormat,
    },
}

impl Psi {
    /// The two parties taking part.
    pub fn parties(&self) -> [&PartyId; 2] {
        match self {
            Psi::Ecdh {
                leader, follower, ..
            } => [leader, follower],
            Psi::Rsa {
                key_holder, client, ..
            } => [key_holder, client],
        }
    }
}

/// Parameters of the `hetero_lr` task: vertical logistic or linear regression with
/// Paillier/OU (`fedra-linear`) on the parties' aligned rows, evaluated on a held-out
/// split agreed by the guest; each party saves its part of the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeteroLr {
    /// Fraction of rows held out for evaluation (0–0.9; 0 evaluates on training rows only).
    pub holdout: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
    /// Keep each label's share in both parts (logistic regression).
    pub stratify: bool,
    /// Training settings; every other key of the task table (see `fedra_linear::Config`).
    pub config: fedra_linear::Config,
}

/// Parameters of the `hetero_lr_predict` task: federated prediction with a model saved
/// by an earlier `hetero_lr` task (each party loads its own part); the guest writes
/// the predictions and, if its data has labels, the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeteroLrPredict {
    /// The party holding the guest part of the model (it learns the predictions).
    pub guest: PartyId,
    /// Each party's model file (`<task>.model.json` of the training job), relative to the job file.
    pub models: BTreeMap<PartyId, PathBuf>,
}

/// Parameters of the `secureboost` task: vertical gradient-boosted trees with
/// OU/Paillier-encrypted gradients (`fedra-tree`) on the parties' aligned rows,
/// evaluated on a held-out split agreed by the guest; each party saves its part of
/// the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecureBoost {
    /// Fraction of rows held out for evaluation (0–0.9; 0 evaluates on training rows only).
    pub holdout: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
    /// Keep each label's share in both parts (classification).
    pub stratify: bool,
    /// Training settings; every other key of the task table (see `fedra_tree::Config`).
    pub config: fedra_tree::Config,
}

/// Parameters of the `horizontal` task: horizontal federated learning (FedAvg family,
/// `fedra-horizontal`) between one server and its clients; the server evaluates the
/// global model on its own dataset (if it has one) every round and saves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Horizontal {
    /// The aggregation server.
    pub server: PartyId,
    /// Rounds, model, local training, strategy, secure aggregation, DP (every other
    /// key of the task table; see `fedra_horizontal::protocol::ServerConfig`).
    pub config: fedra_horizontal::protocol::ServerConfig,
    /// The clients' own limits (`[tasks.client]`, optional).
    pub client: fedra_horizontal::protocol::ClientConfig,
}

/// Parameters of the `splitnn` task: split neural network (vertical NN, `fedra-splitnn`)
/// between the leader (label holder) and one or more followers on the parties' aligned
/// rows, evaluated on a held-out split drawn by the leader; checkpoints on every party
/// at the same step (a re-run with the same output folder resumes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Splitnn {
    /// Fraction of rows held out for evaluation (0–0.9; 0 evaluates on training rows only).
    pub holdout: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
    /// Keep each label's share in both parts (classification).
    pub stratify: bool,
    /// Towers, top model, schedule and protection (every other key of the task table;
    /// see `fedra_splitnn::decl`).
    #[serde(flatten)]
    pub decl: fedra_splitnn::SplitDecl,
}

fn one_u32() -> u32 {
    1
}

fn default_rsa_bits() -> u32 {
    2048
}

/// A task's kind and typed parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    /// Joint dataset statistics.
    DatasetStats(DatasetStats),
    /// Round trips of a payload.
    Echo(Echo),
    /// Streaming join of event streams.
    StreamJoin(StreamJoin),
    /// Private set intersection and alignment.
    Psi(Psi),
    /// Vertical logistic / linear regression.
    HeteroLr(HeteroLr),
    /// Prediction with a saved vertical linear model.
    HeteroLrPredict(HeteroLrPredict),
    /// Vertical gradient-boosted trees (SecureBoost).
    Secureboost(SecureBoost),
    /// Prediction with a saved SecureBoost model (same fields as `hetero_lr_predict`).
    SecureboostPredict(HeteroLrPredict),
    /// Horizontal federated learning (server and clients).
    Horizontal(Horizontal),
    /// Split neural network (vertical NN).
    Splitnn(Splitnn),
}

impl TaskKind {
    /// The kind's name as written in job files.
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::DatasetStats(_) => "dataset_stats",
            TaskKind::Echo(_) => "echo",
            TaskKind::StreamJoin(_) => "stream_join",
            TaskKind::Psi(_) => "psi",
            TaskKind::HeteroLr(_) => "hetero_lr",
            TaskKind::HeteroLrPredict(_) => "hetero_lr_predict",
            TaskKind::Secureboost(_) => "secureboost",
            TaskKind::SecureboostPredict(_) => "secureboost_predict",
            TaskKind::Horizontal(_) => "horizontal",
            TaskKind::Splitnn(_) => "splitnn",
        }
    }

    /// The parties (among `parties`, the job's) that may drop out of this task
    /// without failing it: their crash, loss or abort is a per-peer dropout
    /// (`Channel::set_droppable`), which the task handles. Today only the
    /// clients of `horizontal` (the server never is); other kinds: none.
    pub fn droppable(&self, parties: &[PartyId]) -> Vec<PartyId> {
        match self {
            TaskKind::Horizontal(h) => parties
                .iter()
                .filter(|p| **p != h.server)
                .filter(|p| h.config.clients.as_ref().is_none_or(|c| c.contains(p)))
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Every kind name, for error messages.
    pub const ALL: &'static [&'static str] = &[
        "dataset_stats",
        "echo",
        "hetero_lr",
        "hetero_lr_predict",
        "horizontal",
        "psi",
        "secureboost",
        "secureboost_predict",
        "splitnn",
        "stream_join",
    ];
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
            let task = parse_task(i, table, &parties, &raw.runtime, base)
                .map_err(|(f, m)| invalid(f, m))?;
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

type FieldError = (String, String);

fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), FieldError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err((field.to_owned(), format!("must be in {lo}..={hi}, got {v}")))
    }
}

/// Checks that `party` (named by task field `field`) is in the job and, when `data_reason`
/// is given, that it has a dataset (the reason is the error message otherwise).
fn check_party(
    parties: &BTreeMap<PartyId, PartySpec>,
    field: String,
    party: &PartyId,
    data_reason: Option<&str>,
) -> Result<(), FieldError> {
    match (parties.get(party), data_reason) {
        (None, _) => Err((field, format!("{party} is not a party of the job"))),
        (Some(spec), Some(reason)) if spec.data.is_none() => {
            Err((format!("parties.{party}.data"), reason.to_owned()))
        }
        _ => Ok(()),
    }
}

fn check_settings(s: &RuntimeSettings) -> Result<(), FieldError> {
    range("peer_timeout_s", s.peer_timeout_s, 1.0, 3600.0)?;
    range("send_timeout_s", s.send_timeout_s, 1.0, 86_400.0)?;
    if let Some(r) = s.recv_timeout_s {
        range("recv_timeout_s", r, 1.0, 604_800.0)?;
    }
    range("startup_timeout_s", s.startup_timeout_s, 1.0, 3600.0)?;
    range("max_message_mb", s.max_message_mb, 1, 4096)
}

fn parse_task(
    i: usize,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
    runtime: &RuntimeSettings,
    base: &Path,
) -> Result<TaskSpec, FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
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
    if kind == "hetero_lr" {
        return parse_hetero_lr(i, &name, table, parties).map(|p| TaskSpec {
            name,
            kind: TaskKind::HeteroLr(p),
        });
    }
    if kind == "horizontal" {
        return parse_horizontal(i, &name, table, parties).map(|p| TaskSpec {
            name,
            kind: TaskKind::Horizontal(p),
        });
    }
    if kind == "splitnn" {
        return parse_splitnn(i, &name, table, parties).map(|p| TaskSpec {
            name,
            kind: TaskKind::Splitnn(p),
        });
    }
    if kind == "secureboost" {
        return parse_secureboost(i, &name, table, parties).map(|p| TaskSpec {
            name,
            kind: TaskKind::Secureboost(p),
        });
    }
    let params = toml::Value::Table(table);
    let decode = |e: toml::de::Error| (format!("tasks[{i}] ({name})"), e.message().to_owned());
    let kind = match kind.as_str() {
        "dataset_stats" => {
            let p: DatasetStats = params.try_into().map_err(decode)?;
            for (party, spec) in parties {
                if spec.data.is_none() && spec.role != Role::Arbiter {
                    return Err((
                        format!("parties.{party}.data"),
                        "dataset_stats needs a dataset for every guest and host".into(),
                    ));
                }
            }
            TaskKind::DatasetStats(p)
        }
        "echo" => {
            let p: Echo = params.try_into().map_err(decode)?;
            range(&at("rounds"), p.rounds, 1, 1_000_000)?;
            range(
                &at("payload_bytes"),
                p.payload_bytes,
                0,
                runtime.max_message_mb << 20,
            )?;
            range(&at("interval_ms"), p.interval_ms, 0, 60_000)?;
            if let Some(l) = &p.leader
                && !parties.contains_key(l)
            {
                let known: Vec<String> = parties.keys().map(|p| p.to_string()).collect();
                return Err((
                    at("leader"),
                    format!(
                        "{l} is not a party of the job (parties: {})",
                        known.join(", ")
                    ),
                ));
            }
            TaskKind::Echo(p)
        }
        "psi" => {
            let mut p: Psi = params.try_into().map_err(decode)?;
            let [a, b] = p.parties();
            let names = match p {
                Psi::Ecdh { .. } => ["leader", "follower"],
                Psi::Rsa { .. } => ["key_holder", "client"],
            };
            for (field, party) in names.into_iter().zip([a, b]) {
                check_party(
                    parties,
                    at(field),
                    party,
                    Some("psi needs a dataset on both of its parties"),
                )?;
            }
            if a == b {
                return Err((at(names[1]), format!("must differ from the {}", names[0])));
            }
            match &mut p {
                Psi::Ecdh { buckets, .. } => range(&at("buckets"), *buckets, 1, 65_536)?,
                Psi::Rsa {
                    key_bits,
                    key,
                    cache,
                    ..
                } => {
                    range(&at("key_bits"), *key_bits, 2048, 4096)?;
                    if cache.is_some() && key.is_none() {
                        return Err((
                            at("cache"),
                            "a signature cache needs a persistent `key`: with a fresh key per job nothing could be reused".into(),
                        ));
                    }
                    for p in [key, cache].into_iter().flatten() {
                        if p.is_relative() {
                            *p = base.join(&*p);
                        }
                    }
                }
            }
            TaskKind::Psi(p)
        }
        "hetero_lr_predict" | "secureboost_predict" => {
            let mut p: HeteroLrPredict = params.try_into().map_err(decode)?;
            if !p.models.contains_key(&p.guest) {
                return Err((
                    at("models"),
                    format!("has no model file for the guest '{}'", p.guest),
                ));
            }
            for (party, path) in &mut p.models {
                check_party(
                    parties,
                    format!("{}.{party}", at("models")),
                    party,
                    Some("prediction needs data on every party with a model"),
                )?;
                if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
            if kind == "hetero_lr_predict" {
                TaskKind::HeteroLrPredict(p)
            } else {
                TaskKind::SecureboostPredict(p)
            }
        }
        "stream_join" => {
            let p: StreamJoin = params.try_into().map_err(decode)?;
            for (field, party) in [("leader", &p.leader), ("follower", &p.follower)] {
                check_party(
                    parties,
                    at(field),
                    party,
                    Some("stream_join needs a dataset on the leader and the follower"),
                )?;
            }
            if p.leader == p.follower {
                return Err((at("follower"), "must differ from the leader".into()));
            }
            if p.time_column.is_empty() {
                return Err((at("time_column"), "must name a column".into()));
            }
            range(&at("window_s"), p.window_s, 0.0, 31_536_000.0)?;
            range(&at("batch"), p.batch, 1, 1 << 20)?;
            TaskKind::StreamJoin(p)
        }
        other => {
            return Err((
                at("kind"),
                format!(
                    "unknown task kind {other:?}; known kinds: {}",
                    TaskKind::ALL.join(", ")
                ),
            ));
        }
    };
    Ok(TaskSpec { name, kind })
}

/// The held-out split keys shared by training tasks: `holdout`, `split_seed`, `stratify`.
fn take_split(i: usize, table: &mut toml::Table) -> Result<(f64, u64, Option<bool>), FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let holdout = match table.remove("holdout") {
        None => 0.2,
        Some(toml::Value::Float(f)) => f,
        Some(toml::Value::Integer(n)) => n as f64,
        Some(v) => {
            return Err((
                at("holdout"),
                format!("must be a number, got {}", v.type_str()),
            ));
        }
    };
    range(&at("holdout"), holdout, 0.0, 0.9)?;
    let split_seed = match table.remove("split_seed") {
        None => 42,
        Some(toml::Value::Integer(n)) if n >= 0 => n as u64,
        Some(v) => {
            return Err((
                at("split_seed"),
                format!("must be a non-negative integer, got {v}"),
            ));
        }
    };
    let stratify = match table.remove("stratify") {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(b),
        Some(v) => return Err((at("stratify"), format!("must be true or false, got {v}"))),
    };
    Ok((holdout, split_seed, stratify))
}

fn parse_hetero_lr(
    i: usize,
    name: &str,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
) -> Result<HeteroLr, FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let (holdout, split_seed, stratify) = take_split(i, &mut table)?;
    if table.contains_key("task") {
        return Err((at("task"), "is set by the runtime (the task's name)".into()));
    }
    table.insert("task".into(), toml::Value::String(name.to_owned()));
    let config: fedra_linear::Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| (format!("tasks[{i}] ({name})"), e.message().to_owned()))?;
    config.validate().map_err(|e| match e {
        fedra_linear::LinearError::Config { field, reason } => (at(field), reason),
        other => (format!("tasks[{i}] ({name})"), other.to_string()),
    })?;
    let mut needed: Vec<(&str, &PartyId, bool)> = vec![("guest", &config.guest, true)];
    needed.extend(config.hosts.iter().map(|h| ("hosts", h, true)));
    if let fedra_linear::Mode::WithArbiter { arbiter } = &config.mode {
        needed.push(("mode.with_arbiter.arbiter", arbiter, false));
    }
    for (field, party, data) in needed {
        let reason = data.then_some("hetero_lr needs a dataset on the guest and every host");
        check_party(parties, at(field), party, reason)?;
    }
    let stratify = stratify.unwrap_or(config.objective == fedra_linear::Objective::Logistic);
    Ok(HeteroLr {
        holdout,
        split_seed,
        stratify,
        config,
    })
}

fn parse_secureboost(
    i: usize,
    name: &str,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
) -> Result<SecureBoost, FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let (holdout, split_seed, stratify) = take_split(i, &mut table)?;
    let config: fedra_tree::Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| (format!("tasks[{i}] ({name})"), e.message().to_owned()))?;
    config.validate().map_err(|e| match e {
        fedra_tree::TreeError::Config { field, reason } => (at(field), reason),
        other => (format!("tasks[{i}] ({name})"), other.to_string()),
    })?;
    for (field, party) in
        std::iter::once(("guest", &config.guest)).chain(config.hosts.iter().map(|h| ("hosts", h)))
    {
        check_party(
            parties,
            at(field),
            party,
            Some("secureboost needs a dataset on the guest and every host"),
        )?;
    }
    let stratify = stratify.unwrap_or(config.objective != fedra_tree::Objective::Regression);
    Ok(SecureBoost {
        holdout,
        split_seed,
        stratify,
        config,
    })
}

fn parse_horizontal(
    i: usize,
    name: &str,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
) -> Result<Horizontal, FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let whole = |e: String| (format!("tasks[{i}] ({name})"), e);
    let server = match table.remove("server") {
        Some(toml::Value::String(s)) => {
            PartyId::new(&s).map_err(|e| (at("server"), e.to_string()))?
        }
        Some(v) => return Err((at("server"), format!("must be a party name, got {v}"))),
        None => return Err((at("server"), "is required".into())),
    };
    check_party(parties, at("server"), &server, None)?;
    let client: fedra_horizontal::protocol::ClientConfig = match table.remove("client") {
        None => Default::default(),
        Some(v) => v
            .try_into()
            .map_err(|e: toml::de::Error| (at("client"), e.message().to_owned()))?,
    };
    client
        .validate()
        .map_err(|e| (at("client"), e.to_string()))?;
    let config: fedra_horizontal::protocol::ServerConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| whole(e.message().to_owned()))?;
    config.validate().map_err(|e| whole(e.to_string()))?;
    let clients: Vec<PartyId> = match &config.clients {
        Some(c) => c.clone(),
        None => parties.keys().filter(|p| **p != server).cloned().collect(),
    };
    if clients.is_empty() {
        return Err((at("clients"), "at least one client is needed".into()));
    }
    for c in &clients {
        if *c == server {
            return Err((at("clients"), format!("'{c}' is the server")));
        }
        check_party(
            parties,
            at("clients"),
            c,
            Some("horizontal learning needs a dataset on every client"),
        )?;
    }
    Ok(Horizontal {
        server,
        config,
        client,
    })
}

fn parse_splitnn(
    i: usize,
    name: &str,
    mut table: toml::Table,
    parties: &BTreeMap<PartyId, PartySpec>,
) -> Result<Splitnn, FieldError> {
    let at = |f: &str| format!("tasks[{i}].{f}");
    let (holdout, split_seed, stratify) = take_split(i, &mut table)?;
    let decl: fedra_splitnn::SplitDecl = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| (format!("tasks[{i}] ({name})"), e.message().to_owned()))?;
    decl.validate().map_err(|e| match e {
        fedra_splitnn::SplitError::Field { field, reason } => (at(&field), reason),
        fedra_splitnn::SplitError::Config { field, reason } => (at(field), reason),
        other => (format!("tasks[{i}] ({name})"), other.to_string()),
    })?;
    let leader = PartyId::new(&decl.leader).map_err(|e| (at("leader"), e.to_string()))?;
    check_party(
        parties,
        at("leader"),
        &leader,
        Some("splitnn needs a dataset with the labels on the leader"),
    )?;
    for p in decl.towers.keys() {
        let id = PartyId::new(p).map_err(|e| (at(&format!("towers.{p}")), e.to_string()))?;
        check_party(
            parties,
            at(&format!("towers.{p}")),
            &id,
            Some("splitnn needs a dataset on every party with a tower"),
        )?;
    }
    let stratify = stratify.unwrap_or(decl.top.objective != fedra_splitnn::Objective::Regression);
    Ok(Splitnn {
        holdout,
        split_seed,
        stratify,
        decl,
    })
}
