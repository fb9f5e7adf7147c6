//! Paillier encryption with `g = n + 1`, CRT decryption and
//! Damgård–Jurik–Nielsen fixed-base randomisers.
//!
//! * `Enc(m) = (1 + m n) · hs^a mod n²` where `hs = h^n mod n²`,
//!   `h = -x² mod n` for a random `x` (chosen by whoever creates the public
//!   key) and `a` is a uniformly random exponent of `⌈|n|/2⌉` bits
//!   (Damgård, Jurik, Nielsen, "A generalization of Paillier's public-key
//!   system with applications", IJIS 2010 – the short-randomness variant).
//!   `hs` generates (a subgroup of) the n-th residues and `hs^a` for
//!   short `a` is indistinguishable from a random n-th residue under DCR plus the assumption that short exponents are as good as full
//!   ones in this group; `|a| = |n|/2` keeps the generic (Pollard-λ) attack
//!   on the exponent at `2^(|n|/4)` ≥ 2^512 work.
//!   `hs^a` is computed with an 8-bit fixed-base table in Montgomery form
//!   (modules `fixed_base` and `mont` – 16.7 MB for a 2048-bit key,
//!   built lazily on first encryption).
//! * The key holder can encrypt faster with [`HeSecretKey::encrypt_crt`]:
//!   `hs^a` is computed modulo `p²` and modulo `q²` with their own tables
//!   (2 × 8.4 MB at 2048 bits), multiplied by `1 + m n` there and
//!   recombined by CRT. For the same `a` the ciphertext is identical to
//!   [`HePublicKey::encrypt`]'s, so it has the same distribution.
//! * Homomorphic addition keeps ciphertexts in Montgomery form through the
//!   accumulator API ([`HePublicKey::acc_prepare`], [`PaillierAcc`]).
//! * [`PaillierPublicKey::encrypt_full_randomness`] is the textbook
//!   `(1 + m n) r^n` with uniform `r ∈ Z_n^*` (slower; for comparison).
//! * Decryption uses CRT with constant-time exponentiation by `p-1`, `q-1`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::bn::{Barrett, Ctx, Nat, SecretNat, with_ctx};
use crate::ctspace::{AccLimbs, CtBytes, CtSpace};
use crate::error::HeError;
use crate::fixed_base::{DEFAULT_WINDOW, MontFixedBase};
use crate::mont::{Crt, MontAcc};
use crate::ou::get_or_build;
use crate::plaintext::Plaintext;
use crate::primes::random_prime;
use crate::scheme::{AdditiveScheme, HePublicKey, HeSecretKey, KeyPolicy, draw_seeds};

const PK_MAGIC: &[u8; 4] = b"FHPA";

/// Marker type for the Paillier scheme.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paillier;

struct PkInner {
    n: Nat,
    n_half: Nat,
    hs: Nat,
    bits: u32,
    n_len: usize,
    exp_bytes: usize,
    /// Residues modulo `n²` (their Montgomery constants included).
    ct: CtSpace,
    /// Barrett constants of `n²` (one-off products: `add`, `add_plain`).
    barrett: Barrett,
    table: OnceLock<MontFixedBase>,
}

/// Paillier public key `(n, hs)`. Cheap to clone (shared inner state).
#[derive(Clone)]
pub struct PaillierPublicKey {
    inner: Arc<PkInner>,
}

/// Paillier ciphertext: fixed-width big-endian residue modulo `n²`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PaillierCiphertext {
    bytes: Vec<u8>,
}

/// A ciphertext prepared for repeated homomorphic additions: the residue
/// modulo `n²` in Montgomery form (see [`HePublicKey::acc_prepare`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PaillierAcc {
    limbs: Box<[u64]>,
}

impl fmt::Debug for PaillierAcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaillierAcc({} limbs)", self.limbs.len())
    }
}

impl PaillierCiphertext {
    /// Parses and validates a ciphertext received for `pk`.
    pub fn from_bytes(pk: &PaillierPublicKey, bytes: &[u8]) -> Result<Self, HeError> {
        pk.ciphertext_from_bytes(bytes)
    }

    /// Fixed-width big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl CtBytes for PaillierCiphertext {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn from_space(bytes: Vec<u8>) -> Self {
        PaillierCiphertext { bytes }
    }
}

impl AccLimbs for PaillierAcc {
    fn limbs(&self) -> &[u64] {
        &self.limbs
    }
    fn limbs_mut(&mut self) -> &mut [u64] {
        &mut self.limbs
    }
    fn from_space(limbs: Box<[u64]>) -> Self {
        PaillierAcc { limbs }
    }
}

impl fmt::Debug for PaillierCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaillierCiphertext({} bytes)", self.bytes.len())
    }
}

impl fmt::Debug for PaillierPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaillierPublicKey")
            .field("modulus_bits", &self.inner.bits)
            .finish_non_exhaustive()
    }
}

fn derive_hs<R: CryptoRng + ?Sized>(
    n: &Nat,
    n2: &Nat,
    rng: &mut R,
    ctx: &mut Ctx,
) -> Result<Nat, HeError> {
    let x = Nat::random_unit(rng, n, ctx)?;
    let x2 = Nat::mod_mul(&x, &x, n, ctx)?;
    let h = n.sub(&x2)?; // -x^2 mod n (x2 != 0 since x is a unit)
    h.mod_exp(n, n2, ctx)
}

impl PaillierPublicKey {
    fn build(n: Nat, hs: Nat, ctx: &mut Ctx) -> Result<Self, HeError> {
        let bits = n.bits();
        let n2 = n.mul(&n, ctx)?;
        let n_half = n.shr(1)?;
        let n_len = n.bytes();
        let exp_bytes = bits.div_ceil(2).div_ceil(8) as usize;
        let ct = CtSpace::new(&n2, &n, "paillier ciphertext", "ciphertext not below n^2")?;
        let barrett = Barrett::new(&n2, ctx)?;
        Ok(PaillierPublicKey {
            inner: Arc::new(PkInner {
                n,
                n_half,
                hs,
                bits,
                n_len,
                exp_bytes,
                ct,
                barrett,
                table: OnceLock::new(),
            }),
        })
    }

    /// Builds a public key from the modulus alone, deriving a fresh DJN base
    /// `hs` from `rng` (use this if you do not want to trust the `hs` chosen
    /// by the key owner). Refuses moduli below 2048 bits.
    pub fn from_modulus<R: CryptoRng + ?Sized>(n_be: &[u8], rng: &mut R) -> Result<Self, HeError> {
        Self::from_modulus_with_policy(n_be, KeyPolicy::production(), rng)
    }

    /// [`PaillierPublicKey::from_modulus`] under the key-size `policy`.
    pub fn from_modulus_with_policy<R: CryptoRng + ?Sized>(
        n_be: &[u8],
        policy: KeyPolicy,
        rng: &mut R,
    ) -> Result<Self, HeError> {
        let n = Nat::from_be(n_be)?;
        validate_modulus(&n, policy)?;
        with_ctx(|ctx| {
            let n2 = n.mul(&n, ctx)?;
            let hs = derive_hs(&n, &n2, rng, ctx)?;
            Self::build(n, hs, ctx)
        })
    }

    /// The modulus `n`, big-endian.
    pub fn modulus_be(&self) -> Vec<u8> {
        self.inner.n.to_be()
    }

    /// Length of the random exponent `a` in bits (`⌈|n|/2⌉` rounded up to
    /// whole bytes).
    pub fn randomizer_exponent_bits(&self) -> u32 {
        self.inner.exp_bytes as u32 * 8
    }

    /// Validates received ciphertext bytes without keeping the result.
    pub fn validate_ciphertext(&self, bytes: &[u8]) -> Result<(), HeError> {
        self.ciphertext_from_bytes(bytes).map(|_| ())
    }

    /// Builds the fixed-base table now (otherwise built on first use).
    pub fn precompute(&self) -> Result<(), HeError> {
        self.table().map(|_| ())
    }

    fn table(&self) -> Result<&MontFixedBase, HeError> {
        // A concurrent builder may win the race; either table is fine.
        get_or_build(&self.inner.table, || {
            MontFixedBase::new(
                &self.inner.hs,
                self.inner.ct.mont.clone(),
                self.inner.exp_bytes as u32 * 8,
                DEFAULT_WINDOW,
            )
        })
    }

    /// Memory held by the fixed-base table (0 before it is built), bytes.
    pub fn table_bytes(&self) -> usize {
        self.inner.table.get().map_or(0, MontFixedBase::table_bytes)
    }

    /// Draws the DJN exponent `a` exactly as every encryption path does.
    fn draw_a<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> zeroize::Zeroizing<Vec<u8>> {
        let mut a = zeroize::Zeroizing::new(vec![0u8; self.inner.exp_bytes]);
        rng.fill_bytes(&mut a);
        a
    }

    /// `hs^a` in Montgomery form.
    fn hs_pow_mont(&self, a: &[u8]) -> Result<MontAcc, HeError> {
        let mut acc = MontAcc::new(&self.inner.ct.mont);
        self.table()?.accumulate(&mut acc, a)?;
        Ok(acc)
    }

    /// Reference encryption with the original OpenSSL/Barrett fixed-base
    /// table (built per call; small test keys only).
    #[cfg(test)]
    pub(crate) fn encrypt_reference<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        use crate::fixed_base::FixedBase;
        with_ctx(|ctx| {
            let gm = self.g_pow_m(m, ctx)?;
            let table =
                FixedBase::new(&self.inner.hs, &self.inner.ct.m, self.inner.exp_bytes, ctx)?;
            let rn = table.pow_be(&self.draw_a(rng), ctx)?;
            self.inner
                .ct
                .nat_to_ct(&Nat::mod_mul(&gm, &rn, &self.inner.ct.m, ctx)?)
        })
    }

    /// `1 + m n mod n²` for the residue of `m`.
    fn g_pow_m(&self, m: &Plaintext, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let res = m.to_residue(&self.inner.n)?;
        res.mul(&self.inner.n, ctx)?.add(&Nat::one()?)
    }

    /// Textbook encryption `(1 + m n) r^n mod n²` with uniform `r ∈ Z_n^*`
    /// (no precomputation; roughly an order of magnitude slower than
    /// [`HePublicKey::encrypt`]).
    pub fn encrypt_full_randomness<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        with_ctx(|ctx| {
            let r = Nat::random_unit(rng, &self.inner.n, ctx)?;
            self.encrypt_with_r(m, &r, ctx)
        })
    }

    /// Deterministic encryption `(1 + m n) r^n mod n²` with a caller-chosen
    /// `r` (big-endian, `0 < r < n`, `gcd(r, n) = 1`). Only for known-answer
    /// tests and interoperability checks: `r` must be uniformly random,
    /// secret and never reused.
    pub fn encrypt_with_nonce(
        &self,
        m: &Plaintext,
        r_be: &[u8],
    ) -> Result<PaillierCiphertext, HeError> {
        let r = Nat::from_be(r_be)?;
        with_ctx(|ctx| {
            if r.is_zero()
                || r.ucmp(&self.inner.n) != Ordering::Less
                || !r.gcd(&self.inner.n, ctx)?.is_one()
            {
                return Err(HeError::InvalidParameter {
                    name: "r",
                    reason: "nonce must be a unit modulo n",
                });
            }
            self.encrypt_with_r(m, &r, ctx)
        })
    }

    fn encrypt_with_r(
        &self,
        m: &Plaintext,
        r: &Nat,
        ctx: &mut Ctx,
    ) -> Result<PaillierCiphertext, HeError> {
        let gm = self.g_pow_m(m, ctx)?;
        let rn = r.mod_exp(&self.inner.n, &self.inner.ct.m, ctx)?;
        let c = Nat::mod_mul(&gm, &rn, &self.inner.ct.m, ctx)?;
        self.inner.ct.nat_to_ct(&c)
    }
}

fn validate_modulus(n: &Nat, policy: KeyPolicy) -> Result<(), HeError> {
    policy.check(n.bits())?;
    if !n.is_odd() {
        return Err(HeError::InvalidPublicKey {
            reason: "modulus must be odd",
        });
    }
    Ok(())
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, HeError> {
    let b: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(HeError::InvalidPublicKey {
            reason: "truncated header",
        })?;
    Ok(u32::from_be_bytes(b))
}

impl HePublicKey for PaillierPublicKey {
    type Ciphertext = PaillierCiphertext;

    fn modulus_bits(&self) -> u32 {
        self.inner.bits
    }

    /// Signed magnitudes up to `(n-1)/2`; reported as `|n| - 2` bits (a
    /// power-of-two bound that is always safe).
    fn plaintext_capacity_bits(&self) -> u32 {
        self.inner.bits.saturating_sub(2)
    }

    fn ciphertext_len(&self) -> usize {
        self.inner.ct.len
    }

    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        let mont = &self.inner.ct.mont;
        let gm = with_ctx(|ctx| self.g_pow_m(m, ctx))?;
        let gm = zeroize::Zeroizing::new(mont.limbs_from_nat(&gm)?);
        let a = self.draw_a(rng);
        let acc = self.hs_pow_mont(&a)?;
        let mut out = mont.zero();
        acc.finish_times(mont, &mut out, &gm);
        self.inner.ct.limbs_to_ct(&out)
    }

    /// One Barrett multiplication modulo `n²` (OpenSSL `BN_mul` plus
    /// reduction): for a single product of normal-form values this is
    /// cheaper at 4096 bits than the two Montgomery multiplications needed
    /// to enter and leave Montgomery form (see BENCHMARKS.md); repeated
    /// additions should use the accumulator API instead.
    fn add(
        &self,
        a: &PaillierCiphertext,
        b: &PaillierCiphertext,
    ) -> Result<PaillierCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        let y = self.inner.ct.ct_to_nat(b)?;
        with_ctx(|ctx| {
            self.inner
                .ct
                .nat_to_ct(&self.inner.barrett.mod_mul(&x, &y, ctx)?)
        })
    }

    fn add_plain(
        &self,
        a: &PaillierCiphertext,
        m: &Plaintext,
    ) -> Result<PaillierCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        with_ctx(|ctx| {
            let gm = self.g_pow_m(m, ctx)?;
            self.inner
                .ct
                .nat_to_ct(&self.inner.barrett.mod_mul(&x, &gm, ctx)?)
        })
    }

    fn mul_plain(
        &self,
        a: &PaillierCiphertext,
        k: &Plaintext,
    ) -> Result<PaillierCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        self.inner.ct.check_below(&x)?;
        with_ctx(|ctx| {
            let base = if k.is_negative() {
                x.mod_inverse(&self.inner.ct.m, ctx)?
            } else {
                x
            };
            // The scalar may be secret to the evaluating party: use the
            // constant-time exponentiation path.
            let e = SecretNat::new(k.magnitude_nat()?);
            self.inner
                .ct
                .nat_to_ct(&base.mod_exp_secret(&e, &self.inner.ct.m, ctx)?)
        })
    }

    fn negate(&self, a: &PaillierCiphertext) -> Result<PaillierCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        with_ctx(|ctx| {
            self.inner
                .ct
                .nat_to_ct(&x.mod_inverse(&self.inner.ct.m, ctx)?)
        })
    }

    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        a: &PaillierCiphertext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        let mont = &self.inner.ct.mont;
        let a_exp = self.draw_a(rng);
        let acc = self.hs_pow_mont(&a_exp)?;
        let x = mont.limbs_from_be(&a.bytes)?;
        let mut out = mont.zero();
        acc.finish_times(mont, &mut out, &x);
        self.inner.ct.limbs_to_ct(&out)
    }

    type Acc = PaillierAcc;

    fn acc_zero(&self) -> PaillierAcc {
        self.inner.ct.acc_zero()
    }

    fn acc_prepare(&self, c: &PaillierCiphertext) -> PaillierAcc {
        self.inner.ct.acc_prepare(c)
    }

    fn acc_add(&self, acc: &mut PaillierAcc, x: &PaillierAcc) {
        self.inner.ct.acc_add(acc, x);
    }

    fn acc_finish(&self, acc: &PaillierAcc) -> PaillierCiphertext {
        self.inner.ct.acc_finish(acc)
    }

    fn dot_columns(
        &self,
        cts: &[PaillierCiphertext],
        scalars: &[i64],
        columns: usize,
    ) -> Result<Vec<PaillierCiphertext>, HeError> {
        self.inner.ct.dot_columns(cts, scalars, columns)
    }

    fn ciphertext_to_bytes(&self, c: &PaillierCiphertext) -> Vec<u8> {
        c.bytes.clone()
    }

    fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<PaillierCiphertext, HeError> {
        self.inner.ct.parse(bytes)
    }

    fn ciphertexts_from_bytes(
        &self,
        items: &[&[u8]],
    ) -> Result<Vec<PaillierCiphertext>, (usize, HeError)> {
        self.inner.ct.parse_batch(items)
    }

    /// `"FHPA" || u32 bits || n (n_len bytes) || hs (ct_len bytes)`, all
    /// big-endian.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.inner.n_len + self.inner.ct.len);
        out.extend_from_slice(PK_MAGIC);
        out.extend_from_slice(&self.inner.bits.to_be_bytes());
        // Both values fit their widths by construction.
        out.extend_from_slice(
            &self
                .inner
                .n
                .to_be_padded(self.inner.n_len)
                .unwrap_or_default(),
        );
        out.extend_from_slice(
            &self
                .inner
                .hs
                .to_be_padded(self.inner.ct.len)
                .unwrap_or_default(),
        );
        out
    }

    fn from_bytes_with_policy(bytes: &[u8], policy: KeyPolicy) -> Result<Self, HeError> {
        if bytes.get(..4) != Some(PK_MAGIC.as_slice()) {
            return Err(HeError::InvalidPublicKey {
                reason: "bad magic",
            });
        }
        let bits = read_u32(bytes, 4)?;
        policy.check(bits)?;
        let n_len = bits.div_ceil(8) as usize;
        let ct_len = (2 * bits).div_ceil(8) as usize;
        let expected = 8 + n_len + ct_len;
        if bytes.len() != expected {
            return Err(HeError::InvalidLength {
                what: "paillier public key",
                expected,
                actual: bytes.len(),
            });
        }
        let n = Nat::from_be(bytes.get(8..8 + n_len).unwrap_or_default())?;
        if n.bits() != bits {
            return Err(HeError::InvalidPublicKey {
                reason: "modulus bit length mismatch",
            });
        }
        validate_modulus(&n, policy)?;
        let hs = Nat::from_be(bytes.get(8 + n_len..).unwrap_or_default())?;
        with_ctx(|ctx| {
            let n2 = n.mul(&n, ctx)?;
            if n2.bytes() != ct_len {
                return Err(HeError::InvalidPublicKey {
                    reason: "modulus square has unexpected width",
                });
            }
            if hs.bits() < 2 || hs.ucmp(&n2) != Ordering::Less || !hs.gcd(&n, ctx)?.is_one() {
                return Err(HeError::InvalidPublicKey {
                    reason: "hs is not a unit modulo n^2",
                });
            }
            Self::build(n, hs, ctx)
        })
    }
}

/// Paillier secret key (`p`, `q` and CRT constants).
///
/// No `Serialize`, and `Debug` prints only the modulus size. All secret
/// values are `BN_clear`ed on drop and exponentiations by `p-1`, `q-1` run
/// in constant time.
pub struct PaillierSecretKey {
    pk: PaillierPublicKey,
    p: SecretNat,
    q: SecretNat,
    p2: SecretNat,
    q2: SecretNat,
    p_minus_1: SecretNat,
    q_minus_1: SecretNat,
    /// `L_p(g^(p-1) mod p²)^(-1) mod p`
    hp: SecretNat,
    /// `L_q(g^(q-1) mod q²)^(-1) mod q`
    hq: SecretNat,
    /// `q^(-1) mod p`
    q_inv_p: SecretNat,
    /// Tables for CRT encryption (built on first use).
    crt: OnceLock<PaillierCrt>,
}

/// The key holder's CRT encryption state: `hs` tables modulo `p²` and
/// `q²` (secret; zeroized on drop by their owners).
struct PaillierCrt {
    /// `P`, `Q` are `p²`, `q²` (or swapped if `q²` has more limbs).
    crt: Crt,
    /// `P` and `Q` as big integers (to reduce `1 + m n`).
    big_p: SecretNat,
    big_q: SecretNat,
    hs_p: MontFixedBase,
    hs_q: MontFixedBase,
}

impl fmt::Debug for PaillierSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaillierSecretKey")
            .field("modulus_bits", &self.pk.inner.bits)
            .finish_non_exhaustive()
    }
}

/// `L(x) = (x - 1) / d`.
fn l_func(x: &Nat, d: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
    x.sub(&Nat::one()?)?.div(d, ctx)
}

impl PaillierSecretKey {
    /// Builds a key from two primes (big-endian). Checks that they differ,
    /// have equal bit length, are probable primes and satisfy
    /// `gcd(pq, (p-1)(q-1)) = 1`; the DJN base `hs` is derived from `rng`.
    /// Refuses moduli below 2048 bits.
    pub fn from_primes<R: CryptoRng + ?Sized>(
        p_be: &[u8],
        q_be: &[u8],
        rng: &mut R,
    ) -> Result<Self, HeError> {
        Self::from_primes_with_policy(p_be, q_be, KeyPolicy::production(), rng)
    }

    /// [`PaillierSecretKey::from_primes`] under the key-size `policy`.
    pub fn from_primes_with_policy<R: CryptoRng + ?Sized>(
        p_be: &[u8],
        q_be: &[u8],
        policy: KeyPolicy,
        rng: &mut R,
    ) -> Result<Self, HeError> {
        let p = Nat::from_be(p_be)?;
        let q = Nat::from_be(q_be)?;
        with_ctx(|ctx| Self::from_nat_primes(p, q, policy, rng, ctx))
    }

    fn from_nat_primes<R: CryptoRng + ?Sized>(
        p: Nat,
        q: Nat,
        policy: KeyPolicy,
        rng: &mut R,
        ctx: &mut Ctx,
    ) -> Result<Self, HeError> {
        let p = SecretNat::new(p);
        let q = SecretNat::new(q);
        if p.get().ucmp(q.get()) == Ordering::Equal {
            return Err(HeError::InvalidSecretKey {
                reason: "p and q must differ",
            });
        }
        if p.get().bits() != q.get().bits() {
            return Err(HeError::InvalidSecretKey {
                reason: "p and q must have the same bit length",
            });
        }
        if !p.get().is_probable_prime(ctx)? || !q.get().is_probable_prime(ctx)? {
            return Err(HeError::InvalidSecretKey {
                reason: "p and q must be prime",
            });
        }
        let n = p.get().mul(q.get(), ctx)?;
        validate_modulus(&n, policy)?;
        let one = Nat::one()?;
        let p_minus_1 = SecretNat::new(p.get().sub(&one)?);
        let q_minus_1 = SecretNat::new(q.get().sub(&one)?);
        let phi = SecretNat::new(p_minus_1.get().mul(q_minus_1.get(), ctx)?);
        if !n.gcd(phi.get(), ctx)?.is_one() {
            return Err(HeError::InvalidSecretKey {
                reason: "gcd(pq, (p-1)(q-1)) != 1",
            });
        }
        let p2 = SecretNat::new(p.get().mul(p.get(), ctx)?);
        let q2 = SecretNat::new(q.get().mul(q.get(), ctx)?);
        let g = n.add(&one)?;
        let hp = {
            let gp = g
                .rem(p2.get(), ctx)?
                .mod_exp_secret(&p_minus_1, p2.get(), ctx)?;
            SecretNat::new(l_func(&gp, p.get(), ctx)?.mod_inverse(p.get(), ctx)?)
        };
        let hq = {
            let gq = g
                .rem(q2.get(), ctx)?
                .mod_exp_secret(&q_minus_1, q2.get(), ctx)?;
            SecretNat::new(l_func(&gq, q.get(), ctx)?.mod_inverse(q.get(), ctx)?)
        };
        let q_inv_p = SecretNat::new(q.get().mod_inverse(p.get(), ctx)?);
        let n2 = n.mul(&n, ctx)?;
        let hs = derive_hs(&n, &n2, rng, ctx)?;
        let pk = PaillierPublicKey::build(n, hs, ctx)?;
        Ok(PaillierSecretKey {
            pk,
            p,
            q,
            p2,
            q2,
            p_minus_1,
            q_minus_1,
            hp,
            hq,
            q_inv_p,
            crt: OnceLock::new(),
        })
    }

    /// Builds the tables for [`HeSecretKey::encrypt_crt`] now (otherwise
    /// built on first use).
    pub fn precompute_crt(&self) -> Result<(), HeError> {
        self.crt_state().map(|_| ())
    }

    /// Memory held by the CRT encryption tables (0 before they are built).
    pub fn crt_table_bytes(&self) -> usize {
        self.crt
            .get()
            .map_or(0, |c| c.hs_p.table_bytes() + c.hs_q.table_bytes())
    }

    fn crt_state(&self) -> Result<&PaillierCrt, HeError> {
        get_or_build(&self.crt, || {
            let (big_p, big_q, crt) = match Crt::new(self.p2.get(), self.q2.get()) {
                Ok(c) => (self.p2.get(), self.q2.get(), c),
                Err(_) => (
                    self.q2.get(),
                    self.p2.get(),
                    Crt::new(self.q2.get(), self.p2.get())?,
                ),
            };
            let bits = self.pk.inner.exp_bytes as u32 * 8;
            let hs = &self.pk.inner.hs;
            let (hs_p, hs_q) = rayon::join(
                || MontFixedBase::new(hs, crt.mp.clone(), bits, DEFAULT_WINDOW),
                || MontFixedBase::new(hs, crt.mq.clone(), bits, DEFAULT_WINDOW),
            );
            Ok(PaillierCrt {
                big_p: SecretNat::new(big_p.try_clone()?),
                big_q: SecretNat::new(big_q.try_clone()?),
                hs_p: hs_p?,
                hs_q: hs_q?,
                crt,
            })
        })
    }

    /// `(1 + m n) · hs^a mod n²` computed modulo `p²` and `q²` and
    /// recombined.
    fn encrypt_with_crt<R: CryptoRng + ?Sized>(
        &self,
        st: &PaillierCrt,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        let (mp, mq) = (&st.crt.mp, &st.crt.mq);
        let (gm_p, gm_q) = with_ctx(|ctx| {
            let gm = SecretNat::new(self.pk.g_pow_m(m, ctx)?);
            let gp = SecretNat::new(gm.get().rem(st.big_p.get(), ctx)?);
            let gq = SecretNat::new(gm.get().rem(st.big_q.get(), ctx)?);
            Ok((
                zeroize::Zeroizing::new(mp.limbs_from_nat(gp.get())?),
                zeroize::Zeroizing::new(mq.limbs_from_nat(gq.get())?),
            ))
        })?;
        let a = self.pk.draw_a(rng);
        let mut ap = MontAcc::new(mp);
        let mut aq = MontAcc::new(mq);
        st.hs_p.accumulate(&mut ap, &a)?;
        st.hs_q.accumulate(&mut aq, &a)?;
        let mut xp = zeroize::Zeroizing::new(mp.zero());
        let mut xq = zeroize::Zeroizing::new(mq.zero());
        ap.finish_times(mp, &mut xp, &gm_p);
        aq.finish_times(mq, &mut xq, &gm_q);
        let mut out = zeroize::Zeroizing::new(vec![0u64; st.crt.out_limbs()]);
        let mut scratch = zeroize::Zeroizing::new(vec![0u64; 2 * mp.limbs()]);
        st.crt.combine(&mut out, &xp, &xq, &mut scratch);
        self.pk.inner.ct.limbs_to_ct(&out)
    }

    fn decrypt_nat(&self, c: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let cp = c.rem(self.p2.get(), ctx)?;
        let xp = cp.mod_exp_secret(&self.p_minus_1, self.p2.get(), ctx)?;
        let mp = Nat::mod_mul(
            &l_func(&xp, self.p.get(), ctx)?,
            self.hp.get(),
            self.p.get(),
            ctx,
        )?;
        let cq = c.rem(self.q2.get(), ctx)?;
        let xq = cq.mod_exp_secret(&self.q_minus_1, self.q2.get(), ctx)?;
        let mq = Nat::mod_mul(
            &l_func(&xq, self.q.get(), ctx)?,
            self.hq.get(),
            self.q.get(),
            ctx,
        )?;
        // m = mq + q * ((mp - mq) * q^-1 mod p)
        let mq_mod_p = mq.rem(self.p.get(), ctx)?;
        let diff = Nat::mod_sub(&mp, &mq_mod_p, self.p.get(), ctx)?;
        let h = Nat::mod_mul(&diff, self.q_inv_p.get(), self.p.get(), ctx)?;
        h.mul(self.q.get(), ctx)?.add(&mq)
    }
}

impl HeSecretKey for PaillierSecretKey {
    type Ciphertext = PaillierCiphertext;
    type PublicKey = PaillierPublicKey;

    fn public_key(&self) -> &PaillierPublicKey {
        &self.pk
    }

    /// CRT encryption (see the module docs): the same ciphertext as
    /// [`HePublicKey::encrypt`] for the same RNG state.
    fn encrypt_crt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<PaillierCiphertext, HeError> {
        let st = self.crt_state()?;
        self.encrypt_with_crt(st, m, rng)
    }

    fn encrypt_batch_crt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<PaillierCiphertext>, HeError> {
        let st = self.crt_state()?;
        let mut seeds = draw_seeds(ms.len(), rng);
        let out = ms
            .par_iter()
            .zip(seeds.par_iter())
            .map(|(m, seed)| {
                let mut r = ChaCha20Rng::from_seed(*seed);
                self.encrypt_with_crt(st, m, &mut r)
            })
            .collect();
        seeds.zeroize();
        out
    }

    fn decrypt(&self, c: &PaillierCiphertext) -> Result<Plaintext, HeError> {
        let x = self.pk.inner.ct.ct_to_nat(c)?;
        self.pk.inner.ct.check_below(&x)?;
        with_ctx(|ctx| {
            let m = self.decrypt_nat(&x, ctx)?;
            Plaintext::from_residue_centered(&m, &self.pk.inner.n, &self.pk.inner.n_half)
        })
    }
}

impl AdditiveScheme for Paillier {
    const NAME: &'static str = "paillier";
    type Ciphertext = PaillierCiphertext;
    type PublicKey = PaillierPublicKey;
    type SecretKey = PaillierSecretKey;

    fn generate_keypair_with_policy<R: CryptoRng + ?Sized>(
        policy: KeyPolicy,
        bits: u32,
        rng: &mut R,
    ) -> Result<(PaillierPublicKey, PaillierSecretKey), HeError> {
        policy.check(bits)?;
        if !bits.is_multiple_of(2) {
            return Err(HeError::UnsupportedKeySize {
                bits,
                reason: "modulus size must be even",
            });
        }
        with_ctx(|ctx| {
            for _ in 0..64 {
                let p = random_prime(rng, bits / 2, ctx)?;
                let q = random_prime(rng, bits / 2, ctx)?;
                match PaillierSecretKey::from_nat_primes(p, q, policy, rng, ctx) {
                    Ok(sk) => return Ok((sk.pk.clone(), sk)),
                    Err(HeError::InvalidSecretKey { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(HeError::PrimeGeneration { attempts: 64 })
        })
    }
}
