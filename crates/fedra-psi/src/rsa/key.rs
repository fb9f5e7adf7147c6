//! The key holder's RSA key: generation, PEM import/export, the public fingerprint.
//!
//! Loading takes PEM *bytes*: reading the key file is the caller's business (the
//! runtime's PSI task), so that this crate does no file I/O.

use std::fmt;
use std::sync::Arc;

use openssl::bn::{BigNum, BigNumRef};
use openssl::pkey::Private;
use openssl::rsa::Rsa;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::blind::E;
use crate::error::PsiError;
use crate::wire::hex;

const FP_DOMAIN: &[u8] = b"fedra-psi-rsa-key-v1";

/// The key holder's RSA private key (e = 65537, 2048–4096 bits).
///
/// Cheap to clone (shared). Never printed by `Debug` and not serialisable; see
/// [`export_private_pem`](Self::export_private_pem).
#[derive(Clone)]
pub struct RsaPsiKey {
    rsa: Arc<Rsa<Private>>,
    fingerprint: [u8; 32],
}

impl fmt::Debug for RsaPsiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaPsiKey")
            .field("bits", &self.bits())
            .field("fingerprint", &self.fingerprint_hex())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of the domain and the public key `(n, e)`, lengths big-endian (a hash
/// input, part of the fingerprint's definition, not a wire format).
fn fingerprint_of(n: &[u8], e: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(FP_DOMAIN);
    h.update((n.len() as u32).to_be_bytes());
    h.update(n);
    h.update((e.len() as u32).to_be_bytes());
    h.update(e);
    h.finalize().into()
}

impl RsaPsiKey {
    /// Generates a key of `bits` (2048, 3072 or 4096) with e = 65537, using
    /// OpenSSL's CSPRNG.
    pub fn generate(bits: u32) -> Result<Self, PsiError> {
        if ![2048, 3072, 4096].contains(&bits) {
            return Err(PsiError::Config {
                detail: format!("RSA key size must be 2048, 3072 or 4096 bits, not {bits}"),
            });
        }
        Self::from_rsa(Rsa::generate(bits)?)
    }

    /// Loads a PEM private key (PKCS#1 or PKCS#8); it must have e = 65537 and
    /// 2048–4096 bits.
    pub fn from_pem(pem: &[u8]) -> Result<Self, PsiError> {
        Self::from_rsa(Rsa::private_key_from_pem(pem)?)
    }

    fn from_rsa(rsa: Rsa<Private>) -> Result<Self, PsiError> {
        let bits = rsa.n().num_bits();
        if !(2048..=4096).contains(&bits) {
            return Err(PsiError::Config {
                detail: format!("RSA key has {bits} bits; 2048 to 4096 are accepted"),
            });
        }
        if rsa.e() != BigNum::from_u32(E)?.as_ref() {
            return Err(PsiError::Config {
                detail: "RSA key must have public exponent 65537".into(),
            });
        }
        rsa.check_key()?;
        let fingerprint = fingerprint_of(&rsa.n().to_vec(), &rsa.e().to_vec());
        Ok(Self {
            rsa: Arc::new(rsa),
            fingerprint,
        })
    }

    /// The private key as PKCS#1 PEM, for storing it. The only way the private key
    /// leaves this type.
    pub fn export_private_pem(&self) -> Result<Zeroizing<Vec<u8>>, PsiError> {
        Ok(Zeroizing::new(self.rsa.private_key_to_pem()?))
    }

    /// The public modulus `n`, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        self.rsa.n().to_vec()
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> u32 {
        self.rsa.n().num_bits() as u32
    }

    /// SHA-256 fingerprint of the public key `(n, e)` (domain-separated).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// [`fingerprint`](Self::fingerprint) in lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }

    /// The modulus `n`.
    pub(super) fn n(&self) -> &BigNumRef {
        self.rsa.n()
    }

    /// Modulus size in bytes: the width of every value on the wire.
    pub(super) fn nbytes(&self) -> usize {
        self.rsa.size() as usize
    }

    /// The OpenSSL key, for the private-key operation in `blind.rs`.
    pub(super) fn rsa(&self) -> &Rsa<Private> {
        &self.rsa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_private_key() {
        let key = RsaPsiKey::generate(2048).unwrap();
        let s = format!("{key:?}");
        assert!(s.contains(&key.fingerprint_hex()), "{s}");
        assert!(!s.contains("PRIVATE"), "{s}");
        assert!(s.len() < 200, "{s}");
        let pem = key.export_private_pem().unwrap();
        let again = RsaPsiKey::from_pem(&pem).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
    }

    #[test]
    fn rejects_small_keys_and_odd_sizes() {
        assert_eq!(RsaPsiKey::generate(1024).unwrap_err().code(), "psi.config");
        let small = Rsa::generate(1024).unwrap();
        let pem = small.private_key_to_pem().unwrap();
        assert_eq!(RsaPsiKey::from_pem(&pem).unwrap_err().code(), "psi.config");
    }
}
