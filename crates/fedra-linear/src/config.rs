//! Typed training configuration (serde: TOML/JSON) and its validation.

use fedra_federation::PartyId;
use fedra_he::KeyPolicy;
use serde::{Deserialize, Serialize};

use crate::error::{LinearError, Result};

/// What is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Binary logistic regression (labels 0/1 or -1/1); how the sigmoid is
    /// approximated under encryption is [`Sigmoid`].
    Logistic,
    /// Least-squares linear regression (any finite label).
    Linear,
}

/// How logistic regression approximates the sigmoid in the encrypted
/// residual `d = σ(a + b) − y` (`a`: the guest's partial score, `b`: the
/// sum of the hosts' partial scores, which the guest never sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sigmoid {
    /// `σ(a + b) ≈ σ(a) + σ'(a)·b`: exact in the guest's own score,
    /// linear in the hosts'. Converges to (near) the exact logistic
    /// regression optimum; the guest sends two ciphertexts per row instead
    /// of one. The default.
    Linearized,
    /// `σ(u) ≈ ½ + u/4`, the second-order Taylor expansion of the loss
    /// around 0 (FATE's hetero-LR): one ciphertext per row, but its optimum
    /// is a least-squares fit, ~0.006 AUC below logistic regression on
    /// default_credit.
    Taylor,
}

/// Who holds the decryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A third party (the arbiter) owns the key and decrypts masked
    /// gradients and the loss. Any number of hosts.
    WithArbiter {
        /// The arbiter's party id.
        arbiter: PartyId,
    },
    /// No third party: guest and host each own a key and decrypt only
    /// values masked by the other. Exactly one host (like FATE's SSHE-LR).
    NoArbiter,
}

/// Regularisation (never applied to the intercept).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    /// No penalty.
    None,
    /// `alpha · Σ|w|` (sub-gradient `alpha · sign(w)`).
    L1 {
        /// Strength, `>= 0`.
        alpha: f64,
    },
    /// `alpha/2 · Σ w²`.
    L2 {
        /// Strength, `>= 0`.
        alpha: f64,
    },
}

/// Learning rate per epoch `t` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `lr`.
    Constant,
    /// `lr / sqrt(1 + t)`.
    InvSqrt,
    /// `lr · decay^t`.
    Exponential {
        /// In `(0, 1]`.
        decay: f64,
    },
}

/// Homomorphic encryption scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Paillier (default).
    Paillier,
    /// Okamoto–Uchiyama (faster; see fedra-he's security notes).
    Ou,
}

/// Stop when the epoch loss has not improved by more than `tol` for
/// `patience` consecutive epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Minimum improvement, `>= 0`.
    pub tol: f64,
    /// Epochs without improvement before stopping, `>= 1`.
    pub patience: u32,
}

/// Configuration of a hetero linear-model training task. All parties must
/// use the same configuration.
///
/// TOML shape (defaults shown for optional fields):
/// ```toml
/// guest = "guest"
/// hosts = ["host"]
/// objective = "logistic"                          # or "linear"
/// mode = { with_arbiter = { arbiter = "arbiter" } } # or "no_arbiter"
/// penalty = { l2 = { alpha = 0.01 } }             # "none" | { l1 = { alpha = .. } }
/// learning_rate = 0.15
/// lr_schedule = "constant"                        # "inv_sqrt" | { exponential = { decay = 0.9 } }
/// batch_size = 1024
/// max_epochs = 10
/// sigmoid = "linearized"                         # or "taylor" (logistic only)
/// early_stopping = { tol = 1e-4, patience = 2 }   # optional
/// precision_bits = 20
/// scheme = "paillier"                             # or "ou"
/// key_bits = 2048
/// standardize = true
/// fit_intercept = true
/// shuffle_seed = 42                               # optional; no shuffling if absent
/// task = "hetero_linear"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The label holder.
    pub guest: PartyId,
    /// The feature-only parties.
    pub hosts: Vec<PartyId>,
    /// Logistic or linear regression.
    pub objective: Objective,
    /// Key ownership.
    pub mode: Mode,
    /// Regularisation.
    #[serde(default = "default_penalty")]
    pub penalty: Penalty,
    /// Base learning rate, in `(0, 100]`.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Learning-rate schedule.
    #[serde(default = "default_schedule")]
    pub lr_schedule: LrSchedule,
    /// Rows per mini-batch, `1..=1_000_000` (the last batch may be smaller).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Epochs, `1..=10_000`.
    #[serde(default = "default_epochs")]
    pub max_epochs: u32,
    /// Sigmoid approximation of logistic regression (ignored for linear).
    #[serde(default = "default_sigmoid")]
    pub sigmoid: Sigmoid,
    /// Early stopping on the training loss (for logistic regression, its
    /// expansion in the hosts' scores, see [`Sigmoid`]).
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Fractional bits of the fixed-point encoding, `8..=24` (gradients are
    /// exchanged at scale `2^3F` in 128-bit integers).
    #[serde(default = "default_precision")]
    pub precision_bits: u32,
    /// Encryption scheme.
    #[serde(default = "default_scheme")]
    pub scheme: Scheme,
    /// Modulus size, `2048..=8192` (smaller only under
    /// [`KeyPolicy::insecure_small_keys_for_tests`]).
    #[serde(default = "default_key_bits")]
    pub key_bits: u32,
    /// Which key sizes this party generates and accepts from its peers.
    /// Not part of the job file (a job cannot set it): always
    /// [`KeyPolicy::production`] unless a test assigns
    /// [`KeyPolicy::insecure_small_keys_for_tests`] in code.
    #[serde(skip)]
    pub key_policy: KeyPolicy,
    /// Each party standardises its own columns with its own training mean
    /// and standard deviation (stored in its model).
    #[serde(default = "default_true")]
    pub standardize: bool,
    /// Fit an intercept (held by the guest).
    #[serde(default = "default_true")]
    pub fit_intercept: bool,
    /// Shuffle the rows every epoch with this seed (all parties derive the
    /// same permutation from it, so nothing is exchanged).
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// Task name used in message tags.
    #[serde(default = "default_task")]
    pub task: String,
}

fn default_penalty() -> Penalty {
    Penalty::None
}
fn default_sigmoid() -> Sigmoid {
    Sigmoid::Linearized
}
fn default_lr() -> f64 {
    0.15
}
fn default_schedule() -> LrSchedule {
    LrSchedule::Constant
}
fn default_batch() -> usize {
    1024
}
fn default_epochs() -> u32 {
    10
}
fn default_precision() -> u32 {
    20
}
fn default_scheme() -> Scheme {
    Scheme::Paillier
}
fn default_key_bits() -> u32 {
    fedra_he::DEFAULT_MODULUS_BITS
}
fn default_true() -> bool {
    true
}
fn default_task() -> String {
    "hetero_linear".to_owned()
}

fn bad(field: &'static str, reason: impl Into<String>) -> LinearError {
    LinearError::Config {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// A configuration with every optional field at its default.
    pub fn new(guest: PartyId, hosts: Vec<PartyId>, objective: Objective, mode: Mode) -> Self {
        Config {
            guest,
            hosts,
            objective,
            mode,
            penalty: default_penalty(),
            learning_rate: default_lr(),
            lr_schedule: default_schedule(),
            batch_size: default_batch(),
            max_epochs: default_epochs(),
            sigmoid: default_sigmoid(),
            early_stopping: None,
            precision_bits: default_precision(),
            scheme: default_scheme(),
            key_bits: default_key_bits(),
            key_policy: KeyPolicy::production(),
            standardize: true,
            fit_intercept: true,
            shuffle_seed: None,
            task: default_task(),
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
        match &self.mode {
            Mode::WithArbiter { arbiter } => {
                if *arbiter == self.guest || self.hosts.contains(arbiter) {
                    return Err(bad(
                        "mode.with_arbiter.arbiter",
                        format!(
                            "the arbiter '{arbiter}' must be a third party, not the guest or a host"
                        ),
                    ));
                }
            }
            Mode::NoArbiter => {
                if self.hosts.len() != 1 {
                    return Err(bad(
                        "mode",
                        format!(
                            "no_arbiter supports exactly one host ({} given); use with_arbiter for several hosts",
                            self.hosts.len()
                        ),
                    ));
                }
            }
        }
        match self.penalty {
            Penalty::None => {}
            Penalty::L1 { alpha } | Penalty::L2 { alpha } => {
                if !(alpha.is_finite() && (0.0..=1e6).contains(&alpha)) {
                    return Err(bad("penalty.alpha", format!("{alpha} is not in [0, 1e6]")));
                }
            }
        }
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 100.0)
        {
            return Err(bad(
                "learning_rate",
                format!("{} is not in (0, 100]", self.learning_rate),
            ));
        }
        if let LrSchedule::Exponential { decay } = self.lr_schedule
            && !(decay > 0.0 && decay <= 1.0)
        {
            return Err(bad(
                "lr_schedule.exponential.decay",
                format!("{decay} is not in (0, 1]"),
            ));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(bad(
                "batch_size",
                format!("{} is not in 1..=1000000", self.batch_size),
            ));
        }
        if !(1..=10_000).contains(&self.max_epochs) {
            return Err(bad(
                "max_epochs",
                format!("{} is not in 1..=10000", self.max_epochs),
            ));
        }
        if let Some(es) = self.early_stopping {
            if !(es.tol.is_finite() && es.tol >= 0.0) {
                return Err(bad("early_stopping.tol", format!("{} is not >= 0", es.tol)));
            }
            if es.patience == 0 {
                return Err(bad("early_stopping.patience", "0 is not >= 1"));
            }
        }
        if !(8..=24).contains(&self.precision_bits) {
            return Err(bad(
                "precision_bits",
                format!("{} is not in 8..=24", self.precision_bits),
            ));
        }
        let min_bits = self.key_policy.min_bits().max(256);
        if !(min_bits..=8192).contains(&self.key_bits) {
            return Err(bad(
                "key_bits",
                format!("{} is not in {min_bits}..=8192", self.key_bits),
            ));
        }
        if self.task.is_empty() || self.task.len() > 128 {
            return Err(bad("task", "must be 1 to 128 characters"));
        }
        Ok(())
    }

    /// The learning rate of epoch `t` (0-based).
    pub fn learning_rate_at(&self, epoch: u32) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::InvSqrt => self.learning_rate / (1.0 + f64::from(epoch)).sqrt(),
            LrSchedule::Exponential { decay } => self.learning_rate * decay.powi(epoch as i32),
        }
    }

    /// Every party of the job, guest first, then hosts, then the arbiter.
    pub fn parties(&self) -> Vec<PartyId> {
        let mut v = vec![self.guest.clone()];
        v.extend(self.hosts.iter().cloned());
        if let Mode::WithArbiter { arbiter } = &self.mode {
            v.push(arbiter.clone());
        }
        v
    }
}
