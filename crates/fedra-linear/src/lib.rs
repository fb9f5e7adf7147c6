//! # fedra-linear — hetero (vertical) logistic and linear regression
//!
//! One **guest** holds the labels and some feature columns; one or more
//! **hosts** hold other feature columns of the same rows (already aligned,
//! e.g. by `fedra-psi`, same order on every party). Each party trains the
//! weights of its own columns; nobody sees another party's features,
//! weights, labels or plaintext partial scores. Protocols are async
//! functions over [`fedra_federation::Channel`], one per role:
//! [`train_guest`], [`train_host`], [`train_arbiter`], [`predict_guest`],
//! [`predict_host`]. [`plaintext::train_plaintext`] is the same algorithm in
//! the clear (the tests check that the secure protocols compute exactly
//! what it computes).
//!
//! ## Algorithm
//!
//! Mini-batch gradient descent (Hardy et al. 2017 / FATE hetero-LR). With
//! partial scores `a = w_g·x_g` (the guest's, intercept included) and
//! `b = Σ_h w_h·x_h` (the hosts'), each party's gradient is `X_pᵀd / B`
//! (+ penalty) for the per-row residual `d`, so only the residual has to
//! be shared — encrypted. The guest, which holds the labels and `a`,
//! writes the residual as **linear in `b`**: `d = β(a, y) + α(a)·b`, and
//! the loss as `ℓ(a, y) + β·b + ½·α·b²`:
//!
//! * linear regression: `ℓ = ½(a − y)²`, `β = a − y`, `α = 1` (exact);
//! * logistic regression, [`Sigmoid::Linearized`] (default):
//!   `σ(a + b) ≈ σ(a) + σ'(a)·b`, i.e. `β = σ(a) − y`, `α = σ(a)(1 − σ(a))`,
//!   `ℓ = ln(1 + eᵃ) − y·a`: exact in the guest's own score, a first-order
//!   expansion in the hosts'. On default_credit it converges to within
//!   0.002 AUC of scikit-learn's exact logistic regression;
//! * logistic regression, [`Sigmoid::Taylor`]: FATE's second-order Taylor
//!   expansion around 0, `σ(u) ≈ ½ + u/4` (`α = ¼`): one ciphertext per row
//!   less, but its optimum is a least-squares fit (0.005–0.007 AUC below
//!   logistic regression on default_credit).
//!
//! Values are fixed-point encoded with `F = precision_bits` fractional bits
//! (`a`, `b`, `α` at `2^F`, `β` and `d` at `2^2F`, gradients at `2^3F`, the
//! loss at `2^(3F+1)`); every homomorphic computation is exact over the
//! integers, so the secure result equals the plaintext reference
//! ([`plaintext::train_plaintext`]) exactly. Each party standardises its
//! own columns with its own training mean and std (`standardize`, default
//! on; nothing is exchanged for that).
//!
//! ### Mode `with_arbiter` (any number of hosts)
//! The arbiter generates the key pair. Per batch: each host sends
//! `[[U_h]]` (its encoded partial scores) to the guest; the guest forms
//! `[[D]] = Enc(B) · (Π_h [[U_h]])^A` row by row (the fresh encryption
//! re-randomises) and sends it to the hosts; every party computes
//! `[[X_pᵀD + m_p]]` with [`fedra_he::HePublicKey::dot_columns`] and a
//! fresh encryption of a random mask `m_p`, the arbiter decrypts and
//! returns `X_pᵀD + m_p`, the party removes its mask and updates its
//! weights. For the loss, each host sends `[[Σ U_h·D + penalty]]` (one
//! more column of its inner products), the guest adds `[[Σ B·U]]` and
//! `Enc(Σ ℓ + its penalty)` — together `Σ ℓ + β·b + ½·α·b²` — and the
//! arbiter decrypts the batch loss, averages per epoch, decides early
//! stopping and tells everyone (the loss value to the guest only).
//!
//! ### Mode `no_arbiter` (exactly one host)
//! FATE 2.0's coordinated LR needs an arbiter; its arbiter-less SSHE-LR
//! (secret sharing + HE) supports one host. Here guest and host each
//! generate a key and nothing is decrypted unmasked by the other side.
//! Per batch: the host sends `[[U_h]]_host` under its own key; the guest
//! sends `[[B]]_guest` under its own key — for the linearised sigmoid
//! `[[B + 2^192·A]]_guest`, both in one plaintext. The host computes, under
//! the guest's key, `[[X_hᵀB + X_hᵀ(A∘U_h) + m]]` and one more entry
//! `[[Σ 2·U_h·B + A·U_h² + 2·penalty]]`: with a constant `α` the `A` terms
//! are its own to add in the clear; with packed values it computes
//! `2^192·Σ s1·P + Σ s2·P` (scalars `s1 = x, 2U_h` and `s2 = x·U_h, U_h²`),
//! whose middle slot is the wanted sum, and masks all three slots (the
//! low one, `Σ x·U_h·B`, and the high one, `Σ x·A`, must stay hidden);
//! the guest decrypts, keeps the middle slots, returns the masked gradient
//! and keeps the loss entry. Symmetrically the
//! guest computes `[[X_gᵀ(A∘U_h) + m']]_host` on the host's ciphertexts
//! (scalars `x·A`), the host decrypts the masked vector and returns it;
//! the guest removes its mask and adds `X_gᵀB`, which it computes locally.
//! The guest computes the epoch loss and decides early stopping.
//!
//! ## Threat model
//!
//! Semi-honest (honest-but-curious) parties that follow the protocol, no
//! collusion (in particular not the arbiter with a guest or host), and
//! authenticated channels (fedra-transport: mutual TLS). Every received
//! message is checked for its exact size and shape, and every ciphertext
//! is validated (range, coprimality) before use; a malformed message is an
//! error naming the peer ([`fedra_federation::FedError::Decode`]), never a
//! panic. Every ciphertext that leaves a party is a fresh encryption or
//! the product of one (i.e. re-randomised). Masks are uniform 126-bit
//! integers; masked values stay below ~2^80 at the default 20 bits of
//! precision and batches of a few thousand rows: statistical hiding
//! (distance < 2^-46), not perfect hiding.
//!
//! What each party learns, per mode (besides the public config: row
//! count, feature counts, batch schedule, epochs actually run):
//!
//! | | with_arbiter | no_arbiter |
//! |---|---|---|
//! | guest | its own exact gradient per batch; the epoch loss | its own exact gradient per batch; the batch loss (hence epoch loss) |
//! | host | its own exact gradient per batch; the stop flag | its own exact gradient per batch; the stop flag |
//! | arbiter | every party's gradient **plus a mask** (nothing), the batch and epoch loss | — |
//!
//! Nobody learns another party's features, weights, labels, residuals
//! `d` or partial scores `u_h` in the clear during training; hosts never see
//! anything about the labels except through their own gradients.
//! Inherent leakage (the same in FATE's hetero-LR): a party that learns its
//! own exact gradient `X_pᵀd/B` learns `|features|` linear combinations of
//! the batch residuals per batch (for the guest: of the hosts' partial
//! scores, `X_gᵀu_h`); over many batches with few rows this can reveal a
//! lot, so keep `batch_size` well above the party's feature count. The
//! loss leaks one aggregate per batch (no_arbiter) or epoch (arbiter).
//! With the linearised sigmoid, a host's gradient `X_hᵀ(β + α∘b)/B` is
//! computed from the guest's per-row `β`, `α`, which depend on the guest's
//! partial scores and labels exactly as the exact logistic gradient does;
//! the host still sees only the aggregate `X_hᵀd`, never `α`, `β` or `d`.
//!
//! **Prediction** ([`predict_guest`]/[`predict_host`]): hosts send their
//! partial scores `w_h·x_h` (fixed point) to the guest, which alone learns
//! the predictions. With one host the prediction itself reveals the host's
//! partial score (`u_h = u − u_g`), so it is sent as is; with several
//! hosts every pair of hosts agrees on a fresh seed (host to host, over
//! their authenticated channel) and masks its scores with a ChaCha20
//! stream that the other host of the pair subtracts, modulo 2^128: the
//! guest learns only `Σ_h u_h` per row (perfectly hiding the individual
//! hosts' scores, unless hosts collude with the guest).
//!
//! Not protected: malicious parties (a party that deviates can bias the
//! model or learn more, e.g. an arbiter decrypting other ciphertexts it
//! is sent), side channels (the inner products are not constant time in
//! the evaluating party's features; see fedra-he), and membership in the
//! aligned set (the job of the alignment step).
//!
//! ## Performance
//! Per row and batch: the host encrypts one value and the guest one (in
//! `with_arbiter` mode the guest also raises each row's `[[U]]` to its
//! `F`-bit `α`); with the linearised sigmoid in `no_arbiter` mode the
//! host's inner products run twice over the packed ciphertexts, and
//! plaintexts need 500 bits (Paillier ≥ 512-bit, OU ≥ 1536-bit moduli:
//! always true for real keys). Each party encrypts with
//! `encrypt_batch` (rayon), computes its gradient with the bucket
//! multi-exponentiation `dot_columns`, and decrypts only one value per
//! feature with `decrypt_batch`. Computation runs on the calling thread
//! and rayon's pool (the async functions block while computing).
//! `examples/lr_bench.rs` measures an epoch.

mod config;
mod core;
mod error;
mod model;
mod pack;
pub mod plaintext;
mod protocol;
mod wire;

pub use config::{Config, EarlyStopping, LrSchedule, Mode, Objective, Penalty, Scheme, Sigmoid};
pub use error::{LinearError, Result};
pub use model::{GuestModel, HostModel, Scaling};
pub use protocol::{predict_guest, predict_host, train_arbiter, train_guest, train_host};
