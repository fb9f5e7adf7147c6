//! Pure-Rust Montgomery arithmetic for fixed odd moduli (no `unsafe`).
//!
//! The `openssl` crate does not expose `BN_MONT_CTX` and the workspace
//! forbids `unsafe`, so the hot loops of encryption (fixed-base tables) and
//! homomorphic addition use this module instead of `BN_mod_mul`.
//!
//! * Numbers are little-endian `u64` limbs; a [`Modulus`] of `k` limbs has
//!   `R = 2^(64k)`. Every operand handed to [`Modulus::mul`] has exactly
//!   `k` limbs and is `< n` (one operand may be any value `< R`, see
//!   [`Modulus::mul`]).
//! * Multiplication is FIPS, finely integrated product scanning (Koç,
//!   Acar, Kaliski, "Analyzing and comparing Montgomery multiplication
//!   algorithms", 1996) with `u128` products and a 192-bit column
//!   accumulator. It writes into a caller-provided output and never
//!   allocates. There is no separate squaring: neither fixed-base
//!   tables nor accumulation square (tables square only while being
//!   built).
//! * The common limb counts (the moduli of 1024–8192-bit keys and their
//!   CRT halves) are monomorphised with a compile-time length so that LLVM
//!   drops bounds checks and unrolls; other sizes use the same code with a
//!   run-time length.
//! * The final conditional subtraction is branch-free, so the time of one
//!   multiplication does not depend on the operands (no "extra reduction"
//!   timing signal à la Schindler, which matters because the CRT tables
//!   work modulo secret `p²`, `q`). Everything else here (table lookups,
//!   skipped zero digits) is *not* constant time; decryption does not use
//!   this module.
//!
//! Limb buffers that may hold secret-derived values are zeroized on drop
//! by their owners ([`Modulus`] zeroizes its own).

use std::sync::Arc;

use zeroize::Zeroize;

use crate::bn::{Nat, SecretNat, with_ctx};
use crate::error::HeError;

/// Largest limb count handled with a stack scratch buffer (8192 bits).
const STACK_LIMBS: usize = 128;

type MulFn = fn(&mut [u64], &[u64], &[u64], &[u64], u64);

/// An odd modulus `n > 1` with its Montgomery constants.
pub(crate) struct Modulus {
    /// Little-endian limbs of `n`; the top limb is non-zero.
    n: Vec<u64>,
    /// `-n^(-1) mod 2^64`.
    n0inv: u64,
    /// `R² mod n`.
    r2: Vec<u64>,
    /// `R mod n` (Montgomery form of 1).
    one: Vec<u64>,
    bits: u32,
    mul_fn: MulFn,
}

impl Drop for Modulus {
    fn drop(&mut self) {
        self.n.zeroize();
        self.r2.zeroize();
        self.one.zeroize();
        self.n0inv.zeroize();
    }
}

impl std::fmt::Debug for Modulus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Modulus({} bits)", self.bits)
    }
}

fn mont_err(reason: &'static str) -> HeError {
    HeError::InvalidParameter {
        name: "montgomery modulus",
        reason,
    }
}

impl Modulus {
    /// Montgomery constants for an odd `n ≥ 3`.
    pub(crate) fn new(n: &Nat) -> Result<Self, HeError> {
        if !n.is_odd() || n.bits() < 2 {
            return Err(mont_err("modulus must be odd and at least 3"));
        }
        let bits = n.bits();
        let k = bits.div_ceil(64) as usize;
        // `n` may be a secret factor (CRT encryption): clear every copy.
        let mut limbs = vec![0u64; k];
        be_to_limbs(&zeroize::Zeroizing::new(n.to_be()), &mut limbs)?;
        let n0 = limbs.first().copied().unwrap_or(1);
        // Newton iteration for n0^(-1) mod 2^64 (each step doubles the
        // number of correct low bits; n0 is its own inverse mod 8).
        let mut inv = n0;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let n0inv = inv.wrapping_neg();
        let (r2_nat, one_nat) = with_ctx(|ctx| {
            let r2 = SecretNat::new(Nat::power_of_two(128 * k as u32)?.rem(n, ctx)?);
            let one = SecretNat::new(Nat::power_of_two(64 * k as u32)?.rem(n, ctx)?);
            Ok((r2, one))
        })?;
        let mut r2 = vec![0u64; k];
        be_to_limbs(&zeroize::Zeroizing::new(r2_nat.get().to_be()), &mut r2)?;
        let mut one = vec![0u64; k];
        be_to_limbs(&zeroize::Zeroizing::new(one_nat.get().to_be()), &mut one)?;
        Ok(Modulus {
            n: limbs,
            n0inv,
            r2,
            one,
            bits,
            mul_fn: select_mul(k),
        })
    }

    /// Number of limbs `k`.
    pub(crate) fn limbs(&self) -> usize {
        self.n.len()
    }

    /// Bit length of `n`.
    #[cfg(test)]
    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    /// The modulus limbs.
    pub(crate) fn n_limbs(&self) -> &[u64] {
        &self.n
    }

    /// A zero value of the right width.
    pub(crate) fn zero(&self) -> Vec<u64> {
        vec![0u64; self.limbs()]
    }

    /// Montgomery form of 1 (`R mod n`).
    pub(crate) fn one_mont(&self) -> &[u64] {
        &self.one
    }

    /// `out = a · b · R^(-1) mod n`.
    ///
    /// Requires `a · b < n · R` (true if both are `< n`, or one is `< n`
    /// and the other any `k`-limb value); the result is then fully reduced.
    /// All slices must have exactly `k` limbs (otherwise `out` is zeroed,
    /// which no caller in this crate does). `out` must not alias `a`/`b`
    /// (enforced by the borrow checker).
    #[inline]
    pub(crate) fn mul(&self, out: &mut [u64], a: &[u64], b: &[u64]) {
        (self.mul_fn)(out, a, b, &self.n, self.n0inv);
    }

    /// `acc = acc · b · R^(-1) mod n` in place (stack scratch up to 8192
    /// bits, a heap buffer beyond).
    pub(crate) fn mul_assign(&self, acc: &mut [u64], b: &[u64]) {
        let k = self.limbs();
        if k <= STACK_LIMBS {
            let mut tmp = [0u64; STACK_LIMBS];
            if let Some(t) = tmp.get_mut(..k) {
                self.mul(t, acc, b);
                acc.copy_from_slice(t);
            }
        } else {
            let mut t = vec![0u64; k];
            self.mul(&mut t, acc, b);
            acc.copy_from_slice(&t);
        }
    }

    /// Montgomery form `a · R mod n` of any `k`-limb `a` (also reduces
    /// `a ≥ n`).
    pub(crate) fn to_mont(&self, out: &mut [u64], a: &[u64]) {
        self.mul(out, a, &self.r2);
    }

    /// Normal form `a · R^(-1) mod n` (Montgomery reduction, about half the
    /// cost of a multiplication).
    pub(crate) fn mont_reduce(&self, out: &mut [u64], a: &[u64]) {
        redc(out, a, &self.n, self.n0inv);
    }

    /// `a · b mod n` for `a, b < n` in normal form.
    #[cfg(test)]
    pub(crate) fn mod_mul_plain(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut t = self.zero();
        self.mul(&mut t, a, b);
        let mut out = self.zero();
        self.mul(&mut out, &t, &self.r2);
        out
    }

    /// Parses a big-endian value of at most `k` limbs (not reduced).
    pub(crate) fn limbs_from_be(&self, bytes: &[u8]) -> Result<Vec<u64>, HeError> {
        let mut out = self.zero();
        be_to_limbs(bytes, &mut out)?;
        Ok(out)
    }

    /// Limbs of a `Nat` of at most `k` limbs (not reduced).
    pub(crate) fn limbs_from_nat(&self, x: &Nat) -> Result<Vec<u64>, HeError> {
        self.limbs_from_be(&x.to_be())
    }

    /// Montgomery form of `x mod n` for a `Nat` below `R`.
    pub(crate) fn mont_from_nat(&self, x: &Nat) -> Result<Vec<u64>, HeError> {
        let plain = zeroize::Zeroizing::new(self.limbs_from_nat(x)?);
        let mut out = self.zero();
        self.to_mont(&mut out, &plain);
        Ok(out)
    }

    /// Montgomery form of a big-endian ciphertext for the accumulator API;
    /// an all-zero value (an invalid ciphertext that stays zero and fails
    /// to decrypt) if it is wider than the modulus.
    pub(crate) fn acc_prepare_be(&self, bytes: &[u8]) -> Vec<u64> {
        let mut out = self.zero();
        if let Ok(x) = self.limbs_from_be(bytes) {
            self.to_mont(&mut out, &x);
        }
        out
    }

    /// `acc = acc · x` (Montgomery form, in place, no allocation up to
    /// 8192 bits). Mismatched widths (values of another key) zero `acc`.
    pub(crate) fn acc_add(&self, acc: &mut [u64], x: &[u64]) {
        if acc.len() == self.limbs() && x.len() == self.limbs() {
            self.mul_assign(acc, x);
        } else {
            acc.fill(0);
        }
    }

    /// Normal-form big-endian bytes of an accumulator (all zero for a
    /// value of the wrong width).
    pub(crate) fn acc_finish_be(&self, acc: &[u64], len: usize) -> Vec<u8> {
        let mut out = self.zero();
        if acc.len() == self.limbs() {
            self.mont_reduce(&mut out, acc);
        }
        limbs_to_be(&out, len).unwrap_or_else(|_| vec![0u8; len])
    }

    /// `out = (a - b) mod n` for `a, b < n` (branch-free).
    pub(crate) fn sub_mod(&self, out: &mut [u64], a: &[u64], b: &[u64]) {
        let mut borrow = 0u64;
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            let (d, b1) = x.overflowing_sub(y);
            let (d, b2) = d.overflowing_sub(borrow);
            *o = d;
            borrow = u64::from(b1 | b2);
        }
        let mask = 0u64.wrapping_sub(borrow);
        let mut carry = 0u64;
        for (o, &m) in out.iter_mut().zip(&self.n) {
            let s = u128::from(*o) + u128::from(m & mask) + u128::from(carry);
            *o = s as u64;
            carry = (s >> 64) as u64;
        }
    }
}

/// A running product in Montgomery form for fixed-base exponentiation:
/// starts "empty" (the first factor is copied, not multiplied) and
/// ping-pongs between two buffers. Zeroized on drop (it holds encryption
/// randomness).
pub(crate) struct MontAcc {
    cur: Vec<u64>,
    tmp: Vec<u64>,
    started: bool,
}

impl Drop for MontAcc {
    fn drop(&mut self) {
        self.cur.zeroize();
        self.tmp.zeroize();
    }
}

impl MontAcc {
    /// An empty product for `m`.
    pub(crate) fn new(m: &Modulus) -> Self {
        MontAcc {
            cur: m.zero(),
            tmp: m.zero(),
            started: false,
        }
    }

    /// `acc *= x` (Montgomery form).
    #[inline]
    pub(crate) fn mul_by(&mut self, m: &Modulus, x: &[u64]) {
        if self.started {
            m.mul(&mut self.tmp, &self.cur, x);
            std::mem::swap(&mut self.cur, &mut self.tmp);
        } else {
            self.cur.copy_from_slice(x);
            self.started = true;
        }
    }

    /// The product in Montgomery form (`R mod n`, i.e. 1, if empty).
    pub(crate) fn value<'a>(&'a self, m: &'a Modulus) -> &'a [u64] {
        if self.started {
            &self.cur
        } else {
            m.one_mont()
        }
    }

    /// `out = product · y` in normal form for a normal-form `y < R`
    /// (saves the conversion out of Montgomery form).
    pub(crate) fn finish_times(&self, m: &Modulus, out: &mut [u64], y: &[u64]) {
        m.mul(out, self.value(m), y);
    }

    /// `out = product` in normal form.
    pub(crate) fn finish(&self, m: &Modulus, out: &mut [u64]) {
        m.mont_reduce(out, self.value(m));
    }
}

/// Writes the big-endian `bytes` into little-endian limbs `out` (zero
/// padded); errors if the value does not fit.
pub(crate) fn be_to_limbs(bytes: &[u8], out: &mut [u64]) -> Result<(), HeError> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = bytes.get(start..).unwrap_or_default();
    if bytes.len() > out.len() * 8 {
        return Err(mont_err("value wider than the modulus"));
    }
    out.fill(0);
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks(8)) {
        let mut v = 0u64;
        for &b in chunk {
            v = (v << 8) | u64::from(b);
        }
        *limb = v;
    }
    Ok(())
}

/// Fixed-width big-endian encoding of little-endian limbs; errors if the
/// value needs more than `len` bytes.
pub(crate) fn limbs_to_be(limbs: &[u64], len: usize) -> Result<Vec<u8>, HeError> {
    let mut out = vec![0u8; len];
    limbs_to_be_into(limbs, &mut out)?;
    Ok(out)
}

/// [`limbs_to_be`] into a caller-provided buffer (its length is the width).
pub(crate) fn limbs_to_be_into(limbs: &[u64], out: &mut [u8]) -> Result<(), HeError> {
    out.fill(0);
    let len = out.len();
    for (i, &limb) in limbs.iter().enumerate() {
        for (j, b) in limb.to_le_bytes().into_iter().enumerate() {
            let pos = i * 8 + j; // byte position from the least significant end
            if pos < len {
                if let Some(slot) = out.get_mut(len - 1 - pos) {
                    *slot = b;
                }
            } else if b != 0 {
                return Err(HeError::Backend {
                    op: "limbs_to_be",
                    message: "value wider than target length".into(),
                });
            }
        }
    }
    Ok(())
}

/// `Nat` from little-endian limbs.
pub(crate) fn limbs_to_nat(limbs: &[u64]) -> Result<Nat, HeError> {
    let bytes = zeroize::Zeroizing::new(limbs_to_be(limbs, limbs.len() * 8)?);
    Nat::from_be(&bytes)
}

/// `out = a · b` (schoolbook; `out.len() ≥ a.len() + b.len()`, extra limbs
/// are zeroed). The running time depends only on the lengths.
pub(crate) fn mul_plain(out: &mut [u64], a: &[u64], b: &[u64]) {
    out.fill(0);
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        let Some(row) = out.get_mut(i..) else { return };
        let mut it = row.iter_mut();
        // `b` first: zip must not pull an extra item out of `it`.
        for (&bj, o) in b.iter().zip(it.by_ref()) {
            let t = u128::from(*o) + u128::from(ai) * u128::from(bj) + u128::from(carry);
            *o = t as u64;
            carry = (t >> 64) as u64;
        }
        for o in it {
            let (s, c) = o.overflowing_add(carry);
            *o = s;
            carry = u64::from(c);
        }
    }
}

/// `acc += x` (little-endian, `x.len() ≤ acc.len()`); returns the carry out.
pub(crate) fn add_assign(acc: &mut [u64], x: &[u64]) -> u64 {
    let mut carry = 0u64;
    let mut xs = x.iter();
    for a in acc.iter_mut() {
        let y = xs.next().copied().unwrap_or(0);
        let s = u128::from(*a) + u128::from(y) + u128::from(carry);
        *a = s as u64;
        carry = (s >> 64) as u64;
    }
    carry
}

/// Chooses a monomorphised multiplication for common limb counts.
fn select_mul(k: usize) -> MulFn {
    match k {
        8 => mul_fixed::<8>,
        11 => mul_fixed::<11>,
        12 => mul_fixed::<12>,
        16 => mul_fixed::<16>,
        22 => mul_fixed::<22>,
        24 => mul_fixed::<24>,
        32 => mul_fixed::<32>,
        48 => mul_fixed::<48>,
        64 => mul_fixed::<64>,
        96 => mul_fixed::<96>,
        128 => mul_fixed::<128>,
        _ => mul_var,
    }
}

fn mul_fixed<const K: usize>(out: &mut [u64], a: &[u64], b: &[u64], n: &[u64], n0inv: u64) {
    if out.len() != K {
        out.fill(0);
        return;
    }
    match (
        <&mut [u64; K]>::try_from(out),
        <&[u64; K]>::try_from(a),
        <&[u64; K]>::try_from(b),
        <&[u64; K]>::try_from(n),
    ) {
        (Ok(out), Ok(a), Ok(b), Ok(n)) => mont_mul_core(out, a, b, n, n0inv),
        (Ok(out), ..) => out.fill(0),
        (Err(_), ..) => {}
    }
}

fn mul_var(out: &mut [u64], a: &[u64], b: &[u64], n: &[u64], n0inv: u64) {
    let k = n.len();
    if out.len() != k || a.len() != k || b.len() != k || k == 0 {
        out.fill(0);
        return;
    }
    mont_mul_core(out, a, b, n, n0inv);
}

/// `acc += x·y` on a 192-bit column accumulator `(acc, top)`.
#[inline(always)]
fn mac(acc: &mut u128, top: &mut u64, x: u64, y: u64) {
    let (s, o) = acc.overflowing_add(u128::from(x) * u128::from(y));
    *acc = s;
    *top += u64::from(o);
}

/// Montgomery multiplication by finely integrated product scanning
/// (FIPS, Koç–Acar–Kaliski 1996): column by column, each column adds its
/// `a_i·b_j` and `m_i·n_j` products to one 192-bit accumulator, so the
/// inner loop has no stores and a short carry chain. In the measurements
/// for BENCHMARKS.md it was 13–20 % faster than CIOS with `u128`
/// intermediates at 22–64 limbs. `out[i]` holds the reduction factors
/// `m_i` until column `k + i` overwrites it with the result word.
/// All slices have the same non-zero length (checked by the callers).
#[inline(always)]
fn mont_mul_core(out: &mut [u64], a: &[u64], b: &[u64], n: &[u64], n0inv: u64) {
    let k = n.len();
    let mut acc: u128 = 0;
    let mut top: u64 = 0;
    for c in 0..k {
        for i in 0..c {
            mac(&mut acc, &mut top, a[i], b[c - i]);
            mac(&mut acc, &mut top, out[i], n[c - i]);
        }
        mac(&mut acc, &mut top, a[c], b[0]);
        let m = (acc as u64).wrapping_mul(n0inv);
        out[c] = m;
        mac(&mut acc, &mut top, m, n[0]);
        // The low word is now zero: shift the accumulator by one word.
        acc = (acc >> 64) | (u128::from(top) << 64);
        top = 0;
    }
    for c in k..2 * k {
        for i in (c + 1 - k)..k {
            mac(&mut acc, &mut top, a[i], b[c - i]);
            mac(&mut acc, &mut top, out[i], n[c - i]);
        }
        out[c - k] = acc as u64;
        acc = (acc >> 64) | (u128::from(top) << 64);
        top = 0;
    }
    // The result is below 2n: the remaining accumulator is 0 or 1.
    final_sub(out, acc as u64, n);
}

/// Montgomery reduction of a `k`-limb value.
fn redc(out: &mut [u64], a: &[u64], n: &[u64], n0inv: u64) {
    let k = n.len();
    if out.len() != k || a.len() != k || k == 0 {
        out.fill(0);
        return;
    }
    out.copy_from_slice(a);
    let mut hi = 0u64;
    for _ in 0..k {
        let m = u128::from(out[0].wrapping_mul(n0inv));
        let y = u128::from(out[0]) + m * u128::from(n[0]);
        let mut c = y >> 64;
        for j in 1..k {
            let y = u128::from(out[j]) + m * u128::from(n[j]) + c;
            out[j - 1] = y as u64;
            c = y >> 64;
        }
        let s = u128::from(hi) + c;
        out[k - 1] = s as u64;
        hi = (s >> 64) as u64;
    }
    final_sub(out, hi, n);
}

/// Subtracts `n` from `hi·R + t` if that is `≥ n`, without branching on
/// the values.
#[inline(always)]
fn final_sub(t: &mut [u64], hi: u64, n: &[u64]) {
    let mut borrow = 0u64;
    for (&x, &y) in t.iter().zip(n) {
        let (d, b1) = x.overflowing_sub(y);
        let (_, b2) = d.overflowing_sub(borrow);
        borrow = u64::from(b1 | b2);
    }
    // t ≥ n iff there is a top word or the subtraction did not borrow.
    let mask = 0u64.wrapping_sub(hi | (borrow ^ 1));
    let mut borrow = 0u64;
    for (x, &y) in t.iter_mut().zip(n) {
        let (d, b1) = x.overflowing_sub(y & mask);
        let (d, b2) = d.overflowing_sub(borrow);
        *x = d;
        borrow = u64::from(b1 | b2);
    }
}

/// Chinese remaindering `x ≡ xp (mod P)`, `x ≡ xq (mod Q)` with Garner's
/// formula `x = xq + Q · ((xp − xq) · Q^(-1) mod P)`, `0 ≤ x < PQ`.
///
/// `P` and `Q` are coprime, `Q` has at most as many limbs as `P`. All
/// stored values are secret (zeroized on drop).
pub(crate) struct Crt {
    pub(crate) mp: Arc<Modulus>,
    pub(crate) mq: Arc<Modulus>,
    /// Limbs of `Q`.
    q_plain: Vec<u64>,
    /// Montgomery form (mod `P`) of `Q^(-1) mod P`.
    qinv_mont: Vec<u64>,
}

impl Drop for Crt {
    fn drop(&mut self) {
        self.q_plain.zeroize();
        self.qinv_mont.zeroize();
    }
}

impl Crt {
    /// Builds the constants; errors if `Q` is wider than `P` (in limbs) or
    /// not invertible modulo `P`.
    pub(crate) fn new(p: &Nat, q: &Nat) -> Result<Self, HeError> {
        let mp = Arc::new(Modulus::new(p)?);
        let mq = Arc::new(Modulus::new(q)?);
        if mq.limbs() > mp.limbs() || mp.limbs() > STACK_LIMBS {
            return Err(mont_err(
                "CRT needs Q no wider than P and P of at most 8192 bits",
            ));
        }
        let qinv = zeroize::Zeroizing::new(with_ctx(|ctx| {
            q.mod_inverse(p, ctx)
                .map(|x| limbs_from_secret(&x, mp.limbs()))
        })??);
        let mut qinv_mont = mp.zero();
        mp.to_mont(&mut qinv_mont, &qinv);
        let q_plain = mq.limbs_from_nat(q)?;
        Ok(Crt {
            mp,
            mq,
            q_plain,
            qinv_mont,
        })
    }

    /// Limbs of the combined value `P·Q` range.
    pub(crate) fn out_limbs(&self) -> usize {
        self.mp.limbs() + self.mq.limbs()
    }

    /// `out = CRT(xp, xq)` for `xp < P`, `xq < Q` in normal form; `out` has
    /// [`Crt::out_limbs`] limbs. `scratch` has `2·P` limbs.
    pub(crate) fn combine(&self, out: &mut [u64], xp: &[u64], xq: &[u64], scratch: &mut [u64]) {
        let kp = self.mp.limbs();
        let (a, rest) = scratch.split_at_mut(kp.min(scratch.len()));
        let b = rest.get_mut(..kp).unwrap_or_default();
        // b = xq widened to P's width (xq < Q < R_P, so Montgomery
        // multiplication by a value < P is valid and reduces it).
        b.fill(0);
        for (d, &s) in b.iter_mut().zip(xq) {
            *d = s;
        }
        // a = xp·Q^(-1) mod P, then b = xq·Q^(-1) mod P (normal form since
        // qinv is in Montgomery form).
        self.mp.mul(a, xp, &self.qinv_mont);
        let mut t = [0u64; STACK_LIMBS];
        let t = t.get_mut(..kp).unwrap_or_default();
        self.mp.mul(t, b, &self.qinv_mont);
        // h = a - b mod P
        self.mp.sub_mod(b, a, t);
        t.zeroize();
        mul_plain(out, &self.q_plain, b);
        add_assign(out, xq);
        a.zeroize();
        b.zeroize();
    }
}

/// Limbs of a (secret) `Nat`, at the given width.
fn limbs_from_secret(x: &Nat, width: usize) -> Result<Vec<u64>, HeError> {
    let bytes = zeroize::Zeroizing::new(x.to_be());
    let mut out = vec![0u64; width];
    be_to_limbs(&bytes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn nat(x: &[u64]) -> Nat {
        limbs_to_nat(x).unwrap()
    }

    /// Random odd modulus of exactly `bits` bits; `shape` picks special
    /// forms that stress carries (all-ones limbs, minimal top limb).
    fn modulus(bits: u32, shape: u8, seed: u64) -> Nat {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        match shape {
            // 2^bits - 1 (all ones)
            0 => Nat::power_of_two(bits)
                .unwrap()
                .sub(&Nat::one().unwrap())
                .unwrap(),
            // 2^(bits-1) + 1
            1 => Nat::power_of_two(bits - 1)
                .unwrap()
                .add(&Nat::one().unwrap())
                .unwrap(),
            _ => Nat::random_bits(&mut rng, bits, true, true).unwrap(),
        }
    }

    fn operand(m: &Nat, kind: u8, rng: &mut ChaCha20Rng) -> Nat {
        match kind {
            0 => Nat::zero().unwrap(),
            1 => Nat::one().unwrap(),
            2 => m.sub(&Nat::one().unwrap()).unwrap(),
            _ => Nat::random_below(rng, m).unwrap(),
        }
    }

    fn check_mul(bits: u32, shape: u8, ka: u8, kb: u8, seed: u64) {
        let n = modulus(bits, shape, seed);
        let m = Modulus::new(&n).unwrap();
        assert_eq!(m.bits(), bits);
        let k = m.limbs();
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5555);
        let a = operand(&n, ka, &mut rng);
        let b = operand(&n, kb, &mut rng);
        let al = m.limbs_from_nat(&a).unwrap();
        let bl = m.limbs_from_nat(&b).unwrap();
        with_ctx(|ctx| {
            // Raw Montgomery product a·b·R^-1.
            let r = Nat::power_of_two(64 * k as u32).unwrap();
            let rinv = r.rem(&n, ctx).unwrap().mod_inverse(&n, ctx).unwrap();
            let want = Nat::mod_mul(&Nat::mod_mul(&a, &b, &n, ctx)?, &rinv, &n, ctx)?;
            let mut out = m.zero();
            m.mul(&mut out, &al, &bl);
            assert_eq!(nat(&out).to_be(), want.to_be(), "mont mul");
            // Plain product through to_mont/mont_reduce.
            let want = Nat::mod_mul(&a, &b, &n, ctx)?;
            let mut am = m.zero();
            let mut bm = m.zero();
            m.to_mont(&mut am, &al);
            m.to_mont(&mut bm, &bl);
            let mut pm = m.zero();
            m.mul(&mut pm, &am, &bm);
            let mut p = m.zero();
            m.mont_reduce(&mut p, &pm);
            assert_eq!(nat(&p).to_be(), want.to_be(), "via montgomery form");
            assert_eq!(nat(&m.mod_mul_plain(&al, &bl)).to_be(), want.to_be());
            // In place.
            m.mul_assign(&mut am, &bm);
            assert_eq!(am, pm);
            // Round trip.
            let mut back = m.zero();
            m.mont_reduce(&mut back, &bm);
            assert_eq!(back, bl);
            // to_mont reduces values >= n (any k-limb value).
            let big = vec![u64::MAX; k];
            let mut bigm = m.zero();
            m.to_mont(&mut bigm, &big);
            m.mont_reduce(&mut back, &bigm);
            let want = nat(&big).rem(&n, ctx)?;
            assert_eq!(nat(&back).to_be(), want.to_be(), "to_mont reduces");
            // sub_mod
            let mut d = m.zero();
            m.sub_mod(&mut d, &al, &bl);
            assert_eq!(nat(&d).to_be(), Nat::mod_sub(&a, &b, &n, ctx)?.to_be());
            Ok(())
        })
        .unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn prop_mont_mul_matches_openssl(
            bits in prop::sample::select(vec![1024u32, 1366, 2048, 3072, 4096, 700, 200, 6000, 64, 128]),
            shape in 0u8..4,
            ka in 0u8..6,
            kb in 0u8..6,
            seed in any::<u64>(),
        ) {
            check_mul(bits, shape, ka, kb, seed);
        }

        #[test]
        fn prop_crt_combine_matches_openssl(
            bits_p in prop::sample::select(vec![1366u32, 2048, 1024, 300]),
            seed in any::<u64>(),
        ) {
            // Any coprime odd moduli will do (primes are slow to generate).
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            with_ctx(|ctx| {
                let p = Nat::random_bits(&mut rng, bits_p, true, true)?;
                let q = Nat::random_bits(&mut rng, bits_p / 2, true, true)?;
                if !p.gcd(&q, ctx)?.is_one() {
                    return Ok(());
                }
                let crt = Crt::new(&p, &q)?;
                let x = Nat::random_below(&mut rng, &p.mul(&q, ctx)?)?;
                let xp = crt.mp.limbs_from_nat(&x.rem(&p, ctx)?)?;
                let xq = crt.mq.limbs_from_nat(&x.rem(&q, ctx)?)?;
                let mut out = vec![0u64; crt.out_limbs()];
                let mut scratch = vec![0u64; 2 * crt.mp.limbs()];
                crt.combine(&mut out, &xp, &xq, &mut scratch);
                assert_eq!(nat(&out).to_be(), x.to_be());
                Ok(())
            })
            .unwrap();
        }

        #[test]
        fn prop_be_limbs_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let k = bytes.len().div_ceil(8).max(1);
            let mut l = vec![0u64; k];
            be_to_limbs(&bytes, &mut l).unwrap();
            prop_assert_eq!(limbs_to_be(&l, bytes.len()).unwrap(), bytes.clone());
            prop_assert_eq!(nat(&l).to_be(), Nat::from_be(&bytes).unwrap().to_be());
        }
    }

    #[test]
    fn widths_are_checked() {
        let mut l = [0u64; 1];
        assert!(be_to_limbs(&[1, 0, 0, 0, 0, 0, 0, 0, 0], &mut l).is_err());
        assert!(be_to_limbs(&[0, 1, 0, 0, 0, 0, 0, 0, 0], &mut l).is_ok());
        assert!(limbs_to_be(&[0x1ff], 1).is_err());
        assert_eq!(limbs_to_be(&[0xff], 1).unwrap(), vec![0xff]);
        assert!(Modulus::new(&Nat::from_be(&[4]).unwrap()).is_err());
        assert!(Modulus::new(&Nat::one().unwrap()).is_err());
        // Mismatched widths zero the output instead of panicking.
        let m = Modulus::new(&Nat::from_be(&[0xff; 32]).unwrap()).unwrap();
        let mut out = vec![7u64; 4];
        m.mul(&mut out, &[1, 2, 3], &[1, 2, 3, 4]);
        assert_eq!(out, vec![0; 4]);
    }

    #[test]
    fn mul_plain_and_add() {
        let a = [u64::MAX, u64::MAX];
        let b = [u64::MAX];
        let mut out = [0u64; 4];
        mul_plain(&mut out, &a, &b);
        let want = nat(&a)
            .mul(&nat(&b), &mut openssl::bn::BigNumContext::new().unwrap())
            .unwrap();
        assert_eq!(nat(&out).to_be(), want.to_be());
        assert_eq!(add_assign(&mut out, &[1]), 0);
    }
}
