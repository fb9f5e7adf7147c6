//! Internal big-integer backend.
//!
//! Everything in this crate does its arithmetic through [`Nat`] (a
//! non-negative big integer) and [`with_ctx`] (a per-thread scratch context).
//! The only implementation is OpenSSL's `BIGNUM` via the `openssl` crate; to
//! swap the backend only this module has to be rewritten.
//!
//! Notes on the OpenSSL backend:
//! * Secret exponents are wrapped in [`SecretNat`], which sets
//!   `BN_FLG_CONSTTIME` on construction so `BN_mod_exp` dispatches to
//!   `BN_mod_exp_mont_consttime`, and calls `BN_clear` (an
//!   `OPENSSL_cleanse` of the limb buffer) when dropped.
//! * `BN_CTX` scratch values are released with `BN_clear_free` by OpenSSL
//!   itself when a context is freed.
//! * The `openssl` crate does not expose `BN_MONT_CTX`, and this workspace
//!   forbids `unsafe`, so the hot loops of encryption and addition use the
//!   crate's own pure-Rust Montgomery arithmetic (module `mont`) instead of
//!   this backend. `BN_mod_exp` (decryption, scalar multiplication)
//!   internally uses OpenSSL's Montgomery arithmetic.

use std::cell::RefCell;
use std::cmp::Ordering;

use openssl::bn::{BigNum, BigNumContext, BigNumContextRef};
use openssl::error::ErrorStack;
use rand_core::CryptoRng;

use crate::error::HeError;

/// Scratch context for big-integer operations (not `Sync`; one per thread).
pub(crate) type Ctx = BigNumContextRef;

thread_local! {
    static CTX: RefCell<Option<BigNumContext>> = const { RefCell::new(None) };
}

fn backend(op: &'static str) -> impl FnOnce(ErrorStack) -> HeError {
    move |e| HeError::Backend {
        op,
        message: e.to_string(),
    }
}

/// Runs `f` with this thread's cached big-integer context (created on first
/// use). Re-entrant calls fall back to a fresh temporary context.
pub(crate) fn with_ctx<T>(f: impl FnOnce(&mut Ctx) -> Result<T, HeError>) -> Result<T, HeError> {
    CTX.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = Some(BigNumContext::new().map_err(backend("bn_ctx_new"))?);
            }
            match slot.as_mut() {
                Some(ctx) => f(ctx),
                None => Err(HeError::Backend {
                    op: "bn_ctx",
                    message: "context unavailable".into(),
                }),
            }
        }
        Err(_) => {
            let mut ctx = BigNumContext::new().map_err(backend("bn_ctx_new"))?;
            f(&mut ctx)
        }
    })
}

fn to_i32(v: u32, op: &'static str) -> Result<i32, HeError> {
    i32::try_from(v).map_err(|_| HeError::Backend {
        op,
        message: "bit count out of range".into(),
    })
}

/// A non-negative big integer (OpenSSL `BIGNUM`).
pub(crate) struct Nat(BigNum);

impl Nat {
    pub(crate) fn zero() -> Result<Self, HeError> {
        BigNum::new().map(Nat).map_err(backend("bn_new"))
    }

    pub(crate) fn one() -> Result<Self, HeError> {
        BigNum::from_u32(1).map(Nat).map_err(backend("bn_from_u32"))
    }

    /// `2^bits`.
    pub(crate) fn power_of_two(bits: u32) -> Result<Self, HeError> {
        let mut n = Nat::zero()?;
        n.0.set_bit(to_i32(bits, "bn_set_bit")?)
            .map_err(backend("bn_set_bit"))?;
        Ok(n)
    }

    /// Parses an unsigned big-endian byte string.
    pub(crate) fn from_be(bytes: &[u8]) -> Result<Self, HeError> {
        BigNum::from_slice(bytes)
            .map(Nat)
            .map_err(backend("bn_bin2bn"))
    }

    /// Minimal big-endian encoding (empty for zero).
    pub(crate) fn to_be(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// Fixed-width big-endian encoding; errors if the value does not fit.
    pub(crate) fn to_be_padded(&self, len: usize) -> Result<Vec<u8>, HeError> {
        if self.bytes() > len {
            return Err(HeError::Backend {
                op: "bn_bn2binpad",
                message: "value wider than target length".into(),
            });
        }
        let len = i32::try_from(len).map_err(|_| HeError::Backend {
            op: "bn_bn2binpad",
            message: "length out of range".into(),
        })?;
        self.0.to_vec_padded(len).map_err(backend("bn_bn2binpad"))
    }

    pub(crate) fn bits(&self) -> u32 {
        u32::try_from(self.0.num_bits()).unwrap_or(0)
    }

    pub(crate) fn bytes(&self) -> usize {
        usize::try_from(self.0.num_bytes()).unwrap_or(0)
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.num_bits() == 0
    }

    pub(crate) fn is_one(&self) -> bool {
        self.0.num_bits() == 1
    }

    pub(crate) fn is_odd(&self) -> bool {
        self.0.is_odd()
    }

    pub(crate) fn ucmp(&self, other: &Nat) -> Ordering {
        self.0.ucmp(&other.0)
    }

    pub(crate) fn try_clone(&self) -> Result<Nat, HeError> {
        self.0.to_owned().map(Nat).map_err(backend("bn_dup"))
    }

    pub(crate) fn add(&self, other: &Nat) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.checked_add(&self.0, &other.0)
            .map_err(backend("bn_add"))?;
        Ok(r)
    }

    /// `self - other`; errors if the result would be negative.
    pub(crate) fn sub(&self, other: &Nat) -> Result<Nat, HeError> {
        if self.ucmp(other) == Ordering::Less {
            return Err(HeError::Backend {
                op: "bn_sub",
                message: "negative result".into(),
            });
        }
        let mut r = Nat::zero()?;
        r.0.checked_sub(&self.0, &other.0)
            .map_err(backend("bn_sub"))?;
        Ok(r)
    }

    pub(crate) fn mul(&self, other: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.checked_mul(&self.0, &other.0, ctx)
            .map_err(backend("bn_mul"))?;
        Ok(r)
    }

    pub(crate) fn div(&self, d: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.checked_div(&self.0, &d.0, ctx)
            .map_err(backend("bn_div"))?;
        Ok(r)
    }

    /// `self mod m` in `[0, m)`.
    pub(crate) fn rem(&self, m: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.nnmod(&self.0, &m.0, ctx).map_err(backend("bn_nnmod"))?;
        Ok(r)
    }

    pub(crate) fn shr(&self, n: u32) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.rshift(&self.0, to_i32(n, "bn_rshift")?)
            .map_err(backend("bn_rshift"))?;
        Ok(r)
    }

    /// `a * b mod m`.
    pub(crate) fn mod_mul(a: &Nat, b: &Nat, m: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.mod_mul_into(a, b, m, ctx)?;
        Ok(r)
    }

    /// `self = a * b mod m` (reuses `self`'s buffer).
    pub(crate) fn mod_mul_into(
        &mut self,
        a: &Nat,
        b: &Nat,
        m: &Nat,
        ctx: &mut Ctx,
    ) -> Result<(), HeError> {
        self.0
            .mod_mul(&a.0, &b.0, &m.0, ctx)
            .map_err(backend("bn_mod_mul"))
    }

    /// `a - b mod m` in `[0, m)`.
    pub(crate) fn mod_sub(a: &Nat, b: &Nat, m: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.mod_sub(&a.0, &b.0, &m.0, ctx)
            .map_err(backend("bn_mod_sub"))?;
        Ok(r)
    }

    /// `self^e mod m` for a *public* exponent (variable time).
    pub(crate) fn mod_exp(&self, e: &Nat, m: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.mod_exp(&self.0, &e.0, &m.0, ctx)
            .map_err(backend("bn_mod_exp"))?;
        Ok(r)
    }

    /// `self^e mod m` for a *secret* exponent: constant-time Montgomery
    /// ladder-style windowed exponentiation (`BN_mod_exp_mont_consttime`).
    /// `m` must be odd.
    pub(crate) fn mod_exp_secret(
        &self,
        e: &SecretNat,
        m: &Nat,
        ctx: &mut Ctx,
    ) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        // `e` carries BN_FLG_CONSTTIME (set in SecretNat::new), which makes
        // BN_mod_exp take the constant-time path.
        r.0.mod_exp(&self.0, &e.0.0, &m.0, ctx)
            .map_err(backend("bn_mod_exp_consttime"))?;
        Ok(r)
    }

    pub(crate) fn mod_inverse(&self, m: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.mod_inverse(&self.0, &m.0, ctx)
            .map_err(backend("bn_mod_inverse"))?;
        Ok(r)
    }

    pub(crate) fn gcd(&self, other: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let mut r = Nat::zero()?;
        r.0.gcd(&self.0, &other.0, ctx).map_err(backend("bn_gcd"))?;
        Ok(r)
    }

    /// Probabilistic primality test: trial division followed by 64
    /// Miller–Rabin rounds with OpenSSL-internal random bases (error
    /// probability below 2^-128 for these sizes).
    pub(crate) fn is_probable_prime(&self, ctx: &mut Ctx) -> Result<bool, HeError> {
        self.0
            .is_prime_fasttest(64, ctx, true)
            .map_err(backend("bn_is_prime"))
    }

    /// Uniform random integer of at most `bits` bits drawn from `rng`; if
    /// `top_two` the two most significant bits are forced to one (so the
    /// value has exactly `bits` bits and products of two such values have
    /// exactly the sum of bit lengths); if `odd` the lowest bit is set.
    pub(crate) fn random_bits<R: CryptoRng + ?Sized>(
        rng: &mut R,
        bits: u32,
        top_two: bool,
        odd: bool,
    ) -> Result<Nat, HeError> {
        if bits < 2 {
            return Err(HeError::InvalidParameter {
                name: "bits",
                reason: "need at least 2 random bits",
            });
        }
        let nbytes = bits.div_ceil(8) as usize;
        let mut buf = zeroize::Zeroizing::new(vec![0u8; nbytes]);
        rng.fill_bytes(&mut buf);
        let excess = nbytes as u32 * 8 - bits;
        if let Some(first) = buf.first_mut() {
            *first &= 0xffu8 >> excess;
        }
        let mut n = Nat::from_be(&buf)?;
        if top_two {
            n.0.set_bit(to_i32(bits - 1, "bn_set_bit")?)
                .map_err(backend("bn_set_bit"))?;
            n.0.set_bit(to_i32(bits - 2, "bn_set_bit")?)
                .map_err(backend("bn_set_bit"))?;
        }
        if odd {
            n.0.set_bit(0).map_err(backend("bn_set_bit"))?;
        }
        Ok(n)
    }

    /// Uniform random integer in `[0, bound)` by rejection sampling.
    pub(crate) fn random_below<R: CryptoRng + ?Sized>(
        rng: &mut R,
        bound: &Nat,
    ) -> Result<Nat, HeError> {
        let bits = bound.bits().max(2);
        // Expected < 2 iterations; the bound makes a broken RNG an error
        // instead of an endless loop.
        for _ in 0..1000 {
            let c = Nat::random_bits(rng, bits, false, false)?;
            if c.ucmp(bound) == Ordering::Less {
                return Ok(c);
            }
        }
        Err(HeError::InvalidParameter {
            name: "rng",
            reason: "rejection sampling did not terminate (broken RNG?)",
        })
    }

    /// Uniform random unit of `Z_m^*` excluding 0 and 1... (i.e. in
    /// `[2, m)` with `gcd(x, m) = 1`).
    pub(crate) fn random_unit<R: CryptoRng + ?Sized>(
        rng: &mut R,
        m: &Nat,
        ctx: &mut Ctx,
    ) -> Result<Nat, HeError> {
        for _ in 0..1000 {
            let c = Nat::random_below(rng, m)?;
            if c.bits() >= 2 && c.gcd(m, ctx)?.is_one() {
                return Ok(c);
            }
        }
        Err(HeError::InvalidParameter {
            name: "rng",
            reason: "could not sample a unit (broken RNG?)",
        })
    }
}

/// Barrett reduction modulo a fixed `m`: `a·b mod m` with two extra
/// multiplications and no division.
///
/// OpenSSL's `BN_mod_mul` is a multiplication followed by `BN_div`, and at
/// 4096 bits (Paillier ciphertexts) the division costs about five
/// multiplications. The `openssl` crate does not expose `BN_MONT_CTX` (and
/// this workspace forbids `unsafe`), so Barrett reduction built from safe
/// `BN_mul`/`BN_rshift`/`BN_sub` is the cheapest OpenSSL-based reduction.
/// Chains of products (fixed-base tables, accumulation) use the pure-Rust
/// Montgomery code in `mont` instead; Barrett remains the cheapest option
/// for a *single* product of normal-form values at 4096 bits (Paillier
/// `add`) and in the multi-exponentiation (see BENCHMARKS.md).
pub(crate) struct Barrett {
    m: Nat,
    /// `floor(2^(2k) / m)`.
    mu: Nat,
    /// Bit length of `m`.
    k: u32,
}

impl Barrett {
    pub(crate) fn new(m: &Nat, ctx: &mut Ctx) -> Result<Self, HeError> {
        let k = m.bits();
        if k < 2 {
            return Err(HeError::InvalidParameter {
                name: "modulus",
                reason: "Barrett reduction needs a modulus of at least 2 bits",
            });
        }
        let mut pow = Nat::zero()?;
        pow.0
            .set_bit(to_i32(2 * k, "bn_set_bit")?)
            .map_err(backend("bn_set_bit"))?;
        let mu = pow.div(m, ctx)?;
        Ok(Barrett {
            m: m.try_clone()?,
            mu,
            k,
        })
    }

    /// The modulus.
    pub(crate) fn modulus(&self) -> &Nat {
        &self.m
    }

    /// `a · b mod m` for `a, b < m`.
    pub(crate) fn mod_mul(&self, a: &Nat, b: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        let x = a.mul(b, ctx)?;
        self.reduce(&x, ctx)
    }

    /// `x mod m` for `0 ≤ x < m²` (falls back to division otherwise).
    pub(crate) fn reduce(&self, x: &Nat, ctx: &mut Ctx) -> Result<Nat, HeError> {
        if x.bits() > 2 * self.k {
            return x.rem(&self.m, ctx);
        }
        let q1 = x.shr(self.k - 1)?;
        let q2 = q1.mul(&self.mu, ctx)?;
        let q3 = q2.shr(self.k + 1)?;
        let qm = q3.mul(&self.m, ctx)?;
        // x - q3·m is in [0, 3m) by Barrett's bound.
        let mut r = x.sub(&qm)?;
        for _ in 0..3 {
            if r.ucmp(&self.m) == Ordering::Less {
                return Ok(r);
            }
            r = r.sub(&self.m)?;
        }
        r.rem(&self.m, ctx)
    }
}

impl std::fmt::Debug for Nat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nat({} bits)", self.bits())
    }
}

/// A secret big integer: constant-time flag set, cleared on drop.
///
/// Drop calls `BN_clear` (which `OPENSSL_cleanse`s the whole limb buffer)
/// before OpenSSL frees the value.
pub(crate) struct SecretNat(Nat);

impl SecretNat {
    pub(crate) fn new(mut n: Nat) -> Self {
        n.0.set_const_time();
        SecretNat(n)
    }

    pub(crate) fn get(&self) -> &Nat {
        &self.0
    }
}

impl Drop for SecretNat {
    fn drop(&mut self) {
        self.0.0.clear();
    }
}

impl std::fmt::Debug for SecretNat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretNat({} bits)", self.0.bits())
    }
}
