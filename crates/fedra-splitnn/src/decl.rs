//! The declarative form of a split-learning model and schedule — what a
//! job file says — and the **one** code path that turns it into the
//! library's specs ([`BottomSpec`], [`TopSpec`], [`SplitConfig`]). The
//! Rust builder ([`crate::builder`]) fills the same structs, so a job
//! and a program that describe the same model get the same specs.
//!
//! ```toml
//! leader = "guest"
//! batch_size = 256
//! epochs = 8
//! staleness = 0                 # 0 or 1 (follower pipelining)
//! eval_every = 100              # steps; 0 = only at the end
//! shuffle_seed = 7              # public: the batch order
//! init_seed = 1                 # public: the initial weights
//! protection = "none"           # "max_norm" | { dp = { clip = 1.0, noise_multiplier = 1.0, delta = 1e-5 } }
//! leak_meter = true
//! checkpoint_every = 100        # steps; 0 = never
//!
//! [top]
//! hidden = [128, 128]
//! objective = "binary"          # "regression" | { multiclass = { classes = 3 } }
//! optimizer = { kind = "adam", lr = 0.001 }
//!
//! [towers.guest]                # the leader's own tower (optional)
//! hidden = [128]
//! cut = 64
//!
//! [towers.host]                 # a follower
//! hidden = [128]
//! cut = 64
//! sparse = { fields = ["C1", "C2"], rows = 1000000, dim = 16 }
//! ```

use std::collections::BTreeMap;

use fedra_federation::PartyId;
use fedra_nn::{Activation, LossKind, OptimizerConfig};
use serde::{Deserialize, Serialize};

use crate::embedding::{EmbeddingOptimizer, TableSpec};
use crate::error::{Result, SplitError};
use crate::privacy::GradientProtection;
use crate::protocol::{FollowerCut, SplitConfig};
use crate::tower::{BottomSpec, Pooling, TopSpec};

/// Largest width of a layer (hidden or cut).
pub const MAX_WIDTH: usize = 65_536;
/// Most hidden layers in one tower.
pub const MAX_LAYERS: usize = 16;
/// Most sparse fields of one tower.
pub const MAX_FIELDS: usize = 4096;
/// Widest embedding row.
pub const MAX_DIM: usize = 1024;

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> SplitError {
    SplitError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The activation of the cut layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutActivation {
    /// ReLU (the default).
    #[default]
    Relu,
    /// tanh.
    Tanh,
    /// None (linear).
    Linear,
}

impl CutActivation {
    fn to_nn(self) -> Option<Activation> {
        match self {
            CutActivation::Relu => Some(Activation::Relu),
            CutActivation::Tanh => Some(Activation::Tanh),
            CutActivation::Linear => None,
        }
    }
}

/// How a tower's sparse fields map to embedding tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableLayout {
    /// One table shared by every field (ids are hashed with the field index).
    #[default]
    Shared,
    /// One table per field, each of `rows` rows.
    PerField,
}

/// A transform of the dense inputs, applied by the party to its own features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenseTransform {
    /// As they are.
    #[default]
    None,
    /// `sign(x)·ln(1 + |x|)` (for counts such as Criteo's I1..I13).
    Log1p,
}

impl DenseTransform {
    /// Applies the transform to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            DenseTransform::None => x,
            DenseTransform::Log1p => x.signum() * x.abs().ln_1p(),
        }
    }
}

/// The sparse (hashed categorical) inputs of a tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseDecl {
    /// The categorical columns, in order (1..=4096 names).
    pub fields: Vec<String>,
    /// Rows (hash buckets) per table, `>= 1`.
    pub rows: usize,
    /// Width of an embedding row (1..=1024).
    pub dim: usize,
    /// Pooling of multi-valued fields.
    #[serde(default)]
    pub pooling: Pooling,
    /// One shared table or one per field.
    #[serde(default)]
    pub tables: TableLayout,
    /// Initial weights uniform in `±init_scale` (0..=1).
    #[serde(default = "default_init_scale")]
    pub init_scale: f32,
    /// The row-wise optimiser (default row-wise Adagrad, lr 0.05).
    #[serde(default = "default_embedding_optimizer")]
    pub optimizer: EmbeddingOptimizer,
}

fn default_init_scale() -> f32 {
    0.05
}

fn default_embedding_optimizer() -> EmbeddingOptimizer {
    EmbeddingOptimizer::rowwise_adagrad(0.05)
}

fn default_optimizer() -> OptimizerConfig {
    OptimizerConfig::adam(1e-3)
}

/// One party's bottom tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerDecl {
    /// Dense inputs (the party's numeric features); `None` = as many as
    /// the party's data has.
    #[serde(default)]
    pub dense: Option<usize>,
    /// Transform of the dense inputs.
    #[serde(default)]
    pub dense_transform: DenseTransform,
    /// Hashed categorical inputs.
    #[serde(default)]
    pub sparse: Option<SparseDecl>,
    /// Hidden layer widths (0..=16 layers of 1..=65536).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Width of the cut layer (1..=65536): what the leader receives.
    pub cut: usize,
    /// Hidden-layer activation.
    #[serde(default)]
    pub activation: Activation,
    /// Cut-layer activation.
    #[serde(default)]
    pub cut_activation: CutActivation,
    /// Optimiser of the MLP (default Adam, lr 0.001).
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerConfig,
}

/// What the top model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Objective {
    /// Sigmoid + binary cross-entropy; labels 0/1.
    #[default]
    Binary,
    /// Mean squared error on one output.
    Regression,
    /// Softmax cross-entropy; labels `0..classes`.
    Multiclass {
        /// Number of classes (2..=65536).
        classes: usize,
    },
}

/// The leader's top tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopDecl {
    /// Hidden layer widths.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// What it predicts.
    #[serde(default)]
    pub objective: Objective,
    /// Hidden-layer activation.
    #[serde(default)]
    pub activation: Activation,
    /// Optimiser (default Adam, lr 0.001).
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerConfig,
}

/// Gradient protection as written in a job.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProtectionDecl {
    /// Exact gradients.
    #[default]
    None,
    /// Li et al.'s max-norm noise.
    MaxNorm,
    /// Per-example clipping + Gaussian noise with accounting.
    Dp {
        /// Clipping norm `> 0`.
        clip: f64,
        /// Noise multiplier `>= 0`.
        noise_multiplier: f64,
        /// δ in `(0, 1)`.
        delta: f64,
    },
}

impl ProtectionDecl {
    /// The library's protection.
    pub fn to_protection(self) -> GradientProtection {
        match self {
            ProtectionDecl::None => GradientProtection::None,
            ProtectionDecl::MaxNorm => GradientProtection::MaxNorm,
            ProtectionDecl::Dp {
                clip,
                noise_multiplier,
                delta,
            } => GradientProtection::Gaussian {
                clip_norm: clip,
                noise_multiplier,
                delta,
            },
        }
    }
}

fn default_batch() -> usize {
    256
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// A whole split-learning task: towers, top, schedule, protection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitDecl {
    /// The label holder.
    pub leader: String,
    /// Each party's bottom tower (the leader's is optional; every other
    /// party listed is a follower, in name order).
    pub towers: BTreeMap<String, TowerDecl>,
    /// The top tower.
    pub top: TopDecl,
    /// Rows per batch (1..=1048576).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Passes over the training rows (1..=100000).
    #[serde(default = "one")]
    pub epochs: usize,
    /// 0 or 1.
    #[serde(default)]
    pub staleness: u32,
    /// Evaluate every this many steps (0 = only at the end).
    #[serde(default)]
    pub eval_every: u64,
    /// Public seed of the batch order.
    #[serde(default)]
    pub shuffle_seed: u64,
    /// Public seed of the initial weights.
    #[serde(default)]
    pub init_seed: u64,
    /// Protection of the returned gradients.
    #[serde(default)]
    pub protection: ProtectionDecl,
    /// Measure the norm-attack leak AUC (binary objective).
    #[serde(default = "yes")]
    pub leak_meter: bool,
    /// Checkpoint every this many steps (0 = never).
    #[serde(default)]
    pub checkpoint_every: u64,
}

fn widths(field: &str, v: &[usize]) -> Result<()> {
    if v.len() > MAX_LAYERS {
        return Err(field_err(
            field,
            format!("at most {MAX_LAYERS} layers (got {})", v.len()),
        ));
    }
    if let Some(w) = v.iter().find(|w| **w == 0 || **w > MAX_WIDTH) {
        return Err(field_err(
            field,
            format!("each width must be in 1..={MAX_WIDTH} (got {w})"),
        ));
    }
    Ok(())
}

fn optimizer(field: &str, o: &OptimizerConfig) -> Result<()> {
    o.validate().map_err(|e| field_err(field, e.to_string()))
}

impl TowerDecl {
    /// Checks every field; `at` prefixes the field names in errors
    /// (e.g. `towers.host`).
    pub fn validate(&self, at: &str) -> Result<()> {
        let f = |n: &str| format!("{at}.{n}");
        if let Some(d) = self.dense
            && d > 1 << 20
        {
            return Err(field_err(
                f("dense"),
                format!("must be in 0..=1048576 (got {d})"),
            ));
        }
        widths(&f("hidden"), &self.hidden)?;
        if self.cut == 0 || self.cut > MAX_WIDTH {
            return Err(field_err(
                f("cut"),
                format!("must be in 1..={MAX_WIDTH} (got {})", self.cut),
            ));
        }
        optimizer(&f("optimizer"), &self.optimizer)?;
        if let Some(s) = &self.sparse {
            if s.fields.is_empty() || s.fields.len() > MAX_FIELDS {
                return Err(field_err(
                    f("sparse.fields"),
                    format!("1..={MAX_FIELDS} column names (got {})", s.fields.len()),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(d) = s.fields.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(field_err(
                    f("sparse.fields"),
                    format!("{d:?} is listed twice"),
                ));
            }
            if s.dim == 0 || s.dim > MAX_DIM {
                return Err(field_err(
                    f("sparse.dim"),
                    format!("must be in 1..={MAX_DIM} (got {})", s.dim),
                ));
            }
            let max_rows = crate::embedding::MAX_TABLE_VALUES / s.dim;
            if s.rows == 0 || s.rows > max_rows {
                return Err(field_err(
                    f("sparse.rows"),
                    format!(
                        "must be in 1..={max_rows} (2^31 values per table at dim {}; got {})",
                        s.dim, s.rows
                    ),
                ));
            }
            if !(s.init_scale.is_finite() && (0.0..=1.0).contains(&s.init_scale)) {
                return Err(field_err(
                    f("sparse.init_scale"),
                    format!("must be in 0..=1 (got {})", s.init_scale),
                ));
            }
            TableSpec {
                rows: s.rows,
                dim: s.dim,
                init_scale: s.init_scale,
                optimizer: s.optimizer,
            }
            .validate()
            .map_err(|e| field_err(f("sparse.optimizer"), e.to_string()))?;
        } else if self.dense == Some(0) {
            return Err(field_err(
                f("dense"),
                "a tower without sparse fields needs dense inputs",
            ));
        }
        Ok(())
    }

    /// Sparse fields (0 without sparse inputs).
    pub fn fields(&self) -> usize {
        self.sparse.as_ref().map_or(0, |s| s.fields.len())
    }

    /// The library's spec for a party with `dense` numeric features (must
    /// agree with [`TowerDecl::dense`] when that is given).
    pub fn to_bottom_spec(&self, at: &str, dense: usize) -> Result<BottomSpec> {
        self.validate(at)?;
        if let Some(d) = self.dense
            && d != dense
        {
            return Err(field_err(
                format!("{at}.dense"),
                format!("says {d} dense inputs, but the party's data has {dense} numeric features"),
            ));
        }
        let (tables, fields, pooling) = match &self.sparse {
            None => (Vec::new(), Vec::new(), Pooling::Mean),
            Some(s) => {
                let t = TableSpec {
                    rows: s.rows,
                    dim: s.dim,
                    init_scale: s.init_scale,
                    optimizer: s.optimizer,
                };
                match s.tables {
                    TableLayout::Shared => (vec![t], vec![0; s.fields.len()], s.pooling),
                    TableLayout::PerField => (
                        vec![t; s.fields.len()],
                        (0..s.fields.len()).collect(),
                        s.pooling,
                    ),
                }
            }
        };
        let spec = BottomSpec {
            dense,
            tables,
            fields,
            hidden: self.hidden.clone(),
            output: self.cut,
            activation: self.activation,
            cut_activation: self.cut_activation.to_nn(),
            optimizer: self.optimizer,
            pooling,
        };
        spec.validate()
            .map_err(|e| field_err(at.to_owned(), e.to_string()))?;
        Ok(spec)
    }
}

impl TopDecl {
    /// Checks every field (`at` prefixes the names).
    pub fn validate(&self, at: &str) -> Result<()> {
        widths(&format!("{at}.hidden"), &self.hidden)?;
        optimizer(&format!("{at}.optimizer"), &self.optimizer)?;
        if let Objective::Multiclass { classes } = self.objective
            && !(2..=MAX_WIDTH).contains(&classes)
        {
            return Err(field_err(
                format!("{at}.objective.multiclass.classes"),
                format!("must be in 2..={MAX_WIDTH} (got {classes})"),
            ));
        }
        Ok(())
    }

    /// The library's spec.
    pub fn to_top_spec(&self, at: &str) -> Result<TopSpec> {
        self.validate(at)?;
        let (outputs, loss) = match self.objective {
            Objective::Binary => (1, LossKind::BinaryCrossEntropy),
            Objective::Regression => (1, LossKind::Mse),
            Objective::Multiclass { classes } => (classes, LossKind::SoftmaxCrossEntropy),
        };
        Ok(TopSpec {
            hidden: self.hidden.clone(),
            outputs,
            activation: self.activation,
            loss,
            optimizer: self.optimizer,
        })
    }
}

impl SplitDecl {
    /// Checks every field (names in errors are relative to the task).
    pub fn validate(&self) -> Result<()> {
        PartyId::new(&self.leader).map_err(|e| field_err("leader", e.to_string()))?;
        for (p, t) in &self.towers {
            PartyId::new(p).map_err(|e| field_err(format!("towers.{p}"), e.to_string()))?;
            t.validate(&format!("towers.{p}"))?;
        }
        if self.followers().is_empty() {
            return Err(field_err(
                "towers",
                "needs the tower of at least one follower (a party other than the leader)",
            ));
        }
        self.top.validate("top")?;
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(field_err(
                "batch_size",
                format!("must be in 1..=1048576 (got {})", self.batch_size),
            ));
        }
        if self.epochs == 0 || self.epochs > 100_000 {
            return Err(field_err(
                "epochs",
                format!("must be in 1..=100000 (got {})", self.epochs),
            ));
        }
        if self.staleness > 1 {
            return Err(field_err(
                "staleness",
                format!("must be 0 or 1 (got {})", self.staleness),
            ));
        }
        if self.eval_every > 1 << 40 {
            return Err(field_err("eval_every", "must be in 0..=2^40"));
        }
        if self.checkpoint_every > 1 << 40 {
            return Err(field_err("checkpoint_every", "must be in 0..=2^40"));
        }
        self.protection
            .to_protection()
            .validate()
            .map_err(|e| field_err("protection", e.to_string()))?;
        Ok(())
    }

    /// The followers (every tower's party but the leader), in name order.
    pub fn followers(&self) -> Vec<&str> {
        self.towers
            .keys()
            .filter(|p| **p != self.leader)
            .map(String::as_str)
            .collect()
    }

    /// The protocol config of task `task` (resume_from = 0).
    pub fn to_config(&self, task: &str) -> Result<SplitConfig> {
        self.validate()?;
        let leader = PartyId::new(&self.leader).map_err(|e| field_err("leader", e.to_string()))?;
        let mut followers = Vec::new();
        for p in self.followers() {
            followers.push(FollowerCut {
                party: PartyId::new(p).map_err(|e| field_err("towers", e.to_string()))?,
                width: self.towers[p].cut,
            });
        }
        let mut cfg = SplitConfig::new(
            task,
            leader,
            followers,
            self.batch_size,
            self.epochs,
            self.shuffle_seed,
        );
        cfg.eval_every = self.eval_every;
        cfg.staleness = self.staleness;
        cfg.protection = self.protection.to_protection();
        cfg.checkpoint_every = self.checkpoint_every;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Width of the top tower's input: the sum of every tower's cut.
    pub fn top_inputs(&self) -> usize {
        self.towers.values().map(|t| t.cut).sum()
    }
}

/// A party's public initialisation seed: the job's `init_seed` mixed with
/// the party's name (so towers differ but every run of the job starts from
/// the same weights).
pub fn party_seed(init_seed: u64, party: &str) -> u64 {
    crate::embedding::mix64(init_seed ^ crate::embedding::hash_str(party))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn decl() -> SplitDecl {
        toml_like()
    }

    fn toml_like() -> SplitDecl {
        let mut towers = BTreeMap::new();
        towers.insert(
            "guest".into(),
            TowerDecl {
                dense: Some(13),
                dense_transform: DenseTransform::None,
                sparse: None,
                hidden: vec![128],
                cut: 64,
                activation: Activation::Relu,
                cut_activation: CutActivation::Relu,
                optimizer: OptimizerConfig::adam(1e-3),
            },
        );
        towers.insert(
            "host".into(),
            TowerDecl {
                dense: None,
                dense_transform: DenseTransform::Log1p,
                sparse: Some(SparseDecl {
                    fields: vec!["C1".into(), "C2".into()],
                    rows: 1000,
                    dim: 8,
                    pooling: Pooling::Mean,
                    tables: TableLayout::Shared,
                    init_scale: 0.05,
                    optimizer: EmbeddingOptimizer::rowwise_adagrad(0.05),
                }),
                hidden: vec![],
                cut: 16,
                activation: Activation::Relu,
                cut_activation: CutActivation::Linear,
                optimizer: OptimizerConfig::adam(1e-3),
            },
        );
        SplitDecl {
            leader: "guest".into(),
            towers,
            top: TopDecl {
                hidden: vec![32],
                objective: Objective::Binary,
                activation: Activation::Relu,
                optimizer: OptimizerConfig::adam(1e-3),
            },
            batch_size: 256,
            epochs: 2,
            staleness: 1,
            eval_every: 10,
            shuffle_seed: 1,
            init_seed: 2,
            protection: ProtectionDecl::MaxNorm,
            leak_meter: true,
            checkpoint_every: 5,
        }
    }

    #[test]
    fn converts_to_specs_and_config() {
        let d = decl();
        let cfg = d.to_config("snn").unwrap();
        assert_eq!(cfg.followers.len(), 1);
        assert_eq!(cfg.followers[0].width, 16);
        assert_eq!(cfg.staleness, 1);
        assert_eq!(d.top_inputs(), 80);
        let b = d.towers["host"].to_bottom_spec("towers.host", 0).unwrap();
        assert_eq!(b.input_width(), 16);
        assert_eq!(b.cut_activation, None);
        let e = d.towers["guest"]
            .to_bottom_spec("towers.guest", 12)
            .unwrap_err();
        assert!(e.to_string().contains("towers.guest.dense"), "{e}");
    }

    #[test]
    fn every_bad_field_is_named() {
        type Edit = Box<dyn Fn(&mut SplitDecl)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|d| d.batch_size = 0), "batch_size"),
            (Box::new(|d| d.epochs = 0), "epochs"),
            (Box::new(|d| d.staleness = 2), "staleness"),
            (
                Box::new(|d| d.towers.get_mut("host").unwrap().cut = 0),
                "towers.host.cut",
            ),
            (
                Box::new(|d| d.towers.get_mut("guest").unwrap().hidden = vec![0]),
                "towers.guest.hidden",
            ),
            (
                Box::new(|d| {
                    d.towers
                        .get_mut("host")
                        .unwrap()
                        .sparse
                        .as_mut()
                        .unwrap()
                        .dim = 0
                }),
                "towers.host.sparse.dim",
            ),
            (
                Box::new(|d| d.top.objective = Objective::Multiclass { classes: 1 }),
                "top.objective.multiclass.classes",
            ),
            (
                Box::new(|d| {
                    d.protection = ProtectionDecl::Dp {
                        clip: 0.0,
                        noise_multiplier: 1.0,
                        delta: 1e-5,
                    }
                }),
                "protection",
            ),
            (
                Box::new(|d| {
                    d.towers.remove("host");
                }),
                "towers",
            ),
        ];
        for (f, name) in cases {
            let mut d = decl();
            f(&mut d);
            let e = d.validate().unwrap_err();
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }
}
