//! Typed training configuration (serde: TOML/JSON) and its validation.

use fedra_federation::PartyId;
use serde::{Deserialize, Serialize};

use crate::error::{Result, bad};

/// What is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Binary classification, logistic loss (labels 0/1; -1 is read as 0).
    Binary,
    /// Multi-class classification, softmax loss, labels `0..classes`. Trees are
    /// multi-output: one tree per round whose leaves hold one weight per class.
    MultiClass {
        /// Number of classes, 3..=64.
        classes: u32,
    },
    /// Regression, squared error.
    Regression,
}

impl Objective {
    /// Outputs per row (1, or the class count).
    pub fn outputs(&self) -> usize {
        match self {
            Objective::MultiClass { classes } => *classes as usize,
            _ => 1,
        }
    }
}

/// Homomorphic encryption scheme for the gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Okamoto–Uchiyama (default): several times faster than Paillier; see
    /// fedra-he for its (less studied) hardness assumption.
    Ou,
    /// Paillier (DCR assumption, the conservative choice).
    Paillier,
    /// **No encryption**: gradients travel in the clear. A debugging mode that
    /// runs the exact same protocol (and gives the exact same model) as the
    /// encrypted one, many times faster. Never use it on real data.
    InsecurePlaintext,
}

/// Label-leakage protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// SecureBoost as published: hosts learn the instance space (row set) of every node.
    Default,
    /// FATE's "complete secure": the first tree uses only the guest's features, so
    /// hosts learn nothing from it about the labels (its leaves would otherwise
    /// reveal label-correlated row groups).
    CompleteSecure,
}

/// Gradient-based one-side sampling (Ke et al. 2017, LightGBM).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goss {
    /// Fraction of rows with the largest |g| kept, in (0, 1).
    pub top_rate: f64,
    /// Fraction of the remaining rows sampled at random, in (0, 1); their g, h are
    /// up-weighted by `(1 - top_rate) / other_rate`.
    pub other_rate: f64,
}

/// Early stopping on a validation set carved out of the training rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Stop when the validation loss has not improved for this many rounds, >= 1.
    pub rounds: u32,
    /// Fraction of the training rows used for validation only, in (0, 0.5].
    pub validation_fraction: f64,
}

fn d_trees() -> u32 {
    64
}
fn d_depth() -> u32 {
    6
}
fn d_bins() -> u32 {
    32
}
fn d_lr() -> f64 {
    0.1
}
fn d_mcw() -> f64 {
    1.0
}
fn d_lambda() -> f64 {
    1.0
}
fn d_one() -> f64 {
    1.0
}
fn d_scheme() -> Scheme {
    Scheme::Ou
}
fn d_privacy() -> Privacy {
    Privacy::Default
}
fn d_key_bits() -> u32 {
    2048
}
fn d_precision() -> u32 {
    32
}
fn d_seed() -> u64 {
    42
}

/// Configuration of a SecureBoost training task. All parties must use the same one.
///
/// TOML shape (defaults shown for optional fields):
/// ```toml
/// guest = "guest"
/// hosts = ["host"]
/// objective = "binary"               # "regression" | { multi_class = { classes = 3 } }
/// trees = 64                         # boosting rounds
/// max_depth = 6
/// max_bins = 32
/// learning_rate = 0.1
/// min_child_weight = 1.0
/// lambda = 1.0                       # L2 on leaf weights
/// alpha = 0.0                        # L1 on leaf weights
/// gamma = 0.0                        # minimum split gain
/// subsample = 1.0                    # rows per tree
/// colsample_bytree = 1.0             # features per tree (each party samples its own)
/// goss = { top_rate = 0.2, other_rate = 0.1 }             # optional
/// early_stopping = { rounds = 5, validation_fraction = 0.1 } # optional
/// privacy = "default"                # or "complete_secure"
/// scheme = "ou"                      # "paillier" | "insecure_plaintext"
/// key_bits = 2048
/// precision_bits = 32                # fractional bits of g and h
/// seed = 42
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The label holder (it also holds the decryption key).
    pub guest: PartyId,
    /// The feature-only parties.
    pub hosts: Vec<PartyId>,
    /// Loss.
    pub objective: Objective,
    /// Boosting rounds, 1..=10000.
    #[serde(default = "d_trees")]
    pub trees: u32,
    /// Maximum depth, 1..=16.
    #[serde(default = "d_depth")]
    pub max_depth: u32,
    /// Bins per feature (missing values get one more), 2..=255.
    #[serde(default = "d_bins")]
    pub max_bins: u32,
    /// Shrinkage, (0, 1].
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// Minimum hessian sum in a child, >= 0.
    #[serde(default = "d_mcw")]
    pub min_child_weight: f64,
    /// L2 regularisation of leaf weights, >= 0.
    #[serde(default = "d_lambda")]
    pub lambda: f64,
    /// L1 regularisation of leaf weights, >= 0.
    #[serde(default)]
    pub alpha: f64,
    /// Minimum loss reduction of a split, >= 0.
    #[serde(default)]
    pub gamma: f64,
    /// Row subsampling per tree, (0, 1].
    #[serde(default = "d_one")]
    pub subsample: f64,
    /// Feature subsampling per tree, (0, 1].
    #[serde(default = "d_one")]
    pub colsample_bytree: f64,
    /// Gradient-based one-side sampling (replaces `subsample`).
    #[serde(default)]
    pub goss: Option<Goss>,
    /// Early stopping on a validation split.
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Label-leakage protection.
    #[serde(default = "d_privacy")]
    pub privacy: Privacy,
    /// Encryption of the gradients.
    #[serde(default = "d_scheme")]
    pub scheme: Scheme,
    /// Modulus size, 2048 or 3072 (4096 allowed).
    #[serde(default = "d_key_bits")]
    pub key_bits: u32,
    /// Fractional bits of the fixed-point g and h, 16..=48.
    #[serde(default = "d_precision")]
    pub precision_bits: u32,
    /// Seed of row/feature sampling and the validation split (public randomness).
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn range(field: &'static str, v: f64, lo: f64, hi: f64, lo_open: bool) -> Result<()> {
    let ok = v.is_finite() && (if lo_open { v > lo } else { v >= lo }) && v <= hi;
    if ok {
        Ok(())
    } else {
        let l = if lo_open { "(" } else { "[" };
        Err(bad(field, format!("must be in {l}{lo}, {hi}], got {v}")))
    }
}

impl Config {
    /// A configuration with every default, for `guest` and `hosts`.
    pub fn new(guest: PartyId, hosts: Vec<PartyId>, objective: Objective) -> Self {
        Config {
            guest,
            hosts,
            objective,
            trees: d_trees(),
            max_depth: d_depth(),
            max_bins: d_bins(),
            learning_rate: d_lr(),
            min_child_weight: d_mcw(),
            lambda: d_lambda(),
            alpha: 0.0,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            goss: None,
            early_stopping: None,
            privacy: d_privacy(),
            scheme: d_scheme(),
            key_bits: d_key_bits(),
            precision_bits: d_precision(),
            seed: d_seed(),
        }
    }

    /// Checks every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.hosts.is_empty() {
            return Err(bad("hosts", "at least one host is needed"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if *h == self.guest || self.hosts[..i].contains(h) {
                return Err(bad(
                    "hosts",
                    format!("party '{h}' appears twice among guest and hosts"),
                ));
            }
        }
        if let Objective::MultiClass { classes } = self.objective
            && !(3..=64).contains(&classes)
        {
            return Err(bad(
                "objective.multi_class.classes",
                format!("must be in 3..=64 (use binary for 2), got {classes}"),
            ));
        }
        if !(1..=10_000).contains(&self.trees) {
            return Err(bad(
                "trees",
                format!("must be in 1..=10000, got {}", self.trees),
            ));
        }
        if !(1..=16).contains(&self.max_depth) {
            return Err(bad(
                "max_depth",
                format!("must be in 1..=16, got {}", self.max_depth),
            ));
        }
        if !(2..=255).contains(&self.max_bins) {
            return Err(bad(
                "max_bins",
                format!("must be in 2..=255, got {}", self.max_bins),
            ));
        }
        range("learning_rate", self.learning_rate, 0.0, 1.0, true)?;
        range("min_child_weight", self.min_child_weight, 0.0, 1e9, false)?;
        range("lambda", self.lambda, 0.0, 1e9, false)?;
        range("alpha", self.alpha, 0.0, 1e9, false)?;
        range("gamma", self.gamma, 0.0, 1e9, false)?;
        range("subsample", self.subsample, 0.0, 1.0, true)?;
        range("colsample_bytree", self.colsample_bytree, 0.0, 1.0, true)?;
        if let Some(g) = &self.goss {
            range("goss.top_rate", g.top_rate, 0.0, 1.0, true)?;
            range("goss.other_rate", g.other_rate, 0.0, 1.0, true)?;
            if g.top_rate + g.other_rate > 1.0 {
                return Err(bad(
                    "goss",
                    format!(
                        "top_rate + other_rate must be <= 1, got {}",
                        g.top_rate + g.other_rate
                    ),
                ));
            }
            if self.subsample < 1.0 {
                return Err(bad(
                    "subsample",
                    "must be 1.0 when goss is set (GOSS replaces row subsampling)",
                ));
            }
        }
        if let Some(e) = &self.early_stopping {
            if e.rounds == 0 {
                return Err(bad("early_stopping.rounds", "must be at least 1"));
            }
            range(
                "early_stopping.validation_fraction",
                e.validation_fraction,
                0.0,
                0.5,
                true,
            )?;
        }
        match self.scheme {
            Scheme::InsecurePlaintext => {}
            _ => {
                if !matches!(self.key_bits, 2048 | 3072 | 4096) {
                    return Err(bad(
                        "key_bits",
                        format!("must be 2048, 3072 or 4096, got {}", self.key_bits),
                    ));
                }
            }
        }
        if !(16..=48).contains(&self.precision_bits) {
            return Err(bad(
                "precision_bits",
                format!("must be in 16..=48, got {}", self.precision_bits),
            ));
        }
        Ok(())
    }

    /// All parties, guest first.
    pub fn parties(&self) -> impl Iterator<Item = &PartyId> {
        std::iter::once(&self.guest).chain(self.hosts.iter())
    }
}
