//! # fedra-nn — Fedra's thin layer over a neural-network crate
//!
//! Dense networks with reverse-mode autodiff for horizontal FL and, later,
//! split learning, behind an API of our own so that the library underneath
//! can change without touching the protocols.
//!
//! * [`MlpSpec`] (serde) → [`Mlp`]: fully connected layers, ReLU or tanh,
//!   Xavier/He initialisation from a caller's RNG (same generator state ⇒
//!   same weights); no hidden layers = logistic/linear regression
//!   ([`MlpSpec::logistic_regression`]).
//! * Losses ([`LossKind`]): sigmoid binary cross-entropy, softmax
//!   cross-entropy, MSE; [`Mlp::predict`] gives probabilities.
//! * One flat parameter vector in a stable order — tensors sorted by name
//!   ([`Mlp::layout`]), each row-major: [`Mlp::params_flat`] /
//!   [`Mlp::set_params_flat`] round-trip exactly; [`Mlp::gradient`] returns
//!   the gradient in the same order.
//! * [`Optimizer`]: SGD with momentum, Adam (PyTorch update rules, L2 weight
//!   decay), with serde-checkpointable [`OptimizerState`].
//! * DP-SGD with a caller-supplied CSPRNG, noise via `fedra-dp`:
//!   [`Mlp::dp_gradient_per_example`] — exact per-example clipping by ghost
//!   norms in one backward pass; [`Mlp::dp_gradient`] — micro-batch
//!   clipping (one pass per micro-batch).
//! * Split learning: [`Mlp::forward_tape`] + [`Tape::backward`] (backward
//!   from an injected output gradient, with the input gradient),
//!   [`Mlp::gradient_with_input`] (the top model's loss gradient with
//!   respect to its input), [`joint_gradient`] (the end-to-end reference in
//!   one graph), and [`MlpSpec::output_activation`] for the cut layer.
//!
//! ## Backend: candle
//! The tensors and autodiff are [candle](https://docs.rs/candle-core)'s
//! (`candle-core` only, no default features: CPU, no CUDA/Metal/MKL). Per
//! the measurements in the shared notes, candle builds about twice as fast
//! as burn and has had a stable API, while burn is ~2× faster per step; for
//! the FL models here (tens of thousands of parameters) build time and
//! stability matter more. `candle-nn` is not used: layers, losses and
//! optimisers are a few lines here over our flat layout, which makes the
//! optimiser state checkpointable and keeps the dependency tree small.
//!
//! Measured on the shared 2-core development machine, under load from
//! other builds (`cargo bench -p fedra-nn`, `benches/mlp.rs`,
//! 30→128→128→128→1, fwd + bwd + Adam step, median [range]):
//!
//! | batch | examples/s (second run) | first run, heavier load |
//! |---|---|---|
//! | 64 | 43k [33k–58k] | 26k [17k–43k] |
//! | 256 | 105k [95k–112k] | 74k [62k–88k] |
//! | 64, DP-SGD, ghost per-example clipping | 33k (≈ 1.3× a plain step) | – |
//! | 64, DP-SGD, micro-batches of 1 | 2.7k (≈ 16× a plain step) | 0.4k |
//!
//! Dependency tree: 158 distinct crates (`cargo tree -p fedra-nn -e normal`);
//! candle-core 0.11 depends on `tokenizers` unconditionally (0.9.1 did not:
//! 122 crates). Clean dev build of this crate with its dependencies: 10.6
//! min wall / 7.3 min CPU on the loaded machine (load ≈ 4.8 on 2 cores).
//!
//! ```
//! use fedra_nn::{Mlp, MlpSpec, Optimizer, OptimizerConfig};
//! use rand_core::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
//! let mut model = Mlp::new(MlpSpec::binary(2, vec![8]), &mut rng)?;
//! let mut opt = Optimizer::new(OptimizerConfig::adam(0.05))?;
//! let x = [0.0, 1.0, 1.0, 0.0, 2.0, 2.0, -1.0, -2.0];
//! let y = [1.0, 0.0, 1.0, 0.0];
//! let first = model.train_step(&mut opt, &x, &y, 4)?;
//! for _ in 0..50 {
//!     model.train_step(&mut opt, &x, &y, 4)?;
//! }
//! assert!(model.loss(&x, &y, 4)? < first);
//! let p = model.predict(&x, 4)?;
//! assert_eq!(p.len(), 4);
//! # Ok::<(), fedra_nn::NnError>(())
//! ```

mod error;
mod mlp;
mod optim;
mod spec;
mod split;

pub use error::{NnError, Result};
pub use mlp::{DpSgd, Mlp, ParamInfo};
pub use optim::{Optimizer, OptimizerConfig, OptimizerState};
pub use spec::{Activation, Init, LossKind, MAX_HIDDEN_LAYERS, MAX_PARAMS, MAX_WIDTH, MlpSpec};
pub use split::{BottomInput, Gradients, JointGradients, Tape, joint_gradient};
