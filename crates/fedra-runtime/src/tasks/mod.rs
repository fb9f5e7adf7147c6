//! Task implementations, one module per kind. Each is a protocol over the
//! [`Channel`](fedra_federation::Channel) that returns flat metrics.

mod echo;
mod horizontal;
mod join;
mod lr;
mod psi;
mod secureboost;
pub(crate) mod split;
mod splitnn;
mod stats;

use std::collections::BTreeMap;

use crate::error::TaskError;
use crate::job::TaskKind;
use crate::runner::TaskCtx;

/// Flat metrics of a task (lower-case keys).
pub type Metrics = BTreeMap<String, serde_json::Value>;

fn metric_err(e: impl std::fmt::Display) -> TaskError {
    TaskError::Setup(format!("evaluation: {e}"))
}

/// Binary-classification metrics of probabilities `pred` against labels `y` (0/1 or
/// -1/1), keys prefixed: auc, ks, accuracy, precision, recall, f1, log_loss.
pub(crate) fn binary_metrics(
    y: &[f64],
    pred: &[f64],
    prefix: &str,
    m: &mut Metrics,
) -> Result<(), TaskError> {
    if y.is_empty() {
        return Ok(());
    }
    // Labels may be given as -1/1; the metrics want 0/1.
    let y: Vec<f64> = y.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
    let values = [
        ("auc", fedra_metrics::roc_auc(&y, pred)),
        ("ks", fedra_metrics::ks(&y, pred)),
        ("accuracy", fedra_metrics::accuracy(&y, pred, 0.5)),
        ("precision", fedra_metrics::precision(&y, pred, 0.5)),
        ("recall", fedra_metrics::recall(&y, pred, 0.5)),
        ("f1", fedra_metrics::f1(&y, pred, 0.5)),
        ("log_loss", fedra_metrics::log_loss(&y, pred)),
    ];
    for (k, v) in values {
        m.insert(
            format!("{prefix}{k}"),
            serde_json::json!(v.map_err(metric_err)?),
        );
    }
    Ok(())
}

/// Regression metrics (rmse, mae, r2) of `pred` against `y`, keys prefixed.
pub(crate) fn regression_metrics(
    y: &[f64],
    pred: &[f64],
    prefix: &str,
    m: &mut Metrics,
) -> Result<(), TaskError> {
    if y.is_empty() {
        return Ok(());
    }
    let values = [
        ("rmse", fedra_metrics::rmse(y, pred)),
        ("mae", fedra_metrics::mae(y, pred)),
        ("r2", fedra_metrics::r2(y, pred)),
    ];
    for (k, v) in values {
        m.insert(
            format!("{prefix}{k}"),
            serde_json::json!(v.map_err(metric_err)?),
        );
    }
    Ok(())
}

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
    let mut spec = fedra_data::DatasetSpec::new(&path)
        .with_id_column(data.id_column())
        .with_categorical(data.categorical_names().iter().cloned());
    if let Some(l) = data.label_name() {
        spec = spec.with_label(l);
    }
    Ok(spec)
}

/// Loads a whole dataset on a blocking thread (file parsing must not stall the
/// async workers that carry heartbeats and messages).
/// Writes `<out>/<task>.<suffix>`.
pub(crate) fn write(ctx: &TaskCtx<'_>, suffix: &str, text: String) -> Result<(), TaskError> {
    let path = ctx
        .party
        .out_dir
        .join(format!("{}.{suffix}", ctx.spec.name));
    std::fs::write(&path, text).map_err(|source| TaskError::Output { path, source })
}

/// Appends `id,part,label,prediction` rows (`k` outputs per row, `;`-separated).
pub(crate) fn predictions_csv(
    data: &fedra_data::Dataset,
    pred: &[f64],
    k: usize,
    part: &str,
    out: &mut String,
) {
    for (i, id) in data.ids().iter().enumerate() {
        let y = data
            .labels()
            .and_then(|l| l.get(i))
            .copied()
            .unwrap_or(f64::NAN);
        let p: Vec<String> = pred[i * k..(i + 1) * k]
            .iter()
            .map(f64::to_string)
            .collect();
        out.push_str(&format!("{id},{part},{y},{}\n", p.join(";")));
    }
}

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
        TaskKind::Splitnn(p) => splitnn::run(ctx, p).await?.into(),
    })
}
