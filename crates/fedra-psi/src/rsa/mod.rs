//! RSA blind-signature PSI (De Cristofaro–Tsudik 2010; the variant used by
//! Fedlearner and EFLS), with an offline signature cache.
//!
//! One idea per file: `key.rs` (the key holder's RSA key: generation, PEM,
//! fingerprint), `blind.rs` (the maths: full-domain hash, blinding, the raw
//! private-key operation, unblinding with verification, the digest `H'`),
//! `protocol.rs` (the two roles over `&dyn Channel`) and `cache.rs` (the offline
//! signature cache as bytes).
//! Nothing here touches the file system: the caller reads and writes the cache's
//! bytes (the runtime's PSI task with `fedra_fs::write_atomic`) and hands over the
//! key's PEM bytes.
//!
//! ## Protocol
//!
//! The **key holder** owns an RSA key `(n, e = 65537, d)` (2048–4096 bits) and ids
//! `X`; the **client** owns ids `Y`. `FDH` is a full-domain hash of an id to `Z_n`
//! (SHA-256 in counter mode, expanded to `|n| + 128` bits, reduced mod `n`:
//! `T_i = SHA-256("fedra-psi-rsa-fdh-v1" || u32be(i) || u32be(len id) || id)`),
//! `H'(s) = SHA-256("fedra-psi-rsa-h2-v1" || s)` with `s` the fixed-width signature.
//!
//! 1. `hello` both ways: version, output mode, batch size, set size; the key holder
//!    adds its public key `(n, e)`.
//! 2. The key holder sends `H'(FDH(x)^d)` for its ids, **sorted** (`own-<i>`).
//! 3. For each batch, the client draws fresh `r` (from the caller's RNG) and sends
//!    `FDH(y)·r^e mod n` (`blinded-<i>`); the key holder returns `(FDH(y)·r^e)^d`
//!    (`signed-<i>`); the client divides by `r`, **verifies** the signature
//!    (`s^e = FDH(y)`, cheap with `e = 65537`) and computes `H'(s)`.
//! 4. The client intersects its digests with the key holder's. In
//!    [`RsaOutput::Both`] it sends the matched digests sorted (`result-*`), and the
//!    key holder maps them to its ids; in [`RsaOutput::ClientOnly`] it sends only the
//!    count. Canonical order of [`Intersection::ids`](crate::Intersection::ids): by
//!    digest `H'(s)`, the same on both sides.
//!
//! Messages are encoded with `fedra_federation::codec` (little-endian integers).
//!
//! **Offline phase.** The key holder's part of step 2 depends only on its key and its
//! ids, not on the client or the job, so it is computed once and kept in a
//! [`SignCache`] (`id → H'(FDH(x)^d)`), which the caller stores between runs
//! ([`SignCache::to_bytes`] / [`SignCache::from_bytes`]). A later run signs only ids
//! not in the cache ([`PsiStats::own_ids_signed`](crate::PsiStats::own_ids_signed));
//! a cache made with another key is refused ([`PsiError::CacheKeyMismatch`]).
//!
//! ## Threat model
//!
//! Semi-honest parties; security of the client's ids rests on the blinding (perfect:
//! `r^e` is uniform in `Z_n*`), security of the key holder's ids on the one-more-RSA
//! assumption with `FDH`, `H'` as random oracles.
//!
//! | | key holder learns | client learns |
//! |---|---|---|
//! | [`RsaOutput::Both`] | the intersection | the intersection |
//! | [`RsaOutput::ClientOnly`] | only the intersection **size** | the intersection |
//!
//! Both also learn the other's set size. The key holder sees only uniformly random
//! blinded values: nothing about the client's ids outside the output. The client
//! sees digests of signatures of the key holder's ids; without `d` it cannot compute
//! them for ids it did not get signed, so it learns nothing about the key holder's
//! other ids — **but** it can get up to its declared set size of arbitrary values
//! signed, so it can test any ids it likes for membership (inherent in every PSI:
//! a party may choose its input). [`RsaConfig::max_peer_ids`] bounds that number.
//! Because the key holder acts as a raw-RSA signing oracle, the key must be used for
//! PSI only, never for TLS, signatures or encryption elsewhere.
//!
//! Cached digests are as sensitive as the ids themselves (they allow membership
//! tests against future runs' traffic only together with the key, but they list
//! the ids in clear): keep the cache file with the same care as the dataset.
//!
//! ## Implementation choices
//!
//! The private-key operation uses OpenSSL (`RSA_private_decrypt` with no padding),
//! which uses CRT, constant-time modular exponentiation and RSA blinding. The
//! pure-Rust `rsa` crate is deliberately **not** used: advisory RUSTSEC-2023-0071
//! ("Marvin attack") reports that its private-key operations leak timing that can
//! recover the key, with no fixed release; a PSI key holder runs exactly this
//! operation millions of times on inputs chosen by the peer. OpenSSL is also ~2–6×
//! faster (see the workspace NOTES). Exception to "the caller supplies all
//! randomness": RSA key generation and the blinding inside the private-key
//! operation use OpenSSL's own CSPRNG (seeded from the OS).
//!
//! [`RsaPsiKey`] has no `Serialize` and a `Debug` that prints only the size and the
//! public fingerprint; the private key leaves only through the explicitly named
//! [`RsaPsiKey::export_private_pem`].
//!
//! [`PsiError::CacheKeyMismatch`]: crate::PsiError::CacheKeyMismatch

mod blind;
mod cache;
mod key;
mod protocol;

pub use blind::SigDigest;
pub use cache::SignCache;
pub use key::RsaPsiKey;
pub use protocol::{RsaConfig, RsaOutput, rsa_psi_client, rsa_psi_key_holder};
