//! A Keras-like builder (the EFLS `FederalModel().input_fn().loss_fn()
//! .optimizer_fn().compile().fit()` shape) — thin sugar over
//! [`crate::decl`]: every builder fills a [`TowerDecl`] / [`SplitDecl`]
//! and goes through the same conversion as a job file, so a program and a
//! job that describe the same model get identical specs.
//!
//! ```
//! use fedra_federation::{PartyId, mem::MemNetwork};
//! use fedra_nn::OptimizerConfig;
//! use fedra_splitnn::{Features, Labels, Objective, PartyData, SplitModel, Tower};
//! use rand_core::SeedableRng;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let (leader, follower) = (PartyId::new("guest")?, PartyId::new("host")?);
//! // The follower's tower: 2 hashed fields in a 1000-row × 4 table + 1 dense input.
//! let host_tower = Tower::builder()
//!     .dense_inputs(1)
//!     .embedding("C", 2, 1000, 4)
//!     .hidden(&[8])
//!     .cut(4)
//!     .optimizer(OptimizerConfig::adam(1e-2));
//! let model = SplitModel::new("snn", leader.as_str())
//!     .bottom(Tower::builder().dense_inputs(2).hidden(&[8]).cut(4))
//!     .follower(follower.as_str(), host_tower.clone())
//!     .top(&[8], Objective::Binary)
//!     .batch_size(4)
//!     .epochs(2);
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let mut lead = model.compile(&mut rng)?;
//! let (cfg, mut bottom) = model.compile_follower(follower.as_str(), &mut rng)?;
//!
//! let rows = 8;
//! let x: Vec<f32> = (0..rows * 2).map(|i| (i % 5) as f32 / 5.0).collect();
//! let y: Vec<f32> = (0..rows).map(|i| (i % 2) as f32).collect();
//! let fx = Features::new(rows, 1, vec![0.5; rows], 2, (0..rows as u64 * 2).collect())?;
//! let lx = Features::dense(rows, 2, x)?;
//!
//! let mut net = MemNetwork::new("demo", &[leader.clone(), follower.clone()]);
//! let (cl, cf) = (net.take(&leader)?, net.take(&follower)?);
//! let mut noise = rand_chacha::ChaCha20Rng::seed_from_u64(2);
//! let (report, _) = tokio::join!(
//!     lead.fit(&cl, PartyData { train: &lx, valid: None }, Labels { train: &y, valid: None }, &mut noise),
//!     fedra_splitnn::train_follower(&cf, &cfg, &mut bottom, PartyData { train: &fx, valid: None }, None),
//! );
//! assert_eq!(report?.steps, 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::BTreeMap;

use fedra_federation::Channel;
use fedra_nn::{Activation, OptimizerConfig};
use rand_core::{CryptoRng, RngCore};

use crate::decl::{
    CutActivation, Objective, ProtectionDecl, SparseDecl, SplitDecl, TableLayout, TopDecl,
    TowerDecl,
};
use crate::embedding::EmbeddingOptimizer;
use crate::error::{Result, SplitError};
use crate::protocol::{Labels, LeaderModel, PartyData, SplitConfig, TrainReport, train_leader};
use crate::tower::{BottomSpec, BottomTower, Pooling, TopTower};

/// Entry point of the tower builder.
#[derive(Debug, Clone, Copy)]
pub struct Tower;

impl Tower {
    /// A builder for one party's bottom tower (no inputs yet, cut 1, Adam 1e-3).
    pub fn builder() -> TowerBuilder {
        TowerBuilder {
            decl: TowerDecl {
                dense: Some(0),
                dense_transform: crate::decl::DenseTransform::None,
                sparse: None,
                hidden: Vec::new(),
                cut: 1,
                activation: Activation::Relu,
                cut_activation: CutActivation::Relu,
                optimizer: OptimizerConfig::adam(1e-3),
            },
        }
    }
}

/// Builds a [`TowerDecl`] (and from it a [`BottomSpec`] / [`BottomTower`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TowerBuilder {
    decl: TowerDecl,
}

impl TowerBuilder {
    /// Number of dense (numeric) inputs.
    pub fn dense_inputs(mut self, n: usize) -> Self {
        self.decl.dense = Some(n);
        self
    }

    /// `fields` hashed categorical fields named `{prefix}1..={prefix}{fields}`
    /// sharing one `rows × dim` table (row-wise Adagrad, lr 0.05).
    pub fn embedding(mut self, prefix: &str, fields: usize, rows: usize, dim: usize) -> Self {
        self.decl.sparse = Some(SparseDecl {
            fields: (1..=fields).map(|i| format!("{prefix}{i}")).collect(),
            rows,
            dim,
            pooling: Pooling::Mean,
            tables: TableLayout::Shared,
            init_scale: 0.05,
            optimizer: EmbeddingOptimizer::rowwise_adagrad(0.05),
        });
        self
    }

    /// The embedding tables' row-wise optimiser (after [`Self::embedding`]).
    pub fn embedding_optimizer(mut self, o: EmbeddingOptimizer) -> Self {
        if let Some(s) = self.decl.sparse.as_mut() {
            s.optimizer = o;
        }
        self
    }

    /// One table per field instead of a shared one (after [`Self::embedding`]).
    pub fn table_per_field(mut self) -> Self {
        if let Some(s) = self.decl.sparse.as_mut() {
            s.tables = TableLayout::PerField;
        }
        self
    }

    /// Hidden layer widths.
    pub fn hidden(mut self, widths: &[usize]) -> Self {
        self.decl.hidden = widths.to_vec();
        self
    }

    /// Width of the cut layer.
    pub fn cut(mut self, k: usize) -> Self {
        self.decl.cut = k;
        self
    }

    /// Hidden-layer activation.
    pub fn activation(mut self, a: Activation) -> Self {
        self.decl.activation = a;
        self
    }

    /// Cut-layer activation.
    pub fn cut_activation(mut self, a: CutActivation) -> Self {
        self.decl.cut_activation = a;
        self
    }

    /// Optimiser of the MLP.
    pub fn optimizer(mut self, o: OptimizerConfig) -> Self {
        self.decl.optimizer = o;
        self
    }

    /// The declaration (what a job file would say).
    pub fn decl(&self) -> &TowerDecl {
        &self.decl
    }

    /// The library spec, through the same conversion as a job.
    pub fn spec(&self) -> Result<BottomSpec> {
        self.decl
            .to_bottom_spec("tower", self.decl.dense.unwrap_or(0))
    }

    /// A fresh tower with weights from `rng`.
    pub fn build(&self, rng: &mut dyn RngCore) -> Result<BottomTower> {
        BottomTower::new(self.spec()?, rng)
    }
}

/// A whole split model as the leader sees it: its own tower (optional),
/// the followers' towers, the top tower and the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitModel {
    task: String,
    decl: SplitDecl,
}

impl SplitModel {
    /// A model for task `task` (the message namespace) led by `leader`;
    /// binary top without hidden layers, batch 256, one epoch.
    pub fn new(task: &str, leader: &str) -> Self {
        SplitModel {
            task: task.to_owned(),
            decl: SplitDecl {
                leader: leader.to_owned(),
                towers: BTreeMap::new(),
                top: TopDecl {
                    hidden: Vec::new(),
                    objective: Objective::Binary,
                    activation: Activation::Relu,
                    optimizer: OptimizerConfig::adam(1e-3),
                },
                batch_size: 256,
                epochs: 1,
                staleness: 0,
                eval_every: 0,
                shuffle_seed: 0,
                init_seed: 0,
                protection: ProtectionDecl::None,
                leak_meter: true,
                checkpoint_every: 0,
            },
        }
    }

    /// The leader's own bottom tower.
    pub fn bottom(mut self, t: TowerBuilder) -> Self {
        self.decl.towers.insert(self.decl.leader.clone(), t.decl);
        self
    }

    /// A follower and its tower (the leader uses only its cut width).
    pub fn follower(mut self, party: &str, t: TowerBuilder) -> Self {
        self.decl.towers.insert(party.to_owned(), t.decl);
        self
    }

    /// The top tower's hidden layers and objective (the loss).
    pub fn top(mut self, hidden: &[usize], objective: Objective) -> Self {
        self.decl.top.hidden = hidden.to_vec();
        self.decl.top.objective = objective;
        self
    }

    /// The top tower's optimiser.
    pub fn top_optimizer(mut self, o: OptimizerConfig) -> Self {
        self.decl.top.optimizer = o;
        self
    }

    /// Rows per batch.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.decl.batch_size = n;
        self
    }

    /// Passes over the data.
    pub fn epochs(mut self, n: usize) -> Self {
        self.decl.epochs = n;
        self
    }

    /// Follower pipelining, 0 or 1.
    pub fn staleness(mut self, s: u32) -> Self {
        self.decl.staleness = s;
        self
    }

    /// Public seed of the batch order.
    pub fn shuffle_seed(mut self, s: u64) -> Self {
        self.decl.shuffle_seed = s;
        self
    }

    /// Evaluate every `n` steps.
    pub fn eval_every(mut self, n: u64) -> Self {
        self.decl.eval_every = n;
        self
    }

    /// Protection of the returned gradients.
    pub fn protection(mut self, p: ProtectionDecl) -> Self {
        self.decl.protection = p;
        self
    }

    /// The declaration (what a job file would say).
    pub fn decl(&self) -> &SplitDecl {
        &self.decl
    }

    fn tower_spec(&self, party: &str) -> Result<BottomSpec> {
        let t = self
            .decl
            .towers
            .get(party)
            .ok_or_else(|| SplitError::Field {
                field: format!("towers.{party}"),
                reason: "no tower declared for this party".into(),
            })?;
        t.to_bottom_spec(&format!("towers.{party}"), t.dense.unwrap_or(0))
    }

    /// The leader's side: protocol config and fresh models (bottom first,
    /// then top, from `rng`).
    pub fn compile(&self, rng: &mut dyn RngCore) -> Result<Compiled> {
        let cfg = self.decl.to_config(&self.task)?;
        let bottom = if self.decl.towers.contains_key(&self.decl.leader) {
            Some(BottomTower::new(self.tower_spec(&self.decl.leader)?, rng)?)
        } else {
            None
        };
        let top = TopTower::new(
            self.decl.top.to_top_spec("top")?,
            self.decl.top_inputs(),
            rng,
        )?;
        Ok(Compiled {
            cfg,
            model: LeaderModel { bottom, top },
        })
    }

    /// A follower's side: the same protocol config and its fresh tower.
    pub fn compile_follower(
        &self,
        party: &str,
        rng: &mut dyn RngCore,
    ) -> Result<(SplitConfig, BottomTower)> {
        let cfg = self.decl.to_config(&self.task)?;
        Ok((cfg, BottomTower::new(self.tower_spec(party)?, rng)?))
    }
}

/// A compiled leader: config and models, ready to [`Compiled::fit`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The protocol config.
    pub cfg: SplitConfig,
    /// The leader's models.
    pub model: LeaderModel,
}

impl Compiled {
    /// Trains with the followers over `ch` ([`train_leader`], no checkpoints).
    pub async fn fit<R: CryptoRng + Send + ?Sized>(
        &mut self,
        ch: &dyn Channel,
        data: PartyData<'_>,
        labels: Labels<'_>,
        rng: &mut R,
    ) -> Result<TrainReport> {
        train_leader(ch, &self.cfg, &mut self.model, data, labels, rng, None).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn builder_and_job_form_give_the_same_spec() {
        let b = Tower::builder()
            .dense_inputs(13)
            .embedding("C", 26, 1000, 16)
            .hidden(&[128, 128])
            .cut(64)
            .optimizer(OptimizerConfig::adam(1e-3));
        let job: TowerDecl = serde_json::from_value(serde_json::json!({
            "dense": 13,
            "hidden": [128, 128],
            "cut": 64,
            "sparse": {
                "fields": (1..=26).map(|i| format!("C{i}")).collect::<Vec<_>>(),
                "rows": 1000, "dim": 16
            },
        }))
        .unwrap();
        assert_eq!(b.decl(), &job);
        assert_eq!(b.spec().unwrap(), job.to_bottom_spec("tower", 13).unwrap());
    }
}
