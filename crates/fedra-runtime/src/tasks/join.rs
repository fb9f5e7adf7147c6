//! `stream_join`: the streaming join of `fedra-join` as a job task.

use fedra_federation::PartyId;
use fedra_join::{JoinConfig, JoinError};
use serde::{Deserialize, Serialize};

use super::params::{FieldError, ParseCtx, range};
use super::{Metrics, Outcome, OutputFormat, Task, write_output};
use crate::error::TaskError;
use crate::runner::TaskCtx;

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

impl Task for StreamJoin {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        let p: StreamJoin = cx.decode(table)?;
        for (field, party) in [("leader", &p.leader), ("follower", &p.follower)] {
            cx.check_party(
                cx.at(field),
                party,
                Some("stream_join needs a dataset on the leader and the follower"),
            )?;
        }
        if p.leader == p.follower {
            return Err((cx.at("follower"), "must differ from the leader".into()));
        }
        if p.time_column.is_empty() {
            return Err((cx.at("time_column"), "must name a column".into()));
        }
        range(&cx.at("window_s"), p.window_s, 0.0, 31_536_000.0)?;
        range(&cx.at("batch"), p.batch, 1, 1 << 20)?;
        Ok(p)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await
    }
}

async fn run(ctx: &TaskCtx<'_>, p: &StreamJoin) -> Result<Outcome, TaskError> {
    let me = &ctx.party.me;
    let leading = *me == p.leader;
    if !leading && *me != p.follower {
        return Ok(Metrics::new().into());
    }
    let spec = super::dataset(ctx)?;
    let reader = fedra_data::open(&spec)?;
    let cfg = JoinConfig {
        task: ctx.spec.name.clone(),
        time_column: p.time_column.clone(),
        window_s: p.window_s,
        batch: p.batch,
        keep_time_column: p.keep_time_column,
    };
    let result = if leading {
        fedra_join::lead(ctx.ch, &p.follower, reader, &cfg).await
    } else {
        fedra_join::follow(ctx.ch, &p.leader, reader, &cfg).await
    }
    .map_err(|e| match e {
        JoinError::Data(d) => TaskError::Data(d),
        JoinError::Fed(f) => TaskError::Fed(f),
        other => TaskError::Setup(other.to_string()),
    })?;
    let s = &result.stats;
    let mut m = Metrics::new();
    m.insert("joined".into(), s.joined.into());
    m.insert("leader_records".into(), s.leader_records.into());
    m.insert("leader_unmatched".into(), s.leader_unmatched.into());
    if !leading {
        m.insert("follower_records".into(), s.follower_records.into());
        m.insert("follower_unmatched".into(), s.follower_unmatched.into());
        m.insert("late".into(), s.late.into());
    }
    let data = write_output(ctx, "joined", &result.joined, p.output)?;
    Ok(Outcome {
        metrics: m,
        data: Some(data),
    })
}
