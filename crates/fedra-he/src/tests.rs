//! Unit and property tests (small keys only through the explicit `TEST_KEYS` policy).

use std::sync::OnceLock;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::*;

/// The insecure key-size policy, passed explicitly by every small-key test.
const TEST_KEYS: KeyPolicy = KeyPolicy::insecure_small_keys_for_tests();

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn paillier() -> &'static (PaillierPublicKey, PaillierSecretKey) {
    static K: OnceLock<(PaillierPublicKey, PaillierSecretKey)> = OnceLock::new();
    K.get_or_init(|| Paillier::generate_keypair_insecure_for_tests(512, &mut rng(1)).unwrap())
}

fn ou() -> &'static (OuPublicKey, OuSecretKey) {
    static K: OnceLock<(OuPublicKey, OuSecretKey)> = OnceLock::new();
    K.get_or_init(|| {
        OkamotoUchiyama::generate_keypair_insecure_for_tests(480, &mut rng(2)).unwrap()
    })
}

// p = 2^64 - 59, q = 2^64 - 83 (both prime).
const KAT_P: u64 = 18446744073709551557;
const KAT_Q: u64 = 18446744073709551533;

#[test]
fn paillier_known_answer() {
    let sk = PaillierSecretKey::from_primes_with_policy(
        &KAT_P.to_be_bytes(),
        &KAT_Q.to_be_bytes(),
        TEST_KEYS,
        &mut rng(3),
    )
    .unwrap();
    let pk = sk.public_key();
    assert_eq!(
        Plaintext::from_sign_magnitude_be(false, &pk.modulus_be()),
        Plaintext::from_u128(340282366920938460843936948965011886881)
    );
    // python3 -c "p=2**64-59;q=2**64-83;n=p*q;print((1+42*n)*pow(123456789,n,n*n)%(n*n))"
    let expected = Plaintext::from_sign_magnitude_be(
        false,
        &decimal_to_be(
            "34784686208829151519554994446395177593265734596204670709241952588526792202577",
        ),
    );
    let c = pk
        .encrypt_with_nonce(&Plaintext::from_i64(42), &123456789u64.to_be_bytes())
        .unwrap();
    assert_eq!(
        Plaintext::from_sign_magnitude_be(false, c.as_bytes()),
        expected
    );
    assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(42));
    // Negative plaintext -7 is encoded as n - 7:
    // python3 -c "p=2**64-59;q=2**64-83;n=p*q;print((1+(n-7)*n)*pow(987654321,n,n*n)%(n*n))"
    let expected_neg = Plaintext::from_sign_magnitude_be(
        false,
        &decimal_to_be(
            "7444963542144257258743610368793400934928219221174908574631625008755335750923",
        ),
    );
    let c = pk
        .encrypt_with_nonce(&Plaintext::from_i64(-7), &987654321u64.to_be_bytes())
        .unwrap();
    assert_eq!(
        Plaintext::from_sign_magnitude_be(false, c.as_bytes()),
        expected_neg
    );
    assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(-7));
}

fn decimal_to_be(s: &str) -> Vec<u8> {
    // Simple base-10 -> base-256 conversion for test constants.
    let mut out: Vec<u8> = vec![0];
    for ch in s.bytes() {
        let mut carry = u32::from(ch - b'0');
        for b in out.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    out
}

#[test]
fn keygen_is_deterministic_for_seeded_rng() {
    let (pk1, _) = Paillier::generate_keypair_insecure_for_tests(256, &mut rng(9)).unwrap();
    let (pk2, _) = Paillier::generate_keypair_insecure_for_tests(256, &mut rng(9)).unwrap();
    assert_eq!(pk1.to_bytes(), pk2.to_bytes());
    assert_eq!(pk1.modulus_bits(), 256);
    let (ou1, _) = OkamotoUchiyama::generate_keypair_insecure_for_tests(480, &mut rng(9)).unwrap();
    let (ou2, _) = OkamotoUchiyama::generate_keypair_insecure_for_tests(480, &mut rng(9)).unwrap();
    assert_eq!(ou1.to_bytes(), ou2.to_bytes());
    assert_eq!(ou1.modulus_bits(), 480);
}

#[test]
fn key_policy_minimums() {
    let prod = KeyPolicy::production();
    assert_eq!(KeyPolicy::default(), prod);
    let e = prod.check(1024).unwrap_err();
    assert_eq!(
        e,
        HeError::KeyTooSmall {
            bits: 1024,
            min_bits: 2048
        }
    );
    assert_eq!(e.code(), "he.key_too_small");
    assert!(prod.check(2047).is_err());
    assert!(prod.check(2048).is_ok());
    assert!(prod.check(3072).is_ok());
    assert!(prod.check(8193).is_err());
    assert!(TEST_KEYS.check(512).is_ok());
    assert!(TEST_KEYS.check(32).is_err());
    // Small keys made under the test policy are refused by the production parsers.
    let (pk, _) = paillier();
    assert_eq!(
        PaillierPublicKey::from_bytes(&pk.to_bytes())
            .unwrap_err()
            .code(),
        "he.key_too_small"
    );
}

#[test]
fn secret_key_debug_hides_primes() {
    let sk = PaillierSecretKey::from_primes_with_policy(
        &KAT_P.to_be_bytes(),
        &KAT_Q.to_be_bytes(),
        TEST_KEYS,
        &mut rng(3),
    )
    .unwrap();
    let dbg = format!("{sk:?} {sk:#?}");
    for secret in [KAT_P, KAT_Q] {
        assert!(!dbg.contains(&secret.to_string()), "{dbg}");
        assert!(
            !dbg.to_lowercase().contains(&format!("{secret:x}")),
            "{dbg}"
        );
    }
    assert!(dbg.contains("modulus_bits"));
    let (_, osk) = ou();
    let dbg = format!("{osk:?}");
    assert!(dbg.starts_with("OuSecretKey") && !dbg.contains("p:"));
}

fn check_validation<P: HePublicKey>(pk: &P, n_be: &[u8], p_be: &[u8], modulus_sq: Option<&[u8]>) {
    let len = pk.ciphertext_len();
    let zero = vec![0u8; len];
    assert_eq!(
        pk.ciphertext_from_bytes(&zero).unwrap_err().code(),
        "he.invalid_ciphertext"
    );
    // c = upper modulus (n^2 for Paillier, n for OU)
    let upper = modulus_sq.unwrap_or(n_be);
    let mut up = vec![0u8; len - upper.len()];
    up.extend_from_slice(upper);
    assert_eq!(
        pk.ciphertext_from_bytes(&up).unwrap_err(),
        HeError::InvalidCiphertext {
            reason: if modulus_sq.is_some() {
                "ciphertext not below n^2"
            } else {
                "ciphertext not below n"
            }
        }
    );
    // c = p (shares a factor with n)
    let mut cp = vec![0u8; len - p_be.len()];
    cp.extend_from_slice(p_be);
    assert_eq!(
        pk.ciphertext_from_bytes(&cp).unwrap_err(),
        HeError::InvalidCiphertext {
            reason: "ciphertext not coprime to n"
        }
    );
    // wrong length
    let mut one = vec![0u8; len + 1];
    if let Some(l) = one.last_mut() {
        *l = 1;
    }
    assert_eq!(
        pk.ciphertext_from_bytes(&one).unwrap_err().code(),
        "he.invalid_length"
    );
    assert_eq!(
        pk.ciphertext_from_bytes(&one[2..]).unwrap_err().code(),
        "he.invalid_length"
    );
    // A valid ciphertext round-trips.
    let c = pk.encrypt(&Plaintext::from_i64(5), &mut rng(4)).unwrap();
    let bytes = pk.ciphertext_to_bytes(&c);
    assert_eq!(bytes.len(), len);
    assert_eq!(pk.ciphertext_from_bytes(&bytes).unwrap(), c);
}

#[test]
fn paillier_ciphertext_validation() {
    let sk = PaillierSecretKey::from_primes_with_policy(
        &KAT_P.to_be_bytes(),
        &KAT_Q.to_be_bytes(),
        TEST_KEYS,
        &mut rng(3),
    )
    .unwrap();
    let pk = sk.public_key();
    let n = (u128::from(KAT_P) * u128::from(KAT_Q)).to_be_bytes();
    // python3 -c "print((2**64-59)**2*(2**64-83)**2)"
    let n2 = decimal_to_be(
        "115792089237316193640874092158870581118084936692137764647392700197627939908161",
    );
    check_validation(pk, &n, &KAT_P.to_be_bytes(), Some(&n2));
    assert!(pk.validate_ciphertext(&[1u8; 3]).is_err());
    assert!(PaillierCiphertext::from_bytes(pk, &[0u8; 32]).is_err());
}

#[test]
fn ou_ciphertext_validation() {
    let (pk, _) = ou();
    let bytes = pk.to_bytes();
    let l = pk.ciphertext_len();
    let n = bytes[16..16 + l].to_vec();
    // c = p (secret factor, exposed to tests only) must be rejected.
    let p = ou_secret_p();
    check_validation(pk, &n, &p, None);
}

fn ou_secret_p() -> Vec<u8> {
    let (_, sk) = ou();
    sk.p_be_for_tests()
}

#[test]
fn public_key_serialization_roundtrip() {
    let (pk, sk) = paillier();
    let pk2 = PaillierPublicKey::from_bytes_with_policy(&pk.to_bytes(), TEST_KEYS).unwrap();
    let c = pk2.encrypt(&Plaintext::from_i64(-99), &mut rng(5)).unwrap();
    assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(-99));
    let mut bad = pk.to_bytes();
    bad[0] = b'X';
    assert_eq!(
        PaillierPublicKey::from_bytes_with_policy(&bad, TEST_KEYS)
            .unwrap_err()
            .code(),
        "he.invalid_public_key"
    );
    let bad = &pk.to_bytes()[..20];
    assert!(PaillierPublicKey::from_bytes_with_policy(bad, TEST_KEYS).is_err());

    let (opk, osk) = ou();
    let opk2 = OuPublicKey::from_bytes_with_policy(&opk.to_bytes(), TEST_KEYS).unwrap();
    let c = opk2
        .encrypt(&Plaintext::from_i64(-99), &mut rng(5))
        .unwrap();
    assert_eq!(osk.decrypt(&c).unwrap().to_i64(), Some(-99));

    // Own DJN base derived from the modulus alone.
    let pk3 = PaillierPublicKey::from_modulus_with_policy(&pk.modulus_be(), TEST_KEYS, &mut rng(6))
        .unwrap();
    let c = pk3.encrypt(&Plaintext::from_i64(77), &mut rng(5)).unwrap();
    assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(77));
}

#[test]
fn plain_and_fixed_base_encryption_agree() {
    let (pk, sk) = paillier();
    let a = pk
        .encrypt_full_randomness(&Plaintext::from_i64(1234), &mut rng(7))
        .unwrap();
    let b = pk.encrypt(&Plaintext::from_i64(-234), &mut rng(8)).unwrap();
    assert_eq!(
        sk.decrypt(&pk.add(&a, &b).unwrap()).unwrap().to_i64(),
        Some(1000)
    );
}

#[test]
fn plaintext_range_is_enforced() {
    let (pk, _) = paillier();
    let too_big = Plaintext::from_sign_magnitude_be(false, &[0xff; 64]);
    assert_eq!(
        pk.encrypt(&too_big, &mut rng(1)).unwrap_err().code(),
        "he.plaintext_out_of_range"
    );
    let (opk, _) = ou();
    let big = Plaintext::from_sign_magnitude_be(
        true,
        &vec![0xff; opk.plaintext_capacity_bits().div_ceil(8) as usize + 1],
    );
    assert_eq!(
        opk.encrypt(&big, &mut rng(1)).unwrap_err().code(),
        "he.plaintext_out_of_range"
    );
}

fn batch_roundtrip<S: AdditiveScheme>(pk: &S::PublicKey, sk: &S::SecretKey) {
    let ms: Vec<Plaintext> = (-20i64..20)
        .map(|v| Plaintext::from_i64(v * 1000))
        .collect();
    let c1 = pk.encrypt_batch(&ms, &mut rng(11)).unwrap();
    let c2 = pk.encrypt_batch(&ms, &mut rng(11)).unwrap();
    assert_eq!(c1, c2, "batch encryption must be deterministic per rng");
    let dec = sk.decrypt_batch(&c1).unwrap();
    assert_eq!(dec, ms);
    let total = pk.sum(&c1).unwrap();
    assert_eq!(sk.decrypt(&total).unwrap().to_i64(), Some(-20_000));
    let doubled = pk.add_batch(&c1, &c1).unwrap();
    let scaled = pk
        .mul_plain_batch(&c1, &vec![Plaintext::from_i64(2); c1.len()])
        .unwrap();
    assert_eq!(
        sk.decrypt_batch(&doubled).unwrap(),
        sk.decrypt_batch(&scaled).unwrap()
    );
    let rr = pk.rerandomize_batch(&c1, &mut rng(12)).unwrap();
    assert_ne!(rr, c1);
    assert_eq!(sk.decrypt_batch(&rr).unwrap(), ms);
    assert_eq!(pk.sum(&[]).unwrap_err().code(), "he.empty_input");
    assert_eq!(
        pk.add_batch(&c1, &c1[1..]).unwrap_err().code(),
        "he.length_mismatch"
    );
}

#[test]
fn batch_apis_paillier() {
    let (pk, sk) = paillier();
    batch_roundtrip::<Paillier>(pk, sk);
}

#[test]
fn batch_apis_ou() {
    let (pk, sk) = ou();
    batch_roundtrip::<OkamotoUchiyama>(pk, sk);
}

#[test]
fn fixed_point_with_ciphertexts() {
    let (pk, sk) = paillier();
    let fp = FixedPoint::new(24, 80, 200).unwrap();
    fp.check_capacity(pk.plaintext_capacity_bits()).unwrap();
    let x = fp.encode(3.25).unwrap();
    let w = fp.encode(-0.5).unwrap();
    let cx = pk.encrypt(x.value(), &mut rng(1)).unwrap();
    let prod = pk.mul_plain(&cx, w.value()).unwrap();
    let dec = sk.decrypt(&prod).unwrap();
    let v = fp
        .decode_plaintext(&dec, x.frac_bits() + w.frac_bits())
        .unwrap();
    assert!((v + 1.625).abs() < 1e-9);
    let e = x.checked_mul(&w).unwrap();
    assert_eq!(e.frac_bits(), 48);
    assert!((fp.decode(&e).unwrap() + 1.625).abs() < 1e-9);
    assert_eq!(x.checked_add(&e).unwrap_err().code(), "he.scale_mismatch");
}

#[test]
fn homomorphic_overflow_is_detected_on_decode() {
    let (pk, sk) = paillier();
    let fp = FixedPoint::new(16, 100, 300).unwrap();
    // A value near n/2 pushed over the edge wraps to a huge negative number.
    let half_bits = pk.plaintext_capacity_bits();
    let big = Plaintext::from_sign_magnitude_be(false, &{
        let mut v = vec![0u8; (half_bits / 8) as usize];
        v[0] = 0x80;
        v
    });
    let c = pk.encrypt(&big, &mut rng(1)).unwrap();
    let c4 = pk.mul_plain(&c, &Plaintext::from_i64(4)).unwrap();
    let dec = sk.decrypt(&c4).unwrap();
    assert_eq!(
        fp.decode_plaintext(&dec, 16).unwrap_err().code(),
        "he.decode_overflow"
    );
    // Same for OU: overflow past p/2 wraps modulo the secret p.
    let (opk, osk) = ou();
    let cap = opk.plaintext_capacity_bits();
    let near = Plaintext::from_sign_magnitude_be(false, &{
        let mut v = vec![0u8; cap.div_ceil(8) as usize];
        v[0] = 1 << ((cap - 1) % 8);
        v
    });
    assert_eq!(near.bits(), cap);
    let c = opk.encrypt(&near, &mut rng(2)).unwrap();
    let c8 = opk.mul_plain(&c, &Plaintext::from_i64(8)).unwrap();
    let fp_ou = FixedPoint::new(16, 100, cap - 8).unwrap();
    assert_eq!(
        fp_ou
            .decode_plaintext(&osk.decrypt(&c8).unwrap(), 16)
            .unwrap_err()
            .code(),
        "he.decode_overflow"
    );
}

#[test]
fn encoder_errors() {
    let fp = FixedPoint::new(20, 40, 60).unwrap();
    assert_eq!(fp.encode(f64::NAN).unwrap_err(), HeError::NonFinite);
    assert_eq!(fp.encode(f64::INFINITY).unwrap_err(), HeError::NonFinite);
    assert_eq!(fp.encode(2e6).unwrap_err().code(), "he.encode_overflow");
    assert!(fp.encode(1e5).is_ok());
    assert_eq!(
        fp.encode_i64(1 << 20).unwrap_err().code(),
        "he.encode_overflow"
    );
    assert_eq!(fp.encode_i64(-3).unwrap().value().to_i64(), Some(-3 << 20));
    assert!(FixedPoint::new(10, 0, 10).is_err());
    assert!(FixedPoint::new(10, 127, 200).is_err());
    assert!(FixedPoint::new(10, 50, 40).is_err());
    assert!(fp.check_capacity(60).is_err());
}

#[test]
fn packing_with_ciphertexts() {
    let (pk, sk) = paillier();
    let packer = Packer::new(40, 1000, 4).unwrap();
    assert_eq!(packer.slot_bits(), 50);
    packer.check_capacity(pk.plaintext_capacity_bits()).unwrap();
    assert!(
        Packer::new(40, 1000, 100)
            .unwrap()
            .check_capacity(pk.plaintext_capacity_bits())
            .is_err()
    );
    let rows: Vec<Vec<u128>> = (0..10u128)
        .map(|i| vec![i, 1 << 39, (1 << 40) - 1, 7 * i])
        .collect();
    let cts: Vec<_> = rows
        .iter()
        .map(|r| pk.encrypt(&packer.pack(r).unwrap(), &mut rng(1)).unwrap())
        .collect();
    let sum = sk.decrypt(&pk.sum(&cts).unwrap()).unwrap();
    let got = packer.unpack_sum(&sum, 10).unwrap();
    assert_eq!(got, vec![45, 10 << 39, 10 * ((1 << 40) - 1), 7 * 45]);
    // A negative (wrapped) result is rejected.
    let neg = pk.negate(&cts[1]).unwrap();
    assert_eq!(
        packer
            .unpack(&sk.decrypt(&neg).unwrap())
            .unwrap_err()
            .code(),
        "he.unpack_overflow"
    );
}

#[test]
fn real_2048_bit_keys() {
    let mut r = rng(2048);
    let (pk, sk) = Paillier::generate_keypair(2048, &mut r).unwrap();
    assert_eq!(pk.modulus_bits(), 2048);
    assert_eq!(pk.ciphertext_len(), 512);
    assert_eq!(pk.randomizer_exponent_bits(), 1024);
    let a = pk
        .encrypt(&Plaintext::from_i64(-1_000_000), &mut r)
        .unwrap();
    let b = pk.encrypt(&Plaintext::from_i64(3), &mut r).unwrap();
    let c = pk
        .add(&pk.mul_plain(&a, &Plaintext::from_i64(-2)).unwrap(), &b)
        .unwrap();
    let c = pk.rerandomize(&c, &mut r).unwrap();
    let c = pk
        .ciphertext_from_bytes(&pk.ciphertext_to_bytes(&c))
        .unwrap();
    assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(2_000_003));
    let pk2 = PaillierPublicKey::from_bytes(&pk.to_bytes()).unwrap();
    assert_eq!(pk2.to_bytes(), pk.to_bytes());

    // Seed 43 once produced a p whose p² left no 684-bit q reaching 2048 bits.
    let (opk, osk) = OkamotoUchiyama::generate_keypair(2048, &mut rng(43)).unwrap();
    assert_eq!(opk.modulus_bits(), 2048);
    assert_eq!(opk.plaintext_capacity_bits(), 680);
    assert_eq!(opk.randomizer_exponent_bits(), 448);
    let a = opk.encrypt(&Plaintext::from_i64(-5), &mut r).unwrap();
    let b = opk.encrypt(&Plaintext::from_i64(12), &mut r).unwrap();
    assert_eq!(
        osk.decrypt(&opk.add(&a, &b).unwrap()).unwrap().to_i64(),
        Some(7)
    );
}

fn shr2(be: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(be.len());
    let mut carry = 0u8;
    for &b in be {
        out.push((b >> 2) | carry);
        carry = b << 6;
    }
    out
}

fn small_i64() -> impl Strategy<Value = i64> {
    -(1i64 << 62)..(1i64 << 62)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_paillier_roundtrip(m in any::<i64>(), seed in any::<u64>()) {
        let (pk, sk) = paillier();
        let c = pk.encrypt(&Plaintext::from_i64(m), &mut rng(seed)).unwrap();
        prop_assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(m));
    }

    #[test]
    fn prop_paillier_add(a in small_i64(), b in small_i64(), seed in any::<u64>()) {
        let (pk, sk) = paillier();
        let mut r = rng(seed);
        let ca = pk.encrypt(&Plaintext::from_i64(a), &mut r).unwrap();
        let cb = pk.encrypt(&Plaintext::from_i64(b), &mut r).unwrap();
        prop_assert_eq!(sk.decrypt(&pk.add(&ca, &cb).unwrap()).unwrap().to_i64(), Some(a + b));
        prop_assert_eq!(sk.decrypt(&pk.add_plain(&ca, &Plaintext::from_i64(b)).unwrap()).unwrap().to_i64(), Some(a + b));
        prop_assert_eq!(sk.decrypt(&pk.negate(&ca).unwrap()).unwrap().to_i64(), Some(-a));
    }

    #[test]
    fn prop_paillier_add_mod_n(s in 0u64..1000, seed in any::<u64>()) {
        // decrypt(a + a + a + a) == 4a mod n (centered) for a = n/4 + s, which
        // crosses n/2 and, for larger s, n itself.
        let (pk, sk) = paillier();
        let n_be = pk.modulus_be();
        let n = Plaintext::from_sign_magnitude_be(false, &n_be);
        let quarter = Plaintext::from_sign_magnitude_be(false, &shr2(&n_be));
        let a = quarter.checked_add(&Plaintext::from_u64(s)).unwrap();
        let mut r = rng(seed);
        let ca = pk.encrypt(&a, &mut r).unwrap();
        let two = pk.add(&ca, &ca).unwrap();
        let four = pk.add(&two, &two).unwrap();
        // 4a - n is the centered residue of 4a mod n whether or not 4a >= n.
        let want = a.checked_mul(&Plaintext::from_i64(4)).unwrap().checked_add(&n.neg()).unwrap();
        prop_assert_eq!(sk.decrypt(&four).unwrap(), want);
    }

    #[test]
    fn prop_paillier_scalar_mul(a in -(1i64 << 31)..(1i64 << 31), k in -(1i64 << 31)..(1i64 << 31), seed in any::<u64>()) {
        let (pk, sk) = paillier();
        let c = pk.encrypt(&Plaintext::from_i64(a), &mut rng(seed)).unwrap();
        let d = pk.mul_plain(&c, &Plaintext::from_i64(k)).unwrap();
        prop_assert_eq!(sk.decrypt(&d).unwrap().to_i64(), Some(a * k));
        let rr = pk.rerandomize(&d, &mut rng(seed ^ 1)).unwrap();
        prop_assert_ne!(&rr, &d);
        prop_assert_eq!(sk.decrypt(&rr).unwrap().to_i64(), Some(a * k));
    }

    #[test]
    fn prop_ou_roundtrip_add_mul(a in -(1i64 << 31)..(1i64 << 31), b in -(1i64 << 31)..(1i64 << 31), k in -(1i64 << 31)..(1i64 << 31), seed in any::<u64>()) {
        let (pk, sk) = ou();
        let mut r = rng(seed);
        let ca = pk.encrypt(&Plaintext::from_i64(a), &mut r).unwrap();
        let cb = pk.encrypt(&Plaintext::from_i64(b), &mut r).unwrap();
        prop_assert_eq!(sk.decrypt(&ca).unwrap().to_i64(), Some(a));
        prop_assert_eq!(sk.decrypt(&pk.add(&ca, &cb).unwrap()).unwrap().to_i64(), Some(a + b));
        prop_assert_eq!(sk.decrypt(&pk.add_plain(&ca, &Plaintext::from_i64(b)).unwrap()).unwrap().to_i64(), Some(a + b));
        prop_assert_eq!(sk.decrypt(&pk.mul_plain(&ca, &Plaintext::from_i64(k)).unwrap()).unwrap().to_i64(), Some(a * k));
        prop_assert_eq!(sk.decrypt(&pk.negate(&ca).unwrap()).unwrap().to_i64(), Some(-a));
        let rr = pk.rerandomize(&ca, &mut r).unwrap();
        prop_assert_ne!(&rr, &ca);
        prop_assert_eq!(sk.decrypt(&rr).unwrap().to_i64(), Some(a));
    }

    #[test]
    fn prop_fixed_point_roundtrip(x in -1e9f64..1e9f64) {
        let fp = FixedPoint::new(32, 80, 120).unwrap();
        let e = fp.encode(x).unwrap();
        let y = fp.decode(&e).unwrap();
        prop_assert!((x - y).abs() <= 2f64.powi(-33) + x.abs() * 1e-15);
    }

    #[test]
    fn prop_fixed_point_encrypted_sum(xs in proptest::collection::vec(-1e6f64..1e6f64, 1..8)) {
        let (pk, sk) = ou();
        let fp = FixedPoint::new(20, 60, 100).unwrap();
        fp.check_capacity(pk.plaintext_capacity_bits()).unwrap();
        let ms: Vec<Plaintext> = xs.iter().map(|&x| fp.encode(x).unwrap().into_plaintext()).collect();
        let cs = pk.encrypt_batch(&ms, &mut rng(3)).unwrap();
        let got = fp.decode_plaintext(&sk.decrypt(&pk.sum(&cs).unwrap()).unwrap(), 20).unwrap();
        let want: f64 = xs.iter().sum();
        prop_assert!((got - want).abs() <= xs.len() as f64 * 2f64.powi(-20));
    }

    #[test]
    fn prop_encode_overflow(x in 1e7f64..1e300f64, neg in any::<bool>()) {
        let fp = FixedPoint::new(20, 40, 60).unwrap();
        let x = if neg { -x } else { x };
        prop_assert_eq!(fp.encode(x).unwrap_err().code(), "he.encode_overflow");
    }

    #[test]
    fn prop_decode_overflow(bits in 61u32..400) {
        let fp = FixedPoint::new(20, 40, 60).unwrap();
        let mut mag = vec![0u8; bits.div_ceil(8) as usize];
        mag[0] = 1 << ((bits - 1) % 8);
        let p = Plaintext::from_sign_magnitude_be(bits % 2 == 0, &mag);
        prop_assert_eq!(p.bits(), bits);
        prop_assert_eq!(fp.decode_plaintext(&p, 20).unwrap_err(), HeError::DecodeOverflow { bits, max_bits: 60 });
    }

    #[test]
    fn prop_packing_roundtrip(vals in proptest::collection::vec(0u128..(1u128 << 45), 0..6), value_bits in 45u32..80) {
        let packer = Packer::new(value_bits, 16, 6).unwrap();
        let p = packer.pack(&vals).unwrap();
        let mut want = vals.clone();
        want.resize(6, 0);
        prop_assert_eq!(packer.unpack(&p).unwrap(), want);
    }

    #[test]
    fn prop_packing_overflow(v in (1u128 << 20)..u128::MAX, slot in 0usize..4) {
        let packer = Packer::new(20, 4, 4).unwrap();
        let mut vals = vec![1u128; 4];
        vals[slot] = v;
        prop_assert_eq!(packer.pack(&vals).unwrap_err(), HeError::PackOverflow { slot, bits: 128 - v.leading_zeros(), max_bits: 20 });
        prop_assert_eq!(packer.pack(&[0; 5]).unwrap_err().code(), "he.too_many_values");
    }

    #[test]
    fn prop_unpack_sum_detects_excess(extra in 1u128..1000) {
        let packer = Packer::new(8, 4, 2).unwrap(); // slot = 10 bits
        // Slot 0 holds 4*255 + extra > bound for 4 summands (but still fits 10 bits).
        let v = (4 * 255 + extra).min(1023);
        let p = Plaintext::from_u128(v);
        if v > 4 * 255 {
            prop_assert_eq!(packer.unpack_sum(&p, 4).unwrap_err().code(), "he.unpack_overflow");
        }
        prop_assert_eq!(packer.unpack(&Plaintext::from_u128(1 << 20)).unwrap_err().code(), "he.unpack_overflow");
    }
}

fn naive_dot_columns<K: HePublicKey>(
    pk: &K,
    cts: &[K::Ciphertext],
    scalars: &[i64],
    columns: usize,
) -> Vec<K::Ciphertext> {
    (0..columns)
        .map(|j| {
            let mut acc: Option<K::Ciphertext> = None;
            for (i, c) in cts.iter().enumerate() {
                let t = pk
                    .mul_plain(c, &Plaintext::from_i64(scalars[i * columns + j]))
                    .unwrap();
                acc = Some(match acc {
                    None => t,
                    Some(a) => pk.add(&a, &t).unwrap(),
                });
            }
            acc.unwrap()
        })
        .collect()
}

fn check_dot<S: AdditiveScheme>(
    pk: &S::PublicKey,
    sk: &S::SecretKey,
    ms: &[i64],
    scalars: &[i64],
    columns: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let cts = pk
        .encrypt_batch(
            &ms.iter()
                .map(|&m| Plaintext::from_i64(m))
                .collect::<Vec<_>>(),
            &mut rng(seed),
        )
        .unwrap();
    let fast = pk.dot_columns(&cts, scalars, columns).unwrap();
    // Same ciphertexts bit for bit as the naive Σ mul_plain (both are
    // deterministic functions of the inputs).
    prop_assert_eq!(&fast, &naive_dot_columns(pk, &cts, scalars, columns));
    for (j, c) in fast.iter().enumerate() {
        let want: i128 = ms
            .iter()
            .enumerate()
            .map(|(i, &m)| i128::from(m) * i128::from(scalars[i * columns + j]))
            .sum();
        prop_assert_eq!(sk.decrypt(c).unwrap().to_i128(), Some(want));
    }
    if columns == 1 {
        prop_assert_eq!(&pk.dot(&cts, scalars).unwrap(), &fast[0]);
    }
    Ok(())
}

fn dot_case() -> impl Strategy<Value = (Vec<i64>, Vec<i64>, usize)> {
    (1usize..40, 1usize..4).prop_flat_map(|(n, k)| {
        (
            proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), n),
            proptest::collection::vec(
                prop_oneof![
                    Just(0i64),
                    Just(i64::MIN),
                    Just(i64::MAX),
                    -70_000i64..70_000,
                    any::<i64>()
                ],
                n * k,
            ),
            Just(k),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn prop_paillier_dot_equals_naive((ms, scalars, k) in dot_case(), seed in any::<u64>()) {
        let (pk, sk) = paillier();
        check_dot::<Paillier>(pk, sk, &ms, &scalars, k, seed)?;
    }

    #[test]
    fn prop_ou_dot_equals_naive((ms, scalars, k) in dot_case(), seed in any::<u64>()) {
        // OU plaintexts must stay below 2^(|p|-2): use small operands.
        let (pk, sk) = ou();
        let ms: Vec<i64> = ms.iter().map(|m| m >> 30).collect();
        let scalars: Vec<i64> = scalars.iter().map(|s| s >> 40).collect();
        check_dot::<OkamotoUchiyama>(pk, sk, &ms, &scalars, k, seed)?;
    }
}

#[test]
fn dot_large_batch_uses_parallel_chunks_and_matches() {
    let (pk, sk) = paillier();
    let n = 1200;
    let ms: Vec<i64> = (0..n).map(|i| i as i64 - 600).collect();
    let scalars: Vec<i64> = (0..n)
        .map(|i| (i as i64 * 7919) % 65_537 - 30_000)
        .collect();
    let cts = pk
        .encrypt_batch(
            &ms.iter()
                .map(|&m| Plaintext::from_i64(m))
                .collect::<Vec<_>>(),
            &mut rng(5),
        )
        .unwrap();
    let c = pk.dot(&cts, &scalars).unwrap();
    let want: i128 = ms
        .iter()
        .zip(&scalars)
        .map(|(&a, &b)| i128::from(a) * i128::from(b))
        .sum();
    assert_eq!(sk.decrypt(&c).unwrap().to_i128(), Some(want));
    assert_eq!(c, naive_dot_columns(pk, &cts, &scalars, 1)[0]);
}

#[test]
fn dot_rejects_bad_shapes() {
    let (pk, _) = paillier();
    let c = pk.encrypt(&Plaintext::from_i64(1), &mut rng(6)).unwrap();
    assert_eq!(pk.dot(&[], &[]).unwrap_err().code(), "he.empty_input");
    assert_eq!(
        pk.dot(std::slice::from_ref(&c), &[1, 2])
            .unwrap_err()
            .code(),
        "he.length_mismatch"
    );
    assert_eq!(
        pk.dot_columns(std::slice::from_ref(&c), &[1], 0)
            .unwrap_err()
            .code(),
        "he.invalid_parameter"
    );
    assert_eq!(
        ou().0.dot_columns(&[], &[], 2).unwrap_err().code(),
        "he.empty_input"
    );
    // All-zero scalars give an encryption of zero.
    let z = pk.dot(&[c.clone(), c], &[0, 0]).unwrap();
    assert_eq!(paillier().1.decrypt(&z).unwrap().to_i64(), Some(0));
}

#[test]
fn batch_ciphertext_parsing_matches_single_and_finds_bad_items() {
    let sk = PaillierSecretKey::from_primes_with_policy(
        &KAT_P.to_be_bytes(),
        &KAT_Q.to_be_bytes(),
        TEST_KEYS,
        &mut rng(3),
    )
    .unwrap();
    let pk = sk.public_key();
    let cts = pk
        .encrypt_batch(
            &(0..300).map(Plaintext::from_i64).collect::<Vec<_>>(),
            &mut rng(4),
        )
        .unwrap();
    let bytes: Vec<Vec<u8>> = cts.iter().map(|c| pk.ciphertext_to_bytes(c)).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    assert_eq!(pk.ciphertexts_from_bytes(&refs).unwrap(), cts);
    // A multiple of the secret prime p is below n² but not coprime to n.
    let mut bad = bytes.clone();
    let mut p_bytes = vec![0u8; pk.ciphertext_len() - 8];
    p_bytes.extend_from_slice(&KAT_P.to_be_bytes());
    bad[217] = p_bytes;
    let refs: Vec<&[u8]> = bad.iter().map(Vec::as_slice).collect();
    let (i, e) = pk.ciphertexts_from_bytes(&refs).unwrap_err();
    assert_eq!(i, 217);
    assert_eq!(
        e.code(),
        pk.ciphertext_from_bytes(&bad[217]).unwrap_err().code()
    );
    bad[5] = vec![0u8; pk.ciphertext_len()];
    let refs: Vec<&[u8]> = bad.iter().map(Vec::as_slice).collect();
    assert_eq!(pk.ciphertexts_from_bytes(&refs).unwrap_err().0, 5);
    // OU as well.
    let (opk, _) = ou();
    let octs = opk
        .encrypt_batch(
            &[Plaintext::from_i64(1), Plaintext::from_i64(2)],
            &mut rng(5),
        )
        .unwrap();
    let ob: Vec<Vec<u8>> = octs.iter().map(|c| opk.ciphertext_to_bytes(c)).collect();
    let orefs: Vec<&[u8]> = ob.iter().map(Vec::as_slice).collect();
    assert_eq!(opk.ciphertexts_from_bytes(&orefs).unwrap(), octs);
    let short = [&ob[0][1..], ob[1].as_slice()];
    assert_eq!(opk.ciphertexts_from_bytes(&short).unwrap_err().0, 0);
}

// ---------------------------------------------------------------------
// Montgomery tables, CRT encryption and the accumulator API.

fn edge_plaintexts<P: HePublicKey>(pk: &P) -> Vec<Plaintext> {
    let cap = pk.plaintext_capacity_bits();
    let max = {
        // 2^cap - 1
        let nbytes = cap.div_ceil(8) as usize;
        let mut be = vec![0xffu8; nbytes];
        be[0] = 0xff >> (nbytes as u32 * 8 - cap);
        be
    };
    vec![
        Plaintext::zero(),
        Plaintext::from_i64(1),
        Plaintext::from_i64(-1),
        Plaintext::from_i64(123_456_789),
        Plaintext::from_i64(-987_654_321),
        Plaintext::from_i128((1i128 << 100) + 12345),
        Plaintext::from_sign_magnitude_be(false, &max),
        Plaintext::from_sign_magnitude_be(true, &max),
    ]
}

#[test]
fn montgomery_encryption_is_bit_identical_to_openssl_reference() {
    let (opk, _) = ou();
    let (ppk, _) = paillier();
    for (i, m) in edge_plaintexts(opk).iter().enumerate() {
        let seed = 100 + i as u64;
        assert_eq!(
            opk.encrypt(m, &mut rng(seed)).unwrap(),
            opk.encrypt_reference(m, &mut rng(seed)).unwrap(),
            "ou {m:?}"
        );
    }
    for (i, m) in edge_plaintexts(ppk).iter().enumerate() {
        let seed = 200 + i as u64;
        assert_eq!(
            ppk.encrypt(m, &mut rng(seed)).unwrap(),
            ppk.encrypt_reference(m, &mut rng(seed)).unwrap(),
            "paillier {m:?}"
        );
    }
}

/// `add`, `add_plain` and `rerandomize` against OpenSSL `BN_mod_mul`.
fn check_evaluation_against_openssl<P: HePublicKey>(
    pk: &P,
    modulus: &crate::bn::Nat,
    a: &P::Ciphertext,
    b: &P::Ciphertext,
) {
    use crate::bn::{Nat, with_ctx};
    let nat = |c: &P::Ciphertext| Nat::from_be(&pk.ciphertext_to_bytes(c)).unwrap();
    let want = with_ctx(|ctx| Nat::mod_mul(&nat(a), &nat(b), modulus, ctx)).unwrap();
    assert_eq!(nat(&pk.add(a, b).unwrap()).to_be(), want.to_be());
    let acc = pk.acc_sum(&[pk.acc_prepare(a), pk.acc_prepare(b)]);
    assert_eq!(pk.acc_finish(&acc), pk.add(a, b).unwrap());
}

#[test]
fn montgomery_add_matches_openssl() {
    let (opk, _) = ou();
    let (ppk, _) = paillier();
    let mut r = rng(5);
    let n = crate::bn::Nat::from_be(&opk.to_bytes()[16..16 + opk.ciphertext_len()]).unwrap();
    let a = opk.encrypt(&Plaintext::from_i64(-3), &mut r).unwrap();
    let b = opk.encrypt(&Plaintext::from_i64(10), &mut r).unwrap();
    check_evaluation_against_openssl(opk, &n, &a, &b);
    let n = crate::bn::Nat::from_be(&ppk.modulus_be()).unwrap();
    let n2 = crate::bn::with_ctx(|ctx| n.mul(&n, ctx)).unwrap();
    let a = ppk.encrypt(&Plaintext::from_i64(-3), &mut r).unwrap();
    let b = ppk.encrypt(&Plaintext::from_i64(10), &mut r).unwrap();
    check_evaluation_against_openssl(ppk, &n2, &a, &b);
    // Edge ciphertext values: 1 and n-1 (both valid units).
    let one = {
        let mut v = vec![0u8; opk.ciphertext_len()];
        *v.last_mut().unwrap() = 1;
        opk.ciphertext_from_bytes(&v).unwrap()
    };
    let n = crate::bn::Nat::from_be(&opk.to_bytes()[16..16 + opk.ciphertext_len()]).unwrap();
    let nm1 = n.sub(&crate::bn::Nat::one().unwrap()).unwrap();
    let nm1 = opk
        .ciphertext_from_bytes(&nm1.to_be_padded(opk.ciphertext_len()).unwrap())
        .unwrap();
    check_evaluation_against_openssl(opk, &n, &one, &nm1);
    check_evaluation_against_openssl(opk, &n, &nm1, &nm1);
    assert_eq!(opk.acc_finish(&opk.acc_zero()), one);
}

fn check_crt_equals_public<S: AdditiveScheme>(pk: &S::PublicKey, sk: &S::SecretKey) {
    let ms = edge_plaintexts(pk);
    for (i, m) in ms.iter().enumerate() {
        let seed = 300 + i as u64;
        let c = sk.encrypt_crt(m, &mut rng(seed)).unwrap();
        assert_eq!(c, pk.encrypt(m, &mut rng(seed)).unwrap(), "{m:?}");
        assert_eq!(&sk.decrypt(&c).unwrap(), m);
    }
    let batch = sk.encrypt_batch_crt(&ms, &mut rng(9)).unwrap();
    assert_eq!(batch, pk.encrypt_batch(&ms, &mut rng(9)).unwrap());
    assert_eq!(sk.decrypt_batch(&batch).unwrap(), ms);
    // Out-of-range plaintexts are refused like the public path does.
    let too_big = Plaintext::from_sign_magnitude_be(
        false,
        &vec![0xff; pk.plaintext_capacity_bits().div_ceil(8) as usize + 1],
    );
    assert!(sk.encrypt_crt(&too_big, &mut rng(1)).is_err());
}

#[test]
fn crt_encryption_is_identical_to_public_encryption() {
    let (opk, osk) = ou();
    check_crt_equals_public::<OkamotoUchiyama>(opk, osk);
    assert!(osk.crt_table_bytes() > 0);
    let (ppk, psk) = paillier();
    check_crt_equals_public::<Paillier>(ppk, psk);
    assert!(psk.crt_table_bytes() > 0);
}

fn check_acc_sum<S: AdditiveScheme>(
    pk: &S::PublicKey,
    sk: &S::SecretKey,
    ms: &[i64],
    seed: u64,
) -> Result<(), TestCaseError> {
    let pts: Vec<Plaintext> = ms.iter().map(|&m| Plaintext::from_i64(m)).collect();
    let cts = pk.encrypt_batch(&pts, &mut rng(seed)).unwrap();
    let prepared = pk.acc_prepare_batch(&cts);
    // Two "bins": even and odd positions, plus the total.
    let mut bins = [pk.acc_zero(), pk.acc_zero()];
    for (i, x) in prepared.iter().enumerate() {
        pk.acc_add(&mut bins[i % 2], x);
    }
    for (b, bin) in bins.iter().enumerate() {
        let want: i64 = ms.iter().skip(b).step_by(2).sum();
        let c = pk.acc_finish(bin);
        prop_assert_eq!(sk.decrypt(&c).unwrap().to_i64(), Some(want));
    }
    let total = pk.acc_finish(&pk.acc_sum(&prepared));
    prop_assert_eq!(
        sk.decrypt(&total).unwrap().to_i64(),
        Some(ms.iter().sum::<i64>())
    );
    if !cts.is_empty() {
        // Bit-identical to the ordinary `add` chain.
        prop_assert_eq!(&total, &pk.sum(&cts).unwrap());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn prop_acc_sum_decrypts_to_sum_ou(ms in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 0..12), seed in any::<u64>()) {
        let (pk, sk) = ou();
        check_acc_sum::<OkamotoUchiyama>(pk, sk, &ms, seed)?;
    }

    #[test]
    fn prop_acc_sum_decrypts_to_sum_paillier(ms in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 0..12), seed in any::<u64>()) {
        let (pk, sk) = paillier();
        check_acc_sum::<Paillier>(pk, sk, &ms, seed)?;
    }

    #[test]
    fn prop_crt_roundtrip(m in any::<i64>(), seed in any::<u64>()) {
        let (opk, osk) = ou();
        let c = osk.encrypt_crt(&Plaintext::from_i64(m >> 16), &mut rng(seed)).unwrap();
        prop_assert_eq!(&c, &opk.encrypt(&Plaintext::from_i64(m >> 16), &mut rng(seed)).unwrap());
        prop_assert_eq!(osk.decrypt(&c).unwrap().to_i64(), Some(m >> 16));
        let (ppk, psk) = paillier();
        let c = psk.encrypt_crt(&Plaintext::from_i64(m), &mut rng(seed)).unwrap();
        prop_assert_eq!(&c, &ppk.encrypt(&Plaintext::from_i64(m), &mut rng(seed)).unwrap());
        prop_assert_eq!(psk.decrypt(&c).unwrap().to_i64(), Some(m));
    }
}

#[test]
fn acc_with_foreign_key_poisons_instead_of_panicking() {
    let (opk, osk) = ou();
    let (ppk, _) = paillier();
    let mut r = rng(77);
    let oc = opk.encrypt(&Plaintext::from_i64(5), &mut r).unwrap();
    let pc = ppk.encrypt(&Plaintext::from_i64(5), &mut r).unwrap();
    let wide = ppk.acc_prepare(&pc);
    let mut acc = ppk.acc_zero();
    ppk.acc_add(&mut acc, &wide);
    assert_eq!(ppk.acc_finish(&acc), pc);
    // Mixing widths: OU accumulator with a Paillier-width value.
    let mut oacc = opk.acc_prepare(&oc);
    let bogus = OuAcc {
        limbs: vec![1u64; 3].into(),
    };
    opk.acc_add(&mut oacc, &bogus);
    let fin = opk.acc_finish(&oacc);
    assert!(osk.decrypt(&fin).is_err());
}

/// CRT encryption with real 2048-bit parameters (|t| = 224, r reduced
/// modulo t on the p² side, 22- and 11-limb moduli), checked against
/// OpenSSL `BN_mod_exp` (building the public tables is slow in debug
/// builds; bit-identity with them is covered with small keys above).
#[test]
fn crt_encryption_2048_bit_ou() {
    let (pk, sk) = OkamotoUchiyama::generate_keypair(2048, &mut rng(43)).unwrap();
    let ms = [
        Plaintext::from_i64(-5),
        Plaintext::from_u128(u128::MAX >> 2),
        Plaintext::zero(),
    ];
    for (i, m) in ms.iter().enumerate() {
        let seed = 500 + i as u64;
        let c = sk.encrypt_crt(m, &mut rng(seed)).unwrap();
        assert_eq!(c, pk.encrypt_modexp(m, &mut rng(seed)).unwrap(), "{m:?}");
    }
    let a = sk.encrypt_batch_crt(&ms, &mut rng(1)).unwrap();
    assert_eq!(sk.decrypt_batch(&a).unwrap(), ms);
}

#[test]
fn ou_modexp_reference_agrees_with_tables() {
    let (pk, _) = ou();
    for (i, m) in edge_plaintexts(pk).iter().enumerate() {
        let seed = 600 + i as u64;
        assert_eq!(
            pk.encrypt(m, &mut rng(seed)).unwrap(),
            pk.encrypt_modexp(m, &mut rng(seed)).unwrap()
        );
    }
}
