//! `dataset_stats`: joint dataset statistics without moving a single row.
//!
//! Each party with data streams through its own file once (bounded memory) and
//! computes per-feature count, mean, standard deviation, min and max; it sends that
//! summary to every peer. Leaks: row counts, feature names and those moments.

use bytes::Bytes;
use fedra_federation::FedError;
use serde::{Deserialize, Serialize};

use super::params::{FieldError, ParseCtx};
use super::{Metrics, Outcome, Task};
use crate::error::TaskError;
use crate::job::Role;
use crate::runner::TaskCtx;

/// Parameters of the `dataset_stats` task: every party summarises its own dataset
/// (rows, and per feature count, missing, mean, standard deviation, min, max) and
/// sends the summary — never a row — to the other parties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetStats {
    /// Fail if the parties' row counts differ (true for row-aligned vertical data).
    #[serde(default)]
    pub require_equal_rows: bool,
}

impl Task for DatasetStats {
    fn parse(cx: &ParseCtx<'_>, table: toml::Table) -> Result<Self, FieldError> {
        let p: DatasetStats = cx.decode(table)?;
        for (party, spec) in cx.parties {
            if spec.data.is_none() && spec.role != Role::Arbiter {
                return Err((
                    format!("parties.{party}.data"),
                    "dataset_stats needs a dataset for every guest and host".into(),
                ));
            }
        }
        Ok(p)
    }

    async fn run(&self, ctx: &TaskCtx<'_>) -> Result<Outcome, TaskError> {
        run(ctx, self).await.map(Outcome::from)
    }
}

/// One feature's moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Column name.
    pub name: String,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

/// One party's summary, as exchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows.
    pub rows: u64,
    /// Per feature.
    pub features: Vec<FeatureSummary>,
    /// Label column name and mean, if this party holds labels.
    pub label: Option<(String, f64)>,
}

/// Upper bound on features in a peer's summary (protects against hostile sizes).
const MAX_FEATURES: usize = 1 << 20;

fn summarise(spec: &fedra_data::DatasetSpec) -> Result<Summary, TaskError> {
    let mut reader = fedra_data::open(spec)?;
    let names = reader.feature_names().to_vec();
    let label_name = reader.label_name().map(str::to_owned);
    let d = names.len();
    // Welford's streaming moments: numerically stable, one pass, O(features) memory.
    let (mut n, mut mean, mut m2) = (0u64, vec![0.0f64; d], vec![0.0f64; d]);
    let (mut lo, mut hi) = (vec![f64::INFINITY; d], vec![f64::NEG_INFINITY; d]);
    let mut label_sum = 0.0;
    for batch in &mut reader {
        let batch = batch?;
        for i in 0..batch.n_rows() {
            n += 1;
            let k = n as f64;
            for (j, &x) in batch.row(i).iter().enumerate() {
                let delta = x - mean[j];
                mean[j] += delta / k;
                m2[j] += delta * (x - mean[j]);
                lo[j] = lo[j].min(x);
                hi[j] = hi[j].max(x);
            }
        }
        if let Some(l) = &batch.labels {
            label_sum += l.iter().sum::<f64>();
        }
    }
    let features = (0..d)
        .map(|j| FeatureSummary {
            name: names[j].clone(),
            mean: mean[j],
            std: if n > 0 {
                (m2[j] / n as f64).sqrt()
            } else {
                0.0
            },
            min: lo[j],
            max: hi[j],
        })
        .collect();
    let label = label_name.map(|l| (l, if n > 0 { label_sum / n as f64 } else { 0.0 }));
    Ok(Summary {
        rows: n,
        features,
        label,
    })
}

async fn run(ctx: &TaskCtx<'_>, p: &DatasetStats) -> Result<Metrics, TaskError> {
    let job = ctx.party.job;
    let me = &ctx.party.me;
    let tag = ctx.tag(0, "summary");
    let mine = match &ctx.data {
        Some(spec) => {
            let spec = spec.clone();
            // File parsing is blocking work: keep it off the async workers.
            let s = tokio::task::spawn_blocking(move || summarise(&spec))
                .await
                .map_err(|e| TaskError::Setup(format!("statistics worker failed: {e}")))??;
            let bytes = serde_json::to_vec(&s).map_err(|e| TaskError::Setup(e.to_string()))?;
            fedra_federation::broadcast(ctx.ch, ctx.ch.peers(), &tag, Bytes::from(bytes)).await?;
            Some(s)
        }
        None => None,
    };
    ctx.progress(1, 2);
    let mut all = vec![(me.to_string(), mine)];
    for peer in ctx.ch.peers() {
        let has_data = job.parties.get(peer).is_some_and(|s| s.data.is_some());
        if !has_data {
            all.push((peer.to_string(), None));
            continue;
        }
        let raw = ctx.ch.recv(peer, &tag).await?;
        let decode = |detail: String| FedError::Decode {
            party: peer.to_string(),
            tag: tag.to_string(),
            detail,
        };
        let s: Summary = serde_json::from_slice(&raw).map_err(|e| decode(e.to_string()))?;
        if s.features.len() > MAX_FEATURES {
            return Err(decode(format!(
                "{} features is more than the {MAX_FEATURES} allowed",
                s.features.len()
            ))
            .into());
        }
        all.push((peer.to_string(), Some(s)));
    }
    ctx.progress(2, 2);
    all.sort_by(|a, b| a.0.cmp(&b.0));

    let mut m = Metrics::new();
    let mut rows = Vec::new();
    let mut features_total = 0;
    for (party, s) in &all {
        if let Some(s) = s {
            m.insert(format!("rows_{party}"), s.rows.into());
            m.insert(format!("features_{party}"), s.features.len().into());
            features_total += s.features.len();
            rows.push((party.clone(), s.rows));
            if let Some((_, mean)) = &s.label {
                m.insert("label_mean".into(), serde_json::json!(mean));
            }
        }
    }
    m.insert("features_total".into(), features_total.into());
    m.insert("parties".into(), all.len().into());
    if rows.windows(2).all(|w| w[0].1 == w[1].1) {
        if let Some((_, r)) = rows.first() {
            m.insert("rows".into(), (*r).into());
        }
    } else if p.require_equal_rows {
        let list: Vec<String> = rows.iter().map(|(p, r)| format!("{p}: {r}")).collect();
        return Err(TaskError::Mismatch(format!(
            "row counts differ ({}) but require_equal_rows is set",
            list.join(", ")
        )));
    }

    let body = serde_json::to_vec_pretty(&all).map_err(|e| TaskError::Setup(e.to_string()))?;
    super::write(ctx, "stats.json", body)?;
    Ok(m)
}
