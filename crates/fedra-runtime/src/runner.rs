//! Runs one party's side of a job over any [`Channel`].
//!
//! The runner is a library so that `fedra run` calls it today and the party
//! service calls it tomorrow. It first exchanges a `hello` with every peer (which
//! checks that all parties run the same job definition), then runs the tasks in
//! order. If a task fails here, the peers are told at once (with a public message);
//! if a peer fails, the channel turns that into an error here. Either way every
//! party stops within a bounded time and reports who failed, where, and why.
//!
//! Exception: before each task the runner declares the peers that the task kind may
//! lose ([`crate::tasks::TaskKind::droppable`], e.g. the clients of `horizontal`) as
//! droppable on the channel, so that a crashed or aborting client is a dropout the
//! task handles, not a failure of every party; the report lists such peers in
//! [`PartyReport::dropped_peers`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use fedra_data::DatasetSpec;
use fedra_federation::{Channel, Failure, FedError, PartyId, Tag};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::job::{Job, TaskSpec};
use crate::report::{DroppedParty, PartyReport, Status, TaskReport, Traffic};
use crate::tasks;

/// Progress of a run, for progress bars and logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A task started.
    TaskStarted {
        /// Task name.
        task: String,
        /// Its position (0-based).
        index: usize,
        /// Number of tasks.
        total: usize,
    },
    /// A task advanced.
    Progress {
        /// Task name.
        task: String,
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
    /// A task ended.
    TaskFinished {
        /// Task name.
        task: String,
        /// Outcome.
        status: Status,
    },
}

/// Everything one party needs besides its channel.
pub struct PartyContext<'a> {
    /// The validated job.
    pub job: &'a Job,
    /// This party.
    pub me: PartyId,
    /// This party's dataset (the job's, or its config file's override).
    pub data: Option<DatasetSpec>,
    /// Where this party writes its outputs.
    pub out_dir: PathBuf,
    /// Receives progress events.
    pub events: &'a (dyn Fn(Event) + Send + Sync),
}

/// What a running task sees.
pub struct TaskCtx<'a> {
    pub(crate) party: &'a PartyContext<'a>,
    /// This party's current dataset: the configured one, or the output of an
    /// earlier task of the job (e.g. the aligned data after PSI).
    pub(crate) data: Option<DatasetSpec>,
    pub(crate) ch: &'a dyn Channel,
    pub(crate) spec: &'a TaskSpec,
    round: AtomicU64,
}

const NO_ROUND: u64 = u64::MAX;

impl<'a> TaskCtx<'a> {
    /// Records the round in progress (reported if the task fails).
    pub(crate) fn set_round(&self, r: u64) {
        self.round.store(r, Ordering::Relaxed);
    }

    fn round(&self) -> Option<u64> {
        Some(self.round.load(Ordering::Relaxed)).filter(|r| *r != NO_ROUND)
    }

    /// A tag in this task's namespace.
    pub(crate) fn tag(&self, round: u64, name: &str) -> Tag {
        Tag::new(&self.spec.name, round, name)
    }

    pub(crate) fn progress(&self, done: u64, total: u64) {
        (self.party.events)(Event::Progress {
            task: self.spec.name.clone(),
            done,
            total,
        });
    }
}

#[derive(Serialize, Deserialize)]
struct Hello {
    digest: String,
}

/// Checks that every peer is reachable, authenticated, and runs the same job.
async fn hello(ctx: &PartyContext<'_>, ch: &dyn Channel) -> Result<(), TaskError> {
    let tag = Tag::new("_fedra", 0, "hello");
    let msg = serde_json::to_vec(&Hello {
        digest: ctx.job.digest.clone(),
    })
    .map_err(|e| TaskError::Setup(e.to_string()))?;
    fedra_federation::broadcast(ch, ch.peers(), &tag, Bytes::from(msg)).await?;
    for p in ch.peers() {
        let raw = ch.recv(p, &tag).await?;
        let theirs: Hello = serde_json::from_slice(&raw).map_err(|e| FedError::Decode {
            party: p.to_string(),
            tag: tag.to_string(),
            detail: e.to_string(),
        })?;
        if theirs.digest != ctx.job.digest {
            return Err(TaskError::Mismatch(format!(
                "party '{p}' runs a different definition of job '{}' (digest {} vs ours {}); \
                 all parties must use the same job file",
                ctx.job.id,
                theirs.digest.chars().take(12).collect::<String>(),
                ctx.job.digest.chars().take(12).collect::<String>(),
            )));
        }
    }
    Ok(())
}

/// Runs this party's side of the whole job and reports; never panics on peer input.
pub async fn run_party(ctx: &PartyContext<'_>, ch: &dyn Channel) -> PartyReport {
    let started = Instant::now();
    let job = ctx.job;
    let mut reports: Vec<TaskReport> = job.tasks.iter().map(TaskReport::skipped).collect();
    let mut error = None;
    let mut data = ctx.data.clone();

    if let Err(e) = hello(ctx, ch).await {
        error = Some(fail(ctx, ch, "", None, &e).await);
    } else {
        // From now on a peer's message for a task this job lacks is refused (bounded
        // memory per peer): every peer has passed the hello with the same job.
        let names: Vec<&str> = job.tasks.iter().map(|t| t.name.as_str()).collect();
        ch.expect_tasks(&names);
        for (i, spec) in job.tasks.iter().enumerate() {
            (ctx.events)(Event::TaskStarted {
                task: spec.name.clone(),
                index: i,
                total: job.tasks.len(),
            });
            tracing::info!(task = %spec.name, kind = spec.kind.name(), "task started");
            // Peers this task may lose without failing (e.g. horizontal clients): their
            // failure is a per-peer dropout the task handles. A peer that dropped out
            // of an earlier task and is needed now fails the job here.
            let droppable: Vec<PartyId> = spec
                .kind
                .droppable(&job.party_ids())
                .into_iter()
                .filter(|p| *p != ctx.me)
                .collect();
            ch.set_droppable(&droppable);
            let tctx = TaskCtx {
                party: ctx,
                ch,
                spec,
                data: data.clone(),
                round: AtomicU64::new(NO_ROUND),
            };
            let t0 = Instant::now();
            let result = tasks::run(&tctx).await;
            let r = &mut reports[i];
            r.wall_s = t0.elapsed().as_secs_f64();
            match result {
                Ok(outcome) => {
                    r.status = Status::Succeeded;
                    r.metrics = outcome.metrics;
                    if let Some(d) = outcome.data {
                        tracing::info!(task = %spec.name, path = %d.path.display(), "later tasks use this dataset");
                        data = Some(d);
                    }
                    tracing::info!(task = %spec.name, wall_s = r.wall_s, "task succeeded");
                }
                Err(e) => {
                    r.status = Status::Failed;
                    let msg = fail(ctx, ch, &spec.name, tctx.round(), &e).await;
                    r.error = Some(msg.clone());
                    error = Some(msg);
                }
            }
            (ctx.events)(Event::TaskFinished {
                task: spec.name.clone(),
                status: r.status,
            });
            if error.is_some() {
                break;
            }
        }
    }
    if error.is_none() {
        ch.finish().await;
    }
    PartyReport {
        job: job.id.clone(),
        party: ctx.me.to_string(),
        status: if error.is_none() {
            Status::Succeeded
        } else {
            Status::Failed
        },
        wall_s: started.elapsed().as_secs_f64(),
        tasks: reports,
        traffic: Traffic::from_stats(&ch.stats()),
        peak_rss_mb: None,
        error,
        dropped_peers: ch
            .dropped()
            .into_iter()
            .map(|(p, e)| DroppedParty {
                party: p.to_string(),
                error: e.to_string(),
            })
            .collect(),
    }
}

/// Logs a failure in full, tells the peers (unless a peer caused it), and returns
/// the one-line message for the report.
async fn fail(
    ctx: &PartyContext<'_>,
    ch: &dyn Channel,
    task: &str,
    round: Option<u64>,
    e: &TaskError,
) -> String {
    let code = e.code();
    let mut place = if task.is_empty() {
        "at start-up".to_owned()
    } else {
        format!("in task '{task}'")
    };
    if let Some(r) = round {
        place = format!("{place} round {r}");
    }
    if e.is_from_peer() {
        tracing::error!(
            task,
            code,
            "stopped {place} because another party failed: {e}"
        );
        return format!("{e} (party '{}' stopped {place})", ctx.me);
    }
    let msg = e.to_string();
    tracing::error!(task, code, "party '{}' failed {place}: {msg}", ctx.me);
    ch.abort(&Failure {
        party: ctx.me.to_string(),
        task: task.to_owned(),
        round,
        code,
        message: e.public_message(ctx.me.as_str()),
    })
    .await;
    format!("party '{}' failed {place}: {msg}", ctx.me)
}
