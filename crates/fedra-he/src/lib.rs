//! # fedra-he — additively homomorphic encryption for Fedra
//!
//! Two schemes behind one generic API ([`AdditiveScheme`], [`HePublicKey`],
//! [`HeSecretKey`]) so protocols can choose the scheme per job:
//!
//! * [`Paillier`] (`g = n + 1`, CRT decryption, Damgård–Jurik–Nielsen
//!   fixed-base randomisers), keys of 2048 (default) or 3072 bits.
//! * [`OkamotoUchiyama`] (`n = p²q`, Coron–Naccache–Paillier acceleration,
//!   fixed-base tables for both `G^m` and `H^r`) — several times faster.
//!
//! plus signed big-integer [`Plaintext`]s, a fixed-point [`FixedPoint`]
//! encoder with overflow detection, and a slot [`Packer`].
//!
//! Encryption and homomorphic addition run on pure-Rust Montgomery
//! arithmetic (private module `mont`; the `openssl` crate exposes no
//! Montgomery contexts and `unsafe` is forbidden): fixed-base tables are
//! kept in Montgomery form, the key holder can encrypt about 2–2.5× faster
//! with [`HeSecretKey::encrypt_crt`] / [`HeSecretKey::encrypt_batch_crt`]
//! (same ciphertexts as the public-key path), and many additions into the
//! same sums (histograms, aggregation) should use the accumulator API
//! ([`HePublicKey::acc_prepare`], [`HePublicKey::acc_add`],
//! [`HePublicKey::acc_finish`]): one Montgomery multiplication per
//! addition, no parsing or allocation. Numbers in `BENCHMARKS.md`.
//!
//! ```
//! use fedra_he::{AdditiveScheme, HePublicKey, HeSecretKey, Paillier, Plaintext};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! # fn main() -> Result<(), fedra_he::HeError> {
//! let mut rng = ChaCha20Rng::from_os_rng();
//! let (pk, sk) = Paillier::generate_keypair(2048, &mut rng)?;
//! let a = pk.encrypt(&Plaintext::from_i64(20), &mut rng)?;
//! let b = pk.encrypt(&Plaintext::from_i64(-5), &mut rng)?;
//! let sum = pk.add(&a, &b)?;
//! // Re-randomise before the ciphertext leaves this party.
//! let sum = pk.rerandomize(&sum, &mut rng)?;
//! assert_eq!(sk.decrypt(&sum)?.to_i64(), Some(15));
//! # Ok(())
//! # }
//! ```
//!
//! ## Security notes
//!
//! **Paillier** is IND-CPA under the Decisional Composite Residuosity (DCR)
//! assumption; breaking it is no harder than factoring `n = pq`. The
//! DJN randomiser `hs^a` (with `hs = (-x²)^n mod n²` and `a` of `|n|/2`
//! bits) additionally assumes that short exponents in the subgroup of
//! n-th residues are indistinguishable from full-length ones
//! (Damgård–Jurik–Nielsen 2010). `hs` is part of the serialised public key;
//! a party that does not trust the key owner's choice can derive its own
//! with [`PaillierPublicKey::from_modulus`].
//!
//! **Okamoto–Uchiyama** is one-way iff factoring `n = p²q` is hard and
//! IND-CPA under the p-subgroup assumption. Moduli of the form `p²q` are
//! believed as hard to factor as RSA moduli of the same size at 2048+ bits,
//! but have received less cryptanalytic attention (lattice/Coppersmith
//! attacks exploit `p²q` structure when factors leak partially). OU has
//! been studied far less than Paillier overall. The CNP acceleration makes
//! the order of `G` contain a prime `t` of 224/256 bits and uses short
//! randomness `r` of `2|t|` bits, which is an additional (standard in
//! practice, e.g. HEU) short-exponent assumption. Plaintexts must stay
//! below `2^(|p|-2)` in magnitude; larger values wrap modulo the secret
//! `p` (and decrypting a wrapped value leaks information about `p`).
//!
//! **Both** schemes are malleable by design and therefore not CCA-secure:
//! never act as a decryption oracle for ciphertexts an adversary chose. In
//! OU a single decryption of a ciphertext of `m ≥ p` reveals a multiple of
//! `p` and hence the factorisation: the key owner must only decrypt
//! ciphertexts produced by the protocol (and should check decoded
//! magnitudes, as [`FixedPoint`] and [`Packer`] do).
//!
//! **Re-randomise** ([`HePublicKey::rerandomize`]) every evaluated
//! ciphertext before it leaves a party. Received ciphertexts and keys
//! are validated on parsing ([`HePublicKey::ciphertext_from_bytes`],
//! [`HePublicKey::from_bytes`]).
//!
//! **Side channels:** decryption exponentiations by secret values use
//! OpenSSL's constant-time `BN_mod_exp_mont_consttime` (decryption does not
//! use the pure-Rust Montgomery code). Fixed-base table lookups for the
//! encryption randomness are not cache-timing constant, and zero digits
//! are skipped. A single Montgomery multiplication takes the same time for
//! all operands (branch-free final subtraction), which matters for CRT
//! encryption modulo the secret `p²`, `q` (`q²`).
//!
//! **Key material:** secret keys have no `Serialize` and a `Debug` that
//! prints only the modulus size; their big integers are `BN_clear`ed on
//! drop, and the CRT encryption tables (residues modulo the secret
//! factors) are zeroized on drop. Moduli below 2048 bits are always refused by
//! the production constructors; a test that wants small keys must pass the
//! loudly named [`KeyPolicy::insecure_small_keys_for_tests`] value explicitly
//! (e.g. [`AdditiveScheme::generate_keypair_insecure_for_tests`]). No build
//! configuration changes the production check.
//!
//! ## Randomness
//! All randomness comes from a caller-supplied `rand_core` 0.9
//! [`CryptoRng`](rand_core::CryptoRng); the library never creates an RNG.
//! Key generation draws prime candidates from it, so a seeded RNG gives a
//! reproducible key. Batch APIs draw one seed per item serially and expand
//! it with ChaCha20 in parallel, so results do not depend on scheduling.

#[doc(hidden)]
pub mod bench_support;
mod bn;
mod ctspace;
pub mod encoding;
mod fixed_base;
mod mont;
mod multiexp;
pub mod ou;
pub mod packing;
pub mod paillier;
pub mod plaintext;
mod primes;
pub mod scheme;

pub mod error;

#[cfg(feature = "serde")]
mod serde_impls;

pub use encoding::{Encoded, FixedPoint};
pub use error::HeError;
pub use ou::{OkamotoUchiyama, OuAcc, OuCiphertext, OuPublicKey, OuSecretKey};
pub use packing::Packer;
pub use paillier::{
    Paillier, PaillierAcc, PaillierCiphertext, PaillierPublicKey, PaillierSecretKey,
};
pub use plaintext::Plaintext;
pub use scheme::{
    AdditiveScheme, DEFAULT_MODULUS_BITS, HePublicKey, HeSecretKey, KeyPolicy, MIN_MODULUS_BITS,
};

#[cfg(test)]
mod tests;
