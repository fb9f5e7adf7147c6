//! # fedra-psi — private set intersection and data alignment for Fedra
//!
//! Two-party PSI protocols written as async functions over a
//! [`fedra_federation::Channel`], so the same code runs in memory in tests and over
//! the real transport:
//!
//! * [`ecdh::ecdh_psi`] — ECDH-PSI over ristretto255 (curve25519-dalek), with
//!   hash partitioning into buckets, streamed batches, per-bucket checksums and two
//!   [`OutputMode`]s. The default choice: fastest, no long-term keys.
//! * [`rsa`] — RSA blind-signature PSI (Fedlearner/EFLS style): a key holder signs
//!   the client's blinded hashes; the key holder's own set is signed once offline
//!   and kept in a persistent [`rsa::SignCache`], so repeated jobs over a slowly
//!   changing id set only sign the new ids. Asymmetric cost (cheap client).
//! * [`align()`] — restricts a [`fedra_data::Dataset`] to the intersection, in the
//!   canonical order both parties agree on ([`align_with`] adds a policy for ids on
//!   several rows).
//!
//! **Duplicate ids.** Both protocols work on the *set* of distinct ids: repeated ids
//! in the input are collapsed before anything is sent (first occurrence kept), count
//! once in [`PsiStats::ids_in`] and in the size each party announces, and appear at
//! most once in [`Intersection::ids`]. So the intersection of two files with
//! repeated ids is the intersection of their distinct ids. Mapping an intersection
//! id back to a row is then ambiguous when the id is on several rows: [`align()`]
//! refuses such ids ([`PsiError::Align`]); [`align_with`] with
//! [`Duplicates::KeepFirst`] keeps the first such row instead.
//!
//! Both protocols return an [`Intersection`] and [`PsiStats`]. Randomness always
//! comes from the caller (`&mut (impl CryptoRng + RngCore)`); library functions
//! never create an RNG (exception, documented in [`rsa`]: OpenSSL's own CSPRNG
//! generates RSA keys and the RSA blinding inside the private-key operation).
//!
//! Each protocol module has a **threat model** section. In short, both protocols
//! assume semi-honest parties; what a party learns is the intersection or only its
//! size (by output mode), plus the peer's set size (and, for ECDH with buckets,
//! per-bucket counts), and nothing about the peer's other ids.
//!
//! ```
//! use fedra_federation::{PartyId, mem::MemNetwork};
//! use fedra_psi::{EcdhConfig, OutputMode, Role, ecdh_psi};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (a, b) = (PartyId::new("guest")?, PartyId::new("host")?);
//! let mut net = MemNetwork::new("job-1", &[a.clone(), b.clone()]);
//! let (ca, cb) = (net.take(&a)?, net.take(&b)?);
//! let cfg = EcdhConfig::new("psi").with_mode(OutputMode::LeaderOnly);
//! let xs: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
//! let ys: Vec<String> = ["2", "3", "4"].map(String::from).to_vec();
//! let (mut ra, mut rb) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
//! let (ra, rb) = tokio::join!(
//!     ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut ra),
//!     ecdh_psi(&cb, &a, Role::Follower, &cfg, &ys, &mut rb),
//! );
//! let (leader, follower) = (ra?.0, rb?.0);
//! assert_eq!(leader.size, 2);
//! let mut common = leader.ids.clone();
//! common.sort();
//! assert_eq!(common, ["2", "3"]);
//! assert_eq!((follower.size, follower.ids_revealed), (2, false));
//! # Ok::<(), fedra_psi::PsiError>(())
//! # }).unwrap();
//! ```

pub mod align;
pub mod ecdh;
pub mod error;
pub mod hash;
pub mod rsa;
mod wire;

pub use align::{Duplicates, align, align_with};
pub use ecdh::{EcdhConfig, ecdh_psi};
pub use error::PsiError;
pub use rsa::{RsaConfig, RsaOutput, RsaPsiKey, SignCache, rsa_psi_client, rsa_psi_key_holder};

/// Which side of a two-party ECDH-PSI run this party plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Draws the bucket salt and always learns the intersection.
    Leader,
    /// Learns the intersection or only its size, by [`OutputMode`].
    Follower,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Leader => 1,
            Role::Follower => 2,
        }
    }

    fn from_code(c: u8) -> Option<Role> {
        match c {
            1 => Some(Role::Leader),
            2 => Some(Role::Follower),
            _ => None,
        }
    }
}

/// Who learns what in ECDH-PSI (see the threat model in [`ecdh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputMode {
    /// Both parties learn the intersection (the common ids, in the same order).
    Both,
    /// The leader learns the intersection; the follower learns only its size.
    LeaderOnly,
}

impl OutputMode {
    fn code(self) -> u8 {
        match self {
            OutputMode::Both => 1,
            OutputMode::LeaderOnly => 2,
        }
    }

    fn from_code(c: u8) -> Option<OutputMode> {
        match c {
            1 => Some(OutputMode::Both),
            2 => Some(OutputMode::LeaderOnly),
            _ => None,
        }
    }
}

/// One party's output of a PSI run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intersection {
    /// The common ids in the canonical order both parties agree on (ECDH: by bucket,
    /// then by double-blinded value; RSA: by signature digest). Empty when
    /// `ids_revealed` is false.
    pub ids: Vec<String>,
    /// The number of common ids (known to both parties in every mode).
    pub size: usize,
    /// Whether this party learned the ids (false: it learned only `size`).
    pub ids_revealed: bool,
}

/// Counters of one party's PSI run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PsiStats {
    /// Distinct own ids that entered the protocol.
    pub ids_in: u64,
    /// Hash buckets (1 for RSA-PSI).
    pub buckets: u32,
    /// Group elements / RSA values / digests sent.
    pub points_sent: u64,
    /// Payload bytes sent (all messages).
    pub bytes_sent: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// ristretto255 operations: hashes to the group plus scalar multiplications.
    pub curve_ops: u64,
    /// RSA private-key operations (signatures) done in this run.
    pub rsa_private_ops: u64,
    /// Own ids signed in this run by the RSA key holder (not found in the cache).
    pub own_ids_signed: u64,
    /// Own ids whose signature digest came from the RSA cache.
    pub own_ids_cached: u64,
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
}
