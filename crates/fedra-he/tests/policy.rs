//! The key-size policy as every caller outside this crate sees it: the
//! production constructors refuse moduli below 2048 bits in every build
//! (there is no cargo feature or `cfg` that weakens them), and small keys
//! need the explicit `KeyPolicy::insecure_small_keys_for_tests()` value.
//! Each check below fails if the production policy is weakened.

use fedra_he::{
    AdditiveScheme, HeError, HePublicKey, KeyPolicy, MIN_MODULUS_BITS, OkamotoUchiyama,
    OuPublicKey, Paillier, PaillierPublicKey, PaillierSecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn too_small(bits: u32) -> HeError {
    HeError::KeyTooSmall {
        bits,
        min_bits: 2048,
    }
}

#[test]
fn production_policy_is_2048_bits_and_the_default() {
    assert_eq!(MIN_MODULUS_BITS, 2048);
    assert_eq!(KeyPolicy::default(), KeyPolicy::production());
    assert_eq!(KeyPolicy::production().min_bits(), 2048);
    assert!(!KeyPolicy::production().allows_insecure_small_keys());
    assert_eq!(KeyPolicy::production().check(2047), Err(too_small(2047)));
    assert_eq!(KeyPolicy::production().check(2048), Ok(()));
    assert!(KeyPolicy::insecure_small_keys_for_tests().allows_insecure_small_keys());
}

#[test]
fn key_generation_refuses_small_keys() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let e = Paillier::generate_keypair(1024, &mut rng).unwrap_err();
    assert_eq!(e, too_small(1024));
    assert_eq!(e.code(), "he.key_too_small");
    let e = OkamotoUchiyama::generate_keypair(1536, &mut rng).unwrap_err();
    assert_eq!(e, too_small(1536));
    let e =
        Paillier::generate_keypair_with_policy(KeyPolicy::production(), 512, &mut rng).unwrap_err();
    assert_eq!(e, too_small(512));
    let e = OkamotoUchiyama::generate_keypair_with_policy(KeyPolicy::default(), 480, &mut rng)
        .unwrap_err();
    assert_eq!(e, too_small(480));
}

#[test]
fn secret_key_from_small_primes_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (p, q) = ((u64::MAX - 58).to_be_bytes(), (u64::MAX - 82).to_be_bytes());
    let e = PaillierSecretKey::from_primes(&p, &q, &mut rng).unwrap_err();
    assert_eq!(e, too_small(128));
    // The same primes pass under the explicit test policy: the refusal above
    // is the policy, not a malformed input.
    let sk = PaillierSecretKey::from_primes_with_policy(
        &p,
        &q,
        KeyPolicy::insecure_small_keys_for_tests(),
        &mut rng,
    );
    assert!(sk.is_ok());
}

#[test]
fn small_public_keys_from_peers_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let insecure = KeyPolicy::insecure_small_keys_for_tests();
    let (pk, _) = Paillier::generate_keypair_insecure_for_tests(512, &mut rng).unwrap();
    let bytes = pk.to_bytes();
    assert_eq!(
        PaillierPublicKey::from_bytes(&bytes).unwrap_err(),
        too_small(512)
    );
    assert_eq!(
        PaillierPublicKey::from_bytes_with_policy(&bytes, KeyPolicy::production()).unwrap_err(),
        too_small(512)
    );
    assert!(PaillierPublicKey::from_bytes_with_policy(&bytes, insecure).is_ok());
    assert_eq!(
        PaillierPublicKey::from_modulus(&pk.modulus_be(), &mut rng).unwrap_err(),
        too_small(512)
    );

    let (opk, _) = OkamotoUchiyama::generate_keypair_insecure_for_tests(480, &mut rng).unwrap();
    let bytes = opk.to_bytes();
    assert_eq!(OuPublicKey::from_bytes(&bytes).unwrap_err(), too_small(480));
    assert!(OuPublicKey::from_bytes_with_policy(&bytes, insecure).is_ok());
}
