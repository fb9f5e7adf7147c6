//! Hashing ids: to the ristretto255 group (ECDH-PSI) and to buckets (partitioning).
//!
//! ## Hash to group
//!
//! An id is mapped to a point with the one-way map of RFC 9496 §4.3.4
//! (`RistrettoPoint::from_uniform_bytes`, two Elligator maps added) applied to the
//! 64-byte SHA-512 digest of a domain-separated, length-prefixed input:
//!
//! ```text
//! SHA-512( "fedra-psi-v1" || u32be(len job) || job || u32be(len task) || task
//!          || u32be(len id) || id )
//! ```
//!
//! This is exactly `RistrettoPoint::hash_from_bytes::<Sha512>(input)` (which hashes
//! with SHA-512 and calls the same map); it is spelled out so that the crate does not
//! depend on curve25519-dalek's `digest` feature and its digest-crate version. The
//! length prefixes make the encoding injective: `("ab", "c")` and `("a", "bc")` hash to
//! unrelated points. Including the job id and task name means that blinded values of
//! two jobs (or two PSI tasks of one job) live on unrelated points even if a secret
//! key were reused, and that a precomputed dictionary of hashed ids is useful for one
//! job only. The map is one-way and the discrete log of the output is unknown, which
//! is what ECDH-PSI needs (the Diffie–Hellman assumption on `H(x)`).
//!
//! ## Buckets
//!
//! Partitioning uses a keyed hash, `SHA-256("fedra-psi-bucket-v1" || salt ||
//! u32be(len id) || id)`, first 8 bytes big-endian, reduced mod the bucket count.
//! The 32-byte salt is drawn by the leader for each run and sent in the clear to the
//! follower, so both parties (and nobody else) can place ids in buckets. What bucket
//! sizes reveal is discussed in [`crate::ecdh`].

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::{Digest, Sha256, Sha512};

/// Domain-separation prefix of the hash to group (protocol version 1).
pub const HASH_DOMAIN: &[u8] = b"fedra-psi-v1";

/// Domain-separation prefix of the bucket hash.
pub const BUCKET_DOMAIN: &[u8] = b"fedra-psi-bucket-v1";

fn len_prefixed(h: &mut impl Digest, bytes: &[u8]) {
    // Ids and names longer than 4 GiB are not ids; saturate rather than wrap (the
    // hash then still differs for different contents).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(bytes);
}

/// Hashes `id` of job `job` and PSI task `task` to a ristretto255 point (see the
/// [module docs](self) for the exact input encoding).
pub fn hash_to_group(job: &str, task: &str, id: &[u8]) -> RistrettoPoint {
    let mut h = Sha512::new();
    h.update(HASH_DOMAIN);
    len_prefixed(&mut h, job.as_bytes());
    len_prefixed(&mut h, task.as_bytes());
    len_prefixed(&mut h, id);
    let digest: [u8; 64] = h.finalize().into();
    RistrettoPoint::from_uniform_bytes(&digest)
}

/// The bucket (in `0..buckets`) of `id` under the per-run `salt`; `buckets` ≥ 1.
pub fn bucket_of(salt: &[u8; 32], id: &[u8], buckets: u32) -> u32 {
    if buckets <= 1 {
        return 0;
    }
    let mut h = Sha256::new();
    h.update(BUCKET_DOMAIN);
    h.update(salt);
    len_prefixed(&mut h, id);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // The bias of `mod buckets` on a 64-bit value is < buckets / 2^64: negligible.
    (u64::from_be_bytes(first) % u64::from(buckets)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_dalek_hash_from_bytes_definition() {
        // hash_from_bytes::<Sha512>(m) == from_uniform_bytes(SHA-512(m)).
        let mut input = Vec::new();
        input.extend_from_slice(HASH_DOMAIN);
        for part in [&b"job"[..], b"task", b"id-1"] {
            input.extend_from_slice(&(part.len() as u32).to_be_bytes());
            input.extend_from_slice(part);
        }
        let d: [u8; 64] = Sha512::digest(&input).into();
        assert_eq!(
            hash_to_group("job", "task", b"id-1"),
            RistrettoPoint::from_uniform_bytes(&d)
        );
    }

    #[test]
    fn buckets_are_in_range_and_spread() {
        let salt = [7u8; 32];
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[bucket_of(&salt, format!("{i}").as_bytes(), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(bucket_of(&salt, b"x", 1), 0);
    }
}
