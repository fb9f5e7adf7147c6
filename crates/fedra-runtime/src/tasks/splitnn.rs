//! `splitnn`: split neural network (vertical NN, `fedra-splitnn`) as a job task.
//!
//! The leader (label holder) draws the held-out split and shares it ([`super::split`]);
//! every party with a tower turns its rows into [`Features`] (numeric features as dense
//! inputs; the tower's `sparse.fields` categorical columns hashed into its embedding
//! tables, a missing category as an empty bag); the protocol trains (evaluations every
//! `eval_every` steps are logged and reported as progress); then the leader predicts
//! the training and held-out rows with the followers' help and computes the metrics
//! (`auc`, `log_loss`, `calibration` = mean prediction / positive rate, and the same
//! with `train_`), written with the traffic and speed figures to report.json. Each
//! party saves its own model part (`<task>.model.json`). `bytes_per_example` is the
//! socket traffic of the training phase (evaluations of the held-out rows included)
//! over the examples trained in this run. A follower's metrics (its
//! traffic, speed, table memory, resume step) are prefixed with its name (`host_...`).
//!
//! **Checkpoints and resume.** With `checkpoint_every = c`, every party saves its state
//! after the same steps into its output folder (`<task>.ckpt-<fingerprint>-<step>.json`,
//! written durably and owner-only with `fedra_fs`); the library's two-phase protocol commits a checkpoint once every
//! party has saved it, and only then are older ones deleted. A re-run of the job with the
//! same output folders first agrees on the resume step: each follower tells the leader
//! which steps it has, the leader picks the last step every party has (0 = none) and
//! tells them; all load that state and continue with the next step of the same batch
//! order. The fingerprint covers what a checkpoint must match (this party's tower, batch
//! size, shuffle seed, training rows), so a changed model never loads an old state.
//!
//! Randomness: initial weights from the job's public `init_seed` (mixed with the
//! party's name), batch order from the public `shuffle_seed`; the gradient-protection
//! noise from a ChaCha20 CSPRNG seeded by the OS, created here and passed in.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use fedra_data::Dataset;
use fedra_federation::{FedError, PartyId};
use fedra_splitnn::{
    BottomTower, CheckpointSink, EvalPoint, Features, LeaderModel, Objective, PartyData,
    PartyState, SplitConfig, SplitError, TopTower, TowerDecl, decl::party_seed,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;
use serde_json::json;

use super::params::{FieldError, ParseCtx};
use super::{Metrics, Outcome, Task, split};
use crate::error::TaskError;
use crate::runner::TaskCtx;

/// Parameters of the `splitnn` task: split neural network (vertical NN, `fedra-splitnn`)
/// between the leader (label holder) and one or more followers on the parties' aligned
/// rows, evaluated on a held-out split drawn by the leader; checkpoints on every party
/// at the same step (a re-run with the same output folder resumes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Splitnn {
    /// Fraction of rows held out for evaluation (0–0.9; 0 evaluates on training rows only).
    pub holdout: f64,
    /// Seed of the held-out split.
    pub split_seed: u64,
    /// Keep each label's share in both parts (classification).
    pub stratify: bool,
    /// Towers, top model, schedule and protection (every other key of the task table;
    /// see `fedra_splitnn::decl`).
    #[serde(flatten)]
    pub decl: fedra_splitnn::SplitDecl,
}

impl Task for Splitnn {
    fn parse(cx: &ParseCtx<'_>, mut table: toml::Table) -> Result<Self, FieldError> {
        let split = cx.take_split(&mut table)?;
        let decl: fedra_splitnn::SplitDecl = cx.decode(table)?;
        decl.validate().map_err(|e| match e {
            SplitError::Field { field, reason } => (cx.at(&field), reason),
            SplitError::Config { field, reason } => (cx.at(field), reason),
            other => (cx.whole(), other.to_string()),
        })?;
        let leader = PartyId::new(&decl.leader).map_err(|e| (cx.at("leader"), e.to_string()))?;
        cx.check_party(
            cx.at("leader"),
            &leader,
            Some("splitnn needs a dataset with the labels on the leader"),
        )?;
        for p in decl.towers.keys() {
            let field = cx.at(&format!("towers.{p}"));
            let id = PartyId::new(p).map_err(|e| (field.clone(), e.to_string()))?;
            cx.check_party(
                field,
                &id,
                Some("splitnn needs a dataset on every party with a tower"),
            )?;
        }
        let stratify = split
            .stratify
            .unwrap_or(decl.top.objective != Objective::Regression);
        Ok(Splitnn {
            holdout: split.holdout,
            split_seed: split.split_seed,
            stratify,
            decl,
        })
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await.map(Outcome::from)
    }
}

fn snn_err(e: SplitError) -> TaskError {
    TaskError::from(e)
}

fn setup(msg: String) -> TaskError {
    TaskError::Setup(msg)
}

/// This party's rows as the tower's input.
fn features(d: &Dataset, party: &str, tower: Option<&TowerDecl>) -> Result<Features, TaskError> {
    let rows = d.n_rows();
    let tf = tower.map(|t| t.dense_transform).unwrap_or_default();
    let dense: Vec<f32> = d.features().iter().map(|&v| tf.apply(v as f32)).collect();
    let width = d.n_features();
    let Some(sparse) = tower.and_then(|t| t.sparse.as_ref()) else {
        return Features::dense(rows, width, dense).map_err(snn_err);
    };
    let mut cols = Vec::with_capacity(sparse.fields.len());
    for f in &sparse.fields {
        let c = d
            .categorical_names()
            .iter()
            .position(|n| n == f)
            .ok_or_else(|| {
                setup(format!(
                    "towers.{party}.sparse.fields: column {f:?} is not a categorical column of \
                     this party's data (declare it with `categorical = [...]` in the data spec; \
                     categorical columns: {})",
                    d.categorical_names().join(", ")
                ))
            })?;
        cols.push(c);
    }
    let mut offsets = Vec::with_capacity(rows * cols.len() + 1);
    let mut ids = Vec::with_capacity(rows * cols.len());
    offsets.push(0);
    for r in 0..rows {
        let row = d.categorical_row(r);
        for &c in &cols {
            // A missing category is an empty bag (embeds as zeros).
            if let Some(v) = row.get(c).filter(|v| !v.is_empty()) {
                ids.push(fedra_splitnn::hash_str(v));
            }
            offsets.push(ids.len());
        }
    }
    Features::with_bags(rows, width, dense, cols.len(), offsets, ids).map_err(snn_err)
}

/// Checkpoint files of this party in its output folder.
struct FileSink {
    dir: PathBuf,
    prefix: String,
}

impl FileSink {
    fn path(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{}{step}.json", self.prefix))
    }

    /// The steps of the checkpoints present (any fingerprint but ours is ignored).
    fn steps(&self) -> Vec<u64> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some(step) = name
                    .strip_prefix(&self.prefix)
                    .and_then(|r| r.strip_suffix(".json"))
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    out.push(step);
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn load(&self, step: u64) -> Result<PartyState, TaskError> {
        let path = self.path(step);
        let text = std::fs::read(&path).map_err(|source| TaskError::Output {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| {
            setup(format!(
                "{}: not a readable checkpoint ({e}); delete it to start afresh",
                path.display()
            ))
        })
    }
}

fn io_split(path: &Path, e: std::io::Error) -> SplitError {
    SplitError::Data(format!("checkpoint {}: {e}", path.display()))
}

impl CheckpointSink for FileSink {
    fn save(&mut self, step: u64, state: PartyState) -> fedra_splitnn::Result<()> {
        let path = self.path(step);
        let text = serde_json::to_vec(&state)
            .map_err(|e| SplitError::Data(format!("encoding the checkpoint: {e}")))?;
        // Durable when this returns, so `commit` may delete the older ones.
        fedra_fs::write_atomic(&path, &text, fedra_fs::Mode::Private)
            .map_err(|e| io_split(&path, e))
    }

    fn commit(&mut self, step: u64) -> fedra_splitnn::Result<()> {
        // Every party has saved `step`: older checkpoints are no longer needed.
        for s in self.steps().into_iter().filter(|s| *s < step) {
            let p = self.path(s);
            std::fs::remove_file(&p).map_err(|e| io_split(&p, e))?;
        }
        tracing::debug!(step, "checkpoint committed");
        Ok(())
    }
}

/// What a checkpoint must match: this party's model spec and the schedule that
/// fixes the batch order.
fn fingerprint(spec_json: &str, cfg: &SplitConfig, train_rows: usize) -> u64 {
    let text = format!(
        "{spec_json}|{}|{}|{train_rows}",
        cfg.batch_size, cfg.shuffle_seed
    );
    fedra_splitnn::hash_str(&text)
}

/// Agrees on the step to resume from: the last one every party has (0 = fresh).
async fn agree_resume(
    ctx: &TaskCtx<'_>,
    cfg: &SplitConfig,
    mine: &[u64],
    total: u64,
) -> Result<u64, TaskError> {
    let mine: Vec<u64> = mine.iter().copied().filter(|s| *s < total).collect();
    let offer = ctx.tag(0, "resume-offer");
    let pick = ctx.tag(0, "resume-pick");
    let me = &ctx.party.me;
    let bad = |p: &PartyId, tag: &fedra_federation::Tag, detail: String| FedError::Decode {
        party: p.to_string(),
        tag: tag.to_string(),
        detail,
    };
    if *me == cfg.leader {
        let mut common: Vec<u64> = mine;
        for f in &cfg.followers {
            let b = ctx.ch.recv(&f.party, &offer).await?;
            if b.len() % 8 != 0 || b.len() > 8 * 4096 {
                return Err(bad(&f.party, &offer, format!("{} bytes", b.len())).into());
            }
            let theirs: Vec<u64> = b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect();
            common.retain(|s| theirs.contains(s));
        }
        let step = common.into_iter().max().unwrap_or(0);
        let parties: Vec<PartyId> = cfg.followers.iter().map(|f| f.party.clone()).collect();
        fedra_federation::broadcast(
            ctx.ch,
            &parties,
            &pick,
            Bytes::copy_from_slice(&step.to_le_bytes()),
        )
        .await?;
        Ok(step)
    } else {
        let mut msg = Vec::with_capacity(mine.len() * 8);
        for s in mine.iter().rev().take(4096) {
            msg.extend_from_slice(&s.to_le_bytes());
        }
        ctx.ch.send(&cfg.leader, &offer, Bytes::from(msg)).await?;
        let b = ctx.ch.recv(&cfg.leader, &pick).await?;
        let step = <[u8; 8]>::try_from(b.as_ref())
            .map(u64::from_le_bytes)
            .map_err(|_| bad(&cfg.leader, &pick, format!("{} bytes", b.len())))?;
        if step != 0 && !mine.contains(&step) {
            return Err(bad(
                &cfg.leader,
                &pick,
                format!("resume step {step} is not one this party offered"),
            )
            .into());
        }
        Ok(step)
    }
}

/// The training rows in the order the batch order permutes: sorted by the leader's
/// ids, so that a run does not depend on the order in which PSI delivered the aligned
/// rows. The leader sends the positions (row positions are shared identities of
/// aligned data); a follower checks that they are exactly its training rows.
async fn train_order(
    ctx: &TaskCtx<'_>,
    cfg: &SplitConfig,
    followers: &[PartyId],
    data: &Dataset,
    train: &[usize],
) -> Result<Vec<usize>, TaskError> {
    let tag = ctx.tag(0, "row-order");
    if ctx.party.me == cfg.leader {
        let ids = data.ids();
        let mut order = train.to_vec();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]).then(a.cmp(&b)));
        let mut msg = Vec::with_capacity(order.len() * 8);
        for &i in &order {
            msg.extend_from_slice(&(i as u64).to_le_bytes());
        }
        fedra_federation::broadcast(ctx.ch, followers, &tag, Bytes::from(msg)).await?;
        Ok(order)
    } else {
        let b = ctx.ch.recv(&cfg.leader, &tag).await?;
        let bad = |detail: String| FedError::Decode {
            party: cfg.leader.to_string(),
            tag: tag.to_string(),
            detail,
        };
        if b.len() != train.len() * 8 {
            return Err(bad(format!(
                "{} bytes of row order for {} training rows",
                b.len(),
                train.len()
            ))
            .into());
        }
        let mut is_train = vec![false; data.n_rows()];
        for &i in train {
            is_train[i] = true;
        }
        let mut order = Vec::with_capacity(train.len());
        for c in b.chunks_exact(8) {
            let v = u64::from_le_bytes(c.try_into().unwrap_or([0xff; 8]));
            let i = usize::try_from(v).unwrap_or(usize::MAX);
            // Each training row exactly once.
            match is_train.get_mut(i) {
                Some(t) if *t => *t = false,
                _ => return Err(bad(format!("row {v} is not a training row, or repeated")).into()),
            }
            order.push(i);
        }
        Ok(order)
    }
}

/// Examples trained by steps `from..to` of the schedule (the last batch of an epoch
/// may be short).
fn examples(cfg: &SplitConfig, rows: usize, from: u64, to: u64) -> u64 {
    let spe = cfg.steps_per_epoch(rows) as u64;
    (from..to)
        .map(|t| {
            let pos = (t % spe) as usize * cfg.batch_size;
            cfg.batch_size.min(rows - pos) as u64
        })
        .sum()
}

/// Wire and payload bytes sent and received so far, over all peers.
fn traffic(ctx: &TaskCtx<'_>) -> (u64, u64) {
    ctx.ch.stats().iter().fold((0, 0), |(s, r), p| {
        (
            s + p.wire_bytes_sent.max(p.payload_bytes_sent),
            r + p.wire_bytes_received.max(p.payload_bytes_received),
        )
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The leader's metrics of predictions `pred` against labels `y`, keys prefixed.
fn evaluate(
    objective: Objective,
    y: &[f64],
    pred: &[f32],
    prefix: &str,
    m: &mut Metrics,
) -> Result<(), TaskError> {
    if y.is_empty() {
        return Ok(());
    }
    match objective {
        Objective::Binary => {
            let p: Vec<f64> = pred.iter().map(|v| f64::from(*v)).collect();
            super::binary_metrics(y, &p, prefix, m)?;
            let rate = mean(y);
            if rate > 0.0 {
                m.insert(format!("{prefix}calibration"), json!(mean(&p) / rate));
            }
        }
        Objective::Regression => {
            let p: Vec<f64> = pred.iter().map(|v| f64::from(*v)).collect();
            super::regression_metrics(y, &p, prefix, m)?;
        }
        Objective::Multiclass { classes } => {
            let mut right = 0usize;
            let mut loss = 0f64;
            for (row, &label) in pred.chunks_exact(classes).zip(y) {
                let best = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                right += usize::from(best.0 as f64 == label);
                let p = row.get(label as usize).copied().unwrap_or(0.0);
                loss -= f64::from(p.max(1e-15)).ln();
            }
            m.insert(
                format!("{prefix}accuracy"),
                json!(right as f64 / y.len() as f64),
            );
            m.insert(format!("{prefix}log_loss"), json!(loss / y.len() as f64));
        }
    }
    Ok(())
}

fn history_json(h: &[EvalPoint]) -> serde_json::Value {
    json!(
        h.iter()
            .map(|p| json!({
                "step": p.step,
                "auc": p.val_auc,
                "val_loss": p.val_loss,
                "train_loss": p.train_loss,
            }))
            .collect::<Vec<_>>()
    )
}

async fn run(ctx: &TaskCtx<'_>, p: &Splitnn) -> Result<Metrics, TaskError> {
    let decl = &p.decl;
    let me = ctx.party.me.clone();
    let task = ctx.spec.name.clone();
    let is_leader = me.as_str() == decl.leader;
    let tower = decl.towers.get(me.as_str());
    let mut m = Metrics::new();
    if !is_leader && tower.is_none() {
        return Ok(m);
    }
    let mut cfg = decl.to_config(&task).map_err(snn_err)?;
    let followers: Vec<PartyId> = cfg.followers.iter().map(|f| f.party.clone()).collect();
    let data = super::load(super::dataset(ctx)?).await?;
    let parts = split::agree(
        ctx,
        &cfg.leader,
        &followers,
        &data,
        p.holdout,
        p.split_seed,
        p.stratify,
    )
    .await?;
    let order = train_order(ctx, &cfg, &followers, &data, &parts.train).await?;
    let train = data.select_rows(&order)?;
    let test = data.select_rows(&parts.test)?;
    let ft = features(&train, me.as_str(), tower)?;
    let fv = features(&test, me.as_str(), tower)?;
    let valid = (fv.rows() > 0).then_some(&fv);
    let n = ft.rows();
    if n == 0 {
        return Err(setup("no training rows (holdout leaves none)".into()));
    }
    let total = (cfg.steps_per_epoch(n) * cfg.epochs) as u64;

    // Fresh models from the public init seed.
    let mut init = ChaCha20Rng::seed_from_u64(party_seed(decl.init_seed, me.as_str()));
    let at = format!("towers.{me}");
    let bottom = match tower {
        Some(t) => Some(
            BottomTower::new(
                t.to_bottom_spec(&at, ft.dense_width()).map_err(snn_err)?,
                &mut init,
            )
            .map_err(snn_err)?,
        ),
        None => None,
    };
    let top = if is_leader {
        Some(
            TopTower::new(
                decl.top.to_top_spec("top").map_err(snn_err)?,
                decl.top_inputs(),
                &mut init,
            )
            .map_err(snn_err)?,
        )
    } else {
        None
    };
    let spec_json = serde_json::to_string(&(
        bottom.as_ref().map(BottomTower::spec),
        top.as_ref().map(TopTower::spec),
    ))
    .map_err(|e| setup(e.to_string()))?;
    let mut sink = FileSink {
        dir: ctx.party.out_dir.clone(),
        prefix: format!("{task}.ckpt-{:016x}-", fingerprint(&spec_json, &cfg, n)),
    };
    let resumed = agree_resume(ctx, &cfg, &sink.steps(), total).await?;
    cfg.resume_from = resumed;
    let (mut bottom, mut top) = (bottom, top);
    if resumed > 0 {
        tracing::info!(task = %task, step = resumed, "resuming from the checkpoint");
        match sink.load(resumed)? {
            PartyState::Leader { bottom: b, top: t } if is_leader => {
                bottom = b
                    .map(BottomTower::from_state)
                    .transpose()
                    .map_err(snn_err)?;
                top = Some(TopTower::from_state(t).map_err(snn_err)?);
            }
            PartyState::Follower(b) if !is_leader => {
                bottom = Some(BottomTower::from_state(b).map_err(snn_err)?);
            }
            _ => return Err(setup("the checkpoint is of another role".into())),
        }
    }
    m.insert("resumed_from_step".into(), resumed.into());
    let use_sink = cfg.checkpoint_every > 0;
    let (sent0, recv0) = traffic(ctx);
    let t0 = Instant::now();
    ctx.progress(resumed, total);
    let mut rng = ChaCha20Rng::from_os_rng();
    let data_part = PartyData { train: &ft, valid };

    let model_json;
    let report;
    if is_leader {
        let Some(top) = top else {
            return Err(setup("the leader has no top model".into()));
        };
        let y_all = |d: &Dataset| -> Result<Vec<f64>, TaskError> {
            d.labels().map(<[f64]>::to_vec).ok_or_else(|| {
                setup(format!(
                    "party '{me}' leads task '{task}' but its data has no label column"
                ))
            })
        };
        let (yt, yv) = (y_all(&train)?, y_all(&test)?);
        let (yt32, yv32): (Vec<f32>, Vec<f32>) = (
            yt.iter().map(|v| *v as f32).collect(),
            yv.iter().map(|v| *v as f32).collect(),
        );
        let mut model = LeaderModel { bottom, top };
        let observe = |pt: &EvalPoint| {
            ctx.progress(pt.step, total);
            tracing::info!(
                task = %ctx.spec.name,
                step = pt.step,
                of = total,
                train_loss = pt.train_loss,
                val_loss = ?pt.val_loss,
                auc = ?pt.val_auc,
                "evaluation"
            );
        };
        let r = fedra_splitnn::train_leader_observed(
            ctx.ch,
            &cfg,
            &mut model,
            data_part,
            fedra_splitnn::Labels {
                train: &yt32,
                valid: valid.map(|_| yv32.as_slice()),
            },
            &mut rng,
            if use_sink { Some(&mut sink) } else { None },
            Some(&observe),
        )
        .await
        .map_err(snn_err)?;
        let train_s = t0.elapsed().as_secs_f64();
        let (sent1, recv1) = traffic(ctx);
        // Predictions on both parts, with the followers' cut outputs.
        let mut pcfg = cfg.clone();
        pcfg.task = format!("{task}.predict-train");
        let on_train = fedra_splitnn::predict_leader(ctx.ch, &pcfg, &model, &ft)
            .await
            .map_err(snn_err)?;
        evaluate(decl.top.objective, &yt, &on_train, "train_", &mut m)?;
        if let Some(v) = valid {
            pcfg.task = format!("{task}.predict-test");
            let on_test = fedra_splitnn::predict_leader(ctx.ch, &pcfg, &model, v)
                .await
                .map_err(snn_err)?;
            evaluate(decl.top.objective, &yv, &on_test, "", &mut m)?;
        }
        if decl.leak_meter && decl.top.objective == Objective::Binary {
            let leak: Vec<serde_json::Value> = r.leak_auc.iter().map(|v| json!(v)).collect();
            if leak.len() == 1 {
                m.insert("leak_auc".into(), leak[0].clone());
            } else {
                m.insert("leak_auc".into(), json!(leak));
            }
        }
        if let Some(e) = r.epsilon {
            m.insert("epsilon".into(), json!(e));
        }
        m.insert("auc_by_step".into(), history_json(&r.history));
        m.insert("rows_train".into(), n.into());
        m.insert("rows_test".into(), fv.rows().into());
        speed(
            &mut m,
            &cfg,
            n,
            resumed,
            r.steps,
            train_s,
            sent1 - sent0,
            recv1 - recv0,
        );
        if let Some(b) = &model.bottom {
            memory(&mut m, b);
        }
        model_json = serde_json::to_string(&PartyState::Leader {
            bottom: model.bottom.as_ref().map(BottomTower::to_state),
            top: model.top.to_state(),
        });
        report = r;
    } else {
        let Some(mut b) = bottom else {
            return Err(setup(format!("party '{me}' has no tower in task '{task}'")));
        };
        let r = fedra_splitnn::train_follower(
            ctx.ch,
            &cfg,
            &mut b,
            data_part,
            if use_sink { Some(&mut sink) } else { None },
        )
        .await
        .map_err(snn_err)?;
        let train_s = t0.elapsed().as_secs_f64();
        let (sent1, recv1) = traffic(ctx);
        let mut pcfg = cfg.clone();
        pcfg.task = format!("{task}.predict-train");
        fedra_splitnn::predict_follower(ctx.ch, &pcfg, &b, &ft)
            .await
            .map_err(snn_err)?;
        if let Some(v) = valid {
            pcfg.task = format!("{task}.predict-test");
            fedra_splitnn::predict_follower(ctx.ch, &pcfg, &b, v)
                .await
                .map_err(snn_err)?;
        }
        speed(
            &mut m,
            &cfg,
            n,
            resumed,
            r.steps,
            train_s,
            sent1 - sent0,
            recv1 - recv0,
        );
        memory(&mut m, &b);
        model_json = serde_json::to_string(&PartyState::Follower(b.to_state()));
        report = r;
    }
    ctx.progress(report.steps, total);
    if !is_leader {
        // A follower's own figures, named after it so that they survive the merge of
        // the parties' reports (the leader's come first).
        m = m
            .into_iter()
            .map(|(k, v)| (format!("{me}_{k}"), v))
            .collect();
    }
    let model_json = model_json.map_err(|e| setup(format!("encoding the model: {e}")))?;
    let path = ctx
        .party
        .out_dir
        .join(format!("{}.model.json", ctx.spec.name));
    fedra_fs::write_atomic(&path, model_json.as_bytes(), fedra_fs::Mode::Private)
        .map_err(|source| TaskError::Output { path, source })?;
    Ok(m)
}

/// Steps, epochs, examples per second and bytes per example of this run.
#[allow(clippy::too_many_arguments)]
fn speed(
    m: &mut Metrics,
    cfg: &SplitConfig,
    rows: usize,
    resumed: u64,
    steps: u64,
    train_s: f64,
    sent: u64,
    recv: u64,
) {
    let ex = examples(cfg, rows, resumed, steps);
    m.insert("steps".into(), steps.into());
    m.insert("epochs".into(), cfg.epochs.into());
    m.insert("train_wall_s".into(), json!(train_s));
    m.insert(
        "examples_per_s".into(),
        json!(ex as f64 / train_s.max(1e-9)),
    );
    let per = |b: u64| json!(b as f64 / ex.max(1) as f64);
    m.insert("bytes_per_example".into(), per(sent + recv));
    m.insert("bytes_per_example_sent".into(), per(sent));
    m.insert("bytes_per_example_received".into(), per(recv));
}

/// Embedding memory of a tower.
fn memory(m: &mut Metrics, b: &BottomTower) {
    if let Some(t) = b.tables().first() {
        m.insert("embedding_bytes_per_row".into(), t.bytes_per_row().into());
        m.insert("embedding_table_bytes".into(), b.embedding_bytes().into());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use fedra_splitnn::BottomSpec;

    use super::*;

    fn state(seed: u64) -> PartyState {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let b = BottomTower::new(BottomSpec::dense(2, vec![], 3, 0.01), &mut rng).unwrap();
        PartyState::Follower(b.to_state())
    }

    /// A failed checkpoint write leaves the committed one intact and loadable; only a
    /// durable newer one lets `commit` delete it.
    #[test]
    fn failed_checkpoint_write_keeps_the_previous_one() {
        let dir = std::env::temp_dir().join(format!("fedra-snn-ck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sink = FileSink {
            dir: dir.clone(),
            prefix: "t.ckpt-0-".into(),
        };
        sink.save(2, state(1)).unwrap();
        sink.commit(2).unwrap();
        let before = std::fs::read(sink.path(2)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(sink.path(2))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // The rename cannot replace a directory (whoever runs the test, root too).
        std::fs::create_dir(sink.path(4)).unwrap();
        std::fs::write(sink.path(4).join("x"), b"x").unwrap();
        let e = sink.save(4, state(2)).unwrap_err();
        assert_eq!(e.code(), "splitnn.data", "{e}");
        assert_eq!(std::fs::read(sink.path(2)).unwrap(), before);
        assert_eq!(sink.load(2).unwrap(), state(1));
        // No temporary file left behind.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(sink.path(4)).unwrap();
        assert_eq!(sink.steps(), [2]);

        // A successful save, then the commit: only now is the older one deleted.
        sink.save(4, state(2)).unwrap();
        assert_eq!(sink.steps(), [2, 4]);
        sink.commit(4).unwrap();
        assert_eq!(sink.steps(), [4]);
        assert_eq!(sink.load(4).unwrap(), state(2));
        std::fs::remove_dir_all(&dir).ok();
    }
}
