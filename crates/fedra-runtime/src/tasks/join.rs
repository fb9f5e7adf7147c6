//! `stream_join`: the streaming join of `fedra-join` as a job task.

use fedra_join::{JoinConfig, JoinError};

use super::{Metrics, Outcome, write_output};
use crate::error::TaskError;
use crate::job::StreamJoin;
use crate::runner::TaskCtx;

pub(crate) async fn run(ctx: &TaskCtx<'_>, p: &StreamJoin) -> Result<Outcome, TaskError> {
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
