//! Deterministic prime generation from a caller-supplied RNG.
//!
//! Candidates are drawn from the caller's RNG (so a seeded RNG reproduces a
//! key) and tested with OpenSSL's trial division + 64 Miller–Rabin rounds.
//! OpenSSL's own `BN_generate_prime_ex` cannot be driven by our RNG, hence
//! this loop.

use rand_core::CryptoRng;

use crate::bn::{Ctx, Nat};
use crate::error::HeError;

/// Random prime with exactly `bits` bits and its two top bits set.
pub(crate) fn random_prime<R: CryptoRng + ?Sized>(
    rng: &mut R,
    bits: u32,
    ctx: &mut Ctx,
) -> Result<Nat, HeError> {
    let attempts = bits.saturating_mul(64).max(10_000);
    for _ in 0..attempts {
        let c = Nat::random_bits(rng, bits, true, true)?;
        if c.is_probable_prime(ctx)? {
            return Ok(c);
        }
    }
    Err(HeError::PrimeGeneration { attempts })
}
