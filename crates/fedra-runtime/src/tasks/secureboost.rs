//! `secureboost`: vertical gradient-boosted trees (`fedra-tree`) as a job task:
//! held-out split, secure training (progress per tree), private federated
//! prediction on both parts (each party walks its own splits, the guest learns
//! only the scores), metrics at the guest, each party's model saved to its
//! output folder, and the guest's held-out predictions written as CSV.

use std::time::Instant;

use fedra_data::Dataset;
use fedra_tree::{GuestModel, HostCounters, HostModel, Objective, PredictStats, TreeError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use serde::{Deserialize, Serialize};

use super::lr::HeteroLrPredict;
use super::params::{FieldError, ParseCtx};
use super::split;
use super::{Metrics, Outcome, Task, predictions_csv, write};
use crate::error::TaskError;
use crate::runner::TaskCtx;

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

impl Task for SecureBoost {
    fn parse(cx: &ParseCtx<'_>, mut table: toml::Table) -> Result<Self, FieldError> {
        let split = cx.take_split(&mut table)?;
        let config: fedra_tree::Config = cx.decode(table)?;
        config.validate().map_err(|e| match e {
            TreeError::Config { field, reason } => (cx.at(field), reason),
            other => (cx.whole(), other.to_string()),
        })?;
        if config.scheme == fedra_tree::Scheme::InsecurePlaintext && !cx.runtime.allow_insecure {
            return Err((
                cx.at("scheme"),
                "\"insecure_plaintext\" sends every gradient and leaf weight in the clear; \
                 set allow_insecure = true in [runtime] to run it anyway"
                    .into(),
            ));
        }
        for (field, party) in std::iter::once(("guest", &config.guest))
            .chain(config.hosts.iter().map(|h| ("hosts", h)))
        {
            cx.check_party(
                cx.at(field),
                party,
                Some("secureboost needs a dataset on the guest and every host"),
            )?;
        }
        let stratify = split
            .stratify
            .unwrap_or(config.objective != Objective::Regression);
        Ok(SecureBoost {
            holdout: split.holdout,
            split_seed: split.split_seed,
            stratify,
            config,
        })
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await.map(Outcome::from)
    }
}

/// Parameters of the `secureboost_predict` task: federated prediction with a model
/// saved by an earlier `secureboost` task; the same fields (and checks) as
/// `hetero_lr_predict` ([`HeteroLrPredict`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecureboostPredict(pub HeteroLrPredict);

impl Task for SecureboostPredict {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        HeteroLrPredict::parse(cx, table).map(SecureboostPredict)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        predict(ctx, &self.0).await.map(Outcome::from)
    }
}

fn tree_err(e: TreeError) -> TaskError {
    TaskError::from(e)
}

/// Metrics of predictions `pred` against labels `y`, keys prefixed.
fn evaluate(
    objective: Objective,
    y: &[f64],
    pred: &[f64],
    prefix: &str,
    m: &mut Metrics,
) -> Result<(), TaskError> {
    if y.is_empty() {
        return Ok(());
    }
    match objective {
        Objective::Binary => super::binary_metrics(y, pred, prefix, m),
        Objective::Regression => super::regression_metrics(y, pred, prefix, m),
        Objective::MultiClass { classes } => {
            // Row-major class probabilities: accuracy and multi-class log loss.
            let k = classes as usize;
            let (mut hits, mut loss) = (0usize, 0.0);
            for (yi, p) in y.iter().zip(pred.chunks(k)) {
                let arg = p
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(j, _)| j);
                hits += usize::from(arg as f64 == *yi);
                loss -= p
                    .get(*yi as usize)
                    .copied()
                    .unwrap_or(0.0)
                    .clamp(1e-15, 1.0)
                    .ln();
            }
            m.insert(
                format!("{prefix}accuracy"),
                serde_json::json!(hits as f64 / y.len() as f64),
            );
            m.insert(
                format!("{prefix}log_loss"),
                serde_json::json!(loss / y.len() as f64),
            );
            Ok(())
        }
    }
}

/// Prediction cost metrics, keys prefixed (`predict_s`, `predict_encryptions`, ...).
fn predict_metrics(prefix: &str, seconds: f64, st: &PredictStats, m: &mut Metrics) {
    m.insert(format!("{prefix}s"), serde_json::json!(seconds));
    m.insert(format!("{prefix}encryptions"), st.encryptions.into());
    m.insert(format!("{prefix}decryptions"), st.decryptions.into());
    m.insert(format!("{prefix}bytes_sent"), st.bytes_sent.into());
    m.insert(format!("{prefix}bytes_received"), st.bytes_received.into());
}

/// A host's prediction counters (the last host adds and re-randomises).
fn host_predict_metrics(c: &HostCounters, m: &mut Metrics) {
    m.insert("predict_host_additions".into(), c.additions.into());
    m.insert("predict_host_rerandomized".into(), c.rerandomized.into());
}

async fn run(ctx: &TaskCtx<'_>, p: &SecureBoost) -> Result<Metrics, TaskError> {
    let cfg = &p.config;
    let me = &ctx.party.me;
    let is_guest = *me == cfg.guest;
    if !is_guest && !cfg.hosts.contains(me) {
        return Ok(Metrics::new());
    }
    // The CSPRNG is created at the edge of the library code and passed in.
    let mut rng = ChaCha20Rng::from_os_rng();
    let spec = super::dataset(ctx)?;
    let data = super::load(spec).await?;
    let parts = split::agree(
        ctx,
        &cfg.guest,
        &cfg.hosts,
        &data,
        p.holdout,
        p.split_seed,
        p.stratify,
    )
    .await?;
    let train = data.select_rows(&parts.train)?;
    let test = data.select_rows(&parts.test)?;
    let task = &ctx.spec.name;
    let (pred_train, pred_test) = (
        format!("{task}.predict-train"),
        format!("{task}.predict-test"),
    );
    let mut m = Metrics::new();
    let insecure = cfg.scheme == fedra_tree::Scheme::InsecurePlaintext;
    if insecure {
        tracing::warn!(
            task = %task,
            "INSECURE: scheme = \"insecure_plaintext\": gradients and leaf weights cross \
             between the parties in the clear (allowed by [runtime] allow_insecure)"
        );
    }
    let started = Instant::now();
    if is_guest {
        let total = u64::from(cfg.trees);
        ctx.progress(0, total);
        let model: GuestModel =
            fedra_tree::train_guest(ctx.ch, task, cfg, &train, &mut rng, |t, _| {
                ctx.progress(u64::from(t) + 1, total)
            })
            .await
            .map_err(tree_err)?;
        let train_s = started.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (on_train, st) =
            fedra_tree::predict_guest(ctx.ch, &pred_train, &model, &train, &mut rng)
                .await
                .map_err(tree_err)?;
        predict_metrics("predict_train_", t0.elapsed().as_secs_f64(), &st, &mut m);
        let t0 = Instant::now();
        let (on_test, st) = fedra_tree::predict_guest(ctx.ch, &pred_test, &model, &test, &mut rng)
            .await
            .map_err(tree_err)?;
        predict_metrics("predict_", t0.elapsed().as_secs_f64(), &st, &mut m);
        write(ctx, "model.json", model.to_json().map_err(tree_err)?)?;
        let k = cfg.objective.outputs();
        let mut csv = format!("{},part,label,prediction\n", data.id_column());
        predictions_csv(&train, &on_train, k, "train", &mut csv);
        predictions_csv(&test, &on_test, k, "test", &mut csv);
        write(ctx, "predictions.csv", csv)?;
        let label = |d: &Dataset| d.labels().map(<[f64]>::to_vec).unwrap_or_default();
        evaluate(cfg.objective, &label(&train), &on_train, "train_", &mut m)?;
        evaluate(cfg.objective, &label(&test), &on_test, "", &mut m)?;
        let rounds = &model.rounds;
        m.insert("trees".into(), model.trees.len().into());
        m.insert("rounds_run".into(), rounds.len().into());
        m.insert("training_s".into(), serde_json::json!(train_s));
        m.insert(
            "encryptions".into(),
            rounds.iter().map(|r| r.encryptions).sum::<u64>().into(),
        );
        m.insert(
            "decryptions".into(),
            rounds.iter().map(|r| r.decryptions).sum::<u64>().into(),
        );
        m.insert(
            "host_splits".into(),
            rounds
                .iter()
                .map(|r| u64::from(r.host_splits))
                .sum::<u64>()
                .into(),
        );
        m.insert(
            "guest_splits".into(),
            rounds
                .iter()
                .map(|r| u64::from(r.guest_splits))
                .sum::<u64>()
                .into(),
        );
        if let Some(r) = rounds.last() {
            m.insert("train_loss".into(), serde_json::json!(r.train_loss));
        }
        m.insert("rows_train".into(), train.n_rows().into());
        m.insert("rows_test".into(), test.n_rows().into());
    } else {
        let (model, counters): (HostModel, _) =
            fedra_tree::train_host(ctx.ch, task, cfg, &train, &mut rng)
                .await
                .map_err(tree_err)?;
        m.insert(
            "training_s".into(),
            serde_json::json!(started.elapsed().as_secs_f64()),
        );
        m.insert("ciphertext_additions".into(), counters.additions.into());
        m.insert("rerandomized".into(), counters.rerandomized.into());
        fedra_tree::predict_host(ctx.ch, &pred_train, &model, &train, &mut rng)
            .await
            .map_err(tree_err)?;
        let c = fedra_tree::predict_host(ctx.ch, &pred_test, &model, &test, &mut rng)
            .await
            .map_err(tree_err)?;
        host_predict_metrics(&c, &mut m);
        write(ctx, "model.json", model.to_json().map_err(tree_err)?)?;
    }
    m.insert("scheme".into(), serde_json::json!(cfg.scheme));
    if insecure {
        // Nothing was encrypted: no "encryptions" to count.
        m.retain(|k, _| !k.contains("encryptions") && !k.contains("decryptions"));
        m.insert("insecure".into(), true.into());
    }
    Ok(m)
}

/// Federated prediction with saved model parts; the guest writes `<task>.predictions.csv`.
async fn predict(ctx: &TaskCtx<'_>, p: &HeteroLrPredict) -> Result<Metrics, TaskError> {
    let me = &ctx.party.me;
    let Some(path) = p.models.get(me) else {
        return Ok(Metrics::new());
    };
    let path = &ctx.party.job.local_path(path);
    let text = std::fs::read_to_string(path).map_err(|source| TaskError::Output {
        path: path.clone(),
        source,
    })?;
    let spec = super::dataset(ctx)?;
    let data = super::load(spec).await?;
    let task = &ctx.spec.name;
    let mut m = Metrics::new();
    // The CSPRNG is created at the edge of the library code and passed in.
    let mut rng = ChaCha20Rng::from_os_rng();
    if *me == p.guest {
        let model = GuestModel::from_json(&text).map_err(tree_err)?;
        let t0 = Instant::now();
        let (pred, st) = fedra_tree::predict_guest(ctx.ch, task, &model, &data, &mut rng)
            .await
            .map_err(tree_err)?;
        predict_metrics("predict_", t0.elapsed().as_secs_f64(), &st, &mut m);
        let k = model.objective.outputs();
        let mut csv = format!("{},part,label,prediction\n", data.id_column());
        predictions_csv(&data, &pred, k, "all", &mut csv);
        write(ctx, "predictions.csv", csv)?;
        if let Some(y) = data.labels() {
            evaluate(model.objective, y, &pred, "", &mut m)?;
        }
        m.insert("rows".into(), data.n_rows().into());
    } else {
        let model = HostModel::from_json(&text).map_err(tree_err)?;
        let c = fedra_tree::predict_host(ctx.ch, task, &model, &data, &mut rng)
            .await
            .map_err(tree_err)?;
        host_predict_metrics(&c, &mut m);
    }
    Ok(m)
}
