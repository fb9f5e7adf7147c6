//! Integration test compiled against the library without `cfg(test)`:
//! unless the insecure feature is enabled, keys below 2048 bits are refused.

use fedra_he::{AdditiveScheme, HeError, OkamotoUchiyama, Paillier, small_keys_allowed};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn small_keys_refused_by_default() {
    if small_keys_allowed() {
        // Built with `insecure-small-keys-for-tests`; nothing to check here.
        return;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let e = Paillier::generate_keypair(1024, &mut rng).unwrap_err();
    assert_eq!(
        e,
        HeError::KeyTooSmall {
            bits: 1024,
            min_bits: 2048
        }
    );
    assert_eq!(e.code(), "he.key_too_small");
    let e = OkamotoUchiyama::generate_keypair(1536, &mut rng).unwrap_err();
    assert_eq!(
        e,
        HeError::KeyTooSmall {
            bits: 1536,
            min_bits: 2048
        }
    );
    let e = fedra_he::PaillierSecretKey::from_primes(
        &(u64::MAX - 58).to_be_bytes(),
        &(u64::MAX - 82).to_be_bytes(),
        &mut rng,
    )
    .unwrap_err();
    assert_eq!(e.code(), "he.key_too_small");
}
