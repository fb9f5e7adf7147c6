//! Known-answer tests from RFC 9496 ("The ristretto255 and decaf448 Groups"),
//! Appendix A (test vectors for ristretto255), against the group implementation and
//! the code paths fedra-psi builds on it:
//!
//! * A.1 — encodings of the multiples 0·B … 15·B of the generator;
//! * A.2 — invalid encodings, which must be rejected by the decoding path that
//!   fedra-psi uses for every point a peer sends ([`fedra_psi::ecdh::reblind`], and
//!   through it a whole ECDH-PSI run);
//! * A.3 — the one-way map ("element derivation from uniform byte strings",
//!   `RistrettoPoint::from_uniform_bytes`), which [`fedra_psi::hash::hash_to_group`]
//!   applies to a SHA-512 digest of a documented, domain-separated input.
//!
//! The hex strings are copied from the RFC text with its whitespace grouping kept
//! (the decoder below ignores whitespace), so each line can be compared with the RFC
//! by eye.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use bytes::Bytes;
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use fedra_federation::mem::MemNetwork;
use fedra_federation::{Channel, PartyId, Tag};
use fedra_psi::ecdh::{blind, reblind};
use fedra_psi::hash::{HASH_DOMAIN, hash_to_group};
use fedra_psi::{EcdhConfig, Role, ecdh_psi};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha512};

/// Decodes hex, ignoring whitespace (the RFC groups bytes for readability).
fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex length: {s}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("a 32-byte encoding")
}

fn unhex64(s: &str) -> [u8; 64] {
    unhex(s).try_into().expect("a 64-byte input")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------------------------------ A.1

/// RFC 9496 Appendix A.1 (Multiples of the Generator): `B[i]` is the encoding of
/// `i·B`, `B` the ristretto255 generator.
const A1_MULTIPLES: [&str; 16] = [
    "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000",
    "e2f2ae0a 6abc4e71 a884a961 c500515f 58e30b6a a582dd8d b6a65945 e08d2d76",
    "6a493210 f7499cd1 7fecb510 ae0cea23 a110e8d5 b901f8ac add3095c 73a3b919",
    "94741f5d 5d52755e ce4f23f0 44ee27d5 d1ea1e2b d196b462 166b1615 2a9d0259",
    "da808627 73358b46 6ffadfe0 b3293ab3 d9fd53c5 ea6c9553 58f56832 2daf6a57",
    "e882b131 016b52c1 d3337080 187cf768 423efccb b517bb49 5ab812c4 160ff44e",
    "f64746d3 c92b1305 0ed8d802 36a7f000 7c3b3f96 2f5ba793 d19a601e bb1df403",
    "44f53520 926ec81f bd5a3878 45beb7df 85a96a24 ece18738 bdcfa6a7 822a176d",
    "903293d8 f2287ebe 10e2374d c1a53e0b c887e592 699f02d0 77d5263c dd55601c",
    "02622ace 8f7303a3 1cafc63f 8fc48fdc 16e1c8c8 d234b2f0 d6685282 a9076031",
    "20706fd7 88b2720a 1ed2a5da d4952b01 f413bcf0 e7564de8 cdc81668 9e2db95f",
    "bce83f8b a5dd2fa5 72864c24 ba1810f9 522bc600 4afe9587 7ac73241 cafdab42",
    "e4549ee1 6b9aa030 99ca208c 67adafca fa4c3f3e 4e5303de 6026e3ca 8ff84460",
    "aa52e000 df2e16f5 5fb1032f c33bc427 42dad6bd 5a8fc0be 0167436c 5948501f",
    "46376b80 f409b29d c2b5f6f0 c5259199 0896e571 6f41477c d30085ab 7f10301e",
    "e0c418f7 c8d9c4cd d7395b93 ea124f3a d99021bb 681dfc33 02a9d99a 2e53e64e",
];

#[test]
fn rfc9496_a1_multiples_of_the_generator() {
    // RFC 9496 Appendix A.1: k·B for k = 0..15, by scalar multiplication (fixed-base
    // and variable-base) and, as the RFC suggests, by repeated addition.
    let mut acc = RistrettoPoint::identity();
    for (k, want) in A1_MULTIPLES.iter().enumerate() {
        let want = unhex32(want);
        let s = Scalar::from(k as u64);
        assert_eq!(
            RistrettoPoint::mul_base(&s).compress().to_bytes(),
            want,
            "{k}·B (fixed base)"
        );
        assert_eq!(
            (RISTRETTO_BASEPOINT_POINT * s).compress().to_bytes(),
            want,
            "{k}·B (variable base)"
        );
        assert_eq!(acc.compress().to_bytes(), want, "B[{k}] by addition");
        // Every valid encoding decodes and re-encodes to itself.
        let p = CompressedRistretto(want)
            .decompress()
            .expect("valid encoding");
        assert_eq!(p.compress().to_bytes(), want);
        acc += RISTRETTO_BASEPOINT_POINT;
    }
}

#[test]
fn rfc9496_a1_through_the_crate_reblind() {
    // The crate's second blinding of B with scalar k gives k·B (RFC 9496 Appendix
    // A.1), and reblinding B[i] with j gives B[i·j]: the accepting side of the peer
    // decoding path agrees with the RFC on every non-identity listed element.
    let b1 = unhex32(A1_MULTIPLES[1]);
    for (k, want) in A1_MULTIPLES.iter().enumerate().skip(1) {
        let got = reblind(&b1, &Scalar::from(k as u64)).unwrap();
        assert_eq!(hex(&got), hex(&unhex32(want)), "reblind(B, {k})");
    }
    for i in 1..16u64 {
        for j in 1..16u64 {
            if i * j < 16 {
                let got = reblind(&unhex32(A1_MULTIPLES[i as usize]), &Scalar::from(j));
                assert_eq!(got.unwrap(), unhex32(A1_MULTIPLES[(i * j) as usize]));
            }
        }
    }
    // The identity (B[0]) is a valid encoding but never a valid blinded id.
    assert!(reblind(&unhex32(A1_MULTIPLES[0]), &Scalar::from(7u64)).is_err());
}

// ------------------------------------------------------------------------ A.2

/// RFC 9496 Appendix A.2 (Invalid Encodings): every one MUST be rejected by decoding.
const A2_INVALID: [(&str, &str); 29] = [
    // Non-canonical field encodings.
    (
        "non-canonical field encoding",
        "00ffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff",
    ),
    (
        "non-canonical field encoding",
        "ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffff7f",
    ),
    (
        "non-canonical field encoding",
        "f3ffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffff7f",
    ),
    (
        "non-canonical field encoding",
        "edffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffff7f",
    ),
    // Negative field elements.
    (
        "negative field element",
        "01000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000",
    ),
    (
        "negative field element",
        "01ffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffff7f",
    ),
    (
        "negative field element",
        "ed57ffd8 c914fb20 1471d1c3 d245ce3c 746fcbe6 3a3679d5 1b6a516e bebe0e20",
    ),
    (
        "negative field element",
        "c34c4e18 26e5d403 b78e246e 88aa051c 36ccf0aa febffe13 7d148a2b f9104562",
    ),
    (
        "negative field element",
        "c940e5a4 404157cf b1628b10 8db051a8 d439e1a4 21394ec4 ebccb9ec 92a8ac78",
    ),
    (
        "negative field element",
        "47cfc549 7c53dc8e 61c91d17 fd626ffb 1c49e2bc a94eed05 2281b510 b1117a24",
    ),
    (
        "negative field element",
        "f1c6165d 33367351 b0da8f6e 4511010c 68174a03 b6581212 c71c0e1d 026c3c72",
    ),
    (
        "negative field element",
        "87260f7a 2f124951 18360f02 c26a470f 450dadf3 4a413d21 042b43b9 d93e1309",
    ),
    // Non-square x^2.
    (
        "non-square x^2",
        "26948d35 ca62e643 e26a8317 7332e6b6 afeb9d08 e4268b65 0f1f5bbd 8d81d371",
    ),
    (
        "non-square x^2",
        "4eac077a 713c57b4 f4397629 a4145982 c661f480 44dd3f96 427d40b1 47d9742f",
    ),
    (
        "non-square x^2",
        "de6a7b00 deadc788 eb6b6c8d 20c0ae96 c2f20190 78fa604f ee5b87d6 e989ad7b",
    ),
    (
        "non-square x^2",
        "bcab477b e20861e0 1e4a0e29 5284146a 510150d9 817763ca f1a6f4b4 22d67042",
    ),
    (
        "non-square x^2",
        "2a292df7 e32cabab bd9de088 d1d1abec 9fc0440f 637ed2fb a145094d c14bea08",
    ),
    (
        "non-square x^2",
        "f4a9e534 fc0d216c 44b218fa 0c42d996 35a0127e e2e53c71 2f706096 49fdff22",
    ),
    (
        "non-square x^2",
        "8268436f 8c412619 6cf64b3c 7ddbda90 746a3786 25f9813d d9b84570 77256731",
    ),
    (
        "non-square x^2",
        "2810e5cb c2cc4d4e ece54f61 c6f69758 e289aa7a b440b3cb eaa21995 c2f4232b",
    ),
    // Negative xy value.
    (
        "negative xy value",
        "3eb858e7 8f5a7254 d8c97311 74a94f76 755fd394 1c0ac937 35c07ba1 4579630e",
    ),
    (
        "negative xy value",
        "a45fdc55 c76448c0 49a1ab33 f17023ed fb2be358 1e9c7aad e8a61252 15e04220",
    ),
    (
        "negative xy value",
        "d483fe81 3c6ba647 ebbfd3ec 41adca1c 6130c2be eee9d9bf 065c8d15 1c5f396e",
    ),
    (
        "negative xy value",
        "8a2e1d30 050198c6 5a544831 23960ccc 38aef684 8e1ec8f5 f780e852 3769ba32",
    ),
    (
        "negative xy value",
        "32888462 f8b486c6 8ad7dd96 10be5192 bbeaf3b4 43951ac1 a8118419 d9fa097b",
    ),
    (
        "negative xy value",
        "22714250 1b9d4355 ccba2904 04bde415 75b03769 3cef1f43 8c47f8fb f35d1165",
    ),
    (
        "negative xy value",
        "5c37cc49 1da847cf eb9281d4 07efc41e 15144c87 6e0170b4 99a96a22 ed31e01e",
    ),
    (
        "negative xy value",
        "44542511 7cb8c90e dcbc7c1c c0e74f74 7f2c1efa 5630a967 c64f2877 92a48a4b",
    ),
    // s = -1, which causes y = 0.
    (
        "s = -1, which causes y = 0",
        "ecffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff ffffff7f",
    ),
];

fn a2_all() -> Vec<(&'static str, [u8; 32])> {
    A2_INVALID
        .iter()
        .map(|(why, h)| (*why, unhex32(h)))
        .collect()
}

#[test]
fn rfc9496_a2_invalid_encodings_are_rejected_by_reblind() {
    // RFC 9496 Appendix A.2: 4 non-canonical, 8 negative, 8 non-square x^2,
    // 8 negative xy, 1 s = -1: 29 encodings.
    let all = a2_all();
    assert_eq!(all.len(), 29);
    let distinct: std::collections::HashSet<[u8; 32]> = all.iter().map(|(_, e)| *e).collect();
    assert_eq!(distinct.len(), 29, "no vector copied twice");
    for scalar in [Scalar::ONE, Scalar::from(0x1234_5678u64)] {
        for (why, enc) in &all {
            // The crate's peer-point decoding path (used on every blinded point a
            // peer sends) refuses it as an invalid encoding.
            let e = reblind(enc, &scalar).expect_err(why);
            assert_eq!(
                e,
                "not a valid ristretto255 point encoding",
                "{why}: {}",
                hex(enc)
            );
            // ... as does the underlying decoder.
            assert!(
                CompressedRistretto(*enc).decompress().is_none(),
                "{why}: {}",
                hex(enc)
            );
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn rfc9496_a2_invalid_encodings_abort_a_psi_run() {
    // End to end: a follower that sends one RFC 9496 Appendix A.2 encoding among
    // valid blinded points makes the real leader fail with a decode error naming the
    // follower, the message and the point index, for every listed encoding.
    let valid = |i: u64| blind("j", "t", &i.to_be_bytes(), &Scalar::from(3u64));
    for (k, (why, bad)) in a2_all().into_iter().enumerate() {
        let (a, b) = (
            PartyId::new("guest").unwrap(),
            PartyId::new("host").unwrap(),
        );
        let mut net = MemNetwork::new("job-rfc", &[a.clone(), b.clone()]);
        let (ca, cb) = (net.take(&a).unwrap(), net.take(&b).unwrap());
        let xs: Vec<String> = (0..3).map(|i| format!("x{i}")).collect();
        let cfg = EcdhConfig::new("psi");
        let pos = k % 3; // where the bad point sits among the three
        let fake = async {
            let tag = |n: &str| Tag::new("psi", 0, n);
            // Follower hello: v2, ECDH, follower, mode Both, 1 bucket, batch 16, 3 ids.
            let mut hello = b"FPSI".to_vec();
            hello.extend_from_slice(&[2, 1, 2, 1]);
            hello.extend_from_slice(&1u32.to_le_bytes());
            hello.extend_from_slice(&16u32.to_le_bytes());
            hello.extend_from_slice(&3u64.to_le_bytes());
            hello.extend_from_slice(&[0u8; 32]);
            cb.send(&a, &tag("hello"), Bytes::from(hello))
                .await
                .unwrap();
            cb.send(&a, &tag("count"), Bytes::from(3u64.to_le_bytes().to_vec()))
                .await
                .unwrap();
            let mut pts = Vec::new();
            for i in 0..3 {
                if i == pos {
                    pts.extend_from_slice(&bad);
                } else {
                    pts.extend_from_slice(&valid(i as u64));
                }
            }
            cb.send(&a, &tag("blinded-0"), Bytes::from(pts))
                .await
                .unwrap();
        };
        let mut rng = ChaCha20Rng::seed_from_u64(k as u64);
        let (r, ()) = tokio::join!(ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut rng), fake);
        let e = r.expect_err(why);
        let msg = e.to_string();
        assert_eq!(e.code(), "fed.decode", "{why}: {msg}");
        assert!(msg.contains("host") && msg.contains("blinded-0"), "{msg}");
        assert!(
            msg.contains(&format!("point {pos}")) && msg.contains("not a valid ristretto255"),
            "{why}: {msg}"
        );
    }
}

// ------------------------------------------------------------------------ A.3

/// RFC 9496 Appendix A.3 (Group Elements from Uniform Byte Strings): 64-byte inputs
/// `I` of the one-way map and the encodings `O` of its outputs.
const A3_MAP: [(&str, &str); 7] = [
    (
        "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1
         4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6",
        "3066f82a 1a747d45 120d1740 f1435853 1a8f04bb ffe6a819 f86dfe50 f44a0a46",
    ),
    (
        "f116b34b8f17ceb56e8732a60d913dd10cce47a6d53bee9204be8b44f6678b27
         0102a56902e2488c46120e9276cfe54638286b9e4b3cdb470b542d46c2068d38",
        "f26e5b6f 7d362d2d 2a94c5d0 e7602cb4 773c95a2 e5c31a64 f133189f a76ed61b",
    ),
    (
        "8422e1bbdaab52938b81fd602effb6f89110e1e57208ad12d9ad767e2e25510c
         27140775f9337088b982d83d7fcf0b2fa1edffe51952cbe7365e95c86eaf325c",
        "006ccd2a 9e6867e6 a2c5cea8 3d3302cc 9de128dd 2a9a57dd 8ee7b9d7 ffe02826",
    ),
    (
        "ac22415129b61427bf464e17baee8db65940c233b98afce8d17c57beeb7876c2
         150d15af1cb1fb824bbd14955f2b57d08d388aab431a391cfc33d5bafb5dbbaf",
        "f8f0c87c f237953c 5890aec3 99816900 5dae3eca 1fbb0454 8c635953 c817f92a",
    ),
    (
        "165d697a1ef3d5cf3c38565beefcf88c0f282b8e7dbd28544c483432f1cec767
         5debea8ebb4e5fe7d6f6e5db15f15587ac4d4d4a1de7191e0c1ca6664abcc413",
        "ae81e7de df20a497 e10c304a 765c1767 a42d6e06 029758d2 d7e8ef7c c4c41179",
    ),
    (
        "a836e6c9a9ca9f1e8d486273ad56a78c70cf18f0ce10abb1c7172ddd605d7fd2
         979854f47ae1ccf204a33102095b4200e5befc0465accc263175485f0e17ea5c",
        "e2705652 ff9f5e44 d3e841bf 1c251cf7 dddb77d1 40870d1a b2ed64f1 a9ce8628",
    ),
    (
        "2cdc11eaeb95daf01189417cdddbf95952993aa9cb9c640eb5058d09702c7462
         2c9965a697a3b345ec24ee56335b556e677b30e6f90ac77d781064f866a3c982",
        "80bd0726 2511cdde 4863f8a7 434cef69 6750681c b9510eea 557088f7 6d9e5065",
    ),
];

/// RFC 9496 Appendix A.3, second list: four inputs that all map to the same element.
const A3_SAME_INPUTS: [&str; 4] = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
     1200000000000000000000000000000000000000000000000000000000000000",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f
     ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000000000000000000000000080
     ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000
     1200000000000000000000000000000000000000000000000000000000000080",
];
const A3_SAME_OUTPUT: &str =
    "30428279 1023b731 28d277bd cb5c7746 ef2eac08 dde9f298 3379cb8e 5ef0517f";

#[test]
fn rfc9496_a3_one_way_map() {
    // RFC 9496 Appendix A.3: the one-way map that hash_to_group ends with.
    for (input, output) in A3_MAP {
        let got = RistrettoPoint::from_uniform_bytes(&unhex64(input)).compress();
        assert_eq!(hex(got.as_bytes()), hex(&unhex32(output)), "input {input}");
    }
    for input in A3_SAME_INPUTS {
        let got = RistrettoPoint::from_uniform_bytes(&unhex64(input)).compress();
        assert_eq!(
            hex(got.as_bytes()),
            hex(&unhex32(A3_SAME_OUTPUT)),
            "input {input}"
        );
    }
}

/// The hash-to-group input exactly as documented in `fedra_psi::hash`:
/// `"fedra-psi-v1" || u32be(len job) || job || u32be(len task) || task ||
/// u32be(len id) || id`, built here independently of the crate's code.
fn documented_input(job: &str, task: &str, id: &[u8]) -> Vec<u8> {
    let mut v = b"fedra-psi-v1".to_vec();
    for part in [job.as_bytes(), task.as_bytes(), id] {
        v.extend_from_slice(&(part.len() as u32).to_be_bytes());
        v.extend_from_slice(part);
    }
    v
}

#[test]
fn hash_to_group_is_sha512_of_the_documented_input_then_the_rfc9496_map() {
    assert_eq!(HASH_DOMAIN, b"fedra-psi-v1");
    let long = vec![0xa5u8; 1000];
    let cases: [(&str, &str, &[u8]); 6] = [
        ("job-kat", "psi", b"id-42"),
        ("job-psi", "psi", b""),
        ("", "t", b"x"),
        ("job", "task", "ünïcødé-id".as_bytes()),
        ("a-long-job-name-with-dashes", "psi-2", &long),
        ("job", "task", &[0u8, 0, 0, 0]),
    ];
    for (job, task, id) in cases {
        let digest: [u8; 64] = Sha512::digest(documented_input(job, task, id)).into();
        let want = RistrettoPoint::from_uniform_bytes(&digest);
        assert_eq!(
            hash_to_group(job, task, id),
            want,
            "{job:?}/{task:?}/{id:?}"
        );
        assert_eq!(
            hash_to_group(job, task, id).compress(),
            want.compress(),
            "encodings agree too"
        );
    }
    // And the crate's first blinding is that point raised to the secret scalar.
    let s = Scalar::from(0xfeed_u64);
    let digest: [u8; 64] = Sha512::digest(documented_input("j", "t", b"id")).into();
    assert_eq!(
        blind("j", "t", b"id", &s),
        (RistrettoPoint::from_uniform_bytes(&digest) * s)
            .compress()
            .to_bytes()
    );
}

#[test]
fn hash_to_group_frozen_value_matches_the_rfc_map_of_its_digest() {
    // The frozen known answer of tests/psi.rs, recomputed from first principles:
    // SHA-512 of the documented layout, then the RFC 9496 one-way map (whose
    // implementation the A.3 vectors above pin down).
    let digest: [u8; 64] = Sha512::digest(documented_input("job-kat", "psi", b"id-42")).into();
    assert_eq!(
        hex(RistrettoPoint::from_uniform_bytes(&digest)
            .compress()
            .as_bytes()),
        "684b17b41f5ba29c6b28f51db13f5ef20528fe468f923bca29dbae2969d53846"
    );
}
