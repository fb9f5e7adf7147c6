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

/// Runs the task described by `ctx.spec` on this party.
pub(crate) async fn run(ctx: &TaskCtx<'_>) -> Result<Metrics, TaskError> {
    match &ctx.spec.kind {
        TaskKind::DatasetStats(p) => stats::run(ctx, p).await,
        TaskKind::Echo(p) => echo::run(ctx, p).await,
    }
}
