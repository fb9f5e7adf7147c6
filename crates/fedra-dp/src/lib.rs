//! # fedra-dp — differential privacy for Fedra
//!
//! A pure library (no I/O besides [`Accountant::save`]/[`Accountant::load`]):
//!
//! * **Accounting** ([`rdp`]): Rényi-DP of the Poisson-subsampled Gaussian mechanism
//!   under the add-or-remove-one relation and its conversion to (ε, δ), a line-by-line
//!   port of Google's `dp-accounting` 0.6 `RdpAccountant` (same default orders, same
//!   series, same improved conversion); the tests pin it to values computed with
//!   dp-accounting itself (`tests/reference.py`), agreeing to ~1e-12 relative.
//! * **Composition and persistence** ([`Accountant`]): records heterogeneous rounds
//!   (σ, q, steps), reports ε per round and in total, and saves/loads its state as
//!   JSON atomically so a restarted server resumes with the same budget spent.
//! * **Planning** ([`epsilon`], [`delta`], [`noise_multiplier_for`], [`steps_for`]):
//!   what `fedra privacy epsilon` needs.
//! * **Mechanisms** ([`mechanisms`]): Gaussian noise from a caller-supplied CSPRNG, L2
//!   clipping, and the DP-SGD aggregation step with per-example or micro-batch
//!   clipping. Read the floating-point caveat in the module docs.
//!
//! ```
//! use fedra_dp::{Plan, epsilon, noise_multiplier_for};
//! let plan = Plan { noise_multiplier: 1.1, sampling_rate: 0.01, steps: 6000, delta: 1e-5 };
//! let report = epsilon(&plan)?;
//! println!("ε = {:.3} at δ = {} (order {})", report.epsilon, report.delta, report.order);
//!
//! let sigma = noise_multiplier_for(report.epsilon, 0.01, 6000, 1e-5)?;
//! assert!((sigma - 1.1).abs() < 1e-5);
//! # Ok::<(), fedra_dp::DpError>(())
//! ```
//!
//! Every error is a [`DpError`] with a stable [`DpError::code`] (`dp.*`).

pub mod accountant;
pub mod error;
pub mod mechanisms;
pub mod planning;
pub mod rdp;

pub use accountant::{Accountant, Event, RoundReport, STATE_FORMAT, STATE_VERSION};
pub use error::{DpError, Result};
pub use mechanisms::{
    NoisyAggregation, Scalar, add_gaussian_noise, clip_and_aggregate, clip_l2, l2_norm,
    microbatch_clip_and_aggregate,
};
pub use planning::{
    DeltaReport, EpsilonReport, MAX_NOISE_MULTIPLIER, MAX_STEPS, NOISE_MULTIPLIER_REL_TOL, Plan,
    delta, epsilon, noise_multiplier_for, steps_for,
};
