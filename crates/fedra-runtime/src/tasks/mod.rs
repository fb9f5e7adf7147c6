//! Task implementations, one module per kind. Each is a protocol over the
//! [`Channel`](fedra_federation::Channel) that returns flat metrics.

mod echo;
mod stats;

use std::collections::BTreeMap;

use crate::error::TaskError;
use crate::job::TaskKind;
use crate::runner::TaskCtx;

/// Flat metrics of a task (lower-case keys).
pub type Metrics = BTreeMap<String, serde_json::Value>;

/// What a task produced on this party.
pub(crate) struct Outcome {
    /// Its metrics.
    pub(crate) metrics: Metrics,
    /// A dataset that replaces the party's current one for the following tasks.
    pub(crate) data: Option<fedra_data::DatasetSpec>,
}

impl From<Metrics> for Outcome {
    fn from(metrics: Metrics) -> Self {
        Self {
            metrics,
            data: None,
        }
    }
}

/// Runs the task described by `ctx.spec` on this party.
pub(crate) async fn run(ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
    Ok(match &ctx.spec.kind {
        TaskKind::DatasetStats(p) => stats::run(ctx, p).await?.into(),
        TaskKind::Echo(p) => echo::run(ctx, p).await?.into(),
    })
}
