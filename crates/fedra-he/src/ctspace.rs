//! The ciphertext space Paillier and Okamoto–Uchiyama share: residues modulo
//! `m` (`n²` for Paillier, `n` for OU) that are units modulo `n`, stored as
//! fixed-width big-endian bytes.
//!
//! [`CtSpace`] is the one place that validates received ciphertexts (length,
//! non-zero, below `m`, coprime to `n` — one gcd for a whole batch), converts
//! between bytes, big integers and Montgomery limbs, runs the accumulator API
//! and computes encrypted inner products (`dot_columns`). Each scheme's public
//! key holds one and only adds what is specific to it (encryption, keys).

use std::cmp::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

use crate::bn::{Nat, with_ctx};
use crate::error::HeError;
use crate::mont::{Modulus, limbs_to_be};

/// A ciphertext type: fixed-width big-endian bytes of a residue modulo `m`.
pub(crate) trait CtBytes: Sized {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// Wraps bytes that were validated or computed in the space.
    fn from_space(bytes: Vec<u8>) -> Self;
}

/// An accumulator type: a residue modulo `m` in Montgomery form.
pub(crate) trait AccLimbs: Sized {
    /// The limbs.
    fn limbs(&self) -> &[u64];
    /// The limbs, to update in place.
    fn limbs_mut(&mut self) -> &mut [u64];
    /// Wraps limbs computed in the space.
    fn from_space(limbs: Box<[u64]>) -> Self;
}

/// Residues modulo `m` that are units modulo `n` (see the module docs).
pub(crate) struct CtSpace {
    /// The ciphertext modulus `m`.
    pub(crate) m: Nat,
    /// `n`, the modulus ciphertexts must be coprime to.
    n: Nat,
    /// Bytes of a serialised ciphertext (`m`'s byte length).
    pub(crate) len: usize,
    /// Montgomery constants of `m`.
    pub(crate) mont: Arc<Modulus>,
    /// What a ciphertext is called in length errors (`"paillier ciphertext"`).
    what: &'static str,
    /// The range error (`"ciphertext not below n^2"`).
    not_below: &'static str,
}

impl CtSpace {
    /// The space of residues modulo `m` coprime to `n`.
    pub(crate) fn new(
        m: &Nat,
        n: &Nat,
        what: &'static str,
        not_below: &'static str,
    ) -> Result<Self, HeError> {
        Ok(CtSpace {
            m: m.try_clone()?,
            n: n.try_clone()?,
            len: m.bytes(),
            mont: Arc::new(Modulus::new(m)?),
            what,
            not_below,
        })
    }

    /// Refuses values not below `m`.
    pub(crate) fn check_below(&self, c: &Nat) -> Result<(), HeError> {
        if c.ucmp(&self.m) != Ordering::Less {
            return Err(HeError::InvalidCiphertext {
                reason: self.not_below,
            });
        }
        Ok(())
    }

    /// The residue of a ciphertext.
    pub(crate) fn ct_to_nat<C: CtBytes>(&self, c: &C) -> Result<Nat, HeError> {
        Nat::from_be(c.bytes())
    }

    /// A residue below `m` as a ciphertext.
    pub(crate) fn nat_to_ct<C: CtBytes>(&self, c: &Nat) -> Result<C, HeError> {
        Ok(C::from_space(c.to_be_padded(self.len)?))
    }

    /// Normal-form limbs below `m` as a ciphertext.
    pub(crate) fn limbs_to_ct<C: CtBytes>(&self, x: &[u64]) -> Result<C, HeError> {
        Ok(C::from_space(limbs_to_be(x, self.len)?))
    }

    /// Length, zero and range checks of a received ciphertext (no gcd).
    fn parse_ranged(&self, bytes: &[u8]) -> Result<Nat, HeError> {
        if bytes.len() != self.len {
            return Err(HeError::InvalidLength {
                what: self.what,
                expected: self.len,
                actual: bytes.len(),
            });
        }
        let c = Nat::from_be(bytes)?;
        if c.is_zero() {
            return Err(HeError::InvalidCiphertext {
                reason: "ciphertext is zero",
            });
        }
        self.check_below(&c)?;
        Ok(c)
    }

    /// Parses and validates one received ciphertext.
    pub(crate) fn parse<C: CtBytes>(&self, bytes: &[u8]) -> Result<C, HeError> {
        let c = self.parse_ranged(bytes)?;
        if !with_ctx(|ctx| c.gcd(&self.n, ctx))?.is_one() {
            return Err(HeError::InvalidCiphertext {
                reason: "ciphertext not coprime to n",
            });
        }
        Ok(C::from_space(bytes.to_vec()))
    }

    /// Parses and validates many received ciphertexts with one gcd for the
    /// batch; on failure, the index of the first bad item and its error.
    pub(crate) fn parse_batch<C: CtBytes>(
        &self,
        items: &[&[u8]],
    ) -> Result<Vec<C>, (usize, HeError)> {
        let nats: Vec<Nat> = items
            .par_iter()
            .enumerate()
            .map(|(i, b)| self.parse_ranged(b).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        match crate::multiexp::first_not_coprime(&nats, &self.n).map_err(|e| (0, e))? {
            Some(i) => Err((
                i,
                HeError::InvalidCiphertext {
                    reason: "ciphertext not coprime to n",
                },
            )),
            None => Ok(items.iter().map(|b| C::from_space(b.to_vec())).collect()),
        }
    }

    /// `Enc(0)` with no randomness (the residue 1) as an accumulator.
    pub(crate) fn acc_zero<A: AccLimbs>(&self) -> A {
        A::from_space(self.mont.one_mont().into())
    }

    /// A ciphertext in Montgomery form.
    pub(crate) fn acc_prepare<C: CtBytes, A: AccLimbs>(&self, c: &C) -> A {
        A::from_space(self.mont.acc_prepare_be(c.bytes()).into())
    }

    /// `acc = acc · x` (homomorphic addition) in place.
    pub(crate) fn acc_add<A: AccLimbs>(&self, acc: &mut A, x: &A) {
        self.mont.acc_add(acc.limbs_mut(), x.limbs());
    }

    /// An accumulator back to a ciphertext.
    pub(crate) fn acc_finish<A: AccLimbs, C: CtBytes>(&self, acc: &A) -> C {
        C::from_space(self.mont.acc_finish_be(acc.limbs(), self.len))
    }

    /// `out[j] = Π_i cts[i]^{scalars[i·columns + j]} mod m` by bucket
    /// multi-exponentiation (see [`crate::HePublicKey::dot_columns`]).
    pub(crate) fn dot_columns<C: CtBytes + Sync>(
        &self,
        cts: &[C],
        scalars: &[i64],
        columns: usize,
    ) -> Result<Vec<C>, HeError> {
        crate::multiexp::check_shape(cts.len(), scalars.len(), columns)?;
        if cts.is_empty() {
            return Err(HeError::EmptyInput {
                what: "ciphertexts of an inner product",
            });
        }
        let bases = crate::multiexp::parse_all(cts.par_iter().map(CtBytes::bytes))?;
        crate::multiexp::multi_exp_columns(&bases, scalars, columns, &self.m)?
            .iter()
            .map(|r| self.nat_to_ct(r))
            .collect()
    }
}
