//! The mask PRG: a 32-byte seed expanded to a ring vector with ChaCha20.
//!
//! Choice: ChaCha20 (RFC 8439, 20 rounds, all-zero nonce, 32-bit block
//! counter) from the `chacha20` crate, whose keystream is written directly
//! into a buffer with runtime-detected SIMD (AVX2/SSE2/NEON). Element `i` of
//! `PRG(seed)` over `Z_{2^k}` is keystream bytes `[i*k/8, (i+1)*k/8)` read
//! little-endian. The full 20 rounds are kept (not ChaCha12/8) because the
//! keystream is all that hides an input from the server; the expansion still
//! runs at several GB/s per core. Each seed is used with one nonce only:
//! self-mask seeds are fresh randomness and pairwise seeds are derived per
//! round and per pair.
//!
//! Speed: expansion dominates the protocol's cost (a client expands one seed
//! per peer plus its own; the server one per survivor plus one per
//! survivor/dropped pair). [`apply_masks`] therefore never materializes a
//! mask: it walks the vector in 64 KiB chunks in parallel (rayon), seeks
//! every seed's keystream to the chunk's offset and adds or subtracts it
//! while the chunk is in cache. The scratch buffer is zeroized afterwards.

use std::fmt;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use crate::ring::{Ring, RingVec};

/// Keystream bytes per parallel task.
const TASK_BYTES: usize = 64 * 1024;

/// A 32-byte PRG seed; zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskSeed([u8; 32]);

impl MaskSeed {
    /// Wraps seed bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh uniformly random seed.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut s = Self([0; 32]);
        rng.fill_bytes(&mut s.0);
        s
    }

    /// The seed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for MaskSeed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for MaskSeed {}

impl fmt::Debug for MaskSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskSeed(<redacted>)")
    }
}

/// Whether a mask is added to or subtracted from the vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// `v += PRG(seed)`.
    Add,
    /// `v -= PRG(seed)`.
    Sub,
}

trait Word: Copy + Send + Sync {
    const BYTES: usize;
    fn from_le(b: &[u8]) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
}

impl Word for u32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        u32::from_le_bytes(a)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.wrapping_sub(o)
    }
}

impl Word for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn from_le(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.wrapping_sub(o)
    }
}

fn keystream_at(seed: &MaskSeed, offset: u64, out: &mut [u8]) {
    let mut c = ChaCha20::new(&chacha20::Key::from(seed.0), &chacha20::Nonce::default());
    c.seek(offset);
    c.write_keystream(out);
}

fn apply_generic<W: Word>(v: &mut [W], masks: &[(&MaskSeed, Sign)]) {
    if masks.is_empty() {
        return;
    }
    let per_task = TASK_BYTES / W::BYTES;
    v.par_chunks_mut(per_task).enumerate().for_each_init(
        || Zeroizing::new(vec![0u8; TASK_BYTES]),
        |buf, (i, chunk)| {
            let bytes = &mut buf[..chunk.len() * W::BYTES];
            let offset = (i * TASK_BYTES) as u64;
            for (seed, sign) in masks {
                keystream_at(seed, offset, bytes);
                let words = bytes.chunks_exact(W::BYTES).map(W::from_le);
                match sign {
                    Sign::Add => chunk.iter_mut().zip(words).for_each(|(x, m)| *x = x.add(m)),
                    Sign::Sub => chunk.iter_mut().zip(words).for_each(|(x, m)| *x = x.sub(m)),
                }
            }
        },
    );
}

/// Adds (or subtracts) `PRG(seed)` for every `(seed, sign)` to `v`, in the
/// ring of `v`, in parallel.
pub fn apply_masks(v: &mut RingVec, masks: &[(&MaskSeed, Sign)]) {
    match v {
        RingVec::U32(x) => apply_generic(x, masks),
        RingVec::U64(x) => apply_generic(x, masks),
    }
}

/// `PRG(seed)` as a ring vector of length `dim` (mostly for tests and
/// benchmarks; the protocol uses [`apply_masks`]).
pub fn expand(seed: &MaskSeed, ring: Ring, dim: usize) -> RingVec {
    let mut v = RingVec::zeros(ring, dim);
    apply_masks(&mut v, &[(seed, Sign::Add)]);
    v
}

/// Writes `len` raw keystream bytes of `seed` into `out` in parallel, the
/// inner loop of [`apply_masks`] without the ring arithmetic (benchmarks).
pub fn keystream(seed: &MaskSeed, out: &mut [u8]) {
    out.par_chunks_mut(TASK_BYTES)
        .enumerate()
        .for_each(|(i, chunk)| keystream_at(seed, (i * TASK_BYTES) as u64, chunk));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_expansion_matches_one_sequential_keystream() {
        let seed = MaskSeed::new([3; 32]);
        let dim = TASK_BYTES / 4 * 2 + 123; // crosses task boundaries, ragged tail
        let mut seq = vec![0u8; dim * 8];
        keystream_at(&seed, 0, &mut seq);
        let v32 = expand(&seed, Ring::U32, dim);
        let v64 = expand(&seed, Ring::U64, dim);
        for i in [0, 1, TASK_BYTES / 4 - 1, TASK_BYTES / 4, dim - 1] {
            assert_eq!(
                v32.get(i).unwrap(),
                u64::from(<u32 as Word>::from_le(&seq[4 * i..4 * i + 4]))
            );
            assert_eq!(
                v64.get(i).unwrap(),
                <u64 as Word>::from_le(&seq[8 * i..8 * i + 8])
            );
        }
        let mut par = vec![0u8; dim * 8];
        keystream(&seed, &mut par);
        assert_eq!(par, seq);
    }

    #[test]
    fn rfc8439_keystream_block() {
        // RFC 8439 section 2.4.2 uses a non-zero nonce; with the zero nonce and
        // zero key the first keystream block is the well-known vector below.
        let mut out = [0u8; 16];
        keystream_at(&MaskSeed::new([0; 32]), 0, &mut out);
        assert_eq!(
            out,
            [
                0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
                0xbd, 0x28
            ]
        );
    }

    #[test]
    fn add_then_sub_cancels() {
        let a = MaskSeed::new([1; 32]);
        let b = MaskSeed::new([2; 32]);
        let orig = RingVec::U64((0..1000).collect());
        let mut v = orig.clone();
        apply_masks(&mut v, &[(&a, Sign::Add), (&b, Sign::Sub)]);
        assert_ne!(v, orig);
        apply_masks(&mut v, &[(&b, Sign::Add), (&a, Sign::Sub)]);
        assert_eq!(v, orig);
    }
}
