//! # fedra-tree — SecureBoost: vertical gradient-boosted trees
//!
//! One **guest** holds the labels (and maybe features); one or more **hosts** hold
//! other feature columns of the same rows (aligned beforehand, e.g. by
//! `fedra-psi`). Together they train XGBoost-style trees (Cheng et al. 2019,
//! "SecureBoost"), and nobody sees another party's features, thresholds or labels.
//! Protocols are async functions over [`fedra_federation::Channel`]:
//! [`train_guest`], [`train_host`], [`predict_guest`], [`predict_host`].
//! [`train_plaintext`] is the same algorithm with in-process hosts — the
//! "plaintext twin" the tests compare the secure protocol with (bit-identical
//! models), and a quick way to try parameters.
//!
//! ## Algorithm
//! Second-order boosting as XGBoost's `hist` method: quantile bins per feature
//! (missing values get their own slot and each split learns their direction),
//! depth-wise growth, gain `Σ_k T(G_L)²/(H_L+λ) + T(G_R)²/(H_R+λ) − T(G)²/(H+λ)`
//! with L1 soft-thresholding `T`, `min_child_weight`, `gamma`, leaf weights
//! `−T(G)/(H+λ)` times the learning rate. Binary (logistic), regression (squared
//! error) and multi-class (softmax; **multi-output trees** whose leaves hold one
//! weight per class). Row subsampling or GOSS, per-tree feature subsampling
//! (each party samples its own columns), early stopping on a validation split,
//! feature importance (split count and gain).
//!
//! ## Protocol and cost model (per tree)
//! 1. The guest computes `g, h`, encodes them as fixed-point integers
//!    (`precision_bits`), **packs** all of a row's `(g_k, h_k)` into one plaintext
//!    (several classes per ciphertext; slot width chosen from the largest `|g|`
//!    and the row count so sums never overflow), and encrypts **once per row per
//!    tree**: `rows × ⌈2k·s / capacity⌉` encryptions.
//! 2. Per level, each host adds the ciphertexts of each open node's rows into
//!    one bin per feature (`rows_in_node × features` additions), but only for
//!    the **smaller child** of each split: the guest derives the sibling by
//!    subtracting from the parent's histogram after decryption. Empty bins are
//!    not sent. Every sum is re-randomised before it leaves the host.
//! 3. The guest decrypts the sums (both cores), unpacks them, finds the best
//!    split over all parties' features and announces per node: leaf, "guest
//!    split", or "host h, split id k" (plus the missing-value direction). The
//!    owner of the split partitions the node's rows and both sides update.
//!
//! [`Round`] records encryptions and decryptions per tree; hosts count their
//! additions ([`HostCounters`]).
//!
//! Prediction (per job, `T` trees with host splits, `L` their leaves, `n` rows,
//! `k` outputs, `c` classes per ciphertext): the guest encrypts `L·⌈k/c⌉` leaf
//! ciphertexts and sends them with `n · Σ_t ⌈L_t/8⌉` bytes of masks; the last
//! host does `n·⌈k/c⌉·(T−1)` additions and returns `⌈n·⌈k/c⌉ / p⌉`
//! re-randomised ciphertexts (`p` row sums packed per ciphertext: 17 for the
//! 64-tree binary default_credit model with 2048-bit OU); the guest decrypts
//! those ([`PredictStats`]). The
//! encoding (fixed point, slot width from `Σ_t max|w|`, no wrap-around) is
//! documented in the `secure_predict` module.
//!
//! ## Threat model
//! Semi-honest parties, no collusion, authenticated channels (mutual TLS in
//! fedra-transport). Every received message is bounds-checked and every
//! ciphertext validated; a host checks each guest instruction against its own
//! state (node ids, child ids, partition sizes, split ids), so malformed input
//! is an error naming the peer, never a panic.
//!
//! What each party learns:
//! * **Hosts** learn nothing about `g`, `h` or the labels from the ciphertexts
//!   (IND-CPA of Paillier/OU). Like every SecureBoost implementation (FATE,
//!   Fedlearner, SecretFlow SGB) they learn the **instance space** of each node
//!   (which rows are together), hence the partitions induced by the guest's and
//!   the other hosts' splits, and the tree shape. Label-correlated leaves are
//!   what an attacker would exploit: `privacy = "complete_secure"` builds the
//!   first tree from the guest's features alone without telling the hosts
//!   anything about it (FATE's "complete secure" mode). Row sampling is public.
//! * **The guest** learns, per node, the sums of `g` and `h` in each of a host's
//!   feature bins (that is what split finding needs) — hence the ordering
//!   structure of host feature bins over the node's rows and the bin counts —,
//!   the host's chosen split id (feature index and bin index, never the
//!   threshold or any feature value), and which rows go left.
//! * **Prediction** ([`predict_guest`], [`predict_host`]): each party walks only
//!   its own splits. Per tree and row it computes the leaves consistent with its
//!   splits (a bitmask; missing values follow the learned direction); the guest
//!   encrypts every leaf's weights once per prediction job under a fresh key and
//!   sends them with its masks to the first host; each host ANDs its own masks in
//!   and forwards (guest → host 1 → … → last host); the last host adds, per row,
//!   the ciphertexts of the one remaining leaf of every tree, packs several rows'
//!   sums into one ciphertext, re-randomises and returns only those. Trees
//!   without a host split (e.g. the complete-secure first tree) never leave the
//!   guest: it adds their leaves itself.
//!   - **The guest learns only the predictions** (each row's margin, hence its
//!     score): no host split outcome, mask, leaf index or threshold.
//!   - **Hosts** learn, for the trees with host splits, the guest's split
//!     outcomes on the predicted rows (and a later host those of the earlier
//!     hosts, as the intersected masks); the **last host learns the leaf of every
//!     predicted row in each of these trees** — the same kind of instance-space
//!     information hosts learn during training, now for the predicted rows.
//!     They never see a leaf weight, a margin or a prediction (leaf weights and
//!     sums are IND-CPA ciphertexts under the guest's key).
//!   - Semi-honest only: a guest that deviates (e.g. encodes the leaf index in
//!     the weights it encrypts, or sends all-ones masks) could learn host split
//!     outcomes; a host that deviates could return wrong sums. With several
//!     hosts, hosts must reach each other (they forward the masks).
//! * `scheme = "insecure_plaintext"` sends `g`/`h` (and, at prediction, the leaf
//!   weights) in the clear: for debugging on non-sensitive data only.
//!
//! Scheme choice: **OU** (default) is several times faster than Paillier; its
//! security rests on factoring `n = p²q` (less studied than Paillier's DCR
//! assumption) — see fedra-he. Choose `scheme = "paillier"` for the
//! conservative assumption.
//!
//! ```
//! use fedra_data::Dataset;
//! use fedra_federation::PartyId;
//! use fedra_tree::{Config, Objective, predict_plaintext, train_plaintext};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ids: Vec<String> = (0..8).map(|i| i.to_string()).collect();
//! let y: Vec<f64> = (0..8).map(|i| f64::from(i >= 4)).collect();
//! let gx: Vec<f64> = (0..8).map(f64::from).collect();
//! let hx: Vec<f64> = (0..8).map(|i| f64::from(i % 2)).collect();
//! let guest = Dataset::new("id", ids.clone(), Some(("y".into(), y)), vec!["a".into()], gx)?;
//! let host = Dataset::new("id", ids, None, vec!["b".into()], hx)?;
//! let mut cfg = Config::new(PartyId::new("g")?, vec![PartyId::new("h")?], Objective::Binary);
//! cfg.trees = 3;
//! cfg.min_child_weight = 0.0;
//! let (gm, hms) = train_plaintext(&cfg, &guest, &[&host])?;
//! let p = predict_plaintext(&gm, &hms, &guest, &[&host])?;
//! assert!(p[7] > p[0]);
//! # Ok(())
//! # }
//! ```

mod binning;
mod codec;
mod config;
mod error;
mod grow;
mod hist;
mod host;
mod model;
mod objective;
mod pack;
mod plain;
mod predict;
mod protocol;
mod secure_predict;
mod wire;

pub use binning::{Binned, FeatureBins};
pub use config::{Config, EarlyStopping, Goss, Objective, Privacy, Scheme};
pub use error::{Result, TreeError};
pub use model::{GuestModel, GuestNode, HostModel, HostNode, Importance, Round};
pub use objective::transform;
pub use plain::{predict_plaintext, train_plaintext};
pub use protocol::{HostCounters, train_guest, train_host};
pub use secure_predict::{PredictStats, predict_guest, predict_host};
