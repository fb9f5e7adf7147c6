//! `hetero_lr`: vertical logistic / linear regression (`fedra-linear`) as a job task:
//! held-out split, secure training, federated prediction on both parts, metrics at
//! the guest, each party's model saved to its output folder, and the guest's
//! predictions (`<task>.predictions.csv`: id, train/test part, label, prediction).

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedra_federation::PartyId;
use fedra_linear::{GuestModel, HostModel, LinearError, Mode, Objective};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::params::{FieldError, ParseCtx};
use super::split;
use super::{Metrics, Outcome, Task, predictions_csv, write};
use crate::error::TaskError;
use crate::runner::TaskCtx;

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

impl Task for HeteroLr {
    fn parse(cx: &ParseCtx<'_>, mut table: toml::Table) -> Result<Self, FieldError> {
        let split = cx.take_split(&mut table)?;
        if table.contains_key("task") {
            return Err((
                cx.at("task"),
                "is set by the runtime (the task's name)".into(),
            ));
        }
        table.insert("task".into(), toml::Value::String(cx.name.to_owned()));
        let config: fedra_linear::Config = cx.decode(table)?;
        config.validate().map_err(|e| match e {
            LinearError::Config { field, reason } => (cx.at(field), reason),
            other => (cx.whole(), other.to_string()),
        })?;
        let mut needed: Vec<(&str, &PartyId, bool)> = vec![("guest", &config.guest, true)];
        needed.extend(config.hosts.iter().map(|h| ("hosts", h, true)));
        if let Mode::WithArbiter { arbiter } = &config.mode {
            needed.push(("mode.with_arbiter.arbiter", arbiter, false));
        }
        for (field, party, data) in needed {
            let reason = data.then_some("hetero_lr needs a dataset on the guest and every host");
            cx.check_party(cx.at(field), party, reason)?;
        }
        let stratify = split
            .stratify
            .unwrap_or(config.objective == Objective::Logistic);
        Ok(HeteroLr {
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

impl Task for HeteroLrPredict {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        let p: HeteroLrPredict = cx.decode(table)?;
        if !p.models.contains_key(&p.guest) {
            return Err((
                cx.at("models"),
                format!("has no model file for the guest '{}'", p.guest),
            ));
        }
        for party in p.models.keys() {
            cx.check_party(
                format!("{}.{party}", cx.at("models")),
                party,
                Some("prediction needs data on every party with a model"),
            )?;
        }
        Ok(p)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        predict(ctx, self).await.map(Outcome::from)
    }
}

fn lin_err(e: LinearError) -> TaskError {
    TaskError::from(e)
}

/// Classification or regression metrics of `pred` against `y`, keys prefixed.
fn evaluate(
    objective: Objective,
    y: &[f64],
    pred: &[f64],
    prefix: &str,
    m: &mut Metrics,
) -> Result<(), TaskError> {
    match objective {
        Objective::Logistic => super::binary_metrics(y, pred, prefix, m),
        Objective::Linear => super::regression_metrics(y, pred, prefix, m),
    }
}

fn save(ctx: &TaskCtx<'_>, json: Result<String, LinearError>) -> Result<(), TaskError> {
    write(ctx, "model.json", json.map_err(lin_err)?)
}

async fn run(ctx: &TaskCtx<'_>, p: &HeteroLr) -> Result<Metrics, TaskError> {
    let cfg = &p.config;
    let me = &ctx.party.me;
    let is_guest = *me == cfg.guest;
    let is_host = cfg.hosts.contains(me);
    let is_arbiter = matches!(&cfg.mode, Mode::WithArbiter { arbiter } if arbiter == me);
    // The CSPRNG is created at the edge of the library code and passed in.
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut m = Metrics::new();
    if is_arbiter {
        let losses = fedra_linear::train_arbiter(ctx.ch, cfg, &mut rng)
            .await
            .map_err(lin_err)?;
        m.insert("epochs".into(), losses.len().into());
        return Ok(m);
    }
    if !is_guest && !is_host {
        return Ok(m);
    }
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
    if is_guest {
        let model: GuestModel = fedra_linear::train_guest(ctx.ch, cfg, &train, &mut rng)
            .await
            .map_err(lin_err)?;
        let on_train = fedra_linear::predict_guest(ctx.ch, &pred_train, &model, &train)
            .await
            .map_err(lin_err)?;
        let on_test = fedra_linear::predict_guest(ctx.ch, &pred_test, &model, &test)
            .await
            .map_err(lin_err)?;
        save(ctx, model.to_json())?;
        let mut csv = format!("{},part,label,prediction\n", data.id_column());
        predictions_csv(&train, &on_train, 1, "train", &mut csv);
        predictions_csv(&test, &on_test, 1, "test", &mut csv);
        write(ctx, "predictions.csv", csv)?;
        let label = |d: &fedra_data::Dataset| d.labels().map(<[f64]>::to_vec).unwrap_or_default();
        evaluate(cfg.objective, &label(&train), &on_train, "train_", &mut m)?;
        evaluate(cfg.objective, &label(&test), &on_test, "", &mut m)?;
        m.insert("epochs".into(), model.loss_history.len().into());
        if let Some(l) = model.loss_history.last() {
            m.insert("train_loss".into(), serde_json::json!(l));
        }
        m.insert("rows_train".into(), train.n_rows().into());
        m.insert("rows_test".into(), test.n_rows().into());
    } else {
        let model: HostModel = fedra_linear::train_host(ctx.ch, cfg, &train, &mut rng)
            .await
            .map_err(lin_err)?;
        fedra_linear::predict_host(ctx.ch, &pred_train, &model, &train, &cfg.hosts, &mut rng)
            .await
            .map_err(lin_err)?;
        fedra_linear::predict_host(ctx.ch, &pred_test, &model, &test, &cfg.hosts, &mut rng)
            .await
            .map_err(lin_err)?;
        save(ctx, model.to_json())?;
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
    if *me == p.guest {
        let model = GuestModel::from_json(&text).map_err(lin_err)?;
        let pred = fedra_linear::predict_guest(ctx.ch, task, &model, &data)
            .await
            .map_err(lin_err)?;
        let mut csv = format!("{},prediction\n", data.id_column());
        for (id, y) in data.ids().iter().zip(&pred) {
            csv.push_str(&format!("{id},{y}\n"));
        }
        write(ctx, "predictions.csv", csv)?;
        if let Some(y) = data.labels() {
            evaluate(model.objective, y, &pred, "", &mut m)?;
        }
        m.insert("rows".into(), pred.len().into());
    } else {
        let model = HostModel::from_json(&text).map_err(lin_err)?;
        // Every host of the job (the parties with a model part, but the guest):
        // with several, their scores are masked pairwise.
        let hosts: Vec<_> = p
            .models
            .keys()
            .filter(|k| **k != p.guest)
            .cloned()
            .collect();
        let mut rng = ChaCha20Rng::from_os_rng();
        fedra_linear::predict_host(ctx.ch, task, &model, &data, &hosts, &mut rng)
            .await
            .map_err(lin_err)?;
    }
    Ok(m)
}
