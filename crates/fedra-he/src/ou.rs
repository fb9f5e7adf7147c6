//! Okamoto–Uchiyama encryption (`n = p² q`) in the accelerated variant of
//! Coron, Naccache and Paillier ("Accelerating Okamoto-Uchiyama public-key
//! cryptosystem", Electronics Letters 35(4), 1999), as also used by
//! SecretFlow HEU.
//!
//! * Key generation: a prime `t` (224 bits for |n| ≥ 2048, 256 bits for
//!   |n| ≥ 3072), `p = t·u + 1` prime with `|p| = ⌊|n|/3⌋`, a prime `q`,
//!   `n = p² q`. `G = g^u mod n` for a random `g` with
//!   `g^(p-1) ≠ 1 mod p²`, and `H = g'^(n·u) mod n` for a random `g'`.
//! * `Enc(m) = G^m · H^r mod n` with `r` uniform of `2·|t|` bits. Both
//!   powers use 8-bit fixed-base tables in Montgomery form (module
//!   `mont`; a third table for `G^(-1)` is built lazily for negative
//!   plaintexts). At 2048 bits the `G`, `G^(-1)` (8-bit windows) and `H`
//!   (10-bit windows) tables take 5.5, 5.5 and 11.8 MB.
//! * The key holder can encrypt faster with [`HeSecretKey::encrypt_crt`]:
//!   `G^m·H^r` is computed modulo `p²` and modulo `q` with their own
//!   tables (and `r mod t` modulo `p²`, where `H` has order `t`) and
//!   recombined by CRT. For the same `r` the ciphertext is identical to
//!   [`HePublicKey::encrypt`]'s, so it has exactly the same distribution.
//! * Homomorphic addition keeps ciphertexts in Montgomery form through the
//!   accumulator API ([`HePublicKey::acc_prepare`], [`OuAcc`]).
//! * `Dec(c) = L(c^t mod p²) · L(G^t mod p²)^(-1) mod p` with
//!   `L(x) = (x-1)/p`; the exponentiation by the secret `t` is
//!   constant-time. Residues above `p/2` are read as negative.
//! * Plaintext magnitudes must stay below `2^(|p|-2)` (so the unsigned
//!   plaintext space is below `2^(|p|-1)` < p). Arithmetic that exceeds it
//!   wraps modulo the *secret* `p`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use rayon::prelude::*;
use zeroize::Zeroize;

use crate::bn::{Ctx, Nat, SecretNat, with_ctx};
use crate::ctspace::{AccLimbs, CtBytes, CtSpace};
use crate::error::HeError;
use crate::fixed_base::{DEFAULT_WINDOW, MontFixedBase};
use crate::mont::{Crt, Modulus, MontAcc};
use crate::plaintext::Plaintext;
use crate::primes::random_prime;
use crate::scheme::{AdditiveScheme, HePublicKey, HeSecretKey, KeyPolicy, draw_seeds};

const PK_MAGIC: &[u8; 4] = b"FHOU";

/// Window of the `H^r` tables: 10-bit digits take 45 instead of 56
/// multiplications for a 448-bit `r` (−13 % time, measured) for 11.8 MB
/// instead of 3.7 MB at 2048 bits (see BENCHMARKS.md). The `G` tables keep
/// 8-bit windows (they cover the whole plaintext space, 680 bits).
const H_WINDOW: u32 = 10;

/// Smallest OU modulus that the construction supports at all (only reachable
/// under [`KeyPolicy::insecure_small_keys_for_tests`]).
const OU_STRUCTURAL_MIN_BITS: u32 = 240;

/// Marker type for the Okamoto–Uchiyama scheme.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkamotoUchiyama;

/// Parameter sizes derived from the modulus size.
#[derive(Debug, Clone, Copy)]
struct OuParams {
    p_bits: u32,
    t_bits: u32,
}

fn ou_params(bits: u32) -> Result<OuParams, HeError> {
    if bits < OU_STRUCTURAL_MIN_BITS {
        return Err(HeError::UnsupportedKeySize {
            bits,
            reason: "okamoto-uchiyama needs at least 240 bits",
        });
    }
    let p_bits = bits / 3;
    let t_bits = if bits >= 3072 {
        256
    } else if bits >= 2048 {
        224
    } else {
        (p_bits / 4).max(24)
    };
    Ok(OuParams { p_bits, t_bits })
}

struct PkInner {
    n: Nat,
    g: Nat,
    h: Nat,
    bits: u32,
    plaintext_bits: u32,
    r_bits: u32,
    /// Residues modulo `n` (their Montgomery constants included).
    ct: CtSpace,
    g_table: OnceLock<MontFixedBase>,
    g_inv_table: OnceLock<MontFixedBase>,
    h_table: OnceLock<MontFixedBase>,
}

/// Okamoto–Uchiyama public key `(n, G, H)`. Cheap to clone.
#[derive(Clone)]
pub struct OuPublicKey {
    inner: Arc<PkInner>,
}

/// Okamoto–Uchiyama ciphertext: fixed-width big-endian residue modulo `n`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OuCiphertext {
    bytes: Vec<u8>,
}

impl OuCiphertext {
    /// Parses and validates a ciphertext received for `pk`.
    pub fn from_bytes(pk: &OuPublicKey, bytes: &[u8]) -> Result<Self, HeError> {
        pk.ciphertext_from_bytes(bytes)
    }

    /// Fixed-width big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl CtBytes for OuCiphertext {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn from_space(bytes: Vec<u8>) -> Self {
        OuCiphertext { bytes }
    }
}

impl AccLimbs for OuAcc {
    fn limbs(&self) -> &[u64] {
        &self.limbs
    }
    fn limbs_mut(&mut self) -> &mut [u64] {
        &mut self.limbs
    }
    fn from_space(limbs: Box<[u64]>) -> Self {
        OuAcc { limbs }
    }
}

impl fmt::Debug for OuCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OuCiphertext({} bytes)", self.bytes.len())
    }
}

impl fmt::Debug for OuPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OuPublicKey")
            .field("modulus_bits", &self.inner.bits)
            .field("plaintext_bits", &self.inner.plaintext_bits)
            .finish_non_exhaustive()
    }
}

/// A ciphertext prepared for repeated homomorphic additions: the residue
/// modulo `n` in Montgomery form (see [`HePublicKey::acc_prepare`]).
#[derive(Clone, PartialEq, Eq)]
pub struct OuAcc {
    pub(crate) limbs: Box<[u64]>,
}

impl fmt::Debug for OuAcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OuAcc({} limbs)", self.limbs.len())
    }
}

pub(crate) fn get_or_build<T>(
    cell: &OnceLock<T>,
    build: impl FnOnce() -> Result<T, HeError>,
) -> Result<&T, HeError> {
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    let t = build()?;
    let _ = cell.set(t);
    cell.get().ok_or(HeError::Backend {
        op: "fixed_base_table",
        message: "table unavailable".into(),
    })
}

impl OuPublicKey {
    fn build(n: Nat, g: Nat, h: Nat, plaintext_bits: u32, r_bits: u32) -> Result<Self, HeError> {
        let bits = n.bits();
        let ct = CtSpace::new(
            &n,
            &n,
            "okamoto-uchiyama ciphertext",
            "ciphertext not below n",
        )?;
        Ok(OuPublicKey {
            inner: Arc::new(PkInner {
                n,
                g,
                h,
                bits,
                plaintext_bits,
                r_bits,
                ct,
                g_table: OnceLock::new(),
                g_inv_table: OnceLock::new(),
                h_table: OnceLock::new(),
            }),
        })
    }

    /// Bits of the random exponent `r` (`2·|t|`).
    pub fn randomizer_exponent_bits(&self) -> u32 {
        self.inner.r_bits
    }

    /// Validates received ciphertext bytes without keeping the result.
    pub fn validate_ciphertext(&self, bytes: &[u8]) -> Result<(), HeError> {
        self.ciphertext_from_bytes(bytes).map(|_| ())
    }

    /// Builds the fixed-base tables for `G` and `H` now (otherwise built on
    /// first use; the `G^(-1)` table is built on the first negative
    /// plaintext).
    pub fn precompute(&self) -> Result<(), HeError> {
        self.g_table()?;
        self.h_table()?;
        Ok(())
    }

    /// Bits covered by the `G` tables (whole bytes of the plaintext
    /// capacity, as before the Montgomery tables).
    fn g_exp_bits(&self) -> u32 {
        self.inner.plaintext_bits.div_ceil(8) * 8
    }

    fn g_table(&self) -> Result<&MontFixedBase, HeError> {
        get_or_build(&self.inner.g_table, || {
            MontFixedBase::new(
                &self.inner.g,
                self.inner.ct.mont.clone(),
                self.g_exp_bits(),
                DEFAULT_WINDOW,
            )
        })
    }

    fn g_inv_table(&self) -> Result<&MontFixedBase, HeError> {
        get_or_build(&self.inner.g_inv_table, || {
            let gi = with_ctx(|ctx| self.inner.g.mod_inverse(&self.inner.n, ctx))?;
            MontFixedBase::new(
                &gi,
                self.inner.ct.mont.clone(),
                self.g_exp_bits(),
                DEFAULT_WINDOW,
            )
        })
    }

    fn h_table(&self) -> Result<&MontFixedBase, HeError> {
        get_or_build(&self.inner.h_table, || {
            MontFixedBase::new(
                &self.inner.h,
                self.inner.ct.mont.clone(),
                self.inner.r_bits.div_ceil(8) * 8,
                H_WINDOW,
            )
        })
    }

    /// Memory held by the fixed-base tables built so far, in bytes.
    pub fn table_bytes(&self) -> usize {
        [
            &self.inner.g_table,
            &self.inner.g_inv_table,
            &self.inner.h_table,
        ]
        .iter()
        .filter_map(|c| c.get())
        .map(MontFixedBase::table_bytes)
        .sum()
    }

    /// Draws the random exponent `r` (`r_bits` bits, big-endian) exactly as
    /// every encryption path does, so that paths agree for the same RNG.
    fn draw_r<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> zeroize::Zeroizing<Vec<u8>> {
        let r_bits = self.inner.r_bits;
        let mut r = zeroize::Zeroizing::new(vec![0u8; r_bits.div_ceil(8) as usize]);
        rng.fill_bytes(&mut r);
        let excess = (r.len() as u32) * 8 - r_bits;
        if let Some(first) = r.first_mut() {
            *first &= 0xffu8 >> excess;
        }
        r
    }

    /// `G^m · H^r` (or `G^m` alone if `r` is `None`) in Montgomery form.
    fn gm_hr_mont(&self, m: &Plaintext, r: Option<&[u8]>) -> Result<MontAcc, HeError> {
        self.check_plain(m)?;
        let mut acc = MontAcc::new(&self.inner.ct.mont);
        if !m.is_zero() {
            let table = if m.is_negative() {
                self.g_inv_table()?
            } else {
                self.g_table()?
            };
            table.accumulate(&mut acc, m.magnitude_be())?;
        }
        if let Some(r) = r {
            self.h_table()?.accumulate(&mut acc, r)?;
        }
        Ok(acc)
    }

    /// `acc · x mod n` as a ciphertext, for a normal-form ciphertext `x`.
    fn times_ct(&self, acc: &MontAcc, x: &OuCiphertext) -> Result<OuCiphertext, HeError> {
        let m = &self.inner.ct.mont;
        let xl = m.limbs_from_be(&x.bytes)?;
        let mut out = m.zero();
        acc.finish_times(m, &mut out, &xl);
        self.inner.ct.limbs_to_ct(&out)
    }

    /// Reference encryption `G^m · H^r mod n` with OpenSSL `BN_mod_exp`
    /// (no tables; cheap enough for 2048-bit keys in debug builds).
    #[cfg(test)]
    pub(crate) fn encrypt_modexp<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        self.check_plain(m)?;
        let r = self.draw_r(rng);
        let (n, g, h) = (&self.inner.n, &self.inner.g, &self.inner.h);
        with_ctx(|ctx| {
            let base = if m.is_negative() {
                g.mod_inverse(n, ctx)?
            } else {
                g.try_clone()?
            };
            let gm = base.mod_exp(&m.magnitude_nat()?, n, ctx)?;
            let hr = h.mod_exp(&Nat::from_be(&r)?, n, ctx)?;
            self.inner.ct.nat_to_ct(&Nat::mod_mul(&gm, &hr, n, ctx)?)
        })
    }

    /// Reference encryption with the original OpenSSL/Barrett fixed-base
    /// tables (built per call; small test keys only).
    #[cfg(test)]
    pub(crate) fn encrypt_reference<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        use crate::fixed_base::FixedBase;
        with_ctx(|ctx| {
            self.check_plain(m)?;
            let bytes = self.inner.plaintext_bits.div_ceil(8) as usize;
            let gm = if m.is_negative() {
                let gi = self.inner.g.mod_inverse(&self.inner.n, ctx)?;
                FixedBase::new(&gi, &self.inner.n, bytes, ctx)?.pow_be(m.magnitude_be(), ctx)?
            } else {
                FixedBase::new(&self.inner.g, &self.inner.n, bytes, ctx)?
                    .pow_be(m.magnitude_be(), ctx)?
            };
            let h = FixedBase::new(
                &self.inner.h,
                &self.inner.n,
                self.inner.r_bits.div_ceil(8) as usize,
                ctx,
            )?;
            let hr = h.pow_be(&self.draw_r(rng), ctx)?;
            self.inner
                .ct
                .nat_to_ct(&Nat::mod_mul(&gm, &hr, &self.inner.n, ctx)?)
        })
    }

    fn check_plain(&self, m: &Plaintext) -> Result<(), HeError> {
        if m.bits() > self.inner.plaintext_bits {
            return Err(HeError::PlaintextOutOfRange {
                bits: m.bits(),
                capacity_bits: self.inner.plaintext_bits,
            });
        }
        Ok(())
    }
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

impl HePublicKey for OuPublicKey {
    type Ciphertext = OuCiphertext;

    fn modulus_bits(&self) -> u32 {
        self.inner.bits
    }

    /// `|p| - 2` bits.
    fn plaintext_capacity_bits(&self) -> u32 {
        self.inner.plaintext_bits
    }

    fn ciphertext_len(&self) -> usize {
        self.inner.ct.len
    }

    fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        self.check_plain(m)?;
        let r = self.draw_r(rng);
        let acc = self.gm_hr_mont(m, Some(&r))?;
        let mut out = self.inner.ct.mont.zero();
        acc.finish(&self.inner.ct.mont, &mut out);
        self.inner.ct.limbs_to_ct(&out)
    }

    /// Two Montgomery multiplications (`a·R`, then `(a·R)·b·R^(-1)`).
    fn add(&self, a: &OuCiphertext, b: &OuCiphertext) -> Result<OuCiphertext, HeError> {
        let m = &self.inner.ct.mont;
        let x = m.limbs_from_be(&a.bytes)?;
        let y = m.limbs_from_be(&b.bytes)?;
        let mut xm = m.zero();
        m.to_mont(&mut xm, &x);
        let mut out = x;
        m.mul(&mut out, &xm, &y);
        self.inner.ct.limbs_to_ct(&out)
    }

    fn add_plain(&self, a: &OuCiphertext, m: &Plaintext) -> Result<OuCiphertext, HeError> {
        let acc = self.gm_hr_mont(m, None)?;
        self.times_ct(&acc, a)
    }

    fn mul_plain(&self, a: &OuCiphertext, k: &Plaintext) -> Result<OuCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        self.inner.ct.check_below(&x)?;
        with_ctx(|ctx| {
            let base = if k.is_negative() {
                x.mod_inverse(&self.inner.n, ctx)?
            } else {
                x
            };
            let e = SecretNat::new(k.magnitude_nat()?);
            self.inner
                .ct
                .nat_to_ct(&base.mod_exp_secret(&e, &self.inner.n, ctx)?)
        })
    }

    fn negate(&self, a: &OuCiphertext) -> Result<OuCiphertext, HeError> {
        let x = self.inner.ct.ct_to_nat(a)?;
        with_ctx(|ctx| self.inner.ct.nat_to_ct(&x.mod_inverse(&self.inner.n, ctx)?))
    }

    fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        a: &OuCiphertext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        let r = self.draw_r(rng);
        let acc = self.gm_hr_mont(&Plaintext::zero(), Some(&r))?;
        self.times_ct(&acc, a)
    }

    type Acc = OuAcc;

    fn acc_zero(&self) -> OuAcc {
        self.inner.ct.acc_zero()
    }

    fn acc_prepare(&self, c: &OuCiphertext) -> OuAcc {
        self.inner.ct.acc_prepare(c)
    }

    fn acc_add(&self, acc: &mut OuAcc, x: &OuAcc) {
        self.inner.ct.acc_add(acc, x);
    }

    fn acc_finish(&self, acc: &OuAcc) -> OuCiphertext {
        self.inner.ct.acc_finish(acc)
    }

    fn dot_columns(
        &self,
        cts: &[OuCiphertext],
        scalars: &[i64],
        columns: usize,
    ) -> Result<Vec<OuCiphertext>, HeError> {
        self.inner.ct.dot_columns(cts, scalars, columns)
    }

    fn ciphertext_to_bytes(&self, c: &OuCiphertext) -> Vec<u8> {
        c.bytes.clone()
    }

    fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<OuCiphertext, HeError> {
        self.inner.ct.parse(bytes)
    }

    fn ciphertexts_from_bytes(
        &self,
        items: &[&[u8]],
    ) -> Result<Vec<OuCiphertext>, (usize, HeError)> {
        self.inner.ct.parse_batch(items)
    }

    /// `"FHOU" || u32 bits || u32 plaintext_bits || u32 r_bits || n || G ||
    /// H`, each integer `n_len` bytes big-endian.
    fn to_bytes(&self) -> Vec<u8> {
        let l = self.inner.ct.len;
        let mut out = Vec::with_capacity(16 + 3 * l);
        out.extend_from_slice(PK_MAGIC);
        out.extend_from_slice(&self.inner.bits.to_be_bytes());
        out.extend_from_slice(&self.inner.plaintext_bits.to_be_bytes());
        out.extend_from_slice(&self.inner.r_bits.to_be_bytes());
        // All values are below n by construction, so padding cannot fail.
        for v in [&self.inner.n, &self.inner.g, &self.inner.h] {
            out.extend_from_slice(&v.to_be_padded(l).unwrap_or_default());
        }
        out
    }

    fn from_bytes_with_policy(bytes: &[u8], policy: KeyPolicy) -> Result<Self, HeError> {
        if bytes.get(..4) != Some(PK_MAGIC.as_slice()) {
            return Err(HeError::InvalidPublicKey {
                reason: "bad magic",
            });
        }
        let bits = read_u32(bytes, 4)?;
        let plaintext_bits = read_u32(bytes, 8)?;
        let r_bits = read_u32(bytes, 12)?;
        policy.check(bits)?;
        let params = ou_params(bits)?;
        if plaintext_bits != params.p_bits - 2 {
            return Err(HeError::InvalidPublicKey {
                reason: "plaintext bits inconsistent with modulus size",
            });
        }
        if r_bits != 2 * params.t_bits {
            return Err(HeError::InvalidPublicKey {
                reason: "randomizer bits inconsistent with modulus size",
            });
        }
        let l = bits.div_ceil(8) as usize;
        let expected = 16 + 3 * l;
        if bytes.len() != expected {
            return Err(HeError::InvalidLength {
                what: "okamoto-uchiyama public key",
                expected,
                actual: bytes.len(),
            });
        }
        let field =
            |i: usize| Nat::from_be(bytes.get(16 + i * l..16 + (i + 1) * l).unwrap_or_default());
        let n = field(0)?;
        let g = field(1)?;
        let h = field(2)?;
        if n.bits() != bits || !n.is_odd() {
            return Err(HeError::InvalidPublicKey {
                reason: "bad modulus",
            });
        }
        with_ctx(|ctx| {
            for v in [&g, &h] {
                if v.bits() < 2 || v.ucmp(&n) != Ordering::Less || !v.gcd(&n, ctx)?.is_one() {
                    return Err(HeError::InvalidPublicKey {
                        reason: "G or H is not a unit modulo n",
                    });
                }
            }
            Ok(())
        })?;
        Self::build(n, g, h, plaintext_bits, r_bits)
    }
}

/// Okamoto–Uchiyama secret key.
///
/// No `Serialize`; `Debug` prints only sizes; secrets are `BN_clear`ed on
/// drop; exponentiation by `t` is constant-time.
pub struct OuSecretKey {
    pk: OuPublicKey,
    p: SecretNat,
    p2: SecretNat,
    p_half: SecretNat,
    t: SecretNat,
    /// `L(G^t mod p²)^(-1) mod p`
    gp_inv: SecretNat,
    /// Tables for CRT encryption (built on first use).
    crt: OnceLock<OuCrt>,
}

/// The key holder's CRT encryption state: fixed-base tables modulo `p²`
/// and modulo `q` (secret; zeroized on drop by their owners).
struct OuCrt {
    /// `P = p²`, `Q = q`.
    crt: Crt,
    g_p: MontFixedBase,
    g_q: MontFixedBase,
    g_inv_p: OnceLock<MontFixedBase>,
    g_inv_q: OnceLock<MontFixedBase>,
    h_p: MontFixedBase,
    h_q: MontFixedBase,
    /// `H^t ≡ 1 (mod p²)`, so `r` is reduced modulo `t` on that side
    /// (always true for keys generated here; checked when building).
    reduce_r_mod_t: bool,
}

impl OuCrt {
    fn table_bytes(&self) -> usize {
        [&self.g_p, &self.g_q, &self.h_p, &self.h_q]
            .into_iter()
            .chain(self.g_inv_p.get())
            .chain(self.g_inv_q.get())
            .map(MontFixedBase::table_bytes)
            .sum()
    }
}

impl fmt::Debug for OuSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OuSecretKey")
            .field("modulus_bits", &self.pk.inner.bits)
            .finish_non_exhaustive()
    }
}

impl OuSecretKey {
    /// Builds the tables for [`HeSecretKey::encrypt_crt`] now (otherwise
    /// built on first use; the `G^(-1)` tables on the first negative
    /// plaintext).
    pub fn precompute_crt(&self) -> Result<(), HeError> {
        self.crt_state().map(|_| ())
    }

    /// Memory held by the CRT encryption tables built so far, in bytes.
    pub fn crt_table_bytes(&self) -> usize {
        self.crt.get().map_or(0, OuCrt::table_bytes)
    }

    fn crt_state(&self) -> Result<&OuCrt, HeError> {
        get_or_build(&self.crt, || {
            let inner = &self.pk.inner;
            let (q, reduce_r_mod_t) = with_ctx(|ctx| {
                let q = SecretNat::new(inner.n.div(self.p2.get(), ctx)?);
                let hp = SecretNat::new(inner.h.rem(self.p2.get(), ctx)?);
                let ht = hp.get().mod_exp_secret(&self.t, self.p2.get(), ctx)?;
                Ok((q, ht.is_one()))
            })?;
            let crt = Crt::new(self.p2.get(), q.get())?;
            let g_bits = self.pk.g_exp_bits();
            let hp_bits = if reduce_r_mod_t {
                self.t.get().bits()
            } else {
                inner.r_bits
            };
            let (g_p, g_q) = rayon::join(
                || MontFixedBase::new(&inner.g, crt.mp.clone(), g_bits, DEFAULT_WINDOW),
                || MontFixedBase::new(&inner.g, crt.mq.clone(), g_bits, DEFAULT_WINDOW),
            );
            let (h_p, h_q) = rayon::join(
                || MontFixedBase::new(&inner.h, crt.mp.clone(), hp_bits, H_WINDOW),
                || MontFixedBase::new(&inner.h, crt.mq.clone(), inner.r_bits, H_WINDOW),
            );
            Ok(OuCrt {
                g_p: g_p?,
                g_q: g_q?,
                h_p: h_p?,
                h_q: h_q?,
                crt,
                g_inv_p: OnceLock::new(),
                g_inv_q: OnceLock::new(),
                reduce_r_mod_t,
            })
        })
    }

    fn g_inv_tables<'a>(
        &self,
        st: &'a OuCrt,
    ) -> Result<(&'a MontFixedBase, &'a MontFixedBase), HeError> {
        let inner = &self.pk.inner;
        let build = |m: &Arc<Modulus>| {
            let gi = with_ctx(|ctx| inner.g.mod_inverse(&inner.n, ctx))?;
            MontFixedBase::new(&gi, m.clone(), self.pk.g_exp_bits(), DEFAULT_WINDOW)
        };
        let p = get_or_build(&st.g_inv_p, || build(&st.crt.mp))?;
        let q = get_or_build(&st.g_inv_q, || build(&st.crt.mq))?;
        Ok((p, q))
    }

    /// `G^m · H^r mod n` computed modulo `p²` and `q` and recombined.
    fn encrypt_with_crt<R: CryptoRng + ?Sized>(
        &self,
        st: &OuCrt,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        self.pk.check_plain(m)?;
        let r = self.pk.draw_r(rng);
        let r_p = if st.reduce_r_mod_t {
            with_ctx(|ctx| {
                let r_nat = SecretNat::new(Nat::from_be(&r)?);
                let red = SecretNat::new(r_nat.get().rem(self.t.get(), ctx)?);
                Ok(zeroize::Zeroizing::new(red.get().to_be()))
            })?
        } else {
            r.clone()
        };
        let (mp, mq) = (&st.crt.mp, &st.crt.mq);
        let mut ap = MontAcc::new(mp);
        let mut aq = MontAcc::new(mq);
        if !m.is_zero() {
            let (gp, gq) = if m.is_negative() {
                self.g_inv_tables(st)?
            } else {
                (&st.g_p, &st.g_q)
            };
            gp.accumulate(&mut ap, m.magnitude_be())?;
            gq.accumulate(&mut aq, m.magnitude_be())?;
        }
        st.h_p.accumulate(&mut ap, &r_p)?;
        st.h_q.accumulate(&mut aq, &r)?;
        let mut xp = zeroize::Zeroizing::new(mp.zero());
        let mut xq = zeroize::Zeroizing::new(mq.zero());
        ap.finish(mp, &mut xp);
        aq.finish(mq, &mut xq);
        let mut out = zeroize::Zeroizing::new(vec![0u64; st.crt.out_limbs()]);
        let mut scratch = zeroize::Zeroizing::new(vec![0u64; 2 * mp.limbs()]);
        st.crt.combine(&mut out, &xp, &xq, &mut scratch);
        self.pk.inner.ct.limbs_to_ct(&out)
    }

    /// Test-only access to the secret prime.
    #[cfg(test)]
    pub(crate) fn p_be_for_tests(&self) -> Vec<u8> {
        self.p.get().to_be()
    }
}

fn l_func(x: &Nat, p: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
    x.sub(&Nat::one()?)?.div(p, ctx)
}

impl HeSecretKey for OuSecretKey {
    type Ciphertext = OuCiphertext;
    type PublicKey = OuPublicKey;

    fn public_key(&self) -> &OuPublicKey {
        &self.pk
    }

    /// CRT encryption (see the module docs): the same ciphertext as
    /// [`HePublicKey::encrypt`] for the same RNG state, about 2–3× faster.
    fn encrypt_crt<R: CryptoRng + ?Sized>(
        &self,
        m: &Plaintext,
        rng: &mut R,
    ) -> Result<OuCiphertext, HeError> {
        let st = self.crt_state()?;
        self.encrypt_with_crt(st, m, rng)
    }

    fn encrypt_batch_crt<R: CryptoRng + ?Sized>(
        &self,
        ms: &[Plaintext],
        rng: &mut R,
    ) -> Result<Vec<OuCiphertext>, HeError> {
        let st = self.crt_state()?;
        if ms.iter().any(Plaintext::is_negative) {
            self.g_inv_tables(st)?;
        }
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

    fn decrypt(&self, c: &OuCiphertext) -> Result<Plaintext, HeError> {
        let x = self.pk.inner.ct.ct_to_nat(c)?;
        self.pk.inner.ct.check_below(&x)?;
        with_ctx(|ctx| {
            let cp = x.rem(self.p2.get(), ctx)?;
            let ct = cp.mod_exp_secret(&self.t, self.p2.get(), ctx)?;
            let m = Nat::mod_mul(
                &l_func(&ct, self.p.get(), ctx)?,
                self.gp_inv.get(),
                self.p.get(),
                ctx,
            )?;
            Plaintext::from_residue_centered(&m, self.p.get(), self.p_half.get())
        })
    }
}

impl AdditiveScheme for OkamotoUchiyama {
    const NAME: &'static str = "okamoto-uchiyama";
    type Ciphertext = OuCiphertext;
    type PublicKey = OuPublicKey;
    type SecretKey = OuSecretKey;

    fn generate_keypair_with_policy<R: CryptoRng + ?Sized>(
        policy: KeyPolicy,
        bits: u32,
        rng: &mut R,
    ) -> Result<(OuPublicKey, OuSecretKey), HeError> {
        policy.check(bits)?;
        let params = ou_params(bits)?;
        with_ctx(|ctx| {
            let one = Nat::one()?;
            let t = SecretNat::new(random_prime(rng, params.t_bits, ctx)?);
            let u_bits = params.p_bits - params.t_bits;
            // p = t*u + 1 with u even, both with top two bits set so that
            // |p| = |t| + |u| exactly.
            let attempts = params.p_bits.saturating_mul(256).max(100_000);
            let mut found = None;
            for _ in 0..attempts {
                let mut u_raw = Nat::random_bits(rng, u_bits, true, false)?;
                if u_raw.is_odd() {
                    u_raw = u_raw.sub(&one)?;
                }
                let u = SecretNat::new(u_raw);
                let p = SecretNat::new(t.get().mul(u.get(), ctx)?.add(&one)?);
                if p.get().bits() == params.p_bits && p.get().is_probable_prime(ctx)? {
                    found = Some((p, u));
                    break;
                }
            }
            let (p, u) = found.ok_or(HeError::PrimeGeneration { attempts })?;
            let p2 = SecretNat::new(p.get().mul(p.get(), ctx)?);
            // q with |n| = bits exactly: |p² q| is |p²| + |q| or one less,
            // depending on the leading digits, so alternate between the two
            // candidate sizes of q (one of them always works with constant
            // probability).
            let base_q_bits = bits.saturating_sub(p2.get().bits());
            let mut n_q = None;
            for attempt in 0..1000u32 {
                let q_bits = base_q_bits + (attempt % 2);
                let q = SecretNat::new(random_prime(rng, q_bits, ctx)?);
                if q.get().ucmp(p.get()) == Ordering::Equal {
                    continue;
                }
                let n = p2.get().mul(q.get(), ctx)?;
                if n.bits() == bits {
                    n_q = Some(n);
                    break;
                }
            }
            let n = n_q.ok_or(HeError::PrimeGeneration { attempts: 1000 })?;
            let p_minus_1 = SecretNat::new(p.get().sub(&one)?);
            // g with g^(p-1) != 1 mod p^2, i.e. L(g^(p-1) mod p^2) invertible.
            let mut g_found = None;
            for _ in 0..1000 {
                let g = Nat::random_unit(rng, &n, ctx)?;
                let gp = g
                    .rem(p2.get(), ctx)?
                    .mod_exp_secret(&p_minus_1, p2.get(), ctx)?;
                let l = l_func(&gp, p.get(), ctx)?;
                if !l.is_zero() {
                    let gp_inv = SecretNat::new(l.mod_inverse(p.get(), ctx)?);
                    g_found = Some((g, gp_inv));
                    break;
                }
            }
            let (g_small, gp_inv) = g_found.ok_or(HeError::PrimeGeneration { attempts: 1000 })?;
            let g_small = SecretNat::new(g_small);
            let big_g = g_small.get().mod_exp_secret(&u, &n, ctx)?;
            let g2 = SecretNat::new(Nat::random_unit(rng, &n, ctx)?);
            let nu = SecretNat::new(n.mul(u.get(), ctx)?);
            let big_h = g2.get().mod_exp_secret(&nu, &n, ctx)?;
            if big_g.is_one() || big_h.is_one() {
                return Err(HeError::InvalidSecretKey {
                    reason: "degenerate generator",
                });
            }
            let p_half = SecretNat::new(p.get().shr(1)?);
            let pk = OuPublicKey::build(n, big_g, big_h, params.p_bits - 2, 2 * params.t_bits)?;
            let sk = OuSecretKey {
                pk: pk.clone(),
                p,
                p2,
                p_half,
                t,
                gp_inv,
                crt: OnceLock::new(),
            };
            Ok((pk, sk))
        })
    }
}
