//! # fedra-splitnn — split neural networks (vertical NN)
//!
//! Each party runs a **bottom tower** over its own features: hashed sparse
//! ids looked up in embedding tables ([`SparseEmbedding`]) concatenated
//! with dense features, then an MLP whose output (the *cut layer*, width
//! `k`) is all that leaves the party. The label holder (the **leader**)
//! concatenates every party's cut output, runs the **top tower** (MLP +
//! loss: sigmoid BCE, MSE or softmax cross-entropy) and sends each
//! **follower** the gradient with respect to its part of the cut; every
//! party then updates its own tower ([`protocol`]).
//!
//! * Embedding tables stay outside the autodiff graph and are updated
//!   **row-wise** (only the rows a batch touches; row-wise Adagrad,
//!   Adagrad, lazy Adam, FTRL-Proximal or SGD;
//!   [`SparseEmbedding::bytes_per_row`] reports the memory per row) — see
//!   [`embedding`]. Multi-valued fields are pooled (mean or sum).
//! * [`tower`]: [`BottomTower`], [`TopTower`] over `fedra-nn` MLPs with
//!   gradient injection ([`fedra_nn::Tape`]).
//! * [`protocol`]: [`train_leader`] / [`train_follower`] and
//!   [`predict_leader`] / [`predict_follower`] over
//!   [`fedra_federation::Channel`], staleness 0 or 1 (pipelining), batch order from a shared
//!   public seed, every received matrix validated ([`wire`]).
//! * [`central`]: the same model trained in one process with one
//!   end-to-end graph — the reference the protocol is tested against.
//!
//! * [`privacy`]: what the leader does to the gradients it returns (none,
//!   Li et al.'s max-norm noise, or per-example clipping + Gaussian noise
//!   with `fedra-dp` accounting) and the norm-attack leak meter.
//!
//! ## Measured (shared 2-core machine, load average 3–8 from other builds)
//!
//! * default_credit vertical split (guest = leader with the label and 13
//!   features, host = follower with 10), stratified 80/20 (seed 42), each
//!   bottom 128 → cut 64 (ReLU), top 128 → 128 → 1, Adam 1e-3, batch 256,
//!   8 epochs: held-out AUC **0.7688**, identical (Δ = 0) to the
//!   centralized one-graph twin; other init seeds 0.7707, 0.7691, 0.7712;
//!   staleness 1: 0.7681. Norm-attack leak AUC (3 epochs): 0.926 without
//!   defence, 0.505 with max-norm (held-out AUC 0.764 → 0.758), 0.515 with
//!   clip 1 + σ 1 (ε = 1.50 at δ = 1e-5, AUC 0.745). (`cargo test -p
//!   fedra-splitnn -- --nocapture`.)
//! * One step on the synthetic Criteo shape, batch 512 (`cargo bench -p
//!   fedra-splitnn`, `benches/split_step.rs`: follower 26 fields × 16 over
//!   one 10^6-row table, 68 bytes/row (64.8 MiB), 416 → cut 64; leader 13
//!   dense → cut 16; top 80 → 256 → 128 → 1). Criterion medians over three
//!   runs at load 3–7 varied up to 2× between runs: split step in one thread
//!   with wire encoding 15.7–20.0 ms (≈ 25–33k examples/s), centralized
//!   one-graph step 21.4–23.6 ms, the protocol over `MemNetwork` 18.9–38.1
//!   ms. Interleaving the two in one process (200 steps each, alternating
//!   every 5) gave split 32.1 ms CPU / 41.9 ms wall per step vs
//!   centralized 34.3 / 44.1 at load ≈ 6: the split step costs about the
//!   same as the centralized one; no finer claim survives this noise.
//! * As a job (`target/release/fedra`, load 4–5):
//!   `examples/splitnn-default-credit` (the configuration above, init from
//!   the job's `init_seed`): held-out AUC 0.7731, train AUC 0.816, 3.4 s of
//!   training (56k examples/s), leak AUC 0.920 (max_norm: 0.502 at AUC
//!   0.7662; dp clip 1 σ 1: 0.508 at AUC 0.7644, ε = 2.00). `fedra bench splitnn` (two
//!   processes over loopback mTLS vs one-process centralized, batch 512,
//!   131k–262k rows): split 14.6k–36.0k examples/s, centralized 16.1k–27.1k,
//!   ratio 0.90–2.00 over six runs; 257 bytes per example each way; 68
//!   bytes per embedding row.
//!
//! * [`decl`]: the declarative form of a model and schedule (what a job
//!   file's `kind = "splitnn"` task says), converted to the specs above by
//!   one code path; [`builder`]: the Keras-like builder
//!   (`Tower::builder()...build()`, `SplitModel::new().compile().fit()`),
//!   sugar that fills the same declarations.
//! * Wired into jobs by `fedra-runtime` (`tasks/splitnn.rs`: held-out
//!   split, categorical columns hashed into the tables, metrics, checkpoint
//!   files and resume) and the CLI (`fedra gen criteo`, `fedra bench
//!   splitnn`; see the README for the measured numbers).
//!
//! Not yet: encrypted forward (EFLS's Paillier first layer), Marvell,
//! embedding tables larger than RAM, checkpoints in a compact binary format
//! (they are JSON: fine for the examples, slow for 10^6-row tables), and
//! prediction jobs with a saved split model.

//!
//! ```
//! use fedra_splitnn::{BottomSpec, BottomTower, Features, Pooling, TableSpec};
//! use fedra_nn::{Activation, OptimizerConfig};
//! use rand_core::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! // Two hashed fields sharing one 1000-row × 8 table, plus 3 dense features.
//! let spec = BottomSpec {
//!     dense: 3,
//!     tables: vec![TableSpec::new(1000, 8, 0.05)],
//!     fields: vec![0, 0],
//!     hidden: vec![16],
//!     output: 4,
//!     activation: Activation::Relu,
//!     cut_activation: Some(Activation::Relu),
//!     optimizer: OptimizerConfig::adam(1e-3),
//!     pooling: Pooling::Mean,
//! };
//! let mut tower = BottomTower::new(spec, &mut rng)?;
//! assert_eq!(tower.tables()[0].bytes_per_row(), 4 * 8 + 4); // weights + row-wise Adagrad
//! let f = Features::new(2, 3, vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2, vec![17, 99, 17, 5])?;
//! let pass = tower.forward(&f, &[0, 1])?;       // the cut output goes to the leader
//! assert_eq!(pass.output().len(), 2 * 4);
//! tower.backward(pass, &[0.01; 8])?;             // the leader's gradient comes back
//! # Ok::<(), fedra_splitnn::SplitError>(())
//! ```

#![forbid(unsafe_code)]

pub mod builder;
pub mod central;
pub mod decl;
pub mod embedding;
mod error;
pub mod privacy;
pub mod protocol;
pub mod tower;
pub mod wire;

pub use builder::{Compiled, SplitModel, Tower, TowerBuilder};
pub use central::{CentralData, central_predict, central_step, train_centralized};
pub use decl::{
    CutActivation, DenseTransform, Objective, ProtectionDecl, SparseDecl, SplitDecl, TableLayout,
    TopDecl, TowerDecl,
};
pub use embedding::{
    EmbeddingOptimizer, SparseEmbedding, TableSpec, TableState, dedupe, hash_str, mix64,
};
pub use error::{Result, SplitError};
pub use privacy::{GradientProtection, LeakMeter};
pub use protocol::{
    CheckpointSink, EvalObserver, EvalPoint, FollowerCut, Labels, LeaderModel, PartyData,
    PartyState, SplitConfig, TrainReport, batch_order, predict_follower, predict_leader,
    train_follower, train_leader, train_leader_observed,
};
pub use tower::{
    BottomPass, BottomSpec, BottomState, BottomTower, Features, Gathered, MAX_BAG, Pooling,
    TopSpec, TopState, TopTower,
};
