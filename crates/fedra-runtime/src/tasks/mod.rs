//! Task kinds, one module per kind (or per family: `lr` holds `hetero_lr` and
//! `hetero_lr_predict`), each a protocol over the
//! [`Channel`](fedra_federation::Channel) that returns flat metrics.
//!
//! A kind lives in one place: its module holds the parameter type (what the job file
//! says, typed), and implements [`Task`] on it: parsing and validation (errors name
//! `tasks[i].field`), the peers that may drop out, and the run. The registry at the
//! end of this file (`tasks! { ... }`) lists every kind once, and generates
//! [`TaskKind`] (the typed parameters of a task, serialised into the job digest) and
//! its dispatch.
//!
//! To add a kind `foo`:
//! 1. write `tasks/foo.rs`: `//!` doc; `pub struct Foo` (serde `Serialize` +
//!    `Deserialize`, `deny_unknown_fields`, documented fields); `impl Task for Foo`
//!    with `parse` (usually `cx.decode(table)` then range and party checks through
//!    [`params::ParseCtx`]), `run`, and `droppable` if some peers may drop out;
//! 2. in this file, declare the module (`pub mod foo;`) and add one registry line
//!    `/// doc` + `Foo(foo::Foo) = "foo",` to `tasks! { ... }`.

pub mod echo;
pub mod horizontal;
pub mod join;
pub mod lr;
pub(crate) mod params;
pub mod psi;
pub mod secureboost;
pub(crate) mod split;
pub mod splitnn;
pub mod stats;

use std::collections::BTreeMap;
use std::path::Path;

use fedra_federation::PartyId;
use fedra_fs::Mode;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::runner::TaskCtx;
use params::{FieldError, ParseCtx};

/// What a task kind implements on its parameter type.
pub(crate) trait Task: Sized {
    /// Decodes and validates the task's table (every key but `name` and `kind`);
    /// errors name `tasks[i].field` (see [`ParseCtx`]).
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError>;

    /// The parties (among `parties`, the job's) that may drop out of this task
    /// without failing it: their crash, loss or abort is a per-peer dropout
    /// (`Channel::set_droppable`), which the task handles. Default: none.
    fn droppable(&self, parties: &[PartyId]) -> Vec<PartyId> {
        let _ = parties;
        Vec::new()
    }

    /// Runs this party's side of the task.
    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError>;
}

/// The registry: one line per kind, `Variant(module::Params) = "name",`.
macro_rules! tasks {
    ($( $(#[$doc:meta])* $variant:ident($ty:path) = $name:literal, )+) => {
        /// A task's kind and typed parameters. Serialised as `kind = "<name>"` next to
        /// the parameters (part of the job digest the parties compare).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "kind")]
        pub enum TaskKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($ty), )+
        }

        impl TaskKind {
            /// Every kind name as written in job files.
            pub const ALL: &'static [&'static str] = &[$($name),+];

            /// The kind's name as written in job files.
            pub fn name(&self) -> &'static str {
                match self {
                    $( TaskKind::$variant(_) => $name, )+
                }
            }

            /// The parties (among `parties`, the job's) that may drop out of this
            /// task without failing it: their crash, loss or abort is a per-peer
            /// dropout (`Channel::set_droppable`), which the task handles. Today only
            /// the clients of `horizontal` (the server never is); other kinds: none.
            pub fn droppable(&self, parties: &[PartyId]) -> Vec<PartyId> {
                match self {
                    $( TaskKind::$variant(p) => p.droppable(parties), )+
                }
            }

            /// Parses the parameters of a task of kind `kind`; `None` if no kind has
            /// that name.
            pub(crate) fn parse(
                kind: &str,
                cx: &ParseCtx<'_>,
                table: toml::Table,
            ) -> Option<Result<Self, FieldError>> {
                match kind {
                    $( $name => Some(<$ty as Task>::parse(cx, table).map(TaskKind::$variant)), )+
                    _ => None,
                }
            }

            /// Runs this party's side of the task.
            async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
                match self {
                    $( TaskKind::$variant(p) => p.run(ctx).await, )+
                }
            }
        }
    };
}

tasks! {
    /// Joint dataset statistics.
    DatasetStats(stats::DatasetStats) = "dataset_stats",
    /// Round trips of a payload.
    Echo(echo::Echo) = "echo",
    /// Vertical logistic / linear regression.
    HeteroLr(lr::HeteroLr) = "hetero_lr",
    /// Prediction with a saved vertical linear model.
    HeteroLrPredict(lr::HeteroLrPredict) = "hetero_lr_predict",
    /// Horizontal federated learning (server and clients).
    Horizontal(horizontal::Horizontal) = "horizontal",
    /// Private set intersection and alignment.
    Psi(psi::Psi) = "psi",
    /// Vertical gradient-boosted trees (SecureBoost).
    Secureboost(secureboost::SecureBoost) = "secureboost",
    /// Prediction with a saved SecureBoost model (same fields as `hetero_lr_predict`).
    SecureboostPredict(secureboost::SecureboostPredict) = "secureboost_predict",
    /// Split neural network (vertical NN).
    Splitnn(splitnn::Splitnn) = "splitnn",
    /// Streaming join of event streams.
    StreamJoin(join::StreamJoin) = "stream_join",
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

/// Writes a dataset a task produced into this party's output folder (durably,
/// owner-only: `<task>.<suffix>.<csv|parquet>`) and returns the spec that later tasks
/// read it with.
pub(crate) fn write_output(
    ctx: &TaskCtx<'_>,
    suffix: &str,
    data: &fedra_data::Dataset,
    format: OutputFormat,
) -> Result<fedra_data::DatasetSpec, TaskError> {
    let ext = match format {
        OutputFormat::Csv => "csv",
        OutputFormat::Parquet => "parquet",
    };
    let path = ctx
        .party
        .out_dir
        .join(format!("{}.{suffix}.{ext}", ctx.spec.name));
    // `fedra-data` writes to a path: into an owner-only scratch file beside the
    // output first (its writers truncate an existing file and keep its mode), then
    // copied durably into place.
    let scratch = path.with_file_name(format!(".{}.{suffix}.{ext}.partial", ctx.spec.name));
    let out_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TaskError::Output { path, source }
    };
    let _ = std::fs::remove_file(&scratch);
    create_private(&scratch).map_err(out_err(&scratch))?;
    let written = match format {
        OutputFormat::Csv => fedra_data::write_csv(&scratch, data),
        OutputFormat::Parquet => fedra_data::write_parquet(&scratch, data),
    }
    .map_err(TaskError::from)
    .and_then(|()| {
        fedra_fs::write_atomic_with(&path, Mode::Private, |w| {
            std::io::copy(&mut std::fs::File::open(&scratch)?, w).map(drop)
        })
        .map_err(out_err(&path))
    });
    let _ = std::fs::remove_file(&scratch);
    written?;
    let mut spec = fedra_data::DatasetSpec::new(&path)
        .with_id_column(data.id_column())
        .with_categorical(data.categorical_names().iter().cloned());
    if let Some(l) = data.label_name() {
        spec = spec.with_label(l);
    }
    Ok(spec)
}

/// Creates an empty owner-only file (`O_EXCL`: never follows a planted link).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map(drop)
}

/// Writes `<out>/<task>.<suffix>` (a model, predictions, statistics) durably and
/// owner-only ([`fedra_fs::write_atomic`], [`Mode::Private`]).
pub(crate) fn write(
    ctx: &TaskCtx<'_>,
    suffix: &str,
    contents: impl AsRef<[u8]>,
) -> Result<(), TaskError> {
    let path = ctx
        .party
        .out_dir
        .join(format!("{}.{suffix}", ctx.spec.name));
    fedra_fs::write_atomic(&path, contents.as_ref(), Mode::Private)
        .map_err(|source| TaskError::Output { path, source })
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
    ctx.spec.kind.run(ctx).await
}
