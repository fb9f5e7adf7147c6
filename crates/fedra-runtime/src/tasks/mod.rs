//! Task implementations, one module per kind. Each is a protocol over the
//! [`Channel`](fedra_federation::Channel) that returns flat metrics.

mod echo;
mod horizontal;
mod join;
mod lr;
mod psi;
mod secureboost;
pub(crate) mod split;
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

/// Writes a dataset a task produced into this party's output folder and returns
/// the spec that later tasks read it with.
pub(crate) fn write_output(
    ctx: &TaskCtx<'_>,
    suffix: &str,
    data: &fedra_data::Dataset,
    format: crate::job::OutputFormat,
) -> Result<fedra_data::DatasetSpec, TaskError> {
    use crate::job::OutputFormat;
    let ext = match format {
        OutputFormat::Csv => "csv",
        OutputFormat::Parquet => "parquet",
    };
    let path = ctx
        .party
        .out_dir
        .join(format!("{}.{suffix}.{ext}", ctx.spec.name));
    match format {
        OutputFormat::Csv => fedra_data::write_csv(&path, data)?,
        OutputFormat::Parquet => fedra_data::write_parquet(&path, data)?,
    }
    let mut spec = fedra_data::DatasetSpec::new(&path).with_id_column(data.id_column());
    if let Some(l) = data.label_name() {
        spec = spec.with_label(l);
    }
    Ok(spec)
}

/// Loads a whole dataset on a blocking thread (file parsing must not stall the
/// async workers that carry heartbeats and messages).
pub(crate) async fn load(spec: fedra_data::DatasetSpec) -> Result<fedra_data::Dataset, TaskError> {
    tokio::task::spawn_blocking(move || fedra_data::load(&spec))
        .await
        .map_err(|e| TaskError::Setup(format!("loading worker failed: {e}")))?
        .map_err(TaskError::from)
}

/// The party's current dataset, or an error saying which task needs one.
pub(crate) fn dataset(ctx: &TaskCtx<'_>) -> Result<fedra_data::DatasetSpec, TaskError> {
    ctx.data.clone().ok_or_else(|| {
        TaskError::Setup(format!(
            "task kind {} needs a dataset on party '{}'",
            ctx.spec.kind.name(),
            ctx.party.me
        ))
    })
}

/// Runs the task described by `ctx.spec` on this party.
pub(crate) async fn run(ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
    Ok(match &ctx.spec.kind {
        TaskKind::DatasetStats(p) => stats::run(ctx, p).await?.into(),
        TaskKind::Echo(p) => echo::run(ctx, p).await?.into(),
        TaskKind::StreamJoin(p) => join::run(ctx, p).await?,
        TaskKind::Psi(p) => psi::run(ctx, p).await?,
        TaskKind::HeteroLr(p) => lr::run(ctx, p).await?.into(),
        TaskKind::HeteroLrPredict(p) => lr::predict(ctx, p).await?.into(),
        TaskKind::Secureboost(p) => secureboost::run(ctx, p).await?.into(),
        TaskKind::Horizontal(p) => horizontal::run(ctx, p).await?.into(),
        TaskKind::SecureboostPredict(p) => secureboost::predict(ctx, p).await?.into(),
    })
}
