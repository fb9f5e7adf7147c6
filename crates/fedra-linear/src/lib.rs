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
//! partial scores `u_p = w_p·x_p` (the guest's includes the intercept) and
//! `u = Σ_p u_p`, the per-row residual is `d = a·(u + c(y))`:
//! logistic regression uses the second-order Taylor expansion of the
//! logistic loss around 0, `d = ¼u − ½y` (y ∈ {−1, 1}), i.e. `a = ¼,
//! c = −2y`; linear regression `d = u − y` (`a = 1, c = −y`). Each party's
//! gradient is `X_pᵀd / B` (+ penalty), so only the residual has to be
//! shared — encrypted. The training loss (Taylor loss, resp. ½·MSE, plus
//! penalty) is computed without cross terms between parties from the
//! identity `loss_i = ½·d_i·u_i + β(y_i)·u_i + γ(y_i)` and
//! `Σ_i d_i·u_i = Σ_p w_p·(X_pᵀd)`: every party adds its `½·w_p·X_pᵀd`
//! (which it knows once it has its gradient) under encryption or a mask.
//!
//! Values are fixed-point encoded with `precision_bits` fractional bits;
//! every homomorphic computation is exact over the integers, so the
//! secure result equals the plaintext fixed-point reference exactly.
//! Each party standardises its own columns with its own training mean and
//! std (`standardize`, default on; nothing is exchanged for that).
//!
//! ### Mode `with_arbiter` (any number of hosts)
//! The arbiter generates the key pair. Per batch: each host sends
//! `[[U_h]]` (its encoded partial scores) to the guest; the guest forms
//! `[[D']] = Enc(U_g + c(y)) · Π_h [[U_h]]` (the fresh encryption
//! re-randomises the product) and sends it to the hosts; every party
//! computes `[[X_pᵀD' + m_p]]` with [`fedra_he::HePublicKey::dot_columns`]
//! and a fresh encryption of a random mask `m_p`, the arbiter decrypts and
//! returns `X_pᵀD' + m_p`, the party removes its mask and updates its
//! weights. Hosts then send `[[½·w_h·X_hᵀd]]`; the guest adds
//! `[[Σ β(y)·U_h]]` (a `dot` with its labels' coefficients) and its own
//! terms and sends the encrypted batch loss to the arbiter, which
//! decrypts it, averages per epoch, decides early stopping and tells
//! everyone (the loss value to the guest only).
//!
//! ### Mode `no_arbiter` (exactly one host, like FATE 2.0's SSHE-LR)
//! FATE 2.0's coordinated LR needs an arbiter; its arbiter-less SSHE-LR
//! (secret sharing + HE) supports one host. We use the same ingredients
//! in a simpler two-party protocol: guest and host each generate a key.
//! Per batch: the host secret-shares its scores as `U_h = (U_h − R) + R`
//! with `R` uniform in `[0, 2^126)`, sends the guest the share
//! `U_h − R` (statistically hiding `U_h`) and `[[U_h]]_host` (under its
//! own key). The guest sends `[[E]]_guest` with `E = U_g + c(y) + U_h − R`
//! (fresh encryption under its own key); the host adds `R` under
//! encryption to get `[[D']]_guest`, computes `[[X_hᵀD' + m]]_guest` and
//! the guest decrypts only that masked vector. Symmetrically the guest
//! computes `[[X_gᵀU_h + m', Σ β(y)·U_h + m'']]_host` on the host's
//! ciphertexts, the host decrypts that masked vector, adds its own loss
//! contribution to the last entry and returns it; the guest removes its
//! masks and adds `X_gᵀ(U_g + c(y))`, which it computes locally. The
//! guest computes the epoch loss and decides early stopping.
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
//! integers over values below ~2^80: statistical hiding (distance
//! < 2^-46), not perfect hiding.
//!
//! What each party learns, per mode (besides the public config: row
//! count, feature counts, batch schedule, epochs actually run):
//!
//! | | with_arbiter | no_arbiter |
//! |---|---|---|
//! | guest | its own exact gradient per batch; the epoch loss | its own exact gradient per batch; the batch loss (hence epoch loss); `U_h − R` (statistically hiding) |
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
//!
//! **Prediction** ([`predict_guest`]/[`predict_host`]): hosts send their
//! plaintext partial scores `w_h·x_h` to the guest, which alone learns the
//! predictions. With one host the prediction itself reveals the host's
//! partial score (`u_h = u − u_g`), so this leaks nothing extra; with
//! several hosts the guest learns each host's partial score rather than
//! only their sum (not hidden in this version).
//!
//! Not protected: malicious parties (a party that deviates can bias the
//! model or learn more, e.g. an arbiter decrypting other ciphertexts it
//! is sent), side channels (the inner products are not constant time in
//! the evaluating party's features; see fedra-he), and membership in the
//! aligned set (the job of the alignment step).
//!
//! ## Performance
//! Each party encrypts one value per row per batch with
//! `encrypt_batch` (rayon), computes its gradient with the bucket
//! multi-exponentiation `dot_columns`, and decrypts only one value per
//! feature with `decrypt_batch`. Computation runs on the calling thread
//! and rayon's pool (the async functions block while computing).
//! `examples/lr_bench.rs` measures an epoch.

mod config;
mod core;
mod error;
mod model;
pub mod plaintext;
mod protocol;
mod wire;

pub use config::{Config, EarlyStopping, LrSchedule, Mode, Objective, Penalty, Scheme};
pub use error::{LinearError, Result};
pub use model::{GuestModel, HostModel, Scaling};
pub use protocol::{predict_guest, predict_host, train_arbiter, train_guest, train_host};
