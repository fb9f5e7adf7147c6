//! The scheme-independent API: [`AdditiveScheme`], [`HePublicKey`],
//! [`HeSecretKey`], batch operations and the key-size policy ([`KeyPolicy`]).
//!
//! Protocols are written generically over `S: AdditiveScheme` and the
//! concrete scheme ([`crate::Paillier`] or [`crate::OkamotoUchiyama`]) is
//! chosen per job.

use std::fmt::Debug;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::error::HeError;
use crate::plaintext::Plaintext;

/// Minimum modulus size accepted by default (bits).
pub const MIN_MODULUS_BITS: u32 = 2048;

/// Default modulus size for key generation (bits).
pub const DEFAULT_MODULUS_BITS: u32 = 2048;

/// Minimum modulus size under [`KeyPolicy::insecure_small_keys_for_tests`] (bits).
pub const INSECURE_MIN_MODULUS_BITS: u32 = 64;

/// Largest supported modulus (bits).
pub const MAX_MODULUS_BITS: u32 = 8192;

/// Which modulus sizes key generation and key parsing accept.
///
/// The default, [`KeyPolicy::production`], refuses moduli below
/// [`MIN_MODULUS_BITS`] (2048 bits). The only way to accept smaller keys is to
/// pass the loudly named [`KeyPolicy::insecure_small_keys_for_tests`] value
/// explicitly, at the call site: no cargo feature, `cfg` or environment
/// variable changes what the production constructors
/// ([`AdditiveScheme::generate_keypair`], [`HePublicKey::from_bytes`],
/// [`crate::PaillierSecretKey::from_primes`],
/// [`crate::PaillierPublicKey::from_modulus`]) accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPolicy {
    insecure_small_keys: bool,
}

impl KeyPolicy {
    /// Moduli of [`MIN_MODULUS_BITS`] to [`MAX_MODULUS_BITS`] bits (the default).
    pub const fn production() -> Self {
        KeyPolicy {
            insecure_small_keys: false,
        }
    }

    /// **INSECURE**: also accepts moduli from [`INSECURE_MIN_MODULUS_BITS`]
    /// bits, which anyone can factor. For tests and benchmarks only.
    pub const fn insecure_small_keys_for_tests() -> Self {
        KeyPolicy {
            insecure_small_keys: true,
        }
    }

    /// Whether this is the insecure test policy.
    pub const fn allows_insecure_small_keys(self) -> bool {
        self.insecure_small_keys
    }

    /// The smallest accepted modulus size (bits).
    pub const fn min_bits(self) -> u32 {
        if self.insecure_small_keys {
            INSECURE_MIN_MODULUS_BITS
        } else {
            MIN_MODULUS_BITS
        }
    }

    /// Checks a modulus size against this policy.
    pub fn check(self, bits: u32) -> Result<(), HeError> {
        let min_bits = self.min_bits();
        if bits < min_bits {
            return Err(HeError::KeyTooSmall { bits, min_bits });
        }
        if bits > MAX_MODULUS_BITS {
            return Err(HeError::UnsupportedKeySize {
                bits,
                reason: "larger than 8192 bits",
            });
        }
        Ok(())
    }
}

/// An additively homomorphic public-key encryption scheme.
pub trait AdditiveScheme: Send + Sync + 'static {
    /// Human-readable scheme name (`"paillier"`, `"okamoto-uchiyama"`).
    const NAME: &'static str;
    /// Ciphertext type.
    type Ciphertext: Clone + Debug + PartialEq + Eq + Send + Sync + 'static;
    /// Public key type.
    type PublicKey: HePublicKey<Ciphertext = Self::Ciphertext>;
    /// Secret key type.
    type SecretKey: HeSecretKey<Ciphertext = Self::Ciphertext, PublicKey = Self::PublicKey>;

    /// Generates a key pair with a modulus of `bits` bits, drawing all
    /// randomness (primes included) from `rng`: the same RNG state gives the
    /// same key. Always refuses `bits < 2048` ([`KeyPolicy::production`]).
    fn generate_keypair<R: CryptoRng + ?Sized>(
        bits: u32,
        rng: &mut R,
    ) -> Result<(Self::PublicKey, Self::SecretKey), HeError> {
        Self::generate_keypair_with_policy(KeyPolicy::production(), bits, rng)
    }

    /// **INSECURE**: [`AdditiveScheme::generate_keypair`] that also accepts
    /// moduli below 2048 bits ([`KeyPolicy::insecure_small_keys_for_tests`]).
    /// For tests and benchmarks only.
    fn generate_keypair_insecure_for_tests<R: CryptoRng + ?Sized>(
        bits: u32,
        rng: &mut R,
    ) -> Result<(Self::PublicKey, Self::SecretKey), HeError> {
        Self::generate_keypair_with_policy(KeyPolicy::insecure_small_keys_for_tests(), bits, rng)
    }

    /// [`AdditiveScheme::generate_keypair`] with the key-size policy chosen
    /// by the caller (protocols pass the policy their configuration carries,
    /// which is [`KeyPolicy::production`] unless a test set it).
    fn generate_keypair_with_policy<R: CryptoRng + ?Sized>(
        policy: KeyPolicy,
        bits: u32,
        rng: &mut R,
    ) -> Result<(Self::PublicKey, Self::SecretKey), HeError>;
}

/// Public-key operations: encryption, homomorphic evaluation, validation
/// and serialisation.
///
/// **Every ciphertext that leaves a party after homomorphic evaluation must
/// be re-randomised** with [`HePublicKey::rerandomize`]: `add`, `add_plain`,
/// `mul_plain` and `negate` are deterministic functions of their inputs, so
/// the output can reveal the operands (e.g. `mul_plain` by a secret scalar).
pub trait HePublicKey: Clone + Debug + Send + Sync + 'static {
    /// Ciphertext type.
    type Ciphertext: Clone + Debug + PartialEq + Eq + Send + Sync + 'static;

    /// Bit length of the public modulus `n`.
    fn modulus_bits(&self) -> u32;

    /// Plaintext magnitudes must be `< 2^plaintext_capacity_bits`; sums and
    /// products must stay below this bound too or they wrap around.
    fn plaintext_capacity_bits(&self) -> u32;

    /// Length in bytes of a serialised ciphertext.
    fn ciphertext_len(&self) -> usize;

    /// Encrypts a signed plaintext with fresh randomness from `rng`.
    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<Self::Ciphertext, HeError>;

    /// `Enc(a + b)`.
    fn add(&self, a: &Self::Ciphertext, b: &Self::Ciphertext) -> Result<Self::Ciphertext, HeError>;

    /// `Enc(a + m)` for a public plaintext `m` (deterministic).
    fn add_plain(&self, a: &Self::Ciphertext, m: &Plaintext) -> Result<Self::Ciphertext, HeError>;

    /// `Enc(k * a)` for a (possibly negative) plaintext scalar `k`
    /// (deterministic; the exponentiation is constant-time in `k`'s bits but
    /// its sign and bit length are visible).
    fn mul_plain(&self, a: &Self::Ciphertext, k: &Plaintext) -> Result<Self::Ciphertext, HeError>;

    /// `Enc(-a)`.
    fn negate(&self, a: &Self::Ciphertext) -> Result<Self::Ciphertext, HeError>;

    /// Same plaintext, fresh randomness. Apply before sending any
    /// evaluated ciphertext to another party.
    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        a: &Self::Ciphertext,
        rng: &mut R,
    ) -> Result<Self::Ciphertext, HeError>;

    /// A ciphertext prepared for repeated homomorphic additions (for
    /// Paillier and OU: the residue in Montgomery form, so that one
    /// addition is one Montgomery multiplication with no parsing,
    /// serialisation or allocation).
    ///
    /// Typical use (e.g. histogram bins): [`HePublicKey::acc_prepare_batch`]
    /// the received ciphertexts once, start every bin at
    /// [`HePublicKey::acc_zero`], [`HePublicKey::acc_add`] into the bins,
    /// then [`HePublicKey::acc_finish`] each bin and **re-randomise** the
    /// results before they leave the party (the sums are deterministic).
    ///
    /// Accumulators are only meaningful with the key that prepared them:
    /// mixing in a value of another key of a different size does not
    /// panic but poisons the accumulator (it finishes to an invalid
    /// ciphertext that fails to decrypt).
    type Acc: Clone + Debug + Send + Sync + 'static;

    /// `Enc(0)` with no randomness (the residue 1), the neutral element of
    /// [`HePublicKey::acc_add`].
    fn acc_zero(&self) -> Self::Acc;

    /// Converts a ciphertext for accumulation (one multiplication).
    fn acc_prepare(&self, c: &Self::Ciphertext) -> Self::Acc;

    /// [`HePublicKey::acc_prepare`] for many ciphertexts on the rayon pool.
    fn acc_prepare_batch(&self, cs: &[Self::Ciphertext]) -> Vec<Self::Acc> {
        cs.par_iter().map(|c| self.acc_prepare(c)).collect()
    }

    /// `acc = acc ⊞ x`, i.e. `Enc(a + x)`, in place without allocating.
    fn acc_add(&self, acc: &mut Self::Acc, x: &Self::Acc);

    /// `Enc(Σ x_i)` of prepared ciphertexts (`acc_zero` for none).
    fn acc_sum(&self, xs: &[Self::Acc]) -> Self::Acc {
        let mut acc = self.acc_zero();
        for x in xs {
            self.acc_add(&mut acc, x);
        }
        acc
    }

    /// Converts back to a normal ciphertext (deterministic: re-randomise
    /// before sending it to another party).
    fn acc_finish(&self, acc: &Self::Acc) -> Self::Ciphertext;

    /// Fixed-width big-endian encoding of a ciphertext.
    fn ciphertext_to_bytes(&self, c: &Self::Ciphertext) -> Vec<u8>;

    /// Parses and validates a received ciphertext (length, range, and
    /// coprimality with `n`).
    fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Self::Ciphertext, HeError>;

    /// Parses and validates many received ciphertexts (the same checks as
    /// [`HePublicKey::ciphertext_from_bytes`]); on failure returns the index
    /// of the first bad item with its error. Paillier and OU check
    /// coprimality with `n` with a single gcd for the whole batch (OpenSSL
    /// 3's constant-time `BN_gcd` otherwise dominates the cost of receiving
    /// ciphertexts).
    fn ciphertexts_from_bytes(
        &self,
        items: &[&[u8]],
    ) -> Result<Vec<Self::Ciphertext>, (usize, HeError)> {
        items
            .par_iter()
            .enumerate()
            .map(|(i, b)| self.ciphertext_from_bytes(b).map_err(|e| (i, e)))
            .collect()
    }

    /// Serialises the public key.
    fn to_bytes(&self) -> Vec<u8>;

    /// Parses and validates a public key, refusing moduli below 2048 bits
    /// ([`KeyPolicy::production`]).
    fn from_bytes(bytes: &[u8]) -> Result<Self, HeError> {
        Self::from_bytes_with_policy(bytes, KeyPolicy::production())
    }

    /// Parses and validates a public key under the key-size `policy`.
    fn from_bytes_with_policy(bytes: &[u8], policy: KeyPolicy) -> Result<Self, HeError>;

    /// Encrypts a batch on the rayon pool. One 32-byte seed per item is
    /// drawn serially from `rng`, then each item is encrypted with a
    /// `ChaCha20Rng` seeded from its seed, so the output is deterministic
    /// for a given `rng` state regardless of scheduling.
    fn encrypt_batch<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        let mut seeds = draw_seeds(ms.len(), rng);
        let out = ms
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(m, seed)| {
                let mut r = ChaCha20Rng::from_seed(*seed);
                self.encrypt(m, &mut r)
            })
            .collect();
        seeds.zeroize();
        out
    }

    /// Re-randomises a batch on the rayon pool (seeded like
    /// [`HePublicKey::encrypt_batch`]).
    fn rerandomize_batch<R: CryptoRng + ?Sized>(
        &self,
        cs: &[Self::Ciphertext],
        rng: &mut R,
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        let mut seeds = draw_seeds(cs.len(), rng);
        let out = cs
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(c, seed)| {
                let mut r = ChaCha20Rng::from_seed(*seed);
                self.rerandomize(c, &mut r)
            })
            .collect();
        seeds.zeroize();
        out
    }

    /// Element-wise `Enc(a_i + b_i)` on the rayon pool.
    fn add_batch(
        &self,
        a: &[Self::Ciphertext],
        b: &[Self::Ciphertext],
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        if a.len() != b.len() {
            return Err(HeError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        a.par_iter()
            .zip(b.par_iter())
            .map(|(x, y)| self.add(x, y))
            .collect()
    }

    /// Element-wise `Enc(k_i * a_i)` on the rayon pool.
    fn mul_plain_batch(
        &self,
        a: &[Self::Ciphertext],
        k: &[Plaintext],
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        if a.len() != k.len() {
            return Err(HeError::LengthMismatch {
                left: a.len(),
                right: k.len(),
            });
        }
        a.par_iter()
            .zip(k.par_iter())
            .map(|(x, s)| self.mul_plain(x, s))
            .collect()
    }

    /// `Enc(Σ_i k_i · a_i)`: an encrypted inner product with signed 64-bit
    /// scalars (e.g. fixed-point encoded features).
    ///
    /// Paillier and Okamoto–Uchiyama override this with bucket (Pippenger)
    /// multi-exponentiation (module `multiexp`), several times faster than
    /// one [`HePublicKey::mul_plain`] per element; the default is the naive
    /// `Σ mul_plain`. The result is deterministic: re-randomise it before
    /// it leaves the party. Unlike `mul_plain` it is **not** constant time
    /// in the scalars. Errors on an empty or mismatched input.
    fn dot(&self, cts: &[Self::Ciphertext], scalars: &[i64]) -> Result<Self::Ciphertext, HeError> {
        self.dot_columns(cts, scalars, 1)?
            .pop()
            .ok_or(HeError::EmptyInput {
                what: "inner-product columns",
            })
    }

    /// One [`HePublicKey::dot`] per column of a row-major
    /// `cts.len() × columns` scalar matrix: `out[j] = Enc(Σ_i
    /// scalars[i·columns + j] · a_i)`, computed in parallel over columns.
    fn dot_columns(
        &self,
        cts: &[Self::Ciphertext],
        scalars: &[i64],
        columns: usize,
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        crate::multiexp::check_shape(cts.len(), scalars.len(), columns)?;
        if cts.is_empty() {
            return Err(HeError::EmptyInput {
                what: "ciphertexts of an inner product",
            });
        }
        (0..columns)
            .into_par_iter()
            .map(|j| {
                let terms = cts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let k = scalars.get(i * columns + j).copied().unwrap_or(0);
                        self.mul_plain(c, &Plaintext::from_i64(k))
                    })
                    .collect::<Result<Vec<_>, HeError>>()?;
                let mut it = terms.into_iter();
                let mut acc = it.next().ok_or(HeError::EmptyInput {
                    what: "ciphertexts of an inner product",
                })?;
                for t in it {
                    acc = self.add(&acc, &t)?;
                }
                Ok(acc)
            })
            .collect()
    }

    /// `Enc(sum a_i)` computed as a parallel tree reduction. Errors on an
    /// empty slice.
    fn sum(&self, cs: &[Self::Ciphertext]) -> Result<Self::Ciphertext, HeError> {
        let first = cs.first().ok_or(HeError::EmptyInput {
            what: "ciphertexts to sum",
        })?;
        let threads = rayon::current_num_threads().max(1);
        let chunk = cs.len().div_ceil(threads * 4).max(1);
        let partials: Vec<Self::Ciphertext> = cs
            .par_chunks(chunk)
            .map(|ch| {
                let mut it = ch.iter();
                let mut acc = it.next().cloned().unwrap_or_else(|| first.clone());
                for c in it {
                    acc = self.add(&acc, c)?;
                }
                Ok(acc)
            })
            .collect::<Result<_, HeError>>()?;
        let mut it = partials.iter();
        let mut acc = it.next().cloned().unwrap_or_else(|| first.clone());
        for c in it {
            acc = self.add(&acc, c)?;
        }
        Ok(acc)
    }
}

/// Secret-key operations.
pub trait HeSecretKey: Send + Sync + 'static {
    /// Ciphertext type.
    type Ciphertext: Clone + Send + Sync;
    /// Matching public key type.
    type PublicKey: HePublicKey<Ciphertext = Self::Ciphertext>;

    /// The matching public key.
    fn public_key(&self) -> &Self::PublicKey;

    /// Decrypts to a signed plaintext (centered lift).
    fn decrypt(&self, c: &Self::Ciphertext) -> Result<Plaintext, HeError>;

    /// Encrypts like [`HePublicKey::encrypt`], using the secret
    /// factorisation to compute the same value faster where the scheme
    /// supports it (Paillier and OU compute modulo the prime-power factors
    /// and recombine by CRT).
    ///
    /// The randomness is drawn from `rng` exactly as by
    /// [`HePublicKey::encrypt`], so for the same RNG state the ciphertext
    /// is **bit for bit identical** to the public-key encryption and hence
    /// has the same distribution; only the running time differs. The
    /// default calls the public-key path.
    fn encrypt_crt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<Self::Ciphertext, HeError> {
        self.public_key().encrypt(m, rng)
    }

    /// [`HeSecretKey::encrypt_crt`] for a batch on the rayon pool, seeded
    /// like [`HePublicKey::encrypt_batch`] (one 32-byte seed per item drawn
    /// serially from `rng`, ChaCha20 per item), so the output equals
    /// `self.public_key().encrypt_batch(ms, rng)` for the same RNG state.
    fn encrypt_batch_crt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<Self::Ciphertext>, HeError> {
        self.public_key().encrypt_batch(ms, rng)
    }

    /// Decrypts a batch on the rayon pool.
    fn decrypt_batch(&self, cs: &[Self::Ciphertext]) -> Result<Vec<Plaintext>, HeError> {
        cs.par_iter().map(|c| self.decrypt(c)).collect()
    }
}

pub(crate) fn draw_seeds<R: CryptoRng + ?Sized>(count: usize, rng: &mut R) -> Vec<[u8; 32]> {
    (0..count)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        })
        .collect()
}
