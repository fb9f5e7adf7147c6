//! Key agreement (X25519), key derivation (HKDF-SHA256), share encryption
//! (ChaCha20-Poly1305) and the self-mask commitment.
//!
//! Domain separation: every derived key uses salt `"fedra-secagg/v1" ||
//! round` and an info string naming its purpose and the ordered pair of
//! client ids, so keys differ per round, per purpose and (for share
//! encryption) per direction.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::{ClientId, RoundId};
use crate::prg::MaskSeed;

const DOMAIN: &[u8] = b"fedra-secagg/v1";
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// An X25519 key pair; the secret half is zeroized on drop and never printed.
pub(crate) struct KeyPair {
    pub(crate) secret: StaticSecret,
    pub(crate) public: [u8; 32],
}

impl KeyPair {
    pub(crate) fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut bytes[..]);
        let secret = StaticSecret::from(*bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether `pk` lies in a small subgroup (of the curve or its twist): then
/// every agreement with it is all-zero. The clamped scalar is a multiple of
/// the cofactor 8, which kills exactly those points.
pub(crate) fn is_low_order(pk: &[u8; 32]) -> bool {
    x25519_dalek::x25519([0x5a; 32], *pk) == [0u8; 32]
}

/// The X25519 public key of a secret scalar given as bytes.
pub(crate) fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*secret, x25519_dalek::X25519_BASEPOINT_BYTES)
}

/// X25519 with a peer's key, refusing the all-zero result.
pub(crate) fn agree(
    secret: &StaticSecret,
    peer_pk: &[u8; 32],
    peer: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(&PublicKey::from(*peer_pk));
    if !shared.was_contributory() {
        return Err(Error::NonContributory { peer });
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// X25519 from a raw secret scalar (the server's view of a reconstructed key).
pub(crate) fn agree_raw(
    secret: &[u8; 32],
    peer_pk: &[u8; 32],
    peer: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    agree(&StaticSecret::from(*secret), peer_pk, peer)
}

/// HKDF-SHA256(salt = domain || round, ikm, info = label || a || b).
pub(crate) fn derive(
    ikm: &[u8; 32],
    round: RoundId,
    label: &[u8],
    a: ClientId,
    b: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    let mut salt = Vec::with_capacity(DOMAIN.len() + 8);
    salt.extend_from_slice(DOMAIN);
    salt.extend_from_slice(&round.0.to_le_bytes());
    let mut info = Vec::with_capacity(label.len() + 8);
    info.extend_from_slice(label);
    info.extend_from_slice(&a.0.to_le_bytes());
    info.extend_from_slice(&b.0.to_le_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), ikm)
        .expand(&info, &mut okm[..])
        .map_err(|_| Error::InvalidParams {
            reason: "HKDF output length".into(),
        })?;
    Ok(okm)
}

/// The pairwise mask seed `s_uv`, symmetric in `u` and `v`.
pub(crate) fn pairwise_seed(
    shared: &[u8; 32],
    round: RoundId,
    u: ClientId,
    v: ClientId,
) -> Result<MaskSeed> {
    let (lo, hi) = if u < v { (u, v) } else { (v, u) };
    Ok(MaskSeed::new(*derive(
        shared,
        round,
        b"pairwise-mask",
        lo,
        hi,
    )?))
}

/// The key encrypting shares sent from `from` to `to` (direction-specific,
/// although the X25519 secret is symmetric).
pub(crate) fn share_key(
    shared: &[u8; 32],
    round: RoundId,
    from: ClientId,
    to: ClientId,
) -> Result<Zeroizing<[u8; 32]>> {
    derive(shared, round, b"share-encryption", from, to)
}

fn associated_data(round: RoundId, from: ClientId, to: ClientId) -> Vec<u8> {
    let mut ad = Vec::with_capacity(DOMAIN.len() + 24);
    ad.extend_from_slice(DOMAIN);
    ad.extend_from_slice(b"/shares");
    ad.extend_from_slice(&round.0.to_le_bytes());
    ad.extend_from_slice(&from.0.to_le_bytes());
    ad.extend_from_slice(&to.0.to_le_bytes());
    ad
}

/// Encrypts `plaintext` from `from` to `to`. Each key encrypts exactly one
/// message (it is unique per round, sender and recipient, and a client
/// produces its shares once), so the all-zero nonce is safe.
pub(crate) fn seal(
    key: &[u8; 32],
    round: RoundId,
    from: ClientId,
    to: ClientId,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buf.extend_from_slice(plaintext);
    cipher
        .encrypt_in_place(
            &Nonce::default(),
            &associated_data(round, from, to),
            &mut buf,
        )
        .map_err(|_| Error::InvalidParams {
            reason: "AEAD refused the plaintext length".into(),
        })?;
    Ok(buf)
}

/// Decrypts and authenticates a ciphertext from `from` to `to`.
pub(crate) fn open(
    key: &[u8; 32],
    round: RoundId,
    from: ClientId,
    to: ClientId,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place(
            &Nonce::default(),
            &associated_data(round, from, to),
            &mut *buf,
        )
        .map_err(|_| Error::Decryption {
            from,
            reason: "authentication failed",
        })?;
    Ok(buf)
}

/// Binding commitment to a client's self-mask seed, sent to the server in the
/// share round so that a wrongly reconstructed seed is detected (the seed is
/// 256 bits of fresh randomness, so the hash reveals nothing of it).
pub(crate) fn commit_self_mask(round: RoundId, client: ClientId, seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(b"/self-mask-commitment");
    h.update(round.0.to_le_bytes());
    h.update(client.0.to_le_bytes());
    h.update(seed);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn low_order_points_are_detected() {
        // u = 0 and u = 1 are of order 4 and 2 (curve), and a few canonical
        // small-order u-coordinates from the X25519 literature.
        let mut zero = [0u8; 32];
        assert!(is_low_order(&zero));
        zero[0] = 1;
        assert!(is_low_order(&zero));
        let order8: [u8; 32] = [
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ];
        assert!(is_low_order(&order8));
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let kp = KeyPair::generate(&mut rng);
        assert!(!is_low_order(&kp.public));
        assert_eq!(
            agree(&kp.secret, &order8, ClientId(3)).unwrap_err().code(),
            "secagg.non_contributory"
        );
        assert!(!format!("{kp:?}").contains(&format!("{:?}", kp.secret.to_bytes())));
    }

    #[test]
    fn seal_open_binds_direction_and_round() {
        let key = [7u8; 32];
        let ct = seal(&key, RoundId(1), ClientId(1), ClientId(2), b"hello").unwrap();
        assert_eq!(
            &open(&key, RoundId(1), ClientId(1), ClientId(2), &ct).unwrap()[..],
            b"hello"
        );
        assert!(open(&key, RoundId(2), ClientId(1), ClientId(2), &ct).is_err());
        assert!(open(&key, RoundId(1), ClientId(2), ClientId(1), &ct).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open(&key, RoundId(1), ClientId(1), ClientId(2), &bad).is_err());
    }
}
