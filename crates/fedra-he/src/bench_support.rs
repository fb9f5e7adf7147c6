//! Hooks that let `benches/he.rs` time private internals. Not part of the
//! public API (hidden from the docs, may change at any time).

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::bn::{Barrett, Nat, with_ctx};
use crate::error::HeError;
use crate::mont::Modulus;

/// Random odd modulus and two random operands for timing one modular
/// multiplication with each backend.
pub struct MulBench {
    m: Modulus,
    barrett: Barrett,
    n: Nat,
    a_nat: Nat,
    b_nat: Nat,
    a: Vec<u64>,
    b: Vec<u64>,
    out: Vec<u64>,
}

impl MulBench {
    /// Operands for a `bits`-bit modulus drawn from a seeded RNG.
    pub fn new(bits: u32, seed: u64) -> Result<Self, HeError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let n = Nat::random_bits(&mut rng, bits, true, true)?;
        let a_nat = Nat::random_below(&mut rng, &n)?;
        let b_nat = Nat::random_below(&mut rng, &n)?;
        let m = Modulus::new(&n)?;
        let a = m.mont_from_nat(&a_nat)?;
        let b = m.mont_from_nat(&b_nat)?;
        let barrett = with_ctx(|ctx| Barrett::new(&n, ctx))?;
        Ok(MulBench {
            out: m.zero(),
            m,
            barrett,
            n,
            a_nat,
            b_nat,
            a,
            b,
        })
    }

    /// One pure-Rust Montgomery multiplication (into a reused buffer).
    pub fn montgomery(&mut self) -> u64 {
        self.m.mul(&mut self.out, &self.a, &self.b);
        self.out.first().copied().unwrap_or(0)
    }

    /// One in-place Montgomery multiplication `a *= b`.
    pub fn montgomery_in_place(&mut self) -> u64 {
        self.m.mul_assign(&mut self.a, &self.b);
        self.a.first().copied().unwrap_or(0)
    }

    /// One OpenSSL `BN_mod_mul` (multiply + divide).
    pub fn openssl_mod_mul(&self) -> Result<u32, HeError> {
        with_ctx(|ctx| Nat::mod_mul(&self.a_nat, &self.b_nat, &self.n, ctx)).map(|r| r.bits())
    }

    /// One multiplication with the crate's OpenSSL-based Barrett reduction.
    pub fn openssl_barrett(&self) -> Result<u32, HeError> {
        with_ctx(|ctx| self.barrett.mod_mul(&self.a_nat, &self.b_nat, ctx)).map(|r| r.bits())
    }
}

/// One fixed-base exponentiation `b^e mod n` with a Montgomery table of a
/// given window width (to choose window sizes).
pub struct FixedBaseBench {
    table: crate::fixed_base::MontFixedBase,
    m: std::sync::Arc<Modulus>,
    exp_bytes: usize,
    rng: ChaCha20Rng,
}

impl FixedBaseBench {
    /// A random `mod_bits`-bit modulus, base and table for `exp_bits`-bit
    /// exponents with `window`-bit digits.
    pub fn new(mod_bits: u32, exp_bits: u32, window: u32, seed: u64) -> Result<Self, HeError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let n = Nat::random_bits(&mut rng, mod_bits, true, true)?;
        let base = Nat::random_below(&mut rng, &n)?;
        let m = std::sync::Arc::new(Modulus::new(&n)?);
        let table = crate::fixed_base::MontFixedBase::new(&base, m.clone(), exp_bits, window)?;
        Ok(FixedBaseBench {
            table,
            m,
            exp_bytes: exp_bits.div_ceil(8) as usize,
            rng,
        })
    }

    /// Table size in bytes.
    pub fn table_bytes(&self) -> usize {
        self.table.table_bytes()
    }

    /// One exponentiation by a fresh random exponent.
    pub fn pow_random(&mut self) -> Result<u64, HeError> {
        use rand_core::RngCore;
        let mut e = vec![0u8; self.exp_bytes];
        self.rng.fill_bytes(&mut e);
        let mut acc = crate::mont::MontAcc::new(&self.m);
        self.table.accumulate(&mut acc, &e)?;
        Ok(acc.value(&self.m).first().copied().unwrap_or(0))
    }
}
